"""Writing an activation store: streaming, crash-safe, resumable (docs/store-format.md).

A recording is written to ``acts.h5.partial`` and renamed to ``acts.h5`` only when it is
complete, so a path without ``.partial`` always holds a finished recording.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe._io import create_exclusive, fsync_dir
from lstmprobe.errors import PrecisionWarning, StoreError
from lstmprobe.store._files import (
    busy,
    check_output,
    create_locked,
    lock,
    new_recording_file,
    quiet_close,
    recorded_nothing,
    same_file,
    write_error,
)
from lstmprobe.store._format import (
    RecordingSpec,
    check_contents,
    dataset,
    default_chunk_positions,
    normalized,
    recording_header,
)
from lstmprobe.store._resume import open_resume, partial_complete
from lstmprobe.store.checksum import ATTR as CHECKSUM_ATTR
from lstmprobe.store.checksum import Checksum, checksummed, dataset_checksum
from lstmprobe.store.recording import Recording
from lstmprobe.text import Vocab


def all_finite_float16(values: np.ndarray) -> bool:
    """Whether a float16 array holds no inf or NaN, read from the bits (an exponent of all ones),
    18x faster than ``np.isfinite(values).all()`` on a recorded chunk.

    Examples
    --------
    >>> all_finite_float16(np.array([0.0, -65504.0, 1e-8], dtype=np.float16))
    True
    >>> all_finite_float16(np.array([[1.0, -np.inf]], dtype=np.float16))
    False
    """
    if values.size == 0:
        return True
    if not values.flags.c_contiguous:
        return bool(np.isfinite(values).all())
    bits = values.view(np.uint16)
    return int((bits & np.uint16(0x7FFF)).max()) < 0x7C00


class StoreWriter:
    """Stream a recording into an HDF5 activation store, crash-safely.

    The recording is written to ``partial_path(path)`` and becomes ``path`` at :meth:`finish`.
    Positions are appended in order with :meth:`write`; once it returns, its positions are
    durable: a process killed at any later moment leaves a partial recording that
    ``resume=True`` continues right after them (:attr:`written` is set there).

    How: the partial file is created with every chunk allocated up front and no compression,
    so writing never changes HDF5 metadata (the chunk index, the file's free space): a kill can
    only interrupt writes of raw values, never leave a half-updated index behind. Each write is
    flushed and fsynced, and only then is the scalar dataset ``/positions_written`` (the progress
    marker) updated in place, so the recorded progress never runs ahead of what is on disk.
    ``write(..., commit=False)`` leaves the fsync and the marker to :meth:`sync` and
    :meth:`mark`, which a caller runs at its own pace (``record_corpus`` on a thread of its own,
    overlapping the fsync with the work, see docs/recording.md). With compression,
    :meth:`finish` compresses the finished recording into a new file (each chunk once) that
    replaces it atomically; without, it only marks the partial file complete and renames it.

    Parameters
    ----------
    path : str or PathLike
        The final file, e.g. ``acts.h5``.
    spec : RecordingSpec
        What is recorded: the tokens, sequences, vocab, layout, dtype, the model's and corpus's
        hashes and how the recording is made (checked on resume).
    compression : {None, "lzf", "gzip"}
        HDF5 compression of the final file (with byte shuffling); applied by :meth:`finish`.
    chunk_positions : int, optional
        Positions per HDF5 chunk; by default a chunk is about 512 KiB. Ignored on resume (the
        partial file keeps its own).
    force : bool
        Overwrite an existing recording (replaced only at :meth:`finish`) and discard a partial one.
    resume : bool
        Continue ``partial_path(path)`` if it exists (starts a new recording if it does not).
        With ``force`` too, a partial file that cannot be continued is discarded instead.
    warn : callable, optional
        Called with one line when values do not fit the store's dtype (float16 holds at most
        ±65,504: larger values are stored as ±inf), once per dataset. By default a
        :class:`~lstmprobe.errors.PrecisionWarning` is issued.

    Attributes
    ----------
    path : Path
        The final path.
    partial : Path
        The path written to until :meth:`finish`.
    written : int
        Positions written (handed to the operating system); the next :meth:`write` must start
        there.
    committed : int
        Positions durable and marked as such in the file: where a resume continues. Equals
        :attr:`written` after each :meth:`write` unless it was called with ``commit=False``.
    n_positions : int
        Total number of positions to write.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> d = Path(tmp.name)
    >>> text = "abcab"
    >>> vocab = Vocab.from_text(text)
    >>> spec = RecordingSpec(tokens=vocab.encode(text), sequences=[[0, 5]], vocab=vocab,
    ...                      layout={"layer0/cell": 3}, model_summary={"cell": "lstm"},
    ...                      model_sha256="m", corpus_sha256="c", has_next_logprob=False,
    ...                      run_config={"reset": "none"})
    >>> w = StoreWriter(d / "acts.h5", spec)
    >>> w.write(0, {"layer0/cell": np.zeros((5, 3))})
    >>> w.finish().name
    'acts.h5'
    >>> from lstmprobe.store import ActivationStore
    >>> with ActivationStore(d / "acts.h5") as store:
    ...     store.keys, store.read("layer0/cell").shape, store.text
    (['layer0/cell'], (5, 3), 'abcab')
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        spec: RecordingSpec,
        *,
        compression: str | None = None,
        chunk_positions: int | None = None,
        force: bool = False,
        resume: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.recording = Recording.at(self.path)
        self.partial = self.recording.partial
        self._file: h5py.File | None = None
        self._finished = False
        self._failed = False
        self._complete_on_disk = False
        self._lock_fd: int | None = None
        self._warn = warn
        self._overflowed: set[str] = set()  # datasets already warned about
        self._datasets: dict[str, h5py.Dataset] = {}  # of the open file, by name
        # the checksums of the values written, fed as they are written from position 0; None
        # after a resume or a rewind (finish then reads the datasets back)
        self._running: dict[str, Checksum] | None = None

        contents = check_contents(spec, compression, chunk_positions)
        dtype = spec.dtype

        self._contents = contents
        self._attrs = dict(spec.attrs)
        self.n_positions = contents.n_positions
        self.layout = dict(contents.layout)
        self.dtype = dtype
        self.compression = compression
        self.has_next_logprob = contents.has_next_logprob
        self.written = 0
        self.committed = 0
        self._synced = 0  # positions made durable by the latest sync()
        self._tokens = contents.tokens
        identity = {
            "model_sha256": str(spec.model_sha256),
            "corpus_sha256": str(spec.corpus_sha256),
            "layout": [[k, n] for k, n in contents.layout.items()],
            "dtype": dtype,
            "run_config": normalized(spec.run_config),
            "has_next_logprob": self.has_next_logprob,
        }

        check_output(self.path)
        # Take the partial file's lock before deciding anything about it: a partial that another
        # process is recording into is never touched, --force included.
        self._lock_fd = lock(self.partial, force=force)
        try:
            if self._lock_fd is not None and recorded_nothing(self.partial):
                # left by a failure at creation: nothing to continue, nothing lost
                self.partial.unlink()
                self._release()
            self._open(identity, spec.model_summary, spec.vocab, chunk_positions, force, resume)
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
        if resume and not partial_exists and not force and partial_complete(self.path):
            raise StoreError(
                f"{self.path} is a complete recording: there is nothing to resume; read it "
                f"(`store={self.path}`), or pass `force=True` to record it again"
            )
        if self.path.exists() and not force and not (resume and partial_exists):
            raise StoreError(
                f"{self.path} already exists; pass `force=True` to overwrite or `out` to choose another path"
            )
        if partial_exists and not (resume or force):
            if partial_complete(self.partial):
                raise StoreError(
                    f"a finished recording {self.partial} was not yet moved into place (the last "
                    "run was stopped while finishing); pass `resume=True` to move it into place, "
                    "or `force=True` to start over"
                )
            raise StoreError(
                f"an unfinished recording {self.partial} exists; pass `resume=True` to continue it "
                "or `force=True` to start over"
            )
        if resume and partial_exists:
            try:
                self._open_resume(identity)
                return
            except StoreError:
                if not force:
                    raise
        self._create(identity, model_summary, vocab, chunk_positions)

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
        if self._lock_fd is not None:  # ours (locked): a stale partial, replaced
            self.partial.unlink(missing_ok=True)
            self._release()
        self.recording.compressing.unlink(missing_ok=True)
        self._lock_fd = create_locked(self.partial)
        cp = (
            min(int(chunk_positions), self.n_positions)
            if chunk_positions is not None
            else default_chunk_positions(list(self.layout.values()), self.dtype, self.n_positions)
        )
        header = recording_header(identity, model_summary, vocab, cp) | self._attrs
        self._file = new_recording_file(
            self.partial, self._lock_fd, header, contents=self._contents, cp=cp
        )
        self._chunk_positions = cp
        self._running = {
            name: Checksum() for name in checksummed(self.layout, self.has_next_logprob)[2:]
        }

    def _open_resume(self, identity: dict) -> None:
        resumed = open_resume(
            self.partial, identity, self._tokens, self.n_positions, self._contents.sequences
        )
        self._file = resumed.file
        self._chunk_positions = resumed.chunk_positions
        self.written = self.committed = self._synced = resumed.written
        self._complete_on_disk = resumed.complete

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
        *,
        commit: bool = True,
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
        commit : bool
            False: the values are only handed to the operating system (:attr:`written` moves,
            :attr:`committed` does not); :meth:`sync` then :meth:`mark` make them count.
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
        self._check_writable()
        stop = start + n
        running = self._running
        try:
            for k, v in values.items():
                cast = self._cast(k, v, start)
                self._dataset(f, k)[start:stop] = cast
                if running is not None:
                    running[k].update(cast)
            if lp is not None:
                self._dataset(f, "next_logprob")[start:stop] = lp
                if running is not None:
                    running["next_logprob"].update(lp)
            f.flush()  # to the operating system, so that a sync() covers them
        except (OSError, RuntimeError) as exc:
            self._failed = True
            raise StoreError(write_error(exc, self.partial)) from None
        self.written = stop
        if commit:
            self.commit()

    def _dataset(self, f: h5py.File, name: str) -> h5py.Dataset:
        """``name``'s dataset, looked up once (a lookup by path costs a third of a ms)."""
        found = self._datasets.get(name)
        if found is None:
            found = self._datasets[name] = dataset(f, name)
        return found

    def sync(self) -> int:
        """Make every position written so far durable (fsync); returns how many that is.

        Only the operating system is called (no HDF5), so another thread than the one writing
        may call it while :meth:`write` runs: positions whose write had not returned when it
        began are not counted.
        """
        self._check_writable()
        written = self.written
        try:
            self._sync()
        except OSError as exc:
            self._failed = True
            raise StoreError(write_error(exc, self.partial)) from None
        self._synced = max(self._synced, written)
        return written

    def mark(self, position: int) -> None:
        """Set the progress marker to ``position``, which an earlier :meth:`sync` made durable:
        the recorded progress never runs ahead of what is on disk. The marker itself becomes
        durable with the next sync (a resume continues from the one before until then)."""
        f = self._require_open()
        self._check_writable()
        if not self.committed <= position <= self._synced:
            raise StoreError(
                f"cannot mark {position} positions written: {self._synced} are durable and "
                f"{self.committed} marked"
            )
        try:
            self._dataset(f, "positions_written")[()] = position
            f.flush()
        except (OSError, RuntimeError) as exc:
            self._failed = True
            raise StoreError(write_error(exc, self.partial)) from None
        self.committed = position

    def commit(self) -> None:
        """Make every written position durable, then mark it: :meth:`sync` and :meth:`mark`."""
        self.mark(self.sync())

    def _check_writable(self) -> None:
        if self._failed:
            raise StoreError(
                f"an earlier write to {self.partial} failed; run the same command with `resume=True`"
            )

    def _cast(self, key: str, values: np.ndarray, start: int) -> np.ndarray:
        """``values`` in the store's dtype; values beyond a float16's range (which become ±inf)
        are told once per dataset, through ``warn``."""
        with np.errstate(over="ignore"):
            cast = values.astype(self.dtype, copy=False)
        if self.dtype != "float16" or key in self._overflowed or all_finite_float16(cast):
            return cast
        overflowed = np.isinf(cast)
        if values.dtype != np.float16:
            overflowed &= np.isfinite(values)
        count = int(overflowed.sum())
        if count:
            self._overflowed.add(key)
            position = start + int(np.flatnonzero(overflowed.any(axis=1))[0])
            message = (
                f"{key}: {count:,} value(s) from position {position:,} on exceed the float16 "
                "range (±65,504) and are stored as ±inf; record with dtype float32 "
                "(`dtype='float32'`) to keep them"
            )
            if self._warn is not None:
                self._warn(message)
            else:
                warnings.warn(message, PrecisionWarning, stacklevel=3)
        return cast

    def rewind(self, position: int) -> int:
        """Forget the positions from ``position`` on (they are written again); returns it."""
        f = self._require_open()
        if not 0 <= position <= self.committed:
            raise StoreError(
                f"cannot rewind to {position}: {self.committed} positions are marked written"
            )
        try:
            dataset(f, "positions_written")[()] = position
            f.flush()
            self._sync()
        except (OSError, RuntimeError) as exc:
            self._failed = True
            raise StoreError(write_error(exc, self.partial)) from None
        self.written = self.committed = self._synced = position
        self._running = None  # the values before `position` are read back at finish
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
                f"a write to {self.partial} failed; run the same command with `resume=True`"
            )
        if self.compression is None:
            if self.committed != self.written:
                self.commit()  # the values durable before the file says it is complete
            if not self._complete_on_disk:
                try:
                    # the checksums first, in place of their placeholders: a recording is
                    # marked complete only with them (and a kill before that is resumed)
                    for name, digest in self._checksums(f).items():
                        dataset(f, name).attrs.modify(CHECKSUM_ATTR, np.bytes_(digest.encode()))
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
        if self._lock_fd is not None and not same_file(self._lock_fd, self.partial):
            raise busy(self.partial)
        os.replace(source, self.path)
        fsync_dir(self.path)
        if source != self.partial:
            self.partial.unlink(missing_ok=True)
        self._release()
        self._finished = True
        return self.path

    def _checksums(self, f: h5py.File) -> dict[str, str]:
        """The checksum of every checksummed dataset (docs/store-format.md): the recorded
        values' as they were written (a recording written in one go), the others read back
        from the file (the tokens and sequences; every dataset after a resume or a rewind)."""
        names = checksummed(self.layout, self.has_next_logprob)
        running = self._running or {}
        try:
            return {
                name: running[name].hexdigest()
                if name in running
                else dataset_checksum(dataset(f, name))
                for name in names
            }
        except (OSError, RuntimeError) as exc:
            self._failed = True
            raise StoreError(write_error(exc, self.partial, "finishing")) from None

    def _compress(self, f: h5py.File) -> Path:
        """Write the complete, compressed copy of the partial file; returns its path."""
        target = self.recording.compressing
        checksums = self._checksums(f)
        header: dict[str, Any] = {k: f.attrs[k] for k in f.attrs}
        header["complete"] = True
        cp = self._chunk_positions
        target.unlink(missing_ok=True)  # a stale one of ours: we hold the partial's lock
        try:
            fd = create_exclusive(target)
        except OSError as exc:
            raise StoreError(write_error(exc, target, "compressing")) from None
        try:
            out = new_recording_file(
                target, fd, header, contents=self._contents, cp=cp, compression=self.compression,
                checksums=checksums,
            )  # fmt: skip
            try:
                names = [*self.layout, *(["next_logprob"] if self.has_next_logprob else [])]
                # several chunk rows at a time, each chunk compressed once
                step = cp * max(1, (8 << 20) // (cp * max(self.layout.values()) * 4))
                for name in names:
                    src, dst = dataset(f, name), dataset(out, name)
                    for a in range(0, self.n_positions, step):
                        b = min(a + step, self.n_positions)
                        dst[a:b] = src[a:b]
                dataset(out, "positions_written")[()] = self.n_positions
                out.close()
                os.fsync(fd)
            except BaseException as exc:
                quiet_close(out)
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
        self._datasets = {}
        if self._file is None:
            return
        try:
            if self._failed:
                quiet_close(self._file)  # what failed to write would fail again
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
            self.recording.compressing.unlink(missing_ok=True)
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
