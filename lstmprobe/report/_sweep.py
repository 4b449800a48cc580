"""The compiled loop behind :func:`lstmprobe.report.data.summarize`: one sweep of a chunk.

Float16 values are read as their 16-bit patterns and widened in the loop
(:mod:`lstmprobe._float16`), so no float32 copy of the chunk is made; float32 chunks are read as
they are. Sums run in float32 over blocks of :data:`SUM_ROWS` positions and
are then added to float64 totals, so their rounding does not grow with the corpus.

Non-finite values (a float16 overflow records ±inf) are counted per unit and left out of the
sums and the extremes, branch-free (selects), so the loop stays vectorised.

The same sweep counts each finite value of a unit into log-spaced bins of ``|value|``, one set
for each sign (:func:`abs_bins`: 16 per octave, read from the float32 bits), from which a unit's
colour range, a percentile of ``|value|`` on each side of 0, is read (:func:`level`);
:func:`abs_bins` is the plain NumPy reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lstmprobe._float16 import decode_exact as _widen
from lstmprobe._float16 import float32_bits, kernel_view

#: Positions summed in float32 before the sums join the float64 totals.
SUM_ROWS = 512
#: |value| bins: the float32 exponent and the first 4 bits of the mantissa (16 bins per
#: octave, each at most 1/16 = 6.25% wider than its start), from 2**-20 to 2**16; smaller
#: values count in the first bin, larger ones in the last (the sweep leaves out inf and NaN).
BIN_SHIFT = 19
BIN_LOW = (127 - 20) << 4
N_BINS = 36 << 4


def abs_bins(values: np.ndarray) -> np.ndarray:
    """The bin of each value (int64, same shape): that of ``|value|`` among :data:`N_BINS`,
    plus :data:`N_BINS` for a value that is not negative -- the plain reference of the
    sweep's.

    Examples
    --------
    >>> abs_bins(np.array([1.0, -1.0, 1.07, 2.0, 0.0, -np.inf], dtype=np.float32)).tolist()
    [896, 320, 897, 912, 576, 575]
    """
    v = np.asarray(values, dtype=np.float32)
    bits = np.abs(v).view(np.uint32) >> BIN_SHIFT
    bins = np.clip(bits.astype(np.int64) - BIN_LOW, 0, N_BINS - 1)
    return bins + N_BINS * ~np.signbit(v)


def bin_top(b: int) -> float:
    """The upper edge of ``|value|`` bin ``b`` (of either sign): every ``|value|`` in it is at
    or below it.

    Examples
    --------
    >>> bin_top(320), bin_top(336), bin_top(896)
    (1.0625, 2.125, 1.0625)
    """
    code = int(b) % N_BINS + BIN_LOW
    return float(2.0 ** ((code >> 4) - 127) * (1 + ((code & 15) + 1) / 16))


def level(hist: np.ndarray, q: float, low: float, high: float) -> tuple[float, float]:
    """``(below, above)``: the ``q``-th percentile of ``|value|`` of the negative values and of
    the others, read from a unit's bins ``hist`` (counts of shape (2 * N_BINS,)); each the upper
    edge of the bin holding it (an over-estimate by at most one bin, 6.25%), at most the
    side's extreme (``-low``, ``high``: the unit's minimum and maximum), 0 for a side without
    values.

    Examples
    --------
    >>> h = np.bincount(abs_bins(np.linspace(-0.5, 1.0, 151, dtype=np.float32)),
    ...                 minlength=2 * N_BINS)
    >>> level(h, 50.0, -0.5, 1.0), level(h, 100.0, -0.5, 1.0)
    ((0.265625, 0.53125), (0.5, 1.0))
    """
    out = []
    for side, extreme in ((hist[:N_BINS], -low), (hist[N_BINS:], high)):
        total = int(side.sum())
        if total == 0:
            out.append(0.0)
            continue
        rank = max(1, int(np.ceil(q / 100.0 * total)))
        b = int(np.searchsorted(np.cumsum(side), rank))
        out.append(float(max(0.0, min(bin_top(b), extreme))))
    return out[0], out[1]


@njit(nogil=True, cache=True)
def _sweep(
    x, gate, sat, total, squares, low, high, cmax, cmin, hist, posinf, neginf, nan
):  # pragma: no cover
    rows, units = x.shape
    top = np.float32(1.0) - sat
    inf = np.float32(np.inf)
    zero = np.float32(0.0)
    last = N_BINS - 1
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
                elif finite:  # the bin of |value| from its float32 bits (:func:`abs_bins`)
                    bits = float32_bits(v)  # type: ignore[call-arg]
                    b = np.int64((bits & 0x7FFFFFFF) >> BIN_SHIFT) - BIN_LOW
                    hist[min(max(b, 0), last) + N_BINS * np.int64(bits >> 31 == 0), j] += 1
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
    hist: np.ndarray | None = None,
) -> None:
    """Add one chunk ``raw`` (positions x units, float16 or float32) into per-unit accumulators.

    ``total``/``squares`` (float64) gain the sums of the finite values and their squares;
    ``low``/``high`` (int64) the counts below ``sat`` / above ``1 - sat`` when ``gate``;
    ``cmax``/``cmin`` (float32) are set to the chunk's per-unit finite extremes (-inf/+inf
    where a unit has none); ``nonfinite`` (three int64 arrays) gain the counts of +inf, -inf
    and NaN; ``hist`` (int64, 2 * :data:`N_BINS` x units) gains the counts of each unit's
    finite values per bin (:func:`abs_bins`) unless ``gate`` (a gate's range is [0, 1]).

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
    if hist is None:
        hist = np.zeros((2 * N_BINS, x.shape[1]), dtype=np.int64)
    _sweep(x, gate, np.float32(sat), total, squares, low, high, cmax, cmin, hist, *nonfinite)
