"""Built-in features of prose: quotations, proper nouns, hashtags, @mentions, URLs, all-caps words.

Each definition below is what ``lstmprobe features`` prints; like every built-in, each is computed
per sequence and has a scanner that labels a long sequence piece by piece with the same result.
"""

from __future__ import annotations

import re
from functools import lru_cache, partial
from typing import Any

import numpy as np

from lstmprobe.errors import FeatureError
from lstmprobe.features.base import Registry
from lstmprobe.features.stream import (
    Resumable,
    after_last_space,
    stateless,
)

# the prose built-ins, defined below; register_all adds them to a registry
_TABLE = Registry()


# --------------------------------------------------------------------------- prose


def _prose_cut(buf: str, final: bool) -> int:
    """Up to the last newline: whether it starts an empty line depends on what follows."""
    i = buf.rfind("\n")
    return len(buf) if i < 0 else i


@_TABLE.feature(
    "quote:prose",
    kind="binary",
    per_sequence=True,
    stream=lambda: Resumable(lambda buf, state: _prose(buf, bool(state)), _prose_cut),
)
def quote_prose(text: str) -> np.ndarray:
    """1 inside a prose quotation after reading the char: a straight " toggles, “ opens and ”
    closes (the closing mark is outside); apostrophes (' and ’) never count; an empty line ends
    any open quotation."""
    return _prose(text)


def _prose(text: str, inside: bool = False) -> np.ndarray:
    """Prose quotation labels, starting inside a quotation if ``inside``."""
    n = len(text)
    out = np.zeros(n, dtype=np.float32)
    opened = 0
    for m in re.finditer(r"[\"“”]|\n[ \t]*\n", text):
        i, ch = m.start(), m.group()
        if ch == '"':
            if inside:
                out[opened:i] = 1.0
            else:
                opened = i
            inside = not inside
        elif ch == "“":
            if not inside:
                opened = i
                inside = True
        elif ch == "”":
            if inside:
                out[opened:i] = 1.0
                inside = False
        else:  # empty line
            if inside:
                out[opened:i] = 1.0
                inside = False
    if inside:
        out[opened:] = 1.0
    return out


_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")

# Common English words (lower case): a capitalised one of these is not a proper noun.
_COMMON = frozenset(
    """
a about above after again against all also always am an and another any are as at be because
been before being below between both but by can could did do does doing done down during each
even ever every few first for from further get got had has have having he her here hers herself
him himself his how however i if in into is it its itself just last least less let like made
make many may me might more most much must my myself never new next no nor not now of off often
oh ok okay on once one only or other our ours ourselves out over own people please really right
said same say says see she should since so some still such than thank thanks that the their
theirs them themselves then there these they this those through thus to today together too
tomorrow under until up upon us very was we well were what when where whether which while who
whom whose why will with without would yes yet you your yours yourself yourselves great good
big best bad many new old our watch look today tonight here there thank maybe
""".split()  # noqa: SIM905
)


_BEFORE_SENTENCE = " \t\r\n\"'“”‘’([{"  # skipped when looking back for a sentence end


def _sentence_start(text: str, start: int) -> bool:
    """True where the word at ``start`` opens a sentence: start of text, after . ! ? … (then
    optional closing quotes or brackets), or after an empty line."""
    j = start - 1
    newlines = 0
    while j >= 0 and text[j] in _BEFORE_SENTENCE:
        if text[j] == "\n":
            newlines += 1
        j -= 1
    return j < 0 or text[j] in ".!?…" or newlines >= 2


def _proper_nouns(text: str) -> np.ndarray:
    out = np.zeros(len(text), dtype=np.float32)
    for m in _WORD.finditer(text):
        word = m.group()
        if not word[0].isupper() or (len(word) > 1 and word.isupper()):
            continue
        if word.lower() in _COMMON or word.lower().split("'")[0].split("’")[0] in _COMMON:
            continue
        if _sentence_start(text, m.start()):
            continue
        out[m.start() : m.end()] = 1.0
    return out


def _lookback(buf: str, cut: int) -> int:
    """Context a word after ``cut`` looks back at: the chars from the last one that is not
    skipped when looking for a sentence end (the buffer's first char is such a char, or the
    start of the sequence)."""
    j = cut - 1
    while j > 0 and buf[j] in _BEFORE_SENTENCE:
        j -= 1
    return cut - max(j, 0)


@_TABLE.feature(
    "proper-noun",
    kind="binary",
    per_sequence=True,
    stream=lambda: Resumable(
        lambda buf, state: _proper_nouns(buf), after_last_space, context=_lookback
    ),
)
def proper_noun(text: str) -> np.ndarray:
    """1 on every char of a capitalised word (first letter upper case, not all capitals) that
    does not open a sentence and is not one of ~250 common English words shipped with
    lstmprobe, else 0. proper-noun:spacy uses an installed spaCy model instead."""
    return _proper_nouns(text)


