"""Per-unit scores: how well each unit alone tracks a feature, in one pass over a store.

:func:`make_labels` turns a feature into labels ready for scoring; :func:`unit_scores` streams
the store once and scores every unit of every recorded quantity against several features at
once: ROC AUC (binary features), Pearson and Spearman (continuous ones), mutual information and
the sign. docs/probes.md has the definitions and the approximations.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np

from lstmprobe.errors import FeatureError, StoreError
from lstmprobe.features import Feature, get_feature, stream
from lstmprobe.features.stream import TextReader, feature_windows
from lstmprobe.kernels import Accumulator, Sweeper, finite_range
from lstmprobe.linear_probe import runs

N_BINS = 256  # activation bins per unit for AUC / Spearman / MI
MAX_LABEL_BINS = 32  # label bins of a continuous feature
MI_BINS = 16  # equal-mass activation groups for mutual information
MAX_PATTERNS = 32  # joint label patterns histogrammed in one bincount
#: Rows of HDF5 chunks per window of the scoring pass: each block of units is counted over
#: all of them in one task, so its histograms stay in cache from one chunk row to the next
#: (8 rows: 12% faster than 1 on the benchmark store). Fewer where a window would take more
#: than WINDOW_BYTES (two windows are mapped at a time).
WINDOW_CHUNK_ROWS = 8
WINDOW_BYTES = 64 << 20
HIST_BYTES = 128 << 20  # joint histograms of one dataset: fewer patterns share one beyond

# --------------------------------------------------------------------------- labels

#: Labels of a recording are kept in memory while they take at most this many bytes (about 10
#: per position and feature with the text); beyond, they are computed again from the text, a
#: window at a time, for each pass (:func:`store_labels`).
LABEL_MEMORY = 256 << 20
#: Distinct label values counted exactly before neighbouring ones are merged (continuous
#: features with more values than this get approximately equal-mass bins).
MAX_DISTINCT = 1 << 16
#: Distinct joint rows of label values kept while streamed labels are binned; beyond, scoring
#: finds the joint label patterns with a pass of its own.
MAX_JOINT_ROWS = 1 << 16


@dataclass
class Labels:
    """One feature's labels over a recording, ready for scoring.

    Each defined label has a bin (its *code*): 0/1 for binary features; for continuous ones its
    rank among at most ``MAX_LABEL_BINS`` distinct values, or else its equal-mass bin (ties
    kept together). ``bin_values`` holds each bin's mean label. The values themselves are in
    ``values`` (float32, NaN where undefined) when they fit in memory, else they are computed
    again from the stored text for each pass (:meth:`windows`).
    """

    name: str
    kind: Literal["binary", "continuous"]
    bin_values: np.ndarray  # mean label of each bin, shape (L,)
    exact: bool  # every defined label equals its bin's value
    n_defined: int
    total: float  # sum of the defined labels
    total_sq: float  # sum of their squares
    keys: np.ndarray = field(repr=False)  # sorted label values where a run of codes begins
    key_codes: np.ndarray = field(repr=False)  # the code of each key
    definition: str = ""
    skip: str | None = None  # why no score can be computed (constant feature)
    values: np.ndarray | None = field(default=None, repr=False)
    stream: Callable[[list[tuple[int, int]]], Iterator[np.ndarray]] | None = field(
        default=None, repr=False
    )
    joint: _JointValues | None = field(default=None, repr=False, compare=False)

    @property
    def n_bins(self) -> int:
        return len(self.bin_values)

    def codes_of(self, values: np.ndarray) -> np.ndarray:
        """Label bin of each value, int16, -1 where undefined (NaN)."""
        codes = np.full(values.shape, -1, dtype=np.int16)
        defined = ~np.isnan(values)
        if len(self.keys):
            at = np.searchsorted(self.keys, values[defined], side="right") - 1
            codes[defined] = self.key_codes[np.maximum(at, 0)]
        return codes

    @property
    def codes(self) -> np.ndarray:
        """Codes of every position (labels in memory only)."""
        return self.codes_of(self._in_memory())

    def windows(self, spans: list[tuple[int, int]]) -> Iterator[np.ndarray]:
        """Label values of each ``[a, b)`` of ``spans`` (sorted, disjoint), float32."""
        if self.values is not None:
            return (self.values[a:b] for a, b in spans)
        assert self.stream is not None
        return self.stream(spans)

    def at(self, rows: np.ndarray) -> np.ndarray:
        """Label values at sorted positions ``rows``, float32."""
        if self.values is not None:
            return self.values[rows]
        spans = runs(np.asarray(rows, dtype=np.int64))
        return np.concatenate([np.empty(0, dtype=np.float32), *self.windows(spans)])

    def _in_memory(self) -> np.ndarray:
        if self.values is None:
            raise FeatureError(f"the labels of {self.name!r} are streamed, not in memory")
        return self.values

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "feature": self.name,
            "kind": self.kind,
            "definition": self.definition,
            "n_defined": self.n_defined,
        }
        if self.n_defined:
            mean = self.total / self.n_defined
            if self.kind == "binary":
                out["base_rate"] = mean
            else:
                out["mean"] = mean
                out["std"] = float(np.sqrt(max(self.total_sq / self.n_defined - mean**2, 0.0)))
        if self.skip:
            out["skipped"] = self.skip
        return out


class _Counts:
    """Distinct label values with their counts and sums, merged window by window; beyond
    ``MAX_DISTINCT`` values neighbours are merged pairwise (each entry then stands for the values
    from its key up to the next key)."""

    def __init__(self) -> None:
        self.keys = np.empty(0)
        self.counts = np.empty(0, dtype=np.int64)
        self.sums = np.empty(0)
        self.total_sq = 0.0
        self.merged = False

    def add(
        self, values: np.ndarray, distinct: tuple[np.ndarray, np.ndarray] | None = None
    ) -> None:
        """Count ``values`` (NaN ignored); ``distinct``: their ``np.unique(values,
        return_inverse=True)`` if already computed."""
        u, inverse = distinct if distinct is not None else np.unique(values, return_inverse=True)
        counts = np.bincount(inverse.reshape(-1), minlength=len(u))
        defined = ~np.isnan(u)
        u, counts = u[defined].astype(np.float64), counts[defined]
        if u.size == 0:
            return
        sums = u * counts
        self.total_sq += float(np.dot(u, sums))
        if self.merged:
            # values at or above the smallest key join their entry; smaller ones are new keys
            low = np.searchsorted(u, self.keys[0], side="left")
            at = np.searchsorted(self.keys, u[low:], side="right") - 1
            self.counts += np.bincount(at, weights=counts[low:], minlength=len(self.keys)).astype(
                np.int64
            )
            self.sums += np.bincount(at, weights=sums[low:], minlength=len(self.keys))
            u, counts, sums = u[:low], counts[:low], sums[:low]
            if u.size == 0:
                return
        keys = np.concatenate([self.keys, u])
        counts = np.concatenate([self.counts, counts])
        sums = np.concatenate([self.sums, sums])
        order = np.argsort(keys, kind="stable")
        keys, counts, sums = keys[order], counts[order], sums[order]
        first = np.r_[True, keys[1:] != keys[:-1]]
        starts = np.flatnonzero(first)
        self.keys = keys[first]
        self.counts = np.add.reduceat(counts, starts)
        self.sums = np.add.reduceat(sums, starts)
        while len(self.keys) > MAX_DISTINCT:
            pairs = np.arange(0, len(self.keys), 2)
            self.keys = self.keys[pairs]
            self.counts = np.add.reduceat(self.counts, pairs)
            self.sums = np.add.reduceat(self.sums, pairs)
            self.merged = True


def _make(feat: Feature, counts: _Counts, **rest: Any) -> Labels:
    """Bin a feature from its value counts (see :class:`Labels`)."""
    keys, n_keys = counts.keys, len(counts.keys)
    kind = feat.kind or (
        "binary" if not counts.merged and np.isin(keys, (0.0, 1.0)).all() else "continuous"
    )
    n = int(counts.counts.sum())
    skip = None
    if n_keys < 2 and not counts.merged:
        what = "undefined everywhere" if n == 0 else f"constant ({keys[0]:g})"
        skip = f"feature {feat.name!r} is {what} on this corpus; nothing to score"
        if feat.hint:
            skip += f"; {feat.hint}"
    exact = True
    if kind == "binary":
        if counts.merged or not np.isin(keys, (0.0, 1.0)).all():
            raise FeatureError(
                f"feature {feat.name!r} is declared binary but takes values "
                f"{keys[:5].tolist()}; return 0/1 (NaN = undefined)"
            )
        key_codes = keys.astype(np.int16)
        bin_values = np.array([0.0, 1.0])
    elif not counts.merged and n_keys <= MAX_LABEL_BINS:
        key_codes = np.arange(n_keys, dtype=np.int16)
        bin_values = keys.astype(np.float64)
    else:
        # equal-mass bins by rank; ties (one key) share a bin: the bin of the first occurrence
        first = np.cumsum(counts.counts) - counts.counts
        _, code = np.unique((first * MAX_LABEL_BINS) // n, return_inverse=True)
        key_codes = code.astype(np.int16)
        bin_values = np.bincount(code, weights=counts.sums) / np.bincount(
            code, weights=counts.counts
        )
        exact = False
    return Labels(
        feat.name,
        kind,
        bin_values,
        exact,
        n,
        float(counts.sums.sum()),
        counts.total_sq,
        keys,
        key_codes,
        feat.definition,
        skip,
        **rest,
    )


def make_labels(feature: str | Feature, text: str, sequences: np.ndarray | None = None) -> Labels:
    """Compute a feature on ``text`` (in memory) and bin it for scoring.

    Examples
    --------
    >>> lab = make_labels("char:a", "banana")
    >>> lab.kind, lab.codes.tolist()
    ('binary', [0, 1, 0, 1, 0, 1])
    """
    feat = get_feature(feature)
    values = feat.labels(text, sequences)
    counts = _Counts()
    counts.add(values)
    return _make(feat, counts, values=values)


def store_labels(
    store: Any,
    features: Sequence[str | Feature],
    memory: int | None = None,
    progress: bool = False,
) -> list[Labels]:
    """Labels of ``features`` over a recording: in memory when they fit in ``memory`` bytes
    (default ``LABEL_MEMORY``), else streamed from the stored text, one block at a time.

    Streamed labels are computed here once for their bins (and the joint rows of values that
    occur, so scoring needs no second pass for them) and again during each later pass, by each
    feature's scanner (:mod:`lstmprobe.features.stream`): memory is bounded by a block whatever
    the corpus size, and the labels are the same either way.
    """
    feats = [get_feature(f) for f in features]
    n, seqs = store.n_positions, store.sequences
    budget = LABEL_MEMORY if memory is None else memory
    if n * (10 * len(feats) + 4) <= budget:
        text = store.text
        return [make_labels(f, text, seqs) for f in feats]

    def windows(spans: list[tuple[int, int]], feat: Feature) -> Iterator[np.ndarray]:
        return feature_windows(feat, TextReader(store.read_text, n), n, seqs, spans)

    blocks = [(a, min(n, a + stream.BLOCK)) for a in range(0, n, stream.BLOCK)]
    counts = [_Counts() for _ in feats]
    joint = _JointValues([f.name for f in feats])
    with _bar(n, progress, "labelling") as bar:
        for (a, b), values in zip(blocks, zip(*(windows(blocks, f) for f in feats))):
            distinct = [np.unique(v, return_inverse=True) for v in values]
            for c, v, d in zip(counts, values, distinct):
                c.add(v, d)
            joint.add(distinct)
            bar.update(b - a)
    return [
        _make(f, c, stream=partial(windows, feat=f), joint=joint) for f, c in zip(feats, counts)
    ]


class _JointValues:
    """The distinct rows of several features' label values that occur (NaN included), up to
    ``MAX_JOINT_ROWS`` rows; ``rows`` is None beyond."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.rows: np.ndarray | None = np.empty((0, len(names)), dtype=np.int64)

    def add(self, distinct: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """Add one window, given as ``np.unique(values, return_inverse=True)`` per feature."""
        if self.rows is None or not len(distinct[0][1]):
            return
        if float(np.prod([float(len(u)) for u, _ in distinct])) >= 2.0**62:
            self.rows = None  # too many combinations to key: scoring makes its own pass
            return
        key = np.zeros(len(distinct[0][1]), dtype=np.int64)
        for u, inv in distinct:
            key *= len(u)
            key += inv.reshape(-1)
        key = np.unique(key)
        rows = np.empty((len(key), len(distinct)), dtype=np.int64)
        for col in range(len(distinct) - 1, -1, -1):
            u = distinct[col][0].astype(np.float64)
            u[np.isnan(u)] = np.nan  # one NaN bit pattern
            rows[:, col] = u.view(np.int64)[key % len(u)]
            key //= len(u)
        self.rows = np.unique(np.concatenate([self.rows, rows]), axis=0)
        if len(self.rows) > MAX_JOINT_ROWS:
            self.rows = None

    def values(self, name: str) -> np.ndarray:
        """One feature's column of the rows, float64."""
        assert self.rows is not None
        return self.rows[:, self.names.index(name)].view(np.float64)


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
        Positions per window, read with h5py (a copy) a window ahead in a thread. Default: up
        to ``WINDOW_CHUNK_ROWS`` rows of the store's HDF5 chunks per window (at most
        ``WINDOW_BYTES``), read without a copy from the file mapped in memory
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
    float16 values count as the largest finite float16 (±65504).
    """
    if labels is None:
        if isinstance(features, (str, Feature)):
            features = [features]
        made = iter(store_labels(store, [f for f in features if not isinstance(f, Labels)]))
        labels = [f if isinstance(f, Labels) else next(made) for f in features]
    keys = list(store.keys if keys is None else keys)
    n_units = {k: store.n_units(k) for k in keys}
    total_units = sum(n_units.values())
    if total_units == 0:
        raise StoreError(f"{store.path} holds no units to score")
    n = store.n_positions
    active = [lab for lab in labels if not lab.skip]
    # the units' ranges are sampled from the store while the labels are turned into patterns
    with ThreadPoolExecutor(1) as sampler:
        sampled = sampler.submit(_sample_ranges, store, keys)
        groups, window_ids = _patterns(active, n, max(n_units.values()))
        ranges = sampled.result()
    nb = N_BINS
    lo = {k: ranges[k][0] for k in keys}
    scales = {}
    for k in keys:
        width = ranges[k][1] - ranges[k][0]
        scales[k] = np.where(width > 0, nb / np.where(width > 0, width, 1.0), 1.0)
    # per group: the features whose exact label values are summed against each unit (those
    # whose label bins merge distinct values); the others' sums follow from the patterns
    weighted = [[i for i in g.members if not active[i].exact] for g in groups]
    acc = {
        k: [
            Accumulator(lo[k], scales[k], len(g.table), len(weighted[j]), nb)
            for j, g in enumerate(groups)
        ]
        for k in keys
    }
    blocks, spans = _windows(store, keys, chunk_size)
    label_windows = zip(*(lab.windows(spans) for lab in active))
    bar = _bar(n, progress, "scoring units")
    sweeper = Sweeper(threads)
    try:
        pending: Callable[[], None] = lambda: None  # noqa: E731
        # labels first: when they end, the store's window generator is not advanced, so it
        # releases its mapped pages (when closed below) only after the last window is counted
        for values, (a, b, window) in zip(label_windows, blocks):
            # this window's labels are prepared while the previous one is being counted
            ids = window_ids(values, a, b)
            # a window's chunk rows, column by column: one job per block of units and group
            pieces: dict[str, dict[int, list[np.ndarray]]] = {k: {} for k in keys}
            for k in keys:
                for first, x in window[k]:
                    pieces[k].setdefault(first, []).append(x)
            jobs = []
            for j in range(len(groups)):
                w = np.zeros((b - a, len(weighted[j])))
                for col, i in enumerate(weighted[j]):
                    w[:, col] = np.nan_to_num(values[i], nan=0.0)
                jobs += [
                    (acc[k][j], xs, ids[j], w, first)
                    for k in keys
                    for first, xs in pieces[k].items()
                ]
            pending()
            pending = sweeper.accumulate_all(jobs, wait=False)
            bar.update(b - a)
        pending()
        bar.close()
        units = store.units(keys)
        out: dict[str, UnitScores] = {}
        for j, g in enumerate(groups):
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
                    weighted[j],
                    i,
                    (auc[col], spearman[col], mi[col]),
                )
    finally:
        bar.close()
        sweeper.close()  # waits for any jobs still running ...
        blocks.close()  # ... before the windows' mapped pages are released
    return {lab.name: out[lab.name] for lab in active}


def _windows(
    store: Any, keys: list[str], chunk_size: int | None
) -> tuple[
    Generator[tuple[int, int, dict[str, list[tuple[int, np.ndarray]]]], None, None],
    list[tuple[int, int]],
]:
    """The windows of the scoring pass (each dataset as blocks of columns) and their spans."""
    n = store.n_positions
    if chunk_size is None and store.compression is None:
        itemsize = np.dtype(store.dtype).itemsize
        row_bytes = store.chunk_positions * sum(store.n_units(k) for k in keys) * itemsize
        chunk_rows = max(1, min(WINDOW_CHUNK_ROWS, WINDOW_BYTES // max(1, row_bytes)))
        rows = store.chunk_positions * chunk_rows
        blocks = store.iter_blocks(keys, chunk_rows=chunk_rows)
        return blocks, [(a, min(n, a + rows)) for a in range(0, n, rows)]
    # compressed (or an explicit window size): h5py decompresses the next window meanwhile
    chunk_size = chunk_size or store.chunk_positions
    chunks = store.iter_chunks(keys, chunk_size=chunk_size, dtype=None, read_ahead=True)
    blocks = ((a, b, {k: [(0, x)] for k, x in chunk.items()}) for a, b, chunk in chunks)
    return blocks, [(a, min(n, a + chunk_size)) for a in range(0, n, chunk_size)]


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
    pearson = _pearson(float(lab.n_defined), sx, sxx, lab.total, lab.total_sq, sxy)
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


def _pearson(n, sx, sxx, sy, syy, sxy):  # type: ignore[no-untyped-def]
    # constant units divide by 0, units with inf sums give inf - inf: both read as 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        cov = n * sxy - sx * sy
        vx = n * sxx - sx * sx
        vy = n * syy - sy * sy
        r = cov / np.sqrt(np.maximum(vx, 0) * np.maximum(vy, 0))
    return np.clip(np.nan_to_num(r, nan=0.0), -1, 1)


def _bar(total: int, enabled: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="pos", leave=False)
