"""What the report reads from a recording: windows, per-unit summaries, spans, separators.

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
from lstmprobe.errors import StoreError, UnitError
from lstmprobe.names import Key
from lstmprobe.probes.ranking import Ranking
from lstmprobe.report.colors import Range, Scale, scale_for
from lstmprobe.store import ActivationStore, parse_unit

#: What receives the report's warnings, one line each (None: they are dropped).
Warn = Callable[[str], None] | None
#: A gate is "left-saturated" below this value and "right-saturated" above 1 - this value
#: (Karpathy, Johnson & Fei-Fei 2015).
SATURATION = 0.1


def open_store(path: str | os.PathLike[str]) -> ActivationStore:
    """Open a complete recording that holds at least one position (else a clear StoreError)."""
    store = ActivationStore(Path(path))
    if store.n_positions == 0 or not store.keys:
        store.close()
        raise StoreError(
            f"{path} holds no positions or no datasets; record a non-empty corpus with "
            "`record_corpus(MODEL, CORPUS, out=PATH)`"
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
            "give a `start` between them"
        )
    stop = n if length is None else start + length
    if length is not None and (length < 1 or stop > n):
        raise StoreError(
            f"span {start}..{stop} is outside the corpus, which has positions 0..{n - 1}; "
            f"use `length={n - start}` or less"
        )
    return start, stop


def default_span(
    store: ActivationStore, start: int, length: int | None, default: int
) -> tuple[int, int]:
    """The span to show: ``length`` chars from ``start`` (checked), or by default up to
    ``default`` chars, fewer where the corpus ends."""
    if length is None and 0 <= start < store.n_positions:
        length = min(default, store.n_positions - start)
    return check_span(store, start, length)


def layer_kind(store: ActivationStore, layer: str) -> str:
    """``"lstm"`` when ``layer`` recorded a cell or a forget gate, else ``"gru"``."""
    have = store.quantities(layer)
    return "lstm" if "cell" in have or "forget_gate" in have else "gru"


def require_quantities(store: ActivationStore, layer: str, wanted: Sequence[str], why: str) -> None:
    """A UnitError naming the ``quantities`` to record when ``layer`` lacks one of ``wanted``."""
    have = store.quantities(layer)
    missing = [q for q in wanted if q not in have]
    if missing:
        raise UnitError(
            f"{why} needs {', '.join(missing)} of {layer}, which {store.path} did not record "
            f"(it has {', '.join(have)}); record again with "
            f"`quantities={','.join(dict.fromkeys([*have, *missing]))}`"
        )


@dataclass(frozen=True)
class KeyStats:
    """Summaries of every unit of one dataset over the whole recording.

    Arrays are of shape (n_units,) unless stated. ``mean``, ``std``, ``min`` and ``max`` are of
    each unit's finite values; ``posinf``, ``neginf`` and ``nan`` count its others (a float16
    recording stores values beyond ±65,504 as ±inf). ``low``/``high`` are the fractions of
    positions below :data:`SATURATION` / above ``1 - SATURATION`` (gates only; zero elsewhere);
    ``chunk_max`` and ``chunk_min`` (shape (n_chunks, n_units)) hold each unit's largest and
    smallest value in each chunk of ``chunk`` positions, from which the top-activating spans are
    picked (:func:`top_spans`); ``abs_hist`` (shape (N_BINS, n_units)) counts each unit's
    ``|value|`` in log-spaced bins (not for gates), from which its percentile ranges are read.
    """

    key: str
    count: int
    mean: np.ndarray
    std: np.ndarray
    min: np.ndarray
    max: np.ndarray
    low: np.ndarray
    high: np.ndarray
    posinf: np.ndarray
    neginf: np.ndarray
    nan: np.ndarray
    chunk: int
    chunk_max: np.ndarray = field(repr=False)
    chunk_min: np.ndarray = field(repr=False)
    abs_hist: np.ndarray | None = field(default=None, repr=False)

    @property
    def max_abs(self) -> np.ndarray:
        """Each unit's largest finite ``|value|`` (0 where it has none)."""
        with np.errstate(invalid="ignore"):
            m = np.maximum(np.abs(self.min), np.abs(self.max))
        return np.where(np.isfinite(m), m, 0.0)

    @property
    def nonfinite(self) -> np.ndarray:
        """Each unit's count of ±inf and NaN values."""
        return self.posinf + self.neginf + self.nan

    def level(self, index: int, percentile: float) -> tuple[float, float] | None:
        """Unit ``index``'s ``percentile`` of ``|value|`` over the recording, of its negative
        values and of the others (from its bins, at most one bin -- 6.25% -- above the exact
        value), None without bins."""
        from lstmprobe.report._sweep import level

        if self.abs_hist is None:
            return None
        lo, hi = float(self.min[index]), float(self.max[index])
        return level(self.abs_hist[:, index], percentile, lo, hi)

    def scale(self, index: int, rng: Range | str | None = None) -> Scale:
        """The fixed colour scale of unit ``index`` (``rng``: how its range is chosen)."""
        rng = Range.parse(rng)
        at = self.level(index, rng.percentile) if rng.how == "percentile" else None
        return scale_for(self.key, float(self.max_abs[index]), rng=rng, level=at)


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
    from lstmprobe.report._sweep import N_BINS, sweep

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
            "hist": np.zeros((2 * N_BINS, u), dtype=np.int64),
            **{name: np.zeros(u, dtype=np.int64) for name in ("posinf", "neginf", "nan")},
        }
    with _bar(n, progress, "summaries") as bar:
        for c, (a, b, block) in enumerate(store.iter_chunks(keys, chunk_size=chunk, dtype=None)):
            for key, raw in block.items():
                s = acc[key]
                gate = Key.parse(key).is_gate
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
                    (s["posinf"], s["neginf"], s["nan"]),
                    s["hist"],
                )
            bar.update(b - a)
    out = {}
    for key, s in acc.items():
        finite = n - s["posinf"] - s["neginf"] - s["nan"]
        with np.errstate(invalid="ignore", divide="ignore"):  # no finite value: NaN
            mean = np.where(finite > 0, s["sum"] / finite, np.nan)
            std = np.sqrt(np.maximum(s["sq"] / finite - mean**2, 0.0))
        out[key] = KeyStats(
            key, n, mean, std, s["cmin"].min(0), s["cmax"].max(0), s["low"] / n, s["high"] / n,
            s["posinf"], s["neginf"], s["nan"], chunk, s["cmax"], s["cmin"],
            None if Key.parse(key).is_gate else s["hist"],
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


def read_unit(store: ActivationStore, name: str, start: int, stop: int) -> np.ndarray:
    """One unit over ``[start, stop)``, float32."""
    key, index = check_unit(store, name)
    return store.read(key, start, stop, units=[index])[:, 0]


def unit_range(store: ActivationStore, name: str) -> tuple[float, float]:
    """``(min, max)`` of one unit's finite values over the whole recording, read window by
    window (``(inf, -inf)`` where it has none)."""
    return _unit_pass(store, name)[:2]


def _unit_pass(store: ActivationStore, name: str) -> tuple[float, float, np.ndarray]:
    """``(min, max, bins)`` of one unit's finite values over the whole recording, read window
    by window; ``bins`` counts their ``|value|`` per bin
    (:func:`~lstmprobe.report._sweep.abs_bins`)."""
    from lstmprobe.report._sweep import N_BINS, abs_bins

    key, index = check_unit(store, name)
    lo, hi = np.inf, -np.inf
    hist = np.zeros(2 * N_BINS, dtype=np.int64)
    step = store.chunk_positions * 16
    for a in range(0, store.n_positions, step):
        v = store.read(key, a, min(a + step, store.n_positions), units=[index])[:, 0]
        v = v[np.isfinite(v)]
        if v.size:
            lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
            hist += np.bincount(abs_bins(v), minlength=2 * N_BINS)
    return lo, hi, hist


def unit_scale(store: ActivationStore, name: str, rng: Range | str | None = None) -> Scale:
    """The fixed colour scale of one unit (reads its values when the quantity needs it);
    ``rng``: how its range is chosen (default ``p99``, :class:`~lstmprobe.report.colors.Range`)."""
    from lstmprobe.report._sweep import level

    rng = Range.parse(rng)
    key, _ = check_unit(store, name)
    if Key.parse(key).is_gate or rng.how == "given":
        return scale_for(key, rng=rng)
    lo, hi, hist = _unit_pass(store, name)
    max_abs = max(abs(lo), abs(hi)) if lo <= hi else None
    at = level(hist, rng.percentile, lo, hi) if rng.how == "percentile" and lo <= hi else None
    return scale_for(key, max_abs, rng=rng, level=at)


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

    ``group_by``: ``"first-char"`` (the sequence's first char), ``"count"`` (N, the number of
    chars before ``char`` in its sequence), or a feature spec: its value at the separator
    (``count:a`` -- the selective counter's N, X's not counted --, ``first-char:b``,
    ``seq-length``; ``undefined`` where it is NaN).
    """
    if char not in store.vocab.chars:
        raise UnitError(
            f"char {char!r} does not occur in the recording's vocabulary; give one of "
            f"{''.join(c for c in store.vocab.chars if c.isprintable())!r}"
        )
    feature = None
    if group_by not in ("first-char", "count"):
        from lstmprobe.features import get_feature

        feature = get_feature(group_by)
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
    if feature is not None:
        from lstmprobe.features.stream import TextReader, feature_windows

        at = feature_windows(
            feature,
            TextReader(store.read_text, n),
            n,
            seqs,
            [(int(p), int(p) + 1) for p in positions],
        )
        groups = [_group_label(float(v[0])) for v in at]
    elif group_by == "first-char":
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


def _group_label(value: float) -> str:
    return "undefined" if np.isnan(value) else f"{value:g}"


def load_rankings(
    store: ActivationStore,
    path: str | os.PathLike[str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Ranking | None:
    """The ranking beside ``store`` (``acts.rankings.json``) or at ``path``, or None.

    The file is read leniently (:meth:`Ranking.read_json`): what an older, newer or partly
    damaged file holds that cannot be used is left out with a warning, and the file beside the
    store that cannot be read at all (not JSON, not a rankings file) is ignored with a warning
    (one named by ``path`` is a :class:`StoreError`). A ranking made from
    another recording is ignored with a warning: its ``store`` field names another existing
    file that is not a copy of this recording (same corpus and model hashes, positions and
    datasets), or the recording it names (``Ranking.recording``: corpus and model hashes,
    positions) is not this one, or it names units this recording lacks.
    """
    explicit = path is not None
    path = Path(path) if explicit else store.recording.rankings
    again = f"`rank_units(store={store.path}, features=FEATURE)`"
    if not path.exists():
        if explicit:
            raise StoreError(f"rankings file {path} does not exist; rank the recording: {again}")
        return None

    def ignore(why: str) -> None:
        if warn is not None:
            warn(f"ignoring {path}: {why}; rank this recording: {again}")

    try:
        ranking = Ranking.read_json(path, lenient=True, warn=warn)
    except StoreError as exc:
        if explicit:  # asked for by name: one line
            raise StoreError(f"{exc}; rank the recording again: {again}") from None
        ignore(f"it cannot be used ({str(exc).removeprefix('rankings file ')})")
        return None

    origin = Path(ranking.store) if ranking.store else None
    foreign = origin is not None and origin.exists() and not _same_file(origin, store.path)
    if (
        foreign and origin is not None and not _same_recording(origin, store)
    ):  # a copy of this recording is fine
        ignore(f"it ranks {origin}, another recording than {store.path}")
        return None
    ours = {
        "corpus_sha256": (store.corpus_sha256, "of another corpus"),
        "model_sha256": (store.model_sha256, "of another model"),
        "positions": (store.n_positions, "of another length"),
    }
    for name, (value, what) in ours.items():
        theirs = ranking.recording.get(name)
        if theirs is not None and theirs != value:
            ignore(f"it ranks a recording {what}")
            return None
    for u in sorted({r.name for r in ranking.rows}):
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
