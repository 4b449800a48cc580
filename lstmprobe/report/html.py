"""The self-contained HTML report and its explorer.

One file, with every script, style, image and value embedded: no server, no network, no CDN; it
opens from a ``file://`` URL, can be mailed or attached to a paper. Plain JavaScript, nothing
else runs. What it embeds (docs/report.md):

* the explorer's text: ``max_chars`` chars from ``start``, and for every shown unit its value at
  each of them, quantised to 8 bits along the unit's fixed colour scale
  (:meth:`~lstmprobe.report.colors.Scale.quantize`: a step of ``(vmax - vmin) / 255``);
* per-unit summaries over the whole recording (mean, std, min, max, gate saturation);
* with a ranking: per feature its summary, probe curve, top units with scores, intervals, held-out
  metrics, selectivity and an ROC-suggested threshold, and for each top unit its coloured text on
  passages where the feature changes and where the unit is most active.

The span statistic of the explorer (select text -> units most active there) is the standardised
difference ``d = (mean inside - mean outside) / sd`` of each unit's values over the embedded
text, ranked by ``d``: no fixed threshold.
"""

from __future__ import annotations

import base64
import html
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmprobe.report.colors import GATES, lut, scale_for
from lstmprobe.report.data import (
    KeyStats,
    Warn,
    check_span,
    check_unit,
    load_rankings,
    passage,
    summarize,
    top_spans,
    unit_scale,
)
from lstmprobe.report.feature_scan import FeatureScan, pick_changes, scan_features
from lstmprobe.report.output import asset, png_uri
from lstmprobe.store import ActivationStore, parse_unit

#: Default number of chars the explorer embeds (``--max-chars``).
MAX_CHARS = 2000
#: Chars per passage of the ranking sections.
PASSAGE = 160
#: Passages where a feature changes, and top-activating passages per unit.
N_CHANGE_PASSAGES = 3
N_TOP_PASSAGES = 2


