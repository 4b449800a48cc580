"""Checksums of a recording's datasets: stored when a recording is finished, verified before a
dataset is read in full (docs/store-format.md, "Checksums").

The checksum of a dataset is a property of its **values**, not of the file's bytes: the SHA-256
of its values in the stored dtype, little-endian, in C order (position after position, each row
of units after the other), as ``hashlib.sha256(np.ascontiguousarray(ds[()], ds.dtype.newbyteorder("<")))``
would give. Compression, chunking, a virtual dataset over shard files, or a copy made by another
tool therefore leave it unchanged, and anyone can compute it again from the data, window by
window, in memory bounded by one window:

* :class:`Checksum` is fed windows of rows in position order (``update``); a writer that holds
  the values anyway (the one-process writer, or the Dask client reading its shards in order)
  needs nothing else;
* :func:`dataset_checksum` reads a dataset window by window and returns its checksum.

Each checksummed dataset holds it in its attribute ``sha256`` (64 hex digits). A recording
without them (written before checksums existed) opens and reads as before, unverified.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np

#: The dataset attribute that holds the checksum (64 lowercase hex digits).
ATTR = "sha256"
#: What the attribute holds while a recording is written; a finished recording never does.
PENDING = "-" * 64
#: Rows read per window by :func:`dataset_checksum` are about this many bytes.
WINDOW_BYTES = 256 << 10


class Checksum:
    """The streaming checksum of one dataset: feed its rows in position order.

    Examples
    --------
    >>> values = np.arange(12, dtype=np.float16).reshape(6, 2)
    >>> whole, parts = Checksum(), Checksum()
    >>> whole.update(values)
    >>> for a in range(0, 6, 4):
    ...     parts.update(values[a : a + 4])
    >>> whole.hexdigest() == parts.hexdigest() == hashlib.sha256(values.tobytes()).hexdigest()
    True
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, rows: np.ndarray) -> None:
        """Add the next rows (positions) of the dataset, in its stored dtype."""
        rows = np.asarray(rows)
        little = rows.dtype.newbyteorder("<")
        self._hash.update(np.ascontiguousarray(rows, dtype=little).data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def checksummed(keys: Iterable[str], has_next_logprob: bool) -> list[str]:
    """The datasets of a recording that hold a checksum: the tokens, the sequences, every
    recorded quantity (``keys``) and ``next_logprob`` where there is one.

    Examples
    --------
    >>> checksummed(["layer0/cell"], True)
    ['tokens', 'sequences', 'layer0/cell', 'next_logprob']
    """
    return ["tokens", "sequences", *keys, *(["next_logprob"] if has_next_logprob else [])]


def window_rows(shape: tuple[int, ...], itemsize: int) -> int:
    """Rows per window of about :data:`WINDOW_BYTES` (at least one)."""
    row = max(1, itemsize * int(np.prod(shape[1:], dtype=np.int64)))
    return max(1, WINDOW_BYTES // row)


def dataset_checksum(ds: Any) -> str:
    """The checksum of an HDF5 dataset (or any array-like with ``shape``, ``dtype`` and
    slicing along its first axis), read window by window.

    Windows are about :data:`WINDOW_BYTES` (whole rows): memory stays bounded by one window
    (and HDF5's chunk cache, which serves the windows of one chunk from one read of it).
    """
    shape = tuple(ds.shape)
    check = Checksum()
    if not shape:
        check.update(np.asarray(ds[()]))
        return check.hexdigest()
    step = window_rows(shape, np.dtype(ds.dtype).itemsize)
    for a in range(0, shape[0], step):
        check.update(np.asarray(ds[a : a + step]))
    return check.hexdigest()


def stored(attrs: Any) -> str | None:
    """The checksum held by a dataset's attributes, or None where it holds none."""
    if ATTR not in attrs:
        return None
    value = attrs[ATTR]
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
