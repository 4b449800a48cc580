from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstmprobe.errors import CorpusError, VocabError
from lstmprobe.text import Vocab, check_chars, read_corpus, sequences


@given(st.text(min_size=1, max_size=300))
def test_encode_decode_round_trip_any_unicode(text):
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and len(ids) == len(text)
    assert [vocab.chars[i] for i in ids] == list(text)
    assert vocab.decode(ids) == text


@given(st.text(alphabet="ab€😀xyz", max_size=100))
def test_unknown_policies_agree_between_encode_and_check_chars(text):
    vocab = Vocab(("a", "b", "€", "😀"))
    known = [c for c in text if c in "ab€😀"]
    assert vocab.encode(text, "skip").tolist() == [vocab.index(c) for c in known]
    assert check_chars(text, vocab, "skip") == "".join(known)
    mapped = "".join(c if c in "ab€😀" else "€" for c in text)
    assert check_chars(text, vocab, "map:€") == mapped
    assert vocab.encode(text, "map:€").tolist() == [vocab.index(c) for c in mapped]
    if len(known) < len(text):
        with pytest.raises(CorpusError, match="not in the model's vocabulary"):
            vocab.encode(text)
        with pytest.raises(CorpusError, match="`unknown='skip'"):
            check_chars(text, vocab)


def test_the_error_names_the_first_unknown_chars_with_positions():
    vocab = Vocab.from_text("ab")
    with pytest.raises(CorpusError, match=r"7 characters .*'x' at 1, 'y' at 2, .* and 2 more"):
        vocab.encode("axyzuvwqb")
    with pytest.raises(VocabError):
        check_chars("ax", vocab, "map:Q")  # the replacement must be in the vocabulary


def test_read_corpus_errors(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        read_corpus(tmp_path / "none.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(CorpusError, match="empty"):
        read_corpus(tmp_path / "empty.txt")
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff")
    with pytest.raises(CorpusError, match="byte offset 3"):
        read_corpus(tmp_path / "bad.txt")
    (tmp_path / "crlf.txt").write_bytes(b"\xef\xbb\xbfa\r\nb")
    assert read_corpus(tmp_path / "crlf.txt") == "a\r\nb"  # BOM dropped, newlines kept


def _sequences_by_loop(text: str, reset: str) -> list[list[int]]:
    """The obvious per-character reference for :func:`sequences`."""
    if reset == "none" or not text:
        return [[0, len(text)]] if text else []
    out, start = [], 0
    for i, c in enumerate(text):
        if c == "\n":
            out.append([start, i + 1])
            start = i + 1
    if start < len(text):
        out.append([start, len(text)])
    return out


@pytest.mark.parametrize("text", ["", "abc", "ab\n", "\n", "\n\n", "a\nb", "\nab\n\ncd", "é\n😀\n"])
@pytest.mark.parametrize("reset", ["none", "line"])
def test_sequences_equal_the_per_character_loop(text, reset):
    got = sequences(text, reset)
    assert got.dtype == np.int64 and got.shape == (len(got), 2)
    assert got.tolist() == _sequences_by_loop(text, reset)


@given(
    st.text(alphabet=st.sampled_from("ab\n\ré"), max_size=200), st.sampled_from(["none", "line"])
)
def test_sequences_equal_the_loop_on_any_text(text, reset):
    assert sequences(text, reset).tolist() == _sequences_by_loop(text, reset)


def test_sequences_end_with_their_newline():
    assert sequences("ab\n\ncd", "line").tolist() == [[0, 3], [3, 4], [4, 6]]


# --------------------------------------------------------------------------- pairs files


def test_pairs_files_round_trip_with_escapes(tmp_path):
    from lstmprobe.text import Pair, pairs_text, read_pairs

    pairs = [Pair("a\tb\\", "c\nd", "\t"), Pair("AxxY", "BxY", "a")]
    path = tmp_path / "p.tsv"
    path.write_text(pairs_text(pairs) + "\n# a comment\n", encoding="utf-8")
    back = read_pairs(path)
    assert [(p.source, p.target, p.expected) for p in back] == [
        (p.source, p.target, p.expected) for p in pairs
    ]
    assert [p.line for p in back] == [2, 3]


@pytest.mark.parametrize(
    "line,message",
    [
        ("AxY\tBxY", "line 2: expected 3 tab-separated fields"),
        ("AxY\tBxY\tab", "line 2: the expected answer is one char"),
        ("\tBxY\ta", "line 2: the source and the target must not be empty"),
        ("Ax\\qY\tBxY\ta", r"line 2: unknown escape \\q"),
    ],
)
def test_a_malformed_pairs_line_is_named(tmp_path, line, message):
    from lstmprobe.errors import CorpusError
    from lstmprobe.text import read_pairs

    path = tmp_path / "p.tsv"
    path.write_text(f"AY\tBY\ta\n{line}\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        read_pairs(path)
    path.write_text("# only a comment\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="holds no pairs"):
        read_pairs(path)
