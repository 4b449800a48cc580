"""Features of a sequence's structure: where in it (``after:X``, ``before:X``, ``phase:N``), of
the whole of it (``first-char:X``, ``seq-length``), and conditions ``FEATURE@WHERE``.

A *sequence* is what the model reads from its zero state: one line of a task corpus recorded
with ``--reset line``, the whole text otherwise (``store.sequences``). Every feature here is
computed per sequence and has a scanner, so a long sequence is labelled in bounded memory
(docs/features.md lists what each carries).

A condition ``FEATURE@WHERE`` is FEATURE where WHERE is *on* -- defined and not 0 (for a binary
WHERE: 1) -- and undefined (NaN) everywhere else: ``count:a@char:Y`` is the selective counter's
N read at the Y, ``next-char:b@after:X`` "the next char is b" in the copy half only.
:func:`condition` builds it; :func:`split_condition` finds the ``@`` in a spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lstmprobe.errors import FeatureError
from lstmprobe.features.base import Feature, Registry
from lstmprobe.features.builtins import char_arg
from lstmprobe.features.stream import LengthScanner, Paired, Resumable, anywhere

_TABLE = Registry()


def _hits(text: str, char: str) -> np.ndarray:
    """1 where ``text`` holds ``char``, as int64."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return (codes == ord(char)).astype(np.int64)


# --------------------------------------------------------------------------- where in a sequence


def _segments(text: str, char: str, before: int = 0) -> np.ndarray:
    """The number of ``char`` read so far (the char just read included), from ``before``:
    the index of the segment each char is in, when ``char`` separates segments and opens the
    one it starts."""
    return before + np.cumsum(_hits(text, char))


def _scope(
    spec: str, char: str, test: Callable[[np.ndarray], np.ndarray], definition: str
) -> Feature:
    """A feature of the segment index (``test(index) -> bool``), per sequence, streamed with
    the exact count of separators read as its state."""

    def label(text: str) -> np.ndarray:
        return test(_segments(text, char)).astype(np.float32)

    def stream() -> Resumable:
        return Resumable(
            lambda buf, state: test(_segments(buf, char, state or 0)).astype(np.float32),
            anywhere,
            lambda segment, labels, state: (state or 0) + int(_hits(segment, char).sum()),
        )

    hint = f"a sequence of this corpus holds no {char!r}, or every one starts with it"
    return Feature(spec, label, "binary", definition, True, stream, hint)


@_TABLE.family(
    "after",
    "1 on the first X of the sequence and on every char after it, 0 before it (0 on all of a "
    "sequence without X): after reading X, the model has seen one.",
)
def _after(spec: str, arg: str) -> Feature:
    char = char_arg(spec, arg)
    return _scope(
        spec,
        char,
        lambda index: index >= 1,
        f"1 on the first {char!r} of the sequence and every char after it, 0 before it "
        f"(0 on all of a sequence without {char!r}).",
    )


@_TABLE.family(
    "before",
    "1 on every char before the first X of the sequence (on all of a sequence without X), 0 "
    "from the first X on: the complement of after:X.",
)
def _before(spec: str, arg: str) -> Feature:
    char = char_arg(spec, arg)
    return _scope(
        spec,
        char,
        lambda index: index == 0,
        f"1 on every char before the first {char!r} of the sequence (all of a sequence without "
        f"{char!r}), 0 from the first {char!r} on.",
    )


def _phase_arg(spec: str, arg: str) -> tuple[int, str]:
    number, _, sep = arg.partition(":")
    if not number.isdigit():
        raise FeatureError(
            f"{spec!r}: give the segment number after 'phase:' (0 = before the first "
            f"separator), optionally the separator char: phase:1 or phase:1:Y, got {arg!r}"
        )
    return int(number), char_arg(spec, sep) if sep else "X"


@_TABLE.family(
    "phase",
    "phase:N = 1 on the N-th segment of the sequence, 0 elsewhere: segments are separated by "
    "X (phase:N:C: by C), segment 0 is before the first X, and each X opens the segment after "
    "it (phase:1 starts on the first X, like after:X; phase:0 is before:X).",
    "N",
)
def _phase(spec: str, arg: str) -> Feature:
    number, char = _phase_arg(spec, arg)
    return _scope(
        spec,
        char,
        lambda index: index == number,
        f"1 on segment {number} of the sequence, 0 elsewhere: segments are separated by "
        f"{char!r}, segment 0 is before the first {char!r}, and each {char!r} opens the "
        "segment after it.",
    )


