"""lstmprobe on a Dask cluster: record, score, ablate and describe dynamics with many workers.

An adapter over Dask distributed (an optional extra: ``pip install "lstmprobe[dask]"``), not a
scheduler of its own; every function takes a ``client`` (a ``distributed.Client``) and gives
what its one-process counterpart gives (docs/scale-out.md):

* :func:`record_corpus` -- the sequences cut into shards of whole sequences, one task per
  shard, each writing its own shard file; the store is HDF5 virtual datasets over them, and
  its values are those of a one-process recording, bit for bit.
* :func:`unit_scores`, :func:`rank_units` -- the scoring pass cut into spans counted on the
  workers, their sums merged (counts exactly, moments the Chan way).
* :func:`run_ablation` -- the conditions and random draws as tasks, the model sent once.
* :func:`gate_dynamics` -- the dynamics' sums per span, added.
* :func:`connect` -- a client for ``local:N`` (a LocalCluster) or a scheduler's address.

Nothing here is imported by the rest of lstmprobe, and importing it imports no Dask: that
happens when a cluster is first used.
"""

from __future__ import annotations

from lstmprobe._lazy import lazy_exports

_EXPORTS = {
    "connect": "lstmprobe.distributed.cluster",
    "require_distributed": "lstmprobe.distributed.cluster",
    "record_corpus": "lstmprobe.distributed.record",
    "plan_shards": "lstmprobe.distributed.record",
    "unit_scores": "lstmprobe.distributed.scoring",
    "rank_units": "lstmprobe.distributed.scoring",
    "run_ablation": "lstmprobe.distributed.causal",
    "gate_dynamics": "lstmprobe.distributed.causal",
}

__all__ = list(_EXPORTS)  # pyright: ignore[reportUnsupportedDunderAll]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
