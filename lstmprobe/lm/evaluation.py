"""Evaluating a character-level language model (``lstmprobe evaluate``).

Bits per character of a text (:func:`bits_per_char`: a stream read as contiguous tracks, or one
sequence per line) and, for the synthetic task corpora (:mod:`lstmprobe.lm.tasks`), exact greedy
completion of each line's deterministic part, broken down per key (:func:`task_completion`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from lstmprobe.errors import CorpusError, TrainingError
from lstmprobe.lm import tasks
from lstmprobe.lm.sampling import check_prime, complete_greedy
from lstmprobe.models import CharLSTM
from lstmprobe.record.threads import TorchThreads, default_threads
from lstmprobe.text import RESETS, Vocab, check_chars, sequences

LN2 = math.log(2.0)
EVAL_TRACK_CHARS = 2000  # a stream is evaluated in tracks of at least this many characters
EVAL_MAX_TRACKS = 64


@torch.no_grad()
def _stream_nats(model: CharLSTM, ids: np.ndarray, chunk: int = 512) -> tuple[float, int]:
    """Summed negative log-likelihood (nats) and count of predicted chars of one stream."""
    n = len(ids)
    if n < 2:
        return 0.0, 0
    rows = max(1, min(EVAL_MAX_TRACKS, n // EVAL_TRACK_CHARS))
    track = n // rows
    total, count = 0.0, 0
    tracks = torch.from_numpy(np.ascontiguousarray(ids[: rows * track]).reshape(rows, track))
    state = None
    for start in range(0, track - 1, chunk):
        stop = min(start + chunk, track - 1)
        logits, state = model(tracks[:, start:stop], state)
        y = tracks[:, start + 1 : stop + 1]
        total += float(F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum"))
        count += y.numel()
    tail = ids[rows * track - 1 :]  # the chars the tracks left out, read from the last one's end
    if len(tail) >= 2:
        logits, _ = model(torch.from_numpy(np.ascontiguousarray(tail[:-1]))[None], None)
        y = torch.from_numpy(np.ascontiguousarray(tail[1:]))
        total += float(F.cross_entropy(logits[0], y, reduction="sum"))
        count += len(y)
    return total, count


@torch.no_grad()
def _lines_nats(model: CharLSTM, seqs: list[np.ndarray], batch: int = 256) -> tuple[float, int]:
    seqs = sorted((s for s in seqs if len(s) >= 2), key=len)
    total, count = 0.0, 0
    for i in range(0, len(seqs), batch):
        group = seqs[i : i + batch]
        width = len(group[-1])
        x = torch.zeros((len(group), width - 1), dtype=torch.long)
        y = torch.full((len(group), width - 1), -100, dtype=torch.long)
        for r, s in enumerate(group):
            x[r, : len(s) - 1] = torch.from_numpy(s[:-1])
            y[r, : len(s) - 1] = torch.from_numpy(s[1:])
        logits, _ = model(x)
        total += float(F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum"))
        count += int((y != -100).sum())
    return total, count


def part_bpc(model: CharLSTM, part: Any) -> float | None:
    """Bits per char of an encoded stream (an array) or list of line sequences; None if empty.

    The model is evaluated in eval mode and left in the mode it was in.
    """
    if part is None:
        return None
    was_training = model.training
    model.eval()
    try:
        nats, count = (
            _stream_nats(model, part) if isinstance(part, np.ndarray) else _lines_nats(model, part)
        )
    finally:
        model.train(was_training)
    return nats / count / LN2 if count else None


def bits_per_char(model: CharLSTM, vocab: Vocab, text: str, reset: str = "none") -> float:
    """Mean bits per predicted character of ``text`` (every char but each sequence's first).

    With ``reset="none"`` a long text is read as up to 64 contiguous tracks of at least 2000
    characters, each starting from zero state (faster; a few hundred chars of warm-up per track).

    Examples
    --------
    >>> from lstmprobe.models import ModelConfig
    >>> torch.manual_seed(0) and None
    >>> m = CharLSTM(ModelConfig(vocab_size=2, hidden_size=3))
    >>> round(bits_per_char(m, Vocab.from_text("ab"), "abab"), 1)
    1.0
    """
    if reset not in RESETS:
        raise CorpusError(f"reset must be one of {', '.join(RESETS)}, got {reset!r}")
    if reset == "none":
        part: Any = vocab.encode(text)
    else:
        part = [vocab.encode(text[a:b]) for a, b in sequences(text, "line")]
    value = part_bpc(model, part)
    if value is None:
        raise CorpusError("the corpus has no sequence of 2 or more characters to predict")
    return value


@dataclass
class Completion:
    """Exact greedy completion of a task corpus's deterministic parts."""

    task: str
    sequences: int
    correct: int
    key: str | None
    by_key: dict[int, tuple[int, int]]  # key -> (sequences, correct)

    @property
    def accuracy(self) -> float:
        return self.correct / self.sequences if self.sequences else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the accuracy overall and per key."""
        by_key = {
            str(k): {"sequences": n, "correct": c, "accuracy": c / n}
            for k, (n, c) in sorted(self.by_key.items())
        }
        return {**asdict(self), "accuracy": self.accuracy, "by_key": by_key}


def task_completion(
    model: CharLSTM, vocab: Vocab, lines: list[str], task: str | tasks.Task
) -> Completion:
    """Fraction of ``lines`` whose deterministic part (after the separator, newline included)
    the model completes exactly when it picks the most likely character each time."""
    spec = task if isinstance(task, tasks.Task) else tasks.get_task(task)
    items = [spec.split(line) for line in lines if line.rstrip("\n")]
    for prefix, target, _ in items:
        check_prime(prefix + target, vocab)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (prefix, target, _) in enumerate(items):
        groups.setdefault((len(prefix), len(target)), []).append(i)
    ok = [False] * len(items)
    for (_, n_target), idx in groups.items():
        for start in range(0, len(idx), 512):
            chunk = idx[start : start + 512]
            got = complete_greedy(model, vocab, [items[i][0] for i in chunk], n_target)
            for i, text in zip(chunk, got):
                ok[i] = text == items[i][1]
    by_key: dict[int, tuple[int, int]] = {}
    if spec.key is not None:
        for (_, _, key), good in zip(items, ok):
            n, c = by_key.get(key, (0, 0))  # type: ignore[arg-type]
            by_key[key] = (n + 1, c + int(good))  # type: ignore[index]
    return Completion(spec.name, len(items), sum(ok), spec.key, by_key)


@dataclass
class Evaluation:
    """``lstmprobe evaluate``: bits per char, and task completion where the corpus is a task's."""

    bits_per_char: float
    characters: int
    sequences: int
    reset: str
    completion: Completion | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what ``lstmprobe evaluate --json`` prints)."""
        completion = self.completion.to_dict() if self.completion else None
        return {**asdict(self), "completion": completion}


def evaluate(
    model: CharLSTM,
    vocab: Vocab,
    text: str,
    reset: str | None = None,
    task: str | None = "auto",
    *,
    unknown: str = "error",
    threads: int | None = None,
) -> Evaluation:
    """Bits per char of ``text`` and, for a task corpus, exact greedy completion (per key).

    ``task="auto"`` recognises a task corpus by the form of its lines, ``None`` skips completion.
    ``reset=None`` is ``"line"`` for a task corpus, else ``"none"``. ``unknown`` says what to do
    with characters the vocabulary lacks (``error``: one line naming them, ``skip``, ``map:C``,
    as for ``record``); ``threads`` sets torch's CPU threads for the call
    (default as ``record``'s: 1 for a small model on the CPU).
    """
    text = check_chars(text, vocab, unknown)
    if not text:
        raise CorpusError("nothing is left to evaluate once unknown characters are skipped")
    device = next(model.parameters()).device
    with TorchThreads(default_threads(model, threads, device), TrainingError):
        return _evaluate(model, vocab, text, reset, task)


def _evaluate(
    model: CharLSTM, vocab: Vocab, text: str, reset: str | None, task: str | None
) -> Evaluation:
    spec: tasks.Task | None
    if task == "auto":
        spec = tasks.detect(text.splitlines())
    elif task is None:
        spec = None
    else:
        spec = tasks.get_task(task)
    reset = reset or ("line" if spec is not None else "none")
    bpc = bits_per_char(model, vocab, text, reset)
    completion = None
    if spec is not None:
        completion = task_completion(model, vocab, text.splitlines(keepends=True), spec)
    return Evaluation(bpc, len(text), len(sequences(text, reset)), reset, completion)


__all__ = [
    "LN2",
    "Completion",
    "Evaluation",
    "bits_per_char",
    "evaluate",
    "part_bpc",
    "task_completion",
]
