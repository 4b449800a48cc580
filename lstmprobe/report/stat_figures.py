"""Figures of statistics over a whole recording or a ranking: gate saturation, cell vs hidden
distributions, every unit at a separator char, a probe's top-k curve, forget-gate timescales.

Each function returns a matplotlib Figure (or draws into ``ax`` and returns the Axes).
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from lstmprobe.names import Key
from lstmprobe.probes.ranking import Ranking
from lstmprobe.report.colors import Range, Scale, clipped, cmap, nonfinite_note, norm, scale_for
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


#: Positions per unit the boxes of :func:`distributions` are drawn from, and units shown.
BOX_POSITIONS = 2000
BOX_UNITS = 128
#: Up to this many units, cell and hidden boxes stand side by side in one panel.
SIDE_BY_SIDE = 32


@themed
def distributions(
    store: ActivationStore,
    layer: str | None = None,
    windows: list[tuple[int, int]] | None = None,
) -> Any:
    """Per-unit distributions of cell vs hidden ("hidden is a sharper cell"); GRU: candidate vs
    hidden. Boxes per unit (25–75%, whiskers 5–95%, seaborn) over evenly spaced windows of the
    recording -- side by side for up to :data:`SIDE_BY_SIDE` units, else one panel each -- and
    the values of all units pooled below. Values that are not finite (±inf,
    NaN) are left out and counted. With a projected LSTM (``proj_size``) hidden has other units
    than cell: each gets its own panel. Returns the Figure."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    layer = layer or store.layers[0]
    have = store.quantities(layer)
    pair = ("cell", "hidden") if "cell" in have or layer_kind(store, layer) == "lstm" else (
        "candidate", "hidden",
    )  # fmt: skip
    require_quantities(store, layer, pair, "plot distributions")
    windows = windows or sample_windows(store.n_positions)
    n_pos = sum(b - a for a, b in windows)
    data = [sample_values(store, f"{layer}/{q}", windows).astype(np.float64) for q in pair]
    left_out = sum(int((~np.isfinite(v)).sum()) for v in data)
    rows = np.unique(np.linspace(0, n_pos - 1, min(n_pos, BOX_POSITIONS)).astype(int))
    widths = [v.shape[1] for v in data]
    # side by side per unit when few; else one panel each, so that the bounded quantity keeps a
    # readable axis beside cells that reach ±50
    shared = widths[0] == widths[1] and widths[0] <= SIDE_BY_SIDE
    panels = [list(pair)] if shared else [[q] for q in pair]
    n_units = max(widths)
    shown = min(n_units, BOX_UNITS)
    fig, axes = plt.subplots(
        len(panels) + 1, 1, figsize=(min(14, 6 + 0.09 * shown * (2 if shared else 1)),
                                     2.6 * len(panels) + 2.2),
        layout="constrained", squeeze=False,
    )  # fmt: skip
    colors: dict[str, str] = dict(zip(pair, PAIR_COLORS))
    long = []
    for q, v in zip(pair, data):
        sub = v[rows][:, :shown]
        unit = np.broadcast_to(np.arange(sub.shape[1]), sub.shape)
        keep = np.isfinite(sub)
        long.append(pd.DataFrame({"unit": unit[keep], "value": sub[keep], "quantity": q}))
    df = pd.concat(long, ignore_index=True)
    for ax, qs in zip(axes[:-1, 0], panels):
        part = pd.DataFrame(df[df["quantity"].isin(qs)])
        with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11 a deprecated vert=
            warnings.filterwarnings("ignore", message="vert: bool", category=DeprecationWarning)
            sns.boxplot(
                data=part, x="unit", y="value", hue="quantity", hue_order=qs, whis=(5, 95),
                showfliers=False, width=0.8, linewidth=0.6, palette=[colors[q] for q in qs], ax=ax,
            )  # fmt: skip
        ax.axhline(0, color="0.7", lw=0.6, zorder=0)
        ax.set_xlabel(f"unit of {layer}/{qs[0]}" if len(qs) == 1 else "unit")
        ax.set_ylabel("value")
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=6,
                  title="box 25–75%,\nwhiskers 5–95%", title_fontsize=6)  # fmt: skip
        ticks = ax.get_xticks()
        step = max(1, len(ticks) // 40)
        ax.set_xticks(ticks[::step])
        ax.set_xticklabels([str(int(t)) for t in ticks[::step]])
    more = f"; units 0..{shown - 1} of {n_units} shown" if shown < n_units else ""
    bad = f"; {left_out:,} non-finite values left out" if left_out else ""
    proj = (
        f" (projected: {widths[1]} hidden units, {widths[0]} cells)"
        if widths[0] != widths[1]
        else ""
    )
    title = (
        f"{layer}: {pair[0]} vs {pair[1]} per unit{proj}, {len(rows):,} of {n_pos:,} sampled "
        f"positions ({len(windows)} evenly spaced windows){more}{bad}"
    )
    wide = int(fig.get_size_inches()[0] * 12)  # chars: the title keeps to the figure's width
    axes[0, 0].set_title("\n".join(textwrap.wrap(title, wide)), loc="left")
    pooled = axes[-1, 0]
    everything = []
    for q, v in zip(pair, data):
        finite = v[np.isfinite(v)]
        everything.append(pd.DataFrame({"value": finite, "quantity": f"{q}: sd {finite.std():.2f}"
                                        if finite.size else q}))  # fmt: skip
    pool = pd.concat(everything, ignore_index=True)
    sns.histplot(
        data=pool, x="value", hue="quantity", element="step", fill=False, stat="density",
        common_norm=False, bins=120, palette=list(PAIR_COLORS), ax=pooled,
    )  # fmt: skip
    pooled.set_yscale("log")
    pooled.set_xlabel(f"value (all units pooled, all {n_pos:,} sampled positions)")
    pooled.set_ylabel("density (log)")
    legend = pooled.get_legend()
    if legend is not None:
        legend.set_frame_on(False)
        legend.set_bbox_to_anchor((1.0, 1.0))
        legend.set_loc("upper left")
    return fig


def _eta_squared(values: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Share of each unit's variance explained by the groups (one-way ANOVA's eta²), over its
    finite values (NaN and ±inf left out); 0 for a unit without spread."""
    g = np.asarray(groups)
    v = np.where(np.isfinite(values), values, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN unit or group
        mean = np.nanmean(v, 0)
        total = np.nansum((v - mean) ** 2, 0)
        between = np.zeros(v.shape[1])
        for label in np.unique(g):
            sel = v[g == label]
            n = np.sum(np.isfinite(sel), 0)
            between += np.where(n > 0, n * (np.nanmean(sel, 0) - mean) ** 2, 0.0)
        return np.nan_to_num(between / total)


def _separator_scale(sep: Separator, v: np.ndarray, rng: Range | str | None) -> Scale:
    """The colour range of the values shown (every unit alike): gates [0, 1], ``LO,HI`` as
    given, ``max`` ±max|value|, ``pNN`` each side's NN-th percentile of |value| there."""
    rng = Range.parse(rng)
    if Key.parse(sep.key).is_gate or rng.how == "given":
        return scale_for(sep.key, rng=rng)
    finite = v[np.isfinite(v)]
    big = float(np.abs(finite).max()) if finite.size else 1.0
    if rng.how == "max":
        m = big or 1.0
        return Scale("diverging", -m, m, "±max|value| shown")
    sides = [np.abs(finite[finite < 0]), finite[finite >= 0]]
    below, above = (float(np.percentile(x, rng.percentile)) if x.size else 0.0 for x in sides)
    scale = scale_for(sep.key, big, rng=rng, level=(below, above))
    return Scale(scale.kind, scale.vmin, scale.vmax, scale.rule.replace(
        "this unit's |values| there over the whole recording", "the |values| shown on that side"
    ))  # fmt: skip


@themed
def separator(
    sep: Separator, max_units: int = 64, strips: int = 4, rng: Range | str | None = None
) -> Any:
    """Every unit's value at a separator char across sequences, grouped by a sequence property.

    Top: columns are sequences sorted by group; rows are the units that separate the groups
    best (eta², the share of a unit's variance explained by the groups; ties by the spread of
    the unit's values), best first. Below:
    the ``strips`` best units' values per group, one dot per sequence (seaborn). Values that
    are not finite are left out of both and counted. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    with np.errstate(invalid="ignore", over="ignore"):  # ±inf: no share of variance (0)
        eta = _eta_squared(sep.values, sep.groups)
    # ties (every unit at 1.00 on a counter) go to the unit whose value moves most between groups
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        finite = np.where(np.isfinite(sep.values), sep.values, np.nan)
        spread = np.nan_to_num(np.nanstd(finite, 0))
    rows = np.lexsort((-spread, -np.round(eta, 4)))[:max_units]
    order = sorted(range(len(sep.groups)), key=lambda i: (_group_key(sep.groups[i]), i))
    v = sep.values[np.asarray(order)][:, rows].T
    scale = _separator_scale(sep, np.where(np.isfinite(v), v, np.nan), rng)
    note = nonfinite_note(v, marked="")
    shown = clipped(v, scale)  # ±inf at the ends of the scale, NaN grey
    best = [int(r) for r in rows[: max(0, strips)]]
    heat_h = 1.6 + 0.12 * len(rows)  # inches: title, ticks and labels, then a row per unit
    width = min(12, 5.5 + 0.02 * len(order))
    fig, (ax, sx) = plt.subplots(
        2, 1, figsize=(width, heat_h + 2.6),
        layout="constrained", gridspec_kw={"height_ratios": (heat_h, 2.6)},
    )  # fmt: skip
    img = ax.imshow(
        shown, aspect="auto", interpolation="nearest", cmap=cmap(scale.kind), norm=norm(scale),
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
    if sep.group_by == "first-char":
        how = "their first char"
    elif sep.group_by == "count":
        how = f"N = chars before {glyph(sep.char)!r}"
    else:
        how = f"{sep.group_by} at the {glyph(sep.char)!r}"
    ax.set_xlabel(f"{len(groups)} sequences, grouped by {how}")
    ax.set_ylabel("unit (best-separating first)")
    head = f"{sep.key} at the first {glyph(sep.char)!r} of each sequence{note}"
    wide = int(width * 13)  # chars: the title keeps to the figure's width
    ax.set_title("\n".join([*textwrap.wrap(head, wide), *textwrap.wrap(scale.describe(), wide)]),
                 loc="left")  # fmt: skip
    beyond = bool(np.any(scale.beyond(np.nan_to_num(shown))))
    fig.colorbar(img, ax=ax, fraction=0.025, pad=0.01, extend="both" if beyond else "neither")
    records = [
        {"group": labels[edges_index(edges, i)], "unit": f"{r} (η² {eta[r]:.2f})", "value": x}
        for r in best
        for i, x in enumerate(sep.values[np.asarray(order)][:, r])
        if np.isfinite(x)
    ]
    if records:
        df = pd.DataFrame(records)
        sns.stripplot(
            data=df, x="group", y="value", hue="unit", order=labels, dodge=True, size=2.5,
            jitter=0.25, alpha=0.7, ax=sx, palette="Dark2",
        )  # fmt: skip
        sx.axhline(0, color="0.7", lw=0.6, zorder=0)
        sx.legend(frameon=False, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        sx.set_xticks(range(len(labels)))
        sx.set_xticklabels(labels, family=MONO)
    sx.set_xlabel(f"group ({how})")
    sx.set_ylabel("value at the separator")
    sx.set_title(f"the {len(best)} best-separating units, one dot per sequence", loc="left")
    return fig


def edges_index(edges: list[int], i: int) -> int:
    """Which group (between ``edges``) column ``i`` falls in.

    Examples
    --------
    >>> edges_index([2, 5], 0), edges_index([2, 5], 2), edges_index([2, 5], 9)
    (0, 1, 2)
    """
    return int(np.searchsorted(np.asarray(edges), i, side="right"))


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
