"""Which units track a feature: per-unit scores, sparse linear probes, controls, rankings.

Three layers, each usable alone (docs/probes.md has the definitions and the approximations):

* :func:`unit_scores` -- one streaming pass over the store scores every unit of every recorded
  quantity against several features at once: ROC AUC (binary features), Pearson and Spearman
  (continuous ones), mutual information, sign.
* :class:`LinearProbe` -- an L1 / elastic-net logistic (binary) or linear (continuous) probe
  in the scikit-learn way; train/validation/test are contiguous blocks of positions (never
  single characters: neighbours leak), regularisation is chosen on validation, metrics are
  reported on test only.
* :func:`rank_units` -- the whole ordering as a :class:`Ranking`: scores, held-out probe
  metrics for the top units, Hewitt & Liang control tasks and selectivity, a bootstrap interval
  by block, and the top-k curve (is the feature in one unit or spread out?).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

from lstmprobe.errors import FeatureError, StoreError
from lstmprobe.features import Feature, get_feature

FORMAT = "lstmprobe.rankings"
FORMAT_VERSION = 1

N_BINS = 256  # activation bins per unit for AUC / Spearman / MI
MAX_LABEL_BINS = 32  # label bins of a continuous feature
MI_BINS = 16  # equal-mass activation groups for mutual information
MAX_PATTERNS = 32  # joint label patterns histogrammed in one bincount

# --------------------------------------------------------------------------- labels


@dataclass
class Labels:
    """One feature's labels over a recording, ready for scoring.

    ``values`` is float32 of shape (n_positions,), NaN where undefined; ``codes`` is the label
    bin of each position (-1 where undefined): 0/1 for binary features, the value's rank among
    at most ``MAX_LABEL_BINS`` equal-mass bins (or its distinct value) for continuous ones.
    """

    name: str
    kind: Literal["binary", "continuous"]
    values: np.ndarray
    codes: np.ndarray
    bin_values: np.ndarray  # representative label value of each bin, shape (L,)
    definition: str = ""
    skip: str | None = None  # why no score can be computed (constant feature)

    @property
    def n_bins(self) -> int:
        return len(self.bin_values)

    @property
    def defined(self) -> np.ndarray:
        return self.codes >= 0

    def summary(self) -> dict[str, Any]:
        d = self.values[self.defined]
        out: dict[str, Any] = {
            "feature": self.name,
            "kind": self.kind,
            "definition": self.definition,
            "n_defined": int(d.size),
        }
        if d.size:
            if self.kind == "binary":
                out["base_rate"] = float(d.mean())
            else:
                out["mean"] = float(d.mean())
                out["std"] = float(d.std())
        if self.skip:
            out["skipped"] = self.skip
        return out


def make_labels(feature: str | Feature, text: str, sequences: np.ndarray | None = None) -> Labels:
    """Compute a feature on ``text`` and bin it for scoring.

    Examples
    --------
    >>> lab = make_labels("char:a", "banana")
    >>> lab.kind, lab.codes.tolist()
    ('binary', [0, 1, 0, 1, 0, 1])
    """
    feat = get_feature(feature)
    values = feat.labels(text, sequences)
    kind = feat.infer_kind(values)
    defined = ~np.isnan(values)
    codes = np.full(len(values), -1, dtype=np.int16)
    skip = None
    d = values[defined]
    distinct = np.unique(d)
    if distinct.size < 2:
        what = "undefined everywhere" if d.size == 0 else f"constant ({distinct[0]:g})"
        skip = f"feature {feat.name!r} is {what} on this corpus; nothing to score"
    if kind == "binary":
        if not np.isin(distinct, (0.0, 1.0)).all():
            raise FeatureError(
                f"feature {feat.name!r} is declared binary but takes values "
                f"{distinct[:5].tolist()}; return 0/1 (NaN = undefined)"
            )
        codes[defined] = d.astype(np.int16)
        bin_values = np.array([0.0, 1.0])
    elif distinct.size <= MAX_LABEL_BINS:
        codes[defined] = np.searchsorted(distinct, d).astype(np.int16)
        bin_values = distinct.astype(np.float64)
    else:
        # equal-mass bins by rank; each bin's value is the mean label in it
        order = np.argsort(d, kind="stable")
        ranks = np.empty(d.size, dtype=np.int64)
        ranks[order] = np.arange(d.size)
        # ties must share a bin: bin of the first occurrence of each distinct value
        first = np.searchsorted(d[order], d, side="left")
        raw = (first * MAX_LABEL_BINS) // d.size
        _, code = np.unique(raw, return_inverse=True)
        codes[defined] = code.astype(np.int16)
        bin_values = np.bincount(code, weights=d) / np.bincount(code)
    return Labels(feat.name, kind, values, codes, bin_values, feat.definition, skip)


# --------------------------------------------------------------------------- per-unit scores


@dataclass
class UnitScores:
    """Scores of every unit against one feature (arrays of shape (n_units,), in ``units`` order)."""

    feature: str
    kind: Literal["binary", "continuous"]
    units: list[str]
    auc: np.ndarray | None
    pearson: np.ndarray
    spearman: np.ndarray
    mi: np.ndarray
    sign: np.ndarray
    score: np.ndarray
    score_name: str


def _sample_ranges(store: Any, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-unit (lo, hi) from 16 evenly spaced windows of at most 4096 positions."""
    n = store.n_positions
    windows = 16
    size = max(1, min(4096, n // windows))
    starts = np.unique(np.linspace(0, max(0, n - size), windows).astype(np.int64))
    lo: dict[str, np.ndarray] = {}
    hi: dict[str, np.ndarray] = {}
    for a in starts:
        for key in keys:
            x = store.read(key, int(a), int(min(n, a + size)))
            mn, mx = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
            lo[key] = mn if key not in lo else np.minimum(lo[key], mn)
            hi[key] = mx if key not in hi else np.maximum(hi[key], mx)
    return {k: np.stack([lo[k], hi[k]]).astype(np.float64) for k in keys}


def _groups(labels: list[Labels], n_units: int) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
    """Group features whose joint label patterns fit one histogram.

    Returns (feature indices, pattern id per position, codes table (P, n_features_in_group)).
    """
    groups: list[tuple[list[int], np.ndarray, np.ndarray]] = []
    current: list[int] = []
    current_ids: np.ndarray | None = None
    current_table: np.ndarray | None = None
    limit = max(2, min(MAX_PATTERNS, (1 << 25) // max(1, n_units * N_BINS)))
    for i, lab in enumerate(labels):
        if lab.skip:
            continue
        trial = [*current, i]
        table, ids = _patterns(labels, trial)
        if current and len(table) > limit:
            assert current_ids is not None and current_table is not None
            groups.append((current, current_ids, current_table))
            trial = [i]
            table, ids = _patterns(labels, trial)
        current, current_ids, current_table = trial, ids, table
    if current:
        assert current_ids is not None and current_table is not None
        groups.append((current, current_ids, current_table))
    return groups


def _patterns(labels: list[Labels], members: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of the members' label codes: (table (P, len(members)), id per position)."""
    combined = np.zeros(len(labels[members[0]].codes), dtype=np.int64)
    for j in members:
        combined *= labels[j].n_bins + 1
        combined += labels[j].codes.astype(np.int64) + 1
    uniq, ids = np.unique(combined, return_inverse=True)
    table = np.empty((len(uniq), len(members)), dtype=np.int64)
    rest = uniq.copy()
    for col in range(len(members) - 1, -1, -1):
        base = labels[members[col]].n_bins + 1
        table[:, col] = rest % base - 1
        rest //= base
    return table, ids.reshape(-1).astype(np.int32)


def unit_scores(
    store: Any,
    features: Sequence[str | Feature | Labels] | str | Feature,
    *,
    keys: Sequence[str] | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
    labels: list[Labels] | None = None,
) -> dict[str, UnitScores]:
    """Score every unit of ``keys`` (default: all recorded) against each feature, in one pass.

    Parameters
    ----------
    store : ActivationStore
    features : feature spec(s)
        Binary features get ROC AUC, continuous ones Pearson and Spearman; all get mutual
        information (bits) and a sign. Constant features are skipped (absent from the result).
    keys : sequence of str, optional
        Datasets to score, e.g. ``["layer0/cell"]``.
    chunk_size : int, optional
        Positions per read (default: about 4M values per window).

    Returns
    -------
    scores : dict of feature name to :class:`UnitScores`

    Notes
    -----
    Pearson is exact up to float32 rounding within a window (window sums of centred, scaled
    values in float32, accumulated in float64). AUC, Spearman and
    MI come from a joint histogram per unit: ``N_BINS`` equal-width bins between the unit's
    minimum and maximum over 16 evenly spaced sample windows (values outside go to the edge
    bins), against the label bins. Values in one bin count as ties, so the AUC error is at most
    half the fraction of positive/negative pairs sharing a bin.
    """
    if labels is None:
        if isinstance(features, (str, Feature)):
            features = [features]
        text, seqs = store.text, store.sequences
        labels = [f if isinstance(f, Labels) else make_labels(f, text, seqs) for f in features]
    keys = list(store.keys if keys is None else keys)
    n_units = {k: store.n_units(k) for k in keys}
    total_units = sum(n_units.values())
    if total_units == 0:
        raise StoreError(f"{store.path} holds no units to score")
    base = int(getattr(store, "chunk_positions", 4096) or 4096)
    if chunk_size is None:
        want = max(base, (1 << 22) // total_units)
        chunk_size = max(base, (want // base) * base)
    ranges = _sample_ranges(store, keys)
    active = [i for i, lab in enumerate(labels) if not lab.skip]
    groups = _groups(labels, max(n_units.values()))
    nb = N_BINS
    # per key: centring, scale; moment sums; joint histograms per group
    mids = {k: (ranges[k][0] + ranges[k][1]) / 2 for k in keys}
    scales = {}
    for k in keys:
        width = ranges[k][1] - ranges[k][0]
        scales[k] = np.where(width > 0, nb / np.where(width > 0, width, 1.0), 1.0)
    fidx = {i: j for j, i in enumerate(active)}
    nf = len(active)
    sx = {k: np.zeros((n_units[k], nf)) for k in keys}
    sxx = {k: np.zeros((n_units[k], nf)) for k in keys}
    sxy = {k: np.zeros((n_units[k], nf)) for k in keys}
    hists = {
        k: [np.zeros(n_units[k] * nb * len(t), dtype=np.int64) for _, _, t in groups] for k in keys
    }
    mask_all = np.stack([labels[i].defined for i in active], axis=1) if nf else None
    y_all = (
        np.stack([np.nan_to_num(labels[i].values, nan=0.0) for i in active], axis=1) if nf else None
    )
    bar = _bar(store.n_positions, progress, "scoring units")
    # one BLAS thread: the products here are skinny (features x window) and OpenBLAS threads
    # spin up for each one, which made them 10x slower on a 2-core machine
    limits = threadpool_limits(limits=1, user_api="blas")
    try:
        for a, b, chunk in store.iter_chunks(keys, chunk_size=chunk_size):
            if nf:
                m = np.ascontiguousarray(mask_all[a:b].T, dtype=np.float32)  # (features, n)
                ym = np.ascontiguousarray(y_all[a:b].T, dtype=np.float32) * m
            for k in keys:
                x = chunk[k]
                u = x.shape[1]
                z = np.subtract(x, mids[k].astype(np.float32), out=x)
                np.multiply(z, scales[k].astype(np.float32), out=z)
                if nf:
                    sx[k] += (m @ z).T
                    sxy[k] += (ym @ z).T
                    sxx[k] += (m @ np.square(z)).T
                np.add(z, nb / 2, out=z)
                np.clip(z, 0, nb - 1, out=z)
                bins = z.astype(np.int32)
                for g, (_, ids, table) in enumerate(groups):
                    p = len(table)
                    idx = bins * p
                    idx += ids[a:b, None].astype(np.int32)
                    idx += (np.arange(u, dtype=np.int32) * (nb * p))[None, :]
                    hists[k][g] += np.bincount(idx.ravel(), minlength=u * nb * p)
            bar.update(b - a)
    finally:
        bar.close()
        limits.restore_original_limits()
    units = store.units(keys)
    out: dict[str, UnitScores] = {}
    for g, (members, _, table) in enumerate(groups):
        for col, i in enumerate(members):
            lab = labels[i]
            j = fidx[i]
            parts = []
            for k in keys:
                joint = hists[k][g].reshape(n_units[k], nb, len(table))
                parts.append(_marginal(joint, table[:, col], lab.n_bins))
            joint = np.concatenate(parts, axis=0)  # (units, nb, L)
            n_def = float(lab.defined.sum())
            y = np.nan_to_num(lab.values, nan=0.0).astype(np.float64)
            sy = float(y[lab.defined].sum())
            syy = float((y[lab.defined] ** 2).sum())
            sx_ = np.concatenate([sx[k][:, j] for k in keys])
            sxx_ = np.concatenate([sxx[k][:, j] for k in keys])
            sxy_ = np.concatenate([sxy[k][:, j] for k in keys])
            pearson = _pearson(n_def, sx_, sxx_, sy, syy, sxy_)
            spearman = _spearman_table(joint, lab.n_bins)
            mi = _mutual_information(joint)
            if lab.kind == "binary":
                auc = _auc_table(joint)
                sign = np.where(auc >= 0.5, 1, -1)
                score = np.maximum(auc, 1 - auc)
                name = "auc"
            else:
                auc = None
                sign = np.where(spearman >= 0, 1, -1)
                score = np.abs(spearman)
                name = "|spearman|"
            out[lab.name] = UnitScores(
                lab.name, lab.kind, units, auc, pearson, spearman, mi, sign, score, name
            )
    return {labels[i].name: out[labels[i].name] for i in active}


def _marginal(joint: np.ndarray, codes: np.ndarray, n_bins: int) -> np.ndarray:
    """Sum joint pattern histograms (units, nb, P) into (units, nb, L) for one feature."""
    out = np.zeros((*joint.shape[:2], n_bins), dtype=np.float64)
    for p, c in enumerate(codes):
        if c >= 0:
            out[:, :, c] += joint[:, :, p]
    return out


def _pearson(n, sx, sxx, sy, syy, sxy):  # type: ignore[no-untyped-def]
    cov = n * sxy - sx * sy
    vx = n * sxx - sx * sx
    vy = n * syy - sy * sy
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(np.maximum(vx, 0) * np.maximum(vy, 0))
    return np.clip(np.nan_to_num(r, nan=0.0), -1, 1)


def _auc_table(joint: np.ndarray) -> np.ndarray:
    """ROC AUC per unit from (units, bins, 2) counts; ties within a bin count one half."""
    neg, pos = joint[:, :, 0], joint[:, :, 1]
    below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(1) / (n_pos * n_neg)
    return np.nan_to_num(auc, nan=0.5)


def _midranks(counts: np.ndarray) -> np.ndarray:
    """Mid-rank of each bin given counts along the last axis."""
    return np.cumsum(counts, axis=-1) - (counts - 1) / 2


def _spearman_table(joint: np.ndarray, n_label_bins: int) -> np.ndarray:
    """Spearman's rho per unit from a (units, bins, L) table: midranks of bins on both axes."""
    w = joint
    n = w.sum(axis=(1, 2))
    rx = _midranks(w.sum(2))  # (units, bins)
    ry = _midranks(w.sum(1))  # (units, L)
    mx = (w.sum(2) * rx).sum(1) / np.maximum(n, 1)
    my = (w.sum(1) * ry).sum(1) / np.maximum(n, 1)
    dx = rx - mx[:, None]
    dy = ry - my[:, None]
    cov = np.einsum("ubl,ub,ul->u", w, dx, dy)
    vx = (w.sum(2) * dx * dx).sum(1)
    vy = (w.sum(1) * dy * dy).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = cov / np.sqrt(vx * vy)
    return np.clip(np.nan_to_num(rho, nan=0.0), -1, 1)


def _mutual_information(joint: np.ndarray) -> np.ndarray:
    """Plug-in MI in bits between ``MI_BINS`` equal-mass activation groups and the label bins."""
    units, nb, nl = joint.shape
    px = joint.sum(2)
    n = px.sum(1, keepdims=True)
    cdf = (np.cumsum(px, 1) - px / 2) / np.maximum(n, 1)
    group = np.minimum((cdf * MI_BINS).astype(np.int64), MI_BINS - 1)  # (units, nb)
    coarse = np.zeros((units, MI_BINS, nl))
    rows = np.repeat(np.arange(units), nb)
    np.add.at(coarse, (rows, group.ravel()), joint.reshape(units * nb, nl))
    p = coarse / np.maximum(n[:, :, None], 1)
    pa = p.sum(2, keepdims=True)
    pb = p.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(p > 0, p * np.log2(p / (pa * pb)), 0.0)
    return np.maximum(terms.sum(axis=(1, 2)), 0.0)


# --------------------------------------------------------------------------- blocks and controls


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


def control_labels(
    values: np.ndarray,
    how: Literal["char", "block"],
    *,
    tokens: np.ndarray | None = None,
    n_blocks: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """Control-task labels (Hewitt & Liang) with the feature's distribution but no meaning.

    ``how="char"``: every character type gets one random label, drawn from the feature's
    defined values (so a binary feature keeps its base rate in expectation) -- a probe that
    only memorises characters scores as well on this control. ``how="block"``: the labels of
    contiguous blocks are shuffled between blocks, keeping local structure but not alignment.
    Undefined positions stay undefined.
    """
    rng = np.random.default_rng(seed)
    defined = ~np.isnan(values)
    out = np.full(values.shape, np.nan, dtype=np.float32)
    if not defined.any():
        return out
    if how == "char":
        if tokens is None:
            raise FeatureError("a char-type control needs the tokens of each position")
        tokens = np.asarray(tokens, dtype=np.int64)
        pool = values[defined]
        per_type = rng.choice(pool, size=int(tokens.max()) + 1)
        out[defined] = per_type[tokens[defined]]
        return out
    n = len(values)
    n_blocks = max(1, min(n_blocks, n))
    size = n // n_blocks
    body = values[: size * n_blocks].reshape(n_blocks, size)
    out[: size * n_blocks] = body[rng.permutation(n_blocks)].reshape(-1)
    out[size * n_blocks :] = values[size * n_blocks :]
    out[~defined] = np.nan
    return out


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


# --------------------------------------------------------------------------- the ranking


COLUMNS = (
    "feature",
    "rank",
    "unit",
    "score",
    "score_name",
    "sign",
    "auc",
    "pearson",
    "spearman",
    "mi",
    "test_metric",
    "control_metric",
    "selectivity",
    "interval_low",
    "interval_high",
)


@dataclass(frozen=True)
class Ranking:
    """Units ranked per feature: one row per (feature, unit), sorted by feature then rank.

    ``rows`` holds dicts with :data:`COLUMNS`; the held-out columns (``test_metric``,
    ``control_metric``, ``selectivity``, ``interval_*``) are filled for the top units only
    (None elsewhere). ``features`` holds one summary per feature: kind, base rate, the
    probe's held-out metrics, control and selectivity, the top-k curve, or why it was skipped.
    """

    rows: tuple[dict[str, Any], ...]
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    store: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    def for_feature(self, feature: str | None = None) -> list[dict[str, Any]]:
        name = self._feature(feature)
        return [r for r in self.rows if r["feature"] == name]

    def _feature(self, feature: str | None) -> str:
        scored = [f for f, s in self.features.items() if "skipped" not in s]
        if feature is None:
            if len(scored) != 1:
                raise FeatureError(
                    f"this ranking holds {len(scored)} scored features ({', '.join(scored)}); "
                    "say which one with feature="
                )
            return scored[0]
        if feature not in self.features:
            raise FeatureError(
                f"feature {feature!r} is not in this ranking; it has {', '.join(self.features)}"
            )
        return feature

    def top(self, k: int = 10, feature: str | None = None) -> list[str]:
        """Names of the ``k`` best units for ``feature`` (needed when several are ranked)."""
        return [r["unit"] for r in self.for_feature(feature)[:k]]

    def to_records(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "store": self.store,
            "settings": self.settings,
            "features": self.features,
            "rows": self.to_records(),
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """JSON text (NaN written as null); also written atomically to ``path`` when given."""
        text = json.dumps(_clean(self.to_dict()), indent=1, ensure_ascii=False)
        if path is not None:
            from lstmprobe.store import write_json_atomic

            write_json_atomic(path, _clean(self.to_dict()))
        return text

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """CSV text with one row per (feature, unit); also written to ``path`` when given."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: "" if _missing(r.get(k)) else r.get(k) for k in COLUMNS})
        text = buf.getvalue()
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Ranking:
        if obj.get("format") != FORMAT:
            raise StoreError("not an lstmprobe rankings file (no 'format': 'lstmprobe.rankings')")
        return cls(
            tuple(obj.get("rows", ())),
            dict(obj.get("features", {})),
            obj.get("store", ""),
            dict(obj.get("settings", {})),
        )

    @classmethod
    def read_json(cls, path: str | os.PathLike[str]) -> Ranking:
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StoreError(f"rankings file {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise StoreError(f"rankings file {path} is not valid JSON: {exc}") from None
        return cls.from_dict(obj)

    def format_table(self, top: int = 10) -> str:
        """A readable table: the ``top`` units of each feature and the feature summary."""
        lines: list[str] = []
        for name, summary in self.features.items():
            lines.append(_summary_line(name, summary))
            if "skipped" in summary:
                continue
            rows = self.for_feature(name)[:top]
            probed = any(not _missing(r.get("test_metric")) for r in rows)
            header = f"  {'rank':>4}  {'unit':<28} {'score':>6} {'sign':>4}"
            if not probed:  # scores only (--no-probe): no empty held-out columns
                lines.append(header)
                lines.extend(
                    f"  {r['rank']:>4}  {r['unit']:<28} {r['score']:>6.3f} "
                    f"{'+' if r['sign'] > 0 else '-':>4}"
                    for r in rows
                )
                lines.append("")
                continue
            header += f"  {'held-out':>8}  {'control':>7}  {'select.':>7}  interval"
            lines.append(header)
            for r in rows:
                interval = (
                    f"[{r['interval_low']:.3f}, {r['interval_high']:.3f}]"
                    if not _missing(r.get("interval_low"))
                    else ""
                )
                lines.append(
                    f"  {r['rank']:>4}  {r['unit']:<28} {r['score']:>6.3f} "
                    f"{'+' if r['sign'] > 0 else '-':>4}  {_fmt(r.get('test_metric')):>8}  "
                    f"{_fmt(r.get('control_metric')):>7}  {_fmt(r.get('selectivity')):>7}  {interval}"
                )
            curve = summary.get("curve") or []
            if curve:
                pts = ", ".join(f"{c['k']}: {_fmt(c['test_metric'])}" for c in curve)
                lines.append(f"  top-k probe ({summary.get('probe_metric', '')}) {pts}")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def _summary_line(name: str, s: dict[str, Any]) -> str:
    if "skipped" in s:
        return f"{name}: skipped: {s['skipped']}"
    bits = [f"{name} ({s['kind']}"]
    if "base_rate" in s:
        bits.append(f", base rate {s['base_rate']:.3f}")
    bits.append(f", {s['n_defined']} positions)")
    probe = s.get("probe") or {}
    if probe.get("test_metric") is not None:
        bits.append(
            f"  probe on all units: held-out {s.get('probe_metric')} {_fmt(probe['test_metric'])}, "
            f"control {_fmt(probe.get('control_metric')) or 'n/a'}, selectivity "
            f"{_fmt(probe.get('selectivity')) or 'n/a'}"
        )
    if s.get("warning"):
        bits.append(f"  note: {s['warning']}")
    return "".join(bits)


def _fmt(v: Any) -> str:
    return "" if _missing(v) else f"{v:.3f}"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if math.isnan(obj) else float(obj)
    return obj


def _bar(total: int, enabled: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="pos", leave=False)


def _oriented_auc(values: np.ndarray, y: np.ndarray, sign: float) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return math.nan
    return float(roc_auc_score(y, sign * values))


def _unit_heldout(kind: str, x: np.ndarray, y: np.ndarray, part: np.ndarray) -> float:
    """Held-out metric of a one-unit probe: orientation/fit on train, metric on test."""
    tr, te = part == 0, part == 2
    if not te.any() or not tr.any():
        return math.nan
    if kind == "binary":
        if len(np.unique(y[tr])) < 2:
            return math.nan
        sign = 1.0 if _oriented_auc(x[tr], y[tr], 1.0) >= 0.5 else -1.0
        return _oriented_auc(x[te], y[te], sign)
    if np.std(x[tr]) == 0:
        return 0.0
    slope, icpt = np.polyfit(x[tr], y[tr], 1)
    pred = slope * x[te] + icpt
    ss = ((y[te] - y[te].mean()) ** 2).sum()
    return float(1 - ((y[te] - pred) ** 2).sum() / ss) if ss > 0 else math.nan


def _bootstrap(
    kind: str, x: np.ndarray, y: np.ndarray, blocks: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float]:
    """95% percentile interval of the unit's score, resampling blocks with replacement."""
    nb = int(blocks.max()) + 1 if blocks.size else 0
    if nb < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    weights = np.stack([np.bincount(rng.integers(0, nb, nb), minlength=nb) for _ in range(n_boot)])
    if kind == "binary":
        lo, hi = float(np.min(x)), float(np.max(x))
        bins = 64
        b = np.clip(((x - lo) / (hi - lo + 1e-12) * bins).astype(np.int64), 0, bins - 1)
        hist = np.zeros((nb, bins, 2))
        np.add.at(hist, (blocks, b, (y > 0.5).astype(np.int64)), 1.0)
        tables = np.einsum("rk,kbl->rbl", weights, hist)
        auc = _auc_table(tables)
        stat = np.maximum(auc, 1 - auc)
    else:
        from scipy.stats import rankdata

        rx, ry = rankdata(x), rankdata(y)
        parts = np.stack([np.ones_like(rx), rx, ry, rx * rx, ry * ry, rx * ry], axis=1)
        sums = np.zeros((nb, 6))
        np.add.at(sums, blocks, parts)
        s = weights @ sums
        stat = np.abs(_pearson(s[:, 0], s[:, 1], s[:, 3], s[:, 2], s[:, 4], s[:, 5]))
    lo_, hi_ = np.nanpercentile(stat, [2.5, 97.5])
    return float(lo_), float(hi_)


def rank_units(
    store: Any,
    features: str | Feature | Sequence[str | Feature],
    *,
    keys: Sequence[str] | None = None,
    probe: bool = True,
    detail: int = 10,
    k_max: int = 32,
    max_probe_positions: int = 50_000,
    n_blocks: int = 20,
    n_boot: int = 200,
    seed: int = 0,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Ranking:
    """Rank every unit of every recorded quantity for each feature.

    Parameters
    ----------
    store : ActivationStore
    features : feature spec or list of specs
        ``"quote"``, ``["indent", "char:x"]``, ``"my.py:func"``...
    keys : sequence of str, optional
        Datasets to rank (default: all recorded).
    probe : bool
        Also fit probes: held-out metrics, controls, selectivity, intervals for the ``detail``
        best units of each feature, and the top-k curve (k = 1, 2, 4, ... up to ``k_max``, then
        all units). False: scores only.
    max_probe_positions : int
        Positions used for probes (contiguous windows chosen with ``seed``).
    n_blocks : int
        Contiguous blocks for the train/validation/test split and the bootstrap.
    warn : callable, optional
        Receives one line per skipped feature (default: :func:`warnings.warn`).

    Returns
    -------
    ranking : :class:`Ranking`

    Examples
    --------
    >>> ranking = rank_units(store, "quote")  # doctest: +SKIP
    >>> ranking.top(3)  # doctest: +SKIP
    ['layer1/cell/17', 'layer1/hidden/17', 'layer0/cell/4']
    """
    warn = warn or (lambda msg: warnings.warn(msg, stacklevel=3))
    if isinstance(features, (str, Feature)):
        features = [features]
    if not features:
        raise FeatureError("give at least one feature (lstmprobe features lists them)")
    text, seqs = store.text, store.sequences
    labels = [make_labels(f, text, seqs) for f in features]
    names = [lab.name for lab in labels]
    if len(set(names)) != len(names):
        labels = [lab for i, lab in enumerate(labels) if lab.name not in names[:i]]
    for lab in labels:
        if lab.skip:
            warn(lab.skip + "; skipped")
    scores = unit_scores(store, [], keys=keys, progress=progress, labels=labels)
    summaries = {lab.name: lab.summary() for lab in labels}
    rows: list[dict[str, Any]] = []
    detail_rows: dict[str, list[dict[str, Any]]] = {}
    for lab in labels:
        sc = scores.get(lab.name)
        if sc is None:
            continue
        order = np.lexsort((np.arange(len(sc.units)), -sc.score))
        feature_rows = []
        for rank, i in enumerate(order, start=1):
            row = {
                "feature": lab.name,
                "rank": rank,
                "unit": sc.units[i],
                "score": float(sc.score[i]),
                "score_name": sc.score_name,
                "sign": int(sc.sign[i]),
                "auc": None if sc.auc is None else float(sc.auc[i]),
                "pearson": float(sc.pearson[i]),
                "spearman": float(sc.spearman[i]),
                "mi": float(sc.mi[i]),
                "test_metric": None,
                "control_metric": None,
                "selectivity": None,
                "interval_low": None,
                "interval_high": None,
            }
            feature_rows.append(row)
        rows.extend(feature_rows)
        detail_rows[lab.name] = feature_rows
        summaries[lab.name]["score_name"] = sc.score_name
        summaries[lab.name]["probe_metric"] = "auc" if lab.kind == "binary" else "r2"
    if probe and detail_rows:
        _probe_features(
            store,
            labels,
            detail_rows,
            summaries,
            keys,
            detail,
            k_max,
            max_probe_positions,
            n_blocks,
            n_boot,
            seed,
            warn,
        )
    settings = {
        "keys": list(store.keys if keys is None else keys),
        "probe": probe,
        "detail": detail,
        "k_max": k_max,
        "max_probe_positions": max_probe_positions,
        "n_blocks": n_blocks,
        "n_boot": n_boot,
        "seed": seed,
        "n_bins": N_BINS,
    }
    return Ranking(tuple(rows), summaries, str(store.path), settings)


def _probe_features(
    store: Any,
    labels: list[Labels],
    detail_rows: dict[str, list[dict[str, Any]]],
    summaries: dict[str, dict[str, Any]],
    keys: Sequence[str] | None,
    detail: int,
    k_max: int,
    max_positions: int,
    n_blocks: int,
    n_boot: int,
    seed: int,
    warn: Callable[[str], None],
) -> None:
    rows_idx = sample_positions(store.n_positions, max_positions, n_blocks, seed)
    all_units = store.units(keys)
    # all units for the sample, bounded: at most 64M values
    use_all = len(rows_idx) * len(all_units) <= (1 << 26)
    needed: list[str] = []
    for lab in labels:
        if lab.name in detail_rows:
            needed += [r["unit"] for r in detail_rows[lab.name][: max(detail, k_max)]]
    cols = all_units if use_all else list(dict.fromkeys(needed))
    X = gather_units(store, cols, rows_idx)
    col_of = {u: i for i, u in enumerate(cols)}
    tokens = store.tokens[rows_idx]
    for lab in labels:
        if lab.name not in detail_rows:
            continue
        frows = detail_rows[lab.name]
        y_all = lab.values[rows_idx].astype(np.float64)
        keep = ~np.isnan(y_all)
        y = y_all[keep]
        Xk = X[keep]
        part = block_split(len(y), n_blocks, seed=seed)
        edges = np.linspace(0, len(y), max(1, min(n_blocks, len(y))) + 1).astype(np.int64)
        blocks = np.repeat(np.arange(len(edges) - 1), np.diff(edges))
        ctrl_all = control_labels(lab.values[rows_idx], "char", tokens=tokens, seed=seed + 1)
        ctrl = ctrl_all[keep].astype(np.float64)
        ctrl_block = control_labels(y_all, "block", n_blocks=n_blocks, seed=seed + 2)[keep]
        summary = summaries[lab.name]
        if lab.kind == "binary" and (
            len(np.unique(y[part == 2])) < 2 or len(np.unique(y[part == 0])) < 2
        ):
            msg = (
                f"feature {lab.name!r}: the test or train blocks hold only one class; "
                "no held-out metrics (use a longer corpus or more blocks)"
            )
            summary["warning"] = msg
            warn(msg)
            continue
        for r in frows[:detail]:
            x = Xk[:, col_of[r["unit"]]].astype(np.float64)
            task = _unit_heldout(lab.kind, x, y, part)
            control = _unit_heldout(lab.kind, x, ctrl, part)
            r["test_metric"] = task
            r["control_metric"] = control
            r["selectivity"] = None if _missing(task) or _missing(control) else task - control
            lo, hi = _bootstrap(lab.kind, x, y, blocks, n_boot, seed)
            r["interval_low"], r["interval_high"] = lo, hi
        # the top-k curve
        ks = []
        k = 1
        while k <= min(k_max, len(frows)):
            ks.append(k)
            k *= 2
        curve = []
        sets: list[tuple[Any, list[str]]] = [(k, [r["unit"] for r in frows[:k]]) for k in ks]
        if use_all:
            sets.append(("all", all_units))
        for k, units in sets:
            Xs = Xk[:, [col_of[u] for u in units]]
            entry: dict[str, Any] = {"k": k}
            try:
                p = LinearProbe(kind=lab.kind, n_blocks=n_blocks, random_state=seed).fit(Xs, y)
                entry["test_metric"] = p.test_metrics_.get("auc" if lab.kind == "binary" else "r2")
                entry["test_metrics"] = p.test_metrics_
                entry["l1"] = p.l1_
                entry["nonzero"] = int((p.coef_ != 0).sum())
                strongest = np.argsort(-np.abs(p.coef_), kind="stable")[:5]
                entry["top_units"] = [units[i] for i in strongest if p.coef_[i] != 0]
                metric = "auc" if lab.kind == "binary" else "r2"
                c = LinearProbe(kind=lab.kind, n_blocks=n_blocks, random_state=seed).fit(Xs, ctrl)
                entry["control_metric"] = c.test_metrics_.get(metric)
                try:
                    cb = LinearProbe(kind=lab.kind, n_blocks=n_blocks, random_state=seed).fit(
                        Xs, ctrl_block
                    )
                    entry["control_block_metric"] = cb.test_metrics_.get(metric)
                except FeatureError:
                    entry["control_block_metric"] = None
            except FeatureError as exc:
                entry["error"] = str(exc)
                entry.setdefault("test_metric", None)
                entry.setdefault("control_metric", None)
            tm, cm = entry.get("test_metric"), entry.get("control_metric")
            entry["selectivity"] = None if _missing(tm) or _missing(cm) else tm - cm
            curve.append(entry)
        summary["curve"] = curve
        last = curve[-1] if curve else {}
        summary["probe"] = {
            "units": "all" if use_all else last.get("k"),
            "test_metric": last.get("test_metric"),
            "control_metric": last.get("control_metric"),
            "control_block_metric": last.get("control_block_metric"),
            "selectivity": last.get("selectivity"),
            "positions": len(y),
        }


def iter_feature_names(features: Iterable[str]) -> list[str]:
    """Names of features as :func:`get_feature` would resolve them (validates every spec)."""
    return [get_feature(f).name for f in features]
