"""Compiled inner loop of the per-unit scores: joint histograms and moment sums in one sweep.

:meth:`Sweeper.accumulate` adds one window of one dataset into a key's accumulators. For each value it
computes the unit's histogram bin, counts it against the position's label pattern, and adds the
centred value (and its square) to that pattern's sums, plus value x label for the features whose
exact labels are needed (continuous features with more distinct values than label bins).
:func:`reference_accumulate` computes the same in NumPy, the obvious way; tests hold the two
equal.

The loops are compiled with numba (``nogil``) and parallelised here with threads over blocks of
units, so no two threads ever write the same accumulator and the kernels may be called from any
thread. Float16 stores are read as their raw 16-bit patterns and converted in the loop by the
CPU's half-precision instruction (:mod:`lstmprobe._float16`), so no float32 copy of the window is
made. Per row of a tile one pass computes each value's bin, its (pattern, bin) cell and the
moment sums; the cells are then counted unit by unit. The statistics computed from the counts
are in :mod:`lstmprobe.probes._joint`. docs/probes.md has the measurements.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import numpy as np
from numba import njit

from lstmprobe._float16 import decode_exact as _exact
from lstmprobe._float16 import decode_finite as _finite
from lstmprobe._float16 import kernel_view as _raw
from lstmprobe._float16 import reference_decode
from lstmprobe.probes._joint import joint_stats

#: Units one task covers, and positions per tile (the tile's 16-bit count cells, 1 MiB, stay in
#: L2); tuned on the benchmark store (docs/probes.md).
UNIT_BLOCK = 128
ROW_BLOCK = 4096
#: Units per task of :meth:`Sweeper.joint_stats`.
JOINT_UNITS = 32
#: Positions summed in the float32 moment sums before they are added to the float64 totals,
#: independent of ROW_BLOCK so the moments' rounding does not grow with the tile.
SUM_ROWS = 512


@njit(nogil=True, cache=True)
def _min_max(x, lo, hi):  # type: ignore[no-untyped-def]
    """Lower ``lo`` and raise ``hi`` (per unit) to the finite values of a window."""
    big = np.float32(np.inf)
    for t in range(x.shape[0]):
        row = x[t]
        for j in range(x.shape[1]):
            v = _exact(row[j])  # pyright: ignore[reportCallIssue]
            finite = -big < v < big  # false for NaN
            lo[j] = v if finite and v < lo[j] else lo[j]
            hi[j] = v if finite and v > hi[j] else hi[j]


def finite_range(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """Lower ``lo`` and raise ``hi`` (float32, one per unit) to the finite values of ``x``
    (positions x units, float16 or float32), NaN and inf skipped; no float32 copy is made.

    Examples
    --------
    >>> lo, hi = np.full(2, np.inf, np.float32), np.full(2, -np.inf, np.float32)
    >>> finite_range(np.array([[1, np.nan], [-2, np.inf], [0, 3]], np.float16), lo, hi)
    >>> lo.tolist(), hi.tolist()
    ([-2.0, 3.0], [1.0, 3.0])
    """
    _min_max(_raw(x), lo, hi)


class Piece(NamedTuple):
    """One piece of a window as the compiled sweep takes it."""

    x: np.ndarray  # (rows, units) float32, or float16 as its bits (uint16)
    ids: np.ndarray  # (rows,) int32: each position's label pattern
    weights: np.ndarray  # (rows, W) float64: exact labels multiplied into ``sw``


class Sums(NamedTuple):
    """An :class:`Accumulator`'s arrays as the compiled sweep takes them (see there)."""

    lo: np.ndarray
    scale: np.ndarray
    recent: np.ndarray
    since: np.ndarray
    totals: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    sw: np.ndarray


