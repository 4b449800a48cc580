"""Per-unit scores on stores with planted units: exact statistics, chunking, one held-out unit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from lstmprobe.features import get_feature
from lstmprobe.probes import (
    block_split,
    unit_scores,
)
from lstmprobe.store import ActivationStore
from tests.stores import BASE, build_store

# --- scores ---------------------------------------------------------------------------------


def test_scores_match_exact_statistics(store) -> None:  # type: ignore[no-untyped-def]
    scores = unit_scores(store, ["quote", "indent"], chunk_size=512)
    text = store.text
    quote = get_feature("quote").labels(text)
    indent = get_feature("indent").labels(text)
    units = scores["quote"].units
    for i, name in enumerate(units):
        x = store.unit(name)
        exact_auc = roc_auc_score(quote, x)
        assert abs(scores["quote"].auc[i] - exact_auc) < 0.01, name
        assert abs(scores["indent"].pearson[i] - np.corrcoef(x, indent)[0, 1]) < 1e-4, name
        rho = spearmanr(x, indent).statistic
        assert abs(scores["indent"].spearman[i] - rho) < 0.03, name
    assert units[int(np.argmax(scores["quote"].mi))] == "layer0/cell/4"
    assert scores["indent"].sign[units.index("layer0/hidden/1")] == -1


def test_float16_store_scores_match_exact_statistics(tmp_path: Path) -> None:
    # float16 windows go through the compiled loop as raw bits; line-position has more distinct
    # values than label bins, so its Pearson sums use the exact labels
    path = build_store(tmp_path / "acts16.h5", BASE * 30, seed=3, dtype="float16")
    with ActivationStore(path) as s:
        scores = unit_scores(s, ["quote", "line-position"], chunk_size=700, threads=2)
        quote = get_feature("quote").labels(s.text)
        column = get_feature("line-position").labels(s.text)
        for i, name in enumerate(scores["quote"].units):
            x = s.unit(name).astype(np.float64)
            assert abs(scores["quote"].auc[i] - roc_auc_score(quote, x)) < 0.01, name
            r = np.corrcoef(x, column)[0, 1]
            assert abs(scores["line-position"].pearson[i] - r) < 1e-4, name
            rho = spearmanr(x, column).statistic
            assert abs(scores["line-position"].spearman[i] - rho) < 0.03, name


def test_scores_do_not_depend_on_chunking(store) -> None:  # type: ignore[no-untyped-def]
    a = unit_scores(store, "quote", chunk_size=300)["quote"]
    b = unit_scores(store, "quote", chunk_size=100_000)["quote"]
    mapped = unit_scores(store, "quote")["quote"]  # the file's chunks, mapped, no copy
    for other in (b, mapped):
        np.testing.assert_allclose(a.auc, other.auc, atol=1e-9)
        np.testing.assert_allclose(a.pearson, other.pearson, atol=1e-5)
        np.testing.assert_allclose(a.mi, other.mi, atol=1e-9)


def test_scores_do_not_depend_on_the_window_of_chunk_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the mapped pass counts each block of units over several rows of chunks per task, fewer
    # where a window would take more than WINDOW_BYTES; the scores are the same
    from lstmprobe.probes import sums as scores_module

    path = build_store(tmp_path / "acts.h5", BASE * 20, dtype="float16", chunk_positions=128)
    with ActivationStore(path) as s:
        assert s.n_positions > 16 * 128
        results = []
        for rows, limit in [(1, None), (3, None), (8, None), (8, 3 * 128 * 12 * 2)]:
            monkeypatch.setattr(scores_module, "WINDOW_CHUNK_ROWS", rows)
            if limit is not None:  # 12 float16 units: 3 rows of chunks fit
                monkeypatch.setattr(scores_module, "WINDOW_BYTES", limit)
            results.append(unit_scores(s, ["quote", "indent"], threads=2))
    for other in results[1:]:
        for name in ("quote", "indent"):
            np.testing.assert_array_equal(other[name].score, results[0][name].score)
            np.testing.assert_allclose(other[name].pearson, results[0][name].pearson, atol=1e-6)


def test_many_features_grouped_in_one_pass(store) -> None:  # type: ignore[no-untyped-def]
    specs = ["quote", "comment", "char:e", "char:(", "next-char:x", "bracket-depth", "indent"]
    together = unit_scores(store, specs)
    for spec in ("char:e", "bracket-depth"):
        alone = unit_scores(store, spec)[spec]
        np.testing.assert_allclose(together[spec].score, alone.score, atol=1e-9)


def test_more_features_with_many_bins_than_one_key_holds(store) -> None:  # type: ignore[no-untyped-def]
    # 14 continuous features of 32 label bins: their joint codes do not fit one int64 key
    specs = [f"line-position:{tab}" for tab in range(1, 15)]
    together = unit_scores(store, specs)
    alone = unit_scores(store, "line-position:3")["line-position:3"]
    assert set(together) == set(specs)
    np.testing.assert_allclose(together["line-position:3"].score, alone.score, atol=1e-9)


# --- held-out metrics a reader can interpret ---------------------------------------------------


def test_one_unit_held_out_metric_is_an_oriented_spearman_for_continuous_features() -> None:
    from lstmprobe.probes.scores import unit_heldout

    rng = np.random.default_rng(0)
    y = rng.integers(0, 12, 2000).astype(float)
    part = block_split(2000, 20, seed=0)
    # monotone but far from linear: a one-unit linear fit's R² is poor, the ranks are exact
    x = -np.exp(y) + rng.normal(scale=1e-3, size=2000)
    got = unit_heldout("continuous", x, y, part)
    te, tr = part == 2, part == 0
    expected = np.sign(spearmanr(x[tr], y[tr])[0]) * spearmanr(x[te], y[te])[0]
    assert got == pytest.approx(expected, abs=1e-9)
    assert got > 0.99  # oriented on train: a falling unit reads as positive
    noise = rng.normal(size=2000)
    assert abs(unit_heldout("continuous", noise, y, part)) < 0.1
    # a direction that reverses between train and test reads negative, not as a good fit
    flipped = np.where(tr, y, -y)
    assert unit_heldout("continuous", flipped, y, part) < -0.9
