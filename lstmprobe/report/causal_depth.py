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

import math
from pathlib import Path
from typing import Any

import numpy as np

from lstmprobe._read import Fields, say_ignored, usable_text
from lstmprobe.errors import StoreError, UnitError
from lstmprobe.report.data import Warn, check_unit
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


def _units(store: ActivationStore, f: Fields, key: str) -> list[dict[str, Any]] | None:
    """The units at ``key``, each a unit of this recording, as the script receives them."""
    units = f.units(key)
    if units is None:
        return None
    for u in units:
        try:
            check_unit(store, str(u))
        except UnitError:
            f.problems.append(f"{f.where}.{key}: {u} is no unit of this recording")
            return None
    return [unit_parts(u) for u in units]


def _random(f: Fields) -> dict[str, Any]:
    return {
        "n": f.integer("n", minimum=0),
        **{k: f.number(k) for k in ("flip_rate_mean", "flip_rate_sd", "p_value", "p_floor")},
    }


def _top(f: Fields, key: str) -> list[list[Any]]:
    """``[[char, probability], ...]`` with what does not fit left out."""
    out = []
    for i, item in enumerate(f.listing(key) or []):
        if (
            isinstance(item, list)
            and len(item) == 2
            and usable_text(item[0])
            and isinstance(item[1], (int, float))
            and not isinstance(item[1], bool)
            and math.isfinite(item[1])
        ):
            out.append([item[0], float(item[1])])
        else:
            f.problems.append(f"{f.where}.{key}[{i}]: not a [char, probability] pair")
    return out


def patching_section(
    store: ActivationStore, figures: bool = True, warn: Warn = None
) -> dict[str, Any] | None:
    """The payload of the Patching section (JSON-ready), or None without a patching file.

    Each saved result is read field by field: what does not fit (a flip rate that is not a
    number, a unit this recording lacks) is left out and said in one warning line."""
    path = Recording.at(store.path).patching
    found = _read(store, path, PATCHING, warn)
    if found is None:
        return None
    problems: list[str] = []
    conditions: list[dict[str, Any]] = []
    by_unit: dict[str, list[int]] = {}
    sweeps, pairs = [], []
    for i, r in enumerate(found.results):
        f = Fields(r.meta, f"result {i}", problems)
        kind = f.text("kind")
        if kind == "condition":
            units = _units(store, f, "units")
            if not units:
                continue
            for u in units:
                by_unit.setdefault(u["name"], []).append(len(conditions))
            conditions.append(
                {
                    "units": units,
                    "flip_rate": f.number("flip_rate"),
                    "delta_bits": f.number("delta_bits"),
                    "base_rate": f.number("base_rate"),
                    "pairs": f.integer("pairs", minimum=0),
                    "verdict": f.text("verdict"),
                    "random": _random(f.child("random")),
                }
            )
        elif kind == "pair":
            units = _units(store, f, "units")
            if not units:
                continue
            pairs.append(
                {
                    "units": units,
                    "source": f.text("source"),
                    "target": f.text("target"),
                    "kl_bits": f.number("kl_bits"),
                    "top_before": _top(f, "top_before"),
                    "top_after": _top(f, "top_after"),
                }
            )
        elif kind == "sweep":
            sweep = _sweep_fields(store, f, r.arrays)
            if sweep is not None:
                sweeps.append(_sweep_figure(sweep, figures))
        else:
            problems.append(f"result {i}: an unknown kind {kind!r}")
    say_ignored(problems, warn, prefix=f"{path}: ")
    return {"conditions": conditions, "by_unit": by_unit, "sweeps": sweeps, "pairs": pairs}


