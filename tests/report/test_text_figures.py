from __future__ import annotations

import numpy as np
import pytest

from lstmprobe.report import data, text_figures
from lstmprobe.report.colors import code_palette, lut, scale_for
from lstmprobe.report.theme import glyph
from lstmprobe.store import ActivationStore


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_coloured_text_paints_each_char_by_its_value_on_the_stated_scale():
    scale = scale_for("layer0/cell", max_abs=2.0, rng="max")
    values = np.array([-2.0, 0.0, 2.0, 1.0, 3.0])
    ax = text_figures.colored_text("ab cd", values, scale, width=10)
    grid = ax.images[0].get_array()
    pal = code_palette("diverging")
    np.testing.assert_array_equal(grid[0, 0], lut("diverging")[0])  # -2: the red end
    np.testing.assert_array_equal(grid[0, 1], pal[127])  # 0.0 in the middle: white
    np.testing.assert_array_equal(grid[0, 1], [247, 247, 247])
    np.testing.assert_array_equal(grid[0, 2], lut("diverging")[255])  # +2 (the space): blue end
    np.testing.assert_array_equal(grid[0, 4], lut("diverging")[255])  # 3 beyond: the end colour
    title = ax.get_title(loc="left").replace("\n", " ")
    assert "[-2, 2]" in title and "1 char(s) beyond it, marked" in title
    marks = [line for line in ax.lines if line.get_marker() in ("^", "v")]
    assert len(marks) == 1 and marks[0].get_marker() == "^"  # only the 3 is marked
    assert marks[0].get_xdata()[0] == pytest.approx(4.84)
    shown = [t.get_text() for t in ax.texts]
    assert shown == ["a", "b", "·", "c", "d"]


def exact_sides(values: np.ndarray, q: float = 99.0) -> tuple[float, float]:
    """The plain reference of a percentile range: each side's q-th percentile of |value|
    (numpy's 'higher' method: a value of the data), at least a quarter of the other side."""
    below = np.percentile(-values[values < 0], q, method="higher") if (values < 0).any() else 0.0
    above = np.percentile(values[values >= 0], q, method="higher") if (values >= 0).any() else 0.0
    big = max(below, above)
    return max(below, big / 4), max(above, big / 4)


def test_one_unit_keeps_one_scale_over_different_spans(lstm_store):
    with ActivationStore(lstm_store) as store:
        a = text_figures.unit_text(store, "layer0/cell/1", start=0, length=100)
        b = text_figures.unit_text(store, "layer0/cell/1", start=900, length=50)
        line = lambda f: " ".join(f.axes[0].get_title(loc="left").splitlines()[1:])  # noqa: E731
        scale = data.unit_scale(store, "layer0/cell/1")
        assert scale.describe() in line(a) and scale.describe() in line(b)  # the same scale
        assert f"[{scale.vmin:.3g}, {scale.vmax:.3g}]" in line(a) and "p99" in line(a)
        below, above = exact_sides(store.read("layer0/cell")[:, 1].astype(np.float64))
        # the bins over-estimate by at most one bin (1/16), and the range is rounded up
        assert below <= -scale.vmin <= below * (1 + 1 / 16) * 1.01
        assert above <= scale.vmax <= above * (1 + 1 / 16) * 1.01
        full = data.unit_scale(store, "layer0/cell/1", "max")
        lo, hi = data.unit_range(store, "layer0/cell/1")
        assert max(abs(lo), abs(hi)) <= full.vmax <= max(abs(lo), abs(hi)) * 1.01  # rounded up


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
        assert "range end on its side of 0" in ax.get_title(loc="left").replace("\n", " ")
        raw = store.read("layer1/cell", 10, 70)
        scales = [stats["layer1/cell"].scale(j) for j in range(3)]
        top = np.array([sc.vmax for sc in scales])
        bottom = np.array([-sc.vmin for sc in scales])
        values = np.where(raw >= 0, raw / top, raw / bottom)
        np.testing.assert_allclose(ax.images[0].get_array().T, values, rtol=1e-6)
        maxed = text_figures.heatmap(store, "layer1/cell", 10, 60, stats=stats["layer1/cell"],
                                     rng="max")  # fmt: skip
        np.testing.assert_allclose(
            maxed.images[0].get_array().T,
            raw / np.array([stats["layer1/cell"].scale(j, "max").vmax for j in range(3)]),
            rtol=1e-6,
        )
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


# --- values that are not finite are drawn and counted, never a crash (issue 17, 3 and 7) ---


def test_nan_is_grey_and_infinities_are_clipped_and_outlined():
    from lstmprobe.report.colors import MISSING_RGB

    scale = scale_for("layer0/cell", max_abs=2.0)
    values = np.array([np.nan, np.inf, -np.inf, 1.0])
    ax = text_figures.colored_text("abcd", values, scale, width=10)
    grid = ax.images[0].get_array()
    pal = lut("diverging")
    np.testing.assert_array_equal(grid[0, 0], MISSING_RGB)
    np.testing.assert_array_equal(grid[0, 1], pal[255])
    np.testing.assert_array_equal(grid[0, 2], pal[0])
    assert len(ax.patches) == 2  # the two infinite chars outlined
    assert (
        ax.get_title(loc="left")
        .replace("\n", " ")
        .endswith(  # wrapped to the width
            "; 2 infinite (1 +inf, 1 -inf): drawn at the ends of the scale, outlined; 1 NaN: grey"
        )
    )


def test_an_all_nan_unit_is_drawn_grey(tmp_path):
    """A unit whose every value is NaN (a damaged or diverged recording): `plot text` draws it."""
    from click.testing import CliRunner

    from lstmprobe.cli import main
    from lstmprobe.store import RecordingSpec, StoreWriter
    from lstmprobe.text import Vocab, sequences

    text = "a quiet line\n" * 30
    vocab = Vocab.from_text(text)
    values = np.random.default_rng(0).normal(size=(len(text), 3)).astype(np.float32)
    values[:, 1] = np.nan
    spec = RecordingSpec(vocab.encode(text), sequences(text), vocab, {"layer0/cell": 3}, {},
                         "0" * 64, "0" * 64, False, {})  # fmt: skip
    writer = StoreWriter(tmp_path / "acts.h5", spec)
    writer.write(0, {"layer0/cell": values})
    path = writer.finish()
    with ActivationStore(path) as store:
        ax = text_figures.unit_text(store, "layer0/cell/1", length=100).axes[0]
        assert ax.get_title(loc="left").replace("\n", " ").endswith("; 100 NaN: grey")
    out = tmp_path / "unit.png"
    result = CliRunner().invoke(main, ["plot", "text", "--store", str(path), "-u",
                                       "layer0/cell/1", "-o", str(out), "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 1000


def test_overflowed_units_in_heatmap_and_keep_write(overflow_store):
    with ActivationStore(overflow_store) as store:
        stats = data.summarize(store, ["layer0/hidden"])["layer0/hidden"]
        ax = text_figures.heatmap(store, "layer0/hidden", 0, 200, stats=stats)
        assert "infinite" in ax.get_title(loc="left").replace("\n", " ")
        assert np.isfinite(ax.images[0].get_array()).all()
        fig = text_figures.keep_write(store, "layer0/cell/1", 0, 60)
        assert fig is not None
