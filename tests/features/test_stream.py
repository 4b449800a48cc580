"""Features piece by piece: every scanner gives the labels of the whole text, and
feature_windows gives them for windows of a recording."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmprobe.errors import FeatureError
from lstmprobe.features import Feature, get_feature, stream
from lstmprobe.features.stream import TextReader, feature_windows
from lstmprobe.probes import (
    LinearProbeCV,
    StoreProbe,
    make_labels,
    rank_units,
    store_labels,
    unit_scores,
)
from lstmprobe.probes import labels as labels_module
from lstmprobe.store import ActivationStore
from tests.stores import BASE, build_store

STREAMED = [
    "quote", "comment", "quote:python", "comment:python", "bracket-depth",
    "bracket-depth:python", "indent", "indent:2", "line-position", "line-position:8",
    "quote:prose", "proper-noun", "hashtag", "hashtag:position", "mention",
    "mention:position", "url", "url:position", "caps", "char:a", "char:space", "next-char:b",
    "next-char:newline", "count:a", "count:x", "count:a-c", "ab-state", "after:X", "before:X",
    "phase:1", "phase:2::", "first-char:a", "seq-length", "count:a@char:X", "next-char:b@after:X",
    "quote@indent",
]  # fmt: skip
# pieces of text that exercise every lexer, line, word and quotation rule
ATOMS = [
    *"ab AB\"'\\/*#\n\t([{}])“”.!?xX@wZ:",
    "www.", "http://", "'''", '"""', "Hello ", "The ", "John ", "USA ", "\n\n", "  ", "//",
]  # fmt: skip


def scan(spec: str, text: str, sizes: list[int]) -> np.ndarray:
    scanner = get_feature(spec).scanner()
    out, i = [], 0
    for k in sizes:
        out.append(scanner.feed(text[i : i + k]))
        i += k
    out.append(scanner.feed(text[i:]))
    out.append(scanner.finish())
    return np.concatenate(out)


@settings(max_examples=150, deadline=None)
@given(
    atoms=st.lists(st.sampled_from(ATOMS), max_size=60),
    sizes=st.lists(st.integers(1, 9), max_size=40),
)
def test_every_scanner_matches_the_whole_text(atoms: list[str], sizes: list[int]) -> None:
    text = "".join(atoms)
    for spec in STREAMED:
        want = get_feature(spec).labels(text)
        got = scan(spec, text, sizes)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want, err_msg=f"{spec} on {text!r} in {sizes}")


def test_every_builtin_streams() -> None:
    for spec in STREAMED:
        assert get_feature(spec).stream is not None, spec


def test_a_token_that_may_still_grow_is_carried() -> None:
    # '' then ' is a triple quote; / then * opens a block comment
    assert scan("quote", "x = ''' a\nb''' + 1", [6, 1]).tolist() == (
        get_feature("quote").labels("x = ''' a\nb''' + 1").tolist()
    )
    assert scan("comment", "a /* b */ c", [3]).tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0]


def test_count_keeps_the_exact_integer_state() -> None:
    scanner = get_feature("count:a").scanner()
    assert scanner.feed("aab").tolist() == [1, 2, 1]
    assert scanner.feed("ba").tolist() == [0, 1]
    assert scanner.finish().tolist() == []


def test_a_feature_without_scanner_waits_for_the_whole_sequence() -> None:
    scanner = get_feature("regex:ab+").scanner()
    assert scanner.feed("xab").tolist() == []
    assert scanner.feed("bb").tolist() == []
    assert scanner.finish().tolist() == [0, 1, 1, 1, 1]


