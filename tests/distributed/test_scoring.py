"""Scoring on a real Dask cluster equals scoring in one process: the same counts, so the same
AUC, Spearman, MI and ranking; Pearson (from the Chan-merged moments) to float64 rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstmprobe.distributed import rank_units as rank_on_cluster
from lstmprobe.distributed import unit_scores as score_on_cluster
from lstmprobe.probes import rank_units, unit_scores
from lstmprobe.record import RecordOptions
from lstmprobe.store import ActivationStore
from tests.distributed.conftest import files_corpus
from tests.stores import BASE, build_store, record_sharded

FEATURES = ["quote", "indent", "line-position", "char:e"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory, loaded):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("scoring")
    plain = build_store(d / "plain.h5", BASE * 30, dtype="float16", chunk_positions=128)
    (d / "run").mkdir()
    sharded = record_sharded(loaded, files_corpus(12, repeat=3), d / "run" / "acts.h5",
                             RecordOptions(batch_chars=1000), shard_chars=3000)  # fmt: skip
    return {"plain": plain, "sharded": sharded}


@pytest.mark.parametrize(
    ("which", "chunk_size"), [("plain", None), ("plain", 128), ("sharded", None)]
)
def test_scores_on_the_cluster_equal_one_pass(
    client, stores, which: str, chunk_size: int | None
) -> None:
    with ActivationStore(stores[which]) as store:
        if which == "sharded":
            assert len(store.shards) >= 3
        want = unit_scores(store, FEATURES, chunk_size=chunk_size)
        # with windows of 128 positions, each task's span holds several windows
        got = score_on_cluster(store, FEATURES, client=client, chunk_size=chunk_size)
    assert got.keys() == want.keys()
    for name, ref in want.items():
        for field in ("score", "spearman", "mi", "sign"):
            np.testing.assert_array_equal(getattr(got[name], field), getattr(ref, field))
        np.testing.assert_allclose(got[name].pearson, ref.pearson, rtol=1e-12, atol=1e-12)


def test_a_ranking_on_the_cluster_equals_the_one_process_ranking(client, stores) -> None:
    options = {"max_probe_positions": 2000, "n_boot": 20, "detail": 3, "k_max": 2}
    with ActivationStore(stores["sharded"]) as store:
        want = rank_units(store, ["quote", "indent"], **options)
        got = rank_on_cluster(store, ["quote", "indent"], client=client, **options)
    assert [r.unit for r in got.rows] == [r.unit for r in want.rows]
    for row_a, row_b in zip(got.rows, want.rows):
        a, b = row_a.to_dict(), row_b.to_dict()
        assert a.keys() == b.keys()
        for key in a:
            if key == "pearson":
                assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-12)
            else:
                assert a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]), key


def test_scoring_a_store_the_workers_cannot_open_is_one_error(client, tmp_path: Path) -> None:
    from lstmprobe.errors import StoreError

    path = build_store(tmp_path / "acts.h5", BASE * 4)
    with ActivationStore(path) as store:
        path.rename(tmp_path / "moved.h5")  # the workers open it by its path
        with pytest.raises(StoreError, match="does not exist"):
            score_on_cluster(store, ["quote"], client=client)
