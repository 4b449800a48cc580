"""What the report reads from a recording: windows, per-unit summaries, spans, thresholds.

Everything here streams over the store's chunks (:meth:`ActivationStore.iter_chunks`): memory is
bounded by one window of positions (plus a few numbers per unit and per chunk), never by the
corpus.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmprobe._io import progress_bar
from lstmprobe.errors import FeatureError, StoreError, UnitError
from lstmprobe.probes.ranking import Ranking
from lstmprobe.report.colors import GATES, Scale, scale_for
from lstmprobe.store import ActivationStore, parse_unit

#: A gate is "left-saturated" below this value and "right-saturated" above 1 - this value
#: (Karpathy, Johnson & Fei-Fei 2015).
SATURATION = 0.1
#: Bins of the per-unit value histograms behind the ROC-suggested thresholds.
ROC_BINS = 256
#: Feature changes remembered per chunk of positions (the passages are picked among them).
CHANGES_PER_CHUNK = 4


def open_store(path: str | os.PathLike[str]) -> ActivationStore:
    """Open a complete recording that holds at least one position (else a clear StoreError)."""
    store = ActivationStore(Path(path))
    if store.n_positions == 0 or not store.keys:
        store.close()
        raise StoreError(
            f"{path} holds no positions or no datasets; record a non-empty corpus with "
            "`lstmprobe record MODEL CORPUS`"
        )
    return store


def check_unit(store: ActivationStore, name: str) -> tuple[str, int]:
    """``(key, index)`` of a unit of ``store``, or a UnitError listing what exists."""
    key, index = parse_unit(name)
    if key not in store.keys:
        listed = ", ".join(f"{k} (units 0..{store.n_units(k) - 1})" for k in store.keys)
        raise UnitError(f"{key} was not recorded in {store.path}; datasets: {listed}")
    n = store.n_units(key)
    if index >= n:
        raise UnitError(f"unit {name} does not exist: {key} has units 0..{n - 1}")
    return key, index


def check_span(store: ActivationStore, start: int, length: int | None) -> tuple[int, int]:
    """``[start, stop)`` of a span inside the corpus, or a StoreError saying the corpus size."""
    n = store.n_positions
    if start < 0 or start >= n:
        raise StoreError(
            f"span start {start} is outside the corpus, which has positions 0..{n - 1}; "
            "give --start between them"
        )
    stop = n if length is None else start + length
    if length is not None and (length < 1 or stop > n):
        raise StoreError(
            f"span {start}..{stop} is outside the corpus, which has positions 0..{n - 1}; "
            f"use --length {n - start} or less"
        )
    return start, stop


def require_quantities(store: ActivationStore, layer: str, wanted: Sequence[str], why: str) -> None:
    """A UnitError naming the ``--quantities`` to record when ``layer`` lacks one of ``wanted``."""
    have = store.quantities(layer)
    missing = [q for q in wanted if q not in have]
    if missing:
        raise UnitError(
            f"{why} needs {', '.join(missing)} of {layer}, which {store.path} did not record "
            f"(it has {', '.join(have)}); record again with --quantities "
            f"{','.join(dict.fromkeys([*have, *missing]))}"
        )


@dataclass(frozen=True)
class KeyStats:
    """Summaries of every unit of one dataset over the whole recording.

    Arrays are of shape (n_units,) unless stated. ``low``/``high`` are the fractions of positions
    below :data:`SATURATION` / above ``1 - SATURATION`` (gates only; zero elsewhere);
    ``chunk_max`` and ``chunk_min`` (shape (n_chunks, n_units)) hold each unit's largest and
    smallest value in each chunk of ``chunk`` positions, from which the top-activating spans are
    picked (:func:`top_spans`).
    """

    key: str
    count: int
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    low: np.ndarray
    high: np.ndarray
    chunk: int
    chunk_max: np.ndarray = field(repr=False)
    chunk_min: np.ndarray = field(repr=False)

    @property
    def max_abs(self) -> np.ndarray:
        return np.maximum(np.abs(self.min), np.abs(self.max))

    def scale(self, index: int) -> Scale:
        """The fixed colour scale of unit ``index``."""
        return scale_for(self.key, float(self.max_abs[index]))


def _bar(total: int, enabled: bool, desc: str) -> Any:
    return progress_bar(
        total, desc=desc, unit="char", unit_scale=True, leave=False, enabled=enabled
    )


def summarize(
    store: ActivationStore,
    keys: Sequence[str] | None = None,
    progress: bool = False,
) -> dict[str, KeyStats]:
    """Per-unit summaries of ``keys`` (default: all datasets), in one streaming pass.

    Each chunk of positions is swept once by a compiled loop (:mod:`lstmprobe.report._sweep`)
    that reads float16 values through a lookup table, so no float32 copy is made.

    Examples
    --------
    >>> with open_store("acts.h5") as store:  # doctest: +SKIP
    ...     stats = summarize(store)
    ...     stats["layer0/forget_gate"].high[:3]  # fraction of positions > 0.9
    """
    from lstmprobe.report._sweep import sweep

    keys = list(store.keys if keys is None else keys)
    n = store.n_positions
    chunk = store.chunk_positions
    n_chunks = math.ceil(n / chunk)
    acc: dict[str, dict[str, np.ndarray]] = {}
    for key in keys:
        u = store.n_units(key)
        acc[key] = {
            "sum": np.zeros(u),
            "sq": np.zeros(u),
            "low": np.zeros(u, dtype=np.int64),
            "high": np.zeros(u, dtype=np.int64),
            "cmax": np.empty((n_chunks, u), dtype=np.float32),
            "cmin": np.empty((n_chunks, u), dtype=np.float32),
        }
    with _bar(n, progress, "summaries") as bar:
        for c, (a, b, block) in enumerate(store.iter_chunks(keys, chunk_size=chunk, dtype=None)):
            for key, raw in block.items():
                s = acc[key]
                gate = key.split("/")[1] in GATES
                sweep(
                    raw,
                    gate,
                    SATURATION,
                    s["sum"],
                    s["sq"],
                    s["low"],
                    s["high"],
                    s["cmax"][c],
                    s["cmin"][c],
                )
            bar.update(b - a)
    out = {}
    for key, s in acc.items():
        mean = s["sum"] / n
        std = np.sqrt(np.maximum(s["sq"] / n - mean**2, 0.0))
        out[key] = KeyStats(
            key, n, mean, std, s["cmin"].min(0), s["cmax"].max(0), s["low"] / n, s["high"] / n,
            chunk, s["cmax"], s["cmin"],
        )  # fmt: skip
    return out


def sequence_bounds(store: ActivationStore, position: int) -> tuple[int, int]:
    """``[start, end)`` of the sequence holding ``position``."""
    seqs = store.sequences
    if len(seqs) == 0:
        return 0, store.n_positions
    i = int(np.searchsorted(seqs[:, 0], position, side="right")) - 1
    i = min(max(i, 0), len(seqs) - 1)
    return int(seqs[i, 0]), int(seqs[i, 1])


def passage(
    store: ActivationStore, center: int, length: int, before: float = 0.4
) -> tuple[int, int]:
    """A span of about ``length`` positions around ``center``, inside its sequence."""
    s, e = sequence_bounds(store, center)
    a = max(s, center - int(length * before))
    b = min(e, a + length)
    a = max(s, min(a, b - length))
    return a, b


def top_spans(
    store: ActivationStore,
    stats: KeyStats,
    index: int,
    sign: float = 1.0,
    k: int = 3,
    length: int = 160,
) -> list[tuple[int, int, int]]:
    """The ``k`` passages where unit ``index`` is most active: ``(start, stop, peak)``.

    "Most active" is the largest value for a positive ``sign`` (the smallest for a negative one);
    peaks are at most one per chunk of positions, so passages rarely overlap.
    """
    values = stats.chunk_max[:, index] if sign >= 0 else -stats.chunk_min[:, index]
    order = np.argsort(-values, kind="stable")
    out: list[tuple[int, int, int]] = []
    n = store.n_positions
    for c in order:
        a0, b0 = int(c) * stats.chunk, min(n, (int(c) + 1) * stats.chunk)
        v = store.read(stats.key, a0, b0, units=[index])[:, 0]  # where in the chunk the peak is
        peak = a0 + int(np.argmax(v) if sign >= 0 else np.argmin(v))
        a, b = passage(store, peak, length)
        if any(a < q and p < b for p, q, _ in out):
            continue
        out.append((a, b, peak))
        if len(out) == k:
            break
    return out


@dataclass(frozen=True)
class Threshold:
    """The ROC-suggested "unit is on" threshold of one unit for one binary feature.

    The threshold maximises Youden's J = TPR - FPR over the unit's values (the ROC point farthest
    above the diagonal): "on" means ``value >= threshold`` when ``sign > 0``, ``value <=
    threshold`` when ``sign < 0``. Computed from 256-bin histograms over the unit's range, so it is
    exact to one bin width.
    """

    unit: str
    feature: str
    threshold: float
    sign: int
    tpr: float
    fpr: float

    @property
    def youden(self) -> float:
        return self.tpr - self.fpr


@dataclass(frozen=True)
class FeatureScan:
    """Where a feature changes (sampled positions), and thresholds for its units."""

    feature: str
    kind: str
    changes: np.ndarray  # sampled positions where the label differs from the previous one
    thresholds: dict[str, Threshold]


def scan_features(
    store: ActivationStore,
    features: dict[str, list[tuple[str, int]]],
    stats: dict[str, KeyStats],
    kinds: dict[str, str],
    progress: bool = False,
) -> dict[str, FeatureScan]:
    """One streaming pass: each feature's labels beside its units' values.

    Parameters
    ----------
    features : dict of feature name to list of (unit name, sign)
        The units to find thresholds for (their datasets must be in ``stats``).
    kinds : dict of feature name to "binary" or "continuous"
        Thresholds are computed for binary features only.
    """
    from lstmprobe.features import get_feature
    from lstmprobe.features.stream import TextReader, feature_windows

    n = store.n_positions
    chunk = store.chunk_positions
    bounds = [(a, min(n, a + chunk)) for a in range(0, n, chunk)]
    feats = {}
    for name in features:
        try:
            feats[name] = get_feature(name)
        except FeatureError:
            continue  # a ranking's user feature whose file is gone: no passages for it
    streams = {
        name: feature_windows(f, TextReader(store.read_text, n), n, store.sequences, bounds)
        for name, f in feats.items()
    }
    keys = sorted({parse_unit(u)[0] for name in feats for u, _ in features[name]})
    hist: dict[tuple[str, str], np.ndarray] = {}
    for name in feats:
        if kinds.get(name) == "binary":
            for u, _ in features[name]:
                hist[(name, u)] = np.zeros((2, ROC_BINS), dtype=np.int64)
    changes: dict[str, list[int]] = {name: [] for name in feats}
    last: dict[str, float] = {}
    chunks = store.iter_chunks(keys, chunk_size=chunk, dtype=None) if keys else None
    seq_starts = store.sequences[:, 0]
    with _bar(n, progress, "passages") as bar:
        for a, b in bounds:
            block = next(chunks)[2] if chunks is not None else {}
            for name, stream in streams.items():
                y = next(stream)
                prev = np.concatenate([[last.get(name, np.nan)], y[:-1]])
                diff = np.flatnonzero((y != prev) & ~(np.isnan(y) & np.isnan(prev))) + a
                diff = diff[~np.isin(diff, seq_starts)].tolist()  # a new sequence is no change
                if diff:
                    pick = np.linspace(0, len(diff) - 1, min(CHANGES_PER_CHUNK, len(diff)))
                    changes[name].extend(diff[int(i)] for i in pick)
                last[name] = float(y[-1]) if len(y) else last.get(name, np.nan)
                for u, _ in features[name]:
                    h = hist.get((name, u))
                    if h is None:
                        continue
                    key, index = parse_unit(u)
                    v = np.asarray(block[key][:, index], dtype=np.float32)
                    s = stats[key]
                    lo, hi = float(s.min[index]), float(s.max[index])
                    bins = _bins(v, lo, hi)
                    defined = ~np.isnan(y)
                    pos = defined & (y > 0.5)
                    neg = defined & ~pos
                    h[1] += np.bincount(bins[pos], minlength=ROC_BINS)
                    h[0] += np.bincount(bins[neg], minlength=ROC_BINS)
            bar.update(b - a)
    out = {}
    for name in feats:
        thresholds = {}
        for u, sign in features[name]:
            h = hist.get((name, u))
            if h is None:
                continue
            key, index = parse_unit(u)
            s = stats[key]
            thresholds[u] = _youden(u, name, h, float(s.min[index]), float(s.max[index]), sign)
        out[name] = FeatureScan(
            name, kinds.get(name, "continuous"), np.array(changes[name], dtype=np.int64), thresholds
        )
    return out


def _bins(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    width = (hi - lo) / ROC_BINS if hi > lo else 1.0
    return np.clip(((v - lo) / width).astype(np.int64), 0, ROC_BINS - 1)


def _youden(unit: str, feature: str, h: np.ndarray, lo: float, hi: float, sign: int) -> Threshold:
    neg, pos = h[0].astype(np.float64), h[1].astype(np.float64)
    if sign < 0:
        neg, pos = neg[::-1], pos[::-1]
    # "on" = bins from i upwards (in the oriented direction)
    tpr = np.cumsum(pos[::-1])[::-1] / max(pos.sum(), 1.0)
    fpr = np.cumsum(neg[::-1])[::-1] / max(neg.sum(), 1.0)
    best = int(np.argmax(tpr - fpr))
    width = (hi - lo) / ROC_BINS if hi > lo else 0.0
    edge = lo + best * width if sign >= 0 else hi - best * width
    return Threshold(
        unit, feature, float(edge), 1 if sign >= 0 else -1, float(tpr[best]), float(fpr[best])
    )


def pick_changes(changes: np.ndarray, k: int) -> list[int]:
    """``k`` change positions spread evenly over the recording."""
    if len(changes) == 0:
        return []
    idx = np.unique(np.linspace(0, len(changes) - 1, min(k, len(changes))).round().astype(int))
    return [int(changes[i]) for i in idx]


def read_unit(store: ActivationStore, name: str, start: int, stop: int) -> np.ndarray:
    """One unit over ``[start, stop)``, float32."""
    key, index = check_unit(store, name)
    return store.read(key, start, stop, units=[index])[:, 0]


def unit_range(store: ActivationStore, name: str) -> tuple[float, float]:
    """``(min, max)`` of one unit over the whole recording, read window by window."""
    key, index = check_unit(store, name)
    lo, hi = np.inf, -np.inf
    step = store.chunk_positions * 16
    for a in range(0, store.n_positions, step):
        v = store.read(key, a, min(a + step, store.n_positions), units=[index])
        lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    return lo, hi


def unit_scale(store: ActivationStore, name: str) -> Scale:
    """The fixed colour scale of one unit (reads its range when the quantity needs it)."""
    key, _ = check_unit(store, name)
    quantity = key.split("/")[1]
    if quantity in GATES:
        return scale_for(key)
    lo, hi = unit_range(store, name)
    return scale_for(key, max(abs(lo), abs(hi)))


def sample_windows(n: int, n_windows: int = 8, window: int = 2048) -> list[tuple[int, int]]:
    """Evenly spaced, disjoint windows covering at most ``n_windows * window`` positions."""
    if n <= n_windows * window:
        return [(0, n)]
    starts = np.linspace(0, n - window, n_windows).astype(int)
    return [(int(a), int(a) + window) for a in starts]


def sample_values(store: ActivationStore, key: str, windows: list[tuple[int, int]]) -> np.ndarray:
    """Values of every unit of ``key`` over ``windows``, stacked: shape (positions, units)."""
    return np.concatenate([store.read(key, a, b) for a, b in windows])


@dataclass(frozen=True)
class Separator:
    """Every unit's value at one char (the first of its kind in each sequence)."""

    char: str
    key: str
    positions: np.ndarray  # (n_sequences_with_char,)
    groups: list[str]  # group label of each sequence
    values: np.ndarray  # (n_sequences_with_char, n_units)
    group_by: str = "first-char"


