"""Rank every unit for each feature: scores, then held-out probes and controls for the top.

:func:`rank_units` runs the whole ordering and returns a :class:`~lstmprobe.probes.Ranking`:
the per-unit scores of one pass (:func:`~lstmprobe.probes.unit_scores`), held-out metrics of
the top units with Hewitt & Liang control tasks and selectivity, a bootstrap interval by
block, and the top-k curve of sparse probes (is the feature in one unit or spread out?).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmprobe.errors import FeatureError, LstmprobeWarning
from lstmprobe.features import Feature, get_feature
from lstmprobe.names import Unit
from lstmprobe.probes.controls import char_baseline, control_labels
from lstmprobe.probes.labels import Labels, store_labels
from lstmprobe.probes.linear import LinearProbeCV
from lstmprobe.probes.ranking import Ranking, is_missing
from lstmprobe.probes.rows import CurvePoint, FeatureSummary, ProbeSummary, RankingRow
from lstmprobe.probes.scores import (
    N_BINS,
    UnitScores,
    unit_heldout,
    unit_interval,
    unit_scores,
)
from lstmprobe.probes.splits import BlockSplit, block_ids, runs, sample_positions
from lstmprobe.probes.store_probe import gather_units

if TYPE_CHECKING:
    from lstmprobe.store import ActivationStore


def _finite(X: np.ndarray, units: Sequence[str], warn: Callable[[str], None]) -> None:
    """Replace non-finite values of ``X`` in place, one warning line naming the units: +-inf
    (a float16 recording saturates at 65504) becomes the unit's largest/smallest finite value,
    NaN its mean; the scores already skip them."""
    bad = ~np.isfinite(X)
    if not bad.any():
        return
    cols = np.flatnonzero(bad.any(axis=0))
    for c in cols:
        x = X[:, c]
        finite = x[np.isfinite(x)]
        lo, hi, mean = (
            (float(finite.min()), float(finite.max()), float(finite.mean()))
            if finite.size
            else (0.0, 0.0, 0.0)
        )
        x[np.isposinf(x)], x[np.isneginf(x)], x[np.isnan(x)] = hi, lo, mean
    names = ", ".join(str(units[int(c)]) for c in cols[:3]) + (
        f" and {len(cols) - 3} more" if len(cols) > 3 else ""
    )
    warn(
        f"{len(cols)} unit{'s' if len(cols) > 1 else ''} ({names}) hold inf or NaN at "
        f"{int(bad.sum())} of the probe positions; the probes use the unit's finite range "
        "there (record in float32 if a float16 recording overflowed)"
    )


def rank_units(
    store: ActivationStore,
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
    label_memory: int | None = None,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
    scorer: Callable[..., dict[str, UnitScores]] | None = None,
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
    label_memory : int, optional
        Bytes of labels kept in memory (default ``labels.LABEL_MEMORY``, 256 MB); beyond,
        they are streamed from the stored text (:func:`~lstmprobe.probes.store_labels`).
    warn : callable, optional
        Receives one line per skipped feature (default: :func:`warnings.warn`).
    scorer : callable, optional
        What scores every unit: :func:`~lstmprobe.probes.unit_scores` (the default) or a
        function of the same arguments, e.g. one that runs the pass on a Dask cluster
        (:func:`lstmprobe.distributed.rank_units` passes it).

    Returns
    -------
    ranking : :class:`Ranking`

    Examples
    --------
    >>> ranking = rank_units(store, "quote")  # doctest: +SKIP
    >>> ranking.top(3)  # doctest: +SKIP
    ['layer1/cell/17', 'layer1/hidden/17', 'layer0/cell/4']
    """
    warn = warn or (lambda msg: warnings.warn(msg, LstmprobeWarning, stacklevel=3))
    if isinstance(features, (str, Feature)):
        features = [features]
    if not features:
        raise FeatureError("give at least one feature (`known_features()` lists them)")
    unique: dict[str, Feature] = {}  # resolved once (a user's file is imported once)
    for spec in dict.fromkeys(features):
        feat = get_feature(spec)
        same = unique.setdefault(feat.name, feat)  # a repeated feature is ranked once
        if same is not feat and same.func is not feat.func:
            raise FeatureError(
                f"two of the features given are named {feat.name!r}; give each feature once, "
                "or rename one (@feature('another-name') in your file)"
            )
    labels = store_labels(store, list(unique.values()), label_memory, progress=progress)
    for lab in labels:
        if lab.skip:
            warn(lab.skip + "; skipped")
    scores = (scorer or unit_scores)(store, [], keys=keys, progress=progress, labels=labels)
    summaries = {lab.name: FeatureSummary(**lab.summary()) for lab in labels}
    detail_rows: dict[str, list[RankingRow]] = {}
    for lab in labels:
        sc = scores.get(lab.name)
        if sc is None:
            continue
        order = np.lexsort((np.arange(len(sc.units)), -sc.score))
        detail_rows[lab.name] = [
            RankingRow(
                feature=lab.name,
                rank=rank,
                unit=Unit.parse(sc.units[i]),
                score=_number(sc.score[i]),
                score_name=sc.score_name,
                sign=int(sc.sign[i]),
                auc=None if sc.auc is None else _number(sc.auc[i]),
                pearson=_number(sc.pearson[i]),
                spearman=_number(sc.spearman[i]),
                mi=_number(sc.mi[i]),
            )
            for rank, i in enumerate(order, start=1)
        ]
        summaries[lab.name] = replace(
            summaries[lab.name],
            score_name=sc.score_name,
            probe_metric="auc" if lab.kind == "binary" else "r2",
            unit_metric="auc" if lab.kind == "binary" else "spearman",
        )
    if probe and detail_rows:
        plan = _ProbePlan(keys, detail, k_max, max_probe_positions, n_blocks, n_boot, seed)
        probed = _probe_features(store, labels, detail_rows, plan, warn)
        for name, (held_out, more) in probed.items():
            detail_rows[name] = [
                replace(r, **held_out[r.name]) if r.name in held_out else r
                for r in detail_rows[name]
            ]
            summaries[name] = replace(summaries[name], **more)
    rows = tuple(r for feature_rows in detail_rows.values() for r in feature_rows)
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
    recording = {k: getattr(store, k, None) for k in ("model_sha256", "corpus_sha256", "created")}
    recording["positions"] = int(store.n_positions)
    return Ranking(rows, summaries, str(store.path), settings, recording)


