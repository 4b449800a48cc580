"""Every command that loads a model takes the same model options (``model_options``), and each
runs a plain state_dict given with ``--vocab`` -- or, beside a recording of it, with the
recording's vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.cli.options import model_options
from lstmprobe.text import Vocab
from tests.conftest import CORPUS, make_model

#: every command that loads a model, and how it is given one
LOADERS = {
    "record": "MODEL",
    "sample": "MODEL",
    "evaluate": "MODEL",
    "ablate": "MODEL",
    "bench": "--model",
    "dynamics": "--model",
    "find-neurons": "--model",
    "patch": "MODEL",
    "attribute": "MODEL",
}
MODEL_FLAGS = ("--vocab", "--unknown", "--trust-pickle", "--threads")


def _loads_a_model(command: click.Command) -> bool:
    return any(p.name in ("model", "model_path") for p in command.params)


def _help(command: click.Command) -> dict[str, str | None]:
    out = {}
    for p in command.params:
        for flag in p.opts:
            if flag in MODEL_FLAGS and isinstance(p, click.Option):
                out[flag] = p.help
    return out


def test_every_command_that_loads_a_model_takes_the_same_model_options() -> None:
    commands = dict(main.commands)
    assert sorted(n for n, c in commands.items() if _loads_a_model(c)) == sorted(LOADERS)

    @click.command()
    @model_options
    def reference(model_options: object) -> None: ...

    expected = _help(reference)
    assert sorted(expected) == sorted(MODEL_FLAGS)
    for name in LOADERS:
        assert _help(commands[name]) == expected, name


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A plain state_dict (no vocabulary in it), its vocab JSON, a corpus, and a recording."""
    d = tmp_path_factory.mktemp("plain")
    vocab = Vocab.from_text(CORPUS)
    torch.save(make_model(vocab).state_dict(), d / "plain.pt")
    (d / "vocab.json").write_text(json.dumps(list(vocab.chars)), encoding="utf-8")
    (d / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    result = _run(
        "record", d / "plain.pt", d / "corpus.txt", "--vocab", d / "vocab.json",
        "-o", d / "acts.h5", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return {
        "model": d / "plain.pt",
        "vocab": d / "vocab.json",
        "corpus": d / "corpus.txt",
        "store": d / "acts.h5",
    }


def _run(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


def _command(name: str, f: dict[str, Path], out: Path) -> list[object]:
    model, corpus, store = f["model"], f["corpus"], f["store"]
    return {
        "record": ["record", model, corpus, "-o", out / "again.h5"],
        "sample": ["sample", model, "--prime", "def ", "-n", "5", "--seed", "0"],
        "evaluate": ["evaluate", model, corpus],
        "ablate": ["ablate", model, corpus, "--store", store, "-u", "layer0/cell/1",
                   "--n-random", "1", "--no-save"],
        "bench": ["bench", "--model", model, "--chars", "1000", "--repeat", "1", "--no-memory"],
        "dynamics": ["dynamics", "--store", store, "--model", model],
        "find-neurons": ["find-neurons", "--store", store, "-f", "quote", "--no-probe",
                         "--no-save", "--ablate", "1", "--n-random", "1", "--model", model],
        "patch": ["patch", model, "--source", "def f(", "--target", "class A", "--store", store,
                  "-u", "layer0/cell/1", "--no-save"],
        "attribute": ["attribute", model, corpus, "--store", store, "-p", "12",
                      "--method", "grad-input", "--no-save"],
        "dynamics --fixed-points": ["dynamics", "--store", store, "--model", model,
                                    "--fixed-points", "--input", "e", "--samples", "4",
                                    "--iterations", "20", "--slow-points",
                                    "-o", out / "fixedpoints.json"],
    }[name]  # fmt: skip


@pytest.mark.parametrize("name", [*sorted(LOADERS), "dynamics --fixed-points"])
def test_a_plain_state_dict_loads_with_vocab_in_every_command(
    name: str, plain: dict[str, Path], tmp_path: Path
) -> None:
    args = _command(name, plain, tmp_path)
    result = _run(*args, "--vocab", plain["vocab"], "--json")
    assert result.exit_code == 0, result.output
    json.loads(result.stdout)


@pytest.mark.parametrize("name", ["sample", "evaluate", "record", "bench"])
def test_without_vocab_and_without_a_recording_the_error_says_vocab(
    name: str, plain: dict[str, Path], tmp_path: Path
) -> None:
    result = _run(*_command(name, plain, tmp_path))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "stores no vocabulary" in lines[0] and "--vocab" in lines[0]


@pytest.mark.parametrize(
    "name", ["ablate", "dynamics", "find-neurons", "patch", "attribute", "dynamics --fixed-points"]
)
def test_beside_a_recording_its_vocabulary_is_used(
    name: str, plain: dict[str, Path], tmp_path: Path
) -> None:
    result = _run(*_command(name, plain, tmp_path), "--json")
    assert result.exit_code == 0, result.output
    if name == "dynamics":  # the drivers come from the model given
        units = json.loads(result.stdout)["units"]
        assert all("drivers" in u for u in units.values())


def test_a_recording_whose_vocabulary_does_not_fit_the_model_is_refused(
    plain: dict[str, Path], tmp_path: Path
) -> None:
    other = Vocab.from_text(CORPUS + "\u00e9\u00df")  # two characters more than the model reads
    torch.save(make_model(other).state_dict(), tmp_path / "wider.pt")
    result = _run(*_command("ablate", {**plain, "model": tmp_path / "wider.pt"}, tmp_path))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the vocabulary has" in lines[0] and "--vocab" in lines[0]
