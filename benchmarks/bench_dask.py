"""Benchmark: recording and scoring in one process vs on a Dask LocalCluster of 1 and 2 workers,
and the figures the projection to a large cluster is built from (docs/scale-out.md).

    python benchmarks/bench_dask.py            # the full run: about 10 minutes on 2 cores
    python benchmarks/bench_dask.py --quick    # a smaller corpus, one repeat: about 2 minutes

Measures, in one run on this machine (needs ``pip install "lstmprobe[dask]"``):

1. ``record``: the bundled ``code-lstm`` (2x160) over the bundled Python sample repeated into
   ``--files`` files, in one process (``lstmprobe.record.record_corpus``) and on a LocalCluster
   of 1 and of 2 worker processes of one thread each (``lstmprobe.distributed.record_corpus``,
   8 shards), the configurations alternating round by round; medians of ``--repeat`` rounds and
   the ratios (one process / cluster: above 1 is faster). The cluster's start is timed apart.
   Every sharded store is checked equal to the one-process recording, bit for bit.
2. ``find-neurons``' scoring pass (``unit_scores``, 5 features) on the one-process store in one
   process vs on the sharded store on the clusters.
3. For the projection: a 3x1024 LSTM's recording speed on one thread (chars/s) and bytes per
   char; its checkpoint's size and the time to send it to every worker; the time to open a
   sharded store of 16, 128 and 512 shards in a fresh process; the size of one span's sums
   for a 3x1024 recording and the time to merge two.

The machine's load average is printed beside the timings: on a shared machine compare the
ratios of one run, not times across runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = ["quote", "comment", "char:e", "indent", "bracket-depth"]


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def files_corpus(copies: int, files: int) -> Any:
    """The bundled sample repeated ``copies`` times, cut at line ends into ``files`` files."""
    from lstmprobe.models.bundled import sample_path
    from lstmprobe.text import Corpus, read_corpus

    text = read_corpus(sample_path("sample:code")) * copies  # type: ignore[arg-type]
    cuts = [0]
    for i in range(1, files):
        at = text.find("\n", len(text) * i // files)
        cuts.append(at + 1 if at >= 0 else len(text))
    cuts.append(len(text))
    return Corpus.of_files(
        [(f"file{i:03d}.py", text[a:b]) for i, (a, b) in enumerate(itertools.pairwise(cuts))]
    )


def same_values(a: Path, b: Path) -> bool:
    import h5py

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        keys = json.loads(fa.attrs["layout"])
        names = [k for k, _ in keys] + ["next_logprob", "tokens", "sequences"]
        return all(
            np.array_equal(fa[n][()].view(np.uint8), fb[n][()].view(np.uint8)) for n in names
        )


def timed(fn: Any) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def cpu_seconds(client: Any = None) -> float:
    """CPU seconds used so far by this process (the client, and a LocalCluster's scheduler) and
    the workers of ``client``'s cluster: on a busy machine the work done, whatever the wait."""
    return _cpu() + (sum(client.run(_cpu).values()) if client is not None else 0.0)


def measured(fn: Any, client: Any = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``fn()``."""
    cpu = cpu_seconds(client)
    wall = timed(fn)
    return wall, cpu_seconds(client) - cpu


def cluster_rounds(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    from lstmprobe.distributed import record_corpus as record_sharded
    from lstmprobe.distributed import unit_scores as score_sharded
    from lstmprobe.models import load_model
    from lstmprobe.probes import unit_scores
    from lstmprobe.record import RecordOptions, record_corpus
    from lstmprobe.store import ActivationStore

    loaded = load_model("code-lstm")
    corpus = files_corpus(args.copies, args.files)
    n = len(corpus.text)
    options = RecordOptions(batch_chars=16384)
    shard_chars = n // args.shards
    labels = ("one", "1 worker", "2 workers", "1 worker, malloc as Dask sets it")
    times: dict[str, list[float]] = {k: [] for k in labels}
    cpu: dict[str, list[float]] = {k: [] for k in labels}
    scores: dict[str, list[float]] = {k: [] for k in labels}
    started: dict[str, list[float]] = {k: [] for k in labels[1:]}
    one = tmp / "one.h5"
    for r in range(args.repeat):
        print(f"round {r + 1}/{args.repeat} ({load()})", file=sys.stderr)
        # one process, with no cluster alive (idle workers would take CPU from it)
        wall, used = measured(lambda: record_corpus(loaded, corpus, one, options, force=True))
        times["one"].append(wall)
        cpu["one"].append(used)
        with ActivationStore(one) as s:
            unit_scores(s, FEATURES[:1])  # numba's compiled loops loaded, not timed
            scores["one"].append(timed(lambda s=s: unit_scores(s, FEATURES)))
        for workers, label in zip((1, 2, 1), labels[1:]):
            # the last: one worker with glibc's malloc as Dask's nanny sets it (lstmprobe's
            # workers set it back: lstmprobe.distributed.models.tune_malloc)
            env = {"LSTMPROBE_MALLOC": "dask"} if "malloc" in label else {}
            began = time.perf_counter()
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", silence_logs=logging.ERROR, env=env)  # fmt: skip
            client = Client(cluster)
            client.run(lambda: __import__("lstmprobe.distributed.record"))  # imports, not timed
            started[label].append(time.perf_counter() - began)
            try:
                out = tmp / label.replace(" ", "-").replace(",", "") / "acts.h5"
                out.parent.mkdir(exist_ok=True)
                wall, used = measured(lambda out=out, client=client: record_sharded(
                    loaded, corpus, out, options, client=client, shard_chars=shard_chars,
                    force=True), client)  # fmt: skip
                times[label].append(wall)
                cpu[label].append(used)
                if r == 0:
                    assert same_values(one, out), f"{label}: not the one-process values"
                with ActivationStore(out) as s:
                    score_sharded(s, FEATURES[:1], client=client)  # workers' numba loaded
                    scores[label].append(
                        timed(lambda s=s, c=client: score_sharded(s, FEATURES, client=c))
                    )
            finally:
                client.close()
                cluster.close()
    with ActivationStore(tmp / "2-workers" / "acts.h5") as s:
        shards = len(s.shards)
    return {"chars": n, "files": args.files, "shards": shards, "times": times, "cpu": cpu,
            "scores": scores, "cluster_start": started, "load": load()}  # fmt: skip


def table(result: dict[str, Any]) -> str:
    lines = [
        f"record: {result['chars']:,} chars in {result['files']} files, code-lstm (2x160), "
        f"{result['shards']} shards; scoring: {len(FEATURES)} features; medians of "
        f"{len(result['times']['one'])}; {result['load']}",
        "",
        "| run | record wall s | chars/s | wall ratio (1 process / this) | record CPU s "
        "| CPU ratio (this / 1 process) | scoring wall s | wall ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = statistics.median(result["times"]["one"])
    base_cpu = statistics.median(result["cpu"]["one"])
    base_score = statistics.median(result["scores"]["one"])
    for label in result["times"]:
        t = statistics.median(result["times"][label])
        c = statistics.median(result["cpu"][label])
        s = statistics.median(result["scores"][label])
        name = "1 process" if label == "one" else f"LocalCluster, {label}"
        lines.append(f"| {name} | {t:.2f} | {result['chars'] / t:,.0f} | {base / t:.2f} | "
                     f"{c:.1f} | {c / base_cpu:.2f} | {s:.2f} | {base_score / s:.2f} |")  # fmt: skip
    starts = ", ".join(
        f"{k}: {statistics.median(v):.1f} s" for k, v in result["cluster_start"].items()
    )
    lines.append(f"\ncluster start (not in the times above): {starts}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the projection's figures


def big_model_figures(tmp: Path) -> dict[str, Any]:
    """A 3x1024 LSTM: chars/s on one thread, bytes per char recorded, checkpoint size."""
    import torch

    from lstmprobe.models import CharLSTM, LoadedModel, ModelConfig, save_checkpoint
    from lstmprobe.record import RecordOptions, record_corpus
    from lstmprobe.text import Vocab

    text = files_corpus(1, 1).text[:3000]
    vocab = Vocab.from_text(text)
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=len(vocab), hidden_size=1024, num_layers=3,
                                 embedding_dim=64)).eval()  # fmt: skip
    loaded = LoadedModel(model, vocab, "checkpoint", sha256="0" * 64)
    out = tmp / "big.h5"
    record_corpus(loaded, text[:200], out, RecordOptions(), threads=1)  # warm
    t = timed(lambda: record_corpus(loaded, text, out, RecordOptions(), force=True, threads=1))
    size = save_checkpoint(tmp / "big.pt", model, vocab).stat().st_size
    per_char = 6 * 3 * 1024 * 2 + 4 + 4  # float16 quantities, next_logprob, token
    return {"chars_per_s_1_thread": len(text) / t, "bytes_per_char": per_char,
            "checkpoint_bytes": size, "chars": len(text), "seconds": t}  # fmt: skip


def broadcast_figure(tmp: Path) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    data = (tmp / "big.pt").read_bytes()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:  # fmt: skip
        runs = []
        for _ in range(3):
            t = timed(lambda: client.scatter(data, broadcast=True, hash=False).result())
            runs.append(t)
    return {"bytes": len(data), "workers": 2, "seconds": statistics.median(runs)}


def open_figures(tmp: Path) -> dict[str, float]:
    """Seconds to open a sharded store of S shards in a fresh process (every shard checked)."""
    from distributed import Client, LocalCluster

    from lstmprobe.distributed import record_corpus as record_sharded
    from lstmprobe.models import CharLSTM, LoadedModel, ModelConfig
    from lstmprobe.record import RecordOptions
    from lstmprobe.text import Corpus, Vocab

    vocab = Vocab.from_text("ab\n")
    model = CharLSTM(ModelConfig(vocab_size=3, hidden_size=8, num_layers=1, embedding_dim=4))
    loaded = LoadedModel(model.eval(), vocab, "checkpoint", sha256="0" * 64)
    out: dict[str, float] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:  # fmt: skip
        for shards in (16, 128, 512):
            corpus = Corpus.of_files([(f"f{i}", "ab\n" * 20) for i in range(shards)])
            path = tmp / f"open{shards}" / "acts.h5"
            path.parent.mkdir()
            record_sharded(loaded, corpus, path, RecordOptions(batch_chars=60), client=client,
                           shard_chars=1)  # fmt: skip
            code = (
                "import time, sys; t = time.perf_counter(); from lstmprobe.store import "
                "ActivationStore; s = ActivationStore(sys.argv[1]); t1 = time.perf_counter(); "
                "s.close(); s = ActivationStore(sys.argv[1]); "
                "print(t1 - t, time.perf_counter() - t1)"
            )
            import_only = subprocess.run(
                [sys.executable, "-c", "import time; t = time.perf_counter(); "
                 "from lstmprobe.store import ActivationStore; print(time.perf_counter() - t)"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                                  text=True, check=True)  # fmt: skip
            first, again = (float(x) for x in done.stdout.split())
            out[f"{shards} shards, first open"] = first - float(import_only.stdout)
            out[f"{shards} shards, open again"] = again
    return out


def merge_figures() -> dict[str, Any]:
    """One span's sums of one dataset of 1024 units (a 3x1024 LSTM records 18 of them) for 1
    feature (2 label patterns) and 5 (32 patterns): pickled size, and the time to merge two."""
    from lstmprobe.probes.sums import Moments, SpanSums, merge

    rng = np.random.default_rng(0)

    def span(patterns: int) -> dict[str, list[SpanSums]]:
        counts = rng.integers(0, 100, (1024, patterns, 256)).astype(np.uint32)
        n = counts[0].sum(axis=1).astype(np.int64)
        m = Moments(n, rng.normal(size=(patterns, 1024)), rng.random((patterns, 1024)))
        return {"layer0/cell": [SpanSums(counts, m, np.zeros((0, 1024)))]}

    out = {}
    for patterns in (2, 32):
        a, b = span(patterns), span(patterns)
        size = len(pickle.dumps(a, protocol=5))
        t = statistics.median(timed(lambda a=a, b=b: merge([a, b])) for _ in range(3))
        out[f"{patterns} patterns, one dataset"] = {"bytes": size, "merge_seconds": t}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 copy of the sample, 1 round")
    parser.add_argument("--copies", type=int, default=4, help="copies of the bundled sample")
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-projection", action="store_true", help="skip part 3")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--table", type=Path, help="print the table of a run's JSON and stop")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())["rounds"]))
        return
    if args.quick:
        args.copies, args.repeat = 1, 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-dask-"))
    try:
        print(load(), file=sys.stderr)
        result: dict[str, Any] = {"rounds": cluster_rounds(args, tmp)}
        print(table(result["rounds"]))
        if not args.no_projection:
            result["big_model"] = big_model_figures(tmp)
            result["broadcast"] = broadcast_figure(tmp)
            result["open"] = open_figures(tmp)
            result["merge"] = merge_figures()
            print("\nprojection figures:")
            print(json.dumps({k: v for k, v in result.items() if k != "rounds"}, indent=2))
        print(load())
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
