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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe._io import atomic_path
from lstmprobe._read import Fields, say_ignored, text_keys
from lstmprobe.errors import StoreError, one_line
from lstmprobe.names import Unit
from lstmprobe.store._format import dumps

FORMAT = "lstmprobe.ablations"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- a condition's summary


@dataclass(frozen=True)
class RandomDraw:
    """One random unit set of a condition and what intervening on it cost."""

    units: tuple[Unit, ...]
    delta: float | None = None
    delta_on: float | None = None
    delta_off: float | None = None
    task_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "units": [str(u) for u in self.units],
            "delta": self.delta,
            "delta_on": self.delta_on,
            "delta_off": self.delta_off,
        }
        if self.task_accuracy is not None:
            out["task_accuracy"] = self.task_accuracy
        return out


@dataclass(frozen=True)
class RandomUnits:
    """A condition's random same-size unit sets: their mean effect, spread and the p-value of
    the condition's effect among them with its floor ``1 / (1 + n)`` and ``possible``, the
    number of distinct sets there were to draw (and the same for task accuracy with
    ``task=True``)."""

    n: int
    seed: int
    p_value_of: str
    p_value: float | None = None
    p_floor: float | None = None
    possible: int | None = None
    delta_on_mean: float | None = None
    delta_on_sd: float | None = None
    delta_off_mean: float | None = None
    delta_off_sd: float | None = None
    delta_mean: float | None = None
    delta_sd: float | None = None
    draws: tuple[RandomDraw, ...] = ()
    task_accuracy_mean: float | None = None
    task_accuracy_sd: float | None = None
    task_p_value: float | None = None
    task_accuracy_by_n_mean: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.n,
            "delta_on_mean": self.delta_on_mean,
            "delta_on_sd": self.delta_on_sd,
            "delta_off_mean": self.delta_off_mean,
            "delta_off_sd": self.delta_off_sd,
            "delta_mean": self.delta_mean,
            "delta_sd": self.delta_sd,
            "p_value": self.p_value,
            "p_value_of": self.p_value_of,
            "p_floor": self.p_floor,
            "possible": self.possible,
            "seed": self.seed,
            "draws": [d.to_dict() for d in self.draws],
        }
        if self.task_accuracy_by_n_mean is not None:
            out["task_accuracy_mean"] = self.task_accuracy_mean
            out["task_accuracy_sd"] = self.task_accuracy_sd
            out["task_p_value"] = self.task_p_value
            out["task_accuracy_by_n_mean"] = dict(self.task_accuracy_by_n_mean)
        return out


#: The loss summary's fields where a feature splits the positions (:func:`loss_summary`).
SPLIT = ("bits_on", "base_bits_on", "delta_on", "positions_on",
         "bits_off", "base_bits_off", "delta_off", "positions_off")  # fmt: skip


@dataclass(frozen=True)
class AblationCondition:
    """One condition of an ablation, measured: its units, how they were set, the loss with and
    without (overall, and where the feature is on and off), the random units beside it, task
    accuracy with ``task=True``, and the verdict in one line.

    With a feature, ``feature_at`` names the reading rule (``state``: the loss of predicting
    char t+1 is on where the feature is on at t, where the model stands when it predicts;
    ``target``: where it is on at t+1) and ``on`` says what on means (``quote = 1``,
    ``count:a ≠ 0``, ``seq-length > 12``).

    :meth:`to_dict` is what ``ablate --json`` prints and the ablations file keeps;
    :meth:`from_dict` reads it back, field by field.
    """

    units: tuple[Unit, ...]
    mode: str
    random: RandomUnits
    value: float | None = None
    feature: str | None = None
    feature_at: str | None = None
    on: str | None = None
    bits: float | None = None
    base_bits: float | None = None
    delta: float | None = None
    positions: int = 0
    bits_on: float | None = None
    base_bits_on: float | None = None
    delta_on: float | None = None
    positions_on: int | None = None
    bits_off: float | None = None
    base_bits_off: float | None = None
    delta_off: float | None = None
    positions_off: int | None = None
    base_task_accuracy: float | None = None
    base_task_accuracy_by_n: dict[str, float] | None = None
    task_accuracy: float | None = None
    task_accuracy_by_n: dict[str, float] | None = None
    verdict: str = ""

    @property
    def names(self) -> list[str]:
        return [str(u) for u in self.units]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "units": self.names,
            "mode": self.mode,
            "value": self.value,
            "feature": self.feature,
            "bits": self.bits,
            "base_bits": self.base_bits,
            "delta": self.delta,
            "positions": self.positions,
        }
        if self.feature is not None:
            out["feature_at"] = self.feature_at
            out["on"] = self.on
            out.update({k: getattr(self, k) for k in SPLIT})
        if self.task_accuracy is not None:
            out["base_task_accuracy"] = self.base_task_accuracy
            out["base_task_accuracy_by_n"] = self.base_task_accuracy_by_n
            out["task_accuracy"] = self.task_accuracy
            out["task_accuracy_by_n"] = self.task_accuracy_by_n
        out["random"] = self.random.to_dict()
        out["verdict"] = self.verdict
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str, problems: list[str]) -> AblationCondition | None:
        """A condition as a file keeps it (:meth:`to_dict`); None when its units or mode cannot
        be used, fields that cannot be used read as missing (said in ``problems``)."""
        f = Fields(obj, where, problems)
        units, mode = f.units("units"), f.text("mode", required=True)
        if units is None or mode is None:
            return None
        r = f.child("random")
        draws = []
        for i, d in enumerate(r.listing("draws") or []):
            df = Fields(d, f"{r.where}.draws[{i}]", problems)
            got = df.units("units")
            if got is not None:
                draws.append(
                    RandomDraw(
                        got,
                        df.number("delta"),
                        df.number("delta_on"),
                        df.number("delta_off"),
                        df.number("task_accuracy"),
                    )
                )
        random = RandomUnits(
            n=r.integer("n", minimum=0) or 0,
            seed=r.integer("seed") or 0,
            p_value_of=r.text("p_value_of") or "delta",
            p_value=r.number("p_value"),
            p_floor=r.number("p_floor"),
            possible=r.integer("possible", minimum=0),
            **{k: r.number(k) for k in _RANDOM_NUMBERS},
            draws=tuple(draws),
            task_accuracy_by_n_mean=_by_n(r, "task_accuracy_by_n_mean"),
        )
        return cls(
            units=units,
            mode=mode,
            random=random,
            value=f.number("value"),
            feature=f.text("feature"),
            feature_at=f.text("feature_at"),
            on=f.text("on"),
            positions=f.integer("positions", minimum=0) or 0,
            positions_on=f.integer("positions_on", minimum=0),
            positions_off=f.integer("positions_off", minimum=0),
            base_task_accuracy_by_n=_by_n(f, "base_task_accuracy_by_n"),
            task_accuracy_by_n=_by_n(f, "task_accuracy_by_n"),
            verdict=f.text("verdict") or "",
            **{k: f.number(k) for k in _NUMBERS},
        )


