"""Figures of statistics over a whole recording or a ranking: gate saturation, cell vs hidden
distributions, every unit at a separator char, a probe's top-k curve, forget-gate timescales.

Each function returns a matplotlib Figure (or draws into ``ax`` and returns the Axes).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from lstmprobe.names import Key
from lstmprobe.probes.ranking import Ranking
from lstmprobe.report.colors import Scale, clipped, cmap, nonfinite_note, scale_for
from lstmprobe.report.data import (
    KeyStats,
    Separator,
    layer_kind,
    require_quantities,
    sample_values,
    sample_windows,
)
from lstmprobe.report.theme import MONO, PAIR_COLORS, glyph, themed
from lstmprobe.store import ActivationStore
from lstmprobe.store.dynamics import Dynamics


@themed
def saturation(stats: dict[str, KeyStats], layers: Sequence[str] | None = None) -> Any:
    """Gate saturation per layer and gate (Karpathy, Johnson & Fei-Fei 2015): each unit's
    fraction of positions left-saturated (< 0.1) against right-saturated (> 0.9). Returns the
    Figure."""
    import matplotlib.pyplot as plt

    gates = [k for k in stats if Key.parse(k).is_gate]
    if layers is not None:
        gates = [k for k in gates if Key.parse(k).layer_name in layers]
    if not gates:
        from lstmprobe.errors import UnitError

        raise UnitError(
            "plot saturation needs gates (input_gate, forget_gate, output_gate or reset_gate, "
            "update_gate); record them with "
            "`quantities=input_gate,forget_gate,output_gate,candidate,cell,hidden`"
        )
    by_layer: dict[str, list[str]] = {}
    for k in gates:
        by_layer.setdefault(Key.parse(k).layer_name, []).append(k)
    n_cols = max(len(v) for v in by_layer.values())
    fig, axes = plt.subplots(
        len(by_layer), n_cols, figsize=(2.3 * n_cols, 2.3 * len(by_layer)), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    for r, (_layer, keys) in enumerate(by_layer.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            if c >= len(keys):
                ax.set_visible(False)
                continue
            s = stats[keys[c]]
            ax.plot([0, 1], [1, 0], color="0.8", lw=0.8, zorder=0)
            ax.scatter(s.low, s.high, s=8, alpha=0.6, color="#1b9e77", edgecolor="none")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            ax.set_title(keys[c])
            ax.set_xlabel("fraction left-saturated (< 0.1)")
            if c == 0:
                ax.set_ylabel("fraction right-saturated (> 0.9)")
    fig.suptitle(
        f"gate saturation: one dot per unit, over all {next(iter(stats.values())).count:,} positions",
        fontsize=8,
    )
    return fig


@themed
def distributions(
    store: ActivationStore,
    layer: str | None = None,
    windows: list[tuple[int, int]] | None = None,
) -> Any:
    """Per-unit distributions of cell vs hidden ("hidden is a sharper cell"); GRU: candidate vs
    hidden. Quantiles per unit over sampled windows of positions, and all values pooled.
    Returns the Figure.

    The two quantities may have different widths (an LSTM with ``proj_size``: ``cell`` has H
    units, ``hidden`` P): each is drawn over its own units. Quantiles and the histogram are of
    the finite values; a unit that also holds ±inf (a float16 overflow) or NaN is marked by a
    triangle at the edge of the panel, and the counts are in the legend.
    """
    import matplotlib.pyplot as plt

    layer = layer or store.layers[0]
    have = store.quantities(layer)
    pair = ("cell", "hidden") if "cell" in have or layer_kind(store, layer) == "lstm" else (
        "candidate", "hidden",
    )  # fmt: skip
    require_quantities(store, layer, pair, "plot distributions")
    windows = windows or sample_windows(store.n_positions)
    n_pos = sum(b - a for a, b in windows)
    data = [sample_values(store, f"{layer}/{q}", windows) for q in pair]
    widths = [v.shape[1] for v in data]
    n_units = max(widths)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(min(14, 6 + 0.06 * n_units), 4.6), layout="constrained",
        gridspec_kw={"height_ratios": [1.4, 1]},
    )  # fmt: skip
    flagged = []
    for j, (q, v, color) in enumerate(zip(pair, data, PAIR_COLORS)):
        x = np.arange(v.shape[1]) + (j - 0.5) * 0.35
        finite = np.isfinite(v)
        shown = np.where(finite, v, np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a unit with no finite value
            q05, q25, q50, q75, q95 = np.nanpercentile(shown, [5, 25, 50, 75, 95], axis=0)
        width = f", {v.shape[1]} units" if len(set(widths)) > 1 else ""
        top.vlines(x, q05, q95, color=color, lw=0.6, alpha=0.6)
        top.vlines(x, q25, q75, color=color, lw=2.0, label=f"{q}{width} (5–95%, 25–75%, median)")
        top.scatter(x, q50, s=3, color="black", zorder=3)
        pos, neg, nan = (v == np.inf).sum(0), (v == -np.inf).sum(0), np.isnan(v).sum(0)
        bad = ""
        if (pos + neg + nan).any():
            counts = [
                f"{int(n):,} {w}"
                for n, w in ((pos.sum() + neg.sum(), "±inf"), (nan.sum(), "NaN"))
                if n
            ]
            bad = f"; {' and '.join(counts)} not in the histogram"
            flagged.append((x, pos > 0, (neg > 0) | (nan > 0), color))
        values = v[finite]
        bottom.hist(
            values, bins=120, histtype="step", density=True, color=color,
            label=f"{q}: std {values.std() if values.size else float('nan'):.2f}{bad}",
        )  # fmt: skip
    top.axhline(0, color="0.7", lw=0.6, zorder=0)
    top.set_xlabel("unit")
    top.set_ylabel("value (symlog)")
    top.set_xlim(-1, n_units)
    top.set_yscale("symlog", linthresh=1.0)
    for x, up, down, color in flagged:  # at the panel's edges, where ±inf would be
        top.scatter(x[up], np.full(up.sum(), 1.0), marker="^", s=18, color=color, clip_on=False,
                    transform=top.get_xaxis_transform(), zorder=4)  # fmt: skip
        top.scatter(x[down], np.zeros(down.sum()), marker="v", s=18, color=color, clip_on=False,
                    transform=top.get_xaxis_transform(), zorder=4)  # fmt: skip
    if flagged:
        top.scatter([], [], marker="^", s=18, color="0.3", label="holds +inf (▲) / -inf or NaN (▼)")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    top.set_title(
        f"{layer}: {pair[0]} vs {pair[1]} per unit, over {n_pos:,} positions "
        f"({len(windows)} evenly spaced windows)",
        loc="left",
    )
    bottom.set_yscale("log")
    bottom.set_xlabel("value (all units pooled)")
    bottom.set_ylabel("density (log)")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _eta_squared(values: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Share of each unit's variance explained by the groups (one-way ANOVA's eta²)."""
    g = np.asarray(groups)
    total = ((values - values.mean(0)) ** 2).sum(0)
    between = np.zeros(values.shape[1])
    for label in np.unique(g):
        sel = values[g == label]
        between += len(sel) * (sel.mean(0) - values.mean(0)) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(between / total)


