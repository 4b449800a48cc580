"""Labels for scoring: a feature's values over a recording, binned, in memory or streamed.

:func:`make_labels` computes a feature on a text in memory; :func:`store_labels` over a
recording, keeping the labels in memory while they fit (``LABEL_MEMORY``) and otherwise
computing them again from the stored text, a window at a time, for each pass. Either way a
:class:`Labels` gives each defined value a bin (its *code*) for the joint histograms of
:func:`~lstmprobe.probes.unit_scores`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from lstmprobe._io import progress_bar
from lstmprobe.errors import FeatureError
from lstmprobe.features import Feature, get_feature, stream
from lstmprobe.features.base import is_binary
from lstmprobe.features.stream import TextReader, feature_windows
from lstmprobe.probes.splits import runs

if TYPE_CHECKING:
    from lstmprobe.store import ActivationStore

MAX_LABEL_BINS = 32  # label bins of a continuous feature

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
    kind = feat.kind or ("binary" if not counts.merged and is_binary(keys) else "continuous")
    n = int(counts.counts.sum())
    skip = None
    if n_keys < 2 and not counts.merged:
        what = "undefined everywhere" if n == 0 else f"constant ({keys[0]:g})"
        skip = f"feature {feat.name!r} is {what} on this corpus; nothing to score"
        if feat.hint:
            skip += f"; {feat.hint}"
    exact = True
    if kind == "binary":
        if counts.merged or not is_binary(keys):
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
    store: ActivationStore,
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
    with position_bar(n, progress, "labelling") as bar:
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


def position_bar(total: int, enabled: bool, desc: str) -> Any:
    """The progress bar over ``total`` positions (hidden unless ``enabled``)."""
    return progress_bar(total, desc=desc, unit="pos", leave=False, enabled=enabled)
