"""The report's views of ``lstmprobe patch`` and ``lstmprobe attribute``, and the standalone page
of one attribution (``lstmprobe attribute -o attr.html``).

Two files beside a recording feed the report (docs/causal.md), each ignored with a warning when
it was made with another model than the recording's:

* ``acts.patching.h5`` -- the Patching section: each condition's flip rate against its random
  same-size sets (mean ± sd, p and its floor), one-pair patches, and each sweep's units x
  positions heatmap; the unit card lists the conditions a unit was patched in.
* ``acts.attributions.h5`` -- in the card of a unit whose value was attributed: the window's text
  coloured by each char's attribution, and the earlier units that drove it (links).

The page's script (``assets/depth.js``) puts every value into the page as text. The standalone
page of one attribution is :mod:`lstmprobe.report.attribution_page`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstmprobe.errors import StoreError
from lstmprobe.report.data import Warn
from lstmprobe.report.output import unit_parts
from lstmprobe.store import ActivationStore, Recording
from lstmprobe.store.causal_results import ATTRIBUTIONS, PATCHING, ResultsFile, read_results


def _read(store: ActivationStore, path: Path, fmt: str, warn: Warn) -> ResultsFile | None:
    if not path.exists():
        return None

    def ignore(why: str) -> None:
        if warn is not None:
            warn(f"ignoring {path}: {why}")

    try:
        found = read_results(path, fmt)
    except (StoreError, OSError, KeyError, ValueError) as exc:
        ignore(f"it cannot be read ({exc})")
        return None
    sha = found.attrs.get("model_sha256")
    if sha and store.model_sha256 and sha != store.model_sha256:
        ignore(
            "it was made with another model than this recording's; run it again with the recorded model"
        )
        return None
    return found


def patching_section(
    store: ActivationStore, figures: bool = True, warn: Warn = None
) -> dict[str, Any] | None:
    """The payload of the Patching section (JSON-ready), or None without a patching file."""
    found = _read(store, Recording.at(store.path).patching, PATCHING, warn)
    if found is None:
        return None
    conditions: list[dict[str, Any]] = []
    by_unit: dict[str, list[int]] = {}
    sweeps, pairs = [], []
    for r in found.results:
        kind = r.meta.get("kind")
        if kind == "condition":
            for u in r.meta.get("units", []):
                by_unit.setdefault(str(u), []).append(len(conditions))
            conditions.append(
                {
                    k: r.meta.get(k)
                    for k in (
                        "units",
                        "flip_rate",
                        "delta_bits",
                        "random",
                        "verdict",
                        "base_rate",
                        "pairs",
                    )
                }
            )
        elif kind == "pair":
            pairs.append(
                {
                    k: r.meta.get(k)
                    for k in ("units", "source", "target", "kl_bits", "top_before", "top_after")
                }
            )
        elif kind == "sweep":
            sweeps.append(_sweep_figure(r.meta, r.arrays, figures))
    return {"conditions": conditions, "by_unit": by_unit, "sweeps": sweeps, "pairs": pairs}


def _sweep_figure(meta: dict[str, Any], arrays: dict[str, Any], figures: bool) -> dict[str, Any]:
    n = int(meta.get("pairs", 0) or 0)
    metric = "flip_rate" if n > 1 else "delta_bits"
    rows = [r[0] if len(r) == 1 else f"{len(r)} units" for r in meta.get("rows", [])]
    side = meta.get("align", "end")
    title = f"Patching each unit at each position: {n} pair{'s' if n != 1 else ''}"
    out = {
        "title": title,
        "caption": (
            "Rows: the units patched (one at a time); columns: the target position patched "
            f"(counted from the {side}; below it the char there where every pair has the same, "
            "and n, the pairs that have it). Colour: "
            + (
                "the share of pairs whose prediction flips to the source's answer, on [0, 1]."
                if metric == "flip_rate"
                else "the change of log2 p(the source's answer), on ±max|change|."
            )
        ),
        "src": None,
    }
    if figures and metric in arrays:
        from lstmprobe.report.causal_figures import patch_heatmap
        from lstmprobe.report.output import png_uri

        ax = patch_heatmap(
            arrays[metric],
            rows,
            meta.get("columns", []),
            meta.get("labels", []),
            counts=meta.get("pairs_per_column", []),
            metric=metric,
            title=title,
        )
        out["src"] = png_uri(ax.figure)
    return out


def attributions_section(store: ActivationStore, warn: Warn = None) -> dict[str, Any] | None:
    """The attributions beside ``store`` for the unit cards (JSON-ready), or None."""
    found = _read(store, Recording.at(store.path).attributions, ATTRIBUTIONS, warn)
    if found is None:
        return None
    entries, by_unit = [], {}
    for r in found.results:
        meta = dict(r.meta)
        if "inputs" in r.arrays:
            meta["inputs"] = [float(v) for v in r.arrays["inputs"]]
        unit = meta.get("unit")
        if unit:
            by_unit.setdefault(str(unit), []).append(len(entries))
        meta["top_units"] = [
            {**t, "unit": unit_parts(str(t["unit"]))} for t in meta.get("top_units") or []
        ]
        entries.append(meta)
    return {"entries": entries, "by_unit": by_unit}
