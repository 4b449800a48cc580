"""An LSTMVis project as a recording: its states become the store's datasets, its word ids
(through its dictionary) the store's characters (docs/interop.md).

A project is untrusted input: its yml and dictionary are read within size bounds, every file it
names must lie inside its directory, and every shape is checked before anything is written.
The store is written by :class:`~lstmprobe.store.StoreWriter` (crash-safe; nothing is left
behind when the import fails).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe._io import progress_bar
from lstmprobe.errors import InteropError, LstmprobeError
from lstmprobe.interop.common import WINDOW_BYTES
from lstmprobe.interop.lstmvis import (
    CONFIG,
    DICT_SUFFIXES,
    FORMAT,
    HDF5_SUFFIXES,
    MAX_CONFIG_BYTES,
    OWN_KEY,
    DictEntry,
    key_of,
    parse_dict,
    shown,
    word_char,
)
from lstmprobe.names import Key
from lstmprobe.store import RecordingSpec, StoreWriter
from lstmprobe.text import Vocab

#: The most units one imported dataset may have (a bound on what a file makes us allocate).
MAX_UNITS = 1 << 20


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote: the store, its size and where each dataset came from."""

    path: Path
    positions: int
    sequences: int
    vocab_size: int
    datasets: dict[str, str]  # lstmprobe key -> "states.h5:states1 (state, layer 1)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "positions": self.positions,
            "sequences": self.sequences,
            "vocab_size": self.vocab_size,
            "datasets": dict(self.datasets),
        }


@dataclass(frozen=True, eq=False)
class _States:
    key: Key
    dataset: h5py.Dataset
    units: int
    where: str  # "states.h5:states1 (state, layer 1)"


def import_lstmvis(
    project: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    dtype: str = "float32",
    word_map: Mapping[str, str] | None = None,
    force: bool = False,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
) -> ImportResult:
    """Import the LSTMVis project in the directory ``project`` into a new store at ``out``.

    Each ``states.types`` entry becomes a dataset: type ``state`` -> ``cell``, ``output`` ->
    ``hidden`` (another type that is a quantity's name -> that quantity; ``_reverse`` -> the
    reverse direction), layer L -> ``layer{L-1}``. The word ids become the store's tokens through
    the dictionary: a word of one character is that character, the stand-ins an export writes
    (``\\n``, ``\\t``, ``\\u00a0``) are read back, ``word_map`` maps other words. A project
    exported by lstmprobe keeps its sequences (its ``sequence_start`` track); any other is one
    sequence. The store records no model (its ``model`` attribute says where it was imported
    from), so it can be ranked, reported and plotted but not ablated.

    Parameters
    ----------
    project : str or PathLike
        The project directory (holding ``lstm.yml``), or its ``lstm.yml``.
    out : str or PathLike
        The store to write.
    dtype : {"float32", "float16"}
        The store's type of values.
    word_map : mapping of str to str, optional
        Dictionary words that stand for one character each, e.g. ``{"<eos>": "\\n"}``.
    force : bool
        Overwrite an existing store.
    progress : bool
        Show a progress bar.
    warn : callable, optional
        Hears one line per dataset whose values do not fit float16 (with ``dtype="float16"``);
        by default a :class:`~lstmprobe.errors.PrecisionWarning`.

    Returns
    -------
    ImportResult
    """
    project = Path(project)
    if project.name == CONFIG and project.is_file():
        project = project.parent
    config_path = project / CONFIG
    if not project.is_dir():
        raise InteropError(f"{project} is not a directory; give an LSTMVis project directory")
    if not config_path.is_file():
        raise InteropError(f"{project} has no {CONFIG}; an LSTMVis project directory holds one")
    for words, char in (word_map or {}).items():
        if not isinstance(char, str) or len(char) != 1 or "\ud800" <= char <= "\udfff":
            raise InteropError(f"`word_map` maps {words!r} to {char!r}; give one character")
    with _Project(project, _read_config(config_path)) as reader:
        ids_file, ids_path = reader.dataset_ref("word_sequence")
        ids = reader.word_ids(ids_file, ids_path)
        n = ids.size
        states = reader.states(n)
        entries = parse_dict(reader.dict_file())
        vocab, tokens = _tokens(ids, entries, word_map, f"{shown(ids_file.name)}:{shown(ids_path)}")
        sequences = reader.sequences(n)
        if Path(out).resolve() in {p.resolve() for p in [*reader.read, reader.dict_file()]}:
            raise InteropError(f"{out} is a file of the project; write the store elsewhere")
        text = _decode(vocab, tokens)
        spec = RecordingSpec(
            tokens=tokens,
            sequences=sequences,
            vocab=vocab,
            layout={str(s.key): s.units for s in states},
            model_summary={"imported": reader.provenance(states)},
            model_sha256="",
            corpus_sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            has_next_logprob=False,
            run_config=reader.run_config(),
            dtype=dtype,
        )
        path = _write(out, spec, states, force=force, progress=progress, warn=warn)
    return ImportResult(path, n, len(sequences), len(vocab), {str(s.key): s.where for s in states})


