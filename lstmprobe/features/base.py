"""What a feature is (:class:`Feature`) and a table of them (:class:`Registry`).

A feature maps a text to one float per character, describing the state AFTER reading that
character; ``NaN`` marks positions where the feature is undefined (they are masked, never guessed).
Binary features take the values 0 and 1; anything else is continuous.

This module imports no feature definitions: :mod:`lstmprobe.features.builtins`,
:mod:`lstmprobe.features.prose` and :mod:`lstmprobe.features.regex` each fill a
:class:`Registry` of their own, and :mod:`lstmprobe.features.registry` adds them to the default
one in one place.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from lstmprobe.errors import FeatureError
from lstmprobe.features.stream import Scanner, WholeScanner

Kind = Literal["binary", "continuous"]
FeatureFunc = Callable[..., Any]
FamilyFactory = Callable[[str, str], "Feature"]


@dataclass(frozen=True)
class Feature:
    """A named labelling of a text, one value per character.

    Parameters
    ----------
    name : str
        The spec that names it (``quote``, ``char:x``, ``my.py:func``).
    func : callable
        ``func(text) -> array of shape (len(text),)``; a function that also declares a
        ``sequences`` parameter receives the ``[start, end)`` array of the recording.
    kind : {"binary", "continuous"} or None
        None: inferred from the values (binary when every defined value is 0 or 1).
    definition : str
        One precise sentence shown by ``lstmprobe features``.
    per_sequence : bool
        Compute on each sequence separately (the state of the text resets where the model's
        does); built-ins do, user functions receive the whole text.
    stream : callable, optional
        ``stream() -> Scanner`` that labels one sequence piece by piece with the same result
        as ``func`` (:mod:`lstmprobe.features.stream`), so long recordings are labelled in
        bounded memory; without one a sequence is labelled once all of it is read.
    hint : str
        Why the feature may be constant on a corpus and what to try instead (shown when it is).
    """

    name: str
    func: FeatureFunc = field(repr=False, compare=False)
    kind: Kind | None = None
    definition: str = ""
    per_sequence: bool = False
    stream: Callable[[], Scanner] | None = field(default=None, repr=False, compare=False)
    hint: str = field(default="", repr=False, compare=False)

    def labels(self, text: str, sequences: np.ndarray | None = None) -> np.ndarray:
        """Labels of ``text``: float32 array of shape (len(text),), NaN where undefined.

        Examples
        --------
        >>> from lstmprobe.features import get_feature
        >>> get_feature("char:a").labels("banana").tolist()
        [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
        """
        n = len(text)
        if sequences is None or len(sequences) == 0:
            sequences = np.array([[0, n]], dtype=np.int64)
        if self.per_sequence:
            out = np.full(n, np.nan, dtype=np.float32)
            for start, end in np.asarray(sequences, dtype=np.int64):
                if end > start:
                    out[start:end] = self._call(text[start:end], None)
            return out
        return self._call(text, np.asarray(sequences, dtype=np.int64))

    def scanner(self, length: int | None = None) -> Scanner:
        """A fresh :class:`~lstmprobe.features.stream.Scanner` for one sequence (of ``length``
        chars, when known: :meth:`~lstmprobe.features.stream.Scanner.expect`)."""
        made = self.stream() if self.stream is not None else WholeScanner(self._whole)
        if length is not None:
            made.expect(length)
        return made

    def _whole(self, text: str) -> np.ndarray:
        return self._call(text, None)

    def _call(self, text: str, sequences: np.ndarray | None) -> np.ndarray:
        try:
            if sequences is not None and _wants_sequences(self.func):
                values = self.func(text, sequences=sequences)
            else:
                values = self.func(text)
        except FeatureError:
            raise
        except (Exception, SystemExit) as exc:  # a feature calling sys.exit() is a failure too
            raise FeatureError(failure(f"feature {self.name!r} failed", exc, self.func)) from exc
        try:
            with np.errstate(over="ignore"):  # too large for float32 -> inf, refused below
                arr = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            raise FeatureError(
                f"feature {self.name!r} returned {type(values).__name__}, not numbers; return "
                "an array of floats, one per character (NaN = undefined)"
            ) from None
        if arr.shape != (len(text),):
            raise FeatureError(
                f"feature {self.name!r} returned shape {arr.shape} for a text of {len(text)} "
                f"characters; return one value per character, shape ({len(text)},)"
            )
        infinite = np.isinf(arr)
        if infinite.any():
            at = int(np.argmax(infinite))
            raise FeatureError(
                f"feature {self.name!r} returned {arr[at]} at position {at} (too large for "
                "float32 or infinite); return finite values; NaN = undefined"
            )
        return arr

    def infer_kind(self, labels: np.ndarray) -> Kind:
        """``kind`` if set, else binary when every defined label is 0 or 1."""
        if self.kind is not None:
            return self.kind
        return "binary" if is_binary(labels) else "continuous"


def is_binary(values: np.ndarray) -> bool:
    """Whether every defined (not NaN) value is 0 or 1: what makes a feature binary when it
    does not say its kind (features, labels and probes all decide so here).

    Examples
    --------
    >>> is_binary(np.array([0.0, 1.0, np.nan])), is_binary(np.array([0.0, 2.0]))
    (True, False)
    """
    values = np.asarray(values)
    return bool(np.isin(values[~np.isnan(values)], (0.0, 1.0)).all())


def first_paragraph(func: Any) -> str:
    """The first paragraph of ``func``'s docstring on one line (its lines joined by one space),
    the definition a feature gets when none is given; ``""`` without a docstring.

    Examples
    --------
    >>> def ones(text):
    ...     '''Ones where
    ...     the char is x.
    ...
    ...     More detail.'''
    >>> first_paragraph(ones)
    'Ones where the char is x.'
    """
    paragraph = (inspect.getdoc(func) or "").strip().split("\n\n")[0]
    return " ".join(line.strip() for line in paragraph.splitlines() if line.strip())


def _source_file(func: Any) -> str | None:
    """The file a function was defined in (through ``functools.partial``), if any."""
    func = getattr(func, "func", func)
    code = getattr(func, "__code__", None)
    return code.co_filename if code is not None else None


def failure(what: str, exc: BaseException, func: Any = None) -> str:
    """One line for a failing user function: ``what``, where it raised and the exception.

    The place is the innermost frame in the function's own file (the user's line), else the
    innermost frame of all.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    own = _source_file(func)
    mine = [f for f in frames if own is not None and f.filename == own]
    where = ""
    if mine or frames:
        frame = (mine or frames)[-1]
        where = f" at {frame.filename}:{frame.lineno} (in {frame.name})"
    if isinstance(exc, SystemExit):
        detail = f"SystemExit({exc.code!r}): it called sys.exit(); return labels instead"
    else:
        message = str(exc).strip().splitlines()
        detail = type(exc).__name__ + (f": {message[0]}" if message else "")
    return f"{what}{where}: {detail}"


