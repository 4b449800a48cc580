"""Per-unit scores: how well each unit alone tracks a feature, in one pass over a store.

:func:`make_labels` turns a feature into labels ready for scoring; :func:`unit_scores` streams
the store once and scores every unit of every recorded quantity against several features at
once: ROC AUC (binary features), Pearson and Spearman (continuous ones), mutual information and
the sign. docs/probes.md has the definitions and the approximations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lstmprobe.errors import FeatureError, StoreError
from lstmprobe.features import Feature, get_feature
from lstmprobe.kernels import Accumulator, Sweeper

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
    """Per-unit (lo, hi) from 16 evenly spaced windows of at most 1024 positions (1/64 of a
    short store): a few percent of a long recording, read before the scoring pass."""
    n = store.n_positions
    windows = 16
    size = max(1, min(1024, n // (4 * windows)))
    starts = np.unique(np.linspace(0, max(0, n - size), windows).astype(np.int64))
    lo: dict[str, np.ndarray] = {}
    hi: dict[str, np.ndarray] = {}
    for a in starts:
        for key in keys:
            x = store.read(key, int(a), int(min(n, a + size)))
            # fmin/fmax skip NaN like nanmin/nanmax, without their copies
            mn, mx = np.fmin.reduce(x, axis=0), np.fmax.reduce(x, axis=0)
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
    if combined.size and combined.max() < (1 << 24):
        # small code space: mark what occurs instead of sorting
        present = np.zeros(int(combined.max()) + 1, dtype=bool)
        present[combined] = True
        uniq = np.flatnonzero(present)
        ids = (np.cumsum(present) - 1)[combined]
    else:
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
    threads: int | None = None,
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
    threads : int, optional
        Threads for the compiled loop (default: the CPUs this process may use).

    Returns
    -------
    scores : dict of feature name to :class:`UnitScores`

    Notes
    -----
    Pearson is exact up to float32 rounding of each centred, scaled value (sums in float64).
    AUC, Spearman and MI come from a joint histogram per unit: ``N_BINS`` equal-width bins
    between the unit's minimum and maximum over 16 evenly spaced sample windows (values outside
    go to the edge bins), against the label bins. Values in one bin count as ties, so the AUC
    error is at most half the fraction of positive/negative pairs sharing a bin. Non-finite
    float16 values count as the largest finite float16 (±65504).
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
    groups = _groups(labels, max(n_units.values()))
    nb = N_BINS
    lo = {k: ranges[k][0] for k in keys}
    scales = {}
    for k in keys:
        width = ranges[k][1] - ranges[k][0]
        scales[k] = np.where(width > 0, nb / np.where(width > 0, width, 1.0), 1.0)
    # per group: the features whose exact label values are summed against each unit (those
    # whose label bins merge distinct values); the others' sums follow from the patterns
    weighted = [[i for i in members if not _exact_bins(labels[i])] for members, _, _ in groups]
    weights = [
        np.stack([np.nan_to_num(labels[i].values, nan=0.0) for i in w], axis=1, dtype=np.float64)
        if w
        else np.zeros((store.n_positions, 0))
        for w in weighted
    ]
    acc = {
        k: [
            Accumulator(lo[k], scales[k], len(t), len(weighted[g]), nb)
            for g, (_, _, t) in enumerate(groups)
        ]
        for k in keys
    }
    bar = _bar(store.n_positions, progress, "scoring units")
    sweeper = Sweeper(threads)
    try:
        for a, b, chunk in store.iter_chunks(keys, chunk_size=chunk_size, dtype=None):
            sweeper.accumulate_all(
                [
                    (acc[k][g], chunk[k], ids[a:b], weights[g][a:b])
                    for k in keys
                    for g, (_, ids, _) in enumerate(groups)
                ]
            )
            bar.update(b - a)
        bar.close()
        units = store.units(keys)
        out: dict[str, UnitScores] = {}
        for g, (members, _, table) in enumerate(groups):
            for col, i in enumerate(members):
                out[labels[i].name] = _finish(
                    labels[i],
                    units,
                    [acc[k][g] for k in keys],
                    table[:, col],
                    weighted[g],
                    i,
                    sweeper,
                )
    finally:
        bar.close()
        sweeper.close()
    return {lab.name: out[lab.name] for lab in labels if not lab.skip}


def _finish(
    lab: Labels,
    units: list[str],
    accs: list[Accumulator],
    codes: np.ndarray,
    weighted: list[int],
    index: int,
    sweeper: Sweeper,
) -> UnitScores:
    """One feature's scores from its group's accumulators (one per key, in ``units`` order).

    ``codes`` is the feature's label bin in each joint label pattern (-1: undefined there).
    """
    mask = (codes >= 0).astype(np.float64)
    sx = np.concatenate([mask @ acc.s1 for acc in accs])
    sxx = np.concatenate([mask @ acc.s2 for acc in accs])
    if index in weighted:
        f = weighted.index(index)
        sxy = np.concatenate([acc.sw[f] for acc in accs])
    else:
        y_p = np.where(codes >= 0, lab.bin_values[np.maximum(codes, 0)], 0.0)  # label of pattern
        sxy = np.concatenate([y_p @ acc.s1 for acc in accs])
    d = lab.values[lab.defined].astype(np.float64)
    pearson = _pearson(float(d.size), sx, sxx, float(d.sum()), float((d**2).sum()), sxy)
    stats = [sweeper.joint_stats(acc, codes, lab.n_bins, MI_BINS) for acc in accs]
    auc, spearman, mi = (np.concatenate(parts) for parts in zip(*stats))
    if lab.kind == "binary":
        return UnitScores(
            lab.name, lab.kind, units, auc, pearson, spearman, mi,
            np.where(auc >= 0.5, 1, -1), np.maximum(auc, 1 - auc), "auc",
        )  # fmt: skip
    return UnitScores(
        lab.name, lab.kind, units, None, pearson, spearman, mi,
        np.where(spearman >= 0, 1, -1), np.abs(spearman), "|spearman|",
    )  # fmt: skip


def _exact_bins(lab: Labels) -> bool:
    """Whether every defined label equals its bin's value (binary, or few distinct values)."""
    d = lab.defined
    return bool(np.array_equal(lab.bin_values[lab.codes[d]], lab.values[d].astype(np.float64)))


def _pearson(n, sx, sxx, sy, syy, sxy):  # type: ignore[no-untyped-def]
    cov = n * sxy - sx * sy
    vx = n * sxx - sx * sx
    vy = n * syy - sy * sy
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(np.maximum(vx, 0) * np.maximum(vy, 0))
    return np.clip(np.nan_to_num(r, nan=0.0), -1, 1)


def _bar(total: int, enabled: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="pos", leave=False)
