"""The one home of the probes' metrics: ROC AUC, R², Pearson and Spearman correlation.

Every score a ranking or a probe reports is computed here (from values, or from the counts
and sums a streaming pass keeps), so that a metric has one definition whatever computes it.
"""

from __future__ import annotations

import math

import numpy as np


def auc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC: the chance that a positive scores above a negative, ties counting one half.

    The same number as ``sklearn.metrics.roc_auc_score`` (Mann-Whitney U from mid-ranks),
    without its input checks, which cost more than the sort on probe-sized inputs.

    Examples
    --------
    >>> auc(np.array([False, True, False, True]), np.array([0.1, 0.9, 0.5, 0.5]))
    0.875
    """
    from scipy.stats import rankdata

    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    u = float(rankdata(score)[positive].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def auc_from_counts(negative: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """ROC AUC from counts per ordered bin (``(..., bins)`` each): the AUC of every leading
    index at once, ties within a bin counting one half; 0.5 where a class is empty.

    Examples
    --------
    >>> float(auc_from_counts(np.array([2.0, 1.0, 0.0]), np.array([0.0, 1.0, 2.0])))
    0.9444444444444444
    """
    neg = np.asarray(negative, dtype=np.float64)
    pos = np.asarray(positive, dtype=np.float64)
    below = np.cumsum(neg, axis=-1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (pos * (below + 0.5 * neg)).sum(-1) / (pos.sum(-1) * neg.sum(-1))
    return np.nan_to_num(out, nan=0.5)


def r2(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination, as ``sklearn.metrics.r2_score`` (1 or 0 for constant y).

    Examples
    --------
    >>> r2(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    0.5
    """
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return 1.0 - ss_res / ss_tot


def pearson_from_sums(n, sx, sxx, sy, syy, sxy):  # type: ignore[no-untyped-def]
    """Pearson correlation from counts and sums (arrays broadcast): ``n`` values, their sums
    ``sx``, ``sy``, sums of squares ``sxx``, ``syy`` and of products ``sxy``.

    Constant inputs (a zero variance) and infinite sums read as 0; the result is clipped to
    [-1, 1].

    Examples
    --------
    >>> x, y = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0])
    >>> s = pearson_from_sums(3, x.sum(), x @ x, y.sum(), y @ y, x @ y)
    >>> bool(np.isclose(s, np.corrcoef(x, y)[0, 1]))
    True
    """
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cov = n * sxy - sx * sy
        vx = n * sxx - sx * sx
        vy = n * syy - sy * sy
        r = cov / np.sqrt(np.maximum(vx, 0) * np.maximum(vy, 0))
    return np.clip(np.nan_to_num(r, nan=0.0), -1, 1)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two samples; 0 when either is constant."""
    if np.std(x) > 0 and np.std(y) > 0:
        return float(np.corrcoef(x, y)[0, 1])
    return 0.0


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (mid-ranks); 0 for fewer than 2 values or a constant input.

    Examples
    --------
    >>> spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 30.0, 20.0]))
    0.5
    """
    from scipy.stats import rankdata

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def probe_metrics(kind: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """A probe's metrics of predictions ``pred`` (log-odds or values) against labels ``y``:
    ``auc`` and ``accuracy`` (binary; NaN when ``y`` holds one class), else ``r2`` and
    ``pearson``."""
    if kind == "binary":
        if len(np.unique(y)) < 2:
            return {"auc": math.nan, "accuracy": math.nan}
        return {"auc": auc(y > 0.5, pred), "accuracy": float(((pred > 0) == (y > 0.5)).mean())}
    return {"r2": r2(y, pred), "pearson": pearson(y, pred)}
