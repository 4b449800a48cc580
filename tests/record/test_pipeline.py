from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from lstmprobe.errors import CorpusError, LstmprobeError, RecordError, StoreError
from lstmprobe.models import LoadedModel, save_checkpoint
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.store import ActivationStore, partial_path
from tests.conftest import make_model


def _full_forward(model, vocab, text):
    ids = torch.from_numpy(vocab.encode(text)).unsqueeze(0)
    with torch.no_grad():
        return model(ids)


def test_a_stream_recorded_in_chunks_equals_one_forward_pass(tmp_path, tiny, corpus):
    out = tmp_path / "acts.h5"
    options = RecordOptions(dtype="float32", chunk_size=37)  # many chunk boundaries
    result = record_corpus(tiny, corpus, out, options)
    assert result.path == out and result.positions == len(corpus)
    assert not partial_path(out).exists()
    logits, (h_n, c_n) = _full_forward(tiny.model, tiny.vocab, corpus)
    with ActivationStore(out) as store:
        assert store.text == corpus
        assert store.sequences.tolist() == [[0, len(corpus)]]
        # the last layer's recorded hidden is the model's own output at every position
        top = store.read("layer1/hidden")
        out_all, _ = tiny.model.rnn(
            tiny.model.embed(torch.from_numpy(store.tokens).long().unsqueeze(0))
        )
        np.testing.assert_allclose(top, out_all[0].detach().numpy(), atol=1e-5, rtol=0)
        for layer in (0, 1):
            np.testing.assert_allclose(
                store.read(f"layer{layer}/cell")[-1], c_n[layer, 0], atol=1e-5
            )
            np.testing.assert_allclose(
                store.read(f"layer{layer}/hidden")[-1], h_n[layer, 0], atol=1e-5
            )
        # next_logprob: log p(actual next char), NaN at the end
        logp = torch.log_softmax(logits[0], -1)
        ids = torch.from_numpy(store.tokens).long()
        expected = logp[torch.arange(len(ids) - 1), ids[1:]].numpy()
        np.testing.assert_allclose(store.next_logprob[:-1], expected, atol=1e-5)
        assert np.isnan(store.next_logprob[-1])


def test_float16_is_the_default_and_close(tmp_path, tiny, corpus):
    record_corpus(tiny, corpus, tmp_path / "a.h5")
    record_corpus(tiny, corpus, tmp_path / "b.h5", RecordOptions(dtype="float32"))
    with ActivationStore(tmp_path / "a.h5") as a, ActivationStore(tmp_path / "b.h5") as b:
        assert a.dtype == "float16" and b.dtype == "float32"
        np.testing.assert_allclose(a.read("layer0/cell"), b.read("layer0/cell"), atol=2e-3)


def test_reset_line_batches_lines_exactly(tmp_path, vocab):
    text = "ab(c)\n'x'\n\n    d + [1, 2]\nf\n"
    loaded = LoadedModel(make_model(vocab, bidirectional=True), vocab, "checkpoint")
    out = tmp_path / "lines.h5"
    record_corpus(loaded, text, out, RecordOptions(reset="line", dtype="float32", batch_chars=20))
    with ActivationStore(out) as store:
        seqs = store.sequences.tolist()
        assert seqs == [[0, 6], [6, 10], [10, 11], [11, 26], [26, 28]]
        for start, end in seqs:
            line = text[start:end]
            _, (_h_n, c_n) = _full_forward(loaded.model, vocab, line)  # one line alone, zero state
            np.testing.assert_allclose(
                store.read("layer1/cell", start, end)[-1], c_n[2, 0], atol=1e-5
            )
            np.testing.assert_allclose(
                store.read("layer1_reverse/cell", start, end)[0], c_n[3, 0], atol=1e-5
            )
            assert np.isnan(store.next_logprob[end - 1])


def test_bidirectional_stream_reads_the_whole_corpus_as_one_sequence(tmp_path, vocab, corpus):
    loaded = LoadedModel(make_model(vocab, bidirectional=True, num_layers=1), vocab, "checkpoint")
    out = tmp_path / "bi.h5"
    record_corpus(loaded, corpus, out, RecordOptions(dtype="float32", chunk_size=10))
    _, (_h_n, c_n) = _full_forward(loaded.model, vocab, corpus)
    with ActivationStore(out) as store:
        np.testing.assert_allclose(store.read("layer0_reverse/cell")[0], c_n[1, 0], atol=1e-5)


def test_gru_and_one_hot_input_are_recorded(tmp_path, vocab, corpus):
    model = make_model(vocab, cell="gru", embedding_dim=None, num_layers=1)
    out = tmp_path / "gru.h5"
    record_corpus(
        LoadedModel(model, vocab, "checkpoint"), corpus, out, RecordOptions(chunk_size=50)
    )
    with ActivationStore(out) as store:
        assert store.keys == [
            f"layer0/{q}" for q in ("reset_gate", "update_gate", "candidate", "hidden")
        ]


