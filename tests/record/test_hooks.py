from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmprobe.errors import NoRecurrentLayerError, UnitError
from lstmprobe.record import cells
from lstmprobe.record.hooks import Recorder
from lstmprobe.record.layers import layout, recurrent_layers
from tests.reference import gru_steps, lstm_steps

GRID = [
    dict(cls=cls, num_layers=layers, bidirectional=bidi, batch_first=bf, bias=bias, proj_size=proj)
    for cls, layers, bidi, bf, bias, proj in itertools.product(
        (nn.LSTM, nn.GRU), (1, 3), (False, True), (True, False), (True, False), (0, 2)
    )
    if not (cls is nn.GRU and proj)
]


def _ids(c):
    return "-".join(f"{k}={v.__name__ if isinstance(v, type) else v}" for k, v in c.items())


def _final_layer_output(acts, layer, bidirectional):
    h = acts[f"layer{layer}/hidden"]
    if bidirectional:
        h = torch.cat([h, acts[f"layer{layer}_reverse/hidden"]], -1)
    return h


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
@pytest.mark.parametrize("config", GRID, ids=_ids)
def test_recorded_states_equal_the_modules_own_outputs(config):
    config = dict(config)
    cls = config.pop("cls")
    if cls is nn.GRU:
        config.pop("proj_size")
    torch.manual_seed(0)
    module = cls(5, 4, **config)
    layers, bidi, bf = config["num_layers"], config["bidirectional"], config["batch_first"]
    dirs = 2 if bidi else 1
    x = torch.randn(3, 11, 5)
    xin = x if bf else x.transpose(0, 1)
    h_size = config.get("proj_size") or 4
    h0 = torch.randn(layers * dirs, 3, h_size)
    hx = (h0, torch.randn(layers * dirs, 3, 4)) if cls is nn.LSTM else h0
    expected_out, expected_state = module(xin, hx)
    with Recorder(module) as rec:
        out, _state = module(xin, hx)
    # the module's outputs are unchanged by recording
    torch.testing.assert_close(out, expected_out, rtol=0, atol=1e-6)
    acts = rec.activations
    top = _final_layer_output(acts, layers - 1, bidi)
    torch.testing.assert_close(
        top, expected_out if bf else expected_out.transpose(0, 1), rtol=0, atol=1e-5
    )
    h_n = expected_state[0] if cls is nn.LSTM else expected_state
    for k in range(layers):
        torch.testing.assert_close(
            acts[f"layer{k}/hidden"][:, -1], h_n[k * dirs], rtol=0, atol=1e-5
        )
        if bidi:
            torch.testing.assert_close(
                acts[f"layer{k}_reverse/hidden"][:, 0], h_n[k * dirs + 1], rtol=0, atol=1e-5
            )
        if cls is nn.LSTM:
            c_n = expected_state[1]
            torch.testing.assert_close(
                acts[f"layer{k}/cell"][:, -1], c_n[k * dirs], rtol=0, atol=1e-5
            )
            if bidi:
                torch.testing.assert_close(
                    acts[f"layer{k}_reverse/cell"][:, 0], c_n[k * dirs + 1], rtol=0, atol=1e-5
                )


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_every_quantity_matches_an_independent_per_step_reference(cls):
    torch.manual_seed(1)
    module = cls(3, 4, num_layers=2, batch_first=True)
    x = torch.randn(1, 9, 3)
    with Recorder(module) as rec:
        module(x)
    layer_input = x[0]
    for k in range(2):
        w = [getattr(module, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        if cls is nn.LSTM:
            ref = lstm_steps(layer_input, *w, torch.zeros(4), torch.zeros(4))
        else:
            ref = gru_steps(layer_input, *w, torch.zeros(4))
        for q, values in ref.items():
            torch.testing.assert_close(
                rec.activations[f"layer{k}/{q}"][0], values, rtol=1e-5, atol=1e-5
            )
        layer_input = ref["hidden"]


def test_packed_sequences_are_recorded_per_sequence():
    torch.manual_seed(2)
    module = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    lengths = torch.tensor([7, 3, 5])
    x = torch.randn(3, 7, 3)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    with Recorder(module) as rec:
        out, _ = module(packed)
    out, _ = pad_packed_sequence(out, batch_first=True)
    assert torch.equal(rec.lengths, lengths)
    for b, n in enumerate(lengths.tolist()):
        # each sequence alone gives the same values at its valid steps
        alone, (_h_n, _c_n) = module(x[b : b + 1, :n])
        with Recorder(module) as single:
            module(x[b : b + 1, :n])
        for key, values in single.activations.items():
            torch.testing.assert_close(rec.activations[key][b, :n], values[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(
            rec.activations["layer1/hidden"][b, :n], alone[0, :, :4], atol=1e-5, rtol=0
        )


def test_unbatched_input_and_an_embedding_upstream():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Embedding(6, 3), nn.GRU(3, 2))
    ids = torch.tensor([1, 2, 3, 4, 5])
    expected, _ = model(ids)
    with Recorder(model) as rec:
        model(ids)
    torch.testing.assert_close(rec.activations["layer0/hidden"][0], expected, rtol=0, atol=1e-6)


class Embedded(nn.Module):
    """ids -> embedding -> a two-layer recurrent module (the shape of a char model)."""

    def __init__(self, cls, bidirectional, batch_first):
        super().__init__()
        self.embedding = nn.Embedding(5, 3)
        self.rnn = cls(3, 4, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)

    def forward(self, ids):
        return self.rnn(self.embedding(ids))[0]


@pytest.mark.parametrize(
    "cls, bidirectional, batch_first",
    list(itertools.product((nn.LSTM, nn.GRU), (False, True), (True, False))),
)
def test_a_first_layer_after_an_embedding_looks_its_input_projection_up_exactly(
    cls, bidirectional, batch_first, monkeypatch
):
    """The first layer reads rows of the embedding: its input projection is looked up from the
    projected table (more steps than table rows here), and every quantity still equals the
    per-step reference; the second layer projects its input as usual."""
    torch.manual_seed(4)
    model = Embedded(cls, bidirectional, batch_first)
    ids = torch.randint(5, (2, 13))
    looked_up = []
    projection = cells.input_projection

    def spy(inp):
        looked_up.append(inp.rows is not None)
        return projection(inp)

    monkeypatch.setattr(cells, "input_projection", spy)
    with Recorder(model) as rec:
        model(ids if batch_first else ids.t())
    dirs = 2 if bidirectional else 1
    assert looked_up == [True] * dirs + [False] * dirs
    x = model.embedding(ids)
    for b in range(2):
        for reverse in (False, True)[:dirs]:
            suffix = "_reverse" if reverse else ""
            w = [
                getattr(model.rnn, f"{n}_l0{suffix}")
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ]
            steps = x[b].flip(0) if reverse else x[b]
            if cls is nn.LSTM:
                ref = lstm_steps(steps, *w, torch.zeros(4), torch.zeros(4))
            else:
                ref = gru_steps(steps, *w, torch.zeros(4))
            for q, values in ref.items():
                got = rec.activations[f"layer0{suffix}/{q}"][b]
                got = got.flip(0) if reverse else got
                torch.testing.assert_close(got, values, rtol=1e-5, atol=1e-5)


class ScaledInPlace(Embedded):
    def forward(self, ids):
        x = self.embedding(ids)
        x.mul_(2.0)  # the layer reads the embedding's output object, changed
        return self.rnn(x)[0]


def test_an_embedding_output_changed_in_place_is_projected_as_it_is():
    torch.manual_seed(6)
    model = ScaledInPlace(nn.LSTM, False, True)
    ids = torch.randint(5, (1, 13))
    with torch.no_grad(), Recorder(model) as rec:
        model(ids)
    w = [getattr(model.rnn, f"{n}_l0") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    with torch.no_grad():
        ref = lstm_steps(2.0 * model.embedding(ids)[0], *w, torch.zeros(4), torch.zeros(4))
    for q, values in ref.items():
        torch.testing.assert_close(rec.activations[f"layer0/{q}"][0], values, rtol=1e-5, atol=1e-5)


def test_the_looked_up_projection_equals_the_matrix_product():
    g = torch.Generator().manual_seed(5)
    table = torch.randn(7, 6, generator=g)
    ids = torch.randint(7, (3, 40), generator=g)
    w = _layer_weights(g)
    plain = cells.LayerInput("lstm", table[ids], torch.zeros(3, 4), torch.zeros(3, 4), w)
    rows = cells.LayerInput(
        "lstm", table[ids], torch.zeros(3, 4), torch.zeros(3, 4), w, cells.Rows(table, ids)
    )
    torch.testing.assert_close(
        cells.input_projection(rows), cells.input_projection(plain), rtol=0, atol=1e-6
    )


def _layer_weights(g):
    return cells.LayerWeights(
        torch.randn(16, 6, generator=g),
        torch.randn(16, 4, generator=g),
        torch.randn(16, generator=g),
        torch.randn(16, generator=g),
    )


class TwoRNNs(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.LSTM(2, 3, num_layers=2, batch_first=True)
        self.second = nn.GRU(3, 2, batch_first=True)

    def forward(self, x):
        h, _ = self.first(x)
        return self.second(torch.relu(h))[0]


def test_layers_are_numbered_across_modules_and_a_sink_gets_every_call():
    torch.manual_seed(4)
    model = TwoRNNs()
    calls = []
    names = [info.name for info in recurrent_layers(model)]
    assert names == ["layer0", "layer1", "layer2"]
    with Recorder(model, sink=calls.append) as rec:
        for _ in range(3):
            out = model(torch.randn(2, 4, 2))
    assert len(calls) == 3
    assert list(rec.activations) == list(rec.layout)
    torch.testing.assert_close(rec.activations["layer2/hidden"], out, rtol=0, atol=1e-6)
    assert rec.layout["layer2/update_gate"] == 2 and rec.layout["layer1/cell"] == 3


def test_quantities_and_layers_select_what_is_recorded():
    model = nn.LSTM(2, 3, num_layers=2, bidirectional=True)
    got = layout(model, quantities=["cell", "hidden"], layers=["layer1"])
    assert list(got) == [
        "layer1/cell",
        "layer1/hidden",
        "layer1_reverse/cell",
        "layer1_reverse/hidden",
    ]
    with Recorder(model, quantities=["cell"], layers=["layer0_reverse"]) as rec:
        model(torch.randn(4, 1, 2))
    assert list(rec.activations) == ["layer0_reverse/cell"]
    with pytest.raises(UnitError, match=r"unknown quantity gate.*records"):
        layout(model, quantities=["gate"])
    with pytest.raises(UnitError, match="unknown layer layer7"):
        layout(model, layers=["layer7"])
    with pytest.raises(NoRecurrentLayerError):
        Recorder(nn.Linear(2, 2))


def _no_instrumentation_left(model):
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert "forward" not in module.__dict__


def test_hooks_always_come_off_even_after_an_exception():
    model = TwoRNNs()
    with Recorder(model):
        model(torch.randn(1, 3, 2))
    _no_instrumentation_left(model)
    with pytest.raises(RuntimeError), Recorder(model):
        model(torch.randn(1, 3, 5))  # wrong input size: the forward raises
    _no_instrumentation_left(model)
    # the model still works normally afterwards
    assert model(torch.randn(1, 3, 2)).shape == (1, 3, 2)


def test_user_hooks_survive_and_still_fire():
    model = TwoRNNs()
    seen = []
    handle = model.first.register_forward_hook(lambda m, a, o: seen.append(o[0].shape))
    with Recorder(model):
        model(torch.randn(1, 3, 2))
    model(torch.randn(1, 3, 2))
    assert len(seen) == 2 and len(model.first._forward_hooks) == 1
    handle.remove()


def test_dropout_between_layers_still_applies_in_training_mode():
    torch.manual_seed(5)
    module = nn.LSTM(3, 8, num_layers=2, dropout=0.5, batch_first=True).train()
    x = torch.randn(2, 6, 3)
    with Recorder(module):
        a, _ = module(x)
        b, _ = module(x)
    assert not torch.allclose(a, b)  # random dropout masks differ
    module.eval()
    with Recorder(module) as rec:
        c, _ = module(x)
    torch.testing.assert_close(c, module(x)[0], rtol=0, atol=1e-6)
    assert rec.activations["layer1/hidden"].shape == (2, 6, 8)
