"""Sparse linear probes: L1 / elastic-net logistic or linear regression on unit activations.

:class:`LinearProbe` is a scikit-learn style estimator. Rows are positions in corpus order;
train, validation and test are contiguous blocks of positions (:func:`block_split`, never single
characters: neighbours leak), the penalty is chosen on validation and metrics are reported on
the test blocks only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from lstmprobe.errors import FeatureError
from lstmprobe.features import Feature, get_feature


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


def _metric(kind: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import r2_score, roc_auc_score

    if kind == "binary":
        if len(np.unique(y)) < 2:
            return {"auc": math.nan, "accuracy": math.nan}
        return {
            "auc": float(roc_auc_score(y, pred)),
            "accuracy": float(((pred > 0) == (y > 0.5)).mean()),
        }
    r = np.corrcoef(y, pred)[0, 1] if np.std(pred) > 0 and np.std(y) > 0 else 0.0
    return {"r2": float(r2_score(y, pred)), "pearson": float(r)}


class LinearProbe(BaseEstimator):
    """Sparse linear probe: L1 / elastic-net logistic (binary) or linear (continuous) regression.

    Rows are positions in corpus order. ``fit`` cuts them into ``n_blocks`` contiguous blocks and
    deals those to train / validation / test (``block_split``, seeded); the penalty ``l1`` is
    chosen on validation (from ``l1_grid`` when ``l1`` is None), the model is fitted on train,
    and ``test_metrics_`` are computed on the test blocks only. Inputs are standardised with the
    train mean and standard deviation.

    Parameters
    ----------
    kind : {"auto", "binary", "continuous"}
        "auto": binary when every label is 0 or 1.
    l1 : float or None
        Penalty per position: the objective is mean loss + l1 * (l1_ratio * |w|_1 +
        (1 - l1_ratio) / 2 * |w|^2). None: chosen on validation from ``l1_grid``.
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
        Solver iterations.

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
        """
        if hasattr(X, "iter_chunks"):
            return self._fit_store(X, y, units, max_positions)
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or y.shape != (X.shape[0],):
            raise FeatureError(
                f"LinearProbe.fit needs X of shape (n, units) and y of shape (n,), got "
                f"{X.shape} and {y.shape}"
            )
        keep = ~np.isnan(y)
        split = np.full(len(y), -1, dtype=np.int8)
        split[keep] = block_split(int(keep.sum()), self.n_blocks, self.fractions, self.random_state)
        self.units_ = [str(i) for i in range(X.shape[1])]
        return self._fit_split(X[keep], y[keep], split[keep], split)

    def _fit_store(
        self, store: Any, y: Any, units: Sequence[str] | None, max_positions: int | None
    ) -> LinearProbe:
        if isinstance(y, (str, Feature)):
            values = get_feature(y).labels(store.text, store.sequences)
        else:
            values = np.asarray(y, dtype=np.float32)
            if values.shape != (store.n_positions,):
                raise FeatureError(
                    f"labels have shape {values.shape}, the store has {store.n_positions} positions"
                )
        units = list(store.units() if units is None else units)
        rows = sample_positions(store.n_positions, max_positions, self.n_blocks, self.random_state)
        X = gather_units(store, units, rows)
        yy = values[rows].astype(np.float64)
        keep = ~np.isnan(yy)
        split = np.full(len(rows), -1, dtype=np.int8)
        split[keep] = block_split(int(keep.sum()), self.n_blocks, self.fractions, self.random_state)
        self.units_ = units
        return self._fit_split(X[keep].astype(np.float64), yy[keep], split[keep], split)

    def _fit_split(
        self, X: np.ndarray, y: np.ndarray, part: np.ndarray, full_split: np.ndarray
    ) -> LinearProbe:
        kind = self.kind
        if kind == "auto":
            kind = "binary" if np.isin(y, (0.0, 1.0)).all() else "continuous"
        if kind not in ("binary", "continuous"):
            raise FeatureError(f"kind must be 'auto', 'binary' or 'continuous', got {kind!r}")
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
        self.mean_ = X[tr].mean(0)
        std = X[tr].std(0)
        self.scale_ = np.where(std > 0, std, 1.0)
        Z = (X - self.mean_) / self.scale_
        grid = [self.l1] if self.l1 is not None else list(self.l1_grid)
        best = None
        self.val_scores_ = {}
        for lam in grid:
            model = self._model(kind, float(lam), int(tr.sum()))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(Z[tr], y[tr])
            if va.any() and len(grid) > 1:
                pred = _decision(model, Z[va])
                m = _metric(kind, y[va], pred)
                val = m["auc"] if kind == "binary" else m["r2"]
                val = -math.inf if math.isnan(val) else val
            else:
                val = 0.0
            self.val_scores_[float(lam)] = val
            if best is None or val > best[0] + 1e-9:
                best = (val, float(lam), model)
        assert best is not None
        _, self.l1_, model = best
        self._model_ = model
        self.coef_ = np.asarray(model.coef_, dtype=np.float64).reshape(-1)
        self.intercept_ = float(np.asarray(model.intercept_).reshape(-1)[0])
        self.test_metrics_ = _metric(kind, y[te], self.decision_function(X[te])) if te.any() else {}
        self.train_metrics_ = _metric(kind, y[tr], self.decision_function(X[tr]))
        return self

    def _model(self, kind: str, lam: float, n_train: int) -> Any:
        from sklearn.linear_model import ElasticNet, LogisticRegression

        if kind == "binary":
            c = 1.0 / (max(lam, 1e-12) * max(n_train, 1))
            solver = "liblinear" if self.l1_ratio >= 1.0 else "saga"
            return LogisticRegression(
                C=c, l1_ratio=float(self.l1_ratio), solver=solver, max_iter=self.max_iter, tol=1e-3
            )
        return ElasticNet(
            alpha=lam,
            l1_ratio=float(self.l1_ratio),
            max_iter=self.max_iter * 10,
            tol=1e-4,
            precompute=True,
        )

    # -- using it

    def decision_function(self, X: Any) -> np.ndarray:
        """Linear score of each row (log-odds for binary probes, the prediction otherwise)."""
        Z = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        return Z @ self.coef_ + self.intercept_

    def predict(self, X: Any) -> np.ndarray:
        s = self.decision_function(X)
        return (s > 0).astype(np.float64) if self.kind_ == "binary" else s

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.kind_ != "binary":
            raise FeatureError("predict_proba is only defined for binary probes")
        p = 1 / (1 + np.exp(-self.decision_function(X)))
        return np.stack([1 - p, p], axis=1)

    def top_units(self, k: int | None = None) -> list[str]:
        """Units by decreasing |weight| (non-zero weights only)."""
        order = np.argsort(-np.abs(self.coef_), kind="stable")
        order = [i for i in order if self.coef_[i] != 0]
        return [self.units_[i] for i in order[:k]]


def _decision(model: Any, Z: np.ndarray) -> np.ndarray:
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(Z)).reshape(-1)
    return np.asarray(model.predict(Z)).reshape(-1)


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
    if len(rows) == 0:
        return out
    # contiguous runs of rows
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(rows)]])
    for key, cols in by_key.items():
        idx = [i for _, i in cols]
        where = [c for c, _ in cols]
        for s, e in zip(starts, ends):
            out[s:e, where] = store.read(key, int(rows[s]), int(rows[e - 1]) + 1, units=idx)
    return out