def separator_values(
    store: ActivationStore,
    key: str,
    char: str,
    group_by: str = "first-char",
    max_sequences: int = 5000,
) -> Separator:
    """The value of every unit of ``key`` at the first ``char`` of each sequence.

    ``group_by``: ``"first-char"`` (the sequence's first char) or ``"count"`` (N, the number of
    chars before ``char`` in its sequence: for the counter tasks).
    """
    if char not in store.vocab.chars:
        raise UnitError(
            f"char {char!r} does not occur in the recording's vocabulary; give one of "
            f"{''.join(c for c in store.vocab.chars if c.isprintable())!r}"
        )
    if group_by not in ("first-char", "count"):
        raise UnitError(f"group by 'first-char' or 'count', got {group_by!r}")
    code = store.vocab.chars.index(char)
    seqs = store.sequences
    n = store.n_positions
    block = 1 << 16
    found: dict[int, int] = {}
    for a in range(0, n, block):
        toks = store.read_tokens(a, min(n, a + block))
        for p in np.flatnonzero(toks == code) + a:
            i = int(np.searchsorted(seqs[:, 0], p, side="right")) - 1
            if i not in found:
                found[i] = int(p)
        if len(found) >= max_sequences:
            break
    if not found:
        raise UnitError(f"char {char!r} does not occur in {store.path}")
    order = sorted(found)[:max_sequences]
    positions = np.array([found[i] for i in order], dtype=np.int64)
    if group_by == "first-char":
        groups = [store.read_text(int(seqs[i, 0]), int(seqs[i, 0]) + 1) for i in order]
    else:
        groups = [str(int(found[i] - seqs[i, 0])) for i in order]
    chunk = store.chunk_positions
    values = np.empty((len(positions), store.n_units(key)), dtype=np.float32)
    for c in np.unique(positions // chunk):
        a, b = int(c * chunk), int(min(n, (c + 1) * chunk))
        sel = (positions >= a) & (positions < b)
        values[sel] = store.read(key, a, b)[positions[sel] - a]
    return Separator(char, key, positions, groups, values, group_by)


def load_rankings(
    store: ActivationStore,
    path: str | os.PathLike[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Ranking | None:
    """The ranking beside ``store`` (``acts.rankings.json``) or at ``path``, or None.

    The file is read leniently (:meth:`Ranking.read_json`): what an older, newer or partly
    damaged file holds that cannot be used is left out with a warning. A ranking made from
    another recording is ignored with a warning: its ``store`` field names another existing
    file that is not a copy of this recording (same corpus and model hashes, positions and
    datasets), or its ``corpus_sha256`` (when it has one) differs, or it names units this
    recording lacks.
    """
    explicit = path is not None
    path = Path(path) if explicit else store.sibling("rankings.json")
    again = f"`rank_units(store={store.path}, features=FEATURE)`"
    if not path.exists():
        if explicit:
            raise StoreError(f"rankings file {path} does not exist; rank the recording: {again}")
        return None
    try:
        ranking = Ranking.read_json(path, lenient=True, warn=warn)
    except StoreError as exc:
        raise StoreError(f"{exc}; rank the recording again: {again}") from None

    def ignore(why: str) -> None:
        if warn is not None:
            warn(f"ignoring {path}: {why}; rank this recording: {again}")

    origin = Path(ranking.store) if ranking.store else None
    foreign = origin is not None and origin.exists() and not _same_file(origin, store.path)
    if (
        foreign and origin is not None and not _same_recording(origin, store)
    ):  # a copy of this recording is fine
        ignore(f"it ranks {origin}, another recording than {store.path}")
        return None
    digest = ranking.settings.get("corpus_sha256") or ranking.features.get("corpus_sha256")
    if isinstance(digest, str) and digest != store.corpus_sha256:
        ignore("its corpus hash differs from this recording's")
        return None
    units = set()
    for r in ranking.rows:
        units.add(r["unit"])
    for u in units:
        try:
            check_unit(store, u)
        except UnitError:
            ignore(f"it names unit {u}, which this recording lacks")
            return None
    return ranking


def _same_recording(path: Path, store: ActivationStore) -> bool:
    """Whether ``path`` holds a recording of the same model over the same corpus as ``store``."""
    try:
        with ActivationStore(path, require_complete=False) as other:
            return (
                other.corpus_sha256 == store.corpus_sha256
                and other.model_sha256 == store.model_sha256
                and other.n_positions == store.n_positions
                and other.keys == store.keys
            )
    except (StoreError, OSError):
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
