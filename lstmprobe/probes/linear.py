"""Sparse linear probes: L1 / elastic-net logistic or linear regression on unit activations.

:class:`LinearProbe` is a plain scikit-learn estimator on arrays: ``fit(X, y)`` fits every
row given at one penalty ``l1``. :class:`LinearProbeCV` chooses the penalty the way a probe
must be judged: rows are positions in corpus order, train / validation / test are contiguous
blocks (:class:`~lstmprobe.probes.BlockSplit`, never single characters: neighbours leak), the
penalty is chosen on validation and metrics are reported on the test blocks only. Fitting on
a recording (its units, a feature's labels) is :class:`~lstmprobe.probes.StoreProbe`'s.

Both solve the penalties as one path, from the largest ``l1`` to the smallest, each warm
started from the previous solution on a working set of units (glmnet's strategy): the
penalised problem is solved on the units already in the set plus those whose gradient violates
the optimality (KKT) condition, then the condition is checked on every unit with one pass over
the train rows, and violators are added until there are none. On the working set, Newton steps
(one for the squared loss) reduce the problem to a penalised least-squares problem of the
working-set size, solved by scikit-learn's coordinate descent
(:func:`sklearn.linear_model.enet_path`). ``X`` is read in its own dtype (float32 stays
float32) and standardised on the fly; no full copy is made (:mod:`lstmprobe.probes._solver`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from lstmprobe.errors import FeatureError
from lstmprobe.features.base import is_binary
from lstmprobe.probes._solver import (
    WorkingSetPath,
    column_stats,
    direct_solutions,
    linear_scores,
    row_chunks,
)
from lstmprobe.probes.metrics import probe_metrics
from lstmprobe.probes.splits import BlockSplit, mask_runs

DEFAULT_GRID = (0.1, 0.03, 0.01, 0.003, 0.001)

# scikit-learn 1.6 renamed force_all_finite to ensure_all_finite
_FINITE = (
    "ensure_all_finite"
    if "ensure_all_finite" in inspect.signature(check_array).parameters
    else "force_all_finite"
)


def _checked(X: Any, finite: bool = True) -> np.ndarray:
    """``X`` as a 2-D array of float32 or float64 (no copy when it already is one);
    scikit-learn's ``ValueError`` / ``TypeError`` for anything else (sparse, complex, empty,
    and NaN or inf when ``finite``: a full pass over X, which ``fit`` makes cheaper itself)."""
    if hasattr(X, "iter_chunks"):
        raise FeatureError(
            "a probe takes arrays, not a recording: fit and apply it on a recording with "
            "StoreProbe.fit(store, feature, units=...), which reads the probe's units"
        )
    dtypes: Any = (np.float64, np.float32)
    return check_array(X, dtype=dtypes, input_name="X", **{_FINITE: finite})


def _labels(X: np.ndarray, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels as float64 (n,), and which are defined (not NaN)."""
    if y is None:
        raise FeatureError("fit needs labels y, one per row of X")
    y = np.asarray(y)
    if np.iscomplexobj(y):
        raise FeatureError("Complex data not supported: give real labels y")
    y = column_or_1d(y, warn=True).astype(np.float64)
    if y.shape != (X.shape[0],):
        raise FeatureError(
            f"fit needs X of shape (n, units) and y of shape (n,), got {X.shape} and {y.shape}"
        )
    return y, ~np.isnan(y)


def _kind(kind: str, y: np.ndarray, l1_ratio: float, grid: Sequence[float]) -> str:
    """The probe's kind, after checking the settings."""
    if kind == "auto":
        kind = "binary" if is_binary(y) else "continuous"
    if kind not in ("binary", "continuous"):
        raise FeatureError(f"kind must be 'auto', 'binary' or 'continuous', got {kind!r}")
    if not 0.0 <= float(l1_ratio) <= 1.0:
        raise FeatureError(f"l1_ratio must be between 0 and 1, got {l1_ratio!r}")
    if not grid or any(not float(lam) >= 0 for lam in grid):
        raise FeatureError(f"l1 must be one or more penalties >= 0, got {list(grid)!r}")
    return kind


