"""A unit's profile by input: for each char just read (or each value of a feature), how many
positions, and the mean and standard deviation of every quantity of the unit there.

The question of "Exploring LSTMs" it answers: *does the input gate ignore the X's while the
candidate fires on them?* -- ``profile(store, "layer0/cell/4")`` gives, per input char, the
unit's cell, hidden, each gate and the candidate, and the two parts of the change of its state:

* LSTM: ``delta = c_t - c_{t-1} = forgotten + written`` with ``forgotten = (f_t - 1) c_{t-1}``
  (what the forget gate takes away) and ``written = i_t g_t`` (what the input gate lets in);
* GRU: ``delta = h_t - h_{t-1} = forgotten + written`` with ``forgotten = (z_t - 1) h_{t-1}``
  and ``written = (1 - z_t) n_t``;

``c_{t-1}`` (``h_{t-1}``) is the recorded state at t-1, 0 at a sequence's first char. With a
projected LSTM (``proj_size``) the hidden state of index i is not unit i's, so it is left out.

Everything streams over the store a window at a time; the groups' means and spreads are
merged window by window (Chan et al.), so memory is bounded by a window and the number of
groups, never by the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmprobe._io import progress_bar
from lstmprobe.errors import FeatureError, UnitError
from lstmprobe.names import GATES, Unit

if TYPE_CHECKING:
    from lstmprobe.features import Feature
    from lstmprobe.store import ActivationStore

#: The state changes added to the recorded quantities (see the module docstring).
DERIVED = ("forgotten", "written", "delta")
#: The order of a profile's recorded quantities: the state first, then the gates.
ORDER = ("cell", "hidden", "input_gate", "forget_gate", "output_gate", "reset_gate",
         "update_gate", "candidate")  # fmt: skip
#: What each quantity of a profile is, and its range: the lines under its table.
MEANINGS = {
    "count": "positions in the group",
    "cell": "c_t, the cell state after reading the char (unbounded)",
    "hidden": "h_t = o_t * tanh(c_t), what the next layer and the decoder see, in [-1, 1]",
    "input_gate": "i_t in [0, 1]: how much of the candidate is written (0: the char is ignored)",
    "forget_gate": "f_t in [0, 1]: how much of c_{t-1} is kept (1: all of it)",
    "output_gate": "o_t in [0, 1]: how much of tanh(c_t) is shown in h_t",
    "candidate": "g_t in [-1, 1] (GRU: n_t): the value offered to the state",
    "reset_gate": "r_t in [0, 1] (GRU): how much of h_{t-1} the candidate sees",
    "update_gate": "z_t in [0, 1] (GRU): how much of h_{t-1} is kept (1: all of it)",
    "forgotten": "(f_t - 1) * c_{t-1} (GRU: (z_t - 1) * h_{t-1}): the change the forget gate makes",
    "written": "i_t * g_t (GRU: (1 - z_t) * n_t): the change the input gate lets in",
    "delta": "c_t - c_{t-1} (GRU: h_t - h_{t-1}) = forgotten + written",
}
#: Distinct groups a profile keeps (a feature with more values is refused: bounded memory).
MAX_GROUPS = 1000
_WINDOW = 1 << 16


@dataclass(frozen=True)
class Profile:
    """The profile of one unit (or of several units of one layer, ``indices``).

    Arrays: ``counts`` of shape (n_groups,); ``mean`` and ``sd`` (population, ``ddof=0``) of
    shape (n_quantities, n_groups, n_indices), NaN where a group has no position. Groups are
    ordered by count (chars, most frequent first) or by value (a feature).
    """

    layer: str
    indices: tuple[int, ...]
    kind: str  # "lstm" or "gru"
    by: str  # "char" or a feature spec
    groups: tuple[str, ...]
    values: tuple[float, ...] | None  # the feature value of each group (None: chars)
    quantities: tuple[str, ...]
    counts: np.ndarray = field(repr=False)
    mean: np.ndarray = field(repr=False)
    sd: np.ndarray = field(repr=False)
    positions: int = 0  # positions counted (where the grouping is defined)
    left_out: tuple[str, ...] = ()  # quantities of the layer not in the profile, with why

    def unit(self, j: int = 0) -> str:
        """The name of the ``j``-th unit profiled, e.g. ``layer0/cell/4`` (its state)."""
        state = "cell" if self.kind == "lstm" else "hidden"
        return f"{self.layer}/{state}/{self.indices[j]}"

    def top(self, n: int) -> Profile:
        """The first ``n`` groups only (the most frequent chars)."""
        keep = slice(0, n)
        return Profile(
            self.layer, self.indices, self.kind, self.by, self.groups[keep],
            None if self.values is None else self.values[keep], self.quantities,
            self.counts[keep], self.mean[:, keep], self.sd[:, keep], self.positions,
            self.left_out,
        )  # fmt: skip

    def to_dict(self, j: int = 0) -> dict[str, Any]:
        """The JSON form of the ``j``-th unit's profile."""

        def num(x: float) -> float | None:
            return None if not np.isfinite(x) else float(f"{x:.6g}")

        return {
            "unit": self.unit(j),
            "layer": self.layer,
            "index": self.indices[j],
            "kind": self.kind,
            "by": self.by,
            "positions": self.positions,
            "quantities": list(self.quantities),
            "meanings": {q: MEANINGS[q] for q in ("count", *self.quantities) if q in MEANINGS},
            "left_out": list(self.left_out),
            "groups": [
                {
                    "group": g,
                    **({} if self.values is None else {"value": self.values[gi]}),
                    "count": int(self.counts[gi]),
                    **{
                        q: {"mean": num(self.mean[qi, gi, j]), "sd": num(self.sd[qi, gi, j])}
                        for qi, q in enumerate(self.quantities)
                    },
                }
                for gi, g in enumerate(self.groups)
            ],
        }


