"""The gate dynamics kept beside a recording (``acts.h5`` -> ``acts.dynamics.json``), read back.

``lstmprobe dynamics`` (:func:`lstmprobe.causal.gate_dynamics`) writes the file (format
``lstmprobe.dynamics``, version 1; docs/causal.md); :func:`read_dynamics` reads it into
frozen values, every field checked (:mod:`lstmprobe._read`): what cannot be used is left out
and said, never a traceback, so that the report shows what is left of a damaged file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from lstmprobe._read import Fields, json_file, open_file, say_ignored, text_keys, unit_named
from lstmprobe.errors import StoreError, UnitError
from lstmprobe.names import Unit, parse_layer

FORMAT = "lstmprobe.dynamics"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class CharEffect:
    """A char after which a unit writes most (``mean_write``) or keeps least
    (``mean_keep_gate``)."""

    char: str
    value: float


@dataclass(frozen=True)
class Driver:
    """A strong incoming recurrent weight: ``source``'s hidden state into ``gate``."""

    source: Unit
    gate: str
    weight: float


@dataclass(frozen=True)
class UnitDynamics:
    """One state unit's dynamics (docs/causal.md); ``timescale`` None is infinite."""

    mean_keep_gate: float | None = None
    mean_write_gate: float | None = None
    timescale: float | None = None
    mean_abs_keep: float | None = None
    mean_abs_write: float | None = None
    write_share: float | None = None
    held: float | None = None
    reset: float | None = None
    writes_at: tuple[CharEffect, ...] = ()
    resets_at: tuple[CharEffect, ...] = ()
    drivers: tuple[Driver, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f: getattr(self, f) for f in _NUMBERS}
        out["writes_at"] = [{"char": w.char, "mean_write": w.value} for w in self.writes_at]
        out["resets_at"] = [{"char": r.char, "mean_keep_gate": r.value} for r in self.resets_at]
        if self.drivers is not None:
            out["drivers"] = [
                {"from": str(d.source), "gate": d.gate, "weight": d.weight} for d in self.drivers
            ]
        return out


_NUMBERS = tuple(f.name for f in fields(UnitDynamics) if f.name not in ("writes_at", "resets_at", "drivers"))  # fmt: skip


@dataclass(frozen=True)
class Timescales:
    """A layer's timescales: quantiles, units of infinite timescale, units per bin."""

    min: float | None = None
    q25: float | None = None
    median: float | None = None
    q75: float | None = None
    max: float | None = None
    infinite: int = 0
    counts: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["counts"] = dict(self.counts or {})
        return out


@dataclass(frozen=True)
class LayerDynamics:
    """One layer's kind (``lstm`` or ``gru``), timescales and the positions summed over."""

    kind: str
    timescales: Timescales
    positions: int


@dataclass(frozen=True)
class Dynamics:
    """A dynamics file: per layer its timescales, per state unit its dynamics."""

    store: str
    layers: dict[str, LayerDynamics]
    units: dict[str, UnitDynamics]
    selected: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "store": self.store,
            "layers": {
                name: {
                    "kind": layer.kind,
                    "timescales": layer.timescales.to_dict(),
                    "positions": layer.positions,
                }
                for name, layer in self.layers.items()
            },
            "units": {name: u.to_dict() for name, u in self.units.items()},
        }
        if self.selected is not None:
            out["selected"] = list(self.selected)
        return out

    @classmethod
    def from_dict(
        cls, obj: Any, *, lenient: bool = False, warn: Callable[[str], None] | None = None
    ) -> Dynamics:
        """A dynamics file's JSON, checked; :class:`StoreError` naming what is wrong (with
        ``lenient``, layers, units and fields that cannot be used are left out with one
        ``warn`` line instead; only an object that is not a dynamics file is an error).

        Examples
        --------
        >>> obj = {"format": "lstmprobe.dynamics", "format_version": 1, "layers": {},
        ...        "units": {"layer0/cell/0": {"timescale": 2.5}, "null": {}}}
        >>> d = Dynamics.from_dict(obj, lenient=True, warn=print)
        ignored what cannot be used: units: 'null' is not a unit name
        >>> d.units["layer0/cell/0"].timescale
        2.5
        """
        problems: list[str] = []
        top = open_file(
            obj, FORMAT, "an lstmprobe dynamics file", FORMAT_VERSION, problems, lenient=lenient
        )
        layers = {}
        for name, info in (top.mapping("layers") or {}).items():
            got = _layer(name, info, problems)
            if got is not None:
                layers[name] = got
        units = {}
        for name, info in (top.mapping("units") or {}).items():
            unit = unit_named(name, "units", problems)
            if unit is not None:
                units[str(unit)] = _unit(info, f"units[{name!r}]", problems)
        picked = top.listing("selected")
        selected = None
        if picked is not None:
            selected = tuple(u for u in picked if isinstance(u, str) and u in units)
        problems = [p.removeprefix(".") for p in problems]
        if problems and not lenient:
            raise StoreError(f"a damaged dynamics file: {problems[0]}")
        say_ignored(problems, warn)
        return cls(top.text("store") or "", layers, units, selected)


