"""The report's ranking sections: for each ranked feature its summary, probe curve, top units
(scores, intervals, held-out metrics, selectivity, ROC threshold) and passages of text, where the
feature changes and where each top unit is most active.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lstmprobe.probes.ranking import Ranking
from lstmprobe.probes.rows import FeatureSummary, RankingRow
from lstmprobe.report.colors import Range
from lstmprobe.report.data import KeyStats, passage, top_spans
from lstmprobe.report.feature_scan import FeatureScan, pick_changes, scan_features
from lstmprobe.report.output import compact, png_uri, uint8_b64, unit_parts
from lstmprobe.store import ActivationStore, parse_unit

#: Chars per passage of the ranking sections.
PASSAGE = 160
#: Passages where a feature changes, and top-activating passages per unit.
N_CHANGE_PASSAGES = 3
N_TOP_PASSAGES = 2


def feature_sections(
    store: ActivationStore,
    ranking: Ranking,
    top_rows: dict[str, list[RankingRow]],
    stats: dict[str, KeyStats],
    progress: bool = False,
    figures: bool = True,
    rng: Range | str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The sections of the features in ``top_rows`` (feature -> its top rows, best first), and
    the ROC thresholds of their units (unit -> feature -> threshold), from one streaming pass;
    with ``figures``, each feature's probe curve too; ``rng``: how the units' colour ranges are
    chosen (:class:`~lstmprobe.report.colors.Range`)."""
    feats = list(top_rows)
    want = {f: [(r.name, r.sign or 1) for r in top_rows[f]] for f in feats}
    kinds = {f: ranking.features[f].kind or "continuous" for f in feats}
    scans = scan_features(store, want, stats, kinds, progress=progress)
    thresholds: dict[str, dict[str, Any]] = {}
    for f, sc in scans.items():
        for u, t in sc.thresholds.items():
            thresholds.setdefault(u, {})[f] = {
                "threshold": t.threshold,
                "tpr": t.tpr,
                "fpr": t.fpr,
                "sign": t.sign,
            }
    return _sections(
        store, ranking, feats, top_rows, stats, scans, figures, Range.parse(rng)
    ), thresholds


def _sections(
    store: ActivationStore,
    ranking: Ranking,
    feats: list[str],
    top_rows: dict[str, list[RankingRow]],
    stats: dict[str, KeyStats],
    scans: dict[str, FeatureScan],
    figures: bool,
    rng: Range,
) -> list[dict[str, Any]]:
    out = []
    for f in feats:
        rows = top_rows[f]
        units = [r.name for r in rows]
        scan = scans.get(f)
        spans: list[dict[str, Any]] = []
        centers = pick_changes(scan.changes, N_CHANGE_PASSAGES) if scan is not None else []
        for c in centers:
            pa, pb = passage(store, c, PASSAGE, before=0.5)
            spans.append({"kind": "change", "start": pa, "stop": pb, "at": c, "units": units})
        for r in rows:
            key, index = str(r.unit.key), r.unit.index
            for pa, pb, peak in top_spans(
                store, stats[key], index, r.sign or 1, N_TOP_PASSAGES, PASSAGE
            ):
                spans.append(
                    {"kind": "top", "start": pa, "stop": pb, "at": peak, "units": [r.name]}
                )
        labels = _passage_labels(store, f, [(s["start"], s["stop"]) for s in spans])
        passages = []
        for s, lab in zip(spans, labels):
            vals = {}
            for u in s["units"]:
                key, index = parse_unit(u)
                v = store.read(key, s["start"], s["stop"], units=[index])[:, 0]
                vals[u] = uint8_b64(stats[key].scale(index, rng).quantize(v))
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
        if figures and ranking.features[f].curve:
            from lstmprobe.report.stat_figures import probe_curve

            curve = png_uri(probe_curve(ranking, f).figure)
        table = []
        for r in rows:
            t = scan.thresholds.get(r.name) if scan is not None else None
            values = r.to_dict()
            table.append(
                compact(
                    {
                        k: values[k]
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
                | {"unit": unit_parts(r.unit)}  # parsed here: the page never parses names
            )
        summary = ranking.features[f]
        out.append(
            {
                "name": f,
                "kind": summary.kind,
                "definition": summary.definition,
                "summary": _summary_text(summary),
                "curve": curve,
                "rows": table,
                "passages": passages,
            }
        )
    return out


def _summary_text(s: FeatureSummary) -> str:
    """One line about a ranked feature: kind, base rate, positions, the probe's held-out result."""

    def num(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    bits = [s.kind or ""]
    if s.base_rate is not None:
        bits.append(f"base rate {num(s.base_rate)}")
    bits.append(f"{s.n_defined:,} positions")
    probe = s.probe_text()
    if probe is not None:
        bits.append(f"a {probe}")
    if s.warning:
        bits.append(f"note: {s.warning}")
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
