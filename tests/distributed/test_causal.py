"""Ablations and gate dynamics on a real Dask cluster give what one process gives: the same
per-char bits and verdicts, and the dynamics' sums to float64 rounding."""

from __future__ import annotations

import numpy as np
import pytest

from lstmprobe.causal import gate_dynamics, run_ablation
from lstmprobe.distributed import gate_dynamics as dynamics_on_cluster
from lstmprobe.distributed import run_ablation as ablate_on_cluster
from lstmprobe.features import get_feature
from lstmprobe.record import RecordOptions
from lstmprobe.store import ActivationStore
from tests.distributed.conftest import files_corpus
from tests.stores import record_sharded


def test_an_ablation_on_the_cluster_equals_the_one_process_ablation(client, loaded) -> None:
    corpus = files_corpus(6)
    options = {
        "feature": get_feature("quote"),
        "n_random": 2,
        "seed": 1,
        "sequences": corpus.sequences("none"),
    }
    conditions = [["layer0/cell/1"], ["layer1/hidden/2"]]
    want = run_ablation(loaded.model, loaded.vocab, corpus.text, conditions, **options)
    got = ablate_on_cluster(loaded.model, loaded.vocab, corpus.text, conditions, client=client,
                            **options)  # fmt: skip
    assert got.conditions == want.conditions
    np.testing.assert_array_equal(got.base_bits, want.base_bits)
    for a, b in zip(got.deltas + got.random_deltas, want.deltas + want.random_deltas):
        np.testing.assert_array_equal(a, b)


def test_gate_dynamics_on_the_cluster_equal_one_pass(client, loaded, tmp_path) -> None:
    (tmp_path / "run").mkdir()
    path = record_sharded(loaded, files_corpus(8), tmp_path / "run" / "acts.h5",
                          RecordOptions(batch_chars=600), shard_chars=1500)  # fmt: skip
    with ActivationStore(path) as store:
        want = gate_dynamics(store, loaded.model)
        got = dynamics_on_cluster(store, loaded.model, client=client, chunk_size=512)
    assert got.keys() == want.keys() and got["units"].keys() == want["units"].keys()

    def same(a, b, where):  # type: ignore[no-untyped-def]
        if isinstance(a, dict):
            assert a.keys() == b.keys(), where
            for k in a:
                same(a[k], b[k], f"{where}/{k}")
        elif isinstance(a, list):
            assert len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b)):
                same(x, y, f"{where}[{i}]")
        elif isinstance(a, float):
            assert a == pytest.approx(b, rel=1e-12, abs=1e-15), where
        else:
            assert a == b, where

    same(got, want, "")
