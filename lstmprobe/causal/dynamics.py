"""Gate dynamics per unit: when is a unit's state written, held or reset, and what drives it?

For an LSTM cell ``c_t = f_t c_{t-1} + i_t g_t``, the update of each unit splits into a *keep*
term ``f_t c_{t-1}`` and a *write* term ``i_t g_t``; for a GRU ``h_t = z_t h_{t-1} + (1 - z_t) n_t``
the keep term is ``z_t h_{t-1}`` and the write term ``(1 - z_t) n_t``. Everything is computed from
a recording by streaming its chunks (memory does not grow with the corpus); ``c_{t-1}`` is the
recorded state at t-1, or 0 at the start of a sequence. Per unit:

* ``mean_keep_gate`` -- mean f (GRU: z); ``timescale = -1 / ln(mean f)``, the number of steps
  over which the unit's state decays by 1/e if the gate sat at its mean (Mahto et al. 2021);
  None (infinite) where mean f rounds to 1;
* ``mean_abs_keep``, ``mean_abs_write`` and ``write_share`` (the mean of
  ``|write| / (|keep| + |write|)``): how much of each update is new;
* ``held`` -- share of positions with f > 0.9 and i < 0.1 (LSTM; GRU: z > 0.9), the state kept
  untouched; ``reset`` -- share with f < 0.1 (GRU: z < 0.1), the state thrown away;
* ``writes_at`` -- the three chars after which the mean write is largest in size (with its
  sign), ``resets_at`` -- the three chars with the lowest mean keep gate: "written at 'a', reset
  at newline";
* ``drivers`` (with the model) -- the strongest incoming recurrent weights: which units' hidden
  states (through ``W_hh``) drive this unit, into which gate.

Per layer: the distribution of the timescales (quantiles and counts per decade).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmprobe._io import progress_bar
from lstmprobe.errors import UnitError
from lstmprobe.names import GATES, GRU_QUANTITIES, LSTM_QUANTITIES, Key, Unit, parse_layer

if TYPE_CHECKING:
    from lstmprobe.models import LoadedModel
    from lstmprobe.store import ActivationStore

#: Each cell's gates and its candidate, in the cell's order.
LSTM_GATES = tuple(q for q in LSTM_QUANTITIES if q in GATES or q == "candidate")
GRU_GATES = tuple(q for q in GRU_QUANTITIES if q in GATES or q == "candidate")
BINS = (1, 3, 10, 30, 100, 1000)


def _layer_kinds(store: ActivationStore) -> dict[str, str]:
    out = {}
    for layer in store.layers:
        qs = set(store.quantities(layer))
        if {"input_gate", "forget_gate", "candidate", "cell"} <= qs:
            out[layer] = "lstm"
        elif {"update_gate", "candidate", "hidden"} <= qs:
            out[layer] = "gru"
    return out


def _label(char: str) -> str:
    return {"\n": "\\n", "\t": "\\t", " ": "space"}.get(char, char)


def dynamics_keys(layer: str, kind: str) -> list[Key]:
    """The datasets a layer's dynamics read: its keep gate (and input gate), candidate and state
    (the state last)."""
    index, direction = parse_layer(layer)
    wanted = (
        ("forget_gate", "input_gate", "candidate", "cell")
        if kind == "lstm"
        else ("update_gate", "candidate", "hidden")
    )
    return [Key(index, q, direction) for q in wanted]


@dataclass(frozen=True, eq=False)
class DynamicsSums:
    """A layer's dynamics summed over a span of positions (``n`` of them): per unit the sums of
    f, i, |keep|, |write|, the write share, held and reset positions (``sums``), per char and
    unit the sums of the write and of f, and each char's count. Sums of spans add up to the
    sums of their union (:meth:`merge`)."""

    n: int
    sums: dict[str, np.ndarray]
    by_char_write: np.ndarray
    by_char_f: np.ndarray
    char_count: np.ndarray

    def merge(self, other: DynamicsSums) -> DynamicsSums:
        return DynamicsSums(
            self.n + other.n,
            {k: v + other.sums[k] for k, v in self.sums.items()},
            self.by_char_write + other.by_char_write,
            self.by_char_f + other.by_char_f,
            self.char_count + other.char_count,
        )


def dynamics_sums(
    store: ActivationStore,
    layer: str,
    kind: str,
    start: int = 0,
    stop: int | None = None,
    chunk_size: int | None = None,
    bar: Any = None,
) -> DynamicsSums:
    """The sums of one layer's dynamics over positions ``[start, stop)``, streamed in windows
    of ``chunk_size`` (default: the store's chunking; ``start`` on its grid reads the windows
    of a whole pass)."""
    keys = [str(k) for k in dynamics_keys(layer, kind)]
    state_key = keys[-1]
    stop = store.n_positions if stop is None else stop
    n_units = store.n_units(state_key)
    vocab_size = len(store.vocab)
    starts = np.zeros(store.n_positions + 1, dtype=bool)
    starts[store.sequences[:, 0]] = True
    sums = {k: np.zeros(n_units) for k in ("f", "i", "keep", "write", "share", "held", "reset")}
    by_char_write = np.zeros((vocab_size, n_units))
    by_char_f = np.zeros((vocab_size, n_units))
    char_count = np.zeros(vocab_size)
    # the state before the span (0 at the start of a sequence)
    previous = np.zeros(n_units, dtype=np.float32)
    if 0 < start < store.n_positions:
        previous = store.read(state_key, start - 1, start)[0]
    for a, b, block in store.iter_chunks(keys, chunk_size=chunk_size, start=start, stop=stop):
        if bar is not None:
            bar.update(b - a)
        state = block[state_key]
        prev = np.vstack([previous[None], state[:-1]])
        prev[starts[a:b]] = 0.0
        previous = state[-1].copy()
        if kind == "lstm":
            f = block[keys[0]]
            i = block[keys[1]]
            write = i * block[keys[2]]
        else:
            f = block[keys[0]]
            i = 1.0 - f
            write = i * block[keys[1]]
        keep = f * prev
        ak, aw = np.abs(keep), np.abs(write)
        sums["f"] += f.sum(0, dtype=np.float64)
        sums["i"] += i.sum(0, dtype=np.float64)
        sums["keep"] += ak.sum(0, dtype=np.float64)
        sums["write"] += aw.sum(0, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(ak + aw > 0, aw / (ak + aw), 0.0)
        sums["share"] += share.sum(0, dtype=np.float64)
        held = (f > 0.9) & (i < 0.1) if kind == "lstm" else f > 0.9
        sums["held"] += held.sum(0)
        sums["reset"] += (f < 0.1).sum(0)
        tok = store.read_tokens(a, b)
        np.add.at(by_char_write, tok, write.astype(np.float64))
        np.add.at(by_char_f, tok, f.astype(np.float64))
        char_count += np.bincount(tok, minlength=vocab_size)
    return DynamicsSums(stop - start, sums, by_char_write, by_char_f, char_count)


def layer_dynamics(
    store: ActivationStore,
    layer: str,
    kind: str,
    progress: bool = False,
    chunk_size: int | None = None,
    sums: DynamicsSums | None = None,
) -> dict[str, Any]:
    """Sums over the recording for one layer, streamed; returns per-unit summaries.

    ``sums``: the layer's :class:`DynamicsSums` over the whole recording, when they were
    computed elsewhere (merged from spans, :func:`lstmprobe.distributed.gate_dynamics`).
    """
    if sums is None:
        bar = progress_bar(
            store.n_positions, desc=f"dynamics {layer}", unit="pos", enabled=progress
        )
        with bar:
            sums = dynamics_sums(store, layer, kind, chunk_size=chunk_size, bar=bar)
    state_key = dynamics_keys(layer, kind)[-1]
    n = max(sums.n, 1)
    char_count = sums.char_count
    seen = char_count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_write = sums.by_char_write / np.maximum(char_count, 1)[:, None]
        mean_f = sums.by_char_f / np.maximum(char_count, 1)[:, None]
    chars = store.vocab.chars
    totals = sums.sums
    units: dict[str, dict[str, Any]] = {}
    for j in range(len(totals["f"])):
        mf = totals["f"][j] / n
        ts = timescale(mf)
        w_order = [int(c) for c in np.argsort(-np.abs(mean_write[:, j])) if seen[c]][:3]
        f_order = [int(c) for c in np.argsort(mean_f[:, j]) if seen[c]][:3]
        units[str(state_key.unit(j))] = {
            "mean_keep_gate": mf,
            "mean_write_gate": totals["i"][j] / n,
            "timescale": ts,
            "mean_abs_keep": totals["keep"][j] / n,
            "mean_abs_write": totals["write"][j] / n,
            "write_share": totals["share"][j] / n,
            "held": totals["held"][j] / n,
            "reset": totals["reset"][j] / n,
            "writes_at": [
                {"char": _label(chars[c]), "mean_write": float(mean_write[c, j])} for c in w_order
            ],
            "resets_at": [
                {"char": _label(chars[c]), "mean_keep_gate": float(mean_f[c, j])} for c in f_order
            ],
        }
    scales = [u["timescale"] for u in units.values()]
    return {
        "kind": kind,
        "units": units,
        "timescales": timescale_distribution(scales),
        "positions": n,
    }


def timescale(mean_keep_gate: float) -> float | None:
    """``-1 / ln(mean f)``: steps for the state to decay by 1/e; None where it is infinite.

    Examples
    --------
    >>> round(timescale(0.9), 2)
    9.49
    >>> timescale(1.0) is None
    True
    """
    if mean_keep_gate >= 1.0:
        return None
    if mean_keep_gate <= 0.0:
        return 0.0
    return -1.0 / math.log(mean_keep_gate)


def timescale_distribution(scales: Sequence[float | None]) -> dict[str, Any]:
    """Quantiles of a layer's timescales and how many units fall in each decade-ish bin."""
    finite = np.array([s for s in scales if s is not None], dtype=np.float64)
    edges = (0, *BINS)
    counts = {}
    for lo, hi in itertools.pairwise(edges):
        counts[f"{lo}-{hi}"] = int(((finite >= lo) & (finite < hi)).sum())
    counts[f">={BINS[-1]}"] = int((finite >= BINS[-1]).sum()) + sum(s is None for s in scales)
    q = {p: float(np.percentile(finite, p)) for p in (0, 25, 50, 75, 100)} if finite.size else {}
    return {
        "min": q.get(0),
        "q25": q.get(25),
        "median": q.get(50),
        "q75": q.get(75),
        "max": q.get(100),
        "infinite": int(sum(s is None for s in scales)),
        "counts": counts,
    }


