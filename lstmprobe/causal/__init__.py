"""Do the units matter? Ablations through interventions, effects against random units, and the
gate dynamics of each unit (docs/causal.md).

:mod:`.units` says which units (conditions, from a ranking or by name; random draws; what the
recording gives: :func:`plan_ablation`), :mod:`.ablation` runs the model with and without them,
:mod:`.effects` compares the effects with the random units', :mod:`.dynamics` describes gates,
:mod:`.profile` gives a unit's quantities per input char or feature value
(:func:`lstmprobe.causal.profile.profile`).
"""

from __future__ import annotations

from lstmprobe.causal.ablation import (
    AblationResult,
    next_char_bits,
    run_ablation,
    with_causal_columns,
)
from lstmprobe.causal.dynamics import drivers_model, gate_dynamics, timescale
from lstmprobe.causal.units import (
    AblationPlan,
    check_model_matches,
    check_selection,
    plan_ablation,
    top_conditions,
    unit_means,
)
from lstmprobe.errors import AblationError

__all__ = [
    "AblationError",
    "AblationPlan",
    "AblationResult",
    "check_model_matches",
    "check_selection",
    "drivers_model",
    "gate_dynamics",
    "next_char_bits",
    "plan_ablation",
    "run_ablation",
    "timescale",
    "top_conditions",
    "unit_means",
    "with_causal_columns",
]
