"""Recording on a real Dask cluster (tests/distributed/conftest.py): the sharded store equals a
one-process recording bit for bit; an interrupted one resumes keeping its finished shards; a
shard folder of another recording is refused; a worker killed mid-shard changes nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import h5py
import pytest

from lstmprobe.distributed import record_corpus as record_on_cluster
from lstmprobe.errors import DistributedError, StoreError
from lstmprobe.models import LoadedModel
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.store import ActivationStore, Recording
from tests.conftest import make_model
from tests.distributed.conftest import files_corpus
from tests.store.test_shards import raw


def same_recording(one: Path, sharded: Path) -> None:
    a, b = raw(one), raw(sharded)
    assert a.keys() - {"positions_written"} <= b.keys()
    for name in a:
        assert a[name] == b[name], name


@pytest.mark.parametrize(
    "options",
    [
        RecordOptions(batch_chars=500),
        RecordOptions(reset="line", dtype="float32", chunk_size=64, batch_chars=300),
    ],
    ids=["files", "lines-float32"],
)
def test_a_sharded_recording_equals_the_one_process_recording_bit_for_bit(
    client, loaded, tmp_path: Path, options: RecordOptions
) -> None:
    corpus = files_corpus()
    record_corpus(loaded, corpus, tmp_path / "one.h5", options)
    out = tmp_path / "run" / "acts.h5"
    out.parent.mkdir()
    result = record_on_cluster(loaded, corpus, out, options, client=client, shard_chars=900)
    assert result.path == out and result.positions == len(corpus.text)
    shards = sorted(p.name for p in Recording.at(out).shards.iterdir())
    assert len(shards) >= 3 and all(p.startswith("shard-") and p.endswith(".h5") for p in shards)
    same_recording(tmp_path / "one.h5", out)
    with ActivationStore(out) as store:
        assert store.complete and len(store.shards) == len(shards)


def test_an_interrupted_recording_resumes_keeping_its_finished_shards(
    client, loaded, tmp_path: Path
) -> None:
    corpus = files_corpus()
    options = RecordOptions(batch_chars=500)
    out = tmp_path / "acts.h5"
    record_on_cluster(loaded, corpus, out, options, client=client, shard_chars=900)
    folder = Recording.at(out).shards
    kept = {p.name: p.stat() for p in sorted(folder.iterdir())[::2]}
    for p in sorted(folder.iterdir())[1::2]:
        p.unlink()  # these shards were not done when the client died
    out.unlink()
    with pytest.raises(StoreError, match=r"unfinished sharded recording .*`resume=True`"):
        record_on_cluster(loaded, corpus, out, options, client=client, shard_chars=900)
    result = record_on_cluster(loaded, corpus, out, options, client=client, shard_chars=900,
                               resume=True)  # fmt: skip
    assert 0 < result.resumed_from < result.positions
    for name, before in kept.items():
        after = (folder / name).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), name
    record_corpus(loaded, corpus, tmp_path / "one.h5", options)
    same_recording(tmp_path / "one.h5", out)
    # a store whose shard went missing: resume records that shard again
    (folder / "shard-00001.h5").unlink()
    with pytest.raises(StoreError, match="is missing"):
        ActivationStore(out)
    record_on_cluster(loaded, corpus, out, options, client=client, shard_chars=900, resume=True)
    same_recording(tmp_path / "one.h5", out)


def test_a_shard_folder_of_another_recording_is_refused(client, loaded, tmp_path: Path) -> None:
    corpus = files_corpus(4)
    out = tmp_path / "acts.h5"
    options = RecordOptions(batch_chars=500)
    record_on_cluster(loaded, corpus, out, options, client=client, shard_chars=900)
    other = LoadedModel(
        make_model(loaded.vocab, seed=3), loaded.vocab, "checkpoint", sha256="2" * 64
    )
    with pytest.raises(StoreError, match="already exists"):
        record_on_cluster(other, corpus, out, options, client=client, shard_chars=900)
    with pytest.raises(StoreError, match=r"holds shards of another recording.*`force=True`"):
        record_on_cluster(other, corpus, out, options, client=client, shard_chars=900, resume=True)
    out.unlink()
    with pytest.raises(StoreError, match=r"holds shards of another recording.*`force=True`"):
        record_on_cluster(other, corpus, out, options, client=client, shard_chars=900, resume=True)
    assert not out.exists()
    record_on_cluster(other, corpus, out, options, client=client, shard_chars=900, force=True)
    record_corpus(other, corpus, tmp_path / "one.h5", options)
    same_recording(tmp_path / "one.h5", out)


def test_an_unreachable_scheduler_is_one_line_after_the_timeout() -> None:
    import socket

    from lstmprobe.distributed import connect

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    began = time.monotonic()
    with pytest.raises(DistributedError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}") as info, connect(f"tcp://127.0.0.1:{port}", timeout=1):  # fmt: skip
        pass
    assert time.monotonic() - began < 30 and "\n" not in str(info.value)
    with pytest.raises(DistributedError, match="local:N"), connect("local:0"):
        pass


@pytest.mark.slow
def test_a_worker_killed_mid_shard_is_retried_with_an_identical_result(
    client, tmp_path: Path
) -> None:
    # a model and corpus large enough that a shard takes a second or more
    from lstmprobe.text import Vocab
    from tests.conftest import CORPUS

    vocab = Vocab.from_text(CORPUS)
    model = make_model(vocab, hidden_size=96, num_layers=2, embedding_dim=16)
    loaded = LoadedModel(model, vocab, "checkpoint", sha256="3" * 64)
    corpus = files_corpus(8, repeat=40)
    options = RecordOptions(batch_chars=4096)
    out = tmp_path / "acts.h5"
    folder = Recording.at(out).shards
    killed: list[int] = []

    def kill_a_worker_mid_shard() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for partial in folder.glob("shard-*.h5.partial") if folder.is_dir() else ():
                try:
                    with h5py.File(partial, "r", locking=False) as f:
                        written = int(f["positions_written"][()])
                except (OSError, KeyError):  # being created
                    continue
                if written == 0:
                    continue
                busy = {w: ts for w, ts in client.processing().items() if ts}
                if not busy:
                    continue
                worker = next(iter(busy))
                pid = client.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker_mid_shard)
    killer.start()
    record_on_cluster(loaded, corpus, out, options, client=client, shard_chars=20000)
    killer.join()
    assert killed, "no worker was killed mid-shard"
    record_corpus(loaded, corpus, tmp_path / "one.h5", options)
    same_recording(tmp_path / "one.h5", out)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it: the next tests have two
