from __future__ import annotations

import numpy as np
import pytest

from lstmprobe.report import data, text_figures
from lstmprobe.report.colors import lut, scale_for
from lstmprobe.report.theme import glyph
from lstmprobe.store import ActivationStore


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_coloured_text_paints_each_char_by_its_value_on_the_stated_scale():
    scale = scale_for("layer0/cell", max_abs=2.0)
    ax = text_figures.colored_text("ab c", np.array([-2.0, 0.0, 2.0, 1.0]), scale, width=10)
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
        a = text_figures.unit_text(store, "layer0/cell/1", start=0, length=100)
        b = text_figures.unit_text(store, "layer0/cell/1", start=900, length=50)
        line = lambda f: f.axes[0].get_title(loc="left").splitlines()[1]  # noqa: E731
        assert line(a) == line(b)
        lo, hi = data.unit_range(store, "layer0/cell/1")
        assert f"{max(abs(lo), abs(hi)):.3g}" in line(a)


def test_internals_stack_every_quantity_of_an_lstm_and_a_gru(lstm_store, gru_store):
    with ActivationStore(lstm_store) as store:
        fig = text_figures.unit_internals(store, "layer1/hidden/2", 0, 120)
        titles = [
            ax.get_title(loc="left").split()[0] for ax in fig.axes if ax.get_title(loc="left")
        ]
        assert titles == [f"layer1/{q}/2" for q in text_figures.QUANTITY_ORDER["lstm"]]
    with ActivationStore(gru_store) as store:
        fig = text_figures.unit_internals(store, "layer0/hidden/0", 0, 80)
        titles = [
            ax.get_title(loc="left").split()[0] for ax in fig.axes if ax.get_title(loc="left")
        ]
        assert titles == [f"layer0/{q}/0" for q in text_figures.QUANTITY_ORDER["gru"]]


def test_heatmap_colours_each_cell_row_by_its_units_own_range(lstm_store):
    with ActivationStore(lstm_store) as store:
        stats = data.summarize(store)
        ax = text_figures.heatmap(store, "layer1/cell", 10, 60, stats=stats["layer1/cell"])
        assert ax.images[0].get_array().shape == (3, 60)
        assert "unit's max|value|" in ax.get_title(loc="left")
        values = store.read("layer1/cell", 10, 70) / stats["layer1/cell"].max_abs
        np.testing.assert_allclose(ax.images[0].get_array().T, values, rtol=1e-6)
        gates = text_figures.heatmap(store, "layer0/forget_gate", 0, 30)
        assert gates.images[0].get_clim() == (0.0, 1.0)  # a gate keeps its [0, 1]


def test_keep_write_stacks_the_two_terms_over_the_chars(lstm_store):
    with ActivationStore(lstm_store) as store:
        fig = text_figures.keep_write(store, "layer0/cell/1", 5, 40)
        bars, gate = fig.axes
        assert len(bars.patches) == 2 * 40  # a keep and a write bar per char
        assert [t.get_text() for t in gate.get_xticklabels()][:3] == [
            glyph(c) for c in store.read_text(5, 8)
        ]
        assert "positions 5..45" in fig.get_suptitle()
