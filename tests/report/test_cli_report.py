"""The plot and report commands, run through click's CliRunner (and once as a real process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.store import ActivationStore, RecordingSpec, StoreWriter
from lstmprobe.text import Vocab, sequences
from tests.report.conftest import record

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, extra",
    [
        ("text", ["--unit", "layer0/cell/1", "--start", "100", "--length", "300"]),
        ("gates", ["--unit", "layer1/cell/0", "--length", "120"]),
        ("saturation", []),
        ("distributions", ["--layer", "1"]),
        ("heatmap", ["--key", "layer0/hidden", "--length", "80"]),
    ],
)
def test_plot_writes_a_png_and_a_manifest(lstm_store, tmp_path, kind, extra):
    out = tmp_path / f"{kind}.png"
    result = run("plot", kind, "--store", str(lstm_store), "-o", str(out), "--json", "-q", *extra)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["path"] == str(out) and manifest["bytes"] == out.stat().st_size
    assert out.read_bytes().startswith(PNG)
    assert leftovers(tmp_path) == []


@pytest.mark.slow  # renders a figure, as the plot tests above do
def test_plot_separator_svg_and_text_html(task_store, tmp_path):
    svg = tmp_path / "sep.svg"
    result = run(
        "plot",
        "separator",
        "--store",
        str(task_store),
        "--char",
        "X",
        "-o",
        str(svg),
        "--svg",
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert b"<svg" in svg.read_bytes()[:400]
    page = tmp_path / "unit.html"
    result = run(
        "plot",
        "text",
        "--store",
        str(task_store),
        "--unit",
        "layer0/hidden/0",
        "--html",
        "-o",
        str(page),
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "<!DOCTYPE html>" in page.read_text()


@pytest.mark.slow  # renders a figure, as the plot tests above do
def test_plot_default_path_is_beside_the_store(lstm_store, tmp_path):
    store = tmp_path / "run1.h5"
    shutil.copy(lstm_store, store)
    result = run("plot", "text", "--store", str(store), "--unit", "layer0/cell/0", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run1.text.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    "args, message",
    [
        (["plot", "text", "--unit", "layer0/cell/99"], "layer0/cell has units 0..2"),
        (["plot", "text", "--unit", "layer7/cell/0"], "datasets: layer0/input_gate (units 0..2)"),
        (["plot", "text", "--unit", "layer0/cell/0", "--start", "999999"], "outside the corpus"),
        (["plot", "text", "--unit", "layer0/cell/0", "--length", "999999"], "outside the corpus"),
        (["plot", "text"], "needs --unit"),
        (["plot", "text", "--unit", "layer0/cell/0", "--range", "p0"], "a colour range is max"),
        (["plot", "text", "--unit", "layer0/cell/0", "--range", "3,1"], "a colour range is max"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(lstm_store, tmp_path, args, message):
    out = tmp_path / "x.png"
    result = run(*args, "--store", str(lstm_store), "-o", str(out))
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not out.exists() and leftovers(tmp_path) == []


def test_each_kind_has_its_own_help_and_options(lstm_store, tmp_path):
    text = run("plot", "text", "--help")
    assert text.exit_code == 0
    assert "--range" in text.output and "--html" in text.output and "--char" not in text.output
    assert "lstmprobe plot text --unit" in text.output  # an example
    sep = run("plot", "separator", "--help")
    assert "--group-by" in sep.output and "--unit" not in sep.output and "count:a" in sep.output
    listed = run("plot", "--help")
    assert all(kind in listed.output for kind in ("text", "gates", "separator", "ablation"))
    wrong = run("plot", "gates", "--html", "--unit", "layer0/cell/0", "--store", str(lstm_store))
    assert wrong.exit_code == 2 and "--html" in wrong.output  # a usage error: gates has no --html


def test_a_kind_needing_an_unrecorded_quantity_says_what_to_record(tmp_path):
    from lstmprobe.models import LoadedModel
    from lstmprobe.record import RecordOptions, record_corpus
    from tests.conftest import make_model
    from tests.report.conftest import TEXT

    vocab = Vocab.from_text(TEXT)
    loaded = LoadedModel(make_model(vocab), vocab, "checkpoint", sha256="0" * 64)
    path = tmp_path / "acts.h5"
    record_corpus(loaded, TEXT, path, RecordOptions(quantities=("cell", "hidden")), force=True)
    result = run("plot", "gates", "--store", str(path), "--unit", "layer0/cell/0")
    assert result.exit_code == 1 and "--quantities" in result.output
    result = run("plot", "saturation", "--store", str(path))
    assert result.exit_code == 1 and "--quantities" in result.output


def test_an_unfinished_or_empty_store_says_how_to_go_on(tmp_path):
    text = "abc\n" * 50
    vocab = Vocab.from_text(text)
    writer = StoreWriter(tmp_path / "acts.h5", RecordingSpec(tokens=vocab.encode(text).astype("int32"), sequences=sequences(text), vocab=vocab, layout={"layer0/cell": 2}, dtype="float32", model_summary={}, model_sha256="0" * 64, corpus_sha256="0" * 64, has_next_logprob=False, run_config={}))  # fmt: skip
    writer.close()  # never finished
    result = run("report", "--store", str(tmp_path / "acts.h5"))
    assert result.exit_code == 1 and "--resume" in result.output
    assert not (tmp_path / "acts.report.html").exists()


def test_an_unwritable_output_is_one_line(lstm_store, tmp_path):
    result = run(
        "report", "--store", str(lstm_store), "-o", str(tmp_path / "no" / "such" / "r.html")
    )
    assert result.exit_code == 1 and "does not exist" in result.output
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root can write anywhere: nothing to check then
            return
        result = run("report", "--store", str(lstm_store), "-o", str(locked / "r.html"))
        assert result.exit_code == 1 and "not writable" in result.output
    finally:
        locked.chmod(0o700)


@pytest.mark.slow
def test_report_writes_beside_the_store_with_a_manifest(lstm_store, tmp_path):
    store = tmp_path / "acts.h5"
    shutil.copy(lstm_store, store)
    shutil.copy(lstm_store.with_name("acts.rankings.json"), tmp_path / "acts.rankings.json")
    result = run("report", "--store", str(store), "--json", "-q", "--top", "2", "-f", "quote")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    out = tmp_path / "acts.report.html"
    assert manifest["path"] == str(out) and manifest["bytes"] == out.stat().st_size
    assert manifest["features"] == ["quote"] and len(manifest["top_units"]["quote"]) == 2
    assert manifest["units_shown"] == 36
    assert leftovers(tmp_path) == []


def test_rankings_of_another_recording_are_ignored_with_a_warning(lstm_store, bare_store, tmp_path):
    store = tmp_path / "acts.h5"
    shutil.copy(bare_store, store)
    shutil.copy(lstm_store.with_name("acts.rankings.json"), tmp_path / "acts.rankings.json")
    result = run("report", "--store", str(store), "-q", "--no-figures", "--json")
    assert result.exit_code == 0, result.output
    assert "ignoring" in result.stderr and json.loads(result.stdout)["features"] == []


@pytest.mark.slow
def test_report_as_a_real_process(lstm_store, tmp_path):
    exe = Path(sys.executable).with_name("lstmprobe")
    out = tmp_path / "r.html"
    proc = subprocess.run(
        [str(exe), "report", "--store", str(lstm_store), "-o", str(out), "--no-figures"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout and out.stat().st_size > 1000


@pytest.mark.slow  # renders a report's figures (tests/report/test_html.py keeps one such report fast)
def test_record_with_gru_then_report(tmp_path):
    from tests.report.conftest import TEXT

    path = record(tmp_path / "acts.h5", TEXT[:400], cell="gru", num_layers=1)
    result = run("report", "--store", str(path), "-q")
    assert result.exit_code == 0, result.output
    with ActivationStore(path) as store:
        assert store.recording.report.exists()


def test_an_empty_file_as_store_is_one_line(tmp_path):
    (tmp_path / "acts.h5").write_bytes(b"")
    for args in (["report"], ["plot", "saturation"]):
        result = run(*args, "--store", str(tmp_path / "acts.h5"))
        assert result.exit_code == 1 and "not an HDF5 file" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts.h5"]


def test_the_output_name_and_the_format_agree(lstm_store, tmp_path):
    page = tmp_path / "unit.html"
    result = run("plot", "text", "--store", str(lstm_store), "--unit", "layer0/cell/0", "-o", str(page), "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")  # not PNG bytes
    for args, said in [
        (["text", "--html", "-o", str(tmp_path / "t.svg")], "ends in .svg but the figure is html"),
        (["gates", "-o", str(tmp_path / "g.html")], "ends in .html but the figure is png"),
    ]:
        result = run("plot", *args, "--store", str(lstm_store), "--unit", "layer0/cell/0")
        assert result.exit_code == 1 and said in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unit.html"]


@pytest.mark.slow
@pytest.mark.parametrize("which", ["proj_store", "overflow_store"])
def test_report_and_every_figure_of_a_projected_or_overflowed_recording(which, request, tmp_path):
    """Issue 17, breaks 3 and 4: `report` and `plot distributions` ended in a traceback on a
    proj_size LSTM (cell H units, hidden P) and on a float16 recording with ±inf."""
    store = str(request.getfixturevalue(which))
    out = tmp_path / "report.html"
    result = run("report", "--store", store, "-o", str(out), "-q")
    assert result.exit_code == 0 and result.stderr == "", result.output
    assert out.stat().st_size > 10_000
    kinds = [("distributions", []), ("saturation", []), ("text", ["-u", "layer0/hidden/1"]),
             ("gates", ["-u", "layer0/cell/1"]), ("heatmap", ["--key", "layer0/hidden"]),
             ("dynamics", ["-u", "layer0/cell/1"]), ("separator", ["--char", "\n"])]  # fmt: skip
    for kind, extra in kinds:
        png = tmp_path / f"{kind}.png"
        result = run("plot", kind, "--store", store, "-o", str(png), "-q", *extra)
        assert result.exit_code == 0 and result.stderr == "", (kind, result.output)
        assert png.read_bytes().startswith(PNG)
