"""Interventions are exact: both implementations equal an independent per-step loop that edits
the state, the change reaches later layers and the decoder, and nothing is left behind."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from lstmprobe import Intervention, Recorder
from lstmprobe.errors import InterventionError, LstmprobeError, UnitError
from lstmprobe.models import CharLSTM, ModelConfig
from lstmprobe.record.fused import fusable
from lstmprobe.record.interventions import layer_edits
from tests.reference import gru_steps, lstm_steps

LSTM_QS = ("input_gate", "forget_gate", "candidate", "output_gate", "cell", "hidden")
GRU_QS = ("reset_gate", "update_gate", "candidate", "hidden")
T = 9


def _weights(module, k):
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return [getattr(module, f"{n}_l{k}") for n in names]


def _reference(module, x, h0, c0, edits_by_layer):
    """Per-layer reference outputs of one sequence x [T, in]; edits per layer index."""
    is_lstm = isinstance(module, nn.LSTM)
    values, layer_input = {}, x
    for k in range(module.num_layers):
        edits = edits_by_layer.get(k, [])
        w_hr = getattr(module, f"weight_hr_l{k}", None) if getattr(module, "proj_size", 0) else None
        if is_lstm:
            ref = lstm_steps(layer_input, *_weights(module, k), h0[k], c0[k], w_hr, edits=edits)
        else:
            ref = gru_steps(layer_input, *_weights(module, k), h0[k], edits=edits)
        for q, v in ref.items():
            values[f"layer{k}/{q}"] = v
        layer_input = ref["hidden"]
    return values


def _value(mode, q, rng):
    if mode == "zero":
        return None
    if q in ("candidate", "cell", "hidden"):
        return float(rng.uniform(-0.9, 0.9))
    return float(rng.uniform(0.05, 0.95))


CASES = [
    (cls, q, mode, masked, layer)
    for cls, qs in ((nn.LSTM, LSTM_QS), (nn.GRU, GRU_QS))
    for q, mode, masked, layer in itertools.product(
        qs, ("zero", "mean", "clamp"), (False, True), (0, 1)
    )
]


@pytest.mark.parametrize("method", ["fused", "steps"])
@pytest.mark.parametrize(
    "cls,q,mode,masked,layer",
    CASES,
    ids=[f"{c.__name__}-{q}-{m}-{'mask' if k else 'all'}-l{la}" for c, q, m, k, la in CASES],
)
def test_an_intervention_equals_a_per_step_loop_that_edits_the_state(
    cls, q, mode, masked, layer, method
):
    torch.manual_seed(7)
    rng = np.random.default_rng(3)
    module = cls(3, 4, num_layers=2, batch_first=True).eval()
    x = torch.randn(2, T, 3)
    is_lstm = cls is nn.LSTM
    h0 = torch.randn(2, 2, 4) * 0.5
    c0 = torch.randn(2, 2, 4) * 0.5
    hx = (h0, c0) if is_lstm else h0
    units = [1, 3]
    value = _value(mode, q, rng)
    masks = rng.random((2, T)) < 0.5 if masked else None
    iv = Intervention(f"layer{layer}/{q}", mode, value=value, units=units, mask=masks)
    with torch.no_grad(), Recorder(module, interventions=[iv], method=method) as rec:
        out, state = module(x, hx)
    for b in range(2):
        mask_b = None if masks is None else masks[b]
        edits = {layer: [(q, units, iv.values, mask_b)]}
        ref = _reference(module, x[b], h0[:, b], c0[:, b], edits)
        for key, values in ref.items():
            torch.testing.assert_close(rec.activations[key][b], values, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out[b], ref["layer1/hidden"], rtol=1e-5, atol=1e-5)
        h_n = state[0] if is_lstm else state
        torch.testing.assert_close(
            h_n[layer, b], ref[f"layer{layer}/hidden"][-1], atol=1e-5, rtol=0
        )
        if is_lstm:
            torch.testing.assert_close(
                state[1][layer, b], ref[f"layer{layer}/cell"][-1], atol=1e-5, rtol=0
            )


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_an_intervention_that_never_applies_changes_nothing_exactly(cls):
    torch.manual_seed(0)
    for layers in (1, 2):
        module = cls(3, 5, num_layers=layers, batch_first=True).eval()
        x = torch.randn(3, 8, 3)
        with torch.no_grad():
            expected, expected_state = module(x)
            with Recorder(module) as plain:
                module(x)
            never = Intervention("layer0/hidden/2", "clamp", value=0.7, mask=np.zeros(8, bool))
            with Recorder(module, interventions=[never]) as rec:
                out, state = module(x)
        assert torch.equal(out, expected)
        for a, b in zip(
            state if cls is nn.LSTM else (state,),
            expected_state if cls is nn.LSTM else (expected_state,),
        ):
            assert torch.equal(a, b)
        for key, values in plain.activations.items():
            torch.testing.assert_close(rec.activations[key], values, rtol=0, atol=1e-6)


def test_a_hand_checkable_two_unit_lstm():
    """Unit 0 holds c = 0.5 and h = tanh(0.5); unit 1's candidate reads unit 0's hidden."""
    big = 1e4
    lstm = nn.LSTM(1, 2, batch_first=True)
    with torch.no_grad():
        for p in lstm.parameters():
            p.zero_()
        # rows: i (0, 1), f (2, 3), g (4, 5), o (6, 7)
        lstm.bias_ih_l0[[0, 1]] = big  # input gates open
        lstm.bias_ih_l0[[2, 3]] = -big  # forget everything
        lstm.bias_ih_l0[4] = math.atanh(0.5)  # g0 = 0.5
        lstm.weight_hh_l0[5, 0] = 1.0  # g1 = tanh(h0_{t-1})
        lstm.bias_ih_l0[[6, 7]] = big  # outputs open
    x = torch.zeros(1, 4, 1)
    h_unit0 = math.tanh(0.5)
    with torch.no_grad():
        out, _ = lstm(x)
        assert out[0, :, 0].tolist() == pytest.approx([h_unit0] * 4, abs=1e-6)
        expected_1 = [0.0] + [math.tanh(math.tanh(h_unit0))] * 3
        assert out[0, :, 1].tolist() == pytest.approx(expected_1, abs=1e-6)
        for q in ("hidden", "cell", "candidate", "input_gate", "output_gate"):
            with Recorder(lstm, interventions=[Intervention(f"layer0/{q}/0", "zero")]) as rec:
                ablated, _ = lstm(x)
            # unit 0's hidden is 0 at every step, so unit 1 reads 0 and stays at 0
            assert ablated[0].abs().max().item() == pytest.approx(0.0, abs=1e-6), q
            assert rec.activations["layer0/candidate"][0, :, 1].abs().max() < 1e-6
        with Recorder(lstm, interventions=[Intervention("layer0/cell/0", "clamp", value=1.0)]):
            clamped, _ = lstm(x)
        assert clamped[0, :, 0].tolist() == pytest.approx([math.tanh(1.0)] * 4, abs=1e-6)
        expected_1 = [0.0] + [math.tanh(math.tanh(math.tanh(1.0)))] * 3
        assert clamped[0, :, 1].tolist() == pytest.approx(expected_1, abs=1e-6)
        # clamping the forget gate open keeps the cell adding 0.5 each step
        with Recorder(
            lstm, interventions=[Intervention("layer0/forget_gate/0", "clamp", value=1.0)]
        ) as rec:
            lstm(x)
        assert rec.activations["layer0/cell"][0, :, 0].tolist() == pytest.approx(
            [0.5, 1.0, 1.5, 2.0], abs=1e-5
        )


def test_the_change_reaches_the_decoder_of_a_char_model():
    torch.manual_seed(2)
    model = CharLSTM(ModelConfig(vocab_size=6, hidden_size=4, num_layers=2, embedding_dim=3)).eval()
    ids = torch.randint(0, 6, (2, 10))
    iv = Intervention("layer0/cell/2", "clamp", value=0.4)
    with torch.no_grad():
        with Recorder(model, interventions=[iv]) as rec:
            logits, _ = model(ids)
        ref = _reference(
            model.rnn,
            model.embed(ids)[0],
            torch.zeros(2, 4),
            torch.zeros(2, 4),
            {0: [("cell", [2], [0.4], None)]},
        )
        torch.testing.assert_close(
            logits[0], model.decoder(ref["layer1/hidden"]), atol=1e-5, rtol=0
        )
        plain, _ = model(ids)
    assert (logits - plain).abs().max() > 1e-3  # it did change something
    torch.testing.assert_close(
        rec.activations["layer1/hidden"][0], ref["layer1/hidden"], atol=1e-5, rtol=0
    )


def test_step_by_step_calls_carry_the_intervened_state():
    torch.manual_seed(4)
    model = CharLSTM(ModelConfig(vocab_size=5, hidden_size=4, embedding_dim=3)).eval()
    ids = torch.randint(0, 5, (1, 12))
    for q, mode, value in (
        ("hidden", "clamp", 0.3),
        ("cell", "mean", -0.2),
        ("forget_gate", "zero", None),
    ):
        iv = Intervention(f"layer0/{q}/1", mode, value=value)
        with torch.no_grad(), Recorder(model, interventions=[iv]):
            whole, _ = model(ids)
            state, parts = None, []
            for t in range(12):
                step, state = model(ids[:, t : t + 1], state)
                parts.append(step)
        torch.testing.assert_close(torch.cat(parts, 1), whole, atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
def test_projected_lstm_hidden_and_cell():
    torch.manual_seed(5)
    module = nn.LSTM(3, 5, num_layers=2, proj_size=2, batch_first=True).eval()
    x = torch.randn(1, 7, 3)
    for q, units in (("hidden", [1]), ("cell", [0, 4])):
        iv = Intervention(f"layer0/{q}", "clamp", value=0.25, units=units)
        with torch.no_grad(), Recorder(module, interventions=[iv]) as rec:
            out, _ = module(x)
        values, layer_input = {}, x[0]
        for k in range(2):
            edits = [(q, units, iv.values, None)] if k == 0 else []
            ref = lstm_steps(
                layer_input,
                *_weights(module, k),
                torch.zeros(2),
                torch.zeros(5),
                getattr(module, f"weight_hr_l{k}"),
                edits=edits,
            )
            values.update({f"layer{k}/{n}": v for n, v in ref.items()})
            layer_input = ref["hidden"]
        torch.testing.assert_close(out[0], values["layer1/hidden"], atol=1e-5, rtol=0)
        torch.testing.assert_close(
            rec.activations["layer0/cell"][0], values["layer0/cell"], atol=1e-5, rtol=0
        )


def test_a_gate_set_outside_its_range_runs_the_per_step_loop():
    torch.manual_seed(6)
    module = nn.LSTM(2, 3, batch_first=True).eval()
    x = torch.randn(1, 6, 2)
    iv = Intervention("layer0/forget_gate/0", "clamp", value=1.5)
    edits = layer_edits([iv], 1, 6, x.device, x.dtype)
    assert not fusable("lstm", edits)
    assert fusable(
        "lstm",
        layer_edits(
            [Intervention("layer0/forget_gate/0", "clamp", value=0.9)], 1, 6, x.device, x.dtype
        ),
    )
    with torch.no_grad(), Recorder(module, interventions=[iv]) as rec:
        out, _ = module(x)
    ref = lstm_steps(
        x[0],
        *_weights(module, 0),
        torch.zeros(3),
        torch.zeros(3),
        edits=[("forget_gate", [0], [1.5], None)],
    )
    torch.testing.assert_close(out[0], ref["hidden"], atol=1e-5, rtol=0)
    torch.testing.assert_close(rec.activations["layer0/cell"][0], ref["cell"], atol=1e-5, rtol=0)


def test_several_interventions_on_several_layers_at_once():
    torch.manual_seed(8)
    module = nn.GRU(3, 4, num_layers=3, batch_first=False).eval()
    x = torch.randn(T, 2, 3)  # time-major
    mask = np.arange(T) % 3 == 0
    ivs = [
        Intervention("layer0/update_gate/2", "clamp", value=0.9, mask=mask),
        Intervention("layer0/hidden/0", "zero"),
        Intervention("layer2/candidate", "clamp", value=[0.1, -0.2], units=[0, 3]),
    ]
    with torch.no_grad(), Recorder(module, interventions=ivs) as rec:
        out, _ = module(x)
    edits = {
        0: [("update_gate", [2], [0.9], mask), ("hidden", [0], [0.0], None)],
        2: [("candidate", [0, 3], [0.1, -0.2], None)],
    }
    for b in range(2):
        ref = _reference(module, x[:, b], torch.zeros(3, 4), None, edits)
        torch.testing.assert_close(out[:, b], ref["layer2/hidden"], atol=1e-5, rtol=0)
        for key, values in ref.items():
            torch.testing.assert_close(rec.activations[key][b], values, atol=1e-5, rtol=0)


def _no_instrumentation_left(model):
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert "forward" not in module.__dict__


def test_hooks_come_off_after_an_intervened_forward_raises():
    model = CharLSTM(ModelConfig(vocab_size=5, hidden_size=4, embedding_dim=3)).eval()
    iv = Intervention("layer0/cell/1", "zero", mask=np.ones(3, bool))
    with pytest.raises(InterventionError, match="mask"), Recorder(model, interventions=[iv]):
        model(torch.zeros(1, 4, dtype=torch.long))  # 4 steps, a mask of 3
    _no_instrumentation_left(model)
    assert model(torch.zeros(1, 4, dtype=torch.long))[0].shape == (1, 4, 5)


def test_bad_interventions_say_what_exists():
    model = CharLSTM(ModelConfig(vocab_size=5, hidden_size=4, num_layers=2, embedding_dim=3))
    with pytest.raises(UnitError, match=r"layer0/cell has units 0\.\.3"):
        Recorder(model, interventions=[Intervention("layer0/cell/9")])
    with pytest.raises(UnitError, match="layers layer0, layer1"):
        Recorder(model, interventions=[Intervention("layer5/cell/0")])
    gru = CharLSTM(ModelConfig(vocab_size=5, hidden_size=4, cell="gru"))
    with pytest.raises(UnitError, match="reset_gate, update_gate"):
        Recorder(gru, interventions=[Intervention("layer0/cell/0")])
    with pytest.raises(InterventionError, match=r"needs a value.*unit_means"):
        Intervention("layer0/cell/0", "mean")
    with pytest.raises(InterventionError, match="mode"):
        Intervention("layer0/cell/0", "ablate")  # type: ignore[arg-type]
    with pytest.raises(UnitError, match="units="):
        Intervention("layer0/cell")
    with pytest.raises(UnitError, match="looks like"):
        Intervention("cell/17")
    bidi = nn.LSTM(2, 3, bidirectional=True)
    with pytest.raises(InterventionError, match="bidirectional"):
        Recorder(bidi, interventions=[Intervention("layer0/cell/0")])
    assert issubclass(InterventionError, LstmprobeError)


def test_a_recorder_entered_again_uses_the_weights_as_they_are_now():
    torch.manual_seed(9)
    module = nn.LSTM(2, 3, batch_first=True).eval()
    x = torch.randn(1, 5, 2)
    rec = Recorder(module, interventions=[Intervention("layer0/hidden/1", "clamp", value=0.5)])
    with torch.no_grad():
        with rec:
            module(x)
        module.weight_hh_l0.mul_(2.0)
        with rec:
            out, _ = module(x)
    ref = lstm_steps(
        x[0],
        *_weights(module, 0),
        torch.zeros(3),
        torch.zeros(3),
        edits=[("hidden", [1], [0.5], None)],
    )
    torch.testing.assert_close(out[0], ref["hidden"], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- patches

PATCH_CASES = [
    (cls, q, align, masked, layer)
    for cls, qs in ((nn.LSTM, LSTM_QS), (nn.GRU, GRU_QS))
    for q, align, masked, layer in itertools.product(
        qs, ("start", "end", "map"), (False, True), (0, 1)
    )
]


def _source_index(align, steps, length, rng):
    """The source position of each target position (-1: none), as the patch aligns them."""
    t = np.arange(steps)
    if align == "start":
        return np.where(t < length, t, -1)
    if align == "end":
        s = t - steps + length
        return np.where(s >= 0, s, -1)
    out = rng.integers(-1, length, size=(2, steps))
    out[:, 0] = 0  # every row has at least one patched position
    return out


@pytest.mark.parametrize("method", ["fused", "steps"])
@pytest.mark.parametrize(
    "cls,q,align,masked,layer",
    PATCH_CASES,
    ids=[f"{c.__name__}-{q}-{a}-{'mask' if m else 'all'}-l{la}" for c, q, a, m, la in PATCH_CASES],
)
def test_a_patch_equals_a_per_step_loop_that_sets_the_source_values(
    cls, q, align, masked, layer, method
):
    """The source run's recorded values of the units replace the target's at every aligned
    position (a source shorter than the target for 'end'), through the recurrence and layer 1."""
    torch.manual_seed(11)
    rng = np.random.default_rng(5)
    module = cls(3, 4, num_layers=2, batch_first=True).eval()
    is_lstm = cls is nn.LSTM
    length = T if align == "start" else T - 3
    source_x, x = torch.randn(2, length, 3), torch.randn(2, T, 3)
    with torch.no_grad(), Recorder(module) as src_rec:
        module(source_x)
    units = [0, 2]
    source = src_rec.activations[f"layer{layer}/{q}"][..., units].numpy()
    index = _source_index(align, T, length, rng)
    known = np.broadcast_to(index >= 0, (2, T))
    mask = (rng.random((2, T)) < 0.5) & known if masked else None
    iv = Intervention(
        f"layer{layer}/{q}",
        "patch",
        units=units,
        source=source,
        align=index if align == "map" else align,
        mask=mask,
    )
    with torch.no_grad(), Recorder(module, interventions=[iv], method=method) as rec:
        out, state = module(x)
    for b in range(2):
        row = index if index.ndim == 1 else index[b]
        table = torch.as_tensor(source[b][np.clip(row, 0, None)])  # (T, units)
        where = known[b] if mask is None else mask[b]
        ref = _reference(
            module, x[b], torch.zeros(2, 4), torch.zeros(2, 4), {layer: [(q, units, table, where)]}
        )
        for key, values in ref.items():
            torch.testing.assert_close(rec.activations[key][b], values, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out[b], ref["layer1/hidden"], rtol=1e-5, atol=1e-5)
        h_n = state[0] if is_lstm else state
        torch.testing.assert_close(
            h_n[layer, b], ref[f"layer{layer}/hidden"][-1], atol=1e-5, rtol=0
        )


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_patching_every_hidden_unit_of_layer0_makes_layer1_run_as_on_the_source(cls):
    """Layer 1 reads only layer 0's hidden state: patched in whole at every position, the target
    then gives the source's outputs exactly (an end-to-end check of what a patch means)."""
    torch.manual_seed(12)
    module = cls(3, 5, num_layers=2, batch_first=True).eval()
    source_x, x = torch.randn(1, 8, 3), torch.randn(1, 8, 3)
    with torch.no_grad(), Recorder(module) as src_rec:
        expected, _ = module(source_x)
    iv = Intervention(
        "layer0/hidden",
        "patch",
        units=range(5),
        source=src_rec.activations["layer0/hidden"].numpy(),
    )
    with torch.no_grad(), Recorder(module, interventions=[iv]):
        out, _ = module(x)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_a_patch_from_the_run_itself_changes_nothing():
    torch.manual_seed(13)
    model = CharLSTM(ModelConfig(vocab_size=6, hidden_size=4, num_layers=2, embedding_dim=3)).eval()
    ids = torch.randint(0, 6, (1, 12))
    with torch.no_grad(), Recorder(model) as rec:
        plain, _ = model(ids)
    for q in ("cell", "hidden", "forget_gate"):
        own = rec.activations[f"layer0/{q}"][0, :, [1, 3]].numpy()
        iv = Intervention(f"layer0/{q}", "patch", units=[1, 3], source=own)
        with torch.no_grad(), Recorder(model, interventions=[iv]):
            patched, _ = model(ids)
        torch.testing.assert_close(patched, plain, atol=1e-5, rtol=0)


