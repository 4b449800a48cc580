"""`lstmprobe ablate` and `lstmprobe dynamics` on real tiny models and real recordings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.models import save_checkpoint
from lstmprobe.store.ablations import read_ablations
from tests.conftest import CORPUS, make_model


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, vocab_module) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ablate")
    corpus = d / "corpus.txt"
    corpus.write_text(CORPUS * 2, encoding="utf-8")
    model = save_checkpoint(d / "model.pt", make_model(vocab_module), vocab_module)
    other = save_checkpoint(d / "other.pt", make_model(vocab_module, seed=5), vocab_module)
    headless = save_checkpoint(
        d / "headless.pt", make_model(vocab_module, decoder=False), vocab_module
    )
    store = d / "acts.h5"
    result = run("record", model, corpus, "-o", store, "-q", "--dtype", "float32")
    assert result.exit_code == 0, result.output
    return {"dir": d, "corpus": corpus, "model": model, "other": other,
            "headless": headless, "store": store}  # fmt: skip


@pytest.fixture(scope="module")
def vocab_module():
    from lstmprobe.text import Vocab

    return Vocab.from_text(CORPUS)


def _one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_ablate_units_json_and_the_saved_per_char_losses(setup) -> None:
    s = setup
    result = run("ablate", s["model"], s["corpus"], "--store", s["store"], "--unit",
                 "layer0/cell/1", "-f", "quote", "--n-random", "2", "-q", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (cond,) = data["conditions"]
    for key in ("units", "mode", "feature", "bits_on", "bits_off", "delta_on", "delta_off",
                "positions_on", "positions_off"):  # fmt: skip
        assert key in cond
    assert set(cond["random"]) >= {"n", "delta_on_mean", "delta_on_sd", "delta_off_mean", "p_value"}
    saved = read_ablations(s["dir"] / "acts.ablations.h5")
    assert [str(u) for u in saved.conditions[0].units] == ["layer0/cell/1"]
    assert len(saved.base_bits) == len(CORPUS) * 2
    assert data["saved"] == str(s["dir"] / "acts.ablations.h5")
    table = run("ablate", s["model"], s["corpus"], "--store", s["store"], "-u", "layer0/cell/1",
                "-u", "layer1/hidden/0", "-f", "quote", "--n-random", "2", "--mode", "mean")  # fmt: skip
    assert table.exit_code == 0, table.output
    assert table.stdout.startswith("mean-ablating 2 units (layer0/cell/1, layer1/hidden/0) costs")
    assert "p = " in table.stdout and "saved" in table.stdout


def test_ablate_top_units_from_the_rankings(setup) -> None:
    s = setup
    args = ("ablate", s["model"], s["corpus"], "--store", s["store"], "--top", "2", "-f", "quote",
            "--n-random", "1", "--json", "-q", "--no-save")  # fmt: skip
    line = _one_error_line(run(*args))
    assert "find-neurons" in line and "rankings.json" in line
    found = run("find-neurons", "--store", s["store"], "-f", "quote", "--no-probe", "-q")
    assert found.exit_code == 0, found.output
    result = run(*args)
    assert result.exit_code == 0, result.output
    conditions = json.loads(result.stdout)["conditions"]
    assert [len(c["units"]) for c in conditions] == [1, 1, 2]
    ranking = json.loads((s["dir"] / "acts.rankings.json").read_text())
    top = [r["unit"] for r in ranking["rows"] if r["feature"] == "quote"][:2]
    assert conditions[2]["units"] == top


def test_bad_input_is_one_line_and_writes_nothing(setup, tmp_path) -> None:
    s = setup
    before = sorted(p.name for p in s["dir"].iterdir())
    base = ("ablate", s["model"], s["corpus"], "--store", s["store"])
    assert "layer0/cell has units 0..2" in _one_error_line(run(*base, "-u", "layer0/cell/3"))
    assert "it has layer0/input_gate/0..2" in _one_error_line(run(*base, "-u", "layer9/cell/0"))
    line = _one_error_line(
        run("ablate", s["other"], s["corpus"], "--store", s["store"], "-u", "layer0/cell/0")
    )
    assert "is not the model recorded in" in line and "--force" in line
    assert "only 2 other layer0/cell units" in _one_error_line(
        run(*base, "-u", "layer0/cell/0", "--n-random", "3")
    )
    assert "never on" in _one_error_line(run(*base, "-u", "layer0/cell/0", "-f", "char:Q"))
    assert "clamp:V" in _one_error_line(run(*base, "-u", "layer0/cell/0", "--mode", "half"))
    line = _one_error_line(
        run(
            "ablate",
            s["headless"],
            s["corpus"],
            "-u",
            "layer0/cell/0",
            "--store",
            tmp_path / "none.h5",
        )
    )
    assert "no decoder" in line and "dynamics" in line
    other_text = tmp_path / "other.txt"
    other_text.write_text(CORPUS, encoding="utf-8")
    line = _one_error_line(run(*base[:2], other_text, *base[3:], "-u", "layer0/cell/0"))
    assert "the corpus is not the one recorded in" in line and "--force" in line
    line = _one_error_line(run(*base, "-u", "layer0/cell/0", "-o", tmp_path))
    assert f"cannot write {tmp_path}: it is a directory" in line  # before the work
    assert sorted(p.name for p in s["dir"].iterdir()) == before
    forced = run("ablate", s["other"], s["corpus"], "--store", s["store"], "-u", "layer0/cell/0",
                 "--n-random", "1", "--force", "--no-save", "-q")  # fmt: skip
    assert forced.exit_code == 0, forced.output


def test_dynamics_command(setup) -> None:
    s = setup
    result = run("dynamics", "--store", s["store"], "--model", s["model"], "--json", "-q")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["layers"]) == {"layer0", "layer1"}
    assert "drivers" in data["units"]["layer0/cell/0"]
    saved = json.loads((s["dir"] / "acts.dynamics.json").read_text())
    assert saved["units"].keys() == data["units"].keys()
    table = run("dynamics", "--store", s["store"], "-u", "layer1/cell/2", "-q")
    assert table.exit_code == 0, table.output
    assert "timescale median" in table.stdout and "layer1/cell/2" in table.stdout
    line = _one_error_line(run("dynamics", "--store", s["store"], "--model", s["other"]))
    assert "is not the model recorded" in line
    assert "no dynamics for layer0/cell/7" in _one_error_line(
        run("dynamics", "--store", s["store"], "-u", "layer0/cell/7")
    )


def test_find_neurons_ablate_adds_causal_columns(setup) -> None:
    s = setup
    line = _one_error_line(
        run(
            "find-neurons",
            "--store",
            s["store"],
            "-f",
            "quote",
            "--ablate",
            "1",
            "--no-probe",
            "--no-save",
        )
    )
    assert "--model" in line
    args = ("find-neurons", "--store", s["store"], "-f", "quote", "-f", "indent", "--no-probe",
            "--no-save", "-q", "--ablate", "2", "--model", s["model"], "--n-random", "2")  # fmt: skip
    table = run(*args)
    assert table.exit_code == 0, table.output
    assert "ablated" in table.stdout and "p: its rank" in table.stdout
    data = json.loads(run(*args, "--json").stdout)
    rows = [r for r in data["rows"] if r["feature"] == "quote"]
    assert all(r["causal_p_value"] is not None for r in rows[:2])
    assert all("causal_p_value" not in r for r in rows[2:])
    p = rows[0]["causal_p_value"]
    assert p in (pytest.approx(1 / 3), pytest.approx(2 / 3), pytest.approx(1.0))
    csv_text = run(*args, "--csv", "-").stdout
    header = csv_text.splitlines()[0].split(",")
    assert header[-4:] == [
        "causal_delta_on",
        "causal_delta_off",
        "causal_random_mean",
        "causal_p_value",
    ]
    # the effect equals what `ablate` measures for the same unit
    single = run("ablate", s["model"], s["corpus"], "--store", s["store"], "-u", rows[0]["unit"],
                 "-f", "quote", "--n-random", "2", "--json", "-q", "--no-save")  # fmt: skip
    cond = json.loads(single.stdout)["conditions"][0]
    assert rows[0]["causal_delta_on"] == pytest.approx(cond["delta_on"])


def test_ablate_reads_the_corpus_as_the_store_was_recorded(setup, tmp_path) -> None:
    s = setup
    store = tmp_path / "lines.h5"
    assert (
        run("record", s["model"], s["corpus"], "-o", store, "-q", "--reset", "line").exit_code == 0
    )
    result = run("ablate", s["model"], s["corpus"], "--store", store, "-u", "layer0/cell/0",
                 "--n-random", "1", "--json", "-q", "--mode", "mean")  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["settings"]["reset"] == "line" and data["saved"] == str(
        tmp_path / "lines.ablations.h5"
    )
    saved = read_ablations(tmp_path / "lines.ablations.h5")
    assert saved.reset == "line"
    # every line's last char predicts nothing: NaN there, as in the recording
    text = s["corpus"].read_text()
    ends = [i for i, ch in enumerate(text) if ch == "\n"]
    assert all(np.isnan(saved.base_bits[i]) for i in ends)


def test_find_neurons_ablate_checks_the_model_before_it_ranks(setup, tmp_path) -> None:
    s = setup
    store = tmp_path / "acts.h5"
    store.write_bytes(s["store"].read_bytes())  # a copy: no rankings file is written beside it
    args = ["find-neurons", "--store", store, "-f", "quote", "--ablate", "1"]
    line = _one_error_line(run(*args, "--model", s["other"], "--trust-pickle", "-q"))
    assert "is not the model recorded in" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts.h5"]  # nothing ranked, saved
