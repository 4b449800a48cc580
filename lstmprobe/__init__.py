"""lstmprobe: open up trained LSTMs and GRUs.

Heavy modules are imported on first use, so that ``import lstmprobe`` and ``lstmprobe --help``
stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from lstmprobe._version import __version__
from lstmprobe.errors import LstmprobeError

_EXPORTS = {
    "CharLSTM": "lstmprobe.models",
    "ModelConfig": "lstmprobe.models",
    "LoadedModel": "lstmprobe.models",
    "load_model": "lstmprobe.models",
    "save_checkpoint": "lstmprobe.models",
    "Vocab": "lstmprobe.text",
    "read_corpus": "lstmprobe.text",
    "Recorder": "lstmprobe.record",
    "Intervention": "lstmprobe.record",
    "ActivationStore": "lstmprobe.store",
    "StoreWriter": "lstmprobe.store",
    "record_corpus": "lstmprobe.record",
    "RecordOptions": "lstmprobe.record",
    "feature": "lstmprobe.features",
    "get_feature": "lstmprobe.features",
    "rank_units": "lstmprobe.probes",
    "unit_scores": "lstmprobe.probes",
    "LinearProbe": "lstmprobe.probes",
    "Ranking": "lstmprobe.probes",
}

__all__ = ["LstmprobeError", "__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lstmprobe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
