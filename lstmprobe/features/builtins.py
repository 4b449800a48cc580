"""Built-in features. Each definition below is what ``lstmprobe features`` prints.

All built-ins are computed per sequence (a recording's reset points reset the text state too) on
the whole sequence in memory: O(N) floats per feature. The lexer-based ones (``quote``,
``comment``, ``bracket-depth``) scan with one compiled regular expression, so the Python work is
per token, not per character.
"""

from __future__ import annotations

import re

import numpy as np

from lstmprobe.errors import FeatureError
from lstmprobe.features.registry import Feature, family, feature

# --------------------------------------------------------------------------- the code lexer

_CODE_TOKEN = re.compile(
    r"""
      (?P<triple>\"\"\"(?:\\.|[^\\])*?(?:\"\"\"|\Z)|'''(?:\\.|[^\\])*?(?:'''|\Z))
    | (?P<string>"(?:\\.|[^"\\\n])*(?:"|(?=\n)|\Z)|'(?:\\.|[^'\\\n])*(?:'|(?=\n)|\Z))
    | (?P<line>(?:\#|//)[^\n]*)
    | (?P<block>/\*.*?(?:\*/|\Z))
    """,
    re.VERBOSE | re.DOTALL,
)
# Python alone: only # starts a comment, so `a // b` is floor division and /* is no comment.
_PYTHON_TOKEN = re.compile(
    _CODE_TOKEN.pattern.replace("(?:\\#|//)", "\\#").split("| (?P<block>")[0],
    re.VERBOSE | re.DOTALL,
)