@dataclass(frozen=True)
class _ProbePlan:
    """How :func:`rank_units` probes the top units (its parameters of the same names)."""

    keys: Sequence[str] | None
    detail: int
    k_max: int
    max_positions: int
    n_blocks: int
    n_boot: int
    seed: int


def _number(value: Any) -> float | None:
    """A score as a row holds it: a float, or None where it is undefined (NaN)."""
    v = float(value)
    return None if np.isnan(v) else v


#: The largest sample x units^2 for which the top-k curve ends with a probe on all units. Its
#: three fits per feature (task, char-type control, block control) grow with this product and
#: faster: 48k positions x 800 units (3.1e10) took 7.6 s for the three on a 2-core machine,
#: 20k x 1,920 units (7.4e10) 52 s (docs/probes.md).
ALL_UNITS_WORK = 1 << 35


def _probe_features(
    store: ActivationStore,
    labels: list[Labels],
    detail_rows: dict[str, list[RankingRow]],
    plan: _ProbePlan,
    warn: Callable[[str], None],
) -> dict[str, tuple[dict[str, dict[str, Any]], dict[str, Any]]]:
    """Held-out metrics, controls and intervals of each feature's top units, and its top-k
    curve: per feature, the held-out columns of its top rows (by unit name) and what its
    summary gains."""
    out: dict[str, tuple[dict[str, dict[str, Any]], dict[str, Any]]] = {}
    rows_idx = sample_positions(store.n_positions, plan.max_positions, plan.n_blocks, plan.seed)
    all_units = store.units(plan.keys)
    # the all-units probe: at most 64M values, only with enough positions for its weights (its
    # train blocks get 60% of them; with fewer rows than units it would only memorise), and only
    # where its work, sample x units^2 (the Gram matrices of its solver), stays in bounds
    n, units = len(rows_idx), len(all_units)
    use_all = n * units <= (1 << 26) and n >= 4 * units and n * units**2 <= ALL_UNITS_WORK
    needed: list[str] = []
    for lab in labels:
        if lab.name in detail_rows:
            needed += [r.name for r in detail_rows[lab.name][: max(plan.detail, plan.k_max)]]
    cols = all_units if use_all else list(dict.fromkeys(needed))
    X = gather_units(store, cols, rows_idx)
    _finite(X, cols, warn)
    col_of = {u: i for i, u in enumerate(cols)}
    tokens = np.concatenate(
        [np.empty(0, dtype=np.int32), *(store.read_tokens(a, b) for a, b in runs(rows_idx))]
    )
    for lab in labels:
        if lab.name not in detail_rows:
            continue
        frows = detail_rows[lab.name]
        values = lab.at(rows_idx)
        y_all = values.astype(np.float64)
        keep = ~np.isnan(y_all)
        y = y_all[keep]
        Xk = X if keep.all() else X[keep]  # no copy of X when every position is defined
        metric = "auc" if lab.kind == "binary" else "r2"
        split = BlockSplit(plan.n_blocks, random_state=plan.seed)
        part = split.parts(len(y))
        blocks = block_ids(len(y), plan.n_blocks)
        ctrl_all = control_labels(values, "char", tokens=tokens, seed=plan.seed + 1)
        ctrl = ctrl_all[keep].astype(np.float64)
        ctrl_block = control_labels(y_all, "block", n_blocks=plan.n_blocks, seed=plan.seed + 2)[
            keep
        ]
        if lab.kind == "binary" and (
            len(np.unique(y[part == 2])) < 2 or len(np.unique(y[part == 0])) < 2
        ):
            msg = (
                f"feature {lab.name!r}: the test or train blocks hold only one class; "
                "no held-out metrics (use a longer corpus or more blocks)"
            )
            out[lab.name] = ({}, {"warning": msg})
            warn(msg)
            continue
        held_out: dict[str, dict[str, Any]] = {}
        for r in frows[: plan.detail]:
            x = Xk[:, col_of[r.name]].astype(np.float64)
            task = unit_heldout(lab.kind, x, y, part)
            control = unit_heldout(lab.kind, x, ctrl, part)
            lo, hi, at_sample = unit_interval(
                lab.kind, x, y, blocks, plan.n_boot, plan.seed, r.sign or 1
            )
            held_out[r.name] = {
                "test_metric": _optional(task),
                "control_metric": _optional(control),
                "selectivity": None
                if is_missing(task) or is_missing(control)
                else float(task - control),
                "interval_low": _optional(lo),
                "interval_high": _optional(hi),
                "interval_score": _optional(at_sample),
            }
        # the top-k curve
        ks = []
        k = 1
        while k <= min(plan.k_max, len(frows)):
            ks.append(k)
            k *= 2
        curve = []
        sets: list[tuple[Any, list[str]]] = [(k, [r.name for r in frows[:k]]) for k in ks]
        if use_all:
            sets.append(("all", all_units))
        for k, units in sets:
            # "all" is every column of X, in order: no gather
            Xs = Xk if k == "all" else Xk[:, [col_of[u] for u in units]]
            entry: dict[str, Any] = {"k": k}
            try:
                p = LinearProbeCV(kind=lab.kind, cv=split).fit(Xs, y)
                entry["test_metric"] = p.test_metrics_.get(metric)
                entry["test_metrics"] = p.test_metrics_
                entry["l1"] = p.l1_
                entry["nonzero"] = int((p.coef_ != 0).sum())
                strongest = np.argsort(-np.abs(p.coef_), kind="stable")[:5]
                entry["top_units"] = [units[i] for i in strongest if p.coef_[i] != 0]
                c = LinearProbeCV(kind=lab.kind, cv=split).fit(Xs, ctrl)
                entry["control_metric"] = c.test_metrics_.get(metric)
                try:
                    cb = LinearProbeCV(kind=lab.kind, cv=split).fit(Xs, ctrl_block)
                    entry["control_block_metric"] = cb.test_metrics_.get(metric)
                except FeatureError:
                    entry["control_block_metric"] = None
            except FeatureError as exc:
                entry["error"] = str(exc)
                entry.setdefault("test_metric", None)
                entry.setdefault("control_metric", None)
            tm, cm = entry.get("test_metric"), entry.get("control_metric")
            entry["selectivity"] = (
                None if tm is None or cm is None or is_missing(tm) or is_missing(cm) else tm - cm
            )
            curve.append(_point(entry))
        last = curve[-1] if curve else CurvePoint(0)
        chars = char_baseline(lab.kind, tokens[keep], y, plan.n_blocks, plan.seed, metric)
        tm = last.test_metric
        probe = ProbeSummary(
            units="all" if use_all else last.k,
            test_metric=tm,
            control_metric=last.control_metric,
            control="char-type",
            control_block_metric=last.control_block_metric,
            selectivity=last.selectivity,
            char_baseline_metric=_optional(chars),
            over_char_baseline=None if tm is None or chars is None else float(tm) - chars,
            positions=len(y),
        )
        more = {"interval_positions": len(y), "curve": tuple(curve), "probe": probe}
        out[lab.name] = (held_out, more)
    return out


def _optional(value: Any) -> float | None:
    """A metric as a result holds it: a float, or None where it is missing (None or NaN)."""
    return None if is_missing(value) else float(value)


def _point(entry: dict[str, Any]) -> CurvePoint:
    """One measured point of the top-k curve, as a value."""
    metrics = entry.get("test_metrics")
    return CurvePoint(
        k=entry["k"],
        test_metric=_optional(entry.get("test_metric")),
        control_metric=_optional(entry.get("control_metric")),
        control_block_metric=_optional(entry.get("control_block_metric")),
        selectivity=_optional(entry.get("selectivity")),
        test_metrics=None
        if metrics is None
        else {str(k): _optional(v) for k, v in metrics.items()},
        l1=_optional(entry.get("l1")),
        nonzero=entry.get("nonzero"),
        top_units=tuple(Unit.parse(u) for u in entry.get("top_units", ())),
        error=entry.get("error"),
    )
