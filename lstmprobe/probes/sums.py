"""The scoring pass's sums over a span of positions, and their exact merge.

:func:`~lstmprobe.probes.unit_scores` counts every unit against the label patterns in one pass
over the store (:class:`~lstmprobe.probes._kernels.Accumulator`: joint histograms and moment
sums). Those are sums over positions, so a pass can be cut into spans counted apart -- on other
processes or machines (:mod:`lstmprobe.distributed`) -- and merged: :func:`add_span` counts one
span into fresh accumulators, :func:`span_sums` turns them into a small :class:`SpanSums` value,
and :func:`merge` adds counts exactly and merges the moments the Chan way (a span's mean and
sum of squared deviations, never raw sums of squares). :func:`merged_accumulators` gives the
accumulators the scores are finished from.

The spans must start on the pass's window grid (:func:`windows`): the compiled sweep sums the
moments of SUM_ROWS rows in float32 before it adds them into float64, and spans on the grid make
the same float32 sums as one pass, so that a merge differs from it by float64 rounding only.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from lstmprobe.probes._kernels import Accumulator, Sweeper

if TYPE_CHECKING:
    from lstmprobe.store import ActivationStore

#: Rows of HDF5 chunks per window of the scoring pass: each block of units is counted over
#: all of them in one task, so its histograms stay in cache from one chunk row to the next
#: (docs/probes.md has the measurements). Fewer where a window would take more
#: than WINDOW_BYTES (two windows are mapped at a time).
WINDOW_CHUNK_ROWS = 8
WINDOW_BYTES = 64 << 20

Blocks = Generator[tuple[int, int, dict[str, list[tuple[int, np.ndarray]]]], None, None]


@dataclass(frozen=True, eq=False)
class ScorePlan:
    """What every span of one scoring pass is counted with.

    ``groups`` are the label-pattern groups (each pattern's codes, :class:`.scores`), ``weighted``
    the features of each group whose exact labels are summed against the units, ``lo`` and
    ``scale`` each unit's histogram range (per dataset), ``n_bins`` the bins per unit.
    """

    keys: tuple[str, ...]
    n_patterns: tuple[int, ...]  # per group
    weighted: tuple[tuple[int, ...], ...]  # per group: indices into the active labels
    lo: dict[str, np.ndarray]
    scale: dict[str, np.ndarray]
    n_bins: int

    def accumulators(self) -> dict[str, list[Accumulator]]:
        """Empty accumulators: one per dataset and group."""
        return {
            k: [
                Accumulator(self.lo[k], self.scale[k], p, len(w), self.n_bins)
                for p, w in zip(self.n_patterns, self.weighted)
            ]
            for k in self.keys
        }


def window_rows(store: ActivationStore, keys: Sequence[str], chunk_size: int | None) -> int:
    """Positions per window of the scoring pass over ``keys`` (:func:`windows`)."""
    if chunk_size is None and store.compression is None:
        itemsize = np.dtype(store.dtype).itemsize
        row_bytes = store.chunk_positions * sum(store.n_units(k) for k in keys) * itemsize
        return store.chunk_positions * _chunk_rows(row_bytes)
    return chunk_size or store.chunk_positions


def _chunk_rows(row_bytes: int) -> int:
    return max(1, min(WINDOW_CHUNK_ROWS, WINDOW_BYTES // max(1, row_bytes)))


def windows(
    store: ActivationStore,
    keys: Sequence[str],
    chunk_size: int | None,
    start: int = 0,
    stop: int | None = None,
) -> tuple[Blocks, list[tuple[int, int]]]:
    """The windows of the scoring pass over ``[start, stop)`` (each dataset as blocks of
    columns) and their spans; ``start`` must be a multiple of :func:`window_rows`."""
    n = store.n_positions if stop is None else stop
    rows = window_rows(store, keys, chunk_size)
    spans = [(a, min(n, a + rows)) for a in range(start, n, rows)]
    if chunk_size is None and store.compression is None:
        # a generator: closing it releases the mapped pages
        blocks = store.iter_blocks(keys, start, n, chunk_rows=rows // store.chunk_positions)
        return cast("Blocks", blocks), spans
    # compressed (or an explicit window size): h5py decompresses the next window meanwhile
    chunks = store.iter_chunks(keys, rows, start, n, dtype=None, read_ahead=True)
    return ((a, b, {k: [(0, x)] for k, x in c.items()}) for a, b, c in chunks), spans


def weights(values: Sequence[np.ndarray], weighted: Sequence[int], rows: int) -> np.ndarray:
    """The exact labels a group sums against the units, (rows, len(weighted)) float64, 0 where
    undefined."""
    w = np.zeros((rows, len(weighted)))
    for col, i in enumerate(weighted):
        w[:, col] = np.nan_to_num(values[i], nan=0.0)
    return w


def add_window(
    sweeper: Sweeper,
    acc: dict[str, list[Accumulator]],
    window: dict[str, list[tuple[int, np.ndarray]]],
    ids: Sequence[np.ndarray],
    w: Sequence[np.ndarray],
) -> Callable[[], None]:
    """Start counting one window (``ids`` and ``w``: each group's pattern ids and weights) into
    ``acc``; returns the function that waits for it."""
    pieces: dict[str, dict[int, list[np.ndarray]]] = {k: {} for k in acc}
    for k in acc:
        for first, x in window[k]:
            pieces[k].setdefault(first, []).append(x)
    jobs = [
        (acc[k][j], xs, ids[j], w[j], first)
        for j in range(len(ids))
        for k in acc
        for first, xs in pieces[k].items()
    ]
    return sweeper.accumulate_all(jobs, wait=False)


def add_span(
    store: ActivationStore,
    plan: ScorePlan,
    start: int,
    stop: int,
    ids: Sequence[np.ndarray],
    w: Sequence[np.ndarray],
    *,
    chunk_size: int | None = None,
    threads: int | None = 1,
) -> dict[str, list[Accumulator]]:
    """Count positions ``[start, stop)`` of ``store`` into fresh accumulators, window by window
    as the one-process pass does; ``ids[j]`` (int32) and ``w[j]`` (float64, one row per
    position) are group ``j``'s pattern ids and weights over the span."""
    acc = plan.accumulators()
    blocks, _ = windows(store, plan.keys, chunk_size, start, stop)
    sweeper = Sweeper(threads)
    try:
        pending: Callable[[], None] = lambda: None  # noqa: E731
        for a, b, window in blocks:
            cut = slice(a - start, b - start)
            pending()
            pending = add_window(sweeper, acc, window, [i[cut] for i in ids], [x[cut] for x in w])
        pending()
    finally:
        sweeper.close()
        blocks.close()
    return acc


@dataclass(frozen=True, eq=False)
class Moments:
    """Per pattern and unit: the count, the mean and the sum of squared deviations (M2) of the
    centred bin positions that an accumulator sums (``s1``, ``s2``), in float64."""

    n: np.ndarray  # (P,) int64
    mean: np.ndarray  # (P, units)
    m2: np.ndarray  # (P, units)

    @classmethod
    def of(cls, n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> Moments:
        count = np.asarray(n, dtype=np.int64)
        safe = np.maximum(count, 1).astype(np.float64)[:, None]
        with np.errstate(invalid="ignore", over="ignore"):
            mean = np.where(count[:, None] > 0, s1 / safe, 0.0)
            m2 = np.where(count[:, None] > 0, s2 - s1 * mean, 0.0)
        return cls(count, mean, m2)

    def merge(self, other: Moments) -> Moments:
        """Chan, Golub and LeVeque's pairwise update: exact up to float64 rounding."""
        n = self.n + other.n
        na = self.n.astype(np.float64)[:, None]
        nb = other.n.astype(np.float64)[:, None]
        total = np.maximum(n, 1).astype(np.float64)[:, None]
        with np.errstate(invalid="ignore", over="ignore"):
            delta = other.mean - self.mean
            mean = self.mean + delta * (nb / total)
            m2 = self.m2 + other.m2 + delta * delta * (na * nb / total)
        return Moments(n, mean, m2)

    def sums(self) -> tuple[np.ndarray, np.ndarray]:
        """The raw sums (``s1``, ``s2``) the scores are finished from."""
        n = self.n.astype(np.float64)[:, None]
        with np.errstate(invalid="ignore", over="ignore"):
            return n * self.mean, self.m2 + n * self.mean * self.mean


@dataclass(frozen=True, eq=False)
class SpanSums:
    """One accumulator's sums over a span: its counts (units, P, bins) uint32, its moments and
    its label-weighted sums (W, units)."""

    counts: np.ndarray
    moments: Moments
    sw: np.ndarray

    @classmethod
    def of(cls, acc: Accumulator) -> SpanSums:
        counts = acc.hist  # settles the 16-bit counts
        n = counts[0].sum(axis=1, dtype=np.int64) if len(counts) else np.zeros(acc.n_patterns)
        return cls(counts.copy(), Moments.of(n, acc.s1, acc.s2), acc.sw.copy())

    def merge(self, other: SpanSums) -> SpanSums:
        counts = self.counts.astype(np.uint64) + other.counts
        if counts.size and counts.max() > np.iinfo(np.uint32).max:
            raise OverflowError("a histogram cell counts more than 2**32 - 1 positions")
        return SpanSums(
            counts.astype(np.uint32), self.moments.merge(other.moments), self.sw + other.sw
        )


def span_sums(acc: dict[str, list[Accumulator]]) -> dict[str, list[SpanSums]]:
    """The sums of a span's accumulators, small enough to send to another process."""
    return {k: [SpanSums.of(a) for a in accs] for k, accs in acc.items()}


def merge(parts: Sequence[dict[str, list[SpanSums]]]) -> dict[str, list[SpanSums]]:
    """Merge the sums of spans (in order): counts added exactly, moments the Chan way."""
    if not parts:
        raise ValueError("nothing to merge")
    out = parts[0]
    for part in parts[1:]:
        out = {k: [a.merge(b) for a, b in zip(out[k], part[k])] for k in out}
    return out


def merged_accumulators(
    plan: ScorePlan, sums: dict[str, list[SpanSums]]
) -> dict[str, list[Accumulator]]:
    """Accumulators holding merged sums, to finish the scores from."""
    acc = plan.accumulators()
    for k, accs in acc.items():
        for a, s in zip(accs, sums[k]):
            a.totals[...] = s.counts
            a.s1[...], a.s2[...] = s.moments.sums()
            a.sw[...] = s.sw
    return acc


def merge_tree(submit: Callable[..., Any], parts: list[Any], fan_in: int = 2) -> Any:
    """Merge ``parts`` (results or futures of them) ``fan_in`` at a time with
    ``submit(merge_many, *group)``, level by level, in order; returns the last result.

    Pairs by default: a span's sums of a large recording are big (a 3x1024 LSTM's histograms
    for 32 label patterns: 600 MB, docs/scale-out.md), and a merge holds its inputs and its
    result at once."""
    while len(parts) > 1:
        parts = [
            submit(merge_many, *parts[i : i + fan_in])
            if len(parts[i : i + fan_in]) > 1
            else parts[i]
            for i in range(0, len(parts), fan_in)
        ]
    return parts[0]


def merge_many(*parts: dict[str, list[SpanSums]]) -> dict[str, list[SpanSums]]:
    """:func:`merge` of its arguments (a task of :func:`merge_tree`)."""
    return merge(parts)
