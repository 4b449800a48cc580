"""The scoring pass cut into spans and merged equals one pass: counts exactly, moments (merged
the Chan way) to float64 rounding, and so every score."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from lstmprobe.probes import unit_scores
from lstmprobe.probes.scores import ScorePass, score_pass
from lstmprobe.probes.sums import (
    Moments,
    add_span,
    merge,
    merged_accumulators,
    span_sums,
    window_rows,
)
from lstmprobe.store import ActivationStore
from tests.stores import BASE, build_store

#: binary, exact continuous, and line-position: more values than label bins (summed exactly)
FEATURES = ["quote", "indent", "line-position", "char:e"]


def span_labels(planned: ScorePass, a: int, b: int, rows: int):  # type: ignore[no-untyped-def]
    """Each group's pattern ids and weights over ``[a, b)``, window by window."""
    windows = [(w, min(b, w + rows)) for w in range(a, b, rows)]
    ids: list[list[np.ndarray]] = [[] for _ in planned.groups]
    w: list[list[np.ndarray]] = [[] for _ in planned.groups]
    for values, (w0, w1) in zip(zip(*(lab.windows(windows) for lab in planned.active)), windows):
        got_ids, got_w = planned.window_labels(values, w0, w1)
        for j in range(len(ids)):
            ids[j].append(got_ids[j])
            w[j].append(got_w[j])
    return [np.concatenate(x) for x in ids], [np.concatenate(x) for x in w]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("sums") / "acts.h5", BASE * 30, dtype="float16",
                       chunk_positions=128)  # fmt: skip


def test_spans_merged_equal_one_pass(store_path: Path) -> None:
    with ActivationStore(store_path) as store:
        planned = score_pass(store, FEATURES)
        assert any(planned.plan.weighted)  # line-position's exact labels are summed
        rows = window_rows(store, planned.plan.keys, None)
        n = store.n_positions
        one = span_sums(add_span(store, planned.plan, 0, n, *span_labels(planned, 0, n, rows)))
        cuts = [0, rows, 3 * rows, n]
        assert n > 3 * rows
        parts = [
            span_sums(add_span(store, planned.plan, a, b, *span_labels(planned, a, b, rows)))
            for a, b in itertools.pairwise(cuts)
        ]
        merged = merge(parts)
        for key in planned.plan.keys:
            for got, want in zip(merged[key], one[key]):
                np.testing.assert_array_equal(got.counts, want.counts)  # exact
                np.testing.assert_array_equal(got.moments.n, want.moments.n)
                for g, o in zip(got.moments.sums(), want.moments.sums()):
                    np.testing.assert_allclose(g, o, rtol=1e-13, atol=1e-9)
                np.testing.assert_allclose(got.sw, want.sw, rtol=1e-13, atol=1e-9)
        # finished: the same scores as unit_scores's one pass
        acc = merged_accumulators(planned.plan, merged)
        scores = planned.finish(acc, store.units(planned.plan.keys), threads=1)
        reference = unit_scores(store, FEATURES)
    for name, ref in reference.items():
        got = scores[name]
        for field in ("score", "spearman", "mi", "sign"):
            np.testing.assert_array_equal(getattr(got, field), getattr(ref, field), err_msg=field)
        np.testing.assert_allclose(got.pearson, ref.pearson, rtol=1e-12, atol=1e-12)


def test_chan_merge_of_moments_is_exact_where_raw_sums_lose_the_variance() -> None:
    rng = np.random.default_rng(0)
    x = 1e8 + rng.normal(size=(3000, 1))  # a large mean, a small spread
    pieces = np.split(x, [700, 1900])
    # each piece's moments from its own mean (as a span's sums are, shifted): exact
    parts = [Moments(np.array([len(p)]), p.mean(0)[None], ((p - p.mean(0)) ** 2).sum(0)[None])
             for p in pieces]  # fmt: skip
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert merged.n.tolist() == [3000]
    np.testing.assert_allclose(merged.mean, x.mean(0)[None], rtol=1e-15)
    np.testing.assert_allclose(merged.m2, ((x - x.mean(0)) ** 2).sum(0)[None], rtol=1e-9)
    raw = (x * x).sum() - x.sum() ** 2 / len(x)  # the textbook formula on raw sums
    assert abs(raw - merged.m2[0, 0]) > 1e-3 * merged.m2[0, 0]
