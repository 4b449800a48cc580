"""The profiles the report's unit cards show: per unit, its quantities by the char just read
(:func:`lstmprobe.causal.profile.profile`), for every unit of a small layer and for the ranked
units of a large one (one pass over the recording per layer)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from lstmprobe.causal.profile import MEANINGS, profile
from lstmprobe.names import Unit
from lstmprobe.report.data import Warn
from lstmprobe.store import ActivationStore

#: A layer of at most this many state units gets a profile for every unit.
SMALL_LAYER = 64
#: Chars (the most frequent) a card's profile shows.
CARD_GROUPS = 8


def _state_width(store: ActivationStore, layer: str) -> int:
    have = store.quantities(layer)
    state = "cell" if "cell" in have else "hidden" if "hidden" in have else have[0]
    return store.n_units(f"{layer}/{state}")


def profile_payload(
    store: ActivationStore, ranked: Iterable[str], warn: Warn = None, progress: bool = False
) -> dict[str, Any] | None:
    """``{layer: {indices, groups, counts, quantities, meanings, mean, sd}}`` (``mean`` and
    ``sd`` indexed [quantity][group][unit]), or None when no layer gets a profile."""
    wanted: dict[str, set[int]] = {}
    for name in ranked:
        u = Unit.parse(name)
        wanted.setdefault(u.layer_name, set()).add(u.index)
    out: dict[str, Any] = {}
    for layer in store.layers:
        width = _state_width(store, layer)
        idx = list(range(width)) if width <= SMALL_LAYER else sorted(wanted.get(layer, ()))
        idx = [i for i in idx if i < width]
        if not idx:
            continue
        try:
            p = profile(store, f"{layer}/cell/0", indices=idx, progress=progress).top(CARD_GROUPS)
        except Exception as exc:  # a card without a profile, not a report without a page
            if warn is not None:
                warn(f"no profiles for {layer}: {exc}")
            continue

        def r(a: np.ndarray) -> list[Any]:
            return [[[None if not np.isfinite(x) else round(float(x), 4) for x in row]
                     for row in q] for q in a]  # fmt: skip

        out[layer] = {
            "indices": idx,
            "groups": list(p.groups),
            "counts": [int(c) for c in p.counts],
            "quantities": list(p.quantities),
            "meanings": {q: MEANINGS[q] for q in p.quantities if q in MEANINGS},
            "mean": r(p.mean),
            "sd": r(p.sd),
        }
    return out or None
