"""Training, sampling and evaluating character-level language models (``lstmprobe train``).

Two ways to cut a corpus into training sequences (``reset``):

``"none"``
    The corpus is one stream. The training part is laid out as ``batch_size`` contiguous tracks,
    read in windows of ``seq_len`` characters; each track carries its state from one window to the
    next (truncated backpropagation through time) and starts from zero state at each epoch.
``"line"``
    Each line, its trailing newline included, is one sequence starting from zero state (what the
    synthetic task corpora need). A batch holds ``batch_size`` lines, padded; the padding is masked
    out of the loss. Lines are shuffled each epoch (seeded); ``seq_len`` is not used.

Validation is a contiguous block at the end: the last ``val_fraction`` of the characters
(``"none"``) or of the lines (``"line"``), never a random choice of characters.

Checkpoints are lstmprobe checkpoints (:func:`lstmprobe.models.save_checkpoint`) with a
``training`` entry (the settings, the step, bits per char) and, unless ``slim``, the optimizer
state needed to resume.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from lstmprobe import tasks
from lstmprobe.errors import CorpusError, ModelLoadError, TrainingError
from lstmprobe.models import (
    CHECKPOINT_FORMAT,
    CharLSTM,
    ModelConfig,
    bundled,
    checkpoint_to_model,
    load_model,
    save_checkpoint,
)
from lstmprobe.text import RESETS, Vocab, check_chars, sequences

LN2 = math.log(2.0)
ARCHITECTURE = ("layers", "hidden", "embedding", "cell")
DEFAULT_STEPS = 2000
EVAL_TRACK_CHARS = 2000  # a stream is evaluated in tracks of at least this many characters
EVAL_MAX_TRACKS = 64


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run.

    ``embedding=0`` feeds one-hot characters to the first layer. ``steps`` and ``epochs`` are
    exclusive; with neither, training runs :data:`DEFAULT_STEPS` steps. ``checkpoint_every=0``
    writes a checkpoint only at the end.
    """

    layers: int = 1
    hidden: int = 128
    embedding: int = 0
    cell: str = "lstm"
    dropout: float = 0.0
    reset: str = "none"
    seq_len: int = 100
    batch_size: int = 32
    steps: int | None = None
    epochs: float | None = None
    lr: float = 2e-3
    clip: float = 5.0
    val_fraction: float = 0.1
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        def need(ok: bool, option: str, what: str) -> None:
            if not ok:
                value = getattr(self, option.replace("-", "_"))
                raise TrainingError(f"--{option} must be {what}, got {value}")

        need(self.layers >= 1, "layers", "at least 1")
        need(self.hidden >= 1, "hidden", "at least 1 (units per layer)")
        need(self.embedding >= 0, "embedding", "0 (one-hot input) or a positive size")
        need(self.cell in ("lstm", "gru"), "cell", "'lstm' or 'gru'")
        need(0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)")
        need(self.reset in RESETS, "reset", f"one of {', '.join(RESETS)}")
        need(self.seq_len >= 1, "seq-len", "at least 1")
        need(self.batch_size >= 1, "batch-size", "at least 1")
        need(self.steps is None or self.steps >= 1, "steps", "at least 1")
        need(self.epochs is None or self.epochs > 0, "epochs", "positive")
        need(self.lr > 0, "lr", "positive")
        need(self.clip >= 0, "clip", "0 (no clipping) or positive")
        need(0.0 <= self.val_fraction < 1.0, "val-fraction", "in [0, 1)")
        need(self.checkpoint_every >= 0, "checkpoint-every", "0 (only at the end) or positive")
        if self.steps is not None and self.epochs is not None:
            raise TrainingError("give --steps or --epochs, not both")

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden,
            num_layers=self.layers,
            cell=self.cell,  # type: ignore[arg-type]
            embedding_dim=self.embedding or None,
            dropout=self.dropout,
        )


