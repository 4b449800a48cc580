"""Features over long texts, piece by piece, with the same labels as on the whole text.

A :class:`Scanner` labels one sequence as its text arrives: :meth:`Scanner.feed` appends text
and returns the labels that no later text can change, :meth:`Scanner.finish` the rest. The
built-in features define theirs with :class:`Resumable` (docs/features.md lists what each one
carries between pieces); a feature without a scanner gets :class:`WholeScanner`, which waits for
the whole sequence. :func:`feature_windows` runs a feature over a recording's positions and
yields its labels for given windows, reading the text a block at a time, so memory is bounded by
a block plus what the scanners carry, not by the corpus.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import numpy as np

from lstmprobe.errors import FeatureError


class Labelling(Protocol):
    """What :func:`feature_windows` needs of a feature (a
    :class:`~lstmprobe.features.base.Feature` is one); this module imports no feature."""

    @property
    def name(self) -> str: ...

    @property
    def per_sequence(self) -> bool: ...

    def labels(self, text: str, sequences: np.ndarray | None = None) -> np.ndarray: ...

    def scanner(self, length: int | None = None) -> Scanner: ...


#: Characters read per block; a sequence no longer than this is labelled in one call.
BLOCK = 1 << 16


class Scanner:
    """Labels one sequence piece by piece.

    Subclasses implement :meth:`_step`; the text not yet labelled (and any context kept for
    later pieces) stays in the scanner.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._ctx = 0  # chars at the start of _buf already labelled, kept as context
        #: the sequence's length when it is known before its text (:meth:`expect`), else None
        self.expected: int | None = None

    def expect(self, length: int) -> None:
        """Say that the sequence has ``length`` chars (before feeding it): a feature of the
        whole sequence (``seq-length``) can then label each char as it arrives instead of at
        the end. Scanners that do not need it ignore it."""
        self.expected = length

    def feed(self, text: str) -> np.ndarray:
        """Append ``text``; return float32 labels of the next chars whose labels are final."""
        return self._advance(text, final=False)

    def finish(self) -> np.ndarray:
        """Labels of every char not yet returned: the sequence has ended."""
        return self._advance("", final=True)

    def _advance(self, text: str, final: bool) -> np.ndarray:
        buf = self._buf + text
        labels, cut, keep = self._step(buf, self._ctx, final)
        self._buf = buf[cut - keep :]
        self._ctx = keep
        return labels

    def _step(self, buf: str, ctx: int, final: bool) -> tuple[np.ndarray, int, int]:
        """Labels of ``buf[ctx:cut]``, ``cut`` (``len(buf)`` when final), and how many chars
        before ``cut`` to keep as context for the next piece."""
        raise NotImplementedError


class WholeScanner(Scanner):
    """For a feature with no scanner: labels the sequence once it has all been read."""

    def __init__(self, label: Callable[[str], np.ndarray]) -> None:
        super().__init__()
        self._label = label

    def _step(self, buf: str, ctx: int, final: bool) -> tuple[np.ndarray, int, int]:
        if not final:
            return np.empty(0, dtype=np.float32), 0, 0
        return self._label(buf), len(buf), 0


