"""The look shared by every figure: one matplotlib theme, the glyphs of whitespace and the layout
of text as code, the colour bar.

matplotlib is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from lstmprobe.report.colors import Scale, cmap, norm

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
TAB = 4
#: Colours of the two quantities compared in :func:`distributions`.
PAIR_COLORS = ("#d95f02", "#7570b3")


def themed(func: F) -> F:
    """Run a figure function under :data:`THEME` (seaborn's "white" style, as rc parameters)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        # Only the theme's own parameters are set and restored. (matplotlib.rc_context restores
        # every parameter: when the first figure of a Jupyter session sets the inline backend
        # up inside it, the interactive mode that set-up turns on was turned off again on the
        # way out, and no later cell showed its figures.)
        params = matplotlib.rcParams
        saved = {key: params[key] for key in THEME}
        params.update(THEME)
        try:
            return func(*args, **kwargs)
        finally:
            params.update(saved)

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


def add_colorbar(fig: Any, ax: Any, scale: Scale, label: str = "", beyond: bool = False) -> Any:
    """A colour bar of ``scale`` beside ``ax`` (small ticks, an optional label, arrows at
    both ends when values lie ``beyond`` its range); returns it."""
    from matplotlib.cm import ScalarMappable

    sm = ScalarMappable(norm=norm(scale), cmap=cmap(scale.kind))
    extend = "both" if beyond else "neither"
    bar = fig.colorbar(sm, ax=ax, fraction=0.025, pad=0.01, aspect=15, extend=extend)
    bar.ax.tick_params(labelsize=6)
    if label:
        bar.set_label(label, fontsize=6)
    return bar


def grid_shape(cells: list[tuple[int, int, int, str]], width: int) -> tuple[int, int]:
    """``(rows, columns)`` that the :func:`layout` of a text fills (at least one of each).

    Examples
    --------
    >>> grid_shape(layout("ab\\ncde"), width=100), grid_shape(layout(""), width=100)
    ((2, 3), (1, 1))
    """
    rows = (cells[-1][0] + 1) if cells else 1
    cols = min(width, max((c for _, c, _, _ in cells), default=0) + 1)
    return rows, cols
