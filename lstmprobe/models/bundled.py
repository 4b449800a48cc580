"""Bundled models and sample corpora that ship inside the package (``lstmprobe models``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).parents[1] / "data"


@dataclass(frozen=True)
class Bundled:
    name: str
    filename: str
    description: str

    @property
    def path(self) -> Path:
        return DATA_DIR / self.filename


MODELS: dict[str, Bundled] = {
    "code-lstm": Bundled(
        "code-lstm",
        "code-lstm.pt",
        "2-layer LSTM (160 units, embedding 32) trained on Python standard library source "
        "(docs/training.md)",
    ),
    "c-lstm": Bundled(
        "c-lstm",
        "c-lstm.pt",
        "1-layer LSTM (128 units, embedding 16) trained on GNU libc's C headers: reads "
        "tab-indented code (docs/training.md)",
    ),
}
SAMPLES: dict[str, Bundled] = {
    "code": Bundled(
        "code",
        "sample-code.txt",
        "held-out Python standard library modules (PSF licence), files unseen in training",
    ),
}


def model_path(name: str) -> Path | None:
    """The file of a bundled model, or None if ``name`` is not one."""
    entry = MODELS.get(name)
    return entry.path if entry else None


def sample_path(name: str) -> Path | None:
    """The file of a bundled sample corpus named ``sample:NAME``, or None."""
    if not name.startswith("sample:"):
        return None
    entry = SAMPLES.get(name.split(":", 1)[1])
    return entry.path if entry else None
