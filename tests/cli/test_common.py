"""What every command shares, in a real process: warnings of other libraries stay off stderr,
lstmprobe's own are one line each (issue 17, caveat 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lstmprobe.models import save_checkpoint
from lstmprobe.text import Vocab
from tests.conftest import make_model


def cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -W default -m lstmprobe.cli ...``: every warning Python would show, shown."""
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    return subprocess.run(
        [sys.executable, "-W", "default", "-m", "lstmprobe.cli", *map(str, args)],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=env, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_only_lstmprobes_own_warnings_reach_stderr_one_line_each(tmp_path: Path) -> None:
    """torch (an LSTM with projections has no oneDNN kernel), matplotlib (CJK chars have no
    glyph in the report's font) and numpy (invalid values in the summaries of ±inf) used to
    print two lines each; the float16 overflow, which the user can act on, stays one line."""
    text = "漢字 and 😀 in a line, 'quoted'\n" * 40
    vocab = Vocab.from_text(text)
    model = make_model(vocab, hidden_size=4, proj_size=2)
    with torch.no_grad():
        model.rnn.weight_hr_l0.mul_(1e6)  # the projected hidden overflows float16
    path = save_checkpoint(tmp_path / "model.pt", model, vocab)
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")

    done = cli("record", path, "corpus.txt", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: layer0/hidden: "), lines
    assert "exceed the float16 range" in lines[0] and "--dtype float32" in lines[0]

    for args in (
        ["plot", "text", "-u", "layer0/hidden/0", "-o", "unit.png"],
        ["plot", "distributions", "-o", "dist.png"],
        ["report", "-o", "report.html"],
    ):
        done = cli(*args, "-q", cwd=tmp_path)
        assert done.returncode == 0 and done.stderr == "", (args, done.stderr)
    done = cli("find-neurons", "-f", "quote", "--n-blocks", "3", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [line[:60] for line in done.stderr.splitlines()] == [
        "warning: 1 unit (layer0/hidden/1) hold inf or NaN at 1159 of"
    ]
