"""Sequence features and conditions: each definition against a plain Python reference, per
sequence, piece by piece and over a recording's windows."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmprobe.errors import FeatureError
from lstmprobe.features import get_feature, known_features, stream
from lstmprobe.features.stream import TextReader, feature_windows

ALPHABET = "abcXY\n"
NAN = float("nan")


# --- plain references: one char at a time, one sequence at a time ---------------------------


def ref_after(seq: str, x: str) -> list[float]:
    out, seen = [], False
    for c in seq:
        seen = seen or c == x
        out.append(1.0 if seen else 0.0)
    return out


def ref_before(seq: str, x: str) -> list[float]:
    return [1.0 - v for v in ref_after(seq, x)]


def ref_phase(seq: str, n: int, sep: str) -> list[float]:
    out, k = [], 0
    for c in seq:
        if c == sep:
            k += 1
        out.append(1.0 if k == n else 0.0)
    return out


def ref_first_char(seq: str, x: str) -> list[float]:
    return [1.0 if seq[0] == x else 0.0 for _ in seq]


def ref_seq_length(seq: str) -> list[float]:
    return [float(len(seq)) for _ in seq]


def ref_count_a(seq: str) -> list[float]:
    out, k = [], 0
    for c in seq:
        k += (c == "a") - (c == "b")
        out.append(float(k))
    return out


def ref_next_char(seq: str, x: str) -> list[float]:
    return [1.0 if seq[i + 1] == x else 0.0 for i in range(len(seq) - 1)] + [NAN]


def ref_char(seq: str, x: str) -> list[float]:
    return [1.0 if c == x else 0.0 for c in seq]


def ref_where(values: list[float], where: list[float]) -> list[float]:
    return [v if (w == w and w != 0) else NAN for v, w in zip(values, where)]


REFERENCES = {
    "after:X": lambda s: ref_after(s, "X"),
    "before:X": lambda s: ref_before(s, "X"),
    "after:Y": lambda s: ref_after(s, "Y"),
    "phase:0": lambda s: ref_phase(s, 0, "X"),
    "phase:1": lambda s: ref_phase(s, 1, "X"),
    "phase:2:Y": lambda s: ref_phase(s, 2, "Y"),
    "first-char:b": lambda s: ref_first_char(s, "b"),
    "first-char:X": lambda s: ref_first_char(s, "X"),
    "seq-length": ref_seq_length,
    "count:a@char:Y": lambda s: ref_where(ref_count_a(s), ref_char(s, "Y")),
    "next-char:b@after:X": lambda s: ref_where(ref_next_char(s, "b"), ref_after(s, "X")),
    "first-char:c@before:X": lambda s: ref_where(ref_first_char(s, "c"), ref_before(s, "X")),
    "seq-length@phase:1": lambda s: ref_where(ref_seq_length(s), ref_phase(s, 1, "X")),
    "char:a@count:a": lambda s: ref_where(ref_char(s, "a"), ref_count_a(s)),
    "count:a@char:Y@first-char:a": lambda s: ref_where(
        ref_where(ref_count_a(s), ref_char(s, "Y")), ref_first_char(s, "a")
    ),
}


def split(text: str, cuts: list[int]) -> np.ndarray:
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return np.array(list(itertools.pairwise(bounds)), dtype=np.int64).reshape(-1, 2)


def reference(spec: str, text: str, seqs: np.ndarray) -> np.ndarray:
    out = np.full(len(text), np.nan)
    for s, e in seqs:
        out[s:e] = REFERENCES[spec](text[s:e])
    return out


@settings(max_examples=120, deadline=None)
@given(
    text=st.text(alphabet=ALPHABET, min_size=1, max_size=50),
    cuts=st.lists(st.integers(0, 60), max_size=5),
)
def test_each_definition_equals_its_plain_reference_per_sequence(
    text: str, cuts: list[int]
) -> None:
    seqs = split(text, cuts)
    for spec in REFERENCES:
        got = get_feature(spec).labels(text, seqs)
        np.testing.assert_array_equal(got, reference(spec, text, seqs), err_msg=spec)


def scan(spec: str, text: str, sizes: list[int], length: int | None) -> np.ndarray:
    scanner = get_feature(spec).scanner(length)
    out, i = [], 0
    for k in sizes:
        out.append(scanner.feed(text[i : i + k]))
        i += k
    out += [scanner.feed(text[i:]), scanner.finish()]
    return np.concatenate(out)


@settings(max_examples=120, deadline=None)
@given(
    text=st.text(alphabet=ALPHABET, min_size=1, max_size=60),
    sizes=st.lists(st.integers(0, 9), max_size=12),
    known=st.booleans(),
)
def test_each_scanner_gives_the_labels_of_the_whole_sequence(
    text: str, sizes: list[int], known: bool
) -> None:
    for spec in REFERENCES:
        got = scan(spec, text, sizes, len(text) if known else None)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, get_feature(spec).labels(text), err_msg=spec)


def test_seq_length_labels_as_it_reads_when_the_length_is_known() -> None:
    scanner = get_feature("seq-length").scanner(5)
    assert scanner.feed("ab").tolist() == [5, 5]
    unknown = get_feature("seq-length").scanner()
    assert unknown.feed("ab").tolist() == []  # it waits for the end, keeping a count only
    assert unknown.feed("cde").tolist() == []
    assert unknown.finish().tolist() == [5] * 5


def test_a_condition_waits_only_for_the_slower_of_its_two_scanners() -> None:
    scanner = get_feature("count:a@next-char:Y").scanner()
    first = scanner.feed("aa")  # count:a has labelled both a's, next-char:Y the first only
    assert len(first) == 1 and np.isnan(first[0])
    assert scanner.feed("Y").tolist() == [2.0]  # the second a's next char is now known
    last = scanner.finish()  # the Y has no next char
    assert len(last) == 1 and np.isnan(last[0])


@pytest.mark.parametrize(
    "spec", ["count:a@char:Y", "next-char:b@after:X", "seq-length", "first-char:b", "phase:2:Y"]
)
def test_feature_windows_of_a_recording_equal_the_whole_text(
    spec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "BLOCK", 7)  # most sequences go through the scanners
    rng = np.random.default_rng(1)
    lines = [
        "".join(rng.choice(list("abcXY"), size=int(rng.integers(1, 30)))) + "\n" for _ in range(40)
    ]
    text = "".join(lines)
    seqs = split(text, list(np.cumsum([len(x) for x in lines])[:-1]))
    feat = get_feature(spec)
    want = feat.labels(text, seqs)
    np.testing.assert_array_equal(want, reference(spec, text, seqs))
    n = len(text)
    cuts = np.unique(np.r_[0, rng.integers(0, n, 25), n])
    windows = [(int(a), int(b)) for a, b in itertools.pairwise(cuts)]
    got = feature_windows(feat, TextReader(lambda a, b: text[a:b], n), n, seqs, windows)
    np.testing.assert_array_equal(np.concatenate(list(got)), want)


def test_the_selective_counters_n_is_read_at_y() -> None:
    # X is not counted and no b comes before Y: count:a at the Y is N
    got = get_feature("count:a@char:Y").labels("aXaXXaYbbb\n")
    assert got[6] == 3 and np.isnan(np.delete(got, 6)).all()


def test_the_copy_task_asks_next_char_in_the_copy_half() -> None:
    got = get_feature("next-char:b@after:X").labels("cbaXcba\n")
    assert np.isnan(got[:3]).all()  # the input half is undefined
    assert got[3:].tolist()[:4] == [0, 1, 0, 0]  # at X the model predicts the first copied c


def test_the_split_is_at_the_last_at_sign_that_a_feature_follows() -> None:
    assert get_feature("char:@").labels("a@").tolist() == [0, 1]
    at_a = get_feature("char:@@char:a").labels("@a@a")  # char:@ where char:a
    assert np.isnan(at_a[[0, 2]]).all() and at_a[[1, 3]].tolist() == [0, 0]
    assert get_feature("regex:\\w+@\\w+").labels("x@y z").tolist() == [1, 1, 1, 0, 0]
    assert get_feature("regex:x[@]y").labels("x@y").tolist() == [1, 1, 1]
    cond = get_feature("regex:a@char:Y")
    assert np.isnan(cond.labels("aY")[0]) and cond.labels("aY")[1] == 0


def test_kind_and_definition_of_a_condition() -> None:
    feat = get_feature("next-char:b@after:X")
    assert feat.kind == "binary" and feat.name == "next-char:b@after:X"
    assert "where after:X is on" in feat.definition
    assert get_feature("count:a@char:Y").kind == "continuous"


def test_bad_arguments_say_what_to_give() -> None:
    with pytest.raises(FeatureError, match="segment number"):
        get_feature("phase:x")
    with pytest.raises(FeatureError, match="one character"):
        get_feature("after:XY")
    with pytest.raises(FeatureError, match="unknown feature 'nothing'"):
        get_feature("nothing@char:a")
    with pytest.raises(FeatureError, match="FEATURE@WHERE"):
        get_feature("nothing")


def test_the_new_features_are_listed_with_definitions() -> None:
    known = known_features()
    for name in ("after:X", "before:X", "phase:N", "first-char:X", "seq-length", "FEATURE@WHERE"):
        assert known[name], name


def test_user_function_as_where(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "mine.py"
    path.write_text(
        "import numpy as np\n"
        "def even(text):\n"
        "    return (np.arange(len(text)) % 2 == 0).astype(float)\n"
    )
    got = get_feature(f"char:a@{path}:even").labels("aaaa")
    assert got[0] == 1 and math.isnan(got[1]) and got[2] == 1
