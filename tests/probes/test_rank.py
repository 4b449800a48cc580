"""Per-unit scores, LinearProbe, controls and rankings on stores with planted units."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from lstmprobe.errors import FeatureError
from lstmprobe.features import get_feature
from lstmprobe.models import CharLSTM, LoadedModel, ModelConfig
from lstmprobe.probes import (
    BlockSplit,
    LinearProbeCV,
    Ranking,
    StoreProbe,
    block_split,
    control_labels,
    make_labels,
    rank_units,
    unit_scores,
)
from lstmprobe.store import ActivationStore
from lstmprobe.text import Vocab
from tests.stores import BASE, build_store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("probes") / "acts.h5", BASE * 40)


@pytest.fixture
def store(store_path: Path):  # type: ignore[no-untyped-def]
    with ActivationStore(store_path) as s:
        yield s


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
    from lstmprobe.probes import scores as scores_module

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


# --- ranking --------------------------------------------------------------------------------


def test_planted_units_rank_first(store) -> None:  # type: ignore[no-untyped-def]
    ranking = rank_units(store, ["quote", "indent"], n_boot=50)
    assert ranking.top(1, "quote") == ["layer0/cell/4"]
    assert ranking.top(1, "indent") == ["layer0/hidden/1"]
    first = ranking.for_feature("quote")[0]
    assert first["rank"] == 1 and first["sign"] == 1 and first["score"] > 0.95
    assert first["test_metric"] > 0.95
    assert first["selectivity"] > 0.2
    assert first["interval_low"] <= first["score"] + 0.01 <= first["interval_high"] + 0.02
    summary = ranking.features["quote"]
    assert [c["k"] for c in summary["curve"]] == [1, 2, 4, 8, "all"]
    assert summary["probe"]["test_metric"] > 0.95
    assert summary["probe"]["selectivity"] > 0.2
    indent_row = ranking.for_feature("indent")[0]
    assert indent_row["sign"] == -1 and indent_row["test_metric"] > 0.9
    # the whole ordering: every unit of every dataset, once per feature
    assert len(ranking) == 2 * 12
    assert [r["rank"] for r in ranking.for_feature("indent")] == list(range(1, 13))


def test_constant_feature_is_skipped_with_a_warning(store) -> None:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    ranking = rank_units(store, ["quote", "char:Z"], probe=False, warn=lines.append)
    assert "constant" in lines[0] and "char:Z" in lines[0]
    assert "skipped" in ranking.features["char:Z"]
    assert ranking.top(1) == ["layer0/cell/4"]  # the one scored feature
    with pytest.raises(FeatureError, match="not in this ranking"):
        ranking.top(1, "indent")


def test_several_features_need_a_name_for_top(store) -> None:  # type: ignore[no-untyped-def]
    ranking = rank_units(store, ["quote", "indent"], probe=False)
    with pytest.raises(FeatureError, match="say which one"):
        ranking.top(3)


def test_ranking_serialises(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ranking = rank_units(store, ["quote"], n_boot=20)
    text = ranking.to_json(tmp_path / "r.json")
    again = Ranking.read_json(tmp_path / "r.json")
    assert again.top(3) == ranking.top(3)
    assert json.loads(text)["format"] == "lstmprobe.rankings"
    csv_text = ranking.to_csv()
    assert csv_text.splitlines()[0].startswith("feature,rank,unit,score")
    assert csv_text.splitlines()[1].startswith("quote,1,layer0/cell/4,")
    assert "layer0/cell/4" in ranking.format_table(3)


def test_ranking_never_modifies_the_store(store_path: Path) -> None:
    before = hashlib.sha256(store_path.read_bytes()).hexdigest()
    with ActivationStore(store_path) as s:
        rank_units(s, "quote", n_boot=10)
    assert hashlib.sha256(store_path.read_bytes()).hexdigest() == before


def test_one_class_test_split_gives_a_clear_note(tmp_path: Path) -> None:
    text = "x" * 900 + '"ab"' + "x" * 96
    path = build_store(tmp_path / "rare.h5", text)
    lines: list[str] = []
    with ActivationStore(path) as s:
        ranking = rank_units(s, "quote", warn=lines.append, n_blocks=10)
    assert any("only one class" in line for line in lines)
    assert ranking.top(1) == ["layer0/cell/4"]


# --- controls and splits ----------------------------------------------------------------------


def test_block_split_is_contiguous_and_seeded() -> None:
    split = block_split(100, n_blocks=10, seed=3)
    assert (split.reshape(10, 10) == split.reshape(10, 10)[:, :1]).all()
    assert sorted(np.bincount(split).tolist()) == [20, 20, 60]
    np.testing.assert_array_equal(split, block_split(100, n_blocks=10, seed=3))


def test_char_control_gives_each_char_type_one_label() -> None:
    tokens = np.array([0, 1, 2, 0, 1, 2, 0])
    values = np.array([1, 0, 0, 1, np.nan, 0, 1], dtype=np.float32)
    ctrl = control_labels(values, "char", tokens=tokens, seed=1)
    assert np.isnan(ctrl[4])
    for t in range(3):
        seen = ctrl[(tokens == t) & ~np.isnan(ctrl)]
        assert len(set(seen.tolist())) == 1
    assert set(ctrl[~np.isnan(ctrl)].tolist()) <= {0.0, 1.0}


def test_block_control_keeps_the_labels() -> None:
    values = np.arange(100, dtype=np.float32)
    ctrl = control_labels(values, "block", n_blocks=10, seed=0)
    assert sorted(ctrl.tolist()) == values.tolist()
    assert not np.array_equal(ctrl, values)
    assert (np.diff(ctrl.reshape(10, 10), axis=1) == 1).all()  # blocks stay whole


# --- the estimator ----------------------------------------------------------------------------


def test_linear_probe_is_a_sklearn_estimator() -> None:
    probe = LinearProbeCV(l1_grid=(0.01,), cv=BlockSplit(n_blocks=10))
    assert clone(probe).get_params() == probe.get_params()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 6))
    y = (X[:, 3] + 0.3 * rng.normal(size=1000) > 0).astype(float)
    assert probe.fit(X, y) is probe
    assert int(np.argmax(np.abs(probe.coef_))) == 3
    assert probe.test_metrics_["auc"] > 0.9 and probe.l1_ == 0.01
    assert probe.predict_proba(X[:3]).shape == (3, 2)
    assert set(np.unique(probe.split_).tolist()) == {0, 1, 2}


def test_linear_probe_chooses_l1_on_validation_and_is_sparse() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 20))
    y = X[:, 5] * 2 - X[:, 7] + 0.1 * rng.normal(size=2000)
    probe = LinearProbeCV(cv=BlockSplit(n_blocks=20)).fit(X, y)
    assert probe.kind_ == "continuous"
    assert len(probe.val_scores_) == 5 and probe.l1_ in probe.val_scores_
    assert probe.test_metrics_["r2"] > 0.95
    assert probe.top_units(2) == ["5", "7"]


def test_linear_probe_one_class_message() -> None:
    X = np.zeros((100, 2))
    y = np.zeros(100)
    y[:5] = 1
    with pytest.raises(FeatureError, match="blocks hold no positives"):
        LinearProbeCV(cv=BlockSplit(n_blocks=10, random_state=0)).fit(
            X + np.arange(100)[:, None], y
        )


def test_linear_probe_on_a_store(store) -> None:  # type: ignore[no-untyped-def]
    units = ["layer0/cell/0", "layer0/cell/4", "layer0/hidden/1"]
    probe = StoreProbe.fit(
        store, "quote", units=units, estimator=LinearProbeCV(cv=BlockSplit(n_blocks=10))
    )
    assert probe.units == units
    assert probe.top_units(1) == ["layer0/cell/4"]
    assert probe.test_metrics_["auc"] > 0.95


def test_make_labels_bins_continuous_features() -> None:
    text = "".join(" " * (i % 50) + "x\n" for i in range(200))
    lab = make_labels("line-position", text)
    assert lab.kind == "continuous" and lab.n_bins <= 32
    assert (lab.codes >= 0).all()
    # bins follow the value order
    order = np.argsort(lab.values, kind="stable")
    assert (np.diff(lab.codes[order].astype(int)) >= 0).all()


# --- a hand-built LSTM whose units are planted ----------------------------------------------


def planted_lstm(vocab: Vocab) -> CharLSTM:
    """One-hot LSTM(3 units): cell 0 counts x's since the reset, unit 1 is on after a y."""
    model = CharLSTM(ModelConfig(vocab_size=len(vocab), hidden_size=3)).eval()
    h, big = 3, 10.0
    x, y = vocab.index("x"), vocab.index("y")
    with torch.no_grad():
        w_ih, w_hh = model.rnn.weight_ih_l0, model.rnn.weight_hh_l0
        b_ih, b_hh = model.rnn.bias_ih_l0, model.rnn.bias_hh_l0
        torch.manual_seed(0)
        w_ih.normal_(0, 0.5)
        w_hh.zero_()
        b_hh.zero_()
        b_ih.zero_()
        gate = {"i": slice(0, h), "f": slice(h, 2 * h), "g": slice(2 * h, 3 * h), "o": slice(3 * h, 4 * h)}  # fmt: skip
        # unit 0: i = 1, f = 1, g = 1 on x else 0 -> c counts the x's
        for name in "ifg":
            w_ih[gate[name].start, :] = 0.0
        b_ih[gate["i"].start] = big
        b_ih[gate["f"].start] = big
        w_ih[gate["g"].start, x] = big
        # unit 1: forget everything, g = +1 on y, -1 otherwise
        for name in "ifg":
            w_ih[gate[name].start + 1, :] = 0.0
        b_ih[gate["i"].start + 1] = big
        b_ih[gate["f"].start + 1] = -big
        w_ih[gate["g"].start + 1, :] = -big
        w_ih[gate["g"].start + 1, y] = big
    return model