def _effective(lam: float) -> float:
    return max(float(lam), 1e-12)


class _Linear(BaseEstimator):
    """What both probes share once fitted: scores, predictions, units by weight."""

    l1_ratio: float
    max_iter: int
    coef_: np.ndarray
    intercept_: float
    mean_: np.ndarray
    scale_: np.ndarray
    kind_: str
    n_features_in_: int

    def _solve(
        self,
        X: np.ndarray,
        y: np.ndarray,
        train: list[tuple[int, int]],
        kind: str,
        grid: Sequence[float],
    ) -> dict[float, tuple[np.ndarray, float]]:
        """Standardise on the ``train`` runs (``mean_``, ``scale_``) and solve at each penalty
        (keys: the penalties as solved, at least 1e-12)."""
        from threadpoolctl import threadpool_limits

        mean, std = column_stats(X, train)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise FeatureError("X holds NaN or infinite values; give finite activations")
        self.mean_ = mean
        self.scale_ = np.where(std > 0, std, 1.0)
        self.kind_ = kind
        self.n_features_in_ = X.shape[1]
        if kind == "binary":
            self.classes_ = np.array([0.0, 1.0])
        lams = sorted(map(_effective, grid), reverse=True)
        l1_ratio, max_iter = float(self.l1_ratio), int(self.max_iter)
        n_train = sum(b - a for a, b in train)
        # the products here are skinny or small: BLAS threads cost more than they give on a
        # busy machine, so they run on one thread
        with threadpool_limits(limits=1, user_api="blas"):
            if 2 * int((std > 0).sum()) > n_train:
                # wide (units near or above train rows): the working set would fill and its
                # Hessian turn singular; the data is small, so scikit-learn solves directly
                rows = np.concatenate([np.arange(a, b) for a, b in train])
                Xt = X if n_train == len(X) else X[rows]
                return direct_solutions(
                    Xt, y[rows], mean, self.scale_, kind, lams, l1_ratio, max_iter
                )
            path = WorkingSetPath(
                X, train, y[np.concatenate([np.arange(a, b) for a, b in train])],
                mean, self.scale_, std > 0, kind, l1_ratio, max_iter,
            )  # fmt: skip
            return {lam: path.solve(lam) for lam in lams}

    def _scores_of(self, X: np.ndarray, runs: list[tuple[int, int]]) -> np.ndarray:
        return linear_scores(X, runs, self.coef_, self.intercept_, self.mean_, self.scale_)

    def decision_function(self, X: Any) -> np.ndarray:
        """Linear score of each row (log-odds for binary probes, the prediction otherwise)."""
        check_is_fitted(self, "coef_")
        X = _checked(X)
        if X.shape[1] != self.n_features_in_:
            raise FeatureError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return self._scores_of(X, [(0, len(X))])

    def predict(self, X: Any) -> np.ndarray:
        """0/1 for binary probes (log-odds > 0), the predicted value for continuous ones."""
        s = self.decision_function(X)
        return (s > 0).astype(np.float64) if self.kind_ == "binary" else s

    def _binary(self) -> bool:
        return getattr(self, "kind_", getattr(self, "kind", "auto")) in ("binary", "auto")

    @available_if(_binary)
    def predict_proba(self, X: Any) -> np.ndarray:
        """(P(0), P(1)) of each row; binary probes only (absent on a continuous probe)."""
        p = expit(self.decision_function(X))
        return np.stack([1 - p, p], axis=1)

    def top_units(self, k: int | None = None, names: Sequence[str] | None = None) -> list[str]:
        """Columns by decreasing |weight| (non-zero weights only), as ``names`` (default:
        the column indices as strings)."""
        check_is_fitted(self, "coef_")
        order = [i for i in np.argsort(-np.abs(self.coef_), kind="stable") if self.coef_[i] != 0]
        names = [str(i) for i in range(len(self.coef_))] if names is None else list(names)
        return [names[i] for i in order[:k]]


