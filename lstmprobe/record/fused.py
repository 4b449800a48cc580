"""The fused path of an intervention: PyTorch's fused kernels on an edited copy of a layer's weights.

:func:`fused_layer` gives what :func:`~lstmprobe.record.interventions.step_layer` (the plain
per-step reference) gives, one fused call per run of positions where the same edits apply,
carrying the state across runs: a set hidden unit ``j`` becomes a zero column ``j`` of ``W_hh``
whose contribution ``v W_hh[:, j]`` moves into the bias (the output is then set to ``v``, so the
next layer and the decoder read it); a clamped gate becomes a zero row of ``W_ih`` and ``W_hh``
with the bias that gives ``v`` (``logit(v)`` or ``atanh(v)``); a set cell becomes a forget gate
clamped to 1 and an input gate clamped to 0 with the cell entering the run set to ``v``. A gate
set outside its range (a sigmoid gate to 2) has no weight form (:func:`fusable` is false).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lstmprobe.errors import InterventionError
from lstmprobe.record.cells import LayerEdit, LayerInput, LayerWeights, apply_edit

#: the pre-activation that saturates a gate exactly (sigmoid(1e4) == 1.0 in float32)
SATURATED = 1e4

_LSTM_ROWS = {"input_gate": 0, "forget_gate": 1, "candidate": 2, "output_gate": 3}
_GRU_ROWS = {"reset_gate": 0, "update_gate": 1, "candidate": 2}
_TANH_GATES = {"candidate"}


def _gate_bias(q: str, values: torch.Tensor) -> torch.Tensor | None:
    """The pre-activation that gives ``values`` after the gate's nonlinearity, or None."""
    v = values.double()
    if q in _TANH_GATES:
        if (v.abs() > 1).any():
            return None
        pre = torch.atanh(v.clamp(-1, 1))
    else:
        if ((v < 0) | (v > 1)).any():
            return None
        pre = torch.log(v) - torch.log1p(-v)
    return pre.clamp(-SATURATED, SATURATED).to(values.dtype)


def fusable(kind: str, edits: Sequence[LayerEdit]) -> bool:
    """Whether every edit has a weight form (:func:`fused_layer`), else :func:`step_layer` runs."""
    rows = _LSTM_ROWS if kind == "lstm" else _GRU_ROWS
    return all(
        e.quantity not in rows or _gate_bias(e.quantity, e.values) is not None for e in edits
    )


def edited_weights(kind: str, w: LayerWeights, edits: Sequence[LayerEdit]) -> LayerWeights:
    """A copy of ``w`` in which ``edits`` (applying at every step) are weight edits.

    The hidden edits' columns of ``W_hh`` are zeroed and their contribution moved to the bias;
    a gate's rows are zeroed with the bias that gives its value; a cell's forget gate is clamped
    to 1 and its input gate to 0 (the caller sets the cell entering the run).
    """
    w_ih, w_hh = w.weight_ih.clone(), w.weight_hh.clone()
    b_ih = w.bias_ih.clone() if w.bias_ih is not None else w_ih.new_zeros(w_ih.shape[0])
    b_hh = w.bias_hh.clone() if w.bias_hh is not None else w_hh.new_zeros(w_hh.shape[0])
    rows = _LSTM_ROWS if kind == "lstm" else _GRU_ROWS
    n = w_ih.shape[0] // len(rows)
    for e in edits:
        if e.quantity == "hidden":
            b_hh += w_hh[:, e.units] @ e.values.to(w_hh.dtype)
            w_hh[:, e.units] = 0
    clamps: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    for e in edits:
        if e.quantity in rows:
            bias = _gate_bias(e.quantity, e.values)
            if bias is None:
                raise InterventionError(f"{e.quantity} = {e.values.tolist()} has no weight form")
            clamps.append((e.quantity, e.units, bias))
    for e in edits:  # a set cell wins over gate edits of the same unit
        if e.quantity == "cell":
            clamps.append(("input_gate", e.units, e.values.new_full(e.units.shape, -SATURATED)))
            clamps.append(("forget_gate", e.units, e.values.new_full(e.units.shape, SATURATED)))
    for q, units, bias in clamps:
        r = rows[q] * n + units
        w_ih[r] = 0
        w_hh[r] = 0
        b_hh[r] = 0
        b_ih[r] = bias.to(b_ih.dtype)
    return LayerWeights(w_ih, w_hh, b_ih, b_hh, w.weight_hr)


def fused_module(kind: str, w: LayerWeights) -> nn.LSTM | nn.GRU:
    """A one-layer, batch-first ``nn.LSTM``/``nn.GRU`` holding ``w`` (no copies)."""
    hidden = w.weight_ih.shape[0] // (4 if kind == "lstm" else 3)
    kwargs: dict[str, Any] = dict(
        input_size=w.weight_ih.shape[1],
        hidden_size=hidden,
        num_layers=1,
        bias=w.bias_ih is not None,
        batch_first=True,
        device="meta",
    )
    if kind == "lstm":
        proj = w.weight_hr.shape[0] if w.weight_hr is not None else 0
        module: nn.LSTM | nn.GRU = nn.LSTM(proj_size=proj, **kwargs)
    else:
        module = nn.GRU(**kwargs)
    tensors = {
        "weight_ih_l0": w.weight_ih,
        "weight_hh_l0": w.weight_hh,
        "bias_ih_l0": w.bias_ih,
        "bias_hh_l0": w.bias_hh,
        "weight_hr_l0": w.weight_hr,
    }
    for name in list(module._flat_weights_names):
        t = tensors[name]
        # the model's own parameters as they are (PyTorch picks its kernel by requires_grad,
        # and an intervention that never applies must give the model's outputs bit for bit)
        setattr(module, name, t if isinstance(t, nn.Parameter) else nn.Parameter(t, False))
    return module.eval()