def test_hand_built_lstm_planted_units_rank_first(tmp_path: Path) -> None:
    from lstmprobe.record import RecordOptions, record_corpus

    rng = np.random.default_rng(0)
    lines = ["".join(rng.choice(list("abxy"), size=int(rng.integers(5, 25)))) for _ in range(150)]
    text = "\n".join(lines) + "\n"
    vocab = Vocab.from_text(text)
    loaded = LoadedModel(planted_lstm(vocab), vocab, "checkpoint", sha256="0" * 64)
    out = record_corpus(
        loaded, text, tmp_path / "acts.h5", RecordOptions(reset="line", dtype="float32")
    ).path
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ActivationStore(out) as s:
            ranking = rank_units(s, ["count:x", "char:y"], n_boot=20, k_max=4)
    assert ranking.top(1, "count:x") == ["layer0/cell/0"]
    best = ranking.for_feature("count:x")[0]
    assert best["spearman"] > 0.99 and best["test_metric"] > 0.95
    # a char detector: every gate of a unit without recurrence is a function of the char, so
    # several units separate y perfectly; the planted cell is among the perfect ones
    rows = {r["unit"]: r for r in ranking.for_feature("char:y")}
    assert rows["layer0/cell/1"]["auc"] > 0.999
    assert rows["layer0/cell/1"]["score"] == ranking.for_feature("char:y")[0]["score"]


