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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    """Whether :func:`fused_layer` can run ``edits``: every constant edit has a weight form
    (per-position values, a patch, are stepped where they apply), else :func:`step_layer` runs."""
    rows = _LSTM_ROWS if kind == "lstm" else _GRU_ROWS
    return all(
        e.per_position or e.quantity not in rows or _gate_bias(e.quantity, e.values) is not None
        for e in edits
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
        self._modules: dict[tuple[Any, ...], nn.LSTM | nn.GRU] = {}
        self._widened: dict[tuple[Any, ...], _Widened] = {}

    def module(self, active: Sequence[LayerEdit], key: tuple[int, ...]) -> nn.LSTM | nn.GRU:
        found = self._modules.get(key)
        if found is None:
            w = edited_weights(self.kind, self.w, active) if active else self.w
            found = self._modules[key] = fused_module(self.kind, w)
        return found

    def widened(self, plan: _Plan, key: tuple[int, ...]) -> _Widened:
        """The module of :func:`_widened_layer`: the weight edits of ``plan`` and one more input
        column per saturated gate group and per set hidden unit."""
        found = self._widened.get(key)
        if found is None:
            w = (
                edited_weights(self.kind, self.w, plan.weight_edits)
                if plan.weight_edits
                else self.w
            )
            columns = [c.weight(w) for c in plan.columns]
            w_ih = torch.cat([w.weight_ih, torch.stack(columns, 1).to(w.weight_ih.dtype)], 1)
            wide = LayerWeights(w_ih, w.weight_hh, w.bias_ih, w.bias_hh, w.weight_hr)
            # |pre-activation| of any gate row without the new columns is at most this, given the
            # largest |input| and |state| (the saturating columns are scaled past it)
            bias = w.bias_ih.abs() if w.bias_ih is not None else 0
            bias = bias + (w.bias_hh.abs() if w.bias_hh is not None else 0)
            found = self._widened[key] = _Widened(
                fused_module(self.kind, wide),
                w.weight_ih.abs().sum(1),
                w.weight_hh.abs().sum(1),
                torch.as_tensor(bias),
                [c.weight(w).abs() for c in plan.columns],
            )
        return found


def fused_layer(
    inp: LayerInput,
    edits: Sequence[LayerEdit] = (),
    *,
    ids: Sequence[int] | None = None,
    modules: FusedLayer | None = None,
    stepper: Stepper | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`~lstmprobe.record.interventions.step_layer`'s result through PyTorch's fused
    kernels on edited weight copies (``modules`` keeps the copies across calls; ``ids[k]``
    identifies edit k across calls, its position in the ``with`` block; ``stepper`` is
    :func:`~lstmprobe.record.interventions.step_layer`, which runs where a patch applies).

    Where an edit applies at some positions only (a mask, a patch), an LSTM without projection
    runs in one fused call when every such edit saturates its gates or sets a hidden unit
    (:func:`_widened_layer`); otherwise positions are cut into runs (:func:`_runs_layer`).
    """
    ids = list(range(len(edits))) if ids is None else list(ids)
    modules = modules or FusedLayer(inp.kind, inp.w)
    # an edit that applies nowhere in this call changes nothing (the model's outputs bit for bit)
    kept = [k for k, e in enumerate(edits) if e.mask is None or bool(e.mask.any())]
    edits, ids = [edits[k] for k in kept], [ids[k] for k in kept]
    if inp.x.shape[1] and edits:
        plan = _plan(inp, edits)
        if plan is not None:
            return _widened_layer(inp, edits, plan, ids, modules)
    return _runs_layer(inp, edits, ids, modules, stepper)


# --------------------------------------------------------------------------- one call: widened input

Stepper = Callable[
    [LayerInput, Sequence[LayerEdit]], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
]


@dataclass(frozen=True)
class _Column:
    """One extra input column of a widened layer: either it saturates ``rows`` (weight ``sign``,
    value ``S`` where edit ``edit`` applies), or it carries hidden unit ``hidden``'s set value
    into the next step (weight ``W_hh[:, hidden]``, value ``v`` one step after it is set)."""

    edit: int
    rows: torch.Tensor | None = None
    signs: torch.Tensor | None = None
    hidden: int | None = None  # the unit's place in the edit's units
    unit: int = 0  # and its index in the layer

    def weight(self, w: LayerWeights) -> torch.Tensor:
        if self.rows is not None:
            col = w.weight_ih.new_zeros(w.weight_ih.shape[0])
            col[self.rows] = self.signs.to(col.device, col.dtype)  # type: ignore[union-attr]
            return col
        return w.weight_hh[:, self.unit].clone()


@dataclass(frozen=True)
class _Plan:
    weight_edits: tuple[LayerEdit, ...]  # applying everywhere, as weight edits
    columns: tuple[_Column, ...]


@dataclass(frozen=True)
class _Widened:
    module: nn.LSTM | nn.GRU
    abs_ih: torch.Tensor  # row sums of |W_ih| and |W_hh|, |biases|: the saturation bound
    abs_hh: torch.Tensor
    abs_bias: torch.Tensor
    abs_columns: list[torch.Tensor]


def _plan(inp: LayerInput, edits: Sequence[LayerEdit]) -> _Plan | None:
    """How ``edits`` run in one fused call of an LSTM without projection, or None.

    An edit that applies everywhere with one value per unit (not a hidden unit) is a weight
    edit; the others get input columns: a hidden unit set to ``v`` where it applies has its
    output gate saturated to 0 there (so the kernel's own ``h`` is 0) and ``v W_hh[:, j]``
    enters the next step through a column; a cell set to 0 saturates its forget and input gates
    to 0; a gate set to 0 or 1 (candidate: -1 or 1) saturates. Anything else (another value, a
    gate or cell patch, two edits of one gate row or one hidden unit) is None.
    """
    if inp.kind != "lstm" or inp.w.weight_hr is not None:
        return None
    n = inp.w.weight_ih.shape[0] // 4
    if not any(e.mask is not None or e.per_position for e in edits):
        return None
    weight_edits: list[LayerEdit] = []
    columns: list[_Column] = []
    touched: list[int] = []
    hidden: list[int] = []
    for k, e in enumerate(edits):
        units = e.units.tolist()
        if e.quantity == "hidden":
            hidden += units
            touched += [3 * n + u for u in units]
            columns.append(_Column(k, e.units + 3 * n, e.units.new_full(e.units.shape, -1)))
            columns += [_Column(k, hidden=i, unit=u) for i, u in enumerate(units)]
            continue
        if e.per_position:
            return None
        rows = [_LSTM_ROWS[e.quantity]] if e.quantity != "cell" else [0, 1]
        touched += [r * n + u for r in rows for u in units]
        if e.mask is None:
            weight_edits.append(e)
            continue
        v = e.values.tolist()
        if e.quantity == "cell":
            if any(x != 0 for x in v):
                return None
            signs = [-1.0] * (2 * len(units))
        elif e.quantity == "candidate":
            if any(abs(x) != 1 for x in v):
                return None
            signs = [float(x) for x in v]
        else:
            if any(x not in (0, 1) for x in v):
                return None
            signs = [1.0 if x == 1 else -1.0 for x in v]
        idx = torch.tensor([r * n + u for r in rows for u in units], dtype=torch.long)
        columns.append(_Column(k, idx.to(e.units.device), torch.tensor(signs)))
    if len(set(touched)) != len(touched) or len(set(hidden)) != len(hidden):
        return None
    return _Plan(tuple(weight_edits), tuple(columns))


def _widened_layer(
    inp: LayerInput,
    edits: Sequence[LayerEdit],
    plan: _Plan,
    ids: Sequence[int],
    modules: FusedLayer,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Every edit of ``plan`` in one fused call, the input widened by ``plan``'s columns."""
    x, h0, c0 = inp.x, inp.h0, inp.c0
    batch, steps, _ = x.shape
    wide = modules.widened(plan, tuple(ids))
    ones = torch.ones(batch, steps, dtype=x.dtype, device=x.device)
    carried = []  # the columns' values that carry set hidden states, and their largest |value|
    for col in plan.columns:
        if col.hidden is not None:
            e = edits[col.edit]
            m = ones if e.mask is None else e.mask.to(x.dtype)
            v = e.values[..., col.hidden] if e.per_position else e.values[col.hidden]
            val = (m * v.to(x.dtype)).roll(1, 1)
            val[:, 0] = 0  # the first step reads the incoming state as it is
            carried.append(val)
    bound = wide.abs_ih * x.abs().max() + wide.abs_hh * max(1.0, float(h0.abs().max()))
    bound = bound + wide.abs_bias
    it = iter(carried)
    for col, weight in zip(plan.columns, wide.abs_columns):
        if col.hidden is not None:
            bound = bound + weight * next(it).abs().max()
    saturate = 1e4 + 2 * float(bound.max())
    values = []
    it = iter(carried)
    for col in plan.columns:
        if col.hidden is not None:
            values.append(next(it))
        else:
            e = edits[col.edit]
            values.append((ones if e.mask is None else e.mask.to(x.dtype)) * saturate)
    wide_x = torch.cat([x, torch.stack(values, -1)], -1)
    c_in = c0.clone()  # type: ignore[union-attr]
    for e in plan.weight_edits:
        if e.quantity == "cell":  # applies everywhere: it holds from the first step on
            c_in[:, e.units] = e.values.to(c_in.dtype)
    out, (_, cn) = wide.module(wide_x, (h0[None], c_in[None]))
    out = out.clone() if out.requires_grad else out
    for e in edits:
        if e.quantity == "hidden":
            apply_edit(out, e)
    return out, out[:, -1].clone(), cn[0]


# --------------------------------------------------------------------------- runs of positions


def _runs_layer(
    inp: LayerInput,
    edits: Sequence[LayerEdit],
    ids: Sequence[int],
    modules: FusedLayer,
    stepper: Stepper | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Positions cut into runs where every sequence's set of edited weights stays the same.

    For each edit, the steps whose weights must be edited: a gate or a cell where it applies;
    a hidden unit where the step reads it set (the step after one where it applies; the first
    step when the incoming state already holds the value). Each run is one fused call per group
    of sequences sharing a set, with the state carried from the previous run; afterwards the set
    hidden units are written into the output (and the state carried on). A cell edit sets the
    cell entering a run where it starts to apply (then ``f = 1, i = 0`` keep it). A run where a
    patch (values per position) applies runs ``stepper`` on the whole batch instead.
    """
    kind, x, h0, c0 = inp.kind, inp.x, inp.h0, inp.c0
    batch, steps, _ = x.shape
    dev = x.device
    applies = [
        e.mask if e.mask is not None else torch.ones(batch, steps, dtype=torch.bool, device=dev)
        for e in edits
    ]
    weight_on = []
    for e, m in zip(edits, applies):
        if e.quantity == "hidden" and not e.per_position:
            held = (h0[:, e.units] == e.values.to(h0.dtype)).all(1, keepdim=True)
            weight_on.append(torch.cat([held, m[:, :-1]], 1) if steps else m)
        else:
            weight_on.append(m)
    out = x.new_empty(batch, steps, h0.shape[1])
    h, c = h0.clone(), None if c0 is None else c0.clone()
    if steps == 0:
        return out, h, c
    code = torch.zeros(batch, steps, dtype=torch.long, device=dev)
    stepped = 0
    for k, (e, wm) in enumerate(zip(edits, weight_on)):
        code |= wm.long() << k
        if e.per_position:
            stepped |= 1 << k
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
        if stepped and bool((column & stepped).any()):
            if stepper is None:
                raise InterventionError("a patch needs the per-step loop: pass `stepper`")
            window = [e.window(a, b) for e in edits]
            out[:, a:b], h, c = stepper(LayerInput(kind, x[:, a:b], h, c, inp.w), window)
            continue
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
                    if e.quantity == "cell" and not e.per_position:
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
                sub = LayerEdit(e.quantity, e.units, e.window(a, b).values, applies[k][:, a:b])
                apply_edit(part, sub)
                out[:, a:b] = part
                h = out[:, b - 1].clone()
    return out, h, c
