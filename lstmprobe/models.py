"""Models: the reference :class:`CharLSTM`, the lstmprobe checkpoint, and loading every accepted
model file form (see docs/model-files.md).

Loading is safe by default: files are read with ``torch.load(..., weights_only=True)``, TorchScript
archives with a restricted reader of their pickles that runs nothing from the archive, and a
pickled full module is only unpickled when the caller passes ``trust_pickle=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import pickle
import re
import sys
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstmprobe import bundled
from lstmprobe._io import atomic_write
from lstmprobe.errors import LstmprobeError, ModelLoadError, VocabError
from lstmprobe.text import Vocab

CHECKPOINT_FORMAT = "lstmprobe.checkpoint"
CHECKPOINT_VERSION = 1

Cell = Literal["lstm", "gru"]

#: The largest model lstmprobe builds from a file (parameters); a file declaring a larger one is
#: refused before anything is allocated.
MAX_PARAMETERS = 1 << 30


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
        for layer in range(self.num_layers):
            inputs = self.input_size if layer == 0 else p * dirs
            per = gates * h * (inputs + p) + (2 * gates * h if self.bias else 0)
            per += p * h if self.proj_size else 0
            total += dirs * per
        if self.decoder:
            total += (p * dirs + 1) * self.vocab_size
        return total

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


@dataclass
class LoadedModel:
    """A model ready to record: a :class:`CharLSTM`, its vocabulary, and where it came from."""

    model: CharLSTM
    vocab: Vocab
    form: str  # "checkpoint", "state_dict", "safetensors", "torchscript", "pickle"
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
    except ModelLoadError as exc:
        raise ModelLoadError(f"the lstmprobe checkpoint's config is invalid: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(
            f"the lstmprobe checkpoint's config is malformed ({_one_line(exc)})"
        ) from None
    try:
        vocab = Vocab.from_obj(obj["vocab"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(
            f"the lstmprobe checkpoint's vocab is malformed ({_one_line(exc)})"
        ) from None
    if len(vocab) != config.vocab_size:
        raise ModelLoadError(
            f"checkpoint vocab has {len(vocab)} characters but the model has "
            f"{config.vocab_size} embedding rows"
        )
    state = obj.get("state_dict")
    if not isinstance(state, Mapping):
        raise ModelLoadError("the lstmprobe checkpoint has no state_dict of tensors")
    state = _tensors(state)
    _check_tensors(state, "the lstmprobe checkpoint")
    model = CharLSTM(config)
    _check_shapes(model, state, {k: k for k in state}, "the lstmprobe checkpoint")
    try:
        model.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"lstmprobe checkpoint is malformed: {_one_line(exc)}") from None
    _check_finite(state, "the lstmprobe checkpoint")
    model.eval()
    return model, vocab


def _check_tensors(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse tensors whose declared size is beyond any char model, before using them."""
    for key, value in state.items():
        nbytes = value.numel() * value.element_size()
        if nbytes > MAX_TENSOR_BYTES:
            raise ModelLoadError(
                f"{where}: tensor {key} declares shape {tuple(value.shape)} ({nbytes:,} bytes), "
                f"too large for a char model (lstmprobe reads at most {MAX_TENSOR_BYTES:,} bytes "
                "per tensor); the file is damaged or not a char model"
            )


def _check_shapes(
    model: CharLSTM, mapped: Mapping[str, torch.Tensor], source: Mapping[str, str], where: str
) -> None:
    """Name the file's tensor whose shape does not fit the model built from the others."""
    expected = model.state_dict()
    for name, value in mapped.items():
        if name in expected and tuple(value.shape) != tuple(expected[name].shape):
            c = model.config
            raise ModelLoadError(
                f"{where}: tensor {source.get(name, name)} has shape {tuple(value.shape)}, which "
                f"does not fit a {c.num_layers}-layer {c.cell.upper()} of {c.hidden_size} units "
                f"(as the other tensors say): it needs {tuple(expected[name].shape)}; the "
                "state_dict is malformed"
            )


