"""A ranking of units per feature (:class:`Ranking`): its rows, JSON and CSV files, and table.

A light module: reading and writing rankings files needs NumPy only, so the report and the
CLI read rankings without loading scikit-learn (the ranking is made by
:func:`~lstmprobe.probes.rank_units`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmprobe._io import atomic_write, json_text, write_failed
from lstmprobe.errors import FeatureError, StoreError, one_line

FORMAT = "lstmprobe.rankings"
FORMAT_VERSION = 1


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
#: random units of its layer and quantity, and the empirical p-value. Written to CSV only when
#: present.
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

    def merged_with_saved(
        self,
        earlier: Ranking | None,
        *,
        path: str | os.PathLike[str] = "the rankings file",
        warn: Callable[[str], None] | None = None,
    ) -> Ranking:
        """What to save where ``earlier`` was saved (at ``path``): this ranking merged into it
        when both rank the same recording (:meth:`merged_into`), else this ranking alone, with
        a ``warn``-ing when that replaces another recording's features.

        Examples
        --------
        >>> a = Ranking(({"feature": "x", "unit": "u"},), {"x": {}}, recording={"positions": 5})
        >>> b = Ranking(({"feature": "y", "unit": "u"},), {"y": {}}, recording={"positions": 5})
        >>> b.merged_with_saved(a).feature_names, b.merged_with_saved(None).feature_names
        (['x', 'y'], ['y'])
        >>> c = Ranking(({"feature": "y", "unit": "u"},), {"y": {}}, recording={"positions": 6})
        >>> c.merged_with_saved(a, path="acts.rankings.json", warn=print).feature_names
        acts.rankings.json held rankings of another recording (x); it is replaced by this ranking
        ['y']
        """
        if earlier is None:
            return self
        if self.same_recording(earlier):
            return self.merged_into(earlier)
        if earlier.features and warn is not None:
            which = "another recording" if earlier.recording else "an unnamed recording"
            warn(
                f"{path} held rankings of {which} ({', '.join(earlier.features)}); it is "
                "replaced by this ranking"
            )
        return self

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """JSON text (NaN written as null); also written atomically to ``path`` when given.

        The text returned is the text written: what ``find-neurons`` saves beside a store.
        """
        text = json_text(_clean(self.to_dict()))
        if path is not None:
            _write_text(path, text)
        return text

    def to_csv(self, path: str | os.PathLike[str] | None = None) -> str:
        """CSV text with one row per (feature, unit); also written to ``path`` when given."""
        buf = io.StringIO()
        columns = self._columns()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: "" if is_missing(r.get(k)) else r.get(k) for k in columns})
        text = buf.getvalue()
        if path is not None:
            _write_text(path, text)
        return text

    @classmethod
    def from_dict(
        cls, obj: Any, *, lenient: bool = False, warn: Callable[[str], None] | None = None
    ) -> Ranking:
        """A ranking from its :meth:`to_dict` form; :class:`StoreError` naming what is wrong.

        With ``lenient`` (what the report reads), an older, newer or partly damaged file is read
        as far as it goes: rows, features and fields that cannot be used are left out and said
        in one ``warn`` line, and the rows are put in rank order; only an object that is not a
        rankings file at all is an error.

        Examples
        --------
        >>> obj = {"format": "lstmprobe.rankings", "features": {"x": {}},
        ...        "rows": [{"feature": "x", "unit": "u", "rank": 2}, {"feature": "x", "rank": 1}]}
        >>> Ranking.from_dict(obj)
        Traceback (most recent call last):
        ...
        lstmprobe.errors.StoreError: a damaged rankings file (format_version None)
        >>> Ranking.from_dict(obj, lenient=True, warn=print).top(5, "x")
        ignored what cannot be used: no format_version; row 1: unit None is not a unit name
        ['u']
        """
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise StoreError("not an lstmprobe rankings file (no 'format': 'lstmprobe.rankings')")
        ignored: list[str] = []

        def damaged(message: str, what: str) -> None:
            if not lenient:
                raise StoreError(message)
            ignored.append(what)

        version = obj.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            what = "no format_version" if version is None else f"format_version {version!r}"
            damaged(f"a damaged rankings file (format_version {version!r})", what)
        elif version > FORMAT_VERSION:
            damaged(
                f"a rankings file of format version {version}; this lstmprobe reads version "
                f"{FORMAT_VERSION}: upgrade lstmprobe",
                f"what format version {version} adds (this lstmprobe reads {FORMAT_VERSION})",
            )
        rows, features = obj.get("rows", []), obj.get("features", {})
        store, settings = obj.get("store", ""), obj.get("settings", {})
        recording = obj.get("recording", {})
        if not isinstance(features, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in features.items()
        ):
            damaged(
                "a damaged rankings file ('features' is not an object of objects)",
                "features that are not objects",
            )
            kept = features.items() if isinstance(features, dict) else ()
            features = {k: v for k, v in kept if isinstance(k, str) and isinstance(v, dict)}
        if not isinstance(settings, dict) or not isinstance(recording, dict):
            damaged(
                "a damaged rankings file ('settings' or 'recording' not an object)",
                "'settings' or 'recording' (not an object)",
            )
            settings = settings if isinstance(settings, dict) else {}
            recording = recording if isinstance(recording, dict) else {}
        if not isinstance(store, str) or not isinstance(rows, list):
            damaged(
                "a damaged rankings file ('store' or 'rows' of the wrong type)",
                "'store' or 'rows' (of the wrong type)",
            )
            store = store if isinstance(store, str) else ""
            rows = rows if isinstance(rows, list) else []
        good = []
        for i, row in enumerate(rows):
            problem = _row_problem(row, features)
            if problem is None:
                good.append(row)
                continue
            damaged(f"a damaged rankings file (row {i}: {problem})", f"row {i}: {problem}")
        if lenient:
            order = {name: n for n, name in enumerate(features)}
            good.sort(key=lambda r: (order[r["feature"]], r["rank"]))
            if ignored and warn is not None:
                more = f" (and {len(ignored) - 3} more)" if len(ignored) > 3 else ""
                warn(f"ignored what cannot be used: {'; '.join(ignored[:3])}{more}")
        return cls(tuple(good), dict(features), store, dict(settings), dict(recording))

    @classmethod
    def read_json(
        cls,
        path: str | os.PathLike[str],
        *,
        lenient: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> Ranking:
        """A rankings file (``acts.rankings.json``); ``lenient`` and ``warn`` as in
        :meth:`from_dict` (the ``warn`` line starts with ``path``)."""
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StoreError(f"rankings file {path} does not exist") from None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            detail = one_line(exc)
            raise StoreError(f"rankings file {path} is not valid JSON: {detail}") from None
        except (IsADirectoryError, PermissionError, OSError) as exc:
            raise StoreError(f"cannot read rankings file {path}: {exc.strerror or exc}") from None
        said = None if warn is None else (lambda line: warn(f"{path}: {line}"))
        try:
            return cls.from_dict(obj, lenient=lenient, warn=said)
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
            probed = any(not is_missing(r.get("test_metric")) for r in rows)
            header = f"  {'rank':>4}  {'unit':<28} {'score':>6} {'sign':>4}"
            if not probed:  # scores only (probe=False): no empty held-out columns
                causal = any(not is_missing(r.get("causal_p_value")) for r in rows)
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
            causal = any(not is_missing(r.get("causal_p_value")) for r in rows)
            width = len(header) + 2  # the interval column: "0.912 [0.900, 0.930]"
            if causal:
                header = f"{header:<{width}}  {'ablated':>8}  {'random':>7}  {'p':>5}"
            lines.append(header)
            for r in rows:
                interval = (
                    f"{_fmt(r.get('interval_score'))} "
                    f"[{r['interval_low']:.3f}, {r['interval_high']:.3f}]"
                    if not is_missing(r.get("interval_low"))
                    and not is_missing(r.get("interval_high"))
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
    mark = "" if sign is None or is_missing(sign) else "+" if sign > 0 else "-"
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
    return "" if is_missing(v) else f"{v:.3f}"


def is_missing(v: Any) -> bool:
    """Whether a ranking's value is absent (None or NaN)."""
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


def _write_text(path: str | os.PathLike[str], text: str) -> None:
    """``text`` into ``path`` atomically, as written (no newline translation); an OSError is one
    StoreError line."""
    try:
        with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    except OSError as exc:
        raise StoreError(write_failed(path, exc)) from None