def test_summary_line_names_the_units_the_probe_used() -> None:
    from lstmprobe.probes.ranking import _summary_line

    base = {"kind": "binary", "base_rate": 0.3, "n_defined": 100, "probe_metric": "auc"}
    probe = {"test_metric": 0.9, "control_metric": 0.5, "selectivity": 0.4}
    assert "probe on all units" in _summary_line(
        "quote", {**base, "probe": {**probe, "units": "all"}}
    )
    top = _summary_line("quote", {**base, "probe": {**probe, "units": 32}})
    assert "probe on top 32 units: held-out auc 0.900" in top


def test_the_interval_holds_the_score_it_is_an_interval_of(store) -> None:  # type: ignore[no-untyped-def]
    # a sample of a tenth of the positions: the score there is what the interval bootstraps
    sampled = rank_units(store, ["quote", "indent"], n_boot=100, max_probe_positions=500)
    everything = rank_units(store, ["quote", "indent"], n_boot=100)
    for ranking, n in ((sampled, 500), (everything, store.n_positions)):
        for name in ("quote", "indent"):
            assert 0.8 * n <= ranking.features[name]["interval_positions"] <= n
            for r in ranking.for_feature(name)[:10]:
                assert r["interval_low"] <= r["interval_score"] <= r["interval_high"], r
    for r in everything.for_feature("quote")[:10]:  # all positions: the same score, binned
        assert abs(r["interval_score"] - r["score"]) < 0.01, r
    table = sampled.format_table(3)
    assert "sample [95% interval]" in table
    assert "score: on all" in table and "the score on the" in table
    row = next(line for line in table.splitlines() if "layer0/cell/4" in line)
    r = sampled.for_feature("quote")[0]
    assert f"{r['interval_score']:.3f} [{r['interval_low']:.3f}, {r['interval_high']:.3f}]" in row


