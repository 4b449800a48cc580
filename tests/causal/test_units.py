"""Which units an ablation takes: from a ranking or by name, checked against the recording."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from lstmprobe.causal import (
    AblationError,
    check_model_matches,
    check_selection,
    plan_ablation,
    top_conditions,
    unit_means,
)
from lstmprobe.cli import main
from lstmprobe.errors import StoreError
from lstmprobe.models import save_checkpoint
from lstmprobe.names import Key, Unit
from lstmprobe.probes import Ranking
from lstmprobe.probes.rows import FeatureSummary, RankingRow
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.store import ActivationStore


@pytest.fixture
def recorded(tmp_path, tiny, corpus):
    options = RecordOptions(dtype="float32", reset="line")
    return record_corpus(tiny, corpus, tmp_path / "acts.h5", options).path


@pytest.fixture
def ablate(tmp_path, tiny, corpus, recorded):
    """``lstmprobe ablate MODEL CORPUS --store acts.h5 --force ARGS``: the tiny model's file
    (its hash is not the recorded one's: --force) over the recorded corpus."""
    model = save_checkpoint(tmp_path / "model.pt", tiny.model, tiny.vocab)
    text = tmp_path / "corpus.txt"
    text.write_text(corpus, encoding="utf-8")
    base = ["ablate", str(model), str(text), "--store", str(recorded), "--force", "-q"]
    return lambda *args: CliRunner().invoke(main, [*base, *args])


def _write_ranking(store_path, units):
    rows = tuple(
        RankingRow("quote", i + 1, Unit.parse(u), score=1.0 - i / 10) for i, u in enumerate(units)
    )
    features = {
        "quote": FeatureSummary("quote", "binary"),
        "indent": FeatureSummary("indent", skipped="constant"),
    }
    ranking = Ranking(rows, features)
    with ActivationStore(store_path) as s:
        ranking.to_json(s.recording.rankings)


def test_the_top_units_of_a_feature_each_alone_then_together(recorded):
    _write_ranking(recorded, ["layer0/cell/2", "layer1/hidden/0", "layer0/cell/0"])
    with ActivationStore(recorded) as s:
        assert _names(top_conditions(s, "quote", 2)) == [
            ["layer0/cell/2"],
            ["layer1/hidden/0"],
            ["layer0/cell/2", "layer1/hidden/0"],
        ]
        assert _names(top_conditions(s, "quote", 1)) == [["layer0/cell/2"]]
        with pytest.raises(StoreError, match=r"no ranking for 'indent' \(it has quote, indent\)"):
            top_conditions(s, "indent", 2)


def test_no_rankings_file_says_how_to_make_one_in_python_and_on_the_command_line(recorded, ablate):
    with ActivationStore(recorded) as s, pytest.raises(StoreError) as caught:
        top_conditions(s, "quote", 2)
    assert f"`rank_units(store={recorded}, features=quote)`" in str(caught.value)
    result = ablate("--top", "2", "-f", "quote")
    assert result.exit_code == 1
    assert f"`lstmprobe find-neurons --store {recorded} -f quote`" in result.stderr


def test_a_plan_reads_the_recording_reset_means_and_where_results_go(recorded, tiny):
    with ActivationStore(recorded) as s:
        sha = s.model_sha256
        direct = s.read("layer0/cell").mean(0)
    plan = plan_ablation(recorded, sha, units=["layer0/cell/1", "layer0/cell/2"], mode="mean")
    assert _names(plan.conditions) == [["layer0/cell/1", "layer0/cell/2"]]
    assert plan.reset == "line"  # as recorded
    assert plan.saved_to == recorded.with_name("acts.ablations.h5")
    assert plan.store == {"store": str(recorded), "model_sha256": sha}
    assert plan.means is not None and list(plan.means) == [Key.parse("layer0/cell")]
    np.testing.assert_allclose(plan.means[Key.parse("layer0/cell")], direct, atol=1e-6)
    asked = plan_ablation(recorded, sha, units=["layer0/cell/1"], reset="none")
    assert asked.reset == "none" and asked.means is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        asked.reset = "line"  # type: ignore[misc]


def test_without_a_recording_a_plan_is_the_units_as_given(tmp_path):
    plan = plan_ablation(tmp_path / "none.h5", "", units=["layer0/cell/1"])
    assert _names(plan.conditions) == [["layer0/cell/1"]] and plan.reset == "none"
    assert plan.saved_to == tmp_path / "none.ablations.h5" and plan.store == {}
    for needs_store in (
        {"top": 2, "feature": "quote"},
        {"units": ["layer0/cell/1"], "mode": "mean"},
    ):
        with pytest.raises(StoreError, match="does not exist"):
            plan_ablation(tmp_path / "none.h5", "", **needs_store)  # type: ignore[arg-type]


def test_another_model_is_refused_unless_forced(recorded):
    with ActivationStore(recorded) as s:
        with pytest.raises(StoreError) as caught:
            check_model_matches(s, "f" * 64, model="other.pt")
        check_model_matches(s, "f" * 64, force=True)
        check_model_matches(s, "")  # a model without a hash is not checked
    message = str(caught.value)
    assert message.startswith("other.pt (sha256 ffffffffffff) is not the model recorded in")
    assert "pass `force=True`" in message and "--force" not in message
    with pytest.raises(StoreError, match="force=True"):
        plan_ablation(recorded, "f" * 64, units=["layer0/cell/1"])
    assert plan_ablation(recorded, "f" * 64, units=["layer0/cell/1"], force=True).conditions


def test_a_selection_is_units_or_the_top_of_a_feature(ablate):
    check_selection(["layer0/cell/1"], None, None)
    check_selection((), 3, "quote")
    cases = [
        ((["layer0/cell/1"], 3, "quote"), "give `units=U` or `top=K`, not both"),
        (((), None, None), "say which units: `units=layer0/cell/17`"),
        (((), 3, None), "`top=K` reads the ranking of a feature: give `feature=FEATURE`"),
    ]
    for args, message in cases:
        with pytest.raises(AblationError) as caught:
            check_selection(*args)  # type: ignore[arg-type]
        assert message in str(caught.value) and "--" not in str(caught.value)
    for extra, flags in (
        (["-u", "layer0/cell/1", "--top", "3", "-f", "quote"], "give --unit U or --top K"),
        ([], "say which units: --unit layer0/cell/17"),
        (["--top", "3"], "--top K reads the ranking of a feature: give -f FEATURE"),
    ):
        result = ablate(*extra)
        assert result.exit_code == 1 and flags in result.stderr, result.stderr


def test_unit_means_stream_over_the_recording(recorded):
    with ActivationStore(recorded) as s:
        means = unit_means(s, ["layer1/hidden", "layer1/hidden"])
        np.testing.assert_allclose(
            means[Key.parse("layer1/hidden")], s.read("layer1/hidden").mean(0), atol=1e-6
        )


def test_too_many_random_sets_name_the_parameter_or_the_flag(recorded, ablate):
    from lstmprobe.causal.units import Condition, draw_random

    pools = {Key.parse("layer0/cell"): [1, 2]}
    with pytest.raises(AblationError) as caught:
        draw_random(Condition(("layer0/cell/0",)), pools, 3, seed=0)
    assert str(caught.value).endswith("(2 sets); use `n_random=2` or fewer")
    result = ablate("-u", "layer0/cell/0", "--n-random", "3")
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("(2 sets); use --n-random 2 or fewer")
    assert "asks for 3 distinct random sets" in result.stderr and "--n-random 3" in result.stderr


def _names(conditions):
    return [[str(u) for u in c] for c in conditions]
