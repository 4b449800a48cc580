"""The report stage: figures of units and a self-contained HTML report with an explorer.

Nothing here is imported by ``import lstmprobe``; the names below load their module on first use,
and matplotlib is imported only inside the figure functions, so the command line starts fast.

Examples
--------
>>> from lstmprobe.report import unit_text, build_report  # doctest: +SKIP
>>> with ActivationStore("acts.h5") as store:  # doctest: +SKIP
...     fig = unit_text(store, "layer0/cell/81", start=3000, length=700)  # a matplotlib Figure
...     report = build_report(store)  # displays inline in Jupyter; report.save("r.html")
"""

from __future__ import annotations

from lstmprobe._lazy import lazy_exports

_EXPORTS = {
    "colored_text": "lstmprobe.report.text_figures",
    "unit_text": "lstmprobe.report.text_figures",
    "unit_internals": "lstmprobe.report.text_figures",
    "heatmap": "lstmprobe.report.text_figures",
    "saturation": "lstmprobe.report.stat_figures",
    "distributions": "lstmprobe.report.stat_figures",
    "separator": "lstmprobe.report.stat_figures",
    "probe_curve": "lstmprobe.report.stat_figures",
    "profile_figure": "lstmprobe.report.unit_figures",
    "random_effects": "lstmprobe.report.unit_figures",
    "build_report": "lstmprobe.report.html",
    "text_page": "lstmprobe.report.html",
    "Report": "lstmprobe.report.html",
    "summarize": "lstmprobe.report.data",
    "separator_values": "lstmprobe.report.data",
    "scale_for": "lstmprobe.report.colors",
    "Scale": "lstmprobe.report.colors",
}

# built from the table (pyright cannot follow that; the names resolve through __getattr__)
__all__ = list(_EXPORTS)  # pyright: ignore[reportUnsupportedDunderAll]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