def test_extreme_and_non_finite_units_rank_without_numpy_warnings(tmp_path: Path) -> None:
    """Constant units, units of 1e30 (their squares overflow float32), inf and NaN: no numpy
    RuntimeWarning (pytest turns them into errors), one warning line, the planted unit first."""
    from lstmprobe.store import StoreWriter
    from lstmprobe.text import sequences

    text = BASE * 8
    vocab = Vocab.from_text(text)
    rng = np.random.default_rng(0)
    cell = rng.normal(size=(len(text), 5)).astype(np.float32)
    cell[:, 0] = 1.5  # constant
    cell[:, 1] *= 1e30
    cell[::50, 2] = np.inf
    cell[3::70, 3] = np.nan
    cell[:, 4] = 2 * get_feature("quote").labels(text) - 1 + 0.3 * cell[:, 4]
    writer = StoreWriter(
        tmp_path / "acts.h5", tokens=vocab.encode(text), sequences=sequences(text, "line"),
        vocab=vocab, layout={"layer0/cell": 5}, dtype="float32", model_summary={},
        model_sha256="0" * 64, corpus_sha256="0" * 64, has_next_logprob=False, run_config={},
    )  # fmt: skip
    writer.write(0, {"layer0/cell": cell})
    lines: list[str] = []
    with ActivationStore(writer.finish()) as s:
        ranking = rank_units(s, ["quote", "indent", "count:a"], n_boot=20, warn=lines.append)
    assert ranking.top(1, feature="quote") == ["layer0/cell/4"]
    assert [line for line in lines if "inf or NaN" in line] == [
        "2 units (layer0/cell/2, layer0/cell/3) hold inf or NaN at 38 of the probe positions; "
        "the probes use the unit's finite range there (record in float32 if a float16 "
        "recording overflowed)"
    ]
    assert "layer0/cell/0" in ranking.format_table(5)


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


def test_the_wide_probe_is_compared_with_the_current_char_alone(store) -> None:  # type: ignore[no-untyped-def]
    ranking = rank_units(store, ["quote", "char:y"], n_boot=20, k_max=4)
    quote = ranking.features["quote"]["probe"]
    assert quote["control"] == "char-type"
    # in this small code sample many chars occur only inside strings, so the char alone does
    # well; the planted unit still knows more than the char
    assert quote["test_metric"] > quote["char_baseline_metric"]
    assert quote["over_char_baseline"] == pytest.approx(
        quote["test_metric"] - quote["char_baseline_metric"]
    )
    # char:y is the current char: the char alone already knows it, nothing is left beyond it
    chars = ranking.features["char:y"]["probe"]
    assert chars["char_baseline_metric"] > 0.99
    assert ranking.features["quote"]["unit_metric"] == "auc"
    line = ranking.format_table(2)
    assert "current char alone" in line and "sign fitted on train blocks" in line
