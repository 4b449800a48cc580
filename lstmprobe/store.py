"""The activation store: streaming, crash-safe HDF5 writing and lazy reading (docs/store-format.md).

One file per recording. Positions are characters of the corpus, in order, across all sequences;
``/layer{l}[_reverse]/{quantity}`` holds one ``(n_positions, n_units)`` dataset per recorded
quantity, chunked along positions. A recording is written to ``acts.h5.partial`` and renamed to
``acts.h5`` only when it is complete, so a path without ``.partial`` always holds a finished
recording. This is the only module that imports h5py.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import mmap
import os
import queue
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import h5py
import numpy as np

from lstmprobe._io import atomic_write, create_exclusive, fsync_dir
from lstmprobe.errors import StoreError, UnitError
from lstmprobe.names import GRU_QUANTITIES, LSTM_QUANTITIES, QUANTITIES
from lstmprobe.text import Vocab

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GRU_QUANTITIES",
    "LSTM_QUANTITIES",
    "ActivationStore",
    "StoreWriter",
    "parse_unit",
    "partial_path",
    "write_json_atomic",
]

FORMAT = "lstmprobe.activations"
FORMAT_VERSION = 1

DTYPES: tuple[str, ...] = ("float16", "float32")
COMPRESSIONS: tuple[str | None, ...] = (None, "lzf", "gzip")
PARTIAL_SUFFIX = ".partial"

#: Units per HDF5 chunk along the unit axis: one unit across all positions reads at most this
#: many units' worth of data, while a window of positions reads ``ceil(n_units / 64)`` chunks.
UNIT_BLOCK = 64
#: Target size of one HDF5 chunk; the default ``chunk_positions`` is derived from it.
TARGET_CHUNK_BYTES = 512 * 1024
MIN_CHUNK_POSITIONS = 512
MAX_CHUNK_POSITIONS = 65536
GZIP_LEVEL = 4

_LAYER_RE = re.compile(r"layer\d+(_reverse)?")
_UNIT_FORM = "layer/quantity/index, e.g. layer0/cell/17"


# --- names -------------------------------------------------------------------------------------


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where the unfinished recording for ``path`` lives: ``path`` + ``".partial"``.

    Examples
    --------
    >>> partial_path("runs/acts.h5").as_posix()
    'runs/acts.h5.partial'
    """
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def _check_key(key: str) -> str:
    """Validate a dataset key ``layer{l}[_reverse]/{quantity}``; returns it."""
    parts = key.split("/") if isinstance(key, str) else []
    if len(parts) != 2 or not _LAYER_RE.fullmatch(parts[0]):
        raise UnitError(
            f"a dataset key looks like layer0/cell or layer1_reverse/hidden, got {key!r}"
        )
    if parts[1] not in QUANTITIES:
        raise UnitError(
            f"unknown quantity {parts[1]!r} in {key!r}; expected one of {', '.join(QUANTITIES)}"
        )
    return key


def parse_unit(name: str) -> tuple[str, int]:
    """Split a unit name into its dataset key and unit index.

    Only the form is checked here; whether the unit exists in a recording is checked by
    :meth:`ActivationStore.unit`.

    Parameters
    ----------
    name : str
        A unit name ``layer{l}[_reverse]/{quantity}/{index}``.

    Returns
    -------
    key : str
        The dataset key, e.g. ``"layer0/cell"``.
    index : int
        The unit's index within that dataset.

    Examples
    --------
    >>> parse_unit("layer0/cell/17")
    ('layer0/cell', 17)
    >>> parse_unit("layer1_reverse/hidden/0")
    ('layer1_reverse/hidden', 0)
    """
    if not isinstance(name, str):
        raise UnitError(f"a unit name is a string ({_UNIT_FORM}), got {type(name).__name__}")
    parts = name.split("/")
    if len(parts) != 3 or not parts[2].isdecimal() or not _LAYER_RE.fullmatch(parts[0]):
        raise UnitError(f"a unit name looks like {_UNIT_FORM}, got {name!r}")
    key = f"{parts[0]}/{parts[1]}"
    if parts[1] not in QUANTITIES:
        raise UnitError(
            f"unknown quantity {parts[1]!r} in unit {name!r}; expected one of "
            f"{', '.join(QUANTITIES)}"
        )
    return key, int(parts[2])


def _layer_of(key: str) -> str:
    return key.split("/", 1)[0]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_json_default)


def _normalized(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples -> lists, numpy scalars -> Python)."""
    return json.loads(_dumps(obj))


def _attr_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (temporary file beside it + ``os.replace``).

    The temporary is created exclusively (a link at its name is never followed) and the file gets
    the permissions of a new file (``0o666`` less the umask).

    Derived results (rankings, dynamics) go beside a recording with this function, never into it.
    numpy scalars and arrays are converted to plain JSON.

    Parameters
    ----------
    path : str or PathLike
        The JSON file to write, e.g. ``store.sibling("rankings.json")``.
    obj : object
        Anything ``json`` can write, plus numpy scalars/arrays, paths and sets.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile, json
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = write_json_atomic(Path(tmp.name) / "acts.rankings.json", {"top": [np.int64(3)]})
    >>> json.loads(p.read_text())
    {'top': [3]}
    >>> tmp.cleanup()
    """
    path = Path(path)
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n"
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


#: Quantities that are sigmoid outputs (never exactly 0 in every unit of a recorded position).
_GATES = frozenset({"input_gate", "forget_gate", "output_gate", "reset_gate", "update_gate"})

_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)")


def check_output(path: str | os.PathLike[str]) -> Path:
    """Check, before any work, that a recording can be written at ``path``; returns it.

    Raises
    ------
    StoreError
        ``path`` is a directory, or its directory does not exist or is not writable.
    """
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"{path} is a directory; give a file path such as acts.h5")
    parent = path.parent
    if not parent.is_dir():
        raise StoreError(f"directory {parent} does not exist; create it or choose another -o path")
    probe = None
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StoreError(
            f"cannot write in directory {parent} ({reason}); choose another -o path or fix "
            "its permissions"
        ) from None
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                os.unlink(probe)
    return path


def write_error(exc: BaseException, path: Path, what: str = "writing") -> str:
    """One line for an error while writing ``path``: what happened and what to do.

    Examples
    --------
    >>> write_error(OSError(28, "No space left on device"), Path("acts.h5.partial"))
    'no space left on device while writing acts.h5.partial; free space and run the same command with --resume'
    """
    code = getattr(exc, "errno", None)
    if not isinstance(code, int):
        match = _ERRNO_IN_TEXT.search(str(exc))
        code = int(match.group(1)) if match else None
    then = "run the same command with --resume"
    if code == errno.ENOSPC:
        return f"no space left on device while {what} {path}; free space and {then}"
    if code == errno.EFBIG:
        return (
            f"file too large while {what} {path}: the file system or the process's file-size "
            f"limit (ulimit -f) does not allow a file this big; raise the limit or write "
            f"elsewhere, then {then}"
        )
    if code == errno.EDQUOT:
        return f"disk quota exceeded while {what} {path}; free space and {then}"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot write {path} ({detail[:200]}); fix the cause and {then}"


def _busy(path: Path) -> StoreError:
    return StoreError(
        f"{path} is being written by another lstmprobe record right now (it holds the file's "
        "lock); wait for it to finish or choose another -o path (--force does not stop a "
        "running recording)"
    )