@njit(nogil=True, cache=True)
def _weigh(piece, acc, a, x0, r0, rows, crow):  # type: ignore[no-untyped-def]
    """Add label x centred value into ``acc.sw`` for rows ``[r0, r0 + rows)`` of ``piece``,
    units ``a`` .. ``a + len(crow)`` (``piece.x``'s column 0 is unit ``x0``).

    Apart from the fused row pass, so that pass stays as small as it is without weights.
    ``crow`` is scratch space.
    """
    width = crow.shape[0]
    half = np.float32(acc.recent.shape[2] / 2)
    lo, scale = acc.lo[a : a + width], acc.scale[a : a + width]
    for t in range(r0, r0 + rows):
        src = piece.x[t, a - x0 : a - x0 + width]
        for jj in range(width):
            crow[jj] = (_finite(src[jj]) - lo[jj]) * scale[jj] - half  # pyright: ignore[reportCallIssue]
        for f in range(piece.weights.shape[1]):
            wt = piece.weights[t, f]
            out = acc.sw[f, a : a + width]
            for jj in range(width):
                out[jj] += wt * crow[jj]


@njit(nogil=True, cache=True)
def _count(cells, a, hist):  # type: ignore[no-untyped-def]
    """Count a tile's cells (rows x units: flat (pattern, bin) offsets) into units a.. of hist.

    Four units at a time: four independent tables in cache, so runs of equal bins (activations
    change slowly) do not serialise the increments.
    """
    rows, width = cells.shape
    flat = hist.reshape(hist.shape[0], -1)
    jj = 0
    while jj + 4 <= width:
        f0, f1, f2, f3 = flat[a + jj], flat[a + jj + 1], flat[a + jj + 2], flat[a + jj + 3]
        for tt in range(rows):
            c = cells[tt]
            f0[c[jj]] += 1
            f1[c[jj + 1]] += 1
            f2[c[jj + 2]] += 1
            f3[c[jj + 3]] += 1
        jj += 4
    while jj < width:
        f0 = flat[a + jj]
        for tt in range(rows):
            f0[cells[tt, jj]] += 1
        jj += 1


#: Positions a 16-bit count cell may hold.
CELL_MAX = (1 << 16) - 1


@njit(nogil=True, cache=True)
def _settle(recent, since, totals, a, e):  # type: ignore[no-untyped-def]
    """Add units ``[a, e)`` of the 16-bit counts ``recent`` into ``totals`` and clear them."""
    for j in range(a, e):
        src, out = recent[j].reshape(-1), totals[j].reshape(-1)
        for i in range(src.shape[0]):
            out[i] += src[i]
            src[i] = 0
        since[j] = 0


@njit(nogil=True, cache=True)
def _sweep(piece, acc, a, e, x0, rblk):  # type: ignore[no-untyped-def]
    """Add units ``[a, e)`` of a window :class:`Piece` (whose column 0 is unit ``x0``) into
    the :class:`Sums` ``acc``, in tiles of ``rblk`` rows.

    Numba compiles it once per window type (float32, or float16 bits), with the conversion
    inlined. Per row one loop over the units computes the bin position z, the centred sums
    into the pattern's float32 moment sums ``m1``, ``m2`` (added to the float64 totals every
    SUM_ROWS rows), and the flat (pattern, bin) cell (NaN and values below the sampled range go
    to bin 0, values above it to the top bin). The tile's cells are then counted, their rows
    grouped by pattern (a counting sort of the rows, stable): while one pattern's rows are
    counted only its histogram lines are in use, which keeps them in L1.

    The counts go to 16-bit cells (``acc.recent``: half the cache lines of 32-bit ones), which
    are added to the 32-bit ``acc.totals`` before they could overflow: ``acc.since`` holds the
    positions each unit has counted in ``recent`` since.
    """
    x, ids = piece.x, piece.ids
    n, width = x.shape[0], e - a
    n_pat, nb = acc.s1.shape[0], acc.recent.shape[2]
    top = np.float32(nb - 1)
    half = np.float32(nb / 2)
    m1 = np.zeros((n_pat, width), dtype=np.float32)
    m2 = np.zeros((n_pat, width), dtype=np.float32)
    cells = np.empty((min(rblk, n), width), dtype=np.uint16)
    crow = np.empty(width, dtype=np.float32)
    lo, scale = acc.lo[a:e], acc.scale[a:e]
    slot = np.empty(n_pat, dtype=np.int64)
    for r0 in range(0, n, rblk):
        rows = min(n, r0 + rblk) - r0
        # each pattern's first cell row: the rows' cells are stored grouped by pattern
        slot[:] = 0
        for tt in range(rows):
            slot[ids[r0 + tt]] += 1
        first = 0
        for p in range(n_pat):
            first, slot[p] = first + slot[p], first
        for s0 in range(0, rows, SUM_ROWS):
            for tt in range(s0, min(rows, s0 + SUM_ROWS)):
                p = ids[r0 + tt]
                src, out, q1, q2 = x[r0 + tt, a - x0 : e - x0], cells[slot[p]], m1[p], m2[p]
                slot[p] += 1
                base = np.uint16(p * nb)
                for jj in range(width):
                    v = (_finite(src[jj]) - lo[jj]) * scale[jj]  # pyright: ignore[reportCallIssue]
                    c = v - half
                    q1[jj] += c
                    q2[jj] += c * c
                    # as max / min instructions (NaN -> 0: the comparisons are false)
                    v = v if v > 0.0 else np.float32(0.0)
                    v = v if v < top else top
                    out[jj] = base + np.uint16(v)
            for p in range(n_pat):
                o1, o2 = acc.s1[p, a:e], acc.s2[p, a:e]
                for jj in range(width):
                    o1[jj] += m1[p, jj]
                    o2[jj] += m2[p, jj]
                    m1[p, jj] = 0.0
                    m2[p, jj] = 0.0
        if piece.weights.shape[1]:
            _weigh(piece, acc, a, x0, r0, rows, crow)
        if acc.since[a:e].max() + rows > CELL_MAX:
            _settle(acc.recent, acc.since, acc.totals, a, e)
        _count(cells[:rows], a, acc.recent)
        acc.since[a:e] += rows


