"""``lstmprobe bench``: recording throughput against the plain fused forward, in one run.

For each model the same corpus is read in the same chunks by the model alone under
``torch.inference_mode`` (the plain forward) and by :func:`lstmprobe.record.record_corpus` writing
every quantity of every layer to a float16 HDF5 file on local disk. Each is repeated and the
medians are compared. The plain forward is timed at torch's threads and, where ``record`` picks
another number for the model (one, for a small model on the CPU), at that number too; the faster
is the reference, so that neither setting flatters the ratio. Peak memory is measured in child
processes recording two corpus sizes.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lstmprobe.models import CharLSTM, LoadedModel, ModelConfig
from lstmprobe.record.pipeline import RecordOptions, record_corpus
from lstmprobe.record.threads import TorchThreads, default_threads
from lstmprobe.text import Vocab

#: (name, layers, hidden, default corpus size in chars)
BUILTIN = (("lstm-1x128", 1, 128, 200_000), ("lstm-3x512", 3, 512, 30_000))


def _corpus(chars: int) -> str:
    from lstmprobe.models.bundled import SAMPLES

    base = ""
    if "code" in SAMPLES and SAMPLES["code"].path.exists():
        base = SAMPLES["code"].path.read_text(encoding="utf-8")
    if not base:
        g = torch.Generator().manual_seed(0)
        alphabet = "abcdefghijklmnopqrstuvwxyz (){}[]=+-*/\"'#:\n    "
        ids = torch.randint(len(alphabet), (50_000,), generator=g).tolist()
        base = "".join(alphabet[i] for i in ids)
    return (base * (chars // len(base) + 1))[:chars]


def _builtin(layers: int, hidden: int, vocab: Vocab) -> LoadedModel:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_layers=layers, embedding_dim=64
    )
    return LoadedModel(CharLSTM(config).eval(), vocab, "builtin", sha256="bench")


def plain_forward(loaded: LoadedModel, text: str, chunk_size: int, device: str) -> float:
    """Seconds for the model alone to read ``text`` in chunks, state carried."""
    model = loaded.model.to(device)
    tokens = torch.from_numpy(loaded.vocab.encode(text)).to(device)
    state = None
    _sync(device)
    began = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(tokens), chunk_size):
            logits, state = model(tokens[start : start + chunk_size].unsqueeze(0), state)
            logits.cpu()
    _sync(device)
    return time.perf_counter() - began


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def recording(
    loaded: LoadedModel, text: str, options: RecordOptions, device: str, threads: int | None = None
) -> float:
    """Seconds to record ``text`` into a fresh file on local disk (deleting it is not timed)."""
    with tempfile.TemporaryDirectory() as tmp:
        _sync(device)
        began = time.perf_counter()
        record_corpus(loaded, text, Path(tmp) / "acts.h5", options, device=device, threads=threads)
        _sync(device)
        seconds = time.perf_counter() - began
    return seconds


def run_bench(
    model_path: str | LoadedModel | None = None,
    chars: int | None = None,
    repeat: int = 3,
    device: str = "cpu",
    memory: bool = True,
    progress: bool = False,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Measure and return one row per model (see :func:`format_table`).

    ``model_path``: a model file, or a model loaded from one (default: the built-in 1x128 and
    3x512 LSTMs). ``threads`` sets torch's intra-op threads for both the plain forward and the
    recording, and restores them afterwards (default: torch's own for the plain forward, and the
    choice ``record`` makes for the model; the faster plain forward is the reference).
    """
    with TorchThreads(threads):
        return _bench(model_path, chars, repeat, device, memory, progress, threads)


