"""Which units track a feature: per-unit scores, sparse linear probes, controls, rankings.

Three layers, each usable alone (docs/probes.md has the definitions and the approximations):

* :func:`unit_scores` (:mod:`.scores`) -- one streaming pass over the store scores every unit
  of every recorded quantity against several features at once: ROC AUC (binary features),
  Pearson and Spearman (continuous ones), mutual information, sign; on labels made by
  :mod:`.labels`, with the compiled loops of :mod:`._kernels`.
* :class:`LinearProbe` and :class:`LinearProbeCV` (:mod:`.linear`) -- L1 / elastic-net
  logistic (binary) or linear (continuous) probes, plain scikit-learn estimators on arrays;
  :class:`BlockSplit` (:mod:`.splits`) makes train/validation/test of contiguous blocks of
  positions (never single characters: neighbours leak); :class:`StoreProbe`
  (:mod:`.store_probe`) fits one on a recording's units.
* :func:`rank_units` (:mod:`.rank`) -- the whole ordering as a :class:`Ranking`
  (:mod:`.ranking`): scores, held-out probe metrics for the top units, Hewitt & Liang control
  tasks (:mod:`.controls`) and selectivity, a bootstrap interval by block, and the top-k curve.

The metrics have one home, :mod:`.metrics`. Names are imported on first use, so reading a
rankings file (``from lstmprobe.probes import Ranking``) loads neither scikit-learn nor numba.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lstmprobe.probes.controls import control_labels
    from lstmprobe.probes.labels import Labels, make_labels, store_labels
    from lstmprobe.probes.linear import LinearProbe, LinearProbeCV
    from lstmprobe.probes.rank import rank_units
    from lstmprobe.probes.ranking import CAUSAL_COLUMNS, COLUMNS, Ranking, save_ranking
    from lstmprobe.probes.rows import CurvePoint, FeatureSummary, ProbeSummary, RankingRow
    from lstmprobe.probes.scores import UnitScores, unit_scores
    from lstmprobe.probes.splits import BlockSplit, block_split, sample_positions
    from lstmprobe.probes.store_probe import ProbeStoreWarning, StoreProbe, gather_units

_EXPORTS = {
    "Labels": "labels",
    "make_labels": "labels",
    "store_labels": "labels",
    "UnitScores": "scores",
    "unit_scores": "scores",
    "LinearProbe": "linear",
    "LinearProbeCV": "linear",
    "BlockSplit": "splits",
    "block_split": "splits",
    "sample_positions": "splits",
    "StoreProbe": "store_probe",
    "ProbeStoreWarning": "store_probe",
    "gather_units": "store_probe",
    "control_labels": "controls",
    "Ranking": "ranking",
    "COLUMNS": "ranking",
    "CAUSAL_COLUMNS": "ranking",
    "save_ranking": "ranking",
    "RankingRow": "rows",
    "FeatureSummary": "rows",
    "ProbeSummary": "rows",
    "CurvePoint": "rows",
    "rank_units": "rank",
}

__all__ = [
    "CAUSAL_COLUMNS",
    "COLUMNS",
    "BlockSplit",
    "CurvePoint",
    "FeatureSummary",
    "Labels",
    "LinearProbe",
    "LinearProbeCV",
    "ProbeStoreWarning",
    "ProbeSummary",
    "Ranking",
    "RankingRow",
    "StoreProbe",
    "UnitScores",
    "block_split",
    "control_labels",
    "gather_units",
    "make_labels",
    "rank_units",
    "sample_positions",
    "save_ranking",
    "store_labels",
    "unit_scores",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lstmprobe.probes' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lstmprobe.probes.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