_RANDOM_NUMBERS = (
    "delta_on_mean", "delta_on_sd", "delta_off_mean", "delta_off_sd", "delta_mean", "delta_sd",
    "task_accuracy_mean", "task_accuracy_sd", "task_p_value",
)  # fmt: skip
_NUMBERS = (
    "bits", "base_bits", "delta", "bits_on", "base_bits_on", "delta_on", "bits_off",
    "base_bits_off", "delta_off", "base_task_accuracy", "task_accuracy",
)  # fmt: skip


def _by_n(f: Fields, key: str) -> dict[str, float] | None:
    """An accuracy per N (``{"3": 0.9}``), numbers only."""
    found = f.mapping(key)
    if found is None:
        return None
    values = Fields(found, f"{f.where}.{key}", f.problems)
    out = {k: values.number(k) for k in text_keys(found, values.where, f.problems)}
    return {k: v for k, v in out.items() if v is not None}


# --------------------------------------------------------------------------- the file


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
        Usually ``store.recording.ablations``.
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


@dataclass(frozen=True)
class SavedCondition:
    """One condition of an ablations file: its units, how they were set, and per char the
    loss difference with them set (and the mean over its random draws)."""

    units: tuple[Unit, ...]
    mode: str
    value: float | None
    verdict: str
    delta_bits: np.ndarray
    random_mean_delta_bits: np.ndarray | None


@dataclass(frozen=True)
class SavedAblations:
    """What :func:`write_ablations` wrote, read back and checked (:func:`read_ablations`).

    ``summary`` holds the conditions' JSON summaries as written (each read by
    :meth:`lstmprobe.causal.effects.AblationCondition.from_dict`), one per condition kept.
    """

    path: Path
    base_bits: np.ndarray
    feature_on: np.ndarray | None
    conditions: tuple[SavedCondition, ...]
    summary: tuple[Any, ...]
    store: str = ""
    model_sha256: str = ""
    corpus_sha256: str = ""
    reset: str = ""
    feature: str = ""
    feature_at: str = ""
    created: str = ""


def read_ablations(
    path: str | os.PathLike[str],
    *,
    positions: int | None = None,
    recording: Mapping[str, str] | None = None,
    lenient: bool = False,
    warn: Callable[[str], None] | None = None,
) -> SavedAblations:
    """An ablations file, every field checked; :class:`StoreError` naming what is wrong.

    ``positions``: the recording's length, which every per-char array must have, and
    ``recording``: its ``model_sha256`` and ``corpus_sha256``, which the file's must equal
    (a file without a model hash is not checked for it) -- both checked before any array is
    read, so that a file cannot make this read allocate more. With
    ``lenient`` (the report), conditions that cannot be used are left out and said in one
    ``warn`` line; a file whose root cannot be used is always an error.
    """
    path = Path(path)
    try:
        f: Any = h5py.File(path, "r")
    except (OSError, FileNotFoundError):
        raise StoreError(f"{path} is not a readable ablations file") from None
    problems: list[str] = []
    try:
        with f:
            out = _read(f, path, positions, recording or {}, problems)
    except (KeyError, TypeError, ValueError, OSError) as exc:  # h5py's ways to say damaged
        raise StoreError(f"{path} is a damaged ablations file ({one_line(exc)})") from None
    if problems and not lenient:
        raise StoreError(f"{path} is a damaged ablations file: {problems[0]}")
    say_ignored(problems, warn, f"{path}: ")
    return out