def _check_finite(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse NaN or infinite weights: every recorded value would be NaN."""
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ModelLoadError(
                f"{where}: tensor {key} holds {bad} NaN or infinite value(s); the model diverged "
                "in training or the file is damaged (every recorded value would be NaN); use "
                "an earlier checkpoint"
            )


# --- loading every accepted model file form -------------------------------------------------

Form = Literal["checkpoint", "state_dict", "safetensors", "torchscript", "pickle"]

#: Entries of a dict that wrap the state_dict itself (``{"state_dict": ..., "epoch": 3}``).
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model_state", "model", "net")
#: Entries (or module attributes) that may hold the vocabulary, in order of preference.
VOCAB_KEYS: tuple[str, ...] = ("vocab", "chars", "itos", "stoi")

_RNN_KEY = re.compile(
    r"^(?P<prefix>.*?)(?P<param>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
    r"_l(?P<layer>\d+)(?P<reverse>_reverse)?$"
)
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_MISSING_ATTR = re.compile(r"Can't get attribute '([^']+)' on <module '([^']+)'")


def load_model(
    source: str | os.PathLike[str],
    *,
    vocab: str | os.PathLike[str] | Vocab | None = None,
    trust_pickle: bool = False,
    embedding: str | None = None,
    decoder: str | None = None,
    map_location: str | torch.device = "cpu",
    force: bool = False,
) -> LoadedModel:
    """Load a model file of any accepted form as a :class:`CharLSTM` in eval mode.

    Parameters
    ----------
    source : str or os.PathLike
        A model file, or the name of a bundled model (``lstmprobe models``).
    vocab : str, os.PathLike or Vocab, optional
        The vocabulary: a :class:`~lstmprobe.text.Vocab` or a JSON file (a list of characters in
        index order, or an object char -> index). Overrides a vocabulary stored in the file.
    trust_pickle : bool
        Unpickle a full module saved with ``torch.save(model)``. This runs code from the file, so
        it is refused unless the caller trusts the file's source.
    embedding : str, optional
        The key of the embedding weight, when a state_dict holds several candidates.
    decoder : str, optional
        The key of the decoder (output Linear) weight, when a state_dict holds several candidates.
    map_location : str or torch.device
        Device the returned model lives on.
    force : bool
        Accept a ``vocab`` that differs from the one stored in a checkpoint (same size, other
        characters or order); without it that is refused, as it would scramble every input.

    Returns
    -------
    LoadedModel
        The model, its vocabulary, the form of the file (``"checkpoint"``, ``"state_dict"``,
        ``"torchscript"`` or ``"pickle"``), the file's path and SHA-256. ``extra`` says which keys
        became the embedding, the recurrent layers and the decoder, and which keys were ignored.

    Raises
    ------
    ModelLoadError
        The file is missing, unreadable, unsafe to load, or holds no recognisable recurrent model.
    VocabError
        No vocabulary, a malformed one, or one whose size does not match the model.

    Examples
    --------
    >>> import tempfile
    >>> m = CharLSTM(ModelConfig(vocab_size=3, hidden_size=4, embedding_dim=2))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save_checkpoint(Path(d) / "m.pt", m, Vocab(("a", "b", "c")))
    ...     loaded = load_model(path)
    >>> loaded.form, loaded.vocab.chars, loaded.model.config.hidden_size
    ('checkpoint', ('a', 'b', 'c'), 4)
    """
    device = _device(map_location)
    path = _resolve_source(source)
    given_vocab = _vocab_argument(vocab)
    obj, form = _read(path, trust_pickle)
    if isinstance(obj, Mapping) and "lstmprobe_format" in obj:
        model, found_vocab = checkpoint_to_model(obj)
        if given_vocab is not None:
            if len(given_vocab) != model.config.vocab_size:
                raise VocabError(
                    f"--vocab has {len(given_vocab)} characters but the checkpoint {path} has "
                    f"{model.config.vocab_size}; give the vocabulary it was trained with, or "
                    "leave out --vocab to use the one stored in the checkpoint"
                )
            _check_same_vocab(given_vocab, found_vocab, path, force)
            found_vocab = given_vocab
        extra: dict[str, Any] = {}
    else:
        state, vocab_entries = _unwrap(obj, path)
        found: list[Vocab] = []

        def check_vocab(size: int, size_of: str) -> None:
            # once the architecture is read, before the model is built: a wrong vocabulary is
            # one line, not an allocation
            if given_vocab is None:
                found.append(_vocab_from(vocab_entries, path))
            else:
                found.append(given_vocab)
                stored = None
                if any(k in vocab_entries for k in VOCAB_KEYS):
                    with contextlib.suppress(LstmprobeError):
                        stored = _vocab_from(vocab_entries, path)
                if stored is not None:
                    _check_same_vocab(given_vocab, stored, path, force)
            if len(found[0]) != size:
                raise VocabError(
                    f"the vocabulary has {len(found[0])} characters but {size_of} {size}; "
                    "give the vocabulary the model was trained with (--vocab FILE)"
                )

        model, extra, _ = _state_dict_to_model(state, path, embedding, decoder, check_vocab)
        found_vocab = found[0]
    model.to(device).eval()
    return LoadedModel(
        model=model,
        vocab=found_vocab,
        form=form,
        path=path,
        sha256=file_sha256(path),
        extra=extra,
    )


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


def _check_same_vocab(given: Vocab, stored: Vocab, path: Path, force: bool) -> None:
    """Refuse a ``--vocab`` that differs from the one stored in the file, unless ``force``."""
    if given.chars == stored.chars or force or len(given) != len(stored):
        return
    where = next(i for i, (a, b) in enumerate(zip(given.chars, stored.chars)) if a != b)
    how = (
        "the same characters in another order"
        if sorted(given.chars) == sorted(stored.chars)
        else "other characters"
    )
    raise VocabError(
        f"--vocab lists {how} than the vocabulary stored in {path} (index {where}: "
        f"{given.chars[where]!r} in --vocab, {stored.chars[where]!r} stored); the model reads "
        "ids, so this would scramble every input; leave out --vocab, or pass --force if the "
        "stored one is wrong"
    )


def _one_line(exc: BaseException) -> str:
    text = _ANSI.sub("", str(exc)).strip()
    line = text.splitlines()[0].strip() if text else ""
    return line or type(exc).__name__


def _device(map_location: str | torch.device) -> torch.device:
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(
            f"map_location must be a torch device such as 'cpu' or 'cuda:0', got "
            f"{map_location!r} ({_one_line(exc)})"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"device {str(device)!r} was asked for but this machine has no usable CUDA device; "
            "use 'cpu'"
        )
    return device


def _resolve_source(source: str | os.PathLike[str]) -> Path:
    path = Path(source)
    if path.exists():
        if path.is_dir():
            raise ModelLoadError(
                f"model file {path} is a directory; give the model file itself (e.g. {path}/model.pt)"
            )
        return path
    bundled_path = bundled.model_path(str(source))
    if bundled_path is not None:
        if not bundled_path.is_file():
            raise ModelLoadError(
                f"bundled model {str(source)!r} is missing from this installation "
                f"({bundled_path}); reinstall lstmprobe"
            )
        return bundled_path
    names = ", ".join(sorted(bundled.MODELS)) or "none installed"
    raise ModelLoadError(
        f"model file {path} does not exist and is not the name of a bundled model "
        f"(bundled: {names}); give a path to a model file, or see `lstmprobe models`"
    )


def _vocab_argument(vocab: str | os.PathLike[str] | Vocab | None) -> Vocab | None:
    if vocab is None or isinstance(vocab, Vocab):
        return vocab
    if isinstance(vocab, (str, os.PathLike)):
        try:
            obj = json.loads(Path(vocab).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return Vocab.from_file(vocab)  # its own one-line errors
        if isinstance(obj, dict):
            for char, index in obj.items():
                if isinstance(index, bool) or not isinstance(index, int):
                    if isinstance(index, str) and len(char) != 1:
                        continue  # index -> char (itos): read by Vocab
                    raise VocabError(
                        f"vocabulary file {vocab} maps {char!r} to {index!r}; an object maps "
                        'each character to its integer index, e.g. {"a": 0, "b": 1}'
                    )
        try:
            return Vocab.from_obj(obj)
        except VocabError as exc:
            raise VocabError(f"vocabulary file {vocab}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise VocabError(
                f"vocabulary file {vocab} is not a usable vocabulary ({_one_line(exc)}); give a "
                "JSON list of characters in index order or a JSON object char -> index"
            ) from None
    raise VocabError(
        f"vocab must be a Vocab or the path of a JSON vocabulary file, got {type(vocab).__name__}"
    )


# --- reading the file -------------------------------------------------------------------------


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n == "constants.pkl" or n.endswith("/constants.pkl") or "/code/" in n for n in names)


# --- .safetensors files ---------------------------------------------------------------------

#: The metadata entry of a ``.safetensors`` model file that holds its vocabulary: a JSON list of
#: the characters in index order (or a JSON object char -> index).
SAFETENSORS_VOCAB_KEY = "vocab"
#: The metadata entry where :func:`save_safetensors` records the model's configuration (JSON).
SAFETENSORS_CONFIG_KEY = "lstmprobe_config"


def _is_safetensors(path: Path, head: bytes) -> bool:
    if path.suffix == ".safetensors":
        return True
    if len(head) < 10 or head[8:9] != b"{":
        return False
    size = int.from_bytes(head[:8], "little")
    return 2 <= size <= 100_000_000


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file, and its vocabulary from the metadata, if any.

    The format holds only a JSON header and raw tensor bytes: reading it cannot run code. Each
    tensor's size is checked against ``MAX_TENSOR_BYTES`` before it is read.

    Returns
    -------
    dict
        ``{key: tensor}``, plus ``"vocab"`` (the decoded ``vocab`` metadata entry) when present.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    tensors: dict[str, Any] = {}
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            for key in fh.keys():  # noqa: SIM118 (a safe_open handle is not iterable)
                part = fh.get_slice(key)
                shape = list(part.get_shape())
                itemsize = _SAFETENSORS_ITEMSIZE.get(str(part.get_dtype()), 8)
                nbytes = itemsize
                for n in shape:
                    nbytes *= n
                if nbytes > MAX_TENSOR_BYTES:
                    raise ModelLoadError(
                        f"model file {path}: tensor {key} declares shape {tuple(shape)} "
                        f"({nbytes:,} bytes), more than the {MAX_TENSOR_BYTES:,} bytes lstmprobe "
                        "reads; the file is damaged or not a char model"
                    )
                tensors[key] = fh.get_tensor(key)
    except ModelLoadError:
        raise
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(
            f"model file {path} is not a readable .safetensors file ({_one_line(exc)}); it may "
            "be truncated or corrupted, save it again"
        ) from None
    if SAFETENSORS_VOCAB_KEY in metadata:
        try:
            tensors["vocab"] = json.loads(metadata[SAFETENSORS_VOCAB_KEY])
        except ValueError:
            raise VocabError(
                f"the {SAFETENSORS_VOCAB_KEY!r} metadata entry of model file {path} is not JSON; "
                "it must be a JSON list of the characters in index order"
            ) from None
    return tensors


_SAFETENSORS_ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1, "U16": 2, "U32": 4, "U64": 8,
}  # fmt: skip


def save_safetensors(path: str | os.PathLike[str], model: CharLSTM, vocab: Vocab) -> Path:
    """Write ``model``'s weights and ``vocab`` as a ``.safetensors`` file (atomically).

    The file holds the tensors of ``model.state_dict()`` and two metadata entries: ``vocab``
    (JSON list of the characters in index order) and ``lstmprobe_config`` (the
    :class:`ModelConfig`, for reference; loading infers the architecture from the tensors).
    It is the safe way to share a model: loading it cannot run code.

    Examples
    --------
    >>> import tempfile
    >>> m = CharLSTM(ModelConfig(vocab_size=3, hidden_size=4, embedding_dim=2))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = save_safetensors(Path(d) / "m.safetensors", m, Vocab(("a", "b", "c")))
    ...     loaded = load_model(path)
    >>> loaded.form, loaded.vocab.chars
    ('safetensors', ('a', 'b', 'c'))
    """
    from safetensors.torch import save

    path = Path(path)
    if len(vocab) != model.config.vocab_size:
        raise ModelLoadError(
            f"vocab has {len(vocab)} characters but the model expects {model.config.vocab_size}"
        )
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        SAFETENSORS_VOCAB_KEY: json.dumps(list(vocab.chars), ensure_ascii=False),
        SAFETENSORS_CONFIG_KEY: json.dumps(asdict(model.config)),
    }
    data = save(tensors, metadata)
    with atomic_write(path) as fh:
        fh.write(data)
    return path


# --- TorchScript archives, read without running anything in them ------------------------------

#: Largest tensor lstmprobe reads from a model file (bytes); a larger declared size is refused
#: before anything is allocated.
MAX_TENSOR_BYTES = 4 << 30

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stands in for an instance of a class of a TorchScript archive (``__torch__.*``).

    It only keeps the state the archive gives it: no class of the archive is looked up, no
    method of it (``__setstate__`` included) is called.
    """

    __slots__ = ("args", "state")

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


def _rebuild_tensor(
    storage: Any, offset: Any, size: Any, stride: Any, *_: Any, **__: Any
) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` for plain strided tensors, with every bound checked."""
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("a tensor refers to something other than a storage")
    dims = (offset, *size, *stride)
    if len(size) != len(stride) or not all(type(v) is int and v >= 0 for v in dims):
        raise pickle.UnpicklingError("a tensor has a malformed size, stride or offset")
    numel = 1
    for n in size:
        numel *= n
    if numel:
        last = offset + sum((n - 1) * st for n, st in zip(size, stride))
        if last >= storage.numel():
            raise pickle.UnpicklingError(
                f"a tensor of size {tuple(size)} reaches past the end of its storage "
                f"({storage.numel()} values)"
            )
    return torch.as_strided(storage, tuple(size), tuple(stride), offset)


def _first(value: Any, *_: Any) -> Any:
    return value


class _ArchiveUnpickler(pickle.Unpickler):
    """Reads a TorchScript archive's pickles: tensors, plain containers, placeholders. Nothing else.

    Classes of the archive (``__torch__.*``) become :class:`_ScriptObject` placeholders; tensors
    are rebuilt from the archive's ``data/`` records by this module's own code; any other
    global a pickle names is refused.
    """

    def __init__(self, data: bytes, zf: zipfile.ZipFile, prefix: str, path: Path) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self._zf = zf
        self._prefix = prefix
        self._path = path
        self._storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptObject
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _first
        if module == "torch.jit._pickle" and (
            name == "restore_type_tag" or re.fullmatch(r"build_\w+list", name)
        ):
            return _first
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        raise pickle.UnpicklingError(f"it names {module}.{name}, which lstmprobe does not read")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if (
            not isinstance(pid, tuple)
            or len(pid) != 5
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
            or not isinstance(pid[2], str)
            or type(pid[4]) is not int
        ):
            raise pickle.UnpicklingError("a tensor refers to a storage in an unknown form")
        _, kind, key, _, numel = pid
        if key in self._storages:
            return self._storages[key]
        itemsize = torch.empty((), dtype=kind.dtype).element_size()
        nbytes = numel * itemsize
        if numel < 0 or nbytes > MAX_TENSOR_BYTES:
            raise pickle.UnpicklingError(
                f"a tensor declares {numel:,} values, more than the {MAX_TENSOR_BYTES:,} bytes "
                "lstmprobe reads"
            )
        name = f"{self._prefix}data/{key}"
        try:
            info = self._zf.getinfo(name)
        except KeyError:
            raise pickle.UnpicklingError(f"the record {name} is missing") from None
        if info.file_size != nbytes:
            raise pickle.UnpicklingError(
                f"the record {name} holds {info.file_size} bytes, not the {nbytes} its tensor needs"
            )
        raw = bytearray(self._zf.read(name))
        if nbytes == 0:
            storage = torch.empty(0, dtype=kind.dtype)
        else:
            storage = torch.frombuffer(raw, dtype=kind.dtype)
        self._storages[key] = storage
        return storage


def _script_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor], depth: int = 0) -> None:
    """Collect the tensor attributes of a placeholder tree as ``state_dict`` keys."""
    if depth > 64 or not isinstance(obj, _ScriptObject) or not isinstance(obj.state, dict):
        return
    for key, value in obj.state.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, torch.Tensor):
            tensors[prefix + key] = value
        elif isinstance(value, _ScriptObject):
            _script_state(value, f"{prefix}{key}.", tensors, depth + 1)


def read_torchscript(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The tensors and vocabulary entries of a TorchScript archive, without running any of it.

    The archive is a zip: ``data.pkl`` pickles the module tree (classes of the archive, their
    attributes, tensors whose values are the records under ``data/``). It is read with a
    restricted unpickler that constructs no class of the archive and calls none of its methods
    (a TorchScript ``__setstate__`` never runs); the archive's code is not compiled.

    Returns
    -------
    dict
        ``{dotted.name: tensor}`` as ``module.state_dict()`` would name them, plus the top
        module's ``vocab``/``chars``/``itos``/``stoi`` attributes where they are plain values.

    Raises
    ------
    ModelLoadError
        The archive is damaged, or its pickles hold something other than plain data.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            data_names = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(data_names) != 1:
                raise ModelLoadError(
                    f"model file {path} looks like a TorchScript archive but has "
                    f"{len(data_names)} data.pkl records; save it again with torch.jit.save"
                )
            prefix = data_names[0][: -len("data.pkl")]
            order = zf.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else ""
            if order and order.strip() != sys.byteorder:
                raise ModelLoadError(
                    f"model file {path} was saved on a {order.strip()}-endian machine; save "
                    "its state_dict on this one"
                )
            root = _ArchiveUnpickler(zf.read(data_names[0]), zf, prefix, path).load()
    except ModelLoadError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model file {path} looks like a TorchScript archive but cannot be read "
            f"({_one_line(exc)}); it may be truncated or corrupted, save it again (or save "
            "model.state_dict() as a .safetensors file)"
        ) from None
    except Exception as exc:  # a hostile pickle can raise anything from our placeholders
        raise ModelLoadError(
            f"model file {path} looks like a TorchScript archive but cannot be read "
            f"({type(exc).__name__}: {_one_line(exc)}); save it again"
        ) from None
    tensors: dict[str, torch.Tensor] = {}
    _script_state(root, "", tensors)
    result: dict[str, Any] = dict(tensors)
    state = root.state if isinstance(root, _ScriptObject) else None
    if isinstance(state, dict):
        for key in VOCAB_KEYS:
            value = state.get(key)
            if isinstance(value, (str, list, tuple, dict)):
                result[key] = value
    return result


def _not_torch_message(path: Path, head: bytes, exc: BaseException) -> str:
    expected = (
        "expected a file written by torch.save (an lstmprobe checkpoint or a state_dict) "
        "or by torch.jit.save"
    )
    if head.startswith(b"PK"):
        if zipfile.is_zipfile(path):
            return (
                f"model file {path} is a zip archive but not one written by torch.save or "
                f"torch.jit.save; {expected}"
            )
        detail = _one_line(exc).split(". ")[0]
        return (
            f"model file {path} is a damaged zip archive ({detail}); it may be truncated or "
            "corrupted, copy or save it again"
        )
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c.isspace() for c in text):
        return f"model file {path} is a text file, not a PyTorch model file; {expected}"
    return (
        f"model file {path} is not a readable PyTorch model file; {expected}; it may be "
        "truncated or corrupted, or written by pickle.dump (save it with torch.save instead)"
    )


def _read(path: Path, trust_pickle: bool) -> tuple[Any, Form]:
    """Read the file and say which form it is (the object is not yet interpreted)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {path}: {_one_line(exc)}") from None
    if not head:
        raise ModelLoadError(
            f"model file {path} is empty; it was probably not saved completely, save it again"
        )
    if _is_safetensors(path, head):
        return read_safetensors(path), "safetensors"
    if _is_torchscript(path):
        return read_torchscript(path), "torchscript"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        match = _GLOBAL.search(str(exc))
        if match is None:
            raise ModelLoadError(_not_torch_message(path, head, exc)) from None
        if not trust_pickle:
            raise ModelLoadError(
                f"model file {path} is a pickled Python object (a full module saved with "
                f"torch.save(model); it refers to {match.group(1)}); loading it runs arbitrary "
                "code from the file, so lstmprobe refuses; pass --trust-pickle if you trust its "
                "source, or share model.state_dict() as a .safetensors file, the safe way to "
                "share a model"
            ) from None
        return _read_pickle(path, match.group(1)), "pickle"
    except Exception as exc:
        raise ModelLoadError(_not_torch_message(path, head, exc)) from None
    if isinstance(obj, Mapping) and "lstmprobe_format" in obj:
        return dict(obj), "checkpoint"
    return obj, "state_dict"


def _read_pickle(path: Path, first_global: str) -> Any:
    """Unpickle a trusted file; a class that cannot be imported becomes one clear error."""
    fix = (
        "make it importable: install the package that defines it, or put the directory holding "
        "its .py file on PYTHONPATH (or run from that directory)"
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as exc:
        module = exc.name or "?"
        cls = first_global if first_global.startswith(module + ".") else f"{module}.<class>"
        raise ModelLoadError(
            f"model file {path} needs the class {cls}, but module {module!r} cannot be "
            f"imported; {fix}"
        ) from None
    except AttributeError as exc:
        match = _MISSING_ATTR.search(str(exc))
        if match is None:
            raise ModelLoadError(
                f"unpickling model file {path} failed: {_one_line(exc)}; {fix}"
            ) from None
        cls, module = match.groups()
        raise ModelLoadError(
            f"model file {path} needs the class {cls} from module {module!r}, which does not "
            f"define it here; {fix} (a class defined in the training script's __main__ must "
            "be defined or imported in __main__ when loading)"
        ) from None
    except Exception as exc:
        raise ModelLoadError(
            f"unpickling model file {path} failed ({type(exc).__name__}: {_one_line(exc)}); "
            "save model.state_dict() instead"
        ) from None


# --- finding the state_dict and the vocabulary --------------------------------------------------


def _plain(value: Any) -> Any:
    """A numpy array or similar as a plain Python object."""
    if isinstance(value, torch.Tensor):
        return value
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def _module_parts(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = dict(module.state_dict())
    entries: dict[str, Any] = {}
    for key in VOCAB_KEYS:
        try:
            value = getattr(module, key)
        except Exception:  # a TorchScript module may raise anything for an unknown attribute
            continue
        if isinstance(value, (str, list, tuple, dict)) or hasattr(value, "tolist"):
            entries[key] = _plain(value)
    return state, entries


def _describe(obj: Mapping[Any, Any], limit: int = 5) -> str:
    parts = []
    for key, value in list(obj.items())[:limit]:
        if isinstance(value, torch.Tensor):
            parts.append(f"{key} {tuple(value.shape)}")
        else:
            parts.append(f"{key} ({type(value).__name__})")
    more = f", ... ({len(obj)} in all)" if len(obj) > limit else ""
    return ", ".join(parts) + more


def _unwrap(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors of the model and the entries that may hold its vocabulary."""
    if isinstance(obj, nn.Module):
        return _module_parts(obj)
    if not isinstance(obj, Mapping):
        raise ModelLoadError(
            f"model file {path} holds a {type(obj).__name__}, not a model; expected a "
            "state_dict (a dict of tensors), an lstmprobe checkpoint, or a module"
        )
    entries: dict[str, Any] = {k: _plain(obj[k]) for k in VOCAB_KEYS if k in obj}
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, nn.Module):
            state, attrs = _module_parts(inner)
            return state, {**attrs, **entries}
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            inner_entries = {k: _plain(inner[k]) for k in VOCAB_KEYS if k in inner}
            return _tensors(inner), {**inner_entries, **entries}
    tensors = _tensors(obj)
    if not tensors:
        raise ModelLoadError(
            f"model file {path} holds a dict without tensors ({_describe(obj)}); expected a "
            "state_dict, or a dict with a 'state_dict', 'model_state_dict' or 'model' entry"
        )
    return tensors, entries


def _tensors(obj: Mapping[Any, Any]) -> dict[str, torch.Tensor]:
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _vocab_from(entries: dict[str, Any], path: Path) -> Vocab:
    for key in VOCAB_KEYS:
        if key not in entries:
            continue
        value = entries[key]
        if isinstance(value, Mapping) and not isinstance(value, dict):
            value = dict(value)
        if isinstance(value, dict):
            nested = [k for k in ("itos", "chars", "stoi") if k in value]
            if nested:
                value = value[nested[0]]
        try:
            return Vocab.from_obj(value)
        except VocabError as exc:
            raise VocabError(
                f"the {key!r} entry of model file {path} is not a usable vocabulary: {exc}"
            ) from None
        except (TypeError, ValueError) as exc:
            raise VocabError(
                f"the {key!r} entry of model file {path} is not a usable vocabulary "
                f"({_one_line(exc)}); pass --vocab FILE"
            ) from None
    raise ModelLoadError(
        f"model file {path} stores no vocabulary (no {'/'.join(VOCAB_KEYS)} entry, nor a "
        f"{SAFETENSORS_VOCAB_KEY!r} metadata entry of a .safetensors file); pass "
        "--vocab FILE, a JSON list of the characters in index order or a JSON object "
        "char -> index"
    )


# --- inferring the architecture from a state_dict -----------------------------------------------


@dataclass(frozen=True)
class _Recurrent:
    prefix: str
    cell: Cell
    num_layers: int
    input_size: int
    hidden_size: int
    proj_size: int
    bidirectional: bool
    bias: bool

    @property
    def output_size(self) -> int:
        return (self.proj_size or self.hidden_size) * (2 if self.bidirectional else 1)


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _recurrent(state: dict[str, torch.Tensor], path: Path) -> _Recurrent:
    groups: dict[str, dict[tuple[str, int, bool], torch.Tensor]] = {}
    for key, value in state.items():
        m = _RNN_KEY.match(key)
        if m:
            groups.setdefault(m["prefix"], {})[
                (m["param"], int(m["layer"]), bool(m["reverse"]))
            ] = value
    if not groups:
        raise ModelLoadError(
            f"model file {path} holds no LSTM/GRU weights (no '*weight_ih_l0'/'*weight_hh_l0' "
            f"keys of an nn.LSTM or nn.GRU); found {_describe(state)}"
        )
    if len(groups) > 1:
        names = ", ".join(repr(p or "(no prefix)") for p in sorted(groups))
        raise ModelLoadError(
            f"model file {path} holds several separate recurrent modules ({names}); lstmprobe "
            "reads one nn.LSTM/nn.GRU (of any number of layers) per model; save a model with "
            "one multi-layer nn.LSTM/nn.GRU"
        )
    prefix, params = next(iter(groups.items()))
    where = f"recurrent module {prefix!r}" if prefix else "recurrent module"

    def bad(msg: str) -> ModelLoadError:
        return ModelLoadError(f"model file {path}: {where} {msg}")

    layers = sorted({layer for _, layer, _ in params})
    if layers != list(range(len(layers))):
        raise bad(f"has layers {layers}; expected layers 0..n-1 without gaps")
    bidirectional = any(rev for _, _, rev in params)
    directions = (False, True) if bidirectional else (False,)
    has = {name: [(name, k, r) in params for k in layers for r in directions] for name in
           ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")}  # fmt: skip
    for name in ("weight_ih", "weight_hh"):
        if not all(has[name]):
            raise bad(f"lacks {name} for some layer or direction; the state_dict is incomplete")
    for names in (("bias_ih", "bias_hh"), ("weight_hr",)):
        flags = [f for n in names for f in has[n]]
        if any(flags) and not all(flags):
            raise bad(f"has {'/'.join(names)} for some layers only; the state_dict is incomplete")
    bias = all(has["bias_ih"])
    w_hh = params[("weight_hh", 0, False)]
    w_ih = params[("weight_ih", 0, False)]
    for (name, layer, reverse), value in sorted(params.items()):
        want = 2 if name.startswith("weight") else 1
        if value.dim() != want:
            key = f"{prefix}{name}_l{layer}{'_reverse' if reverse else ''}"
            raise bad(
                f"has tensor {key} of shape {_shape(value)}, not a "
                f"{'matrix' if want == 2 else 'vector'}; the state_dict is malformed"
            )
    if all(has["weight_hr"]):
        w_hr = params[("weight_hr", 0, False)]
        proj_size, hidden_size = _shape(w_hr)
    else:
        proj_size, hidden_size = 0, w_hh.shape[1]
    rows = w_hh.shape[0]
    if hidden_size < 1 or rows % hidden_size or rows // hidden_size not in (3, 4):
        raise bad(
            f"has weight_hh_l0 of shape {_shape(w_hh)}; expected (4H, H) for an LSTM or "
            f"(3H, H) for a GRU"
        )
    cell: Cell = "lstm" if rows // hidden_size == 4 else "gru"
    if proj_size and cell != "lstm":
        raise bad("has weight_hr (proj_size) but gate rows of a GRU; only LSTMs have proj_size")
    return _Recurrent(
        prefix=prefix,
        cell=cell,
        num_layers=len(layers),
        input_size=w_ih.shape[1],
        hidden_size=hidden_size,
        proj_size=proj_size,
        bidirectional=bidirectional,
        bias=bias,
    )


def _sibling_bias(state: dict[str, torch.Tensor], key: str) -> torch.Tensor | None:
    if key.endswith("weight"):
        bias = state.get(key[: -len("weight")] + "bias")
        if bias is not None and bias.dim() == 1 and bias.shape[0] == state[key].shape[0]:
            return bias
    return None


def _pick_key(state: dict[str, torch.Tensor], key: str, role: str, path: Path) -> str:
    for candidate in (key, f"{key}.weight"):
        if candidate in state and state[candidate].dim() == 2:
            return candidate
    matrices = ", ".join(f"{k} {_shape(v)}" for k, v in state.items() if v.dim() == 2)
    raise ModelLoadError(
        f"--{role} {key!r} is not a matrix in model file {path}; its matrices are: {matrices}"
    )


def _ambiguous(role: str, keys: list[str], state: dict[str, torch.Tensor], path: Path) -> str:
    listed = ", ".join(f"{k} {_shape(state[k])}" for k in keys)
    return (
        f"model file {path} has {len(keys)} candidate {role}s: {listed}; pick one with "
        f"--{role} KEY (e.g. --{role} {keys[0]})"
    )


def _state_dict_to_model(
    state: dict[str, torch.Tensor],
    path: Path,
    embedding: str | None,
    decoder: str | None,
    check_vocab: Any = lambda size, size_of: None,
) -> tuple[CharLSTM, dict[str, Any], str]:
    """Infer a :class:`CharLSTM` from the tensors; also say how the vocabulary size was read."""
    state = {k: v for k, v in state.items() if v.is_floating_point()}
    _check_tensors(state, f"model file {path}")
    rnn = _recurrent(state, path)
    rnn_keys = {k for k in state if _RNN_KEY.match(k)}
    others = {k: v for k, v in state.items() if k not in rnn_keys}
    matrices = [k for k, v in others.items() if v.dim() == 2]

    # the embedding: a matrix (vocab, input_size) that is not a Linear (nn.Embedding has no bias)
    if embedding is not None:
        emb_key: str | None = _pick_key(others, embedding, "embedding", path)
        if others[emb_key].shape[1] != rnn.input_size:
            raise ModelLoadError(
                f"--embedding {emb_key} has shape {_shape(others[emb_key])} but the recurrent "
                f"layers read inputs of size {rnn.input_size}; pick a (vocab, {rnn.input_size}) "
                "matrix"
            )
    else:
        emb_candidates = [
            k
            for k in matrices
            if others[k].shape[1] == rnn.input_size and _sibling_bias(others, k) is None
        ]
        if len(emb_candidates) > 1:
            hinted = [k for k in emb_candidates if re.search(r"emb|encoder", k, re.IGNORECASE)]
            if len(hinted) != 1:
                raise ModelLoadError(_ambiguous("embedding", emb_candidates, others, path))
            emb_candidates = hinted
        emb_key = emb_candidates[0] if emb_candidates else None
    vocab_size = others[emb_key].shape[0] if emb_key is not None else rnn.input_size
    if emb_key is not None:
        size_of = f"the model's embedding {emb_key} has"
    else:
        size_of = "the model (one-hot input, no embedding found) reads vectors of size"

    # the decoder: a matrix (vocab, output_size), preferably with a bias (an nn.Linear)
    if decoder is not None:
        dec_key: str | None = _pick_key(others, decoder, "decoder", path)
        if _shape(others[dec_key]) != (vocab_size, rnn.output_size):
            raise ModelLoadError(
                f"--decoder {dec_key} has shape {_shape(others[dec_key])}; expected "
                f"({vocab_size}, {rnn.output_size}): vocabulary size by last hidden size"
            )
    else:
        dec_candidates = [
            k
            for k in matrices
            if k != emb_key and _shape(others[k]) == (vocab_size, rnn.output_size)
        ]
        linear = [k for k in dec_candidates if _sibling_bias(others, k) is not None]
        dec_candidates = linear or dec_candidates
        if len(dec_candidates) > 1:
            raise ModelLoadError(_ambiguous("decoder", dec_candidates, others, path))
        dec_key = dec_candidates[0] if dec_candidates else None

    config = ModelConfig(
        vocab_size=vocab_size,
        hidden_size=rnn.hidden_size,
        num_layers=rnn.num_layers,
        cell=rnn.cell,
        embedding_dim=rnn.input_size if emb_key is not None else None,
        proj_size=rnn.proj_size,
        bidirectional=rnn.bidirectional,
        bias=rnn.bias,
        decoder=dec_key is not None,
    )
    mapped: dict[str, torch.Tensor] = {
        "rnn." + k[len(rnn.prefix) :]: state[k].detach() for k in sorted(rnn_keys)
    }
    used = set(rnn_keys)
    if emb_key is not None:
        mapped["embedding.weight"] = others[emb_key].detach()
        used.add(emb_key)
    dec_bias_key = None
    if dec_key is not None:
        weight = others[dec_key].detach()
        bias = _sibling_bias(others, dec_key)
        mapped["decoder.weight"] = weight
        mapped["decoder.bias"] = bias.detach() if bias is not None else weight.new_zeros(vocab_size)
        used.add(dec_key)
        if bias is not None:
            dec_bias_key = dec_key[: -len("weight")] + "bias"
            used.add(dec_bias_key)
    source = {"rnn." + k[len(rnn.prefix) :]: k for k in rnn_keys}
    if emb_key is not None:
        source["embedding.weight"] = emb_key
    if dec_key is not None:
        source["decoder.weight"] = dec_key
        if dec_bias_key is not None:
            source["decoder.bias"] = dec_bias_key
    check_vocab(vocab_size, size_of)
    model = CharLSTM(config)
    _check_shapes(model, mapped, source, f"model file {path}")
    _check_finite({source.get(k, k): v for k, v in mapped.items()}, f"model file {path}")
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"model file {path}: the inferred {rnn.cell.upper()} does not fit its tensors "
            f"({_one_line(exc)}); the state_dict is malformed"
        ) from None
    extra = {
        "keys": {
            "embedding": emb_key,
            "recurrent": rnn.prefix,
            "decoder": dec_key,
            "decoder_bias": dec_bias_key,
        },
        "ignored": sorted(k for k in state if k not in used),
    }
    return model, extra, size_of