class Resumable(Scanner):
    """A feature that can restart at known points of the text with a known state.

    Parameters
    ----------
    label : callable
        ``label(segment, state) -> labels`` of a segment that starts at a restart point in
        ``state`` (``None`` at the start of a sequence).
    cut : callable, optional
        ``cut(buf, final) -> k``: the labels of ``buf[:k]`` cannot change with later text and
        ``k`` is a restart point (``len(buf)`` when ``final``). None: ``label`` returns
        ``(labels, k)`` itself (for a feature that finds both in one scan).
    advance : callable, optional
        ``advance(segment, labels, state) -> state`` after ``segment`` (= ``buf[:k]``) with its
        ``labels``; default: the last label (for features whose label is their state).
    context : callable, optional
        ``context(buf, k) -> c``: chars before ``k`` the feature must see again (they are passed
        to ``label`` at the start of the next segment but not labelled twice). Only for a
        feature without state: ``label`` gets ``None`` at the start of every segment.
    """

    def __init__(
        self,
        label: Callable[[str, Any], Any],
        cut: Callable[[str, bool], int] | None = None,
        advance: Callable[[str, np.ndarray, Any], Any] | None = None,
        context: Callable[[str, int], int] | None = None,
    ) -> None:
        super().__init__()
        self._label, self._cut, self._next, self._context = label, cut, advance, context
        self._state: Any = None

    def _step(self, buf: str, ctx: int, final: bool) -> tuple[np.ndarray, int, int]:
        if self._cut is None:
            labels, cut = self._label(buf, self._state)
        else:
            cut = self._cut(buf, final)
            labels = None if cut <= ctx and not final else self._label(buf, self._state)
        cut = len(buf) if final else max(ctx, cut)
        if cut == ctx:
            return np.empty(0, dtype=np.float32), ctx, ctx
        labels = np.asarray(labels, dtype=np.float32)[:cut]
        if self._context is not None:
            return labels[ctx:], cut, self._context(buf, cut)
        if self._next is None:
            self._state = float(labels[-1])
        else:
            self._state = self._next(buf[:cut], labels, self._state)
        return labels, cut, 0


