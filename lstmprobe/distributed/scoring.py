"""Scoring on a Dask cluster: the scoring pass cut into spans of positions, each counted by a
task on a worker (which opens the store by its path), the spans' sums merged -- counts exactly,
moments the Chan way (:mod:`lstmprobe.probes.sums`) -- and the scores finished on the client.

The spans start on the one-process pass's window grid, so the merged sums differ from one
pass's by float64 rounding only: AUC, Spearman and MI (from the counts) are the same numbers,
Pearson (from the moments) agrees to about 1e-15.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmprobe._io import progress_bar
from lstmprobe.distributed.cluster import require_distributed, slots_of, task_spans
from lstmprobe.distributed.models import tune_malloc
from lstmprobe.features import Feature
from lstmprobe.probes import rank_units as rank_one
from lstmprobe.probes.labels import Labels
from lstmprobe.probes.scores import UnitScores, score_pass
from lstmprobe.probes.sums import (
    ScorePlan,
    SpanSums,
    add_span,
    merge_tree,
    merged_accumulators,
    span_sums,
    window_rows,
)
from lstmprobe.store import ActivationStore

if TYPE_CHECKING:
    from lstmprobe.probes.ranking import Ranking


def score_span(
    path: str,
    plan: ScorePlan,
    start: int,
    stop: int,
    ids: list[np.ndarray],
    w: list[np.ndarray],
    chunk_size: int | None,
) -> dict[str, list[SpanSums]]:
    """The task: positions ``[start, stop)`` of the store at ``path`` counted into fresh
    accumulators (one thread), as their sums."""
    tune_malloc()
    with ActivationStore(path) as store:
        return span_sums(add_span(store, plan, start, stop, ids, w, chunk_size=chunk_size))


def unit_scores(
    store: ActivationStore,
    features: Sequence[str | Feature | Labels] | str | Feature,
    *,
    client: Any,
    keys: Sequence[str] | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    labels: list[Labels] | None = None,
    threads: int | None = None,
) -> dict[str, UnitScores]:
    """:func:`lstmprobe.probes.unit_scores` with the pass on the Dask cluster of ``client``.

    The labels are made here (the text is read from the store) and each task gets its span's
    label patterns; the workers read the store by its path, so it must be on a file system
    they share. ``threads``: of the compiled loop that finishes the scores here.
    """
    distributed = require_distributed()
    planned = score_pass(store, features, keys=keys, labels=labels)
    plan = planned.plan
    rows = window_rows(store, plan.keys, chunk_size)
    spans = task_spans(store, rows, slots_of(client))
    windows = [(w, min(b, w + rows)) for a, b in spans for w in range(a, b, rows)]
    label_windows = zip(*(lab.windows(windows) for lab in planned.active))
    bar = progress_bar(store.n_positions, desc="scoring units", unit="pos", leave=False,
                       enabled=progress)  # fmt: skip
    futures = []
    try:
        for a, b in spans:
            ids: list[list[np.ndarray]] = [[] for _ in plan.n_patterns]
            w: list[list[np.ndarray]] = [[] for _ in plan.n_patterns]
            for a2 in range(a, b, rows):
                got_ids, got_w = planned.window_labels(next(label_windows), a2, min(b, a2 + rows))
                for j in range(len(ids)):
                    ids[j].append(got_ids[j])
                    w[j].append(got_w[j])
            args = ([np.concatenate(x) for x in ids], [np.concatenate(x) for x in w])
            futures.append(client.submit(score_span, str(store.path), plan, a, b, *args,
                                         chunk_size, pure=False))  # fmt: skip
        for future in distributed.as_completed(futures):
            span = spans[futures.index(future)]
            bar.update(span[1] - span[0])
        sums = merge_tree(functools.partial(client.submit, pure=False), futures).result()
    except BaseException:
        client.cancel(futures)
        raise
    finally:
        bar.close()
    acc = merged_accumulators(plan, sums)
    return planned.finish(acc, store.units(plan.keys), threads=threads)


def rank_units(
    store: ActivationStore,
    features: str | Feature | Sequence[str | Feature],
    *,
    client: Any,
    **options: Any,
) -> Ranking:
    """:func:`lstmprobe.probes.rank_units` with the scoring pass on the Dask cluster of
    ``client`` (:func:`unit_scores`); the probes of the top units are fitted here, on a block
    sample read from the store (sharded: from its shards). ``options`` are rank_units's."""
    scorer = functools.partial(unit_scores, client=client)
    return rank_one(store, features, scorer=scorer, **options)
