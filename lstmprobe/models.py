"""Models: the reference :class:`CharLSTM`, the lstmprobe checkpoint, and loading every accepted
model file form (see docs/model-files.md).

Loading is safe by default: files are read with ``torch.load(..., weights_only=True)``; a pickled
full module is only unpickled when the caller passes ``trust_pickle=True``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from lstmprobe.errors import ModelLoadError
from lstmprobe.text import Vocab

CHECKPOINT_FORMAT = "lstmprobe.checkpoint"
CHECKPOINT_VERSION = 1

Cell = Literal["lstm", "gru"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a :class:`CharLSTM`.

    ``embedding_dim=None`` means one-hot input (the recurrent input size is the vocab size).
    """

    vocab_size: int
    hidden_size: int
    num_layers: int = 1
    cell: Cell = "lstm"
    embedding_dim: int | None = None
    dropout: float = 0.0
    proj_size: int = 0
    bidirectional: bool = False
    bias: bool = True
    decoder: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "num_layers"):
            if int(getattr(self, name)) < 1:
                raise ModelLoadError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.cell not in ("lstm", "gru"):
            raise ModelLoadError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        if self.embedding_dim is not None and self.embedding_dim < 1:
            raise ModelLoadError(f"embedding_dim must be at least 1, got {self.embedding_dim}")
        if self.proj_size and self.cell != "lstm":
            raise ModelLoadError("proj_size is only defined for LSTMs")

    @property
    def input_size(self) -> int:
        return self.embedding_dim if self.embedding_dim is not None else self.vocab_size

    @property
    def output_size(self) -> int:
        """Size of the last layer's output (both directions)."""
        h = self.proj_size or self.hidden_size
        return h * (2 if self.bidirectional else 1)


class CharLSTM(nn.Module):
    """Embedding (or one-hot) -> ``nn.LSTM``/``nn.GRU`` (batch_first) -> optional linear decoder.

    ``forward(ids, state=None)`` takes ids of shape (batch, time) and returns ``(logits, state)``;
    without a decoder the first element is the last layer's output.

    Examples
    --------
    >>> m = CharLSTM(ModelConfig(vocab_size=5, hidden_size=3, embedding_dim=4))
    >>> logits, state = m(torch.zeros(2, 7, dtype=torch.long))
    >>> tuple(logits.shape)
    (2, 7, 5)
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.embedding = (
            nn.Embedding(c.vocab_size, c.embedding_dim) if c.embedding_dim is not None else None
        )
        kwargs: dict[str, Any] = dict(
            input_size=c.input_size,
            hidden_size=c.hidden_size,
            num_layers=c.num_layers,
            bias=c.bias,
            batch_first=True,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
            bidirectional=c.bidirectional,
        )
        if c.cell == "lstm":
            self.rnn: nn.LSTM | nn.GRU = nn.LSTM(proj_size=c.proj_size, **kwargs)
        else:
            self.rnn = nn.GRU(**kwargs)
        self.decoder = nn.Linear(c.output_size, c.vocab_size) if c.decoder else None

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        if self.embedding is not None:
            return self.embedding(ids)
        return F.one_hot(ids, self.config.vocab_size).to(self.rnn.weight_ih_l0.dtype)

    def forward(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        out, state = self.rnn(self.embed(ids), state)
        if self.decoder is not None:
            out = self.decoder(out)
        return out, state


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str],
    model: CharLSTM,
    vocab: Vocab,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write an lstmprobe checkpoint atomically (temporary file, then rename).

    ``extra`` holds anything else that ``torch.load(weights_only=True)`` can read back (training
    progress, optimizer state, metrics).
    """
    path = Path(path)
    if len(vocab) != model.config.vocab_size:
        raise ModelLoadError(
            f"vocab has {len(vocab)} characters but the model expects {model.config.vocab_size}"
        )
    payload: dict[str, Any] = {
        "lstmprobe_format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "config": asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "vocab": list(vocab.chars),
    }
    if extra:
        payload.update(extra)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


@dataclass
class LoadedModel:
    """A model ready to record: a :class:`CharLSTM`, its vocabulary, and where it came from."""

    model: CharLSTM
    vocab: Vocab
    form: str  # "checkpoint", "state_dict", "torchscript", "pickle"
    path: Path | None = None
    sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description stored in a recording's ``model`` attribute."""
        n_params = sum(p.numel() for p in self.model.parameters())
        return {
            "form": self.form,
            "path": str(self.path) if self.path else None,
            "config": asdict(self.model.config),
            "parameters": int(n_params),
            "vocab_size": len(self.vocab),
        }


def checkpoint_to_model(obj: dict[str, Any]) -> tuple[CharLSTM, Vocab]:
    """Rebuild the model and vocab of a loaded lstmprobe checkpoint dict."""
    if obj.get("lstmprobe_format") != CHECKPOINT_FORMAT:
        raise ModelLoadError("not an lstmprobe checkpoint (no 'lstmprobe_format' entry)")
    version = obj.get("format_version", 1)
    if version != CHECKPOINT_VERSION:
        raise ModelLoadError(
            f"lstmprobe checkpoint format version {version} is not supported by this lstmprobe "
            f"(reads version {CHECKPOINT_VERSION}); upgrade lstmprobe"
        )
    try:
        config = ModelConfig(**obj["config"])
        vocab = Vocab.from_obj(obj["vocab"])
        model = CharLSTM(config)
        model.load_state_dict(obj["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"lstmprobe checkpoint is malformed: {exc}".splitlines()[0]) from None
    if len(vocab) != config.vocab_size:
        raise ModelLoadError(
            f"checkpoint vocab has {len(vocab)} characters but the model has "
            f"{config.vocab_size} embedding rows"
        )
    model.eval()
    return model, vocab
