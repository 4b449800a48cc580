"""Recording a corpus: the model is driven over the text in chunks, a :class:`~lstmprobe.record.hooks.Recorder`
captures every gate and state, and a :class:`~lstmprobe.store.StoreWriter` streams them to HDF5.

Three ways through the text (see docs/recording.md):

* ``reset="none"`` (default): the corpus is one stream read in chunks of ``chunk_size`` characters,
  the state carried exactly from one chunk to the next (batch of one).
* ``reset="line"``: each line is an independent sequence starting from the zero state; consecutive
  lines are batched (padded, packed for bidirectional models), which is exact too.
* ``parallel=K`` with ``reset="none"``: K segments of ``chunk_size`` characters run at once, each
  started from the zero state ``warmup`` characters before it. Faster, not exact: the deviation is
  measured by ``tests/record/test_pipeline.py`` and reported in docs/recording.md.

A bidirectional model's reverse direction starts at a sequence's end, so it reads each sequence
whole: with ``reset="none"`` the whole corpus is one forward call and memory grows with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmprobe._io import atomic_write, progress_bar
from lstmprobe.errors import CorpusError, LstmprobeError, RecordError, StoreError, one_line
from lstmprobe.models import CharLSTM, LoadedModel, map_state
from lstmprobe.record.background import BackgroundWriter, Chunk, Job
from lstmprobe.record.batches import reads_in_batches, sequence_groups
from lstmprobe.record.hooks import PendingActivations, Recorder
from lstmprobe.record.layers import layout
from lstmprobe.record.threads import TorchThreads, check_threads, default_threads
from lstmprobe.store import (
    COMPRESSIONS,
    DTYPES,
    Recording,
    RecordingSpec,
    StoreWriter,
    write_error,
)
from lstmprobe.store.shards import Shard
from lstmprobe.text import RESETS, Corpus, check_chars, sequences


@dataclass(frozen=True)
class RecordOptions:
    """How a corpus is recorded; stored in the recording's ``run_config`` attribute."""

    reset: str = "none"
    dtype: str = "float16"
    compression: str | None = None
    quantities: tuple[str, ...] | None = None
    layers: tuple[str, ...] | None = None
    chunk_size: int = 4096
    batch_chars: int = 65536
    parallel: int = 0
    warmup: int = 1024
    unknown: str = "error"

    def __post_init__(self) -> None:
        if self.reset not in RESETS:
            raise RecordError(f"reset must be one of {', '.join(RESETS)}, got {self.reset!r}")
        if self.dtype not in DTYPES:
            raise RecordError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.compression not in COMPRESSIONS:
            names = ", ".join(c for c in COMPRESSIONS if c)
            raise RecordError(f"compression must be one of {names}, got {self.compression!r}")
        if self.chunk_size < 1 or self.batch_chars < 1:
            raise RecordError("chunk_size and batch_chars must be at least 1")
        if self.parallel < 0 or self.warmup < 0:
            raise RecordError("parallel and warmup must not be negative")
        if self.parallel and self.reset != "none":
            raise RecordError("`parallel` applies to a stream (`reset='none'`) only")

    def run_config(self) -> dict[str, Any]:
        config = asdict(self)
        for key in ("quantities", "layers"):
            if config[key] is not None:
                config[key] = list(config[key])
        return config


@dataclass(frozen=True)
class RecordResult:
    path: Path
    positions: int
    seconds: float
    resumed_from: int = 0

    @property
    def chars_per_second(self) -> float:
        done = self.positions - self.resumed_from
        return done / self.seconds if self.seconds > 0 else float("nan")


