"""Models: the reference :class:`CharLSTM`, the lstmprobe checkpoint, and loading every accepted
model file form (see docs/model-files.md).

- :mod:`~lstmprobe.models.charlstm`: :class:`CharLSTM`, :class:`ModelConfig`, checkpoints.
- :mod:`~lstmprobe.models.load`: :func:`load_model` for every file form, safely.
- :mod:`~lstmprobe.models.infer`: the architecture of a model read from its state_dict.
- :mod:`~lstmprobe.models.bundled`: the models and corpora that ship inside the package.
"""

from __future__ import annotations

from lstmprobe.models import bundled
from lstmprobe.models._torchscript import read_torchscript
from lstmprobe.models.charlstm import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    MAX_PARAMETERS,
    MAX_TENSOR_BYTES,
    SAFETENSORS_CONFIG_KEY,
    SAFETENSORS_VOCAB_KEY,
    Cell,
    CharLSTM,
    ModelConfig,
    State,
    bits_per_char,
    file_sha256,
    map_state,
    save_checkpoint,
)
from lstmprobe.models.infer import VOCAB_KEYS, WRAPPER_KEYS
from lstmprobe.models.load import (
    Form,
    LoadedModel,
    checkpoint_to_model,
    load_model,
    read_safetensors,
    save_safetensors,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "MAX_PARAMETERS",
    "MAX_TENSOR_BYTES",
    "SAFETENSORS_CONFIG_KEY",
    "SAFETENSORS_VOCAB_KEY",
    "VOCAB_KEYS",
    "WRAPPER_KEYS",
    "Cell",
    "CharLSTM",
    "Form",
    "LoadedModel",
    "ModelConfig",
    "State",
    "bits_per_char",
    "bundled",
    "checkpoint_to_model",
    "file_sha256",
    "load_model",
    "map_state",
    "read_safetensors",
    "read_torchscript",
    "save_checkpoint",
    "save_safetensors",
]
