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


# --------------------------------------------------------------------------- corpora of files


def test_a_directory_gives_its_text_files_sorted_and_recursively(tmp_path):
    from lstmprobe.text import read_corpora

    d = tmp_path / "corpus"
    (d / "sub").mkdir(parents=True)
    (d / ".git").mkdir()
    (d / "b.txt").write_text("bb\n", encoding="utf-8")
    (d / "a.py").write_text("\ufeffa = 1\n", encoding="utf-8")  # the BOM is dropped
    (d / "sub" / "c.txt").write_text("cé", encoding="utf-8")
    (d / "empty.txt").write_text("")
    (d / ".hidden").write_text("no")
    (d / ".git" / "HEAD").write_text("no")
    (d / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (d / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    corpus = read_corpora([d])
    names = [f.removeprefix(str(d) + "/") for f in corpus.files]
    assert names == ["a.py", "b.txt", "empty.txt", "sub/c.txt"]
    assert corpus.text == "a = 1\nbb\ncé"
    assert sorted(s.rsplit("/", 1)[1] for s in corpus.skipped) == ["image.png", "latin1.txt"]
    seqs = corpus.sequences("none")
    assert seqs.tolist() == [[0, 6], [6, 9], [9, 11]]
    assert corpus.sequence_files(seqs).tolist() == [0, 1, 3]


def test_paths_and_globs_in_the_order_given(tmp_path):
    from lstmprobe.text import read_corpora

    for name, text in [("x1.txt", "1"), ("x2.txt", "2"), ("y.txt", "y")]:
        (tmp_path / name).write_text(text)
    corpus = read_corpora([tmp_path / "y.txt", str(tmp_path / "x*.txt")])
    assert corpus.text == "y12" and corpus.bounds.tolist() == [0, 1, 2, 3]
    one = read_corpora([tmp_path / "y.txt"])  # one file: as read_corpus reads it
    assert one.files == (str(tmp_path / "y.txt"),) and one.sequences().tolist() == [[0, 1]]


def test_corpora_without_text_are_one_line_errors(tmp_path):
    from lstmprobe.text import read_corpora

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "a.bin").write_bytes(b"\x00\x01")
    (tmp_path / "none").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "e.txt").write_text("")
    cases = {
        "holds no text files \\(1 files, none UTF-8 text\\)": [tmp_path / "bin"],
        "corpus directory .*none holds no text files; give UTF-8": [tmp_path / "none"],
        "matches no file": [str(tmp_path / "*.nothing")],
        "its files hold no characters": [tmp_path / "empty"],
        "no corpus given": [],
        "does not exist": [tmp_path / "missing.txt"],
    }
    for message, sources in cases.items():
        with pytest.raises(CorpusError, match=message) as info:
            read_corpora(sources)
        assert "\n" not in str(info.value)


def test_unknown_characters_are_handled_file_by_file():
    from lstmprobe.text import Corpus

    vocab = Vocab.from_text("ab\n")
    corpus = Corpus.of_files([("f", "aXb\n"), ("g", "XX"), ("h", "ba")])
    skipped = corpus.checked(vocab, "skip")
    assert skipped.text == "ab\nba" and skipped.bounds.tolist() == [0, 3, 3, 5]
    assert skipped.sequences().tolist() == [[0, 3], [3, 5]]
    assert corpus.checked(vocab, "map:a").text == "aab\naaba"
    with pytest.raises(CorpusError, match=r"^f: the corpus has 1 character not in"):
        corpus.checked(vocab)


@given(
    st.lists(st.text(alphabet="ab\n", max_size=12), min_size=1, max_size=6),
    st.sampled_from(["none", "line"]),
    st.data(),
)
def test_a_part_cut_between_sequences_has_the_same_sequences(texts, reset, data):
    from lstmprobe.text import Corpus

    corpus = Corpus.of_files([(f"f{i}", t) for i, t in enumerate(texts)])
    seqs = corpus.sequences(reset)
    if not len(seqs):
        return
    i = data.draw(st.integers(0, len(seqs) - 1))
    j = data.draw(st.integers(i + 1, len(seqs)))
    a, b = int(seqs[i, 0]), int(seqs[j - 1, 1])
    part = corpus.part(a, b)
    assert part.text == corpus.text[a:b]
    assert (part.sequences(reset) + a).tolist() == seqs[i:j].tolist()
    names = [corpus.files[k] for k in corpus.sequence_files(seqs[i:j])]
    assert [part.files[k] for k in part.sequence_files(part.sequences(reset))] == names


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
