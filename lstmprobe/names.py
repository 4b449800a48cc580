"""The names of recorded quantities: one spelling each, shared by the recorder, the store, the
command line and the report (``layer0/cell/17`` addresses unit 17 of ``cell`` in ``layer0``)."""

from __future__ import annotations

LSTM_QUANTITIES: tuple[str, ...] = (
    "input_gate",
    "forget_gate",
    "candidate",
    "output_gate",
    "cell",
    "hidden",
)
GRU_QUANTITIES: tuple[str, ...] = ("reset_gate", "update_gate", "candidate", "hidden")
QUANTITIES: tuple[str, ...] = tuple(dict.fromkeys(LSTM_QUANTITIES + GRU_QUANTITIES))