class LinearProbe(_Linear):
    """Sparse linear probe: L1 / elastic-net logistic (binary) or linear (continuous) regression.

    A scikit-learn estimator: ``fit(X, y)`` fits every row with a label (rows whose label is
    NaN, undefined, are dropped) at the penalty ``l1``, with the inputs standardised by their
    mean and standard deviation. To choose ``l1`` on held-out blocks and report test metrics,
    use :class:`LinearProbeCV`.

    Parameters
    ----------
    kind : {"auto", "binary", "continuous"}
        "auto": binary when every label is 0 or 1.
    l1 : float
        Penalty per position: the objective is mean loss + l1 * (l1_ratio * |w|_1 +
        (1 - l1_ratio) / 2 * |w|^2), with the log loss (binary) or half the squared error
        (continuous) and an unpenalised intercept.
    l1_ratio : float
        1.0 is pure L1 (lasso); below 1 elastic net.
    max_iter : int
        Newton iterations (coordinate descent gets 10 times as many sweeps).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Weights on the standardised inputs (comparable across units).
    intercept_ : float
    kind_ : str
    classes_ : ndarray, binary only
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation.
    n_features_in_ : int

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 5)); y = (X[:, 2] > 0).astype(float)
    >>> probe = LinearProbe(l1=0.01).fit(X, y)
    >>> probe.top_units(1)
    ['2']
    """

    def __init__(
        self, kind: str = "auto", l1: float = 0.01, l1_ratio: float = 1.0, max_iter: int = 200
    ) -> None:
        self.kind = kind
        self.l1 = l1
        self.l1_ratio = l1_ratio
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any = None) -> LinearProbe:
        """Fit on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,)."""
        X = _checked(X, finite=False)  # checked by its statistics
        y, keep = _labels(X, y)
        if not keep.all():
            X, y = X[keep], y[keep]
        if len(y) == 0:
            raise FeatureError("every label is undefined (NaN): nothing to fit")
        kind = _kind(self.kind, y, self.l1_ratio, [self.l1])
        if kind == "binary" and len(np.unique(y)) < 2:
            raise FeatureError(
                f"y holds one class only ({len(y)} sample(s), label {y[0]:g}); a binary probe "
                "needs both 0 and 1"
            )
        self.coef_, self.intercept_ = self._solve(X, y, [(0, len(y))], kind, [self.l1])[
            _effective(self.l1)
        ]
        return self


