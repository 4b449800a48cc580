"""Reproduce the synthetic experiments of "Exploring LSTMs" with lstmprobe's trainer.

For each task a model is trained on 2000 lines with N (x's for ab-memory) in 1..10 and scored on
fresh lines by exact greedy completion of the part after the separator (``lstmprobe evaluate``):
on N = 1..10 (in distribution) and N = 11..20 (extrapolation), per N, for several seeds.

    python benchmarks/reproduce_tasks.py            # 5 seeds per task, ~2-4 minutes on 1 core
    python benchmarks/reproduce_tasks.py --quick    # 2 seeds, counter and copy only

The same runs from the command line, for one seed:

    lstmprobe tasks counter -n 2000 -o counter.txt
    lstmprobe train counter.txt -o counter.pt --reset line --hidden 10 --steps 1500 --lr 0.01
    lstmprobe tasks counter -n 1000 --min-n 11 --max-n 20 --seed 2 -o far.txt
    lstmprobe evaluate counter.pt far.txt
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lstmprobe.lm import TrainConfig, evaluate, tasks, train
from lstmprobe.models import load_model

#: task -> the settings the blog describes (or the smallest that learn it reliably)
SETTINGS: dict[str, dict[str, float]] = {
    "counter": dict(layers=1, hidden=10, steps=1500, lr=0.01),
    "selective-counter": dict(layers=1, hidden=16, steps=1500, lr=0.01),
    "ab-memory": dict(layers=1, hidden=16, steps=800, lr=0.02),
    "copy": dict(layers=2, hidden=32, steps=600, lr=0.01),
}


def text(name: str, count: int, seed: int, lo: int = 1, hi: int = 10) -> str:
    return "".join(line + "\n" for line in tasks.generate(name, count, seed, lo, hi))


def run(name: str, seed: int, tmp: Path) -> dict[str, object]:
    config = TrainConfig(reset="line", checkpoint_every=0, seed=seed, **SETTINGS[name])  # type: ignore[arg-type]
    path = tmp / f"{name}-{seed}.pt"
    start = time.perf_counter()
    result = train(text(name, 2000, seed=100 + seed), path, config, progress=False)
    seconds = time.perf_counter() - start
    loaded = load_model(path)
    near = evaluate(loaded.model, loaded.vocab, text(name, 1000, seed=200 + seed)).completion
    out: dict[str, object] = {
        "seed": seed,
        "seconds": seconds,
        "val_bpc": result.val_bpc,
        "accuracy": near.accuracy if near else None,
        "by_key": dict(near.by_key) if near else {},
    }
    if name != "copy":
        far = evaluate(
            loaded.model, loaded.vocab, text(name, 1000, seed=300 + seed, lo=11, hi=20)
        ).completion
        out["far_by_key"] = dict(far.by_key) if far else {}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, counter and copy only")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = ["counter", "copy"] if args.quick else list(SETTINGS)
    seeds = range(2 if args.quick else args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(f"\n## {name}  {SETTINGS[name]}")
            runs = [run(name, seed, Path(tmp)) for seed in seeds]
            for r in runs:
                print(
                    f"seed {r['seed']}: {r['seconds']:.1f} s, val {r['val_bpc']:.3f} bits/char, "
                    f"exact{' on N<=10' if name != 'copy' else ''}: {r['accuracy']:.1%}"
                )
            if name == "copy":
                continue
            print("N  " + "  ".join(f"s{r['seed']:<4}" for r in runs))
            for n in range(1, 21):
                cells = []
                for r in runs:
                    table = r["by_key"] if n <= 10 else r["far_by_key"]
                    total, good = table.get(n, (0, 0))  # type: ignore[union-attr]
                    cells.append(f"{good / total:5.2f}" if total else "   - ")
                print(f"{n:<3}" + "  ".join(cells))


if __name__ == "__main__":
    main()
