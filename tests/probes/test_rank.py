"""rank_units on stores with planted units and on a hand-built LSTM: orderings, probes, controls."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmprobe.errors import FeatureError
from lstmprobe.features import get_feature
from lstmprobe.models import CharLSTM, LoadedModel, ModelConfig
from lstmprobe.probes import (
    rank_units,
)
from lstmprobe.store import ActivationStore
from lstmprobe.text import Vocab
from tests.stores import BASE, build_store

# --- ranking --------------------------------------------------------------------------------


def test_planted_units_rank_first(store) -> None:  # type: ignore[no-untyped-def]
    ranking = rank_units(store, ["quote", "indent"], n_boot=50)
    assert ranking.top(1, "quote") == ["layer0/cell/4"]
    assert ranking.top(1, "indent") == ["layer0/hidden/1"]
    first = ranking.for_feature("quote")[0]
    assert first.rank == 1 and first.sign == 1 and first.score > 0.95  # type: ignore[operator]
    assert first.test_metric > 0.95  # type: ignore[operator]
    assert first.selectivity > 0.2  # type: ignore[operator]
    assert first.interval_low <= first.score + 0.01 <= first.interval_high + 0.02  # type: ignore[operator]
    summary = ranking.features["quote"]
    assert [c.k for c in summary.curve or ()] == [1, 2, 4, 8, "all"]
    assert summary.probe is not None and summary.probe.test_metric > 0.95  # type: ignore[operator]
    assert summary.probe.selectivity > 0.2  # type: ignore[operator]
    indent_row = ranking.for_feature("indent")[0]
    assert indent_row.sign == -1 and indent_row.test_metric > 0.9  # type: ignore[operator]
    # the whole ordering: every unit of every dataset, once per feature
    assert len(ranking) == 2 * 12
    assert [r.rank for r in ranking.for_feature("indent")] == list(range(1, 13))


def test_the_all_units_probe_is_skipped_beyond_its_work_bound(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from lstmprobe.probes import rank

    work = store.n_positions * len(store.units()) ** 2  # the sample is every position here
    monkeypatch.setattr(rank, "ALL_UNITS_WORK", work)
    at_bound = rank_units(store, "quote", n_boot=20).features["quote"]
    assert [c.k for c in at_bound.curve or ()] == [1, 2, 4, 8, "all"]
    monkeypatch.setattr(rank, "ALL_UNITS_WORK", work - 1)
    beyond = rank_units(store, "quote", n_boot=20).features["quote"]
    assert [c.k for c in beyond.curve or ()] == [1, 2, 4, 8]
    assert beyond.probe is not None and beyond.probe.units == 8


def test_constant_feature_is_skipped_with_a_warning(store) -> None:  # type: ignore[no-untyped-def]
    lines: list[str] = []
    ranking = rank_units(store, ["quote", "char:Z"], probe=False, warn=lines.append)
    assert "constant" in lines[0] and "char:Z" in lines[0]
    assert not ranking.features["char:Z"].scored
    assert ranking.top(1) == ["layer0/cell/4"]  # the one scored feature
    with pytest.raises(FeatureError, match="not in this ranking"):
        ranking.top(1, "indent")


def test_no_feature_names_known_features(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FeatureError, match=r"give at least one feature \(`known_features\(\)`"):
        rank_units(store, [], probe=False)


def test_several_features_need_a_name_for_top(store) -> None:  # type: ignore[no-untyped-def]
    ranking = rank_units(store, ["quote", "indent"], probe=False)
    with pytest.raises(FeatureError, match="say which one"):
        ranking.top(3)


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
    assert best.spearman > 0.99 and best.test_metric > 0.95  # type: ignore[operator]
    # a char detector: every gate of a unit without recurrence is a function of the char, so
    # several units separate y perfectly; the planted cell is among the perfect ones
    rows = {r.name: r for r in ranking.for_feature("char:y")}
    assert rows["layer0/cell/1"].auc > 0.999  # type: ignore[operator]
    assert rows["layer0/cell/1"].score == ranking.for_feature("char:y")[0].score


def test_the_interval_holds_the_score_it_is_an_interval_of(store) -> None:  # type: ignore[no-untyped-def]
    # a sample of a tenth of the positions: the score there is what the interval bootstraps
    sampled = rank_units(store, ["quote", "indent"], n_boot=100, max_probe_positions=500)
    everything = rank_units(store, ["quote", "indent"], n_boot=100)
    for ranking, n in ((sampled, 500), (everything, store.n_positions)):
        for name in ("quote", "indent"):
            assert 0.8 * n <= ranking.features[name].interval_positions <= n  # type: ignore[operator]
            for r in ranking.for_feature(name)[:10]:
                assert r.interval_low <= r.interval_score <= r.interval_high, r  # type: ignore[operator]
    for r in everything.for_feature("quote")[:10]:  # all positions: the same score, binned
        assert abs(r.interval_score - r.score) < 0.01, r  # type: ignore[operator]
    table = sampled.format_table(3)
    assert "sample [95% interval]" in table
    assert "score: on all" in table and "the score on the" in table
    row = next(line for line in table.splitlines() if "layer0/cell/4" in line)
    r = sampled.for_feature("quote")[0]
    assert f"{r.interval_score:.3f} [{r.interval_low:.3f}, {r.interval_high:.3f}]" in row


def test_extreme_and_non_finite_units_rank_without_numpy_warnings(tmp_path: Path) -> None:
    """Constant units, units of 1e30 (their squares overflow float32), inf and NaN: no numpy
    RuntimeWarning (pytest turns them into errors), one warning line, the planted unit first."""
    from lstmprobe.store import RecordingSpec, StoreWriter
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
    writer = StoreWriter(tmp_path / "acts.h5", RecordingSpec(tokens=vocab.encode(text), sequences=sequences(text, "line"), vocab=vocab, layout={"layer0/cell": 5}, dtype="float32", model_summary={}, model_sha256="0" * 64, corpus_sha256="0" * 64, has_next_logprob=False, run_config={}))  # fmt: skip
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


def test_the_wide_probe_is_compared_with_the_current_char_alone(store) -> None:  # type: ignore[no-untyped-def]
    ranking = rank_units(store, ["quote", "char:y"], n_boot=20, k_max=4)
    quote = ranking.features["quote"].probe
    assert quote is not None and quote.control == "char-type"
    assert quote.test_metric is not None and quote.char_baseline_metric is not None
    # in this small code sample many chars occur only inside strings, so the char alone does
    # well; the planted unit still knows more than the char
    assert quote.test_metric > quote.char_baseline_metric
    assert quote.over_char_baseline == pytest.approx(quote.test_metric - quote.char_baseline_metric)
    # char:y is the current char: the char alone already knows it, nothing is left beyond it
    chars = ranking.features["char:y"].probe
    assert chars is not None and chars.char_baseline_metric > 0.99  # type: ignore[operator]
    assert ranking.features["quote"].unit_metric == "auc"
    line = ranking.format_table(2)
    assert "current char alone" in line and "sign fitted on train blocks" in line
