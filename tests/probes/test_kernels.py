"""The compiled scoring loop against the NumPy references (the library's, and an independent
one here), on float16 and float32 windows."""

from __future__ import annotations

import numpy as np
import pytest

from lstmprobe.probes import _kernels as kernels
from lstmprobe.probes._kernels import Accumulator, Sweeper

N_BINS = 16


def reference(x: np.ndarray, ids: np.ndarray, w: np.ndarray, lo, scale, n_patterns: int):  # type: ignore[no-untyped-def]
    """What the kernel must compute, written the obvious way in float64."""
    v = x.astype(np.float64)
    v = np.where(np.isfinite(v), v, np.sign(v) * 65504 if x.dtype == np.float16 else v)
    if x.dtype == np.float16:
        v = np.where(np.isnan(x), 65504, v)
    z = (v.astype(np.float32) - lo) * scale  # the kernel rounds z to float32
    z = z.astype(np.float32).astype(np.float64)
    c = z - N_BINS / 2
    u = x.shape[1]
    bins = np.where(z >= 0, np.minimum(z, N_BINS - 1), 0).astype(np.int64)
    hist = np.zeros((u, n_patterns, N_BINS), dtype=np.int64)
    for j in range(u):
        np.add.at(hist[j], (ids, bins[:, j]), 1)
    s1 = np.zeros((n_patterns, u))
    s2 = np.zeros((n_patterns, u))
    np.add.at(s1, ids, c)
    np.add.at(s2, ids, c * c)
    sw = w.T @ c
    return hist, s1, s2, sw


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("units", [1, 5, 37, 130])
@pytest.mark.parametrize("threads", [1, 3])
def test_kernel_matches_the_reference(dtype, units: int, threads: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(units)
    n, n_patterns = 700, 5
    x = (rng.normal(size=(n, units)) * rng.uniform(0.01, 3, size=units)).astype(dtype)
    x[3, 0] = 1e-7  # subnormal in float16
    x[4, 0] = -3e-6
    x[5, :] = 50.0  # above the range: top bin
    x[6, :] = -50.0  # below: bin 0
    ids = rng.integers(0, n_patterns, n).astype(np.int32)
    w = rng.normal(size=(n, 2))
    lo = (x[10:].astype(np.float32).min(0) / 2).astype(np.float32)
    width = x[10:].astype(np.float32).max(0) / 2 - lo
    scale = (N_BINS / np.where(width > 0, width, 1)).astype(np.float32)
    acc = Accumulator(lo, scale, n_patterns, 2, N_BINS)
    with Sweeper(threads) as sweeper:
        # two windows, as unit_scores feeds them
        sweeper.accumulate(acc, x[:300], ids[:300], w[:300])
        sweeper.accumulate(acc, x[300:], ids[300:], w[300:])
    assert_matches_reference(acc, x, ids, w)


def assert_matches_reference(acc: Accumulator, x, ids, w) -> None:  # type: ignore[no-untyped-def]
    """Counts equal the numpy references' (the library's and this file's); sums agree to
    float32 rounding."""
    hist, s1, s2, sw = reference(x, ids, w, acc.lo, acc.scale, acc.n_patterns)
    beside = kernels.reference_accumulate(x, ids, w, acc.lo, acc.scale, acc.n_patterns, N_BINS)
    np.testing.assert_array_equal(beside[0], hist)
    np.testing.assert_array_equal(acc.hist, hist)
    np.testing.assert_allclose(beside[1], s1, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(beside[3], sw, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(acc.s1, s1, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(acc.s2, s2, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(acc.sw, sw, rtol=1e-5, atol=1e-3)


def test_non_finite_float16_values_count_as_the_largest_finite() -> None:
    x = np.array([[np.inf], [-np.inf], [np.nan], [0.5], [np.nan]], dtype=np.float16)
    x.view(np.uint16)[4] |= 0x8000  # NaN with the sign bit set: the largest negative
    acc = Accumulator(np.array([0.0], np.float32), np.array([N_BINS], np.float32), 1, 0, N_BINS)
    with Sweeper(1) as sweeper:
        sweeper.accumulate(acc, x, np.zeros(5, np.int32), np.zeros((5, 0)))
    # inf and NaN go to the top bin, -inf and -NaN to bin 0, 0.5 to the middle bin
    assert acc.hist[0, 0].tolist() == [2] + [0] * 7 + [1] + [0] * 6 + [2]
    assert np.isfinite(acc.s1).all()
    assert acc.s1[0, 0] == 0.5 * N_BINS - 5 * N_BINS / 2  # the two +-65504 pairs cancel


def window(n: int, units: int, n_patterns: int, seed: int):  # type: ignore[no-untyped-def]
    """A float16 window, pattern ids, one weight column and an empty accumulator for it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, units)).astype(np.float16)
    ids = rng.integers(0, n_patterns, n).astype(np.int32)
    w = rng.normal(size=(n, 1))
    lo, scale = np.full(units, -2, np.float32), np.full(units, N_BINS / 4, np.float32)
    return x, ids, w, Accumulator(lo, scale, n_patterns, 1, N_BINS)


def test_windows_longer_than_a_tile_match_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    # several row tiles, a short last one, and tiles longer than one run of the moment sums
    monkeypatch.setattr(kernels, "ROW_BLOCK", 700)
    x, ids, w, acc = window(2000, 11, 4, seed=7)
    with Sweeper(2) as sweeper:
        sweeper.accumulate(acc, x, ids, w)
    assert_matches_reference(acc, x, ids, w)


def test_counts_beyond_the_16_bit_cells_are_exact() -> None:
    # the sweep counts in 16-bit cells and adds them to 32-bit totals before they overflow:
    # here one cell gets 150000 positions (unit 0 is constant), over windows of several sizes
    n = 150_000
    x, ids, w, acc = window(n, 3, 2, seed=5)
    x[:, 0] = 0.25
    ids[: n // 2] = 0
    with Sweeper(2) as sweeper:
        for a, b in [(0, 40_000), (40_000, 40_001), (40_001, 110_000), (110_000, n)]:
            sweeper.accumulate(acc, x[a:b], ids[a:b], w[a:b])
    assert acc.hist.dtype == np.uint32
    assert acc.hist[0].max() > 1 << 16
    assert_matches_reference(acc, x, ids, w)
    assert not acc.since.any() and not acc.recent.any()  # reading hist added them up


def test_blocks_of_columns_add_up_to_the_whole_window() -> None:
    # the scoring pass feeds a window as the store's chunk columns: units first.. of the acc
    x, ids, w, whole = window(900, 150, 3, seed=3)
    _, _, _, parts = window(900, 150, 3, seed=3)
    with Sweeper(2) as sweeper:
        sweeper.accumulate(whole, x, ids, w)
        done = sweeper.accumulate_all(
            [(parts, x[:, a : a + 64], ids, w, a) for a in range(0, 150, 64)], wait=False
        )
        done()  # the jobs ran on the pool; this waits for them
    np.testing.assert_array_equal(parts.hist, whole.hist)
    np.testing.assert_allclose(parts.s1, whole.s1, rtol=1e-6)
    np.testing.assert_allclose(parts.sw, whole.sw, rtol=1e-6)


def test_accumulator_refuses_more_cells_than_16_bits_index() -> None:
    lo, scale = np.zeros(2, np.float32), np.ones(2, np.float32)
    Accumulator(lo, scale, 256, 0, 256)
    with pytest.raises(ValueError, match="65536"):
        Accumulator(lo, scale, 257, 0, 256)


def test_sweeper_threads_give_identical_sums() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 200)).astype(np.float16)
    ids = rng.integers(0, 3, 2000).astype(np.int32)
    w = rng.normal(size=(2000, 1))
    lo, scale = np.full(200, -3, np.float32), np.full(200, N_BINS / 6, np.float32)
    results = []
    for threads in (1, 2, 4):
        acc = Accumulator(lo, scale, 3, 1, N_BINS)
        with Sweeper(threads) as sweeper:
            sweeper.accumulate(acc, x, ids, w)
        results.append(acc)
    for other in results[1:]:
        np.testing.assert_array_equal(other.hist, results[0].hist)
        np.testing.assert_array_equal(other.s1, results[0].s1)
        np.testing.assert_array_equal(other.sw, results[0].sw)


def test_joint_stats_match_sklearn_and_scipy_on_the_binned_values() -> None:
    from scipy.stats import spearmanr
    from sklearn.metrics import mutual_info_score, roc_auc_score

    rng = np.random.default_rng(1)
    n_patterns, n_bins, units = 4, N_BINS, 3
    hist = rng.integers(0, 6, size=(units, n_patterns, n_bins)).astype(np.uint32)
    hist[2] = 0  # a unit with no defined position
    hist[2, 3] = 5  # ... except in the undefined pattern
    codes = np.array([0, 1, 1, -1])  # pattern 3: the feature is undefined
    acc = Accumulator(
        np.zeros(units, np.float32), np.ones(units, np.float32), n_patterns, 0, n_bins
    )
    acc.hist[:] = hist
    with Sweeper(2) as sweeper:
        auc, rho, mi = sweeper.joint_stats(acc, codes, 2, 4)
    for j in range(2):
        # expand the counts into samples: value = bin index, label = pattern's code
        values, labels = [], []
        for p in range(3):
            for b in range(n_bins):
                values += [b] * int(hist[j, p, b])
                labels += [codes[p]] * int(hist[j, p, b])
        x, y = np.array(values), np.array(labels)
        assert auc[j] == pytest.approx(roc_auc_score(y, x))
        assert rho[j] == pytest.approx(spearmanr(x, y).statistic)
        # MI between 4 equal-mass groups of bins and the label
        counts = np.bincount(x, minlength=n_bins)
        cdf = (np.cumsum(counts) - counts / 2) / counts.sum()
        group = np.minimum((cdf * 4).astype(int), 3)[x]
        assert mi[j] == pytest.approx(mutual_info_score(group, y) / np.log(2))
    assert (auc[2], rho[2], mi[2]) == (0.5, 0.0, 0.0)


def test_joint_stats_of_several_features_equal_each_alone() -> None:
    # features defined at every pattern share the bins' ranks and groups; one that is not
    # (feature 1, undefined in pattern 2) must not use them, nor disturb the next feature's
    rng = np.random.default_rng(4)
    units, n_patterns = 5, 4
    codes = np.array([[0, 1, 1, 0], [2, 0, -1, 1], [1, 1, 0, 0], [0, 0, 1, 2]])
    n_labels = [2, 3, 2, 3]
    accs = []
    for _ in range(2):  # two accumulators: their units one after the other
        acc = Accumulator(
            np.zeros(units, np.float32), np.ones(units, np.float32), n_patterns, 0, N_BINS
        )
        acc.hist[:] = rng.integers(0, 9, size=acc.hist.shape)
        accs.append(acc)
    with Sweeper(2) as sweeper:
        together = sweeper.joint_stats(accs, codes, n_labels, 4)
        for f in range(len(codes)):
            alone = sweeper.joint_stats(accs, codes[f], n_labels[f], 4)
            for both, one in zip(together, alone):
                np.testing.assert_allclose(both[f], one, rtol=1e-12, atol=1e-12)
    assert together[0].shape == (4, 2 * units)
