"""Faults while writing: planted links, permissions, write errors, two writers, kills at finish.

The promises of docs/recording.md and docs/store-format.md under the conditions that broke them:
every temporary is created exclusively (a symbolic link at its name is never followed), files get
the user's usual permissions, and a failed write never turns into a "complete" store.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.errors import StoreError
from lstmprobe.models import load_model, save_checkpoint
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.store import (
    ActivationStore,
    Recording,
    RecordingSpec,
    StoreWriter,
    partial_path,
    write_json_atomic,
)
from tests.conftest import make_model

VICTIM = b"precious bytes the user owns\n"


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_bytes(VICTIM)
    return path


def plant(link: Path, target: Path) -> None:
    link.symlink_to(target)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- links planted at the names of temporaries are never followed ---


def test_a_link_at_the_state_temporary_is_not_followed(tmp_path, tiny, corpus):
    out = tmp_path / "acts.h5"
    target = victim(tmp_path)
    plant(tmp_path / "acts.h5.partial.state.tmp", target)
    record_corpus(tiny, corpus, out, RecordOptions(chunk_size=17))
    assert target.read_bytes() == VICTIM
    with ActivationStore(out) as store:
        assert store.n_positions == len(corpus)


@pytest.mark.parametrize("name", ["acts.h5.partial", "acts.h5.partial.compressing"])
def test_a_link_at_the_partial_or_compressing_file_is_not_followed(tmp_path, tiny, corpus, name):
    out = tmp_path / "acts.h5"
    target = victim(tmp_path)
    plant(tmp_path / name, target)
    record_corpus(tiny, corpus, out, RecordOptions(compression="gzip"), force=True)
    assert target.read_bytes() == VICTIM
    assert not (tmp_path / name).is_symlink()
    with ActivationStore(out) as store:
        assert store.n_positions == len(corpus)


def test_a_link_at_the_checkpoint_temporary_is_not_followed(tmp_path, vocab):
    target = victim(tmp_path)
    plant(tmp_path / "model.pt.tmp", target)
    save_checkpoint(tmp_path / "model.pt", make_model(vocab), vocab)
    assert target.read_bytes() == VICTIM
    assert (tmp_path / "model.pt").stat().st_size > 0


# --- permissions follow the umask ---


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_umask(tmp_path, tiny, corpus, vocab, mask):
    expected = 0o666 & ~mask
    with umask(mask):
        record_corpus(tiny, corpus, tmp_path / "acts.h5")
        record_corpus(tiny, corpus, tmp_path / "z.h5", RecordOptions(compression="lzf"))
        write_json_atomic(tmp_path / "acts.rankings.json", {"a": 1})
        save_checkpoint(tmp_path / "model.pt", make_model(vocab), vocab)
    for name in ("acts.h5", "z.h5", "acts.rankings.json", "model.pt"):
        assert mode(tmp_path / name) == expected, name


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_ablations_and_figures_follow_the_umask(tmp_path, mask):
    from matplotlib.figure import Figure

    from lstmprobe.report.output import save_figure
    from lstmprobe.store.ablations import read_ablations, write_ablations

    expected = 0o666 & ~mask
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1], [1, 0])
    with umask(mask):
        write_ablations(
            tmp_path / "acts.ablations.h5",
            base_bits=np.ones(4),
            conditions=[{"units": ["layer0/cell/1"], "mode": "zero", "value": None}],
            deltas=[np.zeros(4)],
            random_deltas=[None],
        )
        save_figure(fig, tmp_path / "unit.png")
    for name in ("acts.ablations.h5", "unit.png"):
        assert mode(tmp_path / name) == expected, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts.ablations.h5", "unit.png"]
    assert read_ablations(tmp_path / "acts.ablations.h5").base_bits.tolist() == [1.0] * 4


# --- write errors: one line, nothing marked written that is not on disk, exact resume ---

LSTMPROBE = str(Path(sys.executable).with_name("lstmprobe"))
CLI = [sys.executable, "-X", "faulthandler", "-m", "lstmprobe.cli"]


@pytest.fixture
def model_and_corpus(tmp_path, vocab, corpus):
    """A checkpoint and a corpus whose recording is ~150 KB (several chunks of 64 chars)."""
    model_path = tmp_path / "model.pt"
    save_checkpoint(model_path, make_model(vocab, hidden_size=8), vocab)
    corpus_path = tmp_path / "corpus.txt"
    corpus_path.write_text(corpus * 12)
    return model_path, corpus_path


def record_args(model_path, corpus_path, out, *extra):
    return ["record", str(model_path), str(corpus_path), "-o", str(out), "-q", "--chunk-size",
            "64", *extra]  # fmt: skip


def assert_same_recording(a: Path, b: Path) -> None:
    with ActivationStore(a) as x, ActivationStore(b) as y:
        assert x.keys == y.keys and x.n_positions == y.n_positions
        for key in x.keys:
            assert np.array_equal(x.read(key), y.read(key)), key
        assert np.array_equal(x.next_logprob, y.next_logprob, equal_nan=True)
        assert np.array_equal(x.tokens, y.tokens)


def one_line(stderr: str, *words: str) -> None:
    assert stderr.count("\n") == 1 and stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in stderr, (word, stderr)


def run_limited(args: list[str], limit: int) -> subprocess.CompletedProcess:
    """Run the CLI with a file-size limit: writes past it fail with EFBIG (SIGXFSZ ignored)."""

    def limit_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [*CLI, *args], preexec_fn=limit_size, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_a_file_too_large_at_creation_is_one_line_and_leaves_no_dead_end(
    tmp_path, model_and_corpus
):
    model_path, corpus_path = model_and_corpus
    reference = tmp_path / "reference.h5"
    assert CliRunner().invoke(main, record_args(model_path, corpus_path, reference)).exit_code == 0
    out = tmp_path / "acts.h5"
    failed = run_limited(record_args(model_path, corpus_path, out), 20_000)
    assert failed.returncode == 1
    one_line(failed.stderr, "file too large", "acts.h5.partial", "--resume")
    assert not out.exists()
    # as the line says: the same command with --resume (the limit lifted) records it all
    resumed = CliRunner().invoke(main, record_args(model_path, corpus_path, out, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert_same_recording(out, reference)


def _namespace_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


DISK_FULL = """
set -u
mount -t tmpfs -o size=$SIZE tmpfs "$DISK"
cd "$DISK"
"$LSTMPROBE" record "$MODEL" "$CORPUS" -o acts.h5 -q --chunk-size 64 $EXTRA 2> "$OUT/full.err"
echo $? > "$OUT/full.rc"
ls -a > "$OUT/full.ls"
mount -o remount,size=64m "$DISK"
"$LSTMPROBE" record "$MODEL" "$CORPUS" -o acts.h5 -q --chunk-size 64 $EXTRA --resume \
    2> "$OUT/resume.err"
