"""Patching through the library: exact against a per-step reference with the decoder, the
meaning of a whole-state patch, the flip rate and its random sets, sweeps, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmprobe import Recorder
from lstmprobe.causal.patching import patch, patch_pairs, patch_sweep, sweep_columns
from lstmprobe.errors import AblationError, InterventionError
from lstmprobe.models import CharLSTM, ModelConfig
from lstmprobe.text import Pair, Vocab
from tests.reference import gru_steps, lstm_steps

VOCAB = Vocab(tuple("ABxYab\n"))


def _model(cell: str = "lstm", layers: int = 1, seed: int = 0) -> CharLSTM:
    torch.manual_seed(seed)
    config = ModelConfig(len(VOCAB), 5, num_layers=layers, cell=cell, embedding_dim=3)  # type: ignore[arg-type]
    return CharLSTM(config).eval()


def _states(model: CharLSTM, text: str, edits=()):  # type: ignore[no-untyped-def]
    """The per-step reference of a 1-layer model over ``text`` (its own loop, tests/reference)."""
    ids = torch.from_numpy(VOCAB.encode(text))
    x = model.embed(ids)
    rnn = model.rnn
    w = [getattr(rnn, f"{n}_l0") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    if isinstance(rnn, torch.nn.LSTM):
        return lstm_steps(x, *w, torch.zeros(5), torch.zeros(5), edits=edits)
    return gru_steps(x, *w, torch.zeros(5), edits=edits)


@pytest.mark.parametrize("cell,quantity", [("lstm", "cell"), ("lstm", "hidden"),
                                           ("lstm", "forget_gate"), ("gru", "hidden"),
                                           ("gru", "update_gate")])  # fmt: skip
def test_patch_equals_the_per_step_reference_and_the_decoder(cell, quantity):
    """The source's recorded values set into the target at its last 2 positions (aligned from
    the end), run by the reference loop, then the decoder: the same next-char distribution."""
    model = _model(cell)
    source, target = "AxxxY", "BxxxxxxY"
    units = [f"layer0/{quantity}/1", f"layer0/{quantity}/4"]
    with torch.no_grad():
        src = _states(model, source)[quantity][:, [1, 4]]
        table = torch.zeros(len(target), 2)
        table[-2:] = src[-2:]
        mask = np.zeros(len(target), bool)
        mask[-2:] = True
        ref = _states(model, target, [(quantity, [1, 4], table, mask)])
        expected = torch.log_softmax(model.decoder(ref["hidden"][-1]).double(), -1).numpy()
        before = torch.log_softmax(model.decoder(_states(model, target)["hidden"][-1]).double(), -1)
    r1 = patch(model, VOCAB, source, target, units, at=-2)  # patches -2 only
    assert r1.positions == (6,) and r1.source_positions == (3,)
    with torch.no_grad():
        ids = torch.from_numpy(VOCAB.encode(target))[None]
        from lstmprobe import Intervention

        iv = Intervention(f"layer0/{quantity}", "patch", units=[1, 4], source=src.numpy(),
                          align="end", mask=mask)  # fmt: skip
        with Recorder(model, interventions=[iv]):
            logits, _ = model(ids)
    np.testing.assert_allclose(
        torch.log_softmax(logits[0, -1].double(), -1).numpy(), expected, atol=1e-5
    )
    np.testing.assert_allclose(r1.before, before.numpy(), atol=1e-6)


def test_patching_the_whole_hidden_state_at_the_last_position_gives_the_sources_prediction():
    """The decoder reads only the last hidden state: patched whole, the target predicts exactly
    what the source predicts; every pair flips to the source's answer."""
    model = _model(layers=1)
    units = [f"layer0/hidden/{i}" for i in range(5)]
    r = patch(model, VOCAB, "AxxY", "BxxxxxY", units)
    np.testing.assert_allclose(r.after, r.source_next, atol=1e-6)
    assert r.kl_bits > 0
    answers = {}
    for src in ("AxY", "BxxY", "AxxxxY"):
        answers[src] = patch(model, VOCAB, src, src, units).source_answer
    pairs = [Pair(s, t, answers[s]) for s, t in (("AxY", "BxxxY"), ("BxxY", "AY"),
                                                 ("AxxxxY", "BxY"))]  # fmt: skip
    res = patch_pairs(model, VOCAB, pairs, [units], n_random=0)
    (c,) = res.conditions
    assert c.flip_rate == 1.0 and c.flips.all()
    assert c.p_value is None and "no random units" in c.verdict(res.base_rate)


