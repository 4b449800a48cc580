"""Held-out splits by contiguous blocks of positions, and runs of positions.

Neighbouring characters leak into each other (a unit's state carries over), so a probe is
never judged on single characters drawn at random: positions are cut into contiguous blocks,
and blocks are dealt to train, validation and test (:func:`block_split`, :class:`BlockSplit`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np


def block_ids(n: int, n_blocks: int) -> np.ndarray:
    """The contiguous block (0, 1, ...) of each of ``n`` positions.

    ``n`` positions are cut into ``n_blocks`` contiguous blocks (at least one, at most ``n``)
    whose sizes differ by at most one, so every position is in a block, the last ``n % n_blocks``
    included. Splits, block controls and block bootstraps all cut here.

    Examples
    --------
    >>> block_ids(7, 3).tolist()
    [0, 0, 1, 1, 2, 2, 2]
    >>> block_ids(2, 5).tolist()
    [0, 1]
    """
    n_blocks = max(1, min(n_blocks, n))
    edges = np.linspace(0, n, n_blocks + 1).astype(np.int64)
    return np.repeat(np.arange(n_blocks), np.diff(edges))


def block_split(
    n: int,
    n_blocks: int = 20,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> np.ndarray:
    """Assign positions to train (0), validation (1) and test (2) by contiguous blocks.

    ``n`` positions are cut into ``n_blocks`` contiguous blocks (:func:`block_ids`), shuffled with ``seed``
    and dealt to the three parts by ``fractions`` (at least one block each when possible).

    Examples
    --------
    >>> split = block_split(10, n_blocks=5)
    >>> sorted(set(split.tolist()))
    [0, 1, 2]
    >>> bool((split[0::2] == split[1::2]).all())  # blocks of 2 positions stay together
    True
    """
    n_blocks = max(1, min(n_blocks, n))
    order = np.random.default_rng(seed).permutation(n_blocks)
    n_val = max(1, round(fractions[1] * n_blocks)) if n_blocks >= 3 else 0
    n_test = max(1, round(fractions[2] * n_blocks)) if n_blocks >= 3 else 0
    part = np.zeros(n_blocks, dtype=np.int8)
    part[order[:n_test]] = 2
    part[order[n_test : n_test + n_val]] = 1
    return part[block_ids(n, n_blocks)]


@dataclass(frozen=True)
class BlockSplit:
    """Train / validation / test by contiguous blocks, as a scikit-learn CV splitter.

    :meth:`split` yields one (train, validation) pair of row indices, so the splitter can
    select hyperparameters anywhere scikit-learn takes ``cv=`` (``GridSearchCV``,
    ``cross_val_score``...). The test blocks are held back: :meth:`split` never hands them
    out; :meth:`test` gives them, and :meth:`parts` the part of every row (0 train,
    1 validation, 2 test; :func:`block_split`).

    Parameters
    ----------
    n_blocks : int
        Contiguous blocks the rows are cut into.
    fractions : tuple of float
        Train, validation, test shares of the blocks.
    random_state : int
        Seed of the block shuffle.

    Examples
    --------
    >>> cv = BlockSplit(n_blocks=5)
    >>> [(len(tr), len(va)) for tr, va in cv.split(np.zeros((10, 1)))]
    [(6, 2)]
    >>> cv.test(np.zeros((10, 1))).tolist()
    [4, 5]
    """

    n_blocks: int = 20
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    random_state: int = 0

    def parts(self, n: int) -> np.ndarray:
        """The part of each of ``n`` rows: 0 train, 1 validation, 2 test (int8)."""
        return block_split(n, self.n_blocks, self.fractions, self.random_state)

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield the (train, validation) row indices; ``y`` and ``groups`` are ignored."""
        part = self.parts(len(X))
        yield np.flatnonzero(part == 0), np.flatnonzero(part == 1)

    def test(self, X: Any) -> np.ndarray:
        """Row indices of the held-out test blocks."""
        return np.flatnonzero(self.parts(len(X)) == 2)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """One split."""
        return 1


def runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """Sorted positions as contiguous ``[start, stop)`` runs.

    Examples
    --------
    >>> runs(np.array([3, 4, 5, 9, 10]))
    [(3, 6), (9, 11)]
    """
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts, ends = np.r_[0, breaks], np.r_[breaks, len(rows)]
    return [(int(rows[s]), int(rows[e - 1]) + 1) for s, e in zip(starts, ends)]


def mask_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of True in ``mask``, in order.

    Examples
    --------
    >>> mask_runs(np.array([True, True, False, True]))
    [(0, 2), (3, 4)]
    """
    return runs(np.flatnonzero(mask))


def sample_positions(
    n: int, max_positions: int | None, n_blocks: int = 20, seed: int = 0
) -> np.ndarray:
    """Positions used for probes: all, or whole contiguous windows totalling ``max_positions``.

    With more positions than ``max_positions`` the corpus is cut into ``4 * n_blocks`` windows
    and a seeded random subset of them (in corpus order) is taken, so memory stays bounded by
    ``max_positions`` however long the corpus.
    """
    if max_positions is None or n <= max_positions:
        return np.arange(n, dtype=np.int64)
    windows = max(n_blocks * 4, 1)
    size = max(1, n // windows)
    take = max(1, min(windows, max_positions // size))
    chosen = np.sort(np.random.default_rng(seed).choice(windows, size=take, replace=False))
    return np.concatenate([np.arange(c * size, (c + 1) * size) for c in chosen]).astype(np.int64)