echo $? > "$OUT/resume.rc"
cp acts.h5 "$OUT/resumed.h5" 2>/dev/null || true
"""


@pytest.mark.slow
@pytest.mark.skipif(not _namespace_works(), reason="needs unshare -rm and tmpfs mounts")
@pytest.mark.parametrize(
    ("size", "extra", "where"),
    [("120k", "", "acts.h5.partial"), ("2m", "--compression gzip", "compressing")],
    ids=["recording", "compression-pass"],
)
def test_a_full_disk_stops_with_one_line_and_resume_is_exact(
    tmp_path, model_and_corpus, size, extra, where
):
    """A real full disk (a small tmpfs in a private mount namespace), then space freed."""
    model_path, corpus_path = model_and_corpus
    reference = tmp_path / "reference.h5"
    args = record_args(model_path, corpus_path, reference, *extra.split())
    assert CliRunner().invoke(main, args).exit_code == 0
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    env = {**os.environ, "SIZE": size, "DISK": str(disk), "OUT": str(out), "EXTRA": extra,
           "LSTMPROBE": LSTMPROBE, "MODEL": str(model_path), "CORPUS": str(corpus_path)}  # fmt: skip
    subprocess.run(["unshare", "-rm", "sh", "-c", DISK_FULL], env=env, check=True, timeout=300)
    assert (out / "full.rc").read_text().strip() == "1"
    one_line((out / "full.err").read_text(), "no space left on device", where, "--resume")
    assert "acts.h5" not in (out / "full.ls").read_text().split()
    assert (out / "resume.rc").read_text().strip() == "0", (out / "resume.err").read_text()
    assert_same_recording(out / "resumed.h5", reference)


DERIVED_FULL = """
set -u
mount -t tmpfs -o size=$SIZE tmpfs "$DISK"
cp "$STORE" "$DISK/acts.h5"
head -c $FILL /dev/zero > "$DISK/filler" 2>/dev/null
cd "$DISK"
"$LSTMPROBE" find-neurons -f quote --no-probe -q 2> "$OUT/rankings.err"
"$LSTMPROBE" report --no-figures -q 2> "$OUT/report.err"
"$LSTMPROBE" plot text -u layer0/cell/1 -q 2> "$OUT/plot.err"
ls -a > "$OUT/ls"
"""


@pytest.mark.slow
@pytest.mark.skipif(not _namespace_works(), reason="needs unshare -rm and tmpfs mounts")
def test_a_full_disk_names_the_derived_file_it_could_not_write(tmp_path):
    """Issue 17, caveat 8: the rankings, the report and a figure said only "cannot use: No space
    left on device"; each now names its file, and leaves nothing behind."""
    from tests.stores import BASE, build_store

    store = build_store(tmp_path / "acts.h5", BASE * 6)
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    size = store.stat().st_size + 12_000  # the store fits, with room for what it reads
    env = {**os.environ, "SIZE": str(size), "DISK": str(disk), "OUT": str(out),
           "STORE": str(store), "FILL": "8000", "LSTMPROBE": LSTMPROBE}  # fmt: skip
    subprocess.run(["unshare", "-rm", "sh", "-c", DERIVED_FULL], env=env, check=True, timeout=300)
    for name, target in (("rankings", "acts.rankings.json"), ("report", "acts.report.html"),
                         ("plot", "acts.text.png")):  # fmt: skip
        one_line((out / f"{name}.err").read_text(), "no space left on device while writing",
                 f"writing {target};", "free space")  # fmt: skip
    assert sorted((out / "ls").read_text().split()) == [".", "..", "acts.h5", "filler"]


