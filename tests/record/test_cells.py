from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmprobe.record.cells import (
    GRU_QUANTITIES,
    LSTM_QUANTITIES,
    LayerEdit,
    LayerInput,
    LayerWeights,
    layer_internals,
    linear_recurrence,
)
from tests.reference import gru_steps, lstm_steps


@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(0, 300),
    units=st.integers(1, 5),
    batch=st.integers(1, 3),
    seed=st.integers(0, 10_000),
)
def test_linear_recurrence_matches_a_loop(steps, units, batch, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(batch, steps, units, generator=g, dtype=torch.float64)
    b = torch.randn(batch, steps, units, generator=g, dtype=torch.float64)
    y0 = torch.randn(batch, units, generator=g, dtype=torch.float64)
    y = linear_recurrence(a, b, y0)
    expected, state = [], y0
    for t in range(steps):
        state = a[:, t] * state + b[:, t]
        expected.append(state)
    assert y.shape == b.shape
    if steps:
        torch.testing.assert_close(y, torch.stack(expected, 1), rtol=1e-10, atol=1e-10)


def _weights(gates, hidden, inputs, proj=0, bias=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = proj or hidden
    return LayerWeights(
        weight_ih=torch.randn(gates * hidden, inputs, generator=g),
        weight_hh=torch.randn(gates * hidden, p, generator=g),
        bias_ih=torch.randn(gates * hidden, generator=g) if bias else None,
        bias_hh=torch.randn(gates * hidden, generator=g) if bias else None,
        weight_hr=torch.randn(p, hidden, generator=g) if proj else None,
    )


@settings(max_examples=25, deadline=None)
@given(
    steps=st.integers(1, 40),
    hidden=st.integers(1, 6),
    proj=st.integers(0, 3),
    bias=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_lstm_internals_match_the_equations_and_stay_in_range(steps, hidden, proj, bias, seed):
    proj = min(proj, hidden - 1) if hidden > 1 else 0
    w = _weights(4, hidden, 3, proj, bias, seed)
    x = torch.randn(1, steps, 3, generator=torch.Generator().manual_seed(seed + 1))
    p = proj or hidden
    h0, c0 = torch.randn(1, p) * 0.5, torch.randn(1, hidden) * 0.5
    ref = lstm_steps(
        x[0], w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh, h0[0], c0[0], w.weight_hr
    )
    got = layer_internals(LayerInput("lstm", x, h0, c0, w), ref["hidden"].unsqueeze(0))
    assert tuple(got) == LSTM_QUANTITIES
    for q in LSTM_QUANTITIES:
        torch.testing.assert_close(got[q][0], ref[q], rtol=1e-5, atol=1e-5)
    for gate in ("input_gate", "forget_gate", "output_gate"):
        assert got[gate].min() >= 0 and got[gate].max() <= 1
    assert got["candidate"].abs().max() <= 1
    # the cell update itself
    c_prev = torch.cat([c0.unsqueeze(1), got["cell"][:, :-1]], 1)
    torch.testing.assert_close(
        got["cell"],
        got["forget_gate"] * c_prev + got["input_gate"] * got["candidate"],
        rtol=1e-5,
        atol=1e-5,
    )


@settings(max_examples=25, deadline=None)
@given(
    steps=st.integers(1, 40), hidden=st.integers(1, 6), bias=st.booleans(), seed=st.integers(0, 99)
)
def test_gru_internals_match_the_equations(steps, hidden, bias, seed):
    w = _weights(3, hidden, 2, 0, bias, seed)
    x = torch.randn(1, steps, 2, generator=torch.Generator().manual_seed(seed + 1))
    h0 = torch.randn(1, hidden) * 0.5
    ref = gru_steps(x[0], w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh, h0[0])
    got = layer_internals(LayerInput("gru", x, h0, None, w), ref["hidden"].unsqueeze(0))
    assert tuple(got) == GRU_QUANTITIES
    for q in GRU_QUANTITIES:
        torch.testing.assert_close(got[q][0], ref[q], rtol=1e-5, atol=1e-5)
    assert got["reset_gate"].min() >= 0 and got["update_gate"].max() <= 1


def test_a_subset_of_quantities_is_returned_in_the_asked_order():
    w = _weights(4, 3, 2)
    x = torch.randn(2, 5, 2)
    h = torch.randn(2, 5, 3)
    inp = LayerInput("lstm", x, torch.zeros(2, 3), torch.zeros(2, 3), w)
    got = layer_internals(inp, h, ("hidden", "cell"))
    assert list(got) == ["hidden", "cell"]
    assert got["hidden"] is h


def test_under_edits_a_subset_equals_the_full_computation():
    """Quantities not asked for (the cell under a cell edit, a GRU's edited candidate) are not
    needed for the others: each subset equals the same entries of the full result."""
    units, values = torch.tensor([0, 2]), torch.tensor([0.5, -0.25])
    for kind, gates, qs, h in (("lstm", 4, LSTM_QUANTITIES, 3), ("gru", 3, GRU_QUANTITIES, 3)):
        w = _weights(gates, h, 2, seed=3)
        x = torch.randn(2, 7, 2, generator=torch.Generator().manual_seed(4))
        out = torch.randn(2, 7, h, generator=torch.Generator().manual_seed(5))
        c0 = torch.zeros(2, h) if kind == "lstm" else None
        mask = torch.arange(7).expand(2, 7) % 3 == 0
        edited = ("cell", "forget_gate") if kind == "lstm" else ("candidate", "reset_gate")
        edits = tuple(LayerEdit(q, units, values, mask) for q in edited)
        inp = LayerInput(kind, x, torch.zeros(2, h), c0, w)
        full = layer_internals(inp, out, qs, edits)
        for q in qs:
            got = layer_internals(inp, out, (q,), edits)
            torch.testing.assert_close(got[q], full[q], rtol=0, atol=0)
        assert (full[edited[0]][mask][:, units] == values).all()