def corpus_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_corpus(
    loaded: LoadedModel,
    text: str | Corpus,
    out: str | os.PathLike[str],
    options: RecordOptions | None = None,
    *,
    force: bool = False,
    resume: bool = False,
    progress: bool = False,
    device: str | torch.device | None = None,
    threads: int | None = None,
    warn: Callable[[str], None] | None = None,
    shard: Shard | None = None,
) -> RecordResult:
    """Record every gate and state of ``loaded`` over ``text`` into the HDF5 file ``out``.

    ``text`` is one text, or a :class:`~lstmprobe.text.Corpus` of several files
    (:func:`~lstmprobe.text.read_corpora`): each file is then a sequence of its own (the state
    is reset at its start; with ``reset="line"`` each of its lines is), and the store records
    which file each sequence came from (``/files``, ``/sequence_files``).

    ``threads`` sets torch's CPU threads while recording (restored afterwards). By default a
    small model (under ``SMALL_MODEL_MACS`` multiply-adds per char) runs its forward on one
    thread, so that the recomputation and the writes overlap it on the other cores; a larger
    model keeps torch's setting, because its forward pass needs every core.

    The file appears only when the recording is complete (it is written to ``out.partial`` and
    renamed). An interrupted recording keeps its partial file; call again with ``resume=True``
    and the same options to continue it: the result equals an uninterrupted run.

    ``warn`` hears one line per dataset whose values do not fit ``options.dtype`` (a float16
    recording stores values beyond ±65,504 as ±inf); by default that is a
    :class:`~lstmprobe.errors.PrecisionWarning`.

    ``shard`` (for :mod:`lstmprobe.distributed`): ``text`` is one shard of a larger recording,
    recorded as that recording reads it (its chunk size, and its sequences in the same batches),
    with the shard's identity in the file's attributes.

    Examples
    --------
    >>> from lstmprobe.models import CharLSTM, ModelConfig, LoadedModel
    >>> from lstmprobe.text import Vocab
    >>> import tempfile, pathlib
    >>> vocab = Vocab.from_text("ab\\n")
    >>> model = CharLSTM(ModelConfig(vocab_size=3, hidden_size=4, embedding_dim=2)).eval()
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "acts.h5"
    >>> record_corpus(LoadedModel(model, vocab, "checkpoint"), "abba\\nab\\n", out).positions
    8
    """
    check_threads(threads)
    options = options or RecordOptions()
    out = Path(out)
    model = loaded.model
    if device is not None:
        model = model.to(device)
    dev = next(model.parameters()).device
    prepared = prepare_recording(loaded, text, options)
    tokens, seqs = prepared.spec.tokens.astype(np.int64), prepared.spec.sequences
    bidirectional = bool(model.config.bidirectional)
    batched = reads_in_batches(options.reset, bidirectional, len(seqs))
    spec = prepared.spec
    if shard is not None:
        batched = shard.batched
        spec = replace(spec, attrs=shard.attrs())
    writer = StoreWriter(
        out,
        spec,
        compression=options.compression,
        chunk_positions=None if shard is None else shard.chunk_positions,
        force=force,
        resume=resume,
        warn=warn,
    )
    start_at = writer.written
    if batched and 0 < start_at < len(tokens):
        # a long line is written in chunks: a resume inside one starts that line again
        inside = int(np.searchsorted(seqs[:, 0], start_at, side="right")) - 1
        if seqs[inside, 0] < start_at:
            start_at = writer.rewind(int(seqs[inside, 0]))
    state_file = _StateFile(Recording.at(out).resume_state)
    began = time.perf_counter()
    bar = progress_bar(
        len(tokens), initial=start_at, desc="record", unit="char", unit_scale=True, enabled=progress
    )
    background = BackgroundWriter(writer, state_file.save)
    try:
        with TorchThreads(default_threads(model, threads, dev)):
            model.eval()
            recorder = Recorder(model, options.quantities, options.layers, lazy=True)
            with torch.inference_mode(), recorder as rec:
                run = _Run(model, rec, tokens, options, dev)
                if batched:
                    units = _sequence_batches(run, seqs, start_at)
                elif options.parallel:
                    units = _parallel_stream(run, start_at)
                else:
                    state = None
                    if 0 < start_at < len(tokens):
                        state = _to_device(state_file.load(start_at, _zero_state(model, dev)), dev)
                    units = _chunked(run, start_at, len(tokens), state, True)
                # Recompute on the writer thread, overlapping the next forward, when the forward
                # runs on one intra-op thread (or on a GPU). A multi-threaded CPU forward already
                # uses every core, and sharing them with the recomputation slows it more than the
                # overlap gains (measured: docs/recording.md), so then it runs here in turn.
                overlap = dev.type != "cpu" or torch.get_num_threads() == 1
                for start, length, job, state in units:
                    if not overlap:
                        done = job()
                        job = lambda done=done: done  # noqa: E731
                    background.put((start, length, job, state))
                    bar.update(length)
            background.join()
    except BaseException:
        background.stop()
        bar.close()
        with contextlib.suppress(LstmprobeError):
            writer.close()  # keep the partial file: --resume continues it
        raise
    bar.close()
    try:
        path = writer.finish()
    except BaseException:
        with contextlib.suppress(LstmprobeError):
            writer.close()
        raise
    state_file.remove()
    return RecordResult(path, len(tokens), time.perf_counter() - began, start_at)


