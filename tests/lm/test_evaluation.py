"""Evaluating a char LM: bits per char against a direct computation, task completion per N."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.nn import functional as F

from lstmprobe.lm import evaluation as ev
from lstmprobe.models import CharLSTM, ModelConfig, load_model
from lstmprobe.text import Vocab
from tests.conftest import CORPUS
from tests.lm.conftest import invoke, one_line_error, task_text


def test_bits_per_char_matches_a_direct_computation():
    torch.manual_seed(0)
    vocab = Vocab.from_text(CORPUS)
    model = CharLSTM(ModelConfig(vocab_size=len(vocab), hidden_size=5, embedding_dim=3)).eval()
    ids = torch.from_numpy(vocab.encode(CORPUS))
    with torch.no_grad():
        logits, _ = model(ids[None, :-1])
        direct = float(F.cross_entropy(logits[0], ids[1:])) / math.log(2)
    assert ev.bits_per_char(model, vocab, CORPUS) == pytest.approx(direct, rel=1e-5)
    lines = CORPUS.splitlines(keepends=True)
    nats, count = 0.0, 0
    with torch.no_grad():
        for line in lines:
            line_ids = torch.from_numpy(vocab.encode(line))
            if len(line_ids) < 2:
                continue
            logits, _ = model(line_ids[None, :-1])
            nats += float(F.cross_entropy(logits[0], line_ids[1:], reduction="sum"))
            count += len(line_ids) - 1
    assert ev.bits_per_char(model, vocab, CORPUS, "line") == pytest.approx(
        nats / count / math.log(2), rel=1e-5
    )


def test_a_long_stream_is_evaluated_in_tracks_covering_nearly_every_char():
    vocab = Vocab.from_text(CORPUS)
    model = CharLSTM(ModelConfig(vocab_size=len(vocab), hidden_size=3))
    text = CORPUS * 40
    _nats, count = ev._stream_nats(model.eval(), vocab.encode(text))
    assert len(text) - 70 <= count <= len(text) - 1


@pytest.mark.slow  # trains the counter model (session fixture)
def test_blog_counter_1_layer_10_units_completes_every_n_up_to_10(counter_model):
    """Exploring LSTMs, experiment 1: a 1-layer LSTM with 10 hidden units learns to count."""
    path, result = counter_model
    assert result.val_bpc < 0.35
    loaded = load_model(path)
    report = ev.evaluate(loaded.model, loaded.vocab, task_text("counter", 500, seed=9))
    assert report.completion.task == "counter" and report.reset == "line"
    assert set(report.completion.by_key) == set(range(1, 11))
    assert report.completion.accuracy == 1.0


@pytest.mark.slow  # trains the counter model (session fixture)
def test_cli_evaluate_reports_per_n_for_a_counter(counter_model, tmp_path):
    far = tmp_path / "far.txt"
    far.write_text(task_text("counter", 200, seed=1, min_n=11, max_n=20))
    result = invoke("evaluate", counter_model[0], far, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["completion"]["task"] == "counter"
    assert set(report["completion"]["by_key"]) == {str(n) for n in range(11, 21)}
    assert report["bits_per_char"] > 0
    plain = invoke("evaluate", counter_model[0], far, "--task", "none")
    assert "bits/char" in plain.stdout and "completed" not in plain.stdout
    bad = tmp_path / "bad.txt"
    bad.write_text("hello\n")
    one_line_error(invoke("evaluate", counter_model[0], bad), "not in the model's vocabulary")
