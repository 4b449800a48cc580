"""The recurrent layers inside a model, as a recording names them, and the pieces of a fused
module the :class:`~lstmprobe.record.hooks.Recorder` runs one layer at a time.

Layers are numbered across the model in module order: a model holding a 2-layer LSTM and then a
GRU has ``layer0``, ``layer1`` (the LSTM) and ``layer2`` (the GRU). The reverse direction of a
bidirectional layer is ``layer{l}_reverse``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from lstmprobe.errors import NoRecurrentLayerError, UnitError
from lstmprobe.names import Key, layer_name, parse_layer
from lstmprobe.record.cells import LayerWeights, quantities_of


@dataclass(frozen=True)
class LayerInfo:
    """One direction of one layer of a recurrent module, as the recording names it."""

    name: str  # "layer0" or "layer0_reverse"
    module_name: str  # the module's path inside the model ("rnn")
    kind: str  # "lstm" | "gru"
    layer: int  # index inside its module
    reverse: bool
    hidden_size: int
    output_size: int  # proj_size or hidden_size

    def n_units(self, quantity: str) -> int:
        return self.output_size if quantity == "hidden" else self.hidden_size

    def key(self, quantity: str) -> Key:
        """The dataset of ``quantity`` of this layer direction, e.g. ``layer0/cell``."""
        index, direction = parse_layer(self.name)
        return Key(index, quantity, direction)


def output_size(module: nn.LSTM | nn.GRU) -> int:
    """The size of each direction's output of ``module``: ``proj_size``, else ``hidden_size``.

    Examples
    --------
    >>> output_size(nn.LSTM(2, 4, proj_size=3)), output_size(nn.GRU(2, 4))
    (3, 4)
    """
    return (getattr(module, "proj_size", 0) or 0) or module.hidden_size


def recurrent_layers(model: nn.Module) -> list[LayerInfo]:
    """Every recurrent layer direction in ``model``, in recording order."""
    infos: list[LayerInfo] = []
    offset = 0
    for module_name, module in model.named_modules():
        if not isinstance(module, (nn.LSTM, nn.GRU)):
            continue
        kind = "lstm" if isinstance(module, nn.LSTM) else "gru"
        for layer in range(module.num_layers):
            for reverse in (False, True) if module.bidirectional else (False,):
                infos.append(
                    LayerInfo(
                        name=layer_name(offset + layer, "reverse" if reverse else "forward"),
                        module_name=module_name,
                        kind=kind,
                        layer=layer,
                        reverse=reverse,
                        hidden_size=module.hidden_size,
                        output_size=output_size(module),
                    )
                )
        offset += module.num_layers
    return infos


def layout(
    model: nn.Module,
    quantities: Iterable[str] | None = None,
    layers: Iterable[str] | None = None,
) -> dict[str, int]:
    """The recorded datasets ``"layer0/cell" -> n_units`` for ``model``, in store order.

    ``quantities`` and ``layers`` select a subset (layers by name: ``"layer0"`` selects both of its
    directions, ``"layer0_reverse"`` only the reverse one). Unknown names raise
    :class:`~lstmprobe.errors.UnitError` listing the valid ones.
    """
    infos = recurrent_layers(model)
    if not infos:
        raise NoRecurrentLayerError("the model holds no nn.LSTM or nn.GRU module")
    known_q = {q for info in infos for q in quantities_of(info.kind)}  # type: ignore[arg-type]
    wanted_q = None if quantities is None else list(quantities)
    if wanted_q is not None:
        bad = [q for q in wanted_q if q not in known_q]
        if bad:
            raise UnitError(
                f"unknown quantit{'ies' if len(bad) > 1 else 'y'} {', '.join(bad)}; this model "
                f"records {', '.join(sorted(known_q))}"
            )
    wanted_l = None if layers is None else list(layers)
    if wanted_l is not None:
        names = {info.name for info in infos} | {
            info.name.removesuffix("_reverse") for info in infos
        }
        bad = [name for name in wanted_l if name not in names]
        if bad:
            raise UnitError(
                f"unknown layer {', '.join(bad)}; this model has "
                f"{', '.join(sorted({i.name for i in infos}))}"
            )
    out: dict[str, int] = {}
    for info in infos:
        if wanted_l is not None and not (
            info.name in wanted_l or info.name.removesuffix("_reverse") in wanted_l
        ):
            continue
        for q in quantities_of(info.kind):  # type: ignore[arg-type]
            if wanted_q is None or q in wanted_q:
                out[str(info.key(q))] = info.n_units(q)
    if not out:
        raise UnitError("the selected `layers` and `quantities` leave nothing to record")
    return out


def layer_weights(module: nn.LSTM | nn.GRU, layer: int, reverse: bool) -> LayerWeights:
    sfx = f"_l{layer}" + ("_reverse" if reverse else "")
    return LayerWeights(
        weight_ih=getattr(module, "weight_ih" + sfx),
        weight_hh=getattr(module, "weight_hh" + sfx),
        bias_ih=getattr(module, "bias_ih" + sfx, None) if module.bias else None,
        bias_hh=getattr(module, "bias_hh" + sfx, None) if module.bias else None,
        weight_hr=getattr(module, "weight_hr" + sfx, None)
        if getattr(module, "proj_size", 0)
        else None,
    )


def single_layer(module: nn.LSTM | nn.GRU, layer: int) -> nn.LSTM | nn.GRU:
    """A one-layer module sharing ``module``'s parameters of ``layer`` (no copies)."""
    out_size = output_size(module)
    input_size = module.input_size if layer == 0 else out_size * (2 if module.bidirectional else 1)
    kwargs: dict[str, Any] = dict(
        input_size=input_size,
        hidden_size=module.hidden_size,
        num_layers=1,
        bias=module.bias,
        batch_first=module.batch_first,
        bidirectional=module.bidirectional,
    )
    if isinstance(module, nn.LSTM):
        single: nn.LSTM | nn.GRU = nn.LSTM(proj_size=module.proj_size, device="meta", **kwargs)
    else:
        single = nn.GRU(device="meta", **kwargs)
    for name in list(single._flat_weights_names):
        source = name.replace("_l0", f"_l{layer}")
        setattr(single, name, getattr(module, source))
    single.train(module.training)
    return single
