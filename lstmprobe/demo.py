"""``lstmprobe demo``: the whole pipeline on the bundled model and sample, in one command.

Records ``code-lstm`` over ``sample:code``, then ranks its units for the ``quote`` and ``indent``
features with held-out probes and controls. Each later stage of lstmprobe joins the demo as it
lands.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DEMO_MODEL = "code-lstm"
DEMO_SAMPLE = "code"
DEMO_FEATURES = ("quote", "indent")


def run_demo(
    outdir: str | os.PathLike[str] = "lstmprobe-demo",
    chars: int | None = None,
    progress: bool = True,
    warn: Any = None,
) -> dict[str, Any]:
    """Run record -> find-neurons into ``outdir`` and return where everything is.

    ``chars`` keeps only the first characters of the sample (a quicker demo). The demo owns
    ``outdir``: a previous demo's files there are replaced.
    """
    from lstmprobe.bundled import SAMPLES
    from lstmprobe.models import load_model
    from lstmprobe.probes import rank_units
    from lstmprobe.record import RecordOptions, record_corpus
    from lstmprobe.store import ActivationStore, write_json_atomic
    from lstmprobe.text import read_corpus

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    text = read_corpus(SAMPLES[DEMO_SAMPLE].path)
    if chars is not None:
        text = text[:chars]
    loaded = load_model(DEMO_MODEL)
    store_path = outdir / "acts.h5"
    result = record_corpus(loaded, text, store_path, RecordOptions(), force=True, progress=progress)
    with ActivationStore(store_path) as store:
        ranking = rank_units(store, list(DEMO_FEATURES), progress=progress, warn=warn)
        rankings_path = store.sibling("rankings.json")
    write_json_atomic(rankings_path, json.loads(ranking.to_json()))
    summary = {
        "model": DEMO_MODEL,
        "corpus": f"sample:{DEMO_SAMPLE}",
        "positions": result.positions,
        "record_chars_per_second": round(result.chars_per_second),
        "store": str(store_path),
        "rankings": str(rankings_path),
        "top_units": {f: ranking.top(3, feature=f) for f in DEMO_FEATURES},
        "table": ranking.format_table(5),
    }
    # the report: every unit of the recording, the ranked quote and indent units in colour
    from lstmprobe.report.html import build_report

    with ActivationStore(store_path) as store:
        report = build_report(store, ranking=ranking, progress=progress, warn=warn)
        report_path = report.save(store.sibling("report.html"))
    summary["report"] = str(report_path)
    summary["report_bytes"] = report_path.stat().st_size
    return summary
