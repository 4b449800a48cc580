"""The cost of one ablation condition against a plain forward of the same model, in one run.

One condition is one intervention over the corpus with the per-char loss it produces
(``lstmprobe.causal.next_char_bits``: the model's own forward in chunks of 4096 chars with the
state carried, under a ``Recorder`` applying the intervention, then log-softmax and the pick
of each next char). The plain forward is the same model over the same chunks with the state
carried and nothing else (no loss, no hooks). Conditions and plain forwards alternate, so that
load from other processes hits both alike; medians are compared. Then 21 conditions (a target
unit and 20 random units of its layer and quantity, what ``ablate --n-random 20`` runs) are timed
end to end through ``run_ablation``.

Then causal depth, each against a plain forward measured beside it in the same run:

* a patch at one position, and at every position, of the whole text read in one forward call
  (``Intervention(..., "patch", source=...)``; the plain forward is the same single call);
* attribution of one prediction (``lstmprobe.causal.attribution.attribute``, a window of 60
  chars: gradient x input, and integrated gradients with 64 steps) against a plain forward
  over the whole text;
* a fixed-point search (16 recorded-like starting states, 500 Adam steps and 5 Newton steps, in
  float64) against the same.

    python benchmarks/bench_ablate.py            # 1x128 LSTM, 53,248 chars (13 x 4096), 5 repeats
    python benchmarks/bench_ablate.py --quick    # 20,480 chars, 3 repeats

Goal: one condition at most 1.5x the plain forward, masked or not; 21 conditions in seconds; a
patch at one position about one forward.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lstmprobe import Intervention, Recorder
from lstmprobe.causal import next_char_bits, run_ablation
from lstmprobe.models import CharLSTM, ModelConfig
from lstmprobe.text import Vocab, sequences

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import corpus


@torch.inference_mode()
def load() -> str:
    """The 1-minute load average now (a ratio measured on a busy machine says little)."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