@dataclass(frozen=True)
class Report:
    """A rendered report: the page, and what it holds.

    ``html`` is the whole page; ``manifest`` says what was embedded (units, chars, features).
    In Jupyter the report displays inline (:meth:`_repr_html_`), without a server or network.
    """

    html: str
    fragment: str = field(repr=False)
    manifest: dict[str, Any] = field(default_factory=dict)

    def _repr_html_(self) -> str:
        return self.fragment

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the page atomically to ``path``; returns it."""
        from lstmprobe.report.output import atomic_output

        path = Path(path)
        with atomic_output(path) as part:
            part.write_text(self.html, encoding="utf-8")
        return path


def _b64(arr: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype=np.uint8).tobytes()).decode("ascii")


def _r(values: Any, digits: int = 4) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=np.float64)]


def _clean(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if not np.isfinite(obj) else float(f"{obj:.5g}")
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def _units_shown(
    store: ActivationStore, keys: Sequence[str], max_units: int | None, keep: set[str]
) -> dict[str, list[int]]:
    shown = {}
    for key in keys:
        n = store.n_units(key)
        idx = set(range(n if not max_units else min(n, max_units)))
        idx |= {parse_unit(u)[1] for u in keep if parse_unit(u)[0] == key}
        shown[key] = sorted(idx)
    return shown


def build_report(
    store: ActivationStore,
    *,
    ranking: Any = None,
    rankings_path: str | os.PathLike[str] | None = None,
    use_rankings: bool = True,
    features: Sequence[str] | None = None,
    top: int = 5,
    max_chars: int = MAX_CHARS,
    max_units: int | None = None,
    start: int = 0,
    figures: bool = True,
    progress: bool = False,
    warn: Warn = None,
) -> Report:
    """Render the report of one recording (and its ranking, when there is one).

    Parameters
    ----------
    store : ActivationStore
        The recording.
    ranking : Ranking, optional
        Default: ``acts.rankings.json`` beside the store (or ``rankings_path``) when it exists and
        belongs to this recording (else a warning and no ranking sections).
    features : sequence of str, optional
        Features of the ranking to show (default: all it scored).
    top : int
        Top units shown per feature.
    max_chars : int
        Chars of text the explorer embeds, from ``start``.
    max_units : int, optional
        Units embedded per dataset (the first ones, plus every top-ranked unit); default all.
    figures : bool
        Embed the saturation, distribution and probe-curve figures (matplotlib).

    Examples
    --------
    >>> with ActivationStore("acts.h5") as store:  # doctest: +SKIP
    ...     report = build_report(store, top=3)
    >>> report  # in Jupyter: the report inline  # doctest: +SKIP
    """
    from lstmprobe.errors import ReportError

    if max_chars < 1:
        raise ReportError(f"--max-chars must be at least 1, got {max_chars}")
    if ranking is None and use_rankings:
        ranking = load_rankings(store, rankings_path, warn)
    feats: list[str] = []
    if ranking is not None:
        scored = [f for f, s in ranking.features.items() if "skipped" not in s]
        if features:
            missing = [f for f in features if f not in ranking.features]
            if missing:
                raise ReportError(
                    f"feature {missing[0]!r} is not in the ranking (it has {', '.join(ranking.features)}); "
                    f"run `lstmprobe find-neurons -f {missing[0]}` first"
                )
            feats = [f for f in features if f in scored]
            for f in features:
                if f not in scored and warn is not None:
                    warn(f"feature {f} has no ranked units: {ranking.features[f].get('skipped')}")
        else:
            feats = scored
    elif features:
        raise ReportError(
            "-f needs a ranking; run `lstmprobe find-neurons "
            + " ".join(f"-f {f}" for f in features)
            + f" --store {store.path}` first"
        )
    top_rows = {f: ranking.for_feature(f)[:top] for f in feats} if ranking is not None else {}
    top_units = {u["unit"] for rows in top_rows.values() for u in rows}
    keys = store.keys
    stats = summarize(store, keys, progress=progress)
    a, b = check_span(
        store,
        start,
        min(max_chars, store.n_positions - start) if 0 <= start < store.n_positions else max_chars,
    )
    shown = _units_shown(store, keys, max_units, top_units)

    # the explorer's window, every shown unit quantised along its fixed scale
    key_data = []
    n_shown = 0
    for key in keys:
        s = stats[key]
        idx = shown[key]
        values = store.read(key, a, b, units=idx)  # (L, units)
        scales = [s.scale(i) for i in idx]
        q = (
            np.stack([sc.quantize(values[:, j]) for j, sc in enumerate(scales)])
            if idx
            else np.zeros((0, b - a), np.uint8)
        )
        layer, quantity = key.split("/")
        gate = quantity in GATES
        key_data.append(
            {
                "key": key,
                "layer": layer,
                "quantity": quantity,
                "n": store.n_units(key),
                "units": idx,
                "kind": scales[0].kind if scales else scale_for(key).kind,
                "vmin": _r([sc.vmin for sc in scales]),
                "vmax": _r([sc.vmax for sc in scales]),
                "rules": sorted({sc.rule for sc in scales}),
                "rule": [sorted({sc.rule for sc in scales}).index(sc.rule) for sc in scales],
                "stats": {
                    "mean": _r(s.mean[idx]),
                    "std": _r(s.std[idx]),
                    "min": _r(s.min[idx]),
                    "max": _r(s.max[idx]),
                    "low": _r(s.low[idx]) if gate else None,
                    "high": _r(s.high[idx]) if gate else None,
                },
                "values": _b64(q),
            }
        )
        n_shown += len(idx)

    # ranking sections
    feature_data = []
    scans: dict[str, FeatureScan] = {}
    if feats and ranking is not None:
        want = {
            f: [(r["unit"], int(r["sign"]) if r.get("sign") else 1) for r in top_rows[f]]
            for f in feats
        }
        kinds = {f: ranking.features[f].get("kind", "continuous") for f in feats}
        scans = scan_features(store, want, stats, kinds, progress=progress)
        feature_data = _feature_sections(store, ranking, feats, top_rows, stats, scans)

    figs = []
    if figures:
        figs = _figures(store, stats, ranking, feats, progress)

    ranks: dict[str, list[list[Any]]] = {}
    if ranking is not None:
        for r in ranking.rows:
            if r["feature"] in ranking.features and "skipped" not in ranking.features[r["feature"]]:
                ranks.setdefault(r["unit"], []).append(
                    [r["feature"], r["rank"], r.get("score"), r.get("sign"), r.get("score_name")]
                )
    thresholds: dict[str, dict[str, Any]] = {}
    for f, sc in scans.items():
        for u, t in sc.thresholds.items():
            thresholds.setdefault(u, {})[f] = {
                "threshold": t.threshold,
                "tpr": t.tpr,
                "fpr": t.fpr,
                "sign": t.sign,
            }
    from lstmprobe.report.causal_views import causal_payload

    causal = causal_payload(store, stats, sorted(top_units), figures=figures, warn=warn)
    initial = top_rows[feats[0]][0]["unit"] if feats and top_rows[feats[0]] else f"{keys[0]}/0"
    model = store.model.get("config", store.model) if isinstance(store.model, dict) else {}
    payload = {
        "meta": {
            "store": str(store.path),
            "positions": store.n_positions,
            "sequences": len(store.sequences),
            "model": _model_line(store),
            "config": model,
            "dtype": store.dtype,
            "created": store.created,
            "corpus_sha256": store.corpus_sha256,
            "rankings": bool(feats),
        },
        "palettes": {k: lut(k).tolist() for k in ("diverging", "sequential")},
        "window": {"start": a, "text": store.read_text(a, b)},
        "keys": key_data,
        "features": feature_data,
        "ranks": ranks,
        "thresholds": thresholds,
        "figures": figs,
        "initial": initial,
        **causal,
    }
    page, fragment = render(payload, title=f"lstmprobe report: {store.path.name}")
    manifest = {
        "store": str(store.path),
        "chars": b - a,
        "start": a,
        "units_shown": n_shown,
        "units_total": sum(store.n_units(k) for k in keys),
        "datasets": keys,
        "features": feats,
        "top_units": {f: [r["unit"] for r in rows] for f, rows in top_rows.items()},
        "bytes": len(page.encode("utf-8")),
        "ablations": 0 if causal["ablations"] is None else len(causal["ablations"]["conditions"]),
        "dynamics": causal["dynamics"] is not None,
    }
    return Report(page, fragment, manifest)


def _model_line(store: ActivationStore) -> str:
    cfg = store.model.get("config", {}) if isinstance(store.model, dict) else {}
    if not cfg:
        return ""
    cell = str(cfg.get("cell", "lstm")).upper()
    return (
        f"{cfg.get('num_layers', '?')}-layer {cell}, {cfg.get('hidden_size', '?')} units per layer"
    )


def _feature_sections(
    store: ActivationStore,
    ranking: Any,
    feats: list[str],
    top_rows: dict[str, list[dict[str, Any]]],
    stats: dict[str, KeyStats],
    scans: dict[str, FeatureScan],
) -> list[dict[str, Any]]:
    out = []
    for f in feats:
        rows = top_rows[f]
        units = [r["unit"] for r in rows]
        scan = scans.get(f)
        spans: list[dict[str, Any]] = []
        centers = pick_changes(scan.changes, N_CHANGE_PASSAGES) if scan is not None else []
        for c in centers:
            pa, pb = passage(store, c, PASSAGE, before=0.5)
            spans.append({"kind": "change", "start": pa, "stop": pb, "at": c, "units": units})
        for r in rows:
            key, index = parse_unit(r["unit"])
            for pa, pb, peak in top_spans(
                store, stats[key], index, r.get("sign") or 1, N_TOP_PASSAGES, PASSAGE
            ):
                spans.append(
                    {"kind": "top", "start": pa, "stop": pb, "at": peak, "units": [r["unit"]]}
                )
        labels = _passage_labels(store, f, [(s["start"], s["stop"]) for s in spans])
        passages = []
        for s, lab in zip(spans, labels):
            vals = {}
            for u in s["units"]:
                key, index = parse_unit(u)
                v = store.read(key, s["start"], s["stop"], units=[index])[:, 0]
                vals[u] = _b64(stats[key].scale(index).quantize(v))
            passages.append(
                {
                    "kind": s["kind"],
                    "start": s["start"],
                    "at": s["at"],
                    "text": store.read_text(s["start"], s["stop"]),
                    "labels": None
                    if lab is None
                    else [None if np.isnan(x) else float(f"{x:.4g}") for x in lab],
                    "values": vals,
                }
            )
        curve = None
        if ranking.features[f].get("curve"):
            from lstmprobe.report.stat_figures import probe_curve

            curve = png_uri(probe_curve(ranking, f).figure)
        table = []
        for r in rows:
            t = scan.thresholds.get(r["unit"]) if scan is not None else None
            table.append(
                _clean(
                    {
                        k: r.get(k)
                        for k in (
                            "rank",
                            "unit",
                            "score",
                            "score_name",
                            "sign",
                            "test_metric",
                            "control_metric",
                            "selectivity",
                            "interval_low",
                            "interval_high",
                        )
                    }
                    | {
                        "threshold": None
                        if t is None
                        else {"value": t.threshold, "tpr": t.tpr, "fpr": t.fpr, "sign": t.sign}
                    }
                )
            )
        summary = ranking.features[f]
        out.append(
            {
                "name": f,
                "kind": summary.get("kind"),
                "definition": summary.get("definition", ""),
                "summary": _summary_text(summary),
                "curve": curve,
                "rows": table,
                "passages": passages,
            }
        )
    return out


def _summary_text(s: dict[str, Any]) -> str:
    """One line about a ranked feature: kind, base rate, positions, the probe's held-out result."""

    def num(v: Any) -> str:
        return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"

    bits = [str(s.get("kind", ""))]
    if s.get("base_rate") is not None:
        bits.append(f"base rate {num(s['base_rate'])}")
    if s.get("n_defined") is not None:
        bits.append(f"{s['n_defined']:,} positions")
    probe = s.get("probe") or {}
    if probe.get("test_metric") is not None:
        which = (
            "all units" if probe.get("units") == "all" else f"the top {probe.get('units')} units"
        )
        bits.append(
            f"a probe on {which}: held-out {s.get('probe_metric', '')} {num(probe['test_metric'])}, "
            f"control {num(probe.get('control_metric'))}, selectivity {num(probe.get('selectivity'))}"
        )
    if s.get("warning"):
        bits.append(f"note: {s['warning']}")
    return "; ".join(bits)


