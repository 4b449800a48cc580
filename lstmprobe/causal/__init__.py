"""Do the units matter? Ablations through interventions, effects against random units, the
gate dynamics of each unit, patches, attribution through time and state-space dynamics
(docs/causal.md).

:mod:`.units` says which units (conditions, from a ranking or by name; random draws; what the
recording gives: :func:`plan_ablation`), :mod:`.ablation` runs the model with and without them,
:mod:`.effects` compares the effects with the random units', :mod:`.dynamics` describes gates,
:mod:`.patching` patches units from a source run into a target (flip rates against random
units, sweeps), :mod:`.attribution` attributes a prediction to earlier chars and states,
:mod:`.state_space` gives trajectories and fixed points, and :mod:`.profile` gives a unit's
quantities per input char or feature value (:func:`lstmprobe.causal.profile.profile`).
"""

from __future__ import annotations

from lstmprobe.causal.ablation import (
    AblationResult,
    next_char_bits,
    run_ablation,
    with_causal_columns,
)
from lstmprobe.causal.attribution import Attribution, attribute
from lstmprobe.causal.dynamics import drivers_model, gate_dynamics, timescale
from lstmprobe.causal.patching import (
    PairsResult,
    PatchResult,
    PatchSweep,
    patch,
    patch_pairs,
    patch_sweep,
)
from lstmprobe.causal.state_space import fixed_points, principal_components, trajectories
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
    "Attribution",
    "PairsResult",
    "PatchResult",
    "PatchSweep",
    "attribute",
    "check_model_matches",
    "check_selection",
    "drivers_model",
    "fixed_points",
    "gate_dynamics",
    "next_char_bits",
    "patch",
    "patch_pairs",
    "patch_sweep",
    "plan_ablation",
    "principal_components",
    "run_ablation",
    "timescale",
    "top_conditions",
    "trajectories",
    "unit_means",
    "with_causal_columns",
]
