"""Recording: every gate and state of a model over a corpus, written into an activation store.

- :mod:`~lstmprobe.record.cells`: the gates and states of one LSTM/GRU layer, recomputed exactly
  from its input and weights.
- :mod:`~lstmprobe.record.hooks`: :class:`Recorder`, the forward hooks that capture each layer.
- :mod:`~lstmprobe.record.interventions`: :class:`Intervention`, setting units inside the forward
  pass.
- :mod:`~lstmprobe.record.pipeline`: :func:`record_corpus`, driving a model over a corpus in
  chunks into a store (resumable).
- :mod:`~lstmprobe.record.bench`: the recording benchmark (``lstmprobe bench``).
"""

from __future__ import annotations

from lstmprobe.record.hooks import PendingActivations, Recorder
from lstmprobe.record.interventions import MODES, Intervention, check_interventions
from lstmprobe.record.layers import LayerInfo, layout, recurrent_layers
from lstmprobe.record.pipeline import RecordOptions, RecordResult, corpus_sha256, record_corpus

__all__ = [
    "MODES",
    "Intervention",
    "LayerInfo",
    "PendingActivations",
    "RecordOptions",
    "RecordResult",
    "Recorder",
    "check_interventions",
    "corpus_sha256",
    "layout",
    "record_corpus",
    "recurrent_layers",
]
