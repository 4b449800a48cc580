"""Contiguous-block splits."""

from __future__ import annotations

import numpy as np

from lstmprobe.probes import BlockSplit, block_split, sample_positions
from lstmprobe.probes.splits import block_ids, mask_runs, runs


def test_block_split_is_contiguous_and_seeded() -> None:
    split = block_split(100, n_blocks=10, seed=3)
    assert (split.reshape(10, 10) == split.reshape(10, 10)[:, :1]).all()
    assert sorted(np.bincount(split).tolist()) == [20, 20, 60]
    np.testing.assert_array_equal(split, block_split(100, n_blocks=10, seed=3))


def test_block_ids_cover_every_position_in_near_equal_contiguous_blocks() -> None:
    for n, n_blocks in [(103, 10), (100, 10), (5, 20), (1, 3)]:
        ids = block_ids(n, n_blocks)
        assert len(ids) == n and (np.diff(ids) >= 0).all() and (np.diff(ids) <= 1).all()
        sizes = np.bincount(ids)
        assert len(sizes) == min(n, n_blocks) and sizes.max() - sizes.min() <= 1
    # a split deals whole blocks of block_ids: the remainder goes with its block
    split = block_split(103, n_blocks=10, seed=3)
    ids = block_ids(103, 10)
    assert all(len(set(split[ids == b].tolist())) == 1 for b in range(10))


def test_block_split_as_a_splitter_holds_the_test_blocks_back() -> None:
    cv = BlockSplit(n_blocks=10, random_state=3)
    X = np.zeros((100, 2))
    ((train, val),) = cv.split(X)
    test = cv.test(X)
    parts = block_split(100, n_blocks=10, seed=3)
    assert np.array_equal(train, np.flatnonzero(parts == 0))
    assert np.array_equal(val, np.flatnonzero(parts == 1))
    assert np.array_equal(test, np.flatnonzero(parts == 2))
    assert cv.get_n_splits(X) == 1 and cv == BlockSplit(10, random_state=3)


def test_runs_of_positions_and_of_a_mask() -> None:
    rows = np.array([0, 1, 2, 5, 7, 8])
    assert runs(rows) == [(0, 3), (5, 6), (7, 9)]
    mask = np.zeros(10, dtype=bool)
    mask[rows] = True
    assert mask_runs(mask) == runs(rows)
    assert runs(np.array([], dtype=np.int64)) == [] == mask_runs(np.zeros(3, dtype=bool))


def test_sample_positions_takes_whole_windows_in_order() -> None:
    assert np.array_equal(sample_positions(50, 100), np.arange(50))
    got = sample_positions(10_000, 1000, n_blocks=5, seed=1)
    assert len(got) == 1000 and np.all(np.diff(got) > 0)
    assert len(runs(got)) <= 1000 // (10_000 // 20)
