"""The --dask flag end to end, on the real cluster of tests/distributed/conftest.py (by its
scheduler's address): record, info, find-neurons, ablate, dynamics and consolidate give what
they give without it; a killed client resumes; bad input is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.store import ActivationStore, Recording
from tests.distributed.conftest import files_corpus
from tests.store.test_shards import raw

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: object) -> Any:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write_files(folder: Path, count: int = 10, repeat: int = 1) -> Path:
    corpus = files_corpus(count, repeat)
    for name, a, b in zip(corpus.files, corpus.bounds[:-1], corpus.bounds[1:]):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(corpus.text[a:b], encoding="utf-8")
    return folder


@pytest.mark.slow
def test_every_command_with_dask_gives_what_it_gives_without(
    cluster, client, model_file: Path, tmp_path: Path
) -> None:
    corpus = write_files(tmp_path / "corpus", 10, repeat=25)  # 70k chars: 2 batches of 65536
    address = cluster.scheduler_address
    (tmp_path / "run").mkdir()
    one, sharded = tmp_path / "one.h5", tmp_path / "run" / "acts.h5"
    result = cli("record", model_file, corpus, "-o", one, "-q")
    assert result.exit_code == 0, result.output
    result = cli("record", model_file, corpus, "-o", sharded, "--dask", address,
                 "--shard-chars", 900, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["positions"] == len(files_corpus(10, repeat=25).text)
    assert raw(one).keys() - {"positions_written"} <= raw(sharded).keys()
    assert all(raw(one)[k] == raw(sharded)[k] for k in raw(one) if k != "positions_written")
    info = json.loads(cli("info", "--store", sharded, "--json").stdout)
    assert info["shards"] == 2 and info["files"] == 10 and info["checksums"]
    checked = json.loads(cli("info", "--store", sharded, "--verify", "--json").stdout)
    assert checked["unverified"] == [] and "layer0/cell" in checked["verified"]
    # find-neurons: the same ranking (the same scores: from the same counts)
    rankings = []
    for store, extra in ((one, []), (sharded, ["--dask", address])):
        # scores only: the probes of the top units run on the client either way
        result = cli("find-neurons", "--store", store, "-f", "quote", "-f", "indent", "--json",
                     "--no-probe", "-q", *extra)  # fmt: skip
        assert result.exit_code == 0, result.output
        rankings.append([(r["unit"], r["score"]) for r in json.loads(result.stdout)["rows"]])
    assert rankings[0] == rankings[1]
    # ablate: the same verdicts
    verdicts = []
    for store, extra in ((one, []), (sharded, ["--dask", address])):
        result = cli("ablate", model_file, corpus, "--store", store, "-u", "layer0/cell/1",
                     "-f", "quote", "--n-random", 2, "--no-save", "-q", *extra)  # fmt: skip
        assert result.exit_code == 0, result.output
        verdicts.append(result.output)
    assert verdicts[0] == verdicts[1] and "layer0/cell/1" in verdicts[0]
    # dynamics: the same table
    tables = [
        cli("dynamics", "--store", store, "-q", *extra).output
        for store, extra in ((one, []), (sharded, ["--dask", address]))
    ]
    assert tables[0] == tables[1] and "timescale" in tables[0]
    # consolidate: one ordinary file, equal to the one-process recording
    result = cli("consolidate", sharded, "-o", tmp_path / "copy.h5", "-q")
    assert result.exit_code == 0, result.output
    assert raw(tmp_path / "copy.h5") == raw(one)


def test_bad_input_with_dask_is_one_line(cluster, client, model_file: Path, tmp_path: Path) -> None:
    import dask

    corpus = write_files(tmp_path / "corpus", 3)
    (tmp_path / "empty").mkdir()
    (tmp_path / "binary").mkdir()
    (tmp_path / "binary" / "x.bin").write_bytes(b"\x00\xff")
    out = tmp_path / "acts.h5"
    cases = [
        (["record", model_file, tmp_path / "empty", "--dask", cluster.scheduler_address],
         "holds no text files"),
        (["record", model_file, tmp_path / "binary", "--dask", cluster.scheduler_address],
         "holds no text files (1 files, none UTF-8 text)"),
        (["record", model_file, corpus, "--shard-chars", 100], "give --dask ADDRESS too"),
        (["record", model_file, corpus, "--dask", "local:x"], "--dask takes local:N"),
        (["record", model_file, corpus, "--dask", cluster.scheduler_address, "--parallel", 2],
         "--parallel does not combine with --dask"),
        (["consolidate", tmp_path / "missing.h5", "-o", out], "does not exist"),
    ]  # fmt: skip
    port = free_port()
    unreachable = f"tcp://127.0.0.1:{port}"
    cases.append((["record", model_file, corpus, "-o", out, "--dask", unreachable],
                  f"cannot reach the Dask scheduler at {unreachable}"))  # fmt: skip
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        for args, message in cases:
            result = CliRunner().invoke(main, [str(a) for a in args])
            assert result.exit_code == 1, (args, result.output)
            assert message in result.output and result.output.count("\n") == 1, result.output
    assert not out.exists() and not Recording.at(out).shards.exists()


def free_port() -> int:
    """A local port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_without_dask_installed_the_flag_says_how_to_install_it(
    model_file: Path, tmp_path: Path
) -> None:
    corpus = write_files(tmp_path / "corpus", 2)
    block = "import sys; sys.modules['distributed'] = None; from lstmprobe.cli import main; main()"
    for args in (["record", str(model_file), str(corpus)], ["find-neurons", "-f", "quote"]):
        done = subprocess.run(
            [sys.executable, "-c", block, *args, "--dask", "local:2", "-o" if args[0] == "record" else "--store", str(tmp_path / "acts.h5")],
            capture_output=True, text=True, cwd=tmp_path, timeout=300,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        if args[0] == "find-neurons":  # no store there: told first; record one, then ask again
            assert done.returncode == 1 and "does not exist" in done.stderr
            continue
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().splitlines() == [
            "error: --dask needs Dask distributed, which is not installed: pip install "
            '"lstmprobe[dask]"'
        ]
    assert not (tmp_path / "acts.h5").exists()


@pytest.mark.slow
def test_a_killed_client_resumes_keeping_the_finished_shards(
    cluster, client, tmp_path: Path
) -> None:
    from lstmprobe.models import save_checkpoint
    from lstmprobe.text import Vocab
    from tests.conftest import CORPUS, make_model

    vocab = Vocab.from_text(CORPUS)
    model = save_checkpoint(tmp_path / "model.pt",
                            make_model(vocab, hidden_size=64, embedding_dim=16), vocab)  # fmt: skip
    # line by line, so that the corpus is 4 shards (batches of 65536 chars; a stream is one
    # shard, which let the client finish between the first shard and the kill)
    corpus = write_files(tmp_path / "corpus", 12, repeat=48)
    out = tmp_path / "acts.h5"
    args = ["record", str(model), str(corpus), "-o", str(out), "--reset", "line",
            "--shard-chars", "6000", "-q"]  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-m", "lstmprobe.cli", *args, "--dask", cluster.scheduler_address],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    folder = Recording.at(out).shards
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and child.poll() is None:
        if folder.is_dir() and any(folder.glob("shard-*.h5")):
            break
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    finished = {p.name: p.stat().st_ino for p in folder.glob("shard-*.h5")}
    assert finished and not out.exists(), "killed before any shard or after the end"
    result = cli(*args, "--dask", cluster.scheduler_address)
    assert result.exit_code == 1 and "--resume" in result.output
    result = cli(*args, "--dask", cluster.scheduler_address, "--resume", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resumed_from"] > 0
    for name, inode in finished.items():
        assert (folder / name).stat().st_ino == inode, name  # kept, not recorded again
    alone = cli("record", model, corpus, "-o", tmp_path / "one.h5", "--reset", "line", "-q")
    assert alone.exit_code == 0
    one = raw(tmp_path / "one.h5")
    assert all(raw(out)[k] == one[k] for k in one if k != "positions_written")
    with ActivationStore(out) as store:
        assert store.complete
