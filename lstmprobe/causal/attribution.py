"""Attribution through time: which earlier chars, and which units at which steps, drove one
prediction or one unit's value (docs/causal.md).

The *target* is a number the model computes at position ``P`` (after reading the char there):
the log-probability of the next char (``char``: the text's char at ``P + 1`` unless one is
given), or one unit's value (``layer0/cell/17``, a gate included). It is attributed over a
*window* of the ``window`` chars ending at ``P``; the state entering the window is the model's
exact state there (the text before it read as usual) and is held fixed.

Two things are attributed:

* **input chars** -- the input vector of each char of the window (its embedding, or its one-hot
  vector), summed over the vector's dimensions;
* **earlier unit states** -- each unit of a state (``layer0/cell``, ``layer0/hidden``) after each
  char of the window, *as the later steps read it* (the unit's other quantity at that step held:
  attributing the cell after char t asks what the cell passes on to t+1, ..., not what it did to
  the hidden state at t).

Two methods:

* ``grad-input`` -- gradient x input: ``x * df/dx`` at the actual input (one backward pass).
* ``ig`` -- integrated gradients (Sundararajan et al. 2017) from a zero baseline:
  ``x * mean_k df/dx(alpha_k x)`` over ``steps`` midpoints ``alpha_k = (k + 1/2) / steps``. The
  attributions of the chars add up to ``f(x) - f(baseline)`` (completeness); those of the units
  of one state at one step add up to ``f - f(that state set to 0 there)``. The gap (a Riemann
  sum's error) is reported with every result.

Everything runs through the model's own cell equations step by step
(:func:`unroll`, PyTorch's gate order; the same math as
:func:`~lstmprobe.record.interventions.step_layer`), with autograd: never through cuDNN's fused
RNN, whose backward refuses eval mode, so attribution works in eval mode on CUDA as on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from lstmprobe.errors import AttributionError
from lstmprobe.names import Key, Unit
from lstmprobe.record.cells import LayerWeights
from lstmprobe.record.layers import layer_weights, recurrent_layers
from lstmprobe.record.threads import TorchThreads, check_threads, default_threads

if TYPE_CHECKING:
    from lstmprobe.text import Vocab

Method = Literal["ig", "grad-input"]
METHODS: tuple[str, ...] = ("ig", "grad-input")
LN2 = math.log(2.0)
#: Rows of one batched pass (integrated gradients' interpolation points, for states times steps).
MAX_ROWS = 512


# --------------------------------------------------------------------------- the model, step by step


@dataclass(frozen=True)
class _Layer:
    kind: str  # "lstm" | "gru"
    w: LayerWeights


def _layers(model: torch.nn.Module) -> list[_Layer]:
    rnn = getattr(model, "rnn", None)
    if not isinstance(rnn, (torch.nn.LSTM, torch.nn.GRU)) or not callable(
        getattr(model, "embed", None)
    ):
        raise AttributionError(
            "attribution runs a char model of the form embedding (or one-hot) -> LSTM/GRU -> "
            "decoder (lstmprobe's CharLSTM, what every model file loads as); this model is not"
        )
    if rnn.bidirectional:
        raise AttributionError(
            "attribution through time needs a unidirectional model: the reverse direction of a "
            "bidirectional layer reads the chars after the target"
        )
    kind = "lstm" if isinstance(rnn, torch.nn.LSTM) else "gru"
    return [_Layer(kind, layer_weights(rnn, k, False)) for k in range(rnn.num_layers)]


def _cell(
    layer: _Layer, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None
) -> dict[str, Any]:
    """One step of one layer: every quantity after reading ``x`` (batch, input)."""
    w = layer.w
    gx = x @ w.weight_ih.t()
    gh = h @ w.weight_hh.t()
    if w.bias_ih is not None:
        gx = gx + w.bias_ih
    if w.bias_hh is not None:
        gh = gh + w.bias_hh
    if layer.kind == "lstm":
        n = gh.shape[1] // 4
        z = gx + gh
        i = torch.sigmoid(z[:, :n])
        f = torch.sigmoid(z[:, n : 2 * n])
        g = torch.tanh(z[:, 2 * n : 3 * n])
        o = torch.sigmoid(z[:, 3 * n :])
        c_new = f * c + i * g  # type: ignore[operator]  (an LSTM always has c)
        h_new = o * torch.tanh(c_new)
        if w.weight_hr is not None:
            h_new = h_new @ w.weight_hr.t()
        return {
            "input_gate": i,
            "forget_gate": f,
            "candidate": g,
            "output_gate": o,
            "cell": c_new,
            "hidden": h_new,
        }
    n = gh.shape[1] // 3
    r = torch.sigmoid(gx[:, :n] + gh[:, :n])
    u = torch.sigmoid(gx[:, n : 2 * n] + gh[:, n : 2 * n])
    cand = torch.tanh(gx[:, 2 * n :] + r * gh[:, 2 * n :])
    return {"reset_gate": r, "update_gate": u, "candidate": cand, "hidden": (1 - u) * cand + u * h}


State = list[tuple[torch.Tensor, torch.Tensor | None]]


def unroll(
    model: torch.nn.Module,
    x: torch.Tensor,
    state: State,
    *,
    scale: dict[str, torch.Tensor] | None = None,
    probe: dict[str, torch.Tensor] | None = None,
    keep: Sequence[str] = (),
) -> tuple[dict[str, torch.Tensor], State]:
    """Run the recurrent layers over ``x`` (batch, time, input) step by step from ``state``
    (per layer ``(h, c)``; ``c`` None for a GRU), differentiably.

    ``scale[key]`` (batch, time, units) multiplies a state (``layer0/cell``) after each step, and
    ``probe[key]`` (same shape) is added to it, before the later steps and layers read it (the
    key's other quantity at that step is not recomputed). ``keep`` names the quantities
    returned, each (batch, time, units), as each step computed them (before ``scale`` and
    ``probe``); ``"output"`` is the last layer's output as the decoder reads it (after them).
    """
    layers = _layers(model)
    scale, probe = scale or {}, probe or {}
    kept: dict[str, list[torch.Tensor]] = {k: [] for k in keep}
    state = list(state)
    for t in range(x.shape[1]):
        inp = x[:, t]
        for k, layer in enumerate(layers):
            h, c = state[k]
            q = _cell(layer, inp, h, c)
            for name, v in q.items():  # as computed at this step
                key = f"layer{k}/{name}"
                if key in kept:
                    kept[key].append(v)
            for name in ("cell", "hidden"):  # as the later steps and layers read them
                key = f"layer{k}/{name}"
                if name in q and key in scale:
                    q[name] = q[name] * scale[key][:, t]
                if name in q and key in probe:
                    q[name] = q[name] + probe[key][:, t]
            state[k] = (q["hidden"], q.get("cell"))
            inp = q["hidden"]
        if "output" in kept:
            kept["output"].append(inp)
    return {k: torch.stack(v, 1) for k, v in kept.items()}, state


@torch.no_grad()
def _state_at(model: torch.nn.Module, ids: torch.Tensor) -> State:
    """The exact state after reading ``ids`` (1, time) from zero (the fused forward)."""
    layers = _layers(model)
    rnn: Any = model.rnn
    n, hidden = len(layers), int(rnn.hidden_size)
    out = int(rnn.proj_size) if getattr(rnn, "proj_size", 0) else hidden
    dev = ids.device
    dtype = next(model.parameters()).dtype
    if ids.shape[1] == 0:
        return [
            (
                torch.zeros(1, out, dtype=dtype, device=dev),
                torch.zeros(1, hidden, dtype=dtype, device=dev)
                if layers[0].kind == "lstm"
                else None,
            )
            for _ in range(n)
        ]
    _, st = rnn(model.embed(ids))  # type: ignore[operator]
    if layers[0].kind == "lstm":
        h, c = st
        return [(h[k], c[k]) for k in range(n)]
    return [(st[k], None) for k in range(n)]


# --------------------------------------------------------------------------- the target


@dataclass(frozen=True)
class Target:
    """What is attributed: the log-probability of ``char`` after position ``position`` (natural
    log), or the value of ``unit`` there."""

    position: int
    char: str | None = None
    unit: Unit | None = None

    def describe(self) -> str:
        if self.unit is not None:
            return f"{self.unit} at position {self.position}"
        return f"log p({self.char!r}) after position {self.position}"


def _target_value(
    model: torch.nn.Module, kept: dict[str, torch.Tensor], target: Target, char_id: int | None
) -> torch.Tensor:
    """The target per row, from the last step of an unroll."""
    if target.unit is not None:
        u = target.unit
        return kept[str(u.key)][:, -1, u.index]
    decoder: Any = model.decoder
    logits = decoder(kept["output"][:, -1])
    return torch.log_softmax(logits.double(), -1)[:, char_id]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Attribution:
    """The attributions of one target over one window of text.

    ``inputs[i]`` is the attribution of the window's char ``i`` (at position ``start + i``);
    ``states[key][i, j]`` that of unit ``j`` of ``key`` after that char. With ``method="ig"``,
    ``value - baseline_value`` is what the chars' attributions add up to (``input_gap``: the
    relative difference), and per step the units' attributions of each state add up to
    ``state_deltas[key][i]`` (``state_gaps``).
    """

    target: Target
    method: str
    steps: int  # integrated gradients' interpolation points (1 for grad-input)
    text: str
    start: int
    value: float
    inputs: np.ndarray = field(repr=False)
    states: dict[str, np.ndarray] = field(repr=False)
    baseline_value: float | None = None
    state_deltas: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def input_gap(self) -> float | None:
        """|sum of the chars' attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)|."""
        if self.baseline_value is None:
            return None
        return _gap(float(self.inputs.sum()), self.value - self.baseline_value)

    @property
    def state_gaps(self) -> dict[str, float]:
        """Per state, the largest relative completeness gap over the window's steps whose
        difference is not negligible (|f - f(state 0)| > 1e-3 |f|)."""
        out = {}
        for key, deltas in self.state_deltas.items():
            sums = self.states[key].sum(1)
            big = np.abs(deltas) > 1e-3 * max(abs(self.value), 1e-6)
            gaps = [_gap(float(s), float(d)) for s, d in zip(sums[big], deltas[big])]
            out[key] = max(gaps) if gaps else 0.0
        return out

    def top_chars(self, k: int = 5) -> list[tuple[int, str, float]]:
        order = np.argsort(-np.abs(self.inputs), kind="stable")[:k]
        return [(self.start + int(i), self.text[i], float(self.inputs[i])) for i in order]

    def top_units(self, k: int = 5) -> list[tuple[str, int, float]]:
        """The (unit, position, attribution) of largest |attribution| over every state."""
        cells = []
        for key, a in self.states.items():
            parsed = Key.parse(key)
            flat = np.argsort(-np.abs(a), axis=None, kind="stable")[:k]
            for f in flat:
                i, j = np.unravel_index(f, a.shape)
                cells.append((str(parsed.unit(int(j))), self.start + int(i), float(a[i, j])))
        cells.sort(key=lambda c: -abs(c[2]))
        return cells[:k]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target.describe(),
            "position": self.target.position,
            "char": self.target.char,
            "unit": None if self.target.unit is None else str(self.target.unit),
            "method": self.method,
            "steps": self.steps,
            "start": self.start,
            "text": self.text,
            "value": self.value,
            "baseline_value": self.baseline_value,
            "input_gap": self.input_gap,
            "state_gaps": self.state_gaps,
            "inputs": self.inputs.tolist(),
            "top_chars": [
                {"position": p, "char": c, "attribution": a} for p, c, a in self.top_chars()
            ],
            "top_units": [
                {"unit": u, "position": p, "attribution": a} for u, p, a in self.top_units()
            ],
        }