def reference_accumulate(
    x: np.ndarray,
    ids: np.ndarray,
    weights: np.ndarray,
    lo: np.ndarray,
    scale: np.ndarray,
    n_patterns: int,
    n_bins: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What :meth:`Sweeper.accumulate` adds for window ``x`` to an empty accumulator, written
    the obvious way in NumPy (float64 sums): (hist, s1, s2, sw), shaped as the
    :class:`Accumulator`'s. Slow; for tests and for reading what the sweep computes.

    Examples
    --------
    >>> x = np.array([[0.1], [0.9], [0.6]], np.float32)
    >>> hist, s1, s2, sw = reference_accumulate(
    ...     x, np.array([0, 1, 1]), np.ones((3, 1)), np.zeros(1, np.float32),
    ...     np.full(1, 4, np.float32), 2, 4)
    >>> hist[0].tolist()
    [[1, 0, 0, 0], [0, 0, 1, 1]]
    """
    if x.dtype == np.float16:  # non-finite float16 values count as +-65504
        v = reference_decode(x.view(np.uint16), finite=True)
    else:
        v = np.asarray(x, dtype=np.float32)
    z = ((v - lo) * scale).astype(np.float32).astype(np.float64)  # the sweep's float32 z
    c = z - n_bins / 2
    with np.errstate(invalid="ignore"):
        bins = np.where(z > 0, np.minimum(z, n_bins - 1), 0).astype(np.int64)
    units = x.shape[1]
    hist = np.zeros((units, n_patterns, n_bins), dtype=np.uint32)
    for j in range(units):
        np.add.at(hist[j], (ids, bins[:, j]), 1)
    s1 = np.zeros((n_patterns, units))
    s2 = np.zeros((n_patterns, units))
    np.add.at(s1, ids, c)
    np.add.at(s2, ids, c * c)
    return hist, s1, s2, weights.T @ c


@dataclass
class Accumulator:
    """Joint histograms and moment sums of one dataset's units against P label patterns.

    ``lo`` and ``scale`` map a unit's value v to its bin position z = (v - lo) * scale in
    [0, n_bins); moments are of the centred z - n_bins / 2. The sweep counts into 16-bit cells
    and adds them to 32-bit totals before they could overflow; :attr:`hist` (uint32) adds the
    rest when read, so read it only while no sweep runs on this accumulator. One (unit,
    pattern, bin) cell counts at most 2**32 - 1 positions. The sweep indexes a unit's
    (pattern, bin) cells with 16 bits, so ``n_patterns * n_bins`` is at most 65536.
    """

    lo: np.ndarray  # (units,) float32
    scale: np.ndarray  # (units,) float32
    n_patterns: int
    n_weights: int
    n_bins: int
    recent: np.ndarray = field(init=False, repr=False)  # (units, P, bins) uint16: counts since ...
    since: np.ndarray = field(init=False, repr=False)  # (units,) int64: ... this many positions
    totals: np.ndarray = field(init=False, repr=False)  # (units, P, bins) uint32: counts before
    s1: np.ndarray = field(init=False)  # (P, units) float64: sum of centred z
    s2: np.ndarray = field(init=False)  # (P, units) float64: sum of its square
    sw: np.ndarray = field(init=False)  # (W, units) float64: sum of label x centred z

    #: Bytes per (unit, pattern, bin) cell.
    CELL_BYTES = 6

    def __post_init__(self) -> None:
        if self.n_patterns * self.n_bins > 1 << 16:
            raise ValueError(
                f"{self.n_patterns} patterns x {self.n_bins} bins exceed the 65536 cells per unit"
            )
        u = len(self.lo)
        self.lo = np.ascontiguousarray(self.lo, dtype=np.float32)
        self.scale = np.ascontiguousarray(self.scale, dtype=np.float32)
        shape = (u, self.n_patterns, self.n_bins)
        self.recent = np.zeros(shape, dtype=np.uint16)
        self.since = np.zeros(u, dtype=np.int64)
        self.totals = np.zeros(shape, dtype=np.uint32)
        self.s1 = np.zeros((self.n_patterns, u))
        self.s2 = np.zeros((self.n_patterns, u))
        self.sw = np.zeros((self.n_weights, u))

    def sums(self) -> Sums:
        """The arrays, as the compiled sweep takes them."""
        return Sums(
            self.lo, self.scale, self.recent, self.since, self.totals, self.s1, self.s2, self.sw
        )

    @property
    def hist(self) -> np.ndarray:
        """Every count, (units, P, bins) uint32."""
        if self.since.any():
            _settle(self.recent, self.since, self.totals, 0, len(self.since))
        return self.totals


def _sweep_parts(pieces: list[Piece], acc: Sums, a: int, e: int, x0: int, rblk: int) -> None:
    """:func:`_sweep` of units ``[a, e)`` over the pieces of a window."""
    for piece in pieces:
        _sweep(piece, acc, a, e, x0, rblk)


def _run_all(tasks: Iterable[Callable[[], None]]) -> None:
    for task in tasks:
        task()


def _nothing() -> None:
    return None


class Sweeper:
    """Runs the sweep kernel (``_sweep``) over blocks of units on a small thread pool, for
    :meth:`accumulate` and :meth:`accumulate_all` (``with`` closes it)."""

    def __init__(self, threads: int | None = None) -> None:
        if threads is None:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        self.threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def accumulate(
        self,
        acc: Accumulator,
        x: np.ndarray,
        ids: np.ndarray,
        weights: np.ndarray,
        first: int = 0,
    ) -> None:
        """Add a window ``x`` (positions x units, float16 or float32) into ``acc``.

        ``ids`` (int32, one per position) is each position's label pattern and ``weights``
        (float64, positions x W) the exact labels multiplied into ``acc.sw``; ``x`` holds the
        accumulator's units ``first`` .. ``first + x.shape[1]`` (a block of columns).
        """
        self.accumulate_all([(acc, x, ids, weights, first)])

    def accumulate_all(
        self,
        jobs: Sequence[
            tuple[Accumulator, np.ndarray | Sequence[np.ndarray], np.ndarray, np.ndarray, int]
        ],
        wait: bool = True,
    ) -> Callable[[], None]:
        """:meth:`accumulate` for several (acc, x, ids, weights, first) at once: all their unit
        blocks share the pool, so threads wait once per window, not once per dataset.

        ``x`` may also be a list of pieces of the window, one after the other in rows (the
        chunk rows of a window of :meth:`ActivationStore.iter_blocks`): one task then counts a
        block of units over all of them, so its counts stay in cache from piece to piece.
        ``wait=False`` returns at once with a function that waits for the jobs (call it before
        adding to the same accumulators again): the caller can prepare its next window
        meanwhile. With ``wait=True`` the returned function does nothing."""
        tasks: list[Callable[[], None]] = []
        rblk = min(ROW_BLOCK, CELL_MAX)  # a tile's counts must fit the 16-bit cells
        pieces = [[x] if isinstance(x, np.ndarray) else list(x) for _, x, _, _, _ in jobs]
        # blocks of at most UNIT_BLOCK units, narrower only where all the jobs together have too
        # few units to give every thread work (so 6 keys of 128 units on 2 threads keep their
        # full-width blocks), and of equal width within a job
        total = sum(xs[0].shape[1] for xs in pieces)
        widest = max(1, min(UNIT_BLOCK, -(-total // self.threads)))
        for (acc, _, ids, weights, first), xs in zip(jobs, pieces):
            u = xs[0].shape[1]
            ids = np.ascontiguousarray(ids, dtype=np.int32)
            weights = np.ascontiguousarray(weights, dtype=np.float64)
            sums = acc.sums()
            parts, r = [], 0
            for x in xs:
                parts.append(Piece(_raw(x), ids[r : r + len(x)], weights[r : r + len(x)]))
                r += len(x)
            if r != len(ids):
                raise ValueError(f"the window has {r} rows but {len(ids)} pattern ids")
            block = max(1, -(-u // max(1, -(-u // widest))))
            for a in range(first, first + u, block):
                end = min(first + u, a + block)
                tasks.append(partial(_sweep_parts, parts, sums, a, end, first, rblk))
        return self._run(tasks, wait)

    def joint_stats(
        self,
        accs: Accumulator | Sequence[Accumulator],
        codes: np.ndarray,
        n_labels: Sequence[int] | int,
        mi_bins: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-unit AUC (two labels only, else 0.5), Spearman and MI (bits) from the counts of
        one accumulator or several (their units one after the other).

        ``codes`` maps each label pattern to one feature's label bin (-1 where undefined), or is
        (features, patterns) for several features, with ``n_labels`` one per feature; the
        results then have shape (features, units).
        """
        if isinstance(accs, Accumulator):
            accs = [accs]
        codes = np.asarray(codes, dtype=np.int64)
        one = codes.ndim == 1
        codes = np.ascontiguousarray(np.atleast_2d(codes))
        per_feature = np.broadcast_to(np.asarray(n_labels, dtype=np.int64), codes.shape[:1]).copy()
        shape = (codes.shape[0], sum(len(acc.lo) for acc in accs))
        auc, rho, mi = np.full(shape, 0.5), np.zeros(shape), np.zeros(shape)
        tasks, start = [], 0
        for acc in accs:
            u = len(acc.lo)
            for a in range(0, u, JOINT_UNITS):
                e = min(u, a + JOINT_UNITS)
                out = (auc[:, start:], rho[:, start:], mi[:, start:])
                tasks.append(
                    partial(
                        joint_stats,
                        acc.totals,
                        acc.recent,
                        codes,
                        per_feature,
                        mi_bins,
                        a,
                        e,
                        *out,
                    )
                )
            start += u
        self._run(tasks)
        if one:
            return auc[0], rho[0], mi[0]
        return auc, rho, mi

    def _run(self, tasks: list[Callable[[], None]], wait: bool = True) -> Callable[[], None]:
        """Run ``tasks`` on the pool: one job per thread, each taking the next task not yet
        taken (cheaper than a future per task). Returns the function that waits for them."""
        if self._pool is None or len(tasks) == 1:
            _run_all(tasks)
            return _nothing
        # each thread takes the next task not yet taken (next() on one iterator is atomic
        # under the GIL): a thread slowed by other work takes fewer tasks, not the same share
        queue = iter(tasks)
        futures = [self._pool.submit(_run_all, queue) for _ in range(min(self.threads, len(tasks)))]

        def done() -> None:
            for future in futures:
                future.result()

        if wait:
            done()
            return _nothing
        return done

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> Sweeper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