def _lock(path: Path, *, force: bool = False) -> int | None:
    """Open the existing file at ``path`` and take its exclusive lock; None if nothing is there.

    A symbolic link is never opened (with ``force`` it is removed); a file another process
    holds locked raises :class:`StoreError`.
    """
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            if force:
                path.unlink()
                return None
            raise StoreError(
                f"{path} is a symbolic link; lstmprobe never writes through a link it did not "
                "create; remove it, or pass --force to replace it"
            ) from None
        raise StoreError(f"cannot open {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.lstat(path).st_ino:
            raise BlockingIOError
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        raise _busy(path) from None
    return fd


def _create_locked(path: Path) -> int:
    """Create ``path`` exclusively (never through a link) and take its lock."""
    try:
        fd = create_exclusive(path)
    except FileExistsError:
        raise _busy(path) from None
    except OSError as exc:
        raise StoreError(write_error(exc, path, "creating")) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _busy(path) from None
    return fd


def _reserve(fd: int, size: int, path: Path) -> None:
    """Allocate ``size`` bytes of ``fd`` on disk now (``posix_fallocate``), or fail as one line."""
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is None:
        return
    try:
        allocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # a file system that cannot
            return
        raise StoreError(write_error(exc, path, f"reserving {size / 2**20:,.1f} MiB for")) from None


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.lstat(path).st_ino
    except OSError:
        return False


def _recorded_nothing(path: Path) -> bool:
    """Whether a partial file holds no recorded position (empty, or cut short at creation)."""
    try:
        if path.stat().st_size == 0:
            return True
        with h5py.File(path, "r", locking=False) as f:
            if _attr_str(f.attrs.get("format", "")) != FORMAT or bool(f.attrs.get("complete")):
                return False
            return "positions_written" not in f or int(f["positions_written"][()]) == 0
    except Exception:  # not readable as HDF5: handled (and reported) by resuming
        return False


def _quiet_close(f: h5py.File) -> None:
    with contextlib.suppress(Exception):
        f.close()


def default_chunk_positions(n_units: Sequence[int], dtype: str, n_positions: int) -> int:
    """Rows per HDF5 chunk so that the widest chunk is about ``TARGET_CHUNK_BYTES``.

    A power of two in ``[MIN_CHUNK_POSITIONS, MAX_CHUNK_POSITIONS]``, at most ``n_positions``.
    """
    block = max(1, min(max(n_units, default=1), UNIT_BLOCK))
    row_bytes = block * np.dtype(dtype).itemsize
    rows = 1 << max(0, int(math.log2(max(1, TARGET_CHUNK_BYTES // row_bytes))))
    rows = min(max(rows, MIN_CHUNK_POSITIONS), MAX_CHUNK_POSITIONS)
    return max(1, min(rows, n_positions))


def _cache_bytes(chunk_positions: int, n_units: Sequence[int], itemsize: int) -> int:
    """HDF5 chunk cache per dataset: one row of chunks of the widest dataset, within limits."""
    widest = chunk_positions * max(n_units, default=1) * itemsize
    return int(min(max(widest + (1 << 20), 1 << 20), 64 << 20))


@dataclass(frozen=True)
class _Layout:
    """What reading a dataset's chunks as bytes of the mapped file needs (read once per open
    store: h5py's properties cost microseconds each, 6 ms per pass of range samples)."""

    dsid: Any  # the low-level dataset id
    chunks: tuple[int, int]
    dtype: np.dtype
    units: int
    plain: bool  # no filters, native byte order: a chunk is its values' bytes

    @classmethod
    def of(cls, ds: h5py.Dataset) -> _Layout:
        chunks = ds.chunks
        plain = (
            chunks is not None
            and ds.ndim == 2
            and ds.dtype.isnative
            and ds.id.get_create_plist().get_nfilters() == 0
        )
        return cls(ds.id, chunks or (0, 0), ds.dtype, ds.shape[-1], plain)


def _chunk_views(
    layout: _Layout, mapped: np.ndarray, r0: int, a: int, b: int, used: list[tuple[int, int]]
) -> list[tuple[int, np.ndarray]] | None:
    """Rows ``[a, b)`` of the chunk row starting at ``r0`` as views of the mapped file, one per
    chunk column, or None where the dataset's chunks are not plain bytes in the file."""
    if not layout.plain:
        return None
    rows, cols = layout.chunks
    nbytes = rows * cols * layout.dtype.itemsize
    blocks = []
    for c0 in range(0, layout.units, cols):
        try:
            info = layout.dsid.get_chunk_info_by_coord((r0, c0))
        except (OSError, RuntimeError, ValueError):  # h5py reads it then, with its own errors
            return None
        if info.byte_offset is None or info.filter_mask or info.size != nbytes:
            return None
        raw = mapped[info.byte_offset : info.byte_offset + nbytes]
        if len(raw) != nbytes:
            return None
        block = raw.view(layout.dtype).reshape(rows, cols)[a - r0 : b - r0]
        if layout.units - c0 < cols:
            # the last chunk column is padded: copy its units, so that every block is
            # C-contiguous (strided ones ran the scoring loop 2x slower, unvectorised)
            block = np.ascontiguousarray(block[:, : layout.units - c0])
        blocks.append((c0, block))
        used.append((info.byte_offset, nbytes))
    return blocks


#: Linux maps more than the faulting page: the cached pages around it ("fault-around") and,
#: with large page-cache folios (ext4 on recent kernels), the whole folio, up to 2 MiB. Ranges
#: are released in aligned blocks of this size so that those pages go as well (measured: with
#: exact ranges a pass over a 4M-position recording kept 20 MB mapped, growing with N).
_RELEASE_BLOCK = 1 << 21


def _release(mapping: mmap.mmap | None, used: list[tuple[int, int]]) -> None:
    """Drop the mapped pages of ``used`` byte ranges from this process (the page cache keeps
    them), so that a pass over a mapped recording does not grow the process's memory. Pages
    of a neighbouring range still in use are simply mapped again when next read."""
    if mapping is None or not used or not hasattr(mmap, "MADV_DONTNEED"):
        return
    block = max(mmap.PAGESIZE, _RELEASE_BLOCK)
    end_of_file = len(mapping)
    for offset, size in used:
        lo = offset // block * block
        hi = min(end_of_file, -(-(offset + size) // block) * block)
        try:
            mapping.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        except (OSError, ValueError):
            return


T = TypeVar("T")


def _read_ahead(read: Callable[[int, int], T], bounds: Sequence[tuple[int, int]]) -> Iterator[T]:
    """``read(a, b)`` for each of ``bounds`` in order, the next one read by a thread while the
    caller holds the current one. An error in the thread is raised here; leaving the loop
    early stops the thread."""
    results: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def work() -> None:
        for a, b in bounds:
            try:
                item = (True, read(a, b))
            except BaseException as exc:  # handed to the caller
                item = (False, exc)
            while not stop.is_set():
                try:
                    results.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set() or not item[0]:
                return

    thread = threading.Thread(target=work, name="lstmprobe-read-ahead", daemon=True)
    thread.start()
    try:
        for _ in bounds:
            ok, item = results.get()
            if not ok:
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


# --- writing -----------------------------------------------------------------------------------


class StoreWriter:
    """Stream a recording into an HDF5 activation store, crash-safely.

    The recording is written to ``partial_path(path)`` and becomes ``path`` at :meth:`finish`.
    Positions are appended in order with :meth:`write`; once it returns, its positions are
    durable: a process killed at any later moment leaves a partial recording that
    ``resume=True`` continues right after them (:attr:`written` is set there).

    How: the partial file is created with every chunk allocated up front and no compression,
    so writing never changes HDF5 metadata (the chunk index, the file's free space): a kill can
    only interrupt writes of raw values, never leave a half-updated index behind. Each write is
    flushed, and only then is the scalar dataset ``/positions_written`` updated in place and
    flushed, so the recorded progress never runs ahead of what is on disk. With compression,
    :meth:`finish` compresses the finished recording into a new file (each chunk once) that
    replaces it atomically; without, it only marks the partial file complete and renames it.

    Parameters
    ----------
    path : str or PathLike
        The final file, e.g. ``acts.h5``.
    tokens : ndarray of shape (n_positions,)
        Vocab id of each position's character.
    sequences : ndarray of shape (n_sequences, 2)
        ``[start, end)`` of each independent sequence.
    vocab : Vocab
        The model's vocabulary.
    layout : dict of str to int
        Ordered dataset key -> number of units, e.g. ``{"layer0/input_gate": 128, ...}``.
    dtype : {"float16", "float32"}
        Storage type of the activations.
    compression : {None, "lzf", "gzip"}
        HDF5 compression of the final file (with byte shuffling); applied by :meth:`finish`.
    chunk_positions : int, optional
        Positions per HDF5 chunk; by default a chunk is about 512 KiB. Ignored on resume (the
        partial file keeps its own).
    model_summary : dict
        JSON-ready description of the model (stored as the ``model`` attribute).
    model_sha256, corpus_sha256 : str
        Hashes of the model and corpus; checked on resume.
    has_next_logprob : bool
        Whether :meth:`write` receives ``next_logprob``.
    run_config : dict
        How the recording was made (reset mode, quantities, ...); checked on resume.
    force : bool
        Overwrite an existing recording (replaced only at :meth:`finish`) and discard a partial one.
    resume : bool
        Continue ``partial_path(path)`` if it exists (starts a new recording if it does not).
        With ``force`` too, a partial file that cannot be continued is discarded instead.

    Attributes
    ----------
    path : Path
        The final path.
    partial : Path
        The path written to until :meth:`finish`.
    written : int
        Positions durably written; the next :meth:`write` must start there.
    n_positions : int
        Total number of positions to write.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = Path(tmp.name)
    >>> text = "abcab"
    >>> vocab = Vocab.from_text(text)
    >>> w = StoreWriter(d / "acts.h5", tokens=vocab.encode(text), sequences=[[0, 5]],
    ...                 vocab=vocab, layout={"layer0/cell": 3}, model_summary={"cell": "lstm"},
    ...                 model_sha256="m", corpus_sha256="c", has_next_logprob=False,
    ...                 run_config={"reset": "none"})
    >>> w.write(0, {"layer0/cell": np.zeros((5, 3))})
    >>> w.finish().name
    'acts.h5'
    >>> with ActivationStore(d / "acts.h5") as store:
    ...     store.keys, store.read("layer0/cell").shape, store.text
    (['layer0/cell'], (5, 3), 'abcab')
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        tokens: np.ndarray,
        sequences: np.ndarray,
        vocab: Vocab,
        layout: Mapping[str, int],
        dtype: str = "float16",
        compression: str | None = None,
        chunk_positions: int | None = None,
        model_summary: dict,
        model_sha256: str,
        corpus_sha256: str,
        has_next_logprob: bool,
        run_config: dict,
        force: bool = False,
        resume: bool = False,
    ) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self._file: h5py.File | None = None
        self._finished = False
        self._failed = False
        self._complete_on_disk = False
        self._lock_fd: int | None = None

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
        seqs = np.asarray(sequences, dtype=np.int64).reshape(-1, 2) if len(sequences) else None
        if seqs is None or seqs[0, 0] != 0 or seqs[-1, 1] != tokens.size:
            raise StoreError(
                f"sequences must be [start, end) pairs covering positions 0..{tokens.size}, got "
                f"{np.asarray(sequences).tolist()[:3]}...; use lstmprobe.text.sequences(text)"
            )
        if np.any(seqs[:, 1] <= seqs[:, 0]) or np.any(seqs[1:, 0] != seqs[:-1, 1]):
            raise StoreError(
                "sequences must be non-empty, in order and contiguous ([start, end) with each "
                "start equal to the previous end); use lstmprobe.text.sequences(text)"
            )
        if dtype not in DTYPES:
            raise StoreError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if compression not in COMPRESSIONS:
            raise StoreError(f"compression must be None, 'lzf' or 'gzip', got {compression!r}")
        if not layout:
            raise StoreError("layout is empty; record at least one quantity of one layer")
        layout_list: list[tuple[str, int]] = []
        for key, n in layout.items():
            _check_key(key)
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise StoreError(f"layout[{key!r}] must be a positive unit count, got {n!r}")
            layout_list.append((key, int(n)))
        if chunk_positions is not None and int(chunk_positions) < 1:
            raise StoreError(f"chunk_positions must be at least 1, got {chunk_positions}")

        self.n_positions = int(tokens.size)
        self.layout = dict(layout_list)
        self.dtype = dtype
        self.compression = compression
        self.has_next_logprob = bool(has_next_logprob)
        self.written = 0
        self._tokens = tokens.astype(np.int32)
        self._sequences = seqs
        identity = {
            "model_sha256": str(model_sha256),
            "corpus_sha256": str(corpus_sha256),
            "layout": [[k, n] for k, n in layout_list],
            "dtype": dtype,
            "run_config": _normalized(run_config),
            "has_next_logprob": self.has_next_logprob,
        }

        check_output(self.path)
        # Take the partial file's lock before deciding anything about it: a partial that another
        # process is recording into is never touched, --force included.
        self._lock_fd = _lock(self.partial, force=force)
        try:
            if self._lock_fd is not None and _recorded_nothing(self.partial):
                # left by a failure at creation: nothing to continue, nothing lost
                self.partial.unlink()
                self._release()
            self._open(identity, model_summary, vocab, chunk_positions, force, resume)
        except BaseException:
            self._release()
            raise

    def _open(
        self,
        identity: dict,
        model_summary: dict,
        vocab: Vocab,
        chunk_positions: int | None,
        force: bool,
        resume: bool,
    ) -> None:
        partial_exists = self._lock_fd is not None
        if self.path.exists() and not force and not (resume and partial_exists):
            raise StoreError(
                f"{self.path} already exists; pass --force to overwrite or -o to choose another path"
            )
        if partial_exists and not (resume or force):
            if self._partial_complete():
                raise StoreError(
                    f"a finished recording {self.partial} was not yet moved into place (the last "
                    "run was stopped while finishing); pass --resume to move it into place, or "
                    "--force to start over"
                )
            raise StoreError(
                f"an unfinished recording {self.partial} exists; pass --resume to continue it or "
                "--force to start over"
            )
        if resume and partial_exists:
            try:
                self._open_resume(identity)
                return
            except StoreError:
                if not force:
                    raise
        self._create(identity, model_summary, vocab, chunk_positions)

    def _partial_complete(self) -> bool:
        try:
            with h5py.File(self.partial, "r", locking=False) as f:
                return _attr_str(f.attrs.get("format", "")) == FORMAT and bool(
                    f.attrs.get("complete", False)
                )
        except Exception:
            return False

    def _release(self) -> None:
        """Let go of the partial file's lock."""
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    # -- opening --

    def _create(
        self, identity: dict, model_summary: dict, vocab: Vocab, chunk_positions: int | None
    ) -> None:
        from lstmprobe import __version__

        if self._lock_fd is not None:  # ours (locked): a stale partial, replaced
            self.partial.unlink(missing_ok=True)
            self._release()
        _compressing_path(self.partial).unlink(missing_ok=True)
        self._lock_fd = _create_locked(self.partial)
        cp = (
            min(int(chunk_positions), self.n_positions)
            if chunk_positions is not None
            else default_chunk_positions(list(self.layout.values()), self.dtype, self.n_positions)
        )
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "lstmprobe_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "complete": False,
            "model": _dumps(model_summary),
            "model_sha256": identity["model_sha256"],
            "corpus_sha256": identity["corpus_sha256"],
            "vocab": vocab.to_json(),
            "dtype": self.dtype,
            "run_config": _dumps(identity["run_config"]),
            "layout": _dumps(identity["layout"]),
            "has_next_logprob": self.has_next_logprob,
            "chunk_positions": cp,
        }
        self._file = self._new_file(self.partial, self._lock_fd, header, cp, compression=None)
        self._chunk_positions = cp

    def _new_file(
        self,
        target: Path,
        fd: int,
        header: Mapping[str, Any],
        cp: int,
        compression: str | None,
    ) -> h5py.File:
        """Fill the empty file ``target`` (created exclusively, open as ``fd``) with a recording.

        Without compression every chunk is allocated now (and never filled: unwritten values
        are whatever the file system gives, zeros), so later writes change no metadata. If
        anything fails, ``target`` is removed again and the error is one line.
        """
        units = list(self.layout.values())
        f: h5py.File | None = None
        try:
            f = h5py.File(
                target,
                "w",
                track_order=True,
                locking=False,  # the writer holds its own lock on the file (fd)
                rdcc_nbytes=_cache_bytes(cp, units, np.dtype(self.dtype).itemsize),
            )
            if not _same_file(fd, target):
                raise StoreError(
                    f"{target} was replaced by another file while lstmprobe created it; "
                    "record again"
                )
            # Reserve the file's whole size on disk before HDF5 writes anything: HDF5 cannot
            # recover from a failed write (it may crash), so a full disk or a file-size limit
            # must show here, as one line, and never in the middle of a recording.
            _reserve(fd, self._size_estimate(cp), target)
            if compression is None:
                options: dict[str, Any] = {"fill_time": "never"}
            else:
                options = {"compression": compression, "shuffle": True, "fillvalue": np.nan}
                if compression == "gzip":
                    options["compression_opts"] = GZIP_LEVEL

            def dcpl() -> Any:
                plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                if compression is None:
                    plist.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                return plist

            for name, value in header.items():
                f.attrs[name] = value
            f.create_dataset("tokens", data=self._tokens, dtype=np.int32)
            f.create_dataset("sequences", data=self._sequences, dtype=np.int64)
            for key, n in self.layout.items():
                layer = _layer_of(key)
                group = f[layer] if layer in f else f.create_group(layer, track_order=True)
                group.create_dataset(
                    key.split("/", 1)[1],
                    shape=(self.n_positions, n),
                    dtype=self.dtype,
                    chunks=(cp, min(n, UNIT_BLOCK)),
                    dcpl=dcpl(),
                    **options,
                )
            if self.has_next_logprob:
                f.create_dataset(
                    "next_logprob",
                    shape=(self.n_positions,),
                    dtype=np.float32,
                    chunks=(cp,),
                    dcpl=dcpl(),
                    **options,
                )
            # rewritten in place after each write(): a kill cannot leave it half-updated
            f.create_dataset("positions_written", data=np.int64(0))
            f.flush()
            os.fsync(fd)
        except BaseException as exc:
            if f is not None:
                _quiet_close(f)
            if _same_file(fd, target):
                target.unlink(missing_ok=True)
            if isinstance(exc, (OSError, RuntimeError)):
                raise StoreError(write_error(exc, target, "creating")) from None
            raise
        return f

    def _size_estimate(self, cp: int) -> int:
        """An upper bound of the file's size: every value, the chunk index, and a margin."""
        itemsize = np.dtype(self.dtype).itemsize
        n = self.n_positions
        values = sum(n * units * itemsize for units in self.layout.values())
        rows = -(-n // cp)
        chunks = sum(rows * -(-units // UNIT_BLOCK) for units in self.layout.values())
        extra = (4 * n + 4 * rows) if self.has_next_logprob else 0
        return values + extra + 4 * n + 16 * len(self._sequences) + 96 * chunks + (1 << 20)

    def _open_resume(self, identity: dict) -> None:
        broken = (
            f"the unfinished recording {self.partial} cannot be resumed: it was probably "
            "damaged when the recording was killed; start over with --force"
        )
        try:
            f = h5py.File(self.partial, "r+", locking=False)
        except (OSError, RuntimeError) as exc:
            raise StoreError(f"{broken} ({_first_line(exc)})") from None
        try:
            a = f.attrs
            if _attr_str(a.get("format", "")) != FORMAT:
                raise StoreError(
                    f"{self.partial} is not an unfinished lstmprobe recording; remove it or "
                    "start over with --force"
                )
            stored = {
                "model_sha256": _attr_str(a.get("model_sha256", "")),
                "corpus_sha256": _attr_str(a.get("corpus_sha256", "")),
                "layout": json.loads(_attr_str(a.get("layout", "[]"))),
                "dtype": _attr_str(a.get("dtype", "")),
                "run_config": json.loads(_attr_str(a.get("run_config", "null"))),
                "has_next_logprob": bool(a.get("has_next_logprob", False)),
            }
            differs = [name for name in identity if identity[name] != stored[name]]
            if not np.array_equal(f["tokens"][()], self._tokens):
                differs.append("tokens")
            if differs:
                what = ", ".join(
                    f"{n} (file: {_short(stored[n])}, now: {_short(identity[n])})"
                    if n in stored
                    else n
                    for n in differs
                )
                raise StoreError(
                    f"cannot resume {self.partial}: it was recorded with a different {what}; "
                    "record with the same model, corpus and options, or start over with --force"
                )
            self._chunk_positions = int(a["chunk_positions"])
            written = int(f["positions_written"][()])
            if not 0 <= written <= self.n_positions:
                raise StoreError(
                    f"{broken} (it claims {written} of {self.n_positions} positions written)"
                )
            self._complete_on_disk = bool(a.get("complete", False))
            if self._complete_on_disk:
                if written != self.n_positions:
                    raise StoreError(f"{broken} (marked complete with {written} positions)")
            elif written and not self._row_was_written(f, written - 1):
                raise StoreError(
                    f"{broken} (position {written - 1} is marked written but holds no values: "
                    "a write did not reach the disk)"
                )
            self.written = written
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            _quiet_close(f)
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"{broken} ({_first_line(exc)})") from None
        except BaseException:
            _quiet_close(f)
            raise
        self._file = f

    def _row_was_written(self, f: h5py.File, position: int) -> bool:
        """Whether the values of ``position`` reached the file (unwritten space reads as zeros).

        A gate is a sigmoid output, in (0, 1): a row of a gate dataset that is zero in every
        unit was never written. Without a gate dataset (values written through the API, say)
        nothing can be told, and the row is taken as written.
        """
        gates = [k for k in self.layout if k.split("/", 1)[1] in _GATES]
        if not gates:
            return True
        return any(np.any(f[key][position] != 0) for key in gates)

    # -- writing --

    @property
    def chunk_positions(self) -> int:
        """Positions per HDF5 chunk of this recording."""
        return self._chunk_positions

    def _require_open(self) -> h5py.File:
        if self._file is None:
            raise StoreError(
                f"the writer for {self.path} is closed; open a new StoreWriter with resume=True"
            )
        return self._file

    def write(
        self,
        start: int,
        arrays: Mapping[str, np.ndarray],
        next_logprob: np.ndarray | None = None,
    ) -> None:
        """Append the values of positions ``[start, start + n)``; durable once it returns.

        Parameters
        ----------
        start : int
            First position; must equal :attr:`written` (appends are sequential).
        arrays : dict of str to ndarray of shape (n, n_units)
            One array per key of the layout, any float dtype; cast to the store dtype.
        next_logprob : ndarray of shape (n,), optional
            ``log p(next char)``; required exactly when the store has ``next_logprob``.
        """
        f = self._require_open()
        if start != self.written:
            raise StoreError(
                f"write must continue at position {self.written} (positions are appended in "
                f"order), got start={start}"
            )
        missing = [k for k in self.layout if k not in arrays]
        extra = [k for k in arrays if k not in self.layout]
        if missing or extra:
            raise StoreError(
                f"write needs exactly the layout's datasets; missing {missing}, unexpected {extra}"
            )
        values = {k: np.asarray(arrays[k]) for k in self.layout}
        first = next(iter(values.values()))
        n = first.shape[0] if first.ndim == 2 else -1
        for k, v in values.items():
            if v.ndim != 2 or v.shape[1] != self.layout[k] or v.shape[0] != n:
                raise StoreError(
                    f"{k} must have shape (n, {self.layout[k]}) with the same n for every "
                    f"dataset, got {v.shape}"
                )
        lp = None
        if self.has_next_logprob:
            if next_logprob is None:
                raise StoreError("this store records next_logprob; pass next_logprob to write")
            lp = np.asarray(next_logprob, dtype=np.float32)
            if lp.shape != (n,):
                raise StoreError(f"next_logprob must have shape ({n},), got {lp.shape}")
        elif next_logprob is not None:
            raise StoreError(
                "this store was created with has_next_logprob=False; do not pass next_logprob"
            )
        if start + n > self.n_positions:
            raise StoreError(
                f"write of {n} positions at {start} goes past the end of the recording "
                f"({self.n_positions} positions)"
            )
        if n == 0:
            return
        if self._failed:
            raise StoreError(
                f"an earlier write to {self.partial} failed; run the same command with --resume"
            )
        stop = start + n
        try:
            for k, v in values.items():
                f[k][start:stop] = v.astype(self.dtype, copy=False)
            if lp is not None:
                f["next_logprob"][start:stop] = lp
            # the values first, durably (flushed and fsynced: a full disk shows here), and only
            # then the progress: the recorded progress never runs ahead of what is on disk
            f.flush()
            self._sync()
            f["positions_written"][()] = stop
            f.flush()
        except (OSError, RuntimeError) as exc:
            self._failed = True
            raise StoreError(write_error(exc, self.partial)) from None
        self.written = stop

    def rewind(self, position: int) -> int:
        """Forget the positions from ``position`` on (they are written again); returns it."""
        f = self._require_open()
        if not 0 <= position <= self.written:
            raise StoreError(f"cannot rewind to {position}: {self.written} positions are written")
        try:
            f["positions_written"][()] = position
            f.flush()
            self._sync()
        except (OSError, RuntimeError) as exc:
            self._failed = True
            raise StoreError(write_error(exc, self.partial)) from None
        self.written = position
        return position

    def _sync(self) -> None:
        if self._lock_fd is not None:
            os.fsync(self._lock_fd)

    def finish(self) -> Path:
        """Mark the recording complete (compressing it if asked) and move it to its final path.

        Every step leaves a state that ``resume=True`` finishes: the partial file is marked
        complete only once all its values are on disk, and a complete partial file is simply
        moved into place.

        Returns
        -------
        Path
            The final path.
        """
        f = self._require_open()
        if self.written != self.n_positions:
            raise StoreError(
                f"cannot finish {self.path}: {self.written} of {self.n_positions} positions "
                "were written; write the rest first"
            )
        if self._failed:
            raise StoreError(
                f"a write to {self.partial} failed; run the same command with --resume"
            )
        if self.compression is None:
            if not self._complete_on_disk:
                try:
                    f.attrs.modify("complete", True)
                    f.flush()
                    self._sync()
                except (OSError, RuntimeError) as exc:
                    self._failed = True
                    raise StoreError(write_error(exc, self.partial, "finishing")) from None
            self._close_file()
            source = self.partial
        else:
            source = self._compress(f)
            self._close_file()
        if self._lock_fd is not None and not _same_file(self._lock_fd, self.partial):
            raise _busy(self.partial)
        os.replace(source, self.path)
        fsync_dir(self.path)
        if source != self.partial:
            self.partial.unlink(missing_ok=True)
        self._release()
        self._finished = True
        return self.path

    def _compress(self, f: h5py.File) -> Path:
        """Write the complete, compressed copy of the partial file; returns its path."""
        target = _compressing_path(self.partial)
        header = {k: f.attrs[k] for k in f.attrs}
        header["complete"] = True
        cp = self._chunk_positions
        target.unlink(missing_ok=True)  # a stale one of ours: we hold the partial's lock
        try:
            fd = create_exclusive(target)
        except OSError as exc:
            raise StoreError(write_error(exc, target, "compressing")) from None
        try:
            out = self._new_file(target, fd, header, cp, compression=self.compression)
            try:
                names = [*self.layout, *(["next_logprob"] if self.has_next_logprob else [])]
                # several chunk rows at a time, each chunk compressed once
                step = cp * max(1, (8 << 20) // (cp * max(self.layout.values()) * 4))
                for name in names:
                    src, dst = f[name], out[name]
                    for a in range(0, self.n_positions, step):
                        b = min(a + step, self.n_positions)
                        dst[a:b] = src[a:b]
                out["positions_written"][()] = self.n_positions
                out.close()
                os.fsync(fd)
            except BaseException as exc:
                _quiet_close(out)
                target.unlink(missing_ok=True)
                if isinstance(exc, (OSError, RuntimeError)):
                    raise StoreError(write_error(exc, target, "compressing")) from None
                raise
        finally:
            os.close(fd)
        return target

    def close(self) -> None:
        """Close, keeping the partial file for ``resume=True``, and let go of its lock."""
        try:
            self._close_file()
        finally:
            self._release()

    def _close_file(self) -> None:
        if self._file is None:
            return
        try:
            if self._failed:
                _quiet_close(self._file)  # what failed to write would fail again
            else:
                self._file.close()
        except (OSError, RuntimeError) as exc:
            self._failed = True
            raise StoreError(write_error(exc, self.partial)) from None
        finally:
            self._file = None

    def abort(self) -> None:
        """Close and delete the partial file (nothing useful was recorded)."""
        self._close_file()
        if not self._finished:
            self.partial.unlink(missing_ok=True)
            _compressing_path(self.partial).unlink(missing_ok=True)
        self._release()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            with contextlib.suppress(StoreError):
                self.close()

    def __del__(self) -> None:
        self._release()

    def __repr__(self) -> str:
        state = "finished" if self._finished else ("open" if self._file else "closed")
        return f"<StoreWriter {self.partial}: {self.written}/{self.n_positions} positions, {state}>"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _compressing_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".compressing")


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


# --- reading -----------------------------------------------------------------------------------

#: What h5py raises where a file's bytes are damaged: "bad object header", "bad global heap",
#: checksum mismatches, truncated chunks ("ran off end of input buffer").
_H5_ERRORS = (
    OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError
)  # fmt: skip


@contextlib.contextmanager
def _damaged(path: Path, what: str = "") -> Iterator[None]:
    """Turn h5py's errors while reading ``path`` into one :class:`StoreError` line."""
    try:
        yield
    except StoreError:
        raise
    except UnitError:
        raise
    except _H5_ERRORS as exc:
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        detail = " ".join(text.split()) or type(exc).__name__
        detail = detail if len(detail) <= 160 else detail[:157] + "..."
        where = f" while reading {what}" if what else ""
        raise StoreError(
            f"{path} is a damaged lstmprobe recording ({detail}{where}); record it again"
        ) from None


def _check_sequences(path: Path, seqs: np.ndarray, n: int) -> None:
    """Sequences must tile ``[0, n)`` in order: non-empty ``[start, end)`` pairs, each start the
    previous end (what :class:`StoreWriter` writes)."""
    problem = None
    if n and len(seqs) == 0:
        problem = "no sequences"
    elif len(seqs):
        if seqs[0, 0] != 0 or seqs[-1, 1] != n:
            problem = f"they cover [{seqs[0, 0]}, {seqs[-1, 1]}), not the {n} positions [0, {n})"
        elif np.any(seqs[:, 1] <= seqs[:, 0]):
            i = int(np.flatnonzero(seqs[:, 1] <= seqs[:, 0])[0])
            problem = f"sequence {i} is {seqs[i].tolist()}, empty or reversed"
        elif np.any(seqs[1:, 0] != seqs[:-1, 1]):
            i = int(np.flatnonzero(seqs[1:, 0] != seqs[:-1, 1])[0]) + 1
            how = "overlaps" if seqs[i, 0] < seqs[i - 1, 1] else "leaves a gap after"
            problem = (
                f"sequence {i} {seqs[i].tolist()} {how} sequence {i - 1} {seqs[i - 1].tolist()}"
            )
    if problem:
        raise StoreError(
            f"{path} is a damaged lstmprobe recording: its sequences must be [start, end) pairs "
            f"in order, each starting where the previous ends; {problem}; record it again"
        )


class ActivationStore:
    """Lazy reader of an activation store; activations are read on demand, never wholesale.

    Parameters
    ----------
    path : str or PathLike
        A recording written by ``lstmprobe record`` (``acts.h5``).
    require_complete : bool
        Refuse an unfinished recording (``complete=False``). With ``False`` one can inspect a
        ``.partial`` file, whose first :attr:`positions_written` positions hold values.

    Examples
    --------
    >>> with ActivationStore("acts.h5") as store:  # doctest: +SKIP
    ...     store.keys
    ...     cell17 = store.unit("layer0/cell/17")
    ...     for start, stop, block in store.iter_chunks(["layer0/cell"]):
    ...         ...
    """

    def __init__(self, path: str | os.PathLike[str], *, require_complete: bool = True) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._datasets: dict[str, h5py.Dataset] = {}
        self._chunk_layouts: dict[str, _Layout] = {}  # a read-only file's layouts do not change
        self._mmap: mmap.mmap | None = None
        self._bytes: np.ndarray | None = None
        self._map_failed = False
        path = self.path
        if not path.exists():
            if partial_path(path).exists():
                raise StoreError(
                    f"{path} does not exist, but an unfinished recording {partial_path(path)} "
                    f"does; finish it with `lstmprobe record MODEL CORPUS -o {path} --resume`"
                )
            raise StoreError(
                f"{path} does not exist; run `lstmprobe record MODEL CORPUS -o {path}` first "
                "or pass --store PATH"
            )
        if path.is_dir():
            raise StoreError(f"{path} is a directory; give the recording file, e.g. acts.h5")
        try:
            is_hdf5 = h5py.is_hdf5(path)
        except OSError:
            is_hdf5 = False
        if not is_hdf5:
            raise StoreError(
                f"{path} is not an HDF5 file; give a recording written by `lstmprobe record`"
            )
        try:
            f = h5py.File(path, "r")
        except (OSError, RuntimeError) as exc:
            raise StoreError(
                f"cannot open {path} ({exc}); if it is being recorded, wait for the recording to "
                "finish, otherwise record it again"
            ) from None
        self._file = f
        try:
            with _damaged(self.path):
                self._read_header(require_complete)
        except BaseException:
            self.close()
            raise

    def _read_header(self, require_complete: bool) -> None:
        f = self._h5
        a = f.attrs
        self.attrs: dict[str, Any] = {k: a[k] for k in a}
        fmt = _attr_str(a.get("format", ""))
        if fmt != FORMAT:
            raise StoreError(
                f"{self.path} is an HDF5 file but not an lstmprobe recording (format "
                f"{fmt or 'missing'!r}, expected {FORMAT!r}); give a file written by "
                "`lstmprobe record`"
            )
        version = int(a.get("format_version", -1))
        if version != FORMAT_VERSION:
            hint = (
                "upgrade lstmprobe to read it"
                if version > FORMAT_VERSION
                else "record it again with this lstmprobe"
            )
            raise StoreError(
                f"{self.path} has store format version {version}, this lstmprobe reads version "
                f"{FORMAT_VERSION}; {hint}"
            )
        self.complete = bool(a.get("complete", False))
        if require_complete and not self.complete:
            raise StoreError(
                f"{self.path} is an unfinished recording; finish it with `lstmprobe record MODEL "
                f"CORPUS -o {_final_name(self.path)} --resume`"
            )
        try:
            self.model: dict = json.loads(_attr_str(a["model"]))
            self.vocab = Vocab.from_obj(json.loads(_attr_str(a["vocab"])))
            self.dtype = _attr_str(a["dtype"])
            self.model_sha256 = _attr_str(a["model_sha256"])
            self.corpus_sha256 = _attr_str(a["corpus_sha256"])
            self.created = _attr_str(a["created"])
            self.lstmprobe_version = _attr_str(a["lstmprobe_version"])
            self.run_config: dict = json.loads(_attr_str(a.get("run_config", "{}")))
            layout = json.loads(_attr_str(a["layout"]))
            self._layout: dict[str, int] = {str(k): int(n) for k, n in layout}
            self.n_positions = int(f["tokens"].shape[0])
            self.chunk_positions = int(a.get("chunk_positions", MIN_CHUNK_POSITIONS))
            self.positions_written = (
                self.n_positions if self.complete else int(f["positions_written"][()])
            )
            itemsize = np.dtype(self.dtype).itemsize
            # damaged bytes of a string decode to surrogates, which cannot be printed
            json.dumps(
                [self.model, self.vocab.chars, self.dtype, self.model_sha256, self.corpus_sha256,
                 self.created, self.lstmprobe_version, self.run_config],
                ensure_ascii=False,
            ).encode("utf-8")  # fmt: skip
        except (KeyError, ValueError, TypeError) as exc:
            raise StoreError(
                f"{self.path} is a damaged lstmprobe recording ({exc}); record it again"
            ) from None
        if not self._layout:
            raise StoreError(
                f"{self.path} is a damaged lstmprobe recording (no datasets in its "
                "layout); record it again"
            )
        for key, n in self._layout.items():
            if key not in f or f[key].shape != (self.n_positions, n):
                raise StoreError(
                    f"{self.path} is a damaged lstmprobe recording (dataset {key} missing or of "
                    "the wrong shape); record it again"
                )
        if not 0 <= self.positions_written <= self.n_positions or self.chunk_positions < 1:
            raise StoreError(
                f"{self.path} is a damaged lstmprobe recording (positions_written "
                f"{self.positions_written} of {self.n_positions}, chunk_positions "
                f"{self.chunk_positions}); record it again"
            )
        _check_sequences(self.path, self.sequences, self.n_positions)
        self._cache = _cache_bytes(self.chunk_positions, list(self._layout.values()), itemsize)

    @property
    def _h5(self) -> h5py.File:
        if self._file is None:
            raise StoreError(f"the store {self.path} is closed; open it again")
        return self._file

    def _dataset(self, key: str) -> h5py.Dataset:
        if key not in self._layout:
            _check_key(key)
            raise UnitError(
                f"{key} was not recorded in {self.path}; recorded: {', '.join(self._layout)}"
            )
        ds = self._datasets.get(key)
        if ds is None:
            with _damaged(self.path, key):
                ds = self._datasets[key] = _open_cached(self._h5, key, self._cache)
        return ds

    # -- metadata --

    @cached_property
    def tokens(self) -> np.ndarray:
        """Vocab id of each position, int32 array of shape (n_positions,)."""
        return self.read_tokens()

    def read_tokens(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Vocab ids of positions ``[start, stop)``, int32, read from the file (not cached)."""
        start, stop = self._check_range(start, stop)
        with _damaged(self.path, "tokens"):
            tokens = np.asarray(self._h5["tokens"][start:stop], dtype=np.int32)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= len(self.vocab)):
            bad = int(np.flatnonzero((tokens < 0) | (tokens >= len(self.vocab)))[0])
            raise StoreError(
                f"{self.path} is a damaged lstmprobe recording: position {start + bad} has "
                f"token {int(tokens[bad])}, outside its vocabulary of {len(self.vocab)} "
                "characters; record it again"
            )
        return tokens

    @property
    def text(self) -> str:
        """The recorded text (tokens decoded with the vocabulary), all in memory; for a long
        recording read it in windows with :meth:`read_text`."""
        return self.read_text()

    def read_text(self, start: int = 0, stop: int | None = None) -> str:
        """The text of positions ``[start, stop)``."""
        codes = np.array([ord(c) for c in self.vocab.chars], dtype=np.uint32)
        return (
            codes[self.read_tokens(start, stop)]
            .tobytes()
            .decode("utf-32-le", errors="surrogatepass")
        )

    @cached_property
    def sequences(self) -> np.ndarray:
        """``[start, end)`` of each sequence, int64 array of shape (n_sequences, 2)."""
        with _damaged(self.path, "sequences"):
            seqs = np.asarray(self._h5["sequences"][()])
            if seqs.dtype.kind not in "iu" or seqs.ndim != 2 or seqs.shape[1] != 2:
                raise StoreError(
                    f"{self.path} is a damaged lstmprobe recording (sequences of shape "
                    f"{seqs.shape} and type {seqs.dtype}, expected integer pairs of shape "
                    "(S, 2)); record it again"
                )
        return seqs.astype(np.int64)

    @property
    def keys(self) -> list[str]:
        """Recorded datasets in layout order, e.g. ``["layer0/input_gate", ...]``."""
        return list(self._layout)

    @property
    def layers(self) -> list[str]:
        """Recorded layers in order, e.g. ``["layer0", "layer0_reverse", "layer1"]``."""
        return list(dict.fromkeys(_layer_of(k) for k in self._layout))

    def quantities(self, layer: str) -> list[str]:
        """Recorded quantities of one layer, in order."""
        found = [k.split("/", 1)[1] for k in self._layout if _layer_of(k) == layer]
        if not found:
            raise UnitError(
                f"layer {layer!r} was not recorded in {self.path}; layers: {', '.join(self.layers)}"
            )
        return found

    def n_units(self, key: str) -> int:
        """Number of units of one dataset, e.g. ``n_units("layer0/cell")``."""
        if key not in self._layout:
            self._dataset(key)  # raises the right error
        return self._layout[key]

    def units(self, keys: Sequence[str] | str | None = None) -> list[str]:
        """Names of every unit of ``keys`` (default: all), e.g. ``["layer0/cell/0", ...]``."""
        if keys is None:
            keys = self.keys
        elif isinstance(keys, str):
            keys = [keys]
        return [f"{k}/{i}" for k in keys for i in range(self.n_units(k))]

    @cached_property
    def next_logprob(self) -> np.ndarray | None:
        """``log p(actual next char)``, float32 of shape (n_positions,), or None without decoder.

        NaN at each sequence's last position.
        """
        f = self._h5
        with _damaged(self.path, "next_logprob"):
            if "next_logprob" not in f:
                return None
            return np.asarray(f["next_logprob"][()], dtype=np.float32)

    def sibling(self, suffix: str) -> Path:
        """A path beside the store for derived results: ``acts.h5`` -> ``acts.<suffix>``.

        ``sibling("rankings.json")`` of ``runs/acts.h5`` is ``runs/acts.rankings.json``; a
        ``.partial`` file has the same siblings as its final path. Write derived results there
        with :func:`write_json_atomic`, never into the recording.
        """
        final = _final_name(self.path)
        return final.with_name(f"{final.stem}.{suffix}")

    # -- data --

    def _check_range(self, start: int, stop: int | None) -> tuple[int, int]:
        n = self.n_positions
        stop = n if stop is None else int(stop)
        start = int(start)
        if not 0 <= start <= stop <= n:
            raise StoreError(
                f"positions must satisfy 0 <= start <= stop <= {n}, got start={start}, stop={stop}"
            )
        return start, stop

    def _check_units(self, key: str, units: Any) -> np.ndarray:
        idx = np.asarray(units)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise UnitError(f"units must be a 1-D list of unit indices, got {units!r}")
        idx = idx.astype(np.int64)
        n = self._layout[key]
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0]
            raise UnitError(f"{key} has units 0..{n - 1}, got unit {bad}")
        return idx

    def read(
        self,
        key: str,
        start: int = 0,
        stop: int | None = None,
        units: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Values of one dataset over positions ``[start, stop)``.

        Parameters
        ----------
        key : str
            Dataset, e.g. ``"layer0/cell"``.
        start, stop : int
            Position window (default: everything).
        units : sequence of int, optional
            Unit indices to read, in the order wanted (default: all units).

        Returns
        -------
        values : ndarray of shape (stop - start, len(units) or n_units), float32
        """
        ds = self._dataset(key)
        start, stop = self._check_range(start, stop)
        if units is None:
            with _damaged(self.path, key):
                return np.asarray(ds[start:stop], dtype=np.float32)
        idx = self._check_units(key, units)
        if idx.size == 0:
            return np.empty((stop - start, 0), dtype=np.float32)
        uniq, inverse = np.unique(idx, return_inverse=True)
        lo, hi = int(uniq[0]), int(uniq[-1]) + 1
        with _damaged(self.path, key):
            if hi - lo <= max(2 * uniq.size, UNIT_BLOCK):
                block = ds[start:stop, lo:hi][:, uniq - lo]
            else:
                block = ds[start:stop, uniq.tolist()]
        return np.asarray(block[:, inverse.reshape(-1)], dtype=np.float32)

    def unit(self, name: str) -> np.ndarray:
        """One unit across all positions, float32 of shape (n_positions,), read chunk by chunk.

        Parameters
        ----------
        name : str
            A unit name, e.g. ``"layer0/cell/17"``.
        """
        key, index = parse_unit(name)
        ds = self._dataset(key)
        if index >= self._layout[key]:
            raise UnitError(
                f"unit {name} does not exist: {key} has units 0..{self._layout[key] - 1}"
            )
        out = np.empty(self.n_positions, dtype=np.float32)
        step = self.chunk_positions * 16
        with _damaged(self.path, key):
            for a in range(0, self.n_positions, step):
                b = min(a + step, self.n_positions)
                out[a:b] = ds[a:b, index]
        return out

    def iter_chunks(
        self,
        keys: Sequence[str] | str | None = None,
        chunk_size: int | None = None,
        start: int = 0,
        stop: int | None = None,
        dtype: Any = np.float32,
        read_ahead: bool = False,
    ) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        """Stream windows of positions: yields ``(start, stop, {key: values})``.

        Windows are aligned to multiples of ``chunk_size`` (default: the store's HDF5 chunking),
        so memory is bounded by one window, never by the corpus.

        Parameters
        ----------
        keys : sequence of str, optional
            Datasets to read (default: all).
        chunk_size : int, optional
            Positions per window.
        start, stop : int
            Positions to cover (default: everything).
        dtype : numpy dtype or None
            Type of the yielded values; None yields the stored type (float16 or float32) with
            no conversion, the fastest read.
        read_ahead : bool
            Read the next window in a thread while the caller works on this one (two windows
            in memory instead of one): faster when the caller's work releases the GIL.

        Yields
        ------
        start, stop : int
        values : dict of str to ndarray of shape (stop - start, n_units)
        """
        datasets, start, stop = self._select(keys, start, stop)
        size = self.chunk_positions if chunk_size is None else int(chunk_size)
        if size < 1:
            raise StoreError(f"chunk_size must be at least 1, got {chunk_size}")
        bounds = []
        a = start
        while a < stop:
            bounds.append((a, min((a // size + 1) * size, stop)))
            a = bounds[-1][1]

        def read(a: int, b: int) -> tuple[int, int, dict[str, np.ndarray]]:
            with _damaged(self.path):
                return a, b, {k: np.asarray(ds[a:b], dtype=dtype) for k, ds in datasets.items()}

        if read_ahead and len(bounds) > 1:
            yield from _read_ahead(read, bounds)
        else:
            for a, b in bounds:
                yield read(a, b)

    def iter_blocks(
        self,
        keys: Sequence[str] | str | None = None,
        start: int = 0,
        stop: int | None = None,
        chunk_rows: int = 1,
    ) -> Iterator[tuple[int, int, dict[str, list[tuple[int, np.ndarray]]]]]:
        """Stream windows of ``chunk_rows`` rows of HDF5 chunks, in the stored dtype, without
        copies where the file allows: yields ``(start, stop, {key: [(first_unit, values), ...]})``.

        In an uncompressed recording each chunk is one contiguous run of bytes in the file, so
        the blocks are read-only views of the file mapped in memory, one per chunk column
        (``chunk_positions`` rows x up to 64 units) and, with ``chunk_rows > 1``, one chunk row
        after the other (each row's blocks, then the next row's, the same ``first_unit`` again):
        reading costs no copy, only the page cache.
        The pages of a window are released from this process (``MADV_DONTNEED``) when the
        window after the next is read (a caller may still be working on the previous one), so
        memory stays bounded by two windows. A compressed dataset, or a chunk
        the file does not hold, is read with h5py instead, as one block of all its units and
        rows. Blocks are valid until the store is closed. A recording is never rewritten in
        place (``record`` writes a new file and renames it), so recording again to the same
        path while this pass runs leaves the mapped file intact.
        """
        datasets, start, stop = self._select(keys, start, stop)
        rows = self.chunk_positions
        step = rows * max(1, int(chunk_rows))
        mapped = self._mapped()
        with _damaged(self.path):
            layouts = {k: self._chunk_layout(k, ds) for k, ds in datasets.items()}
        earlier: list[tuple[int, int]] = []  # byte ranges of the window before this one
        used: list[tuple[int, int]] = []
        try:
            for w0 in range(start // rows * rows, stop, step):
                a, b = max(start, w0), min(stop, w0 + step)
                _release(self._mmap, earlier)
                earlier, used = used, []
                out = {}
                for key, ds in datasets.items():
                    blocks: list[tuple[int, np.ndarray]] | None = None
                    if mapped is not None and layouts[key].chunks[0] == rows:
                        blocks = []
                        for r0 in range(w0, b, rows):
                            views = _chunk_views(
                                layouts[key], mapped, r0, max(a, r0), min(b, r0 + rows), used
                            )
                            if views is None:
                                blocks = None
                                break
                            blocks += views
                    if blocks is None:
                        with _damaged(self.path, key):
                            blocks = [(0, np.asarray(ds[a:b]))]
                    out[key] = blocks
                yield a, b, out
        finally:
            if self._mmap is not None and (earlier or used):
                _release(self._mmap, [(0, len(self._mmap))])  # all of it, once per pass

    def _select(
        self, keys: Sequence[str] | str | None, start: int, stop: int | None
    ) -> tuple[dict[str, h5py.Dataset], int, int]:
        """The datasets of ``keys`` (default: all) and the checked position range."""
        if keys is None:
            keys = self.keys
        elif isinstance(keys, str):
            keys = [keys]
        datasets = {k: self._dataset(k) for k in keys}
        return (datasets, *self._check_range(start, stop))

    def _chunk_layout(self, key: str, ds: h5py.Dataset) -> _Layout:
        layout = self._chunk_layouts.get(key)
        if layout is None:
            layout = self._chunk_layouts[key] = _Layout.of(ds)
        return layout

    def _mapped(self) -> np.ndarray | None:
        """The file's bytes mapped read-only (None where it cannot be mapped)."""
        if self._bytes is None and not self._map_failed:
            try:
                with open(self.path, "rb") as fh:
                    self._mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                self._bytes = np.frombuffer(self._mmap, dtype=np.uint8)
            except (OSError, ValueError):
                self._map_failed = True
        return self._bytes

    # -- description --

    @property
    def compression(self) -> str | None:
        with _damaged(self.path, self.keys[0]):
            return self._dataset(self.keys[0]).compression

    def summary(self) -> dict[str, Any]:
        """JSON-ready description of the recording (what ``lstmprobe info`` prints)."""
        try:
            size = self.path.stat().st_size
        except OSError:
            size = None
        return {
            "path": str(self.path),
            "complete": self.complete,
            "positions": self.n_positions,
            "positions_written": self.positions_written,
            "sequences": int(self.sequences.shape[0]),
            "layers": self.layers,
            "datasets": dict(self._layout),
            "units": sum(self._layout.values()),
            "dtype": self.dtype,
            "compression": self.compression,
            "chunk_positions": self.chunk_positions,
            "next_logprob": "next_logprob" in self._h5,
            "model": self.model,
            "model_sha256": self.model_sha256,
            "corpus_sha256": self.corpus_sha256,
            "vocab_size": len(self.vocab),
            "run_config": self.run_config,
            "created": self.created,
            "lstmprobe_version": self.lstmprobe_version,
            "format_version": FORMAT_VERSION,
            "file_size": size,
        }

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._datasets.clear()
        self._chunk_layouts.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
        self._bytes = None
        if self._mmap is not None:
            # blocks still referenced keep it open: it is unmapped when they are collected
            with contextlib.suppress(BufferError):
                self._mmap.close()
            self._mmap = None

    def __enter__(self) -> ActivationStore:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if not hasattr(self, "_layout"):
            return f"<ActivationStore {self.path}>"
        state = "complete" if self.complete else f"incomplete, {self.positions_written} written"
        return (
            f"<ActivationStore {self.path}: {self.n_positions:,} positions, "
            f"{len(self.layers)} layers, {len(self._layout)} datasets ({self.dtype}), {state}>"
        )


def _final_name(path: Path) -> Path:
    """``acts.h5.partial`` -> ``acts.h5``; other paths unchanged."""
    if path.name.endswith(PARTIAL_SUFFIX) and len(path.name) > len(PARTIAL_SUFFIX):
        return path.with_name(path.name[: -len(PARTIAL_SUFFIX)])
    return path


def _open_cached(f: h5py.File, key: str, nbytes: int) -> h5py.Dataset:
    """Open dataset ``key`` with a chunk cache of ``nbytes`` (room for one row of chunks)."""
    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    dapl.set_chunk_cache(10007, nbytes, 0.75)
    return h5py.Dataset(h5py.h5d.open(f.id, key.encode(), dapl=dapl))