def _layer_kind(store: ActivationStore, layer: str) -> str:
    have = store.quantities(layer)
    return "lstm" if "cell" in have or "forget_gate" in have or "input_gate" in have else "gru"


def profile_quantities(
    store: ActivationStore, layer: str, index: int
) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(kind, recorded, derived, left_out)``: the layer's kind, the recorded quantities a
    profile of unit ``index`` shows, the state changes it can compute, and what it leaves out
    (with why)."""
    kind = _layer_kind(store, layer)
    have = store.quantities(layer)
    state = "cell" if kind == "lstm" else "hidden"
    width = store.n_units(f"{layer}/{state}") if state in have else None
    recorded, left_out = [], []
    for q in sorted(have, key=lambda q: ORDER.index(q) if q in ORDER else len(ORDER)):
        n = store.n_units(f"{layer}/{q}")
        if index >= n:
            left_out.append(f"{q} (it has {n} units)")
        elif kind == "lstm" and q == "hidden" and width is not None and n != width:
            left_out.append("hidden (projected: proj_size; hidden/i is not unit i's)")
        else:
            recorded.append(q)
    need = ("forget_gate", "input_gate", "candidate", "cell") if kind == "lstm" else (
        "update_gate", "candidate", "hidden",
    )  # fmt: skip
    derived = DERIVED if all(q in recorded for q in need) else ()
    if not derived:
        left_out.append(
            f"forgotten, written, delta (they need {', '.join(need)}; record them with "
            f"`quantities={','.join(dict.fromkeys([*have, *need]))}`)"
        )
    return kind, tuple(recorded), derived, tuple(left_out)


class _Groups:
    """Running counts, means and M2 per group and unit, merged window by window (Chan)."""

    def __init__(self, n_quantities: int, n_units: int) -> None:
        self.shape = (n_quantities, n_units)
        self.count = np.zeros(0, dtype=np.int64)
        self.mean = np.zeros((n_quantities, 0, n_units))
        self.m2 = np.zeros((n_quantities, 0, n_units))

    def grow(self, n_groups: int) -> None:
        extra = n_groups - len(self.count)
        if extra > 0:
            self.count = np.concatenate([self.count, np.zeros(extra, np.int64)])
            pad = np.zeros((self.shape[0], extra, self.shape[1]))
            self.mean = np.concatenate([self.mean, pad], axis=1)
            self.m2 = np.concatenate([self.m2, pad.copy()], axis=1)

    def add(self, ids: np.ndarray, values: np.ndarray) -> None:
        """``ids``: group of each position, shape (n,); ``values``: (n_quantities, n, n_units)."""
        if len(ids) == 0:
            return
        order = np.argsort(ids, kind="stable")
        sid = ids[order]
        present, starts, counts = np.unique(sid, return_index=True, return_counts=True)
        v = values[:, order].astype(np.float64)
        mean_b = np.add.reduceat(v, starts, axis=1) / counts[None, :, None]
        dev = v - np.repeat(mean_b, counts, axis=1)
        m2_b = np.add.reduceat(dev * dev, starts, axis=1)
        n_a = self.count[present].astype(np.float64)[None, :, None]
        n_b = counts.astype(np.float64)[None, :, None]
        total = n_a + n_b
        delta = mean_b - self.mean[:, present]
        self.mean[:, present] += delta * n_b / total
        self.m2[:, present] += m2_b + delta * delta * n_a * n_b / total
        self.count[present] += counts


def _group_ids(
    labels: np.ndarray, table: dict[float, int], spec: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(defined, ids)``: where ``labels`` is defined, and the group id of each value there
    (new values get the next ids in ``table``)."""
    defined = ~np.isnan(labels)
    uniq, inverse = np.unique(labels[defined], return_inverse=True)
    for v in uniq.tolist():
        if v not in table:
            if len(table) >= MAX_GROUPS:
                raise FeatureError(
                    f"feature {spec!r} takes more than {MAX_GROUPS} distinct values; a profile "
                    "groups positions by value: give a feature with fewer values (a condition "
                    "FEATURE@WHERE, a binary one)"
                )
            table[v] = len(table)
    mapped = np.array([table[v] for v in uniq.tolist()], dtype=np.int64)
    return defined, mapped[inverse] if len(uniq) else np.zeros(0, np.int64)


