from __future__ import annotations

import inspect

from lstmprobe import report
from lstmprobe.report import figures, stat_figures, text_figures, unit_figures


def test_one_namespace_holds_every_figure_function_from_its_home():
    homes = {**vars(text_figures), **vars(stat_figures), **vars(unit_figures)}
    drawn = [n for n in figures.__all__ if inspect.isfunction(getattr(figures, n))]
    for name in drawn:
        if name not in ("glyph", "layout", "themed"):
            assert getattr(figures, name) is homes[name], name
    for name in ("unit_text", "heatmap", "saturation", "probe_curve", "timescales", "keep_write",
                 "profile_figure", "random_effects"):  # fmt: skip
        assert name in figures.__all__
    for name in report.__all__:  # the package's lazy names are the same functions
        if name in figures.__all__:
            assert getattr(report, name) is getattr(figures, name)
