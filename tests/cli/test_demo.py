from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.store import ActivationStore

# the whole pipeline on the bundled model, twice per test
pytestmark = pytest.mark.slow


def test_demo_runs_the_pipeline_on_the_bundled_model(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "-o", str(out), "--chars", "3000", "--json", "-q"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["model"] == "code-lstm" and summary["positions"] == 3000
    with ActivationStore(summary["store"]) as store:
        assert store.complete and store.n_positions == 3000
        assert "layer1/cell" in store.keys
    rankings = json.loads((out / "acts.rankings.json").read_text())
    assert set(summary["top_units"]) == {"quote", "indent"}
    for units in summary["top_units"].values():
        assert len(units) == 3 and all(u.startswith("layer") for u in units)
    assert rankings  # the saved ranking is readable JSON
    # a second run replaces the first one's files instead of refusing
    again = CliRunner().invoke(main, ["demo", "-o", str(out), "--chars", "2000", "-q"])
    assert again.exit_code == 0, again.output
    assert "rankings:" in again.stdout and "quote" in again.stdout


def test_demo_says_where_it_writes_and_how_much(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "-o", str(out), "--chars", "2000"])
    assert result.exit_code == 0, result.output
    before = [line for line in result.stderr.splitlines() if line.startswith("demo: ")]
    assert len(before) == 1
    assert f"over sample:code (2,000 chars) into {out}: about " in before[0]
    assert "free there" in before[0] and "--chars N for less" in before[0]
    written = sum(p.stat().st_size for p in out.iterdir())
    assert f"wrote {written / 1e6:,.1f} MB into {out}" in result.stdout
    summary = json.loads(
        CliRunner().invoke(main, ["demo", "-o", str(out), "--chars", "2000", "--json", "-q"]).stdout
    )
    assert summary["outdir"] == str(out)
    assert summary["bytes_written"] == sum(p.stat().st_size for p in out.iterdir())
    # the estimate counts the chunk padding: it is the truth within 5%
    assert abs(summary["bytes_written"] / summary["bytes_estimated"] - 1) < 0.05
