"""Training character-level language models (``lstmprobe train``).

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

from lstmprobe._io import progress_bar
from lstmprobe.errors import CorpusError, ModelLoadError, TrainingError, one_line
from lstmprobe.lm.evaluation import LN2, part_bpc
from lstmprobe.models import (
    CHECKPOINT_FORMAT,
    CharLSTM,
    ModelConfig,
    bundled,
    checkpoint_to_model,
    load_model,
    save_checkpoint,
)
from lstmprobe.record.threads import TorchThreads, default_threads
from lstmprobe.text import RESETS, Vocab, sequences

ARCHITECTURE = ("layers", "hidden", "embedding", "cell")
DEFAULT_STEPS = 2000


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
                value = getattr(self, option)
                raise TrainingError(f"`{option}` must be {what}, got {value}")

        need(self.layers >= 1, "layers", "at least 1")
        need(self.hidden >= 1, "hidden", "at least 1 (units per layer)")
        need(self.embedding >= 0, "embedding", "0 (one-hot input) or a positive size")
        need(self.cell in ("lstm", "gru"), "cell", "'lstm' or 'gru'")
        need(0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)")
        need(self.reset in RESETS, "reset", f"one of {', '.join(RESETS)}")
        need(self.seq_len >= 1, "seq_len", "at least 1")
        need(self.batch_size >= 1, "batch_size", "at least 1")
        need(self.steps is None or self.steps >= 1, "steps", "at least 1")
        need(self.epochs is None or self.epochs > 0, "epochs", "positive")
        need(self.lr > 0, "lr", "positive")
        need(self.clip >= 0, "clip", "0 (no clipping) or positive")
        need(0.0 <= self.val_fraction < 1.0, "val_fraction", "in [0, 1)")
        need(self.checkpoint_every >= 0, "checkpoint_every", "0 (only at the end) or positive")
        if self.steps is not None and self.epochs is not None:
            raise TrainingError("give `steps` or `epochs`, not both")

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
                f"{resume} was trained with `{name}={saved.get(name)}`, got `{name}={given[name]}`; "
                "leave it out to resume, or train afresh without `resume`"
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
            'with `reset="line"` every line is a sequence, and no training line has 2 characters '
            "(its text and newline); give a corpus with one sequence per line"
        )
    if not any(len(s) >= 2 for s in val_part):
        return train_part, None
    return train_part, val_part


# --------------------------------------------------------------------------- state


def _detach(state: Any) -> Any:
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


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
    hint = "`resume` takes a checkpoint written by lstmprobe train"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = one_line(exc)[:120]
        raise ModelLoadError(
            f"{path} is not a readable lstmprobe checkpoint ({first}); {hint}"
        ) from None
    if not isinstance(obj, dict) or obj.get("lstmprobe_format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{path} is not an lstmprobe checkpoint (another format); {hint}")
    if not isinstance(obj.get("training"), dict) or "optimizer" not in obj:
        raise ModelLoadError(
            f"{path} holds no training state (written with `slim`, or not by lstmprobe train); "
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
    threads: int | None = None,
) -> TrainResult:
    """Train a :class:`~lstmprobe.models.CharLSTM` on ``text`` and write it to ``output``.

    A checkpoint is written atomically every ``config.checkpoint_every`` steps, at the end, and
    when Ctrl-C stops the run (after the step in progress; the result says ``interrupted``).
    ``resume`` continues from a checkpoint written by this function (model, optimizer and step);
    ``config`` is then usually :func:`resolve_config` of it. ``slim`` leaves the optimizer state
    out of the final checkpoint (a third of the size; it cannot be resumed). ``metadata`` (the
    command line, the corpus path) is stored in the checkpoint's ``training`` entry.
    ``threads`` sets torch's CPU threads for the run; by default a small model (under
    ``SMALL_MODEL_MACS`` multiply-adds per char, :mod:`lstmprobe.record.threads`) trains on one,
    as ``record`` runs it, and a larger one on torch's setting.

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
        val = part_bpc(model, val_part)
        train_bpc = part_bpc(model, train_part) if final else None
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

    chars = 0
    state: Any = None
    started = time.perf_counter()
    interrupted = False
    bar = progress_bar(
        total, desc="train", unit="step", initial=step, leave=False, enabled=progress
    )
    running, running_n, shown = 0.0, 0, started
    device = next(model.parameters()).device
    threads_used = TorchThreads(default_threads(model, threads, device), TrainingError)
    with threads_used, _StopOnSigint() as stop, bar:
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
            chars += int((y != -100).sum())  # the padding of line batches is no char
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


__all__ = [
    "ARCHITECTURE",
    "TrainConfig",
    "TrainResult",
    "check_trainable",
    "iter_bundled",
    "resolve_config",
    "train",
    "training_info",
]
