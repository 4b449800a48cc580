"""The rules of an LSTMVis project (Strobelt et al., github.com/HendrikStrobelt/LSTMVis), as its
README, ``docs/chapter/config_states.md``, ``docs/chapter/meta.md`` and its server's reader
(``lstmdata/data_handler.py``) state them, and how lstmprobe's names map onto them
(docs/interop.md).

A project is a directory with ``lstm.yml``, which names its files (``files``: a reference name
-> a file name; HDF5 files must end in ``.h5``/``.hdf5``, dictionaries in ``.dict``/``.txt``),
the word sequence (``word_sequence``: a 1-D dataset of word ids and the dictionary that maps
them) and the states (``states``: a default file and ``types``, each a 2-D dataset of positions
x units with its ``type``, ``layer`` counted from 1, ``path``, ``unsigned`` and ``transform``,
``tanh`` unless declared otherwise). A dictionary holds ``word id`` lines split on whitespace; a
line that starts with a space maps the space.

Only the names are here; :mod:`~lstmprobe.interop.lstmvis_export` writes a project and
:mod:`~lstmprobe.interop.lstmvis_import` reads one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lstmprobe.errors import InteropError
from lstmprobe.names import QUANTITIES, Key

CONFIG = "lstm.yml"
#: The files an export writes, by their reference name in ``lstm.yml``'s ``files``.
FILES: dict[str, str] = {
    "states": "states.h5",
    "word_ids": "words.h5",
    "words": "words.dict",
    "meta": "meta.h5",
}
WORD_IDS_PATH = "word_ids"
#: The meta track that marks where each sequence starts (1) and where it goes on (0).
SEQUENCE_TRACK = "sequence_start"
#: The key of ``lstm.yml`` where an export keeps what LSTMVis does not read: the source's
#: identity, its sequences and how the names map.
OWN_KEY = "lstmprobe"
FORMAT = "lstmprobe.lstmvis"
FORMAT_VERSION = 1

HDF5_SUFFIXES = (".h5", ".hdf5")
DICT_SUFFIXES = (".dict", ".txt")
#: The whitespace LSTMVis's reader splits a dictionary line on (its ``str.split()`` of a
#: Python 2 byte string: ASCII whitespace only).
DICT_WHITESPACE = " \t\n\r\x0b\x0c"
_FIELDS = re.compile(f"[{re.escape(DICT_WHITESPACE)}]+")
#: A dictionary line holds no whitespace but the separator, and a reader splits lines on
#: newlines: these characters travel as stand-ins, the spellings of a Python string literal.
STAND_INS: dict[str, str] = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\x0b": "\\v", "\x0c": "\\f"}
_FROM_STAND_IN = {word: char for char, word in STAND_INS.items()}
_UNICODE_STAND_IN = re.compile(r"\\u([0-9a-fA-F]{4})")

#: LSTMVis's two documented state types; every other quantity keeps its own name as its type.
TYPE_OF: dict[str, str] = {"cell": "state", "hidden": "output"}
QUANTITY_OF: dict[str, str] = {t: q for q, t in TYPE_OF.items()}
REVERSE = "_reverse"

#: Bounds on what a project's text files can make an import read into memory.
MAX_CONFIG_BYTES = 1 << 20
MAX_DICT_BYTES = 64 << 20


def shown(value: object, limit: int = 40) -> str:
    """A value read from a project, as a message shows it: printable text as it is, anything
    else (a newline, a number, a list) as its ``repr``, cut at ``limit`` characters.

    Examples
    --------
    >>> shown("states1"), shown("a\\nb"), shown(3)
    ('states1', "'a\\\\nb'", '3')
    """
    text = value if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dict_word(char: str) -> str:
    """The word a dictionary line holds for ``char``: the character itself, or its stand-in
    where LSTMVis would split it away (whitespace; the space maps itself, by the leading-space
    rule).

    Examples
    --------
    >>> [dict_word(c) for c in ["a", " ", "\\n", "\\t", "\\u00a0", "\\\\"]]
    ['a', ' ', '\\\\n', '\\\\t', '\\\\u00a0', '\\\\']
    """
    if char == " ":
        return char
    if char in STAND_INS:
        return STAND_INS[char]
    if char.isspace():
        return f"\\u{ord(char):04x}"
    return char


def word_char(word: str, word_map: Mapping[str, str] | None = None) -> str | None:
    """The character a dictionary word stands for, or None where it stands for none: a word of
    one character is that character; the stand-ins of :func:`dict_word` are read back;
    ``word_map`` maps other words (``{"<eos>": "\\n"}``).

    Examples
    --------
    >>> word_char("a"), word_char("\\\\n"), word_char("\\\\u00a0"), word_char("<unk>")
    ('a', '\\n', '\\xa0', None)
    >>> word_char("<eos>", {"<eos>": "\\n"})
    '\\n'
    """
    if word_map and word in word_map:
        return word_map[word]
    if len(word) == 1:
        return word
    if word in _FROM_STAND_IN:
        return _FROM_STAND_IN[word]
    match = _UNICODE_STAND_IN.fullmatch(word)
    if match is None or 0xD800 <= int(match[1], 16) <= 0xDFFF:  # no lone surrogate
        return None
    return chr(int(match[1], 16))


def type_name(key: Key) -> str:
    """The LSTMVis ``type`` of a dataset: ``state`` (cell) or ``output`` (hidden), else the
    quantity's own name, with ``_reverse`` for a reverse direction."""
    base = TYPE_OF.get(key.quantity, key.quantity)
    return base + (REVERSE if key.direction == "reverse" else "")


