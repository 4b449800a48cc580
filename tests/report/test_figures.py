from __future__ import annotations

import numpy as np
import pytest

from lstmprobe.errors import UnitError
from lstmprobe.report import data, figures
from lstmprobe.report.colors import lut, scale_for
from lstmprobe.store import ActivationStore


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_layout_keeps_whitespace_visible_and_code_indentation():
    cells = figures.layout("if x:\n\treturn 'a b'\n", width=40)
    glyphs = "".join(g for _, _, _, g in cells)
    assert "↵" in glyphs and "→" in glyphs and "·" in glyphs
    # after the tab, 'r' starts at the tab stop (column 4) of row 1
    r = next(c for c in cells if c[3] == "r")
    assert (r[0], r[1]) == (1, 4)


def test_coloured_text_paints_each_char_by_its_value_on_the_stated_scale():
    scale = scale_for("layer0/cell", max_abs=2.0)
    ax = figures.colored_text("ab c", np.array([-2.0, 0.0, 2.0, 1.0]), scale, width=10)
    grid = ax.images[0].get_array()
    pal = lut("diverging")
    np.testing.assert_array_equal(grid[0, 0], pal[0])  # -2: the red end
    np.testing.assert_array_equal(grid[0, 1], pal[128])  # 0.0 in the middle
    np.testing.assert_array_equal(grid[0, 2], pal[255])  # +2 (the space): the blue end
    assert "[-2, 2]" in ax.get_title(loc="left")
    shown = [t.get_text() for t in ax.texts]
    assert shown == ["a", "b", "·", "c"]


def test_one_unit_keeps_one_scale_over_different_spans(lstm_store):
    with ActivationStore(lstm_store) as store:
        a = figures.unit_text(store, "layer0/cell/1", start=0, length=100)
        b = figures.unit_text(store, "layer0/cell/1", start=900, length=50)
        line = lambda f: f.axes[0].get_title(loc="left").splitlines()[1]  # noqa: E731
        assert line(a) == line(b)
        lo, hi = data.unit_range(store, "layer0/cell/1")
        assert f"{max(abs(lo), abs(hi)):.3g}" in line(a)


def test_internals_stack_every_quantity_of_an_lstm_and_a_gru(lstm_store, gru_store):
    with ActivationStore(lstm_store) as store:
        fig = figures.unit_internals(store, "layer1/hidden/2", 0, 120)
        titles = [
            ax.get_title(loc="left").split()[0] for ax in fig.axes if ax.get_title(loc="left")
        ]
        assert titles == [f"layer1/{q}/2" for q in figures.QUANTITY_ORDER["lstm"]]
    with ActivationStore(gru_store) as store:
        fig = figures.unit_internals(store, "layer0/hidden/0", 0, 80)
        titles = [
            ax.get_title(loc="left").split()[0] for ax in fig.axes if ax.get_title(loc="left")
        ]
        assert titles == [f"layer0/{q}/0" for q in figures.QUANTITY_ORDER["gru"]]


def test_heatmap_saturation_distributions_and_separator(lstm_store, task_store):
    with ActivationStore(lstm_store) as store:
        stats = data.summarize(store)
        ax = figures.heatmap(store, "layer1/cell", 10, 60, stats=stats["layer1/cell"])
        assert ax.images[0].get_array().shape == (3, 60)
        assert "unit's max|value|" in ax.get_title(loc="left")
        fig = figures.saturation(stats)
        assert len([a for a in fig.axes if a.get_visible()]) == 6  # 2 layers x 3 gates
        assert "< 0.1" in fig.axes[0].get_xlabel()
        fig = figures.distributions(store, "layer1")
        assert "cell vs hidden" in fig.axes[0].get_title(loc="left")
    with ActivationStore(task_store) as store:
        fig = figures.separator(data.separator_values(store, "layer0/cell", "X"))
        assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["p", "q"]


def test_a_gru_has_no_gate_to_saturate_when_none_was_recorded(gru_store):
    with ActivationStore(gru_store) as store:
        stats = data.summarize(store, ["layer0/hidden"])
        with pytest.raises(UnitError, match="--quantities"):
            figures.saturation(stats)
