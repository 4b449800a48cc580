"""Sparse linear probes: L1 / elastic-net logistic or linear regression on unit activations.

:class:`LinearProbe` is a scikit-learn style estimator. Rows are positions in corpus order;
train, validation and test are contiguous blocks of positions (:func:`block_split`, never single
characters: neighbours leak), the penalty is chosen on validation and metrics are reported on
the test blocks only.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from lstmprobe.errors import FeatureError, UnitError
from lstmprobe.features import Feature


def block_split(
    n: int,
    n_blocks: int = 20,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> np.ndarray:
    """Assign positions to train (0), validation (1) and test (2) by contiguous blocks.

    ``n`` positions are cut into ``n_blocks`` contiguous blocks, which are shuffled with ``seed``
    and dealt to the three parts by ``fractions`` (at least one block each when possible).

    Examples
    --------
    >>> split = block_split(10, n_blocks=5)
    >>> sorted(set(split.tolist()))
    [0, 1, 2]
    >>> bool((split[0::2] == split[1::2]).all())  # blocks of 2 positions stay together
    True
    """
    n_blocks = max(1, min(n_blocks, n))
    edges = np.linspace(0, n, n_blocks + 1).astype(np.int64)
    order = np.random.default_rng(seed).permutation(n_blocks)
    n_val = max(1, round(fractions[1] * n_blocks)) if n_blocks >= 3 else 0
    n_test = max(1, round(fractions[2] * n_blocks)) if n_blocks >= 3 else 0
    part = np.zeros(n_blocks, dtype=np.int8)
    part[order[:n_test]] = 2
    part[order[n_test : n_test + n_val]] = 1
    return np.repeat(part, np.diff(edges))


# --------------------------------------------------------------------------- the probe

#: at most this many rows per chunk in a pass over the positions (float32 sums stay short)
_CHUNK = 8192
#: values in the temporaries of one chunk: float32 copies, float64 ones (kept in cache)
_CHUNK_VALUES, _CHUNK_VALUES_64 = 1 << 21, 1 << 19
#: an inactive unit re-enters the working set when its gradient exceeds the penalty by this share
_KKT_SLACK = 1e-4
#: Newton stops when the predicted decrease of the objective is below this share of it
_NEWTON_TOL = 1e-12


def _metric(kind: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    if kind == "binary":
        if len(np.unique(y)) < 2:
            return {"auc": math.nan, "accuracy": math.nan}
        return {"auc": _auc(y > 0.5, pred), "accuracy": float(((pred > 0) == (y > 0.5)).mean())}
    r = np.corrcoef(y, pred)[0, 1] if np.std(pred) > 0 and np.std(y) > 0 else 0.0
    return {"r2": _r2(y, pred), "pearson": float(r)}


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC: the chance that a positive scores above a negative, ties counting one half.

    The same number as ``sklearn.metrics.roc_auc_score`` (Mann-Whitney U from mid-ranks),
    without its input checks, which cost more than the sort on probe-sized inputs.
    """
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    u = float(rankdata(score)[positive].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination, as ``sklearn.metrics.r2_score`` (1 or 0 for constant y)."""
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


class LinearProbe(BaseEstimator):
    """Sparse linear probe: L1 / elastic-net logistic (binary) or linear (continuous) regression.

    Rows are positions in corpus order. ``fit`` cuts them into ``n_blocks`` contiguous blocks and
    deals those to train / validation / test (``block_split``, seeded); the penalty ``l1`` is
    chosen on validation (from ``l1_grid`` when ``l1`` is None), the model is fitted on train,
    and ``test_metrics_`` are computed on the test blocks only. Inputs are standardised with the
    train mean and standard deviation.

    The penalties are solved as one path, from the largest ``l1`` to the smallest, each warm
    started from the previous solution on a working set of units (glmnet's strategy): the
    penalised problem is solved on the units already in the set plus those whose gradient
    violates the optimality (KKT) condition, then the condition is checked on every unit with
    one pass over the train rows, and violators are added until there are none. On the
    working set, Newton steps (one for the squared loss) reduce the problem to a penalised
    least-squares problem of the working-set size, solved by scikit-learn's coordinate
    descent (:func:`sklearn.linear_model.enet_path`). ``X`` is read in its own dtype
    (float32 stays float32) and standardised on the fly; no full copy is made.

    Parameters
    ----------
    kind : {"auto", "binary", "continuous"}
        "auto": binary when every label is 0 or 1.
    l1 : float or None
        Penalty per position: the objective is mean loss + l1 * (l1_ratio * |w|_1 +
        (1 - l1_ratio) / 2 * |w|^2), with the log loss (binary) or half the squared error
        (continuous) and an unpenalised intercept. None: chosen on validation from ``l1_grid``.
    l1_ratio : float
        1.0 is pure L1 (lasso); below 1 elastic net.
    l1_grid : tuple of float
        Candidates for ``l1``.
    n_blocks : int
        Contiguous blocks for the split.
    fractions : tuple of float
        Train, validation, test shares of the blocks.
    random_state : int
        Seed of the block shuffle.
    max_iter : int
        Newton iterations per penalty (coordinate descent gets 10 times as many sweeps).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Weights on the standardised inputs (comparable across units).
    intercept_ : float
    l1_ : float
        The penalty used.
    kind_ : str
    classes_ : ndarray, binary only
    mean_, scale_ : ndarray of shape (n_features,)
        Standardisation.
    units_ : list of str
        Unit names when fitted on a store, else column indices as strings.
    store_ : dict or None
        The recording a probe was fitted on (path, model and corpus hashes, and the layout:
        units per dataset), None when fitted on an array. Applied to a store
        (``decision_function(store)``), the probe checks it: datasets that lack its units are
        an error, a recording of another model a warning (the same index may be another unit).
    val_scores_ : dict of float to float
        Validation metric of each candidate ``l1``.
    test_metrics_ : dict
        Held-out metrics: ``auc`` and ``accuracy`` (binary) or ``r2`` and ``pearson``.
    split_ : ndarray of shape (n_samples,)
        0 train, 1 validation, 2 test.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 5)); y = (X[:, 2] > 0).astype(float)
    >>> probe = LinearProbe(n_blocks=10).fit(X, y)
    >>> int(np.argmax(np.abs(probe.coef_)))
    2
    >>> probe.test_metrics_["auc"] > 0.9
    True
    """

    def __init__(
        self,
        kind: str = "auto",
        l1: float | None = None,
        l1_ratio: float = 1.0,
        l1_grid: tuple[float, ...] = (0.1, 0.03, 0.01, 0.003, 0.001),
        n_blocks: int = 20,
        fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
        random_state: int = 0,
        max_iter: int = 200,
    ) -> None:
        self.kind = kind
        self.l1 = l1
        self.l1_ratio = l1_ratio
        self.l1_grid = l1_grid
        self.n_blocks = n_blocks
        self.fractions = fractions
        self.random_state = random_state
        self.max_iter = max_iter

    # -- fitting

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        units: Sequence[str] | None = None,
        max_positions: int | None = 200_000,
    ) -> LinearProbe:
        """Fit on an array ``X`` (n_samples, n_features) with labels ``y``, or on a store.

        With an :class:`~lstmprobe.store.ActivationStore` as ``X``, ``y`` is a feature spec
        (or a label array over the store's positions) and ``units`` the unit names to use
        (default: every unit); positions where the feature is undefined are dropped and at most
        ``max_positions`` positions are used (whole contiguous blocks, chosen with the seed).
        float32 and float64 arrays are used as they are (not copied when every label is defined).
        """
        if hasattr(X, "iter_chunks"):
            return self._fit_store(X, y, units, max_positions)
        X = _checked(X, finite=False)  # checked in _fit_blocks, with the train statistics
        if y is None:
            raise FeatureError("LinearProbe.fit needs labels y, one per row of X")
        y = np.asarray(y)
        if np.iscomplexobj(y):
            raise FeatureError("Complex data not supported: give real labels y")
        y = column_or_1d(y, warn=True).astype(np.float64)
        if y.shape != (X.shape[0],):
            raise FeatureError(
                f"LinearProbe.fit needs X of shape (n, units) and y of shape (n,), got "
                f"{X.shape} and {y.shape}"
            )
        keep = ~np.isnan(y)
        if int(keep.sum()) < self.n_blocks:
            raise FeatureError(
                f"{int(keep.sum())} sample(s) with a label cannot be split into "
                f"n_blocks={self.n_blocks} contiguous blocks; give at least {self.n_blocks}"
            )
        split = np.full(len(y), -1, dtype=np.int8)
        split[keep] = block_split(int(keep.sum()), self.n_blocks, self.fractions, self.random_state)
        self.units_ = [str(i) for i in range(X.shape[1])]
        self.store_ = None
        if not keep.all():
            X, y = X[keep], y[keep]
        return self._fit_split(X, y, split[keep], split)

    def _fit_store(
        self, store: Any, y: Any, units: Sequence[str] | None, max_positions: int | None
    ) -> LinearProbe:
        rows = sample_positions(store.n_positions, max_positions, self.n_blocks, self.random_state)
        if isinstance(y, (str, Feature)):
            from lstmprobe.scores import store_labels

            (labels,) = store_labels(store, [y])
            yy = labels.at(rows).astype(np.float64)
        else:
            values = np.asarray(y, dtype=np.float32)
            if values.shape != (store.n_positions,):
                raise FeatureError(
                    f"labels have shape {values.shape}, the store has {store.n_positions} positions"
                )
            yy = values[rows].astype(np.float64)
        units = list(store.units() if units is None else units)
        X = gather_units(store, units, rows)
        keep = ~np.isnan(yy)
        split = np.full(len(rows), -1, dtype=np.int8)
        split[keep] = block_split(int(keep.sum()), self.n_blocks, self.fractions, self.random_state)
        self.units_ = units
        self.store_ = _recording(store, units)
        if not keep.all():
            X, yy = X[keep], yy[keep]
        return self._fit_split(X, yy, split[keep], split)

    def _store_rows(self, store: Any) -> np.ndarray:
        """The probe's units over every position of ``store``, after checking it fits."""
        check_is_fitted(self, "coef_")
        mine = getattr(self, "store_", None)
        if mine is None:
            raise FeatureError(
                "this probe was fitted on an array, so it has no unit names to read from a "
                "store; fit it on a store (probe.fit(store, feature)) or pass an array"
            )
        other = _recording(store, self.units_)
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
        return gather_units(store, self.units_, np.arange(store.n_positions))

    def _fit_split(
        self, X: np.ndarray, y: np.ndarray, part: np.ndarray, full_split: np.ndarray
    ) -> LinearProbe:
        from threadpoolctl import threadpool_limits

        # the products here are skinny or small: BLAS threads cost more than they give (10x
        # slower on a busy 2-core machine), so they run on one thread
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit_blocks(X, y, part, full_split)

    def _fit_blocks(
        self, X: np.ndarray, y: np.ndarray, part: np.ndarray, full_split: np.ndarray
    ) -> LinearProbe:
        kind = self.kind
        if kind == "auto":
            kind = "binary" if np.isin(y, (0.0, 1.0)).all() else "continuous"
        if kind not in ("binary", "continuous"):
            raise FeatureError(f"kind must be 'auto', 'binary' or 'continuous', got {kind!r}")
        if not 0.0 <= float(self.l1_ratio) <= 1.0:
            raise FeatureError(f"l1_ratio must be between 0 and 1, got {self.l1_ratio!r}")
        grid = [self.l1] if self.l1 is not None else list(self.l1_grid)
        if not grid or any(not float(lam) >= 0 for lam in grid):
            raise FeatureError(f"l1 must be one or more penalties >= 0, got {grid!r}")
        self.kind_ = kind
        self.split_ = full_split
        self.n_features_in_ = X.shape[1]
        tr, va, te = (part == 0), (part == 1), (part == 2)
        if kind == "binary":
            for name, m in (("train", tr), ("test", te)):
                values = np.unique(y[m])
                if len(values) < 2:
                    which = "no positives" if values.size == 0 or values[0] == 0 else "no negatives"
                    raise FeatureError(
                        f"the {name} blocks hold {which} ({int(m.sum())} positions, labels "
                        f"{values.tolist()}); the feature is too rare or clustered for a "
                        "block split: use a longer corpus or more blocks (n_blocks)"
                    )
            self.classes_ = np.array([0.0, 1.0])
        elif not tr.any():
            raise FeatureError("the split left no train positions: use more positions")
        runs_tr, runs_va, runs_te = _runs(tr), _runs(va), _runs(te)
        mean, std = _column_stats(X, runs_tr)
        finite = np.isfinite(mean).all() and np.isfinite(std).all()
        # the train rows are checked by their statistics; the others once here
        if not (finite and all(np.isfinite(X[a:b]).all() for a, b in _chunks(runs_va + runs_te))):
            raise FeatureError("X holds NaN or infinite values; give finite activations")
        self.mean_ = mean
        self.scale_ = np.where(std > 0, std, 1.0)

        # the path, largest penalty first; each solution warm-starts the next
        def effective(lam: float) -> float:
            return max(float(lam), 1e-12)

        lams = sorted(map(effective, grid), reverse=True)
        if 2 * int((std > 0).sum()) > int(tr.sum()):
            # wide (units near or above train rows): the working set would fill and its Hessian
            # turn singular; the data is small, so scikit-learn solves on all units directly
            solutions = self._direct(X[tr], y[tr], kind, lams)
        else:
            path = _Path(X, runs_tr, y[tr], self.mean_, self.scale_, std > 0, kind, self)
            solutions = {lam: path.solve(lam) for lam in lams}
            del path  # the working-set columns

        best = None
        self.val_scores_ = {}
        for lam in grid:
            coef, intercept = solutions[effective(lam)]
            if va.any() and len(grid) > 1:
                pred = _scores(X, runs_va, coef, intercept, self.mean_, self.scale_)
                m = _metric(kind, y[va], pred)
                val = m["auc"] if kind == "binary" else m["r2"]
                val = -math.inf if math.isnan(val) else val
            else:
                val = 0.0
            self.val_scores_[float(lam)] = val
            if best is None or val > best[0] + 1e-9:
                best = (val, float(lam), coef, intercept)
        assert best is not None
        _, self.l1_, self.coef_, self.intercept_ = best
        self.test_metrics_ = (
            _metric(
                kind, y[te], _scores(X, runs_te, self.coef_, self.intercept_, mean, self.scale_)
            )
            if te.any()
            else {}
        )
        self.train_metrics_ = _metric(
            kind, y[tr], _scores(X, runs_tr, self.coef_, self.intercept_, mean, self.scale_)
        )
        return self

    def _direct(
        self, X: np.ndarray, y: np.ndarray, kind: str, lams: list[float]
    ) -> dict[float, tuple[np.ndarray, float]]:
        """Solutions for each penalty by scikit-learn on all (standardised) units at once."""
        from sklearn.linear_model import ElasticNet, LogisticRegression

        Z = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        out: dict[float, tuple[np.ndarray, float]] = {}
        for lam in lams:
            if kind == "binary":
                # C scales the summed loss: mean loss + lam * penalty <=> C = 1 / (lam * n);
                # liblinear penalises the intercept too, so it gets a large scaling
                pure = self.l1_ratio >= 1.0
                model: Any = LogisticRegression(
                    C=1.0 / (lam * len(y)),
                    l1_ratio=float(self.l1_ratio),
                    solver="liblinear" if pure else "saga",
                    intercept_scaling=100.0,
                    max_iter=self.max_iter,
                    tol=1e-4,
                )
            else:
                model = ElasticNet(
                    alpha=lam,
                    l1_ratio=float(self.l1_ratio),
                    max_iter=self.max_iter * 10,
                    tol=1e-4,
                    precompute=True,
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a ConvergenceWarning leaves the last iterate
                model.fit(Z, y)
            coef = np.asarray(model.coef_, dtype=np.float64).reshape(-1)
            out[lam] = (coef, float(np.asarray(model.intercept_).reshape(-1)[0]))
        return out

    # -- using it

    def decision_function(self, X: Any) -> np.ndarray:
        """Linear score of each row (log-odds for binary probes, the prediction otherwise).

        ``X`` may be an :class:`~lstmprobe.store.ActivationStore` for a probe fitted on one:
        the probe's units are read at every position (see ``store_``).
        """
        check_is_fitted(self, "coef_")
        if hasattr(X, "iter_chunks"):
            X = self._store_rows(X)
        X = _checked(X)
        if X.shape[1] != self.n_features_in_:
            raise FeatureError(
                f"X has {X.shape[1]} features, but LinearProbe is expecting "
                f"{self.n_features_in_} features as input"
            )
        return _scores(X, [(0, len(X))], self.coef_, self.intercept_, self.mean_, self.scale_)

    def predict(self, X: Any) -> np.ndarray:
        """0/1 for binary probes (log-odds > 0), the predicted value for continuous ones."""
        s = self.decision_function(X)
        return (s > 0).astype(np.float64) if self.kind_ == "binary" else s

    def _binary(self) -> bool:
        return getattr(self, "kind_", self.kind) in ("binary", "auto")

    @available_if(_binary)
    def predict_proba(self, X: Any) -> np.ndarray:
        """(P(0), P(1)) of each row; binary probes only (absent on a continuous probe)."""
        p = expit(self.decision_function(X))
        return np.stack([1 - p, p], axis=1)

    def top_units(self, k: int | None = None) -> list[str]:
        """Units by decreasing |weight| (non-zero weights only)."""
        order = np.argsort(-np.abs(self.coef_), kind="stable")
        order = [i for i in order if self.coef_[i] != 0]
        return [self.units_[i] for i in order[:k]]


class ProbeStoreWarning(UserWarning):
    """A probe is applied to a recording of another model than the one it was fitted on."""


def _recording(store: Any, units: Sequence[str]) -> dict[str, Any]:
    """What a probe remembers of the store it reads: path, hashes, units per dataset."""
    from lstmprobe.store import parse_unit

    keys = list(dict.fromkeys(parse_unit(u)[0] for u in units))
    return {
        "path": str(store.path),
        "model_sha256": str(getattr(store, "model_sha256", "")),
        "corpus_sha256": str(getattr(store, "corpus_sha256", "")),
        "layout": {k: (store.n_units(k) if k in store.keys else 0) for k in keys},
    }


# --------------------------------------------------------------------------- passes over rows


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
    return check_array(X, dtype=(np.float64, np.float32), input_name="X", **{_FINITE: finite})


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in ``mask``, in order."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _chunks(runs: Sequence[tuple[int, int]], width: int = 1, values: int = _CHUNK_VALUES) -> Any:
    """The rows of ``runs`` as (start, stop) pieces, in order, each of at most ``_CHUNK`` rows
    and (when possible) at most ``values`` values of ``width`` columns."""
    size = max(16, min(_CHUNK, values // max(width, 1)))
    for a, b in runs:
        for s in range(a, b, size):
            yield s, min(b, s + size)


def _column_stats(X: np.ndarray, runs: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 0) of each column over the rows of ``runs``.

    One pass in ``X``'s dtype, chunk by chunk: sums of the values and of their squares after
    subtracting the first chunk's mean (so no cancellation), accumulated in float64.
    """
    chunks = list(_chunks(runs, X.shape[1]))
    a, b = chunks[0]
    shift = X[a:b].mean(0, dtype=np.float64).astype(X.dtype)
    s1 = np.zeros(X.shape[1])
    s2 = np.zeros(X.shape[1])
    rows = max(b - a for a, b in chunks)
    ones = np.ones(rows, dtype=X.dtype)
    buf = np.empty((rows, X.shape[1]), dtype=X.dtype)
    n = 0
    # a unit beyond ~1e19 (float32) overflows its squares: its scale is inf, so it reads as 0
    with np.errstate(over="ignore", invalid="ignore"):
        for a, b in chunks:
            d = np.subtract(X[a:b], shift, out=buf[: b - a])
            s1 += ones[: b - a] @ d
            np.multiply(d, d, out=d)
            s2 += ones[: b - a] @ d
            n += b - a
        m1 = s1 / n
        return shift + m1, np.sqrt(np.maximum(s2 / n - m1 * m1, 0.0))


def _rdot(r: np.ndarray, M: np.ndarray, runs: Sequence[tuple[int, int]]) -> np.ndarray:
    """``r @ M[rows]`` in float64, where ``rows`` are those of ``runs`` in order (chunked)."""
    out = np.zeros(M.shape[1])
    rr = r.astype(M.dtype, copy=False)
    i = 0
    for a, b in _chunks(runs):
        out += rr[i : i + b - a] @ M[a:b]
        i += b - a
    return out


def _standardised(
    X: np.ndarray,
    runs: Sequence[tuple[int, int]],
    cols: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    out: np.ndarray,
) -> None:
    """Write the standardised columns ``cols`` at the rows of ``runs`` into ``out``."""
    m, s = mean[cols], scale[cols]
    i = 0
    for a, b in _chunks(runs, len(cols), _CHUNK_VALUES_64):
        z = X[a:b].take(cols, axis=1).astype(np.float64)
        z -= m
        z /= s
        out[i : i + b - a] = z
        i += b - a


def _scores(
    X: np.ndarray,
    runs: Sequence[tuple[int, int]],
    coef: np.ndarray,
    intercept: float,
    mean: np.ndarray,
    scale: np.ndarray,
) -> np.ndarray:
    """Linear scores (float64) of the rows of ``runs``, reading only the non-zero weights."""
    nz = np.flatnonzero(coef)
    out = np.full(sum(b - a for a, b in runs), float(intercept))
    w, m, s = coef[nz], mean[nz], scale[nz]
    i = 0
    for a, b in _chunks(runs if nz.size else (), nz.size, _CHUNK_VALUES_64):
        z = X[a:b].take(nz, axis=1).astype(np.float64)
        z -= m
        z /= s
        out[i : i + b - a] += z @ w
        i += b - a
    return out


# --------------------------------------------------------------------------- the solver


class _Path:
    """Solutions of the penalised problem for decreasing penalties, on a growing working set.

    Holds the train rows of ``X`` (as runs, never copied), the standardised working-set
    columns ``Z`` (train rows x working set, ``X``'s dtype), the weights on them, the intercept,
    the linear predictor ``eta``, the gradient of the mean loss w.r.t. every unit, and the
    Hessian of the mean loss on the working set (kept while it predicts the steps well).
    """

    def __init__(
        self,
        X: np.ndarray,
        runs: list[tuple[int, int]],
        y: np.ndarray,
        mean: np.ndarray,
        scale: np.ndarray,
        varies: np.ndarray,
        kind: str,
        probe: LinearProbe,
    ) -> None:
        self.X, self.runs, self.y, self.mean, self.scale = X, runs, y, mean, scale
        self.varies = varies  # constant units never enter
        self.binary = kind == "binary"
        self.l1_ratio = float(probe.l1_ratio)
        self.max_iter = max(1, int(probe.max_iter))
        self.n = len(y)
        self.cols = np.empty(0, dtype=np.int64)
        self.in_set = np.zeros(X.shape[1], dtype=bool)
        # Z, column-major with room for more columns (unused columns are never touched)
        self._buf = np.empty((self.n, 0), dtype=X.dtype, order="F")
        self.w = np.empty(0)
        ybar = float(y.mean())
        self.b = math.log(ybar / (1 - ybar)) if self.binary else ybar  # the intercept-only fit
        self.eta = np.full(self.n, self.b)
        self.grad = self._full_gradient()
        # Hessian of the mean loss in (w, b): H (weights), h_wb (weights x intercept), h_bb,
        # computed with the per-row weights hv (None: the squared loss, all ones)
        self.H = np.zeros((0, 0))
        self.h_wb = np.zeros(0)
        self.h_bb = 1.0
        self.hv: np.ndarray | None = None
        self._hessian_at_eta = False
        self._factor: tuple[int, _Quadratic] | None = None
        self._version = 0  # bumped whenever H changes

    @property
    def Z(self) -> np.ndarray:
        return self._buf[:, : len(self.cols)]

    # -- the loss (mean over train rows)

    def _loss(self, eta: np.ndarray) -> float:
        if self.binary:
            return float(np.mean(np.logaddexp(0.0, eta) - self.y * eta))
        return 0.5 * float(np.mean((eta - self.y) ** 2))

    def _residual(self, eta: np.ndarray) -> np.ndarray:
        """d loss_i / d eta_i."""
        return (expit(eta) - self.y) if self.binary else (eta - self.y)

    def _full_gradient(self) -> np.ndarray:
        """Gradient of the mean loss w.r.t. every standardised weight: one pass over X."""
        r = self._residual(self.eta)
        return (_rdot(r, self.X, self.runs) - self.mean * r.sum()) / self.scale / self.n

    def _update_hessian(self, refresh: bool) -> None:
        """Extend the Hessian to new working-set columns (same row weights), or recompute it
        at the current point when ``refresh``."""
        n, Z = self.n, self.Z
        m = Z.shape[1]
        if refresh and self.binary and not self._hessian_at_eta:
            p = expit(self.eta)
            self.hv = np.maximum(p * (1 - p), 1e-12)
            self.h_bb = float(self.hv.mean())
            self.H, self.h_wb = np.zeros((0, 0)), np.zeros(0)
            self._hessian_at_eta = True
        start = self.H.shape[0]
        if start == m:
            return
        sv = None if self.hv is None else np.sqrt(self.hv).astype(Z.dtype)
        new = np.zeros((m - start, m))
        for a, b in _chunks([(0, n)], m):
            B = Z[a:b] if sv is None else Z[a:b] * sv[a:b, None]
            new += B.T @ B if start == 0 else B[:, start:].T @ B
        new /= n
        H = np.empty((m, m))
        H[:start, :start] = self.H
        H[start:] = new
        H[:start, start:] = new[:, :start].T
        v = np.ones(n) if self.hv is None else self.hv
        self.H = H
        self.h_wb = np.concatenate([self.h_wb, _rdot(v, Z[:, start:], [(0, n)]) / n])
        self._version += 1

    def _add(self, new: np.ndarray) -> None:
        """Add units ``new`` to the working set (weight 0)."""
        m, k = len(self.cols), len(new)
        if m + k > self._buf.shape[1]:
            buf = np.empty((self.n, max(2 * (m + k), 16)), dtype=self._buf.dtype, order="F")
            buf[:, :m] = self._buf[:, :m]
            self._buf = buf
        _standardised(self.X, self.runs, new, self.mean, self.scale, self._buf[:, m : m + k])
        self.cols = np.concatenate([self.cols, new])
        self.w = np.concatenate([self.w, np.zeros(k)])
        self.in_set[new] = True

    # -- the path

    def solve(self, lam: float) -> tuple[np.ndarray, float]:
        """Solve at ``lam``, warm-started: full-length weights and the intercept."""
        limit = lam * self.l1_ratio * (1 + _KKT_SLACK)
        first = True
        while True:
            new = np.flatnonzero((np.abs(self.grad) > limit) & self.varies & ~self.in_set)
            if new.size == 0 and not first:
                break
            self._add(new)
            self._newton(lam)
            self.grad = self._full_gradient()
            first = False
        coef = np.zeros(self.X.shape[1])
        coef[self.cols] = self.w
        return coef, self.b

    def _penalty(self, lam: float, w: np.ndarray) -> float:
        ratio = self.l1_ratio
        return lam * (ratio * float(np.abs(w).sum()) + 0.5 * (1 - ratio) * float(w @ w))

    def _newton(self, lam: float) -> None:
        """Proximal Newton steps on the working set (glmnet's outer loop) with a line search.

        Each step minimises the quadratic model of the loss plus the penalty; the intercept is
        eliminated from the model exactly, which leaves a penalised least-squares problem in
        the working-set weights for scikit-learn's coordinate descent. The Hessian is kept
        (not recomputed) while the full step decreases the objective as the model predicts.
        """
        n, Z = self.n, self.Z
        f = self._loss(self.eta) + self._penalty(lam, self.w)
        tol = _NEWTON_TOL * max(abs(f), 1e-12)
        refresh = self.H.shape[0] == 0
        for _ in range(self.max_iter):
            self._update_hessian(refresh)
            H, h_wb, h_bb = self.H, self.h_wb, self.h_bb
            r = self._residual(self.eta)
            g_w = _rdot(r, Z, [(0, n)]) / n
            g_b = float(r.mean())
            w_new = self.w
            if self.w.size:
                if self._factor is None or self._factor[0] != self._version:
                    # db minimised out: Hc is the Hessian of the weights alone
                    self._factor = (self._version, _Quadratic(H - np.outer(h_wb, h_wb) / h_bb))
                w_new = self._factor[1].solve(
                    self._factor[1].H @ self.w - (g_w - h_wb * (g_b / h_bb)),
                    self.w,
                    lam,
                    self.l1_ratio,
                    10 * self.max_iter,
                    gap=1e-3 * tol,
                )
            dw = w_new - self.w
            db = -(g_b + float(h_wb @ dw)) / h_bb
            pen = self._penalty(lam, w_new) - self._penalty(lam, self.w)
            decrease = float(g_w @ dw) + g_b * db + pen
            if decrease >= -tol:
                return
            model = decrease + 0.5 * (float(dw @ H @ dw) + 2 * db * float(h_wb @ dw) + h_bb * db**2)
            deta = np.add(Z @ dw.astype(Z.dtype), db, dtype=np.float64) if dw.any() else db
            t = 1.0
            while True:
                eta = self.eta + t * deta
                w = self.w + t * dw
                f_new = self._loss(eta) + self._penalty(lam, w)
                if f_new <= f + 1e-4 * t * decrease:
                    break
                t *= 0.5
                if t < 1e-10:
                    return  # no descent left at this precision
            self.eta, self.w, self.b = eta, w, self.b + t * db
            self._hessian_at_eta = False
            done = f - f_new <= tol
            # a stale Hessian is kept while the full step does what its model predicted
            refresh = t < 1 or not 1.25 * model <= f_new - f <= 0.75 * model
            f = f_new
            if done or (not self.binary and t == 1.0):  # the squared loss is its own model
                return


class _Quadratic:
    """argmin_w 1/2 w'Hw - q'w + lam * (l1_ratio |w|_1 + (1 - l1_ratio) / 2 |w|^2), for any q.

    ``H`` (positive semi-definite) is factorised once as A'A / k with k rows; each problem is
    then the elastic net on (A, b) with A'b / k = q, solved by scikit-learn's coordinate descent
    (:func:`sklearn.linear_model.enet_path`).
    """

    def __init__(self, H: np.ndarray) -> None:
        self.H = H
        self.A: np.ndarray | None = None  # None: H is 0, every weight is 0
        self.L: np.ndarray | None = None  # H = L L' (Cholesky) ...
        self.root = self.vecs = np.empty(0)  # ... or H ~ vecs diag(root^2) vecs' (eigen)
        top = float(np.max(np.diag(H)))
        if top <= 0:
            return
        try:
            L = np.linalg.cholesky(H)
            if float(np.min(np.diag(L))) ** 2 > 1e-10 * top:
                self.L, self.k = L, len(H)
                self.A = math.sqrt(self.k) * L.T
        except np.linalg.LinAlgError:
            pass
        if self.A is None:  # singular (duplicate units): keep the range of H
            vals, vecs = np.linalg.eigh(H)
            keep = vals > 1e-10 * top
            self.k = int(keep.sum())
            self.root, self.vecs = np.sqrt(vals[keep]), vecs[:, keep]
            self.A = np.asfortranarray(math.sqrt(self.k) * (self.root[:, None] * self.vecs.T))
        self.gram = np.ascontiguousarray(self.A.T @ self.A)

    def solve(
        self, q: np.ndarray, w0: np.ndarray, lam: float, l1_ratio: float, max_iter: int, gap: float
    ) -> np.ndarray:
        """The minimiser, warm-started at ``w0``; coordinate descent stops when its duality gap
        (per row, in the units of the objective) is below ``gap``."""
        from scipy.linalg import solve_triangular
        from sklearn import config_context
        from sklearn.linear_model import enet_path

        if self.A is None:
            return np.zeros_like(w0)
        if self.L is not None:
            b = math.sqrt(self.k) * solve_triangular(self.L, q, lower=True)
        else:
            b = math.sqrt(self.k) * (self.vecs.T @ q) / self.root
        # enet_path's tolerance is relative to |b|^2, its gap summed over the k rows
        tol = min(1e-4, max(1e-13, gap * self.k / max(float(b @ b), 1e-300)))
        # the inputs are built here, valid by construction: skipping scikit-learn's checks
        # makes a call 10x cheaper, which matters for small probes (hundreds of calls)
        with warnings.catch_warnings(), config_context(skip_parameter_validation=True):
            warnings.simplefilter("ignore")  # a ConvergenceWarning leaves the last iterate
            _, coefs, _ = enet_path(
                self.A,
                b,
                l1_ratio=l1_ratio,
                alphas=[lam],
                precompute=self.gram,
                Xy=self.A.T @ b,
                coef_init=w0.copy(),  # updated in place by the solver
                max_iter=max_iter,
                tol=tol,
                check_input=False,
            )
        return np.asarray(coefs, dtype=np.float64)[:, 0]


# --------------------------------------------------------------------------- data for probes


def sample_positions(
    n: int, max_positions: int | None, n_blocks: int = 20, seed: int = 0
) -> np.ndarray:
    """Positions used for probes: all, or whole contiguous windows totalling ``max_positions``.

    With more positions than ``max_positions`` the corpus is cut into ``4 * n_blocks`` windows
    and a seeded random subset of them (in corpus order) is taken, so memory stays bounded by
    ``max_positions`` however long the corpus.
    """
    if max_positions is None or n <= max_positions:
        return np.arange(n, dtype=np.int64)
    windows = max(n_blocks * 4, 1)
    size = max(1, n // windows)
    take = max(1, min(windows, max_positions // size))
    chosen = np.sort(np.random.default_rng(seed).choice(windows, size=take, replace=False))
    return np.concatenate([np.arange(c * size, (c + 1) * size) for c in chosen]).astype(np.int64)


def gather_units(store: Any, units: Sequence[str], rows: np.ndarray) -> np.ndarray:
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


def runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """Sorted positions as contiguous ``[start, stop)`` runs.

    Examples
    --------
    >>> runs(np.array([3, 4, 5, 9, 10]))
    [(3, 6), (9, 11)]
    """
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts, ends = np.r_[0, breaks], np.r_[breaks, len(rows)]
    return [(int(rows[s]), int(rows[e - 1]) + 1) for s, e in zip(starts, ends)]
