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
import io
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmprobe.report.colors import GATES, lut, scale_for
from lstmprobe.report.data import (
    FeatureScan,
    KeyStats,
    check_span,
    check_unit,
    load_rankings,
    passage,
    pick_changes,
    scan_features,
    summarize,
    top_spans,
    unit_scale,
)
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


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    from lstmprobe.report.figures import THEME

    buf = io.BytesIO()
    try:
        with plt.rc_context(THEME):
            fig.savefig(buf, format="png", dpi=110, bbox_inches=None)
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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
    warn: Callable[[str], None] | None = None,
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
            from lstmprobe.report.figures import probe_curve

            curve = _png(probe_curve(ranking, f).figure)
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
                "src": _png(F.saturation(gate_stats)),
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
                    "src": _png(F.distributions(store, layer)),
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
    from lstmprobe.report.causal_views import SCRIPT as CAUSAL_SCRIPT
    from lstmprobe.report.causal_views import STYLE as CAUSAL_STYLE

    rid = "lpr-" + uuid.uuid4().hex[:8]
    data = json.dumps(_clean(payload), ensure_ascii=False, separators=(",", ":"))
    data = data.replace("</", "<\\/").replace("<!--", "<\\!--")

    def body(page: bool) -> str:
        return (
            f'<div class="lpr" id="{rid}">{_SKELETON}</div>\n'
            f'<script type="application/json" id="{rid}-data">{data}</script>\n'
            f"<script>{_SCRIPT}\n{CAUSAL_SCRIPT}\nlstmprobeReport(document.getElementById({json.dumps(rid)}), "
            f"JSON.parse(document.getElementById({json.dumps(rid + '-data')}).textContent), "
            f"{'true' if page else 'false'});</script>"
        )

    fragment = f"<style>{_STYLE}{CAUSAL_STYLE}</style>\n{body(False)}"
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}{CAUSAL_STYLE}</style></head>\n<body>\n{body(True)}\n</body></html>\n"
    )
    return page, fragment


_SKELETON = """
<header class="lpr-head"><h1>lstmprobe report</h1><div class="lpr-meta"></div>
<p class="lpr-keys-help">Keys: <kbd>j</kbd>/<kbd>k</kbd> next/previous unit, <kbd>J</kbd>/<kbd>K</kbd>
next/previous dataset, <kbd>/</kbd> type a unit, <kbd>?</kbd> help.</p></header>
<section class="lpr-explorer"><h2>Explorer</h2>
<div class="lpr-controls">
<label>layer <select class="lpr-layer"></select></label>
<label>quantity <select class="lpr-quantity"></select></label>
<label>unit <input class="lpr-index" type="number" min="0" value="0"></label>
<button class="lpr-prev" title="previous unit (k)">◀</button><button class="lpr-next" title="next unit (j)">▶</button>
<label>go to <input class="lpr-goto" type="text" placeholder="layer0/cell/17" size="22"></label>
<span class="lpr-msg" role="status"></span>
</div>
<div class="lpr-main"><div class="lpr-left">
<div class="lpr-scale"></div>
<pre class="lpr-text lpr-window"></pre>
<p class="lpr-note">Select part of the text to find the units most active there.</p>
</div>
<aside class="lpr-card"></aside></div>
<div class="lpr-span"></div>
<h3>All units of this dataset over the text</h3>
<p class="lpr-note">Rows: units; columns: chars of the text above; colour as each unit's own fixed scale.
Click a row to pick the unit.</p>
<canvas class="lpr-heat" height="10" width="10"></canvas>
</section>
<section class="lpr-features"></section>
<section class="lpr-ablations"></section>
<section class="lpr-dynamics"></section>
<section class="lpr-figures"></section>
<section class="lpr-about"><h2>How to read this report</h2>
<p>Each char's background is the unit's value <em>after</em> reading that char. Signed quantities
(cell, hidden, candidate) are red below 0 and blue above (ColorBrewer RdBu, colour-blind safe);
gates, in [0, 1], go from white to green. A unit's range is fixed over the whole recording:
gates [0, 1]; hidden and candidate [-1, 1] (tanh's range); cells ±max|value| of that unit. It is
never renormalised per passage. Spaces show as ·, tabs as →, newlines as ↵. Values are embedded
with 8 bits along that range; the hover shows the value and its precision.</p>
<p>The span view ranks units by d = (mean inside the selection − mean outside) / standard deviation,
over the embedded text: how many standard deviations a unit moves there. No threshold.</p>
<p>The ROC threshold of a unit for a binary feature is the value that maximises TPR − FPR (Youden's J).</p>
</section>
<div class="lpr-tip" hidden></div>
<div class="lpr-help" hidden><div class="lpr-help-box"><h3>Keyboard</h3>
<table><tr><td><kbd>j</kbd> / <kbd>k</kbd></td><td>next / previous unit</td></tr>
<tr><td><kbd>J</kbd> / <kbd>K</kbd></td><td>next / previous dataset</td></tr>
<tr><td><kbd>/</kbd></td><td>type a unit name (e.g. layer0/cell/17)</td></tr>
<tr><td><kbd>?</kbd></td><td>show / hide this help</td></tr>
<tr><td><kbd>Esc</kbd></td><td>close</td></tr></table></div></div>
"""

