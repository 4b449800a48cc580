"""An ablation's effect against random units: the loss summaries, p-values, spreads, verdict.

:func:`loss_summary` is one run's mean loss change (overall, where the feature is on, where it is
off); :func:`condition_entry` puts a condition's summary beside its random draws' (mean, sample
standard deviation, the empirical p-value :func:`p_value`) and :func:`verdict` says it in one
line. Everything here is plain arithmetic on numbers :func:`~lstmprobe.causal.run_ablation`
measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

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
    units: Sequence[str],
    chosen: Run,
    draws: Sequence[tuple[str, ...]],
    random: Sequence[Run],
    *,
    settings: dict[str, Any],
    base_task: dict[str, Any] | None,
    possible: int | None = None,
) -> dict[str, Any]:
    """One condition's JSON-ready result: its loss summary, its ``random`` draws' mean, spread
    and the p-value of its effect among them (``delta_on`` with a feature, else ``delta``) with
    its floor ``1 / (1 + n)``, task accuracies with ``task=True``, and its :func:`verdict`.

    ``settings`` holds ``mode``, ``value``, ``feature`` (its name or None), ``feature_at`` and
    ``on`` (how the feature was read: ``state``/``target``, and the rule, e.g. ``quote = 1``)
    and ``seed``; ``possible`` is the number of distinct random sets there were to draw.
    """
    summary, _, comp = chosen
    with_feature = settings["feature"] is not None
    metric = "delta_on" if with_feature else "delta"
    entry: dict[str, Any] = {
        "units": list(units),
        "mode": settings["mode"],
        "value": settings["value"] if settings["mode"] == "clamp" else None,
        "feature": settings["feature"],
        "feature_at": settings.get("feature_at"),
        "on": settings.get("on"),
        **summary,
    }
    r_on, r_on_sd = mean_sd([r[0].get(metric) for r in random])
    r_off, r_off_sd = mean_sd([r[0].get("delta_off") for r in random])
    r_all, r_all_sd = mean_sd([r[0]["delta"] for r in random])
    random_part: dict[str, Any] = {
        "n": len(random),
        "delta_on_mean": r_on if with_feature else None,
        "delta_on_sd": r_on_sd if with_feature else None,
        "delta_off_mean": r_off,
        "delta_off_sd": r_off_sd,
        "delta_mean": r_all,
        "delta_sd": r_all_sd,
        "p_value": p_value(summary.get(metric), [r[0].get(metric) for r in random]),
        "p_value_of": metric,
        "p_floor": 1 / (1 + len(random)) if random else None,
        "possible": possible,
        "seed": settings["seed"],
        "draws": [
            {
                "units": list(d),
                "delta": r[0]["delta"],
                "delta_on": r[0].get("delta_on"),
                "delta_off": r[0].get("delta_off"),
                **({"task_accuracy": r[2]["accuracy"]} if r[2] is not None else {}),
            }
            for d, r in zip(draws, random)
        ],
    }
    if comp is not None and base_task is not None:
        entry["base_task_accuracy"] = base_task["accuracy"]
        entry["base_task_accuracy_by_n"] = base_task["by_n"]
        entry["task_accuracy"] = comp["accuracy"]
        entry["task_accuracy_by_n"] = comp["by_n"]
        accs = [r[2]["accuracy"] for r in random if r[2] is not None]
        m, sd = mean_sd(accs)
        random_part["task_accuracy_mean"] = m
        random_part["task_accuracy_sd"] = sd
        random_part["task_p_value"] = p_value(comp["accuracy"], accs, larger=False)
        keys = sorted({k for r in random if r[2] for k in r[2]["by_n"]}, key=int)
        random_part["task_accuracy_by_n_mean"] = {
            k: float(np.mean([r[2]["by_n"].get(k, np.nan) for r in random if r[2]])) for k in keys
        }
    entry["random"] = random_part
    entry["verdict"] = verdict(entry)
    return entry


def _units_text(units: Sequence[str]) -> str:
    return units[0] if len(units) == 1 else f"{len(units)} units ({', '.join(units)})"


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


def verdict(c: dict[str, Any]) -> str:
    """One readable line for a condition, e.g. ``zeroing layer0/cell/34 costs ... p = ...``."""
    how = {"zero": "zeroing", "mean": "mean-ablating", "clamp": f"clamping to {c.get('value')}"}
    what = f"{how.get(c['mode'], c['mode'])} {_units_text(c['units'])}"
    r = c["random"]
    if c.get("feature"):
        rule = c.get("on") or f"{c['feature']} is on"
        at = _AT.get(c.get("feature_at") or "", "")
        line = (
            f"{what} costs {c['delta_on']:+.3f} bits/char where {rule} ({at}; "
            f"{c['positions_on']:,} chars), {c['delta_off']:+.3f} elsewhere; "
        )
        rand_mean, rand_sd = r.get("delta_on_mean"), r.get("delta_on_sd")
    else:
        line = f"{what} costs {c['delta']:+.3f} bits/char ({c['positions']:,} chars); "
        rand_mean, rand_sd = r.get("delta_mean"), r.get("delta_sd")
    if r["n"]:
        line += f"{r['n']} random same-size sets cost {rand_mean:+.3f} ± {rand_sd:.3f}; " + p_text(
            r["p_value"], r["n"], r.get("possible")
        )
    else:
        line += "no random units compared (none drawn)"
    if "task_accuracy" in c:
        line += f"; task accuracy {c['base_task_accuracy']:.1%} -> {c['task_accuracy']:.1%}"
        if r["n"]:
            line += (
                f" (random sets: {r['task_accuracy_mean']:.1%} ± {r['task_accuracy_sd']:.1%}, "
                f"p = {r['task_p_value']:.3f})"
            )
    return line
