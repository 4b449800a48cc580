"""`lstmprobe export` and `lstmprobe import lstmvis` end to end, and what an imported store can
do: info, find-neurons, report and plot work; ablate refuses it in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.models import save_checkpoint
from lstmprobe.store import ActivationStore
from lstmprobe.text import Vocab
from tests.conftest import make_model
from tests.interop.test_lstmvis_import import HAND, write_hand_project
from tests.stores import build_store


def run(*args):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(result, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def store(tmp_path):
    return build_store(tmp_path / "acts.h5", HAND)


def test_export_both_formats(store, tmp_path):
    result = run("export", "--format", "lstmvis", "-o", tmp_path / "p", "--store", store, "-q")
    assert result.exit_code == 0 and result.output == ""
    result = run("export", "--format", "lstmvis", "-o", tmp_path / "p2", "--store", store,
                 "--layers", "0", "--quantities", "cell")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "layer0/cell" in result.output and "states.h5:cell1 (state, layer 1)" in result.output
    assert "lstm_server.py -dir" in result.output
    result = run("export", "--format", "explorer", "-o", tmp_path / "x", "--store", store,
                 "--start", "10", "--length", "20", "--name", "demo", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["files"] == ["demo.json"] and (out["start"], out["stop"]) == (10, 30)
    assert out["left_out"] == [f"layer0/{q}: {n}0 is empty" for q, n in
                               [("input_gate", "i_gate"), ("forget_gate", "f_gate"),
                                ("candidate", "j_gate"), ("output_gate", "o_gate")]]  # fmt: skip


def test_export_refusals_are_one_line(store, tmp_path):
    one_error(run("export", "--format", "lstmvis", "-o", tmp_path / "p", "--store", store,
                  "--start", "3"), "--start and --length")  # fmt: skip
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    one_error(run("export", "--format", "lstmvis", "-o", tmp_path / "full", "--store", store),
              "is not empty", "--force")  # fmt: skip
    one_error(run("export", "--format", "explorer", "-o", tmp_path / "e", "--store", store,
                  "--quantities", "gate"), "--quantities: unknown gate")  # fmt: skip
    one_error(run("export", "--format", "lstmvis", "-o", tmp_path / "e", "--store", tmp_path / "no.h5"),
              "does not exist")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts.h5", "full"]


def test_an_imported_store_works_with_info_find_neurons_and_report_and_ablate_refuses_it(tmp_path):
    project = write_hand_project(tmp_path / "children")
    out = tmp_path / "acts.h5"
    one_error(run("import", "lstmvis", project, "-o", out), "'<eos>'", "--map")
    one_error(run("import", "lstmvis", project, "-o", out, "--map", "eos"), "--map takes WORD=C")
    result = run("import", "lstmvis", project, "-o", out, "--map", "<eos>=\\n")
    assert result.exit_code == 0, result.output
    assert "imported" in result.output and "layer0/cell" in result.output
    one_error(run("import", "lstmvis", project, "-o", out, "--map", "<eos>=\\n"),
              "already exists", "--force")  # fmt: skip
    info = json.loads(run("info", "--store", out, "--json").stdout)
    assert info["model"]["imported"]["format"] == "lstmvis" and info["positions"] == len(HAND)
    result = run("find-neurons", "--store", out, "-f", "quote", "--no-probe", "-q")
    assert result.exit_code == 0, result.output
    with ActivationStore(out) as s:
        assert s.sibling("rankings.json").exists()
    result = run("report", "--store", out, "--no-figures", "-q")
    assert result.exit_code == 0, result.output
    page = out.with_name("acts.report.html").read_text(encoding="utf-8")
    assert f"imported from lstmvis: {project.resolve()}" in page  # the page's model line
    vocab = Vocab.from_text(HAND)
    model = save_checkpoint(tmp_path / "model.pt", make_model(vocab), vocab)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(HAND, encoding="utf-8")
    for args in (["ablate", model, corpus, "--unit", "layer0/cell/2"],
                 ["ablate", model, corpus, "--unit", "layer0/cell/2", "--force"],
                 ["find-neurons", "-f", "quote", "--ablate", "2", "--model", model]):  # fmt: skip
        one_error(run(*args, "--store", out), "imported from lstmvis", "records no model",
                  "lstmprobe record")  # fmt: skip


@pytest.mark.slow
def test_plot_on_an_imported_store_and_the_installed_script(tmp_path):
    project = write_hand_project(tmp_path / "children", newline="\\n")
    exe = shutil.which("lstmprobe")
    cmd = [exe] if exe else [sys.executable, "-m", "lstmprobe.cli"]
    out = tmp_path / "acts.h5"
    done = subprocess.run([*cmd, "import", "lstmvis", project / "lstm.yml", "-o", out, "--json"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["positions"] == len(HAND)
    done = subprocess.run([*cmd, "export", "--format", "explorer", "-o", tmp_path / "x", "--store", out],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*cmd, "import", "lstmvis", tmp_path / "x", "-o", tmp_path / "b.h5"],
                          capture_output=True, text=True)  # fmt: skip
    assert (
        done.returncode == 1 and done.stderr.count("\n") == 1 and "has no lstm.yml" in done.stderr
    )
    result = run(
        "plot", "text", "--store", out, "--unit", "layer0/cell/2", "-o", tmp_path / "u.png"
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "u.png").stat().st_size > 1000
