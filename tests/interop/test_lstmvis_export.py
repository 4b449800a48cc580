"""Exports to LSTMVis, read back by LSTMVis's own rules (tests/interop/lstmvis_reader.py)."""

from __future__ import annotations

import html

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmprobe.errors import InteropError, StoreError
from lstmprobe.interop import export_lstmvis
from lstmprobe.names import GATES, Key
from lstmprobe.store import ActivationStore, RecordingSpec, StoreWriter
from lstmprobe.text import Vocab
from tests.interop.lstmvis_reader import projects, read_project, source_of


def test_the_demo_recording_follows_every_rule_of_lstmvis_reader(demo_store, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    result = export_lstmvis(demo_store, data_dir / "demo")
    assert projects(data_dir) == [data_dir / "demo"]  # the server finds it
    project = read_project(data_dir / "demo")
    config = project.config
    # files: every one the yml names exists and is read by its suffix; nothing else is there
    assert sorted(config["files"].values()) == sorted(
        p.name for p in (data_dir / "demo").iterdir() if p.name != "lstm.yml"
    )
    assert set(result.files) == {*config["files"].values(), "lstm.yml"}
    assert config["name"] == "acts"
    assert (
        "<" not in config["description"]
        and html.unescape(config["description"]) == config["description"]
    )
    with ActivationStore(demo_store) as s:
        assert project.text == s.text  # the word sequence maps back to the corpus
        assert len(project.words) == s.n_positions
        types = config["states"]["types"]
        assert len(types) == len(s.keys) == 12
        seen = set()
        for entry, key in zip(types, s.keys):
            k = Key.parse(key)
            assert entry["layer"] == k.layer + 1 >= 1  # layers count from 1
            assert entry["type"] == {"cell": "state", "hidden": "output"}.get(
                k.quantity, k.quantity
            )
            assert entry["unsigned"] is (k.quantity in GATES)
            assert entry["transform"] == "none"
            values = project.states[source_of(entry)]
            assert values.dtype == np.float32 and entry["size"] == [s.n_positions, s.n_units(key)]
            np.testing.assert_array_equal(values, s.read(key))  # float16 -> float32 exactly
            np.testing.assert_array_equal(project.shown(source_of(entry)), values)  # no tanh
            assert np.isfinite(values).all()  # the API's JSON can carry them
            seen.add((entry["type"], entry["layer"]))
        assert len(seen) == len(types)
        gates = [project.states[source_of(t)] for t in types if t["unsigned"]]
        assert all(g.min() >= 0 and g.max() <= 1 for g in gates)
        track = project.meta["sequence_start"]
        assert track.shape == (s.n_positions,) and np.flatnonzero(track).tolist() == [0]
        own = config["lstmprobe"]
        assert own["model_sha256"] == s.model_sha256 and own["corpus_sha256"] == s.corpus_sha256


def test_sequences_tabs_and_other_whitespace_survive(lines_store, tmp_path):
    export_lstmvis(lines_store, tmp_path / "p")
    project = read_project(tmp_path / "p")
    with ActivationStore(lines_store) as s:
        assert "\t" in s.text and "\u00a0" in s.text and "\r" in s.text
        assert project.text == s.text
        assert np.flatnonzero(project.meta["sequence_start"]).tolist() == s.sequences[:, 0].tolist()
        assert len(s.sequences) > 10
    words = (tmp_path / "p" / "words.dict").read_text(encoding="utf-8").splitlines()
    assert any(w.startswith("\\t ") for w in words) and any(w.startswith("\\u00a0 ") for w in words)
    assert all(len(w.split()) == 2 or w.startswith(" ") for w in words)


def test_the_name_and_description_are_safe_as_html(lines_store, tmp_path):
    export_lstmvis(lines_store, tmp_path / "p", name="<b>a & b</b>")
    config = read_project(tmp_path / "p").config
    assert config["name"] == "&lt;b&gt;a &amp; b&lt;/b&gt;"
    assert html.unescape(config["name"]) == "<b>a & b</b>"


def test_a_gru_exports_its_own_quantities(gru_store, tmp_path):
    result = export_lstmvis(gru_store, tmp_path / "p")
    types = read_project(tmp_path / "p").config["states"]["types"]
    assert [(t["type"], t["layer"], t["unsigned"]) for t in types] == [
        ("reset_gate", 1, True),
        ("update_gate", 1, True),
        ("candidate", 1, False),
        ("output", 1, False),
    ]
    assert result.datasets["layer0/hidden"] == "states.h5:hidden1 (output, layer 1)"


def test_layers_and_quantities_choose_what_is_written(demo_store, tmp_path):
    export_lstmvis(demo_store, tmp_path / "p", layers=["layer1"], quantities=["cell", "hidden"])
    types = read_project(tmp_path / "p").config["states"]["types"]
    assert [(t["type"], t["layer"], t["path"]) for t in types] == [
        ("state", 2, "cell2"),
        ("output", 2, "hidden2"),
    ]
    with pytest.raises(InteropError, match=r"layer5 not recorded.*layer0, layer1"):
        export_lstmvis(demo_store, tmp_path / "q", layers=["layer5"])
    with pytest.raises(InteropError, match="unknown cel"):
        export_lstmvis(demo_store, tmp_path / "q", quantities=["cel"])
    assert not (tmp_path / "q").exists()


def test_a_non_empty_directory_is_refused_unless_forced(lines_store, tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InteropError, match=r"is not empty .*notes.txt.*`force=True`"):
        export_lstmvis(lines_store, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    export_lstmvis(lines_store, out, force=True)  # replaces its own files, keeps the others
    assert (out / "notes.txt").read_text() == "mine"
    first = (out / "states.h5").stat().st_ino
    export_lstmvis(lines_store, out, force=True, quantities=["cell"])
    assert (out / "states.h5").stat().st_ino != first  # a new file, renamed into place
    assert [t["path"] for t in read_project(out).config["states"]["types"]] == ["cell1", "cell2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no staging directory left
    (tmp_path / "empty").mkdir()
    export_lstmvis(lines_store, tmp_path / "empty")  # an empty directory needs no force
    with pytest.raises(InteropError, match="is a file"):
        export_lstmvis(lines_store, out / "notes.txt")


def test_a_failure_half_way_leaves_nothing(tmp_path):
    """A recording whose last chunk is damaged (gzip, bytes overwritten): the export fails while
    reading it, after writing the first chunks, and leaves no directory behind."""
    text = "ab\n" * 4000
    vocab = Vocab.from_text(text)
    spec = RecordingSpec(
        tokens=vocab.encode(text), sequences=[[0, len(text)]], vocab=vocab,
        layout={"layer0/cell": 8}, model_summary={}, model_sha256="m", corpus_sha256="c",
        has_next_logprob=False, run_config={}, dtype="float32",
    )  # fmt: skip
    writer = StoreWriter(tmp_path / "acts.h5", spec, compression="gzip", chunk_positions=1024)
    rng = np.random.default_rng(0)
    writer.write(0, {"layer0/cell": rng.normal(size=(len(text), 8))})
    path = writer.finish()
    with h5py.File(path, "r") as f:
        ds = f["layer0/cell"]
        info = ds.id.get_chunk_info(ds.id.get_num_chunks() - 1)
    raw = bytearray(path.read_bytes())
    raw[info.byte_offset : info.byte_offset + info.size] = b"\xff" * info.size
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="damaged"):
        export_lstmvis(path, tmp_path / "p")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts.h5"]


CHARS = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(text=st.text(CHARS, min_size=1, max_size=40))
def test_any_text_maps_back_through_the_dictionary(text, tmp_path_factory):
    d = tmp_path_factory.mktemp("any")
    vocab = Vocab.from_text(text)
    spec = RecordingSpec(
        tokens=vocab.encode(text), sequences=[[0, len(text)]], vocab=vocab,
        layout={"layer0/hidden": 2}, model_summary={}, model_sha256="m", corpus_sha256="c",
        has_next_logprob=False, run_config={},
    )  # fmt: skip
    writer = StoreWriter(d / "acts.h5", spec)
    writer.write(0, {"layer0/hidden": np.zeros((len(text), 2))})
    export_lstmvis(writer.finish(), d / "p")
    project = read_project(d / "p")
    assert project.text == text
    assert len(project.dicts["words"]) == len(vocab)  # every line read, none skipped
