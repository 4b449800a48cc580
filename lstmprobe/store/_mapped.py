"""Reading a recording's chunks as views of the memory-mapped file, a read-ahead thread, and
releasing the mapped pages after a pass, so that memory stays flat in corpus size."""

from __future__ import annotations

import mmap
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import h5py
import numpy as np


@dataclass(frozen=True)
class ChunkLayout:
    """What reading a dataset's chunks as bytes of the mapped file needs (read once per open
    store: h5py's properties cost microseconds each, 6 ms per pass of range samples)."""

    dsid: Any  # the low-level dataset id
    chunks: tuple[int, int]
    dtype: np.dtype
    units: int
    plain: bool  # no filters, native byte order: a chunk is its values' bytes

    @classmethod
    def of(cls, ds: h5py.Dataset) -> ChunkLayout:
        chunks = ds.chunks
        plain = (
            chunks is not None
            and ds.ndim == 2
            and ds.dtype.isnative
            and ds.id.get_create_plist().get_nfilters() == 0
        )
        return cls(ds.id, chunks or (0, 0), ds.dtype, ds.shape[-1], plain)


def chunk_views(
    layout: ChunkLayout, mapped: np.ndarray, r0: int, a: int, b: int, used: list[tuple[int, int]]
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


def release(mapping: mmap.mmap | None, used: list[tuple[int, int]]) -> None:
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


def prefetched(read: Callable[[int, int], T], bounds: Sequence[tuple[int, int]]) -> Iterator[T]:
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


def open_cached(f: h5py.File, key: str, nbytes: int) -> h5py.Dataset:
    """Open dataset ``key`` with a chunk cache of ``nbytes`` (room for one row of chunks)."""
    dapl = h5py.h5p.create(h5py.h5p.DATASET_ACCESS)
    dapl.set_chunk_cache(10007, nbytes, 0.75)
    return h5py.Dataset(h5py.h5d.open(f.id, key.encode(), dapl=dapl))