def resolve_config(
    overrides: dict[str, Any] | None = None, resume: str | os.PathLike[str] | None = None
) -> TrainConfig:
    """The settings of a run: those saved in ``resume`` (or the defaults), then ``overrides``.

    ``None`` values in ``overrides`` mean "not given". When resuming, an architecture setting
    that differs from the checkpoint's is an error. Giving ``steps`` drops a saved ``epochs`` and
    the other way round.
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(given) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise TrainingError(f"unknown training settings {sorted(unknown)}")
    if resume is None:
        return TrainConfig(**given)
    saved = dict(_read_resumable(resume)["training"]["config"])
    for name in ARCHITECTURE:
        if name in given and given[name] != saved.get(name):
            raise TrainingError(
                f"{resume} was trained with --{name} {saved.get(name)}, got --{name} "
                f"{given[name]}; drop the option to resume, or train afresh without --resume"
            )
    if "steps" in given:
        saved["epochs"] = None
    if "epochs" in given:
        saved["steps"] = None
    saved.update(given)
    return TrainConfig(**saved)


# --------------------------------------------------------------------------- corpus checks


def check_trainable(text: str) -> None:
    """A clear :class:`~lstmprobe.errors.CorpusError` for a corpus nothing can be learned from."""
    if len(text) < 2:
        raise CorpusError(
            f"the corpus has {len(text)} character(s); a language model needs at least 2 "
            "(and realistically thousands)"
        )
    chars = set(text)
    if len(chars) == 1:
        raise CorpusError(
            f"the corpus is one character ({next(iter(chars))!r}) repeated; there is nothing to "
            "predict - give varied text"
        )
    lines = text.splitlines()
    if len(lines) > 1 and len(set(lines)) == 1:
        raise CorpusError(
            f"the corpus is a single line repeated {len(lines)} times ({lines[0][:30]!r}); "
            "there is nothing to learn beyond copying it - give varied text"
        )


# --------------------------------------------------------------------------- batches


class _StreamBatches:
    """``reset="none"``: ``batch`` contiguous tracks read in windows of ``seq_len``."""

    carry_state = True

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int) -> None:
        n = len(ids)
        rows = max(1, min(batch_size, n // (seq_len + 1)))  # tracks of at least one window
        track = n // rows
        self.tracks = torch.from_numpy(ids[: rows * track].reshape(rows, track).copy())
        self.seq_len = seq_len
        self.windows = math.ceil((track - 1) / seq_len)
        self.steps_per_epoch = self.windows
        self.chars_per_epoch = rows * (track - 1)

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        w = step % self.windows
        start = w * self.seq_len
        stop = min(start + self.seq_len, self.tracks.shape[1] - 1)
        return self.tracks[:, start:stop], self.tracks[:, start + 1 : stop + 1], w == 0


class _LineBatches:
    """``reset="line"``: ``batch`` lines per step from zero state, padding masked (-100 targets)."""

    carry_state = False

    def __init__(self, seqs: list[np.ndarray], batch_size: int, seed: int) -> None:
        seqs = [s for s in seqs if len(s) >= 2]  # a 1-char line predicts nothing
        self.n = len(seqs)
        self.lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        width = int(self.lengths.max())
        inputs = np.zeros((self.n, width), dtype=np.int64)
        targets = np.full((self.n, width), -100, dtype=np.int64)
        for i, s in enumerate(seqs):
            inputs[i, : len(s) - 1] = s[:-1]
            targets[i, : len(s) - 1] = s[1:]
        self.inputs = torch.from_numpy(inputs)
        self.targets = torch.from_numpy(targets)
        self.batch_size = min(batch_size, self.n)
        self.seed = seed
        self.steps_per_epoch = math.ceil(self.n / self.batch_size)
        self.chars_per_epoch = int((self.lengths - 1).sum())
        self._order: tuple[int, np.ndarray] | None = None

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
        epoch, i = divmod(step, self.steps_per_epoch)
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        idx = torch.from_numpy(self._order[1][i * self.batch_size : (i + 1) * self.batch_size])
        width = int(self.lengths[idx.numpy()].max()) - 1
        return self.inputs[idx, :width], self.targets[idx, :width], True


def _split(text: str, vocab: Vocab, reset: str, val_fraction: float) -> tuple[Any, Any]:
    """Encoded (train, validation) parts; validation is the contiguous last block, or None."""
    if reset == "none":
        ids = vocab.encode(text)
        n_val = round(len(ids) * val_fraction)
        if n_val < 2 or len(ids) - n_val < 2:
            return ids, None
        return ids[:-n_val], ids[-n_val:]
    seqs = [vocab.encode(text[a:b]) for a, b in sequences(text, "line")]
    n_val = round(len(seqs) * val_fraction)
    train_part, val_part = (seqs[:-n_val], seqs[-n_val:]) if n_val else (seqs, [])
    if not any(len(s) >= 2 for s in train_part):
        raise CorpusError(
            "with --reset line every line is a sequence, and no training line has 2 characters "
            "(its text and newline); give a corpus with one sequence per line"
        )
    if not any(len(s) >= 2 for s in val_part):
        return train_part, None
    return train_part, val_part


# --------------------------------------------------------------------------- evaluation


def _detach(state: Any) -> Any:
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


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


def _bpc(model: CharLSTM, part: Any) -> float | None:
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
    value = _bpc(model, part)
    if value is None:
        raise CorpusError("the corpus has no sequence of 2 or more characters to predict")
    return value


# --------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """What a run did; ``interrupted`` when Ctrl-C stopped it (the checkpoint is still written)."""

    output: Path
    step: int
    steps: int
    epoch: float
    train_bpc: float | None
    val_bpc: float | None
    chars: int
    seconds: float
    chars_per_second: float
    interrupted: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["output"] = str(self.output)
        return out


class _StopOnSigint:
    """While active, the first Ctrl-C asks the loop to stop after the current step; a second
    one interrupts at once. Outside the main thread it does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopOnSigint:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _read_resumable(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"checkpoint {path} to resume from does not exist")
    hint = "--resume takes a checkpoint written by lstmprobe train"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"{path} is not a readable lstmprobe checkpoint ({first}); {hint}"
        ) from None
    if not isinstance(obj, dict) or obj.get("lstmprobe_format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{path} is not an lstmprobe checkpoint (another format); {hint}")
    if not isinstance(obj.get("training"), dict) or "optimizer" not in obj:
        raise ModelLoadError(
            f"{path} holds no training state (written with --slim, or not by lstmprobe train); "
            "it cannot be resumed - train afresh"
        )
    return obj


