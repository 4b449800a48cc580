"""``lstmprobe demo``: the whole pipeline on the bundled model and sample, in one command.

Records ``code-lstm`` over ``sample:code``, ranks its units for the ``quote`` and ``indent``
features with held-out probes and controls, and writes the HTML report of the recording.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

DEMO_MODEL = "code-lstm"
DEMO_SAMPLE = "code"
DEMO_FEATURES = ("quote", "indent")
#: the report's bytes per shown value: one byte, base64 encoded, with the page's markup and
#: figures (measured on the demo's report)
REPORT_BYTES_PER_VALUE = 1.52


def megabytes(n: int) -> str:
    """Bytes for people: ``12.3 MB``, ``571 MB``, ``79.5 GB``."""
    if n >= 1e9:
        return f"{n / 1e9:,.1f} GB"
    return f"{n / 1e6:,.0f} MB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"


def _free_bytes(path: Path) -> int | None:
    """Free bytes on the file system of ``path`` (or of its nearest existing parent)."""
    for folder in (path, *path.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


def run_demo(
    outdir: str | os.PathLike[str] = "lstmprobe-demo",
    chars: int | None = None,
    progress: bool = True,
    warn: Any = None,
    announce: Any = None,
) -> dict[str, Any]:
    """Run record -> find-neurons -> report into ``outdir`` and return where everything is.

    ``chars`` keeps only the first characters of the sample (a quicker demo). The demo owns
    ``outdir``: a previous demo's files there are replaced. Before any work, ``announce`` (a
    callable taking one line) hears where the files go and about how many bytes they take; a
    disk without room for them is a :class:`~lstmprobe.errors.StoreError`.
    """
    from lstmprobe.errors import StoreError
    from lstmprobe.models import load_model
    from lstmprobe.models.bundled import SAMPLES
    from lstmprobe.probes import rank_units
    from lstmprobe.probes.ranking import save_ranking
    from lstmprobe.record import RecordOptions, layout, record_corpus
    from lstmprobe.report.html import MAX_CHARS
    from lstmprobe.store import (
        ActivationStore,
        Recording,
        default_chunk_positions,
        recording_bytes,
    )
    from lstmprobe.text import read_corpus

    outdir = Path(outdir).absolute()
    text = read_corpus(SAMPLES[DEMO_SAMPLE].path)
    if chars is not None:
        text = text[:chars]
    loaded = load_model(DEMO_MODEL)
    # the recording as the store lays it out, about 500 bytes of JSON per unit and feature
    # ranked, and the report: REPORT_BYTES_PER_VALUE for each unit over its first MAX_CHARS chars
    widths = list(layout(loaded.model).values())
    units = sum(widths)
    rows = default_chunk_positions(widths, "float16", len(text))
    needed = recording_bytes(widths, "float16", len(text), rows, margin=0)
    needed += 500 * units * len(DEMO_FEATURES) + int(
        REPORT_BYTES_PER_VALUE * units * min(len(text), MAX_CHARS)
    )
    free = _free_bytes(outdir)
    if free is not None and needed > free:
        raise StoreError(
            f"the demo needs about {megabytes(needed)} in {outdir} but only {megabytes(free)} are free "
            "there; give `outdir=DIR` on a disk with room, or `chars=N` for a smaller demo"
        )
    if announce is not None:
        room = f"; {megabytes(free)} free there" if free is not None else ""
        announce(
            f"demo: recording {DEMO_MODEL} ({units:,} units) over sample:{DEMO_SAMPLE} "
            f"({len(text):,} chars) into {outdir}: about {megabytes(needed)}{room} "
            "(`outdir=DIR` elsewhere, `chars=N` for less)"
        )
    outdir.mkdir(parents=True, exist_ok=True)
    files = Recording.at(outdir / "acts.h5")
    store_path, rankings_path = files.store, files.rankings
    for earlier in (files.rankings, files.ablations, files.dynamics):  # of an earlier demo's
        earlier.unlink(missing_ok=True)
    result = record_corpus(loaded, text, store_path, RecordOptions(), force=True, progress=progress)
    with ActivationStore(store_path) as store:
        ranking = rank_units(store, list(DEMO_FEATURES), progress=progress, warn=warn)
    save_ranking(ranking, files, warn=warn)
    summary = {
        "outdir": str(outdir),
        "bytes_estimated": needed,
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
        report_path = report.save(files.report)
    summary["report"] = str(report_path)
    summary["report_bytes"] = report_path.stat().st_size
    summary["bytes_written"] = sum(
        p.stat().st_size for p in (store_path, rankings_path, report_path) if p.exists()
    )
    return summary
