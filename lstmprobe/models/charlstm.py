"""The reference :class:`CharLSTM`, its :class:`ModelConfig`, and the lstmprobe checkpoint format
(see docs/model-files.md)."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmprobe._io import atomic_write
from lstmprobe.errors import ModelLoadError
from lstmprobe.text import Vocab

CHECKPOINT_FORMAT = "lstmprobe.checkpoint"
CHECKPOINT_VERSION = 1

Cell = Literal["lstm", "gru"]

#: The largest model lstmprobe builds from a file (parameters); a file declaring a larger one is
#: refused before anything is allocated.
MAX_PARAMETERS = 1 << 30

#: Largest tensor lstmprobe reads from a model file (bytes); a larger declared size is refused
#: before anything is allocated.
MAX_TENSOR_BYTES = 4 << 30

#: The most a model file that is a zip archive (``torch.save``, TorchScript) may declare in all,
#: uncompressed: every parameter of the largest model as float64, and 1 GiB for the rest.
MAX_ARCHIVE_BYTES = 8 * MAX_PARAMETERS + (1 << 30)

#: The most a record of 1 MiB or more in such an archive may inflate, relative to its stored size.
#: torch writes records uncompressed (a ratio of 1); weights deflate by less than 2.
MAX_COMPRESSION_RATIO = 100

#: The metadata entry of a ``.safetensors`` model file that holds its vocabulary: a JSON list of
#: the characters in index order (or a JSON object char -> index).
SAFETENSORS_VOCAB_KEY = "vocab"
#: The metadata entry where :func:`~lstmprobe.models.save_safetensors` records the model's
#: configuration (JSON).
SAFETENSORS_CONFIG_KEY = "lstmprobe_config"


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
        for name in ("vocab_size", "hidden_size", "num_layers", "proj_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelLoadError(f"{name} must be an integer, got {value!r}")
        for name in ("vocab_size", "hidden_size", "num_layers"):
            if int(getattr(self, name)) < 1:
                raise ModelLoadError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.proj_size < self.hidden_size:
            raise ModelLoadError(
                f"proj_size must be 0 (no projection) or between 1 and hidden_size - 1 = "
                f"{self.hidden_size - 1}, got {self.proj_size}"
            )
        for name in ("bidirectional", "bias", "decoder"):
            if not isinstance(getattr(self, name), bool):
                raise ModelLoadError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if (
            isinstance(self.dropout, bool)
            or not isinstance(self.dropout, (int, float))
            or not 0 <= self.dropout < 1
        ):
            raise ModelLoadError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.embedding_dim is not None and (
            isinstance(self.embedding_dim, bool) or not isinstance(self.embedding_dim, int)
        ):
            raise ModelLoadError(f"embedding_dim must be an integer, got {self.embedding_dim!r}")
        if self.parameter_count() > MAX_PARAMETERS:
            raise ModelLoadError(
                f"a model of vocab_size={self.vocab_size}, hidden_size={self.hidden_size}, "
                f"num_layers={self.num_layers} would have {self.parameter_count():,} parameters, "
                f"more than the {MAX_PARAMETERS:,} lstmprobe builds (too large for a char model)"
            )
        if self.cell not in ("lstm", "gru"):
            raise ModelLoadError(f"cell must be 'lstm' or 'gru', got {self.cell!r}")
        if self.embedding_dim is not None and self.embedding_dim < 1:
            raise ModelLoadError(f"embedding_dim must be at least 1, got {self.embedding_dim}")
        if self.proj_size and self.cell != "lstm":
            raise ModelLoadError("proj_size is only defined for LSTMs")

    @property
    def input_size(self) -> int:
        return self.embedding_dim if self.embedding_dim is not None else self.vocab_size

    def parameter_count(self) -> int:
        """Parameters of the model of this configuration (computed, nothing is allocated)."""
        gates = 4 if self.cell == "lstm" else 3
        h, p = self.hidden_size, self.proj_size or self.hidden_size
        dirs = 2 if self.bidirectional else 1
        total = self.vocab_size * (self.embedding_dim or 0)

        def per_layer(inputs: int) -> int:
            per = gates * h * (inputs + p) + (2 * gates * h if self.bias else 0)
            return dirs * (per + (p * h if self.proj_size else 0))

        # the first layer reads the input, every later one the layer below: no loop over layers
        total += per_layer(self.input_size) + (self.num_layers - 1) * per_layer(p * dirs)
        if self.decoder:
            total += (p * dirs + 1) * self.vocab_size
        return total

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The ``state_dict`` of the :class:`CharLSTM` of this configuration: name -> shape,
        computed without building it (a file's tensors are checked against it first).

        Examples
        --------
        >>> c = ModelConfig(vocab_size=5, hidden_size=3, embedding_dim=2, proj_size=2)
        >>> c.shapes() == {k: tuple(v.shape) for k, v in CharLSTM(c).state_dict().items()}
        True
        """
        gates = 4 if self.cell == "lstm" else 3
        h, p = self.hidden_size, self.proj_size or self.hidden_size
        out: dict[str, tuple[int, ...]] = {}
        if self.embedding_dim is not None:
            out["embedding.weight"] = (self.vocab_size, self.embedding_dim)
        for layer in range(self.num_layers):
            inputs = self.input_size if layer == 0 else self.output_size
            for suffix in ("", "_reverse") if self.bidirectional else ("",):
                out[f"rnn.weight_ih_l{layer}{suffix}"] = (gates * h, inputs)
                out[f"rnn.weight_hh_l{layer}{suffix}"] = (gates * h, p)
                if self.bias:
                    out[f"rnn.bias_ih_l{layer}{suffix}"] = (gates * h,)
                    out[f"rnn.bias_hh_l{layer}{suffix}"] = (gates * h,)
                if self.proj_size:
                    out[f"rnn.weight_hr_l{layer}{suffix}"] = (p, h)
        if self.decoder:
            out["decoder.weight"] = (self.vocab_size, self.output_size)
            out["decoder.bias"] = (self.vocab_size,)
        return out

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
        return F.one_hot(ids, self.config.vocab_size).to(next(self.rnn.parameters()).dtype)

    def forward(
        self, ids: torch.Tensor, state: Any = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Any]:
        """Logits (or last-layer outputs) of shape (batch, time, ...) and the final state.

        ``lengths`` (batch,) marks padded batches: the sequences are packed so that padding never
        reaches a reverse direction; padded steps of the result are zeros.
        """
        x = self.embed(ids)
        if lengths is None:
            out, state = self.rnn(x, state)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed, state)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        if self.decoder is not None:
            out = self.decoder(out)
        return out, state