def _read(
    f: Any,
    path: Path,
    positions: int | None,
    recording: Mapping[str, str],
    problems: list[str],
) -> SavedAblations:
    attrs = {k: _attr(v) for k, v in f.attrs.items()}
    if attrs.get("format") != FORMAT:
        raise StoreError(f"{path} is not an lstmprobe ablations file")
    for key, what in (("model_sha256", "model"), ("corpus_sha256", "corpus")):
        theirs = attrs.get(key) or ""
        checked = key in recording and (theirs or key == "corpus_sha256")
        if checked and theirs != recording[key]:
            raise StoreError(f"{path} is of another recording: its {what} hash differs")
    root = Fields(attrs, "", problems)
    version = root.integer("format_version", minimum=1)
    if version is not None and version > FORMAT_VERSION:
        raise StoreError(
            f"{path} is an ablations file of format version {version}; this lstmprobe reads "
            f"version {FORMAT_VERSION}: upgrade lstmprobe"
        )
    d = f.get("base_bits")
    if positions is not None and isinstance(d, h5py.Dataset) and d.shape[:1] != (positions,):
        raise StoreError(f"{path} covers {d.shape[0]:,} positions, the recording {positions:,}")
    base = _vector(f, "base_bits", positions, np.float32)
    if base is None:
        raise StoreError(f"{path} has no usable base_bits (a float vector, one per position)")
    n = len(base)
    feature_on = _vector(f, "feature_on", n, np.int8) if "feature_on" in f else None
    if "feature_on" in f and feature_on is None:
        problems.append("feature_on: not an int8 vector as long as base_bits")
    try:
        summary = json.loads(attrs.get("summary", "[]"))
    except (TypeError, ValueError, RecursionError):
        summary = []
        problems.append("summary: not JSON")
    summary = summary if isinstance(summary, list) else []
    conditions, kept = [], []
    group: Any = f.get("conditions")
    names: list[str] = []
    if isinstance(group, h5py.Group):
        names = sorted((str(k) for k in group if str(k).isdecimal()), key=int)
    for name in names:
        got = _condition(group[name], f"conditions/{name}", n, problems)
        if got is not None:
            conditions.append(got)
            kept.append(summary[int(name)] if int(name) < len(summary) else None)
    return SavedAblations(
        path=path,
        base_bits=base,
        feature_on=feature_on,
        conditions=tuple(conditions),
        summary=tuple(kept),
        **{k: root.text(k) or "" for k in _TEXT_ATTRS},
    )


_TEXT_ATTRS = (
    "store",
    "model_sha256",
    "corpus_sha256",
    "reset",
    "feature",
    "feature_at",
    "created",
)


def _vector(f: Any, name: str, length: int | None, dtype: Any) -> np.ndarray | None:
    """A 1-D numeric dataset of ``length`` values (any length when None) as ``dtype``
    (integers only for an integer ``dtype``), or None."""
    d = f.get(name)
    if not isinstance(d, h5py.Dataset) or d.ndim != 1:
        return None
    if length is not None and d.shape[0] != length:
        return None
    kinds = "iu" if np.dtype(dtype).kind in "iu" else "fiu"
    if np.dtype(d.dtype).kind not in kinds:
        return None
    return np.asarray(d[()], dtype=dtype)


def _condition(g: Any, where: str, n: int, problems: list[str]) -> SavedCondition | None:
    """One condition group, or None (said in ``problems``) when it cannot be used."""
    if not isinstance(g, h5py.Group):
        problems.append(f"{where}: not a group")
        return None
    attrs: dict[str, Any] = {k: _attr(v) for k, v in g.attrs.items()}
    for key in ("units", "value"):
        try:
            attrs[key] = json.loads(attrs[key])
        except (KeyError, TypeError, ValueError, RecursionError):
            attrs[key] = None
    c = Fields(attrs, where, problems)
    units, mode = c.units("units"), c.text("mode", required=True)
    delta = _vector(g, "delta_bits", n, np.float32)
    if delta is None:
        problems.append(f"{where}/delta_bits: not a float vector as long as base_bits")
    rand = (
        _vector(g, "random_mean_delta_bits", n, np.float32)
        if "random_mean_delta_bits" in g
        else None
    )
    if units is None or mode is None or delta is None:
        return None
    return SavedCondition(units, mode, c.number("value"), c.text("verdict") or "", delta, rand)


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value
