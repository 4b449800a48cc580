"""Training throughput of ``lstmprobe.lm.train`` against a minimal plain PyTorch loop.

Both train the same architecture (embedding -> LSTM -> linear) on the same corpus laid out the
same way (``batch`` contiguous tracks read in ``seq_len`` windows, state carried, Adam, gradient
norm clipped at 5), for the same number of steps. The runs alternate (plain, lstmprobe, plain,
...) so that load from other processes hits both alike; the medians of chars/s are compared.
lstmprobe is measured with its progress bar on (written to /dev/null), as the CLI runs it.

    python benchmarks/bench_train.py            # 2x160 LSTM, 200 steps x 5 repeats
    python benchmarks/bench_train.py --quick    # small and fast, for a smoke check

The ratio ``lstmprobe / plain`` should be at least 0.9.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from lstmprobe.lm import TrainConfig, train
from lstmprobe.text import Vocab


def corpus(chars: int) -> str:
    """Python source from the standard library (or repeated lstmprobe source as a fallback)."""
    import sysconfig

    parts, size = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        size += len(text)
        if size >= chars:
            break
    return "".join(parts)[:chars]


class Plain(nn.Module):
    def __init__(self, vocab: int, embedding: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embedding)
        self.rnn = nn.LSTM(embedding, hidden, layers, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):  # type: ignore[no-untyped-def]
        out, state = self.rnn(self.embedding(x), state)
        return self.decoder(out), state


def plain_loop(text: str, args: argparse.Namespace) -> float:
    """chars/s of the minimal loop: the obvious code, nothing else."""
    torch.manual_seed(0)
    vocab = Vocab.from_text(text)
    ids = torch.from_numpy(vocab.encode(text))
    rows = args.batch_size
    track = len(ids) // rows
    tracks = ids[: rows * track].view(rows, track)
    model = Plain(len(vocab), args.embedding, args.hidden, args.layers)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    windows = math.ceil((track - 1) / args.seq_len)
    state = None
    chars = 0
    start = time.perf_counter()
    for step in range(args.steps):
        w = step % windows
        a = w * args.seq_len
        b = min(a + args.seq_len, track - 1)
        x, y = tracks[:, a:b], tracks[:, a + 1 : b + 1]
        state = None if w == 0 or state is None else tuple(s.detach() for s in state)
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        chars += y.numel()
    return chars / (time.perf_counter() - start)


def lstmprobe_loop(text: str, args: argparse.Namespace, out: Path) -> float:
    config = TrainConfig(
        layers=args.layers,
        hidden=args.hidden,
        embedding=args.embedding,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        steps=args.steps,
        checkpoint_every=0,
        val_fraction=0.0,
    )
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        result = train(text, out, config, progress=True)
    return result.chars_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small model, few steps")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=160)
    parser.add_argument("--embedding", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.hidden, args.steps, args.repeats = 64, 60, 3
    torch.set_num_threads(args.threads)
    text = corpus(args.batch_size * (args.seq_len + 1) * 50)
    plain, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.pt"
        for _ in range(args.repeats):
            plain.append(plain_loop(text, args))
            ours.append(lstmprobe_loop(text, args, out))
    p, o = statistics.median(plain), statistics.median(ours)
    print(
        f"{args.layers}x{args.hidden} LSTM, embedding {args.embedding}, batch {args.batch_size} "
        f"x seq {args.seq_len}, {args.steps} steps x {args.repeats} repeats, "
        f"{args.threads} thread(s), torch {torch.__version__}"
    )
    print(
        f"plain loop : median {p:10,.0f} chars/s  (runs: {', '.join(f'{v:,.0f}' for v in plain)})"
    )
    print(f"lstmprobe  : median {o:10,.0f} chars/s  (runs: {', '.join(f'{v:,.0f}' for v in ours)})")
    print(f"ratio lstmprobe/plain: {o / p:.3f}  (target >= 0.9)")
    sys.exit(0)


if __name__ == "__main__":
    main()
