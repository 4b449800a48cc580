"""Statistical figures of one unit: its profile by input (``lstmprobe profile``) and the random
units behind an ablation's p-value (``lstmprobe ablate``). Drawn with seaborn.

Each function returns a matplotlib Figure (or draws into ``ax`` and returns the Axes); values
that are not finite (±inf, NaN) are left out and counted in the title, never drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmprobe.report.theme import MONO, glyph, themed

if TYPE_CHECKING:
    from lstmprobe.causal.profile import Profile
    from lstmprobe.store.ablations import AblationCondition

#: The panels of a profile: gates in [0, 1], the values, the change of the state.
PANELS = (
    ("gates", ("input_gate", "forget_gate", "output_gate", "reset_gate", "update_gate"), (0, 1)),
    ("values", ("cell", "hidden", "candidate"), None),
    ("change of the state", ("forgotten", "written", "delta"), None),
)
_COLORS = ("#1b9e77", "#d95f02", "#7570b3")


def _group_label(profile: Profile, g: str) -> str:
    return glyph(g) if profile.by == "char" else g


@themed
def profile_figure(profile: Profile, j: int = 0, max_groups: int = 24) -> Any:
    """A unit's profile: per group (char or feature value), bars of the mean of each quantity
    with ± one standard deviation, in three panels (gates, values, the state's change).
    Returns the Figure."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    p = profile.top(max_groups)
    panels = [
        (title, [q for q in qs if q in p.quantities], lim)
        for title, qs, lim in PANELS
        if any(q in p.quantities for q in qs)
    ]
    labels = [_group_label(p, g) for g in p.groups]
    width = min(16.0, 3.0 + 0.3 * len(labels) * max(len(q) for _, q, _ in panels))
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(width, 2.1 * len(panels) + 0.6), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    dropped = 0
    for ax, (title, qs, lim) in zip(axes[:, 0], panels):
        rows = []
        for q in qs:
            qi = p.quantities.index(q)
            for gi, label in enumerate(labels):
                m, sd = float(p.mean[qi, gi, j]), float(p.sd[qi, gi, j])
                if not (np.isfinite(m) and np.isfinite(sd)):
                    dropped += 1
                    continue
                rows.append({"group": label, "quantity": q, "mean": m, "sd": sd})
        if not rows:
            ax.set_visible(False)
            continue
        df = pd.DataFrame(rows)
        hue_order = [q for q in qs if q in set(df["quantity"])]
        sns.barplot(
            data=df, x="group", y="mean", hue="quantity", order=labels, hue_order=hue_order,
            errorbar=None, palette=list(_COLORS[: len(hue_order)]), ax=ax, saturation=0.9,
        )  # fmt: skip
        for container, q in zip(ax.containers, hue_order):
            sub = df[df["quantity"] == q].set_index("group")
            for bar, label in zip(container, labels):
                if label not in sub.index:
                    continue
                x = bar.get_x() + bar.get_width() / 2
                ax.errorbar(
                    x, sub.at[label, "mean"], yerr=sub.at[label, "sd"], color="0.2",
                    lw=0.8, capsize=1.5,
                )  # fmt: skip
        ax.axhline(0, color="0.6", lw=0.6, zorder=0)
        if lim is not None:
            ax.set_ylim(lim[0], lim[1] * 1.05)
        ax.set_xlabel("")
        ax.set_ylabel("mean ± sd")
        ax.set_title(title, loc="left")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, family=MONO)
    what = "the char just read" if p.by == "char" else f"the value of {p.by}"
    note = f"; {dropped} non-finite values left out" if dropped else ""
    fig.suptitle(
        f"{p.unit(j)} by {what}: mean ± sd over {p.positions:,} positions{note}",
        fontsize=8, x=0.0, ha="left",
    )  # fmt: skip
    axes[-1, 0].set_xlabel("char just read" if p.by == "char" else p.by)
    return fig


@themed
def random_effects(condition: AblationCondition, ax: Any = None) -> Any:
    """The random unit sets behind an ablation's p-value: the effect of each random set (a
    strip of dots, their histogram behind) and the chosen units' effect (a red line), with
    the p-value and its floor. ``condition`` is one of ``run_ablation(...).conditions``.
    Returns the Axes."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    r = condition.random
    metric = r.p_value_of or ("delta_on" if condition.feature else "delta")
    raw = [getattr(d, metric, None) for d in r.draws]
    draws = np.array([np.nan if v is None else v for v in raw], dtype=np.float64)
    finite = draws[np.isfinite(draws)]
    chosen = getattr(condition, metric, None)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 2.2), layout="constrained")
    if len(finite):
        sns.histplot(
            x=finite, ax=ax, color="0.85", edgecolor="0.6", bins=min(30, max(5, len(finite) // 3))
        )
        top = ax.get_ylim()[1]
        rng = np.random.default_rng(0)
        ax.scatter(finite, top * (0.08 + 0.1 * rng.random(len(finite))), s=7, color="0.25",
                   zorder=3, label=f"{len(finite)} random same-size sets")  # fmt: skip
    if chosen is not None and np.isfinite(chosen):
        ax.axvline(chosen, color="#b2182b", lw=1.6, label="the chosen units")
    units = condition.names
    name = units[0] if len(units) == 1 else f"{len(units)} units"
    where = f" where {condition.on or condition.feature}" if condition.feature else ""
    p = r.p_value
    floor = r.p_floor if r.p_floor is not None else (1 / (1 + r.n) if r.n else None)
    every = " (all there are)" if r.possible is not None and r.possible <= r.n else ""
    p_line = (
        "no random sets"
        if p is None or floor is None
        else f"p = {p:.3f}; its floor is {floor:.3f} with {r.n} random sets{every}"
    )
    left = len(draws) - len(finite)
    verb = {"zero": "zeroing", "mean": "mean-ablating", "clamp": "clamping"}
    mode = verb.get(condition.mode, condition.mode)
    ax.set_title(
        f"{mode} {name}: Δ bits/char{where}\n{p_line}"
        + (f"; {left} non-finite draws left out" if left else ""),
        loc="left",
    )
    ax.set_xlabel("Δ bits/char (intervened − plain); right: the intervention hurts more")
    ax.set_ylabel("random sets")
    if ax.get_legend_handles_labels()[0]:  # nothing finite to draw: no legend
        ax.legend(frameon=False, loc="upper right", fontsize=6)
    return ax


@themed
def random_effects_grid(conditions: Sequence[AblationCondition], columns: int = 2) -> Any:
    """:func:`random_effects` for each condition of an ablation, in a grid. Returns the
    Figure."""
    import matplotlib.pyplot as plt

    n = max(1, len(conditions))
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(5.2 * cols, 2.4 * rows), squeeze=False, layout="constrained"
    )
    for i, ax in enumerate(axes.ravel()):
        if i < len(conditions):
            random_effects(conditions[i], ax=ax)
        else:
            ax.set_visible(False)
    return fig