def _lex(text: str, python: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(in_string, in_comment) boolean arrays, the state after reading each char."""
    n = len(text)
    in_string = np.zeros(n, dtype=bool)
    in_comment = np.zeros(n, dtype=bool)
    for m in (_PYTHON_TOKEN if python else _CODE_TOKEN).finditer(text):
        start, end = m.span()
        kind = m.lastgroup
        target = in_comment if kind in ("line", "block") else in_string
        target[start:end] = True
        closed = (
            (kind == "triple" and end - start >= 6 and text.endswith(text[start] * 3, 0, end))
            or (kind == "string" and end - start >= 2 and text[end - 1] == text[start])
            or (kind == "block" and text.endswith("*/", start + 2, end))
        )
        if closed:  # the char that closes a string or comment is already outside it
            target[end - 1] = False
    return in_string, in_comment


@feature("quote", kind="binary", per_sequence=True)
def quote(text: str) -> np.ndarray:
    """1 inside a string literal of code after reading the char, else 0: '...' and "..." with
    backslash escapes (an unescaped newline ends them), Python triple quotes spanning lines;
    the opening quote is inside, the char that closes the string is outside; quotes inside
    comments (#, //, /* */) do not count."""
    return _lex(text)[0].astype(np.float32)


@feature("comment", kind="binary", per_sequence=True)
def comment(text: str) -> np.ndarray:
    """1 inside a comment after reading the char, else 0: # and // line comments (the newline
    that ends one is outside) and /* ... */ block comments (the closing / is outside); markers
    inside string literals do not count. Language-agnostic: Python's // operator reads as a
    comment; use comment:python for Python source."""
    return _lex(text)[1].astype(np.float32)


@feature("quote:python", kind="binary", per_sequence=True)
def quote_python(text: str) -> np.ndarray:
    """As quote, for Python source: only # starts a comment (// is floor division)."""
    return _lex(text, python=True)[0].astype(np.float32)


@feature("comment:python", kind="binary", per_sequence=True)
def comment_python(text: str) -> np.ndarray:
    """1 inside a Python comment after reading the char, else 0: # to the end of the line (the
    newline is outside); // and /* are operators, not comments; # inside strings does not count."""
    return _lex(text, python=True)[1].astype(np.float32)


_OPEN = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}


@feature("bracket-depth", kind="continuous", per_sequence=True)
def bracket_depth(text: str, python: bool = False) -> np.ndarray:
    """Number of (, [ and { open after reading the char (an opening bracket counts at once, a
    closing one is already subtracted), ignoring brackets inside strings and comments; an
    unmatched closing bracket does not go below 0."""
    in_string, in_comment = _lex(text, python)
    step = np.zeros(len(text), dtype=np.int64)
    for m in re.finditer(r"[()\[\]{}]", text):
        step[m.start()] = _OPEN[m.group()]
    step[in_string | in_comment] = 0
    # the walk d_t = max(0, d_{t-1} + step_t) equals S_t - min(0, min_{k<=t} S_k)
    s = np.cumsum(step)
    depth = s - np.minimum(np.minimum.accumulate(s), 0)
    return depth.astype(np.float32)


@feature("bracket-depth:python", kind="continuous", per_sequence=True)
def bracket_depth_python(text: str) -> np.ndarray:
    """As bracket-depth, for Python source: only # starts a comment (// is floor division)."""
    return bracket_depth(text, python=True)


# --------------------------------------------------------------------------- lines and columns


def _columns(text: str, tab: int) -> np.ndarray:
    """Column after reading each char: chars on the current line so far, tabs to the next stop."""
    n = len(text)
    col = np.zeros(n, dtype=np.int64)
    c = 0
    # Python loop over runs without tabs/newlines is fast enough: handle them with numpy slices.
    pos = 0
    for m in re.finditer(r"[\t\n]", text):
        i = m.start()
        if i > pos:
            col[pos:i] = c + np.arange(1, i - pos + 1)
            c += i - pos
        c = 0 if m.group() == "\n" else (c // tab + 1) * tab
        col[i] = c
        pos = i + 1
    if pos < n:
        col[pos:] = c + np.arange(1, n - pos + 1)
    return col


def _tab_arg(spec: str, arg: str, default: int) -> int:
    if not arg:
        return default
    if not arg.isdigit() or int(arg) < 1:
        raise FeatureError(f"{spec!r}: the tab width after ':' must be a positive integer")
    return int(arg)


def _indent(text: str, tab: int) -> np.ndarray:
    col = _columns(text, tab)
    out = np.zeros(len(text), dtype=np.float32)
    for m in re.finditer(r"[^\n]*\n?", text):
        start, end = m.span()
        if start == end:
            continue
        lead = len(m.group()) - len(m.group().lstrip(" \t"))
        if lead:
            out[start : start + lead] = col[start : start + lead]
            out[start + lead : end] = col[start + lead - 1]
        if m.group().endswith("\n"):
            out[end - 1] = 0.0
    return out


def _indent_definition(tab: int) -> str:
    return (
        "Indentation of the current line in columns as far as read (leading spaces count 1, a "
        f"tab moves to the next multiple of {tab}); after the leading whitespace it stays at the "
        "line's indentation; the newline starts a new line and reads 0. indent:N sets the tab "
        "width."
    )


@family("indent", _indent_definition(4) + " (indent = indent:4)", "N")
def _indent_family(spec: str, arg: str) -> Feature:
    tab = _tab_arg(spec, arg, 4)
    return Feature(spec, lambda t: _indent(t, tab), "continuous", _indent_definition(tab), True)


feature("indent", kind="continuous", definition=_indent_definition(4), per_sequence=True)(
    lambda text: _indent(text, 4)
)


def _line_position_definition(tab: int) -> str:
    return (
        "Column after reading the char: chars read on the current line (a tab moves to the next "
        f"multiple of {tab}); the newline resets it to 0. line-position:N sets the tab width."
    )


@family("line-position", _line_position_definition(4) + " (line-position = line-position:4)", "N")
def _line_position_family(spec: str, arg: str) -> Feature:
    tab = _tab_arg(spec, arg, 4)
    return Feature(
        spec,
        lambda t: _columns(t, tab).astype(np.float32),
        "continuous",
        _line_position_definition(tab),
        True,
    )


feature(
    "line-position",
    kind="continuous",
    definition=_line_position_definition(4),
    per_sequence=True,
)(lambda text: _columns(text, 4).astype(np.float32))


# --------------------------------------------------------------------------- prose


@feature("quote:prose", kind="binary", per_sequence=True)
def quote_prose(text: str) -> np.ndarray:
    """1 inside a prose quotation after reading the char: a straight " toggles, “ opens and ”
    closes (the closing mark is outside); apostrophes (' and ’) never count; an empty line ends
    any open quotation."""
    n = len(text)
    out = np.zeros(n, dtype=np.float32)
    inside = False
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


def _sentence_start(text: str, start: int) -> bool:
    """True where the word at ``start`` opens a sentence: start of text, after . ! ? … (then
    optional closing quotes or brackets), or after an empty line."""
    j = start - 1
    newlines = 0
    while j >= 0 and text[j] in " \t\r\n\"'“”‘’([{":
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


@feature("proper-noun", kind="binary", per_sequence=True)
def proper_noun(text: str) -> np.ndarray:
    """1 on every char of a capitalised word (first letter upper case, not all capitals) that
    does not open a sentence and is not one of ~250 common English words shipped with
    lstmprobe, else 0. proper-noun:spacy uses an installed spaCy model instead."""
    return _proper_nouns(text)


def _spacy_proper_nouns(text: str) -> np.ndarray:
    try:
        import spacy  # type: ignore[import-not-found]
    except ImportError:
        raise FeatureError(
            "proper-noun:spacy needs spaCy (pip install spacy) and an installed English model; "
            "use proper-noun for the built-in word list"
        ) from None
    nlp = None
    for name in ("en_core_web_sm", "en_core_web_md", "en_core_web_lg", "en_core_web_trf"):
        try:
            nlp = spacy.load(name)
            break
        except OSError:
            continue
    if nlp is None:
        raise FeatureError(
            "proper-noun:spacy found no installed English spaCy model (lstmprobe never "
            "downloads one); install one with `python -m spacy download en_core_web_sm`"
        )
    out = np.zeros(len(text), dtype=np.float32)
    for token in nlp(text):
        if token.pos_ == "PROPN":
            out[token.idx : token.idx + len(token.text)] = 1.0
    return out


feature(
    "proper-noun:spacy",
    kind="binary",
    definition="1 on every char of a token an installed spaCy English model tags PROPN, else 0 "
    "(needs spaCy and a model; nothing is downloaded).",
    per_sequence=True,
)(_spacy_proper_nouns)


def _spans(pattern: re.Pattern[str], text: str, position: bool, strip: str = "") -> np.ndarray:
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
    feature(
        name,
        kind="binary",
        definition=f"1 on every char of {what}, else 0.",
        per_sequence=True,
    )(lambda text: _spans(pattern, text, False, strip))
    feature(
        f"{name}:position",
        kind="continuous",
        definition=f"Position inside {what}: 1 on its first char, 2 on the next, ...; 0 outside.",
        per_sequence=True,
    )(lambda text: _spans(pattern, text, True, strip))


for _name in _SPAN_DEFS:
    _make_span_feature(_name)

_CAPS = re.compile(r"[^\W\d_]{2,}")


@feature("caps", kind="binary", per_sequence=True)
def caps(text: str) -> np.ndarray:
    """1 on every char of an all-capitals word of at least two letters (USA, FAKE), else 0."""
    out = np.zeros(len(text), dtype=np.float32)
    for m in _CAPS.finditer(text):
        if m.group().isupper():
            out[m.start() : m.end()] = 1.0
    return out


# --------------------------------------------------------------------------- characters

_CHAR_NAMES = {"space": " ", "tab": "\t", "newline": "\n", "\\n": "\n", "\\t": "\t", "\\\\": "\\"}


def _char_arg(spec: str, arg: str) -> str:
    char = _CHAR_NAMES.get(arg, arg)
    if len(char) != 1:
        raise FeatureError(
            f"{spec!r}: give one character after ':' (or space, tab, newline, \\n, \\t), "
            f"got {arg!r}"
        )
    return char


def _is_char(text: str, char: str) -> np.ndarray:
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return (codes == ord(char)).astype(np.float32)


@family("char", "1 where the char just read is X, else 0 (char:space, char:tab, char:\\n work).")
def _char_family(spec: str, arg: str) -> Feature:
    char = _char_arg(spec, arg)
    return Feature(
        spec,
        lambda t: _is_char(t, char),
        "binary",
        f"1 where the char just read is {char!r}, else 0.",
        True,
    )


def _next_char(text: str, char: str) -> np.ndarray:
    out = np.full(len(text), np.nan, dtype=np.float32)
    if len(text) > 1:
        out[:-1] = _is_char(text, char)[1:]
    return out


@family(
    "next-char",
    "1 where the NEXT char (position t+1) is X, else 0; undefined (NaN) at the last char of "
    "each sequence.",
)
def _next_char_family(spec: str, arg: str) -> Feature:
    char = _char_arg(spec, arg)
    return Feature(
        spec,
        lambda t: _next_char(t, char),
        "binary",
        f"1 where the next char is {char!r}, else 0; NaN at the last char of each sequence.",
        True,
    )


def _count(text: str, up: str, down: str | None) -> np.ndarray:
    step = _is_char(text, up)
    if down is not None:
        step = step - _is_char(text, down)
    return np.cumsum(step, dtype=np.float64).astype(np.float32)


@family(
    "count",
    "count:a = a's seen minus b's seen in the current sequence, the char just read included "
    "(the counter tasks); count:X-Y = X's minus Y's; count:X (X not a) = X's seen.",
    "a",
)
def _count_family(spec: str, arg: str) -> Feature:
    if arg == "a":
        up, down = "a", "b"
    elif len(arg) == 3 and arg[1] == "-":
        up, down = arg[0], arg[2]
    elif len(arg) == 1:
        up, down = arg, None
    else:
        up, down = _char_arg(spec, arg), None
    what = f"{up}'s seen" + (f" minus {down}'s seen" if down else "")
    return Feature(
        spec,
        lambda t: _count(t, up, down),
        "continuous",
        f"Number of {what} in the current sequence, the char just read included.",
        True,
    )


@feature("ab-state", kind="binary", per_sequence=True)
def ab_state(text: str) -> np.ndarray:
    """Which of A/B began the sequence (the state-memory task): 1 on every char of a sequence
    whose first char is A, 0 if it is B, undefined (NaN) otherwise."""
    value = {"A": 1.0, "B": 0.0}.get(text[:1], np.nan)
    return np.full(len(text), value, dtype=np.float32)
