"""What a unit's state kept and what it wrote at each char, from the recorded gates and state.

For an LSTM ``c(t) = f ⊙ c(t−1) + i ⊙ g``: *keep* ``f ⊙ c(t−1)`` and *write* ``i ⊙ g``; for a GRU
``h(t) = z ⊙ h(t−1) + (1 − z) ⊙ n``. Read from a window of the store, never the whole of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmprobe.names import Key, Unit
from lstmprobe.report.data import check_span, check_unit, require_quantities
from lstmprobe.store import ActivationStore


def state_unit(store: ActivationStore, name: str) -> str:
    """The state unit whose dynamics a unit shares: ``layer0/forget_gate/3`` -> ``layer0/cell/3``
    (GRU: ``layer0/hidden/3``)."""
    key, index = check_unit(store, name)
    k = Key.parse(key)
    state = "cell" if "cell" in store.quantities(k.layer_name) else "hidden"
    return str(Unit(k.layer, state, index, k.direction))


@dataclass(frozen=True)
class KeepWrite:
    """A unit's update split into kept and written parts over ``[start, stop)``.

    ``keep[t] + write[t] == state[t]``: for an LSTM ``keep = f ⊙ c(t−1)``, ``write = i ⊙ g``,
    ``state = c``; for a GRU ``keep = z ⊙ h(t−1)``, ``write = (1 − z) ⊙ n``, ``state = h``. The
    previous state is 0 at a sequence's first position.
    """

    unit: str
    kind: str
    start: int
    stop: int
    text: str
    keep: np.ndarray
    write: np.ndarray
    state: np.ndarray
    keep_gate: np.ndarray


def keep_write(store: ActivationStore, unit: str, start: int, stop: int) -> KeepWrite:
    """The keep and write terms of ``unit`` (any quantity of it) over ``[start, stop)``.

    Examples
    --------
    >>> kw = keep_write(store, "layer0/cell/3", 0, 100)  # doctest: +SKIP
    >>> np.allclose(kw.keep + kw.write, kw.state, atol=1e-3)  # doctest: +SKIP
    True
    """
    state_of = Unit.parse(state_unit(store, unit))
    layer, state_q, index = state_of.layer_name, state_of.quantity, state_of.index
    kind = "lstm" if state_q == "cell" else "gru"
    wanted = (
        ("forget_gate", "input_gate", "candidate", "cell")
        if kind == "lstm"
        else ("update_gate", "candidate", "hidden")
    )
    require_quantities(store, layer, wanted, "the keep/write view")
    a, b = check_span(store, start, stop - start)
    lo = max(0, a - 1)

    def read(q: str, x: int = a) -> np.ndarray:
        return store.read(f"{layer}/{q}", x, b, units=[index])[:, 0].astype(np.float64)

    state_all = read(state_q, lo)
    state = state_all[a - lo :]
    prev = state_all[:-1].copy() if a > 0 else np.concatenate([[0.0], state[:-1]])
    starts = np.asarray(store.sequences[:, 0])
    prev[np.isin(np.arange(a, b), starts)] = 0.0
    if kind == "lstm":
        f = read("forget_gate")
        write = read("input_gate") * read("candidate")
    else:
        f = read("update_gate")
        write = (1.0 - f) * read("candidate")
    return KeepWrite(str(state_of), kind, a, b, store.read_text(a, b), f * prev, write, state, f)
