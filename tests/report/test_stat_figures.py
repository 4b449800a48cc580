from __future__ import annotations

import json

import numpy as np
import pytest

from lstmprobe.errors import ReportError, UnitError, for_cli
from lstmprobe.probes import rank_units
from lstmprobe.report import data, stat_figures
from lstmprobe.store import ActivationStore
from lstmprobe.store.dynamics import Dynamics, read_dynamics


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_saturation_is_one_dot_per_unit_of_each_gate(lstm_store):
    with ActivationStore(lstm_store) as store:
        stats = data.summarize(store)
        fig = stat_figures.saturation(stats)
        shown = [a for a in fig.axes if a.get_visible()]
        assert len(shown) == 6  # 2 layers x 3 gates
        assert "< 0.1" in shown[0].get_xlabel()
        dots = shown[0].collections[0].get_offsets()
        s = stats[shown[0].get_title()]
        np.testing.assert_allclose(dots, np.column_stack([s.low, s.high]))
        assert len(stat_figures.saturation(stats, ["layer1"]).axes) == 3


def test_distributions_compare_cell_and_hidden(lstm_store):
    with ActivationStore(lstm_store) as store:
        fig = stat_figures.distributions(store, "layer1")
        boxes, pooled = fig.axes
        assert "cell vs hidden" in boxes.get_title(loc="left").replace("\n", " ")
        assert boxes.get_yscale() == "linear"  # a readable axis, no symlog
        assert boxes.get_legend().get_bbox_to_anchor() is not None  # beside, not over, a unit
        legend = [t.get_text() for t in pooled.get_legend().get_texts()]
        hidden = store.read("layer1/hidden")
        assert legend[1] == f"hidden: sd {hidden.std():.2f}"
        assert [t.get_text() for t in boxes.get_xticklabels()] == ["0", "1", "2"]


def test_separator_sorts_sequences_by_group(task_store):
    with ActivationStore(task_store) as store:
        fig = stat_figures.separator(data.separator_values(store, "layer0/cell", "X"))
        assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["p", "q"]
        counts = data.separator_values(store, "layer0/cell", "X", group_by="count")
        fig = stat_figures.separator(counts)
        labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        assert labels == ["2", "3", "4", "5", "6"]  # numeric order, not text order


def test_a_gru_has_no_gate_to_saturate_when_none_was_recorded(gru_store):
    with ActivationStore(gru_store) as store:
        stats = data.summarize(store, ["layer0/hidden"])
        with pytest.raises(UnitError, match="`quantities=") as info:
            stat_figures.saturation(stats)
        assert "record them with --quantities input_gate," in for_cli(str(info.value))


def test_probe_curve_draws_held_out_and_control_per_k(lstm_store):
    with ActivationStore(lstm_store) as store:
        ranking = rank_units(store, ["quote"], probe=True, n_boot=20, k_max=2)
    curve = ranking.features["quote"].curve or ()
    ax = stat_figures.probe_curve(ranking, "quote")
    held_out, control = ax.get_lines()
    assert list(held_out.get_ydata()) == [c.test_metric for c in curve]
    assert list(control.get_ydata()) == [c.control_metric for c in curve]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "all"]


def test_timescales_count_the_units_of_each_bin(causal_dir):
    saved = causal_dir["dir"] / "acts.dynamics.json"
    dyn = json.loads(saved.read_text())
    fig = stat_figures.timescales(read_dynamics(saved))
    ax = fig.axes[0]
    layers = dyn["layers"]
    bins = list(next(iter(layers.values()))["timescales"]["counts"])
    heights = [p.get_height() for p in ax.patches]
    expected = [layers[name]["timescales"]["counts"].get(b, 0) for name in layers for b in bins]
    assert heights == expected
    with pytest.raises(ReportError, match="no layer"):
        stat_figures.timescales(Dynamics("", {}, {}))


def test_separators_grouped_by_any_feature_at_the_separator(task_store):
    with ActivationStore(task_store) as store:
        sep = data.separator_values(store, "layer0/cell", "X", group_by="count:a")
        seqs = store.sequences
        text = store.text
        for p, g in zip(sep.positions, sep.groups):  # a's minus b's read up to the X
            i = int(np.searchsorted(seqs[:, 0], p, side="right")) - 1
            assert g == str(text[seqs[i, 0] : p + 1].count("a"))
        fig = stat_figures.separator(sep)
        heat, strips = fig.axes[0], fig.axes[1]
        assert [t.get_text() for t in heat.get_xticklabels()] == ["1", "2", "3", "4", "5"]
        assert "count:a at the 'X'" in heat.get_xlabel()
        assert "best-separating units, one dot per sequence" in strips.get_title(loc="left")
        first = data.separator_values(store, "layer0/cell", "X", group_by="first-char:p")
        assert sorted(set(first.groups)) == ["0", "1"]


def test_a_projected_lstm_draws_cell_and_hidden_apart(tmp_path):
    from tests.report.conftest import TEXT, record

    path = record(tmp_path / "proj.h5", TEXT[:600], num_layers=1, hidden_size=4, proj_size=2)
    with ActivationStore(path) as store:
        assert store.n_units("layer0/cell") == 4 and store.n_units("layer0/hidden") == 2
        fig = stat_figures.distributions(store)
        cells, hidden = fig.axes[:2]
        assert "projected: 2 hidden units, 4 cells" in cells.get_title(loc="left").replace(
            "\n", " "
        )
        assert len(cells.get_xticklabels()) == 4 and len(hidden.get_xticklabels()) == 2
        sep = data.separator_values(store, "layer0/hidden", "\n")
        assert stat_figures.separator(sep).axes


# --- recordings of the real world: float16 overflow (issue 17, break 4) ---


def test_an_overflowed_recording_is_drawn_with_its_infinities_counted(overflow_store):
    with ActivationStore(overflow_store) as store:
        hidden = store.read("layer0/hidden")
        n_inf = int(np.isinf(hidden).sum())
        assert n_inf > 1000  # the fixture overflows
        fig = stat_figures.distributions(store, "layer0")
        assert "non-finite values left out" in fig.axes[0].get_title(loc="left").replace("\n", " ")
        stops = data.separator_values(store, "layer0/hidden", "\n", group_by="count")
        assert np.isfinite(stat_figures._eta_squared(stops.values, stops.groups)).all()
        stats = data.summarize(store)
        s = stats["layer0/hidden"]
        assert int(s.posinf.sum() + s.neginf.sum()) == n_inf and not s.nan.any()
        assert np.isfinite(s.mean).all() and np.isfinite(s.max_abs).all()
        sep = data.separator_values(store, "layer0/hidden", "\n")
        title = stat_figures.separator(sep).axes[0].get_title(loc="left").replace("\n", " ")
        assert "infinite" in title and "drawn at the ends of the scale" in title
