"""TorchScript archives, read without running anything in them: a restricted unpickler that
constructs no class of the archive and calls none of its methods."""

from __future__ import annotations

import io
import os
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lstmprobe.errors import ModelLoadError, one_line
from lstmprobe.models.charlstm import (
    MAX_ARCHIVE_BYTES,
    MAX_COMPRESSION_RATIO,
    MAX_TENSOR_BYTES,
)
from lstmprobe.models.infer import VOCAB_KEYS

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

    def __init__(self, data: bytes, zf: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._zf = zf
        self._prefix = prefix
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


def check_archive(zf: zipfile.ZipFile, path: Path, limit: int = MAX_ARCHIVE_BYTES) -> None:
    """Refuse a zip archive that declares more than ``limit`` bytes uncompressed in all, or a
    record that would inflate more than :data:`MAX_COMPRESSION_RATIO` times, from its
    directory alone: before anything is inflated (a few MB must not become gigabytes)."""
    total = 0
    for info in zf.infolist():
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= 1 << 20 and ratio > MAX_COMPRESSION_RATIO:
            raise ModelLoadError(
                f"model file {path}: record {info.filename} would inflate from "
                f"{info.compress_size:,} to {info.file_size:,} bytes ({ratio:,.0f} times; torch "
                f"stores records uncompressed, lstmprobe reads at most {MAX_COMPRESSION_RATIO} "
                "times); the file is damaged or crafted"
            )
    if total > limit:
        raise ModelLoadError(
            f"model file {path} declares {total:,} bytes uncompressed, more than the {limit:,} "
            "bytes of the largest model lstmprobe reads; the file is damaged or crafted"
        )


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
            check_archive(zf, path)
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
            root = _ArchiveUnpickler(zf.read(data_names[0]), zf, prefix).load()
    except ModelLoadError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise ModelLoadError(
            f"model file {path} looks like a TorchScript archive but cannot be read "
            f"({one_line(exc)}); it may be truncated or corrupted, save it again (or save "
            "model.state_dict() as a .safetensors file)"
        ) from None
    except Exception as exc:  # a hostile pickle can raise anything from our placeholders
        raise ModelLoadError(
            f"model file {path} looks like a TorchScript archive but cannot be read "
            f"({type(exc).__name__}: {one_line(exc)}); save it again"
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
