"""Writing a recording beside the forward pass, on two threads of its own.

* :class:`BackgroundWriter` recomputes each chunk's internals and writes them to the store,
  overlapping the next forward call on the main thread.
* :class:`Syncer` makes what was written durable and only then moves the store's progress
  marker: ``fsync`` of the partial file, the exact recurrent state at that position saved, then
  the marker. It runs while the other two work, so waiting for the disk costs them nothing;
  a round starts when the previous one has ended and something new was written, at most every
  :data:`SYNC_INTERVAL` seconds. The marker (where a resume continues) thus trails the written
  positions by about one round, and never runs ahead of what is on disk.

Before, each chunk was fsynced and marked on the writing thread (three fsyncs and a state file
per chunk), which waited for the disk in turn with the work; docs/recording.md has the numbers.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lstmprobe.store import StoreWriter

#: Seconds between the starts of two sync rounds, at least (a round itself takes as long as the
#: disk needs to take what was written since the last one).
SYNC_INTERVAL = 0.1

# A chunk of work: (start, length, job, state). ``job()`` recomputes the chunk's internals and
# returns ({key: values}, next_logprob or None); it runs on the writer thread, overlapping the
# next forward call. ``state`` is (stop, exact state after the chunk) for a resume, or None.
Job = Callable[[], tuple[dict[str, np.ndarray], np.ndarray | None]]
Chunk = tuple[int, int, Job, tuple[int, Any] | None]
#: Saves the exact state at a position before the marker moves there (``_StateFile.save``).
SaveState = Callable[[int, Any], None]


class Syncer:
    """Makes written positions durable, then marks them, on a thread of its own.

    The writing thread :meth:`offer`\\ s each position it wrote (with the exact state there, or
    None where a resume needs none); a round takes the latest offer, fsyncs the file (every
    position written so far, and the marker of the previous round), saves the state, then sets
    the marker. A kill at any moment leaves a marker whose values are on disk and whose state is
    one of the two kept in the state file.
    """

    def __init__(
        self, writer: StoreWriter, save_state: SaveState, interval: float = SYNC_INTERVAL
    ) -> None:
        self.writer = writer
        self.save_state = save_state
        self.interval = interval
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        self._offer: tuple[int, Any] | None = None
        self._closing = False
        self._final = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def offer(self, position: int, state: Any) -> None:
        """``position`` is written (flushed to the operating system); ``state`` is the exact
        state there, or None."""
        with self._cond:
            self._offer = (position, state)
            self._cond.notify()

    def _next(self, began: float) -> tuple[int, Any] | None:
        """The offer for the next round (None: end), once the interval since ``began`` is over."""
        with self._cond:
            while True:
                if self._closing and not self._final:
                    return None
                if self._offer is not None:
                    wait = began + self.interval - time.monotonic()
                    if self._closing or wait <= 0:
                        offer, self._offer = self._offer, None
                        return offer
                    self._cond.wait(wait)
                elif self._closing:
                    return None
                else:
                    self._cond.wait()

    def _run(self) -> None:
        began = -float("inf")
        while (offer := self._next(began)) is not None:
            began = time.monotonic()
            if self.error is not None:
                continue
            position, state = offer
            try:
                self.writer.sync()  # every position written so far, ``position`` included
                if state is not None:
                    self.save_state(position, state)
                self.writer.mark(position)
            except BaseException as exc:
                self.error = exc

    def close(self, *, final: bool) -> None:
        """End the thread; with ``final``, after a last round for what was offered. Raises the
        error a round met."""
        with self._cond:
            self._closing = True
            self._final = final
            self._cond.notify()
        self.thread.join()
        if self.error is not None:
            raise self.error


class BackgroundWriter:
    """Recomputes and writes chunks to the store on a thread, so that HDF5 writes overlap the
    next forward; a :class:`Syncer` makes them durable behind it."""

    def __init__(
        self, writer: StoreWriter, save_state: SaveState, interval: float = SYNC_INTERVAL
    ) -> None:
        self.writer = writer
        self.syncer = Syncer(writer, save_state, interval)
        self.queue: queue.Queue[Chunk | None] = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        # One intra-op thread here (OpenMP's setting is per thread): the forward pass on the
        # main thread keeps its own threads, and the two overlap instead of fighting.
        torch.set_num_threads(1)
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    start, _, job, state = item
                    with torch.inference_mode():
                        arrays, logprob = job()
                    self.writer.write(start, arrays, logprob, commit=False)
                    self.syncer.offer(self.writer.written, None if state is None else state[1])
                except BaseException as exc:
                    self.error = exc

    def put(self, chunk: Chunk) -> None:
        for error in (self.error, self.syncer.error):
            if error is not None:
                raise error
        self.queue.put(chunk)

    def join(self) -> None:
        """Write what is queued and end both threads; the store's finish makes it durable."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            self._end_syncer()
            raise self.error
        self.syncer.close(final=False)

    def stop(self) -> None:
        """Finish what is queued, make it durable and mark it (so that a resume continues
        after it), then end both threads."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        self._end_syncer()

    def _end_syncer(self) -> None:
        """A last round for what was written, on the way out of a failure (whose own error is
        the one to raise)."""
        with contextlib.suppress(Exception):
            self.syncer.close(final=True)
