"""How a recording reads its sequences: as one stream in chunks, or in batches of whole
sequences, and which batches (shared by the pipeline and by sharded recordings, which must read
the same batches to record the same values)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def reads_in_batches(reset: str, bidirectional: bool, n_sequences: int) -> bool:
    """Whether a recording reads its sequences in batches (:func:`sequence_groups`) rather
    than as one stream in chunks: with ``reset="line"``, a reverse direction, or several
    sequences (files)."""
    return reset == "line" or bidirectional or n_sequences > 1


def sequence_groups(
    seqs: np.ndarray, batch_chars: int, bidirectional: bool
) -> Iterator[tuple[int, int]]:
    """The batches a recording reads ``seqs`` in: ``(i, j)``, sequences ``i`` to ``j - 1``.

    Consecutive sequences while the padded batch stays within ``batch_chars`` (at least one);
    a unidirectional model reads a sequence longer than ``batch_chars`` alone, in chunks. The
    grouping from a sequence on depends only on the sequences from it on, so a recording that
    starts at a batch's first sequence (a resume, a shard) reads the same batches.

    Examples
    --------
    >>> list(sequence_groups(np.array([[0, 3], [3, 6], [6, 8], [8, 20]]), 8, False))
    [(0, 2), (2, 3), (3, 4)]
    """
    i = 0
    while i < len(seqs):
        first = int(seqs[i, 1] - seqs[i, 0])
        if first > batch_chars and not bidirectional:
            yield i, i + 1
            i += 1
            continue
        j, longest = i, 0
        while j < len(seqs):
            length = int(seqs[j, 1] - seqs[j, 0])
            if j > i and max(longest, length) * (j - i + 1) > batch_chars:
                break
            longest = max(longest, length)
            j += 1
        yield i, j
        i = j
