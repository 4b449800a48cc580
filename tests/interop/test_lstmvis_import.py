"""LSTMVis projects imported as stores: round trips, a project written by hand to LSTMVis's
documented layout, and projects that are wrong in each way the issue names."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmprobe.errors import InteropError, StoreError
from lstmprobe.features import get_feature
from lstmprobe.interop import export_lstmvis, import_lstmvis
from lstmprobe.probes import rank_units
from lstmprobe.store import ActivationStore
from tests.stores import BASE

HAND = BASE * 8

# The README's example, flow style and comments included; a char-level dictionary.
README_YML = textwrap.dedent(
    """\
    name: children books  # project name
    description: children book texts from the Gutenberg project # little description

    files: # assign files to reference name
      states: cbt_epoch10.h5 # HDF5 files have to end with .h5 or .hdf5 !!!
      word_ids: train.h5
      words: words.dict # dict files have to end with .dict !!

    word_sequence: # defines the word sequence
      file: word_ids # HDF5 file
      path: word_ids # path to table in HDF5
      dict_file: words # dictionary to map IDs from HDF5 to words

    states: # section to define which states of your model you want to look at
      file: states # HDF5 files containing the state for each position
      types: [
        {type: state, layer: 1, path: states1}, # type={state, output}, layer=[1..x], path = HDF5 path
        {type: state, layer: 2, path: states2},
        {type: output, layer: 2, path: output2}
      ]
    """
)


def write_hand_project(directory: Path, text: str = HAND, newline: str = "<eos>") -> Path:
    """A project as LSTMVis's own scripts lay it out: Lua-style datasets states1, states2,
    output2 (float32), the word ids from 1, a dictionary with the space on a leading-space line.
    ``layer0/cell/2`` (states1, unit 2) tracks the quote feature."""
    directory.mkdir()
    chars = sorted(set(text))
    ids = {c: i + 1 for i, c in enumerate(chars)}  # Lua counts from 1
    lines = [(" " if c == " " else newline if c == "\n" else c) + f" {ids[c]}\n" for c in chars]
    (directory / "words.dict").write_text("".join(lines), encoding="utf-8")
    with h5py.File(directory / "train.h5", "w") as f:
        f["word_ids"] = np.array([ids[c] for c in text], dtype=np.int64)
    rng = np.random.default_rng(0)
    n = len(text)
    states1 = rng.normal(size=(n, 5)).astype(np.float32)
    states1[:, 2] = 2 * get_feature("quote").labels(text) - 1 + 0.3 * rng.normal(size=n)
    with h5py.File(directory / "cbt_epoch10.h5", "w") as f:
        f["states1"] = states1
        f["states2"] = rng.normal(size=(n, 4)).astype(np.float32)
        f["output2"] = np.tanh(rng.normal(size=(n, 4))).astype(np.float32)
    (directory / "lstm.yml").write_text(README_YML, encoding="utf-8")
    return directory


def test_a_project_written_by_hand_imports_and_ranks(tmp_path):
    project = write_hand_project(tmp_path / "children")
    result = import_lstmvis(project, tmp_path / "acts.h5", word_map={"<eos>": "\n"})
    assert result.datasets == {
        "layer0/cell": "cbt_epoch10.h5:states1 (state, layer 1)",
        "layer1/cell": "cbt_epoch10.h5:states2 (state, layer 2)",
        "layer1/hidden": "cbt_epoch10.h5:output2 (output, layer 2)",
    }
    with ActivationStore(result.path) as s, h5py.File(project / "cbt_epoch10.h5") as f:
        assert s.text == HAND and len(s.sequences) == 1
        np.testing.assert_array_equal(s.read("layer1/hidden"), f["output2"][()])
        assert s.model["imported"]["format"] == "lstmvis" and s.model_sha256 == ""
        ranking = rank_units(s, "quote", probe=False)
    assert ranking.top(1, feature="quote") == ["layer0/cell/2"]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_round_trip_gives_the_same_values_tokens_and_sequences(lines_store, tmp_path, dtype):
    export_lstmvis(lines_store, tmp_path / "p")
    back = import_lstmvis(tmp_path / "p", tmp_path / "back.h5", dtype=dtype).path
    with ActivationStore(lines_store) as a, ActivationStore(back) as b:
        assert b.keys == a.keys and b.dtype == dtype
        for key in a.keys:
            want = a.read(key)
            if dtype == "float16":
                want = want.astype(np.float16).astype(np.float32)
            np.testing.assert_array_equal(b.read(key), want)
        np.testing.assert_array_equal(b.tokens, a.tokens)
        assert b.vocab == a.vocab and b.text == a.text
        np.testing.assert_array_equal(b.sequences, a.sequences)
        assert b.corpus_sha256 == a.corpus_sha256
        assert b.run_config == {"reset": "line"}
        assert b.model["imported"]["exported_from"]["model_sha256"] == a.model_sha256


def test_the_demo_recording_round_trips_in_float32(demo_store, tmp_path):
    export_lstmvis(demo_store, tmp_path / "p")
    back = import_lstmvis(tmp_path / "p", tmp_path / "back.h5").path
    with ActivationStore(demo_store) as a, ActivationStore(back) as b:
        assert a.dtype == "float16" and b.dtype == "float32"
        for key in a.keys:
            np.testing.assert_array_equal(b.read(key), a.read(key))
        assert b.text == a.text and b.vocab == a.vocab


# --- projects that are wrong ------------------------------------------------------------------


def edit_yml(project: Path, change) -> None:  # type: ignore[no-untyped-def]
    config = yaml.safe_load((project / "lstm.yml").read_text())
    change(config)
    (project / "lstm.yml").write_text(yaml.safe_dump(config))


@pytest.fixture
def hand(tmp_path) -> Path:
    return write_hand_project(tmp_path / "children", newline="\\n")


def refused(project: Path, out: Path, match: str, **options) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InteropError, match=match):
        import_lstmvis(project, out, **options)
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_a_file_the_yml_names_must_be_there(hand, tmp_path):
    (hand / "train.h5").unlink()
    refused(hand, tmp_path / "a.h5", r"names files\.word_ids = train\.h5, which is not in")
    edit_yml(hand, lambda c: c["files"].update(word_ids="../outside.h5"))
    shutil.copy(hand / "cbt_epoch10.h5", tmp_path / "outside.h5")
    refused(hand, tmp_path / "a.h5", "lies outside")
    edit_yml(hand, lambda c: c["files"].update(word_ids="train.hdf"))
    refused(hand, tmp_path / "a.h5", r"only when its name ends in \.h5 or \.hdf5")
    (hand / "lstm.yml").unlink()
    refused(hand, tmp_path / "a.h5", "has no lstm.yml")


def test_a_dictionary_must_cover_every_word_id(hand, tmp_path):
    lines = (hand / "words.dict").read_text().splitlines(keepends=True)
    (hand / "words.dict").write_text("".join(lines[:-2]))
    refused(
        hand,
        tmp_path / "a.h5",
        r"no word for 2 id\(s\) of train\.h5:word_ids: \d+, \d+ \(first at position",
    )


def test_states_must_be_as_long_as_the_word_sequence(hand, tmp_path):
    with h5py.File(hand / "cbt_epoch10.h5", "r+") as f:
        del f["states2"]
        f["states2"] = np.zeros((len(HAND) - 3, 4), dtype=np.float32)
    refused(
        hand,
        tmp_path / "a.h5",
        rf"states2 \(state, layer 2\) has {len(HAND) - 3:,} positions but the word sequence has {len(HAND):,}",
    )


def test_words_of_more_than_one_character_need_a_map(tmp_path):
    project = write_hand_project(tmp_path / "p")
    refused(project, tmp_path / "a.h5", r"maps id 1 to '<eos>' \(line 1\).*--map '<eos>=C'")
    import_lstmvis(project, tmp_path / "a.h5", word_map={"<eos>": "\n"})


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            lambda c: c["states"]["types"].append(dict(c["states"]["types"][0])),
            r"layer0/cell again",
        ),
        (lambda c: c["states"]["types"][0].update(layer=0), "counted from 1"),
        (
            lambda c: c["states"]["types"][0].update(type="embedding"),
            "type embedding has no lstmprobe quantity",
        ),
        (lambda c: c["states"]["types"][0].update(path="nope"), "names the dataset nope"),
        (lambda c: c["word_sequence"].update(file="nothing"), "not a name in files"),
        (lambda c: c.pop("states"), "has no `states` section"),
    ],
)
def test_a_yml_that_lstmprobe_cannot_place_is_refused(hand, tmp_path, change, match):
    edit_yml(hand, change)
    refused(hand, tmp_path / "a.h5", match)


def test_dictionary_lines_follow_lstmvis_rules(hand, tmp_path):
    text = (hand / "words.dict").read_text()
    (hand / "words.dict").write_text("\n\n" + text.replace("\n", "\r\n"))  # blank lines, CRLF
    import_lstmvis(hand, tmp_path / "a.h5")
    (hand / "words.dict").write_text(text + "new york 99\n")
    refused(hand, tmp_path / "b.h5", r"line \d+ of .* is not `word id` \(3 fields")
    (hand / "words.dict").write_text(text + "q 1\n")
    refused(hand, tmp_path / "b.h5", "gives id 1 twice")


def test_a_damaged_states_file_leaves_no_store(hand, tmp_path):
    raw = (hand / "cbt_epoch10.h5").read_bytes()
    (hand / "cbt_epoch10.h5").write_bytes(raw[: len(raw) // 2])
    with pytest.raises((InteropError, StoreError)):
        import_lstmvis(hand, tmp_path / "a.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["children"]


# --- projects damaged at random: one line, or a store; never a traceback or a partial file -----

JUNK = st.one_of(
    st.none(), st.integers(-3, 2**40), st.floats(allow_nan=True), st.text(max_size=8),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(["../x.h5", "/etc/passwd", "states", "word_ids", "words", "state", "output"]),
)  # fmt: skip


def damage(project: Path, data: st.DataObject) -> None:
    how = data.draw(st.sampled_from(["truncate", "overwrite", "yml"]), label="how")
    if how == "yml":
        config = yaml.safe_load((project / "lstm.yml").read_text())
        section = data.draw(st.sampled_from(["files", "word_sequence", "states", "types"]))
        target = config["states"]["types"][0] if section == "types" else config[section]
        key = data.draw(st.sampled_from(sorted(target)), label="key")
        if data.draw(st.booleans(), label="drop"):
            del target[key]
        else:
            target[key] = data.draw(JUNK, label="value")
        (project / "lstm.yml").write_text(yaml.safe_dump(config))
        return
    name = data.draw(st.sampled_from(["lstm.yml", "words.dict", "train.h5", "cbt_epoch10.h5"]))
    raw = bytearray((project / name).read_bytes())
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="keep")]
    else:
        at = data.draw(st.integers(0, len(raw) - 1), label="offset")
        junk = data.draw(st.binary(min_size=1, max_size=16), label="bytes")
        raw[at : at + len(junk)] = junk
    (project / name).write_bytes(bytes(raw))


@pytest.mark.slow
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_a_damaged_project_is_one_line_or_a_store(tmp_path_factory, data):
    from click.testing import CliRunner

    from lstmprobe.cli import main

    d = tmp_path_factory.mktemp("damaged")
    project = write_hand_project(d / "p", newline="\\n")
    damage(project, data)
    out = d / "acts.h5"
    result = CliRunner().invoke(main, ["import", "lstmvis", str(project), "-o", str(out), "-q"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}")
    lines = result.stderr.strip().splitlines()
    if result.exit_code == 1:
        assert len(lines) == 1 and lines[0].startswith("error: "), lines
        assert sorted(p.name for p in d.iterdir()) == ["p"]  # nothing half-written
    else:
        assert result.exit_code == 0 and not lines, result.output
        with ActivationStore(out) as s:
            assert s.n_positions > 0


def test_the_store_is_never_written_over_the_project(hand):
    for name in ("cbt_epoch10.h5", "train.h5", "words.dict"):
        before = (hand / name).read_bytes()
        with pytest.raises(InteropError, match="is a file of the project"):
            import_lstmvis(hand, hand / name, force=True)
        assert (hand / name).read_bytes() == before


def test_float16_overflow_is_told_through_warn(tmp_path):
    project = write_hand_project(tmp_path / "p", newline="\\n")
    with h5py.File(project / "cbt_epoch10.h5", "r+") as f:
        f["states2"][5, 1] = 1e6
    heard: list[str] = []
    import_lstmvis(project, tmp_path / "a.h5", dtype="float16", warn=heard.append)
    assert len(heard) == 1 and "layer1/cell" in heard[0] and "float16" in heard[0]