def _gap(total: float, delta: float) -> float:
    return abs(total - delta) / max(abs(delta), 1e-12)


# --------------------------------------------------------------------------- attribute


def attribute(
    model: torch.nn.Module,
    vocab: Vocab,
    text: str,
    position: int,
    *,
    unit: Unit | str | None = None,
    char: str | None = None,
    method: Method = "ig",
    steps: int = 64,
    window: int = 60,
    states: Sequence[Key | str] | None = None,
    start: int = 0,
    threads: int | None = None,
) -> Attribution:
    """Attribute a prediction (or ``unit``'s value) at ``position`` of ``text`` to the chars of
    the ``window`` before it and to the units of ``states`` after each of them.

    Parameters
    ----------
    model : CharLSTM
    vocab : Vocab
    text : str
        One sequence (read from the zero state at ``start``; the text before it is ignored).
    position : int
        Where the target is computed (after reading the char there).
    unit : Unit or str, optional
        Attribute this unit's value at ``position`` (``layer0/cell/17``; gates too) instead of
        a log-probability.
    char : str, optional
        The char whose log-probability after ``position`` is attributed (default: the text's
        next char; at the text's last char, the model's most likely one).
    method : {"ig", "grad-input"}
    steps : int
        Integrated gradients' interpolation points (midpoints); completeness is reported.
    window : int
        Chars attributed, ending at ``position``.
    states : sequence of Key or str, optional
        State keys attributed (``layer0/cell``, ``layer1/hidden``); default: the cell of every
        LSTM layer, the hidden state of every GRU layer.
    """
    layers = _layers(model)
    if method not in METHODS:
        raise AttributionError(f"`method` is ig or grad-input, got {method!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise AttributionError(f"`steps` must be at least 1, got {steps!r}")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise AttributionError(f"`window` must be at least 1, got {window!r}")
    if not start <= position < len(text):
        raise AttributionError(
            f"`position={position}` is beyond the text ({len(text)} chars, positions "
            f"{start}..{len(text) - 1}); give a position inside it"
        )
    if unit is not None and char is not None:
        raise AttributionError("attribute a `unit` or a `char`'s log-probability, not both")
    keys = _state_keys(layers, states)
    parsed = None if unit is None else Unit.parse(unit)  # the name parsed once, here
    if parsed is not None:
        _check_unit(parsed, model)
    elif getattr(model, "decoder", None) is None:
        raise AttributionError(
            "this model has no decoder, so it predicts no char: attribute a unit's value "
            "instead (`unit=layer0/cell/0`)"
        )
    check_threads(threads, AttributionError)
    dev = next(model.parameters()).device
    ids = torch.from_numpy(vocab.encode(text[start : position + 1])).to(dev)
    a = max(0, len(ids) - window)
    win = text[start + a : position + 1]
    char_id = None
    if unit is None:
        if char is None and position + 1 < len(text):
            char = text[position + 1]
        if char is not None:
            char_id = vocab.index(char)
    with TorchThreads(default_threads(model, threads, dev), AttributionError):
        state0 = _state_at(model, ids[None, :a])
        with torch.no_grad():
            x_actual = model.embed(ids[None, a:])  # type: ignore[operator]
        if unit is None and char_id is None:
            with torch.no_grad():
                kept, _ = unroll(model, x_actual, state0, keep=["output"])
                char_id = int(model.decoder(kept["output"][0, -1]).argmax())  # type: ignore[attr-defined]
            char = vocab.chars[char_id]
        target = Target(position, char, parsed)
        run = _Runner(model, x_actual, state0, target, char_id, keys)
        if method == "grad-input":
            value, inputs, st = run.gradients()
            return Attribution(target, method, 1, win, start + a, value, inputs, st)
        value, base, inputs = run.integrated_inputs(steps)
        st, deltas = run.integrated_states(steps)
        return Attribution(target, method, steps, win, start + a, value, inputs, st, base, deltas)


def _state_keys(layers: list[_Layer], states: Sequence[Key | str] | None) -> list[str]:
    if states is None:
        return [
            str(Key(k, "cell" if ly.kind == "lstm" else "hidden")) for k, ly in enumerate(layers)
        ]
    out = []
    for s in states:
        key = Key.parse(s)
        if key.quantity not in ("cell", "hidden") or key.direction != "forward":
            raise AttributionError(
                f"states are attributed as the later steps read them: a cell or a hidden "
                f"state (layer0/cell, layer1/hidden), not {s}"
            )
        if key.layer >= len(layers) or (
            key.quantity == "cell" and layers[key.layer].kind != "lstm"
        ):
            raise AttributionError(f"{s} is not a state of this model")
        out.append(str(key))
    return out


def _check_unit(u: Unit, model: torch.nn.Module) -> None:
    infos = {i.name: i for i in recurrent_layers(model)}
    info = infos.get(u.layer_name)
    from lstmprobe.record.cells import quantities_of

    if info is None or u.quantity not in quantities_of(info.kind):  # type: ignore[arg-type]
        raise AttributionError(f"unit {u} does not exist in this model")
    if u.index >= info.n_units(u.quantity):
        n = info.n_units(u.quantity)
        raise AttributionError(f"unit {u} does not exist: {u.key} has units 0..{n - 1}")


class _Runner:
    """The batched passes of one attribution."""

    def __init__(
        self,
        model: Any,
        x: torch.Tensor,
        state0: State,
        target: Target,
        char_id: int | None,
        keys: list[str],
    ) -> None:
        self.model, self.x, self.state0, self.target = model, x, state0, target
        self.char_id, self.keys = char_id, keys
        self.keep = ["output"] if target.unit is None else [str(target.unit.key)]

    def _state(self, rows: int) -> State:
        return [
            (h.expand(rows, -1), None if c is None else c.expand(rows, -1)) for h, c in self.state0
        ]

    def _f(self, x: torch.Tensor, **kw: Any) -> torch.Tensor:
        kept, _ = unroll(self.model, x, self._state(x.shape[0]), keep=self.keep, **kw)
        return _target_value(self.model, kept, self.target, self.char_id)

    def _units(self, key: str) -> int:
        k = Key.parse(key)
        return self.state0[k.layer][0 if k.quantity == "hidden" else 1].shape[1]  # type: ignore[index]

    def gradients(self) -> tuple[float, np.ndarray, dict[str, np.ndarray]]:
        """gradient x input for the chars and every state, in one backward pass."""
        x = self.x.detach().clone().requires_grad_(True)
        T = x.shape[1]
        probes = {k: x.new_zeros(1, T, self._units(k), requires_grad=True) for k in self.keys}
        kept, _ = unroll(self.model, x, self._state(1), probe=probes, keep=[*self.keep, *self.keys])
        f = _target_value(self.model, kept, self.target, self.char_id)
        grads = torch.autograd.grad(f.sum(), [x, *probes.values()], allow_unused=True)
        inputs = (grads[0] * x).sum(-1)[0]
        states = {}
        for key, g in zip(self.keys, grads[1:]):
            values = kept[key].detach()
            states[key] = (torch.zeros_like(values) if g is None else g * values)[0]
        return float(f.detach()), _np(inputs), {k: _np(v) for k, v in states.items()}

    def integrated_inputs(self, steps: int) -> tuple[float, float, np.ndarray]:
        """Integrated gradients of the chars' input vectors from a zero baseline."""
        with torch.no_grad():
            value = float(self._f(self.x))
            base = float(self._f(torch.zeros_like(self.x)))
        total = torch.zeros_like(self.x[0])
        alphas = (torch.arange(steps, dtype=self.x.dtype, device=self.x.device) + 0.5) / steps
        for part in alphas.split(max(1, MAX_ROWS // 2)):
            x = (part[:, None, None] * self.x).detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self._f(x).sum(), [x])
            total += g.sum(0)
        inputs = (total / steps * self.x[0]).sum(-1)
        return value, base, _np(inputs)

    def integrated_states(self, steps: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Integrated gradients of each state at each step (every other step as it is), all
        (step, alpha) pairs batched as rows; per step, ``f - f(state 0 at that step)``."""
        T = self.x.shape[1]
        alphas = (torch.arange(steps, dtype=self.x.dtype, device=self.x.device) + 0.5) / steps
        out, deltas = {}, {}
        with torch.no_grad():
            value = float(self._f(self.x))
            kept, _ = unroll(self.model, self.x, self._state(1), keep=list(self.keys))
        for key in self.keys:
            n = self._units(key)
            actual = kept[key][0]  # (T, n): the state after each step, as it is
            attr = torch.zeros(T, n, dtype=self.x.dtype, device=self.x.device)
            zeroed = torch.zeros(T, dtype=torch.float64)
            rows = [(t, float(al)) for t in range(T) for al in [*alphas.tolist(), 0.0]]
            per = max(1, MAX_ROWS)
            for a in range(0, len(rows), per):
                chunk = rows[a : a + per]
                ts = torch.tensor([t for t, _ in chunk], device=self.x.device)
                al = torch.tensor([v for _, v in chunk], dtype=self.x.dtype, device=self.x.device)
                scale = torch.ones(len(chunk), T, n, dtype=self.x.dtype, device=self.x.device)
                scale[torch.arange(len(chunk)), ts] = al[:, None]
                probe = torch.zeros(
                    len(chunk), T, n, dtype=self.x.dtype, device=self.x.device, requires_grad=True
                )
                got, _ = unroll(
                    self.model,
                    self.x.expand(len(chunk), -1, -1),
                    self._state(len(chunk)),
                    scale={key: scale},
                    probe={key: probe},
                    keep=self.keep,
                )
                f = _target_value(self.model, got, self.target, self.char_id)
                (g,) = torch.autograd.grad(f.sum(), [probe], allow_unused=True)
                if g is None:
                    g = torch.zeros_like(probe)
                for r, (t, v) in enumerate(chunk):
                    if v == 0.0:
                        zeroed[t] = float(f[r].detach())
                    else:
                        attr[t] += g[r, t] * actual[t]
            out[key] = _np(attr / steps)
            deltas[key] = (value - zeroed.numpy()).astype(np.float64)
        return out, deltas


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()
