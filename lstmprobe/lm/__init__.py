"""Character-level language models: training, sampling, evaluating, and the blog's tasks.

``lm`` sits beside :mod:`lstmprobe.models`: it trains and evaluates the models the rest of the
pipeline opens up. :mod:`~lstmprobe.lm.training` (settings, batching, the loop, checkpoints and
resuming), :mod:`~lstmprobe.lm.sampling`, :mod:`~lstmprobe.lm.evaluation` (bits per char, task
completion) and :mod:`~lstmprobe.lm.tasks` (the synthetic tasks of "Exploring LSTMs").
"""

from __future__ import annotations

from lstmprobe.lm import tasks
from lstmprobe.lm.evaluation import (
    Completion,
    Evaluation,
    bits_per_char,
    evaluate,
    task_completion,
)
from lstmprobe.lm.sampling import complete_greedy, sample, set_threads
from lstmprobe.lm.tasks import Task
from lstmprobe.lm.training import (
    TrainConfig,
    TrainResult,
    iter_bundled,
    resolve_config,
    train,
    training_info,
)

__all__ = [
    "Completion",
    "Evaluation",
    "Task",
    "TrainConfig",
    "TrainResult",
    "bits_per_char",
    "complete_greedy",
    "evaluate",
    "iter_bundled",
    "resolve_config",
    "sample",
    "set_threads",
    "task_completion",
    "tasks",
    "train",
    "training_info",
]
