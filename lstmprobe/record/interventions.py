"""Interventions inside the forward pass: set a unit's cell, hidden or gate to a value.

An :class:`Intervention` is a small value: which unit(s) (``layer0/cell/17``, or a dataset key
``layer0/forget_gate`` with ``units=(3, 5)``), what value (``zero``, the unit's ``mean`` over a
corpus, ``clamp:V``), and where (every position, or where a mask is true). The
:class:`~lstmprobe.record.hooks.Recorder` applies it for one ``with`` block::

    with Recorder(model, interventions=[Intervention("layer0/cell/17", "zero")]) as rec:
        logits, _ = model(batch)          # the model's own forward, intervened

The semantics, at every step t where the intervention applies (PyTorch's equations, then the
edit): a gate (``input_gate``, ``forget_gate``, ``candidate``, ``output_gate``; GRU
``reset_gate``, ``update_gate``, ``candidate``) is set after its nonlinearity, before the cell or
hidden state that uses it is computed; ``cell`` is set after ``c_t = f c_{t-1} + i g`` (so
``h_t = o tanh(v)`` and the next step reads ``c_t = v``); ``hidden`` is set after ``h_t`` is
computed (the next step, the next layer and the decoder read ``v``). The change propagates
through the recurrence, later layers and whatever reads the recurrent module's output, exactly
as the model would run.

Two implementations that agree (tests/record/test_interventions.py proves both against an independent
per-step loop):

* :func:`step_layer` -- the plain reference: a Python loop over time steps that edits the state.
* :func:`~lstmprobe.record.fused.fused_layer` -- PyTorch's fused kernels on an edited copy of the
  layer's weights, one call per run of positions where the same edits apply (how each edit
  becomes a weight edit is told there). A gate set outside its range (a sigmoid gate to 2) has
  no weight form and runs :func:`step_layer`.

Interventions on bidirectional layers and on ``PackedSequence`` inputs are not supported.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from lstmprobe.errors import InterventionError, UnitError
from lstmprobe.names import GRU_QUANTITIES, LSTM_QUANTITIES, Key, Unit, parse_name
from lstmprobe.record.cells import LayerEdit, LayerInput, apply_edit
from lstmprobe.record.fused import FusedLayer, fusable, fused_layer

#: What an intervention sets a unit to, as the command line and the Python API spell it:
#: ``zero``, ``mean`` (the unit's mean over a corpus, given as ``value``), ``clamp:V`` (the
#: constant V; ``clamp`` with ``value=V`` is the same), or ``patch`` (the values of a source run
#: of the same model, given as ``source``: an interchange intervention; ``lstmprobe patch``).
Mode = Literal["zero", "mean", "clamp", "patch"]
MODES: tuple[str, ...] = ("zero", "mean", "clamp", "patch")
MODE_FORMS = "zero, mean or clamp:V (e.g. clamp:0.5)"
#: Older spellings of a mode, still read: ``constant`` (with ``value``) is ``clamp``.
_OLD_MODES = {"constant": "clamp"}
_warned: set[str] = set()
#: How a patch's source positions line up with the target's: ``start`` (target t <- source t),
#: ``end`` (the last positions together), or an integer map (target t <- source ``map[t]``).
Align = Literal["start", "end"]


def parse_mode(mode: str, value: float | None = None) -> tuple[Mode, float | None]:
    """``"clamp:0.5"`` -> ``("clamp", 0.5)``: the one reading of an intervention's mode.

    ``value`` is the constant of ``clamp`` given apart (``mode="clamp", value=0.5``); a mode
    that names its constant and a different ``value`` is refused. ``constant``, an older
    spelling of ``clamp``, is read with a warning (once).

    Examples
    --------
    >>> parse_mode("zero"), parse_mode("clamp:-1.5"), parse_mode("clamp", 2.0)
    (('zero', None), ('clamp', -1.5), ('clamp', 2.0))
    """
    if not isinstance(mode, str):
        raise InterventionError(f"`mode` is {MODE_FORMS}, got {mode!r}")
    name, colon, constant = mode.partition(":")
    if name in _OLD_MODES and not colon:
        if name not in _warned:
            _warned.add(name)
            warnings.warn(
                f"mode {name!r} is now spelled {_OLD_MODES[name]!r} (or 'clamp:V')",
                FutureWarning,
                stacklevel=3,
            )
        name = _OLD_MODES[name]
    if name not in MODES or (colon and name != "clamp"):
        raise InterventionError(f"`mode` is {MODE_FORMS}, got {mode!r}")
    if colon:
        try:
            given = float(constant)
        except ValueError:
            raise InterventionError(
                f"the constant of {mode!r} is not a number; give {MODE_FORMS}"
            ) from None
        if not math.isfinite(given):
            raise InterventionError(f"the constant of {mode!r} must be finite")
        if value is not None and np.ndim(value) == 0 and float(value) != given:  # type: ignore[arg-type]
            raise InterventionError(f"mode {mode!r} and `value={value}` disagree; give one")
        return "clamp", given
    return name, value  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class Intervention:
    """Set units of one layer and quantity to a value inside the model's forward pass.

    Parameters
    ----------
    target : Unit, Key or str
        A unit, ``"layer0/cell/17"`` (or a gate: ``"layer0/forget_gate/17"``), or a dataset key
        ``"layer0/cell"`` together with ``units``. Parsed once, by :class:`~lstmprobe.names.Unit`
        and :class:`~lstmprobe.names.Key`.
    mode : {"zero", "mean", "clamp:V", "patch"}
        ``zero`` sets 0; ``mean`` sets ``value``, the unit's mean over a corpus
        (:func:`lstmprobe.causal.unit_means` reads it from a recording); ``clamp:V`` sets the
        constant V (``clamp`` with ``value=V`` is the same). The command line's ``--mode``
        takes the same strings. ``patch`` sets the values of a source run of the same model
        (``source``), position by position (an interchange intervention; ``lstmprobe patch``).
    value : float or sequence of float, optional
        One value for every unit, or one per unit.
    units : sequence of int, optional
        Unit indices when ``target`` is a dataset key.
    mask : array of bool, shape (time,) or (batch, time), optional
        Where the intervention applies, per forward call (batch-major); None: every position
        (for a patch: every target position that has a source position).
    source : array of float, shape (source_time,), (source_time, n_units) or
        (batch, source_time, n_units), optional
        ``patch`` only: the units' values in a source run, after reading each source char
        (what :class:`~lstmprobe.record.hooks.Recorder` records); one source for every sequence
        of the target batch, or one per sequence.
    align : {"start", "end"} or array of int, shape (time,) or (batch, time)
        ``patch`` only: which source position each target position takes its value from:
        ``start`` (t from t), ``end`` (the last positions aligned: t from
        ``t - time + source_time``), or a map (t from ``align[t]``; -1: none).

    Notes
    -----
    Interventions are compared by identity (a mask is an array).

    Examples
    --------
    >>> Intervention("layer0/cell/17").units
    (17,)
    >>> iv = Intervention("layer1/hidden", "clamp:0.5", units=[2, 4])
    >>> iv.mode, iv.values, str(iv.key)
    ('clamp', (0.5, 0.5), 'layer1/hidden')
    >>> Intervention(Unit.parse("layer0/forget_gate/3"), "mean", value=0.2).describe()
    'layer0/forget_gate/3 = mean 0.2'
    >>> Intervention("layer0/cell/3", "patch", source=[0.1, 0.7], align="end").describe()
    'layer0/cell/3 = patched from a source run (2 positions, aligned from the end)'
    """

    target: Unit | Key | str
    mode: str = "zero"
    value: float | Sequence[float] | None = None
    units: Sequence[int] | None = None
    mask: Any = None
    source: Any = None
    align: Any = "start"

    def __post_init__(self) -> None:
        mode, value = parse_mode(self.mode, self.value)  # type: ignore[arg-type]
        key, units = _target(self.target, self.units)
        if len(set(units)) != len(units):
            raise UnitError(f"units must be distinct non-negative indices, got {list(units)}")
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "_key", key)
        if mode == "patch":
            self._check_patch(len(units))
            object.__setattr__(self, "_values", ())
            return
        if self.source is not None:
            raise InterventionError(f"`source` is for mode 'patch', not {mode!r}")
        if mode == "zero":
            if value not in (None, 0, 0.0):
                raise InterventionError("mode 'zero' takes no value; use mode 'clamp:V'")
            values: tuple[float, ...] = (0.0,) * len(units)
        else:
            if value is None:
                hint = (
                    " (its mean over a corpus: lstmprobe.causal.unit_means(store, units))"
                    if mode == "mean"
                    else " (e.g. mode='clamp:0.5')"
                )
                raise InterventionError(f"mode {mode!r} needs a value{hint}")
            raw = np.atleast_1d(np.asarray(value, dtype=np.float64))
            if raw.ndim != 1 or len(raw) not in (1, len(units)):
                raise InterventionError(
                    f"give one value, or one per unit ({len(units)}), got {value!r}"
                )
            if not np.isfinite(raw).all():
                raise InterventionError(f"an intervention's value must be finite, got {raw}")
            values = tuple(float(v) for v in np.broadcast_to(raw, (len(units),)))
        object.__setattr__(self, "_values", values)

    def _check_patch(self, n_units: int) -> None:
        if self.value is not None:
            raise InterventionError("mode 'patch' takes its values from `source`, not `value`")
        if self.source is None:
            raise InterventionError(
                "mode 'patch' needs `source`: the units' values in a source run, shape "
                "(source_time, n_units) (lstmprobe.causal.source_values records them)"
            )
        src = np.asarray(self.source, dtype=np.float64)
        if src.ndim == 1 and n_units == 1:
            src = src[:, None]
        if src.ndim == 2:
            src = src[None]
        if src.ndim != 3 or src.shape[2] != n_units or src.shape[1] == 0:
            raise InterventionError(
                f"a patch's `source` has shape (source_time, {n_units}) or (batch, source_time, "
                f"{n_units}) for {n_units} unit(s), got {np.shape(self.source)}"
            )
        if not np.isfinite(src).all():
            raise InterventionError("a patch's `source` values must be finite")
        object.__setattr__(self, "_source", src)
        if isinstance(self.align, str):
            if self.align not in ("start", "end"):
                raise InterventionError(
                    f"`align` is 'start', 'end' or a map of source positions, got {self.align!r}"
                )
        else:
            amap = np.asarray(self.align)
            if amap.ndim not in (1, 2) or not np.issubdtype(amap.dtype, np.integer):
                raise InterventionError(
                    "an `align` map is integers of shape (time,) or (batch, time): the source "
                    "position of each target position, -1 for none"
                )
            if amap.size and (amap.min() < -1 or amap.max() >= src.shape[1]):
                raise InterventionError(
                    f"an `align` map names source positions -1..{src.shape[1] - 1} (the source "
                    f"has {src.shape[1]}), got {int(amap.min())}..{int(amap.max())}"
                )

    @property
    def key(self) -> Key:
        """The dataset the units belong to, e.g. ``Key.parse("layer0/cell")``."""
        return self._key  # type: ignore[attr-defined,no-any-return]

    @property
    def layer_name(self) -> str:
        """``layer0``: the layer's name in a model's layout."""
        return self.key.layer_name

    @property
    def quantity(self) -> str:
        return self.key.quantity

    @property
    def source_array(self) -> np.ndarray | None:
        """A patch's source values as (batch or 1, source_time, n_units); None otherwise."""
        return getattr(self, "_source", None)

    @property
    def values(self) -> tuple[float, ...]:
        """The value set for each unit (empty for a patch: its values are per position)."""
        return self._values  # type: ignore[attr-defined,no-any-return]

    @property
    def targets(self) -> tuple[Unit, ...]:
        """The units set, e.g. ``(Unit.parse("layer0/cell/17"),)``."""
        return tuple(self.key.unit(u) for u in self.units)  # type: ignore[union-attr]

    @property
    def names(self) -> list[str]:
        """The unit names, e.g. ``["layer0/cell/17"]``."""
        return [str(u) for u in self.targets]

    def describe(self) -> str:
        """``"layer0/cell/17 = 0"`` (one line, for messages)."""
        units = ", ".join(self.names)
        if self.mode == "patch":
            src = self.source_array
            how = f"aligned from the {self.align}" if isinstance(self.align, str) else "by a map"
            n = 0 if src is None else src.shape[1]
            where = "" if self.mask is None else ", where masked"
            return f"{units} = patched from a source run ({n} positions, {how}{where})"
        if self.mode == "zero":
            what = "0"
        else:
            vals = sorted(set(self.values))
            what = f"{vals[0]:.4g}" if len(vals) == 1 else "per-unit values"
            what = f"{'mean ' if self.mode == 'mean' else ''}{what}"
        where = "" if self.mask is None else " where masked"
        return f"{units} = {what}{where}"


