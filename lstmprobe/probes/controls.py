"""Controls for probes: labels with a feature's distribution but no meaning, and what the
current character alone predicts.

Hewitt & Liang's control tasks (:func:`control_labels`) give every character type a random
label, or shuffle contiguous blocks of labels; :func:`char_baseline` is the held-out metric of
a probe that only sees the current character (docs/probes.md).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from lstmprobe.errors import FeatureError
from lstmprobe.probes.linear import LinearProbeCV
from lstmprobe.probes.ranking import is_missing
from lstmprobe.probes.splits import BlockSplit, block_ids


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
    contiguous blocks (:func:`~lstmprobe.probes.splits.block_ids`) are put in a random order,
    keeping local structure but not alignment.
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
    ids = block_ids(len(values), n_blocks)
    order = rng.permutation(int(ids[-1]) + 1)  # order[j]: the block put in the j-th place
    slot = np.argsort(order)  # slot[b]: the place block b goes to
    out[:] = values[np.argsort(slot[ids], kind="stable")]  # whole blocks, the last one too
    out[~defined] = np.nan
    return out


def char_baseline(
    kind: str, tokens: np.ndarray, y: np.ndarray, n_blocks: int, seed: int, metric: str
) -> float | None:
    """The held-out metric of the same probe on the current char alone (one-hot): what a
    reader of the input with no memory knows. A wide probe that beats it found more than the
    char; the char-type control cannot say this (see docs/probes.md)."""
    values, codes = np.unique(tokens, return_inverse=True)
    onehot = np.zeros((len(tokens), len(values)), dtype=np.float32)
    onehot[np.arange(len(tokens)), codes] = 1.0
    try:
        p = LinearProbeCV(kind=kind, cv=BlockSplit(n_blocks, random_state=seed)).fit(onehot, y)
    except FeatureError:
        return None
    got = p.test_metrics_.get(metric)
    return None if got is None or is_missing(got) else float(got)
