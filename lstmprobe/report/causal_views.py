"""The report's views of ``lstmprobe ablate`` and ``lstmprobe dynamics``.

Two files beside a recording feed them (docs/causal.md):

* ``acts.ablations.h5`` -- the per-char loss difference of each ablated condition. The report
  shows, per condition, its verdict numbers (the change of bits/char where the feature is on and
  off, against random same-size sets: mean ± sd, p) and passages of text coloured char by char by
  the loss difference: each char is coloured by the change of the loss of *predicting it* (the
  loss at position t is that of char t+1), on a symmetric diverging scale ±max|Δ| over the shown
  passages, **red where the intervention made the prediction worse** (more bits), blue where
  better. A file made from another recording (its model or corpus hash, or its length, differs)
  is ignored with a warning.
* ``acts.dynamics.json`` -- per unit the forget-gate timescale, how much of each update is kept
  vs written, and the strongest recurrent drivers. The report shows them in the explorer's unit
  card (drivers link to their units), the per-layer timescale distribution, and for a few top
  units the keep ``f ⊙ c(t−1)`` and write ``i ⊙ g`` terms char by char over a passage, computed
  here from the recorded gates and cell (:func:`keep_write`; GRU: ``z ⊙ h(t−1)`` and
  ``(1 − z) ⊙ n``).

Everything reads windows of the store; the ablations file is read whole (one float32 per position
and condition, twice, and one for the baseline).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lstmprobe._read import say_ignored
from lstmprobe.errors import StoreError, UnitError
from lstmprobe.report.data import KeyStats, Warn, check_unit, passage, top_spans
from lstmprobe.report.feature_scan import pick_changes
from lstmprobe.report.keep_write import state_unit
from lstmprobe.report.output import unit_parts
from lstmprobe.store import ActivationStore, parse_unit
from lstmprobe.store.ablations import AblationCondition, SavedAblations
from lstmprobe.store.dynamics import Dynamics, read_dynamics

#: Chars per ablation passage, and passages per condition of each kind.
PASSAGE = 160
N_EFFECT_PASSAGES = 2
N_CHANGE_PASSAGES = 2
#: Units whose keep/write terms are drawn in the Dynamics section, and chars per passage.
N_DYNAMICS_UNITS = 3
DYNAMICS_PASSAGE = 100


# --------------------------------------------------------------------------- ablations


def load_ablations(
    store: ActivationStore, path: str | os.PathLike[str] | None = None, warn: Warn = None
) -> SavedAblations | None:
    """The ablations beside ``store`` (``acts.ablations.h5``, or ``path``), or None.

    A file of another recording -- its model or corpus hash differs from the store's, or it
    covers another number of positions -- is ignored with a warning, as is an unreadable one.
    """
    from lstmprobe.store.ablations import read_ablations

    path = Path(path) if path is not None else store.recording.ablations
    if not path.exists():
        return None

    def ignore(why: str) -> None:
        if warn is not None:
            warn(
                f"ignoring {path}: {why}; measure them again with the recorded model and corpus: "
                f"`run_ablation(MODEL, CORPUS, store={store.path})`"
            )

    ours = {"model_sha256": store.model_sha256 or "", "corpus_sha256": store.corpus_sha256 or ""}
    try:
        abl = read_ablations(
            path, positions=store.n_positions, recording=ours, lenient=True, warn=warn
        )
    except StoreError as exc:
        ignore(f"it {str(exc).removeprefix(f'{path} ')}")
        return None
    for cond in abl.conditions:
        for unit in cond.units:
            try:  # a unit of another model is no unit of this recording
                check_unit(store, str(unit))
            except UnitError:
                ignore(f"it names unit {unit}, which this recording lacks")
                return None
    return abl


def _effect_windows(delta: np.ndarray, length: int, k: int) -> list[int]:
    """Starts of the ``k`` disjoint windows of ``length`` with the largest summed loss increase."""
    d = np.nan_to_num(np.asarray(delta, dtype=np.float64))
    n = len(d)
    if n == 0:
        return []
    length = min(length, n)
    c = np.concatenate([[0.0], np.cumsum(d)])
    sums = c[length:] - c[:-length]  # sums[a] = d[a:a+length]
    out: list[int] = []
    for a in np.argsort(-sums, kind="stable"):
        a = int(a)
        if all(abs(a - b) >= length for b in out):
            out.append(a)
        if len(out) == k:
            break
    return out


def _predicted(values: np.ndarray | None, a: int, b: int) -> list[float | None] | None:
    """Per char of ``[a, b)``: the value at the position that predicts it (t - 1), None where
    nothing predicts it (a sequence's first char) or the value is undefined."""
    if values is None:
        return None
    out: list[float | None] = []
    for t in range(a - 1, b - 1):
        v = float(values[t]) if t >= 0 else float("nan")
        out.append(None if not np.isfinite(v) else float(f"{v:.4g}"))
    return out


def ablation_sections(
    store: ActivationStore, abl: SavedAblations, warn: Warn = None, figures: bool = False
) -> dict[str, Any]:
    """The payload of the Ablations section and of the unit cards (JSON-ready); a condition's
    summary that cannot be used is shown without its numbers, said in one ``warn`` line. With
    ``figures``, each condition's random units behind its p-value as a PNG
    (:func:`~lstmprobe.report.unit_figures.random_effects`)."""
    n = store.n_positions
    on = abl.feature_on
    feature = abl.feature or None
    changes: list[int] = []
    if on is not None and feature:
        o = np.asarray(on, dtype=np.int8)
        flip = np.flatnonzero((o[1:] != o[:-1]) & (o[1:] >= 0) & (o[:-1] >= 0)) + 1
        changes = [int(t) + 1 for t in pick_changes(flip, N_CHANGE_PASSAGES)]  # the char t+1
    problems: list[str] = []
    conditions = []
    by_unit: dict[str, list[int]] = {}
    for ci, cond in enumerate(abl.conditions):
        summary = AblationCondition.from_dict(abl.summary[ci], f"summary[{ci}]", problems)
        delta = cond.delta_bits
        rand = cond.random_mean_delta_bits
        spans: list[tuple[str, int, int]] = []
        for a in _effect_windows(delta, PASSAGE, N_EFFECT_PASSAGES):
            # the window [a, a+L) of losses colours the chars [a+1, a+L+1)
            pa, pb = passage(store, min(n - 1, a + 1 + PASSAGE // 2), PASSAGE, before=0.5)
            spans.append(("effect", pa, pb))
        for c in changes:
            pa, pb = passage(store, min(n - 1, c), PASSAGE, before=0.5)
            spans.append(("change", pa, pb))
        passages = []
        biggest = 0.0
        for kind, pa, pb in spans:
            d = _predicted(delta, pa, pb)
            biggest = max([biggest, *(abs(x) for x in d or [] if x is not None)])
            passages.append(
                {
                    "kind": kind,
                    "start": pa,
                    "text": store.read_text(pa, pb),
                    "delta": d,
                    "random": _predicted(rand, pa, pb),
                    "on": None
                    if on is None
                    else [
                        None if v is None or v < 0 else int(v) for v in _predicted(on, pa, pb) or []
                    ],
                }
            )
        m = float(f"{biggest:.3g}") if biggest >= 1e-3 else 1e-3
        found = {} if summary is None else summary.to_dict()
        r = found.get("random", {})
        conditions.append(
            {
                "units": [unit_parts(u) for u in cond.units],
                "mode": cond.mode,
                "value": cond.value,
                "feature": feature,
                "verdict": cond.verdict,
                **{k: found.get(k) for k in _SHOWN},
                "random": {k: r.get(k) for k in _SHOWN_RANDOM},
                "range": m,
                "passages": passages,
                "figure": _random_figure(summary)
                if figures and summary is not None and summary.random.draws
                else None,
            }
        )
        for u in cond.units:
            by_unit.setdefault(str(u), []).append(ci)
    say_ignored(problems, warn, f"{abl.path}: ")
    return {
        "feature": feature,
        "feature_at": (abl.feature_at or "target") if feature else None,
        "reset": abl.reset or None,
        "created": abl.created or None,
        "conditions": conditions,
        "by_unit": by_unit,
    }


def _random_figure(summary: AblationCondition) -> str:
    from lstmprobe.report.output import png_uri
    from lstmprobe.report.unit_figures import random_effects

    return png_uri(random_effects(summary).figure)


#: What the report shows of a condition's summary, and of its random units.
_SHOWN = ("delta", "delta_on", "delta_off", "positions", "positions_on", "positions_off", "bits",
          "base_bits", "on", "feature_at")  # fmt: skip
_SHOWN_RANDOM = ("n", "delta_on_mean", "delta_on_sd", "delta_off_mean", "delta_off_sd",
                 "delta_mean", "delta_sd", "p_value", "p_value_of", "p_floor", "possible")  # fmt: skip


# --------------------------------------------------------------------------- dynamics


def load_dynamics(
    store: ActivationStore, path: str | os.PathLike[str] | None = None, warn: Warn = None
) -> Dynamics | None:
    """The gate dynamics beside ``store`` (``acts.dynamics.json``, or ``path``), or None.

    Ignored with a warning when it is not a dynamics file, names units the store lacks, or was
    computed over another number of positions.
    """
    path = Path(path) if path is not None else store.recording.dynamics
    if not path.exists():
        return None

    def ignore(why: str) -> None:
        if warn is not None:
            warn(f"ignoring {path}: {why}; measure them again: `gate_dynamics(store={store.path})`")

    try:
        dyn = read_dynamics(path, lenient=True, warn=warn)
    except StoreError as exc:
        ignore(f"it cannot be used ({str(exc).removeprefix(f'{path}: ')})")
        return None
    for layer, info in dyn.layers.items():
        if info.positions != store.n_positions:
            ignore(f"its {layer} covers {info.positions} positions, not {store.n_positions}")
            return None
    for name in dyn.units:
        try:
            check_unit(store, name)
        except UnitError:
            ignore(f"it names unit {name}, which this recording lacks")
            return None
    return dyn


def _dynamics_units(
    store: ActivationStore, dyn: Dynamics, preferred: Sequence[str], k: int
) -> list[str]:
    """Up to ``k`` state units to draw: the ranked ones first, then the longest timescales."""
    units = dyn.units
    out: list[str] = []
    for u in preferred:
        try:
            s = state_unit(store, u)
        except UnitError:
            continue
        if s in units and s not in out:
            out.append(s)
    by_scale = sorted(units, key=lambda u: -(units[u].timescale or float("inf")))  # infinite first
    for u in by_scale:
        if len(out) >= k:
            break
        if u not in out:
            out.append(u)
    return out[:k]


def dynamics_sections(
    store: ActivationStore,
    dyn: Dynamics,
    stats: dict[str, KeyStats],
    preferred: Sequence[str] = (),
    figures: bool = True,
) -> dict[str, Any]:
    """The payload of the Dynamics section and of the unit cards (JSON-ready)."""
    units = {u: d.to_dict() for u, d in dyn.units.items()}
    for d in units.values():  # a driver is a unit: its parts, parsed here; else its text
        if isinstance(d.get("drivers"), list):
            d["drivers"] = [_driver(store, x) for x in d["drivers"]]
    out: dict[str, Any] = {
        "layers": {
            layer: {"kind": info.kind, "timescales": info.timescales.to_dict()}
            for layer, info in dyn.layers.items()
        },
        "units": units,
        "figures": [],
    }
    if not figures:
        return out
    from lstmprobe.report import figures as F
    from lstmprobe.report.output import png_uri

    out["figures"].append(
        {
            "id": "timescales",
            "title": "Forget-gate timescales per layer",
            "src": png_uri(F.timescales(dyn)),
            "caption": "Per layer, how many units have each timescale −1/ln(mean forget gate) "
            "(GRU: update gate): the steps over which the unit's state decays by 1/e if the gate "
            "sat at its mean. ∞: a mean gate that rounds to 1.",
        }
    )
    for u in _dynamics_units(store, dyn, preferred, N_DYNAMICS_UNITS):
        key, index = parse_unit(u)
        spans = (
            top_spans(store, stats[key], index, 1.0, 1, DYNAMICS_PASSAGE) if key in stats else []
        )
        a, b = (
            (spans[0][0], spans[0][1]) if spans else (0, min(DYNAMICS_PASSAGE, store.n_positions))
        )
        try:
            fig = F.keep_write(store, u, a, b - a)
        except UnitError:
            continue
        ts = dyn.units[u].timescale if u in dyn.units else None
        out["figures"].append(
            {
                "id": f"keepwrite-{u.replace('/', '-')}",
                "unit": unit_parts(u),
                "title": f"Keep vs write: {u}",
                "src": png_uri(fig),
                "caption": f"{u} at positions {a}..{b} (where it is most active), timescale "
                f"{'∞' if ts is None else f'{ts:.3g}'} steps: each bar is the state after a char, "
                "split into the part kept from before (f ⊙ c(t−1)) and the part written now "
                "(i ⊙ g), stacked so that the bar ends at c(t) (the dot).",
            }
        )
    return out


def _driver(store: ActivationStore, driver: dict[str, Any]) -> dict[str, Any]:
    """A recurrent driver with its ``from`` unit as parts when it is a unit of ``store``."""
    try:
        check_unit(store, driver.get("from"))  # type: ignore[arg-type]
    except (UnitError, TypeError):
        return {**driver, "from": str(driver.get("from"))}
    return {**driver, "from": unit_parts(driver["from"])}


def causal_payload(
    store: ActivationStore,
    stats: dict[str, KeyStats],
    preferred: Sequence[str] = (),
    figures: bool = True,
    warn: Warn = None,
) -> dict[str, Any]:
    """``{"ablations": ..., "dynamics": ...}`` for the report: None where a file is absent."""
    abl = load_ablations(store, warn=warn)
    dyn = load_dynamics(store, warn=warn)
    return {
        "ablations": ablation_sections(store, abl, warn, figures) if abl is not None else None,
        "dynamics": dynamics_sections(store, dyn, stats, preferred, figures)
        if dyn is not None
        else None,
    }


# --------------------------------------------------------------------------- the page's part