def test_parallel_mode_deviates_little_once_warmed_up(tmp_path, vocab, corpus):
    text = corpus * 4
    loaded = LoadedModel(make_model(vocab), vocab, "checkpoint")
    exact = tmp_path / "exact.h5"
    fast = tmp_path / "fast.h5"
    record_corpus(loaded, text, exact, RecordOptions(dtype="float32", chunk_size=64))
    record_corpus(
        loaded, text, fast, RecordOptions(dtype="float32", chunk_size=64, parallel=4, warmup=128)
    )
    with ActivationStore(exact) as a, ActivationStore(fast) as b:
        for key in a.keys:
            deviation = np.abs(a.read(key) - b.read(key)).max()
            # a tiny random LSTM forgets within a few dozen chars: warm-up of 128 is plenty
            assert deviation < 1e-3, key
        np.testing.assert_allclose(
            a.read("layer0/cell", 0, 128), b.read("layer0/cell", 0, 128), atol=1e-6
        )


def test_quantities_and_layers_are_honoured(tmp_path, tiny, corpus):
    out = tmp_path / "some.h5"
    record_corpus(tiny, corpus, out, RecordOptions(quantities=("cell",), layers=("layer1",)))
    with ActivationStore(out) as store:
        assert store.keys == ["layer1/cell"]
        assert store.run_config["quantities"] == ["cell"]


def test_unknown_characters(tmp_path, tiny):
    out = tmp_path / "acts.h5"
    with pytest.raises(
        CorpusError,
        match=r"2 characters not in the model's vocabulary: 'Z' at 1, 'Q' at 3.*`unknown",
    ):
        record_corpus(tiny, "aZaQ", out)
    assert not out.exists() and not partial_path(out).exists()
    record_corpus(tiny, "aZaQ", out, RecordOptions(unknown="skip"))
    with ActivationStore(out) as store:
        assert store.text == "aa"
    record_corpus(tiny, "aZaQ", out, RecordOptions(unknown="map: "), force=True)
    with ActivationStore(out) as store:
        assert store.text == "a a "


def test_an_existing_recording_is_never_overwritten_silently(tmp_path, tiny, corpus):
    out = tmp_path / "acts.h5"
    record_corpus(tiny, corpus, out)
    before = out.read_bytes()
    with pytest.raises(StoreError, match="`force=True`"):
        record_corpus(tiny, corpus, out)
    assert out.read_bytes() == before
    record_corpus(tiny, corpus[:50], out, force=True)
    with ActivationStore(out) as store:
        assert store.n_positions == 50


def test_bad_options_are_refused():
    with pytest.raises(LstmprobeError, match="`parallel` applies to a stream"):
        RecordOptions(reset="line", parallel=2)
    with pytest.raises(LstmprobeError, match="dtype"):
        RecordOptions(dtype="int8")


RECORD_SCRIPT = """
import sys, time, torch
from lstmprobe.models import load_model
from lstmprobe.record import RecordOptions, record_corpus
loaded = load_model(sys.argv[1])
slow = sys.argv[4] == "slow"
if slow:  # slow each chunk down so that the parent can kill us mid-recording
    forward = loaded.model.forward
    def forward_slowly(*a, **k):
        time.sleep(0.25)
        return forward(*a, **k)
    loaded.model.forward = forward_slowly
text = open(sys.argv[2], encoding="utf-8").read()
record_corpus(loaded, text, sys.argv[3], RecordOptions(chunk_size=16), resume=not slow)
"""


@pytest.mark.slow
def test_a_killed_recording_resumes_to_the_same_file(tmp_path, vocab, corpus):
    model_path = tmp_path / "model.pt"
    save_checkpoint(model_path, make_model(vocab), vocab)
    corpus_path = tmp_path / "corpus.txt"
    corpus_path.write_text(corpus, encoding="utf-8")
    script = tmp_path / "rec.py"
    script.write_text(RECORD_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    whole = tmp_path / "whole.h5"
    subprocess.run(
        [sys.executable, script, model_path, corpus_path, whole, "fast"], check=True, env=env
    )
    killed = tmp_path / "killed.h5"
    proc = subprocess.Popen(
        [sys.executable, script, model_path, corpus_path, killed, "slow"], env=env
    )
    deadline = time.time() + 60
    while time.time() < deadline and not partial_path(killed).exists():
        time.sleep(0.25)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not killed.exists() and partial_path(killed).exists()
    with pytest.raises(StoreError):
        ActivationStore(partial_path(killed))
    subprocess.run(
        [sys.executable, script, model_path, corpus_path, killed, "resume"], check=True, env=env
    )
    assert killed.exists() and not partial_path(killed).exists()
    with ActivationStore(whole) as a, ActivationStore(killed) as b:
        assert a.n_positions == b.n_positions
        for key in a.keys:
            np.testing.assert_array_equal(a.read(key), b.read(key))
        np.testing.assert_array_equal(a.next_logprob, b.next_logprob)


def test_threads_are_restored_after_recording(tmp_path, tiny, corpus):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        record_corpus(tiny, corpus, tmp_path / "a.h5")  # small model: recorded on one thread
        assert torch.get_num_threads() == 2
        record_corpus(tiny, corpus, tmp_path / "b.h5", threads=2)
        assert torch.get_num_threads() == 2
        with pytest.raises(CorpusError):
            record_corpus(tiny, "ZZZ", tmp_path / "c.h5")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [0, -1])
