"""The writing and syncing threads of a recording: the progress marker follows what is durable,
the exact state is saved before it moves, and a failure on either thread is one error."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from lstmprobe.errors import StoreError
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.record.background import BackgroundWriter
from lstmprobe.record.pipeline import _StateFile
from lstmprobe.store import ActivationStore, Recording, RecordingSpec, StoreWriter, partial_path
from lstmprobe.text import Vocab, sequences

TEXT = "abcab\nbca\n" * 20


def make_writer(path) -> StoreWriter:
    vocab = Vocab.from_text(TEXT)
    spec = RecordingSpec(
        tokens=vocab.encode(TEXT).astype(np.int32),
        sequences=sequences(TEXT),
        vocab=vocab,
        layout={"layer0/cell": 3},
        dtype="float32",
        model_summary={},
        model_sha256="0" * 64,
        corpus_sha256="0" * 64,
        has_next_logprob=False,
        run_config={},
    )
    return StoreWriter(path, spec)


def chunk(start: int, stop: int):
    """A chunk of the background writer: values start..stop, the 'state' after it."""
    values = np.arange(start, stop, dtype=np.float32)[:, None].repeat(3, 1)
    return start, stop - start, lambda: ({"layer0/cell": values}, None), (stop, torch.tensor(stop))


def marks_of(writer: StoreWriter, monkeypatch) -> list[int]:
    """The positions ``writer`` marks, in order (the real mark runs)."""
    marks: list[int] = []
    mark = writer.mark

    def spy(position: int) -> None:
        mark(position)
        marks.append(position)

    monkeypatch.setattr(writer, "mark", spy)
    return marks


@pytest.mark.parametrize("final", [True, False])
def test_a_round_syncs_saves_the_state_then_marks(tmp_path, monkeypatch, final):
    """With an interval longer than the test, the first offer gets a round at once and the
    rest waits: the last written position is marked only by the final round (a stop), or left
    to the store's finish (a join)."""
    out = tmp_path / "acts.h5"
    writer = make_writer(out)
    state_file = _StateFile(Recording.at(out).resume_state)
    marks = marks_of(writer, monkeypatch)
    background = BackgroundWriter(writer, state_file.save, interval=3600.0)
    background.put(chunk(0, 40))
    deadline = time.monotonic() + 60
    while not marks and time.monotonic() < deadline:  # the first round, at once
        time.sleep(0.01)
    for start in range(40, 200, 40):
        background.put(chunk(start, start + 40))
    if final:
        background.stop()
    else:
        background.join()
    assert writer.written == 200
    assert marks == ([40, 200] if final else [40])
    assert writer.committed == marks[-1]
    kept = torch.load(state_file.path, weights_only=True)
    assert sorted(kept) == marks and all(int(kept[p]) == p for p in marks)
    writer.close()
    with ActivationStore(partial_path(out), require_complete=False) as store:
        assert store.positions_written == marks[-1]
        assert np.array_equal(store.read("layer0/cell")[: marks[-1], 0], np.arange(marks[-1]))


def test_the_marker_of_a_recording_never_passes_the_saved_state(tmp_path, tiny, corpus):
    """Each time the marker moves during a stream recording, the state file on disk already
    holds the exact state at that position, and the values before it were synced."""
    out = tmp_path / "acts.h5"
    seen: list[tuple[int, int, bool]] = []
    mark = StoreWriter.mark

    def checked(self: StoreWriter, position: int) -> None:
        kept = torch.load(Recording.at(out).resume_state, weights_only=True)
        seen.append((position, self._synced, position in kept))
        mark(self, position)

    options = RecordOptions(chunk_size=16, dtype="float32")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StoreWriter, "mark", checked)
        record_corpus(tiny, corpus, out, options)
    assert seen, "the marker never moved"
    positions = [p for p, _, _ in seen]
    assert positions == sorted(positions) and all(p % 16 == 0 for p in positions[:-1])
    assert all(p <= synced for p, synced, _ in seen)
    # finishing marks the end with no state (a resume there has nothing left to read)
    assert all(saved for p, _, saved in seen if p < len(corpus))
    assert len(seen) <= -(-len(corpus) // 16) + 1  # at most one round per chunk, and finish's


def test_a_state_that_cannot_be_saved_stops_the_recording_with_one_error(tmp_path, tiny, corpus):
    """The syncing thread's failure reaches the caller (here a directory where the state file
    goes), and the partial file is kept, marked no further than it got."""
    out = tmp_path / "acts.h5"
    Recording.at(out).resume_state.mkdir()
    with pytest.raises(StoreError, match=r"acts\.h5\.partial\.state"):
        record_corpus(tiny, corpus, out, RecordOptions(chunk_size=16))
    assert not out.exists() and partial_path(out).exists()
    with ActivationStore(partial_path(out), require_complete=False) as store:
        assert store.positions_written == 0
