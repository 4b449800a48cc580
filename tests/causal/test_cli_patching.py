"""`lstmprobe patch` on a real tiny model, a real recording and real pairs files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.lm import tasks
from lstmprobe.models import CharLSTM, ModelConfig, save_checkpoint
from lstmprobe.store.causal_results import PATCHING, read_results
from lstmprobe.text import Vocab


def run(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    d = tmp_path_factory.mktemp("patch")
    text = tasks.corpus("ab-memory", 60, seed=3, max_n=5)
    corpus = d / "ab.txt"
    corpus.write_text(text, encoding="utf-8")
    vocab = Vocab.from_text(text)
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(len(vocab), 6, embedding_dim=3)).eval()
    path = save_checkpoint(d / "ab.pt", model, vocab)
    store = d / "acts.h5"
    for args in (
        ("record", path, corpus, "-o", store, "-q", "--reset", "line"),
        ("tasks", "ab-memory", "--pairs", "-n", "12", "--max-n", "5", "-o", d / "pairs.tsv", "-q"),
    ):
        result = run(*args)
        assert result.exit_code == 0, result.output
    from lstmprobe.probes import rank_units
    from lstmprobe.store import ActivationStore

    with ActivationStore(store) as s:  # the ranking `--top` reads (no probe: faster)
        rank_units(s, ["ab-state"], probe=False).to_json(s.sibling("rankings.json"))
    return {"dir": d, "model": path, "store": store, "pairs": d / "pairs.tsv"}


def _one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_one_pair_prints_the_distributions_and_json_has_every_char(setup):
    s = setup
    result = run(
        "patch",
        s["model"],
        "--source",
        "AxxY",
        "--target",
        "BxxxY",
        "--unit",
        "layer0/cell/1",
        "--compare",
        "a,b",
        "--store",
        s["store"],
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "patched layer0/cell/1 at target position(s) [4] from source position(s) [3]" in out
    for word in ("before:", "after:", "source:", "KL(before || after)", "log2 p('a')"):
        assert word in out
    assert "saved" in out and read_results(s["store"].with_name("acts.patching.h5"), PATCHING)
    result = run(
        "patch",
        s["model"],
        "--source",
        "AxxY",
        "--target",
        "BxxxY",
        "-u",
        "layer0/hidden/2",
        "--store",
        s["store"],
        "--json",
        "--no-save",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    vocab = "".join(Vocab.from_text(tasks.corpus("ab-memory", 60, seed=3, max_n=5)).chars)
    assert set(data["logprob_before"]) == set(vocab) == set(data["logprob_after"])
    assert data["units"] == ["layer0/hidden/2"] and data["kl_bits"] >= 0
    assert data["settings"]["at"] == "last" and "saved" not in data


def test_pairs_flip_rates_against_random_sets_and_the_top_units(setup):
    s = setup
    result = run(
        "patch",
        s["model"],
        "--pairs",
        s["pairs"],
        "-u",
        "layer0/cell/0",
        "-u",
        "layer0/cell/1",
        "--n-random",
        "3",
        "--store",
        s["store"],
        "--json",
        "-q",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (cond,) = data["conditions"]
    assert cond["units"] == ["layer0/cell/0", "layer0/cell/1"] and data["pairs"] == 12
    assert cond["random"]["n"] == 3 and cond["random"]["p_floor"] == 0.25
    assert 0 <= cond["flip_rate"] <= 1 and "flip" in cond["verdict"]
    saved = read_results(s["store"].with_name("acts.patching.h5"), PATCHING)
    assert saved.results[0].meta["kind"] == "condition"
    assert saved.results[0].arrays["flips"].shape == (12,)
    result = run(
        "patch",
        s["model"],
        "--pairs",
        s["pairs"],
        "--top",
        "2",
        "-f",
        "ab-state",
        "--n-random",
        "2",
        "--store",
        s["store"],
        "-q",
        "--no-save",
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and "2 units together" in lines[2]


@pytest.mark.slow
def test_a_sweep_draws_the_heatmap_and_saves_it(setup):
    s = setup
    out = s["dir"] / "trace.png"
    result = run(
        "patch",
        s["model"],
        "--pairs",
        s["pairs"],
        "-u",
        "layer0/cell/0",
        "--n-random",
        "1",
        "--sweep",
        "units",
        "--sweep",
        "positions",
        "-o",
        out,
        "--store",
        s["store"],
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = read_results(s["store"].with_name("acts.patching.h5"), PATCHING)
    sweep = next(r for r in saved.results if r.meta["kind"] == "sweep")
    assert sweep.arrays["flip_rate"].shape == (6, len(sweep.meta["columns"]))
    assert sweep.meta["rows"][0] == ["layer0/cell/0"]


def test_bad_input_is_one_line_and_writes_nothing(setup, tmp_path):
    s = setup
    store = tmp_path / "acts.h5"  # nothing beside it yet
    bad = tmp_path / "bad.tsv"
    bad.write_text("AxY\tBxY\ta\nAxY BxY a\n", encoding="utf-8")
    cases = [
        (
            ("--source", "AxY", "--target", "BxxY", "-u", "layer0/cell/0", "--at", "all"),
            "different lengths",
        ),
        (("--source", "AxY", "--target", "BxY", "-u", "layer0/cell/9"), "does not exist"),
        (("--pairs", bad, "-u", "layer0/cell/0"), "line 2: expected 3 tab-separated fields"),
        (
            ("--source", "AxY", "--target", "BxY", "-u", "layer0/cell/0", "--at", "7"),
            "position 7 is beyond the target",
        ),
        (("--source", "AxY", "--target", "BxY", "--pairs", bad, "-u", "layer0/cell/0"), "not both"),
        (
            ("--source", "AxY", "--target", "BxY", "-u", "layer0/cell/0", "--compare", "z"),
            "no such char",
        ),
        (
            ("--source", "AxY", "--target", "BxY", "-u", "layer0/cell/0", "--at", "middle"),
            "--at is last, all or a target position",
        ),
        (
            ("--pairs", s["pairs"], "-u", "layer0/cell/0", "--n-random", "9"),
            "--n-random 5 or fewer",
        ),
        (("--source", "AxY", "--target", "BxY", "--top", "2", "-f", "ab-state"), "does not exist"),
    ]
    for args, message in cases:
        line = _one_error_line(run("patch", s["model"], *args, "--store", store, "-q"))
        assert message in line, (args, line)
        if "different lengths" in message:
            assert "--align start" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv"]


def test_a_plain_state_dict_with_a_vocab_file(setup, tmp_path):
    """patch and attribute load a model as every command does: a bare state_dict plus --vocab."""
    import json as _json

    import torch

    from lstmprobe.models import load_model

    loaded = load_model(setup["model"])
    weights = tmp_path / "weights.pt"
    torch.save(loaded.model.state_dict(), weights)
    vocab = tmp_path / "vocab.json"
    vocab.write_text(_json.dumps(list(loaded.vocab.chars)), encoding="utf-8")
    corpus = tmp_path / "c.txt"
    corpus.write_text("AxxY\nBxY\n", encoding="utf-8")
    for args in (
        (
            "patch",
            weights,
            "--vocab",
            vocab,
            "--source",
            "AxxY",
            "--target",
            "BxY",
            "-u",
            "layer0/cell/0",
            "--no-save",
            "--store",
            tmp_path / "none.h5",
            "-q",
        ),
        (
            "attribute",
            weights,
            corpus,
            "--vocab",
            vocab,
            "-p",
            2,
            "--no-save",
            "--store",
            tmp_path / "none.h5",
            "-q",
            "--method",
            "grad-input",
            "--threads",
            "1",
        ),
    ):
        result = run(*args)
        assert result.exit_code == 0, result.output
    result = run(
        "patch",
        weights,
        "--source",
        "AxxY",
        "--target",
        "BxY",
        "-u",
        "layer0/cell/0",
        "--no-save",
        "--store",
        tmp_path / "none.h5",
    )
    assert result.exit_code == 1 and "--vocab" in result.stderr