@themed
def separator(sep: Separator, max_units: int = 64) -> Any:
    """Every unit's value at a separator char across sequences, grouped by a sequence property.

    Columns are sequences sorted by group; rows are the units that separate the groups best
    (eta², the share of a unit's variance explained by the groups), best first. Returns the
    Figure.
    """
    import matplotlib.pyplot as plt

    with np.errstate(invalid="ignore", over="ignore"):  # ±inf: no share of variance (0)
        eta = _eta_squared(sep.values, sep.groups)
    rows = np.argsort(-eta, kind="stable")[:max_units]
    order = sorted(range(len(sep.groups)), key=lambda i: (_group_key(sep.groups[i]), i))
    v = sep.values[np.asarray(order)][:, rows].T
    if Key.parse(sep.key).is_gate:
        scale = scale_for(sep.key)
    else:
        finite = np.abs(v[np.isfinite(v)])
        m = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        scale = Scale("diverging", -m, m, "±max|finite value| shown")
    note = nonfinite_note(v, marked="")
    v = clipped(v, scale)
    fig, ax = plt.subplots(
        figsize=(min(12, 4 + 0.02 * len(order)), 2.2 + 0.12 * len(rows)), layout="constrained"
    )
    img = ax.imshow(
        v, aspect="auto", interpolation="nearest", cmap=cmap(scale.kind), vmin=scale.vmin,
        vmax=scale.vmax,
    )  # fmt: skip
    groups = [sep.groups[i] for i in order]
    edges = [i for i in range(1, len(groups)) if groups[i] != groups[i - 1]]
    for e in edges:
        ax.axvline(e - 0.5, color="black", lw=0.8)
    centers, labels = [], []
    for a, b in zip([0, *edges], [*edges, len(groups)]):
        centers.append((a + b - 1) / 2)
        labels.append(glyph(groups[a]) if len(groups[a]) == 1 else groups[a])
    ax.set_xticks(centers)
    ax.set_xticklabels(labels, family=MONO)
    ax.set_yticks(np.arange(len(rows)))
    ax.set_yticklabels(
        [f"{r} (η² {eta[r]:.2f})" for r in rows], fontsize=5 if len(rows) > 24 else 7
    )
    how = (
        "their first char"
        if sep.group_by == "first-char"
        else f"N = chars before {glyph(sep.char)!r}"
    )
    ax.set_xlabel(f"{len(groups)} sequences, grouped by {how}")
    ax.set_ylabel("unit (best-separating first)")
    ax.set_title(
        f"{sep.key} at the first {glyph(sep.char)!r} of each sequence\n{scale.describe()}{note}",
        loc="left",
    )
    fig.colorbar(img, ax=ax, fraction=0.025, pad=0.01)
    return fig