def _target(target: Any, units: Sequence[int] | None) -> tuple[Key, tuple[int, ...]]:
    """The dataset and unit indices an intervention's ``target`` (and ``units``) name."""
    if isinstance(target, str):
        target = parse_name(target)
    if isinstance(target, Key):
        if units is None or len(list(units)) == 0:
            raise UnitError(
                f"{str(target)!r} is a dataset key: say which units with units=[...], or "
                "name one unit as layer0/cell/17"
            )
        picked = []
        for u in units:
            if isinstance(u, bool) or not isinstance(u, (int, np.integer)) or u < 0:
                raise UnitError(f"units must be distinct non-negative indices, got {list(units)}")
            picked.append(int(u))
        return target, tuple(picked)
    if not isinstance(target, Unit):
        raise UnitError(f"an intervention's target is a unit name, got {target!r}")
    unit = target
    if units is not None:
        raise UnitError(
            f"{str(unit)!r} names one unit already; give units= with a dataset key such as "
            f"{str(unit.key)!r}"
        )
    return unit.key, (unit.index,)


def unit_interventions(
    units: Iterable[Unit | str],
    mode: str = "zero",
    *,
    means: Mapping[Key, np.ndarray] | None = None,
    mask: Any = None,
) -> list[Intervention]:
    """One :class:`Intervention` per dataset for a set of units intervened on together.

    ``mode`` is ``zero``, ``clamp:V``, or ``mean`` with ``means`` (per dataset, the mean of
    each of its units: :func:`lstmprobe.causal.unit_means`).

    Examples
    --------
    >>> [iv.describe() for iv in unit_interventions(["layer0/cell/1", "layer0/cell/4"], "clamp:2")]
    ['layer0/cell/1, layer0/cell/4 = 2']
    """
    by_key: dict[Key, list[int]] = {}
    for u in units:
        unit = Unit.parse(u)
        by_key.setdefault(unit.key, []).append(unit.index)
    kind, _ = parse_mode(mode)
    if kind == "patch":
        raise InterventionError(
            "mode 'patch' takes a source run's values: use lstmprobe.causal.patch (lstmprobe patch)"
        )
    out = []
    for key, idx in by_key.items():
        value: Any = None
        if kind == "mean":
            if means is None or key not in means:
                raise InterventionError(
                    f'`mode="mean"` needs the means of {key}\'s units: give `means` '
                    "(unit_means of the recording)"
                )
            value = [float(means[key][i]) for i in idx]
        out.append(Intervention(key, mode, value=value, units=idx, mask=mask))
    return out


