"""Where each feature changes, and the ROC-suggested threshold of its units, in one streaming pass.

The report's ranking sections show passages where a feature changes and say, for a binary
feature, above which value a unit is "on" (Youden's J on per-unit histograms). Memory is bounded
by one chunk of positions and one small histogram per (feature, unit), never by the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmprobe._io import progress_bar
from lstmprobe.errors import FeatureError
from lstmprobe.report.data import KeyStats
from lstmprobe.store import ActivationStore, parse_unit

#: Bins of the per-unit value histograms behind the ROC-suggested thresholds.
ROC_BINS = 256
#: Feature changes remembered per chunk of positions (the passages are picked among them).
CHANGES_PER_CHUNK = 4


@dataclass(frozen=True)
class Threshold:
    """The ROC-suggested "unit is on" threshold of one unit for one binary feature.

    The threshold maximises Youden's J = TPR - FPR over the unit's values (the ROC point farthest
    above the diagonal): "on" means ``value >= threshold`` when ``sign > 0``, ``value <=
    threshold`` when ``sign < 0``. Computed from 256-bin histograms over the unit's range, so it is
    exact to one bin width.
    """

    unit: str
    feature: str
    threshold: float
    sign: int
    tpr: float
    fpr: float

    @property
    def youden(self) -> float:
        return self.tpr - self.fpr


@dataclass(frozen=True)
class FeatureScan:
    """Where a feature changes (sampled positions), and thresholds for its units."""

    feature: str
    kind: str
    changes: np.ndarray  # sampled positions where the label differs from the previous one
    thresholds: dict[str, Threshold]


def scan_features(
    store: ActivationStore,
    features: dict[str, list[tuple[str, int]]],
    stats: dict[str, KeyStats],
    kinds: dict[str, str],
    progress: bool = False,
) -> dict[str, FeatureScan]:
    """One streaming pass: each feature's labels beside its units' values.

    Parameters
    ----------
    features : dict of feature name to list of (unit name, sign)
        The units to find thresholds for (their datasets must be in ``stats``).
    kinds : dict of feature name to "binary" or "continuous"
        Thresholds are computed for binary features only.
    """
    from lstmprobe.features import get_feature
    from lstmprobe.features.stream import TextReader, feature_windows

    n = store.n_positions
    chunk = store.chunk_positions
    bounds = [(a, min(n, a + chunk)) for a in range(0, n, chunk)]
    feats = {}
    for name in features:
        try:
            feats[name] = get_feature(name)
        except FeatureError:
            continue  # a ranking's user feature whose file is gone: no passages for it
    streams = {
        name: feature_windows(f, TextReader(store.read_text, n), n, store.sequences, bounds)
        for name, f in feats.items()
    }
    keys = sorted({parse_unit(u)[0] for name in feats for u, _ in features[name]})
    # per binary feature, each unit's (key, index, value range) and its (off, on) histograms
    scanned: dict[str, list[tuple[str, int, float, float, np.ndarray]]] = {}
    hist: dict[tuple[str, str], np.ndarray] = {}
    for name in feats:
        if kinds.get(name) == "binary":
            for u, _ in features[name]:
                key, index = parse_unit(u)
                h = hist[(name, u)] = np.zeros((2, ROC_BINS), dtype=np.int64)
                lo, hi = float(stats[key].min[index]), float(stats[key].max[index])
                scanned.setdefault(name, []).append((key, index, lo, hi, h))
    changes: dict[str, list[int]] = {name: [] for name in feats}
    last: dict[str, float] = {}
    chunks = store.iter_chunks(keys, chunk_size=chunk, dtype=None) if keys else None
    seq_starts = store.sequences[:, 0]
    with progress_bar(
        n, desc="passages", unit="char", unit_scale=True, leave=False, enabled=progress
    ) as bar:
        for a, b in bounds:
            block = next(chunks)[2] if chunks is not None else {}
            # the sequence starts inside this chunk: a new sequence is no change
            starts = seq_starts[np.searchsorted(seq_starts, a) : np.searchsorted(seq_starts, b)]
            for name, stream in streams.items():
                y = next(stream)
                prev = np.concatenate([[last.get(name, np.nan)], y[:-1]])
                diff = np.flatnonzero((y != prev) & ~(np.isnan(y) & np.isnan(prev))) + a
                diff = diff[~np.isin(diff, starts)].tolist()
                if diff:
                    pick = np.linspace(0, len(diff) - 1, min(CHANGES_PER_CHUNK, len(diff)))
                    changes[name].extend(diff[int(i)] for i in pick)
                last[name] = float(y[-1]) if len(y) else last.get(name, np.nan)
                if name not in scanned:
                    continue
                defined = ~np.isnan(y)
                pos = defined & (y > 0.5)
                neg = defined & ~pos
                for key, index, lo, hi, h in scanned[name]:
                    bins = _bins(np.asarray(block[key][:, index], dtype=np.float32), lo, hi)
                    h[1] += np.bincount(bins[pos], minlength=ROC_BINS)
                    h[0] += np.bincount(bins[neg], minlength=ROC_BINS)
            bar.update(b - a)
    out = {}
    for name in feats:
        thresholds = {}
        for u, sign in features[name]:
            h = hist.get((name, u))
            if h is None:
                continue
            key, index = parse_unit(u)
            s = stats[key]
            thresholds[u] = _youden(u, name, h, float(s.min[index]), float(s.max[index]), sign)
        out[name] = FeatureScan(
            name, kinds.get(name, "continuous"), np.array(changes[name], dtype=np.int64), thresholds
        )
    return out


def _bins(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    width = (hi - lo) / ROC_BINS if hi > lo else 1.0
    return np.clip(((v - lo) / width).astype(np.int64), 0, ROC_BINS - 1)


def _youden(unit: str, feature: str, h: np.ndarray, lo: float, hi: float, sign: int) -> Threshold:
    neg, pos = h[0].astype(np.float64), h[1].astype(np.float64)
    if sign < 0:
        neg, pos = neg[::-1], pos[::-1]
    # "on" = bins from i upwards (in the oriented direction)
    tpr = np.cumsum(pos[::-1])[::-1] / max(pos.sum(), 1.0)
    fpr = np.cumsum(neg[::-1])[::-1] / max(neg.sum(), 1.0)
    best = int(np.argmax(tpr - fpr))
    width = (hi - lo) / ROC_BINS if hi > lo else 0.0
    edge = lo + best * width if sign >= 0 else hi - best * width
    return Threshold(
        unit, feature, float(edge), 1 if sign >= 0 else -1, float(tpr[best]), float(fpr[best])
    )


def pick_changes(changes: np.ndarray, k: int) -> list[int]:
    """``k`` change positions spread evenly over the recording."""
    if len(changes) == 0:
        return []
    idx = np.unique(np.linspace(0, len(changes) - 1, min(k, len(changes))).round().astype(int))
    return [int(changes[i]) for i in idx]
