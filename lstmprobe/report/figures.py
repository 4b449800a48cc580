"""Figures of units: coloured text, a unit's internals, heatmaps, distributions, saturation,
states at a separator, probe curves.

Each function returns a matplotlib Figure (or draws into ``ax`` and returns the Axes); none shows
or saves anything: the command line saves, a notebook displays. matplotlib is imported inside the
functions, so importing this module stays cheap. One theme (:data:`THEME`) applies to all of them.
Colour scales come from :mod:`lstmprobe.report.colors`: every figure states its range and rule.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from lstmprobe.report.colors import GATES, Scale, cmap, lut, scale_for, text_color
from lstmprobe.report.data import (
    KeyStats,
    Separator,
    check_span,
    check_unit,
    read_unit,
    require_quantities,
    sample_values,
    sample_windows,
    summarize,
    unit_scale,
)
from lstmprobe.store import ActivationStore

F = TypeVar("F", bound=Callable[..., Any])

#: The one theme of every figure (matplotlib rc parameters, applied per figure).
THEME: dict[Any, Any] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "axes.grid": False,
    "axes.facecolor": "white",
    "axes.edgecolor": ".15",
    "figure.facecolor": "white",
    "xtick.bottom": True,
    "ytick.left": True,
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
}
MONO = "DejaVu Sans Mono"
#: Visible glyphs for whitespace and control characters (the char keeps its cell).
GLYPHS = {" ": "·", "\t": "→", "\n": "↵", "\r": "␍"}
QUANTITY_ORDER = {
    "lstm": ("cell", "hidden", "input_gate", "forget_gate", "output_gate", "candidate"),
    "gru": ("hidden", "reset_gate", "update_gate", "candidate"),
}
TAB = 4
#: Colours of the two quantities compared in :func:`distributions`.
PAIR_COLORS = ("#d95f02", "#7570b3")


def themed(func: F) -> F:
    """Run a figure function under :data:`THEME` (seaborn's "white" style, as rc parameters)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context(THEME):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def glyph(ch: str) -> str:
    """The visible glyph of a char: whitespace and control chars get a symbol.

    Examples
    --------
    >>> [glyph(c) for c in " \\t\\nx"]
    ['·', '→', '↵', 'x']
    """
    if ch in GLYPHS:
        return GLYPHS[ch]
    if ord(ch) < 32:
        return chr(0x2400 + ord(ch))
    return ch


def layout(text: str, width: int = 100) -> list[tuple[int, int, int, str]]:
    """Cells of ``text`` laid out as code: ``(row, col, index, glyph)``.

    A newline shows ``↵`` and starts a new row; a tab shows ``→`` and fills the cells up to the
    next tab stop (with the same colour); rows wrap at ``width`` columns.

    Examples
    --------
    >>> layout("a\\tb\\nc", width=10)[:3]
    [(0, 0, 0, 'a'), (0, 1, 1, '→'), (0, 2, 1, '')]
    """
    cells: list[tuple[int, int, int, str]] = []
    row = col = 0
    for i, ch in enumerate(text):
        if col >= width:
            row, col = row + 1, 0
        cells.append((row, col, i, glyph(ch)))
        col += 1
        if ch == "\t":
            while col % TAB and col < width:
                cells.append((row, col, i, ""))
                col += 1
        elif ch == "\n":
            row, col = row + 1, 0
    return cells


def _colorbar(fig: Any, ax: Any, scale: Scale, label: str = "") -> Any:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    sm = ScalarMappable(norm=Normalize(scale.vmin, scale.vmax), cmap=cmap(scale.kind))
    bar = fig.colorbar(sm, ax=ax, fraction=0.025, pad=0.01, aspect=15)
    bar.ax.tick_params(labelsize=6)
    if label:
        bar.set_label(label, fontsize=6)
    return bar


@themed
def colored_text(
    text: str,
    values: np.ndarray,
    scale: Scale,
    ax: Any = None,
    width: int = 100,
    title: str | None = None,
    start: int = 0,
    colorbar: bool = True,
) -> Any:
    """Draw ``text`` with each char's background coloured by its value; returns the Axes.

    Parameters
    ----------
    text : str
        The span's text.
    values : ndarray of shape (len(text),)
        The unit's value after reading each char.
    scale : Scale
        The unit's fixed colour scale (stated under the title).
    width : int
        Columns before a row wraps.
    start : int
        Position of the first char in the corpus (stated in the title).
    """
    import matplotlib.pyplot as plt

    values = np.asarray(values, dtype=np.float64)
    cells = layout(text, width)
    rows = (cells[-1][0] + 1) if cells else 1
    cols = min(width, max((c for _, c, _, _ in cells), default=0) + 1)
    if ax is None:
        fig, ax = plt.subplots(
            figsize=(0.085 * cols + 1.2, 0.17 * rows + 0.8), layout="constrained"
        )
    fig = ax.figure
    palette = lut(scale.kind)
    codes = np.rint(scale.normalize(values) * 255).astype(int) if len(values) else np.zeros(0, int)
    grid = np.full((rows, cols, 3), 255, dtype=np.uint8)
    ink = text_color(palette[codes]) if len(codes) else np.zeros((0, 3), np.uint8)
    for r, c, i, _ in cells:
        grid[r, c] = palette[codes[i]]
    ax.imshow(grid, aspect="auto", interpolation="nearest", extent=(0, cols, rows, 0))
    for r, c, i, g in cells:
        if not g:
            continue
        faint = text[i].isspace() or ord(text[i]) < 32
        color = ink[i] / 255.0
        ax.text(
            c + 0.5, r + 0.55, g, ha="center", va="center", family=MONO, fontsize=7,
            color=color, alpha=0.45 if faint else 1.0,
        )  # fmt: skip
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    head = title or ""
    end = start + len(text)
    ax.set_title(
        f"{head}  positions {start}..{end}\n{scale.describe()}".strip(), loc="left", fontsize=7
    )
    if colorbar:
        _colorbar(fig, ax, scale)
    return ax


@themed
def unit_text(
    store: ActivationStore,
    unit: str,
    start: int = 0,
    length: int | None = None,
    width: int = 100,
    scale: Scale | None = None,
) -> Any:
    """One unit's value over a span as coloured text; returns the Figure.

    The scale is the unit's fixed scale over the whole recording (:func:`unit_scale`).
    """
    check_unit(store, unit)
    a, b = _span(store, start, length, 600)
    scale = scale or unit_scale(store, unit)
    ax = colored_text(
        store.read_text(a, b), read_unit(store, unit, a, b), scale, width=width, title=unit, start=a
    )
    return ax.figure


def _span(store: ActivationStore, start: int, length: int | None, default: int) -> tuple[int, int]:
    """The span to show: ``length`` chars from ``start`` (checked), or by default up to
    ``default`` chars, fewer where the corpus ends."""
    if length is None and 0 <= start < store.n_positions:
        length = min(default, store.n_positions - start)
    return check_span(store, start, length)


def _layer_kind(store: ActivationStore, layer: str) -> str:
    return (
        "lstm"
        if "cell" in store.quantities(layer) or "forget_gate" in store.quantities(layer)
        else "gru"
    )


@themed
def unit_internals(
    store: ActivationStore,
    unit: str,
    start: int = 0,
    length: int | None = None,
    width: int = 100,
) -> Any:
    """A unit's cell, hidden and gates stacked over the same span, char by char (the blog's
    "all of neuron 2"); GRU: hidden, reset, update, candidate. Returns the Figure."""
    import matplotlib.pyplot as plt

    key, index = check_unit(store, unit)
    layer = key.split("/")[0]
    kind = _layer_kind(store, layer)
    wanted = QUANTITY_ORDER[kind]
    require_quantities(store, layer, wanted, "plot gates")
    a, b = _span(store, start, length, 300)
    text = store.read_text(a, b)
    rows = layout(text, width)[-1][0] + 1 if text else 1
    cols = min(width, max(c for _, c, _, _ in layout(text, width)) + 1) if text else 1
    h = 0.17 * rows + 0.45
    fig, axes = plt.subplots(
        len(wanted), 1, figsize=(0.085 * cols + 1.2, h * len(wanted) + 0.3), layout="constrained"
    )
    for ax, q in zip(np.atleast_1d(axes), wanted):
        name = f"{layer}/{q}/{index}"
        colored_text(
            text, read_unit(store, name, a, b), unit_scale(store, name), ax=ax, width=width,
            title=name, start=a,
        )  # fmt: skip
    fig.suptitle(
        f"unit {index} of {layer}: every quantity over the same text", fontsize=8, x=0.0, ha="left"
    )
    return fig


@themed
def heatmap(
    store: ActivationStore,
    key: str,
    start: int = 0,
    length: int | None = None,
    units: Sequence[int] | None = None,
    stats: KeyStats | None = None,
    ax: Any = None,
) -> Any:
    """Every unit of one dataset over a span: rows units, columns chars. Returns the Axes.

    The range is fixed for the dataset: gates [0, 1], tanh-bounded quantities [-1, 1], cells
    ±max|value| over all its units and the whole recording.
    """
    import matplotlib.pyplot as plt

    store.n_units(key)
    a, b = _span(store, start, length, 200)
    values = store.read(key, a, b, units=units)
    if key.split("/")[1] in GATES:
        scale = scale_for(key)
    else:
        stats = stats or summarize(store, [key])[key]
        m = stats.max_abs if units is None else stats.max_abs[np.asarray(units)]
        if scale_for(key, float(m.max())).rule == "tanh's range":
            scale = scale_for(key)
        else:  # each row by its unit's own fixed range, so small units stay visible
            values = values / np.where(m > 0, m, 1.0)
            scale = Scale(
                "diverging", -1.0, 1.0, "value ÷ the unit's max|value| over the whole recording"
            )
    n_units = values.shape[1]
    if ax is None:
        fig, ax = plt.subplots(
            figsize=(min(12, 2 + 0.06 * (b - a)), min(8, 1.5 + 0.03 * n_units)),
            layout="constrained",
        )
    fig = ax.figure
    img = ax.imshow(
        values.T, aspect="auto", interpolation="nearest", cmap=cmap(scale.kind),
        vmin=scale.vmin, vmax=scale.vmax, extent=(a - 0.5, b - 0.5, n_units - 0.5, -0.5),
    )  # fmt: skip
    text = store.read_text(a, b)
    if b - a <= 120:
        ax.set_xticks(np.arange(a, b))
        ax.set_xticklabels([glyph(c) for c in text], family=MONO, fontsize=6)
        ax.set_xlabel(f"chars at positions {a}..{b}")
    else:
        ax.set_xlabel("position")
    labels = list(units) if units is not None else list(range(n_units))
    if n_units <= 40:
        ax.set_yticks(np.arange(n_units))
        ax.set_yticklabels(labels)
    ax.set_ylabel("unit")
    ax.set_title(f"{key}: all {n_units} units\n{scale.describe()}", loc="left")
    fig.colorbar(img, ax=ax, fraction=0.025, pad=0.01)
    return ax


@themed
def saturation(stats: dict[str, KeyStats], layers: Sequence[str] | None = None) -> Any:
    """Gate saturation per layer and gate (Karpathy, Johnson & Fei-Fei 2015): each unit's
    fraction of positions left-saturated (< 0.1) against right-saturated (> 0.9). Returns the
    Figure."""
    import matplotlib.pyplot as plt

    gates = [k for k in stats if k.split("/")[1] in GATES]
    if layers is not None:
        gates = [k for k in gates if k.split("/")[0] in layers]
    if not gates:
        from lstmprobe.errors import UnitError

        raise UnitError(
            "plot saturation needs gates (input_gate, forget_gate, output_gate or reset_gate, "
            "update_gate); record them with --quantities input_gate,forget_gate,output_gate,"
            "candidate,cell,hidden"
        )
    by_layer: dict[str, list[str]] = {}
    for k in gates:
        by_layer.setdefault(k.split("/")[0], []).append(k)
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
    Returns the Figure."""
    import matplotlib.pyplot as plt

    layer = layer or store.layers[0]
    have = store.quantities(layer)
    pair = ("cell", "hidden") if "cell" in have or _layer_kind(store, layer) == "lstm" else (
        "candidate", "hidden",
    )  # fmt: skip
    require_quantities(store, layer, pair, "plot distributions")
    windows = windows or sample_windows(store.n_positions)
    n_pos = sum(b - a for a, b in windows)
    data = [sample_values(store, f"{layer}/{q}", windows) for q in pair]
    n_units = data[0].shape[1]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(min(12, 3 + 0.06 * n_units), 4.6), layout="constrained",
        gridspec_kw={"height_ratios": [1.4, 1]},
    )  # fmt: skip
    x = np.arange(n_units)
    for j, (q, v, color) in enumerate(zip(pair, data, PAIR_COLORS)):
        off = (j - 0.5) * 0.35
        q05, q25, q50, q75, q95 = np.percentile(v, [5, 25, 50, 75, 95], axis=0)
        top.vlines(x + off, q05, q95, color=color, lw=0.6, alpha=0.6)
        top.vlines(x + off, q25, q75, color=color, lw=2.0, label=f"{q} (5–95%, 25–75%, median)")
        top.scatter(x + off, q50, s=3, color="black", zorder=3)
        bottom.hist(
            v.ravel(), bins=120, histtype="step", density=True, color=color,
            label=f"{q}: std {v.std():.2f}",
        )  # fmt: skip
    top.axhline(0, color="0.7", lw=0.6, zorder=0)
    top.set_xlabel("unit")
    top.set_ylabel("value (symlog)")
    top.set_xlim(-1, n_units)
    top.legend(loc="upper right", frameon=False)
    top.set_title(
        f"{layer}: {pair[0]} vs {pair[1]} per unit, over {n_pos:,} positions "
        f"({len(windows)} evenly spaced windows)",
        loc="left",
    )
    top.set_yscale("symlog", linthresh=1.0)
    bottom.set_yscale("log")
    bottom.set_xlabel("value (all units pooled)")
    bottom.set_ylabel("density (log)")
    bottom.legend(frameon=False)
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

    eta = _eta_squared(sep.values, sep.groups)
    rows = np.argsort(-eta, kind="stable")[:max_units]
    order = sorted(range(len(sep.groups)), key=lambda i: (_group_key(sep.groups[i]), i))
    v = sep.values[np.asarray(order)][:, rows].T
    if sep.key.split("/")[1] in GATES:
        scale = scale_for(sep.key)
    else:
        m = float(np.abs(v).max()) or 1.0
        scale = Scale("diverging", -m, m, "±max|value| shown")
    fig, ax = plt.subplots(
        figsize=(min(12, 3 + 0.02 * len(order)), 1.2 + 0.12 * len(rows)), layout="constrained"
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
        f"{sep.key} at the first {glyph(sep.char)!r} of each sequence\n{scale.describe()}",
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
def probe_curve(ranking: Any, feature: str, ax: Any = None) -> Any:
    """The top-k probe curve of one feature: held-out metric of a probe on the k best units,
    beside its control task. Returns the Axes."""
    import matplotlib.pyplot as plt

    summary = ranking.features[feature]
    curve = summary.get("curve") or []
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2, 2.2), layout="constrained")
    labels = [str(c["k"]) for c in curve]
    # the last point may be "all" units: drawn at twice the largest k, labelled "all"
    numeric = [c["k"] for c in curve if isinstance(c["k"], (int, float))]
    top_k = max(numeric) if numeric else 1
    ks = [c["k"] if isinstance(c["k"], (int, float)) else 2 * top_k for c in curve]
    metric = summary.get("probe_metric", "metric")
    ax.plot(
        ks, [c.get("test_metric") for c in curve], "o-", color="#1b9e77", ms=3, label="held-out"
    )
    ax.plot(
        ks, [c.get("control_metric") for c in curve], "s--", color="0.5", ms=3, label="control task"
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks)
    ax.set_xticklabels(labels)
    ax.set_xlabel("k best units")
    ax.set_ylabel(f"held-out {metric}")
    ax.set_title(f"{feature}: probe on the top-k units", loc="left")
    ax.legend(frameon=False)
    return ax


@themed
def timescales(dynamics: dict[str, Any]) -> Any:
    """Per layer, the number of units in each forget-gate timescale bin (``lstmprobe dynamics``:
    ``-1 / ln(mean f)`` steps; GRU: the update gate), with the median. Returns the Figure."""
    import matplotlib.pyplot as plt

    layers = dynamics.get("layers") or {}
    if not layers:
        from lstmprobe.errors import ReportError

        raise ReportError("the dynamics hold no layer; run `lstmprobe dynamics` on a recording")
    fig, ax = plt.subplots(figsize=(5.2, 2.4), layout="constrained")
    bins = list(next(iter(layers.values()))["timescales"]["counts"])
    width = 0.8 / len(layers)
    colors = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")
    for li, (layer, info) in enumerate(layers.items()):
        d = info["timescales"]
        counts = [d["counts"].get(b, 0) for b in bins]
        x = np.arange(len(bins)) + (li - (len(layers) - 1) / 2) * width
        median = "∞" if d.get("median") is None else f"{d['median']:.3g}"
        ax.bar(
            x, counts, width=width, color=colors[li % len(colors)],
            label=f"{layer} ({info.get('kind', '')}): median {median}, {d.get('infinite', 0)} ∞",
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


@themed
def keep_write(store: ActivationStore, unit: str, start: int = 0, length: int | None = None) -> Any:
    """A unit's state after each char split into what was kept, ``f ⊙ c(t−1)``, and what was
    written, ``i ⊙ g`` (GRU: ``z ⊙ h(t−1)`` and ``(1 − z) ⊙ n``), stacked so each bar ends at
    the new state; below, the keep gate. Returns the Figure."""
    import matplotlib.pyplot as plt

    from lstmprobe.report.keep_write import keep_write as terms

    a, b = _span(store, start, length, 100)
    kw = terms(store, unit, a, b)
    x = np.arange(a, b)
    n = b - a
    fig, (ax, gx) = plt.subplots(
        2, 1, figsize=(min(16.0, 1.6 + 0.11 * n), 3.2), sharex=True,
        gridspec_kw={"height_ratios": (3, 1)}, layout="constrained",
    )  # fmt: skip
    keep_name, write_name = ("keep f⊙c(t−1)", "write i⊙g") if kw.kind == "lstm" else (
        "keep z⊙h(t−1)", "write (1−z)⊙n")  # fmt: skip
    ax.bar(x, kw.keep, width=0.85, color=PAIR_COLORS[1], label=keep_name)
    ax.bar(x, kw.write, width=0.85, bottom=kw.keep, color=PAIR_COLORS[0], label=write_name)
    state = "c(t)" if kw.kind == "lstm" else "h(t)"
    ax.plot(x, kw.state, ".", color="k", ms=3, label=f"{state} = keep + write")
    ax.axhline(0, color=".4", lw=0.5)
    ax.set_ylabel("value")
    ax.legend(frameon=False, ncol=3, loc="lower left", bbox_to_anchor=(0, 1.0), borderaxespad=0)
    fig.suptitle(f"{kw.unit}: keep vs write, positions {a}..{b}", fontsize=8, x=0.01, ha="left")
    gx.plot(x, kw.keep_gate, "-", color="#1b9e77", lw=1)
    gx.set_ylim(0, 1)
    gx.set_ylabel("f" if kw.kind == "lstm" else "z")
    if n <= 160:
        gx.set_xticks(x)
        gx.set_xticklabels([glyph(c) for c in kw.text], family=MONO, fontsize=6)
        gx.set_xlabel(f"chars at positions {a}..{b}")
    else:
        gx.set_xlabel("position")
    return fig