def test_a_patch_from_the_target_itself_changes_nothing():
    model = _model(layers=2)
    r = patch(model, VOCAB, "BxxY", "BxxY", ["layer0/cell/2", "layer1/hidden/0"], at="all")
    np.testing.assert_allclose(r.after, r.before, atol=1e-6)
    assert r.kl_bits == pytest.approx(0.0, abs=1e-6)
    assert r.positions == (0, 1, 2, 3)


def test_flip_rates_against_random_sets_and_the_p_value():
    model = _model(layers=1, seed=3)
    pairs = [Pair("A" + "x" * k + "Y", "B" + "x" * (k + 1) + "Y", "a", i + 1) for i, k in
             enumerate(range(1, 9))]  # fmt: skip
    res = patch_pairs(model, VOCAB, pairs, [["layer0/cell/0"], ["layer0/cell/0", "layer0/cell/1"]],
                      n_random=3, seed=1)  # fmt: skip
    assert res.n_pairs == 8 and 0 <= res.base_rate <= 1
    one, two = res.conditions
    assert len(one.random_units) == 3 and all(len(u) == 1 for u in one.random_units)
    assert all(len(u) == 2 for u in two.random_units)
    assert not any("layer0/cell/0" in u or "layer0/cell/1" in u for u in one.random_units)
    # the p-value is the rank among the random flip rates, its floor 1 / (1 + n)
    hits = sum(r >= one.flip_rate for r in one.random_flip_rates)
    assert one.p_value == pytest.approx((1 + hits) / 4) and one.p_floor == 0.25
    d = res.to_dict()
    assert d["conditions"][1]["random"]["n"] == 3
    assert "p = " in d["conditions"][0]["verdict"]
    again = patch_pairs(model, VOCAB, pairs, [["layer0/cell/0"], ["layer0/cell/0", "layer0/cell/1"]],
                        n_random=3, seed=1)  # fmt: skip
    assert again.conditions[0].random_units == one.random_units  # seeded


def test_a_sweep_patches_each_unit_at_each_position_alone():
    model = _model(layers=1, seed=4)
    pairs = [Pair("AxxxY", "BxY", "a"), Pair("BxY", "AxxxxY", "b")]
    cols = sweep_columns(pairs, VOCAB, "end", "error")
    assert cols == [-1, -2, -3]  # the longest shared stretch (3 chars: BxY and BxY)
    rows = [["layer0/cell/0"], ["layer0/hidden/3"]]
    sw = patch_sweep(model, VOCAB, pairs, rows, cols)
    assert sw.flip_rate.shape == (2, 3) and sw.pairs.tolist() == [2, 2, 2]
    assert sw.labels == ("Y", "x", "")  # the first char differs between the pairs
    for i, row in enumerate(rows):
        for j, c in enumerate(cols):
            one = patch_pairs(model, VOCAB, pairs, [row], at=c, n_random=0).conditions[0]
            assert sw.flip_rate[i, j] == one.flip_rate
            assert sw.delta_bits[i, j] == pytest.approx(one.delta_bits)
    # a position only some pairs have is scored over those
    long_pairs = [Pair("AxxxxY", "BxxxxY", "a"), Pair("AY", "BY", "a")]
    sw = patch_sweep(
        model, VOCAB, long_pairs, rows[:1], sweep_columns(long_pairs, VOCAB, "end", "error")
    )
    assert sw.pairs.tolist() == [2, 2, 1, 1, 1, 1]


def test_bad_patches_say_what_to_do():
    model = _model()
    with pytest.raises(InterventionError, match=r"different lengths .*align"):
        patch(model, VOCAB, "AxY", "BxxY", ["layer0/cell/0"], at="all")
    r = patch(model, VOCAB, "AxY", "BxxY", ["layer0/cell/0"], at="all", align="end")
    assert r.positions == (1, 2, 3)
    with pytest.raises(InterventionError, match="position 9 is beyond the target"):
        patch(model, VOCAB, "AxY", "BxxY", ["layer0/cell/0"], at=9)
    with pytest.raises(InterventionError, match="line 7: target position 0 has no source"):
        patch_pairs(model, VOCAB, [Pair("AY", "BxxY", "a", 7)], [["layer0/cell/0"]], at=0,
                    n_random=0)  # fmt: skip
    from lstmprobe.errors import UnitError

    with pytest.raises(UnitError, match="does not exist"):
        patch(model, VOCAB, "AY", "BY", ["layer0/cell/9"])
    with pytest.raises(AblationError, match="n_random"):
        patch_pairs(model, VOCAB, [Pair("AY", "BY", "a")], [["layer0/cell/0"]], n_random=50)
    headless = CharLSTM(ModelConfig(len(VOCAB), 5, embedding_dim=3, decoder=False))
    with pytest.raises(InterventionError, match="no decoder"):
        patch(headless, VOCAB, "AY", "BY", ["layer0/cell/0"])
