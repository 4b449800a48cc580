"""Text: reading a UTF-8 corpus, the character vocabulary, and sequences (state reset points)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lstmprobe.errors import CorpusError, VocabError

Reset = Literal["none", "line"]
RESETS: tuple[str, ...] = ("none", "line")


@dataclass(frozen=True)
class Vocab:
    """A character vocabulary: ``chars[i]`` is the character with id ``i``.

    Examples
    --------
    >>> v = Vocab.from_text("abca")
    >>> v.chars
    ('a', 'b', 'c')
    >>> v.encode("cab").tolist()
    [2, 0, 1]
    >>> v.decode([1, 2])
    'bc'
    """

    chars: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars):
            dup = sorted({c for c in self.chars if self.chars.count(c) > 1})
            raise VocabError(f"vocabulary has duplicate characters {dup!r}; each must appear once")
        for i, c in enumerate(self.chars):
            if not isinstance(c, str) or len(c) != 1:
                raise VocabError(
                    f"vocabulary entries must be single characters, got {c!r}; "
                    "lstmprobe models are character-level"
                )
            if "\ud800" <= c <= "\udfff":  # half of a UTF-16 pair: no text holds it alone
                raise VocabError(
                    f"vocabulary entry {i} is {c!r}, a lone surrogate, not a character; the "
                    "vocabulary was saved from UTF-16 text split in the middle of a character "
                    "(an emoji, say): rebuild it from the decoded text"
                )

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: object) -> bool:
        return char in self._index

    @property
    def _index(self) -> dict[str, int]:
        index = self.__dict__.get("_index_cache")
        if index is None:
            index = {c: i for i, c in enumerate(self.chars)}
            object.__setattr__(self, "_index_cache", index)
        return index

    def index(self, char: str) -> int:
        """Id of one character; :class:`~lstmprobe.errors.VocabError` if absent."""
        try:
            return self._index[char]
        except KeyError:
            raise VocabError(f"character {char!r} is not in the vocabulary") from None

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """The sorted set of characters of ``text``."""
        return cls(tuple(sorted(set(text))))

    @classmethod
    def from_obj(cls, obj: object) -> Vocab:
        """Build from a list/tuple/str in index order or a dict char -> index (or index -> char)."""
        if isinstance(obj, str):
            return cls(tuple(obj))
        if isinstance(obj, (list, tuple)):
            return cls(tuple(obj))
        if isinstance(obj, dict):
            items = list(obj.items())
            if all(isinstance(k, str) and len(k) == 1 for k, _ in items):
                pairs = [(int(v), k) for k, v in items]
            elif all(isinstance(v, str) for _, v in items):
                pairs = [(int(k), v) for k, v in items]
            else:
                raise VocabError(
                    "a vocabulary dict must map characters to indices (stoi) or indices to "
                    "characters (itos)"
                )
            pairs.sort()
            if [i for i, _ in pairs] != list(range(len(pairs))):
                raise VocabError(
                    f"vocabulary indices must be 0..{len(pairs) - 1} without gaps, "
                    f"got {[i for i, _ in pairs][:10]}..."
                )
            return cls(tuple(c for _, c in pairs))
        raise VocabError(
            f"cannot read a vocabulary from a {type(obj).__name__}; give a JSON list of "
            "characters in index order or a JSON object char -> index"
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Vocab:
        """Read a JSON vocabulary file (list in index order, or object char -> index)."""
        path = Path(path)
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VocabError(f"vocabulary file {path} does not exist") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VocabError(
                f"vocabulary file {path} is not valid JSON ({exc}); give a JSON list of "
                "characters in index order or a JSON object char -> index"
            ) from None
        return cls.from_obj(obj)

    def to_json(self) -> str:
        return json.dumps(list(self.chars), ensure_ascii=False)

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        """Ids of the characters of ``text`` as an int64 array.

        ``unknown`` says what to do with characters the vocabulary lacks (see
        :func:`check_chars`): ``"error"`` raises a :class:`~lstmprobe.errors.CorpusError` listing
        the first few with their positions, ``"skip"`` drops them (positions shift),
        ``"map:C"`` replaces them with the vocabulary's character ``C``.
        """
        mode, replacement = _parse_unknown(unknown)
        ids, known = self._lookup(_codepoints(text))
        if not known.all():
            if mode == "error":
                raise CorpusError(_unknown_message(text, known))
            if mode == "skip":
                ids = ids[known]
            else:
                ids[~known] = self.index(replacement)
        return ids

    def _lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, known) for an array of code points; ids are 0 where unknown."""
        table = self.__dict__.get("_table_cache")
        if table is None:
            points = _codepoints("".join(self.chars))
            order = np.argsort(points, kind="stable")
            table = (points[order], order.astype(np.int64))
            object.__setattr__(self, "_table_cache", table)
        keys, values = table
        slot = np.minimum(np.searchsorted(keys, codes), len(keys) - 1)
        known = keys[slot] == codes
        return np.where(known, values[slot], 0), known

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        points = _codepoints("".join(self.chars))
        return points[np.asarray(ids, dtype=np.int64)].astype("<u4").tobytes().decode("utf-32-le")