class Paired(Scanner):
    """Two scanners over the same sequence, their labels combined position by position as
    both have given them (a condition ``FEATURE@WHERE``): what one has labelled ahead of the
    other waits here, so memory is bounded by the lag between the two.

    ``combine(first, second) -> labels`` gets equally long float32 arrays.
    """

    def __init__(
        self,
        first: Scanner,
        second: Scanner,
        combine: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> None:
        super().__init__()
        self._pair = (first, second)
        self._combine = combine
        self._waiting = (np.empty(0, np.float32), np.empty(0, np.float32))

    def expect(self, length: int) -> None:
        super().expect(length)
        for part in self._pair:
            part.expect(length)

    def _advance(self, text: str, final: bool) -> np.ndarray:
        got = [
            np.concatenate([wait, part._advance(text, final)]).astype(np.float32, copy=False)
            for wait, part in zip(self._waiting, self._pair)
        ]
        k = min(len(got[0]), len(got[1]))
        if final and len(got[0]) != len(got[1]):
            raise FeatureError(
                f"two scanners labelled {len(got[0])} and {len(got[1])} chars of one sequence; "
                "a scanner must label each char exactly once"
            )
        self._waiting = (got[0][k:], got[1][k:])
        return np.asarray(self._combine(got[0][:k], got[1][:k]), dtype=np.float32)


class LengthScanner(Scanner):
    """Labels that depend only on the sequence's length (``seq-length``): every char as it
    arrives when the length was given (:meth:`Scanner.expect`), else all of them at the end,
    keeping only a count meanwhile (never the text)."""

    def __init__(self, label: Callable[[int, int], np.ndarray]) -> None:
        super().__init__()
        self._label = label  # label(n_chars, length) -> n_chars labels
        self._seen = 0

    def _advance(self, text: str, final: bool) -> np.ndarray:
        self._seen += len(text)
        if self.expected is not None:
            return np.asarray(self._label(len(text), self.expected), dtype=np.float32)
        if not final:
            return np.empty(0, dtype=np.float32)
        return np.asarray(self._label(self._seen, self._seen), dtype=np.float32)


# --------------------------------------------------------------------------- reading a store


class TextReader:
    """The text of a recording's positions, read a block at a time.

    ``read(a, b)`` returns the text of positions ``[a, b)`` (``ActivationStore.read_text``);
    calls for nearby positions are served from the last block read.
    """

    def __init__(self, read: Callable[[int, int], str], n: int) -> None:
        self._read = read
        self.n = n
        self._a = self._b = 0
        self._text = ""

    def __call__(self, a: int, b: int) -> str:
        """The text of positions ``[a, b)``."""
        if not (self._a <= a and b <= self._b):
            self._a, self._b = a, min(self.n, max(b, a + BLOCK))
            self._text = self._read(self._a, self._b)
        return self._text[a - self._a : b - self._a]


def feature_windows(
    feature: Labelling,
    text: Callable[[int, int], str],
    n: int,
    sequences: np.ndarray,
    windows: Iterable[tuple[int, int]],
) -> Iterator[np.ndarray]:
    """Labels of ``feature`` over each window ``[a, b)`` of positions, in order.

    ``text(a, b)`` returns the text of positions ``[a, b)`` (a :class:`TextReader`); ``windows``
    must be sorted and disjoint. The labels equal ``feature.labels(whole_text, sequences)`` at
    those positions: per-sequence features run a scanner per sequence longer than a block (see
    the module docstring); a feature computed on the whole text (a user function) reads it all.
    """
    pieces = _pieces(feature, text, n, np.asarray(sequences, dtype=np.int64).reshape(-1, 2))
    pending: list[tuple[int, np.ndarray]] = []  # (start, labels), in order
    covered = 0
    for a, b in windows:
        while covered < b:
            start, labels = next(pieces)
            if start + len(labels) > a:
                pending.append((start, labels))
            covered = start + len(labels)
        pending = [(s, lab) for s, lab in pending if s + len(lab) > a]
        yield np.concatenate(
            [lab[max(0, a - s) : b - s] for s, lab in pending if s < b] or [np.empty(0)]
        ).astype(np.float32, copy=False)


def _pieces(
    feature: Labelling, text: Callable[[int, int], str], n: int, sequences: np.ndarray
) -> Iterator[tuple[int, np.ndarray]]:
    """(start, labels) pieces covering positions 0..n in order, then empty pieces forever."""
    if not feature.per_sequence:
        yield 0, feature.labels(text(0, n), sequences)
    else:
        pos = 0
        batch: list[tuple[int, int]] = []  # consecutive short sequences, labelled in one call
        for s, e in sequences[np.argsort(sequences[:, 0], kind="stable")]:
            s, e = int(s), int(e)
            if e <= s:
                continue
            if batch and (s != batch[-1][1] or e - batch[0][0] > BLOCK):
                yield from _short(feature, text, batch)
                batch = []
            if s > pos and not batch:
                yield pos, np.full(s - pos, np.nan, dtype=np.float32)  # outside every sequence
            if e - s <= BLOCK:
                batch.append((s, e))
            else:
                yield from _long(feature, text, s, e)
            pos = e
        if batch:
            yield from _short(feature, text, batch)
        if pos < n:
            yield pos, np.full(n - pos, np.nan, dtype=np.float32)
    while True:
        yield n, np.empty(0, dtype=np.float32)


def _short(
    feature: Labelling, text: Callable[[int, int], str], batch: list[tuple[int, int]]
) -> Iterator[tuple[int, np.ndarray]]:
    a, b = batch[0][0], batch[-1][1]
    local = np.array(batch, dtype=np.int64) - a
    yield a, feature.labels(text(a, b), local)


def _long(
    feature: Labelling, text: Callable[[int, int], str], s: int, e: int
) -> Iterator[tuple[int, np.ndarray]]:
    scanner = feature.scanner(e - s)
    pos = s
    for a in range(s, e, BLOCK):
        b = min(e, a + BLOCK)
        labels = scanner.feed(text(a, b))
        if pos + len(labels) > b:
            break
        yield pos, labels
        pos += len(labels)
    else:
        labels = scanner.finish()
        if pos + len(labels) == e:
            yield pos, labels
            return
    raise FeatureError(
        f"the scanner of feature {feature.name!r} labelled {pos + len(labels) - s} chars of "
        f"a sequence of {e - s}; a scanner must label each char exactly once"
    )


# --------------------------------------------------------------------------- restart points
# Where a stateless scanner may cut a piece: everything before the cut is final.


def anywhere(buf: str, final: bool) -> int:
    return len(buf)


def after_last_newline(buf: str, final: bool) -> int:
    """Lines restart at column 0: everything up to the last newline is final."""
    return buf.rfind("\n") + 1


_LAST_SPACE = re.compile(r"\s(?=\S*\Z)")


def after_last_space(buf: str, final: bool) -> int:
    """Word-based features restart after whitespace (no match spans it)."""
    m = _LAST_SPACE.search(buf)
    return m.end() if m else 0


def stateless(
    label: Callable[[str], np.ndarray], cut: Callable[[str, bool], int]
) -> Callable[[], Resumable]:
    return lambda: Resumable(lambda buf, state: label(buf), cut)
