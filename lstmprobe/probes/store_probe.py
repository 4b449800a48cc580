"""Probes on a recording: read units and labels from a store, fit an array probe, and apply
it to other recordings with a check that they hold its units.

:class:`~lstmprobe.probes.LinearProbe` and :class:`~lstmprobe.probes.LinearProbeCV` take
arrays; :class:`StoreProbe` is what reads the store for them and remembers the recording.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmprobe.errors import FeatureError, LstmprobeWarning, UnitError
from lstmprobe.features import Feature
from lstmprobe.probes.labels import store_labels
from lstmprobe.probes.linear import LinearProbe, LinearProbeCV
from lstmprobe.probes.splits import runs, sample_positions

if TYPE_CHECKING:
    from lstmprobe.store import ActivationStore


class ProbeStoreWarning(LstmprobeWarning):
    """A probe is applied to a recording of another model than the one it was fitted on."""


def gather_units(store: ActivationStore, units: Sequence[str], rows: np.ndarray) -> np.ndarray:
    """Values of ``units`` at positions ``rows`` (sorted), float32 of shape (len(rows), len(units))."""
    from lstmprobe.store import parse_unit

    by_key: dict[str, list[tuple[int, int]]] = {}
    for col, name in enumerate(units):
        key, index = parse_unit(name)
        by_key.setdefault(key, []).append((col, index))
    out = np.empty((len(rows), len(units)), dtype=np.float32)
    spans = runs(rows)
    for key, cols in by_key.items():
        idx = [i for _, i in cols]
        where = [c for c, _ in cols]
        at = 0
        for a, b in spans:
            out[at : at + b - a, where] = store.read(key, a, b, units=idx)
            at += b - a
    return out


def recording(store: ActivationStore, units: Sequence[str]) -> dict[str, Any]:
    """What a probe remembers of the store it reads: path, hashes, units per dataset."""
    from lstmprobe.store import parse_unit

    keys = list(dict.fromkeys(parse_unit(u)[0] for u in units))
    return {
        "path": str(store.path),
        "model_sha256": str(getattr(store, "model_sha256", "")),
        "corpus_sha256": str(getattr(store, "corpus_sha256", "")),
        "layout": {k: (store.n_units(k) if k in store.keys else 0) for k in keys},
    }


@dataclass
class StoreProbe:
    """An array probe fitted on a recording's units, and what it remembers of the recording.

    Made by :meth:`fit`. Applied to a store (``decision_function(store)``, ``predict``,
    ``predict_proba``), it reads its units at every position after checking the store:
    datasets that lack its units are an error, a recording of another model a warning (the
    same index may be another unit). The estimator's fitted attributes (``coef_``, ``l1_``,
    ``test_metrics_``...) read through.

    Attributes
    ----------
    estimator : LinearProbeCV or LinearProbe
        The fitted array probe; its columns are ``units``.
    units : list of str
        The unit of each column.
    store_ : dict
        The recording fitted on: path, model and corpus hashes, and the layout (units per
        dataset).

    Examples
    --------
    >>> probe = StoreProbe.fit(store, "quote", units=["layer0/cell/4"])  # doctest: +SKIP
    >>> probe.test_metrics_["auc"], probe.predict(other_store)  # doctest: +SKIP
    """

    estimator: LinearProbeCV | LinearProbe
    units: list[str]
    store_: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        store: ActivationStore,
        y: str | Feature | np.ndarray,
        *,
        units: Sequence[str] | None = None,
        estimator: LinearProbeCV | LinearProbe | None = None,
        max_positions: int | None = 200_000,
    ) -> StoreProbe:
        """Fit ``estimator`` (default ``LinearProbeCV()``) on ``units`` of ``store``
        (default: every unit) against ``y``, a feature spec or one label per position.

        Positions where the label is undefined are dropped, and at most ``max_positions``
        positions are used (whole contiguous windows chosen with the split's seed).
        """
        estimator = LinearProbeCV() if estimator is None else estimator
        cv = getattr(estimator, "cv", None)
        n_blocks = int(getattr(cv, "n_blocks", 20))
        seed = int(getattr(cv, "random_state", 0) or 0)
        rows = sample_positions(store.n_positions, max_positions, n_blocks, seed)
        if isinstance(y, (str, Feature)):
            (labels,) = store_labels(store, [y])
            values = labels.at(rows).astype(np.float64)
        else:
            given = np.asarray(y, dtype=np.float32)
            if given.shape != (store.n_positions,):
                raise FeatureError(
                    f"labels have shape {given.shape}, the store has {store.n_positions} positions"
                )
            values = given[rows].astype(np.float64)
        units = list(store.units() if units is None else units)
        estimator.fit(gather_units(store, units, rows), values)
        return cls(estimator, units, recording(store, units))

    def read(self, store: ActivationStore) -> np.ndarray:
        """The probe's units over every position of ``store``, after checking it fits."""
        mine = self.store_
        other = recording(store, self.units)
        changed = [
            f"{k} has {other['layout'].get(k, 0)} units here, {n} where it was fitted"
            for k, n in mine["layout"].items()
            if other["layout"].get(k) != n
        ]
        if changed:
            raise UnitError(
                f"this probe was fitted on {mine['path']}; {store.path} does not have its units "
                f"({'; '.join(changed[:3])}): refit it on this recording"
            )
        if other["model_sha256"] != mine["model_sha256"]:
            warnings.warn(
                f"this probe was fitted on {mine['path']}, a recording of another model "
                f"(sha256 {mine['model_sha256'][:12]}, here {other['model_sha256'][:12]}): "
                "unit indices of two models need not mean the same; refit it to be sure",
                ProbeStoreWarning,
                stacklevel=3,
            )
        return gather_units(store, self.units, np.arange(store.n_positions))

    def decision_function(self, store: ActivationStore) -> np.ndarray:
        """Linear score at each position of ``store`` (log-odds for binary probes)."""
        return self.estimator.decision_function(self.read(store))

    def predict(self, store: ActivationStore) -> np.ndarray:
        """0/1 (binary) or the predicted value at each position of ``store``."""
        return self.estimator.predict(self.read(store))

    def predict_proba(self, store: ActivationStore) -> np.ndarray:
        """(P(0), P(1)) at each position of ``store``; binary probes only."""
        return self.estimator.predict_proba(self.read(store))

    def top_units(self, k: int | None = None) -> list[str]:
        """Units by decreasing |weight| (non-zero weights only)."""
        return self.estimator.top_units(k, names=self.units)

    def __getattr__(self, name: str) -> Any:
        if name.endswith("_") and not name.startswith("__") and "estimator" in self.__dict__:
            return getattr(self.estimator, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
