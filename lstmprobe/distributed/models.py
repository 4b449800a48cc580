"""The model on the workers: sent once as the bytes of an lstmprobe checkpoint (weights, config
and vocab; no pickled code), loaded there by the safe loader and kept for the next task."""

from __future__ import annotations

import hashlib
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


def worker_model(model: ModelBytes) -> LoadedModel:
    """The model of ``model`` on this process: loaded by :func:`load_model` from its bytes
    (``torch.load(weights_only=True)``) the first time, then kept (one model at a time)."""
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
