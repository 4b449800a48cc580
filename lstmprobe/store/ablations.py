"""The per-character results of ``lstmprobe ablate``, saved beside a recording (``acts.h5`` ->
``acts.ablations.h5``), never inside it.

Layout (format ``lstmprobe.ablations``, version 1)::

    /                      attrs: format, format_version, created, store, model_sha256,
                           corpus_sha256, reset, feature (or ""), feature_at ("state": read at
                           t, where the model predicts char t+1; "target": at t+1; "" without a
                           feature), summary (JSON of the conditions)
    /base_bits             float32 (N,)  -log2 p(actual next char) without intervention; NaN where
                                         a position has no next char in its sequence
    /feature_on            int8 (N,)     at t: 1 where the feature is on for the loss of predicting
                                         char t+1 (as feature_at reads it), 0 off, -1 undefined
                                         (only with a feature)
    /conditions/{i}        attrs: units (JSON list), mode, value, verdict
    /conditions/{i}/delta_bits               float32 (N,) bits with minus bits without
    /conditions/{i}/random_mean_delta_bits   float32 (N,) the same, averaged over the random draws

The file is written to a temporary file in the same directory and renamed, so a crash leaves
either the previous file or the new one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe._io import atomic_path
from lstmprobe.errors import StoreError
from lstmprobe.store._format import dumps

FORMAT = "lstmprobe.ablations"
FORMAT_VERSION = 1


def write_ablations(
    path: str | os.PathLike[str],
    *,
    base_bits: np.ndarray,
    conditions: Sequence[dict[str, Any]],
    deltas: Sequence[np.ndarray],
    random_deltas: Sequence[np.ndarray | None],
    feature_on: np.ndarray | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Write the per-char loss differences of ``conditions`` to ``path`` atomically.

    Parameters
    ----------
    path : str or PathLike
        Usually ``store.sibling("ablations.h5")``.
    base_bits : ndarray of shape (n_positions,)
    conditions : the JSON summaries of the conditions (``units``, ``mode``, ``value``, ...)
    deltas, random_deltas : one ndarray of shape (n_positions,) per condition
    feature_on : ndarray of int8, optional
    attrs : more root attributes (``store``, ``model_sha256``, ``reset``, ``feature``...)
    """
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for key, value in (attrs or {}).items():
            f.attrs[key] = "" if value is None else value
        f.attrs["summary"] = dumps(list(conditions))
        f.create_dataset("base_bits", data=np.asarray(base_bits, dtype=np.float32))
        if feature_on is not None:
            f.create_dataset("feature_on", data=np.asarray(feature_on, dtype=np.int8))
        group = f.create_group("conditions")
        for i, (cond, delta, rand) in enumerate(zip(conditions, deltas, random_deltas)):
            g = group.create_group(str(i))
            g.attrs["units"] = dumps(list(cond.get("units", [])))
            g.attrs["mode"] = str(cond.get("mode", ""))
            g.attrs["value"] = dumps(cond.get("value"))
            g.attrs["verdict"] = str(cond.get("verdict", ""))
            g.create_dataset("delta_bits", data=np.asarray(delta, dtype=np.float32))
            if rand is not None:
                g.create_dataset("random_mean_delta_bits", data=np.asarray(rand, dtype=np.float32))
    return path


def read_ablations(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Everything :func:`write_ablations` wrote, as arrays and dicts."""
    path = Path(path)
    try:
        f: Any = h5py.File(path, "r")
    except (OSError, FileNotFoundError):
        raise StoreError(f"{path} is not a readable ablations file") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise StoreError(f"{path} is not an lstmprobe ablations file")
        out: dict[str, Any] = {k: _attr(v) for k, v in f.attrs.items()}
        out["summary"] = json.loads(out.get("summary", "[]"))
        out["base_bits"] = f["base_bits"][()]
        out["feature_on"] = f["feature_on"][()] if "feature_on" in f else None
        conditions = []
        for name in sorted(f["conditions"], key=int):
            g = f["conditions"][name]
            conditions.append(
                {
                    "units": json.loads(_attr(g.attrs["units"])),
                    "mode": _attr(g.attrs["mode"]),
                    "value": json.loads(_attr(g.attrs["value"])),
                    "verdict": _attr(g.attrs["verdict"]),
                    "delta_bits": g["delta_bits"][()],
                    "random_mean_delta_bits": g["random_mean_delta_bits"][()]
                    if "random_mean_delta_bits" in g
                    else None,
                }
            )
        out["conditions"] = conditions
    return out


def _attr(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value
