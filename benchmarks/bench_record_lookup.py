"""What the embedding lookup buys recording, measured in one run (docs/recording.md,
"Performance").

Records every quantity of the 1x128 benchmark LSTM (the model of ``lstmprobe bench``) over the
same corpus with the lookup on and off. On, a first layer reading an embedding projects the
embedding table once and looks its rows up (``cells.input_projection`` with ``LayerInput.rows``);
off, it projects every char in one matrix product, the plain reference (``rows`` left out).

The plain forward is timed at one thread (what ``record`` runs this model on) and at torch's
threads; the ratios are against the faster. Runs are interleaved; medians are printed.

    python benchmarks/bench_record_lookup.py [--chars 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lstmprobe.record import cells
from lstmprobe.record.bench import _builtin, _corpus, plain_forward
from lstmprobe.record.pipeline import RecordOptions, record_corpus
from lstmprobe.record.threads import TorchThreads
from lstmprobe.text import Vocab

LOOKUP = cells.input_projection


def _projected_in_full(inp: cells.LayerInput) -> torch.Tensor:
    return LOOKUP(dataclasses.replace(inp, rows=None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    text = _corpus(args.chars)
    loaded = _builtin(1, 128, Vocab.from_text(_corpus(200_000)))
    options = RecordOptions()
    modes = {"projected in full (reference)": _projected_in_full, "looked up (default)": LOOKUP}
    own = torch.get_num_threads()
    plain: dict[int, list[float]] = {t: [] for t in dict.fromkeys((1, own))}
    wall: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    plain_forward(loaded, text[:4096], 4096, "cpu")  # warm up
    try:
        for _ in range(args.repeat):
            for t, ts in plain.items():
                with TorchThreads(t):
                    ts.append(plain_forward(loaded, text, options.chunk_size, "cpu"))
            for mode, projection in modes.items():
                cells.input_projection = projection
                with tempfile.TemporaryDirectory() as tmp:
                    began, began_cpu = time.perf_counter(), time.process_time()
                    record_corpus(loaded, text, Path(tmp) / "acts.h5", options)
                    wall[mode].append(time.perf_counter() - began)
                    cpu[mode].append(time.process_time() - began_cpu)
    finally:
        cells.input_projection = LOOKUP
    medians = {t: statistics.median(ts) for t, ts in plain.items()}
    best = min(medians.values())
    print(f"{len(text):,} chars, medians of {args.repeat}, load {os.getloadavg()[0]:.1f}")
    for t, m in medians.items():
        print(f"plain forward, {t} thread(s): {len(text) / m:>9,.0f} chars/s")
    base = statistics.median(wall["projected in full (reference)"])
    for mode in modes:
        m = statistics.median(wall[mode])
        print(
            f"record, {mode:<30} {len(text) / m:>9,.0f} chars/s  ratio {best / m:.3f}  "
            f"x{base / m:.3f}  CPU {statistics.median(cpu[mode]):.2f} s"
        )


if __name__ == "__main__":
    main()
