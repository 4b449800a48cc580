"""The compiled loop behind :func:`lstmprobe.report.data.summarize`: one sweep of a chunk.

Float16 values are read as their 16-bit patterns and widened in the loop
(:mod:`lstmprobe._float16`), so no float32 copy of the chunk is made; float32 chunks are read as
they are. Sums run in float32 over blocks of :data:`SUM_ROWS` positions and
are then added to float64 totals, so their rounding does not grow with the corpus.

Non-finite values (a float16 overflow records ±inf) are counted per unit and left out of the
sums and the extremes, branch-free (selects), so the loop stays vectorised.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lstmprobe._float16 import decode_exact as _widen
from lstmprobe._float16 import kernel_view

#: Positions summed in float32 before the sums join the float64 totals.
SUM_ROWS = 512


@njit(nogil=True, cache=True)
def _sweep(
    x, gate, sat, total, squares, low, high, cmax, cmin, posinf, neginf, nan
):  # pragma: no cover
    rows, units = x.shape
    top = np.float32(1.0) - sat
    inf = np.float32(np.inf)
    zero = np.float32(0.0)
    s = np.zeros(units, dtype=np.float32)
    q = np.zeros(units, dtype=np.float32)
    lo = np.zeros(units, dtype=np.int32)
    hi = np.zeros(units, dtype=np.int32)
    pi = np.zeros(units, dtype=np.int32)
    ni = np.zeros(units, dtype=np.int32)
    na = np.zeros(units, dtype=np.int32)
    for j in range(units):
        cmax[j] = -np.inf
        cmin[j] = np.inf
    for r0 in range(0, rows, SUM_ROWS):
        s[:] = 0.0
        q[:] = 0.0
        for i in range(r0, min(rows, r0 + SUM_ROWS)):
            for j in range(units):
                v = _widen(x[i, j])  # type: ignore[call-arg]
                finite = abs(v) < inf  # false for ±inf and NaN
                w = v if finite else zero
                s[j] += w
                q[j] += w * w
                cmax[j] = max(cmax[j], v if finite else -inf)
                cmin[j] = min(cmin[j], v if finite else inf)
                pi[j] += v == inf
                ni[j] += v == -inf
                na[j] += v != v
                if gate:  # branch-free counts: the loop stays vectorised
                    lo[j] += v < sat
                    hi[j] += v > top
        for j in range(units):
            total[j] += s[j]
            squares[j] += q[j]
    for j in range(units):
        low[j] += lo[j]
        high[j] += hi[j]
        posinf[j] += pi[j]
        neginf[j] += ni[j]
        nan[j] += na[j]


def sweep(
    raw: np.ndarray,
    gate: bool,
    sat: float,
    total: np.ndarray,
    squares: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    cmax: np.ndarray,
    cmin: np.ndarray,
    nonfinite: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Add one chunk ``raw`` (positions x units, float16 or float32) into per-unit accumulators.

    ``total``/``squares`` (float64) gain the sums of the finite values and their squares;
    ``low``/``high`` (int64) the counts below ``sat`` / above ``1 - sat`` when ``gate``;
    ``cmax``/``cmin`` (float32) are set to the chunk's per-unit finite extremes (-inf/+inf
    where a unit has none); ``nonfinite`` (three int64 arrays) gain the counts of +inf, -inf
    and NaN.

    Examples
    --------
    >>> x = np.array([[0.05, 2.0], [0.95, -1.0]], dtype=np.float16)
    >>> t, q = np.zeros(2), np.zeros(2)
    >>> lo, hi = np.zeros(2, np.int64), np.zeros(2, np.int64)
    >>> mx, mn = np.empty(2, np.float32), np.empty(2, np.float32)
    >>> bad = (np.zeros(2, np.int64), np.zeros(2, np.int64), np.zeros(2, np.int64))
    >>> sweep(x, True, 0.1, t, q, lo, hi, mx, mn, bad)
    >>> t.round(3).tolist(), lo.tolist(), hi.tolist(), mx.tolist(), mn.tolist()
    ([1.0, 1.0], [1, 1], [1, 1], [0.9501953125, 2.0], [0.04998779296875, -1.0])
    >>> y = np.array([[np.inf, np.nan], [-np.inf, 3.0]], dtype=np.float16)
    >>> sweep(y, False, 0.1, t, q, lo, hi, mx, mn, bad)
    >>> [b.tolist() for b in bad], mx.tolist(), mn.tolist()
    ([[1, 0], [1, 0], [0, 1]], [-inf, 3.0], [inf, 3.0])
    """
    x = kernel_view(np.ascontiguousarray(raw))
    _sweep(x, gate, np.float32(sat), total, squares, low, high, cmax, cmin, *nonfinite)