def test_a_patch_at_one_position_of_a_long_text_reaches_only_later_positions():
    torch.manual_seed(14)
    model = CharLSTM(ModelConfig(vocab_size=6, hidden_size=4, embedding_dim=3)).eval()
    ids = torch.randint(0, 6, (1, 300))
    mask = np.zeros(300, bool)
    mask[200] = True
    iv = Intervention("layer0/cell/2", "patch", source=np.full((300, 1), 0.9), mask=mask)
    with torch.no_grad():
        plain, _ = model(ids)
        with Recorder(model, interventions=[iv]) as rec:
            patched, _ = model(ids)
    assert torch.equal(patched[0, :200], plain[0, :200])
    assert (patched[0, 200:] - plain[0, 200:]).abs().max() > 1e-4
    assert rec.activations["layer0/cell"][0, 200, 2].item() == pytest.approx(0.9)


def test_bad_patches_say_what_to_do():
    with pytest.raises(InterventionError, match="needs `source`"):
        Intervention("layer0/cell/0", "patch")
    with pytest.raises(InterventionError, match="not `value`"):
        Intervention("layer0/cell/0", "patch", value=1.0, source=[1.0])
    with pytest.raises(InterventionError, match="shape"):
        Intervention("layer0/cell", "patch", units=[0, 1], source=np.zeros((4, 3)))
    with pytest.raises(InterventionError, match="`source` is for mode 'patch'"):
        Intervention("layer0/cell/0", "zero", source=[1.0])
    with pytest.raises(InterventionError, match="align"):
        Intervention("layer0/cell/0", "patch", source=[1.0], align="middle")
    with pytest.raises(InterventionError, match=r"source positions -1\.\.1"):
        Intervention("layer0/cell/0", "patch", source=[1.0, 2.0], align=np.array([0, 2]))
    model = CharLSTM(ModelConfig(vocab_size=5, hidden_size=4, embedding_dim=3)).eval()
    mask = np.ones(6, bool)
    iv = Intervention("layer0/cell/0", "patch", source=np.zeros(4), align="end", mask=mask)
    with (
        pytest.raises(InterventionError, match=r"no source position.*align"),
        Recorder(model, interventions=[iv]),
    ):
        model(torch.zeros(1, 6, dtype=torch.long))
    _no_instrumentation_left(model)