def _sweep_fields(
    store: ActivationStore, f: Fields, arrays: dict[str, Any]
) -> dict[str, Any] | None:
    """A sweep's rows, columns and the array of its metric, checked against each other."""
    rows = []
    for j, row in enumerate(f.listing("rows") or []):
        units = _units(store, Fields({"units": row}, f"{f.where}.rows[{j}]", f.problems), "units")
        if not units:
            return None
        rows.append(units[0]["name"] if len(units) == 1 else f"{len(units)} units")
    columns = f.listing("columns") or []
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in columns):
        f.problems.append(f"{f.where}.columns: not a list of positions")
        return None
    n = f.integer("pairs", minimum=0) or 0
    metric = "flip_rate" if n > 1 else "delta_bits"
    values = arrays.get(metric)
    if values is None or np.shape(values) != (len(rows), len(columns)) or not rows:
        f.problems.append(f"{f.where}: its {metric} is not one value per row and column")
        return None
    labels = [x if usable_text(x) else "" for x in (f.listing("labels") or [])]
    counts = [
        x if isinstance(x, int) and not isinstance(x, bool) else 0
        for x in (f.listing("pairs_per_column") or [])
    ]
    return {
        "pairs": n,
        "metric": metric,
        "values": np.asarray(values, dtype=np.float64),
        "rows": rows,
        "columns": columns,
        "labels": (labels + [""] * len(columns))[: len(columns)],
        "counts": (counts + [0] * len(columns))[: len(columns)],
        "align": f.text("align") or "end",
    }


def _sweep_figure(sweep: dict[str, Any], figures: bool) -> dict[str, Any]:
    n, metric, side = sweep["pairs"], sweep["metric"], sweep["align"]
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
    if figures:
        from lstmprobe.report.causal_figures import patch_heatmap
        from lstmprobe.report.output import png_uri

        ax = patch_heatmap(
            sweep["values"],
            sweep["rows"],
            sweep["columns"],
            sweep["labels"],
            counts=sweep["counts"],
            metric=metric,
            title=title,
        )
        out["src"] = png_uri(ax.figure)
    return out


def attributions_section(store: ActivationStore, warn: Warn = None) -> dict[str, Any] | None:
    """The attributions beside ``store`` for the unit cards (JSON-ready), or None; read field
    by field like :func:`patching_section`."""
    path = Recording.at(store.path).attributions
    found = _read(store, path, ATTRIBUTIONS, warn)
    if found is None:
        return None
    problems: list[str] = []
    entries: list[dict[str, Any]] = []
    by_unit: dict[str, list[int]] = {}
    for i, r in enumerate(found.results):
        f = Fields(r.meta, f"result {i}", problems)
        text = f.text("text", required=True)
        target = f.text("target", required=True)
        inputs = r.arrays.get("inputs")
        if text is None or target is None:
            continue
        if inputs is None or np.shape(inputs) != (len(text),):
            problems.append(f"result {i}: its inputs are not one value per char of its text")
            continue
        entry: dict[str, Any] = {
            "target": target,
            "text": text,
            "inputs": [float(v) if math.isfinite(v) else None for v in np.asarray(inputs, float)],
            "method": f.text("method"),
            "steps": f.integer("steps", minimum=1),
            "start": f.integer("start", minimum=0),
            "position": f.integer("position", minimum=0),
            "value": f.number("value"),
            "baseline_value": f.number("baseline_value"),
            "input_gap": f.number("input_gap"),
            "top_units": [],
        }
        for j, t in enumerate(f.listing("top_units") or []):
            g = Fields(t, f"result {i}.top_units[{j}]", problems)
            units = _units(
                store, Fields({"units": [g.obj.get("unit")]}, g.where, problems), "units"
            )
            if units:
                entry["top_units"].append(
                    {
                        "unit": units[0],
                        "position": g.integer("position", minimum=0),
                        "attribution": g.number("attribution"),
                    }
                )
        if f.has("unit"):
            unit = _units(store, Fields({"unit": [f.obj["unit"]]}, f.where, problems), "unit")
            if not unit:
                continue
            entry["unit"] = unit[0]["name"]
            by_unit.setdefault(unit[0]["name"], []).append(len(entries))
        entries.append(entry)
    say_ignored(problems, warn, prefix=f"{path}: ")
    return {"entries": entries, "by_unit": by_unit}
