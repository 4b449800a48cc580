"""Labels for scoring: bins of continuous features."""

from __future__ import annotations

import numpy as np

from lstmprobe.probes import (
    make_labels,
)


def test_make_labels_bins_continuous_features() -> None:
    text = "".join(" " * (i % 50) + "x\n" for i in range(200))
    lab = make_labels("line-position", text)
    assert lab.kind == "continuous" and lab.n_bins <= 32
    assert (lab.codes >= 0).all()
    # bins follow the value order
    order = np.argsort(lab.values, kind="stable")
    assert (np.diff(lab.codes[order].astype(int)) >= 0).all()
