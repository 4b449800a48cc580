"""Recordings to and from other tools (docs/interop.md): LSTMVis projects both ways, and the JSON
of LSTM Explorer, the viewer of "Exploring LSTMs". Like ``store/``, this stage reads and writes
HDF5 itself (the other tools' files); the stores it writes go through
:class:`~lstmprobe.store.StoreWriter`.

- :func:`export_lstmvis`, :func:`import_lstmvis`: an LSTMVis project (``lstm.yml``, states,
  word ids and their dictionary), its rules in :mod:`~lstmprobe.interop.lstmvis`.
- :func:`export_explorer`: a span as LSTM Explorer's JSON.
"""

from __future__ import annotations

from lstmprobe.interop.common import ExportResult
from lstmprobe.interop.explorer import export_explorer
from lstmprobe.interop.lstmvis_export import export_lstmvis
from lstmprobe.interop.lstmvis_import import ImportResult, import_lstmvis

__all__ = ["ExportResult", "ImportResult", "export_explorer", "export_lstmvis", "import_lstmvis"]
