"""The recording commands end to end: `record`, `info`, `bench`, and every bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.models import save_checkpoint
from lstmprobe.store import ActivationStore, partial_path
from tests.conftest import make_model


@pytest.fixture
def files(tmp_path, vocab, corpus):
    model = tmp_path / "model.pt"
    save_checkpoint(model, make_model(vocab), vocab)
    text = tmp_path / "corpus.txt"
    text.write_text(corpus, encoding="utf-8")
    return model, text


def run(args, cwd):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    finally:
        os.chdir(old)


def test_record_then_info_with_the_default_store(tmp_path, files, corpus):
    model, text = files
    result = run(["record", model, text, "--quiet"], tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "acts.h5").exists()
    result = run(["info", "--json"], tmp_path)
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["complete"] is True
    assert info["positions"] == len(corpus)
    assert info["datasets"]["layer1/cell"] == 3
    plain = run(["info"], tmp_path)
    assert "layer0/forget_gate" in plain.output and "complete: True" in plain.output


def test_record_options_reach_the_store(tmp_path, files):
    model, text = files
    args = ["record", model, text, "-o", "run1.h5", "--dtype", "float32", "--compression", "gzip"]
    args += ["--quantities", "cell,hidden", "--layers", "1", "--reset", "line", "--json"]
    args += ["--threads", "1"]
    result = run(args, tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["positions"] > 0
    with ActivationStore(tmp_path / "run1.h5") as store:
        assert store.keys == ["layer1/cell", "layer1/hidden"]
        assert store.dtype == "float32" and store.run_config["reset"] == "line"


def _write_bad_files(tmp_path, vocab, files):
    model, _ = files
    bad = {}
    bad["truncated.pt"] = model.read_bytes()[: len(model.read_bytes()) // 2]
    bad["text.pt"] = b"this is not a torch file\n"
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    torch.save(
        {"encoder.weight": torch.randn(3, 3), "fc.bias": torch.randn(3)}, tmp_path / "nolstm.pt"
    )
    torch.save(make_model(vocab), tmp_path / "pickled.pt")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("ab\ncaf\xe9 x".encode("latin-1"))
    (tmp_path / "unknown.txt").write_text("abc ZZ", encoding="utf-8")
    return model


BAD_INPUTS = [
    (["record", "missing.pt", "corpus.txt"], "missing.pt does not exist"),
    (["record", "text.pt", "corpus.txt"], "not"),
    (["record", "truncated.pt", "corpus.txt"], "truncated.pt"),
    (["record", "pickled.pt", "corpus.txt"], "--trust-pickle"),
    (["record", "nolstm.pt", "corpus.txt"], "encoder.weight"),
    (["record", "model.pt", "missing.txt"], "missing.txt does not exist"),
    (["record", "model.pt", "empty.txt"], "empty"),
    (["record", "model.pt", "latin1.txt"], "byte offset 6"),
    (["record", "model.pt", "unknown.txt"], "'Z' at 4"),
    (["record", "model.pt", "sample:nope"], "no bundled sample"),
    (["record", "model.pt", "corpus.txt", "--layers", "7"], "unknown layer layer7"),
    (["record", "model.pt", "corpus.txt", "--quantities", "gates"], "unknown quantity gates"),
    (["record", "model.pt", "corpus.txt", "--unknown", "replace"], "--unknown must be"),
    (["info", "--store", "nothing.h5"], "nothing.h5 does not exist"),
    (["info", "--store", "corpus.txt"], "corpus.txt"),
]


@pytest.mark.parametrize("args, message", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_gets_one_line_and_no_file(tmp_path, vocab, files, args, message):
    _write_bad_files(tmp_path, vocab, files)
    result = run(args, tmp_path)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "acts.h5").exists() and not partial_path(tmp_path / "acts.h5").exists()


def test_an_existing_recording_needs_force(tmp_path, files):
    model, text = files
    assert run(["record", model, text, "-q"], tmp_path).exit_code == 0
    before = (tmp_path / "acts.h5").stat().st_mtime_ns
    result = run(["record", model, text, "-q"], tmp_path)
    assert result.exit_code == 1 and "--force" in result.output
    assert (tmp_path / "acts.h5").stat().st_mtime_ns == before
    assert run(["record", model, text, "-q", "--force"], tmp_path).exit_code == 0


def test_resuming_a_finished_recording_says_it_is_complete(tmp_path, files):
    """Issue 17, caveat 8: it said "already exists; pass --force to overwrite"."""
    model, text = files
    assert run(["record", model, text, "-q"], tmp_path).exit_code == 0
    before = (tmp_path / "acts.h5").stat().st_mtime_ns
    result = run(["record", model, text, "-q", "--resume"], tmp_path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: acts.h5 is a complete recording: there is nothing to resume; read it "
        "(--store acts.h5), or pass --force to record it again"
    ]
    assert (tmp_path / "acts.h5").stat().st_mtime_ns == before


def test_help_explains_with_examples():
    for command in ("record", "info", "bench"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output


def test_bench_measures_both_throughputs(tmp_path, files):
    model, _ = files
    result = run(
        [
            "bench",
            "--model",
            model,
            "--chars",
            "2000",
            "--repeat",
            "1",
            "--no-memory",
            "--json",
            "-q",
        ],
        tmp_path,
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["plain_chars_per_s"] > 0 and row["record_chars_per_s"] > 0 and row["ratio"] > 0
    assert len(row["load_average"]) == 2 and all(a >= 0 for a in row["load_average"])
    # a small model records on one thread; the reference is the faster plain forward
    by_threads = row["plain_chars_per_s_by_threads"]
    assert row["record_threads"] == 1 and "1" in by_threads
    assert by_threads[str(row["threads"])] == row["plain_chars_per_s"] == max(by_threads.values())
    from lstmprobe.record.bench import format_table

    header, line = format_table([row]).splitlines()
    assert header.split()[-3:] == ["threads", "ratio", "load"]
    assert line.split()[-3] == f"{row['threads']}/1"
    assert line.split()[-1] == "{:.1f}-{:.1f}".format(*row["load_average"])


def test_bench_threads_apply_to_the_recording_too(tmp_path, files, monkeypatch):
    from lstmprobe.record import bench

    seen = []
    real = bench.record_corpus

    def spy(*args, **kwargs):
        seen.append(kwargs.get("threads"))
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "record_corpus", spy)
    model, _ = files
    args = ["bench", "--model", model, "--chars", "2000", "--repeat", "1", "--no-memory"]
    result = run([*args, "--threads", "2", "--json", "-q"], tmp_path)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["threads"] == row["record_threads"] == 2 and seen == [2]
    assert list(row["plain_chars_per_s_by_threads"]) == ["2"]


@pytest.mark.slow
def test_the_installed_script_runs_in_a_real_process(tmp_path, files):
    model, text = files
    exe = shutil.which("lstmprobe")
    cmd = [exe] if exe else [sys.executable, "-m", "lstmprobe.cli"]
    done = subprocess.run(
        [*cmd, "record", model, text, "-o", tmp_path / "p.h5", "--json", "-q"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["path"].endswith("p.h5")
    done = subprocess.run(
        [*cmd, "record", model, tmp_path / "none.txt"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "does not exist" in done.stderr
