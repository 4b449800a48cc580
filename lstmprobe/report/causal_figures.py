"""Figures of causal depth: the patching heatmap (units x positions), text coloured by
attribution, and state trajectories with fixed points.

Each function returns a matplotlib Figure or Axes (``ax=None`` makes one); none shows or saves
anything. Every colour scale is fixed and stated on the figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lstmprobe.report.colors import Scale, cmap
from lstmprobe.report.text_figures import colored_text
from lstmprobe.report.theme import add_colorbar, glyph, themed


@themed
def patch_heatmap(
    values: np.ndarray,
    rows: Sequence[str],
    columns: Sequence[int],
    labels: Sequence[str] = (),
    *,
    counts: Sequence[int] = (),
    metric: str = "flip_rate",
    title: str = "",
    ax: Any = None,
) -> Any:
    """Rows (unit sets) x columns (target positions): the effect of patching each alone.

    Parameters
    ----------
    values : ndarray of shape (n_rows, n_columns)
        Flip rates (``metric="flip_rate"``, fixed scale [0, 1]) or mean changes of
        log2 p(expected) (``"delta_bits"``, symmetric scale ±max|value|).
    rows : the row labels (units)
    columns : target positions (-1 the last char; or 0, 1, ... from the start)
    labels : the char at each column (where every pair has the same), shown under its position
    counts : the number of pairs that have each column's position (shown under it)
    """
    import matplotlib.pyplot as plt

    values = np.asarray(values, dtype=np.float64)
    n_rows, n_cols = values.shape
    if ax is None:
        _, ax = plt.subplots(
            figsize=(max(4.2, 1.9 + 0.42 * n_cols), 1.3 + 0.2 * n_rows), layout="constrained"
        )
    if metric == "flip_rate":
        scale = Scale("sequential", 0.0, 1.0, "flip rate: its whole range [0, 1]")
    else:
        m = float(np.nanmax(np.abs(values))) if values.size else 0.0
        m = m if m > 0 else 1.0
        scale = Scale("diverging", -m, m, "±max|Δ| over this figure (bits)")
    ax.imshow(
        values,
        cmap=cmap(scale.kind),
        vmin=scale.vmin,
        vmax=scale.vmax,
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(list(rows), fontsize=6 if n_rows > 24 else 7)
    ax.set_xticks(range(n_cols))
    ticks = []
    for j, c in enumerate(columns):
        char = glyph(labels[j]) if j < len(labels) and labels[j] else ""
        ticks.append(f"{c}\n{char}" + (f"\nn={counts[j]}" if j < len(counts) else ""))
    ax.set_xticklabels(ticks, fontsize=6 if n_cols > 16 else 7)
    ax.set_xlabel(
        "target position patched (below: its char where the same in every pair"
        + (", and n: the pairs that have it)" if len(counts) else ")")
    )
    if n_rows * n_cols <= 400:
        for i in range(n_rows):
            for j in range(n_cols):
                v = values[i, j]
                if np.isfinite(v):
                    dark = (
                        abs(
                            scale.normalize(np.array([v]))[0]
                            - (0 if scale.kind == "sequential" else 0.5)
                        )
                        > 0.35
                    )
                    text = f"{v:.2f}" if metric == "flip_rate" else f"{v:+.1f}"
                    ax.text(
                        j,
                        i,
                        text,
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if dark else "black",
                    )
    what = (
        "share of pairs flipped to the source's answer"
        if metric == "flip_rate"
        else ("mean change of log2 p(source's answer)")
    )
    ax.set_title(f"{title}\n{what}\n{scale.describe()}".strip(), loc="left", fontsize=7)
    add_colorbar(ax.figure, ax, scale)
    return ax


@themed
def attribution_text(
    text: str,
    values: np.ndarray,
    *,
    start: int = 0,
    title: str = "",
    width: int = 100,
    ax: Any = None,
) -> Any:
    """``text`` with each char's background its attribution: red negative, blue positive, on a
    symmetric scale ±max|attribution| over the shown chars (stated on the figure); whitespace
    drawn visible. Returns the Axes."""
    values = np.asarray(values, dtype=np.float64)
    m = float(np.nanmax(np.abs(values))) if values.size else 0.0
    m = m if m > 0 else 1.0
    scale = Scale("diverging", -m, m, "±max|attribution| over these chars")
    return colored_text(text, values, scale, ax=ax, width=width, title=title, start=start)


@themed
def trajectories(
    points: np.ndarray,
    sequences: Sequence[tuple[int, int]],
    colour: np.ndarray | None,
    explained: Sequence[float],
    *,
    feature: str = "",
    key: str = "",
    fixed: np.ndarray | None = None,
    fixed_stable: Sequence[bool] = (),
    fixed_input: str = "",
    ax: Any = None,
) -> Any:
    """Each sequence's states as a path in the plane of the first two principal components.

    Parameters
    ----------
    points : ndarray of shape (n_positions, 2)
        The states projected on PC1 and PC2.
    sequences : [start, end) of each sequence drawn (a path each)
    colour : ndarray of shape (n_positions,), optional
        A feature's value at each position (the colour of each point; NaN grey).
    explained : the share of variance of PC1 and PC2 (on the axes)
    fixed : ndarray of shape (n_points, 2), optional
        Fixed points, projected the same way: filled if stable, open if not.
    fixed_input : the input char held for the fixed points (in the legend)
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.4), layout="constrained")
    fig = ax.figure
    values = np.full(len(points), np.nan) if colour is None else np.asarray(colour, float)
    finite = bool(np.isfinite(values).any())
    vmin = float(np.nanmin(values)) if finite else 0.0
    vmax = float(np.nanmax(values)) if finite else 1.0
    for a, b in sequences:
        ax.plot(points[a:b, 0], points[a:b, 1], color="0.7", lw=0.5, zorder=1)
    sc = None
    if finite:
        sel = np.isfinite(values)
        sc = ax.scatter(
            points[sel, 0],
            points[sel, 1],
            c=values[sel],
            cmap="viridis",
            vmin=vmin,
            vmax=vmax,
            s=6,
            zorder=2,
            linewidths=0,
        )
        if (~sel).any():
            ax.scatter(points[~sel, 0], points[~sel, 1], color="0.6", s=4, zorder=2)
    else:
        ax.scatter(points[:, 0], points[:, 1], color="0.3", s=4, zorder=2)
    if fixed is not None and len(fixed):
        stable = (
            np.asarray(fixed_stable, dtype=bool) if len(fixed_stable) else np.ones(len(fixed), bool)
        )
        ax.scatter(
            fixed[stable, 0],
            fixed[stable, 1],
            marker="X",
            s=70,
            color="#d62728",
            edgecolor="black",
            linewidths=0.6,
            zorder=4,
            label=f"fixed point of input {fixed_input!r} (stable)",
        )
        if (~stable).any():
            ax.scatter(
                fixed[~stable, 0],
                fixed[~stable, 1],
                marker="X",
                s=70,
                facecolor="white",
                edgecolor="#d62728",
                linewidths=1.0,
                zorder=4,
                label=f"fixed point of input {fixed_input!r} (unstable)",
            )
        ax.legend(loc="best", frameon=True, framealpha=0.9, edgecolor="0.6")  # not a data point
    ax.set_xlabel(f"PC1 ({explained[0]:.1%} of the variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.1%} of the variance)")
    ax.set_title(
        f"{key}: each sequence a path ({len(sequences)} shown)"
        + (f"; colour: {feature} [{vmin:.3g}, {vmax:.3g}] (viridis)" if finite else ""),
        loc="left",
        fontsize=7,
    )
    if sc is not None:
        fig.colorbar(sc, ax=ax, shrink=0.8, label=feature)
    return ax


