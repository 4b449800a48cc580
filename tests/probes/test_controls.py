"""Control-task labels."""

from __future__ import annotations

import numpy as np

from lstmprobe.probes import (
    control_labels,
)


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