# --- two writers, a kill while finishing, leftovers of a failed creation ---


def open_writer(out: Path, n: int = 10) -> StoreWriter:
    from lstmprobe.text import Vocab

    vocab = Vocab(("a", "b"))
    return StoreWriter(out, RecordingSpec(tokens=np.zeros(n, dtype=np.int32), sequences=[[0, n]], vocab=vocab, layout={"layer0/cell": 2}, model_summary={}, model_sha256="m", corpus_sha256="c", has_next_logprob=False, run_config={}))  # fmt: skip


@pytest.mark.parametrize("flags", [[], ["--force"], ["--resume"], ["--resume", "--force"]])
def test_a_second_recording_to_the_same_output_is_refused(tmp_path, model_and_corpus, flags):
    model_path, corpus_path = model_and_corpus
    out = tmp_path / "acts.h5"
    first = open_writer(out)
    first.write(0, {"layer0/cell": np.ones((4, 2))})
    result = CliRunner().invoke(main, record_args(model_path, corpus_path, out, *flags))
    assert result.exit_code == 1
    one_line(result.stderr, "acts.h5.partial", "another lstmprobe record")
    # the first recording is untouched and finishes as if nothing happened
    first.write(4, {"layer0/cell": np.full((6, 2), 2.0)})
    first.finish()
    with ActivationStore(out) as store:
        assert store.read("layer0/cell")[:, 0].tolist() == [1.0] * 4 + [2.0] * 6


