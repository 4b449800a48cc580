"""Figures of a span of text: one unit's value char by char (coloured text), a unit's every
quantity stacked, every unit of a dataset (heatmap), a state's keep vs write.

Each function returns a matplotlib Figure (or draws into ``ax`` and returns the Axes); the colour
of a unit comes from its fixed scale over the whole recording (:mod:`lstmprobe.report.colors`),
stated in the title.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np

from lstmprobe.names import Key
from lstmprobe.report.colors import (
    MISSING_RGB,
    Range,
    Scale,
    clipped,
    cmap,
    code_palette,
    nonfinite_note,
    norm,
    scale_for,
    text_color,
)
from lstmprobe.report.data import (
    KeyStats,
    check_unit,
    default_span,
    layer_kind,
    read_unit,
    require_quantities,
    summarize,
    unit_scale,
)
from lstmprobe.report.theme import (
    MONO,
    PAIR_COLORS,
    add_colorbar,
    glyph,
    grid_shape,
    layout,
    themed,
)
from lstmprobe.store import ActivationStore

#: The quantities of a unit that :func:`unit_internals` stacks, top to bottom.
QUANTITY_ORDER = {
    "lstm": ("cell", "hidden", "input_gate", "forget_gate", "output_gate", "candidate"),
    "gru": ("hidden", "reset_gate", "update_gate", "candidate"),
}


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
    from matplotlib.patches import Rectangle

    values = np.asarray(values, dtype=np.float64)
    cells = layout(text, width)
    rows, cols = grid_shape(cells, width)
    if ax is None:
        fig, ax = plt.subplots(
            figsize=(0.085 * cols + 1.2, 0.17 * rows + 0.8), layout="constrained"
        )
    fig = ax.figure
    palette = code_palette(scale.kind)
    missing = np.isnan(values)  # drawn grey; ±inf at the ends of the scale, outlined
    infinite = np.isinf(values)
    codes = scale.quantize(values).astype(int) if len(values) else np.zeros(0, int)
    colors = palette[codes] if len(codes) else np.zeros((0, 3), np.uint8)
    colors[missing] = MISSING_RGB
    # finite values beyond the range (an infinite one is outlined instead)
    outside = np.where(infinite, 0, scale.beyond(values)) if len(values) else np.zeros(0, np.int8)
    grid = np.full((rows, cols, 3), 255, dtype=np.uint8)
    ink = text_color(colors) if len(codes) else np.zeros((0, 3), np.uint8)
    for r, c, i, _ in cells:
        grid[r, c] = colors[i]
    ax.imshow(grid, aspect="auto", interpolation="nearest", extent=(0, cols, rows, 0))
    for r, c, i, _ in cells:
        if infinite[i]:
            ax.add_patch(
                Rectangle((c + 0.06, r + 0.06), 0.88, 0.88, fill=False, lw=0.8, ec="black")
            )
    marked = set()
    for r, c, i, g in cells:
        if outside[i] and i not in marked:  # beyond the range: a small triangle in the corner
            marked.add(i)
            ax.plot(
                c + 0.84, r + 0.2, "^" if outside[i] > 0 else "v", ms=2.2, mew=0,
                color=ink[i] / 255.0,
            )  # fmt: skip
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
    n_up, n_down = int((outside > 0).sum()), int((outside < 0).sum())
    note = (
        f"here {n_up + n_down} char(s) beyond it, marked ▴ above / ▾ below" if n_up + n_down else ""
    )
    lines = textwrap.wrap(
        (f"{scale.describe()}; {note}" if note else scale.describe()) + nonfinite_note(values),
        max(60, int(cols * 1.15)),
    )
    ax.set_title(
        "\n".join([f"{head}  positions {start}..{end}".strip(), *lines]), loc="left", fontsize=7
    )
    if colorbar:
        add_colorbar(fig, ax, scale, beyond=bool(n_up + n_down))
    return ax


@themed
def unit_text(
    store: ActivationStore,
    unit: str,
    start: int = 0,
    length: int | None = None,
    width: int = 100,
    scale: Scale | None = None,
    rng: Range | str | None = None,
) -> Any:
    """One unit's value over a span as coloured text; returns the Figure.

    The scale is the unit's fixed scale over the whole recording (:func:`unit_scale`, its
    range chosen by ``rng``: ``p99`` by default, ``max``, ``pNN`` or ``LO,HI``).
    """
    check_unit(store, unit)
    a, b = default_span(store, start, length, 600)
    return _unit_span(store, unit, store.read_text(a, b), a, width, scale=scale, rng=rng).figure


def _unit_span(
    store: ActivationStore,
    unit: str,
    text: str,
    start: int,
    width: int,
    ax: Any = None,
    scale: Scale | None = None,
    rng: Range | str | None = None,
) -> Any:
    """Draw one unit over ``text`` (the corpus from ``start``) on its fixed scale; the Axes."""
    values = read_unit(store, unit, start, start + len(text))
    scale = scale or unit_scale(store, unit, rng)
    return colored_text(text, values, scale, ax=ax, width=width, title=unit, start=start)


@themed
def unit_internals(
    store: ActivationStore,
    unit: str,
    start: int = 0,
    length: int | None = None,
    width: int = 100,
    rng: Range | str | None = None,
) -> Any:
    """A unit's cell, hidden and gates stacked over the same span, char by char (the blog's
    "all of neuron 2"); GRU: hidden, reset, update, candidate. Each on its own fixed scale
    (``rng``: how the ranges of cell, hidden and candidate are chosen). Returns the Figure."""
    import matplotlib.pyplot as plt

    key, index = check_unit(store, unit)
    layer = Key.parse(key).layer_name
    kind = layer_kind(store, layer)
    wanted = QUANTITY_ORDER[kind]
    require_quantities(store, layer, wanted, "plot gates")
    a, b = default_span(store, start, length, 300)
    text = store.read_text(a, b)
    rows, cols = grid_shape(layout(text, width), width)
    h = 0.17 * rows + 0.45
    fig, axes = plt.subplots(
        len(wanted), 1, figsize=(0.085 * cols + 1.2, h * len(wanted) + 0.3), layout="constrained"
    )
    for ax, q in zip(np.atleast_1d(axes), wanted):
        _unit_span(store, f"{layer}/{q}/{index}", text, a, width, ax=ax, rng=rng)
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
    rng: Range | str | None = None,
) -> Any:
    """Every unit of one dataset over a span: rows units, columns chars. Returns the Axes.

    Each row is fixed over the whole recording: gates on [0, 1]; other quantities divided by
    their unit's own range (``rng``: its 99th percentile of ``|value|`` by default, ``max``,
    ``pNN``), so small units stay visible, values beyond drawn at the end colour; ``LO,HI``
    colours every row on that range.
    """
    import matplotlib.pyplot as plt

    rng = Range.parse(rng)
    store.n_units(key)
    a, b = default_span(store, start, length, 200)
    values = store.read(key, a, b, units=units)
    if Key.parse(key).is_gate or rng.how == "given":
        scale = scale_for(key, rng=rng)
    else:
        stats = stats or summarize(store, [key])[key]
        idx = range(store.n_units(key)) if units is None else units
        scales = [stats.scale(int(i), rng) for i in idx]
        if all(sc.rule == "tanh's range" for sc in scales):
            scale = scales[0]
        else:  # each row by its unit's own fixed range, so small units stay visible
            top = np.array([sc.vmax for sc in scales])
            bottom = np.array([-sc.vmin for sc in scales])
            values = np.where(values >= 0, values / top, values / bottom)
            scale = Scale(
                "diverging", -1.0, 1.0,
                f"value ÷ its unit's range end on its side of 0 ({scales[0].rule})",
            )  # fmt: skip
    n_units = values.shape[1]
    if ax is None:
        fig, ax = plt.subplots(
            figsize=(min(12, 2 + 0.06 * (b - a)), min(8, 2.2 + 0.1 * n_units)),  # rows readable
            layout="constrained",
        )
    fig = ax.figure
    note = nonfinite_note(values, marked="")
    img = ax.imshow(
        clipped(values, scale).T, aspect="auto", interpolation="nearest", cmap=cmap(scale.kind),
        norm=norm(scale), extent=(a - 0.5, b - 0.5, n_units - 0.5, -0.5),
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
    wide = max(60, int(ax.get_position().width * fig.get_size_inches()[0] * 14))  # chars
    lines = textwrap.wrap(f"{scale.describe()}{note}", wide)  # the figure keeps its width
    ax.set_title("\n".join([f"{key}: all {n_units} units", *lines]), loc="left")
    beyond = bool(np.any(scale.beyond(values[np.isfinite(values)])))
    fig.colorbar(img, ax=ax, fraction=0.025, pad=0.01, extend="both" if beyond else "neither")
    return ax


@themed
def keep_write(store: ActivationStore, unit: str, start: int = 0, length: int | None = None) -> Any:
    """A unit's state after each char split into what was kept, ``f ⊙ c(t−1)``, and what was
    written, ``i ⊙ g`` (GRU: ``z ⊙ h(t−1)`` and ``(1 − z) ⊙ n``), stacked so each bar ends at
    the new state; below, the keep gate. Returns the Figure."""
    import matplotlib.pyplot as plt

    from lstmprobe.report.keep_write import keep_write as terms

    a, b = default_span(store, start, length, 100)
    kw = terms(store, unit, a, b)
    x = np.arange(a, b)
    n = b - a
    fig, (ax, gx) = plt.subplots(
        2, 1, figsize=(min(16.0, 1.6 + 0.11 * n), 3.2), sharex=True,
        gridspec_kw={"height_ratios": (3, 1)}, layout="constrained",
    )  # fmt: skip
    keep_name, write_name = ("keep f⊙c(t−1)", "write i⊙g") if kw.kind == "lstm" else (
        "keep z⊙h(t−1)", "write (1−z)⊙n")  # fmt: skip
    terms = np.stack([kw.keep, kw.write, kw.state])
    bad = ~np.isfinite(terms).all(axis=0)  # a float16 overflow: clipped to the finite range, marked
    finite = terms[np.isfinite(terms)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    keep, write, state_v = np.clip(np.nan_to_num(terms, nan=0.0, posinf=hi, neginf=lo), lo, hi)
    ax.bar(x, keep, width=0.85, color=PAIR_COLORS[1], label=keep_name)
    ax.bar(x, write, width=0.85, bottom=keep, color=PAIR_COLORS[0], label=write_name)
    state = "c(t)" if kw.kind == "lstm" else "h(t)"
    ax.plot(x, state_v, ".", color="k", ms=3, label=f"{state} = keep + write")
    if bad.any():
        ax.scatter(x[bad], np.ones(int(bad.sum())), marker="v", s=14, color="black", zorder=4,
                   transform=ax.get_xaxis_transform(), clip_on=False,
                   label=f"not finite (±inf, NaN) at {int(bad.sum())} chars: clipped")  # fmt: skip
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
