"""Built-in features of code, lines, characters and counters (prose ones: :mod:`lstmprobe.features.prose`). Each definition below is what ``lstmprobe features`` prints.

All built-ins are computed per sequence (a recording's reset points reset the text state too).
Each also has a scanner (:class:`~lstmprobe.features.stream.Resumable`) that labels a long
sequence piece by piece with the same result, carrying only what the feature needs between
pieces: the lexer state of an unfinished token, the bracket depth, the current line, the running
count. The lexer-based ones (``quote``, ``comment``, ``bracket-depth``) scan with one compiled
regular expression, so the Python work is per token, not per character.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial

import numpy as np

from lstmprobe.errors import FeatureError
from lstmprobe.features.base import Feature, Registry
from lstmprobe.features.stream import (
    Resumable,
    after_last_newline,
    anywhere,
    stateless,
)

# the built-ins, defined below; register_all adds them to a registry
_TABLE = Registry()

# --------------------------------------------------------------------------- the code lexer

# A backslash escapes the next char (a newline too); one at the very end of the text is inside
# the unfinished string.
_CODE_TOKEN = re.compile(
    r"""
      (?P<triple>\"\"\"(?:\\(?:.|\Z)|[^\\])*?(?:\"\"\"|\Z)|'''(?:\\(?:.|\Z)|[^\\])*?(?:'''|\Z))
    | (?P<string>"(?:\\(?:.|\Z)|[^"\\\n])*(?:"|(?=\n)|\Z)|'(?:\\(?:.|\Z)|[^'\\\n])*(?:'|(?=\n)|\Z))
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


# C and C++: // and /* */ are comments, # is not (it starts a preprocessor directive); '...'
# is a character constant, "..." a string; a backslash-newline continues a // comment.
_C_TOKEN = re.compile(
    r"""
      (?P<string>"(?:\\(?:.|\Z)|[^"\\\n])*(?:"|(?=\n)|\Z)|'(?:\\(?:.|\Z)|[^'\\\n])*(?:'|(?=\n)|\Z))
    | (?P<line>//(?:\\(?:.|\Z)|[^\\\n])*)
    | (?P<block>/\*.*?(?:\*/|\Z))
    """,
    re.VERBOSE | re.DOTALL,
)
# The same, and a directive: # first on a line (after blanks, which are outside it), to the end
# of the line, continued over backslash-newlines; tried first at each line start (the text is
# lexed with a newline before it where it starts at a line start).
_C_DIRECTIVE_TOKEN = re.compile(
    r"(?P<directive>(?<=\n)[ \t]*(?P<hash>\#(?:\\(?:.|\Z)|[^\\\n])*))|" + _C_TOKEN.pattern,
    re.VERBOSE | re.DOTALL,
)
Dialect = bool | str  # False/"code": any language; True/"python"; "c"; "c-directives"
_TOKENS = {
    False: _CODE_TOKEN,
    "code": _CODE_TOKEN,
    True: _PYTHON_TOKEN,
    "python": _PYTHON_TOKEN,
    "c": _C_TOKEN,
    "c-directives": _C_DIRECTIVE_TOKEN,
}


def _lex(text: str, python: Dialect = False) -> tuple[np.ndarray, np.ndarray]:
    """(in_string, in_comment) boolean arrays, the state after reading each char."""
    in_string, in_comment, _ = _lex_from(text, python, 0)
    return in_string, in_comment


def _lex_from(text: str, python: Dialect, tail: int) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`_lex`, and where lexing may restart with the same tokens: the start of the first
    token that ends within ``tail`` chars of the end (it may still grow), or ``tail`` chars
    before the end (an ending '' or / may turn into \'\'\' or //).

    ``python`` names the dialect (:data:`_TOKENS`); ``"c-directives"`` marks only the
    preprocessor directives, in the comment array."""
    directives = python == "c-directives"
    n = len(text)
    limit = n - tail
    restart = -1
    in_string = np.zeros(n, dtype=bool)
    in_comment = np.zeros(n, dtype=bool)
    for m in _TOKENS[python].finditer(text):
        start, end = m.span()
        if restart < 0 and end > limit:
            restart = min(limit, start)
        kind = m.lastgroup
        if directives:  # only directives are marked; strings and comments are skipped
            if kind == "directive":  # its leading blanks are outside
                in_comment[m.start("hash") : end] = True
            continue
        target = in_comment if kind in ("line", "block") else in_string
        target[start:end] = True
        closed = (
            (kind == "triple" and end - start >= 6 and text.endswith(text[start] * 3, 0, end))
            or (kind == "string" and end - start >= 2 and text[end - 1] == text[start])
            or (kind == "block" and text.endswith("*/", start + 2, end))
        )
        if closed:  # the char that closes a string or comment is already outside it
            target[end - 1] = False
    return in_string, in_comment, max(0, limit if restart < 0 else restart)


def _lexed(which: int, python: Dialect = False) -> Callable[[], Resumable]:
    def label(buf: str, state: object) -> tuple[np.ndarray, int]:
        in_string, in_comment, restart = _lex_from(buf, python, 3)
        return (in_string, in_comment)[which].astype(np.float32), restart

    return lambda: Resumable(label)


@_TABLE.feature("quote", kind="binary", per_sequence=True, stream=_lexed(0))
def quote(text: str) -> np.ndarray:
    """1 inside a string literal of code after reading the char, else 0: '...' and "..." with
    backslash escapes (an unescaped newline ends them), Python triple quotes spanning lines;
    the opening quote is inside, the char that closes the string is outside; quotes inside
    comments (#, //, /* */) do not count."""
    return _lex(text)[0].astype(np.float32)


@_TABLE.feature("comment", kind="binary", per_sequence=True, stream=_lexed(1))
def comment(text: str) -> np.ndarray:
    """1 inside a comment after reading the char, else 0: # and // line comments (the newline
    that ends one is outside) and /* ... */ block comments (the closing / is outside); markers
    inside string literals do not count. Language-agnostic: Python's // operator reads as a
    comment; use comment:python for Python source."""
    return _lex(text)[1].astype(np.float32)


@_TABLE.feature("quote:python", kind="binary", per_sequence=True, stream=_lexed(0, python=True))
def quote_python(text: str) -> np.ndarray:
    """As quote, for Python source: only # starts a comment (// is floor division)."""
    return _lex(text, python=True)[0].astype(np.float32)


@_TABLE.feature("comment:python", kind="binary", per_sequence=True, stream=_lexed(1, python=True))
def comment_python(text: str) -> np.ndarray:
    """1 inside a Python comment after reading the char, else 0: # to the end of the line (the
    newline is outside); // and /* are operators, not comments; # inside strings does not count."""
    return _lex(text, python=True)[1].astype(np.float32)


_OPEN = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}


def _depth(
    text: str, python: Dialect = False, start: float | None = None, tail: int = 0
) -> tuple[np.ndarray, int]:
    """Bracket depth after each char, from depth ``start`` (0) before the first, and the
    lexer's restart point (:func:`_lex_from`)."""
    in_string, in_comment, restart = _lex_from(text, python, tail)
    step = np.zeros(len(text), dtype=np.int64)
    for m in re.finditer(r"[()\[\]{}]", text):
        step[m.start()] = _OPEN[m.group()]
    step[in_string | in_comment] = 0
    # the walk d_t = max(0, d_{t-1} + step_t) from d_-1 = start >= 0 equals
    # S_t - min(0, min_{k<=t} S_k) with S_t = start + step_0 + ... + step_t
    s = int(start or 0) + np.cumsum(step)
    depth = s - np.minimum(np.minimum.accumulate(s), 0)
    return depth.astype(np.float32), restart


def _depth_stream(python: Dialect) -> Callable[[], Resumable]:
    return lambda: Resumable(lambda buf, state: _depth(buf, python, state, tail=3))


@_TABLE.feature("bracket-depth", kind="continuous", per_sequence=True, stream=_depth_stream(False))
def bracket_depth(text: str) -> np.ndarray:
    """Number of (, [ and { open after reading the char (an opening bracket counts at once, a
    closing one is already subtracted), ignoring brackets inside strings and comments; an
    unmatched closing bracket does not go below 0."""
    return _depth(text)[0]


@_TABLE.feature(
    "bracket-depth:python", kind="continuous", per_sequence=True, stream=_depth_stream(True)
)
def bracket_depth_python(text: str) -> np.ndarray:
    """As bracket-depth, for Python source: only # starts a comment (// is floor division)."""
    return _depth(text, python=True)[0]


# --------------------------------------------------------------------------- C and C++


@_TABLE.feature("quote:c", kind="binary", per_sequence=True, stream=_lexed(0, "c"))
def quote_c(text: str) -> np.ndarray:
    """1 inside a C/C++ string literal or character constant after reading the char, else 0:
    "..." and '...' with backslash escapes (a backslash-newline continues one, an unescaped
    newline ends it); the opening quote is inside, the closing one outside; # is no comment, so
    the strings of #define and #include "..." lines count; quotes inside // and /* */ comments
    do not."""
    return _lex(text, "c")[0].astype(np.float32)


@_TABLE.feature("comment:c", kind="binary", per_sequence=True, stream=_lexed(1, "c"))
def comment_c(text: str) -> np.ndarray:
    """1 inside a C/C++ comment after reading the char, else 0: // to the end of the line
    (continued over a backslash-newline; the newline that ends it is outside) and /* ... */ (the
    closing / is outside); # lines (#define, #include) are not comments (see preprocessor);
    markers inside string literals do not count."""
    return _lex(text, "c")[1].astype(np.float32)


@_TABLE.feature("bracket-depth:c", kind="continuous", per_sequence=True, stream=_depth_stream("c"))
def bracket_depth_c(text: str) -> np.ndarray:
    """As bracket-depth, for C/C++ source: only // and /* */ are comments, so the brackets of
    #define and #if lines count."""
    return _depth(text, "c")[0]


def _directives(buf: str, state: object) -> tuple[np.ndarray, int]:
    """Preprocessor labels of a segment and where lexing may restart; ``state``: the segment
    starts at a line start, after blanks at most (None: the start of the sequence)."""
    lead = "\n" if state is None or state else ""
    _, in_directive, restart = _lex_from(lead + buf, "c-directives", 3)
    return in_directive[len(lead) :].astype(np.float32), max(0, restart - len(lead))


def _directive_state(segment: str, labels: np.ndarray, state: object) -> bool:
    """Whether the next segment starts at a line start (only blanks after the last newline)."""
    last_line = segment.rsplit("\n", 1)
    if len(last_line) == 1:  # no newline in the segment: as it started, if only blanks
        return bool(state is None or state) and not last_line[0].strip(" \t")
    return not last_line[1].strip(" \t")


@_TABLE.feature(
    "preprocessor",
    kind="binary",
    per_sequence=True,
    stream=lambda: Resumable(_directives, None, _directive_state),
)
def preprocessor(text: str) -> np.ndarray:
    """1 on every char of a C/C++ preprocessor directive after reading it, else 0: from a # that
    is the first char of a line (after spaces and tabs; not inside a string or /* */ comment)
    to the end of the line, continued over backslash-newlines, comments on the line included;
    the leading blanks and the newline that ends the directive are outside."""
    return _lex("\n" + text, "c-directives")[1][1:].astype(np.float32)


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


def _line_position(text: str, tab: int) -> np.ndarray:
    return _columns(text, tab).astype(np.float32)


def _line_position_definition(tab: int) -> str:
    return (
        "Column after reading the char: chars read on the current line (a tab moves to the next "
        f"multiple of {tab}); the newline resets it to 0. line-position:N sets the tab width."
    )


def _tabbed(
    spec: str,
    arg: str,
    label: Callable[[str, int], np.ndarray],
    definition: Callable[[int], str],
) -> Feature:
    """A line feature with a tab width (``indent:N``, ``line-position:N``; default 4)."""
    tab = _tab_arg(spec, arg, 4)

    def func(text: str) -> np.ndarray:
        return label(text, tab)

    return Feature(
        spec, func, "continuous", definition(tab), True, stateless(func, after_last_newline)
    )


@_TABLE.family("indent", _indent_definition(4) + " (indent = indent:4)", "N")
def _indent_family(spec: str, arg: str) -> Feature:
    return _tabbed(spec, arg, _indent, _indent_definition)


@_TABLE.family(
    "line-position", _line_position_definition(4) + " (line-position = line-position:4)", "N"
)
def _line_position_family(spec: str, arg: str) -> Feature:
    return _tabbed(spec, arg, _line_position, _line_position_definition)


for _plain in (_indent_family("indent", ""), _line_position_family("line-position", "")):
    _TABLE.feature(
        _plain.name,
        kind=_plain.kind,
        definition=_plain.definition,
        per_sequence=True,
        stream=_plain.stream,
    )(_plain.func)


# --------------------------------------------------------------------------- characters

_CHAR_NAMES = {"space": " ", "tab": "\t", "newline": "\n", "\\n": "\n", "\\t": "\t", "\\\\": "\\"}


def char_arg(spec: str, arg: str) -> str:
    """The one char an argument names: itself, or ``space``, ``tab``, ``newline``, ``\\n``,
    ``\\t``; a FeatureError naming ``spec`` otherwise."""
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


def _next_char(text: str, char: str) -> np.ndarray:
    out = np.full(len(text), np.nan, dtype=np.float32)
    if len(text) > 1:
        out[:-1] = _is_char(text, char)[1:]
    return out


def _all_but_last(buf: str, final: bool) -> int:
    return max(0, len(buf) - 1)


def _char_feature(spec: str, char: str, ahead: int) -> Feature:
    """1 where the char ``ahead`` positions on (0: the one just read, 1: the next) is ``char``."""
    if ahead == 0:
        label = partial(_is_char, char=char)
        definition = f"1 where the char just read is {char!r}, else 0."
        cut = anywhere
        constant = f"the recorded text holds no {char!r} (or only {char!r})"
    else:
        label = partial(_next_char, char=char)
        definition = (
            f"1 where the next char is {char!r}, else 0; NaN at the last char of each sequence."
        )
        cut = _all_but_last  # wait for the next char
        constant = f"the recorded text holds no {char!r} after its first char (or only {char!r})"
    return Feature(spec, label, "binary", definition, True, stateless(label, cut), constant)


@_TABLE.family(
    "char", "1 where the char just read is X, else 0 (char:space, char:tab, char:\\n work)."
)
def _char_family(spec: str, arg: str) -> Feature:
    return _char_feature(spec, char_arg(spec, arg), 0)


@_TABLE.family(
    "next-char",
    "1 where the NEXT char (position t+1) is X, else 0; undefined (NaN) at the last char of "
    "each sequence.",
)
def _next_char_family(spec: str, arg: str) -> Feature:
    return _char_feature(spec, char_arg(spec, arg), 1)


def _steps(text: str, up: str, down: str | None) -> np.ndarray:
    step = _is_char(text, up).astype(np.int64)
    if down is not None:
        step -= _is_char(text, down).astype(np.int64)
    return step


def _count(text: str, up: str, down: str | None, start: int = 0) -> np.ndarray:
    return (start + np.cumsum(_steps(text, up, down))).astype(np.float32)


def _count_stream(up: str, down: str | None) -> Resumable:
    # the state is the exact integer count (a float32 label rounds above 2**24)
    return Resumable(
        lambda buf, state: _count(buf, up, down, state or 0),
        anywhere,
        lambda segment, labels, state: (state or 0) + int(_steps(segment, up, down).sum()),
    )


@_TABLE.family(
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
        up, down = char_arg(spec, arg), None
    what = f"{up}'s seen" + (f" minus {down}'s seen" if down else "")
    return Feature(
        spec,
        lambda t: _count(t, up, down),
        "continuous",
        f"Number of {what} in the current sequence, the char just read included.",
        True,
        partial(_count_stream, up, down),
    )


def _ab(text: str, value: float | None = None) -> np.ndarray:
    if value is None:
        value = {"A": 1.0, "B": 0.0}.get(text[:1], np.nan)
    return np.full(len(text), value, dtype=np.float32)


@_TABLE.feature(
    "ab-state",
    kind="binary",
    per_sequence=True,
    stream=lambda: Resumable(_ab, anywhere),  # the state is the value
)
def ab_state(text: str) -> np.ndarray:
    """Which of A/B began the sequence (the state-memory task): 1 on every char of a sequence
    whose first char is A, 0 if it is B, undefined (NaN) otherwise."""
    return _ab(text)


# --------------------------------------------------------------------------- when a feature is constant


def _dialects(base: str, what: str, mine: str) -> str:
    others = {
        "": f"{base} (any code: # and // both comments)",
        "python": f"{base}:python (Python)",
        "c": f"{base}:c (C/C++: # lines are directives, not comments)",
    }
    tried = f"{base}:{mine}" if mine else base
    why = f"the corpus may hold no {what}, or be in another dialect than {tried} reads"
    if base == "quote" and not mine:
        why += " (C's #include and #define lines read as comments and hide their strings)"
    try_ = ", ".join(v for k, v in others.items() if k != mine)
    if base == "quote":
        try_ += ", quote:prose (quotations in prose)"
    return f"{why}; try {try_}"


_HINTS = {
    **{
        (f"{base}:{mine}" if mine else base): _dialects(base, what, mine)
        for base, what in (
            ("quote", "string literals"),
            ("comment", "comments"),
            ("bracket-depth", "brackets outside strings and comments"),
        )
        for mine in ("", "python", "c")
    },
    "preprocessor": "the corpus may not be C/C++ source (no line starts with #); for #-comments "
    "try comment:python",
    "indent": "the corpus may have no indented lines",
    "ab-state": "it is defined only on sequences starting with A or B (the ab-memory task: a "
    'task corpus from `tasks.write("ab-memory", count=N, output=FILE)`, recorded with '
    '`reset="line"`)',
}
for _spec, _hint in _HINTS.items():
    _TABLE.set_hint(_spec, _hint)


def register_all(registry: Registry) -> None:
    """Add every built-in feature and family to ``registry``."""
    registry.update(_TABLE)