# --------------------------------------------------------------------------- the whole sequence


@_TABLE.family(
    "first-char",
    "1 on every char of a sequence whose first char is X, else 0 (on every char of it: a "
    "property of the whole sequence, known from its first char on).",
)
def _first_char(spec: str, arg: str) -> Feature:
    char = char_arg(spec, arg)

    def label(text: str, known: float | None = None) -> np.ndarray:
        value = float(text[:1] == char) if known is None else known
        return np.full(len(text), value, dtype=np.float32)

    return Feature(
        spec,
        label,
        "binary",
        f"1 on every char of a sequence whose first char is {char!r}, else 0.",
        True,
        lambda: Resumable(label, anywhere),  # the state is the value, kept from the first char
        f"no sequence of this corpus starts with {char!r}, or every one does (with one "
        'sequence, record with `reset="line"` for a sequence per line)',
    )


def _length(n: int, length: int) -> np.ndarray:
    return np.full(n, length, dtype=np.float32)


@_TABLE.feature(
    "seq-length",
    kind="continuous",
    per_sequence=True,
    stream=lambda: LengthScanner(_length),
    hint="every sequence has the same length (with one sequence, record with "
    '`reset="line"` for a sequence per line)',
)
def seq_length(text: str) -> np.ndarray:
    """The number of chars of the sequence (its newline included), on every char of it: a
    property of the whole sequence, which the model cannot know before its end."""
    return _length(len(text), len(text))


# --------------------------------------------------------------------------- conditions


def is_on(values: np.ndarray) -> np.ndarray:
    """Where a feature is on: defined and not 0 (a binary one: 1), bool array.

    Examples
    --------
    >>> is_on(np.array([0.0, 1.0, np.nan, 3.0])).tolist()
    [False, True, False, True]
    """
    values = np.asarray(values)
    return ~np.isnan(values) & (values != 0)


def _only_where(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    return np.where(is_on(where), values, np.float32(np.nan)).astype(np.float32)


def condition(base: Feature, where: Feature, name: str | None = None) -> Feature:
    """``base`` where ``where`` is on (:func:`is_on`), undefined (NaN) elsewhere.

    Examples
    --------
    >>> from lstmprobe.features import get_feature
    >>> get_feature("count:a@char:Y").labels("aXaYb").tolist()
    [nan, nan, nan, 2.0, nan]
    """
    name = name or f"{base.name}@{where.name}"
    both = base.per_sequence and where.per_sequence
    definition = (
        f"{base.name} where {where.name} is on (defined and not 0), undefined elsewhere. "
        f"{base.name}: {base.definition} {where.name}: {where.definition}"
    )
    hint = (
        f"{where.name} is on at few positions of this corpus, or {base.name} takes one value "
        "wherever it is"
    )
    if both:

        def per_sequence(text: str) -> np.ndarray:
            return _only_where(base.labels(text), where.labels(text))

        return Feature(
            name,
            per_sequence,
            base.kind,
            definition,
            True,
            lambda: Paired(base.scanner(), where.scanner(), _only_where),
            hint,
        )

    def whole(text: str, sequences: Any = None) -> np.ndarray:
        return _only_where(base.labels(text, sequences), where.labels(text, sequences))

    return Feature(name, whole, base.kind, definition, False, None, hint)


def split_condition(spec: str, names_feature: Callable[[str], bool]) -> tuple[str, str] | None:
    """``(FEATURE, WHERE)`` of a spec ``FEATURE@WHERE``, else None.

    The split is at the last ``@`` that is followed by a feature spec (``names_feature``) and
    preceded by something: ``char:@`` and ``regex:\\w+@\\w+`` are one feature each, and
    ``regex:a@char:Y`` is ``regex:a`` where ``char:Y`` (write the regex's ``@`` as ``[@]`` to
    keep it). ``A@B@C`` is ``(A@B)@C``: A where both B and C are on.

    Examples
    --------
    >>> split_condition("count:a@char:Y", lambda s: s.startswith("char:"))
    ('count:a', 'char:Y')
    >>> split_condition("char:@", lambda s: True) is None
    True
    """
    at = len(spec)
    while (at := spec.rfind("@", 0, at)) > 0:
        where = spec[at + 1 :]
        if where and names_feature(where):
            return spec[:at], where
    return None


def register_all(registry: Registry) -> None:
    """Add the sequence features and scopes to ``registry``."""
    registry.update(_TABLE)