@dataclass(frozen=True, eq=False)
class Prepared:
    """A corpus made ready to record: its text once the unknown characters are dealt with, and
    the :class:`~lstmprobe.store.RecordingSpec` of its recording (tokens, sequences, files)."""

    text: str
    spec: RecordingSpec
    corpus: Corpus


def prepare_recording(loaded: LoadedModel, text: str | Corpus, options: RecordOptions) -> Prepared:
    """What recording ``text`` with ``loaded`` and ``options`` writes besides the values
    (:func:`record_corpus`; :mod:`lstmprobe.distributed` shards it)."""
    model = loaded.model
    files: tuple[str, ...] = ()
    of_sequence = None
    if isinstance(text, Corpus):
        corpus = text.checked(loaded.vocab, options.unknown)
        seqs = corpus.sequences(options.reset)
        files, of_sequence = corpus.files, corpus.sequence_files(seqs)
    else:
        corpus = Corpus.of_text(check_chars(text, loaded.vocab, options.unknown))
        seqs = sequences(corpus.text, options.reset)
    text = corpus.text
    if not text:
        raise CorpusError("nothing is left to record once unknown characters are skipped")
    if options.parallel and bool(model.config.bidirectional):
        raise RecordError(
            "`parallel` needs a unidirectional model: a reverse direction reads whole sequences"
        )
    if options.parallel and len(seqs) > 1:
        raise RecordError(
            "`parallel` reads one stream; this corpus is several sequences (files or lines)"
        )
    spec = RecordingSpec(
        tokens=loaded.vocab.encode(text).astype(np.int32),
        sequences=seqs,
        vocab=loaded.vocab,
        layout=layout(model, options.quantities, options.layers),
        dtype=options.dtype,
        model_summary=loaded.summary(),
        model_sha256=loaded.sha256,
        corpus_sha256=corpus_sha256(text),
        has_next_logprob=model.decoder is not None,
        run_config=options.run_config(),
        files=files,
        sequence_files=of_sequence,
    )
    return Prepared(text, spec, corpus)


def _numpy(values: torch.Tensor, dtype: str) -> np.ndarray:
    return values.to("cpu", getattr(torch, dtype)).contiguous().numpy()


def _next_logprob(
    logits: torch.Tensor, tokens: np.ndarray, start: int, seq_end: np.ndarray
) -> np.ndarray:
    """log p(actual next char) for positions start..start+len(logits); NaN where no next char.

    ``seq_end[i]`` is the end of the sequence holding position ``start + i``.
    """
    n = logits.shape[0]
    positions = np.arange(start, start + n)
    has_next = positions + 1 < seq_end
    targets = np.zeros(n, dtype=np.int64)
    targets[has_next] = tokens[positions[has_next] + 1]
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(1, torch.from_numpy(targets).to(logp.device).unsqueeze(1)).squeeze(1)
    result = picked.cpu().numpy().astype(np.float32)
    result[~has_next] = np.nan
    return result


@dataclass(frozen=True)
class _Run:
    """What every stream of a recording reads with: the model, its lazy recorder, the corpus's
    tokens, the options and the device."""

    model: CharLSTM
    rec: Recorder
    tokens: np.ndarray
    options: RecordOptions
    dev: torch.device