# --------------------------------------------------------------------------- resolving


def check_interventions(
    interventions: Iterable[Intervention], layers: Sequence[Any]
) -> dict[str, list[Intervention]]:
    """Group ``interventions`` by layer name, checking each against the model's ``layers``
    (:func:`lstmprobe.record.layers.recurrent_layers`); unknown units raise a
    :class:`~lstmprobe.errors.UnitError` that lists what exists."""
    by_name = {info.name: info for info in layers}
    grouped: dict[str, list[Intervention]] = {}
    for iv in interventions:
        if not isinstance(iv, Intervention):
            raise InterventionError(
                f"interventions are Intervention values, got {type(iv).__name__}"
            )
        info = by_name.get(iv.layer_name)
        if info is None:
            raise UnitError(
                f"{iv.names[0]} does not exist: the model has layers {', '.join(by_name)}"
            )
        quantities = LSTM_QUANTITIES if info.kind == "lstm" else GRU_QUANTITIES
        if iv.quantity not in quantities:
            raise UnitError(
                f"{iv.names[0]} does not exist: a {info.kind.upper()} layer has "
                f"{', '.join(quantities)}"
            )
        if info.reverse:
            raise InterventionError(
                f"{iv.names[0]}: interventions on the reverse direction of a bidirectional "
                "layer are not supported"
            )
        n = info.n_units(iv.quantity)
        bad = [u for u in iv.units if u >= n]  # type: ignore[union-attr]
        if bad:
            raise UnitError(f"{iv.key.unit(bad[0])} does not exist: {iv.key} has units 0..{n - 1}")
        grouped.setdefault(iv.layer_name, []).append(iv)
    for name in grouped:
        if f"{name}_reverse" in by_name:
            raise InterventionError(
                f"interventions on bidirectional layers ({name}) are not supported"
            )
    return grouped