_STYLE = """
.lpr{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:1280px;margin:0 auto;padding:0 12px}
.lpr h1{font-size:22px;margin:12px 0 4px}.lpr h2{font-size:18px;margin:22px 0 6px;border-bottom:1px solid #ddd}
.lpr h3{font-size:15px;margin:14px 0 4px}.lpr-meta,.lpr-note,.lpr-keys-help{color:#555;font-size:13px;margin:2px 0}
.lpr kbd{border:1px solid #bbb;border-radius:3px;padding:0 4px;font-size:12px;background:#f7f7f7}
.lpr-controls{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:6px 0}
.lpr-controls input[type=number]{width:5em}.lpr-msg{color:#b2182b;font-size:13px}
.lpr-main{display:flex;gap:14px;align-items:flex-start}.lpr-left{flex:1;min-width:0}
.lpr-card{width:300px;flex:none;font-size:13px;border:1px solid #ddd;border-radius:4px;padding:8px;background:#fafafa}
.lpr-card table{border-collapse:collapse;width:100%}.lpr-card td{padding:1px 4px;border-bottom:1px solid #eee}
.lpr-text{font:13px/1.35 "DejaVu Sans Mono",Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all;tab-size:4;-moz-tab-size:4;
border:1px solid #ddd;padding:6px;margin:4px 0;max-height:520px;overflow:auto;background:#fff}
.lpr-text span.w{opacity:.55}.lpr-text span.on{text-decoration:underline;text-decoration-color:#000;text-underline-offset:2px}
.lpr-scale{font-size:12px;color:#333;display:flex;align-items:center;gap:6px;flex-wrap:wrap}
.lpr-bar{display:inline-block;width:160px;height:10px;border:1px solid #999}
.lpr-heat{image-rendering:pixelated;border:1px solid #ddd;max-width:100%;cursor:pointer}
.lpr table.lpr-rank{border-collapse:collapse;font-size:13px}.lpr table.lpr-rank td,.lpr table.lpr-rank th{padding:2px 6px;border-bottom:1px solid #eee;text-align:right}
.lpr table.lpr-rank td:nth-child(2),.lpr table.lpr-rank th:nth-child(2){text-align:left}
.lpr a.lpr-unit{color:#2166ac;cursor:pointer;text-decoration:underline}
.lpr-passages{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:8px}
.lpr-passages .lpr-text{max-height:none;margin:0}.lpr-pcap{font-size:12px;color:#555}
.lpr-figures img{max-width:100%;border:1px solid #eee}.lpr-fig{margin:10px 0}
.lpr-tip{position:fixed;z-index:10;background:#222;color:#fff;font:12px/1.3 monospace;padding:4px 6px;border-radius:3px;pointer-events:none;white-space:pre}
.lpr-help{position:fixed;inset:0;background:rgba(0,0,0,.35);display:flex;align-items:center;justify-content:center;z-index:20}
.lpr-help[hidden],.lpr-tip[hidden]{display:none}.lpr-help-box{background:#fff;padding:14px 20px;border-radius:6px}
.lpr-span table{border-collapse:collapse;font-size:13px}.lpr-span td,.lpr-span th{padding:1px 6px;border-bottom:1px solid #eee;text-align:right}
.lpr-span td:first-child,.lpr-span th:first-child{text-align:left}
"""

