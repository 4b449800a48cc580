from __future__ import annotations

import pytest
import torch
from torch import nn

from lstmprobe.errors import NoRecurrentLayerError, UnitError
from lstmprobe.record.layers import layer_weights, layout, recurrent_layers, single_layer


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2)
        self.gru = nn.GRU(4, 6)


def test_layers_are_named_in_module_order_with_their_directions_and_sizes():
    infos = recurrent_layers(Mixed())
    assert [(i.name, i.module_name, i.kind, i.layer, i.reverse) for i in infos] == [
        ("layer0", "lstm", "lstm", 0, False),
        ("layer0_reverse", "lstm", "lstm", 0, True),
        ("layer1", "lstm", "lstm", 1, False),
        ("layer1_reverse", "lstm", "lstm", 1, True),
        ("layer2", "gru", "gru", 0, False),
    ]
    lstm = infos[0]
    assert (lstm.n_units("cell"), lstm.n_units("hidden")) == (5, 2)  # hidden is projected
    assert infos[-1].n_units("hidden") == 6


def test_layout_lists_every_quantity_in_store_order_and_selects_by_name():
    model = Mixed()
    full = layout(model)
    assert list(full)[:6] == [
        "layer0/input_gate",
        "layer0/forget_gate",
        "layer0/candidate",
        "layer0/output_gate",
        "layer0/cell",
        "layer0/hidden",
    ]
    assert full["layer2/update_gate"] == 6 and "layer2/cell" not in full
    assert list(layout(model, quantities=["hidden"], layers=["layer2"])) == ["layer2/hidden"]
    with pytest.raises(UnitError, match="unknown layer layer9; this model has layer0, "):
        layout(model, layers=["layer9"])
    with pytest.raises(UnitError, match="leave nothing to record"):
        layout(model, quantities=["cell"], layers=["layer2"])  # a GRU has no cell
    with pytest.raises(NoRecurrentLayerError):
        layout(nn.Linear(2, 2))


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_a_single_layer_shares_the_parameters_and_computes_that_layer(cls):
    torch.manual_seed(0)
    module = cls(3, 4, num_layers=2, batch_first=True)
    x = torch.randn(2, 7, 3)
    first, second = single_layer(module, 0), single_layer(module, 1)
    assert first.weight_hh_l0 is module.weight_hh_l0
    assert second.weight_ih_l0 is module.weight_ih_l1
    with torch.no_grad():
        out, _ = module(x)
        mid, _ = first(x)
        got, _ = second(mid)
    torch.testing.assert_close(got, out, rtol=0, atol=0)


def test_layer_weights_pick_the_layers_and_directions_tensors():
    module = nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2)
    w = layer_weights(module, 1, True)
    assert w.weight_ih is module.weight_ih_l1_reverse
    assert w.bias_hh is module.bias_hh_l1_reverse
    assert w.weight_hr is module.weight_hr_l1_reverse
    plain = layer_weights(nn.GRU(3, 4, bias=False), 0, False)
    assert plain.bias_ih is None and plain.weight_hr is None
