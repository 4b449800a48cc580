"""Gate dynamics: streamed summaries equal a direct computation over the whole recording."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lstmprobe.causal import gate_dynamics, timescale
from lstmprobe.errors import UnitError
from lstmprobe.models import LoadedModel
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.store import ActivationStore
from tests.conftest import make_model


@pytest.mark.parametrize("reset", ["none", "line"])
def test_keep_and_write_summaries_equal_a_direct_computation(tmp_path, tiny, corpus, reset):
    path = record_corpus(
        tiny, corpus * 4, tmp_path / "acts.h5", RecordOptions(reset=reset, dtype="float32")
    ).path
    with ActivationStore(path) as store:
        # windows of 97 positions: the previous cell is carried across window boundaries
        result = gate_dynamics(store, tiny.model, ["layer1/forget_gate/2"], chunk_size=97)
        for layer in ("layer0", "layer1"):
            f = store.read(f"{layer}/forget_gate").astype(np.float64)
            i = store.read(f"{layer}/input_gate").astype(np.float64)
            g = store.read(f"{layer}/candidate").astype(np.float64)
            c = store.read(f"{layer}/cell").astype(np.float64)
            prev = np.vstack([np.zeros((1, c.shape[1])), c[:-1]])
            prev[store.sequences[:, 0]] = 0
            keep, write = f * prev, i * g
            for j in range(c.shape[1]):
                u = result["units"][f"{layer}/cell/{j}"]
                assert u["mean_keep_gate"] == pytest.approx(f[:, j].mean(), rel=1e-6)
                assert u["timescale"] == pytest.approx(-1 / math.log(f[:, j].mean()), rel=1e-5)
                assert u["mean_abs_keep"] == pytest.approx(np.abs(keep[:, j]).mean(), rel=1e-5)
                assert u["mean_abs_write"] == pytest.approx(np.abs(write[:, j]).mean(), rel=1e-5)
                share = np.abs(write[:, j]) / (np.abs(keep[:, j]) + np.abs(write[:, j]))
                assert u["write_share"] == pytest.approx(share.mean(), rel=1e-5)
                assert u["reset"] == pytest.approx((f[:, j] < 0.1).mean())
                # drivers: the largest |W_hh| entry of the unit's four gate rows
                w = tiny.model.rnn.state_dict()[f"weight_hh_l{layer[-1]}"].numpy()
                rows = w[[g * 3 + j for g in range(4)]]
                top = u["drivers"][0]
                assert abs(top["weight"]) == pytest.approx(np.abs(rows).max())
    assert result["selected"] == ["layer1/cell/2"]
    dist = result["layers"]["layer0"]["timescales"]
    assert sum(dist["counts"].values()) == 3
    assert (tmp_path / "acts.h5").exists()


def test_timescale_definition():
    assert timescale(math.exp(-1 / 5)) == pytest.approx(5.0)
    assert timescale(0.0) == 0.0 and timescale(1.0) is None


def test_unknown_units_and_gru_layers(tmp_path, vocab, corpus):
    gru = LoadedModel(make_model(vocab, cell="gru", num_layers=1), vocab, "checkpoint")
    path = record_corpus(gru, corpus, tmp_path / "g.h5", RecordOptions(dtype="float32")).path
    with ActivationStore(path) as store:
        result = gate_dynamics(store, gru.model, ["layer0/update_gate/1"])
        z = store.read("layer0/update_gate")[:, 1]
        with pytest.raises(UnitError, match="no dynamics for layer0/hidden/9"):
            gate_dynamics(store, None, ["layer0/hidden/9"])
    assert result["selected"] == ["layer0/hidden/1"]
    assert result["units"]["layer0/hidden/1"]["mean_keep_gate"] == pytest.approx(z.mean(), rel=1e-6)
    assert result["units"]["layer0/hidden/1"]["drivers"][0]["gate"] in (
        "reset_gate",
        "update_gate",
        "candidate",
    )


def test_a_recording_without_gates_says_which_parameter_to_leave_out(tmp_path, tiny, corpus):
    from click.testing import CliRunner

    from lstmprobe.cli import main

    options = RecordOptions(dtype="float32", quantities=("cell", "hidden"))
    path = record_corpus(tiny, corpus, tmp_path / "acts.h5", options).path
    with ActivationStore(path) as store, pytest.raises(UnitError) as caught:
        gate_dynamics(store)
    assert str(caught.value).endswith("(record all quantities: leave out `quantities`)")
    result = CliRunner().invoke(main, ["dynamics", "--store", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip().endswith("(record all quantities: leave out --quantities)")


def test_the_drivers_come_from_the_recorded_model_or_the_one_given(tmp_path, vocab, corpus):
    from lstmprobe.causal import drivers_model
    from lstmprobe.errors import StoreError
    from lstmprobe.models import load_model, save_checkpoint

    path = save_checkpoint(tmp_path / "model.pt", make_model(vocab), vocab)
    other = save_checkpoint(tmp_path / "other.pt", make_model(vocab, seed=3), vocab)
    recorded = record_corpus(load_model(path), corpus, tmp_path / "acts.h5").path
    with ActivationStore(recorded) as store:
        found = drivers_model(store)  # the recorded file, still there
        assert found is not None
        assert torch.equal(found.rnn.weight_hh_l0, load_model(path).model.rnn.weight_hh_l0)
        with pytest.raises(
            StoreError, match=r"other.pt .* is not the model recorded.*`force=True`"
        ):
            drivers_model(store, str(other))
        forced = drivers_model(store, str(other), force=True)
        assert torch.equal(forced.rnn.weight_hh_l0, load_model(other).model.rnn.weight_hh_l0)
        path.rename(tmp_path / "moved.pt")
        assert drivers_model(store) is None  # gone: no drivers, no error
        save_checkpoint(path, make_model(vocab, seed=4), vocab)
        assert drivers_model(store) is None  # other weights at the recorded path: not used


def test_the_drivers_of_a_reverse_direction_are_its_own_weights():
    from lstmprobe.causal.dynamics import drivers

    torch.manual_seed(0)

    class Bi(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.LSTM(3, 4, bidirectional=True)

    model = Bi()
    for layer, weights in [("layer0", model.rnn.weight_hh_l0), ("layer0_reverse", model.rnn.weight_hh_l0_reverse)]:  # fmt: skip
        got = drivers(model, layer, "lstm", 4, top=1)
        for j, (best,) in got.items():
            rows = weights.detach().numpy()[[g * 4 + j for g in range(4)]]
            assert best["weight"] == pytest.approx(float(rows.flat[np.abs(rows).argmax()]))


def test_a_recorded_model_file_that_no_longer_loads_gives_no_drivers(tmp_path, vocab, corpus):
    from lstmprobe.causal import drivers_model
    from lstmprobe.models import load_model, save_checkpoint

    path = save_checkpoint(tmp_path / "model.pt", make_model(vocab), vocab)
    recorded = record_corpus(load_model(path), corpus, tmp_path / "acts.h5").path
    path.write_bytes(b"not a model any more")
    with ActivationStore(recorded) as store:
        assert drivers_model(store) is None
        assert gate_dynamics(store)["layers"]  # the dynamics themselves still come