def _passage_labels(
    store: ActivationStore, name: str, spans: list[tuple[int, int]]
) -> list[np.ndarray | None]:
    """The feature's labels over each span (None when the feature cannot be computed)."""
    from lstmprobe.errors import FeatureError
    from lstmprobe.features import get_feature
    from lstmprobe.features.stream import TextReader, feature_windows

    if not spans:
        return []
    try:
        feat = get_feature(name)
    except FeatureError:
        return [None] * len(spans)
    # feature_windows wants sorted disjoint windows: label the merged ones, then cut
    merged: list[list[int]] = []
    for sa, sb in sorted(spans):
        if merged and sa <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], sb)
        else:
            merged.append([sa, sb])
    n = store.n_positions
    windows = [(x, y) for x, y in merged]
    got = dict(
        zip(
            windows,
            feature_windows(feat, TextReader(store.read_text, n), n, store.sequences, windows),
        )
    )
    out = []
    for sa, sb in spans:
        for (x, y), lab in got.items():
            if x <= sa and sb <= y:
                out.append(lab[sa - x : sb - x])
                break
    return out


def _figures(
    store: ActivationStore,
    stats: dict[str, KeyStats],
    ranking: Any,
    feats: list[str],
    progress: bool,
) -> list[dict[str, str]]:
    from lstmprobe.report import figures as F

    out = []
    gate_stats = {k: v for k, v in stats.items() if k.split("/")[1] in GATES}
    if gate_stats:
        out.append(
            {
                "id": "saturation",
                "title": "Gate saturation",
                "src": png_uri(F.saturation(gate_stats)),
                "caption": "Each dot is one unit of one gate: the fraction of positions where it is "
                "left-saturated (< 0.1) against right-saturated (> 0.9), over the whole recording "
                "(Karpathy, Johnson & Fei-Fei 2015). Near the diagonal: a gate that acts as a switch.",
            }
        )
    for layer in store.layers:
        have = store.quantities(layer)
        if "hidden" in have and ("cell" in have or "candidate" in have):
            out.append(
                {
                    "id": f"distributions-{layer}",
                    "title": f"Cell vs hidden: {layer}",
                    "src": png_uri(F.distributions(store, layer)),
                    "caption": "Per unit: 5–95% (thin) and 25–75% (thick) of its values, and the "
                    "median (dot), over evenly spaced windows of the recording; below, all units "
                    "pooled. The blog's finding: hidden is a sharper, bounded cell.",
                }
            )
    return out


