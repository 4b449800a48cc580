"""Files of a recording being written: exclusive creation, locks, space reserved up front, and
one line for every way writing can fail."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe._io import cannot_write, create_exclusive
from lstmprobe.errors import StoreBusyError, StoreError, one_line
from lstmprobe.names import Key
from lstmprobe.store._format import (
    FORMAT,
    GZIP_LEVEL,
    UNIT_BLOCK,
    Contents,
    attr_str,
    cache_bytes,
    dataset,
)
from lstmprobe.store.checksum import ATTR as CHECKSUM_ATTR
from lstmprobe.store.checksum import PENDING, checksummed

_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)")


def check_output(path: str | os.PathLike[str]) -> Path:
    """Check, before any work, that a recording can be written at ``path``; returns it.

    Raises
    ------
    StoreError
        ``path`` is a directory, or its directory does not exist or is not writable.
    """
    path = Path(path)
    reason = cannot_write(path)
    if reason is not None:
        raise StoreError(f"cannot write {path}: {reason}, or choose another `out` path")
    return path


def write_error(exc: BaseException, path: Path, what: str = "writing") -> str:
    """One line for an error while writing ``path``: what happened and what to do.

    Examples
    --------
    >>> write_error(OSError(28, "No space left on device"), Path("acts.h5.partial"))
    'no space left on device while writing acts.h5.partial; free space and run the same command with `resume=True`'
    """
    code = getattr(exc, "errno", None)
    if not isinstance(code, int):
        match = _ERRNO_IN_TEXT.search(str(exc))
        code = int(match.group(1)) if match else None
    then = "run the same command with `resume=True`"
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
    detail = one_line(exc)
    return f"cannot write {path} ({detail[:200]}); fix the cause and {then}"


def busy(path: Path) -> StoreError:
    return StoreBusyError(
        f"{path} is being written by another lstmprobe record right now (it holds the file's "
        "lock); wait for it to finish or choose another `out` path (`force=True` does not stop a "
        "running recording)"
    )


def lock(path: Path, *, force: bool = False) -> int | None:
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
                "create; remove it, or pass `force=True` to replace it"
            ) from None
        raise StoreError(f"cannot open {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.lstat(path).st_ino:
            raise BlockingIOError
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        raise busy(path) from None
    return fd


def create_locked(path: Path) -> int:
    """Create ``path`` exclusively (never through a link) and take its lock."""
    try:
        fd = create_exclusive(path)
    except FileExistsError:
        raise busy(path) from None
    except OSError as exc:
        raise StoreError(write_error(exc, path, "creating")) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise busy(path) from None
    return fd


def reserve(fd: int, size: int, path: Path) -> None:
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


def same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.lstat(path).st_ino
    except OSError:
        return False


def recorded_nothing(path: Path) -> bool:
    """Whether a partial file holds no recorded position (empty, or cut short at creation)."""
    try:
        if path.stat().st_size == 0:
            return True
        with h5py.File(path, "r", locking=False) as f:
            if attr_str(f.attrs.get("format", "")) != FORMAT or bool(f.attrs.get("complete")):
                return False
            return "positions_written" not in f or int(dataset(f, "positions_written")[()]) == 0
    except Exception:  # not readable as HDF5: handled (and reported) by resuming
        return False


def quiet_close(f: h5py.File) -> None:
    with contextlib.suppress(Exception):
        f.close()


def new_recording_file(
    target: Path,
    fd: int,
    header: Mapping[str, Any],
    *,
    contents: Contents,
    cp: int,
    compression: str | None = None,
    checksums: Mapping[str, str] | None = None,
) -> h5py.File:
    """Fill the empty file ``target`` (created exclusively, open as ``fd``) with a recording.

    Without compression every chunk is allocated now (and never filled: unwritten values
    are whatever the file system gives, zeros), so later writes change no metadata. Each
    checksummed dataset gets its ``sha256`` attribute now, from ``checksums`` or as
    :data:`~lstmprobe.store.checksum.PENDING` (of the same size: finishing rewrites it in
    place). If anything fails, ``target`` is removed again and the error is one line.
    """
    units = list(contents.layout.values())
    f: h5py.File | None = None
    try:
        f = h5py.File(
            target,
            "w",
            track_order=True,
            locking=False,  # the writer holds its own lock on the file (fd)
            rdcc_nbytes=cache_bytes(cp, units, np.dtype(contents.dtype).itemsize),
        )
        if not same_file(fd, target):
            raise StoreError(
                f"{target} was replaced by another file while lstmprobe created it; record again"
            )
        # Reserve the file's whole size on disk before HDF5 writes anything: HDF5 cannot
        # recover from a failed write (it may crash), so a full disk or a file-size limit
        # must show here, as one line, and never in the middle of a recording.
        reserve(fd, contents.size_estimate(cp), target)
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
        f.create_dataset("tokens", data=contents.tokens, dtype=np.int32)
        f.create_dataset("sequences", data=contents.sequences, dtype=np.int64)
        if contents.files:
            write_files(f, contents.files, contents.sequence_files)
        for key, n in contents.layout.items():
            parsed = Key.parse(key)
            layer = parsed.layer_name
            group = (
                f.require_group(layer) if layer in f else f.create_group(layer, track_order=True)
            )
            group.create_dataset(
                parsed.quantity,
                shape=(contents.n_positions, n),
                dtype=contents.dtype,
                chunks=(cp, min(n, UNIT_BLOCK)),
                dcpl=dcpl(),
                **options,
            )
        if contents.has_next_logprob:
            f.create_dataset(
                "next_logprob",
                shape=(contents.n_positions,),
                dtype=np.float32,
                chunks=(cp,),
                dcpl=dcpl(),
                **options,
            )
        for name in checksummed(contents.layout, contents.has_next_logprob):
            digest = (checksums or {}).get(name, PENDING)
            dataset(f, name).attrs.create(CHECKSUM_ATTR, np.bytes_(digest.encode("ascii")))
        # rewritten in place after each write(): a kill cannot leave it half-updated
        f.create_dataset("positions_written", data=np.int64(0))
        f.flush()
        os.fsync(fd)
    except BaseException as exc:
        if f is not None:
            quiet_close(f)
        if same_file(fd, target):
            target.unlink(missing_ok=True)
        if isinstance(exc, (OSError, RuntimeError)):
            raise StoreError(write_error(exc, target, "creating")) from None
        raise
    return f


def write_files(f: h5py.File, files: Sequence[str], sequence_files: Any) -> None:
    """``/files`` (the corpus's file names, UTF-8) and ``/sequence_files`` (the file of each
    sequence, an index into them)."""
    f.create_dataset("files", data=list(files), dtype=h5py.string_dtype("utf-8"))
    f.create_dataset("sequence_files", data=np.asarray(sequence_files), dtype=np.int32)
