"""The typed values of a ranking: one row per (feature, unit), one summary per feature.

Frozen dataclasses built whole by :func:`~lstmprobe.probes.rank_units`; the rankings file
(``acts.rankings.json``, format ``lstmprobe.rankings`` version 1) is their serialisation
(:meth:`to_dict`), read back field by field (:meth:`from_dict`, :class:`lstmprobe._read.Fields`),
so that every reader -- the table, the report, ``ablate --top`` -- works on checked values.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from lstmprobe._read import Fields, text_keys, unit_named
from lstmprobe.names import Unit

#: The columns of a row, in file order (CSV and JSON).
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
#: Optional columns that :func:`~lstmprobe.causal.with_causal_columns` adds (docs/causal.md):
#: the loss change in bits/char where the feature is on when the unit is zeroed, the same for
#: random units of its layer and quantity, and the empirical p-value. Written only when present.
CAUSAL_COLUMNS = ("causal_delta_on", "causal_delta_off", "causal_random_mean", "causal_p_value")
#: The columns that hold numbers (or nothing).
NUMERIC = (
    "score", "auc", "pearson", "spearman", "mi", "test_metric", "control_metric",
    "selectivity", "interval_low", "interval_high", "interval_score",
)  # fmt: skip

Kind = Literal["binary", "continuous"]


@dataclass(frozen=True)
class Causal:
    """A row's causal columns (:data:`CAUSAL_COLUMNS`)."""

    causal_delta_on: float | None = None
    causal_delta_off: float | None = None
    causal_random_mean: float | None = None
    causal_p_value: float | None = None


@dataclass(frozen=True)
class RankingRow:
    """One unit's place in the ranking of one feature.

    The held-out columns (``test_metric``, ``control_metric``, ``selectivity``, ``interval_*``)
    are filled for the top units only (None elsewhere); ``causal`` for the units ablated.

    Examples
    --------
    >>> row = RankingRow("quote", 1, Unit.parse("layer0/cell/4"), score=0.9, sign=1)
    >>> row.to_dict()["unit"], row.to_dict()["score"]
    ('layer0/cell/4', 0.9)
    >>> RankingRow.from_dict(row.to_dict(), "row", [], {"quote"}) == row
    True
    """

    feature: str
    rank: int
    unit: Unit
    score: float | None = None
    score_name: str | None = None
    sign: int | None = None
    auc: float | None = None
    pearson: float | None = None
    spearman: float | None = None
    mi: float | None = None
    test_metric: float | None = None
    control_metric: float | None = None
    selectivity: float | None = None
    interval_low: float | None = None
    interval_high: float | None = None
    interval_score: float | None = None
    causal: Causal | None = None

    @property
    def name(self) -> str:
        """The unit's name, ``layer0/cell/4``."""
        return str(self.unit)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {c: getattr(self, c) for c in COLUMNS}
        out["unit"] = str(self.unit)
        if self.causal is not None:
            out.update({c: getattr(self.causal, c) for c in CAUSAL_COLUMNS})
        return out

    def with_causal(self, columns: dict[str, Any]) -> RankingRow:
        """This row with its causal columns (numbers or None, by :data:`CAUSAL_COLUMNS`)."""
        return replace(self, causal=Causal(**{c: columns.get(c) for c in CAUSAL_COLUMNS}))

    @classmethod
    def from_dict(
        cls, obj: Any, where: str, problems: list[str], features: set[str] | dict[str, Any]
    ) -> RankingRow | None:
        """A row of a rankings file; None when its feature, unit or rank cannot be used (said
        in ``problems``, as is any other field read as missing)."""
        f = Fields(obj, where, problems)
        feature, unit = f.text("feature"), f.unit("unit")
        rank = f.integer("rank", minimum=1, required=True)
        if feature is not None and feature not in features:
            problems.append(f"{where}.feature: {feature!r} is not among the file's features")
            feature = None
        if feature is None or unit is None or rank is None:
            return None
        numbers = {c: f.number(c) for c in NUMERIC}
        sign = f.number("sign")
        causal = None
        if any(f.has(c) for c in CAUSAL_COLUMNS):
            causal = Causal(**{c: f.number(c) for c in CAUSAL_COLUMNS})
        return cls(
            feature=feature,
            rank=rank,
            unit=unit,
            score_name=f.text("score_name"),
            sign=None if sign is None else int(sign),
            causal=causal,
            **numbers,
        )


@dataclass(frozen=True)
class CurvePoint:
    """One point of a feature's top-k probe curve: a sparse probe on the ``k`` best units
    (``"all"``: every unit), held out, beside the same probe on the control tasks."""

    k: int | Literal["all"]
    test_metric: float | None = None
    control_metric: float | None = None
    control_block_metric: float | None = None
    selectivity: float | None = None
    test_metrics: dict[str, float | None] | None = None
    l1: float | None = None
    nonzero: int | None = None
    top_units: tuple[Unit, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.k}
        if self.test_metrics is not None:
            out.update(
                test_metric=self.test_metric,
                test_metrics=dict(self.test_metrics),
                l1=self.l1,
                nonzero=self.nonzero,
                top_units=[str(u) for u in self.top_units],
                control_metric=self.control_metric,
                control_block_metric=self.control_block_metric,
            )
        if self.error is not None:
            out.update(error=self.error)
        out.setdefault("test_metric", self.test_metric)
        out.setdefault("control_metric", self.control_metric)
        out["selectivity"] = self.selectivity
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str, problems: list[str]) -> CurvePoint | None:
        f = Fields(obj, where, problems)
        k: int | Literal["all"] | None = "all" if f.obj.get("k") == "all" else f.integer("k")
        if k is None:
            return None
        metrics = f.mapping("test_metrics")
        if metrics is not None:
            m = Fields(metrics, f"{where}.test_metrics", problems)
            metrics = {name: m.number(name) for name in text_keys(metrics, m.where, problems)}
        tops = f.listing("top_units") or []
        return cls(
            k=k,
            test_metric=f.number("test_metric"),
            control_metric=f.number("control_metric"),
            control_block_metric=f.number("control_block_metric"),
            selectivity=f.number("selectivity"),
            test_metrics=metrics,
            l1=f.number("l1"),
            nonzero=f.integer("nonzero", minimum=0),
            top_units=_units(tops, f"{where}.top_units", problems),
            error=f.text("error"),
        )


