"""Which units an ablation intervenes on, and the random units it is compared against.

A *condition* is a set of units intervened on together. They are named by hand, or taken from a
ranking beside the recording (the top ``k`` of a feature, each alone and all together); the
random sets of a condition are drawn from the units of no condition, with the same sizes per
layer and quantity. :func:`plan_ablation` does the recording's part of ``lstmprobe ablate``: it
checks that the recording is of the model's weights, reads the conditions and the units' means.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmprobe.errors import AblationError, StoreError, UnitError
from lstmprobe.names import Key, Unit
from lstmprobe.record import layout
from lstmprobe.record.interventions import parse_mode

if TYPE_CHECKING:
    import torch

    from lstmprobe.store import ActivationStore


@dataclass(frozen=True)
class Condition:
    """A set of units to intervene on together.

    Examples
    --------
    >>> c = Condition.of(["layer0/cell/17", "layer1/hidden/2", "layer0/cell/3"])
    >>> {str(k): v for k, v in c.by_key.items()}
    {'layer0/cell': [17, 3], 'layer1/hidden': [2]}
    """

    units: tuple[Unit, ...]

    def __post_init__(self) -> None:  # names are parsed here, once
        object.__setattr__(self, "units", tuple(Unit.parse(u) for u in self.units))

    @classmethod
    def of(cls, units: Iterable[Unit | str]) -> Condition:
        """The condition of ``units`` (names parsed here, duplicates dropped, order kept)."""
        return cls(tuple(dict.fromkeys(Unit.parse(u) for u in units)))

    @property
    def by_key(self) -> dict[Key, list[int]]:
        out: dict[Key, list[int]] = {}
        for unit in self.units:
            out.setdefault(unit.key, []).append(unit.index)
        return out

    @property
    def names(self) -> list[str]:
        return [str(u) for u in self.units]


def check_units(model: torch.nn.Module, units: Sequence[Unit]) -> dict[Key, int]:
    """The model's datasets (``layer0/cell -> n_units``); unknown units raise a
    :class:`UnitError` listing what exists."""
    datasets = {Key.parse(k): n for k, n in layout(model).items()}
    for unit in units:
        if unit.key not in datasets:
            raise UnitError(
                f"unit {unit} does not exist in this model; it has "
                + ", ".join(f"{k}/0..{n - 1}" for k, n in datasets.items())
            )
        if unit.index >= datasets[unit.key]:
            raise UnitError(
                f"unit {unit} does not exist: {unit.key} has units 0..{datasets[unit.key] - 1}"
            )
    return datasets


#: Random sets drawn per condition by default: p can then reach 1/100 = 0.01.
DEFAULT_RANDOM = 99


def distinct_sets(condition: Condition, pools: dict[Key, list[int]]) -> int:
    """How many distinct random unit sets of ``condition``'s sizes ``pools`` hold.

    Examples
    --------
    >>> distinct_sets(Condition.of(["layer0/cell/0"]), {Key.parse("layer0/cell"): [1, 2, 3]})
    3
    """
    possible = 1
    for key, idx in condition.by_key.items():
        possible *= math.comb(len(pools[key]), len(idx))
    return possible


def random_count(condition: Condition, pools: dict[Key, list[int]], n: int | None) -> int:
    """The random sets to draw: ``n``, or by default :data:`DEFAULT_RANDOM` or every distinct
    set when there are fewer (a 10-unit layer has 9 other single units: p cannot go below
    0.1 there)."""
    if n is not None:
        return n
    return min(DEFAULT_RANDOM, distinct_sets(condition, pools))


def draw_random(
    condition: Condition,
    pools: dict[Key, list[int]],
    n: int,
    seed: int,
) -> list[tuple[Unit, ...]]:
    """``n`` distinct random unit sets with ``condition``'s sizes per dataset, from ``pools``."""
    if n == 0:
        return []
    sizes = {k: len(v) for k, v in condition.by_key.items()}
    possible = distinct_sets(condition, pools)
    for key, k in sizes.items():
        m = len(pools[key])
        if math.comb(m, k) < n and len(sizes) == 1:
            raise AblationError(
                f"`n_random={n}` asks for {n} distinct random sets of {k} {key} unit"
                f"{'s' if k > 1 else ''}, but only {m} other {key} units exist "
                f"({math.comb(m, k)} sets); use `n_random={math.comb(m, k)}` or fewer"
            )
    if possible < n:
        raise AblationError(
            f"`n_random={n}` asks for more distinct random unit sets than exist ({possible}); "
            f"use `n_random={possible}` or fewer"
        )
    rng = np.random.default_rng([seed, *(len(v) for v in condition.by_key.values())])
    if possible <= 4 * n:
        per_key = [
            [tuple(key.unit(u) for u in c) for c in combinations(pools[key], k)]
            for key, k in sizes.items()
        ]
        every: list[tuple[Unit, ...]] = [()]
        for options in per_key:
            every = [a + b for a in every for b in options]
        picked = rng.choice(len(every), size=n, replace=False)
        return [every[i] for i in sorted(picked)]
    seen: dict[frozenset[Unit], tuple[Unit, ...]] = {}
    while len(seen) < n:
        draw: tuple[Unit, ...] = ()
        for key, k in sizes.items():
            chosen = rng.choice(pools[key], size=k, replace=False)
            draw += tuple(key.unit(int(u)) for u in sorted(chosen))
        seen.setdefault(frozenset(draw), draw)
    return list(seen.values())


