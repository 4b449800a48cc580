"""Do the units matter? Ablations through interventions, effects against random units, and the
gate dynamics of each unit (docs/causal.md)."""

from __future__ import annotations

from lstmprobe.causal.ablation import (
    AblationError,
    AblationResult,
    next_char_bits,
    run_ablation,
    unit_means,
)
from lstmprobe.causal.dynamics import gate_dynamics, timescale

__all__ = [
    "AblationError",
    "AblationResult",
    "gate_dynamics",
    "next_char_bits",
    "run_ablation",
    "timescale",
    "unit_means",
]
