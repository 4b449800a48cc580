"""The :class:`Recorder`: every gate and state of every ``nn.LSTM``/``nn.GRU`` inside any model.

Usage::

    with Recorder(model) as rec:
        model(batch)                      # the model's own forward call
    rec.activations["layer0/cell"]        # [batch, time, units]

While the ``with`` block is open, each recurrent module runs its layers one at a time through the
same fused PyTorch kernels (a multi-layer module only exposes its last layer's outputs otherwise),
then :mod:`lstmprobe.record.cells` recomputes the gates and cell states exactly from each layer's input,
output and initial state. The model's outputs are unchanged. The fused kernels expose neither
the gates nor the cell states, so their products are computed a second time: the gates from each
layer's input and (shifted) output in one batched matrix product over all steps, the cell state
by a linear scan over those gates; the step-by-step recurrence is not run again. A forward hook on the model hands each call's activations to an optional ``sink``. On leaving the
block (also after an exception) every hook is removed and every module's ``forward`` restored.

With ``interventions`` (:class:`~lstmprobe.record.interventions.Intervention`), the recurrent modules
that hold an intervened layer run it through :func:`~lstmprobe.record.interventions.run_layer` inside
the model's own forward call, so the change reaches the recurrence, the later layers and the
decoder; the recorded activations are those of the intervened run.

Layers are named as :mod:`lstmprobe.record.layers` numbers them (``layer0``, ``layer0_reverse``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from lstmprobe import names
from lstmprobe.errors import InterventionError
from lstmprobe.names import Direction, Key, parse_layer
from lstmprobe.record.cells import LayerEdit, LayerInput, Rows, layer_internals
from lstmprobe.record.fused import FusedLayer
from lstmprobe.record.interventions import (
    Intervention,
    check_interventions,
    layer_edits,
    run_layer,
)
from lstmprobe.record.layers import (
    layer_weights,
    layout,
    output_size,
    recurrent_layers,
    single_layer,
)

Activations = dict[str, torch.Tensor]


def _to_batch_major(
    x: torch.Tensor | PackedSequence, batch_first: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(padded [batch, time, features], lengths or None)."""
    if isinstance(x, PackedSequence):
        padded, lengths = pad_packed_sequence(x, batch_first=True)
        return padded, lengths
    return (x if batch_first else x.transpose(0, 1)), None


