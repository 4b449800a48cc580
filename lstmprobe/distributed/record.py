"""Recording on a Dask cluster: the sequences cut into shards of whole sequences, one task per
shard, each writing its own shard file; the client then writes the store of virtual datasets
over them (:mod:`lstmprobe.store.shards`).

A shard holds whole batches of the one-process recording (:func:`~lstmprobe.record.batches.
sequence_groups`) and is recorded as that recording reads them, so its values are the same bit
for bit. A task finds its shard done (a retry, a resumed run) and returns it as it is, or
continues its partial file (a worker killed mid-shard), or records it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmprobe._io import progress_bar
from lstmprobe.distributed.cluster import require_distributed
from lstmprobe.distributed.models import ModelBytes, worker_model
from lstmprobe.errors import RecordError, StoreBusyError, StoreError
from lstmprobe.models import LoadedModel
from lstmprobe.record.batches import reads_in_batches, sequence_groups
from lstmprobe.record.pipeline import RecordOptions, RecordResult, prepare_recording
from lstmprobe.record.pipeline import record_corpus as record_one
from lstmprobe.record.threads import macs_per_char
from lstmprobe.store import Recording, check_output, default_chunk_positions
from lstmprobe.store.shards import (
    SHARD_NAME,
    Shard,
    ShardFile,
    finished_shard,
    recording_id,
    sharded_table,
    write_sharded_store,
)
from lstmprobe.text import Corpus

#: A shard takes about this many seconds of one worker by default (the first estimate of its
#: speed is the model's size; docs/scale-out.md) ...
SHARD_SECONDS = 30
#: ... and a recording has at most about this many shards: opening a store checks every one.
MAX_SHARDS = 512
#: A task waits this long for a shard that another process is still writing (a task of a run
#: whose client was killed finishes what it began).
BUSY_WAIT = 600.0


def default_shard_chars(loaded: LoadedModel, n_positions: int) -> int:
    """Characters per shard: about ``SHARD_SECONDS`` of recording on one worker, estimated from
    the model's multiply-adds per char (2e10 a second, at most 200,000 chars a second: what
    ``lstmprobe bench`` measures on a CPU core, roughly), and at least ``n_positions /
    MAX_SHARDS``."""
    rate = min(200_000.0, 2e10 / max(1, macs_per_char(loaded.model)))
    return max(int(SHARD_SECONDS * rate), -(-n_positions // MAX_SHARDS), 1)


def plan_shards(
    seqs: np.ndarray,
    shard_chars: int,
    *,
    batched: bool,
    batch_chars: int,
    bidirectional: bool,
) -> list[tuple[int, int]]:
    """The shards' ``[start, stop)`` positions: whole batches of whole sequences, each at least
    ``shard_chars`` long (but the last). A stream (one sequence) is one shard.

    Examples
    --------
    >>> seqs = np.array([[0, 3], [3, 6], [6, 8], [8, 20]])
    >>> plan_shards(seqs, 5, batched=True, batch_chars=8, bidirectional=False)
    [(0, 6), (6, 20)]
    """
    n = int(seqs[-1, 1])
    if not batched:
        return [(0, n)]
    bounds, start = [], 0
    for _, j in sequence_groups(seqs, batch_chars, bidirectional):
        end = int(seqs[j - 1, 1])
        if end - start >= shard_chars:
            bounds.append((start, end))
            start = end
    if start < n:
        bounds.append((start, n))
    return bounds


@dataclass(frozen=True, eq=False)
class ShardJob:
    """One task: record ``shard`` of the store ``store`` (a path: the shard's file lies in its
    shard folder) from ``corpus`` (the shard's text and files)."""

    store: str
    shard: Shard
    corpus: Corpus
    options: RecordOptions
    device: str | None
    threads: int | None
    force: bool


def record_shard(job: ShardJob, model: ModelBytes) -> tuple[ShardFile, list[str]]:
    """The task: the shard's finished file (recorded now, continued, or found done) and the
    warnings recording it gave."""
    done = finished_shard(job.store, job.shard)
    if done is not None:
        return done, []
    loaded = worker_model(model)
    warnings: list[str] = []
    deadline = time.monotonic() + BUSY_WAIT
    path = job.shard.path(job.store)
    while True:
        try:
            record_one(loaded, job.corpus, path, job.options, resume=True, force=job.force,
                       device=job.device, threads=job.threads, warn=warnings.append,
                       shard=job.shard)  # fmt: skip
            break
        except StoreBusyError:  # another process is writing it: wait for it, then use it
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            done = finished_shard(job.store, job.shard)
            if done is not None:
                return done, warnings
    done = finished_shard(job.store, job.shard)
    if done is None:
        raise StoreError(f"shard {path} was recorded but is not complete; record again")
    return done, warnings


def record_corpus(
    loaded: LoadedModel,
    text: str | Corpus,
    out: str | os.PathLike[str],
    options: RecordOptions | None = None,
    *,
    client: Any,
    shard_chars: int | None = None,
    force: bool = False,
    resume: bool = False,
    progress: bool = False,
    device: str | None = None,
    threads: int | None = None,
    warn: Callable[[str], None] | None = None,
) -> RecordResult:
    """Record ``text`` (a text or a :class:`~lstmprobe.text.Corpus` of files) with ``loaded``
    into ``out`` on the Dask cluster of ``client``, in shards.

    As :func:`lstmprobe.record.record_corpus` (the same values, bit for bit), with
    ``out.shards/shard-NNNNN.h5`` written by the workers and ``out`` a store of HDF5 virtual
    datasets over them, written (atomically) once every shard is complete. ``shard_chars``:
    characters per shard (default :func:`default_shard_chars`). An interrupted recording keeps
    its finished shards: run again with ``resume=True`` to record the rest (and to make the
    store again from its shards when one was recorded again). ``out`` and its shard folder
    must be on a file system every worker shares.
    """
    options = options or RecordOptions()
    if options.parallel:
        raise RecordError("`parallel` does not combine with `dask`: shards run in parallel")
    out = check_output(out)
    began = time.perf_counter()
    prepared = prepare_recording(loaded, text, options)
    spec = prepared.spec
    seqs, n = spec.sequences, len(spec.tokens)
    bidirectional = bool(loaded.model.config.bidirectional)
    batched = reads_in_batches(options.reset, bidirectional, len(seqs))
    size = shard_chars or default_shard_chars(loaded, n)
    if size < 1:
        raise RecordError(f"`shard_chars` must be at least 1, got {size}")
    bounds = plan_shards(seqs, size, batched=batched, batch_chars=options.batch_chars,
                         bidirectional=bidirectional)  # fmt: skip
    cp = default_chunk_positions(list(spec.layout.values()), spec.dtype, n)
    rid = recording_id(spec, [a for a, _ in bounds], cp)
    shards = [Shard(rid, i, a, b, cp, batched) for i, (a, b) in enumerate(bounds)]
    kept = _existing(out, shards, force=force, resume=resume)
    Recording.at(out).shards.mkdir(exist_ok=True)
    done = dict(kept)
    todo = [s for s in shards if s.index not in done]
    bar = progress_bar(n, initial=sum(s.positions for s in kept.values()), desc="record",
                       unit="char", unit_scale=True, enabled=progress)  # fmt: skip
    try:
        if todo:
            distributed = require_distributed()
            model = client.scatter(ModelBytes.of(loaded), broadcast=True)
            # the jobs (each shard's text) travel in the tasks, not scattered: a task whose
            # worker dies is run again elsewhere from them (scattered data would die with it)
            futures = []
            for s in todo:
                part = prepared.corpus.part(s.start, s.stop)
                job = ShardJob(str(out), s, part, options, device, threads, force)
                key = f"lstmprobe-shard-{s.index:05d}-{rid[:16]}"
                futures.append(client.submit(record_shard, job, model, key=key, pure=False))
            try:
                for future in distributed.as_completed(futures):
                    got, messages = future.result()
                    done[got.index] = got
                    for message in messages:
                        (warn or _warn)(f"shard {got.index}: {message}")
                    bar.update(got.positions)
            except BaseException:
                client.cancel(futures)
                raise
    finally:
        bar.close()
    path = write_sharded_store(out, spec, [done[s.index] for s in shards], cp, rid)
    resumed = sum(s.positions for s in kept.values())
    return RecordResult(path, n, time.perf_counter() - began, resumed)


def _warn(message: str) -> None:
    import warnings

    from lstmprobe.errors import PrecisionWarning

    warnings.warn(message, PrecisionWarning, stacklevel=3)


def _existing(out: Path, shards: list[Shard], *, force: bool, resume: bool) -> dict[int, ShardFile]:
    """The finished shards to keep (with ``resume``), after checking what ``out`` and its shard
    folder hold; with ``force`` the shard folder's shards are removed."""
    folder = Recording.at(out).shards
    if out.exists() and not force and (not resume or sharded_table(out) is None):
        raise StoreError(
            f"{out} already exists; pass `force=True` to overwrite or `out` to choose another path"
        )
    present = sorted(folder.glob("shard-*")) if folder.is_dir() else []
    if force:
        for path in present:
            path.unlink(missing_ok=True)
        return {}
    if present and not resume:
        raise StoreError(
            f"an unfinished sharded recording {folder} exists; pass `resume=True` to continue it "
            "or `force=True` to start over"
        )
    names = {SHARD_NAME.format(s.index) for s in shards}
    stray = [p.name for p in present if p.name.split(".h5")[0] + ".h5" not in names]
    if stray:
        raise StoreError(
            f"the shard folder {folder} holds shards of another recording ({stray[0]}, ...); "
            "remove it, or start over with `force=True`"
        )
    kept = {}
    for s in shards:
        found = finished_shard(out, s)
        if found is not None:
            kept[s.index] = found
    return kept
