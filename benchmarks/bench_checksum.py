"""What the checksums of a recording cost (docs/store-format.md, "Checksums").

Writes a float16 recording of N positions x 768 units (an LSTM of 128 units, all 6 quantities)
with random values, then measures, in one run:

* ``hashing``: what the checksums add to writing the values. A recording written in one go
  hashes the values as it writes them; one that was resumed reads every dataset back at finish
  (the writer's ``_checksums``). Both are measured against writing without hashing;
* ``verify``: the check before a dataset is read in full (``store.verify()``), against the
  report's own pass over the same datasets (``report.data.summarize``), on a warm page cache.

    python benchmarks/bench_checksum.py [--positions 200000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from lstmprobe.names import LSTM_QUANTITIES
from lstmprobe.report.data import summarize
from lstmprobe.store import ActivationStore, RecordingSpec, StoreWriter
from lstmprobe.text import Vocab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.positions
    layout = {f"layer0/{q}": 128 for q in LSTM_QUANTITIES}
    vocab = Vocab(tuple("abcdefgh"))
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, len(vocab), n).astype(np.int32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "acts.h5"
        spec = RecordingSpec(tokens, [[0, n]], vocab, layout, {}, "0" * 64, "0" * 64, False, {})
        step = 8192
        chunks = [
            {k: rng.uniform(-1, 1, (min(n, a + step) - a, u)).astype(np.float16)
             for k, u in layout.items()}
            for a in range(0, n, step)
        ]  # fmt: skip
        plain, hashed, hashing = [], [], []
        for _ in range(args.repeat):
            for running in (False, True):
                writer = StoreWriter(path, spec, force=True)
                if not running:
                    writer._running = None  # as after a resume: read back at finish
                t0 = time.perf_counter()
                for a, values in zip(range(0, n, step), chunks):
                    writer.write(a, values)
                (hashed if running else plain).append(time.perf_counter() - t0)
                if not running:  # what finish() adds then, on the open partial file
                    t0 = time.perf_counter()
                    writer._checksums(writer._require_open())
                    hashing.append(time.perf_counter() - t0)
                writer.finish()
        written, inline = (
            statistics.median(plain),
            statistics.median(hashed) - statistics.median(plain),
        )
        size = os.path.getsize(path)
        verify, summary = [], []
        for _ in range(args.repeat):
            with ActivationStore(path) as store:
                t0 = time.perf_counter()
                store.verify()
                verify.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                summarize(store)
                summary.append(time.perf_counter() - t0)
    h, v, s = statistics.median(hashing), statistics.median(verify), statistics.median(summary)
    print(f"{n:,} positions x {sum(layout.values())} units float16: {size / 2**20:,.0f} MiB")
    print(f"write the values     {written:7.2f} s  (no hashing)")
    print(f"hashed as written    {inline:+7.2f} s  ({inline / written:+.2f} x the writing)")
    print(
        f"read back at finish  {h:7.2f} s  ({h / written:.2f} x the writing; {size / 2**20 / h:,.0f} MiB/s)"
    )
    print(f"verify every dataset {v:7.2f} s")
    print(f"report's summaries   {s:7.2f} s  (verify / summaries = {v / s:.2f})")
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
