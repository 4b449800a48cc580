"""An effect against random units: summaries, p-values, spreads and the verdict line."""

from __future__ import annotations

import numpy as np
import pytest

from lstmprobe.causal.effects import (
    AblationCondition,
    condition_entry,
    loss_summary,
    mean_sd,
    p_value,
    verdict,
)


def test_the_loss_summary_is_read_where_the_feature_is_on_and_off():
    base = np.array([1.0, 2.0, 1.0, 3.0, np.nan])
    bits = np.array([2.0, 2.5, 1.0, 4.0, np.nan])
    on = np.array([1, 1, 0, -1, -1], dtype=np.int8)
    s = loss_summary(bits, base, on)
    assert s["positions"] == 4 and s["delta"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert s["delta_on"] == pytest.approx(0.75) and s["positions_on"] == 2
    assert s["delta_off"] == 0.0 and s["positions_off"] == 1
    assert s["bits_on"] == pytest.approx(2.25) and s["base_bits_off"] == 1.0
    assert "delta_on" not in loss_summary(bits, base, None)


def test_p_values_count_the_random_sets_at_least_as_strong():
    draws = [0.1, 0.5, 0.2, None, 0.9]
    assert p_value(0.5, draws) == (1 + 2) / (1 + 4)
    assert p_value(0.5, draws, larger=False) == (1 + 3) / (1 + 4)  # accuracy: lower is stronger
    assert p_value(1.0, draws) == 1 / 5  # the smallest possible with 4 draws
    m, sd = mean_sd(draws)
    assert m == pytest.approx(np.mean([0.1, 0.5, 0.2, 0.9]))
    assert sd == pytest.approx(np.std([0.1, 0.5, 0.2, 0.9], ddof=1))


def _run(delta, delta_on=None, delta_off=None, accuracy=None):
    summary = {"delta": delta, "positions": 100}
    if delta_on is not None:
        summary |= {"delta_on": delta_on, "delta_off": delta_off, "positions_on": 10}
    comp = None if accuracy is None else {"accuracy": accuracy, "by_n": {"1": accuracy}}
    return summary, None, comp


def test_a_condition_entry_sets_its_effect_beside_the_random_draws():
    settings = {"mode": "zero", "value": None, "feature": "quote", "seed": 3,
                "feature_at": "state", "on": "quote = 1"}  # fmt: skip
    draws = [("layer0/cell/1",), ("layer0/cell/2",)]
    measured = condition_entry(
        ("layer0/cell/0",),
        _run(0.2, delta_on=0.5, delta_off=0.01),
        draws,
        [_run(0.1, 0.1, 0.0), _run(0.3, 0.6, 0.02)],
        settings=settings,
        base_task=None,
        possible=9,
    )
    entry = measured.to_dict()
    # the reading rule and the p floor travel with the condition, and are read back
    assert entry["feature_at"] == "state" and entry["on"] == "quote = 1"
    assert entry["random"]["p_floor"] == pytest.approx(1 / 3) and entry["random"]["possible"] == 9
    assert AblationCondition.from_dict(entry, "c", []) == measured
    r = entry["random"]
    assert entry["units"] == ["layer0/cell/0"] and entry["feature"] == "quote"
    assert r["n"] == 2 and r["seed"] == 3 and r["p_value_of"] == "delta_on"
    assert r["p_value"] == pytest.approx(2 / 3)  # one of two draws costs more where it is on
    assert r["delta_on_mean"] == pytest.approx(0.35)
    assert r["delta_on_sd"] == pytest.approx(np.std([0.1, 0.6], ddof=1))
    assert [d["units"] for d in r["draws"]] == [["layer0/cell/1"], ["layer0/cell/2"]]
    assert entry["verdict"].startswith(
        "zeroing layer0/cell/0 costs +0.500 bits/char where quote = 1 (read at t, where the model"
    )
    assert (
        "2 random same-size sets cost +0.350 ± 0.354; p = 0.667 (floor 0.333 with 2 random"
        in (entry["verdict"])
    )


def test_task_accuracy_and_no_draws():
    settings = {"mode": "clamp", "value": 0.5, "feature": None, "seed": 0}
    entry = condition_entry(
        ("layer0/cell/0", "layer0/cell/1"),
        _run(0.4, accuracy=0.2),
        [("layer0/cell/2",)],
        [_run(0.0, accuracy=0.9)],
        settings=settings,
        base_task={"accuracy": 1.0, "by_n": {"1": 1.0}},
    ).to_dict()
    assert entry["value"] == 0.5 and entry["random"]["p_value_of"] == "delta"
    assert entry["random"]["task_p_value"] == 1 / 2
    assert entry["random"]["task_accuracy_by_n_mean"] == {"1": 0.9}
    line = entry["verdict"]
    assert line.startswith("clamping to 0.5 2 units (layer0/cell/0, layer0/cell/1) costs +0.400")
    assert "task accuracy 100.0% -> 20.0% (random sets: 90.0% ± 0.0%, p = 0.500)" in line
    alone = condition_entry(
        ("layer0/cell/3",), _run(0.1), [], [], settings=settings, base_task=None
    )
    assert alone.random.p_value is None
    assert verdict(alone).endswith("no random units compared (none drawn)")
    assert AblationCondition.from_dict(alone.to_dict(), "c", []) == alone