def text_page(store: ActivationStore, unit: str, start: int, stop: int, width: int = 100) -> str:
    """A small self-contained page: one unit's coloured text over ``[start, stop)``, with hover."""
    key, index = check_unit(store, unit)
    scale = unit_scale(store, unit)
    values = store.read(key, start, stop, units=[index])[:, 0]
    payload = {
        "mode": "text",
        "meta": {"store": str(store.path), "positions": store.n_positions},
        "palettes": {k: lut(k).tolist() for k in ("diverging", "sequential")},
        "window": {"start": start, "text": store.read_text(start, stop)},
        "keys": [
            {
                "key": key,
                "layer": key.split("/")[0],
                "quantity": key.split("/")[1],
                "n": store.n_units(key),
                "units": [index],
                "kind": scale.kind,
                "vmin": [scale.vmin],
                "vmax": [scale.vmax],
                "rules": [scale.rule],
                "rule": [0],
                "stats": {},
                "values": _b64(scale.quantize(values)[None, :]),
            }
        ],
        "features": [],
        "ranks": {},
        "thresholds": {},
        "figures": [],
        "initial": unit,
        "width": width,
    }
    return render(payload, title=f"{unit} — positions {start}..{stop}")[0]


def render(payload: dict[str, Any], title: str) -> tuple[str, str]:
    """The page and the notebook fragment for ``payload`` (one script, one style, the data)."""
    skeleton, script, style = asset("skeleton.html"), asset("report.js"), asset("report.css")
    script += asset("causal.js")
    style += asset("causal.css")
    rid = "lpr-" + uuid.uuid4().hex[:8]
    data = json.dumps(_clean(payload), ensure_ascii=False, separators=(",", ":"))
    data = data.replace("</", "<\\/").replace("<!--", "<\\!--")

    def body(page: bool) -> str:
        return (
            f'<div class="lpr" id="{rid}">{skeleton}</div>\n'
            f'<script type="application/json" id="{rid}-data">{data}</script>\n'
            f"<script>{script}\nlstmprobeReport(document.getElementById({json.dumps(rid)}), "
            f"JSON.parse(document.getElementById({json.dumps(rid + '-data')}).textContent), "
            f"{'true' if page else 'false'});</script>"
        )

    fragment = f"<style>{style}</style>\n{body(False)}"
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{style}</style></head>\n<body>\n{body(True)}\n</body></html>\n"
    )
    return page, fragment
