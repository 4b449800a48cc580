"""The self-contained HTML report and its explorer.

One file, with every script, style, image and value embedded: no server, no network, no CDN; it
opens from a ``file://`` URL, can be mailed or attached to a paper. Plain JavaScript, nothing
else runs. What it embeds (docs/report.md):

* the explorer's text: ``max_chars`` chars from ``start``, and for every shown unit its value at
  each of them, quantised to 8 bits along the unit's fixed colour scale
  (:meth:`~lstmprobe.report.colors.Scale.quantize`: codes 1..253 inside the range, a step of
  ``(vmax - vmin) / 252``; 0 and 255 beyond it, marked in the text);
* per-unit summaries over the whole recording (mean, std, min, max, gate saturation);
* with a ranking: per feature its summary, probe curve, top units with scores, intervals, held-out
  metrics, selectivity and an ROC-suggested threshold, and for each top unit its coloured text on
  passages where the feature changes and where the unit is most active
  (:mod:`lstmprobe.report.ranked`).

The span statistic of the explorer (select text -> units most active there) is the standardised
difference ``d = (mean inside - mean outside) / sd`` of each unit's values over the embedded
text, ranked by ``d``: no fixed threshold.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmprobe.names import Key
from lstmprobe.probes.ranking import Ranking
from lstmprobe.report.colors import Range, code_palette, scale_for
from lstmprobe.report.data import (
    KeyStats,
    Warn,
    check_span,
    check_unit,
    load_rankings,
    summarize,
    unit_scale,
)
from lstmprobe.report.output import asset, compact, key_parts, png_uri, uint8_b64, unit_parts
from lstmprobe.report.ranked import feature_sections
from lstmprobe.store import ActivationStore, parse_unit

#: Default number of chars the explorer embeds (``--max-chars``).
MAX_CHARS = 2000


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


def _r(values: Any, digits: int = 4) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=np.float64)]


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
    ranking: Ranking | None = None,
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
    rng: Range | str | None = None,
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
    rng : Range or str, optional
        How each unit's colour range is chosen: ``p99`` (default), ``pNN``, ``max`` or
        ``LO,HI`` (:class:`~lstmprobe.report.colors.Range`).

    Examples
    --------
    >>> with ActivationStore("acts.h5") as store:  # doctest: +SKIP
    ...     report = build_report(store, top=3)
    >>> report  # in Jupyter: the report inline  # doctest: +SKIP
    """
    from lstmprobe.errors import ReportError

    if max_chars < 1:
        raise ReportError(f"`max_chars` must be at least 1, got {max_chars}")
    rng = Range.parse(rng)
    if ranking is None and use_rankings:
        ranking = load_rankings(store, rankings_path, warn)
    feats: list[str] = []
    if ranking is not None:
        scored = ranking.scored
        if features:
            missing = [f for f in features if f not in ranking.features]
            if missing:
                raise ReportError(
                    f"feature {missing[0]!r} is not in the ranking (it has {', '.join(ranking.features)}); "
                    f"rank it first: `rank_units(store={store.path}, features={missing[0]})`"
                )
            feats = [f for f in features if f in scored]
            for f in features:
                if f not in scored and warn is not None:
                    warn(f"feature {f} has no ranked units: {ranking.features[f].skipped}")
        else:
            feats = scored
    elif features:
        raise ReportError(
            f"`features` need a ranking of {store.path}; rank it first: "
            f"`rank_units(store={store.path}, features={features[0]})`"
        )
    top_rows = {f: ranking.for_feature(f)[:top] for f in feats} if ranking is not None else {}
    top_units = {r.name for rows in top_rows.values() for r in rows}
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
        scales = [s.scale(i, rng) for i in idx]
        q = (
            np.stack([sc.quantize(values[:, j]) for j, sc in enumerate(scales)])
            if idx
            else np.zeros((0, b - a), np.uint8)
        )
        gate = Key.parse(key).is_gate
        nonfinite = {
            name: getattr(s, name)[idx].tolist()
            for name in ("posinf", "neginf", "nan")
            if getattr(s, name)[idx].any()
        }
        key_data.append(
            {
                **key_parts(key),
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
                    **nonfinite,  # counts of +inf, -inf, NaN where a shown unit has any
                },
                "values": uint8_b64(q),
            }
        )
        n_shown += len(idx)

    feature_data, thresholds = (
        feature_sections(
            store, ranking, top_rows, stats, progress=progress, figures=figures, rng=rng
        )
        if feats and ranking is not None
        else ([], {})
    )

    figs = []
    if figures:
        figs = _figures(store, stats, ranking, feats, progress)

    ranks: dict[str, list[list[Any]]] = {}
    if ranking is not None:
        for r in ranking.rows:
            if ranking.features[r.feature].scored:
                ranks.setdefault(r.name, []).append(
                    [r.feature, r.rank, r.score, r.sign, r.score_name]
                )
    from lstmprobe.report.causal_views import causal_payload

    causal = causal_payload(store, stats, sorted(top_units), figures=figures, warn=warn)
    from lstmprobe.report.causal_depth import attributions_section, patching_section

    causal["patching"] = patching_section(store, figures=figures, warn=warn)
    causal["attributions"] = attributions_section(store, warn=warn)
    from lstmprobe.report.profiles import profile_payload

    profiles = profile_payload(store, sorted(top_units), warn=warn, progress=progress)
    initial = unit_parts(
        top_rows[feats[0]][0].unit if feats and top_rows[feats[0]] else Key.parse(keys[0]).unit(0)
    )
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
        "palettes": {k: code_palette(k).tolist() for k in ("diverging", "sequential")},
        "range": str(rng),
        "window": {"start": a, "text": store.read_text(a, b)},
        "keys": key_data,
        "features": feature_data,
        "ranks": ranks,
        "thresholds": thresholds,
        "figures": figs,
        "initial": initial,
        "profiles": profiles,
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
        "top_units": {f: [r.name for r in rows] for f, rows in top_rows.items()},
        "bytes": len(page.encode("utf-8")),
        "ablations": 0 if causal["ablations"] is None else len(causal["ablations"]["conditions"]),
        "dynamics": causal["dynamics"] is not None,
        "patching": 0 if causal["patching"] is None else len(causal["patching"]["conditions"]),
        "attributions": 0
        if causal["attributions"] is None
        else len(causal["attributions"]["entries"]),
    }
    return Report(page, fragment, manifest)


