"""The one home of the metrics against scikit-learn's and SciPy's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import r2_score, roc_auc_score

from lstmprobe.probes.metrics import (
    auc,
    auc_from_counts,
    pearson,
    pearson_from_sums,
    probe_metrics,
    r2,
    spearman,
)


def test_metrics_are_scikit_learns() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(2, 400))
        positive = rng.random(n) < rng.uniform(0.05, 0.95)
        if positive.all() or not positive.any():
            continue
        score = np.round(rng.normal(size=n), int(rng.integers(0, 3)))  # with ties
        assert auc(positive, score) == pytest.approx(roc_auc_score(positive, score), abs=1e-12)
        y = rng.normal(size=n)
        pred = y + rng.normal(size=n)
        assert r2(y, pred) == pytest.approx(r2_score(y, pred), abs=1e-12)
    assert r2(np.ones(4), np.ones(4)) == r2_score(np.ones(4), np.ones(4))
    assert r2(np.ones(4), np.zeros(4)) == r2_score(np.ones(4), np.zeros(4))


def test_the_auc_from_binned_counts_is_the_auc_of_the_bins() -> None:
    rng = np.random.default_rng(1)
    bins = rng.integers(0, 12, size=500)
    positive = rng.random(500) < 0.3 + 0.04 * bins
    neg = np.bincount(bins[~positive], minlength=12)
    pos = np.bincount(bins[positive], minlength=12)
    assert float(auc_from_counts(neg, pos)) == pytest.approx(auc(positive, bins), abs=1e-12)
    # several tables at once, and 0.5 where a class is empty
    both = auc_from_counts(np.stack([neg, neg]), np.stack([pos, np.zeros(12)]))
    assert both[1] == 0.5 and both[0] == pytest.approx(auc(positive, bins))


def test_correlations_are_scipys() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    assert pearson(x, y) == pytest.approx(pearsonr(x, y)[0], abs=1e-12)
    sums = pearson_from_sums(300, x.sum(), x @ x, y.sum(), y @ y, x @ y)
    assert float(sums) == pytest.approx(pearsonr(x, y)[0], abs=1e-10)
    ties = np.round(x)
    assert spearman(ties, y) == pytest.approx(spearmanr(ties, y)[0], abs=1e-12)
    assert spearman(np.ones(5), np.arange(5.0)) == 0.0 and pearson(np.ones(5), x[:5]) == 0.0
    assert float(pearson_from_sums(3, 3.0, 3.0, 1.0, 1.0, 1.0)) == 0.0  # constant x


def test_probe_metrics() -> None:
    y = np.array([0.0, 0.0, 1.0, 1.0])
    got = probe_metrics("binary", y, np.array([-1.0, 0.5, 0.2, 2.0]))
    assert got == {"auc": 0.75, "accuracy": 0.75}
    assert np.isnan(probe_metrics("binary", np.zeros(3), np.ones(3))["auc"])
    cont = probe_metrics("continuous", np.arange(4.0), np.arange(4.0))
    assert cont == {"r2": 1.0, "pearson": pytest.approx(1.0)}
