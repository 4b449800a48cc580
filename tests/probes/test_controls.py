"""Control-task labels."""

from __future__ import annotations

import numpy as np

from lstmprobe.probes import (
    control_labels,
)
from lstmprobe.probes.splits import block_ids


def test_char_control_gives_each_char_type_one_label() -> None:
    tokens = np.array([0, 1, 2, 0, 1, 2, 0])
    values = np.array([1, 0, 0, 1, np.nan, 0, 1], dtype=np.float32)
    ctrl = control_labels(values, "char", tokens=tokens, seed=1)
    assert np.isnan(ctrl[4])
    for t in range(3):
        seen = ctrl[(tokens == t) & ~np.isnan(ctrl)]
        assert len(set(seen.tolist())) == 1
    assert set(ctrl[~np.isnan(ctrl)].tolist()) <= {0.0, 1.0}


def test_block_control_keeps_the_labels() -> None:
    values = np.arange(100, dtype=np.float32)
    ctrl = control_labels(values, "block", n_blocks=10, seed=0)
    assert sorted(ctrl.tolist()) == values.tolist()
    assert not np.array_equal(ctrl, values)
    assert (np.diff(ctrl.reshape(10, 10), axis=1) == 1).all()  # blocks stay whole


def test_block_control_moves_the_remainder_with_the_blocks() -> None:
    """With n not a multiple of n_blocks every position is in a shuffled block (the last
    n % n_blocks positions used to stay aligned whatever the seed): a label stays where it was
    only inside a block that lands where it started."""
    n, n_blocks = 103, 10
    values = np.arange(n, dtype=np.float32)
    ids = block_ids(n, n_blocks)
    sizes = np.bincount(ids)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    deranged = 0
    for seed in range(20):
        ctrl = control_labels(values, "block", n_blocks=n_blocks, seed=seed)
        order, pos = [], 0
        while pos < n:  # read the blocks back in their new order: each one whole
            b = int(ids[int(ctrl[pos])])
            np.testing.assert_array_equal(ctrl[pos : pos + sizes[b]], values[ids == b])
            order.append(b)
            pos += sizes[b]
        assert sorted(order) == list(range(n_blocks))
        new_starts = np.empty(n_blocks, dtype=np.int64)
        new_starts[order] = np.r_[0, np.cumsum(sizes[order])[:-1]]
        np.testing.assert_array_equal(ctrl == values, (new_starts == starts)[ids])
        if all(b != j for j, b in enumerate(order)):  # every block moved
            deranged += 1
            assert not (ctrl == values).any()
    assert deranged > 0