class FusedLayer:
    """The edited weight copies of one layer direction for :func:`fused_layer`, kept so that
    a ``with`` block builds each copy once."""

    def __init__(self, kind: str, w: LayerWeights) -> None:
        self.kind = kind
        self.w = w
        self._modules: dict[tuple[int, ...], nn.LSTM | nn.GRU] = {}

    def module(self, active: Sequence[LayerEdit], key: tuple[int, ...]) -> nn.LSTM | nn.GRU:
        found = self._modules.get(key)
        if found is None:
            w = edited_weights(self.kind, self.w, active) if active else self.w
            found = self._modules[key] = fused_module(self.kind, w)
        return found


def fused_layer(
    inp: LayerInput,
    edits: Sequence[LayerEdit] = (),
    *,
    ids: Sequence[int] | None = None,
    modules: FusedLayer | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`~lstmprobe.record.interventions.step_layer`'s result through PyTorch's fused
    kernels on edited weight copies (``modules`` keeps the copies across calls; ``ids[k]``
    identifies edit k across calls, its position in the ``with`` block).

    For each edit, the steps whose weights must be edited: a gate or a cell where it applies;
    a hidden unit where the step reads it set (the step after one where it applies; the first
    step when the incoming state already holds the value). Positions are cut into runs where
    every sequence's set of edited weights stays the same; each run is one fused call per group
    of sequences sharing a set, with the state carried from the previous run. Afterwards the set
    hidden units are written into the output (and the state carried on). A cell edit sets the
    cell entering a run where it starts to apply (then ``f = 1, i = 0`` keep it).
    """
    kind, x, h0, c0 = inp.kind, inp.x, inp.h0, inp.c0
    batch, steps, _ = x.shape
    modules = modules or FusedLayer(kind, inp.w)
    ids = list(range(len(edits))) if ids is None else list(ids)
    dev = x.device
    applies = [
        e.mask if e.mask is not None else torch.ones(batch, steps, dtype=torch.bool, device=dev)
        for e in edits
    ]
    weight_on = []
    for e, m in zip(edits, applies):
        if e.quantity == "hidden":
            held = (h0[:, e.units] == e.values.to(h0.dtype)).all(1, keepdim=True)
            weight_on.append(torch.cat([held, m[:, :-1]], 1) if steps else m)
        else:
            weight_on.append(m)
    out = x.new_empty(batch, steps, h0.shape[1])
    h, c = h0.clone(), None if c0 is None else c0.clone()
    if steps == 0:
        return out, h, c
    code = torch.zeros(batch, steps, dtype=torch.long, device=dev)
    for k, wm in enumerate(weight_on):
        code |= wm.long() << k
    # A GRU unit reads its own h_{t-1} outside the weights (z * h_{t-1}): a run must also end
    # where a set hidden unit stops being set, so that the next run starts from the set value.
    split = code.clone()
    for k, (e, m) in enumerate(zip(edits, applies)):
        if kind == "gru" and e.quantity == "hidden":
            split |= m.long() << (len(edits) + k)
    change = (split[:, 1:] != split[:, :-1]).any(0).nonzero().flatten() + 1
    bounds = [0, *change.tolist(), steps]
    for a, b in itertools.pairwise(bounds):
        column = code[:, a]
        for value in torch.unique(column).tolist():
            rows = (column == value).nonzero().flatten()
            every = len(rows) == batch
            active = [e for k, e in enumerate(edits) if value >> k & 1]
            key = tuple(ids[k] for k in range(len(edits)) if value >> k & 1)
            module = modules.module(active, key)
            hr = h if every else h[rows]
            if kind == "lstm":
                cr = c if every else c[rows]  # type: ignore[index]
                cr = cr.clone()  # type: ignore[union-attr]
                for k, e in enumerate(edits):
                    if e.quantity == "cell":
                        starts = applies[k][rows, a]
                        if a > 0:
                            starts = starts & ~applies[k][rows, a - 1]
                        if starts.any():
                            cr[starts.nonzero().flatten().unsqueeze(1), e.units] = e.values.to(
                                cr.dtype
                            )
                y, (hn, cn) = module(x[rows, a:b] if not every else x[:, a:b], (hr[None], cr[None]))
                cn = cn[0]
            else:
                y, hn = module(x[rows, a:b] if not every else x[:, a:b], hr[None])
                cn = None
            hn = hn[0]
            if every:
                out[:, a:b] = y
                h = hn.clone()
                c = cn
            else:
                out[rows, a:b] = y
                h[rows] = hn
                if cn is not None:
                    c[rows] = cn  # type: ignore[index]
        # the set hidden units, written where they apply; the state carries them on
        for k, e in enumerate(edits):
            if e.quantity == "hidden":
                part = out[:, a:b]
                sub = LayerEdit(e.quantity, e.units, e.values, applies[k][:, a:b])
                apply_edit(part, sub)
                out[:, a:b] = part
                h = out[:, b - 1].clone()
    return out, h, c
