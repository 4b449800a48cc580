"""Figures of units: coloured text, a unit's internals, heatmaps, distributions, saturation,
states at a separator, probe curves, timescales, keep vs write, a unit's profile by input, the
random units behind an ablation's p-value.

The one namespace for every figure function; they live by concept in
:mod:`~lstmprobe.report.text_figures` (a span of text, char by char) and
:mod:`~lstmprobe.report.stat_figures` (statistics over the whole recording or a ranking) and
:mod:`~lstmprobe.report.unit_figures` (one unit's profile and ablation), and share
one look from :mod:`~lstmprobe.report.theme`.

Each function returns a matplotlib Figure (or draws into ``ax`` and returns the Axes); none shows
or saves anything: the command line saves, a notebook displays. matplotlib is imported inside the
functions, so importing this module stays cheap. One theme (:data:`THEME`) applies to all of them.
Colour scales come from :mod:`lstmprobe.report.colors`: every figure states its range and rule.
"""

from __future__ import annotations

from lstmprobe.report.stat_figures import (
    distributions,
    probe_curve,
    saturation,
    separator,
    timescales,
)
from lstmprobe.report.text_figures import (
    QUANTITY_ORDER,
    colored_text,
    heatmap,
    keep_write,
    unit_internals,
    unit_text,
)
from lstmprobe.report.theme import GLYPHS, MONO, THEME, glyph, layout, themed
from lstmprobe.report.unit_figures import profile_figure, random_effects, random_effects_grid

__all__ = [
    "GLYPHS",
    "MONO",
    "QUANTITY_ORDER",
    "THEME",
    "colored_text",
    "distributions",
    "glyph",
    "heatmap",
    "keep_write",
    "layout",
    "probe_curve",
    "profile_figure",
    "random_effects",
    "random_effects_grid",
    "saturation",
    "separator",
    "themed",
    "timescales",
    "unit_internals",
    "unit_text",
]
