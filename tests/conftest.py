"""Shared fixtures: tiny seeded models that train nothing, and small corpora."""

from __future__ import annotations

import pytest
import torch

from lstmprobe.models import CharLSTM, LoadedModel, ModelConfig
from lstmprobe.text import Vocab

CORPUS = (
    'def f(x):\n    return "a(b)" + x  # note\n'
    "class A:\n    def g(self):\n        return [1, 2, {3: 'q'}]\n"
) * 3


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tiny models run fastest on one thread, and test runs share a small machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def corpus() -> str:
    return CORPUS


@pytest.fixture
def vocab() -> Vocab:
    return Vocab.from_text(CORPUS)


def make_model(vocab: Vocab, seed: int = 0, **config: object) -> CharLSTM:
    """Embedding(V, 4) -> 2-layer LSTM(4, 3) -> Linear, seeded (override via ``config``)."""
    torch.manual_seed(seed)
    kwargs = dict(vocab_size=len(vocab), hidden_size=3, num_layers=2, embedding_dim=4)
    kwargs.update(config)
    return CharLSTM(ModelConfig(**kwargs)).eval()  # type: ignore[arg-type]


@pytest.fixture
def tiny(vocab: Vocab) -> LoadedModel:
    return LoadedModel(make_model(vocab), vocab, "checkpoint", sha256="0" * 64)
