"""LSTM Explorer's JSON, read back the way the explorer's page reads it (echen/lstm-explorer,
app.js): ``data/FILE.json``; ``chars``; per layer index L from 0 the arrays cs, hs, f_gate,
i_gate, j_gate, o_gate + L, each a list of neurons, each neuron one value per char; the layer
count is (the keys whose value has a non-zero length, less one) / 6; the colour scale of hs and
j_gate is [-1, 1], of the gates [0, 1] as given, of cs the neuron's largest magnitude."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lstmprobe.errors import InteropError
from lstmprobe.interop import export_explorer
from lstmprobe.store import ActivationStore, RecordingSpec, StoreWriter
from lstmprobe.text import Vocab

VECTORS = ("cs", "hs", "f_gate", "i_gate", "j_gate", "o_gate")


def explorer_layers(data: dict) -> int:
    """The explorer's own count: (non-empty keys - 1) / 6, as its page loops ``i <= n``."""
    non_empty = [
        k
        for k, v in data.items()
        if hasattr(v, "__len__") and not isinstance(v, dict) and len(v) > 0
    ]
    return math.floor((len(non_empty) - 1) / 6)


def test_a_span_reads_back_as_the_explorer_reads_it(demo_store, tmp_path):
    result = export_explorer(demo_store, tmp_path / "data", start=100, length=300)
    assert result.files == ("acts.json",) and (result.start, result.stop) == (100, 400)
    data = json.loads((tmp_path / "data" / "acts.json").read_text(encoding="utf-8"))
    assert data["name"] == "acts"
    assert explorer_layers(data) == 2
    with ActivationStore(demo_store) as s:
        assert "".join(data["chars"]) == s.read_text(100, 400)
        assert all(len(c) == 1 for c in data["chars"])
        for layer in (0, 1):
            for vector, quantity in zip(
                VECTORS, ["cell", "hidden", "forget_gate", "input_gate", "candidate", "output_gate"]
            ):
                neurons = np.array(data[f"{vector}{layer}"])
                assert neurons.shape == (
                    s.n_units(f"layer{layer}/{quantity}"),
                    300,
                )  # neurons x chars
                np.testing.assert_allclose(
                    neurons.T, s.read(f"layer{layer}/{quantity}", 100, 400), atol=5e-5
                )
        for layer in (0, 1):  # the explorer's colour scales assume these ranges
            assert (
                np.abs(data[f"hs{layer}"]).max() <= 1 and np.abs(data[f"j_gate{layer}"]).max() <= 1
            )
            for gate in ("f_gate", "i_gate", "o_gate"):
                assert np.min(data[f"{gate}{layer}"]) >= 0 and np.max(data[f"{gate}{layer}"]) <= 1
    own = data["lstmprobe"]
    assert own["datasets"]["cs1"] == "layer1/cell" and own["layers"] == {
        "0": "layer0",
        "1": "layer1",
    }


def test_the_default_span_and_the_sequences_in_it(lines_store, tmp_path):
    export_explorer(lines_store, tmp_path / "x", name="lines-1")
    data = json.loads((tmp_path / "x" / "lines-1.json").read_text(encoding="utf-8"))
    with ActivationStore(lines_store) as s:
        assert "".join(data["chars"]) == s.read_text(0, 500)
        starts = s.sequences[:, 0]
        assert data["lstmprobe"]["sequence_starts"] == starts[starts < 500].tolist()


def test_a_gru_says_which_quantities_map(gru_store, tmp_path):
    with pytest.raises(
        InteropError,
        match=r"layer0 is a GRU layer.*candidate -> j_gate, hidden -> hs map.*reset_gate, update_gate have no place.*`quantities=candidate,hidden`",
    ):
        export_explorer(gru_store, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    result = export_explorer(gru_store, tmp_path / "x", quantities=["candidate", "hidden"])
    data = json.loads((tmp_path / "x" / "acts.json").read_text())
    assert data["cs0"] == [] and len(data["hs0"]) == 3 and len(data["j_gate0"]) == 3
    assert "layer0/cell: cs0 is empty" in result.left_out


def test_what_json_cannot_hold_or_a_page_cannot_show_is_refused(tmp_path):
    text = "ab" * 50
    vocab = Vocab.from_text(text)
    spec = RecordingSpec(
        tokens=vocab.encode(text), sequences=[[0, 100]], vocab=vocab,
        layout={"layer0/cell": 2}, model_summary={}, model_sha256="m", corpus_sha256="c",
        has_next_logprob=False, run_config={},
    )  # fmt: skip
    writer = StoreWriter(tmp_path / "acts.h5", spec, warn=lambda _: None)
    values = np.zeros((100, 2))
    values[60, 1] = 1e6  # beyond float16: stored as inf
    writer.write(0, {"layer0/cell": values})
    store = writer.finish()
    with pytest.raises(InteropError, match=r"layer0/cell/1 is inf at position 60"):
        export_explorer(store, tmp_path / "x")
    export_explorer(store, tmp_path / "x", length=60)
    with pytest.raises(InteropError, match=r"`start` must be in \[0, 100\)"):
        export_explorer(store, tmp_path / "y", start=100)
    with pytest.raises(InteropError, match="must be letters"):
        export_explorer(store, tmp_path / "y", name="../evil")
    with pytest.raises(InteropError, match="is not empty"):
        export_explorer(store, tmp_path / "x", length=10)
    export_explorer(store, tmp_path / "x", length=10, name="other", force=True)
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["acts.json", "other.json"]
