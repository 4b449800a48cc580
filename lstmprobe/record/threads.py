"""torch's CPU threads: set for a block and restored, and the default for a small model.

Recording, evaluating, sampling and ablating all run a model's forward pass; they share these so
that ``threads`` means the same everywhere.
"""

from __future__ import annotations

import torch

from lstmprobe.errors import LstmprobeError, RecordError

#: Below this many multiply-adds per char, the forward pass of a batch of one gains nothing from
#: more threads (measured: docs/recording.md), and recording and ablating run it on one.
SMALL_MODEL_MACS = 1_000_000


def macs_per_char(model: torch.nn.Module) -> int:
    """Multiply-adds of the recurrent layers per char (the weight matrices' sizes).

    Examples
    --------
    >>> macs_per_char(torch.nn.LSTM(2, 3))  # 4 gates x 3 x (2 inputs + 3 recurrent)
    60
    """
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if name.split(".")[-1].startswith("weight_")
    )


def check_threads(n: int | None, error: type[LstmprobeError] = RecordError) -> None:
    """Raise ``error`` naming ``threads`` unless ``n`` is None or at least 1."""
    if n is not None and n < 1:
        raise error(f"`threads` must be at least 1, got {n}")


def default_threads(
    model: torch.nn.Module, threads: int | None, device: torch.device
) -> int | None:
    """``threads``, or 1 when it is None and ``model`` is small and on the CPU (None: unchanged)."""
    if threads is None and device.type == "cpu" and macs_per_char(model) < SMALL_MODEL_MACS:
        return 1
    return threads


class TorchThreads:
    """torch's CPU threads set to ``n`` for a ``with`` block (None: unchanged), then restored.

    ``n`` below 1 raises ``error`` (the caller's stage's error) naming ``threads``.

    Examples
    --------
    >>> before = torch.get_num_threads()
    >>> with TorchThreads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """

    def __init__(self, n: int | None, error: type[LstmprobeError] = RecordError) -> None:
        check_threads(n, error)
        self.n, self.before = n, torch.get_num_threads()

    def __enter__(self) -> None:
        if self.n is not None:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


__all__ = ["SMALL_MODEL_MACS", "TorchThreads", "check_threads", "default_threads", "macs_per_char"]