def _model_line(store: ActivationStore) -> str:
    imported = store.model.get("imported") if isinstance(store.model, dict) else None
    if isinstance(imported, dict):  # `lstmprobe import`: states of a model we do not have
        return f"imported from {imported.get('format', '?')}: {imported.get('project', '?')}"
    cfg = store.model.get("config", {}) if isinstance(store.model, dict) else {}
    if not cfg:
        return ""
    cell = str(cfg.get("cell", "lstm")).upper()
    return (
        f"{cfg.get('num_layers', '?')}-layer {cell}, {cfg.get('hidden_size', '?')} units per layer"
    )


def _figures(
    store: ActivationStore,
    stats: dict[str, KeyStats],
    ranking: Ranking | None,
    feats: list[str],
    progress: bool,
) -> list[dict[str, str]]:
    from lstmprobe.report import figures as F

    out = []
    gate_stats = {k: v for k, v in stats.items() if Key.parse(k).is_gate}
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


def text_page(
    store: ActivationStore,
    unit: str,
    start: int,
    stop: int,
    width: int = 100,
    rng: Range | str | None = None,
) -> str:
    """A small self-contained page: one unit's coloured text over ``[start, stop)``, with hover
    (``rng``: how its colour range is chosen)."""
    key, index = check_unit(store, unit)
    scale = unit_scale(store, unit, rng)
    values = store.read(key, start, stop, units=[index])[:, 0]
    payload = {
        "mode": "text",
        "meta": {"store": str(store.path), "positions": store.n_positions},
        "palettes": {k: code_palette(k).tolist() for k in ("diverging", "sequential")},
        "window": {"start": start, "text": store.read_text(start, stop)},
        "keys": [
            {
                **key_parts(key),
                "n": store.n_units(key),
                "units": [index],
                "kind": scale.kind,
                "vmin": [scale.vmin],
                "vmax": [scale.vmax],
                "rules": [scale.rule],
                "rule": [0],
                "stats": {},
                "values": uint8_b64(scale.quantize(values)[None, :]),
            }
        ],
        "features": [],
        "ranks": {},
        "thresholds": {},
        "figures": [],
        "initial": unit_parts(unit),
        "width": width,
    }
    return render(payload, title=f"{unit} — positions {start}..{stop}")[0]


#: What the page may load and do: nothing but its own script (by hash), its own style (by hash)
#: and the images it embeds (``data:``); no base URL, no form, no frame, no connection.
CSP = (
    "default-src 'none'; img-src data:; style-src '{style}'; script-src '{script}'; "
    "base-uri 'none'; form-action 'none'; frame-src 'none'; child-src 'none'; "
    "object-src 'none'; connect-src 'none'; font-src 'none'; media-src 'none'; "
    "manifest-src 'none'; worker-src 'none'"
)
#: The notebook fragment's frame: scripts run in it, nothing else (no same origin, no top
#: navigation, no forms, no popups).
SANDBOX = "allow-scripts"


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def render(payload: dict[str, Any], title: str) -> tuple[str, str]:
    """The page and the notebook fragment for ``payload`` (one script, one style, the data).

    The page's policy (:data:`CSP`) lets its own script and style run (by their hashes) and
    embedded images show, and nothing else: no network, no other script, no form, no base URL.
    The data goes in as JSON text (``<`` escaped), which the script reads and shows as text,
    never as markup. The fragment (:meth:`Report._repr_html_`) is the same page in a sandboxed
    ``<iframe srcdoc>`` (:data:`SANDBOX`): a notebook's own page gains no script, style or
    navigation from it, and the page keeps its policy there.
    """
    skeleton, script, style = asset("skeleton.html"), asset("report.js"), asset("report.css")
    script += asset("causal.js") + asset("depth.js") + asset("profile.js")
    style += asset("causal.css") + asset("depth.css") + asset("profile.css")
    rid = "lpr-" + uuid.uuid4().hex[:8]
    data = json.dumps(compact(payload), ensure_ascii=False, separators=(",", ":"))
    data = data.replace("<", "\\u003c")  # no </script> or <!-- inside the script element
    run = (
        f"{script}\nlstmprobeReport(document.getElementById({json.dumps(rid)}), "
        f"JSON.parse(document.getElementById({json.dumps(rid + '-data')}).textContent), true);"
    )
    policy = CSP.format(style=_sha256(style), script=_sha256(run))
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(title)}</title>\n<style>{style}</style></head>\n<body>\n"
        f'<div class="lpr" id="{rid}">{skeleton}</div>\n'
        f'<script type="application/json" id="{rid}-data">{data}</script>\n'
        f"<script>{run}</script>\n</body></html>\n"
    )
    fragment = (
        f'<iframe class="lstmprobe-report" sandbox="{SANDBOX}" referrerpolicy="no-referrer" '
        f'title="{html.escape(title)}" width="100%" height="900" frameborder="0" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>'
    )
    return page, fragment