def _carry(state: Any, reset: bool) -> Any:
    if reset or state is None:
        return None
    return _detach(state)


def train(
    text: str,
    output: str | os.PathLike[str],
    config: TrainConfig | None = None,
    *,
    resume: str | os.PathLike[str] | None = None,
    slim: bool = False,
    progress: bool = True,
    metadata: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a :class:`~lstmprobe.models.CharLSTM` on ``text`` and write it to ``output``.

    A checkpoint is written atomically every ``config.checkpoint_every`` steps, at the end, and
    when Ctrl-C stops the run (after the step in progress; the result says ``interrupted``).
    ``resume`` continues from a checkpoint written by this function (model, optimizer and step);
    ``config`` is then usually :func:`resolve_config` of it. ``slim`` leaves the optimizer state
    out of the final checkpoint (a third of the size; it cannot be resumed). ``metadata`` (the
    command line, the corpus path) is stored in the checkpoint's ``training`` entry.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "m.pt"
    >>> cfg = TrainConfig(hidden=8, steps=5, reset="line", batch_size=4)
    >>> r = train("aXb\\naaXbb\\naaaXbbb\\naXb\\n", out, cfg, progress=False)
    >>> r.step, out.exists()
    (5, True)
    """
    config = config or TrainConfig()
    output = Path(output)
    check_trainable(text)
    saved = _read_resumable(resume) if resume is not None else None
    if saved is not None:
        model, vocab = checkpoint_to_model(saved)
        missing = sorted(set(text) - set(vocab.chars))
        if missing:
            raise CorpusError(
                f"the corpus has characters the checkpoint's vocabulary lacks ({missing[:5]!r}); "
                "resume on text of the same characters, or train afresh"
            )
        if model.config != config.model_config(len(vocab)):
            raise TrainingError(
                f"{resume} has another architecture than the settings given; drop the "
                "architecture options to resume"
            )
    else:
        vocab = Vocab.from_text(text)
        torch.manual_seed(config.seed)
        model = CharLSTM(config.model_config(len(vocab)))
    train_part, val_part = _split(text, vocab, config.reset, config.val_fraction)
    batches: _StreamBatches | _LineBatches
    if config.reset == "none":
        batches = _StreamBatches(train_part, config.batch_size, config.seq_len)
    else:
        batches = _LineBatches(train_part, config.batch_size, config.seed)
    if config.steps is not None:
        total = config.steps
    elif config.epochs is not None:
        total = max(1, math.ceil(config.epochs * batches.steps_per_epoch))
    else:
        total = DEFAULT_STEPS

    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step = 0
    chars_before = 0
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = config.lr
        step = int(saved["training"]["step"])
        chars_before = int(saved["training"].get("chars", 0))
        if "rng_state" in saved:
            torch.set_rng_state(saved["rng_state"])

    def write(final: bool) -> tuple[float | None, float | None]:
        val = _bpc(model, val_part)
        train_bpc = _bpc(model, train_part) if final else None
        info = {
            "config": asdict(config),
            "step": step,
            "steps": total,
            "epoch": step / batches.steps_per_epoch,
            "chars": chars_before + chars,
            "train_bpc": train_bpc,
            "val_bpc": val,
            "val_fraction": config.val_fraction,
            **(metadata or {}),
        }
        extra: dict[str, Any] = {"training": info}
        if not (final and slim):
            extra["optimizer"] = optimizer.state_dict()
            extra["rng_state"] = torch.get_rng_state()
        output.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(output, model, vocab, extra)
        return train_bpc, val

    from tqdm.auto import tqdm

    chars = 0
    state: Any = None
    started = time.perf_counter()
    interrupted = False
    bar = tqdm(
        total=total,
        initial=step,
        disable=not progress,
        unit="step",
        dynamic_ncols=True,
        leave=False,
    )
    running, running_n, shown = 0.0, 0, started
    with _StopOnSigint() as stop, bar:
        while step < total:
            x, y, fresh = batches.get(step)
            state = _carry(state, fresh or not batches.carry_state)
            logits, state = model(x, state)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            step += 1
            chars += y.numel()
            running += loss.item()
            running_n += 1
            bar.update(1)
            now = time.perf_counter()
            if progress and now - shown > 0.5:
                bar.set_postfix(
                    bpc=f"{running / running_n / LN2:.3f}",
                    chars_s=f"{chars / (now - started):.0f}",
                    refresh=False,
                )
                running, running_n, shown = 0.0, 0, now
            if stop.requested:
                interrupted = True
                break
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total:
                write(final=False)
        seconds = time.perf_counter() - started
        train_bpc, val_bpc = write(final=not interrupted)
    return TrainResult(
        output=output,
        step=step,
        steps=total,
        epoch=step / batches.steps_per_epoch,
        train_bpc=train_bpc,
        val_bpc=val_bpc,
        chars=chars_before + chars,
        seconds=seconds,
        chars_per_second=chars / seconds if seconds > 0 else 0.0,
        interrupted=interrupted,
        config=asdict(config),
    )


# --------------------------------------------------------------------------- loading


def training_info(source: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``training`` entry of a checkpoint written by :func:`train` (path or bundled name),
    ``{}`` if it has none."""
    path = bundled.model_path(str(source)) or Path(source)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return {}
    info = obj.get("training") if isinstance(obj, dict) else None
    return info if isinstance(info, dict) else {}


# --------------------------------------------------------------------------- sampling


def _check_prime(prime: str, vocab: Vocab) -> None:
    if not prime:
        raise CorpusError("the prime is empty; give at least one character to start from")
    missing = sorted(set(prime) - set(vocab.chars))
    if missing:
        raise CorpusError(
            f"the prime has characters the model's vocabulary lacks: {missing[:5]!r}; "
            f"use only characters of its vocabulary ({len(vocab)} characters), or --unknown "
            "skip to drop them or --unknown map:C to replace them with C"
        )


class _Threads:
    """torch's CPU threads set to ``n`` for a ``with`` block (None: unchanged), then restored."""

    def __init__(self, n: int | None) -> None:
        if n is not None and n < 1:
            raise TrainingError(f"--threads must be at least 1, got {n}")
        self.n, self.before = n, torch.get_num_threads()

    def __enter__(self) -> None:
        if self.n is not None:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


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
    for ``record``); ``threads`` sets torch's CPU threads for the call.

    Examples
    --------
    >>> m = CharLSTM(ModelConfig(vocab_size=3, hidden_size=4))
    >>> len(sample(m, Vocab.from_text("abc"), "a", length=5, seed=0))
    5
    """
    if unknown != "error":
        prime = check_chars(prime, vocab, unknown)
    _check_prime(prime, vocab)
    if temperature < 0:
        raise CorpusError(f"--temperature must be 0 (greedy) or positive, got {temperature}")
    if length < 0:
        raise CorpusError(f"the length must be 0 or more, got {length}")
    with _Threads(threads):
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


# --------------------------------------------------------------------------- evaluating


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
        return {
            "task": self.task,
            "sequences": self.sequences,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "key": self.key,
            "by_key": {
                str(k): {"sequences": n, "correct": c, "accuracy": c / n}
                for k, (n, c) in sorted(self.by_key.items())
            },
        }


def task_completion(
    model: CharLSTM, vocab: Vocab, lines: list[str], task: str | tasks.Task
) -> Completion:
    """Fraction of ``lines`` whose deterministic part (after the separator, newline included)
    the model completes exactly when it picks the most likely character each time."""
    spec = task if isinstance(task, tasks.Task) else tasks.get_task(task)
    items = [spec.split(line) for line in lines if line.rstrip("\n")]
    for prefix, target, _ in items:
        _check_prime(prefix + target, vocab)
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
        return {
            "bits_per_char": self.bits_per_char,
            "characters": self.characters,
            "sequences": self.sequences,
            "reset": self.reset,
            "completion": self.completion.to_dict() if self.completion else None,
        }


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
    as for ``record``); ``threads`` sets torch's CPU threads for the call.
    """
    text = check_chars(text, vocab, unknown)
    if not text:
        raise CorpusError("nothing is left to evaluate once unknown characters are skipped")
    with _Threads(threads):
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


