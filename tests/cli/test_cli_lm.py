"""`lstmprobe evaluate` and `lstmprobe sample`: --unknown and --threads, as in `record`."""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch
from click.testing import CliRunner

from lstmprobe.cli import main

TABBED = "def f(x):\n\treturn x + 1\n\n\nclass A:\n\tpass\n" * 4  # code-lstm has no tab


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args))


def test_evaluate_names_the_unknown_chars_and_takes_unknown(tmp_path: Path) -> None:
    corpus = tmp_path / "tabbed.c"
    corpus.write_text(TABBED)
    refused = run("evaluate", "code-lstm", str(corpus))
    assert refused.exit_code == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "'\\t' at 10" in lines[0]
    assert "--unknown skip" in lines[0] and "--unknown map:C" in lines[0]
    spaced = run("evaluate", "code-lstm", str(corpus), "--unknown", "map: ", "--json")
    skipped = run("evaluate", "code-lstm", str(corpus), "--unknown", "skip", "--json")
    assert spaced.exit_code == 0 and skipped.exit_code == 0, spaced.output + skipped.output
    assert json.loads(spaced.stdout)["characters"] == len(TABBED)
    assert json.loads(skipped.stdout)["characters"] == len(TABBED) - TABBED.count("\t")
    assert json.loads(spaced.stdout)["bits_per_char"] < 8


def test_evaluate_and_sample_take_threads_and_give_them_back(tmp_path: Path) -> None:
    corpus = tmp_path / "code.py"
    corpus.write_text(TABBED.replace("\t", "    "))
    before = torch.get_num_threads()
    one = run("evaluate", "code-lstm", str(corpus), "--threads", "2", "--json")
    assert one.exit_code == 0, one.output
    assert torch.get_num_threads() == before
    again = run("evaluate", "code-lstm", str(corpus), "--json")
    assert json.loads(one.stdout)["bits_per_char"] == json.loads(again.stdout)["bits_per_char"]
    text = run("sample", "code-lstm", "--prime", "def ", "-n", "20", "--seed", "1",
               "--threads", "2", "--json")  # fmt: skip
    assert text.exit_code == 0, text.output
    assert torch.get_num_threads() == before
    assert len(json.loads(text.stdout)["text"]) == 20
    assert run("sample", "code-lstm", "--threads", "0").exit_code == 2  # click's usage error


def test_sample_prime_with_unknown_chars(tmp_path: Path) -> None:
    refused = run("sample", "code-lstm", "--prime", "\tdef ", "-n", "5")
    assert refused.exit_code == 1 and "--unknown skip" in refused.stderr
    ok = run("sample", "code-lstm", "--prime", "\tdef ", "-n", "5", "--unknown", "map: ",
             "--seed", "0", "--json")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    bad = run("sample", "code-lstm", "--unknown", "map:ab")
    assert bad.exit_code == 1 and "--unknown must be" in bad.stderr


def test_train_refuses_an_output_it_cannot_write_before_it_trains(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcabc\n" * 50, encoding="utf-8")
    result = run("train", str(corpus), "-o", str(tmp_path), "--steps", "2", "-q")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"error: cannot write {tmp_path}: it is a directory; give a file path"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_an_os_error_from_the_library_is_one_line(tmp_path: Path) -> None:
    from lstmprobe.cli._common import handle_errors

    @handle_errors
    def reads() -> None:
        (tmp_path / "missing.txt").read_text(encoding="utf-8")

    result = CliRunner().invoke(click.command()(reads))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: cannot use {tmp_path / 'missing.txt'}: No such file or directory"
    )


def test_train_quiet_still_prints_its_result_and_picks_one_thread_for_a_small_model(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from lstmprobe.lm import training

    corpus = tmp_path / "counter.txt"
    corpus.write_text("aXb\naaXbb\naaaXbbb\n" * 8)
    seen: list[int] = []
    step = training.F.cross_entropy

    def spy(*args, **kw):  # type: ignore[no-untyped-def]
        seen.append(torch.get_num_threads())
        return step(*args, **kw)

    monkeypatch.setattr(training.F, "cross_entropy", spy)
    before = torch.get_num_threads()
    out = tmp_path / "m.pt"
    args = ("train", str(corpus), "-o", str(out), "--reset", "line", "--hidden", "4")
    done = run(*args, "--steps", "3", "-q")
    assert done.exit_code == 0, done.output
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wrote {out}: step 3/3")
    assert set(seen) == {1} and torch.get_num_threads() == before
    seen.clear()
    assert run(*args, "--steps", "2", "-q", "--threads", "2").exit_code == 0
    assert set(seen) == {2} and torch.get_num_threads() == before
