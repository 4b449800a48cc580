"""The results files of patch and attribute: round trip, format checks, atomic writes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from lstmprobe.errors import StoreError
from lstmprobe.store import Recording
from lstmprobe.store.causal_results import (
    ATTRIBUTIONS,
    PATCHING,
    Saved,
    read_results,
    write_results,
)


def test_results_round_trip_beside_the_store(tmp_path):
    path = Recording.at(tmp_path / "acts.h5").patching
    assert path.name == "acts.patching.h5"
    results = [
        Saved(
            {"kind": "condition", "units": ["layer0/cell/1"], "flip_rate": 0.25},
            {"flips": np.array([True, False, False, False])},
        ),
        Saved({"kind": "sweep"}, {"flip_rate": np.eye(2), "labels": np.arange(3)}),
    ]
    write_results(path, PATCHING, results, {"model_sha256": "ab", "settings": {"at": "last"}})
    back = read_results(path, PATCHING)
    assert back.attrs["model_sha256"] == "ab" and back.attrs["settings"] == '{"at": "last"}'
    assert [r.meta for r in back.results] == [r.meta for r in results]
    assert back.results[0].arrays["flips"].dtype == bool
    assert back.results[1].arrays["flip_rate"].dtype == np.float32
    assert back.results[1].arrays["labels"].dtype.kind == "i"
    with pytest.raises(StoreError, match="not an lstmprobe attributions file"):
        read_results(path, ATTRIBUTIONS)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(StoreError, match="not a readable results file"):
        read_results(tmp_path / "junk.h5", PATCHING)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="format version 99"):
        read_results(path, PATCHING)


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    path = tmp_path / "acts.patching.h5"
    write_results(path, PATCHING, [Saved({"n": 1})])

    class Boom(Exception):
        pass

    class Bad:
        def __array__(self, *a, **k):  # type: ignore[no-untyped-def]
            raise Boom

    with pytest.raises(Boom):
        write_results(path, PATCHING, [Saved({"n": 2}, {"x": Bad()})])  # type: ignore[dict-item]
    assert read_results(path, PATCHING).results[0].meta == {"n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts.patching.h5"]