def iter_bundled() -> Iterator[dict[str, Any]]:
    """Descriptions of the bundled models and samples for ``lstmprobe models``."""
    for name, entry in bundled.MODELS.items():
        info: dict[str, Any] = {
            "kind": "model",
            "name": name,
            "file": str(entry.path),
            "bytes": entry.path.stat().st_size if entry.path.exists() else None,
            "description": entry.description,
        }
        if entry.path.exists():
            training = training_info(name)
            loaded = load_model(name)
            info.update(
                parameters=sum(p.numel() for p in loaded.model.parameters()),
                config={k: training.get("config", {}).get(k) for k in ARCHITECTURE},
                train_bpc=training.get("train_bpc"),
                val_bpc=training.get("val_bpc"),
            )
        yield info
    for name, entry in bundled.SAMPLES.items():
        size = entry.path.stat().st_size if entry.path.exists() else None
        yield {
            "kind": "sample",
            "name": f"sample:{name}",
            "file": str(entry.path),
            "bytes": size,
            "description": entry.description,
        }


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in torch (1 trains fastest on a machine that is busy)."""
    if threads < 1:
        raise TrainingError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)


def _fmt_bpc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def describe(result: TrainResult | Evaluation) -> str:
    """A few human-readable lines about a training run or an evaluation."""
    if isinstance(result, TrainResult):
        val = (
            f"validation {_fmt_bpc(result.val_bpc)} bits/char "
            f"(last {result.config.get('val_fraction', 0):.0%})"
            if result.val_bpc is not None
            else "no validation (corpus too small to hold out a block)"
        )
        return (
            f"wrote {result.output}: step {result.step}/{result.steps} "
            f"({result.epoch:.1f} epochs), train {_fmt_bpc(result.train_bpc)} bits/char, {val}; "
            f"{result.chars_per_second:,.0f} chars/s over {result.seconds:.0f} s"
        )
    lines = [
        f"{result.bits_per_char:.4f} bits/char over {result.characters} chars, "
        f"{result.sequences} sequence(s) (reset {result.reset})"
    ]
    c = result.completion
    if c is not None:
        lines.append(
            f"{c.task}: {c.correct}/{c.sequences} completed exactly ({c.accuracy:.1%}) "
            "after the separator, greedily"
        )
        if c.by_key:
            lines.append(f"  {c.key:>7}  sequences  exact")
            for key, (n, good) in sorted(c.by_key.items()):
                lines.append(f"  {key:>7}  {n:>9}  {good / n:6.1%}")
    return "\n".join(lines)


def describe_bundled(entries: list[dict[str, Any]]) -> str:
    """The ``lstmprobe models`` table."""
    if not entries:
        return "no bundled models or samples in this installation"
    lines = []
    for e in entries:
        size = f"{e['bytes'] / 1e3:,.0f} KB" if e.get("bytes") is not None else "missing"
        if e["kind"] == "model":
            cfg = e.get("config") or {}
            arch = (
                f"{cfg.get('layers')}x{cfg.get('hidden')} {cfg.get('cell')}"
                if cfg.get("hidden")
                else ""
            )
            bpc = (
                f"train {_fmt_bpc(e.get('train_bpc'))} / val {_fmt_bpc(e.get('val_bpc'))} bits/char"
            )
            lines.append(f"model   {e['name']:<14} {size:>8}  {arch}  {bpc}  {e['description']}")
        else:
            lines.append(f"sample  {e['name']:<14} {size:>8}  {e['description']}")
    return "\n".join(lines)


__all__ = [
    "Completion",
    "Evaluation",
    "TrainConfig",
    "TrainResult",
    "bits_per_char",
    "complete_greedy",
    "describe",
    "describe_bundled",
    "evaluate",
    "iter_bundled",
    "resolve_config",
    "sample",
    "set_threads",
    "task_completion",
    "train",
    "training_info",
]
