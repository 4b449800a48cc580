"""Small stores with planted units, shared by the scoring, ranking and CLI tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lstmprobe.features import get_feature
from lstmprobe.store import RecordingSpec, StoreWriter
from lstmprobe.text import Vocab, sequences

BASE = (
    'def f(x):\n    return "a(b)" + x  # note\n'
    "class A:\n    def g(self):\n        return [1, 2, {3: 'q'}]\n"
    "    s = 'it' if (x and [y]) else \"z\"\n"
)


def build_store(
    path: Path,
    text: str,
    seed: int = 0,
    dtype: str = "float32",
    chunk_positions: int | None = None,
) -> Path:
    """Two datasets of 6 noise units; layer0/cell/4 tracks quote, layer0/hidden/1 -indent."""
    rng = np.random.default_rng(seed)
    vocab = Vocab.from_text(text)
    n = len(text)
    quote = get_feature("quote").labels(text)
    indent = get_feature("indent").labels(text)
    cell = rng.normal(size=(n, 6)).astype(np.float32)
    hidden = rng.normal(size=(n, 6)).astype(np.float32)
    cell[:, 4] = 2 * quote - 1 + 0.4 * rng.normal(size=n)
    hidden[:, 1] = -indent / 8 + 0.05 * rng.normal(size=n)
    writer = StoreWriter(
        path,
        RecordingSpec(
            tokens=vocab.encode(text).astype(np.int32),
            sequences=sequences(text),
            vocab=vocab,
            layout={"layer0/cell": 6, "layer0/hidden": 6},
            dtype=dtype,
            model_summary={},
            model_sha256="0" * 64,
            corpus_sha256="0" * 64,
            has_next_logprob=False,
            run_config={},
        ),
        chunk_positions=chunk_positions,
    )
    writer.write(0, {"layer0/cell": cell, "layer0/hidden": hidden})
    return writer.finish()


def record_sharded(loaded, corpus, out: Path, options=None, shard_chars: int = 1000) -> Path:  # type: ignore[no-untyped-def]
    """A sharded recording made shard by shard in this process, as the Dask tasks make it
    (:mod:`lstmprobe.distributed.record`), for the store's tests that need no cluster."""
    from lstmprobe.distributed.record import plan_shards
    from lstmprobe.record import RecordOptions, record_corpus
    from lstmprobe.record.batches import reads_in_batches
    from lstmprobe.record.pipeline import prepare_recording
    from lstmprobe.store import Recording, default_chunk_positions
    from lstmprobe.store.shards import Shard, finished_shard, recording_id, write_sharded_store

    options = options or RecordOptions()
    spec = prepare_recording(loaded, corpus, options).spec
    n = len(spec.tokens)
    batched = reads_in_batches(options.reset, False, len(spec.sequences))
    bounds = plan_shards(spec.sequences, shard_chars, batched=batched,
                         batch_chars=options.batch_chars, bidirectional=False)  # fmt: skip
    cp = default_chunk_positions(list(spec.layout.values()), spec.dtype, n)
    rid = recording_id(spec, [a for a, _ in bounds], cp)
    Recording.at(out).shards.mkdir()
    files = []
    for i, (a, b) in enumerate(bounds):
        shard = Shard(rid, i, a, b, cp, batched)
        record_corpus(loaded, corpus.part(a, b), shard.path(out), options, shard=shard)
        files.append(finished_shard(out, shard))
    return write_sharded_store(out, spec, files, cp, rid)