@dataclass(frozen=True)
class ProbeSummary:
    """The probe on a feature's top units (the last point of its curve), its controls and the
    current char alone as a baseline."""

    units: int | Literal["all"] | None = None
    test_metric: float | None = None
    control_metric: float | None = None
    control: str = "char-type"
    control_block_metric: float | None = None
    selectivity: float | None = None
    char_baseline_metric: float | None = None
    over_char_baseline: float | None = None
    positions: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, obj: Any, where: str, problems: list[str]) -> ProbeSummary:
        f = Fields(obj, where, problems)
        units: int | Literal["all"] | None = (
            "all" if f.obj.get("units") == "all" else f.integer("units")
        )
        return cls(
            units=units,
            test_metric=f.number("test_metric"),
            control_metric=f.number("control_metric"),
            control=f.text("control") or "char-type",
            control_block_metric=f.number("control_block_metric"),
            selectivity=f.number("selectivity"),
            char_baseline_metric=f.number("char_baseline_metric"),
            over_char_baseline=f.number("over_char_baseline"),
            positions=f.integer("positions", minimum=0),
        )


@dataclass(frozen=True)
class FeatureSummary:
    """What a ranking says about one feature as a whole: its labels (kind, positions, base rate
    or mean), how its units were scored, the probe and its curve, or why it was skipped."""

    feature: str
    kind: Kind | None = None
    definition: str = ""
    n_defined: int = 0
    base_rate: float | None = None
    mean: float | None = None
    std: float | None = None
    skipped: str | None = None
    score_name: str | None = None
    probe_metric: str | None = None
    unit_metric: str | None = None
    interval_positions: int | None = None
    curve: tuple[CurvePoint, ...] | None = None
    probe: ProbeSummary | None = None
    warning: str | None = None

    @property
    def scored(self) -> bool:
        """Whether the feature's units were ranked (it was not skipped)."""
        return self.skipped is None

    def probe_text(self) -> str | None:
        """The probe's result in words, or None without one.

        Examples
        --------
        >>> FeatureSummary("q", probe_metric="auc", probe=ProbeSummary(4, 0.9)).probe_text()
        'probe on top 4 units: held-out auc 0.900, control n/a, selectivity n/a'
        """
        p = self.probe
        if p is None or p.test_metric is None:
            return None
        which = "all units" if p.units == "all" else f"top {p.units} units"
        return (
            f"probe on {which}: held-out {self.probe_metric or ''} {_three(p.test_metric)}, "
            f"control {_three(p.control_metric)}, selectivity {_three(p.selectivity)}"
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "feature": self.feature,
            "kind": self.kind,
            "definition": self.definition,
            "n_defined": self.n_defined,
        }
        for name in ("base_rate", "mean", "std", "skipped", "score_name", "probe_metric"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        for name in ("unit_metric", "interval_positions", "warning"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.curve is not None:
            out["curve"] = [c.to_dict() for c in self.curve]
        if self.probe is not None:
            out["probe"] = self.probe.to_dict()
        return out

    @classmethod
    def from_dict(cls, name: str, obj: Any, where: str, problems: list[str]) -> FeatureSummary:
        """The summary of feature ``name``; fields that cannot be used are read as missing."""
        f = Fields(obj, where, problems)
        kind = f.text("kind")
        if kind is not None and kind not in ("binary", "continuous"):
            problems.append(f"{where}.kind: {kind!r} is neither binary nor continuous")
            kind = None
        curve = None
        points = f.listing("curve")
        if points is not None:
            read = (
                CurvePoint.from_dict(p, f"{where}.curve[{i}]", problems)
                for i, p in enumerate(points)
            )
            curve = tuple(p for p in read if p is not None)
        probe = f.mapping("probe")
        return cls(
            feature=name,
            kind=kind,  # type: ignore[arg-type]
            definition=f.text("definition") or "",
            n_defined=f.integer("n_defined", minimum=0) or 0,
            base_rate=f.number("base_rate"),
            mean=f.number("mean"),
            std=f.number("std"),
            skipped=(f.text("skipped") or "skipped") if f.has("skipped") else None,
            score_name=f.text("score_name"),
            probe_metric=f.text("probe_metric"),
            unit_metric=f.text("unit_metric"),
            interval_positions=f.integer("interval_positions", minimum=0),
            curve=curve,
            probe=None
            if probe is None
            else ProbeSummary.from_dict(probe, f"{where}.probe", problems),
            warning=f.text("warning"),
        )


def _three(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _units(values: list[Any], where: str, problems: list[str]) -> tuple[Unit, ...]:
    got = (unit_named(v, f"{where}[{i}]", problems) for i, v in enumerate(values))
    return tuple(u for u in got if u is not None)