def test_bad_threads_fail_cleanly_and_the_next_recording_works(tmp_path, tiny, corpus, threads):
    out = tmp_path / "acts.h5"
    before = torch.get_num_threads()
    with pytest.raises(RecordError, match="`threads` must be at least 1") as info:
        record_corpus(tiny, corpus, out, threads=threads)
    assert not isinstance(info.value.__context__, RuntimeError)
    assert torch.get_num_threads() == before
    assert not out.exists() and not partial_path(out).exists()
    result = record_corpus(tiny, corpus, out)  # nothing of the failed call is left locked
    assert result.positions == len(corpus)


def test_ctrl_c_keeps_the_partial_and_resume_completes_it(tmp_path, vocab, corpus):
    model = make_model(vocab)
    loaded = LoadedModel(model, vocab, "checkpoint", sha256="1" * 64)
    whole = tmp_path / "whole.h5"
    options = RecordOptions(chunk_size=16, dtype="float32")
    record_corpus(loaded, corpus, whole, options)
    out = tmp_path / "acts.h5"
    forward, calls = model.forward, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return forward(*args, **kwargs)

    model.forward = interrupted
    with pytest.raises(KeyboardInterrupt):
        record_corpus(loaded, corpus, out, options)
    del model.forward
    assert not out.exists() and partial_path(out).exists()
    with pytest.raises(StoreError, match="`resume=True`"):
        record_corpus(loaded, corpus, out, options)  # neither --resume nor --force
    result = record_corpus(loaded, corpus, out, options, resume=True)
    assert 0 < result.resumed_from < len(corpus)
    with ActivationStore(whole) as a, ActivationStore(out) as b:
        for key in a.keys:
            np.testing.assert_array_equal(a.read(key), b.read(key))


def test_a_line_longer_than_a_batch_is_read_in_chunks_exactly(tmp_path, vocab, corpus):
    """Memory is bounded by the chunk, not by the line: same values as one forward per line."""
    text = corpus.replace("\n", " ") + "\n" + corpus  # one long line, then short ones
    model = make_model(vocab)
    loaded = LoadedModel(model, vocab, "checkpoint", sha256="2" * 64)
    whole = RecordOptions(reset="line", dtype="float32")
    chunked = RecordOptions(reset="line", dtype="float32", batch_chars=64, chunk_size=50)
    record_corpus(loaded, text, tmp_path / "whole.h5", whole)
    forward, lengths = model.forward, []

    def measured(ids, *args, **kwargs):
        lengths.append(ids.shape[1])
        return forward(ids, *args, **kwargs)

    model.forward = measured
    record_corpus(loaded, text, tmp_path / "chunked.h5", chunked)
    del model.forward
    assert max(lengths) <= 50  # no forward call (and no recorded batch) spans the long line
    with ActivationStore(tmp_path / "whole.h5") as a, ActivationStore(tmp_path / "chunked.h5") as b:
        assert a.sequences.tolist() == b.sequences.tolist()
        assert a.sequences[0, 1] > 64  # the long line really exceeds a batch
        for key in a.keys:
            np.testing.assert_allclose(a.read(key), b.read(key), atol=1e-6, rtol=0)
        np.testing.assert_allclose(a.next_logprob, b.next_logprob, atol=1e-6, rtol=0)
    # killed inside the long line: the resume starts that line again and ends the same
    forward, calls = model.forward, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return forward(*args, **kwargs)

    model.forward = interrupted
    with pytest.raises(KeyboardInterrupt):
        record_corpus(loaded, text, tmp_path / "resumed.h5", chunked)
    del model.forward
    result = record_corpus(loaded, text, tmp_path / "resumed.h5", chunked, resume=True)
    assert result.resumed_from == 0
    with (
        ActivationStore(tmp_path / "chunked.h5") as a,
        ActivationStore(tmp_path / "resumed.h5") as b,
    ):
        for key in a.keys:
            np.testing.assert_array_equal(a.read(key), b.read(key))


