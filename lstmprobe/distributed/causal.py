"""Ablations and gate dynamics on a Dask cluster.

An ablation's runs (the model as it is, each condition and each random draw) are independent:
each is a task, the model sent to the workers once (its checkpoint's bytes) and the corpus
once; the client gathers the per-char bits in order and computes what
:func:`lstmprobe.causal.run_ablation` computes, the same numbers. Gate dynamics are sums over
positions: each span of the store is a task, and the spans' sums are added.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from lstmprobe.causal import ablation as one_process
from lstmprobe.causal.dynamics import DynamicsSums, dynamics_sums
from lstmprobe.causal.dynamics import gate_dynamics as dynamics_here
from lstmprobe.distributed.cluster import require_distributed, slots_of, task_spans
from lstmprobe.distributed.models import ModelBytes, tune_malloc, worker_model
from lstmprobe.models import LoadedModel
from lstmprobe.record import Intervention
from lstmprobe.store import ActivationStore


def measure_run(
    model: ModelBytes, measure: one_process.Measure, interventions: Sequence[Intervention]
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """The task: one run of an ablation on this worker's copy of the model."""
    loaded = worker_model(model)
    return measure(loaded.model, loaded.vocab, interventions)


def runs_on(
    client: Any,
    model: torch.nn.Module,
    vocab: Any,
    measure: one_process.Measure,
    plans: list[list[Intervention]],
) -> Iterator[tuple[np.ndarray, dict[str, Any] | None]]:
    """The runs of an ablation as tasks on ``client``'s cluster, their results in order
    (:data:`lstmprobe.causal.ablation.Runs`). The model and the corpus are sent once, to every
    worker (so a worker lost takes no only copy with it)."""
    require_distributed()
    loaded = LoadedModel(model, vocab, "checkpoint")  # type: ignore[arg-type]
    weights = client.scatter(ModelBytes.of(loaded), broadcast=True)
    corpus = client.scatter(measure, broadcast=True)
    futures = [client.submit(measure_run, weights, corpus, ivs, pure=False) for ivs in plans]
    try:
        for future in futures:
            yield future.result()
            future.release()
    except BaseException:
        client.cancel(futures)
        raise


def run_ablation(
    model: torch.nn.Module,
    vocab: Any,
    text: str,
    conditions: Sequence[Sequence[str]],
    *,
    client: Any,
    **options: Any,
) -> one_process.AblationResult:
    """:func:`lstmprobe.causal.run_ablation` with its runs as tasks on the Dask cluster of
    ``client``; ``options`` are run_ablation's."""
    runs = functools.partial(runs_on, client)
    return one_process.run_ablation(model, vocab, text, conditions, runs=runs, **options)


def dynamics_span(
    path: str, layer: str, kind: str, start: int, stop: int, chunk_size: int | None
) -> DynamicsSums:
    """The task: one layer's dynamics summed over ``[start, stop)`` of the store at ``path``."""
    tune_malloc()
    with ActivationStore(path) as store:
        return dynamics_sums(store, layer, kind, start, stop, chunk_size)


def _merged(*parts: DynamicsSums) -> DynamicsSums:
    return functools.reduce(DynamicsSums.merge, parts)


def gate_dynamics(
    store: ActivationStore,
    model: Any = None,
    units: Sequence[str] | None = None,
    *,
    client: Any,
    progress: bool = False,
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """:func:`lstmprobe.causal.gate_dynamics` with each layer's sums computed over spans of
    the store by tasks on the Dask cluster of ``client`` (the workers open the store by its
    path) and added."""
    require_distributed()
    rows = chunk_size or store.chunk_positions
    spans = task_spans(store, rows, slots_of(client))
    path = str(store.path)

    def layer_sums(layer: str, kind: str) -> DynamicsSums:
        futures = [
            client.submit(dynamics_span, path, layer, kind, a, b, chunk_size, pure=False)
            for a, b in spans
        ]
        try:
            return client.submit(_merged, *futures, pure=False).result()
        except BaseException:
            client.cancel(futures)
            raise

    return dynamics_here(store, model, units, progress, chunk_size, layer_sums=layer_sums)
