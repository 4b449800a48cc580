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
import dataclasses
import io
import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lstmprobe._io import atomic_write
from lstmprobe.errors import FeatureError, StoreError
from lstmprobe.features import Feature, get_feature
from lstmprobe.linear_probe import (
    LinearProbe,
    _auc,
    block_split,
    gather_units,
    runs,
    sample_positions,
)
from lstmprobe.scores import N_BINS, Labels, _pearson, store_labels, unit_scores

FORMAT = "lstmprobe.rankings"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- controls


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
    "interval_score",
)
#: Optional columns that ``find-neurons --ablate`` adds (docs/causal.md): the loss change in
#: bits/char where the feature is on when the unit is zeroed, the same for random units of its
#: layer and quantity, and the empirical p-value. Written to CSV only when present.
CAUSAL_COLUMNS = ("causal_delta_on", "causal_delta_off", "causal_random_mean", "causal_p_value")


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
    #: which recording was ranked (model and corpus hashes, creation time, positions): rankings
    #: of one recording merge (:meth:`merged_into`), another recording's are replaced
    recording: dict[str, Any] = field(default_factory=dict)

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

    def with_columns(self, values: dict[tuple[str, str], dict[str, Any]]) -> Ranking:
        """A copy whose rows ``(feature, unit)`` in ``values`` gain those columns."""
        rows = tuple({**r, **values.get((r["feature"], r["unit"]), {})} for r in self.rows)
        return dataclasses.replace(self, rows=rows)

    def _columns(self) -> list[str]:
        extra = [c for c in CAUSAL_COLUMNS if any(c in r for r in self.rows)]
        return [*COLUMNS, *extra]

    def to_records(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "store": self.store,
            "recording": self.recording,
            "settings": self.settings,
            "features": self.features,
            "rows": self.to_records(),
        }

    def same_recording(self, other: Ranking) -> bool:
        """Both rank the same recording (same model, corpus, creation time and positions)."""
        return bool(self.recording) and self.recording == other.recording

    def merged_into(self, earlier: Ranking) -> Ranking:
        """``earlier``'s features with this ranking's added: a feature ranked again here
        replaces its earlier rows and summary, the others stay (in their order, new ones after).

        ``settings`` are this run's; ``settings["by_feature"]`` keeps each feature's own.

        Examples
        --------
        >>> a = Ranking(({"feature": "x", "unit": "u"},), {"x": {}}, settings={"seed": 0})
        >>> b = Ranking(({"feature": "y", "unit": "u"},), {"y": {}}, settings={"seed": 1})
        >>> b.merged_into(a).feature_names, b.merged_into(a).settings["by_feature"]["x"]
        (['x', 'y'], {'seed': 0})
        """
        earlier_settings = dict(earlier.settings)
        by_feature = earlier_settings.pop("by_feature", None)
        by_feature = dict(by_feature) if isinstance(by_feature, dict) else {}
        mine = {k: v for k, v in self.settings.items() if k != "by_feature"}
        for name in earlier.features:
            by_feature.setdefault(name, earlier_settings)
        names = list(earlier.features)
        names += [n for n in self.features if n not in earlier.features]
        features, rows = {}, []
        for name in names:
            source = self if name in self.features else earlier
            features[name] = source.features[name]
            rows += [r for r in source.rows if r.get("feature") == name]
            by_feature[name] = mine if source is self else by_feature[name]
        settings = {**mine, "by_feature": {n: by_feature[n] for n in names}}
        return Ranking(tuple(rows), features, self.store, settings, self.recording)

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
        columns = self._columns()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: "" if _missing(r.get(k)) else r.get(k) for k in columns})
        text = buf.getvalue()
        if path is not None:
            try:
                with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
                    fh.write(text)
            except OSError as exc:
                raise StoreError(
                    f"cannot write {path}: {exc.strerror or exc}; choose a directory you can write to"
                ) from None
        return text

    @classmethod
    def from_dict(cls, obj: Any) -> Ranking:
        """A ranking from its :meth:`to_dict` form; :class:`StoreError` naming what is wrong."""
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise StoreError("not an lstmprobe rankings file (no 'format': 'lstmprobe.rankings')")
        version = obj.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise StoreError(f"a damaged rankings file (format_version {version!r})")
        if version > FORMAT_VERSION:
            raise StoreError(
                f"a rankings file of format version {version}; this lstmprobe reads version "
                f"{FORMAT_VERSION}: upgrade lstmprobe"
            )
        rows, features = obj.get("rows", []), obj.get("features", {})
        store, settings = obj.get("store", ""), obj.get("settings", {})
        recording = obj.get("recording", {})
        if not isinstance(features, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in features.items()
        ):
            raise StoreError("a damaged rankings file ('features' is not an object of objects)")
        if not isinstance(settings, dict) or not isinstance(recording, dict):
            raise StoreError("a damaged rankings file ('settings' or 'recording' not an object)")
        if not isinstance(store, str) or not isinstance(rows, list):
            raise StoreError("a damaged rankings file ('store' or 'rows' of the wrong type)")
        for i, row in enumerate(rows):
            problem = _row_problem(row, features)
            if problem:
                raise StoreError(f"a damaged rankings file (row {i}: {problem})")
        return cls(tuple(rows), dict(features), store, dict(settings), dict(recording))

    @classmethod
    def read_json(cls, path: str | os.PathLike[str]) -> Ranking:
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StoreError(f"rankings file {path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"rankings file {path} is not valid JSON: {detail}") from None
        except (IsADirectoryError, PermissionError, OSError) as exc:
            raise StoreError(f"cannot read rankings file {path}: {exc.strerror or exc}") from None
        try:
            return cls.from_dict(obj)
        except StoreError as exc:
            raise StoreError(f"{path}: {exc}") from None

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
                causal = any(not _missing(r.get("causal_p_value")) for r in rows)
                lines.append(
                    header + (f"  {'ablated':>8}  {'random':>7}  {'p':>5}" if causal else "")
                )
                lines.extend(
                    (
                        f"  {r['rank']:>4}  {r['unit']:<28} {_score_sign(r)}"
                        + (_causal_cells(r) if causal else "")
                    ).rstrip()
                    for r in rows
                )
                if causal:
                    lines.append(_CAUSAL_NOTE)
                lines.append("")
                continue
            header += f"  {'held-out':>8}  {'control':>7}  {'select.':>7}  sample [95% interval]"
            unit_metric = summary.get("unit_metric")
            causal = any(not _missing(r.get("causal_p_value")) for r in rows)
            width = len(header) + 2  # the interval column: "0.912 [0.900, 0.930]"
            if causal:
                header = f"{header:<{width}}  {'ablated':>8}  {'random':>7}  {'p':>5}"
            lines.append(header)
            for r in rows:
                interval = (
                    f"{_fmt(r.get('interval_score'))} "
                    f"[{r['interval_low']:.3f}, {r['interval_high']:.3f}]"
                    if not _missing(r.get("interval_low")) and not _missing(r.get("interval_high"))
                    else ""
                )
                line = (
                    f"  {r['rank']:>4}  {r['unit']:<28} {_score_sign(r)}  "
                    f"{_fmt(r.get('test_metric')):>8}  {_fmt(r.get('control_metric')):>7}  "
                    f"{_fmt(r.get('selectivity')):>7}  {interval}"
                )
                if causal:
                    line = (f"{line:<{width}}" + _causal_cells(r)).rstrip()
                lines.append(line)
            n_interval = summary.get("interval_positions")
            if n_interval is not None:
                lines.append(
                    f"  score: on all {summary.get('n_defined', 0):,} positions; sample [95% "
                    f"interval]: the score on the {n_interval:,} probe positions and its block "
                    "bootstrap there"
                )
            if causal:
                lines.append(_CAUSAL_NOTE)
            if unit_metric:
                lines.append(
                    f"  held-out: {_UNIT_METRICS.get(unit_metric, unit_metric)} of the unit on test "
                    "blocks, its sign fitted on train blocks; control: the same on char-type labels"
                )
            curve = summary.get("curve") or []
            if curve:
                pts = ", ".join(f"{c['k']}: {_fmt(c['test_metric'])}" for c in curve)
                lines.append(f"  top-k probe ({summary.get('probe_metric', '')}) {pts}")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def _score_sign(r: dict[str, Any]) -> str:
    sign = r.get("sign")
    mark = "" if sign is None or _missing(sign) else "+" if sign > 0 else "-"
    return f"{_fmt(r.get('score')):>6} {mark:>4}"


#: columns a rankings file must hold as numbers (or null) for the table and the report
_NUMERIC = (
    "score", "sign", "auc", "pearson", "spearman", "mi", "test_metric", "control_metric",
    "selectivity", "interval_low", "interval_high", "interval_score",
)  # fmt: skip


def _is_number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _row_problem(row: Any, features: dict[str, Any]) -> str | None:
    """Why a row of a rankings file cannot be used, or None."""
    if not isinstance(row, dict):
        return "not an object"
    if not isinstance(row.get("feature"), str) or row["feature"] not in features:
        return f"feature {row.get('feature')!r} is not among the file's features"
    if not isinstance(row.get("unit"), str):
        return f"unit {row.get('unit')!r} is not a unit name"
    rank = row.get("rank")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        return f"rank {rank!r} is not a positive integer"
    bad = [k for k in _NUMERIC if not _is_number(row.get(k))]
    if bad:
        return f"{bad[0]} {row.get(bad[0])!r} is not a number"
    return None


_UNIT_METRICS = {"auc": "AUC (0.5 chance)", "spearman": "Spearman (0 chance)"}

_CAUSAL_NOTE = (
    "  ablated: bits/char lost where the feature is on when the unit is zeroed; random: the "
    "mean for random units of its layer and quantity; p: its rank among them"
)


def _causal_cells(r: dict[str, Any]) -> str:
    return (
        f"  {_fmt(r.get('causal_delta_on')):>8}  {_fmt(r.get('causal_random_mean')):>7}  "
        f"{_fmt(r.get('causal_p_value')):>5}"
    )


def _summary_line(name: str, s: dict[str, Any]) -> str:
    if "skipped" in s:
        return f"{name}: skipped: {s['skipped']}"
    bits = [f"{name} ({s['kind']}"]
    if "base_rate" in s:
        bits.append(f", base rate {s['base_rate']:.3f}")
    bits.append(f", {s['n_defined']} positions)")
    probe = s.get("probe") or {}
    if probe.get("test_metric") is not None:
        which = "all units" if probe.get("units") == "all" else f"top {probe.get('units')} units"
        bits.append(
            f"  probe on {which}: held-out {s.get('probe_metric')} {_fmt(probe['test_metric'])}, "
            f"control {_fmt(probe.get('control_metric')) or 'n/a'}, selectivity "
            f"{_fmt(probe.get('selectivity')) or 'n/a'}"
        )
        if probe.get("char_baseline_metric") is not None:
            bits.append(
                f"; current char alone {_fmt(probe['char_baseline_metric'])} "
                f"({probe['over_char_baseline']:+.3f} beyond the char), block-shuffled labels "
                f"{_fmt(probe.get('control_block_metric')) or 'n/a'}"
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


def _oriented_auc(values: np.ndarray, y: np.ndarray, sign: float) -> float:
    if len(np.unique(y)) < 2:
        return math.nan
    return _auc(y > 0.5, sign * values)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import rankdata

    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def _unit_heldout(kind: str, x: np.ndarray, y: np.ndarray, part: np.ndarray) -> float:
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
        sign = 1.0 if _oriented_auc(x[tr], y[tr], 1.0) >= 0.5 else -1.0
        return _oriented_auc(x[te], y[te], sign)
    sign = 1.0 if _spearman(x[tr], y[tr]) >= 0 else -1.0
    return sign * _spearman(x[te], y[te])


def _auc_table(joint: np.ndarray) -> np.ndarray:
    """ROC AUC per unit from (units, bins, 2) counts; ties within a bin count one half."""
    neg, pos = joint[:, :, 0], joint[:, :, 1]
    below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(1) / (n_pos * n_neg)
    return np.nan_to_num(auc, nan=0.5)


def _bootstrap(
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
        auc = _auc_table(tables)
        stat = auc if sign > 0 else 1 - auc
    else:
        from scipy.stats import rankdata

        rx, ry = rankdata(x), rankdata(y)
        parts = np.stack([np.ones_like(rx), rx, ry, rx * rx, ry * ry, rx * ry], axis=1)
        sums = np.zeros((nb, 6))
        np.add.at(sums, blocks, parts)
        s = weights @ sums
        stat = np.sign(sign) * _pearson(s[:, 0], s[:, 1], s[:, 3], s[:, 2], s[:, 4], s[:, 5])
    lo_, hi_ = np.nanpercentile(stat[1:], [2.5, 97.5])
    return float(lo_), float(hi_), float(stat[0])


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
    label_memory: int | None = None,
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
    label_memory : int, optional
        Bytes of labels kept in memory (default ``scores.LABEL_MEMORY``, 256 MB); beyond,
        they are streamed from the stored text (:func:`~lstmprobe.scores.store_labels`).
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
                "interval_score": None,
            }
            feature_rows.append(row)
        rows.extend(feature_rows)
        detail_rows[lab.name] = feature_rows
        summaries[lab.name]["score_name"] = sc.score_name
        summaries[lab.name]["probe_metric"] = "auc" if lab.kind == "binary" else "r2"
        summaries[lab.name]["unit_metric"] = "auc" if lab.kind == "binary" else "spearman"
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
    recording = {k: getattr(store, k, None) for k in ("model_sha256", "corpus_sha256", "created")}
    recording["positions"] = int(store.n_positions)
    return Ranking(tuple(rows), summaries, str(store.path), settings, recording)


def _char_baseline(
    kind: str, tokens: np.ndarray, y: np.ndarray, n_blocks: int, seed: int, metric: str
) -> float | None:
    """The held-out metric of the same probe on the current char alone (one-hot): what a
    reader of the input with no memory knows. A wide probe that beats it found more than the
    char; the char-type control cannot say this (see docs/probes.md)."""
    values, codes = np.unique(tokens, return_inverse=True)
    onehot = np.zeros((len(tokens), len(values)), dtype=np.float32)
    onehot[np.arange(len(tokens)), codes] = 1.0
    try:
        p = LinearProbe(kind=kind, n_blocks=n_blocks, random_state=seed).fit(onehot, y)
    except FeatureError:
        return None
    got = p.test_metrics_.get(metric)
    return None if got is None or _missing(got) else float(got)


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
    # the all-units probe: at most 64M values, and only with enough positions for its weights
    # (its train blocks get 60% of them; with fewer rows than units it would only memorise)
    use_all = len(rows_idx) * len(all_units) <= (1 << 26) and len(rows_idx) >= 4 * len(all_units)
    needed: list[str] = []
    for lab in labels:
        if lab.name in detail_rows:
            needed += [r["unit"] for r in detail_rows[lab.name][: max(detail, k_max)]]
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
        Xk = X[keep]
        part = block_split(len(y), n_blocks, seed=seed)
        edges = np.linspace(0, len(y), max(1, min(n_blocks, len(y))) + 1).astype(np.int64)
        blocks = np.repeat(np.arange(len(edges) - 1), np.diff(edges))
        ctrl_all = control_labels(values, "char", tokens=tokens, seed=seed + 1)
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
            lo, hi, at_sample = _bootstrap(lab.kind, x, y, blocks, n_boot, seed, r["sign"])
            r["interval_low"], r["interval_high"] = lo, hi
            r["interval_score"] = at_sample
        summary["interval_positions"] = len(y)
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
        metric = "auc" if lab.kind == "binary" else "r2"
        chars = _char_baseline(lab.kind, tokens[keep], y, n_blocks, seed, metric)
        tm = last.get("test_metric")
        summary["probe"] = {
            "units": "all" if use_all else last.get("k"),
            "test_metric": tm,
            "control_metric": last.get("control_metric"),
            "control": "char-type",
            "control_block_metric": last.get("control_block_metric"),
            "selectivity": last.get("selectivity"),
            "char_baseline_metric": chars,
            "over_char_baseline": None if _missing(tm) or _missing(chars) else tm - chars,
            "positions": len(y),
        }
