"""Loading every accepted model file form as a :class:`CharLSTM` (see docs/model-files.md).

Loading is safe by default: files are read with ``torch.load(..., weights_only=True)``, TorchScript
archives with a restricted reader of their pickles that runs nothing from the archive, and a
pickled full module is only unpickled when the caller passes ``trust_pickle=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from lstmprobe._io import atomic_write
from lstmprobe.errors import LstmprobeError, ModelLoadError, VocabError, one_line
from lstmprobe.models import bundled
from lstmprobe.models._torchscript import check_archive, read_torchscript
from lstmprobe.models.charlstm import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    MAX_TENSOR_BYTES,
    SAFETENSORS_CONFIG_KEY,
    SAFETENSORS_VOCAB_KEY,
    CharLSTM,
    ModelConfig,
    file_sha256,
)
from lstmprobe.models.infer import (
    check_finite,
    check_shapes,
    check_tensors,
    has_vocab,
    state_dict_to_model,
    tensors_of,
    unwrap,
    vocab_from,
)
from lstmprobe.text import Vocab

Form = Literal["checkpoint", "state_dict", "safetensors", "torchscript", "pickle"]

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")

_MISSING_ATTR = re.compile(r"Can't get attribute '([^']+)' on <module '([^']+)'")


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
            f"the lstmprobe checkpoint's config is malformed ({one_line(exc)})"
        ) from None
    try:
        vocab = Vocab.from_obj(obj["vocab"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(
            f"the lstmprobe checkpoint's vocab is malformed ({one_line(exc)})"
        ) from None
    if len(vocab) != config.vocab_size:
        raise ModelLoadError(
            f"checkpoint vocab has {len(vocab)} characters but the model has "
            f"{config.vocab_size} embedding rows"
        )
    state = obj.get("state_dict")
    if not isinstance(state, Mapping):
        raise ModelLoadError("the lstmprobe checkpoint has no state_dict of tensors")
    state = tensors_of(state)
    check_tensors(state, "the lstmprobe checkpoint")
    _check_config_fits(config, state)
    model = CharLSTM(config)
    check_shapes(model, state, {k: k for k in state}, "the lstmprobe checkpoint")
    try:
        model.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ModelLoadError(f"lstmprobe checkpoint is malformed: {one_line(exc)}") from None
    check_finite(state, "the lstmprobe checkpoint")
    model.eval()
    return model, vocab


def _check_config_fits(config: ModelConfig, state: Mapping[str, torch.Tensor]) -> None:
    """Refuse a checkpoint whose ``config`` asks for more (or other) than its tensors hold,
    before the model is built: a few kilobytes must not declare a million layers."""
    dirs = 2 if config.bidirectional else 1
    held = sum(t.numel() for t in state.values())
    if 2 * dirs * config.num_layers > len(state) or config.parameter_count() > held:
        raise ModelLoadError(
            f"the lstmprobe checkpoint's config (num_layers={config.num_layers}, hidden_size="
            f"{config.hidden_size}, vocab_size={config.vocab_size}) asks for "
            f"{config.parameter_count():,} parameters in at least {2 * dirs * config.num_layers:,} "
            f"tensors, but the file holds {held:,} values in {len(state):,} tensors; the file "
            "is damaged or was edited"
        )
    expected = config.shapes()
    for name, shape in expected.items():
        if name not in state or tuple(state[name].shape) != shape:
            found = "lacks it" if name not in state else f"has {tuple(state[name].shape)}"
            raise ModelLoadError(
                f"the lstmprobe checkpoint's config needs tensor {name} of shape {shape}, but "
                f"the file {found}; the file is damaged or was edited"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise ModelLoadError(
            f"the lstmprobe checkpoint holds tensor {extra[0]}, which its config does not "
            "describe; the file is damaged or was edited"
        )


def load_model(
    source: str | os.PathLike[str],
    *,
    vocab: str | os.PathLike[str] | Vocab | None = None,
    trust_pickle: bool = False,
    embedding: str | None = None,
    decoder: str | None = None,
    map_location: str | torch.device = "cpu",
    force: bool = False,
    default_vocab: Vocab | None = None,
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
    default_vocab : Vocab, optional
        The vocabulary to use when neither ``vocab`` nor the file gives one (a plain
        state_dict), e.g. the one a recording of this model stores; checked against the model's
        size like any other. ``extra["vocab_from"]`` then says ``"default_vocab"``.

    Returns
    -------
    LoadedModel
        The model, its vocabulary, the form of the file (``"checkpoint"``, ``"state_dict"``,
        ``"safetensors"``, ``"torchscript"`` or ``"pickle"``), the file's path and SHA-256.
        ``extra`` says which keys became the embedding, the recurrent layers and the decoder, and
        which keys were ignored.

    Raises
    ------
    ModelLoadError
        The file is missing, unreadable, unsafe to load, or holds no recognisable recurrent model.
    VocabError
        No vocabulary, a malformed one, or one whose size does not match the model.

    Examples
    --------
    >>> import tempfile
    >>> from lstmprobe.models import save_checkpoint
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
        model, found_vocab = checkpoint_to_model(dict(obj))
        if given_vocab is not None:
            if len(given_vocab) != model.config.vocab_size:
                raise VocabError(
                    f"`vocab` has {len(given_vocab)} characters but the checkpoint {path} has "
                    f"{model.config.vocab_size}; give the vocabulary it was trained with, or "
                    "leave out `vocab` to use the one stored in the checkpoint"
                )
            _check_same_vocab(given_vocab, found_vocab, path, force)
            found_vocab = given_vocab
        extra: dict[str, Any] = {}
    else:
        state, vocab_entries = unwrap(obj, path)
        found: list[Vocab] = []
        used_default: list[bool] = []

        def check_vocab(size: int, size_of: str) -> None:
            # once the architecture is read, before the model is built: a wrong vocabulary is
            # one line, not an allocation
            if given_vocab is None and default_vocab is not None and not has_vocab(vocab_entries):
                found.append(default_vocab)
                used_default.append(True)
            elif given_vocab is None:
                found.append(vocab_from(vocab_entries, path))
            else:
                found.append(given_vocab)
                stored = None
                if has_vocab(vocab_entries):
                    with contextlib.suppress(LstmprobeError):
                        stored = vocab_from(vocab_entries, path)
                if stored is not None:
                    _check_same_vocab(given_vocab, stored, path, force)
            if len(found[0]) != size:
                raise VocabError(
                    f"the vocabulary has {len(found[0])} characters but {size_of} {size}; "
                    "give the vocabulary the model was trained with (`vocab`)"
                )

        model, extra = state_dict_to_model(state, path, embedding, decoder, check_vocab)
        found_vocab = found[0]
        if used_default:
            extra["vocab_from"] = "default_vocab"
    model.to(device).eval()
    return LoadedModel(
        model=model,
        vocab=found_vocab,
        form=form,
        path=path,
        sha256=file_sha256(path),
        extra=extra,
    )


def _check_same_vocab(given: Vocab, stored: Vocab, path: Path, force: bool) -> None:
    """Refuse a ``vocab`` that differs from the one stored in the file, unless ``force``."""
    if given.chars == stored.chars or force or len(given) != len(stored):
        return
    where = next(i for i, (a, b) in enumerate(zip(given.chars, stored.chars)) if a != b)
    how = (
        "the same characters in another order"
        if sorted(given.chars) == sorted(stored.chars)
        else "other characters"
    )
    raise VocabError(
        f"`vocab` lists {how} than the vocabulary stored in {path} (index {where}: "
        f"{given.chars[where]!r} in `vocab`, {stored.chars[where]!r} stored); the model reads "
        "ids, so this would scramble every input; leave out `vocab`, or pass `force=True` if the "
        "stored one is wrong"
    )


def _device(map_location: str | torch.device) -> torch.device:
    try:
        device = torch.device(map_location)
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(
            f"map_location must be a torch device such as 'cpu' or 'cuda:0', got "
            f"{map_location!r} ({one_line(exc)})"
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
                f"vocabulary file {vocab} is not a usable vocabulary ({one_line(exc)}); give a "
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
            f"model file {path} is not a readable .safetensors file ({one_line(exc)}); it may "
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
        SAFETENSORS_VOCAB_KEY: vocab.to_json(),
        SAFETENSORS_CONFIG_KEY: json.dumps(asdict(model.config)),
    }
    data = save(tensors, metadata)
    with atomic_write(path) as fh:
        fh.write(data)
    return path


# --- reading a file of any form (TorchScript archives without running anything in them) ------


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
        detail = one_line(exc).split(". ")[0]
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
        raise ModelLoadError(f"cannot read model file {path}: {one_line(exc)}") from None
    if not head:
        raise ModelLoadError(
            f"model file {path} is empty; it was probably not saved completely, save it again"
        )
    if _is_safetensors(path, head):
        return read_safetensors(path), "safetensors"
    if _is_torchscript(path):
        return read_torchscript(path), "torchscript"
    if head.startswith(
        b"PK"
    ):  # torch.save's zip: its directory is checked before torch inflates it
        with contextlib.suppress(zipfile.BadZipFile, OSError), zipfile.ZipFile(path) as zf:
            check_archive(zf, path)
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
                "code from the file, so lstmprobe refuses; pass `trust_pickle=True` if you trust its "
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
                f"unpickling model file {path} failed: {one_line(exc)}; {fix}"
            ) from None
        cls, module = match.groups()
        raise ModelLoadError(
            f"model file {path} needs the class {cls} from module {module!r}, which does not "
            f"define it here; {fix} (a class defined in the training script's __main__ must "
            "be defined or imported in __main__ when loading)"
        ) from None
    except Exception as exc:
        raise ModelLoadError(
            f"unpickling model file {path} failed ({type(exc).__name__}: {one_line(exc)}); "
            "save model.state_dict() instead"
        ) from None