def test_a_cell_state_beyond_float16_is_told_once_and_float32_keeps_it(tmp_path):
    """Gates held open and a candidate of 1 add 1 to the cell state each char: past 65,504 chars
    a float16 recording stores inf, and says so once (not once per chunk), naming the dataset."""
    from lstmprobe.models import CharLSTM, ModelConfig
    from lstmprobe.text import Vocab

    model = CharLSTM(ModelConfig(vocab_size=2, hidden_size=2, embedding_dim=2)).eval()
    with torch.no_grad():
        model.rnn.weight_ih_l0.zero_()
        model.rnn.weight_hh_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
        model.rnn.bias_ih_l0.fill_(30.0)  # every gate 1, candidate tanh(30) = 1
    loaded = LoadedModel(model, Vocab(("a", "b")), "checkpoint")
    text = "ab" * 33_000
    heard: list[str] = []
    out = record_corpus(
        loaded, text, tmp_path / "acts.h5", RecordOptions(reset="none", quantities=("cell",)),
        warn=heard.append,
    )  # fmt: skip
    assert len(heard) == 1 and heard[0].startswith("layer0/cell: ")
    assert "exceed the float16 range" in heard[0] and "`dtype='float32'`" in heard[0]
    with ActivationStore(out.path) as store:
        cell = store.read("layer0/cell")
    assert np.isinf(cell[65_600:]).all() and np.isfinite(cell[:65_000]).all()
    heard.clear()
    options = RecordOptions(reset="none", quantities=("cell",), dtype="float32")
    out = record_corpus(loaded, text, tmp_path / "b.h5", options, warn=heard.append)
    assert heard == []
    with ActivationStore(out.path) as store:
        assert store.read("layer0/cell")[-1, 0] == pytest.approx(len(text), rel=1e-6)


def test_a_corpus_of_files_records_each_file_as_a_sequence(tmp_path, vocab, corpus):
    from lstmprobe.text import Corpus

    texts = [corpus[:50], corpus[50:51], "", corpus[51:200], corpus[200:]]
    files = Corpus.of_files([(f"dir/f{i}.txt", t) for i, t in enumerate(texts)])
    loaded = LoadedModel(make_model(vocab), vocab, "checkpoint")
    out = tmp_path / "files.h5"
    record_corpus(loaded, files, out, RecordOptions(dtype="float32", batch_chars=120))
    with ActivationStore(out) as store:
        assert store.text == corpus
        assert store.sequences.tolist() == [[0, 50], [50, 51], [51, 200], [200, len(corpus)]]
        assert store.files == tuple(f"dir/f{i}.txt" for i in range(5))
        assert store.sequence_files.tolist() == [0, 1, 3, 4]  # the empty file has none
        assert store.file_of(60) == "dir/f3.txt"
        for start, end in store.sequences.tolist():
            # each file from the zero state, as the model reads it alone
            _, (h_n, c_n) = _full_forward(loaded.model, vocab, corpus[start:end])
            np.testing.assert_allclose(
                store.read("layer1/cell", start, end)[-1], c_n[1, 0], atol=1e-5
            )
            np.testing.assert_allclose(
                store.read("layer0/hidden", start, end)[-1], h_n[0, 0], atol=1e-5
            )
            assert np.isnan(store.next_logprob[end - 1])
    lines = tmp_path / "lines.h5"
    record_corpus(loaded, files, lines, RecordOptions(reset="line"))
    with ActivationStore(lines) as store:
        ends = store.sequences[:, 1].tolist()
        assert {50, 51, 200} <= set(ends)  # a file's last line ends with the file
        assert store.file_of(len(corpus) - 1) == "dir/f4.txt"


def test_a_corpus_of_files_resumes_only_with_the_same_files(tmp_path, vocab, corpus):
    from lstmprobe.text import Corpus

    loaded = LoadedModel(make_model(vocab), vocab, "checkpoint")
    out = tmp_path / "acts.h5"
    two = Corpus.of_files([("a", corpus[:100]), ("b", corpus[100:])])
    record_corpus(loaded, two, out)
    partial_path(out).write_bytes(out.read_bytes())  # a partial of the same tokens ...
    out.unlink()
    with pytest.raises(StoreError, match="different sequences"):  # ... cut into other files
        record_corpus(loaded, Corpus.of_files([("a", corpus[:90]), ("b", corpus[90:])]), out,
                      resume=True)  # fmt: skip


def test_old_stores_without_files_still_open(tmp_path, tiny, corpus):
    import h5py

    out = tmp_path / "acts.h5"
    record_corpus(tiny, corpus, out)
    with ActivationStore(out) as store:
        assert store.files == () and store.sequence_files is None  # one text: no files
        assert store.file_of(3) is None and store.summary()["files"] == 0
    with h5py.File(out, "a") as f:
        assert "files" not in f and "sequence_files" not in f