@pytest.mark.slow
def test_a_kill_while_finishing_is_finished_by_resume(tmp_path, model_and_corpus):
    model_path, corpus_path = model_and_corpus
    reference = tmp_path / "reference.h5"
    assert CliRunner().invoke(main, record_args(model_path, corpus_path, reference)).exit_code == 0
    out = tmp_path / "acts.h5"
    # what a kill between marking complete and the rename leaves: a complete partial file
    shutil.copy(reference, partial_path(out))
    rerun = CliRunner().invoke(main, record_args(model_path, corpus_path, out))
    assert rerun.exit_code == 1
    one_line(rerun.stderr, "--resume", "not yet moved into place")
    resumed = CliRunner().invoke(main, record_args(model_path, corpus_path, out, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert not partial_path(out).exists()
    assert_same_recording(out, reference)


@pytest.mark.slow
@pytest.mark.parametrize("leftover", ["empty", "header-only"])
def test_a_partial_left_by_a_failed_creation_is_no_dead_end(tmp_path, model_and_corpus, leftover):
    model_path, corpus_path = model_and_corpus
    out = tmp_path / "acts.h5"
    if leftover == "empty":
        partial_path(out).write_bytes(b"")
    else:
        with h5py.File(partial_path(out), "w") as f:
            f.attrs["format"] = "lstmprobe.activations"
            f.attrs["complete"] = False
    for flags in ([], ["--resume"]):
        if flags:
            out.unlink()
            partial_path(out).write_bytes(b"")
        result = CliRunner().invoke(main, record_args(model_path, corpus_path, out, *flags))
        assert result.exit_code == 0, result.output
        assert out.exists() and not partial_path(out).exists()


@pytest.mark.parametrize("content", ["text", "shapes"])
def test_a_bad_resume_state_file_is_one_line(tmp_path, model_and_corpus, vocab, content):
    model_path, corpus_path = model_and_corpus
    out = tmp_path / "acts.h5"
    loaded = load_model(model_path)
    forward, calls = loaded.model.forward, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return forward(*args, **kwargs)

    loaded.model.forward = interrupted
    with pytest.raises(KeyboardInterrupt):
        record_corpus(loaded, corpus_path.read_text(), out, RecordOptions(chunk_size=64))
    state = Recording.at(out).resume_state
    assert state.exists()
    if content == "text":
        state.write_text("hello\n")
    else:
        kept = torch.load(state, weights_only=True)
        torch.save({k: (v[0][:, :, :3], v[1]) for k, v in kept.items()}, state)
    result = CliRunner().invoke(main, record_args(model_path, corpus_path, out, "--resume"))
    assert result.exit_code == 1
    one_line(result.stderr, "acts.h5.partial.state", "--force")


# --- output that cannot be written: one line, before any work ---


def test_record_into_a_missing_directory_is_one_line_before_any_work(tmp_path, model_and_corpus):
    _, corpus_path = model_and_corpus
    out = tmp_path / "nowhere" / "acts.h5"
    # the model is not even read: a broken model file does not change the message
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    result = CliRunner().invoke(main, record_args(broken, corpus_path, out))
    assert result.exit_code == 1
    one_line(result.stderr, "nowhere", "does not exist")


READ_ONLY = """
mount --bind -o ro "$DIR" "$DIR" && "$@" 2> "$DIR.err"; echo $? > "$DIR.rc"
"""


@pytest.mark.slow
@pytest.mark.skipif(not _namespace_works(), reason="needs unshare -rm (a read-only bind mount)")
def test_record_into_a_read_only_directory_is_one_line_before_any_work(tmp_path, model_and_corpus):
    _, corpus_path = model_and_corpus
    ro = tmp_path / "ro"
    ro.mkdir()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    args = record_args(broken, corpus_path, ro / "acts.h5")
    env = {**os.environ, "DIR": str(ro)}
    cmd = ["unshare", "-rm", "sh", "-c", READ_ONLY, "sh", *CLI, *args]
    subprocess.run(cmd, env=env, check=True, timeout=120)
    assert Path(f"{ro}.rc").read_text().strip() == "1"
    one_line(Path(f"{ro}.err").read_text(), str(ro), "Read-only file system", "-o")
    assert list(ro.iterdir()) == []


@pytest.mark.slow  # trains a model (150 steps)
def test_a_reordered_vocab_for_a_state_dict_warns(tmp_path, vocab, corpus):
    """A trained model read with its vocabulary reversed scores far worse than uniform."""
    from lstmprobe.lm import TrainConfig, train

    text = corpus * 4
    trained = tmp_path / "trained.pt"
    train(text, trained, TrainConfig(hidden=16, steps=150, lr=0.02, seq_len=32, embedding=8))
    checkpoint = load_model(trained)
    plain = tmp_path / "plain.pt"
    torch.save(checkpoint.model.state_dict(), plain)
    corpus_path = tmp_path / "corpus.txt"
    corpus_path.write_text(text)
    right, wrong = tmp_path / "right.json", tmp_path / "wrong.json"
    right.write_text(json.dumps(list(checkpoint.vocab.chars)))
    wrong.write_text(json.dumps(list(reversed(checkpoint.vocab.chars))))
    for vocab_path, warned in ((right, False), (wrong, True)):
        out = tmp_path / f"{vocab_path.stem}.h5"
        args = record_args(plain, corpus_path, out, "--vocab", str(vocab_path))
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert ("another order" in result.stderr) is warned, result.stderr


def test_resume_refuses_progress_that_is_not_on_disk(tmp_path, tiny, corpus):
    """A partial whose progress marker ran ahead of its values (what a lost write left before)."""
    out = tmp_path / "acts.h5"
    options = RecordOptions(chunk_size=16)
    forward, calls = tiny.model.forward, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return forward(*args, **kwargs)

    tiny.model.forward = interrupted
    with pytest.raises(KeyboardInterrupt):
        record_corpus(tiny, corpus, out, options)
    del tiny.model.forward
    with h5py.File(partial_path(out), "r+") as f:
        written = int(f["positions_written"][()])
        assert 0 < written < len(corpus)
        f["positions_written"][()] = written + 10  # claims 10 positions that hold nothing
    with pytest.raises(StoreError, match="holds no values"):
        record_corpus(tiny, corpus, out, options, resume=True)
