"""An ablation's effect against random units: the loss summaries, p-values, spreads, verdict.

:func:`loss_summary` is one run's mean loss change (overall, where the feature is on, where it is
off); :func:`condition_entry` puts a condition's summary beside its random draws' (mean, sample
standard deviation, the empirical p-value :func:`p_value`) and :func:`verdict` says it in one
line. Everything here is plain arithmetic on numbers :func:`~lstmprobe.causal.run_ablation`
measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from lstmprobe.names import Unit
from lstmprobe.store.ablations import SPLIT, AblationCondition, RandomDraw, RandomUnits

__all__ = [
    "AblationCondition",
    "RandomDraw",
    "RandomUnits",
    "condition_entry",
    "loss_summary",
    "mean_sd",
    "p_text",
    "p_value",
    "verdict",
]

#: one measured run: its loss summary, its per-char deltas (kept for the chosen units only)
#: and its task completion (with ``task=True``)
Run = tuple[dict[str, Any], Any, "dict[str, Any] | None"]


def loss_summary(bits: np.ndarray, base: np.ndarray, on: np.ndarray | None) -> dict[str, Any]:
    """The mean loss with and without the intervention, and its change, over every position
    with a next char; with ``on`` (:func:`~lstmprobe.causal.ablation.feature_on_off`) also
    where the feature is on and where it is off.

    Examples
    --------
    >>> s = loss_summary(np.array([2.0, 3.0, np.nan]), np.array([1.0, 1.0, np.nan]), None)
    >>> s["delta"], s["positions"]
    (1.5, 2)
    """
    valid = ~np.isnan(base)
    delta = bits - base
    out: dict[str, Any] = {
        "bits": float(np.nanmean(bits[valid])) if valid.any() else None,
        "base_bits": float(np.nanmean(base[valid])) if valid.any() else None,
        "delta": float(np.nanmean(delta[valid])) if valid.any() else None,
        "positions": int(valid.sum()),
    }
    if on is not None:
        for name, sel in (("on", on == 1), ("off", on == 0)):
            out[f"bits_{name}"] = float(bits[sel].mean()) if sel.any() else None
            out[f"base_bits_{name}"] = float(base[sel].mean()) if sel.any() else None
            out[f"delta_{name}"] = float(delta[sel].mean()) if sel.any() else None
            out[f"positions_{name}"] = int(sel.sum())
    return out


def p_value(
    chosen: float | None, draws: Sequence[float | None], larger: bool = True
) -> float | None:
    """The rank of ``chosen`` among the random ``draws``: ``(1 + #{draw >= chosen}) / (1 + n)``
    (``<=`` when ``larger`` is false: a smaller value is the stronger effect).

    Examples
    --------
    >>> p_value(0.5, [0.1, 0.2, 0.6])
    0.5
    >>> p_value(0.5, [0.1, 0.2, 0.3]), p_value(None, [0.1]), p_value(0.5, [])
    (0.25, None, None)
    """
    vals = [d for d in draws if d is not None]
    if chosen is None or not vals:
        return None
    hits = sum(1 for d in vals if (d >= chosen if larger else d <= chosen))
    return (1 + hits) / (1 + len(vals))


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (``ddof=1``; 0 for one value) of the values given.

    Examples
    --------
    >>> mean_sd([1.0, None, 3.0]), mean_sd([2.0]), mean_sd([None])
    ((2.0, 1.4142135623730951), (2.0, 0.0), (None, None))
    """
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def condition_entry(
    units: Sequence[Unit | str],
    chosen: Run,
    draws: Sequence[tuple[Unit | str, ...]],
    random: Sequence[Run],
    *,
    settings: dict[str, Any],
    base_task: dict[str, Any] | None,
    possible: int | None = None,
) -> AblationCondition:
    """One condition's result, built whole: its loss summary, its ``random`` draws' mean,
    spread and the p-value of its effect among them (``delta_on`` with a feature, else
    ``delta``) with its floor ``1 / (1 + n)``, task accuracies with ``task=True``, and its
    :func:`verdict`.

    ``settings`` holds ``mode``, ``value``, ``feature`` (its name or None), ``feature_at`` and
    ``on`` (how the feature was read: ``state``/``target``, and the rule, e.g. ``quote = 1``)
    and ``seed``; ``possible`` is the number of distinct random sets there were to draw.
    """
    summary, _, comp = chosen
    with_feature = settings["feature"] is not None
    metric = "delta_on" if with_feature else "delta"
    r_on, r_on_sd = mean_sd([r[0].get(metric) for r in random])
    r_off, r_off_sd = mean_sd([r[0].get("delta_off") for r in random])
    r_all, r_all_sd = mean_sd([r[0]["delta"] for r in random])
    task: dict[str, Any] = {}
    if comp is not None and base_task is not None:
        accs = [r[2]["accuracy"] for r in random if r[2] is not None]
        m, sd = mean_sd(accs)
        keys = sorted({k for r in random if r[2] for k in r[2]["by_n"]}, key=int)
        task = {
            "task_accuracy_mean": m,
            "task_accuracy_sd": sd,
            "task_p_value": p_value(comp["accuracy"], accs, larger=False),
            "task_accuracy_by_n_mean": {
                k: float(np.mean([r[2]["by_n"].get(k, np.nan) for r in random if r[2]]))
                for k in keys
            },
        }
    random_units = RandomUnits(
        n=len(random),
        seed=settings["seed"],
        p_value_of=metric,
        p_value=p_value(summary.get(metric), [r[0].get(metric) for r in random]),
        p_floor=1 / (1 + len(random)) if random else None,
        possible=possible,
        delta_on_mean=r_on if with_feature else None,
        delta_on_sd=r_on_sd if with_feature else None,
        delta_off_mean=r_off,
        delta_off_sd=r_off_sd,
        delta_mean=r_all,
        delta_sd=r_all_sd,
        draws=tuple(
            RandomDraw(
                tuple(Unit.parse(u) for u in d),
                r[0]["delta"],
                r[0].get("delta_on"),
                r[0].get("delta_off"),
                r[2]["accuracy"] if r[2] is not None else None,
            )
            for d, r in zip(draws, random)
        ),
        **task,
    )
    measured = AblationCondition(
        units=tuple(Unit.parse(u) for u in units),
        mode=settings["mode"],
        random=random_units,
        value=settings["value"] if settings["mode"] == "clamp" else None,
        feature=settings["feature"],
        feature_at=settings.get("feature_at") if with_feature else None,
        on=settings.get("on") if with_feature else None,
        **{k: v for k, v in summary.items() if k in _SUMMARY},
        **(
            {
                "base_task_accuracy": base_task["accuracy"],
                "base_task_accuracy_by_n": base_task["by_n"],
                "task_accuracy": comp["accuracy"],
                "task_accuracy_by_n": comp["by_n"],
            }
            if comp is not None and base_task is not None
            else {}
        ),
    )
    return replace(measured, verdict=verdict(measured))


_SUMMARY = ("bits", "base_bits", "delta", "positions", *SPLIT)


_AT = {"state": "read at t, where the model predicts from", "target": "read at the predicted char"}


def p_text(p: float, n: int, possible: int | None = None) -> str:
    """A p-value with its floor: ``p = 0.100: the smallest possible with 9 random sets (all
    there are)``.

    Examples
    --------
    >>> p_text(0.1, 9, possible=9)
    'p = 0.100: the smallest possible with 9 random sets (all there are)'
    >>> p_text(1 / 21, 20)
    'p = 0.048: the smallest possible with 20 random sets — `n_random=99` gives a finer test'
    >>> p_text(0.5, 99)
    'p = 0.500 (floor 0.010 with 99 random sets)'
    """
    floor = 1 / (1 + n)
    if p > floor * (1 + 1e-9):
        return f"p = {p:.3f} (floor {floor:.3f} with {n} random sets)"
    line = f"p = {p:.3f}: the smallest possible with {n} random sets"
    if possible is not None and possible <= n:
        return line + " (all there are)"
    if n < 99:
        return line + " — `n_random=99` gives a finer test"
    return line


def _units_text(units: Sequence[Unit]) -> str:
    names = [str(u) for u in units]
    return names[0] if len(names) == 1 else f"{len(names)} units ({', '.join(names)})"


def verdict(c: AblationCondition) -> str:
    """One readable line for a condition, e.g. ``zeroing layer0/cell/34 costs ... p = ...``."""
    how = {"zero": "zeroing", "mean": "mean-ablating", "clamp": f"clamping to {c.value}"}
    what = f"{how.get(c.mode, c.mode)} {_units_text(c.units)}"
    r = c.random
    if c.feature:
        rule = c.on or f"{c.feature} is on"
        at = _AT.get(c.feature_at or "", "")
        line = (
            f"{what} costs {_signed(c.delta_on)} bits/char where {rule} ({at}; "
            f"{c.positions_on or 0:,} chars), {_signed(c.delta_off)} elsewhere; "
        )
        rand_mean, rand_sd = r.delta_on_mean, r.delta_on_sd
    else:
        line = f"{what} costs {_signed(c.delta)} bits/char ({c.positions:,} chars); "
        rand_mean, rand_sd = r.delta_mean, r.delta_sd
    if r.n:
        line += f"{r.n} random same-size sets cost {_signed(rand_mean)} ± {_plain(rand_sd)}; "
        line += "p = n/a" if r.p_value is None else p_text(r.p_value, r.n, r.possible)
    else:
        line += "no random units compared (none drawn)"
    if c.task_accuracy is not None:
        line += f"; task accuracy {_share(c.base_task_accuracy)} -> {_share(c.task_accuracy)}"
        if r.n:
            line += (
                f" (random sets: {_share(r.task_accuracy_mean)} ± "
                f"{_share(r.task_accuracy_sd)}, p = {_plain(r.task_p_value)})"
            )
    return line


def _signed(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.3f}"


def _plain(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _share(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"