def _chunked(run: _Run, start: int, end: int, state: Any, keep_state: bool) -> Iterator[Chunk]:
    """Positions ``[start, end)`` of one sequence in chunks of ``chunk_size`` chars, carrying
    the exact state from ``state`` (None: zeros); with ``keep_state`` each chunk hands on the
    state after it, for a resume."""
    size = run.options.chunk_size
    ends = np.full(size, end)
    for a in range(start, end, size):
        b = min(a + size, end)
        ids = torch.from_numpy(run.tokens[a:b]).to(run.dev).unsqueeze(0)
        logits, state = run.model(ids, state)
        job = _one_sequence_job(run, _pending(run.rec), logits, a, ends)
        yield a, b - a, job, ((b, _detach(state)) if keep_state else None)


def _pending(rec: Recorder) -> PendingActivations:
    """The latest call's activations of a lazy recorder (what every stream here uses)."""
    pending = rec.activations
    if not isinstance(pending, PendingActivations):
        raise TypeError("the recorder of a recording must be lazy")
    return pending


def _one_sequence_job(
    run: _Run, pending: PendingActivations, logits: torch.Tensor, start: int, ends: np.ndarray
) -> Job:
    """The recomputation of one chunk of one sequence (batch of one), for the writer thread."""

    def job() -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        arrays = {k: _numpy(v[0], run.options.dtype) for k, v in pending.materialize().items()}
        logprob = None
        if run.model.decoder is not None:
            logprob = _next_logprob(logits[0], run.tokens, start, ends[: len(logits[0])])
        return arrays, logprob

    return job


def _parallel_stream(run: _Run, start_at: int) -> Iterator[Chunk]:
    model, rec, tokens, options, dev = run.model, run.rec, run.tokens, run.options, run.dev
    n, size, warm = len(tokens), options.chunk_size, options.warmup
    span = size * options.parallel
    for base in range(start_at, n, span):
        starts = list(range(base, min(base + span, n), size))
        pieces: dict[int, tuple[Any, int, slice, torch.Tensor]] = {}
        # segments with a full warm-up run as one batch; earlier ones start exactly at 0
        full = [s for s in starts if s >= warm]
        for s in (s for s in starts if s < warm):
            ids = torch.from_numpy(tokens[0 : min(s + size, n)]).to(dev).unsqueeze(0)
            logits, _ = model(ids)
            pieces[s] = (rec.activations, 0, slice(s, None), logits[0, s:])
        if full:
            length = warm + size
            batch = np.zeros((len(full), length), dtype=np.int64)
            for row, s in enumerate(full):
                seg = tokens[s - warm : min(s + size, n)]
                batch[row, : len(seg)] = seg
            logits, _ = model(torch.from_numpy(batch).to(dev))
            pending = rec.activations
            for row, s in enumerate(full):
                m = min(s + size, n) - s
                pieces[s] = (pending, row, slice(warm, warm + m), logits[row, warm : warm + m])
        stop = min(base + span, n)

        def job(
            pieces: Any = pieces, starts: Any = starts, base: int = base, stop: int = stop
        ) -> Any:
            arrays = {
                k: _numpy(
                    torch.cat(
                        [pieces[s][0].materialize()[k][pieces[s][1], pieces[s][2]] for s in starts],
                        0,
                    ),
                    options.dtype,
                )
                for k in rec.layout
            }
            logprob = None
            if model.decoder is not None:
                logits_all = torch.cat([pieces[s][3] for s in starts], 0)
                logprob = _next_logprob(logits_all, tokens, base, np.full(stop - base, n))
            return arrays, logprob

        yield base, stop - base, job, None