def profile(
    store: ActivationStore,
    unit: str | Unit,
    by: str | Feature = "char",
    *,
    indices: list[int] | None = None,
    progress: bool = False,
) -> Profile:
    """The profile of ``unit`` (any quantity of it names the unit) by input char or feature.

    Parameters
    ----------
    store : ActivationStore
    unit : str or Unit
        E.g. ``layer0/cell/4``; its layer and index matter, not its quantity.
    by : "char" or feature spec or Feature
        Group the positions by the char just read (default) or by the value of a feature
        there (positions where it is undefined are left out).
    indices : list of int, optional
        Profile these units of the layer at once instead (one pass for all of them).

    Returns
    -------
    Profile

    Examples
    --------
    >>> p = profile(store, "layer0/cell/4")  # doctest: +SKIP
    >>> p.to_dict()["groups"][0]["input_gate"]  # doctest: +SKIP
    {'mean': 0.02, 'sd': 0.01}
    """
    from lstmprobe.features import get_feature
    from lstmprobe.features.stream import TextReader, feature_windows

    u = unit if isinstance(unit, Unit) else Unit.parse(str(unit))
    layer = u.layer_name
    if layer not in store.layers:
        raise UnitError(
            f"{layer} was not recorded in {store.path}; layers: {', '.join(store.layers)}"
        )
    idx = [u.index] if indices is None else list(indices)
    kind, recorded, derived, left_out = profile_quantities(store, layer, max(idx))
    if not recorded:
        raise UnitError(f"{layer} has no quantity with unit {max(idx)} in {store.path}")
    quantities = (*recorded, *derived)
    feat = None if isinstance(by, str) and by == "char" else get_feature(by)
    n = store.n_positions
    keys = [f"{layer}/{q}" for q in recorded]
    acc = _Groups(len(quantities), len(idx))
    table: dict[float, int] = {}
    starts = (
        np.asarray(store.sequences[:, 0], dtype=np.int64)
        if len(store.sequences)
        else np.zeros(1, np.int64)
    )
    windows = [(a, min(n, a + _WINDOW)) for a in range(0, n, _WINDOW)]
    labelled = (
        feature_windows(feat, TextReader(store.read_text, n), n, store.sequences, windows)
        if feat is not None
        else None
    )
    positions = 0
    previous = None  # the state at the position before the window
    state_q = "cell" if kind == "lstm" else "hidden"
    with progress_bar(n, desc="profile", unit="char", unit_scale=True, enabled=progress) as bar:
        for a, b in windows:
            read = {
                q: store.read(k, a, b, units=idx).astype(np.float64) for q, k in zip(recorded, keys)
            }
            if derived:
                state = read[state_q]
                prev = np.vstack(
                    [previous if previous is not None else np.zeros((1, len(idx))), state[:-1]]
                )
                first = np.isin(np.arange(a, b), starts)
                prev[first] = 0.0
                if kind == "lstm":
                    f, written = read["forget_gate"], read["input_gate"] * read["candidate"]
                else:
                    f = read["update_gate"]
                    written = (1.0 - f) * read["candidate"]
                forgotten = (f - 1.0) * prev
                extra = [forgotten, written, state - prev]
                previous = state[-1:]
            else:
                extra = []
            values = np.stack([read[q] for q in recorded] + extra)  # (Q, L, units)
            if labelled is None:
                ids = store.read_tokens(a, b).astype(np.int64)
                acc.grow(len(store.vocab))
                acc.add(ids, values)
                positions += b - a
            else:
                defined, ids = _group_ids(next(labelled), table, str(getattr(feat, "name", by)))
                acc.grow(len(table))
                acc.add(ids, values[:, defined])
                positions += int(defined.sum())
            bar.update(b - a)
    acc.grow(len(store.vocab) if labelled is None else len(table))
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(acc.m2 / acc.count[None, :, None])
    mean = np.where(acc.count[None, :, None] > 0, acc.mean, np.nan)
    sd = np.where(acc.count[None, :, None] > 0, sd, np.nan)
    if labelled is None:
        order = [g for g in np.argsort(-acc.count, kind="stable") if acc.count[g] > 0]
        groups = tuple(store.vocab.chars[g] for g in order)
        values_ = None
    else:
        by_value = sorted(table, key=float)
        order = [table[v] for v in by_value]
        groups = tuple(f"{v:g}" for v in by_value)
        values_ = tuple(float(v) for v in by_value)
    if not order:
        raise FeatureError(
            f"feature {getattr(feat, 'name', by)!r} is undefined everywhere in {store.path}: "
            "nothing to group"
        )
    o = np.asarray(order, dtype=np.int64)
    return Profile(
        layer, tuple(idx), kind, "char" if feat is None else feat.name, groups, values_,
        quantities, acc.count[o], mean[:, o], sd[:, o], positions, left_out,
    )  # fmt: skip


def is_gate(quantity: str) -> bool:
    """Whether a profile's quantity lives in [0, 1]."""
    return quantity in GATES
