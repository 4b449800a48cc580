"""lstmprobe: open up trained LSTMs and GRUs."""

from __future__ import annotations

from lstmprobe.errors import LstmprobeError
from lstmprobe.models import CharLSTM, ModelConfig
from lstmprobe.text import Vocab

__version__ = "0.1.0"

__all__ = ["CharLSTM", "LstmprobeError", "ModelConfig", "Vocab", "__version__"]
