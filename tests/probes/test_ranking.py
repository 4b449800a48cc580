"""Rankings: files and the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lstmprobe.probes import (
    Ranking,
    rank_units,
)


def test_ranking_serialises(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ranking = rank_units(store, ["quote"], n_boot=20)
    text = ranking.to_json(tmp_path / "r.json")
    again = Ranking.read_json(tmp_path / "r.json")
    assert again.top(3) == ranking.top(3)
    assert json.loads(text)["format"] == "lstmprobe.rankings"
    csv_text = ranking.to_csv()
    assert csv_text.splitlines()[0].startswith("feature,rank,unit,score")
    assert csv_text.splitlines()[1].startswith("quote,1,layer0/cell/4,")
    assert "layer0/cell/4" in ranking.format_table(3)


def test_summary_line_names_the_units_the_probe_used() -> None:
    from lstmprobe.probes.ranking import _summary_line

    base = {"kind": "binary", "base_rate": 0.3, "n_defined": 100, "probe_metric": "auc"}
    probe = {"test_metric": 0.9, "control_metric": 0.5, "selectivity": 0.4}
    assert "probe on all units" in _summary_line(
        "quote", {**base, "probe": {**probe, "units": "all"}}
    )
    top = _summary_line("quote", {**base, "probe": {**probe, "units": 32}})
    assert "probe on top 32 units: held-out auc 0.900" in top


@pytest.mark.slow  # a real process
def test_reading_a_rankings_file_loads_no_scikit_learn(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    path = tmp_path / "r.json"
    rank_units(store, "quote", probe=False).to_json(path)
    code = (
        "import sys; from lstmprobe.probes import Ranking; "
        f"r = Ranking.read_json({str(path)!r}); print(len(r), r.format_table(3).count(chr(10))); "
        "print(sorted(m for m in ('sklearn', 'numba', 'scipy', 'h5py') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"
