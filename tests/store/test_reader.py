"""What opening a recording says when it cannot: the Python call names the library call and its
parameters, the command line the command and its flags (errors.for_cli)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.errors import StoreError
from lstmprobe.store import ActivationStore
from tests.store.test_store import corpus, writer


def _cli_error(store: Path) -> str:
    result = CliRunner().invoke(main, ["info", "--store", str(store)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_a_missing_recording(tmp_path: Path) -> None:
    path = tmp_path / "acts.h5"
    with pytest.raises(StoreError) as caught:
        ActivationStore(path)
    assert str(caught.value) == (
        f"{path} does not exist; record it first (`record_corpus(MODEL, CORPUS, out={path})`), "
        "or give the path of another recording (`store=PATH`)"
    )
    assert _cli_error(path) == (
        f"error: {path} does not exist; record it first (`lstmprobe record MODEL CORPUS -o "
        f"{path}`), or give the path of another recording (--store PATH)"
    )


def test_an_unfinished_recording(tmp_path: Path) -> None:
    path = tmp_path / "acts.h5"
    writer(path, corpus(100)).close()
    with pytest.raises(StoreError) as caught:
        ActivationStore(path)
    message = str(caught.value)
    assert message.endswith(f"`record_corpus(MODEL, CORPUS, out={path}, resume=True)`")
    assert "--" not in message
    assert _cli_error(path).endswith(f"`lstmprobe record MODEL CORPUS -o {path} --resume`")


def test_not_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "acts.h5"
    path.write_text("hello")
    with pytest.raises(StoreError, match=r"written by `record_corpus\(\)`$"):
        ActivationStore(path)
    assert _cli_error(path).endswith("give a recording written by `lstmprobe record`")