def unit_means(store: ActivationStore, keys: Iterable[Key | str]) -> dict[Key, np.ndarray]:
    """Mean of every unit of each dataset over the whole recording, streamed chunk by chunk.

    Returns
    -------
    dict of Key -> ndarray of shape (n_units,), float64
    """
    out: dict[Key, np.ndarray] = {}
    for key in dict.fromkeys(Key.parse(k) for k in keys):
        name = str(key)
        total = np.zeros(store.n_units(name), dtype=np.float64)
        for _, _, block in store.iter_chunks([name]):
            total += block[name].sum(0, dtype=np.float64)
        out[key] = total / max(1, store.n_positions)
    return out


def check_model_matches(
    store: ActivationStore, sha256: str, *, force: bool = False, model: str = "the model"
) -> None:
    """Refuse a model whose weights are not the recorded ones (unless ``force``).

    ``sha256`` is the model file's (:attr:`LoadedModel.sha256`); ``model`` names it in the
    message. A recording or a model without a hash is not checked. A store imported from another
    tool (``lstmprobe import``: its ``model`` attribute is ``{"imported": {...}}``) records no
    model at all and is refused, ``force`` or not.
    """
    imported = store.model.get("imported") if isinstance(store.model, dict) else None
    if imported:
        where = imported.get("project", "") if isinstance(imported, dict) else ""
        source = imported.get("format", "another tool") if isinstance(imported, dict) else ""
        raise StoreError(
            f"{store.path} was imported from {source} ({where}) and records no model: {model} "
            "cannot be checked against it, nor its rankings and means trusted for it; record "
            "the model over the corpus (`record_corpus(MODEL, CORPUS)`) and use that store"
        )
    if store.model_sha256 and sha256 and store.model_sha256 != sha256 and not force:
        raise StoreError(
            f"{model} (sha256 {sha256[:12]}) is not the model recorded in {store.path} (sha256 "
            f"{store.model_sha256[:12]}): the recording's means and rankings describe other "
            "weights; give the recorded model, record this one, or pass `force=True`"
        )


def top_conditions(store: ActivationStore, feature: str, k: int) -> list[list[Unit]]:
    """The top ``k`` units of ``feature`` in the ranking beside ``store``
    (``acts.rankings.json``): each alone, then all together (when more than one)."""
    from lstmprobe.probes import Ranking

    path = store.recording.rankings
    if not path.exists():
        raise StoreError(
            f"the top units are read from {path}, which does not exist; rank {feature} first: "
            f"`rank_units(store={store.path}, features={feature})`"
        )
    ranking = Ranking.read_json(path)
    if feature not in ranking.scored:
        raise StoreError(
            f"{path} has no ranking for {feature!r} (it has {', '.join(ranking.features)}); rank "
            f"it first: `rank_units(store={store.path}, features={feature})`"
        )
    best = [Unit.parse(u) for u in ranking.top(k, feature=feature)]
    conditions = [[u] for u in best]
    if len(best) > 1:
        conditions.append(list(best))
    return conditions


