"""Per-unit scores: how well each unit alone tracks a feature, in one pass over a store.

:func:`unit_scores` streams
the store once and scores every unit of every recorded quantity against several features at
once: ROC AUC (binary features), Pearson and Spearman (continuous ones), mutual information and
the sign. docs/probes.md has the definitions and the approximations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from lstmprobe.errors import StoreError
from lstmprobe.features import Feature, stream
from lstmprobe.probes._kernels import Accumulator, Sweeper, finite_range
from lstmprobe.probes.labels import Labels, position_bar, store_labels
from lstmprobe.probes.metrics import auc, auc_from_counts, pearson_from_sums, spearman
from lstmprobe.probes.sums import ScorePlan, add_window, weights, windows

if TYPE_CHECKING:
    from lstmprobe.store import ActivationStore

N_BINS = 256  # activation bins per unit for AUC / Spearman / MI
MI_BINS = 16  # equal-mass activation groups for mutual information
MAX_PATTERNS = 32  # joint label patterns histogrammed in one bincount
HIST_BYTES = 128 << 20  # joint histograms of one dataset: fewer patterns share one beyond

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


def _sample_ranges(store: ActivationStore, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-unit (lo, hi) of the finite values in 16 evenly spaced windows of at most 1024
    positions (each 1/64 of a short store): a few percent of a long recording, read before the
    scoring pass in the stored dtype. A unit with no finite value there gets (0, 0)."""
    n = store.n_positions
    windows = 16
    size = max(1, min(1024, n // (4 * windows)))
    starts = np.linspace(0, max(0, n - size), windows).astype(np.int64)
    rows = int(getattr(store, "chunk_positions", 0) or 0)
    if rows >= size and n >= 2 * windows * rows:
        starts = starts // rows * rows  # each window inside one row of HDF5 chunks: one read
    lo = {k: np.full(store.n_units(k), np.inf, dtype=np.float32) for k in keys}
    hi = {k: np.full(store.n_units(k), -np.inf, dtype=np.float32) for k in keys}
    for a in np.unique(starts):
        b = int(min(n, a + size))
        for _, _, window in store.iter_blocks(keys, start=int(a), stop=b):
            for key in keys:
                for first, x in window[key]:
                    width = x.shape[1]
                    finite_range(x, lo[key][first : first + width], hi[key][first : first + width])
    out = {}
    for k in keys:
        found = lo[k] <= hi[k]
        out[k] = np.stack([np.where(found, lo[k], 0), np.where(found, hi[k], 0)]).astype(np.float64)
    return out


class _Joint:
    """Joint label codes of several features as one int64 key per position (mixed radix)."""

    def __init__(self, labels: list[Labels]) -> None:
        if not _Joint.fits(labels):
            raise ValueError("the joint label codes do not fit an int64 key")
        self.radix = [lab.n_bins + 1 for lab in labels]  # code -1 (undefined) is digit 0

    @staticmethod
    def fits(labels: list[Labels]) -> bool:
        """Whether these features' joint codes fit one int64 key."""
        return float(np.prod([lab.n_bins + 1.0 for lab in labels])) < 2.0**62

    def keys(self, codes: list[np.ndarray]) -> np.ndarray:
        key = np.zeros(len(codes[0]), dtype=np.int64)
        for c, r in zip(codes, self.radix):
            key *= r
            key += c.astype(np.int64) + 1
        return key

    def table(self, keys: np.ndarray) -> np.ndarray:
        """The codes (rows) of each key."""
        table = np.empty((len(keys), len(self.radix)), dtype=np.int64)
        rest = keys.copy()
        for col in range(len(self.radix) - 1, -1, -1):
            table[:, col] = rest % self.radix[col] - 1
            rest //= self.radix[col]
        return table


def _label_spans(labels: list[Labels], n: int) -> list[tuple[int, int]]:
    """Windows for a pass over labels alone: all at once in memory, else text blocks."""
    if all(lab.values is not None for lab in labels):
        return [(0, n)]
    return [(a, min(n, a + stream.BLOCK)) for a in range(0, n, stream.BLOCK)]


def _occurring(labels: list[Labels], n: int, codes: list[np.ndarray] | None = None) -> np.ndarray:
    """Every joint row of label codes that occurs: table (rows, len(labels)), one pass
    (none given ``codes``, the codes of every position)."""
    if codes is not None:
        return _distinct_rows(labels, codes)
    rows = labels[0].joint
    if rows is not None and rows.rows is not None and all(lab.joint is rows for lab in labels):
        # streamed labels: the rows of values seen while binning, no pass over the text
        return _distinct_rows(labels, [lab.codes_of(rows.values(lab.name)) for lab in labels])
    seen = np.empty((0, len(labels)), dtype=np.int64)
    spans = _label_spans(labels, n)
    for values in zip(*(lab.windows(spans) for lab in labels)):
        found = _distinct_rows(labels, [lab.codes_of(v) for lab, v in zip(labels, values)])
        seen = np.unique(np.concatenate([seen, found]), axis=0)
    return seen


def _distinct_rows(labels: list[Labels], codes: list[np.ndarray]) -> np.ndarray:
    """The distinct rows of the features' codes (one column each), sorted."""
    if not _Joint.fits(labels):  # many features with many bins: compare rows directly
        return np.unique(np.stack(codes, axis=1).astype(np.int64), axis=0)
    joint = _Joint(labels)
    keys = joint.keys(codes)
    if keys.size and keys.max() < (1 << 24):
        # small key space: mark what occurs instead of sorting
        present = np.zeros(int(keys.max()) + 1, dtype=bool)
        present[keys] = True
        return joint.table(np.flatnonzero(present))
    return joint.table(np.unique(keys))


@dataclass
class _Group:
    """Features histogrammed together: each position's pattern is its row of their codes."""

    members: list[int]  # indices into the labels
    table: np.ndarray  # (P, len(members)): the codes of each pattern
    joint: _Joint
    keys: np.ndarray  # sorted joint key of each pattern

    def ids(self, codes: list[np.ndarray]) -> np.ndarray:
        """Pattern id of each position, int32."""
        return np.searchsorted(self.keys, self.joint.keys(codes)).astype(np.int32)


def _groups(labels: list[Labels], occurring: np.ndarray, n_units: int) -> list[_Group]:
    """Group features, in order, so that at most ``MAX_PATTERNS`` joint patterns (fewer for
    wide datasets) share one histogram and their codes fit one int64 key. ``occurring``: the
    joint rows of all the labels."""
    cells = HIST_BYTES // Accumulator.CELL_BYTES  # per dataset
    limit = max(2, min(MAX_PATTERNS, cells // max(1, n_units * N_BINS)))
    groups: list[list[int]] = []
    current: list[int] = []
    for i, lab in enumerate(labels):
        if lab.skip:
            continue
        trial = [*current, i]
        too_many = len(np.unique(occurring[:, trial], axis=0)) > limit
        if current and (too_many or not _Joint.fits([labels[j] for j in trial])):
            groups.append(current)
            trial = [i]
        current = trial
    if current:
        groups.append(current)
    out = []
    for members in groups:
        table = np.unique(occurring[:, members], axis=0)
        joint = _Joint([labels[i] for i in members])
        keys = joint.keys([table[:, col] for col in range(len(members))])
        order = np.argsort(keys)
        out.append(_Group(members, table[order], joint, keys[order]))
    return out


def _patterns(
    labels: list[Labels], n: int, n_units: int
) -> tuple[list[_Group], Callable[[tuple[np.ndarray, ...], int, int], list[np.ndarray]]]:
    """The feature groups of a pass, and the function that gives each group's pattern ids
    (int32) of a window ``[a, b)`` from the window's label values. With labels in memory every
    position's patterns are found once, here, and a window's are a slice of them; streamed
    labels' are found as each window is read."""
    if not labels:
        return [], lambda values, a, b: []
    if any(lab.values is None for lab in labels):
        groups = _groups(labels, _occurring(labels, n), n_units)

        def found(values: tuple[np.ndarray, ...], a: int, b: int) -> list[np.ndarray]:
            codes = [lab.codes_of(v) for lab, v in zip(labels, values)]
            return [g.ids([codes[i] for i in g.members]) for g in groups]

        return groups, found
    codes = [lab.codes for lab in labels]
    groups = _groups(labels, _occurring(labels, n, codes), n_units)
    whole = [g.ids([codes[i] for i in g.members]) for g in groups]
    return groups, lambda values, a, b: [ids[a:b] for ids in whole]


def unit_scores(
    store: ActivationStore,
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
        Positions per window, read with h5py (a copy) a window ahead in a thread. Default: up
        to ``WINDOW_CHUNK_ROWS`` rows of the store's HDF5 chunks per window (at most
        ``WINDOW_BYTES``, :mod:`.sums`), read without a copy from the file mapped in memory
        (:meth:`ActivationStore.iter_blocks`), or one row of chunks with h5py a window ahead
        when the recording is compressed.
    labels : list of Labels, optional
        Labels already made (:func:`store_labels`); ``features`` is then ignored.
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
    float16 values count as the largest finite float16 (±65504). The pass can be cut into
    spans counted on other processes and merged (:mod:`.sums`, :mod:`lstmprobe.distributed`).
    """
    planned = score_pass(store, features, keys=keys, labels=labels)
    acc = planned.plan.accumulators()
    blocks, spans = windows(store, planned.plan.keys, chunk_size)
    label_windows = zip(*(lab.windows(spans) for lab in planned.active))
    bar = position_bar(store.n_positions, progress, "scoring units")
    sweeper = Sweeper(threads)
    try:
        pending: Callable[[], None] = lambda: None  # noqa: E731
        # labels first: when they end, the store's window generator is not advanced, so it
        # releases its mapped pages (when closed below) only after the last window is counted
        for values, (a, b, window) in zip(label_windows, blocks):
            # this window's labels are prepared while the previous one is being counted
            ids, w = planned.window_labels(values, a, b)
            pending()
            pending = add_window(sweeper, acc, window, ids, w)
            bar.update(b - a)
        pending()
        bar.close()
        return planned.finish(acc, store.units(planned.plan.keys), sweeper)
    finally:
        bar.close()
        sweeper.close()  # waits for any jobs still running ...
        blocks.close()  # ... before the windows' mapped pages are released


@dataclass(frozen=True, eq=False)
class ScorePass:
    """One scoring pass, planned (:func:`score_pass`): the features scored (``active``),
    their label-pattern groups, the :class:`~lstmprobe.probes.sums.ScorePlan` every span is
    counted with, and the function that gives a window's pattern ids."""

    active: list[Labels]
    groups: list[_Group]
    plan: ScorePlan
    window_ids: Callable[[tuple[np.ndarray, ...], int, int], list[np.ndarray]]

    def window_labels(
        self, values: tuple[np.ndarray, ...], a: int, b: int
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each group's pattern ids and weights over window ``[a, b)``, from its label values."""
        ids = self.window_ids(values, a, b)
        return ids, [weights(values, w, b - a) for w in self.plan.weighted]

    def finish(
        self,
        acc: dict[str, list[Accumulator]],
        units: list[str],
        sweeper: Sweeper | None = None,
        threads: int | None = None,
    ) -> dict[str, UnitScores]:
        """The scores from the pass's accumulators, once every window is counted (on
        ``sweeper``'s threads, or on a pool of ``threads`` made for it)."""
        if sweeper is None:
            with Sweeper(threads) as own:
                return self.finish(acc, units, own)
        keys, active = self.plan.keys, self.active
        out: dict[str, UnitScores] = {}
        for j, g in enumerate(self.groups):
            n_labels = [active[i].n_bins for i in g.members]
            # (members, units) each: every feature of the group from one read of the counts
            auc, spearman, mi = sweeper.joint_stats(
                [acc[k][j] for k in keys], g.table.T, n_labels, MI_BINS
            )
            for col, i in enumerate(g.members):
                out[active[i].name] = _finish(
                    active[i],
                    units,
                    [acc[k][j] for k in keys],
                    g.table[:, col],
                    list(self.plan.weighted[j]),
                    i,
                    (auc[col], spearman[col], mi[col]),
                )
        return {lab.name: out[lab.name] for lab in active}


def score_pass(
    store: ActivationStore,
    features: Sequence[str | Feature | Labels] | str | Feature,
    *,
    keys: Sequence[str] | None = None,
    labels: list[Labels] | None = None,
) -> ScorePass:
    """Plan a scoring pass (:func:`unit_scores`): the labels, their pattern groups and each
    unit's histogram range, sampled from the store."""
    if labels is None:
        if isinstance(features, (str, Feature)):
            features = [features]
        made = iter(store_labels(store, [f for f in features if not isinstance(f, Labels)]))
        labels = [f if isinstance(f, Labels) else next(made) for f in features]
    keys = list(store.keys if keys is None else keys)
    n_units = {k: store.n_units(k) for k in keys}
    if sum(n_units.values()) == 0:
        raise StoreError(f"{store.path} holds no units to score")
    active = [lab for lab in labels if not lab.skip]
    # the units' ranges are sampled from the store while the labels are turned into patterns
    with ThreadPoolExecutor(1) as sampler:
        sampled = sampler.submit(_sample_ranges, store, keys)
        groups, window_ids = _patterns(active, store.n_positions, max(n_units.values()))
        ranges = sampled.result()
    scales = {}
    for k in keys:
        width = ranges[k][1] - ranges[k][0]
        scales[k] = np.where(width > 0, N_BINS / np.where(width > 0, width, 1.0), 1.0)
    # per group: the features whose exact label values are summed against each unit (those
    # whose label bins merge distinct values); the others' sums follow from the patterns
    weighted = tuple(tuple(i for i in g.members if not active[i].exact) for g in groups)
    lo = {k: ranges[k][0] for k in keys}
    plan = ScorePlan(tuple(keys), tuple(len(g.table) for g in groups), weighted, lo, scales, N_BINS)
    return ScorePass(active, groups, plan, window_ids)


def _finish(
    lab: Labels,
    units: list[str],
    accs: list[Accumulator],
    codes: np.ndarray,
    weighted: list[int],
    index: int,
    stats: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> UnitScores:
    """One feature's scores from its group's accumulators (one per key, in ``units`` order)
    and its (AUC, Spearman, MI) per unit (:meth:`Sweeper.joint_stats`).

    ``codes`` is the feature's label bin in each joint label pattern (-1: undefined there).
    """
    mask = (codes >= 0).astype(np.float64)
    # a unit holding inf (or values whose squares overflow) has inf sums: its Pearson is 0
    with np.errstate(invalid="ignore", over="ignore"):
        sx = np.concatenate([mask @ acc.s1 for acc in accs])
        sxx = np.concatenate([mask @ acc.s2 for acc in accs])
        if index in weighted:
            f = weighted.index(index)
            sxy = np.concatenate([acc.sw[f] for acc in accs])
        else:
            y_p = np.where(codes >= 0, lab.bin_values[np.maximum(codes, 0)], 0.0)  # pattern's
            sxy = np.concatenate([y_p @ acc.s1 for acc in accs])
    pearson = pearson_from_sums(float(lab.n_defined), sx, sxx, lab.total, lab.total_sq, sxy)
    auc, spearman, mi = stats
    if lab.kind == "binary":
        return UnitScores(
            lab.name, lab.kind, units, auc, pearson, spearman, mi,
            np.where(auc >= 0.5, 1, -1), np.maximum(auc, 1 - auc), "auc",
        )  # fmt: skip
    return UnitScores(
        lab.name, lab.kind, units, None, pearson, spearman, mi,
        np.where(spearman >= 0, 1, -1), np.abs(spearman), "|spearman|",
    )  # fmt: skip


# --------------------------------------------------------------------------- one unit, held out


def oriented_auc(values: np.ndarray, y: np.ndarray, sign: float) -> float:
    """AUC of ``sign`` x values against 0/1 labels ``y``; NaN when ``y`` holds one class."""
    if len(np.unique(y)) < 2:
        return math.nan
    return auc(y > 0.5, sign * values)


def unit_heldout(kind: str, x: np.ndarray, y: np.ndarray, part: np.ndarray) -> float:
    """Held-out metric of one unit, with only its direction fitted on the train blocks.

    Binary features: test AUC after choosing the sign on train (0.5 is chance, 1 perfect).
    Continuous features: test Spearman correlation times the sign of the train Spearman
    (0 is chance, 1 a perfectly monotone unit, negative where the direction learned on train
    reverses on test) -- a scale that reads like the ranking's score, where a one-unit linear
    fit's R² could go negative for a unit that is monotone in the feature but not linear.
    """
    tr, te = part == 0, part == 2
    if not te.any() or not tr.any():
        return math.nan
    if kind == "binary":
        if len(np.unique(y[tr])) < 2:
            return math.nan
        sign = 1.0 if oriented_auc(x[tr], y[tr], 1.0) >= 0.5 else -1.0
        return oriented_auc(x[te], y[te], sign)
    sign = 1.0 if spearman(x[tr], y[tr]) >= 0 else -1.0
    return sign * spearman(x[te], y[te])


def unit_interval(
    kind: str,
    x: np.ndarray,
    y: np.ndarray,
    blocks: np.ndarray,
    n_boot: int,
    seed: int,
    sign: float = 1.0,
) -> tuple[float, float, float]:
    """95% percentile interval of the unit's score on these positions, resampling blocks with
    replacement, and the score on these positions itself (the same statistic, every block once).

    The statistic keeps the unit's ``sign`` (the orientation of its score on all positions):
    its AUC, or 1 - AUC for a negative unit, and ``sign`` x Spearman. Folding each resample
    (max(AUC, 1 - AUC)) would push a weak unit's interval above its own score."""
    nb = int(blocks.max()) + 1 if blocks.size else 0
    if nb < 2:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    resampled = [np.bincount(rng.integers(0, nb, nb), minlength=nb) for _ in range(n_boot)]
    weights = np.stack([np.ones(nb, dtype=np.int64), *resampled])  # row 0: the sample itself
    if kind == "binary":
        lo, hi = float(np.min(x)), float(np.max(x))
        bins = N_BINS
        b = np.clip(((x - lo) / (hi - lo + 1e-12) * bins).astype(np.int64), 0, bins - 1)
        hist = np.zeros((nb, bins, 2))
        np.add.at(hist, (blocks, b, (y > 0.5).astype(np.int64)), 1.0)
        tables = np.einsum("rk,kbl->rbl", weights, hist)
        auc_ = auc_from_counts(tables[:, :, 0], tables[:, :, 1])
        stat = auc_ if sign > 0 else 1 - auc_
    else:
        from scipy.stats import rankdata

        rx, ry = rankdata(x), rankdata(y)
        parts = np.stack([np.ones_like(rx), rx, ry, rx * rx, ry * ry, rx * ry], axis=1)
        sums = np.zeros((nb, 6))
        np.add.at(sums, blocks, parts)
        s = weights @ sums
        stat = np.sign(sign) * pearson_from_sums(
            s[:, 0], s[:, 1], s[:, 3], s[:, 2], s[:, 4], s[:, 5]
        )
    lo_, hi_ = np.nanpercentile(stat[1:], [2.5, 97.5])
    return float(lo_), float(hi_), float(stat[0])