def _group_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


@themed
def probe_curve(ranking: Ranking, feature: str, ax: Any = None) -> Any:
    """The top-k probe curve of one feature: held-out metric of a probe on the k best units,
    beside its control task. Returns the Axes."""
    import matplotlib.pyplot as plt

    summary = ranking.features[feature]
    curve = summary.curve or ()
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 2.2), layout="constrained")
    labels = [str(c.k) for c in curve]
    # the last point may be "all" units: drawn at twice the largest k, labelled "all"
    numeric = [c.k for c in curve if isinstance(c.k, int)]
    top_k = max(numeric) if numeric else 1
    ks = [c.k if isinstance(c.k, int) else 2 * top_k for c in curve]
    metric = summary.probe_metric or "metric"
    nan = float("nan")
    tests = [nan if c.test_metric is None else c.test_metric for c in curve]
    controls = [nan if c.control_metric is None else c.control_metric for c in curve]
    ax.plot(ks, tests, "o-", color="#1b9e77", ms=3, label="held-out")
    ax.plot(ks, controls, "s--", color="0.5", ms=3, label="control task")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels(labels)
    ax.set_xlabel("k best units")
    ax.set_ylabel(f"held-out {metric}")
    ax.set_title(f"{feature}: probe on the top-k units", loc="left")
    ax.legend(frameon=False)
    return ax


@themed
def timescales(dynamics: Dynamics) -> Any:
    """Per layer, the number of units in each forget-gate timescale bin (``lstmprobe dynamics``:
    ``-1 / ln(mean f)`` steps; GRU: the update gate), with the median. Returns the Figure."""
    import matplotlib.pyplot as plt

    layers = dynamics.layers
    if not layers:
        from lstmprobe.errors import ReportError

        raise ReportError("the dynamics hold no layer; measure them: `gate_dynamics(store=PATH)`")
    fig, ax = plt.subplots(figsize=(5.2, 2.4), layout="constrained")
    bins = list(dict.fromkeys(b for info in layers.values() for b in info.timescales.counts or {}))
    width = 0.8 / len(layers)
    colors = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")
    for li, (layer, info) in enumerate(layers.items()):
        d = info.timescales
        counts = [(d.counts or {}).get(b, 0) for b in bins]
        x = np.arange(len(bins)) + (li - (len(layers) - 1) / 2) * width
        median = "∞" if d.median is None else f"{d.median:.3g}"
        ax.bar(
            x, counts, width=width, color=colors[li % len(colors)],
            label=f"{layer} ({info.kind}): median {median}, {d.infinite} ∞",
        )  # fmt: skip
    ax.set_xticks(np.arange(len(bins)))
    ax.set_xticklabels([_bin_label(b) for b in bins])
    ax.set_xlabel("timescale −1/ln(mean forget gate), steps")
    ax.set_ylabel("units")
    ax.set_title("Forget-gate timescales per layer", loc="left")
    ax.legend(frameon=False)
    return fig


def _bin_label(b: str) -> str:
    """``"100-1000"`` -> ``"100–1k"``, ``">=1000"`` -> ``"≥1k, ∞"``.

    Examples
    --------
    >>> _bin_label("100-1000"), _bin_label(">=1000")
    ('100–1k', '≥1k, ∞')
    """
    b = b.replace("000", "k").replace("-", "–")
    return b.replace(">=", "≥") + ", ∞" if b.startswith(">=") else b
