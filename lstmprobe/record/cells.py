"""Exact recomputation of LSTM and GRU internals from a layer's weights, input and outputs.

PyTorch's fused ``nn.LSTM``/``nn.GRU`` return only the hidden state of the last layer at every
step. Given one layer's input ``x``, its per-step output ``h`` and its initial state, every other
quantity follows without a second recurrent pass:

* the state before step t is known (``h0``, then the output at t-1), so all gate
  pre-activations come from two large matrix products over all steps at once;
* the LSTM cell obeys the linear recurrence ``c_t = f_t * c_{t-1} + i_t * g_t``, solved here by a
  blocked scan (sequential inside blocks of about sqrt(T) steps, vectorised across blocks);
* the GRU needs no recurrence at all.

PyTorch's gate order is used throughout: LSTM rows ``[i, f, g, o]``, GRU rows ``[r, z, n]``.
All tensors are batch-first: ``(batch, time, features)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from lstmprobe.names import GRU_QUANTITIES, LSTM_QUANTITIES

Kind = Literal["lstm", "gru"]


def quantities_of(kind: Kind) -> tuple[str, ...]:
    """The recorded quantities of an ``"lstm"`` or ``"gru"`` layer, in store order."""
    return LSTM_QUANTITIES if kind == "lstm" else GRU_QUANTITIES


@dataclass(frozen=True)
class LayerEdit:
    """One intervention resolved for one layer direction: set ``units`` of ``quantity`` to
    ``values`` at the positions where ``mask`` is true (everywhere when ``mask`` is None).

    ``units`` is a long Tensor of shape (n,); ``values`` a Tensor of shape (n,) (one value per
    unit, at every position) or (batch, time, n) (a value per position: a patch); ``mask`` a
    bool Tensor of shape (batch, time) or None (:mod:`lstmprobe.record.interventions` builds
    these).
    """

    quantity: str
    units: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor | None = None

    @property
    def per_position(self) -> bool:
        """Whether the values vary by position (a patch) rather than being one per unit."""
        return self.values.dim() == 3

    def window(self, start: int, stop: int, rows: torch.Tensor | None = None) -> LayerEdit:
        """This edit for positions ``[start, stop)`` (and the batch ``rows``, when given)."""
        values, mask = self.values, self.mask
        if self.per_position:
            values = values[:, start:stop] if rows is None else values[rows, start:stop]
        if mask is not None:
            mask = mask[:, start:stop] if rows is None else mask[rows, start:stop]
        return LayerEdit(self.quantity, self.units, values, mask)


def apply_edit(values: torch.Tensor, edit: LayerEdit, step: int | None = None) -> None:
    """Set ``edit``'s units of ``values`` in place where its mask holds.

    ``values`` is (batch, time, units), or (batch, units) for one ``step`` of the mask (and of
    per-position values).
    """
    new = edit.values
    if edit.per_position and step is not None:
        new = new[:, step]
    new = new.to(values.dtype)
    if edit.mask is None:
        values[..., edit.units] = new
        return
    mask = edit.mask if step is None else edit.mask[:, step]
    old = values[..., edit.units]
    values[..., edit.units] = torch.where(mask.unsqueeze(-1), new, old)


@dataclass(frozen=True)
class LayerWeights:
    """The weights of one direction of one recurrent layer (PyTorch layout)."""

    weight_ih: torch.Tensor  # [gates*H, input]
    weight_hh: torch.Tensor  # [gates*H, P]  (P = proj_size or H)
    bias_ih: torch.Tensor | None  # [gates*H]
    bias_hh: torch.Tensor | None  # [gates*H]
    weight_hr: torch.Tensor | None = None  # [P, H] (LSTM with proj_size only)


@dataclass(frozen=True)
class Rows:
    """A layer input made of rows of a table, ``x = table[ids]`` (an embedding's output), so
    that its projection ``W_ih x + b_ih`` is the same rows of the projected table."""

    table: torch.Tensor  # (vocab, input)
    ids: torch.Tensor  # (batch, time), in the order the direction reads them


@dataclass(frozen=True)
class LayerInput:
    """What one layer direction runs on: its kind, its input (in the order this direction reads
    it), its initial state and its weights; ``rows`` where the input is known to be rows of a
    table (:func:`input_projection`)."""

    kind: Kind
    x: torch.Tensor  # (batch, time, input)
    h0: torch.Tensor  # (batch, P)
    c0: torch.Tensor | None  # (batch, H); None for a GRU
    w: LayerWeights
    rows: Rows | None = None


def input_projection(inp: LayerInput) -> torch.Tensor:
    """``W_ih x + b_ih`` for every step, (batch, time, gates*H), a new tensor.

    Where the input is rows of a table (``inp.rows``, a char's embedding) and the steps
    outnumber the table's rows, the table is projected once and its rows are looked up: the
    same dot products, for a vocabulary instead of every char (on a 4,096-char chunk of the
    1x128 benchmark model, a third of the recomputation's matrix work). The input is checked
    to equal those rows first (a tenth of the cost saved), so a model that changed its
    embedding's output in place still gets exact values. Otherwise, and as the reference this
    equals, the input is projected step by step in one matrix product.
    """
    w, rows, x = inp.w, inp.rows, inp.x
    if (
        rows is not None
        and rows.ids.numel() > rows.table.shape[0]
        and rows.ids.shape == x.shape[:-1]
        and rows.table.shape[-1:] == x.shape[-1:]
    ):
        flat_ids = rows.ids.reshape(-1)
        if torch.equal(torch.index_select(rows.table, 0, flat_ids).view(x.shape), x):
            table = _project(rows.table.unsqueeze(0), w.weight_ih, w.bias_ih)[0]
            return torch.index_select(table, 0, flat_ids).view(*rows.ids.shape, -1)
    return _project(x, w.weight_ih, w.bias_ih)


def linear_recurrence(a: torch.Tensor, b: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
    """Solve ``y_t = a_t * y_{t-1} + b_t`` for all t, with ``y_{-1} = y0``.

    Parameters
    ----------
    a, b : Tensor of shape (batch, time, units)
    y0 : Tensor of shape (batch, units)

    Returns
    -------
    y : Tensor of shape (batch, time, units)

    Examples
    --------
    >>> a = torch.full((1, 5, 1), 0.5); b = torch.ones(1, 5, 1)
    >>> linear_recurrence(a, b, torch.zeros(1, 1)).flatten().tolist()
    [1.0, 1.5, 1.75, 1.875, 1.9375]
    """
    batch, steps, units = b.shape
    if steps == 0:
        return b.clone()
    block = max(1, math.isqrt(steps))
    n_blocks = -(-steps // block)
    pad = n_blocks * block - steps
    if pad:
        a = torch.cat([a, a.new_ones(batch, pad, units)], 1)
        b = torch.cat([b, b.new_zeros(batch, pad, units)], 1)
    else:
        # one copy of a gate sliced from the gates' matrix costs less than the strided reads
        # below (1.5x on the 1x128 benchmark model's chunks); a padded one is a copy already
        a, b = a.contiguous(), b.contiguous()
    a4 = a.view(batch, n_blocks, block, units)
    b4 = b.view(batch, n_blocks, block, units)
    # y inside each block, as if the block started from zero: sequential over the block's steps,
    # vectorised over blocks. The steps are taken apart once (``unbind``) and put together once
    # (``stack``): each loop turn is then a single torch call, which is what a loop of ~sqrt(T)
    # small calls costs (1.5x faster than indexing and assigning slices in the loop).
    a_steps, b_steps = a4.unbind(2), b4.unbind(2)
    acc = b_steps[0]
    local_steps = [acc]
    for j in range(1, block):
        acc = torch.addcmul(b_steps[j], a_steps[j], acc)
        local_steps.append(acc)
    local = torch.stack(local_steps, 2)
    decay = torch.cumprod(a4, dim=2)  # product of a from the block's start to each step
    # the true state entering each block: sequential over blocks
    ends, decays = local_steps[-1].unbind(1), decay[:, :, -1].unbind(1)
    carries = [y0]
    for k in range(n_blocks - 1):
        carries.append(torch.addcmul(ends[k], decays[k], carries[-1]))
    carry_in = torch.stack(carries, 1).unsqueeze(2)  # [batch, n_blocks, 1, units]
    y = torch.addcmul(local, decay, carry_in).view(batch, n_blocks * block, units)
    return y[:, :steps] if pad else y


def _previous(h_out: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """The state entering each step: ``h0`` then the outputs shifted by one step."""
    return torch.cat([h0.unsqueeze(1), h_out[:, :-1]], 1)


def _project(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    batch, steps, _ = x.shape
    flat = x.reshape(batch * steps, -1)
    out = torch.addmm(bias, flat, weight.t()) if bias is not None else flat @ weight.t()
    return out.view(batch, steps, -1)


def layer_internals(
    inp: LayerInput,
    h_out: torch.Tensor,
    quantities: tuple[str, ...] | None = None,
    edits: tuple[LayerEdit, ...] = (),
) -> dict[str, torch.Tensor]:
    """Every internal quantity of one layer direction, exactly.

    With ``edits`` (interventions the layer ran under), ``h_out`` is the intervened output and
    the gates, computed from it, are then set where each edit says; an edited cell restarts the
    recurrence from its set value (``c_t = v``, then ``c_{t+1} = f c_t + i g`` as usual).

    Parameters
    ----------
    inp : LayerInput
        The layer's input ``x`` (batch, time, input), initial state and weights.
    h_out : Tensor of shape (batch, time, P)
        The layer's output for this direction (the projected hidden state when proj_size > 0).
    quantities : the names to return (a subset of :func:`quantities_of`); by default all
    edits : LayerEdit, optional

    Returns
    -------
    dict mapping quantity name to Tensor of shape (batch, time, units)
    """
    qs = quantities_of(inp.kind) if quantities is None else tuple(quantities)
    if inp.kind == "lstm":
        return _lstm_internals(inp, h_out, qs, edits)
    return _gru_internals(inp, h_out, qs, edits)


def _lstm_internals(
    inp: LayerInput, h_out: torch.Tensor, quantities: tuple[str, ...], edits: tuple[LayerEdit, ...]
) -> dict[str, torch.Tensor]:
    h0, c0, w = inp.h0, inp.c0, inp.w
    if c0 is None:
        raise ValueError("an LSTM layer's LayerInput needs its initial cell state c0")
    # h_out is already the intervened output, so a quantity not asked for (the cell under a
    # cell edit included) is not needed to compute the others
    wanted = set(quantities)
    out: dict[str, torch.Tensor] = {}
    need_gates = wanted - {"hidden"}
    if need_gates:
        pre = input_projection(inp)
        flat = pre.view(-1, pre.shape[-1])
        # accumulate in place: a second [time, 4H] temporary costs as much as the product
        flat.addmm_(_previous(h_out, h0).reshape(flat.shape[0], -1), w.weight_hh.t())
        if w.bias_hh is not None:
            flat += w.bias_hh
        hidden = w.weight_ih.shape[0] // 4
        g = torch.tanh(pre[..., 2 * hidden : 3 * hidden])
        pre.sigmoid_()  # one contiguous pass; the g block is overwritten but g is already taken
        i, f, _, o = pre.chunk(4, dim=-1)
        gates = {"input_gate": i, "forget_gate": f, "candidate": g, "output_gate": o}
        for e in edits:
            if e.quantity in gates:
                apply_edit(gates[e.quantity], e)
        if "cell" in wanted:
            a, b = f, i * g
            cell_edits = [e for e in edits if e.quantity == "cell"]
            if cell_edits:  # c_t = 0 * c_{t-1} + v where a cell is set
                a = f.clone()
                for e in cell_edits:
                    apply_edit(a, LayerEdit("cell", e.units, torch.zeros_like(e.values), e.mask))
                    apply_edit(b, e)
            out["cell"] = linear_recurrence(a, b, c0)
        out.update({k: v for k, v in gates.items() if k in wanted})
    if "hidden" in wanted:
        out["hidden"] = h_out
    return {q: out[q] for q in quantities}


def _gru_internals(
    inp: LayerInput, h_out: torch.Tensor, quantities: tuple[str, ...], edits: tuple[LayerEdit, ...]
) -> dict[str, torch.Tensor]:
    """A GRU's internals: ``n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))`` and
    ``h_t = (1 - z_t) * n_t + z_t * h_{t-1}``."""
    h0, w = inp.h0, inp.w
    wanted = set(quantities)
    out: dict[str, torch.Tensor] = {}
    if wanted - {"hidden"}:
        gi = input_projection(inp)
        gh = _project(_previous(h_out, h0), w.weight_hh, w.bias_hh)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        by_name = {"reset_gate": r, "update_gate": z}
        for e in edits:
            if e.quantity in by_name:
                apply_edit(by_name[e.quantity], e)
        out["reset_gate"] = r
        out["update_gate"] = z
        if "candidate" in wanted:
            n = torch.tanh(torch.addcmul(i_n, r, h_n))
            for e in edits:
                if e.quantity == "candidate":
                    apply_edit(n, e)
            out["candidate"] = n
    if "hidden" in wanted:
        out["hidden"] = h_out
    return {q: out[q] for q in quantities}
