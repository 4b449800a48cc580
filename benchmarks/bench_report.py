"""Benchmark: `lstmprobe report` against `lstmprobe record` of the same store, and its memory.

    python benchmarks/bench_report.py --quick      # 100k and 400k chars, well under a minute
    python benchmarks/bench_report.py              # 250k and 1M chars (a few minutes)

On code-like text (the top-level modules of the Python standard library, as in
make_code_corpus.py) and an untrained 1-layer CharLSTM with 128 units, in one run:

1. `lstmprobe record MODEL CORPUS` (default settings: float16, every quantity) and then
   `lstmprobe report` (default settings) of that store, each as a fresh process, timed as whole
   processes (imports included); a ranking of `quote` and `indent` (`find-neurons --no-probe`,
   untimed) sits beside the store so the report holds its ranked sections too. Prints the ratio
   report / record (goal: <= 1).
2. The peak RSS of each report process at the two corpus sizes: the report streams per-unit
   summaries over the store's chunks and embeds a fixed window (--max-chars), so its memory
   should not grow with the corpus.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

RUNNER = (
    "import resource, sys\n"
    "from lstmprobe.cli import main\n"
    "sys.argv = ['lstmprobe'] + sys.argv[1:]\n"
    "try:\n    main()\nexcept SystemExit as e:\n    code = e.code or 0\nelse:\n    code = 0\n"
    "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def code_text(n: int) -> str:
    """``n`` chars of the standard library's top-level modules (repeated if it is shorter)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from make_code_corpus import candidates, concatenate

    text = concatenate(candidates(Path(sysconfig.get_paths()["stdlib"])))
    return (text * (n // len(text) + 1))[:n]


def lstmprobe(*args: str) -> tuple[float, int]:
    """Run one command in a fresh process: (wall seconds, peak RSS in MB)."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"lstmprobe {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB")]
    return seconds, int(peak[-1].split()[1]) // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k and 400k chars")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    sizes = (100_000, 400_000) if args.quick else (250_000, 1_000_000)

    import torch

    from lstmprobe.models import CharLSTM, ModelConfig, save_checkpoint
    from lstmprobe.text import Vocab

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        text = code_text(max(sizes))
        vocab = Vocab.from_text(text)
        torch.manual_seed(0)
        model = CharLSTM(
            ModelConfig(vocab_size=len(vocab), hidden_size=128, num_layers=1, embedding_dim=32)
        ).eval()
        model_path = save_checkpoint(tmp / "model.pt", model, vocab)
        for n in sizes:
            corpus = tmp / f"corpus-{n}.txt"
            corpus.write_text(text[:n], encoding="utf-8")
            store = tmp / f"acts-{n}.h5"
            rec_s, rec_mb = lstmprobe(
                "record", str(model_path), str(corpus), "-o", str(store), "-q"
            )
            lstmprobe(
                "find-neurons", "--store", str(store), "-f", "quote", "-f", "indent", "--no-probe"
            )
            rep_s, rep_mb = lstmprobe("report", "--store", str(store), "-q")
            size = store.with_name(f"acts-{n}.report.html").stat().st_size
            results.append(
                {
                    "chars": n,
                    "record_s": round(rec_s, 2),
                    "report_s": round(rep_s, 2),
                    "ratio": round(rep_s / rec_s, 3),
                    "record_peak_mb": rec_mb,
                    "report_peak_mb": rep_mb,
                    "store_mb": round(store.stat().st_size / 1e6, 1),
                    "report_mb": round(size / 1e6, 2),
                }
            )
    print(
        f"1-layer CharLSTM, 128 units, untrained; code-like text; torch threads {torch.get_num_threads()}"
    )
    print(
        f"{'chars':>9}  {'record s':>8}  {'report s':>8}  {'report/record':>13}  {'report peak MB':>14}  {'store MB':>8}  {'report MB':>9}"
    )
    for r in results:
        print(
            f"{r['chars']:>9,}  {r['record_s']:>8.2f}  {r['report_s']:>8.2f}  {r['ratio']:>13.3f}  "
            f"{r['report_peak_mb']:>14}  {r['store_mb']:>8}  {r['report_mb']:>9}"
        )
    small, big = results
    print(
        f"report memory at {big['chars']:,} vs {small['chars']:,} chars: "
        f"{big['report_peak_mb']} vs {small['report_peak_mb']} MB "
        f"({big['report_peak_mb'] / small['report_peak_mb']:.2f}x for {big['chars'] / small['chars']:.0f}x the corpus)"
    )
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