def _sequence_batches(run: _Run, seqs: np.ndarray, start_at: int) -> Iterator[Chunk]:
    model, rec, tokens, options, dev = run.model, run.rec, run.tokens, run.options, run.dev
    todo = seqs[seqs[:, 0] >= start_at]
    bidirectional = bool(model.config.bidirectional)
    for i, j in sequence_groups(todo, options.batch_chars, bidirectional):
        if int(todo[i, 1] - todo[i, 0]) > options.batch_chars and not bidirectional:
            # A line longer than a batch is read in chunks carrying the exact state, so that
            # memory is bounded by the chunk, not by the line (a reverse direction cannot).
            yield from _chunked(run, int(todo[i, 0]), int(todo[i, 1]), None, False)
            continue
        group = todo[i:j]
        longest = int((group[:, 1] - group[:, 0]).max())
        lengths = group[:, 1] - group[:, 0]
        batch = np.zeros((len(group), longest), dtype=np.int64)
        for row, (s, e) in enumerate(group):
            batch[row, : e - s] = tokens[s:e]
        ids = torch.from_numpy(batch).to(dev)
        lens = torch.from_numpy(lengths)
        packed = bool(model.config.bidirectional) and len(group) > 1
        logits, _ = model(ids, lengths=lens if packed else None)
        pending = rec.activations

        def job(pending: Any = pending, logits: Any = logits, group: Any = group) -> Any:
            lengths = group[:, 1] - group[:, 0]
            lens = torch.from_numpy(lengths)
            mask = (torch.arange(logits.shape[1]).unsqueeze(0) < lens.unsqueeze(1)).to(dev)
            values = pending.materialize()
            arrays = {k: _numpy(v[mask], options.dtype) for k, v in values.items()}
            logprob = None
            if model.decoder is not None:
                seq_end = np.repeat(group[:, 1], lengths)
                logprob = _next_logprob(logits[mask], tokens, int(group[0, 0]), seq_end)
            return arrays, logprob

        yield int(group[0, 0]), int(group[-1, 1] - group[0, 0]), job, None


class _StateFile:
    """The exact recurrent state at the last two positions marked written, beside a partial
    recording.

    A stream recording resumed at position p needs the float32 state after p characters; the
    store holds it only rounded to its dtype. The state is saved just before the progress marker
    moves (:class:`~lstmprobe.record.background.Syncer`), and two positions are kept: a kill
    between the two leaves either one current.
    """

    def __init__(self, path: Path) -> None:
        self.path = path  # Recording.resume_state
        self._kept: dict[int, Any] = {}

    def save(self, position: int, state: Any) -> None:
        """Keep ``state`` (already on the CPU) for ``position`` and the previous position saved."""
        last = max(self._kept) if self._kept else None
        self._kept = (
            {position: state} if last is None else {last: self._kept[last], position: state}
        )
        try:
            with atomic_write(self.path) as fh:
                torch.save(self._kept, fh)
        except (OSError, RuntimeError) as exc:
            raise StoreError(write_error(exc, self.path)) from None

    def load(self, position: int, like: Any) -> Any:
        """The saved state at ``position``; ``like`` is a state of the right shapes and dtype."""
        broken = f"cannot resume: the saved state {self.path}"
        fix = "start over with `force=True`"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kept = torch.load(self.path, weights_only=True)
        except FileNotFoundError:
            raise StoreError(f"{broken} is missing; {fix}") from None
        except Exception as exc:
            line = one_line(exc)[:120]
            raise StoreError(
                f"{broken} is not a state lstmprobe wrote ({type(exc).__name__}: {line}); {fix}"
            ) from None
        if not isinstance(kept, dict) or position not in kept:
            raise StoreError(f"{broken} holds no state at position {position}; {fix}")
        state = kept[position]
        if not _state_like(state, like):
            raise StoreError(
                f"{broken} does not hold a state of this model (wrong shapes or types); {fix}"
            )
        self._kept = {position: state}
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _zero_state(model: torch.nn.Module, dev: torch.device) -> Any:
    """A state of the model's shapes (after one char from the zero state)."""
    with torch.inference_mode():
        _, state = model(torch.zeros(1, 1, dtype=torch.long, device=dev))
    return _detach(state)


def _state_like(state: Any, like: Any) -> bool:
    def same(a: Any, b: torch.Tensor) -> bool:
        return (
            isinstance(a, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and bool(torch.isfinite(a).all())
        )

    if isinstance(like, tuple):
        return (
            isinstance(state, tuple)
            and len(state) == len(like)
            and all(same(a, b) for a, b in zip(state, like))
        )
    return same(state, like)


def _to_device(state: Any, dev: torch.device) -> Any:
    return map_state(state, lambda s: s.to(dev))


def _detach(state: Any) -> Any:
    """A copy of ``state`` on the CPU, kept apart from the model's own tensors."""
    return map_state(state, lambda s: s.detach().cpu().clone())
