"""Faults while writing: planted links, permissions, write errors, two writers, kills at finish.

The promises of docs/recording.md and docs/store-format.md under the conditions that broke them:
every temporary is created exclusively (a symbolic link at its name is never followed), files get
the user's usual permissions, and a failed write never turns into a "complete" store.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from lstmprobe.models import save_checkpoint
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.store import ActivationStore, write_json_atomic
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