def _read_config(path: Path) -> dict[str, Any]:
    import yaml

    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise InteropError(f"{path} has {size:,} bytes; an {CONFIG} of a few kilobytes is expected")
    try:
        config = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InteropError(f"{path} is not UTF-8 text (byte {exc.start:,})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or type(exc).__name__).split())
        raise InteropError(f"{path} is not valid YAML{line} ({problem})") from None
    if not isinstance(config, dict):
        raise InteropError(f"{path} must be a YAML mapping with files, word_sequence and states")
    return config


@contextlib.contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """h5py's errors while reading ``what`` of ``path`` as one line."""
    try:
        yield
    except LstmprobeError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InteropError(f"cannot read {what} of {path} ({detail})") from None


class _Project:
    """The files and datasets an ``lstm.yml`` names, resolved and checked."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        self.dir = directory
        self.config = config
        self.yml = directory / CONFIG
        files = config.get("files")
        if not isinstance(files, dict) or not files:
            raise InteropError(f"{self.yml} has no `files` mapping (reference name -> file name)")
        self.files: dict[str, Any] = files
        own = config.get(OWN_KEY)
        # what an lstmprobe export adds to the yml (LSTMVis does not read it)
        self.own: dict[str, Any] = (
            own if isinstance(own, dict) and own.get("format") == FORMAT else {}
        )
        self._open: dict[Path, h5py.File] = {}

    @property
    def read(self) -> list[Path]:
        """The HDF5 files opened so far."""
        return list(self._open)

    def __enter__(self) -> _Project:
        return self

    def __exit__(self, *exc: object) -> None:
        for f in self._open.values():
            with contextlib.suppress(Exception):
                f.close()
        self._open.clear()

    def section(self, name: str) -> dict[str, Any]:
        value = self.config.get(name)
        if not isinstance(value, dict):
            raise InteropError(f"{self.yml} has no `{name}` section (a mapping)")
        return value

    def file(self, ref: object, suffixes: tuple[str, ...], where: str) -> Path:
        """The file that reference name ``ref`` of ``files`` names, inside the project."""
        if not isinstance(ref, str) or ref not in self.files:
            known = ", ".join(shown(k) for k in self.files)
            raise InteropError(
                f"{self.yml}: {where} is {shown(ref)}, not a name in files ({known})"
            )
        name = self.files[ref]
        if not isinstance(name, str) or not name.endswith(suffixes):
            raise InteropError(
                f"{self.yml}: files.{shown(ref)} is {shown(name)}; LSTMVis reads it only when its name ends "
                f"in {' or '.join(suffixes)}"
            )
        path = self.dir / name
        root = self.dir.resolve()
        if root not in path.resolve().parents:
            raise InteropError(
                f"{self.yml}: files.{shown(ref)} = {shown(name)} lies outside {self.dir}; a project's files "
                "are read only from its own directory"
            )
        if not path.is_file():
            raise InteropError(
                f"{self.yml} names files.{shown(ref)} = {shown(name)}, which is not in {self.dir}"
            )
        return path

    def dataset_ref(self, section: str) -> tuple[Path, str]:
        info = self.section(section)
        path = info.get("path")
        if not isinstance(path, str) or not path:
            raise InteropError(f"{self.yml}: {section}.path must name a dataset")
        return self.file(info.get("file"), HDF5_SUFFIXES, f"{section}.file"), path

    def dict_file(self) -> Path:
        ref = self.section("word_sequence").get("dict_file")
        return self.file(ref, DICT_SUFFIXES, "word_sequence.dict_file")

    def open(self, path: Path, name: str) -> h5py.Dataset:
        f = self._open.get(path)
        if f is None:
            with _reading(path, "the file"):
                if not h5py.is_hdf5(path):
                    raise InteropError(f"{path} is not an HDF5 file")
                f = self._open[path] = h5py.File(path, "r")
        with _reading(path, name):
            obj = f.get(name)
        if not isinstance(obj, h5py.Dataset):
            raise InteropError(
                f"{self.yml} names the dataset {shown(name)} of {shown(path.name)}, which has none"
            )
        return obj

    def word_ids(self, path: Path, name: str) -> np.ndarray:
        ds = self.open(path, name)
        if ds.ndim != 1 or ds.shape[0] == 0 or ds.dtype.kind not in "iuf":
            raise InteropError(
                f"{shown(path.name)}:{shown(name)} must be a non-empty 1-D array of word ids, got shape "
                f"{ds.shape} of {ds.dtype}"
            )
        with _reading(path, name):
            raw = np.asarray(ds[()])
        if raw.dtype.kind == "f" and not np.array_equal(raw, np.round(raw)):
            bad = int(np.flatnonzero(raw != np.round(raw))[0])
            raise InteropError(
                f"{shown(path.name)}:{shown(name)} holds {raw[bad]} at position {bad}, not an id"
            )
        return raw.astype(np.int64)

    def states(self, n: int) -> list[_States]:
        info = self.section("states")
        types = info.get("types")
        if not isinstance(types, list) or not types:
            raise InteropError(f"{self.yml}: states.types must list the states (type, layer, path)")
        found: dict[Key, _States] = {}
        for i, entry in enumerate(types):
            where = f"{self.yml}: states.types[{i}]"
            if not isinstance(entry, dict):
                raise InteropError(f"{where} must be a mapping with type, layer and path")
            key = key_of(entry.get("type"), entry.get("layer"), where)
            name = entry.get("path")
            if not isinstance(name, str) or not name:
                raise InteropError(f"{where}: `path` must name a dataset")
            ref = entry.get("file", info.get("file"))
            path = self.file(
                ref,
                HDF5_SUFFIXES,
                "states.file" if "file" not in entry else f"states.types[{i}].file",
            )
            ds = self.open(path, name)
            label = (
                f"{shown(path.name)}:{shown(name)} ({shown(entry['type'])}, layer {entry['layer']})"
            )
            if ds.ndim != 2 or ds.dtype.kind not in "iuf" or not 1 <= ds.shape[1] <= MAX_UNITS:
                raise InteropError(
                    f"{label} must be a 2-D array of numbers (positions x units, at most "
                    f"{MAX_UNITS:,} units), got shape {ds.shape} of {ds.dtype}"
                )
            if ds.shape[0] != n:
                raise InteropError(
                    f"{label} has {ds.shape[0]:,} positions but the word sequence has {n:,}; "
                    "the states must hold one row per word"
                )
            if key in found:
                raise InteropError(
                    f"{where} ({label}) is {key} again, as {found[key].where}; keep one of them in "
                    "states.types"
                )
            found[key] = _States(key, ds, int(ds.shape[1]), label)
        return list(found.values())

    def sequences(self, n: int) -> np.ndarray:
        """Where each sequence starts: from an lstmprobe export's track, else one sequence."""
        track = self.own.get("sequence_track")
        meta = self.config.get("meta")
        entry = meta.get(track) if isinstance(meta, dict) and isinstance(track, str) else None
        if not isinstance(entry, dict):
            return np.array([[0, n]], dtype=np.int64)
        path = self.file(entry.get("file"), HDF5_SUFFIXES, f"meta.{shown(track)}.file")
        ds = self.open(path, str(entry.get("path")))
        if ds.shape != (n,):
            raise InteropError(
                f"{shown(path.name)}:{shown(entry.get('path'))} must have {n:,} positions, got {ds.shape}"
            )
        with _reading(path, str(entry.get("path"))):
            starts = np.flatnonzero(np.asarray(ds[()]) != 0)
        starts = np.union1d(starts, [0])
        return np.stack([starts, np.append(starts[1:], n)], axis=1).astype(np.int64)

    def provenance(self, states: list[_States]) -> dict[str, Any]:
        """Where the store came from (its ``model`` attribute: it records no model)."""
        own = {k: self.own[k] for k in ("store", "model_sha256", "corpus_sha256") if k in self.own}
        return {
            "format": "lstmvis",
            "project": str(self.dir.resolve()),
            "name": str(self.config.get("name", "")),
            "datasets": {str(s.key): s.where for s in states},
            **({"exported_from": own} if own else {}),
        }

    def run_config(self) -> dict[str, Any]:
        """How the corpus was read (``reset``), where an lstmprobe export says so."""
        run = self.own.get("run_config")
        reset = run.get("reset") if isinstance(run, dict) else None
        return {"reset": reset} if reset in ("none", "line") else {}


def _tokens(
    ids: np.ndarray, entries: dict[int, DictEntry], word_map: Mapping[str, str] | None, source: str
) -> tuple[Vocab, np.ndarray]:
    """The vocabulary (characters of the dictionary, in id order) and each position's token."""
    used, counts = np.unique(ids, return_counts=True)
    missing = [int(i) for i in used if int(i) not in entries]
    if missing:
        first = int(np.flatnonzero(np.isin(ids, missing[:1]))[0])
        listed = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise InteropError(
            f"the dictionary has no word for {len(missing)} id(s) of {source}: {listed} (first at "
            f"position {first:,}); it must map every id the word sequence uses"
        )
    used_set = set(used.tolist())
    chars: dict[str, None] = {}
    char_of: dict[int, str] = {}
    for id_ in sorted(entries):
        entry = entries[id_]
        char = word_char(entry.word, word_map)
        if char is None:
            if id_ in used_set:
                count = int(counts[np.searchsorted(used, id_)])
                raise InteropError(
                    f"the dictionary maps id {id_} to {entry.word[:30]!r} (line {entry.line}), "
                    f"used at {count:,} positions: more than one character, and lstmprobe reads "
                    f"character-level recordings; map it to one with `word_map` "
                    f"(--map '{shown(entry.word, 30)}=C')"
                )
            continue  # a word the sequence never uses
        char_of[id_] = char
        chars.setdefault(char)
    vocab = Vocab(tuple(chars))
    index = {c: i for i, c in enumerate(vocab.chars)}
    table = np.array([index[char_of[int(i)]] for i in used], dtype=np.int32)
    return vocab, table[np.searchsorted(used, ids)]


def _decode(vocab: Vocab, tokens: np.ndarray) -> str:
    codes = np.array([ord(c) for c in vocab.chars], dtype=np.uint32)
    return codes[tokens].tobytes().decode("utf-32-le")


def _write(
    out: str | os.PathLike[str],
    spec: RecordingSpec,
    states: list[_States],
    *,
    force: bool,
    progress: bool,
    warn: Callable[[str], None] | None,
) -> Path:
    n = int(spec.tokens.size)
    units = sum(s.units for s in states)
    sources = {Path(s.dataset.file.filename).resolve() for s in states}
    if Path(out).resolve() in sources:
        raise InteropError(
            f"{out} is a file of the project being imported; write the store elsewhere"
        )
    writer = StoreWriter(out, spec, force=force, warn=warn)
    chunk = writer.chunk_positions
    step = max(1, WINDOW_BYTES // (4 * units * chunk)) * chunk
    bar = progress_bar(n, desc="import", unit="char", unit_scale=True, enabled=progress)
    try:
        with bar:
            for a in range(0, n, step):
                b = min(a + step, n)
                block = {}
                for s in states:
                    with _reading(Path(s.dataset.file.filename), s.where):
                        block[str(s.key)] = np.asarray(s.dataset[a:b], dtype=np.float32)
                writer.write(a, block)
                bar.update(b - a)
        return writer.finish()
    except BaseException:
        writer.abort()
        raise
