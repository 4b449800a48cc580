"""A unit's profile figure and the random units behind an ablation's p-value."""

from __future__ import annotations

import numpy as np
import pytest

from lstmprobe.causal.profile import profile
from lstmprobe.report import unit_figures
from lstmprobe.report.theme import glyph
from lstmprobe.store import ActivationStore


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_the_profile_figure_draws_each_mean_with_its_spread(task_store):
    with ActivationStore(task_store) as store:
        p = profile(store, "layer0/cell/1")
    fig = unit_figures.profile_figure(p)
    gates, _values, change = fig.axes[:3]
    assert [g.get_text() for g in gates.get_xticklabels()] == [glyph(g) for g in p.groups]
    assert p.groups[:2] == ("a", "b")  # the most frequent chars first
    heights = [bar.get_height() for bar in gates.containers[0]]  # input gate, per char
    qi = p.quantities.index("input_gate")
    np.testing.assert_allclose(heights, p.mean[qi, :, 0], rtol=1e-6)
    assert gates.get_ylim()[1] <= 1.06 and "by the char just read" in fig.get_suptitle()
    assert change.get_title(loc="left") == "change of the state"


def condition(draws, chosen=0.5, n=None):  # type: ignore[no-untyped-def]
    """An ablation condition as ``ablate --json`` writes it, read back."""
    from lstmprobe.store.ablations import AblationCondition

    n = len(draws) if n is None else n
    return AblationCondition.from_dict(_condition(draws, chosen, n), "c", [])


def _condition(draws, chosen, n):  # type: ignore[no-untyped-def]
    return {
        "units": ["layer0/cell/7"],
        "mode": "zero",
        "feature": "count:a",
        "on": "count:a ≠ 0",
        "delta_on": chosen,
        "random": {
            "n": n,
            "p_value": 1 / (1 + n),
            "p_value_of": "delta_on",
            "p_floor": 1 / (1 + n),
            "possible": n,
            "draws": [{"units": [f"layer0/cell/{i}"], "delta_on": d} for i, d in enumerate(draws)],
        },
    }


def test_the_random_units_behind_a_p_value(tmp_path):
    ax = unit_figures.random_effects(condition([0.1, 0.2, 0.05, float("inf"), None]))
    dots = ax.collections[-1].get_offsets()
    assert sorted(dots[:, 0].tolist()) == [0.05, 0.1, 0.2]  # inf and missing left out
    title = ax.get_title(loc="left")
    assert "zeroing layer0/cell/7: Δ bits/char where count:a ≠ 0" in title
    assert "its floor is 0.167 with 5 random sets (all there are)" in title
    assert "2 non-finite draws left out" in title
    assert ax.lines[0].get_xdata()[0] == 0.5  # the chosen units' effect
    grid = unit_figures.random_effects_grid([condition([0.1, 0.3])] * 3)
    assert sum(a.get_visible() for a in grid.axes) == 3


def test_the_plot_command_draws_the_saved_ablations(causal_dir, tmp_path):
    import shutil

    from click.testing import CliRunner

    from lstmprobe.cli import main

    for name in ("acts.h5", "acts.ablations.h5"):
        shutil.copy(causal_dir["dir"] / name, tmp_path / name)
    out = tmp_path / "random.png"
    done = CliRunner().invoke(main, ["plot", "ablation", "--store", str(tmp_path / "acts.h5"),
                                     "-o", str(out), "-q"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    (tmp_path / "acts.ablations.h5").unlink()
    missing = CliRunner().invoke(main, ["plot", "ablation", "--store", str(tmp_path / "acts.h5")])
    assert missing.exit_code == 1 and "lstmprobe ablate" in missing.output