def corpus(n_seq: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    parts, seqs, pos = [], [], 0
    for _ in range(n_seq):
        k = int(rng.integers(1, 400))
        parts.append("".join(rng.choice(ATOMS, size=k)))
        seqs.append((pos, pos + len(parts[-1])))
        pos += len(parts[-1])
    return "".join(parts), np.array(seqs, dtype=np.int64)


def running_a(text: str) -> np.ndarray:
    """A user's function: a's so far in the whole text (it sees no sequences)."""
    return np.cumsum([c == "a" for c in text]).astype(float)


USER = Feature("running_a", running_a, "continuous")


@pytest.mark.parametrize("spec", ["quote", "count:a", "indent", "next-char:b", "regex:ab+", USER])
def test_feature_windows_equal_the_labels_of_the_whole_text(
    spec: str | Feature, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "BLOCK", 97)  # long sequences go through the scanners
    rng = np.random.default_rng(0)
    text, seqs = corpus(12, rng)
    n = len(text)
    feat = get_feature(spec)
    want = feat.labels(text, seqs)
    cuts = np.unique(np.r_[0, rng.integers(0, n, 30), n])
    windows = [(int(a), int(b)) for a, b in itertools.pairwise(cuts) if rng.random() < 0.7]
    reader = TextReader(lambda a, b: text[a:b], n)
    got = list(feature_windows(feat, reader, n, seqs, windows))
    for (a, b), labels in zip(windows, got):
        np.testing.assert_array_equal(labels, want[a:b], err_msg=f"{spec} [{a}, {b})")
    # a recording that is one sequence (stream mode)
    one = np.array([[0, n]], dtype=np.int64)
    whole = np.concatenate(list(feature_windows(feat, reader, n, one, [(0, n // 2), (n // 2, n)])))
    np.testing.assert_array_equal(whole, feat.labels(text, one))


def test_positions_outside_every_sequence_are_undefined() -> None:
    reader = TextReader(lambda a, b: "a" * (b - a), 6)
    seqs = np.array([[1, 3], [4, 5]])
    (got,) = feature_windows(get_feature("char:a"), reader, 6, seqs, [(0, 6)])
    assert np.isnan(got[[0, 3, 5]]).all() and got[[1, 2, 4]].tolist() == [1, 1, 1]


# --- a recording whose labels are streamed ---------------------------------------------------


@pytest.fixture(scope="module")
def one_sequence_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stream-mode recording: the whole corpus is one sequence."""
    text = (BASE * 60).replace("\n\n", "\n")
    path = build_store(tmp_path_factory.mktemp("stream") / "acts.h5", text)
    with ActivationStore(path) as s:
        assert len(s.sequences) == 1
    return path


def streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Force streamed labels in small blocks, and fail on any read of the whole text."""
    monkeypatch.setattr(labels_module, "LABEL_MEMORY", 0)
    monkeypatch.setattr(stream, "BLOCK", 256)

    def whole_text(self: ActivationStore) -> str:
        raise AssertionError("the whole text was read")

    monkeypatch.setattr(ActivationStore, "text", property(whole_text))


FEATURES = ["quote", "indent", "bracket-depth", "line-position", "char:e", "next-char:("]


@pytest.mark.parametrize("joint_rows", [labels_module.MAX_JOINT_ROWS, 3])
def test_streamed_labels_give_the_same_scores(
    one_sequence_store: Path, monkeypatch: pytest.MonkeyPatch, joint_rows: int
) -> None:
    # with 3 joint rows at most, scoring finds the joint patterns with a pass of its own
    monkeypatch.setattr(labels_module, "MAX_JOINT_ROWS", joint_rows)
    with ActivationStore(one_sequence_store) as s:
        want = unit_scores(s, FEATURES, chunk_size=1024)
        in_memory = store_labels(s, FEATURES)
        streamed(monkeypatch)
        labels = store_labels(s, FEATURES)
        got = unit_scores(s, FEATURES, chunk_size=1024)
    assert all(lab.values is None for lab in labels)
    assert (labels[0].joint.rows is None) == (joint_rows == 3)
    assert all(lab.values is not None for lab in in_memory)
    for a, b in zip(in_memory, labels):
        assert a.summary() == pytest.approx(b.summary())
        np.testing.assert_array_equal(a.keys, b.keys)
        np.testing.assert_array_equal(a.key_codes, b.key_codes)
        np.testing.assert_allclose(a.bin_values, b.bin_values)
    for name, w in want.items():
        g = got[name]
        for field in ("auc", "pearson", "spearman", "mi", "sign", "score"):
            x, y = getattr(w, field), getattr(g, field)
            if x is None:
                assert y is None
            else:
                np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-12, err_msg=field)


@pytest.mark.slow
def test_streamed_labels_give_the_same_ranking_and_probe(
    one_sequence_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ActivationStore(one_sequence_store) as s:
        want = rank_units(s, ["quote", "indent"], n_boot=20, k_max=4)
        probe = StoreProbe.fit(
            s, "quote", units=want.top(4, feature="quote"), estimator=LinearProbeCV(l1_grid=(0.01,))
        )
        streamed(monkeypatch)
        got = rank_units(s, ["quote", "indent"], n_boot=20, k_max=4)
        again = StoreProbe.fit(
            s, "quote", units=want.top(4, feature="quote"), estimator=LinearProbeCV(l1_grid=(0.01,))
        )
    assert got.to_records() == want.to_records()
    assert got.features == want.features
    np.testing.assert_array_equal(again.coef_, probe.coef_)
    assert want.top(1, feature="quote") == ["layer0/cell/4"]


def test_many_distinct_values_are_merged_into_equal_mass_bins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(labels_module, "MAX_DISTINCT", 8)
    text = "a" * 300 + "b" * 100
    lab = make_labels("count:a", text)  # 300 distinct values
    codes = lab.codes
    values = lab.values
    assert lab.kind == "continuous" and not lab.exact
    assert 2 <= lab.n_bins <= labels_module.MAX_LABEL_BINS
    order = np.argsort(values, kind="stable")
    assert (np.diff(codes[order].astype(int)) >= 0).all()  # bins follow the values
    for c in range(lab.n_bins):  # each bin's value is its mean label
        assert lab.bin_values[c] == pytest.approx(values[codes == c].mean())
    assert lab.summary()["mean"] == pytest.approx(values.mean())
    assert lab.summary()["std"] == pytest.approx(values.std(), rel=1e-6)


def test_a_scanner_that_miscounts_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "BLOCK", 8)
    halved = Feature(
        "halved",
        lambda t: np.zeros(len(t)),
        "binary",
        per_sequence=True,
        stream=lambda: stream.Resumable(
            lambda buf, state: np.zeros(len(buf) // 2), lambda b, f: len(b)
        ),
    )
    text = "abcdefghijklmnopqrstuvwxyz"
    reader = TextReader(lambda a, b: text[a:b], len(text))
    with pytest.raises(FeatureError, match="scanner of feature 'halved' labelled"):
        list(feature_windows(halved, reader, len(text), np.array([[0, len(text)]]), [(0, 26)]))