def dataset_path(key: Key) -> str:
    """The path of a dataset in the exported states file: quantity and LSTMVis layer number,
    ``layer0/cell`` -> ``cell1``, ``layer1_reverse/hidden`` -> ``hidden2_reverse``."""
    return f"{key.quantity}{key.layer + 1}" + (REVERSE if key.direction == "reverse" else "")


def key_of(type_: object, layer: object, where: str) -> Key:
    """The lstmprobe dataset of one ``states.types`` entry: ``state`` -> ``cell``, ``output``
    -> ``hidden``, a quantity's own name -> itself; layer L (from 1) -> ``layer{L-1}``.

    Examples
    --------
    >>> str(key_of("state", 1, "")), str(key_of("output_reverse", 2, "")), str(key_of("forget_gate", 3, ""))
    ('layer0/cell', 'layer1_reverse/hidden', 'layer2/forget_gate')
    """
    if not isinstance(type_, str) or not type_:
        raise InteropError(
            f"{where}: `type` must be a name such as state or output, got {shown(type_)}"
        )
    base, direction = type_, "forward"
    if type_.endswith(REVERSE):
        base, direction = type_[: -len(REVERSE)], "reverse"
    quantity = QUANTITY_OF.get(base, base)
    if quantity not in QUANTITIES:
        known = ", ".join([*TYPE_OF.values(), *QUANTITIES])
        raise InteropError(
            f"{where}: type {shown(type_)} has no lstmprobe quantity; types read are {known} (each "
            f"also with {REVERSE}); remove the entry from the yml's states.types to import "
            "the rest"
        )
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 1:
        raise InteropError(
            f"{where}: `layer` must be an integer counted from 1, as LSTMVis counts, got {shown(layer)}"
        )
    return Key(layer - 1, quantity, direction)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DictEntry:
    """One line of a dictionary: the word, its id and the line number (from 1)."""

    word: str
    id: int
    line: int


def parse_dict(path: Path) -> dict[int, DictEntry]:
    """A dictionary file by LSTMVis's rules: each line ``word id`` split on whitespace, or a line
    starting with a space for the space itself; blank lines are skipped.

    Where LSTMVis's reader skips a line silently (another number of fields, an id that is not an
    integer) or lets a later line win (an id given twice), this one refuses with the line.

    Returns
    -------
    dict of int to DictEntry
        Each id and its entry.
    """
    try:
        size = path.stat().st_size
        if size > MAX_DICT_BYTES:
            raise InteropError(
                f"{path} has {size:,} bytes, more than the {MAX_DICT_BYTES:,} a dictionary of "
                "characters needs; lstmprobe imports character-level projects"
            )
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InteropError(
            f"{path} is not UTF-8 text (byte {exc.start:,}); save it as UTF-8"
        ) from None
    entries: dict[int, DictEntry] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        fields = [f for f in _FIELDS.split(line) if f]
        if not fields:
            continue
        if len(fields) == 2:
            word, id_text = fields
        elif len(fields) == 1 and line.startswith(" "):
            word, id_text = " ", fields[0]
        else:
            raise InteropError(
                f"line {number} of {path} is not `word id` ({len(fields)} fields: "
                f"{line.strip()[:40]!r}); LSTMVis's reader skips such a line: fix or remove it"
            )
        try:
            id_ = int(id_text)
        except ValueError:
            raise InteropError(
                f"line {number} of {path}: the id {id_text[:20]!r} is not an integer"
            ) from None
        earlier = entries.get(id_)
        if earlier is not None and earlier.word != word:
            raise InteropError(
                f"{path} gives id {id_} twice: {shown(earlier.word)} on line {earlier.line} and "
                f"{shown(word)} on line {number}; keep one"
            )
        entries.setdefault(id_, DictEntry(word, id_, number))
    return entries
