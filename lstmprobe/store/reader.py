"""Reading an activation store lazily: datasets on demand, chunk by chunk, memory flat in corpus
size (docs/store-format.md)."""

from __future__ import annotations

import contextlib
import json
import mmap
import os
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe.errors import StoreError, UnitError
from lstmprobe.names import Key, check_key, layer_of, parse_unit
from lstmprobe.store._format import (
    FORMAT,
    FORMAT_VERSION,
    MIN_CHUNK_POSITIONS,
    UNIT_BLOCK,
    attr_str,
    cache_bytes,
    check_sequences,
    damaged,
    dataset,
    short,
)
from lstmprobe.store._mapped import ChunkLayout, chunk_views, open_cached, prefetched, release
from lstmprobe.store._virtual import TABLE, check_sources, check_virtual, verify_shards
from lstmprobe.store.checksum import checksummed, dataset_checksum, stored
from lstmprobe.store.recording import Recording, final_path, partial_path
from lstmprobe.text import Vocab


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
        self._chunk_layouts: dict[str, ChunkLayout] = {}  # a read-only file's layouts do not change
        self._mmap: mmap.mmap | None = None
        self._bytes: np.ndarray | None = None
        self._map_failed = False
        self._verified: dict[str, bool] = {}
        path = self.path
        if not path.exists():
            if partial_path(path).exists():
                raise StoreError(
                    f"{path} does not exist, but an unfinished recording {partial_path(path)} "
                    f"does; finish it with `record_corpus(MODEL, CORPUS, out={path}, resume=True)`"
                )
            raise StoreError(
                f"{path} does not exist; record it first (`record_corpus(MODEL, CORPUS, "
                f"out={path})`), or give the path of another recording (`store=PATH`)"
            )
        if path.is_dir():
            raise StoreError(f"{path} is a directory; give the recording file, e.g. acts.h5")
        try:
            is_hdf5 = h5py.is_hdf5(path)
        except OSError:
            is_hdf5 = False
        if not is_hdf5:
            raise StoreError(
                f"{path} is not an HDF5 file; give a recording written by `record_corpus()`"
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
            with damaged(self.path):
                self._read_header(require_complete)
        except BaseException:
            self.close()
            raise

    def _read_header(self, require_complete: bool) -> None:
        f = self._h5
        a = f.attrs
        self.attrs: dict[str, Any] = {k: a[k] for k in a}
        fmt = attr_str(a.get("format", ""))
        if fmt != FORMAT:
            raise StoreError(
                f"{self.path} is an HDF5 file but not an lstmprobe recording (format "
                f"{fmt or 'missing'!r}, expected {FORMAT!r}); give a file written by "
                "`record_corpus()`"
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
                f"{self.path} is an unfinished recording; finish it with `record_corpus(MODEL, "
                f"CORPUS, out={final_path(self.path)}, resume=True)`"
            )
        try:
            self.model: dict = json.loads(attr_str(a["model"]))
            self.vocab = Vocab.from_obj(json.loads(attr_str(a["vocab"])))
            self.dtype = attr_str(a["dtype"])
            self.model_sha256 = attr_str(a["model_sha256"])
            self.corpus_sha256 = attr_str(a["corpus_sha256"])
            self.created = attr_str(a["created"])
            self.lstmprobe_version = attr_str(a["lstmprobe_version"])
            self.run_config: dict = json.loads(attr_str(a.get("run_config", "{}")))
            self._layout: dict[str, int] = _layout(self.path, json.loads(attr_str(a["layout"])))
            self.n_positions = int(dataset(f, "tokens").shape[0])
            self.chunk_positions = int(a.get("chunk_positions", MIN_CHUNK_POSITIONS))
            self.positions_written = (
                self.n_positions if self.complete else int(dataset(f, "positions_written")[()])
            )
            itemsize = np.dtype(self.dtype).itemsize
            # damaged bytes of a string decode to surrogates, which cannot be printed
            json.dumps(
                [self.model, self.vocab.chars, self.dtype, self.model_sha256, self.corpus_sha256,
                 self.created, self.lstmprobe_version, self.run_config],
                ensure_ascii=False,
            ).encode("utf-8")  # fmt: skip
        except StoreError:
            raise
        except (KeyError, ValueError, TypeError) as exc:
            raise StoreError(
                f"{self.path} is a damaged lstmprobe recording ({exc}); record it again"
            ) from None
        for name, value in (("model", self.model), ("run_config", self.run_config),
                            ("model's config", self.model.get("config", {}) if isinstance(self.model, dict) else None)):  # fmt: skip
            if not isinstance(value, dict):
                raise StoreError(
                    f"{self.path} is a damaged lstmprobe recording (its {name} attribute is a "
                    f"JSON {type(value).__name__}, not an object); record it again"
                )
        if not self._layout:
            raise StoreError(
                f"{self.path} is a damaged lstmprobe recording (no datasets in its "
                "layout); record it again"
            )
        for key, n in self._layout.items():
            if key not in f or dataset(f, key).shape != (self.n_positions, n):
                raise StoreError(
                    f"{self.path} is a damaged lstmprobe recording (dataset {key} missing or of "
                    "the wrong shape); record it again"
                )
        for key in ["tokens", *self._layout, *(["next_logprob"] if "next_logprob" in f else [])]:
            kind = dataset(f, key).dtype.kind
            if kind not in ("iu" if key == "tokens" else "f"):
                raise StoreError(
                    f"{self.path} is a damaged lstmprobe recording (dataset {key} holds "
                    f"{dataset(f, key).dtype} values, not {'integers' if key == 'tokens' else 'floats'}); "
                    "record it again"
                )
        if not 0 <= self.positions_written <= self.n_positions or self.chunk_positions < 1:
            raise StoreError(
                f"{self.path} is a damaged lstmprobe recording (positions_written "
                f"{self.positions_written} of {self.n_positions}, chunk_positions "
                f"{self.chunk_positions}); record it again"
            )
        check_sequences(self.path, self.sequences, self.n_positions)
        #: the shards of a sharded recording (docs/scale-out.md), each checked: empty otherwise
        self.shards = check_sources(f, self.path) if TABLE in f else []
        values = [*self._layout, *(["next_logprob"] if "next_logprob" in f else [])]
        check_virtual(f, values, self.shards, self.path)
        self.verify(["sequences"])
        self._cache = cache_bytes(self.chunk_positions, list(self._layout.values()), itemsize)

    @property
    def _h5(self) -> h5py.File:
        if self._file is None:
            raise StoreError(f"the store {self.path} is closed; open it again")
        return self._file

    def _dataset(self, key: str) -> h5py.Dataset:
        if key not in self._layout:
            check_key(key)
            raise UnitError(
                f"{key} was not recorded in {self.path}; recorded: {', '.join(self._layout)}"
            )
        ds = self._datasets.get(key)
        if ds is None:
            with damaged(self.path, key):
                ds = self._datasets[key] = open_cached(self._h5, key, self._cache)
        return ds

    # -- metadata --

    @cached_property
    def tokens(self) -> np.ndarray:
        """Vocab id of each position, int32 array of shape (n_positions,)."""
        return self.read_tokens()

    def read_tokens(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Vocab ids of positions ``[start, stop)``, int32, read from the file (not cached)."""
        start, stop = self._check_range(start, stop)
        with damaged(self.path, "tokens"):
            tokens = np.asarray(dataset(self._h5, "tokens")[start:stop], dtype=np.int32)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= len(self.vocab)):
            bad = int(np.flatnonzero((tokens < 0) | (tokens >= len(self.vocab)))[0])
            raise StoreError(
                f"{self.path} is a damaged lstmprobe recording: position {start + bad} has "
                f"token {int(tokens[bad])}, outside its vocabulary of {len(self.vocab)} "
                "characters; record it again"
            )
        if stop - start == self.n_positions:  # what damage cannot tell, the checksum does
            self.verify(["tokens"])
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
        with damaged(self.path, "sequences"):
            seqs = np.asarray(dataset(self._h5, "sequences")[()])
            if seqs.dtype.kind not in "iu" or seqs.ndim != 2 or seqs.shape[1] != 2:
                raise StoreError(
                    f"{self.path} is a damaged lstmprobe recording (sequences of shape "
                    f"{seqs.shape} and type {seqs.dtype}, expected integer pairs of shape "
                    "(S, 2)); record it again"
                )
        return seqs.astype(np.int64)

    @cached_property
    def files(self) -> tuple[str, ...]:
        """The corpus's files, in order (``/files``); empty for a recording made before
        lstmprobe stored them."""
        f = self._h5
        with damaged(self.path, "files"):
            if "files" not in f:
                return ()
            names = dataset(f, "files").asstr()[()]
            return tuple(str(n) for n in np.atleast_1d(names))

    @cached_property
    def sequence_files(self) -> np.ndarray | None:
        """The file of each sequence, an index into :attr:`files`, int32 of shape
        (n_sequences,); None where the recording does not say."""
        f = self._h5
        with damaged(self.path, "sequence_files"):
            if "sequence_files" not in f:
                return None
            of = np.asarray(dataset(f, "sequence_files")[()])
        if (
            of.shape != (len(self.sequences),)
            or of.dtype.kind not in "iu"
            or (of.size and (of.min() < 0 or of.max() >= len(self.files)))
        ):
            raise StoreError(
                f"{self.path} is a damaged lstmprobe recording (sequence_files of shape "
                f"{of.shape} does not index its {len(self.files)} files once per sequence); "
                "record it again"
            )
        return of.astype(np.int32)

    def file_of(self, position: int) -> str | None:
        """The name of the file that position ``position`` was read from (None where the
        recording does not say)."""
        start, _ = self._check_range(position, position + 1)
        of = self.sequence_files
        if of is None:
            return None
        seq = int(np.searchsorted(self.sequences[:, 0], start, side="right")) - 1
        return self.files[int(of[seq])]

    @property
    def keys(self) -> list[str]:
        """Recorded datasets in layout order, e.g. ``["layer0/input_gate", ...]``."""
        return list(self._layout)

    @property
    def layers(self) -> list[str]:
        """Recorded layers in order, e.g. ``["layer0", "layer0_reverse", "layer1"]``."""
        return list(dict.fromkeys(layer_of(k) for k in self._layout))

    def quantities(self, layer: str) -> list[str]:
        """Recorded quantities of one layer, in order."""
        found = [k.quantity for k in map(Key.parse, self._layout) if k.layer_name == layer]
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
        with damaged(self.path, "next_logprob"):
            if "next_logprob" not in f:
                return None
        self.verify(["next_logprob"])
        with damaged(self.path, "next_logprob"):
            return np.asarray(dataset(f, "next_logprob")[()], dtype=np.float32)

    @property
    def recording(self) -> Recording:
        """Every file of this recording: ``store.recording.rankings`` is ``acts.rankings.json``
        beside ``acts.h5`` (a ``.partial`` file has the same). Derived results go there,
        written atomically, never into the recording."""
        return Recording.at(self.path)

    def sibling(self, suffix: str) -> Path:
        """A path beside the store: ``acts.h5`` -> ``acts.<suffix>`` (:meth:`Recording.beside`;
        the files of later stages are named by :attr:`recording`)."""
        return self.recording.beside(suffix)

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
            if stop - start == self.n_positions:
                self.verify([key])
            with damaged(self.path, key):
                return np.asarray(ds[start:stop], dtype=np.float32)
        idx = self._check_units(key, units)
        if idx.size == 0:
            return np.empty((stop - start, 0), dtype=np.float32)
        uniq, inverse = np.unique(idx, return_inverse=True)
        lo, hi = int(uniq[0]), int(uniq[-1]) + 1
        with damaged(self.path, key):
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
        with damaged(self.path, key):
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
        if dtype is not None:  # a bad dtype is the caller's mistake, not damage to the file
            try:
                resolved = np.dtype(dtype)
            except (TypeError, ValueError, SyntaxError):
                resolved = None
            if resolved is None or resolved.kind not in "biufc":
                raise StoreError(
                    f"`dtype` must be a numeric numpy dtype (e.g. 'float32') or None, got {dtype!r}"
                )
            dtype = resolved
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
            with damaged(self.path):
                return a, b, {k: np.asarray(ds[a:b], dtype=dtype) for k, ds in datasets.items()}

        if read_ahead and len(bounds) > 1:
            yield from prefetched(read, bounds)
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
        with damaged(self.path):
            layouts = {k: self._chunk_layout(k, ds) for k, ds in datasets.items()}
        earlier: list[tuple[int, int]] = []  # byte ranges of the window before this one
        used: list[tuple[int, int]] = []
        try:
            for w0 in range(start // rows * rows, stop, step):
                a, b = max(start, w0), min(stop, w0 + step)
                release(self._mmap, earlier)
                earlier, used = used, []
                out = {}
                for key, ds in datasets.items():
                    blocks: list[tuple[int, np.ndarray]] | None = None
                    if mapped is not None and layouts[key].chunks[0] == rows:
                        blocks = []
                        for r0 in range(w0, b, rows):
                            views = chunk_views(
                                layouts[key], mapped, r0, max(a, r0), min(b, r0 + rows), used
                            )
                            if views is None:
                                blocks = None
                                break
                            blocks += views
                    if blocks is None:
                        with damaged(self.path, key):
                            blocks = [(0, np.asarray(ds[a:b]))]
                    out[key] = blocks
                yield a, b, out
        finally:
            if self._mmap is not None and (earlier or used):
                release(self._mmap, [(0, len(self._mmap))])  # all of it, once per pass

    def _select(
        self, keys: Sequence[str] | str | None, start: int, stop: int | None
    ) -> tuple[dict[str, h5py.Dataset], int, int]:
        """The datasets of ``keys`` (default: all) and the checked position range."""
        if keys is None:
            keys = self.keys
        elif isinstance(keys, str):
            keys = [keys]
        datasets = {k: self._dataset(k) for k in keys}
        start, stop = self._check_range(start, stop)
        if stop - start == self.n_positions:  # a pass over whole datasets: checked first
            self.verify(list(datasets))
        return datasets, start, stop

    @property
    def has_checksums(self) -> bool:
        """Whether every recorded quantity holds the checksum of its values (a recording
        finished by an lstmprobe that stores them); nothing is read or checked."""
        if self.shards:  # a sharded recording: each shard holds its own checksums
            return self.complete and all(k in s.sha256 for s in self.shards for k in self.keys)
        with damaged(self.path):
            return self.complete and all(stored(self._dataset(k).attrs) for k in self.keys)

    def verify(self, names: Sequence[str] | None = None) -> dict[str, bool]:
        """Check datasets against the checksums stored when the recording was finished.

        Every pass that reads a dataset in full (:meth:`iter_chunks`, :meth:`iter_blocks`,
        :meth:`read` of all positions, :attr:`tokens`) checks it first, once per open store.
        A sharded recording's virtual datasets are checked shard by shard, against the
        checksums each shard stored when it was finished.

        Parameters
        ----------
        names : sequence of str, optional
            Datasets to check (default: every checksummed one: tokens, sequences, each
            recorded quantity, next_logprob).

        Returns
        -------
        dict of str to bool
            True where the values match their checksum, False where the recording holds none
            (written before checksums existed, or unfinished).

        Raises
        ------
        StoreError
            A dataset's values differ from its checksum: the file was changed after it was
            recorded.
        """
        if names is None:
            names = checksummed(self.keys, "next_logprob" in self._h5)
        out = {}
        for name in names:
            if name not in self._verified:
                self._verified[name] = self._verify(name)
            out[name] = self._verified[name]
        return out

    def _verify(self, name: str) -> bool:
        if not self.complete:  # its checksums are written when it is finished
            return False
        with damaged(self.path, name):
            ds = self._dataset(name) if name in self._layout else dataset(self._h5, name)
            if self.shards and ds.is_virtual:  # checked shard by shard (docs/scale-out.md)
                return verify_shards(self.path, self.shards, name, ds)
            expected = stored(ds.attrs)
            if expected is None:
                return False
            actual = dataset_checksum(ds)
        if actual != expected:
            raise StoreError(
                f"{self.path} was changed after it was recorded: the values of {name} do not "
                "match the checksum stored when the recording was finished (docs/store-format.md); "
                "record it again, or restore the file"
            )
        return True

    def _chunk_layout(self, key: str, ds: h5py.Dataset) -> ChunkLayout:
        layout = self._chunk_layouts.get(key)
        if layout is None:
            layout = self._chunk_layouts[key] = ChunkLayout.of(ds)
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
        with damaged(self.path, self.keys[0]):
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
            "files": len(self.files),
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
            "checksums": self.has_checksums,
            "file_size": size,
            "shards": len(self.shards),
            "shard_bytes": sum(s.size for s in self.shards),
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


def _layout(path: Path, layout: Any) -> dict[str, int]:
    """The stored layout (``[[key, n_units], ...]``) as ``{key: n_units}``, each key checked
    against the unit grammar (:meth:`Key.parse`): a name a recording cannot hold is damage (or
    a crafted file) and is refused in one line, never passed on to a figure or a page."""
    if not isinstance(layout, list):
        raise StoreError(
            f"{path} is a damaged lstmprobe recording (its layout is a "
            f"{type(layout).__name__}, not a list of [dataset, units] pairs); record it again"
        )
    out: dict[str, int] = {}
    for entry in layout:
        name, n = entry if isinstance(entry, list) and len(entry) == 2 else (entry, None)
        try:
            key = str(Key.parse(name)) if isinstance(name, str) else None
        except UnitError:
            key = None
        if key is None or key != name or key in out:
            what = "names twice" if key is not None and key in out else "names"
            raise StoreError(
                f"{path} is a damaged lstmprobe recording (its layout {what} the dataset "
                f"{short(ascii(name))}, not a key such as layer0/cell); record it again"
            )
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise StoreError(
                f"{path} is a damaged lstmprobe recording (its layout gives {key} "
                f"{short(ascii(n))} units, not a positive count); record it again"
            )
        out[key] = n
    return out
