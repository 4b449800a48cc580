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
