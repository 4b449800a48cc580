"""Benchmark: per-unit scoring throughput, memory, and sparse probes vs a NeuroX-style probe.

    python benchmarks/bench_probes.py --quick      # about a minute
    python benchmarks/bench_probes.py              # the full sizes (200k positions x 768 units)

Measures, in one run on this machine:
1. ranking every unit for 5 features in one pass (``unit_scores``) vs raw h5py reads of the
   same datasets, the fastest of three window sizes, the two alternating round by round (ratio
   of throughputs; target >= 0.5);
2. peak RSS of that pass in a fresh process at two corpus sizes (flat = memory bounded by the
   window), and on a narrow store at 1M and 4M positions with the labels in memory (O(N)) or
   streamed from the text (flat); the time of labels + scores both ways;
3. ``LinearProbeCV`` on an (N x 768) matrix with one planted unit vs a NeuroX-style probe written
   here (torch Linear + elastic-net penalty, Adam, batch 32, all units): same top unit? speed-up?
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = ["quote", "comment", "char:e", "indent", "bracket-depth"]
SNIPPET = (
    'def f(x):\n    return "a(b)" + x  # note\n'
    "class A:\n    def g(self):\n        return [1, 2, {3: 'q'}]\n"
    "    s = 'it' if (x and [y]) else \"z\"  /* c */\n"
)


def make_store(path: Path, n: int, units_per_key: int = 128, seed: int = 0) -> Path:
    """A float16 store of 6 LSTM quantities x ``units_per_key`` units, written in windows."""
    from lstmprobe.features import get_feature
    from lstmprobe.store import RecordingSpec, StoreWriter
    from lstmprobe.text import Vocab, sequences

    text = (SNIPPET * (n // len(SNIPPET) + 1))[:n]
    vocab = Vocab.from_text(text)
    quote = get_feature("quote").labels(text)
    keys = ["input_gate", "forget_gate", "candidate", "output_gate", "cell", "hidden"]
    layout = {f"layer0/{k}": units_per_key for k in keys}
    writer = StoreWriter(
        path,
        RecordingSpec(
            tokens=vocab.encode(text).astype(np.int32),
            sequences=sequences(text),
            vocab=vocab,
            layout=layout,
            dtype="float16",
            model_summary={},
            model_sha256="0" * 64,
            corpus_sha256="0" * 64,
            has_next_logprob=False,
            run_config={},
        ),
        force=True,
    )
    rng = np.random.default_rng(seed)
    step = 16384
    for a in range(0, n, step):
        b = min(n, a + step)
        arrays = {k: rng.normal(size=(b - a, units_per_key)).astype(np.float16) for k in layout}
        arrays["layer0/cell"][:, min(17, units_per_key - 1)] = (
            2 * quote[a:b] - 1 + 0.5 * rng.normal(size=b - a)
        )
        writer.write(a, arrays)
    return writer.finish()


def raw_read_seconds(path: Path, chunk: int) -> float:
    import h5py

    t = time.perf_counter()
    with h5py.File(path, "r") as f:
        keys = [f"layer0/{k}" for k in f["layer0"]]
        n = f["tokens"].shape[0]
        for a in range(0, n, chunk):
            for k in keys:
                f[k][a : a + chunk]
    return time.perf_counter() - t


def store_read_seconds(path: Path, chunk: int) -> float:
    """The same datasets through ActivationStore.iter_chunks (float32 windows)."""
    from lstmprobe.store import ActivationStore

    t = time.perf_counter()
    with ActivationStore(path) as s:
        for _ in s.iter_chunks(chunk_size=chunk):
            pass
    return time.perf_counter() - t


def score_seconds(path: Path, chunk: int | None) -> float:
    """unit_scores for FEATURES with labels made beforehand (``chunk``: None = its default)."""
    from lstmprobe.probes import store_labels, unit_scores
    from lstmprobe.store import ActivationStore

    with ActivationStore(path) as s:
        labels = store_labels(s, FEATURES)
        t = time.perf_counter()
        unit_scores(s, [], labels=labels, chunk_size=chunk)
        return time.perf_counter() - t


def labelled_score_seconds(path: Path, streamed: bool) -> float:
    """Labels and scores together, the labels in memory or streamed from the text."""
    from lstmprobe.probes import labels, unit_scores
    from lstmprobe.store import ActivationStore

    memory = labels.LABEL_MEMORY
    labels.LABEL_MEMORY = 0 if streamed else memory
    try:
        with ActivationStore(path) as s:
            t = time.perf_counter()
            unit_scores(s, FEATURES)
            return time.perf_counter() - t
    finally:
        labels.LABEL_MEMORY = memory


def peak_rss_mb(path: Path, streamed: bool = False) -> float:
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report the
    # parent's peak
    code = (
        "from lstmprobe.record.bench import peak_rss_kb; from lstmprobe.store import ActivationStore;"
        "from lstmprobe.probes import labels, unit_scores;"
        + ("labels.LABEL_MEMORY = 0;" if streamed else "")
        + f"s = ActivationStore({str(path)!r}); unit_scores(s, {FEATURES!r});"
        "print(peak_rss_kb() / 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def neurox_probe(X: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> tuple[int, float]:
    """A NeuroX-style probe: Linear(units, 1), elastic-net penalty, Adam, batch 32."""
    import torch

    torch.manual_seed(seed)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.float32))
    lin = torch.nn.Linear(X.shape[1], 1)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3)
    t = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(yt))
        for i in range(0, len(yt), 32):
            idx = perm[i : i + 32]
            opt.zero_grad()
            out = lin(Xt[idx]).squeeze(1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(out, yt[idx])
            loss = loss + 1e-5 * lin.weight.abs().sum() + 1e-5 * (lin.weight**2).sum()
            loss.backward()
            opt.step()
    return int(lin.weight.detach().abs().argmax()), time.perf_counter() - t


def probe_data(n: int, units: int = 768, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """float32 noise units with unit 17 planted, made in chunks (no float64 copy of X)."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, units), dtype=np.float32)
    for a in range(0, n, 16384):
        X[a : a + 16384] = rng.standard_normal(
            size=(min(n, a + 16384) - a, units), dtype=np.float32
        )
    y = ((X[:, 17] + 0.7 * rng.normal(size=n)) > 1.0).astype(np.float64)
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--epochs", type=int, default=10, help="baseline epochs run at full size (scaled to 10)"
    )
    args = parser.parse_args()
    n_store = 50_000 if args.quick else 200_000
    n_probe = 20_000 if args.quick else 200_000
    epochs = 2 if args.quick else args.epochs
    results: dict[str, object] = {"quick": args.quick, "load_average_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        path = make_store(Path(tmp) / "acts.h5", n_store)
        chunk = 8192
        # the raw reference is the fastest of several window sizes (the stricter comparison);
        # raw reads and scoring passes alternate, round by round, so that both see the same
        # conditions on a shared machine
        windows = (8192, 20480, 65536)
        by_window: dict[int, list[float]] = {w: [] for w in windows}
        raw, scored = [], []
        score_seconds(path, None)  # untimed: the first call loads (or compiles) the loops
        for _ in range(args.repeats):
            for w in windows:
                by_window[w].append(raw_read_seconds(path, w))
            raw.append(min(by_window[w][-1] for w in windows))
            scored.append(score_seconds(path, None))
        read = [store_read_seconds(path, chunk) for _ in range(args.repeats)]
        results["positions"] = n_store
        results["units"] = 768
        results["raw_read_s_by_window"] = {w: statistics.median(t) for w, t in by_window.items()}
        results["raw_read_s"] = statistics.median(raw)
        results["store_read_s"] = statistics.median(read)
        results["store_read_ratio"] = statistics.median(raw) / statistics.median(read)
        results["score_5_features_s"] = statistics.median(scored)
        results["throughput_ratio"] = statistics.median(raw) / statistics.median(scored)
        results["throughput_ratio_by_round"] = [r / s for r, s in zip(raw, scored)]
        in_memory = [labelled_score_seconds(path, False) for _ in range(args.repeats)]
        streamed = [labelled_score_seconds(path, True) for _ in range(args.repeats)]
        results["labels_and_scores_s"] = {
            "labels_in_memory": statistics.median(in_memory),
            "labels_streamed": statistics.median(streamed),
        }
        small = make_store(Path(tmp) / "small.h5", n_store // 4)
        results["peak_rss_mb"] = {n_store // 4: peak_rss_mb(small), n_store: peak_rss_mb(path)}
        # label memory: a narrow store (12 units) where the labels, not the window, dominate
        n_long = 1_000_000 if args.quick else 4_000_000
        rss: dict[str, dict[int, float]] = {"labels_in_memory": {}, "labels_streamed": {}}
        for n in (n_long // 4, n_long):
            narrow = make_store(Path(tmp) / f"narrow{n}.h5", n, units_per_key=2)
            rss["labels_in_memory"][n] = peak_rss_mb(narrow)
            rss["labels_streamed"][n] = peak_rss_mb(narrow, streamed=True)
            narrow.unlink()
        results["peak_rss_mb_narrow_store"] = rss

    from lstmprobe.probes import BlockSplit, LinearProbeCV

    X, y = probe_data(n_probe)
    fixed, grid = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        probe = LinearProbeCV(l1_grid=(0.01,), cv=BlockSplit(20)).fit(X, y)
        fixed.append(time.perf_counter() - t)
        t = time.perf_counter()
        probe_grid = LinearProbeCV(cv=BlockSplit(20)).fit(X, y)
        grid.append(time.perf_counter() - t)
    top_baseline, base_s = neurox_probe(X, y, epochs)
    base_10 = base_s / epochs * 10
    fixed_s, grid_s = statistics.median(fixed), statistics.median(grid)
    results["probe"] = {
        "positions": n_probe,
        "units": 768,
        "linear_probe_fixed_l1_s": fixed_s,
        "linear_probe_l1_grid_s": grid_s,
        "top_unit": int(np.argmax(np.abs(probe.coef_))),
        "top_unit_grid": int(np.argmax(np.abs(probe_grid.coef_))),
        "l1_chosen": probe_grid.l1_,
        "test_auc": probe_grid.test_metrics_["auc"],
        "neurox_epochs_run": epochs,
        "neurox_10_epochs_s": base_10,
        "neurox_top_unit": top_baseline,
        "speedup_fixed_l1": base_10 / fixed_s,
        "speedup_l1_grid": base_10 / grid_s,
    }
    results["max_rss_mb_this_process"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["load_average_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
