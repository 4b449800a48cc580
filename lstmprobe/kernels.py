"""Compiled inner loop of the per-unit scores: joint histograms and moment sums in one sweep.

:func:`accumulate` adds one window of one dataset into a key's accumulators. For each value it
computes the unit's histogram bin, counts it against the position's label pattern, and adds the
centred value (and its square) to that pattern's sums, plus value x label for the features whose
exact labels are needed (continuous features with more distinct values than label bins).

The loops are compiled with numba (``nogil``) and parallelised here with threads over blocks of
units, so no two threads ever write the same accumulator and the kernels may be called from any
thread. Float16 stores are read as their raw 16-bit patterns and decoded in the loop by moving bits,
so no float32 copy of the window is made.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from numba import njit

#: Units one task covers, and positions per tile: a tile's scratch (decoded values and count
#: cells, 128 KiB each) stays in L2. Tuned on the 2-core development machine (768 float16
#: units, 5 features): 64 x 512 was 23% faster than 32 x 256, and faster than 16 to 128 units
#: with 128 to 1024 positions.
UNIT_BLOCK = 64
ROW_BLOCK = 512


@njit(nogil=True, cache=True)
def _tile(z, ids, w, a, top, half, hist, s1, s2, sw, m1, m2, cells):  # type: ignore[no-untyped-def]
    """Count and sum one tile whose bin positions ``z`` (rows x units) are computed.

    ``ids`` and ``w`` are the tile's rows; ``a`` its first unit; ``cells`` (rows x units, int32)
    is scratch space. ``m1``, ``m2`` (patterns x units, float32, zero on entry and on return)
    hold the tile's moment sums, added to the float64 totals once per tile. Indices are
    tile-relative so the compiler can vectorise.
    """
    rows, width = z.shape
    # moments with the unit index innermost, so the compiler vectorises them
    for tt in range(rows):
        row = z[tt]
        q1 = m1[ids[tt]]
        q2 = m2[ids[tt]]
        for jj in range(width):
            c = row[jj] - half
            q1[jj] += c
            q2[jj] += c * c
        for f in range(w.shape[1]):
            wt = w[tt, f]
            out = sw[f, a : a + width]
            for jj in range(width):
                out[jj] += wt * (row[jj] - half)
    for p in range(m1.shape[0]):
        o1, o2 = s1[p, a : a + width], s2[p, a : a + width]
        for jj in range(width):
            o1[jj] += m1[p, jj]
            o2[jj] += m2[p, jj]
            m1[p, jj] = 0.0
            m2[p, jj] = 0.0
    # flat (pattern, bin) offsets for the whole tile first (a loop the compiler vectorises;
    # NaN and values below the sampled range go to bin 0, values above it to the top bin) ...
    nb = hist.shape[2]
    for tt in range(rows):
        base = ids[tt] * nb
        row = z[tt]
        out = cells[tt]
        for jj in range(width):
            v = row[jj]
            v = v if v >= 0.0 else np.float32(0.0)
            v = v if v <= top else top
            out[jj] = base + np.int32(v)
    # ... then the counts, four units at a time: four independent tables in cache, so runs of
    # equal bins (activations change slowly) do not serialise the increments
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


# _sweep_f16 and _sweep_f32 differ only in how a row is decoded. They stay two functions: one
# sweep with a runtime dtype flag, or with the decode dispatched on the input type
# (numba.extending.overload), ran 15-50% slower here (A/B, single thread, 38M values).


@njit(nogil=True, cache=True)
def _sweep_f16(x, ids, w, lo, scale, top, half, hist, s1, s2, sw, a, e, rblk):  # type: ignore[no-untyped-def]
    """Units ``[a, e)`` of a float16 window given as its raw bits (uint16), in row tiles."""
    n, width = x.shape[0], e - a
    bits = np.empty((rblk, width), dtype=np.int32)
    f32 = bits.view(np.float32)
    z = np.empty((rblk, width), dtype=np.float32)
    m1 = np.zeros((s1.shape[0], width), dtype=np.float32)
    m2 = np.zeros((s1.shape[0], width), dtype=np.float32)
    cells = np.empty((rblk, width), dtype=np.int32)
    lo_, scale_ = lo[a:e], scale[a:e]
    two112 = np.float32(2.0**112)
    for r0 in range(0, n, rblk):
        rows = min(n, r0 + rblk) - r0
        for tt in range(rows):
            # float16 -> float32 by moving the bits: exponent and mantissa shifted into place
            # and rescaled by 2**112 (exact for normal and subnormal values); inf and NaN are
            # clamped to the largest finite float16 first
            src, dst, f, zr = x[r0 + tt, a:e], bits[tt], f32[tt], z[tt]
            for jj in range(width):
                h = np.int32(src[jj])
                dst[jj] = ((h & 0x8000) << 16) | (min(h & 0x7FFF, 0x7BFF) << 13)
            for jj in range(width):
                zr[jj] = (f[jj] * two112 - lo_[jj]) * scale_[jj]
        _tile(
            z[:rows],
            ids[r0 : r0 + rows],
            w[r0 : r0 + rows],
            a,
            top,
            half,
            hist,
            s1,
            s2,
            sw,
            m1,
            m2,
            cells[:rows],
        )


@njit(nogil=True, cache=True)
def _sweep_f32(x, ids, w, lo, scale, top, half, hist, s1, s2, sw, a, e, rblk):  # type: ignore[no-untyped-def]
    """Units ``[a, e)`` of a float32 window, in row tiles."""
    n, width = x.shape[0], e - a
    z = np.empty((rblk, width), dtype=np.float32)
    m1 = np.zeros((s1.shape[0], width), dtype=np.float32)
    m2 = np.zeros((s1.shape[0], width), dtype=np.float32)
    cells = np.empty((rblk, width), dtype=np.int32)
    lo_, scale_ = lo[a:e], scale[a:e]
    for r0 in range(0, n, rblk):
        rows = min(n, r0 + rblk) - r0
        for tt in range(rows):
            src, zr = x[r0 + tt, a:e], z[tt]
            for jj in range(width):
                zr[jj] = (src[jj] - lo_[jj]) * scale_[jj]
        _tile(
            z[:rows],
            ids[r0 : r0 + rows],
            w[r0 : r0 + rows],
            a,
            top,
            half,
            hist,
            s1,
            s2,
            sw,
            m1,
            m2,
            cells[:rows],
        )


@njit(nogil=True, cache=True)
def _joint_stats(hist, codes, n_labels, mi_bins, a, e, auc, rho, mi):  # type: ignore[no-untyped-def]
    """AUC, Spearman and MI of units ``[a, e)`` from their (patterns x bins) counts.

    ``codes[p]`` is the label bin of pattern p (-1: undefined there). Per unit the patterns are
    folded into a (bins x labels) table; bins and labels are ranked by midranks (ties share
    their mean rank); AUC (two labels only) counts ties within a bin as one half; MI is the
    plug-in estimate in bits between ``mi_bins`` equal-mass groups of bins and the labels.
    """
    n_pat, nb = hist.shape[1], hist.shape[2]
    joint = np.zeros((nb, n_labels))
    px = np.zeros(nb)
    py = np.zeros(n_labels)
    rx = np.zeros(nb)
    ry = np.zeros(n_labels)
    coarse = np.zeros((mi_bins, n_labels))
    for j in range(a, e):
        joint[:] = 0.0
        for p in range(n_pat):
            c = codes[p]
            if c >= 0:
                for b in range(nb):
                    joint[b, c] += hist[j, p, b]
        px[:] = 0.0
        py[:] = 0.0
        for b in range(nb):
            for c in range(n_labels):
                px[b] += joint[b, c]
                py[c] += joint[b, c]
        n = px.sum()
        if n == 0:
            auc[j], rho[j], mi[j] = 0.5, 0.0, 0.0
            continue
        cum = 0.0
        for b in range(nb):
            cum += px[b]
            rx[b] = cum - (px[b] - 1.0) / 2.0
        cum = 0.0
        for c in range(n_labels):
            cum += py[c]
            ry[c] = cum - (py[c] - 1.0) / 2.0
        mx = (px * rx).sum() / n
        my = (py * ry).sum() / n
        cov = 0.0
        for b in range(nb):
            row = 0.0
            for c in range(n_labels):
                row += joint[b, c] * (ry[c] - my)
            cov += row * (rx[b] - mx)
        vx = (px * (rx - mx) ** 2).sum()
        vy = (py * (ry - my) ** 2).sum()
        r = cov / np.sqrt(vx * vy) if vx > 0 and vy > 0 else 0.0
        rho[j] = min(1.0, max(-1.0, r))
        if n_labels == 2:
            below = 0.0
            total = 0.0
            for b in range(nb):
                total += joint[b, 1] * (below + 0.5 * joint[b, 0])
                below += joint[b, 0]
            auc[j] = total / (py[0] * py[1]) if py[0] > 0 and py[1] > 0 else 0.5
        coarse[:] = 0.0
        cum = 0.0
        for b in range(nb):
            g = min(int((cum + px[b] / 2.0) / n * mi_bins), mi_bins - 1)
            cum += px[b]
            for c in range(n_labels):
                coarse[g, c] += joint[b, c]
        pa = coarse.sum(axis=1) / n
        info = 0.0
        for g in range(mi_bins):
            for c in range(n_labels):
                pgc = coarse[g, c] / n
                if pgc > 0:
                    info += pgc * np.log2(pgc / (pa[g] * (py[c] / n)))
        mi[j] = max(info, 0.0)


@dataclass
class Accumulator:
    """Joint histograms and moment sums of one dataset's units against P label patterns.

    ``lo`` and ``scale`` map a unit's value v to its bin position z = (v - lo) * scale in
    [0, n_bins); moments are of the centred z - n_bins / 2. ``hist`` is uint32, so one
    (unit, pattern, bin) cell counts at most 2**32 - 1 positions.
    """

    lo: np.ndarray  # (units,) float32
    scale: np.ndarray  # (units,) float32
    n_patterns: int
    n_weights: int
    n_bins: int
    hist: np.ndarray = field(init=False)  # (units, P, bins) uint32
    s1: np.ndarray = field(init=False)  # (P, units) float64: sum of centred z
    s2: np.ndarray = field(init=False)  # (P, units) float64: sum of its square
    sw: np.ndarray = field(init=False)  # (W, units) float64: sum of label x centred z

    def __post_init__(self) -> None:
        u = len(self.lo)
        self.lo = np.ascontiguousarray(self.lo, dtype=np.float32)
        self.scale = np.ascontiguousarray(self.scale, dtype=np.float32)
        self.hist = np.zeros((u, self.n_patterns, self.n_bins), dtype=np.uint32)
        self.s1 = np.zeros((self.n_patterns, u))
        self.s2 = np.zeros((self.n_patterns, u))
        self.sw = np.zeros((self.n_weights, u))


class Sweeper:
    """Runs :func:`accumulate` over blocks of units on a small thread pool (``with`` closes it)."""

    def __init__(self, threads: int | None = None) -> None:
        if threads is None:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        self.threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def accumulate(
        self, acc: Accumulator, x: np.ndarray, ids: np.ndarray, weights: np.ndarray
    ) -> None:
        """Add a window ``x`` (positions x units, float16 or float32) into ``acc``.

        ``ids`` (int32, one per position) is each position's label pattern and ``weights``
        (float64, positions x W) the exact labels multiplied into ``acc.sw``.
        """
        self.accumulate_all([(acc, x, ids, weights)])

    def accumulate_all(
        self, jobs: Sequence[tuple[Accumulator, np.ndarray, np.ndarray, np.ndarray]]
    ) -> None:
        """:meth:`accumulate` for several (acc, x, ids, weights) at once: all their unit blocks
        share the pool, so threads wait once per window, not once per dataset."""
        tasks: list[Callable[[], None]] = []
        for acc, x, ids, weights in jobs:
            u = x.shape[1]
            if x.dtype == np.float16:
                sweep, x = _sweep_f16, x.view(np.uint16)
            else:
                sweep, x = _sweep_f32, np.asarray(x, dtype=np.float32)
            ids = np.ascontiguousarray(ids, dtype=np.int32)
            weights = np.ascontiguousarray(weights, dtype=np.float64)
            top = np.float32(acc.n_bins - 1)
            half = np.float32(acc.n_bins / 2)
            args = (x, ids, weights, acc.lo, acc.scale, top, half, acc.hist, acc.s1, acc.s2, acc.sw)
            block = UNIT_BLOCK if u >= 2 * UNIT_BLOCK else max(1, -(-u // self.threads))
            for a in range(0, u, block):
                tasks.append(partial(sweep, *args, a, min(u, a + block), ROW_BLOCK))
        self._run(tasks)

    def joint_stats(
        self, acc: Accumulator, codes: np.ndarray, n_labels: int, mi_bins: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-unit AUC (two labels only, else 0.5), Spearman and MI (bits) from ``acc.hist``.

        ``codes`` maps each label pattern to one feature's label bin (-1 where undefined).
        """
        u = acc.hist.shape[0]
        auc, rho, mi = np.full(u, 0.5), np.zeros(u), np.zeros(u)
        codes = np.ascontiguousarray(codes, dtype=np.int64)
        step = max(1, -(-u // self.threads))
        spans = [(a, min(u, a + step)) for a in range(0, u, step)]
        self._run(
            [
                partial(_joint_stats, acc.hist, codes, n_labels, mi_bins, a, e, auc, rho, mi)
                for a, e in spans
            ]
        )
        return auc, rho, mi

    def _run(self, tasks: list[Callable[[], None]]) -> None:
        if self._pool is None or len(tasks) == 1:
            for task in tasks:
                task()
        else:
            for future in [self._pool.submit(task) for task in tasks]:
                future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> Sweeper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
