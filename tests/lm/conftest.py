"""Shared by the lm tests: task corpora, the CLI, and the blog's counter model (trained once)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.lm import tasks
from lstmprobe.lm import training as tr


def task_text(name: str, count: int, seed: int = 0, **kw: int) -> str:
    return "".join(line + "\n" for line in tasks.generate(name, count, seed=seed, **kw))


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def counter_model(tmp_path_factory):
    """The blog's counter network: 1-layer LSTM, 10 hidden units, trained on N = 1..10."""
    path = tmp_path_factory.mktemp("counter") / "counter.pt"
    config = tr.TrainConfig(hidden=10, reset="line", steps=400, lr=0.01, checkpoint_every=0)
    result = tr.train(task_text("counter", 2000), path, config, progress=False)
    return path, result
