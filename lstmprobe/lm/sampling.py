"""Sampling from a character-level language model (``lstmprobe sample``).

:func:`sample` draws (or, at temperature 0, picks greedily) one character at a time after a
prime; :func:`complete_greedy` continues a batch of prefixes of one length greedily, which is
what task completion (:mod:`lstmprobe.lm.evaluation`) scores.
"""

from __future__ import annotations

import numpy as np
import torch

from lstmprobe.errors import CorpusError, TrainingError
from lstmprobe.models import CharLSTM
from lstmprobe.record.threads import TorchThreads, check_threads, default_threads
from lstmprobe.text import Vocab, check_chars


def check_prime(prime: str, vocab: Vocab) -> None:
    """A :class:`~lstmprobe.errors.CorpusError` unless ``prime`` is non-empty and in ``vocab``."""
    if not prime:
        raise CorpusError("the prime is empty; give at least one character to start from")
    missing = sorted(set(prime) - set(vocab.chars))
    if missing:
        raise CorpusError(
            f"the prime has characters the model's vocabulary lacks: {missing[:5]!r}; "
            f"use only characters of its vocabulary ({len(vocab)} characters), or "
            '`unknown="skip"` to drop them or `unknown="map:C"` to replace them with C'
        )


@torch.no_grad()
def sample(
    model: CharLSTM,
    vocab: Vocab,
    prime: str = "\n",
    length: int = 500,
    temperature: float = 1.0,
    seed: int | None = None,
    *,
    unknown: str = "error",
    threads: int | None = None,
) -> str:
    """``length`` characters generated after reading ``prime`` (the prime is not included).

    ``temperature`` 0 picks the most likely character each time (greedy). ``unknown`` says
    what to do with prime characters the vocabulary lacks (``error``, ``skip``, ``map:C``, as
    for ``record``); ``threads`` sets torch's CPU threads for the call (default as
    ``record``'s: 1 for a small model on the CPU).

    Examples
    --------
    >>> from lstmprobe.models import ModelConfig
    >>> m = CharLSTM(ModelConfig(vocab_size=3, hidden_size=4))
    >>> len(sample(m, Vocab.from_text("abc"), "a", length=5, seed=0))
    5
    """
    if unknown != "error":
        prime = check_chars(prime, vocab, unknown)
    check_prime(prime, vocab)
    if temperature < 0:
        raise CorpusError(f"`temperature` must be 0 (greedy) or positive, got {temperature}")
    if length < 0:
        raise CorpusError(f"the length must be 0 or more, got {length}")
    device = next(model.parameters()).device
    with TorchThreads(default_threads(model, threads, device), TrainingError):
        return _sample(model, vocab, prime, length, temperature, seed)


def _sample(
    model: CharLSTM, vocab: Vocab, prime: str, length: int, temperature: float, seed: int | None
) -> str:
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    out: list[int] = []
    try:
        logits, state = model(torch.from_numpy(vocab.encode(prime))[None])
        last = logits[0, -1]
        for _ in range(length):
            if temperature == 0:
                nxt = int(last.argmax())
            else:
                probs = torch.softmax(last.double() / temperature, dim=-1)
                nxt = int(torch.multinomial(probs, 1, generator=generator))
            out.append(nxt)
            logits, state = model(torch.tensor([[nxt]]), state)
            last = logits[0, -1]
    finally:
        model.train(was_training)
    return vocab.decode(out)


@torch.no_grad()
def complete_greedy(model: CharLSTM, vocab: Vocab, prefixes: list[str], length: int) -> list[str]:
    """Greedy continuations of ``length`` chars for prefixes of one length, in one batch."""
    if not prefixes:
        return []
    x = torch.from_numpy(np.stack([vocab.encode(p) for p in prefixes]))
    was_training = model.training
    model.eval()
    try:
        logits, state = model(x)
        out = []
        for _ in range(length):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            out.append(nxt)
            logits, state = model(nxt, state)
    finally:
        model.train(was_training)
    rows = torch.cat(out, dim=1).tolist() if out else [[] for _ in prefixes]
    return [vocab.decode(r) for r in rows]


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in torch (1 trains fastest on a machine that is busy)."""
    check_threads(threads, TrainingError)
    torch.set_num_threads(threads)


__all__ = ["check_prime", "complete_greedy", "sample", "set_threads"]