def test_one_mode_vocabulary_from_the_command_line_to_the_forward():
    from lstmprobe.names import Key, Unit
    from lstmprobe.record import interventions as ivs

    unit = Unit.parse("layer0/cell/2")
    spelled = Intervention("layer0/cell/2", "clamp:0.5")
    assert (spelled.mode, spelled.values, spelled.key) == ("clamp", (0.5,), unit.key)
    assert Intervention(unit, "clamp", value=0.5).values == spelled.values
    assert Intervention(unit.key, "clamp:-1", units=[2]).targets == (unit,)
    assert Intervention(Key.parse("layer0/cell"), units=[1, 3]).names == [
        "layer0/cell/1",
        "layer0/cell/3",
    ]
    ivs._warned.discard("constant")
    with pytest.warns(FutureWarning, match="'clamp'"):
        old = Intervention("layer0/cell/2", "constant", value=0.5)
    assert (old.mode, old.values) == ("clamp", (0.5,))
    for bad in ("clamp:x", "clamp:nan", "zero:1", "mean:2", "clamp:", "Zero", ""):
        with pytest.raises(InterventionError, match=r"mode|constant"):
            Intervention("layer0/cell/2", bad)
    with pytest.raises(InterventionError, match="disagree"):
        Intervention("layer0/cell/2", "clamp:1", value=2.0)
    with pytest.raises(UnitError, match="one unit already"):
        Intervention(unit, units=[1])
    with pytest.raises(UnitError, match="non-negative"):
        Intervention("layer0/cell", units=[-1])