class LinearProbeCV(_Linear):
    """A :class:`LinearProbe` whose penalty is chosen on held-out contiguous blocks.

    ``fit`` deals the rows (positions in corpus order) with a label to train / validation /
    test by contiguous blocks (``cv``, a :class:`~lstmprobe.probes.BlockSplit` by default);
    fits the train rows at every penalty of ``l1_grid`` (one warm-started path); keeps the
    one best on validation (AUC or R²); and computes ``test_metrics_`` on the test blocks
    only. Inputs are standardised with the train mean and standard deviation.

    Parameters
    ----------
    kind : {"auto", "binary", "continuous"}
    l1_grid : tuple of float
        Candidate penalties (one: no choice, the validation blocks are unused).
    l1_ratio : float
    cv : BlockSplit or scikit-learn splitter, optional
        The split: a :class:`BlockSplit` (train, validation, test), or any splitter whose
        first (train, validation) pair is used, with no test rows. Default ``BlockSplit()``.
    max_iter : int

    Attributes
    ----------
    coef_, intercept_, kind_, classes_, mean_, scale_, n_features_in_
        As :class:`LinearProbe`'s, at the chosen penalty.
    l1_ : float
        The penalty chosen.
    val_scores_ : dict of float to float
        Validation metric of each candidate ``l1``.
    test_metrics_ : dict
        Held-out metrics: ``auc`` and ``accuracy`` (binary) or ``r2`` and ``pearson``.
    train_metrics_ : dict
    split_ : ndarray of shape (n_samples,)
        0 train, 1 validation, 2 test, -1 where the label is undefined.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 5)); y = (X[:, 2] > 0).astype(float)
    >>> probe = LinearProbeCV(cv=BlockSplit(n_blocks=10)).fit(X, y)
    >>> probe.top_units(1), probe.test_metrics_["auc"] > 0.9
    (['2'], True)
    """

    def __init__(
        self,
        kind: str = "auto",
        l1_grid: tuple[float, ...] = DEFAULT_GRID,
        l1_ratio: float = 1.0,
        cv: Any = None,
        max_iter: int = 200,
    ) -> None:
        self.kind = kind
        self.l1_grid = l1_grid
        self.l1_ratio = l1_ratio
        self.cv = cv
        self.max_iter = max_iter

    def _parts(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        cv = BlockSplit() if self.cv is None else self.cv
        if hasattr(cv, "parts"):
            n_blocks = getattr(cv, "n_blocks", 1)
            if len(y) < n_blocks:
                raise FeatureError(
                    f"{len(y)} sample(s) with a label cannot be split into "
                    f"n_blocks={n_blocks} contiguous blocks; give at least {n_blocks}"
                )
            return np.asarray(cv.parts(len(y)), dtype=np.int8)
        train, val = next(iter(cv.split(X, y)))
        part = np.full(len(y), -1, dtype=np.int8)
        part[train], part[val] = 0, 1
        return part

    def fit(self, X: Any, y: Any = None) -> LinearProbeCV:
        """Fit on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,), rows in order."""
        X = _checked(X, finite=False)  # train rows checked by their statistics, others below
        y, keep = _labels(X, y)
        grid = list(self.l1_grid)
        kind = _kind(self.kind, y[keep], self.l1_ratio, grid)
        if not keep.all():
            X, y = X[keep], y[keep]
        part = self._parts(X, y)
        self.split_ = np.full(len(keep), -1, dtype=np.int8)
        self.split_[keep] = part
        tr, va, te = (part == 0), (part == 1), (part == 2)
        if kind == "binary":
            held_out = (
                [("train", tr), ("test", te)]
                if hasattr(self.cv or BlockSplit(), "parts")
                else [("train", tr)]
            )
            for name, m in held_out:
                values = np.unique(y[m])
                if len(values) < 2:
                    which = "no positives" if values.size == 0 or values[0] == 0 else "no negatives"
                    raise FeatureError(
                        f"the {name} blocks hold {which} ({int(m.sum())} positions, labels "
                        f"{values.tolist()}); the feature is too rare or clustered for a "
                        "block split: use a longer corpus or more blocks (n_blocks)"
                    )
        elif not tr.any():
            raise FeatureError("the split left no train positions: use more positions")
        runs_tr, runs_va, runs_te = mask_runs(tr), mask_runs(va), mask_runs(te)
        if not all(np.isfinite(X[a:b]).all() for a, b in row_chunks(runs_va + runs_te)):
            raise FeatureError("X holds NaN or infinite values; give finite activations")
        solutions = self._solve(X, y, runs_tr, kind, grid)
        best = None
        self.val_scores_: dict[float, float] = {}
        for lam in grid:
            coef, intercept = solutions[_effective(lam)]
            if va.any() and len(grid) > 1:
                pred = linear_scores(X, runs_va, coef, intercept, self.mean_, self.scale_)
                m = probe_metrics(kind, y[va], pred)
                val = m["auc"] if kind == "binary" else m["r2"]
                val = -math.inf if math.isnan(val) else val
            else:
                val = 0.0
            self.val_scores_[float(lam)] = val
            if best is None or val > best[0] + 1e-9:
                best = (val, float(lam), coef, intercept)
        if best is None:  # unreachable: the grid is not empty
            raise FeatureError("l1_grid is empty")
        _, self.l1_, self.coef_, self.intercept_ = best
        self.test_metrics_ = (
            probe_metrics(kind, y[te], self._scores_of(X, runs_te)) if te.any() else {}
        )
        self.train_metrics_ = probe_metrics(kind, y[tr], self._scores_of(X, runs_tr))
        return self
