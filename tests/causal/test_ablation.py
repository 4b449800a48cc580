"""Ablation effects: exact losses, on/off where the model predicts, random draws and p-values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lstmprobe import Intervention, Recorder
from lstmprobe.causal import AblationError, next_char_bits, run_ablation, unit_means
from lstmprobe.causal.ablation import feature_on_off
from lstmprobe.causal.units import Condition, draw_random
from lstmprobe.errors import CorpusError, FeatureError, UnitError
from lstmprobe.features import get_feature
from lstmprobe.lm import task_completion
from lstmprobe.lm.tasks import generate
from lstmprobe.models import CharLSTM, LoadedModel, ModelConfig
from lstmprobe.names import Key, Unit
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.store import ActivationStore
from lstmprobe.text import Vocab, sequences
from tests.conftest import make_model


@pytest.mark.parametrize("reset", ["none", "line"])
def test_the_baseline_loss_is_the_recorded_next_char_logprob(tmp_path, tiny, corpus, reset):
    out = record_corpus(
        tiny, corpus, tmp_path / "acts.h5", RecordOptions(reset=reset, dtype="float32")
    )
    seqs = sequences(corpus, reset)
    bits = next_char_bits(tiny.model, tiny.vocab.encode(corpus), seqs, chunk_size=13)
    with ActivationStore(out.path) as store:
        recorded = -store.next_logprob / math.log(2)
    np.testing.assert_array_equal(np.isnan(bits), np.isnan(recorded))
    np.testing.assert_allclose(bits[~np.isnan(bits)], recorded[~np.isnan(recorded)], atol=1e-5)


def test_chunked_fused_losses_equal_the_per_step_loop_over_the_whole_text(tiny, corpus):
    tokens = tiny.vocab.encode(corpus)
    seqs = sequences(corpus)
    for iv in (
        Intervention("layer0/hidden/1", "clamp", value=0.3),
        Intervention("layer1/cell/2", "zero"),
        Intervention("layer0/forget_gate/0", "clamp", value=0.9),
    ):
        fused = next_char_bits(tiny.model, tokens, seqs, [iv], chunk_size=7, method="fused")
        steps = next_char_bits(tiny.model, tokens, seqs, [iv], chunk_size=10_000, method="steps")
        np.testing.assert_allclose(fused, steps, atol=1e-4)
        plain = next_char_bits(tiny.model, tokens, seqs)
        assert np.nanmax(np.abs(fused - plain)) > 1e-4  # the intervention does something


def test_the_feature_is_read_where_the_model_stands_when_it_predicts():
    text = 'a"bc"d\n'
    on = feature_on_off(get_feature("quote"), text, sequences(text))
    quote = get_feature("quote").labels(text)
    # position t predicts char t+1: on where the label of t is 1 -- predicting the opening
    # quote (from a) is outside the string, predicting the closing one (from c) inside it
    assert on[:-1].tolist() == [int(v) for v in quote[:-1]] == [0, 1, 1, 1, 0, 0]
    assert on[-1] == -1  # the last char predicts nothing


def test_the_other_rule_reads_the_feature_at_the_predicted_char():
    text = 'a"bc"d\n'
    on = feature_on_off(get_feature("quote"), text, sequences(text), at="target")
    quote = get_feature("quote").labels(text)
    assert on[:-1].tolist() == [int(v) for v in quote[1:]] == [1, 1, 1, 0, 0, 0]
    assert on[-1] == -1


def test_a_threshold_decides_on_for_a_continuous_feature():
    text = "aaaXbbb\n"
    seqs = sequences(text)
    plain = feature_on_off(get_feature("count:a"), text, seqs)
    assert plain.tolist() == [1, 1, 1, 1, 1, 1, 0, -1]  # count:a is 3,3,2,1,0 after X
    above = feature_on_off(get_feature("count:a"), text, seqs, threshold=2)
    assert above.tolist() == [0, 0, 1, 1, 0, 0, 0, -1]


def test_the_rule_is_named_in_the_result_and_the_verdict(tiny, corpus):
    got = run_ablation(
        tiny.model, tiny.vocab, corpus, [["layer0/cell/1"]], feature=get_feature("quote"),
        n_random=2,
    )  # fmt: skip
    c = got.conditions[0]
    assert got.settings["feature_at"] == c.feature_at == "state"
    assert c.on == "quote = 1" and "where quote = 1 (read at t, where the model" in c.verdict
    assert c.random.p_floor == pytest.approx(1 / 3)
    assert (
        c.to_dict()["feature_at"] == "state"
        and c.to_dict()["random"]["p_floor"] == c.random.p_floor
    )
    other = run_ablation(
        tiny.model, tiny.vocab, corpus, [["layer0/cell/1"]], feature=get_feature("indent"),
        n_random=2, feature_at="target", threshold=3,
    )  # fmt: skip
    c = other.conditions[0]
    assert c.feature_at == "target" and c.on == "indent > 3"
    assert "read at the predicted char" in c.verdict


def test_by_default_p_can_reach_001_or_every_distinct_set_is_drawn(tiny, corpus):
    # the tiny model's layer0/cell has 3 units: 2 other single units exist
    got = run_ablation(tiny.model, tiny.vocab, corpus, [["layer0/cell/1"]])
    r = got.conditions[0].random
    assert r.n == r.possible == 2 and r.p_floor == pytest.approx(1 / 3)
    verdict = got.conditions[0].verdict
    assert "(all there are)" in verdict or "floor 0.333" in verdict


def test_random_draws_are_distinct_seeded_and_exclude_the_chosen_units():
    cond = Condition(("layer0/cell/1", "layer0/cell/4"))
    assert cond.units == (Unit.parse("layer0/cell/1"), Unit.parse("layer0/cell/4"))
    pools = {Key.parse("layer0/cell"): [0, 2, 3, 5, 6, 7]}
    a = draw_random(cond, pools, 10, seed=3)
    assert a == draw_random(cond, pools, 10, seed=3)
    assert len({frozenset(d) for d in a}) == 10
    assert all(len(d) == 2 and not set(cond.units) & set(d) for d in a)
    assert a != draw_random(cond, pools, 10, seed=4)
    with pytest.raises(AblationError, match=r"only 6 other layer0/cell units exist \(15 sets\)"):
        draw_random(cond, pools, 16, seed=0)


@pytest.fixture
def recorded(tmp_path, tiny, corpus):
    out = record_corpus(tiny, corpus, tmp_path / "acts.h5", RecordOptions(dtype="float32"))
    return out.path


def test_an_ablation_reports_every_field_against_random_units(tiny, corpus, recorded):
    feature = get_feature("quote")
    with ActivationStore(recorded) as store:
        means = unit_means(store, ["layer0/cell", "layer1/hidden"])
        direct = store.read("layer0/cell").mean(0)
    np.testing.assert_allclose(means[Key.parse("layer0/cell")], direct, atol=1e-6)
    result = run_ablation(
        tiny.model,
        tiny.vocab,
        corpus,
        [["layer0/cell/1"], ["layer0/cell/1", "layer1/hidden/0"]],
        feature=feature,
        mode="mean",
        means=means,
        n_random=2,
        seed=1,
    )
    for c in (c.to_dict() for c in result.conditions):
        for key in ("units", "mode", "feature", "bits_on", "bits_off", "delta_on", "delta_off",
                    "positions_on", "positions_off"):  # fmt: skip
            assert key in c
        for key in ("n", "delta_on_mean", "delta_on_sd", "delta_off_mean", "p_value"):
            assert key in c["random"]
        draws = c["random"]["draws"]
        assert c["random"]["n"] == len(draws) == 2
        hits = sum(d["delta_on"] >= c["delta_on"] for d in draws)
        assert c["random"]["p_value"] == pytest.approx((1 + hits) / 3)
        assert c["random"]["delta_on_mean"] == pytest.approx(
            np.mean([d["delta_on"] for d in draws])
        )
        assert c["delta_on"] == pytest.approx(c["bits_on"] - c["base_bits_on"])
        assert c["verdict"].startswith("mean-ablating")
    # the second condition draws one random layer0/cell and one layer1/hidden unit
    both = result.conditions[1].to_dict()["random"]["draws"]
    assert all(
        sorted(u.rsplit("/", 1)[0] for u in d["units"]) == ["layer0/cell", "layer1/hidden"]
        for d in both
    )
    # the per-char difference is the intervened loss minus the plain one
    with ActivationStore(recorded) as store:
        base = -store.next_logprob / math.log(2)
    np.testing.assert_allclose(result.base_bits, base, atol=1e-5, equal_nan=True)
    iv = [
        Intervention("layer0/cell", "mean", value=[means[Key.parse("layer0/cell")][1]], units=[1])
    ]
    ablated = next_char_bits(tiny.model, tiny.vocab.encode(corpus), sequences(corpus), iv)
    np.testing.assert_allclose(
        result.deltas[0], ablated - result.base_bits, atol=1e-5, equal_nan=True
    )
    on = result.feature_on == 1
    assert result.conditions[0].positions_on == int(on.sum())
    assert result.conditions[0].delta_on == pytest.approx(
        float(np.mean(result.deltas[0][on])), abs=1e-5
    )


def test_bad_ablations_say_why(tiny, corpus):
    with pytest.raises(FeatureError, match="never on"):
        run_ablation(
            tiny.model, tiny.vocab, corpus, [["layer0/cell/0"]], feature=get_feature("char:Q")
        )
    with pytest.raises(UnitError, match=r"layer0/cell has units 0\.\.2"):
        run_ablation(tiny.model, tiny.vocab, corpus, [["layer0/cell/7"]])
    with pytest.raises(UnitError, match=r"it has layer0/input_gate/0\.\.2"):
        run_ablation(tiny.model, tiny.vocab, corpus, [["layer3/cell/0"]])
    with pytest.raises(AblationError, match="only 2 other"):
        run_ablation(tiny.model, tiny.vocab, corpus, [["layer0/cell/0"]], n_random=3)
    with pytest.raises(CorpusError, match="synthetic tasks"):
        run_ablation(tiny.model, tiny.vocab, corpus, [["layer0/cell/0"]], n_random=1, task=True)
    headless = make_model(tiny.vocab, decoder=False)
    with pytest.raises(AblationError, match=r"no decoder.*dynamics"):
        run_ablation(headless, tiny.vocab, corpus, [["layer0/cell/0"]])
    one_char = corpus[0]
    with pytest.raises(CorpusError, match="no char of this corpus has a next char"):
        run_ablation(tiny.model, tiny.vocab, one_char, [["layer0/cell/0"]], n_random=1)


def test_task_accuracy_with_and_without_the_units():
    lines = generate("counter", 60, seed=0, max_n=4)
    text = "".join(line + "\n" for line in lines)
    vocab = Vocab.from_text(text)
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=len(vocab), hidden_size=5)).eval()
    result = run_ablation(
        model, vocab, text, [["layer0/cell/2"]], reset="line", n_random=3, task=True,
        feature=get_feature("count:a"),
    )  # fmt: skip
    c = result.conditions[0].to_dict()
    plain = task_completion(model, vocab, text.splitlines(keepends=True), "counter")
    assert c["base_task_accuracy"] == plain.accuracy
    with Recorder(model, interventions=[Intervention("layer0/cell/2")], keep=False):
        ablated = task_completion(model, vocab, text.splitlines(keepends=True), "counter")
    assert c["task_accuracy"] == ablated.accuracy
    assert set(c["task_accuracy_by_n"]) == {str(k) for k in ablated.by_key}
    assert len(c["random"]["draws"]) == 3
    accs = [d["task_accuracy"] for d in c["random"]["draws"]]
    assert c["random"]["task_accuracy_mean"] == pytest.approx(np.mean(accs))
    assert "task accuracy" in c["verdict"]


def test_without_a_feature_the_overall_effect_is_tested(vocab, corpus):
    loaded = LoadedModel(make_model(vocab, seed=3), vocab, "checkpoint")
    result = run_ablation(loaded.model, vocab, corpus, [["layer1/hidden/2"]], n_random=2)
    c = result.conditions[0].to_dict()
    assert c["feature"] is None and "bits_on" not in c
    assert c["random"]["p_value_of"] == "delta"
    assert c["delta"] == pytest.approx(float(np.nanmean(result.deltas[0])), abs=1e-5)


def test_the_saved_random_mean_is_the_mean_of_the_draws_per_char(tiny, corpus):
    tokens, seqs = tiny.vocab.encode(corpus), sequences(corpus)
    result = run_ablation(
        tiny.model, tiny.vocab, corpus, [["layer1/cell/0"], ["layer1/cell/1"]], n_random=1
    )
    base = next_char_bits(tiny.model, tokens, seqs)
    for c, mean_delta in zip(result.conditions, result.random_deltas):
        (draw,) = c.random.draws
        bits = next_char_bits(tiny.model, tokens, seqs, [Intervention(draw.units[0])])
        np.testing.assert_allclose(mean_delta, bits - base, atol=1e-5, equal_nan=True)


def test_a_feature_may_be_given_by_its_spec_as_rank_units_takes_it(tiny, corpus):
    units = [["layer1/cell/0"]]
    by_spec = run_ablation(tiny.model, tiny.vocab, corpus, units, feature="quote", n_random=2)
    built = run_ablation(
        tiny.model, tiny.vocab, corpus, units, feature=get_feature("quote"), n_random=2
    )
    assert by_spec.conditions[0].to_dict() == built.conditions[0].to_dict()
    assert by_spec.conditions[0].feature == "quote"