@torch.inference_mode()
def plain_forward(model: CharLSTM, tokens: np.ndarray, chunk: int = 4096) -> None:
    ids = torch.from_numpy(tokens.astype(np.int64))
    state = None
    for a in range(0, len(ids), chunk):
        _, state = model(ids[a : a + chunk].unsqueeze(0), state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chars", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    # whole chunks of 4096 chars, so that one (4096,) mask fits every forward call
    chars = -(-(args.chars or (20_000 if args.quick else 50_000)) // 4096) * 4096
    repeat = args.repeat or (3 if args.quick else 5)
    torch.set_num_threads(args.threads)
    text = corpus(chars)
    vocab = Vocab.from_text(text)
    torch.manual_seed(0)
    model = CharLSTM(
        ModelConfig(vocab_size=len(vocab), hidden_size=args.hidden, embedding_dim=32)
    ).eval()
    tokens = vocab.encode(text)
    seqs = sequences(text)
    print(
        f"1x{args.hidden} LSTM, {len(text):,} chars, {repeat} repeats, "
        f"{torch.get_num_threads()} thread(s)"
    )
    cases = {
        "no intervention (the loss alone)": [],
        "zero layer0/cell/17": [Intervention("layer0/cell/17", "zero")],
        "zero layer0/hidden/17": [Intervention("layer0/hidden/17", "zero")],
        "mean layer0/hidden/17 (0.1)": [Intervention("layer0/hidden/17", "mean", value=0.1)],
        "clamp layer0/forget_gate/17=1": [
            Intervention("layer0/forget_gate/17", "clamp", value=1.0)
        ],
        "zero layer0/cell/17, masked": [
            Intervention("layer0/cell/17", "zero", mask=np.arange(4096) % 64 < 32)
        ],
        "mean layer0/hidden/17, masked": [
            Intervention("layer0/hidden/17", "mean", value=0.1, mask=np.arange(4096) % 64 < 32)
        ],
        "clamp layer0/forget_gate/17=0.5, masked (runs)": [
            Intervention(
                "layer0/forget_gate/17", "clamp", value=0.5, mask=np.arange(4096) % 64 < 32
            )
        ],
        "per-step loop, zero layer0/cell/17": None,
    }
    plain_forward(model, tokens)  # warm-up
    next_char_bits(model, tokens, seqs, cases["zero layer0/cell/17"])
    rows = []
    for name, ivs in cases.items():
        plain, cond = [], []
        steps = ivs is None
        if steps:
            ivs = cases["zero layer0/cell/17"]
        reps = 1 if steps else repeat
        before = load()
        for _ in range(reps):
            t = time.perf_counter()
            plain_forward(model, tokens)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            next_char_bits(model, tokens, seqs, ivs, method="steps" if steps else "auto")
            cond.append(time.perf_counter() - t)
        p, c = statistics.median(plain), statistics.median(cond)
        rows.append((name, p, c))
        print(
            f"  {name:<36} plain {p:6.3f} s  condition {c:6.3f} s  ratio {c / p:5.2f}x  "
            f"(load {before} -> {load()})"
        )
        sys.stdout.flush()
    before = load()
    t = time.perf_counter()
    result = run_ablation(
        model, vocab, text, [["layer0/cell/17"]], n_random=20, seed=0, threads=args.threads
    )
    total = time.perf_counter() - t
    plains = []
    for _ in range(repeat):
        t = time.perf_counter()
        plain_forward(model, tokens)
        plains.append(time.perf_counter() - t)
    one = statistics.median(plains)
    runs = 1 + 1 + len(result.conditions[0].random.draws)
    print(
        f"  21 conditions (target + 20 random) via run_ablation: {total:.2f} s for {runs} runs "
        f"(incl. the unablated baseline) = {total / runs:.3f} s/run, {total / runs / one:.2f}x "
        f"a plain forward ({one:.3f} s, median of {repeat} right after)  (load {before} -> "
        f"{load()})"
    )
    depth(model, vocab, text, tokens, repeat)


@torch.inference_mode()
def one_call(model: CharLSTM, ids: torch.Tensor, ivs: list[Intervention]) -> None:
    with Recorder(model, interventions=ivs, keep=False):
        model(ids)


def depth(model: CharLSTM, vocab: Vocab, text: str, tokens: np.ndarray, repeat: int) -> None:
    """Patches, attribution and fixed points against a plain forward measured beside them."""
    from lstmprobe.causal.attribution import attribute
    from lstmprobe.causal.state_space import _state_keys, fixed_points

    ids = torch.from_numpy(tokens.astype(np.int64))[None]
    n = ids.shape[1]
    with torch.inference_mode(), Recorder(model, ["cell", "hidden"]) as rec:
        model(ids.flip(1))  # another text of the same length: the source
    src = {q: rec.activations[f"layer0/{q}"][0, :, [17]].numpy() for q in ("cell", "hidden")}
    one = np.zeros(n, bool)
    one[n // 2] = True
    pos = len(text) // 2
    dim = sum(k for _, k in _state_keys(model))
    starts = np.random.default_rng(0).normal(scale=0.3, size=(16, dim))
    cases = {
        "patch layer0/cell/17 at one position": lambda: one_call(
            model, ids, [Intervention("layer0/cell/17", "patch", source=src["cell"], mask=one)]
        ),
        "patch layer0/hidden/17 at one position": lambda: one_call(
            model, ids, [Intervention("layer0/hidden/17", "patch", source=src["hidden"], mask=one)]
        ),
        "patch layer0/hidden/17 at every position": lambda: one_call(
            model, ids, [Intervention("layer0/hidden/17", "patch", source=src["hidden"])]
        ),
        "patch layer0/cell/17 at every position (steps)": lambda: one_call(
            model, ids, [Intervention("layer0/cell/17", "patch", source=src["cell"])]
        ),
        "attribute, grad-input, window 60": lambda: attribute(
            model, vocab, text, pos, method="grad-input", window=60, threads=1
        ),
        "attribute, ig 64 steps, window 60": lambda: attribute(
            model, vocab, text, pos, method="ig", steps=64, window=60, threads=1
        ),
        "fixed points, 16 starts, 500+5 steps": lambda: fixed_points(
            model, vocab, "e", starts, iterations=500, newton=5, require=False, threads=1
        ),
    }
    print(f"  causal depth, against one plain forward call over the {n:,} chars:")
    for name, fn in cases.items():
        reps = 1 if "every position (steps)" in name or "fixed" in name or "ig" in name else repeat
        plain, cond = [], []
        before = load()
        for _ in range(reps):
            t = time.perf_counter()
            one_call(model, ids, [])
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            fn()
            cond.append(time.perf_counter() - t)
        p, c = statistics.median(plain), statistics.median(cond)
        print(
            f"  {name:<46} plain {p:6.3f} s  this {c:7.3f} s  ratio {c / p:6.2f}x  ({reps} run(s), "
            f"load {before} -> {load()})"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