def _wants_sequences(func: FeatureFunc) -> bool:
    try:
        return "sequences" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Family:
    """A parametric family ``prefix:ARG``: ``factory(spec, arg) -> Feature``."""

    factory: FamilyFactory
    description: str
    display: str  # how ``lstmprobe features`` shows it, e.g. ``char:X``


class Registry:
    """Named features and parametric families.

    Modules that define features fill a registry of their own with the :meth:`feature` and
    :meth:`family` decorators; :mod:`lstmprobe.features.registry` adds those to the default one
    (:meth:`update`), so importing a module registers nothing anywhere else.

    Examples
    --------
    >>> table = Registry()
    >>> @table.feature("digit", kind="binary")
    ... def digit(text: str) -> np.ndarray:
    ...     '''The char just read is a digit.'''
    ...     return np.array([c.isdigit() for c in text], dtype=float)
    >>> table.lookup("digit").labels("a1").tolist(), table.lookup("nothing") is None
    ([0.0, 1.0], True)
    """

    def __init__(self) -> None:
        self.features: dict[str, Feature] = {}
        self.families: dict[str, Family] = {}

    def feature(
        self,
        name: str,
        *,
        kind: Kind | None = None,
        definition: str | None = None,
        per_sequence: bool = False,
        stream: Callable[[], Scanner] | None = None,
        hint: str = "",
    ) -> Callable[[FeatureFunc], FeatureFunc]:
        """Register ``func(text) -> array`` as the feature ``name``; returns ``func`` unchanged.

        The definition shown by ``lstmprobe features`` defaults to the first paragraph of the
        docstring (:func:`first_paragraph`). ``per_sequence=True`` computes it on each recorded
        sequence separately, and ``stream`` (a factory of
        :class:`~lstmprobe.features.stream.Scanner`) lets a long sequence be labelled piece by
        piece in bounded memory; see :class:`Feature`.
        ``lstmprobe.feature`` is this method of the default registry, the one ``get_feature``
        and ``find-neurons`` read.

        Examples
        --------
        >>> from lstmprobe import feature, get_feature
        >>> @feature("vowel", kind="binary")
        ... def vowel(text: str) -> np.ndarray:
        ...     '''The char just read is a vowel.'''
        ...     return np.array([c in "aeiou" for c in text], dtype=float)
        >>> get_feature("vowel").labels("hat").tolist()
        [0.0, 1.0, 0.0]
        """
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise FeatureError(f"a feature name must be a non-empty word, got {name!r}")

        def register(func: FeatureFunc) -> FeatureFunc:
            doc = definition
            if doc is None:
                doc = first_paragraph(func)
            self.features[name] = Feature(name, func, kind, doc, per_sequence, stream, hint)
            return func

        return register

    def family(
        self, prefix: str, description: str, display: str = "X"
    ) -> Callable[[FamilyFactory], FamilyFactory]:
        """A decorator adding a parametric family ``prefix:ARG``; ``display`` names ARG."""

        def register(factory: FamilyFactory) -> FamilyFactory:
            self.families[prefix] = Family(factory, description, f"{prefix}:{display}")
            return factory

        return register

    def set_hint(self, name: str, hint: str) -> None:
        """Say why the feature ``name`` may be constant on a corpus and what to try instead."""
        self.features[name] = replace(self.features[name], hint=hint)

    def update(self, other: Registry) -> None:
        """Add every feature and family of ``other`` (the same names are replaced)."""
        self.features.update(other.features)
        self.families.update(other.families)

    def lookup(self, spec: str) -> Feature | None:
        """The feature ``spec`` names here (a name, or ``prefix:ARG`` of a family), else None."""
        if spec in self.features:
            return self.features[spec]
        head, sep, arg = spec.partition(":")
        if sep and head in self.families:
            return self.families[head].factory(spec, arg)
        return None

    def known(self) -> dict[str, str]:
        """Every feature name and family display (``char:X``) with its definition."""
        known = {name: f.definition for name, f in self.features.items()}
        for fam in self.families.values():
            known[fam.display] = fam.description
        return known