#: A recurrent state as ``nn.LSTM``/``nn.GRU`` take and return it: ``h`` for a GRU, ``(h, c)`` for an
#: LSTM.
State = torch.Tensor | tuple[torch.Tensor, ...]


def map_state(state: State, fn: Callable[[torch.Tensor], torch.Tensor]) -> State:
    """``fn`` applied to each tensor of a recurrent state, keeping its form.

    Examples
    --------
    >>> h, c = map_state((torch.ones(1), torch.zeros(1)), lambda t: t + 1)
    >>> h.item(), c.item()
    (2.0, 1.0)
    """
    if isinstance(state, tuple):
        return tuple(fn(s) for s in state)
    return fn(state)


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
    """Write an lstmprobe checkpoint atomically (an exclusive temporary beside it, then rename).

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
    with atomic_write(path) as fh:
        torch.save(payload, fh)
    return path


def bits_per_char(model: CharLSTM, vocab: Vocab, text: str, limit: int = 4096) -> float | None:
    """The model's next-char loss (bits per char) on the first ``limit`` known chars of ``text``.

    None without a decoder or with fewer than two known chars. A model given a vocabulary in
    another order than it was trained with scores far above ``log2(len(vocab))``, the rate of
    uniform guessing.
    """
    if model.decoder is None:
        return None
    known = set(vocab.chars)
    sample = "".join(c for c in text[: limit * 2] if c in known)[:limit]
    if len(sample) < 2:
        return None
    device = next(model.parameters()).device
    ids = torch.from_numpy(vocab.encode(sample)).to(device).unsqueeze(0)
    with torch.inference_mode():
        logits, _ = model(ids[:, :-1])
        loss = F.cross_entropy(logits[0].float(), ids[0, 1:])
    return float(loss) / math.log(2)
