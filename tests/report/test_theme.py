from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstmprobe.report.colors import scale_for
from lstmprobe.report.theme import THEME, add_colorbar, glyph, grid_shape, layout, themed


def test_layout_keeps_whitespace_visible_and_code_indentation():
    cells = layout("if x:\n\treturn 'a b'\n", width=40)
    glyphs = "".join(g for _, _, _, g in cells)
    assert "↵" in glyphs and "→" in glyphs and "·" in glyphs
    # after the tab, 'r' starts at the tab stop (column 4) of row 1
    r = next(c for c in cells if c[3] == "r")
    assert (r[0], r[1]) == (1, 4)


def test_rows_wrap_at_the_width_and_the_grid_holds_every_cell():
    cells = layout("x" * 25 + "\nab", width=10)
    assert grid_shape(cells, 10) == (4, 10)  # 10 + 10 + 5, then "ab" on a new row
    assert max(c for _, c, _, _ in cells) < 10
    assert grid_shape(layout("a\tb", width=3), 3) == (2, 3)  # the tab fills up to the width
    assert [glyph(c) for c in "\x01\r"] == ["\u2401", "␍"]


def test_figures_draw_under_the_theme_and_leave_the_defaults_alone():
    import matplotlib
    import matplotlib.pyplot as plt

    before = matplotlib.rcParams["font.size"]

    @themed
    def draw():
        fig, ax = plt.subplots()
        bar = add_colorbar(fig, ax, scale_for("layer0/cell", 3.0), label="value")
        return fig, bar, matplotlib.rcParams["font.size"]

    fig, bar, inside = draw()
    assert inside == THEME["font.size"]
    assert matplotlib.rcParams["font.size"] == before
    np.testing.assert_allclose(bar.mappable.get_clim(), (-3.0, 3.0))
    assert bar.ax.get_ylabel() == "value"
    plt.close(fig)


@pytest.mark.slow
def test_a_notebook_shows_the_figures_of_every_cell(tmp_path) -> None:
    """In Jupyter the first figure sets the inline backend up, which turns interactive mode on;
    the theme must leave it on, or no cell after the first shows its figures (it did not:
    ``matplotlib.rc_context`` restored every parameter, interactive mode included)."""
    import os

    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[2]
    draw = (
        "from lstmprobe.report.theme import themed\n"
        "@themed\n"
        "def draw():\n"
        "    import matplotlib.pyplot as plt\n"
        "    return plt.subplots(figsize=(1, 1))[0]\n"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(draw),
        *(nbformat.v4.new_code_cell("draw();") for _ in range(3)),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    NotebookClient(nb, timeout=120, kernel_name="python3").execute(env=env, cwd=str(tmp_path))
    shown = [sum("image/png" in o.get("data", {}) for o in c.outputs) for c in nb.cells[1:]]
    assert shown == [1, 1, 1]
