"""The fused path's one-call form for edits at some positions: when it is chosen, and that it
equals the per-step reference in the cases the main interventions test does not draw (gates set
to 1, the candidate to ±1, several edits at once, edits of one unit's gate and hidden)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lstmprobe import Intervention, Recorder
from lstmprobe.record.cells import LayerInput
from lstmprobe.record.fused import _plan
from lstmprobe.record.interventions import layer_edits
from lstmprobe.record.layers import layer_weights
from tests.reference import lstm_steps

T = 11


def _edits(module, ivs, batch=2):
    return layer_edits(ivs, batch, T, torch.device("cpu"), torch.float32)


def _inp(module, batch=2):
    w = layer_weights(module, 0, False)
    kind = "lstm" if isinstance(module, nn.LSTM) else "gru"
    x = torch.zeros(batch, T, module.input_size)
    return LayerInput(kind, x, torch.zeros(batch, 3), torch.zeros(batch, 3), w)


def test_which_edits_run_in_one_call():
    lstm = nn.LSTM(2, 3, batch_first=True)
    mask = np.arange(T) % 2 == 0
    one_call = [
        [Intervention("layer0/cell/1", "zero", mask=mask)],
        [Intervention("layer0/forget_gate/1", "clamp", value=1.0, mask=mask)],
        [Intervention("layer0/candidate/1", "clamp", value=-1.0, mask=mask)],
        [Intervention("layer0/hidden/1", "clamp", value=0.3, mask=mask)],
        [Intervention("layer0/hidden/1", "patch", source=np.ones(T) * 0.2)],
        [
            Intervention("layer0/cell/0", "clamp", value=0.4),  # everywhere: a weight edit
            Intervention("layer0/input_gate/2", "zero", mask=mask),
        ],
    ]
    for ivs in one_call:
        assert _plan(_inp(lstm), _edits(lstm, ivs)) is not None, ivs[0].describe()
    runs = [
        [Intervention("layer0/cell/1", "clamp", value=0.5, mask=mask)],  # no saturating form
        [Intervention("layer0/forget_gate/1", "clamp", value=0.5, mask=mask)],
        [Intervention("layer0/cell/1", "patch", source=np.ones(T))],  # a cell patch: stepped
        [
            Intervention("layer0/cell/1", "zero", mask=mask),  # both saturate forget gate 1
            Intervention("layer0/forget_gate/1", "zero", mask=~mask),
        ],
        [Intervention("layer0/cell/1", "clamp", value=0.5)],  # everywhere: one call already
    ]
    for ivs in runs:
        assert _plan(_inp(lstm), _edits(lstm, ivs)) is None, ivs[0].describe()
    gru = nn.GRU(2, 3, batch_first=True)
    iv = Intervention("layer0/hidden/1", "zero", mask=mask)
    assert _plan(_inp(gru), _edits(gru, [iv])) is None
    proj = nn.LSTM(2, 3, proj_size=2, batch_first=True)
    w = layer_weights(proj, 0, False)
    inp = LayerInput("lstm", torch.zeros(2, T, 2), torch.zeros(2, 2), torch.zeros(2, 3), w)
    assert _plan(inp, _edits(proj, [iv])) is None


CASES = {
    "gates to 1 and 0": [
        ("forget_gate", [0, 2], 1.0),
        ("output_gate", [1], 0.0),
    ],
    "candidate to -1 and +1": [("candidate", [0], -1.0), ("candidate", [2], 1.0)],
    "cell 0 and hidden of the same unit": [("cell", [1], 0.0), ("hidden", [1], -0.4)],
    "hidden and input gate": [("hidden", [0, 2], 0.7), ("input_gate", [1], 1.0)],
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("everywhere", [False, True])
def test_the_one_call_form_equals_a_per_step_loop(name, everywhere):
    torch.manual_seed(21)
    rng = np.random.default_rng(8)
    lstm = nn.LSTM(2, 3, batch_first=True).eval()
    x = torch.randn(2, T, 2)
    h0, c0 = torch.randn(1, 2, 3) * 0.5, torch.randn(1, 2, 3) * 0.5
    ivs, edits = [], []
    for k, (q, units, value) in enumerate(CASES[name]):
        # the first edit applies everywhere when asked (a weight edit beside the columns)
        mask = None if everywhere and k == 0 else rng.random((2, T)) < 0.5
        ivs.append(Intervention(f"layer0/{q}", "clamp", value=value, units=units, mask=mask))
        edits.append((q, units, [value] * len(units), mask))
    with torch.no_grad(), Recorder(lstm, interventions=ivs, method="fused") as rec:
        out, (h_n, c_n) = lstm(x, (h0, c0))
    for b in range(2):
        per_row = [(q, u, v, None if m is None else m[b]) for q, u, v, m in edits]
        w = [getattr(lstm, f"{n}_l0") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        ref = lstm_steps(x[b], *w, h0[0, b], c0[0, b], edits=per_row)
        for q, values in ref.items():
            torch.testing.assert_close(rec.activations[f"layer0/{q}"][b], values, atol=1e-5, rtol=0)
        torch.testing.assert_close(out[b], ref["hidden"], atol=1e-5, rtol=0)
        torch.testing.assert_close(h_n[0, b], ref["hidden"][-1], atol=1e-5, rtol=0)
        torch.testing.assert_close(c_n[0, b], ref["cell"][-1], atol=1e-5, rtol=0)


def test_large_inputs_still_saturate_exactly():
    """The saturating columns are scaled past the largest pre-activation the weights and inputs
    allow, so a gate set to 0 is 0 however large the input."""
    torch.manual_seed(22)
    lstm = nn.LSTM(2, 3, batch_first=True).eval()
    with torch.no_grad():
        lstm.weight_ih_l0.mul_(500.0)
    x = torch.randn(1, T, 2) * 50
    mask = np.arange(T) % 3 == 0
    iv = Intervention("layer0/cell/1", "zero", mask=mask)
    with torch.no_grad(), Recorder(lstm, interventions=[iv], method="fused") as rec:
        lstm(x)
    cell = rec.activations["layer0/cell"][0, :, 1]
    assert cell[torch.from_numpy(mask)].abs().max().item() == 0.0
    w = [getattr(lstm, f"{n}_l0") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    ref = lstm_steps(x[0], *w, torch.zeros(3), torch.zeros(3), edits=[("cell", [1], [0.0], mask)])
    torch.testing.assert_close(
        rec.activations["layer0/hidden"][0], ref["hidden"], atol=1e-5, rtol=0
    )
