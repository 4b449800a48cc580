"""The activation store: streaming, crash-safe HDF5 writing and lazy reading (docs/store-format.md).

One file per recording. Positions are characters of the corpus, in order, across all sequences;
``/layer{l}[_reverse]/{quantity}`` holds one ``(n_positions, n_units)`` dataset per recorded
quantity, chunked along positions. A recording is written to ``acts.h5.partial`` and renamed to
``acts.h5`` only when it is complete, so a path without ``.partial`` always holds a finished
recording. Only this package imports h5py.

- :mod:`~lstmprobe.store.writer`: :class:`StoreWriter`.
- :mod:`~lstmprobe.store.reader`: :class:`ActivationStore`.
- :mod:`~lstmprobe.store.recording`: :class:`Recording`, every file of one recording.
- :mod:`~lstmprobe.store.ablations`: the per-character results of ``lstmprobe ablate``, and
  their conditions (:class:`~lstmprobe.store.ablations.AblationCondition`).
- :mod:`~lstmprobe.store.dynamics`: the gate dynamics file read back, checked.
- :mod:`~lstmprobe.store.shards`: a recording in shards (virtual datasets), ``consolidate``.
- ``_format`` (constants, names, chunk sizes), ``_files`` (locks, exclusive creation, write
  errors) and ``_mapped`` (memory-mapped chunk views, read-ahead) hold what those share.
"""

from __future__ import annotations

from lstmprobe._io import write_json_atomic
from lstmprobe.names import GRU_QUANTITIES, LSTM_QUANTITIES, QUANTITIES, parse_unit
from lstmprobe.store._files import check_output, write_error
from lstmprobe.store._format import (
    COMPRESSIONS,
    DTYPES,
    FORMAT,
    FORMAT_VERSION,
    MAX_CHUNK_POSITIONS,
    MIN_CHUNK_POSITIONS,
    TARGET_CHUNK_BYTES,
    UNIT_BLOCK,
    RecordingSpec,
    default_chunk_positions,
    recording_bytes,
)
from lstmprobe.store.reader import ActivationStore
from lstmprobe.store.recording import (
    PARTIAL_SUFFIX,
    SIDECARS,
    Recording,
    final_path,
    partial_path,
)
from lstmprobe.store.shards import consolidate
from lstmprobe.store.writer import StoreWriter

__all__ = [
    "COMPRESSIONS",
    "DTYPES",
    "FORMAT",
    "FORMAT_VERSION",
    "GRU_QUANTITIES",
    "LSTM_QUANTITIES",
    "MAX_CHUNK_POSITIONS",
    "MIN_CHUNK_POSITIONS",
    "PARTIAL_SUFFIX",
    "QUANTITIES",
    "SIDECARS",
    "TARGET_CHUNK_BYTES",
    "UNIT_BLOCK",
    "ActivationStore",
    "Recording",
    "RecordingSpec",
    "StoreWriter",
    "check_output",
    "consolidate",
    "default_chunk_positions",
    "final_path",
    "parse_unit",
    "partial_path",
    "recording_bytes",
    "write_error",
    "write_json_atomic",
]