def _bench(
    model_path: str | LoadedModel | None,
    chars: int | None,
    repeat: int,
    device: str,
    memory: bool,
    progress: bool,
    threads: int | None,
) -> list[dict[str, Any]]:
    from lstmprobe.models import load_model

    options = RecordOptions()
    if model_path:
        loaded = load_model(model_path) if isinstance(model_path, str) else model_path
        name = Path(loaded.path).name if loaded.path else str(model_path)
        models = [(name, loaded, chars or 50_000)]
    else:
        text = _corpus(max(size for *_, size in BUILTIN))
        vocab = Vocab.from_text(text)
        models = [
            (name, _builtin(layers, hidden, vocab), chars or size)
            for name, layers, hidden, size in BUILTIN
        ]
    rows = []
    for name, loaded, n in models:
        load_before = _load_average()
        text = _corpus(n)
        if model_path:
            text = "".join(c for c in text if c in loaded.vocab) or text
        plain_forward(loaded, text[: options.chunk_size], options.chunk_size, device)  # warm up
        # The reference is the plain forward at its faster setting: torch's threads, or the
        # threads ``record`` picks for this model when they differ (one for a small model).
        own = torch.get_num_threads()
        chosen = default_threads(loaded.model, threads, torch.device(device)) or own
        plain: dict[int, list[float]] = {t: [] for t in dict.fromkeys((own, chosen))}
        rec = []
        for i in range(repeat):
            if progress:
                print(f"bench {name}: run {i + 1}/{repeat}", file=sys.stderr)
            for t, times in plain.items():
                with TorchThreads(t):
                    times.append(plain_forward(loaded, text, options.chunk_size, device))
            rec.append(recording(loaded, text, options, device, threads))
        medians = {t: statistics.median(times) for t, times in plain.items()}
        best = min(medians, key=medians.__getitem__)
        p, r = medians[best], statistics.median(rec)
        row: dict[str, Any] = {
            "model": name,
            "device": device,
            "chars": len(text),
            "plain_chars_per_s": round(len(text) / p),
            "record_chars_per_s": round(len(text) / r),
            "ratio": round(p / r, 3),
            "dtype": options.dtype,
            "threads": best,
            "record_threads": chosen,
            "plain_chars_per_s_by_threads": {
                str(t): round(len(text) / m) for t, m in medians.items()
            },
            # the 1-minute load average before and after: on a busy machine (above one per
            # core) torch's multi-threaded forward slows down by far more than its share
            "load_average": [load_before, _load_average()],
        }
        rows.append(row)
    if memory:
        small = 50_000
        peaks = [_child_peak_mb(size, device) for size in (small, 4 * small)]
        rows.append(
            {
                "model": "lstm-1x128 memory",
                "device": device,
                "chars": f"{small} / {4 * small}",
                "peak_rss_mb": peaks,
                "growth": round(peaks[1] / peaks[0], 3),
            }
        )
    return rows


def _load_average() -> float:
    """The system's 1-minute load average (NaN where the system does not tell)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return float("nan")


def _child_peak_mb(chars: int, device: str) -> float:
    """Peak resident memory (MiB) of a fresh process recording ``chars`` characters."""
    code = (
        "import sys, json, resource; from lstmprobe.record.bench import _memory_child; "
        f"_memory_child({chars}, {device!r}, {torch.get_num_threads()})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["peak_mb"])


def _memory_child(chars: int, device: str, threads: int) -> None:
    torch.set_num_threads(threads)
    text = _corpus(chars)
    loaded = _builtin(1, 128, Vocab.from_text(_corpus(BUILTIN[0][3])))
    recording(loaded, text, RecordOptions(), device)
    print(json.dumps({"peak_mb": round(peak_rss_kb() / 1024, 1)}))


def peak_rss_kb() -> int:
    """This process's peak resident memory. Linux keeps ``ru_maxrss`` across ``exec`` (a child
    would report its parent's peak), so the per-address-space ``VmHWM`` is read where it exists.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'model':<20} {'device':<6} {'chars':>8} {'plain chars/s':>14} "
        f"{'record chars/s':>15} {'threads':>7} {'ratio':>6} {'load':>11}"
    ]
    for row in rows:
        if "ratio" in row:
            load = "{:.1f}-{:.1f}".format(*row["load_average"])
            threads = f"{row['threads']}/{row['record_threads']}"
            lines.append(
                f"{row['model']:<20} {row['device']:<6} {row['chars']:>8} "
                f"{row['plain_chars_per_s']:>14,} {row['record_chars_per_s']:>15,} "
                f"{threads:>7} {row['ratio']:>6.2f} {load:>11}"
            )
        else:
            a, b = row["peak_rss_mb"]
            lines.append(
                f"peak memory recording {row['chars']} chars: {a:.0f} MiB / {b:.0f} MiB "
                f"(x{row['growth']:.2f})"
            )
    return "\n".join(lines)
