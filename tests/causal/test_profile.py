"""A unit's profile by input: every mean and sd equals a plain per-position reference."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from lstmprobe.causal import profile as profile_module
from lstmprobe.causal.profile import profile
from lstmprobe.cli import main
from lstmprobe.errors import FeatureError
from lstmprobe.features import get_feature
from lstmprobe.models import LoadedModel
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.store import ActivationStore
from lstmprobe.text import Vocab
from tests.conftest import make_model

TASK = "".join(f"{'a' * n}{'X' * (n % 3)}Y{'b' * n}\n" for n in range(1, 9)) * 3


def record(path, text, reset="line", **config):  # type: ignore[no-untyped-def]
    vocab = Vocab.from_text(text)
    loaded = LoadedModel(make_model(vocab, **config), vocab, "checkpoint", sha256="0" * 64)
    options = RecordOptions(reset=reset, chunk_size=64, warmup=0, dtype="float32")
    record_corpus(loaded, text, path, options, force=True)
    return path


def reference(store: ActivationStore, layer: str, index: int, groups: np.ndarray) -> dict:
    """Per group: {quantity: (mean, sd)} from the whole unit, one position at a time."""
    values = {
        q: store.read(f"{layer}/{q}")[:, index].astype(np.float64) for q in store.quantities(layer)
    }
    lstm = "cell" in values
    state = values["cell" if lstm else "hidden"]
    starts = set(store.sequences[:, 0].tolist())
    prev = np.array([0.0 if t in starts else state[t - 1] for t in range(len(state))])
    keep = values["forget_gate" if lstm else "update_gate"]
    written = (
        values["input_gate"] * values["candidate"] if lstm else (1 - keep) * values["candidate"]
    )
    values.update(forgotten=(keep - 1) * prev, written=written, delta=state - prev)
    out = {}
    for g in np.unique(groups[~np.isnan(groups)]):
        sel = groups == g
        out[float(g)] = {q: (v[sel].mean(), v[sel].std()) for q, v in values.items()}
    return out


@pytest.mark.parametrize("window", [1 << 16, 7])  # one window, or many (state carried across)
@pytest.mark.parametrize("by", ["char", "count:a@char:Y", "first-char:a"])
def test_every_mean_and_sd_equals_the_plain_reference(tmp_path, monkeypatch, window, by) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(profile_module, "_WINDOW", window)
    path = record(tmp_path / "acts.h5", TASK, num_layers=1, hidden_size=4)
    with ActivationStore(path) as s:
        got = profile(s, "layer0/forget_gate/2", by)
        if by == "char":
            groups = s.tokens.astype(np.float64)
            names = {float(i): c for i, c in enumerate(s.vocab.chars)}
        else:
            groups = get_feature(by).labels(TASK, s.sequences).astype(np.float64)
            names = {}
        want = reference(s, "layer0", 2, groups)
    assert got.unit() == "layer0/cell/2" and got.positions == int((~np.isnan(groups)).sum())
    assert set(got.quantities) == {*want[next(iter(want))]}
    for gi, label in enumerate(got.groups):
        key = next(k for k, c in names.items() if c == label) if by == "char" else float(label)
        assert got.counts[gi] == (groups == key).sum()
        for qi, q in enumerate(got.quantities):
            m, sd = want[key][q]
            assert got.mean[qi, gi, 0] == pytest.approx(m, abs=1e-9), (label, q)
            assert got.sd[qi, gi, 0] == pytest.approx(sd, abs=1e-9), (label, q)
    if by == "char":
        assert list(got.counts) == sorted(got.counts, reverse=True)  # most frequent first


def test_a_gru_profiles_its_update_parts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = record(tmp_path / "gru.h5", TASK, cell="gru", num_layers=1)
    with ActivationStore(path) as s:
        got = profile(s, "layer0/hidden/1")
        want = reference(s, "layer0", 1, s.tokens.astype(np.float64))
    assert got.kind == "gru" and "update_gate" in got.quantities and "written" in got.quantities
    a = s.vocab.chars.index("a")
    gi = got.groups.index("a")
    qi = got.quantities.index("written")
    assert got.mean[qi, gi, 0] == pytest.approx(want[float(a)]["written"][0], abs=1e-9)


def test_a_projected_hidden_state_is_left_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = record(tmp_path / "proj.h5", TASK, num_layers=1, hidden_size=4, proj_size=2)
    with ActivationStore(path) as s:
        got = profile(s, "layer0/cell/3")
        low = profile(s, "layer0/cell/1")
    assert "hidden" not in got.quantities and "hidden" not in low.quantities
    assert any("proj_size" in why for why in low.left_out)
    assert "delta" in got.quantities


def test_a_feature_with_too_many_values_is_refused(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(profile_module, "MAX_GROUPS", 3)
    path = record(tmp_path / "acts.h5", TASK, num_layers=1)
    with ActivationStore(path) as s, pytest.raises(FeatureError, match="more than 3 distinct"):
        profile(s, "layer0/cell/0", "count:a")


def test_the_command_prints_a_table_json_and_a_figure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = record(tmp_path / "acts.h5", TASK, num_layers=1)
    runner = CliRunner()
    done = runner.invoke(main, ["profile", "--store", str(path), "-u", "layer0/cell/1", "-q"])
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert lines[0].startswith("layer0/cell/1 (lstm) by the char just read")
    assert "input" in lines[1] and "written" in lines[1]
    assert any(line.strip().startswith("input: i_t in [0, 1]") for line in lines)
    js = runner.invoke(main, ["profile", "--store", str(path), "-u", "layer0/cell/1", "--by",
                              "count:a@char:Y", "--json"])  # fmt: skip
    import json

    got = json.loads(js.stdout)
    assert got["by"] == "count:a@char:Y" and [g["value"] for g in got["groups"]] == list(
        map(float, range(1, 9))
    )
    png = tmp_path / "p.png"
    drawn = runner.invoke(main, ["profile", "--store", str(path), "-u", "layer0/cell/1", "-o",
                                 str(png), "-q"])  # fmt: skip
    assert drawn.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    bad = runner.invoke(main, ["profile", "--store", str(path), "-u", "layer3/cell/1"])
    assert bad.exit_code == 1 and "layer3" in bad.stderr and len(bad.stderr.splitlines()) == 1