def drivers(
    model: Any, layer: str, kind: str, n_units: int, top: int = 5
) -> dict[int, list[dict[str, Any]]]:
    """The ``top`` strongest incoming recurrent weights of each unit of ``layer`` (by size)."""
    from lstmprobe.record import recurrent_layers
    from lstmprobe.record.layers import layer_weights

    info = next((i for i in recurrent_layers(model) if i.name == layer), None)
    if info is None:
        raise UnitError(f"the model has no layer {layer}")
    module = dict(model.named_modules())[info.module_name]
    w_hh = layer_weights(module, info.layer, info.reverse).weight_hh.detach().cpu().numpy()
    gates = LSTM_GATES if kind == "lstm" else GRU_GATES
    h = info.hidden_size
    out: dict[int, list[dict[str, Any]]] = {}
    for j in range(n_units):
        rows = np.stack([w_hh[g * h + j] for g in range(len(gates))])  # [gates, P]
        flat = np.argsort(-np.abs(rows), axis=None)[:top]
        index, direction = parse_layer(layer)
        out[j] = [
            {
                "from": str(Unit(index, "hidden", int(k % rows.shape[1]), direction)),
                "gate": gates[int(k // rows.shape[1])],
                "weight": float(rows.flat[k]),
            }
            for k in flat
        ]
    return out


def drivers_model(
    store: ActivationStore,
    model: str | LoadedModel | None = None,
    *,
    force: bool = False,
    model_name: str | None = None,
) -> Any:
    """The model whose recurrent weights give :func:`gate_dynamics` its drivers, or None.

    ``model``, a model file (or a model loaded from one), must be the recorded one
    (:func:`check_model_matches`, unless ``force``; ``model_name`` names it in the message);
    without it, the recorded model's file is used when it is still there and still holds the
    recorded weights.
    """
    from lstmprobe.causal.units import check_model_matches
    from lstmprobe.errors import ModelLoadError, VocabError
    from lstmprobe.models import load_model

    if model is not None:
        loaded = load_model(model) if isinstance(model, (str, os.PathLike)) else model
        name = model_name or (str(model) if isinstance(model, (str, os.PathLike)) else "the model")
        check_model_matches(store, loaded.sha256, force=force, model=name)
        return loaded.model
    recorded = (store.model or {}).get("path")
    if not recorded or not Path(recorded).exists():
        return None
    try:  # the drivers are optional: a recorded file that needs more to load gives none
        loaded = load_model(recorded, default_vocab=store.vocab)
    except (ModelLoadError, VocabError):
        return None
    return loaded.model if loaded.sha256 == store.model_sha256 else None


def gate_dynamics(
    store: ActivationStore,
    model: Any = None,
    units: Sequence[str] | None = None,
    progress: bool = False,
    chunk_size: int | None = None,
    layer_sums: Callable[[str, str], DynamicsSums] | None = None,
) -> dict[str, Any]:
    """The gate dynamics of every LSTM/GRU layer in ``store`` (see the module docstring).

    ``model`` (optional, the recorded one) adds each unit's strongest recurrent drivers.
    ``units`` (names such as ``layer0/cell/17``) must exist; they are listed under ``selected``.
    ``chunk_size``: positions per window read (default: the store's chunking).
    ``layer_sums(layer, kind)``: each layer's :class:`DynamicsSums`, where they are computed
    elsewhere (:func:`lstmprobe.distributed.gate_dynamics`); by default a pass here.
    """
    kinds = _layer_kinds(store)
    if not kinds:
        raise UnitError(
            f"{store.path} holds no layer with the gates and states dynamics needs "
            "(record all quantities: leave out `quantities`)"
        )
    states = {layer: _state_key(layer, kind) for layer, kind in kinds.items()}
    known = {
        str(key.unit(j)): None for key in states.values() for j in range(store.n_units(str(key)))
    }
    selected = []
    for name in units or ():
        found = _alias(Unit.parse(name), known)
        if found not in known:
            some = ", ".join(list(known)[:3])
            raise UnitError(
                f"no dynamics for {name}: dynamics are per state unit ({some}, ...; "
                f"{len(known)} in all)"
            )
        selected.append(found)
    result: dict[str, Any] = {
        "format": "lstmprobe.dynamics",
        "format_version": 1,
        "store": str(store.path),
        "layers": {},
        "units": {},
    }
    for layer, kind in kinds.items():
        sums = None if layer_sums is None else layer_sums(layer, kind)
        got = layer_dynamics(store, layer, kind, progress, chunk_size, sums)
        if model is not None:
            n_units = len(got["units"])
            for j, d in drivers(model, layer, kind, n_units).items():
                got["units"][str(states[layer].unit(j))]["drivers"] = d
        result["units"].update(got.pop("units"))
        result["layers"][layer] = got
    if units:
        result["selected"] = selected
    return result


def _state_key(layer: str, kind: str) -> Key:
    """The state a layer's dynamics describe: its cell (LSTM) or hidden (GRU) dataset."""
    index, direction = parse_layer(layer)
    return Key(index, "cell" if kind == "lstm" else "hidden", direction)


def _alias(unit: Unit, known: Any = ()) -> str:
    """``layer0/forget_gate/3`` -> ``layer0/cell/3`` (GRU: ``layer0/hidden/3``): a gate's
    dynamics are its unit's."""
    for state in ("cell", "hidden"):
        candidate = str(Unit(unit.layer, state, unit.index, unit.direction))
        if candidate in known:
            return candidate
    return str(unit)
