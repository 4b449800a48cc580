"""The model on the workers: sent once as the bytes of an lstmprobe checkpoint (weights, config
and vocab; no pickled code), loaded there by the safe loader and kept for the next task."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from lstmprobe.models import LoadedModel, load_model, save_checkpoint


@dataclass(frozen=True)
class ModelBytes:
    """A model as it travels to the workers: an lstmprobe checkpoint's bytes, and what the
    recording says of the model it came from (its file's SHA-256, path and form)."""

    data: bytes
    sha256: str
    path: str | None
    form: str

    @classmethod
    def of(cls, loaded: LoadedModel) -> ModelBytes:
        """The checkpoint of ``loaded`` (whatever form its file had: the workers need no
        ``trust_pickle``, the loader there reads weights only)."""
        with tempfile.TemporaryDirectory(prefix="lstmprobe-model-") as tmp:
            path = save_checkpoint(Path(tmp) / "model.pt", loaded.model, loaded.vocab)
            data = path.read_bytes()
        where = str(loaded.path) if loaded.path is not None else None
        return cls(data, loaded.sha256, where, loaded.form)


_loaded: dict[str, LoadedModel] = {}  # this worker's model, by its checkpoint's hash
_lock = threading.Lock()
_tuned: list[bool] = []

#: glibc's mmap threshold for a worker: allocations below it come from the heap and are reused.
MMAP_THRESHOLD = 64 << 20


def tune_malloc() -> None:
    """Let this worker reuse its large arrays' memory, once per process.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand memory back to
    the system), and setting it switches off glibc's adaptive mmap threshold: every array over
    128 KiB is then a fresh ``mmap``, its pages zeroed again on first touch. A recording
    allocates tens of MB per chunk, so that tripled its system time (measured: 6.4 s of system
    time against 2.1 s, docs/scale-out.md). The threshold is set back to ``MMAP_THRESHOLD``
    here, through ``mallopt`` (glibc only; elsewhere nothing is done). With
    ``LSTMPROBE_MALLOC=dask`` in a worker's environment it is left as Dask sets it (what
    ``benchmarks/bench_dask.py`` compares).
    """
    if _tuned:
        return
    _tuned.append(True)
    if os.environ.get("LSTMPROBE_MALLOC") == "dask":
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)
        libc.mallopt(m_trim_threshold, 2 * MMAP_THRESHOLD)
    except (OSError, AttributeError):
        return


def worker_model(model: ModelBytes) -> LoadedModel:
    """The model of ``model`` on this process: loaded by :func:`load_model` from its bytes
    (``torch.load(weights_only=True)``) the first time, then kept (one model at a time)."""
    tune_malloc()
    key = hashlib.sha256(model.data).hexdigest()
    with _lock:
        loaded = _loaded.get(key)
        if loaded is None:
            with tempfile.TemporaryDirectory(prefix="lstmprobe-model-") as tmp:
                path = Path(tmp) / "model.pt"
                path.write_bytes(model.data)
                fresh = load_model(path)
            loaded = replace(
                fresh,
                form=model.form,
                path=Path(model.path) if model.path else None,
                sha256=model.sha256,
            )
            _loaded.clear()
            _loaded[key] = loaded
    return loaded
