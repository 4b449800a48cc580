"""Reading a side file's JSON field by field: what cannot be used is said, never a traceback.

The files kept beside a recording (rankings, dynamics, ablation summaries) are read back into
frozen dataclasses through :class:`Fields`: each field is taken with its type (a number, an
integer, a text, a unit name, an object, a list), and what does not fit is collected as one
short line in ``problems`` (``rows[3].rank: 'x' is not an integer``) and read as missing. A
strict reader refuses a file with any problem; a lenient one (the report) uses what is left and
says what it left out in one warning line (:func:`say_ignored`).

Examples
--------
>>> problems: list[str] = []
>>> f = Fields({"rank": "2", "score": float("nan"), "name": "a\\ud800"}, "row", problems)
>>> f.integer("rank"), f.number("score"), f.text("name")
(None, None, None)
>>> problems
["row.rank: '2' is not an integer", "row.name: 'a\\\\ud800' is not valid text"]
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lstmprobe.errors import StoreError, UnitError, one_line
from lstmprobe.names import Unit


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def usable_text(value: Any) -> bool:
    """A str that can be written as UTF-8 (no lone surrogate, which JSON can carry)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Fields:
    """The fields of one JSON object ``obj`` (named ``where`` in messages), read with their
    types; what does not fit is appended to ``problems`` and read as None."""

    def __init__(self, obj: Any, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        self.obj: dict[str, Any] = obj if isinstance(obj, dict) else {}
        if not isinstance(obj, dict):
            problems.append(f"{where}: {_show(obj)} is not an object")

    @property
    def ok(self) -> bool:
        return isinstance(self.obj, dict)

    def has(self, key: str) -> bool:
        return self.obj.get(key) is not None

    def _bad(self, key: str, value: Any, what: str) -> None:
        self.problems.append(f"{self.where}.{key}: {_show(value)} is not {what}")

    def number(self, key: str, *, required: bool = False) -> float | None:
        """A finite number (an int or float, not a bool); NaN and null read as missing."""
        value = self.obj.get(key)
        if value is None:
            if required:
                self.problems.append(f"{self.where}.{key}: missing")
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._bad(key, value, "a number")
            return None
        if isinstance(value, float) and math.isnan(value):
            return None
        if not math.isfinite(value):
            self._bad(key, value, "a finite number")
            return None
        return float(value)

    def integer(
        self, key: str, *, minimum: int | None = None, required: bool = False
    ) -> int | None:
        """An integer (not a bool), at least ``minimum`` when given."""
        value = self.obj.get(key)
        if value is None:
            if required:
                self.problems.append(f"{self.where}.{key}: missing")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self._bad(key, value, "an integer")
            return None
        if minimum is not None and value < minimum:
            self._bad(key, value, f"an integer of at least {minimum}")
            return None
        return value

    def text(self, key: str, *, required: bool = False) -> str | None:
        """A string that is valid text."""
        value = self.obj.get(key)
        if value is None:
            if required:
                self.problems.append(f"{self.where}.{key}: missing")
            return None
        if not usable_text(value):
            self._bad(key, value, "valid text")
            return None
        return str(value)

    def unit(self, key: str) -> Unit | None:
        """A unit name (``layer0/cell/17``), parsed."""
        value: Any = self.obj.get(key)
        try:
            return Unit.parse(value)
        except UnitError:
            self._bad(key, value, "a unit name")
            return None

    def units(self, key: str) -> tuple[Unit, ...] | None:
        """A list of unit names, parsed; None when any is not one."""
        value = self.obj.get(key)
        if not isinstance(value, list):
            self._bad(key, value, "a list of unit names")
            return None
        try:
            return tuple(Unit.parse(u) for u in value)
        except UnitError:
            self._bad(key, value, "a list of unit names")
            return None

    def mapping(self, key: str) -> dict[str, Any] | None:
        """An object (absent: None)."""
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self._bad(key, value, "an object")
            return None
        return value

    def free(self, key: str) -> dict[str, Any] | None:
        """An object of free-form JSON (settings, provenance): kept, less any text that is not
        valid text and any number that is not finite (each said in ``problems``)."""
        found = self.mapping(key)
        return None if found is None else clean_json(found, f"{self.where}.{key}", self.problems)

    def listing(self, key: str) -> list[Any] | None:
        """A list (absent: None)."""
        value = self.obj.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self._bad(key, value, "a list")
            return None
        return value

    def child(self, key: str) -> Fields:
        """The object at ``key`` as :class:`Fields` (an absent one is empty, not a problem)."""
        value = self.obj.get(key)
        return Fields({} if value is None else value, f"{self.where}.{key}", self.problems)


#: the largest side file read back as JSON (held whole while it is read)
MAX_JSON_BYTES = 1 << 30


def json_file(path: str | os.PathLike[str], what: str) -> Any:
    """The parsed JSON of the ``what`` file at ``path`` (``"rankings"``, ``"dynamics"``); every
    way it cannot be read is one :class:`StoreError` line, and a file over
    :data:`MAX_JSON_BYTES` is refused before it is read."""
    try:
        if os.stat(path).st_size > MAX_JSON_BYTES:
            raise StoreError(
                f"{what} file {path} is larger than one can be ({MAX_JSON_BYTES:,} bytes)"
            )
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{what} file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise StoreError(f"{what} file {path} is not valid JSON: {one_line(exc)}") from None
    except OSError as exc:
        raise StoreError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None


def open_file(
    obj: Any, fmt: str, what: str, version: int, problems: list[str], *, lenient: bool
) -> Fields:
    """The top of a side file's JSON: refused unless its ``format`` is ``fmt``; its
    ``format_version`` read (missing: a problem; newer than ``version``: an error, or with
    ``lenient`` a problem, what the newer version adds being left out).

    Examples
    --------
    >>> open_file({"format": "x", "format_version": 2}, "x", "an x file", 1, [], lenient=False)
    Traceback (most recent call last):
    ...
    lstmprobe.errors.StoreError: an x file of format version 2; this lstmprobe reads version 1: upgrade lstmprobe
    """
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise StoreError(f"not {what} (no 'format': {fmt!r})")
    top = Fields(obj, "", problems)
    found = top.integer("format_version", minimum=1, required=True)
    if found is not None and found > version:
        if not lenient:
            raise StoreError(
                f"{what} of format version {found}; this lstmprobe reads version {version}: "
                "upgrade lstmprobe"
            )
        problems.append(f"what format version {found} adds (this lstmprobe reads {version})")
    return top


def clean_json(value: Any, where: str, problems: list[str]) -> Any:
    """``value`` (parsed JSON) without the strings that are not valid text and the numbers that
    are not finite (dropped from objects and lists; each said in ``problems``).

    Examples
    --------
    >>> problems: list[str] = []
    >>> clean_json({"a": [1, float("nan"), "x\\ud800"], "\\udfff": 2, "b": "ok"}, "s", problems)
    {'a': [1], 'b': 'ok'}
    >>> len(problems)
    3
    """
    if isinstance(value, str):
        return value if usable_text(value) else _dropped(value, where, problems)
    if isinstance(value, float) and not math.isfinite(value):
        return _dropped(value, where, problems)
    if isinstance(value, list):
        items = (clean_json(v, f"{where}[{i}]", problems) for i, v in enumerate(value))
        return [v for v in items if v is not _DROPPED]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not usable_text(k):
                _dropped(k, where, problems)
                continue
            got = clean_json(v, f"{where}.{k}", problems)
            if got is not _DROPPED:
                out[k] = got
        return out
    return value


_DROPPED = object()


def _dropped(value: Any, where: str, problems: list[str]) -> Any:
    problems.append(f"{where}: {_show(value)} is not valid JSON text or a finite number")
    return _DROPPED


def text_keys(found: dict[Any, Any], where: str, problems: list[str]) -> list[str]:
    """The keys of an object that are valid text (the others said in ``problems``)."""
    keys = [k for k in found if usable_text(k)]
    problems += [f"{where}: key {_show(k)} is not valid text" for k in found if k not in keys]
    return keys


def unit_named(value: Any, where: str, problems: list[str]) -> Unit | None:
    """``value`` parsed as a unit name, or None (said in ``problems`` as ``where``'s)."""
    try:
        return Unit.parse(value)
    except UnitError:
        problems.append(f"{where}: {_show(value)} is not a unit name")
        return None


def say_ignored(problems: list[str], warn: Callable[[str], None] | None, prefix: str = "") -> None:
    """One ``warn`` line naming what a lenient read left out (the first three problems).

    Examples
    --------
    >>> say_ignored(["a: x", "b: y", "c: z", "d: w"], print)
    ignored what cannot be used: a: x; b: y; c: z (and 1 more)
    """
    if not problems or warn is None:
        return
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    warn(f"{prefix}ignored what cannot be used: {'; '.join(problems[:3])}{more}")
