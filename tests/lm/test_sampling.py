"""Sampling from a char LM: seeded, greedy at temperature 0, one clear line for a bad prime."""

from __future__ import annotations

import json

import pytest

from lstmprobe.errors import CorpusError
from lstmprobe.lm import sampling as sm
from lstmprobe.models import load_model
from tests.lm.conftest import invoke, one_line_error


@pytest.mark.slow  # trains the counter model (session fixture)
def test_sample_is_seeded_and_greedy_at_temperature_zero(counter_model):
    loaded = load_model(counter_model[0])
    a = sm.sample(loaded.model, loaded.vocab, "aaaX", 30, 1.0, seed=1)
    assert a == sm.sample(loaded.model, loaded.vocab, "aaaX", 30, 1.0, seed=1)
    assert len(a) == 30 and set(a) <= set(loaded.vocab.chars)
    assert sm.sample(loaded.model, loaded.vocab, "aaaX", 4, temperature=0) == "bbb\n"
    with pytest.raises(CorpusError, match=r"prime has characters .* lacks: \['q'\]"):
        sm.sample(loaded.model, loaded.vocab, "aqX")


@pytest.mark.slow  # trains the counter model (session fixture)
def test_cli_sample(counter_model):
    result = invoke("sample", counter_model[0], "--prime", "aaaaaX", "-n", "6", "--temperature", 0)
    assert result.exit_code == 0, result.output
    assert result.stdout == "aaaaaXbbbbb\n\n"
    result = invoke("sample", counter_model[0], "--prime", "aX", "-n", "3", "--seed", "2", "--json")
    assert json.loads(result.stdout)["prime"] == "aX"
    one_line_error(invoke("sample", counter_model[0], "--prime", "Z"), "prime has characters")
    one_line_error(invoke("sample", "no-such-model.pt"), "no-such-model.pt")