def _flip(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Reverse each sequence in time within its own length (padding stays in place)."""
    if lengths is None:
        return x.flip(1)
    steps = x.shape[1]
    t = torch.arange(steps, device=x.device).unsqueeze(0)
    lens = lengths.to(x.device).unsqueeze(1)
    index = torch.where(t < lens, lens - 1 - t, t)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class Recorder:
    """Record every gate and state of every recurrent module of ``model``.

    Parameters
    ----------
    model : nn.Module
        Any module holding ``nn.LSTM``/``nn.GRU`` modules (or one of them itself).
    quantities : names to record, default all (``input_gate``, ``cell``, ...).
    layers : layer names to record, default all (``"layer0"``, ``"layer1_reverse"``, ...).
    sink : called with each forward call's activations (for streaming to a store).
    keep : keep the latest call's activations in :attr:`activations`.
    lazy : defer the recomputation: :attr:`activations` (and what ``sink`` gets) is then a
        :class:`PendingActivations` whose ``materialize()`` computes the values, on any thread.
        With ``keep=False`` and no ``sink`` nothing is recomputed (interventions only).
    interventions : :class:`~lstmprobe.record.interventions.Intervention` values applied inside every
        forward call of the block.
    method : ``"auto"`` (fused kernels on edited weights where possible), ``"fused"`` or
        ``"steps"`` (the per-step reference loop) for intervened layers.

    Attributes
    ----------
    activations : dict of "layer{l}/{quantity}" -> Tensor of shape (batch, time, units)
        The latest forward call's values, batch-major whatever the module's ``batch_first``.
        Padded steps of a ``PackedSequence`` input hold meaningless values: see :attr:`lengths`.
    lengths : Tensor of shape (batch,) or None
        The sequence lengths when the input was a ``PackedSequence``.
    layout : dict of "layer{l}/{quantity}" -> n_units

    Examples
    --------
    >>> lstm = nn.LSTM(4, 3, num_layers=2, batch_first=True)
    >>> with Recorder(lstm) as rec:
    ...     out, (h_n, c_n) = lstm(torch.randn(2, 5, 4))
    >>> tuple(rec.activations["layer1/cell"].shape)
    (2, 5, 3)
    >>> torch.allclose(rec.activations["layer1/cell"][:, -1], c_n[1], atol=1e-6)
    True
    >>> with Recorder(lstm, interventions=[Intervention("layer0/hidden/2", "zero")]) as rec:
    ...     out, _ = lstm(torch.randn(2, 5, 4))
    >>> float(rec.activations["layer0/hidden"][..., 2].abs().max())
    0.0
    """

    def __init__(
        self,
        model: nn.Module,
        quantities: Iterable[str] | None = None,
        layers: Iterable[str] | None = None,
        sink: Callable[[Activations], None] | None = None,
        keep: bool = True,
        lazy: bool = False,
        interventions: Iterable[Intervention] = (),
        method: str = "auto",
    ) -> None:
        self.model = model
        self.layout = layout(model, quantities, layers)
        self.sink = sink
        self.keep = keep
        self.lazy = lazy
        if method not in ("auto", "fused", "steps"):
            raise InterventionError(f"method is 'auto', 'fused' or 'steps', got {method!r}")
        self.method = method
        self.interventions = list(interventions)
        self.activations: Activations | PendingActivations = {}
        self.lengths: torch.Tensor | None = None
        self._pending: list[Callable[[], Activations]] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._patched: list[tuple[nn.Module, Any]] = []
        self._infos = recurrent_layers(model)
        self._edits = check_interventions(self.interventions, self._infos)
        self._ids = {id(iv): k for k, iv in enumerate(self.interventions)}
        self._fused: dict[str, FusedLayer] = {}
        # the latest embedding call of this forward: its output, and that output as rows
        self._embedded: tuple[torch.Tensor, Rows] | None = None

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> Recorder:
        try:
            offset = 0
            for module in self.model.modules():
                if isinstance(module, (nn.LSTM, nn.GRU)):
                    self._instrument(module, offset)
                    offset += module.num_layers
                elif isinstance(module, nn.Embedding) and module.max_norm is None:
                    self._handles.append(module.register_forward_hook(self._on_embedding))
            self._handles.append(self.model.register_forward_pre_hook(self._on_model_start))
            self._handles.append(self.model.register_forward_hook(self._on_model_end))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _remove(self) -> None:
        self._fused.clear()  # edited weight copies live for one block (the weights may change)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module, previous in reversed(self._patched):
            if previous is None:
                module.__dict__.pop("forward", None)
            else:
                module.__dict__["forward"] = previous
        self._patched.clear()

    # -- hooks -----------------------------------------------------------------------------------
    def _on_model_start(self, module: nn.Module, args: Any) -> None:
        self._pending = []
        self.lengths = None
        self._embedded = None

    def _on_embedding(self, module: nn.Module, args: Any, output: Any) -> None:
        """Remember an embedding's call: a first layer reading its output reads rows of its
        weight (:class:`~lstmprobe.record.cells.Rows`)."""
        ids, weight = args[0] if args else None, module.weight
        if isinstance(ids, torch.Tensor) and isinstance(output, torch.Tensor):
            self._embedded = (output, Rows(weight, ids))  # type: ignore[arg-type]

    def _on_model_end(self, module: nn.Module, args: Any, output: Any) -> None:
        pending = PendingActivations(self._pending, self.layout)
        self._pending = []
        current: Activations | PendingActivations = pending if self.lazy else pending.materialize()
        if self.keep:
            self.activations = current
        if self.sink is not None:
            self.sink(current)  # type: ignore[arg-type]

    def _instrument(self, module: nn.LSTM | nn.GRU, offset: int) -> None:
        wanted = {Key.parse(name).layer_name for name in self.layout}  # layers (with _reverse)
        singles = (
            [single_layer(module, k) for k in range(module.num_layers)]
            if module.num_layers > 1
            else None
        )
        recorder = self
        intervened = any(
            names.layer_name(offset + k) in self._edits for k in range(module.num_layers)
        )

        def forward(input: Any, hx: Any = None) -> Any:
            if intervened:
                return recorder._forward_intervened(module, offset, wanted, input, hx)
            return recorder._forward(module, singles, offset, wanted, input, hx)

        self._patched.append((module, module.__dict__.get("forward")))
        module.__dict__["forward"] = forward

    # -- the instrumented forward ----------------------------------------------------------------
    def _forward(
        self,
        module: nn.LSTM | nn.GRU,
        singles: list[nn.LSTM | nn.GRU] | None,
        offset: int,
        wanted: set[str],
        input: Any,
        hx: Any,
    ) -> Any:
        is_lstm = isinstance(module, nn.LSTM)
        cls_forward: Callable[..., Any] = type(module).forward
        if singles is None:
            output, state = cls_forward(module, input, hx)
            self._record_layer(
                _LayerCall(module, 0, names.layer_name(offset), input, output, hx), wanted
            )
            return output, state
        # several layers: run them one at a time so that each layer's output is seen
        dirs = 2 if module.bidirectional else 1
        layer_input = output = input
        h_parts: list[torch.Tensor] = []
        c_parts: list[torch.Tensor] = []
        for k, single in enumerate(singles):
            layer_hx = _slice_state(hx, k, dirs, is_lstm)
            output, state = single(layer_input, layer_hx)
            call = _LayerCall(
                module, k, names.layer_name(offset + k), layer_input, output, layer_hx
            )
            self._record_layer(call, wanted)
            if is_lstm:
                h_parts.append(state[0])
                c_parts.append(state[1])
            else:
                h_parts.append(state)
            if k < len(singles) - 1 and module.training and module.dropout > 0:
                output = _dropout(output, module.dropout)
            layer_input = output
        h_n = torch.cat(h_parts, 0)
        return output, ((h_n, torch.cat(c_parts, 0)) if is_lstm else h_n)

    def _forward_intervened(
        self,
        module: nn.LSTM | nn.GRU,
        offset: int,
        wanted: set[str],
        input: Any,
        hx: Any,
    ) -> Any:
        """Run ``module`` layer by layer, batch-major, with the interventions of each layer."""
        if isinstance(input, PackedSequence):
            raise InterventionError(
                "interventions need a padded tensor input, not a PackedSequence (padding at "
                "the end of a sequence does not change a unidirectional layer's valid steps)"
            )
        is_lstm = isinstance(module, nn.LSTM)
        kind = "lstm" if is_lstm else "gru"
        unbatched = input.dim() == 2
        x = input.unsqueeze(0 if module.batch_first else 1) if unbatched else input
        if not module.batch_first:
            x = x.transpose(0, 1)
        batch, steps = x.shape[0], x.shape[1]
        out_size = output_size(module)
        layers = module.num_layers
        if hx is None:
            h_all = x.new_zeros(layers, batch, out_size)
            c_all = x.new_zeros(layers, batch, module.hidden_size) if is_lstm else None
        else:
            h_all, c_all = hx if is_lstm else (hx, None)
            if unbatched:
                h_all = h_all.unsqueeze(1)
                c_all = c_all.unsqueeze(1) if c_all is not None else None
        layer_input = x
        h_parts, c_parts = [], []
        for k in range(layers):
            name = names.layer_name(offset + k)
            ivs = self._edits.get(name, [])
            w = layer_weights(module, k, False)
            edits = layer_edits(ivs, batch, steps, x.device, x.dtype)
            fused = self._fused.get(name)
            if fused is None:
                fused = self._fused[name] = FusedLayer(kind, w)
            inp = LayerInput(kind, layer_input, h_all[k], None if c_all is None else c_all[k], w)
            output, h_n, c_n = run_layer(
                inp, edits, method=self.method, fused=fused, ids=[self._ids[id(iv)] for iv in ivs]
            )
            self._record_edited(name, wanted, inp, output, edits)
            h_parts.append(h_n)
            if c_n is not None:
                c_parts.append(c_n)
            if k < layers - 1 and module.training and module.dropout > 0:
                output = _dropout(output, module.dropout)
            layer_input = output
        result = layer_input if module.batch_first else layer_input.transpose(0, 1)
        h_n_all = torch.stack(h_parts, 0)
        c_n_all = torch.stack(c_parts, 0) if is_lstm else None
        if unbatched:
            result = result.squeeze(0 if module.batch_first else 1)
            h_n_all = h_n_all.squeeze(1)
            c_n_all = c_n_all.squeeze(1) if c_n_all is not None else None
        return result, ((h_n_all, c_n_all) if is_lstm else h_n_all)

    def _record_edited(
        self,
        name: str,
        wanted: set[str],
        inp: LayerInput,
        output: torch.Tensor,
        edits: tuple[LayerEdit, ...],
    ) -> None:
        if name not in wanted or (not self.keep and self.sink is None):
            return
        layer, direction = parse_layer(name)
        qs = _quantities(self.layout, name)

        def compute() -> Activations:
            with torch.no_grad():
                got = layer_internals(inp, output, qs, edits)
            return {str(Key(layer, q, direction)): v for q, v in got.items()}

        self._pending.append(compute)

    def _record_layer(self, call: _LayerCall, wanted: set[str]) -> None:
        dirs = (False, True) if call.module.bidirectional else (False,)
        if not self.keep and self.sink is None:
            return
        offset, _ = parse_layer(call.name)
        if not any(names.layer_name(offset, _direction(r)) in wanted for r in dirs):
            return
        if isinstance(call.input, PackedSequence):
            self.lengths = _packed_lengths(call.input)
        embedded = self._embedded
        if call.k == 0 and embedded is not None and call.input is embedded[0]:
            call = replace(call, rows=embedded[1])
        layout = self.layout

        def compute() -> Activations:
            with torch.no_grad():
                return _internals(call, wanted, layout)

        self._pending.append(compute)


@dataclass(frozen=True)
class _LayerCall:
    """One call of layer ``k`` of a recurrent ``module``, named ``name`` in the recording: its
    input and output (Tensors or PackedSequences, as the module saw them) and its state ``hx``;
    ``rows`` where the input is an embedding's output (its ids as the embedding saw them)."""

    module: nn.LSTM | nn.GRU
    k: int
    name: str
    input: Any
    output: Any
    hx: Any
    rows: Rows | None = None


class PendingActivations:
    """A forward call's activations, computed when :meth:`materialize` is first called.

    ``Recorder(lazy=True)`` returns these so that the recomputation can run on another thread
    (overlapping the next forward call); the captured tensors and weights must not change until
    then.
    """

    def __init__(self, thunks: list[Callable[[], Activations]], order: Iterable[str]) -> None:
        self._thunks = thunks
        self._order = list(order)
        self._values: Activations | None = None

    def materialize(self) -> Activations:
        if self._values is None:
            merged: Activations = {}
            for thunk in self._thunks:
                merged.update(thunk())
            self._values = {k: merged[k] for k in self._order if k in merged}
            self._thunks = []
        return self._values


def _packed_lengths(packed: PackedSequence) -> torch.Tensor:
    batch_sizes = packed.batch_sizes
    lengths = (torch.arange(int(batch_sizes[0])).unsqueeze(1) < batch_sizes.unsqueeze(0)).sum(1)
    if packed.unsorted_indices is not None:
        lengths = lengths[packed.unsorted_indices.cpu()]
    return lengths


def _internals(call: _LayerCall, wanted: set[str], layout: dict[str, int]) -> Activations:
    """The wanted internals of one layer call, every direction, recomputed."""
    module, k, name, layer_input, output = call.module, call.k, call.name, call.input, call.output
    dirs = (False, True) if module.bidirectional else (False,)
    values: Activations = {}
    unbatched = not isinstance(layer_input, PackedSequence) and layer_input.dim() == 2
    if unbatched and not isinstance(layer_input, PackedSequence):
        layer_input = layer_input.unsqueeze(0 if module.batch_first else 1)
        output = output.unsqueeze(0 if module.batch_first else 1)
    x, lengths = _to_batch_major(layer_input, module.batch_first)
    y, _ = _to_batch_major(output, module.batch_first)
    ids = None if call.rows is None else _batch_major_ids(call.rows.ids, module.batch_first)
    batch = x.shape[0]
    kind = "lstm" if isinstance(module, nn.LSTM) else "gru"
    out_size = output_size(module)
    offset, _ = parse_layer(name)
    for d, reverse in enumerate(dirs):
        layer_name = names.layer_name(offset, _direction(reverse))
        if layer_name not in wanted:
            continue
        qs = _quantities(layout, layer_name)
        h0, c0 = _initial_state(call.hx, d, batch, module, x, unbatched)
        h_out = y[..., d * out_size : (d + 1) * out_size]
        xi, ids_i = x, ids
        if reverse:
            xi, h_out = _flip(x, lengths), _flip(h_out, lengths)
            ids_i = None if ids is None else _flip(ids.unsqueeze(-1), lengths).squeeze(-1)
        # input_projection checks that the rows fit and equal the input before it uses them
        rows = None if ids_i is None or call.rows is None else Rows(call.rows.table, ids_i)
        inp = LayerInput(
            kind, xi, h0, c0 if kind == "lstm" else None, layer_weights(module, k, reverse), rows
        )
        got = layer_internals(inp, h_out, qs)
        for q, v in got.items():
            values[str(Key(offset, q, _direction(reverse)))] = _flip(v, lengths) if reverse else v
    return values


def _batch_major_ids(ids: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """An embedded input's ids, (batch, time) as :func:`_to_batch_major` makes its input."""
    if ids.dim() == 1:
        return ids.unsqueeze(0)
    return ids if batch_first else ids.transpose(0, 1)


def _direction(reverse: bool) -> Direction:
    return "reverse" if reverse else "forward"


def _quantities(layout: dict[str, int], layer_name: str) -> tuple[str, ...]:
    """The quantities of ``layer_name`` (``layer0``, ``layer0_reverse``) that ``layout`` records."""
    keys = [Key.parse(k) for k in layout]
    return tuple(k.quantity for k in keys if k.layer_name == layer_name)


def _slice_state(hx: Any, k: int, dirs: int, is_lstm: bool) -> Any:
    if hx is None:
        return None
    if is_lstm:
        h0, c0 = hx
        return (h0[k * dirs : (k + 1) * dirs], c0[k * dirs : (k + 1) * dirs])
    return hx[k * dirs : (k + 1) * dirs]


def _initial_state(
    hx: Any,
    d: int,
    batch: int,
    module: nn.LSTM | nn.GRU,
    x: torch.Tensor,
    unbatched: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(h0, c0) of direction ``d`` of a one-layer state, each [batch, size]; zeros if absent."""
    out_size = output_size(module)
    if hx is None:
        h0 = x.new_zeros(batch, out_size)
        c0 = x.new_zeros(batch, module.hidden_size)
        return h0, c0
    if isinstance(module, nn.LSTM):
        h, c = hx
    else:
        h, c = hx, None
    if unbatched:
        h = h.unsqueeze(1)
        c = c.unsqueeze(1) if c is not None else None
    h0 = h[d]
    c0 = c[d] if c is not None else x.new_zeros(batch, module.hidden_size)
    return h0, c0


def _dropout(output: Any, p: float) -> Any:
    if isinstance(output, PackedSequence):
        return output._replace(data=nn.functional.dropout(output.data, p, training=True))
    return nn.functional.dropout(output, p, training=True)
