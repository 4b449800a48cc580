"""lstmprobe: open up trained LSTMs and GRUs.

Heavy modules are imported on first use, so that ``import lstmprobe`` and ``lstmprobe --help``
stay fast.
"""

from __future__ import annotations

from lstmprobe._lazy import lazy_exports
from lstmprobe._version import __version__
from lstmprobe.errors import LstmprobeError

_EXPORTS = {
    "CharLSTM": "lstmprobe.models",
    "ModelConfig": "lstmprobe.models",
    "LoadedModel": "lstmprobe.models",
    "load_model": "lstmprobe.models",
    "save_checkpoint": "lstmprobe.models",
    "Unit": "lstmprobe.names",
    "Key": "lstmprobe.names",
    "Vocab": "lstmprobe.text",
    "read_corpus": "lstmprobe.text",
    "Recorder": "lstmprobe.record",
    "Intervention": "lstmprobe.record",
    "ActivationStore": "lstmprobe.store",
    "StoreWriter": "lstmprobe.store",
    "Recording": "lstmprobe.store",
    "record_corpus": "lstmprobe.record",
    "RecordOptions": "lstmprobe.record",
    "feature": "lstmprobe.features",
    "get_feature": "lstmprobe.features",
    "rank_units": "lstmprobe.probes",
    "unit_scores": "lstmprobe.probes",
    "LinearProbe": "lstmprobe.probes",
    "Ranking": "lstmprobe.probes",
    "export_lstmvis": "lstmprobe.interop",
    "import_lstmvis": "lstmprobe.interop",
    "export_explorer": "lstmprobe.interop",
}

# built from the table (pyright cannot follow that; the names resolve through __getattr__)
__all__ = ["LstmprobeError", "__version__", *_EXPORTS]  # pyright: ignore[reportUnsupportedDunderAll]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
