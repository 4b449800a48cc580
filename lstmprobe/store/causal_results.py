"""The results of ``lstmprobe patch`` and ``lstmprobe attribute``, saved beside a recording
(``acts.patching.h5``, ``acts.attributions.h5``: :class:`~lstmprobe.store.Recording` names
them), never inside it.

Both files have one layout (format ``lstmprobe.patching`` or ``lstmprobe.attributions``,
version 1)::

    /                 attrs: format, format_version, created, and the caller's attributes
                      (store, model_sha256, corpus_sha256, ...; JSON where not a string)
    /{name}           one group per saved result (``0``, ``1``, ...)
        attrs: meta (JSON: what the result is: units, settings, summary numbers)
        /{array}      its arrays (float32 unless they are bool or integer; a name with "/"
                      is a path of groups, read back as the same name)

The file is written to a temporary file in the same directory and renamed, so a crash leaves
either the previous file or the new one. Reading checks the format and bounds what a file can
make us allocate (:data:`MAX_ARRAY_BYTES`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe._io import atomic_path
from lstmprobe.errors import StoreError
from lstmprobe.store._format import dumps

FORMAT_VERSION = 1
PATCHING = "lstmprobe.patching"
ATTRIBUTIONS = "lstmprobe.attributions"
#: The largest array read back from a results file (a file declaring more is refused).
MAX_ARRAY_BYTES = 1 << 30


@dataclass(frozen=True)
class Saved:
    """One saved result: what it is (``meta``, JSON-ready) and its arrays."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultsFile:
    """A results file read back: its root attributes and its results, in order."""

    attrs: dict[str, Any]
    results: tuple[Saved, ...]


def _array(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype == bool or np.issubdtype(value.dtype, np.integer):
        return value
    return value.astype(np.float32)


def write_results(
    path: str | os.PathLike[str],
    fmt: str,
    results: Sequence[Saved],
    attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``results`` to ``path`` atomically as a file of format ``fmt``."""
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = fmt
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        for key, value in (attrs or {}).items():
            f.attrs[key] = value if isinstance(value, str) else dumps(value)
        for i, saved in enumerate(results):
            g = f.create_group(str(i))
            g.attrs["meta"] = dumps(saved.meta)
            for name, value in saved.arrays.items():
                g.create_dataset(name, data=_array(value))
    return path


def read_results(path: str | os.PathLike[str], fmt: str) -> ResultsFile:
    """Everything :func:`write_results` wrote to a file of format ``fmt``."""
    path = Path(path)
    try:
        f: Any = h5py.File(path, "r")
    except (OSError, FileNotFoundError):
        raise StoreError(f"{path} is not a readable results file") from None
    with f:
        if f.attrs.get("format") != fmt:
            raise StoreError(f"{path} is not an lstmprobe {fmt.split('.')[-1]} file")
        if f.attrs.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"{path} has format version {f.attrs.get('format_version')}; this lstmprobe "
                f"reads version {FORMAT_VERSION}"
            )
        attrs = {k: _attr(v) for k, v in f.attrs.items()}
        out = []
        for name in sorted((n for n in f if n.isdecimal()), key=int):
            g = f[name]
            arrays = {}
            for key, ds in _items(g):  # names with "/" are nested groups: read by their path
                if not isinstance(ds, h5py.Dataset):
                    continue
                if ds.size * ds.dtype.itemsize > MAX_ARRAY_BYTES:
                    raise StoreError(f"{path}: {name}/{key} is larger than a result can be")
                arrays[key] = ds[()]
            try:
                meta = json.loads(_attr(g.attrs.get("meta", "{}")))
            except json.JSONDecodeError:
                raise StoreError(f"{path}: result {name} has unreadable metadata") from None
            out.append(Saved(meta if isinstance(meta, dict) else {}, arrays))
    return ResultsFile(attrs, tuple(out))


def _items(group: Any) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    group.visititems(lambda key, obj: found.append((key, obj)))
    return found


def _attr(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, bytes) else value


#: Results an attributions file keeps (the oldest go first).
MAX_KEPT = 100


def add_result(
    path: str | os.PathLike[str],
    fmt: str,
    saved: Saved,
    attrs: Mapping[str, Any],
    *,
    same: Sequence[str] = (),
) -> Path:
    """Add ``saved`` to the results file at ``path`` (atomically), keeping the results already
    there when the file is of the same model and recording (``attrs``' ``model_sha256`` and
    ``corpus_sha256``), except one whose ``meta`` agrees with ``saved``'s on every key of
    ``same`` (it is replaced); at most :data:`MAX_KEPT` results, the newest."""
    kept: list[Saved] = []
    path = Path(path)
    if path.exists():
        try:
            old = read_results(path, fmt)
        except StoreError:
            old = ResultsFile({}, ())
        ours = all(old.attrs.get(k) == attrs.get(k) for k in ("model_sha256", "corpus_sha256"))
        if ours:
            kept = [
                r
                for r in old.results
                if not same or any(r.meta.get(k) != saved.meta.get(k) for k in same)
            ]
    kept.append(saved)
    return write_results(path, fmt, kept[-MAX_KEPT:], attrs)