def _layer(name: Any, info: Any, problems: list[str]) -> LayerDynamics | None:
    where = f"layers[{name!r}]"
    f = Fields(info, where, problems)
    kind, positions = f.text("kind"), f.integer("positions", minimum=0, required=True)
    try:
        parse_layer(name)
    except UnitError:
        problems.append(f"layers: {name!r:.40} is not a layer name")
        return None
    if kind not in ("lstm", "gru") or positions is None:
        if kind is not None:
            problems.append(f"{where}.kind: {kind!r} is neither lstm nor gru")
        return None
    t = f.child("timescales")
    counts = t.mapping("counts") or {}
    c = Fields(counts, f"{t.where}.counts", problems)
    return LayerDynamics(
        kind=kind,
        timescales=Timescales(
            **{q: t.number(q) for q in ("min", "q25", "median", "q75", "max")},
            infinite=t.integer("infinite", minimum=0) or 0,
            counts={
                b: n
                for b in text_keys(counts, c.where, problems)
                if (n := c.integer(b, minimum=0)) is not None
            },
        ),
        positions=positions,
    )


def _unit(info: Any, where: str, problems: list[str]) -> UnitDynamics:
    f = Fields(info, where, problems)
    drivers = None
    found = f.listing("drivers")
    if found is not None:
        drivers = []
        for i, d in enumerate(found):
            df = Fields(d, f"{where}.drivers[{i}]", problems)
            source, gate, weight = df.unit("from"), df.text("gate"), df.number("weight")
            if source is not None and gate is not None and weight is not None:
                drivers.append(Driver(source, gate, weight))
    return UnitDynamics(
        **{k: f.number(k) for k in _NUMBERS},
        writes_at=_effects(f, "writes_at", "mean_write"),
        resets_at=_effects(f, "resets_at", "mean_keep_gate"),
        drivers=None if drivers is None else tuple(drivers),
    )


def _effects(f: Fields, key: str, value: str) -> tuple[CharEffect, ...]:
    out = []
    for i, e in enumerate(f.listing(key) or []):
        ef = Fields(e, f"{f.where}.{key}[{i}]", f.problems)
        char, number = ef.text("char"), ef.number(value)
        if char is not None and number is not None:
            out.append(CharEffect(char, number))
    return tuple(out)


def read_dynamics(
    path: str | os.PathLike[str],
    *,
    lenient: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Dynamics:
    """The dynamics file at ``path`` (:meth:`Dynamics.from_dict`; the ``warn`` line starts
    with ``path``)."""
    obj = json_file(path, "dynamics")
    said = None if warn is None else (lambda line: warn(f"{path}: {line}"))
    try:
        return Dynamics.from_dict(obj, lenient=lenient, warn=said)
    except StoreError as exc:
        raise StoreError(f"{path}: {exc}") from None
