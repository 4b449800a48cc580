"""`lstmprobe attribute`, `lstmprobe dynamics --fixed-points` and `lstmprobe plot
trajectories` on a real tiny model and a real recording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.lm import tasks
from lstmprobe.models import CharLSTM, ModelConfig, save_checkpoint
from lstmprobe.store.causal_results import ATTRIBUTIONS, read_results
from lstmprobe.text import Vocab


def run(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    d = tmp_path_factory.mktemp("depth")
    text = tasks.corpus("counter", 40, seed=2, max_n=5)
    corpus = d / "counter.txt"
    corpus.write_text(text, encoding="utf-8")
    vocab = Vocab.from_text(text)
    torch.manual_seed(3)
    model = save_checkpoint(d / "counter.pt", CharLSTM(ModelConfig(len(vocab), 4)).eval(), vocab)
    store = d / "acts.h5"
    result = run("record", model, corpus, "-o", store, "-q", "--reset", "line")
    assert result.exit_code == 0, result.output
    # an integrator: every forget gate 1 and input gate open, so the cell grows without end
    integ = CharLSTM(ModelConfig(len(vocab), 2)).eval()
    with torch.no_grad():
        for p in integ.rnn.parameters():
            p.zero_()
        integ.rnn.bias_ih_l0.copy_(torch.tensor([1e4, 1e4, 1e4, 1e4, 0.5, 0.5, 0.0, 0.0]))
    integ_path = save_checkpoint(d / "integ.pt", integ, vocab)
    integ_store = d / "integ.h5"
    result = run("record", integ_path, corpus, "-o", integ_store, "-q", "--reset", "line")
    assert result.exit_code == 0, result.output
    return {
        "dir": d,
        "model": model,
        "corpus": corpus,
        "store": store,
        "text": text,
        "integ": integ_path,
        "integ_store": integ_store,
    }  # type: ignore[dict-item]


def _one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_attribute_prints_saves_and_the_json_is_complete(setup):
    s = setup
    line_end = s["text"].index("\n", 3)
    result = run(
        "attribute",
        s["model"],
        s["corpus"],
        "-p",
        line_end - 1,
        "--store",
        s["store"],
        "--steps",
        "32",
    )
    assert result.exit_code == 0, result.output
    assert "ig attribution of log p('\\n')" in result.stdout  # the line's next char
    assert "completeness gap" in result.stdout and "32 steps" in result.stdout
    result = run(
        "attribute",
        s["model"],
        s["corpus"],
        "-p",
        line_end - 1,
        "--store",
        s["store"],
        "-u",
        "layer0/cell/2",
        "--method",
        "grad-input",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["unit"] == "layer0/cell/2" and data["method"] == "grad-input"
    assert data["start"] == 0 and data["text"] == s["text"][:line_end]  # one line (reset line)
    assert len(data["inputs"]) == line_end
    saved = read_results(s["store"].with_name("acts.attributions.h5"), ATTRIBUTIONS)
    assert [r.meta["method"] for r in saved.results] == ["ig", "grad-input"]
    assert saved.results[1].arrays["states/layer0/cell"].shape == (line_end, 4)
    # the same target and method again replaces it
    result = run(
        "attribute",
        s["model"],
        s["corpus"],
        "-p",
        line_end - 1,
        "--store",
        s["store"],
        "-u",
        "layer0/cell/2",
        "--method",
        "grad-input",
        "-q",
    )
    assert result.exit_code == 0
    assert (
        len(read_results(s["store"].with_name("acts.attributions.h5"), ATTRIBUTIONS).results) == 2
    )


def test_attribute_writes_a_page_of_text_nodes(setup, tmp_path):
    s = setup
    out = tmp_path / "attr.html"
    result = run(
        "attribute",
        s["model"],
        s["corpus"],
        "-p",
        3,
        "--store",
        s["store"],
        "-o",
        out,
        "--no-save",
        "-q",
        "--method",
        "grad-input",
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "innerHTML" not in page.split('id="lpr-attr-data"')[1]
    assert "lstmprobeAttributionPage" in page


@pytest.mark.slow
def test_attribute_draws_the_figure(setup, tmp_path):
    s = setup
    out = tmp_path / "attr.png"
    result = run(
        "attribute",
        s["model"],
        s["corpus"],
        "-p",
        5,
        "--store",
        s["store"],
        "-o",
        out,
        "--no-save",
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_fixed_points_are_saved_and_bad_searches_fail_cleanly(setup):
    s = setup
    result = run(
        "dynamics",
        "--store",
        s["store"],
        "--model",
        s["model"],
        "--fixed-points",
        "--input",
        "b",
        "--samples",
        "8",
        "--iterations",
        "100",
        "--json",
        "-q",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["input"] == "b" and data["keys"] == [["layer0/hidden", 4], ["layer0/cell", 4]]
    assert data["points"] and all(p["residual"] <= data["tolerance"] for p in data["points"])
    saved = s["store"].with_name("acts.fixedpoints.json")
    assert json.loads(saved.read_text())["input"] == "b"
    saved.unlink()
    cases = [
        (s["store"], s["model"], ("--fixed-points",), "--input C"),
        (
            s["store"],
            s["model"],
            ("--fixed-points", "--input", "z"),
            "not in the model's vocabulary",
        ),
        (
            s["integ_store"],
            s["integ"],
            ("--fixed-points", "--input", "a", "--iterations", "20"),
            "smallest residuals",
        ),
        (s["store"], s["integ"], ("--fixed-points", "--input", "a"), "is not the model recorded"),
    ]
    for store, model, args, message in cases:
        line = _one_error_line(
            run("dynamics", "--store", store, "--model", model, "--samples", "4", *args, "-q")
        )
        assert message in line, line
    assert not saved.exists() and not s["integ_store"].with_name("integ.fixedpoints.json").exists()
    result = run(
        "dynamics",
        "--store",
        s["integ_store"],
        "--model",
        s["integ"],
        "--fixed-points",
        "--input",
        "a",
        "--samples",
        "4",
        "--iterations",
        "20",
        "--slow-points",
    )
    assert result.exit_code == 0, result.output
    assert "0 fixed point(s)" in result.stdout and "slow point 0" in result.stdout


@pytest.mark.slow
def test_plot_trajectories_with_a_feature_and_fixed_points(setup):
    s = setup
    result = run(
        "dynamics",
        "--store",
        s["store"],
        "--model",
        s["model"],
        "--fixed-points",
        "--input",
        "X",
        "--samples",
        "8",
        "--iterations",
        "100",
        "-q",
    )
    assert result.exit_code == 0, result.output
    out = s["dir"] / "paths.png"
    result = run(
        "plot",
        "trajectories",
        "--store",
        s["store"],
        "--key",
        "layer0/cell",
        "-f",
        "count:a",
        "-o",
        out,
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert (
        out.read_bytes()[:4] == b"\x89PNG" and json.loads(result.stdout)["kind"] == "trajectories"
    )