def _codepoints(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as a uint32 array (one vectorised pass)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


def _parse_unknown(unknown: str) -> tuple[str, str]:
    if unknown in ("error", "skip"):
        return unknown, ""
    if unknown.startswith("map:") and len(unknown) == 5:
        return "map", unknown[4]
    raise CorpusError(
        f"`unknown` must be 'error', 'skip' or 'map:C' with one character C, got {unknown!r}"
    )


def _unknown_message(text: str, known: np.ndarray) -> str:
    missing = np.flatnonzero(~known)
    shown = ", ".join(f"{text[i]!r} at {i}" for i in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return (
        f"the corpus has {len(missing)} character{'s' if len(missing) > 1 else ''} not in the "
        f"model's vocabulary: {shown}{more}; "
        "use `unknown='skip'` to drop them or `unknown='map:C'` to replace them with C"
    )


def check_chars(text: str, vocab: Vocab, unknown: str = "error") -> str:
    """Apply the ``unknown`` policy to ``text`` and return the text that will be recorded."""
    mode, replacement = _parse_unknown(unknown)
    codes = _codepoints(text)
    _, known = vocab._lookup(codes)
    if known.all():
        return text
    if mode == "error":
        raise CorpusError(_unknown_message(text, known))
    if mode == "skip":
        codes = codes[known]
    else:
        vocab.index(replacement)
        codes = np.where(known, codes, ord(replacement)).astype("<u4")
    return codes.tobytes().decode("utf-32-le")


def read_corpus(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 corpus; one clear error if it is missing, empty or not UTF-8.

    Newlines are kept exactly as they are in the file (no ``\\r\\n`` translation).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"corpus {path} does not exist") from None
    except IsADirectoryError:
        raise CorpusError(f"corpus {path} is a directory; give a text file") from None
    if not data:
        raise CorpusError(f"corpus {path} is empty; give a UTF-8 text file with some text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"corpus {path} is not UTF-8: byte 0x{data[exc.start]:02x} at byte offset {exc.start} "
            "cannot be decoded; convert it (e.g. iconv -f latin1 -t utf-8)"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text:
        raise CorpusError(f"corpus {path} is empty; give a UTF-8 text file with some text")
    return text


def sequences(text: str, reset: str = "none") -> np.ndarray:
    """``[start, end)`` of each independent sequence, an int64 array of shape (n_sequences, 2).

    ``reset="none"``: the whole text is one stream. ``reset="line"``: each line is one sequence,
    its trailing newline included (the model reads it as the end of the sequence).

    Examples
    --------
    >>> sequences("ab\\ncd\\n", "line").tolist()
    [[0, 3], [3, 6]]
    >>> sequences("ab\\ncd", "none").tolist()
    [[0, 5]]
    """
    if reset not in RESETS:
        raise CorpusError(f"reset must be one of {RESETS}, got {reset!r}")
    n = len(text)
    if reset == "none" or n == 0:
        return np.array([[0, n]], dtype=np.int64).reshape(-1, 2)[: 1 if n else 0]
    ends = np.flatnonzero(_codepoints(text) == ord("\n")).astype(np.int64) + 1
    if not len(ends) or ends[-1] != n:
        ends = np.append(ends, np.int64(n))
    starts = np.concatenate([np.zeros(1, dtype=np.int64), ends[:-1]])
    return np.stack([starts, ends], axis=1)


# --------------------------------------------------------------------------- corpora of many files

#: Characters of a glob pattern: an argument holding one that names no existing path is a glob.
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, eq=False)
class Corpus:
    """A corpus of one or more files: their texts one after the other, and where each begins.

    Each file is its own sequence (the state is reset at its start); with ``reset="line"``
    each of its lines is. :func:`read_corpora` reads one from files, directories and globs.

    Parameters
    ----------
    text : str
        Every file's text, in order.
    files : tuple of str
        The files' names, in order (as given, or a directory's path joined with the file's
        path inside it).
    bounds : ndarray of shape (n_files + 1,), int64
        File ``i`` is ``text[bounds[i]:bounds[i + 1]]`` (an empty file has an empty span).
    skipped : tuple of str
        Files of a directory or glob that were left out: not UTF-8 text.

    Examples
    --------
    >>> c = Corpus.of_files([("a.txt", "ab\\ncd"), ("b.txt", "ef\\n")])
    >>> c.text, c.sequences("none").tolist(), c.sequences("line").tolist()
    ('ab\\ncdef\\n', [[0, 5], [5, 8]], [[0, 3], [3, 5], [5, 8]])
    >>> c.sequence_files(c.sequences("line")).tolist()
    [0, 0, 1]
    """

    text: str
    files: tuple[str, ...]
    bounds: np.ndarray
    skipped: tuple[str, ...] = ()

    @classmethod
    def of_files(cls, named: Sequence[tuple[str, str]], skipped: Sequence[str] = ()) -> Corpus:
        """A corpus of ``(name, text)`` pairs, in order."""
        lengths = [len(text) for _, text in named]
        bounds = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
        text = "".join(t for _, t in named)
        return cls(text, tuple(name for name, _ in named), bounds, tuple(skipped))

    @classmethod
    def of_text(cls, text: str, name: str = "") -> Corpus:
        """A corpus of one text (one file named ``name``)."""
        return cls.of_files([(name, text)])

    def sequences(self, reset: str = "none") -> np.ndarray:
        """``[start, end)`` of each sequence (:func:`sequences` of each file, in order), int64
        of shape (n_sequences, 2); an empty file has none."""
        parts = [np.empty((0, 2), dtype=np.int64)]
        for i in range(len(self.files)):
            a, b = int(self.bounds[i]), int(self.bounds[i + 1])
            if b > a:
                parts.append(sequences(self.text[a:b], reset) + a)
        return np.concatenate(parts).astype(np.int64)

    def sequence_files(self, seqs: np.ndarray) -> np.ndarray:
        """The file of each sequence of ``seqs`` (an index into :attr:`files`), int32."""
        starts = np.asarray(seqs, dtype=np.int64).reshape(-1, 2)[:, 0]
        return (np.searchsorted(self.bounds, starts, side="right") - 1).astype(np.int32)

    def part(self, start: int, stop: int) -> Corpus:
        """Positions ``[start, stop)`` as a corpus of its own: the files they overlap, each
        cut to them (a shard of a recording, cut between sequences).

        Examples
        --------
        >>> c = Corpus.of_files([("a", "ab\\ncd\\n"), ("b", "ef")]).part(3, 8)
        >>> c.text, c.files, c.bounds.tolist()
        ('cd\\nef', ('a', 'b'), [0, 3, 5])
        """
        first = int(np.searchsorted(self.bounds, start, side="right")) - 1
        last = max(first, int(np.searchsorted(self.bounds, stop, side="left")) - 1)
        bounds = np.clip(self.bounds[first : last + 2], start, stop) - start
        return Corpus(self.text[start:stop], self.files[first : last + 1], bounds.astype(np.int64))

    def checked(self, vocab: Vocab, unknown: str = "error") -> Corpus:
        """The corpus with the ``unknown`` policy applied (:func:`check_chars`) file by file, so
        that every file keeps its own span."""
        named = []
        for i, name in enumerate(self.files):
            part = self.text[int(self.bounds[i]) : int(self.bounds[i + 1])]
            try:
                named.append((name, check_chars(part, vocab, unknown)))
            except CorpusError as exc:
                if len(self.files) == 1:
                    raise
                raise CorpusError(f"{name}: {exc}") from None
        if len(named) == 1 and named[0][1] is self.text:
            return self
        return Corpus.of_files(named, self.skipped)


def read_corpora(sources: Sequence[str | os.PathLike[str]]) -> Corpus:
    """Read a corpus from files, directories and glob patterns, in the order given.

    A file is read whole (:func:`read_corpus`: it must be UTF-8 and not empty). A directory
    gives every file under it, recursively, sorted by path, hidden ones (``.name``) left
    out; a glob pattern (``"corpus/*.txt"``, quoted so that the shell does not expand it)
    gives its matches, sorted. Of those, a file that is not UTF-8 text (undecodable, or
    holding NUL bytes) is skipped and listed in :attr:`Corpus.skipped`; an empty one
    contributes no sequence.

    Raises
    ------
    CorpusError
        Nothing given, a path that does not exist, a directory or glob without a text file,
        or a corpus with no character at all.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "b.txt").write_text("bb"), (d / "a.txt").write_text("a\\n")
    >>> c = read_corpora([d])
    >>> [Path(f).name for f in c.files], c.text
    (['a.txt', 'b.txt'], 'a\\nbb')
    """
    if not sources:
        raise CorpusError("no corpus given; give a text file, a directory or a glob pattern")
    named: list[tuple[str, str]] = []
    skipped: list[str] = []
    for source in sources:
        given = os.fspath(source)
        path = Path(given)
        if path.is_dir():
            found = _files_under(path)
            what = f"corpus directory {path}"
        elif not path.exists() and _GLOB_CHARS & set(given):
            found = _glob(given)
            what = f"corpus pattern {given!r}"
        else:
            named.append((given, read_corpus(path)))
            continue
        texts = [(str(f), _text_of(f)) for f in found]
        kept = [(name, text) for name, text in texts if text is not None]
        skipped += [name for name, text in texts if text is None]
        if not kept:
            why = f" ({len(texts)} files, none UTF-8 text)" if texts else ""
            raise CorpusError(
                f"{what} holds no text files{why}; give UTF-8 text files"
                + (" (is the pattern quoted?)" if what.startswith("corpus pattern") else "")
            )
        named += [(name, text) for name, text in kept if text is not None]
    corpus = Corpus.of_files(named, skipped)
    if not corpus.text:
        raise CorpusError("the corpus is empty: its files hold no characters; give some text")
    return corpus


def _files_under(root: Path) -> list[Path]:
    """Every regular file under ``root``, recursively, sorted by path; hidden ones left out."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        out += [Path(dirpath, f) for f in filenames if not f.startswith(".")]
    return sorted((p for p in out if p.is_file()), key=lambda p: p.relative_to(root).as_posix())


def _glob(pattern: str) -> list[Path]:
    import glob

    found: list[Path] = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        path = Path(match)
        found += _files_under(path) if path.is_dir() else [path] if path.is_file() else []
    if not found:
        raise CorpusError(f"corpus pattern {pattern!r} matches no file; check the pattern")
    return found


def _text_of(path: Path) -> str | None:
    """The UTF-8 text of a file found in a directory or by a glob (BOM dropped); None when
    it is not text (undecodable or holding NUL bytes)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot read corpus file {path}: {exc.strerror or exc}") from None
    if b"\x00" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text[1:] if text.startswith("\ufeff") else text


# --------------------------------------------------------------------------- pairs of texts

#: The first line of a pairs file: what its columns are.
PAIRS_HEADER = "# lstmprobe pairs: source<TAB>target<TAB>expected (\\t \\n \\\\ escaped)"
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}


@dataclass(frozen=True)
class Pair:
    """One line of a pairs file: a source text, a target text, and the char the target should
    predict next once a source's state is patched into it (the source's answer).

    ``line`` is where it came from in its file (1-based; 0 when made in code).
    """

    source: str
    target: str
    expected: str
    line: int = 0


def _escape(text: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def _unescape(field: str, line: int, path: str) -> str:
    out, i = [], 0
    while i < len(field):
        ch = field[i]
        if ch == "\\":
            nxt = field[i + 1] if i + 1 < len(field) else ""
            if nxt not in _UNESCAPES:
                raise CorpusError(
                    f"{path}, line {line}: unknown escape \\{nxt} (write \\t, \\n, \\r or \\\\)"
                )
            out.append(_UNESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def pairs_text(pairs: Sequence[Pair]) -> str:
    r"""The text of a pairs file for ``pairs`` (header line, then one tab-separated line each).

    Examples
    --------
    >>> pairs_text([Pair("AxxY", "BxY", "a"), Pair("A\tY", "BY", "a")]).splitlines()[1:]
    ['AxxY\tBxY\ta', 'A\\tY\tBY\ta']
    """
    lines = [PAIRS_HEADER]
    lines += [f"{_escape(p.source)}\t{_escape(p.target)}\t{_escape(p.expected)}" for p in pairs]
    return "\n".join(lines) + "\n"


def read_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """The pairs of a pairs file: one ``source<TAB>target<TAB>expected`` a line (tabs, newlines
    and backslashes inside a text escaped as ``\\t``, ``\\n``, ``\\\\``); lines starting with #
    and empty lines are skipped. A malformed line is a :class:`~lstmprobe.errors.CorpusError`
    that names it."""
    text = read_corpus(path)
    where = str(path)
    pairs = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise CorpusError(
                f"{where}, line {number}: expected 3 tab-separated fields (source, target, "
                f"expected char), got {len(fields)}: {line[:60]!r}"
            )
        source, target, expected = (_unescape(f, number, where) for f in fields)
        if not source or not target:
            raise CorpusError(
                f"{where}, line {number}: the source and the target must not be empty"
            )
        if len(expected) != 1:
            raise CorpusError(
                f"{where}, line {number}: the expected answer is one char, got {expected!r}"
            )
        pairs.append(Pair(source, target, expected, number))
    if not pairs:
        raise CorpusError(
            f"{where} holds no pairs; write one source<TAB>target<TAB>expected a line"
        )
    return pairs
