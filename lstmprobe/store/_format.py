"""The activation store's format: its constants, file names and chunk sizes, shared by the writer
and the reader (docs/store-format.md)."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe._io import json_default
from lstmprobe.errors import StoreError, UnitError
from lstmprobe.names import check_key
from lstmprobe.text import Vocab

FORMAT = "lstmprobe.activations"
FORMAT_VERSION = 1

DTYPES: tuple[str, ...] = ("float16", "float32")
COMPRESSIONS: tuple[str | None, ...] = (None, "lzf", "gzip")

#: Units per HDF5 chunk along the unit axis: one unit across all positions reads at most this
#: many units' worth of data, while a window of positions reads ``ceil(n_units / 64)`` chunks.
UNIT_BLOCK = 64
#: Target size of one HDF5 chunk; the default ``chunk_positions`` is derived from it.
TARGET_CHUNK_BYTES = 512 * 1024
MIN_CHUNK_POSITIONS = 512
MAX_CHUNK_POSITIONS = 65536
GZIP_LEVEL = 4


def short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=json_default)


def normalized(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples -> lists, numpy scalars -> Python)."""
    return json.loads(dumps(obj))


def attr_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def default_chunk_positions(n_units: Sequence[int], dtype: str, n_positions: int) -> int:
    """Rows per HDF5 chunk so that the widest chunk is about ``TARGET_CHUNK_BYTES``.

    A power of two in ``[MIN_CHUNK_POSITIONS, MAX_CHUNK_POSITIONS]``, at most ``n_positions``.
    """
    block = max(1, min(max(n_units, default=1), UNIT_BLOCK))
    row_bytes = block * np.dtype(dtype).itemsize
    rows = 1 << max(0, int(math.log2(max(1, TARGET_CHUNK_BYTES // row_bytes))))
    rows = min(max(rows, MIN_CHUNK_POSITIONS), MAX_CHUNK_POSITIONS)
    return max(1, min(rows, n_positions))


def cache_bytes(chunk_positions: int, n_units: Sequence[int], itemsize: int) -> int:
    """HDF5 chunk cache per dataset: one row of chunks of the widest dataset, within limits."""
    widest = chunk_positions * max(n_units, default=1) * itemsize
    return int(min(max(widest + (1 << 20), 1 << 20), 64 << 20))


@dataclass(frozen=True, eq=False)
class RecordingSpec:
    """What a recording holds besides its values, and what a resumed recording must match.

    Parameters
    ----------
    tokens : ndarray of shape (n_positions,)
        Vocab id of each position's character.
    sequences : array-like of shape (n_sequences, 2)
        ``[start, end)`` of each independent sequence (:func:`lstmprobe.text.sequences`).
    vocab : Vocab
        The model's vocabulary.
    layout : dict of str to int
        Ordered dataset key -> number of units, e.g. ``{"layer0/input_gate": 128, ...}``.
    model_summary : dict
        JSON-ready description of the model (stored as the ``model`` attribute).
    model_sha256, corpus_sha256 : str
        Hashes of the model and the corpus.
    has_next_logprob : bool
        Whether each write brings the model's log-probability of the next character.
    run_config : dict
        How the recording is made (reset mode, quantities, ...).
    dtype : {"float16", "float32"}
        Storage type of the activations.
    files : sequence of str
        The corpus's files, in order (stored as ``/files``); empty: not recorded.
    sequence_files : array-like of shape (n_sequences,), optional
        The file of each sequence, an index into ``files`` (stored as ``/sequence_files``);
        required exactly when ``files`` is given.
    attrs : dict of str to str, int or bool
        More root attributes, e.g. a shard's identity (:class:`~lstmprobe.store.shards.Shard`).
    """

    tokens: np.ndarray
    sequences: Any
    vocab: Vocab
    layout: Mapping[str, int]
    model_summary: dict
    model_sha256: str
    corpus_sha256: str
    has_next_logprob: bool
    run_config: dict
    dtype: str = "float16"
    files: Sequence[str] = ()
    sequence_files: Any = None
    attrs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Contents:
    """What a recording holds besides its values, checked: the corpus as vocab ids, its
    sequences, and the datasets (``key -> units``) with their dtype."""

    tokens: np.ndarray  # int32 (n_positions,)
    sequences: np.ndarray  # int64 (n_sequences, 2), [start, end) pairs tiling the positions
    layout: dict[str, int]
    dtype: str
    has_next_logprob: bool
    files: tuple[str, ...] = ()
    sequence_files: np.ndarray | None = None  # int32 (n_sequences,), with files

    @property
    def n_positions(self) -> int:
        return int(self.tokens.size)

    def size_estimate(self, cp: int) -> int:
        """An upper bound of the file's size (:func:`recording_bytes`), file names included."""
        names = sum(len(f.encode("utf-8")) + 32 for f in self.files)
        names += 4 * len(self.sequences) if self.files else 0
        return names + recording_bytes(
            list(self.layout.values()),
            self.dtype,
            self.n_positions,
            cp,
            has_next_logprob=self.has_next_logprob,
            n_sequences=len(self.sequences),
        )


def recording_bytes(
    n_units: Sequence[int],
    dtype: str,
    n_positions: int,
    chunk_positions: int,
    *,
    has_next_logprob: bool = True,
    n_sequences: int = 1,
    margin: int = 1 << 20,
) -> int:
    """An upper bound of a recording's size on disk, uncompressed: HDF5 stores whole chunks
    (``chunk_positions`` x up to :data:`UNIT_BLOCK` units), so every dataset takes its whole
    chunk rows and blocks; plus the tokens, sequences, chunk index and ``margin`` bytes for
    the file's own metadata (0: the expected size rather than a bound).

    Examples
    --------
    >>> recording_bytes([160], "float16", 1000, 512, has_next_logprob=False) - (1 << 20)
    397808
    """
    itemsize = np.dtype(dtype).itemsize
    rows = -(-n_positions // chunk_positions)
    padded = rows * chunk_positions
    values = sum(padded * (-(-n // UNIT_BLOCK) * UNIT_BLOCK if n > UNIT_BLOCK else n) * itemsize
                 for n in n_units)  # fmt: skip
    chunks = sum(rows * -(-n // UNIT_BLOCK) for n in n_units)
    extra = 4 * padded + 4 * rows if has_next_logprob else 0
    return values + extra + 4 * n_positions + 16 * n_sequences + 96 * chunks + margin


def recording_header(
    identity: Mapping[str, Any], model_summary: dict, vocab: Vocab, chunk_positions: int
) -> dict[str, Any]:
    """The root attributes of a new recording (docs/store-format.md), not yet complete.

    ``identity`` holds what a resume checks: ``model_sha256``, ``corpus_sha256``, ``layout``
    (``[[key, units], ...]``), ``dtype``, ``run_config`` and ``has_next_logprob``.
    """
    from datetime import datetime, timezone

    from lstmprobe._version import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lstmprobe_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": False,
        "model": dumps(model_summary),
        "model_sha256": identity["model_sha256"],
        "corpus_sha256": identity["corpus_sha256"],
        "vocab": vocab.to_json(),
        "dtype": identity["dtype"],
        "run_config": dumps(identity["run_config"]),
        "layout": dumps(identity["layout"]),
        "has_next_logprob": bool(identity["has_next_logprob"]),
        "chunk_positions": int(chunk_positions),
    }


def check_contents(
    spec: RecordingSpec, compression: str | None, chunk_positions: int | None
) -> Contents:
    """Check what a :class:`~lstmprobe.store.StoreWriter` is asked to write; each problem is one
    :class:`StoreError` line."""
    tokens, sequences, vocab, layout = spec.tokens, spec.sequences, spec.vocab, spec.layout
    dtype = spec.dtype
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or tokens.size == 0:
        raise StoreError(
            f"tokens must be a non-empty 1-D array of vocab ids, got shape {tokens.shape}; "
            "record a non-empty corpus"
        )
    if not np.issubdtype(tokens.dtype, np.integer):
        raise StoreError(f"tokens must be integer vocab ids, got dtype {tokens.dtype}")
    if tokens.min() < 0 or tokens.max() >= len(vocab):
        raise StoreError(
            f"tokens must be vocab ids in [0, {len(vocab)}), got values in "
            f"[{tokens.min()}, {tokens.max()}]; encode the corpus with the model's vocab"
        )
    seqs = np.asarray(sequences, dtype=np.int64).reshape(-1, 2)
    problem = sequence_problem(seqs, tokens.size)
    if problem:
        raise StoreError(
            f"sequences must be [start, end) pairs covering positions 0..{tokens.size} in "
            f"order, each starting where the previous ends; {problem}; use "
            "lstmprobe.text.sequences(text)"
        )
    if dtype not in DTYPES:
        raise StoreError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if compression not in COMPRESSIONS:
        raise StoreError(f"compression must be None, 'lzf' or 'gzip', got {compression!r}")
    if not layout:
        raise StoreError("layout is empty; record at least one quantity of one layer")
    layout_list: list[tuple[str, int]] = []
    for key, n in layout.items():
        check_key(key)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise StoreError(f"layout[{key!r}] must be a positive unit count, got {n!r}")
        layout_list.append((key, int(n)))
    if chunk_positions is not None and int(chunk_positions) < 1:
        raise StoreError(f"chunk_positions must be at least 1, got {chunk_positions}")
    files, of_sequence = check_files(spec.files, spec.sequence_files, len(seqs))
    return Contents(
        tokens=tokens.astype(np.int32),
        sequences=seqs,
        layout=dict(layout_list),
        dtype=dtype,
        has_next_logprob=bool(spec.has_next_logprob),
        files=files,
        sequence_files=of_sequence,
    )


def check_files(
    files: Sequence[str], sequence_files: Any, n_sequences: int
) -> tuple[tuple[str, ...], np.ndarray | None]:
    """The corpus's file names and the file of each sequence, checked (each problem one
    :class:`StoreError` line)."""
    names = tuple(files)
    if not names:
        if sequence_files is not None:
            raise StoreError("sequence_files needs files: the names its indices point to")
        return (), None
    if not all(isinstance(f, str) for f in names):
        raise StoreError("files must be strings: the names of the corpus's files")
    if sequence_files is None:
        raise StoreError("files needs sequence_files: the file of each sequence")
    of_sequence = np.asarray(sequence_files)
    if of_sequence.shape != (n_sequences,) or not np.issubdtype(of_sequence.dtype, np.integer):
        raise StoreError(
            f"sequence_files must hold one file index per sequence ({n_sequences}), got shape "
            f"{of_sequence.shape} of {of_sequence.dtype}"
        )
    if of_sequence.size and (of_sequence.min() < 0 or of_sequence.max() >= len(names)):
        raise StoreError(f"sequence_files must be indices into the {len(names)} files")
    return names, of_sequence.astype(np.int32)


#: What h5py raises where a file's bytes are damaged: "bad object header", "bad global heap",
#: checksum mismatches, truncated chunks ("ran off end of input buffer").
H5_ERRORS = (
    OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError
)  # fmt: skip


@contextlib.contextmanager
def damaged(path: Path, what: str = "") -> Iterator[None]:
    """Turn h5py's errors while reading ``path`` into one :class:`StoreError` line."""
    try:
        yield
    except StoreError:
        raise
    except UnitError:
        raise
    except H5_ERRORS as exc:
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        detail = " ".join(text.split()) or type(exc).__name__
        detail = detail if len(detail) <= 160 else detail[:157] + "..."
        where = f" while reading {what}" if what else ""
        raise StoreError(
            f"{path} is a damaged lstmprobe recording ({detail}{where}); record it again"
        ) from None


def sequence_problem(seqs: np.ndarray, n: int) -> str | None:
    """What is wrong with ``seqs`` as a tiling of ``[0, n)`` (non-empty ``[start, end)`` pairs in
    order, each start the previous end), or None when nothing is.

    Examples
    --------
    >>> sequence_problem(np.array([[0, 2], [2, 5]]), 5) is None
    True
    >>> sequence_problem(np.array([[0, 2], [3, 5]]), 5)
    'sequence 1 [3, 5] leaves a gap after sequence 0 [0, 2]'
    """
    if n and len(seqs) == 0:
        return "no sequences"
    if not len(seqs):
        return None
    if seqs[0, 0] != 0 or seqs[-1, 1] != n:
        return f"they cover [{seqs[0, 0]}, {seqs[-1, 1]}), not the {n} positions [0, {n})"
    if np.any(seqs[:, 1] <= seqs[:, 0]):
        i = int(np.flatnonzero(seqs[:, 1] <= seqs[:, 0])[0])
        return f"sequence {i} is {seqs[i].tolist()}, empty or reversed"
    if np.any(seqs[1:, 0] != seqs[:-1, 1]):
        i = int(np.flatnonzero(seqs[1:, 0] != seqs[:-1, 1])[0]) + 1
        how = "overlaps" if seqs[i, 0] < seqs[i - 1, 1] else "leaves a gap after"
        return f"sequence {i} {seqs[i].tolist()} {how} sequence {i - 1} {seqs[i - 1].tolist()}"
    return None


def check_sequences(path: Path, seqs: np.ndarray, n: int) -> None:
    """Sequences must tile ``[0, n)`` in order (:func:`sequence_problem`; what
    :class:`StoreWriter` writes)."""
    problem = sequence_problem(seqs, n)
    if problem:
        raise StoreError(
            f"{path} is a damaged lstmprobe recording: its sequences must be [start, end) pairs "
            f"in order, each starting where the previous ends; {problem}; record it again"
        )


def dataset(group: h5py.Group, key: str) -> h5py.Dataset:
    """``group[key]``, which must be a dataset: anything else there is a damaged recording (a
    ``KeyError``, which :func:`damaged` reports as one line)."""
    obj = group[key]
    if not isinstance(obj, h5py.Dataset):
        raise KeyError(f"{key} is not a dataset")
    return obj