def recorded_reset(store: ActivationStore) -> str:
    """How ``store``'s corpus was read (``"none"`` or ``"line"``): as an ablation reads it."""
    return str(store.run_config.get("reset", "none"))


def check_selection(units: Sequence[Unit | str], top: int | None, feature: str | None) -> None:
    """Refuse a selection of units that is not either ``units`` or ``top`` with ``feature``."""
    if units and top:
        raise AblationError("give `units=U` or `top=K`, not both")
    if not units and not top:
        raise AblationError(
            "say which units: `units=layer0/cell/17` (several are intervened on together), or "
            "`top=K` with `feature=FEATURE`"
        )
    if top and not feature:
        raise AblationError("`top=K` reads the ranking of a feature: give `feature=FEATURE`")


@dataclass(frozen=True)
class AblationPlan:
    """What :func:`plan_ablation` read from a recording for :func:`run_ablation`."""

    conditions: list[list[Unit]]
    #: how the corpus is read: as asked, else as the recording was made, else ``"none"``
    reset: str
    #: the units' means over the recording, for ``mode="mean"``
    means: dict[Key, np.ndarray] | None
    #: where the per-char results go: beside the recording (``acts.ablations.h5``)
    saved_to: Path
    #: the recording's path and model hash, when one was read (for the results' settings)
    store: dict[str, Any] = field(default_factory=dict)


def plan_ablation(
    store: str | Path,
    model_sha256: str,
    *,
    units: Sequence[Unit | str] = (),
    top: int | None = None,
    feature: str | None = None,
    mode: str = "zero",
    reset: str | None = None,
    force: bool = False,
    model: str = "the model",
    corpus_sha256: str | None = None,
) -> AblationPlan:
    """The conditions, reset and means of an ablation, read from the recording at ``store``.

    Give ``units`` (one condition, intervened on together) or ``top`` and ``feature`` (the
    ranking's top units, :func:`top_conditions`). The recording is needed for ``top`` and for
    ``mode="mean"``; otherwise it is read when it exists (to check that it records the model
    of hash ``model_sha256``, :func:`check_model_matches`, and for its reset). With
    ``corpus_sha256`` (:func:`lstmprobe.record.corpus_sha256` of the text to run), a text other
    than the recorded one is refused unless ``force``: the top units, the means and the saved
    per-char results would describe another text.
    """
    from lstmprobe.store import ActivationStore, Recording

    check_selection(units, top, feature)
    chosen = [Unit.parse(u) for u in units]
    path = Path(store)
    if not path.exists() and not top and parse_mode(mode)[0] != "mean":
        saved = Recording.at(path).ablations
        return AblationPlan([chosen], reset or "none", None, saved)
    with ActivationStore(path) as s:
        check_model_matches(s, model_sha256, force=force, model=model)
        if corpus_sha256 and s.corpus_sha256 and corpus_sha256 != s.corpus_sha256 and not force:
            raise StoreError(
                f"the corpus is not the one recorded in {s.path} ({s.n_positions:,} chars): its "
                "top units, means and saved results describe that text; give the recorded "
                "corpus, record this one, or pass `force=True`"
            )
        conditions = top_conditions(s, feature, top) if top and feature else [chosen]
        means = None
        if parse_mode(mode)[0] == "mean":
            keys = sorted({u.key for c in conditions for u in c})
            for key in keys:
                s.n_units(str(key))  # a clear error for a dataset the store lacks
            means = unit_means(s, keys)
        info = {"store": str(s.path), "model_sha256": s.model_sha256}
        return AblationPlan(
            conditions, reset or recorded_reset(s), means, s.recording.ablations, info
        )