def layer_edits(
    interventions: Sequence[Intervention],
    batch: int,
    steps: int,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[LayerEdit, ...]:
    """The interventions of one layer as :class:`~lstmprobe.record.cells.LayerEdit` for one call of
    ``batch`` sequences of ``steps`` positions (masks checked and broadcast, patches aligned)."""
    edits = []
    for iv in interventions:
        mask = None
        if iv.mask is not None:
            mask = _batch_major(iv.mask, batch, steps, device, f"the mask of {iv.describe()}")
        units = torch.tensor(iv.units, dtype=torch.long, device=device)
        if iv.mode == "patch":
            values, mask = _patch_values(iv, mask, batch, steps, device, dtype)
        else:
            values = torch.tensor(iv.values, dtype=dtype, device=device)
        edits.append(LayerEdit(iv.quantity, units, values, mask))
    return tuple(edits)


def _batch_major(
    array: Any, batch: int, steps: int, device: torch.device, what: str
) -> torch.Tensor:
    """A per-position array of shape (time,) or (batch, time) as a (batch, time) Tensor."""
    m = torch.as_tensor(np.asarray(array), device=device)
    if m.dim() == 1:
        m = m.unsqueeze(0).expand(batch, -1)
    if tuple(m.shape) != (batch, steps):
        raise InterventionError(
            f"{what} has shape {tuple(np.shape(array))}; this forward call has {batch} "
            f"sequence(s) of {steps} positions: give shape ({steps},) or ({batch}, {steps})"
        )
    return m


def _patch_values(
    iv: Intervention,
    mask: torch.Tensor | None,
    batch: int,
    steps: int,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A patch's values at each target position, (batch, steps, n_units), and where it applies."""
    src = torch.as_tensor(iv.source_array, dtype=dtype, device=device)
    if src.shape[0] not in (1, batch):
        raise InterventionError(
            f"{iv.describe()}: the source has {src.shape[0]} sequences, this forward call "
            f"{batch}; give one source, or one per sequence"
        )
    length = src.shape[1]
    if isinstance(iv.align, str):
        t = torch.arange(steps, device=device)
        index = (t if iv.align == "start" else t - steps + length).unsqueeze(0).expand(batch, -1)
    else:
        index = _batch_major(iv.align, batch, steps, device, f"the `align` map of {iv.describe()}")
        index = index.long()
    known = (index >= 0) & (index < length)
    if mask is None:
        mask = known
    elif bool((mask & ~known).any()):
        b, t = (int(v) for v in (mask & ~known).nonzero()[0])
        raise InterventionError(
            f"{iv.describe()} applies at target position {t} (sequence {b}), which has no "
            f"source position ({steps} target positions, {length} source positions); say how "
            "to align them (`align='start'`, `'end'` or a map) or patch fewer positions"
        )
    gather = index.clamp(0, length - 1).unsqueeze(-1).expand(-1, -1, src.shape[2])
    values = src.expand(batch, -1, -1).gather(1, gather)
    return values, (None if bool(mask.all()) else mask)


# --------------------------------------------------------------------------- the reference loop


def step_layer(
    inp: LayerInput, edits: Sequence[LayerEdit] = ()
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Run one layer direction step by step, editing the state as ``edits`` say.

    Parameters
    ----------
    inp : LayerInput
        The kind, input ``x`` (batch, time, input), ``h0`` (batch, P), ``c0`` (batch, H; None
        for a GRU) and weights.
    edits : LayerEdit

    Returns
    -------
    output : Tensor of shape (batch, time, P)
    h_n : Tensor of shape (batch, P)
    c_n : Tensor of shape (batch, H), or None for a GRU
    """
    kind, x, h0, c0, w = inp.kind, inp.x, inp.h0, inp.c0, inp.w
    batch, steps, _ = x.shape
    gx = x.reshape(batch * steps, -1) @ w.weight_ih.t()
    if w.bias_ih is not None:
        gx = gx + w.bias_ih
    gx = gx.view(batch, steps, -1)
    h, c = h0.clone(), None if c0 is None else c0.clone()
    outputs = []
    by_q: dict[str, list[LayerEdit]] = {}
    for e in edits:
        by_q.setdefault(e.quantity, []).append(e)

    def edit(q: str, values: torch.Tensor, t: int) -> None:
        for e in by_q.get(q, ()):
            apply_edit(values, e, t)

    for t in range(steps):
        gh = h @ w.weight_hh.t()
        if w.bias_hh is not None:
            gh = gh + w.bias_hh
        if kind == "lstm":
            n = gh.shape[1] // 4
            z = gx[:, t] + gh
            i = torch.sigmoid(z[:, :n])
            f = torch.sigmoid(z[:, n : 2 * n])
            g = torch.tanh(z[:, 2 * n : 3 * n])
            o = torch.sigmoid(z[:, 3 * n :])
            edit("input_gate", i, t)
            edit("forget_gate", f, t)
            edit("candidate", g, t)
            edit("output_gate", o, t)
            c = f * c + i * g  # type: ignore[operator]  (an LSTM always has c)
            edit("cell", c, t)
            h = o * torch.tanh(c)
            if w.weight_hr is not None:
                h = h @ w.weight_hr.t()
        else:
            n = gh.shape[1] // 3
            a = gx[:, t]
            r = torch.sigmoid(a[:, :n] + gh[:, :n])
            u = torch.sigmoid(a[:, n : 2 * n] + gh[:, n : 2 * n])
            edit("reset_gate", r, t)
            edit("update_gate", u, t)
            cand = torch.tanh(a[:, 2 * n :] + r * gh[:, 2 * n :])
            edit("candidate", cand, t)
            h = (1 - u) * cand + u * h
        edit("hidden", h, t)
        outputs.append(h)
    out = torch.stack(outputs, 1) if outputs else x.new_zeros(batch, 0, h0.shape[1])
    return out, h, c


def run_layer(
    inp: LayerInput,
    edits: Sequence[LayerEdit],
    *,
    method: str = "auto",
    fused: FusedLayer | None = None,
    ids: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One layer direction under ``edits``: ``method`` ``"fused"``, ``"steps"`` or ``"auto"``
    (fused where every edit has a weight form, else the per-step loop)."""
    if method not in ("auto", "fused", "steps"):
        raise InterventionError(f"method is 'auto', 'fused' or 'steps', got {method!r}")
    if method == "steps" or (method == "auto" and not fusable(inp.kind, edits)):
        return step_layer(inp, edits)
    return fused_layer(inp, edits, ids=ids, modules=fused, stepper=step_layer)
