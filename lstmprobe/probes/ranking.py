"""A ranking of units per feature (:class:`Ranking`): its rows, JSON and CSV files, and table.

A light module: reading and writing rankings files needs NumPy only, so the report and the
CLI read rankings without loading scikit-learn (the ranking is made by
:func:`~lstmprobe.probes.rank_units`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmprobe._io import atomic_write, json_text, write_failed
from lstmprobe._read import json_file, open_file, say_ignored, usable_text
from lstmprobe.errors import FeatureError, StoreError
from lstmprobe.names import Unit
from lstmprobe.probes.rows import CAUSAL_COLUMNS, COLUMNS, FeatureSummary, RankingRow

if TYPE_CHECKING:
    from lstmprobe.store.recording import Recording

FORMAT = "lstmprobe.rankings"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Ranking:
    """Units ranked per feature: one row per (feature, unit), sorted by feature then rank.

    ``rows`` holds :class:`~lstmprobe.probes.rows.RankingRow` values (:data:`COLUMNS`); the
    held-out columns are filled for the top units only (None elsewhere). ``features`` holds one
    :class:`~lstmprobe.probes.rows.FeatureSummary` per feature: kind, base rate, the probe's
    held-out metrics, control and selectivity, the top-k curve, or why it was skipped.
    """

    rows: tuple[RankingRow, ...]
    features: dict[str, FeatureSummary] = field(default_factory=dict)
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

    @property
    def scored(self) -> list[str]:
        """The features whose units were ranked (not skipped), in order."""
        return [f for f, s in self.features.items() if s.scored]

    def for_feature(self, feature: str | None = None) -> list[RankingRow]:
        name = self._feature(feature)
        return [r for r in self.rows if r.feature == name]

    def _feature(self, feature: str | None) -> str:
        scored = self.scored
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
        return [r.name for r in self.for_feature(feature)[:k]]

    def top_units(self, k: int = 10, feature: str | None = None) -> list[Unit]:
        """The ``k`` best units for ``feature``, as :class:`~lstmprobe.names.Unit` values."""
        return [r.unit for r in self.for_feature(feature)[:k]]

    def with_columns(self, values: dict[tuple[str, str], dict[str, Any]]) -> Ranking:
        """A copy whose rows ``(feature, unit name)`` in ``values`` gain those causal columns
        (:data:`CAUSAL_COLUMNS`)."""
        rows = tuple(
            r.with_causal(values[(r.feature, r.name)]) if (r.feature, r.name) in values else r
            for r in self.rows
        )
        return dataclasses.replace(self, rows=rows)

    def _columns(self) -> list[str]:
        causal = any(r.causal is not None for r in self.rows)
        return [*COLUMNS, *(CAUSAL_COLUMNS if causal else ())]

    def to_records(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "store": self.store,
            "recording": self.recording,
            "settings": self.settings,
            "features": {name: s.to_dict() for name, s in self.features.items()},
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
        >>> a = Ranking(_example_rows("x"), _example_features("x"), settings={"seed": 0})
        >>> b = Ranking(_example_rows("y"), _example_features("y"), settings={"seed": 1})
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
            rows += [r for r in source.rows if r.feature == name]
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
        >>> a = Ranking(_example_rows("x"), _example_features("x"), recording={"positions": 5})
        >>> b = Ranking(_example_rows("y"), _example_features("y"), recording={"positions": 5})
        >>> b.merged_with_saved(a).feature_names, b.merged_with_saved(None).feature_names
        (['x', 'y'], ['y'])
        >>> c = Ranking(_example_rows("y"), _example_features("y"), recording={"positions": 6})
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
        for r in self.to_records():
            writer.writerow({k: "" if is_missing(r.get(k)) else r.get(k) for k in columns})
        text = buf.getvalue()
        if path is not None:
            _write_text(path, text)
        return text

    @classmethod
    def from_dict(
        cls, obj: Any, *, lenient: bool = False, warn: Callable[[str], None] | None = None
    ) -> Ranking:
        """A ranking from its :meth:`to_dict` form, every field checked (:mod:`lstmprobe._read`);
        :class:`StoreError` naming what is wrong.

        With ``lenient`` (what the report reads), an older, newer or partly damaged file is read
        as far as it goes: rows, features and fields that cannot be used are left out and said
        in one ``warn`` line, and the rows are put in rank order; only an object that is not a
        rankings file at all is an error.

        Examples
        --------
        >>> obj = {"format": "lstmprobe.rankings", "features": {"x": {}},
        ...        "rows": [{"feature": "x", "unit": "layer0/cell/1", "rank": 2},
        ...                 {"feature": "x", "unit": "null", "rank": 1}]}
        >>> Ranking.from_dict(obj)
        Traceback (most recent call last):
        ...
        lstmprobe.errors.StoreError: a damaged rankings file: format_version: missing
        >>> Ranking.from_dict(obj, lenient=True, warn=print).top(5, "x")
        ignored what cannot be used: format_version: missing; rows[1].unit: 'null' is not a unit name
        ['layer0/cell/1']
        """
        problems: list[str] = []
        top = open_file(
            obj, FORMAT, "an lstmprobe rankings file", FORMAT_VERSION, problems, lenient=lenient
        )
        store = top.text("store") or ""
        settings = top.free("settings") or {}
        recording = top.free("recording") or {}
        features: dict[str, FeatureSummary] = {}
        for name, summary in (top.mapping("features") or {}).items():
            if not usable_text(name) or not isinstance(summary, dict):
                problems.append(f"features[{name!r}]: {summary!r:.40} is not an object")
                continue
            features[name] = FeatureSummary.from_dict(
                name, summary, f"features[{name!r}]", problems
            )
        rows = []
        for i, row in enumerate(top.listing("rows") or []):
            got = RankingRow.from_dict(row, f"rows[{i}]", problems, features)
            if got is not None:
                rows.append(got)
        problems = [p.removeprefix(".") for p in problems]
        if problems and not lenient:
            raise StoreError(f"a damaged rankings file: {problems[0]}")
        order = {name: n for n, name in enumerate(features)}
        rows.sort(key=lambda r: (order[r.feature], r.rank))
        say_ignored(problems, warn)
        return cls(tuple(rows), features, store, dict(settings), dict(recording))

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
        obj = json_file(path, "rankings")
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
            if not summary.scored:
                continue
            rows = self.for_feature(name)[:top]
            probed = any(not is_missing(r.test_metric) for r in rows)
            header = f"  {'rank':>4}  {'unit':<28} {'score':>6} {'sign':>4}"
            if not probed:  # scores only (probe=False): no empty held-out columns
                causal = any(r.causal is not None for r in rows)
                lines.append(
                    header + (f"  {'ablated':>8}  {'random':>7}  {'p':>5}" if causal else "")
                )
                lines.extend(
                    (
                        f"  {r.rank:>4}  {r.name:<28} {_score_sign(r)}"
                        + (_causal_cells(r) if causal else "")
                    ).rstrip()
                    for r in rows
                )
                if causal:
                    lines.append(_CAUSAL_NOTE)
                lines.append("")
                continue
            header += f"  {'held-out':>8}  {'control':>7}  {'select.':>7}  sample [95% interval]"
            unit_metric = summary.unit_metric
            causal = any(r.causal is not None for r in rows)
            width = len(header) + 2  # the interval column: "0.912 [0.900, 0.930]"
            if causal:
                header = f"{header:<{width}}  {'ablated':>8}  {'random':>7}  {'p':>5}"
            lines.append(header)
            for r in rows:
                interval = (
                    f"{_fmt(r.interval_score)} [{r.interval_low:.3f}, {r.interval_high:.3f}]"
                    if r.interval_low is not None and r.interval_high is not None
                    else ""
                )
                line = (
                    f"  {r.rank:>4}  {r.name:<28} {_score_sign(r)}  "
                    f"{_fmt(r.test_metric):>8}  {_fmt(r.control_metric):>7}  "
                    f"{_fmt(r.selectivity):>7}  {interval}"
                )
                if causal:
                    line = (f"{line:<{width}}" + _causal_cells(r)).rstrip()
                lines.append(line)
            n_interval = summary.interval_positions
            if n_interval is not None:
                lines.append(
                    f"  score: on all {summary.n_defined:,} positions; sample [95% "
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
            curve = summary.curve or ()
            if curve:
                pts = ", ".join(f"{c.k}: {_fmt(c.test_metric)}" for c in curve)
                lines.append(f"  top-k probe ({summary.probe_metric or ''}) {pts}")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"


def saved_ranking(recording: Recording | str | os.PathLike[str]) -> Ranking | None:
    """The ranking saved beside a recording (``acts.rankings.json``), or None if there is none.

    A file that cannot be read is a :class:`StoreError` saying how to go on: a ranking saved
    there is merged into it (:func:`save_ranking`), so it is checked before any work.
    """
    from lstmprobe.store.recording import Recording  # the store's h5py only when saving

    path = recording if isinstance(recording, Recording) else Recording.at(recording)
    if not path.rankings.exists():
        return None
    try:
        return Ranking.read_json(path.rankings)
    except StoreError as exc:
        raise StoreError(
            f"{exc}; a ranking is saved by merging into that file: move it away, or pass "
            "`save=False`"
        ) from None


def save_ranking(
    ranking: Ranking,
    recording: Recording | str | os.PathLike[str],
    *,
    warn: Callable[[str], None] | None = None,
) -> Ranking:
    """Save ``ranking`` beside its recording, merged with what is saved there; returns what
    was written.

    The one rule for the rankings file (``acts.rankings.json``, :attr:`Recording.rankings`):
    a feature ranked again replaces its earlier rows, the others stay, when both rank the same
    recording (:meth:`Ranking.merged_into`); another recording's ranking is replaced, with a
    ``warn``-ing (:meth:`Ranking.merged_with_saved`). Written atomically.

    Parameters
    ----------
    ranking : Ranking
        What :func:`~lstmprobe.probes.rank_units` returned.
    recording : Recording, or the path of its store (``acts.h5``)
    warn : callable, optional
        Hears one line when another recording's ranking is replaced.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = tempfile.TemporaryDirectory()
    >>> a = Ranking(_example_rows("x"), _example_features("x"), recording={"positions": 5})
    >>> b = Ranking(_example_rows("y"), _example_features("y"), recording={"positions": 5})
    >>> _ = save_ranking(a, Path(d.name) / "acts.h5")
    >>> save_ranking(b, Path(d.name) / "acts.h5").feature_names
    ['x', 'y']
    >>> sorted(p.name for p in Path(d.name).iterdir())
    ['acts.rankings.json']
    >>> d.cleanup()
    """
    from lstmprobe.store.recording import Recording

    rec = recording if isinstance(recording, Recording) else Recording.at(recording)
    earlier = saved_ranking(rec)
    merged = ranking.merged_with_saved(earlier, path=rec.rankings, warn=warn)
    merged.to_json(rec.rankings)
    return merged


def _score_sign(r: RankingRow) -> str:
    mark = "" if r.sign is None else "+" if r.sign > 0 else "-"
    return f"{_fmt(r.score):>6} {mark:>4}"


def _example_rows(feature: str) -> tuple[RankingRow, ...]:
    """One row of ``feature`` (the examples of the docstrings)."""
    return (RankingRow(feature, 1, Unit.parse("layer0/cell/0")),)


def _example_features(feature: str) -> dict[str, FeatureSummary]:
    return {feature: FeatureSummary(feature, "binary")}


_UNIT_METRICS = {"auc": "AUC (0.5 chance)", "spearman": "Spearman (0 chance)"}

_CAUSAL_NOTE = (
    "  ablated: bits/char lost where the feature is on when the unit is zeroed; random: the "
    "mean for random units of its layer and quantity; p: its rank among them"
)


def _causal_cells(r: RankingRow) -> str:
    c = r.causal
    if c is None:
        return ""
    return (
        f"  {_fmt(c.causal_delta_on):>8}  {_fmt(c.causal_random_mean):>7}  "
        f"{_fmt(c.causal_p_value):>5}"
    )


def _summary_line(name: str, s: FeatureSummary) -> str:
    if not s.scored:
        return f"{name}: skipped: {s.skipped}"
    bits = [f"{name} ({s.kind}"]
    if s.base_rate is not None:
        bits.append(f", base rate {s.base_rate:.3f}")
    bits.append(f", {s.n_defined} positions)")
    probe, said = s.probe, s.probe_text()
    if probe is not None and said is not None:
        bits.append(f"  {said}")
        if probe.char_baseline_metric is not None and probe.over_char_baseline is not None:
            bits.append(
                f"; current char alone {_fmt(probe.char_baseline_metric)} "
                f"({probe.over_char_baseline:+.3f} beyond the char), block-shuffled labels "
                f"{_fmt(probe.control_block_metric) or 'n/a'}"
            )
    if s.warning:
        bits.append(f"  note: {s.warning}")
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