@themed
def attribution_view(
    text: str,
    start: int,
    inputs: np.ndarray,
    states: dict[str, np.ndarray],
    *,
    title: str = "",
    top: int = 12,
    width: int = 100,
) -> Any:
    """One attribution: the window's text coloured by each char's attribution (top), and the
    ``top`` state units of largest attribution over the window's steps (bottom; chars on the
    x axis). Both on symmetric scales ±max|attribution| of their own panel, stated. Returns the
    Figure."""
    import matplotlib.pyplot as plt

    rows: list[tuple[str, np.ndarray]] = []
    for key, a in states.items():
        for j in range(a.shape[1]):
            rows.append((f"{key}/{j}", a[:, j]))
    rows.sort(key=lambda r: -float(np.max(np.abs(r[1]))) if len(r[1]) else 0.0)
    rows = rows[:top]
    n_text_rows = max(1, -(-len(text) // width) + text.count("\n"))
    heights = [0.5 + 0.17 * n_text_rows, 0.6 + 0.18 * max(1, len(rows))]
    cols = min(width, max(len(text), 10))
    fig, (ax_text, ax_units) = plt.subplots(
        2,
        1,
        figsize=(max(5.0, 0.085 * cols + 1.6), sum(heights) + 0.9),
        height_ratios=heights,
        layout="constrained",
    )
    attribution_text(
        text, inputs, start=start, title=title or "input chars", width=width, ax=ax_text
    )
    if not rows:
        ax_units.set_axis_off()
        return fig
    values = np.stack([r[1] for r in rows])
    m = float(np.max(np.abs(values))) or 1.0
    scale = Scale("diverging", -m, m, "±max|attribution| over these units and steps")
    ax_units.imshow(
        values, cmap=cmap("diverging"), vmin=-m, vmax=m, aspect="auto", interpolation="nearest"
    )
    ax_units.set_yticks(range(len(rows)))
    ax_units.set_yticklabels([r[0] for r in rows], fontsize=6)
    step = max(1, len(text) // 60)
    ax_units.set_xticks(range(0, len(text), step))
    ax_units.set_xticklabels([glyph(text[i]) for i in range(0, len(text), step)], fontsize=6)
    ax_units.set_xlabel(
        f"state after each char of positions {start}..{start + len(text) - 1}, as later steps read it"
    )
    ax_units.set_title(
        f"the {len(rows)} state units of largest |attribution|\n{scale.describe()}",
        loc="left",
        fontsize=7,
    )
    add_colorbar(fig, ax_units, scale)
    return fig