_SCRIPT = r"""
function lstmprobeReport(root, D, page) {
  "use strict";
  var $ = function (sel) { return root.querySelector(sel); };
  var GLYPH = {" ": "\u00b7", "\t": "\u2192", "\n": "\u21b5", "\r": "\u240d"}, TAB = 4;
  var PAL = D.palettes;
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]; }); }
  function fmt(x, d) { if (x === null || x === undefined || isNaN(x)) return "–"; return Number(x).toPrecision(d || 3).replace(/\.?0+(e|$)/, "$1"); }
  function decode(b64) { var s = atob(b64), a = new Uint8Array(s.length); for (var i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); return a; }
  function rgb(kind, q) { var c = PAL[kind][q]; return "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")"; }
  function ink(kind, q) { var c = PAL[kind][q]; return (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255 < 0.45 ? "#fff" : "#000"; }
  function glyph(ch) { if (GLYPH[ch]) return GLYPH[ch]; var c = ch.charCodeAt(0); return c < 32 ? String.fromCharCode(0x2400 + c) : ch; }

  // datasets and units
  var keys = D.keys, byKey = {};
  keys.forEach(function (k, i) {
    k.pos = i; byKey[k.key] = k; k.q = decode(k.values); k.L = k.q.length / Math.max(1, k.units.length);
    k.index = {}; k.units.forEach(function (u, j) { k.index[u] = j; });
  });
  var layers = []; keys.forEach(function (k) { if (layers.indexOf(k.layer) < 0) layers.push(k.layer); });
  function scaleOf(k, j) { return {kind: k.kind, vmin: k.vmin[j], vmax: k.vmax[j], rule: k.rules[k.rule[j]]}; }
  function valueOf(sc, q) { return sc.vmin + q / 255 * (sc.vmax - sc.vmin); }
  function describe(sc) { return (sc.kind === "diverging" ? "diverging red<0<blue" : "sequential white\u2192green") + ", range [" + fmt(sc.vmin) + ", " + fmt(sc.vmax) + "] = " + sc.rule; }
  function unitInfo(name) {
    var m = /^(layer\d+(?:_reverse)?)\/([a-z_]+)\/(\d+)$/.exec(String(name).trim());
    if (!m) return {error: "a unit looks like layer0/cell/17"};
    var k = byKey[m[1] + "/" + m[2]];
    if (!k) return {error: m[1] + "/" + m[2] + " is not in this report; datasets: " + keys.map(function (k) { return k.key; }).join(", ")};
    var idx = +m[3];
    if (!(idx in k.index)) return {error: k.key + " has units 0.." + (k.n - 1) + (k.units.length < k.n ? " (this report embeds " + k.units.length + " of them)" : "")};
    return {key: k, index: idx, j: k.index[idx], name: k.key + "/" + idx};
  }

  // coloured text: one span per char, whitespace visible, layout kept
  function makeText(pre, text, start, labels) {
    var frag = document.createDocumentFragment(), spans = [], col = 0;
    for (var i = 0; i < text.length; i++) {
      var ch = text[i], s = document.createElement("span");
      if (ch === "\n") { s.textContent = glyph(ch) + "\n"; col = 0; }
      else if (ch === "\t") { var w = TAB - col % TAB; s.textContent = glyph(ch) + " ".repeat(w - 1); col += w; }  // to the next tab stop, as the text has it
      else { s.textContent = glyph(ch); col += 1; }
      if (/\s/.test(ch) || ch.charCodeAt(0) < 32) s.className = "w";
      if (labels && labels[i] !== null && labels[i] > 0.5 && labels.binary) s.className += " on";
      s.dataset.i = i; frag.appendChild(s); spans.push(s);
    }
    pre.textContent = ""; pre.appendChild(frag);
    pre._spans = spans; pre._text = text; pre._start = start; pre._labels = labels || null;
    return spans;
  }
  function paint(pre, q, sc, name) {
    var spans = pre._spans;
    for (var i = 0; i < spans.length; i++) { spans[i].style.background = rgb(sc.kind, q[i]); spans[i].style.color = ink(sc.kind, q[i]); }
    pre._q = q; pre._sc = sc; pre._unit = name;
  }
  var tip = $(".lpr-tip");
  function hover(pre) {
    pre.addEventListener("mousemove", function (e) {
      var t = e.target; if (!t.dataset || t.dataset.i === undefined || !pre._q) { tip.hidden = true; return; }
      var i = +t.dataset.i, ch = pre._text[i], sc = pre._sc, v = valueOf(sc, pre._q[i]);
      var lines = "char " + JSON.stringify(ch) + " (U+" + ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0") + ")\nposition " + (pre._start + i) +
        "\n" + pre._unit + " = " + fmt(v, 4) + " \u00b1" + fmt((sc.vmax - sc.vmin) / 510, 2);
      if (pre._labels && pre._labels[i] !== undefined) lines += "\n" + pre._labels.name + " = " + fmt(pre._labels[i], 4);
      tip.textContent = lines; tip.hidden = false;
      tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 260) + "px"; tip.style.top = (e.clientY + 16) + "px";
    });
    pre.addEventListener("mouseleave", function () { tip.hidden = true; });
  }
  function scaleBar(sc) {
    var stops = [];
    for (var i = 0; i <= 8; i++) stops.push(rgb(sc.kind, Math.round(i * 255 / 8)));
    return '<span>' + fmt(sc.vmin) + '</span><span class="lpr-bar" style="background:linear-gradient(to right,' + stops.join(",") + ')"></span><span>' + fmt(sc.vmax) + '</span><span>' + esc(describe(sc)) + '</span>';
  }

  // header
  var M = D.meta || {};
  var meta = root.querySelector(".lpr-meta");
  if (meta) meta.textContent = [M.store, M.model, (M.positions || 0).toLocaleString() + " positions", M.sequences !== undefined ? M.sequences + " sequences" : "", M.created ? "recorded " + M.created : "",
    M.rankings ? "" : (D.mode === "text" ? "" : "no ranking found: run `lstmprobe find-neurons -f FEATURE` to add ranked units")].filter(Boolean).join(" \u00b7 ");

  // explorer
  var win = $(".lpr-window");
  makeText(win, D.window.text, D.window.start, null); hover(win);
  if (D.width) win.style.maxWidth = (D.width + 2) + "ch";  // plot text --html --width
  var selLayer = $(".lpr-layer"), selQ = $(".lpr-quantity"), inIdx = $(".lpr-index"), goto = $(".lpr-goto"), msg = $(".lpr-msg");
  layers.forEach(function (l) { var o = document.createElement("option"); o.value = o.textContent = l; selLayer.appendChild(o); });
  var cur = null;
  function fillQuantities(layer) {
    selQ.textContent = ""; selQ.dataset.layer = layer;
    keys.forEach(function (k) { if (k.layer === layer) { var o = document.createElement("option"); o.value = o.textContent = k.quantity; selQ.appendChild(o); } });
  }
  function show(name) {
    var u = unitInfo(name);
    if (u.error) { msg.textContent = u.error; return false; }
    msg.textContent = ""; cur = u;
    if (selLayer.value !== u.key.layer || selQ.dataset.layer !== u.key.layer) { selLayer.value = u.key.layer; fillQuantities(u.key.layer); }
    selQ.value = u.key.quantity; inIdx.value = u.index; inIdx.max = u.key.n - 1;
    var k = u.key, sc = scaleOf(k, u.j);
    paint(win, k.q.subarray(u.j * k.L, (u.j + 1) * k.L), sc, u.name);
    $(".lpr-scale").innerHTML = "<b>" + esc(u.name) + "</b> " + scaleBar(sc);
    card(u); heat(k, u.j);
    return true;
  }
  function step(d) {
    if (!cur) return; var k = cur.key, j = cur.j + d;
    if (j < 0 || j >= k.units.length) { var nk = keys[(k.pos + (d > 0 ? 1 : keys.length - 1)) % keys.length]; show(nk.key + "/" + nk.units[d > 0 ? 0 : nk.units.length - 1]); }
    else show(k.key + "/" + k.units[j]);
  }
  function stepKey(d) { if (!cur) return; var nk = keys[(cur.key.pos + d + keys.length) % keys.length]; var j = Math.min(cur.j, nk.units.length - 1); show(nk.key + "/" + nk.units[j]); }
  selLayer.addEventListener("change", function () { fillQuantities(selLayer.value); show(selLayer.value + "/" + selQ.value + "/" + inIdx.value) || show(selLayer.value + "/" + selQ.value + "/0"); });
  selQ.addEventListener("change", function () { show(selLayer.value + "/" + selQ.value + "/" + inIdx.value) || show(selLayer.value + "/" + selQ.value + "/0"); });
  inIdx.addEventListener("change", function () { show(selLayer.value + "/" + selQ.value + "/" + inIdx.value); });
  goto.addEventListener("keydown", function (e) { if (e.key === "Enter") { if (show(goto.value)) goto.blur(); } });
  $(".lpr-prev").addEventListener("click", function () { step(-1); });
  $(".lpr-next").addEventListener("click", function () { step(1); });

  // unit card: summaries, gate saturation, ranks
  function card(u) {
    var k = u.key, j = u.j, st = k.stats || {}, h = "<b>" + esc(u.name) + "</b>";
    if (st.mean) h += "<table><tr><td>mean \u00b1 std</td><td>" + fmt(st.mean[j]) + " \u00b1 " + fmt(st.std[j]) + "</td></tr><tr><td>min, max</td><td>" + fmt(st.min[j]) + ", " + fmt(st.max[j]) + "</td></tr></table>";
    var gates = keys.filter(function (g) { return g.layer === k.layer && g.stats && g.stats.low && (u.index in g.index); });
    if (gates.length) {
      h += "<h4>Gate saturation of unit " + u.index + "</h4><table><tr><td></td><td>&lt; 0.1</td><td>&gt; 0.9</td></tr>";
      gates.forEach(function (g) { var gj = g.index[u.index]; h += "<tr><td>" + (g.key === k.key ? "<b>" + g.quantity + "</b>" : g.quantity) + "</td><td>" + fmt(100 * g.stats.low[gj], 3) + "%</td><td>" + fmt(100 * g.stats.high[gj], 3) + "%</td></tr>"; });
      h += "</table>";
    }
    var r = (D.ranks || {})[u.name];
    if (r && r.length) {
      h += "<h4>Scores per feature</h4><table><tr><td>feature</td><td>rank</td><td>score</td><td>sign</td></tr>";
      r.forEach(function (x) { h += "<tr><td>" + esc(x[0]) + "</td><td>" + x[1] + "</td><td>" + fmt(x[2]) + " " + esc(x[4] || "") + "</td><td>" + (x[3] > 0 ? "+" : "\u2212") + "</td></tr>"; });
      h += "</table>";
    } else if (D.meta && D.meta.rankings) h += "<p>Not in the ranking.</p>";
    var t = (D.thresholds || {})[u.name];
    if (t) Object.keys(t).forEach(function (f) { var x = t[f]; h += "<p>" + esc(f) + ": on when " + (x.sign > 0 ? "\u2265 " : "\u2264 ") + fmt(x.threshold) + " (ROC: TPR " + fmt(x.tpr, 2) + ", FPR " + fmt(x.fpr, 2) + ")</p>"; });
    if (causal) h += causal.card(u);
    root.querySelector(".lpr-card").innerHTML = h;
  }

  // all units of the dataset as a heatmap
  var canvas = $(".lpr-heat");
  function heat(k, j) {
    if (!canvas || !k.units.length || !k.L) return;
    var W = k.L, H = k.units.length, ctx = canvas.getContext("2d");
    canvas.width = W; canvas.height = H;
    canvas.style.width = Math.min(1200, Math.max(W, 600)) + "px"; canvas.style.height = Math.max(H * 3, 60) + "px";
    var img = ctx.createImageData(W, H), p = PAL[k.kind];
    for (var r = 0; r < H; r++) for (var c = 0; c < W; c++) { var q = k.q[r * W + c], o = 4 * (r * W + c); img.data[o] = p[q][0]; img.data[o + 1] = p[q][1]; img.data[o + 2] = p[q][2]; img.data[o + 3] = 255; }
    ctx.putImageData(img, 0, 0); ctx.fillStyle = "rgba(0,0,0,0.8)"; ctx.fillRect(0, j, 3, 1); ctx.fillRect(W - 3, j, 3, 1);
    canvas._key = k;
  }
  if (canvas) canvas.addEventListener("click", function (e) {
    var k = canvas._key; if (!k) return; var rect = canvas.getBoundingClientRect();
    var r = Math.floor((e.clientY - rect.top) / rect.height * k.units.length); show(k.key + "/" + k.units[Math.max(0, Math.min(k.units.length - 1, r))]);
  });

  // select a span -> units most active there relative to the rest of the text
  var moments = null;
  function windowMoments() {
    if (moments) return moments; moments = [];
    keys.forEach(function (k) {
      for (var j = 0; j < k.units.length; j++) {
        var s = 0, ss = 0, base = j * k.L, sc = scaleOf(k, j);
        for (var i = 0; i < k.L; i++) { var v = valueOf(sc, k.q[base + i]); s += v; ss += v * v; }
        var m = s / k.L; moments.push({k: k, j: j, sum: s, sd: Math.sqrt(Math.max(ss / k.L - m * m, 0))});
      }
    });
    return moments;
  }
  function spanQuery(a, b) {
    var box = $(".lpr-span"), n = b - a, L = D.window.text.length;
    if (n < 1) return;
    if (n >= L) { box.innerHTML = "<p>Select part of the text, not all of it: the units are compared inside vs outside.</p>"; return; }
    var res = [];
    windowMoments().forEach(function (mo) {
      if (!(mo.sd > 0)) return;
      var k = mo.k, sc = scaleOf(k, mo.j), base = mo.j * k.L, s = 0;
      for (var i = a; i < b; i++) s += valueOf(sc, k.q[base + i]);
      var inside = s / n, outside = (mo.sum - s) / (L - n);
      res.push({name: k.key + "/" + k.units[mo.j], d: (inside - outside) / mo.sd, inside: inside, outside: outside});
    });
    res.sort(function (x, y) { return y.d - x.d; });
    var h = "<h3>Units most active in positions " + (D.window.start + a) + ".." + (D.window.start + b) + " (" + n + " chars)</h3>" +
      "<p class='lpr-note'>d = (mean inside \u2212 mean outside) / sd over the embedded text; highest first. " +
      "Most negative: " + res.slice(-3).reverse().map(function (x) { return "<a class='lpr-unit' data-unit='" + x.name + "'>" + x.name + "</a> (" + fmt(x.d) + ")"; }).join(", ") + ".</p>" +
      "<table><tr><th>unit</th><th>d</th><th>mean inside</th><th>mean outside</th></tr>";
    res.slice(0, 12).forEach(function (x) { h += "<tr><td><a class='lpr-unit' data-unit='" + x.name + "'>" + x.name + "</a></td><td>" + fmt(x.d) + "</td><td>" + fmt(x.inside) + "</td><td>" + fmt(x.outside) + "</td></tr>"; });
    box.innerHTML = h + "</table>";
  }
  win.addEventListener("mouseup", function () {
    var sel = window.getSelection(); if (!sel || sel.isCollapsed || !sel.rangeCount) return;
    function idx(node) { var el = node.nodeType === 1 ? node : node.parentElement; el = el && el.closest("[data-i]"); return el && win.contains(el) ? +el.dataset.i : null; }
    var r = sel.getRangeAt(0), a = idx(r.startContainer), b = idx(r.endContainer);
    if (a === null || b === null) return;
    if (a > b) { var t = a; a = b; b = t; }
    spanQuery(a, b + 1);
  });
  root.addEventListener("click", function (e) { var t = e.target.closest && e.target.closest("a.lpr-unit"); if (t) { e.preventDefault(); if (show(t.dataset.unit)) $(".lpr-explorer").scrollIntoView(); } });

  // ranking sections
  var fs = $(".lpr-features");
  if (D.features && D.features.length) {
    var h = "<h2>Ranked units per feature</h2>";
    D.features.forEach(function (f, fi) {
      h += "<h3>" + esc(f.name) + "</h3><p class='lpr-note'>" + esc(f.definition) + "</p><p class='lpr-note'>" + esc(f.summary) + "</p>";
      if (f.curve) h += "<img alt='top-k probe curve of " + esc(f.name) + "' src='" + f.curve + "' style='float:right;max-width:340px'>";
      h += "<table class='lpr-rank'><tr><th>rank</th><th>unit</th><th>score</th><th>sign</th><th>interval</th><th>held-out</th><th>control</th><th>selectivity</th><th>ROC threshold</th></tr>";
      f.rows.forEach(function (r) {
        var th = r.threshold ? (r.threshold.sign > 0 ? "\u2265 " : "\u2264 ") + fmt(r.threshold.value) + " (TPR " + fmt(r.threshold.tpr, 2) + ", FPR " + fmt(r.threshold.fpr, 2) + ")" : (f.kind === "binary" ? "\u2013" : "n/a (continuous)");
        h += "<tr><td>" + r.rank + "</td><td><a class='lpr-unit' data-unit='" + esc(r.unit) + "'>" + esc(r.unit) + "</a></td><td>" + fmt(r.score) + " " + esc(r.score_name || "") + "</td><td>" + (r.sign > 0 ? "+" : "\u2212") +
          "</td><td>" + (r.interval_low !== null && r.interval_low !== undefined ? "[" + fmt(r.interval_low) + ", " + fmt(r.interval_high) + "]" : "\u2013") + "</td><td>" + fmt(r.test_metric) + "</td><td>" + fmt(r.control_metric) + "</td><td>" + fmt(r.selectivity) + "</td><td>" + th + "</td></tr>";
      });
      h += "</table><div style='clear:both'></div>";
      f.rows.forEach(function (r, ri) {
        h += "<h4>" + esc(r.unit) + " (rank " + r.rank + ")</h4><div class='lpr-passages' data-f='" + fi + "' data-u='" + esc(r.unit) + "'></div>";
      });
    });
    fs.innerHTML = h;
    D.features.forEach(function (f, fi) {
      f.rows.forEach(function (r) {
        var box = fs.querySelector(".lpr-passages[data-f='" + fi + "'][data-u='" + r.unit.replace(/'/g, "\\'") + "']"), u = unitInfo(r.unit);
        if (!box || u.error) return;
        var sc = scaleOf(u.key, u.j);
        f.passages.forEach(function (p) {
          if (!p.values[r.unit]) return;
          var div = document.createElement("div"), cap = document.createElement("div"), pre = document.createElement("pre");
          cap.className = "lpr-pcap"; pre.className = "lpr-text";
          cap.textContent = (p.kind === "change" ? f.name + " changes at " + p.at : "most active (peak at " + p.at + ")") + " \u00b7 positions " + p.start + ".." + (p.start + p.text.length) + (p.labels && f.kind === "binary" ? " \u00b7 underlined: " + f.name + " = 1" : "");
          var labels = p.labels ? p.labels.slice() : null; if (labels) { labels.name = f.name; labels.binary = f.kind === "binary"; }
          makeText(pre, p.text, p.start, labels); paint(pre, decode(p.values[r.unit]), sc, r.unit); hover(pre);
          div.appendChild(cap); div.appendChild(pre); box.appendChild(div);
        });
        var sb = document.createElement("div"); sb.className = "lpr-scale"; sb.innerHTML = scaleBar(sc); box.parentNode.insertBefore(sb, box);
      });
    });
  }
  // figures
  var fg = $(".lpr-figures");
  if (D.figures && D.figures.length) {
    var g = "<h2>All units at a glance</h2>";
    D.figures.forEach(function (f) { g += "<div class='lpr-fig' id='" + esc(f.id) + "'><h3>" + esc(f.title) + "</h3><img alt='" + esc(f.title) + "' src='" + f.src + "'><p class='lpr-note'>" + esc(f.caption) + "</p></div>"; });
    fg.innerHTML = g;
  }
  if (D.mode === "text") {
    ["lpr-controls", "lpr-card", "lpr-heat", "lpr-about", "lpr-keys-help"].forEach(function (c) { var e = root.querySelector("." + c); if (e) e.style.display = "none"; });
    root.querySelectorAll(".lpr-explorer h3, .lpr-explorer .lpr-note, .lpr-explorer h2").forEach(function (e) { e.style.display = "none"; });
    root.querySelector("h1").textContent = D.initial;
  }

  // ablations and dynamics (acts.ablations.h5, acts.dynamics.json), drawn when present
  var causal = typeof lstmprobeCausal === "function" ? lstmprobeCausal(root, D, {esc: esc, fmt: fmt, rgb: rgb, ink: ink, makeText: makeText}) : null;

  // keyboard
  var help = $(".lpr-help");
  // a page takes the keys everywhere; inline in a notebook, only while the report has the focus
  var keyTarget = page ? document : root;
  if (!page) root.tabIndex = 0;
  keyTarget.addEventListener("keydown", function (e) {
    var tag = (e.target && e.target.tagName) || "";
    if (e.key === "Escape") { help.hidden = true; if (tag === "INPUT") e.target.blur(); return; }
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "j") step(1); else if (e.key === "k") step(-1);
    else if (e.key === "J") stepKey(1); else if (e.key === "K") stepKey(-1);
    else if (e.key === "?") help.hidden = !help.hidden;
    else if (e.key === "/") { e.preventDefault(); goto.focus(); }
    else return;
  });
  help.addEventListener("click", function () { help.hidden = true; });
  show(D.initial) || show(keys[0].key + "/" + keys[0].units[0]);
}
"""