@lru_cache(maxsize=1)
def _spacy_english() -> Any:
    """The first installed spaCy English model, loaded once per process (a per-sequence feature
    would otherwise load it for every sequence); a :class:`FeatureError` without one."""
    try:
        import spacy  # type: ignore[import-not-found]
    except ImportError:
        raise FeatureError(
            "proper-noun:spacy needs spaCy (pip install spacy) and an installed English model; "
            "use proper-noun for the built-in word list"
        ) from None
    for name in ("en_core_web_sm", "en_core_web_md", "en_core_web_lg", "en_core_web_trf"):
        try:
            return spacy.load(name)
        except OSError:
            continue
    raise FeatureError(
        "proper-noun:spacy found no installed English spaCy model (lstmprobe never "
        "downloads one); install one with `python -m spacy download en_core_web_sm`"
    )


def _spacy_proper_nouns(text: str) -> np.ndarray:
    nlp = _spacy_english()
    out = np.zeros(len(text), dtype=np.float32)
    for token in nlp(text):
        if token.pos_ == "PROPN":
            out[token.idx : token.idx + len(token.text)] = 1.0
    return out


_TABLE.feature(
    "proper-noun:spacy",
    kind="binary",
    definition="1 on every char of a token an installed spaCy English model tags PROPN, else 0 "
    "(needs spaCy and a model; nothing is downloaded).",
    per_sequence=True,
)(_spacy_proper_nouns)


def _spans(pattern: re.Pattern[str], text: str, position: bool, strip: str = "") -> np.ndarray:
    """1 (or the position, from 1) on every char of a match of ``pattern``; ``strip``: chars
    dropped from a match's end. No pattern here matches whitespace."""
    out = np.zeros(len(text), dtype=np.float32)
    for m in pattern.finditer(text):
        start, end = m.span()
        while strip and end > start + 1 and text[end - 1] in strip:
            end -= 1
        out[start:end] = np.arange(1, end - start + 1) if position else 1.0
    return out


_HASHTAG = re.compile(r"(?<![\w#&])#[^\W_][\w]*")
_MENTION = re.compile(r"(?<![\w@.])@\w+")
_URL = re.compile(r"(?:\b[a-zA-Z][a-zA-Z0-9+.-]*://|\bwww\.)[^\s<>\"“”]+")
_URL_TRAIL = ".,;:!?)]}'’"

_SPAN_DEFS = {
    "hashtag": (_HASHTAG, "", "a hashtag: # after a non-word char, then word chars (#MAGA2016)"),
    "mention": (_MENTION, "", "a mention: @ not after a word char or '.', then word chars"),
    "url": (
        _URL,
        _URL_TRAIL,
        "a URL: scheme:// or www. up to whitespace, trailing .,;:!?)]}' excluded",
    ),
}


def _make_span_feature(name: str) -> None:
    pattern, strip, what = _SPAN_DEFS[name]
    for suffix, position, kind, definition in (
        ("", False, "binary", f"1 on every char of {what}, else 0."),
        (
            ":position",
            True,
            "continuous",
            f"Position inside {what}: 1 on its first char, 2 on the next, ...; 0 outside.",
        ),
    ):
        label = partial(_spans, pattern, position=position, strip=strip)
        _TABLE.feature(
            name + suffix,
            kind=kind,  # type: ignore[arg-type]
            definition=definition,
            per_sequence=True,
            stream=stateless(label, after_last_space),
        )(label)


for _name in _SPAN_DEFS:
    _make_span_feature(_name)

_CAPS = re.compile(r"[^\W\d_]{2,}")


@_TABLE.feature(
    "caps",
    kind="binary",
    per_sequence=True,
    stream=lambda: Resumable(lambda buf, state: _caps(buf), after_last_space),
)
def caps(text: str) -> np.ndarray:
    """1 on every char of an all-capitals word of at least two letters (USA, FAKE), else 0."""
    return _caps(text)


def _caps(text: str) -> np.ndarray:
    out = np.zeros(len(text), dtype=np.float32)
    for m in _CAPS.finditer(text):
        if m.group().isupper():
            out[m.start() : m.end()] = 1.0
    return out


_HINTS = {
    "quote:prose": 'the corpus may hold no quotation marks (" “ ”); for code try quote, '
    "quote:python or quote:c",
    "proper-noun": "the corpus may hold no capitalised words inside sentences",
    "hashtag": "the corpus may hold no hashtags",
    "mention": "the corpus may hold no @mentions",
    "url": "the corpus may hold no URLs",
    "caps": "the corpus may hold no all-capitals words",
}
for _spec, _hint in _HINTS.items():
    _TABLE.set_hint(_spec, _hint)


def register_all(registry: Registry) -> None:
    """Add every prose feature to ``registry``."""
    registry.update(_TABLE)
