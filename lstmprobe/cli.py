"""The ``lstmprobe`` command line: thin click commands over the library.

Errors from the library (:class:`~lstmprobe.errors.LstmprobeError`) become one line on stderr and
exit status 1; usage errors are click's (exit 2).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from lstmprobe.errors import LstmprobeError

DEFAULT_STORE = "acts.h5"


def fail(message: str) -> None:
    """Print one red line on stderr and exit 1."""
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors (and Ctrl-C, and a broken pipe) into one line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LstmprobeError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            click.secho("interrupted", fg="red", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)

    return wrapper


def warn(message: str) -> None:
    """One yellow warning line on stderr (the library's ``warn`` callbacks)."""
    click.secho(f"warning: {message}", fg="yellow", err=True)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


store_option = click.option(
    "--store",
    default=DEFAULT_STORE,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The recording to read (what `lstmprobe record` wrote).",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar or chatter.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lstmprobe")
def main() -> None:
    """Open up trained LSTMs and GRUs.

    \b
    Record every gate and state of a model over a corpus, find the neurons that
    track properties of the text, and show them:
        lstmprobe record model.pt corpus.txt      # writes ./acts.h5
        lstmprobe find-neurons --feature quote    # reads ./acts.h5
        lstmprobe info                            # what a recording holds
    """


# --- commands: recording (foundation) ---


def resolve_corpus(corpus: str) -> str:
    """A corpus path, or a bundled sample's name (``sample:code``) -> the text."""
    from lstmprobe.bundled import SAMPLES, sample_path
    from lstmprobe.errors import CorpusError
    from lstmprobe.text import read_corpus

    if corpus.startswith("sample:"):
        path = sample_path(corpus)
        if path is None:
            known = ", ".join(f"sample:{name}" for name in SAMPLES) or "none"
            raise CorpusError(f"no bundled sample {corpus!r}; bundled samples: {known}")
        return read_corpus(path)
    return read_corpus(corpus)


def _split_names(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _layer_names(value: str | None) -> tuple[str, ...] | None:
    names = _split_names(value)
    if names is None:
        return None
    return tuple(f"layer{n}" if n.isdigit() else n for n in names)


@main.command()
@click.argument("model")
@click.argument("corpus")
@click.option(
    "-o",
    "--output",
    default=DEFAULT_STORE,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HDF5 recording to write.",
)
@click.option(
    "--vocab",
    type=click.Path(dir_okay=False),
    help="JSON vocabulary (list in index order or object char->index) for a plain state_dict.",
)
@click.option(
    "--embedding",
    metavar="KEY",
    help="Which tensor is the embedding, when a state_dict has several candidates.",
)
@click.option(
    "--decoder",
    metavar="KEY",
    help="Which tensor is the decoder, when a state_dict has several candidates.",
)
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="Allow a pickled full module (runs code from the file: only for files you trust).",
)
@click.option(
    "--reset",
    type=click.Choice(["none", "line"]),
    default="none",
    show_default=True,
    help="none: the corpus is one stream; line: each line is a sequence from the zero state.",
)
@click.option(
    "--dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True
)
@click.option(
    "--compression",
    type=click.Choice(["lzf", "gzip"]),
    default=None,
    help="HDF5 compression (default none: fastest).",
)
@click.option(
    "--quantities", metavar="Q,Q", help="Record only these, e.g. cell,hidden (default: all)."
)
@click.option(
    "--layers",
    metavar="L,L",
    help="Record only these layers, e.g. 0,2 or layer1_reverse (default: all).",
)
@click.option(
    "--unknown",
    default="error",
    show_default=True,
    metavar="error|skip|map:C",
    help="What to do with characters not in the vocabulary.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=4096,
    show_default=True,
    help="Characters per forward call.",
)
@click.option(
    "--parallel",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Run K segments of a stream at once, each warmed up on the --warmup chars before it (faster, not exact; 0 = exact).",
)
@click.option(
    "--warmup",
    type=click.IntRange(min=0),
    default=1024,
    show_default=True,
    help="Warm-up characters per segment with --parallel.",
)
@click.option(
    "--device", default="cpu", show_default=True, help="torch device to run on, e.g. cuda."
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch CPU threads while recording (default: 1 for small models, so that the "
    "recomputation overlaps the forward pass; torch's choice for large ones).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted recording (same arguments).")
@click.option(
    "--force", is_flag=True, help="Overwrite an existing recording or discard a partial one."
)
@quiet_option
@json_option
@handle_errors
def record(
    model: str,
    corpus: str,
    output: str,
    vocab: str | None,
    embedding: str | None,
    decoder: str | None,
    trust_pickle: bool,
    reset: str,
    dtype: str,
    compression: str | None,
    quantities: str | None,
    layers: str | None,
    unknown: str,
    chunk_size: int,
    parallel: int,
    warmup: int,
    device: str,
    threads: int | None,
    resume: bool,
    force: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Record every gate and state of MODEL over CORPUS into an HDF5 file.

    MODEL is a model file (lstmprobe checkpoint, state_dict, TorchScript, or a
    pickled module with --trust-pickle) or a bundled model's name (`lstmprobe models`).
    CORPUS is a UTF-8 text file or a bundled sample (sample:NAME).

    \b
    Examples:
        lstmprobe record model.pt corpus.txt                 # writes ./acts.h5
        lstmprobe record model.pt corpus.txt -o run1.h5 --vocab vocab.json
        lstmprobe record counter.pt counter.txt --reset line --quantities cell,hidden
    """
    from lstmprobe.models import load_model
    from lstmprobe.record import RecordOptions, record_corpus
    from lstmprobe.store import partial_path

    options = RecordOptions(
        reset=reset,
        dtype=dtype,
        compression=compression,
        quantities=_split_names(quantities),
        layers=_layer_names(layers),
        chunk_size=chunk_size,
        parallel=parallel,
        warmup=warmup,
        unknown=unknown,
    )
    text = resolve_corpus(corpus)
    loaded = load_model(
        model, vocab=vocab, trust_pickle=trust_pickle, embedding=embedding, decoder=decoder
    )
    try:
        result = record_corpus(
            loaded,
            text,
            output,
            options,
            force=force,
            resume=resume,
            progress=not quiet,
            device=device,
            threads=threads,
        )
    except KeyboardInterrupt:
        fail(
            f"interrupted: the partial recording {partial_path(output)} is kept; run the same "
            "command with --resume to continue it"
        )
        return
    summary = {
        "path": str(result.path),
        "positions": result.positions,
        "resumed_from": result.resumed_from,
        "seconds": round(result.seconds, 3),
        "chars_per_second": round(result.chars_per_second, 1),
    }
    if as_json:
        echo_json(summary)
    elif not quiet:
        click.echo(
            f"recorded {result.positions:,} positions into {result.path} "
            f"({summary['chars_per_second']:,.0f} chars/s)"
        )


@main.command()
@store_option
@json_option
@handle_errors
def info(store: str, as_json: bool) -> None:
    """What a recording holds: model, positions, sequences, datasets, dtype, complete?

    \b
    Examples:
        lstmprobe info
        lstmprobe info --store run1.h5 --json
    """
    from lstmprobe.store import ActivationStore

    with ActivationStore(store, require_complete=False) as s:
        summary = s.summary()
    if as_json:
        echo_json(summary)
        return
    for key, value in summary.items():
        if isinstance(value, dict) and key == "datasets":
            click.echo(f"{key}:")
            for name, units in value.items():
                click.echo(f"  {name:<28} {units} units")
        elif isinstance(value, dict):
            click.echo(f"{key}: {json.dumps(value, ensure_ascii=False)}")
        else:
            click.echo(f"{key}: {value}")


@main.command()
@click.option(
    "--model",
    "model_path",
    help="Benchmark this model file instead of the built-in 1x128 and 3x512 LSTMs.",
)
@click.option(
    "--chars",
    type=click.IntRange(min=1000),
    default=None,
    help="Corpus size per model (default: sized per model).",
)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Runs per measurement (medians are reported).",
)
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch intra-op threads (default: torch's choice, usually one per core).",
)
@click.option(
    "--memory/--no-memory",
    default=True,
    show_default=True,
    help="Also measure peak memory at two corpus sizes.",
)
@quiet_option
@json_option
@handle_errors
def bench(
    model_path: str | None,
    chars: int | None,
    repeat: int,
    device: str,
    threads: int | None,
    memory: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Recording throughput vs the plain fused forward, measured on this machine in one run.

    \b
    Examples:
        lstmprobe bench
        lstmprobe bench --device cuda --json
        lstmprobe bench --model model.pt --chars 50000
    """
    from lstmprobe.bench import format_table, run_bench

    rows = run_bench(
        model_path=model_path,
        chars=chars,
        repeat=repeat,
        device=device,
        memory=memory,
        progress=not quiet,
        threads=threads,
    )
    if as_json:
        echo_json(rows)
    else:
        click.echo(format_table(rows))


@main.command()
@click.option(
    "-o",
    "--outdir",
    default="lstmprobe-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo writes its recording and rankings (replaced on each run).",
)
@click.option(
    "--chars",
    type=click.IntRange(min=100),
    default=None,
    help="Use only the first N characters of the sample (quicker).",
)
@quiet_option
@json_option
@handle_errors
def demo(outdir: str, chars: int | None, quiet: bool, as_json: bool) -> None:
    """Run the whole pipeline on the bundled model and sample.

    Records every gate and state of `code-lstm` (a char-LSTM trained on Python
    source) over its held-out sample, then finds the units that track string
    quotes and indentation, with held-out probes and controls.

    \b
    Examples:
        lstmprobe demo
        lstmprobe demo -o /tmp/demo --chars 20000 --json
    """
    from lstmprobe.demo import run_demo

    summary = run_demo(outdir, chars=chars, progress=not quiet, warn=warn)
    table = summary.pop("table")
    if as_json:
        echo_json(summary)
        return
    click.echo(table, nl=False)
    click.echo(
        f"recorded {summary['positions']:,} chars of {summary['corpus']} with {summary['model']} "
        f"({summary['record_chars_per_second']:,} chars/s)\n"
        f"recording: {summary['store']}\nrankings:  {summary['rankings']}\n"
        f"next: lstmprobe info --store {summary['store']}\n"
        f"      lstmprobe find-neurons --store {summary['store']} -f bracket-depth:python -f comment:python"
    )


# --- commands: training and tasks ---


@main.command("tasks")
@click.argument("name", type=click.Choice(["counter", "selective-counter", "ab-memory", "copy"]))
@click.option("-n", "--count", default=1000, show_default=True, help="Sequences (lines).")
@click.option("-o", "--output", default="-", help="Corpus file to write ('-': stdout).")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same corpus).")
@click.option("--min-n", default=1, show_default=True, help="Smallest N (x's for ab-memory).")
@click.option("--max-n", default=10, show_default=True, help="Largest N (x's for ab-memory).")
@quiet_option
@handle_errors
def tasks_command(
    name: str, count: int, output: str, seed: int, min_n: int, max_n: int, quiet: bool
) -> None:
    """Write a corpus of one of the "Exploring LSTMs" tasks, one sequence per line.

    \b
    counter            N a's, X, N b's                 aaaXbbb
    selective-counter  N a's among random X's, Y, N b's aXaXaYbbb
    ab-memory          A or B, N x's, Y, a or b         BxxxxYb
    copy               3 of {a,b,c}, X, the same 3     cabXcab

    \b
    Example (does counting extrapolate past N = 10?):
        lstmprobe tasks counter -n 2000 -o counter.txt
        lstmprobe tasks counter -n 500 --min-n 11 --max-n 20 --seed 1 -o far.txt
    """
    from lstmprobe import tasks as task_module

    text = task_module.write(name, count, None if output == "-" else output, seed, min_n, max_n)
    if output != "-" and not quiet:
        click.echo(f"wrote {count} {name} sequences ({len(text)} chars) to {output}", err=True)


@main.command("train")
@click.argument("corpus")
@click.option("-o", "--output", default="model.pt", show_default=True, help="Checkpoint to write.")
@click.option("--layers", type=int, help="Recurrent layers.  [default: 1]")
@click.option("--hidden", type=int, help="Units per layer.  [default: 128]")
@click.option("--embedding", type=int, help="Embedding size; 0 = one-hot input.  [default: 0]")
@click.option("--cell", type=click.Choice(["lstm", "gru"]), help="Cell type.  [default: lstm]")
@click.option("--dropout", type=float, help="Dropout between layers.  [default: 0]")
@click.option(
    "--reset",
    type=click.Choice(["none", "line"]),
    help="none: one stream (state carried); line: each line a sequence.  [default: none]",
)
@click.option("--seq-len", type=int, help="Window length with --reset none.  [default: 100]")
@click.option("--batch-size", type=int, help="Windows or lines per step.  [default: 32]")
@click.option("--steps", type=int, help="Optimizer steps.  [default: 2000]")
@click.option("--epochs", type=float, help="Passes over the training part (instead of --steps).")
@click.option("--lr", type=float, help="Adam learning rate.  [default: 0.002]")
@click.option("--clip", type=float, help="Gradient norm clipping; 0 = off.  [default: 5]")
@click.option("--val-fraction", type=float, help="Held-out last block.  [default: 0.1]")
@click.option("--checkpoint-every", type=int, help="Steps between checkpoints.  [default: 500]")
@click.option("--seed", type=int, help="Random seed.  [default: 0]")
@click.option(
    "--resume",
    type=click.Path(dir_okay=False),
    help="Continue from a checkpoint written by lstmprobe train (its settings are the defaults).",
)
@click.option("--slim", is_flag=True, help="Final checkpoint without optimizer state (smaller).")
@click.option("--threads", type=int, help="CPU threads for torch (1 is best on a busy machine).")
@quiet_option
@json_option
@handle_errors
def train_command(
    corpus: str,
    output: str,
    resume: str | None,
    slim: bool,
    threads: int | None,
    quiet: bool,
    as_json: bool,
    **settings: Any,
) -> None:
    """Train a character-level LSTM or GRU language model on CORPUS.

    Validation is the last 10% of the corpus (of its lines with --reset line). A
    checkpoint is written every --checkpoint-every steps; Ctrl-C stops after the
    current step and writes one. The result loads anywhere a model is taken.

    \b
    Examples:
        lstmprobe train code.txt -o code.pt --layers 2 --hidden 160 --embedding 32
        lstmprobe tasks counter -n 2000 -o counter.txt
        lstmprobe train counter.txt -o counter.pt --reset line --hidden 10 --steps 1500 --lr 0.01
        lstmprobe train code.txt -o code.pt --resume code.pt --steps 8000
    """
    import shlex

    from lstmprobe import train as training
    from lstmprobe.models import file_sha256

    if threads is not None:
        training.set_threads(threads)
    config = training.resolve_config(settings, resume)
    text = resolve_corpus(corpus)
    metadata = {
        "command": shlex.join(["lstmprobe", *sys.argv[1:]]),
        "corpus": corpus,
        "corpus_chars": len(text),
    }
    if not corpus.startswith("sample:"):
        metadata["corpus_sha256"] = file_sha256(corpus)
    result = training.train(
        text, output, config, resume=resume, slim=slim, progress=not quiet, metadata=metadata
    )
    if as_json:
        echo_json(result.to_dict())
    elif not quiet:
        click.echo(training.describe(result))
    if result.interrupted:
        click.secho(
            f"interrupted at step {result.step}; checkpoint written to {output} "
            f"(continue with --resume {output})",
            fg="yellow",
            err=True,
        )
        sys.exit(130)


@main.command("sample")
@click.argument("model")
@click.option("--prime", default="\n", help="Text to start from.  [default: newline]")
@click.option("-n", "--length", default=500, show_default=True, help="Characters to generate.")
@click.option("--temperature", default=0.8, show_default=True, help="0 = greedy.")
@click.option("--seed", type=int, help="Random seed (same seed, same text).")
@quiet_option
@json_option
@handle_errors
def sample_command(
    model: str,
    prime: str,
    length: int,
    temperature: float,
    seed: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Generate text from MODEL (a file or a bundled name): the prime, then N chars.

    \b
    Examples:
        lstmprobe sample code-lstm --prime "def " -n 300 --temperature 0.7 --seed 1
        lstmprobe sample counter.pt --prime aaaaX -n 8 --temperature 0
    """
    from lstmprobe import train as training
    from lstmprobe.models import load_model

    loaded = load_model(model)
    text = training.sample(loaded.model, loaded.vocab, prime, length, temperature, seed)
    if as_json:
        echo_json({"prime": prime, "text": text, "temperature": temperature, "seed": seed})
    else:
        click.echo(prime + text)


@main.command("evaluate")
@click.argument("model")
@click.argument("corpus")
@click.option(
    "--reset",
    type=click.Choice(["none", "line"]),
    help="none: one stream; line: each line a sequence.  [default: line for task corpora]",
)
@click.option(
    "--task",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "none", "counter", "selective-counter", "ab-memory", "copy"]),
    help="Score greedy completion as this task (auto: recognise it by the lines' form).",
)
@quiet_option
@json_option
@handle_errors
def evaluate_command(
    model: str, corpus: str, reset: str | None, task: str, quiet: bool, as_json: bool
) -> None:
    """Bits per char of MODEL on CORPUS; for a task corpus, exact greedy completion.

    For task corpora (lstmprobe tasks) the model reads each line up to its separator
    (X or Y) and completes the rest greedily; a line counts when the completion,
    newline included, is exact. Counters are broken down per N.

    \b
    Examples:
        lstmprobe evaluate code-lstm sample:code
        lstmprobe tasks counter -n 500 --min-n 11 --max-n 20 -o far.txt
        lstmprobe evaluate counter.pt far.txt --json
    """
    from lstmprobe import train as training
    from lstmprobe.models import load_model

    loaded = load_model(model)
    text = resolve_corpus(corpus)
    result = training.evaluate(
        loaded.model, loaded.vocab, text, reset, None if task == "none" else task
    )
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(training.describe(result))


@main.command("models")
@quiet_option
@json_option
@handle_errors
def models_command(quiet: bool, as_json: bool) -> None:
    """List the bundled models and sample corpora, usable by name anywhere.

    \b
    Example:
        lstmprobe record code-lstm sample:code
    """
    from lstmprobe import train as training

    entries = list(training.iter_bundled())
    if as_json:
        echo_json(entries)
    else:
        click.echo(training.describe_bundled(entries))


# --- commands: features and neurons ---


@main.command("features")
@json_option
@quiet_option
@handle_errors
def features_command(as_json: bool, quiet: bool) -> None:
    """List the built-in features with their precise definitions.

    A feature gives one value per character: the state AFTER reading it (next-char:X is
    about the next one); NaN marks positions where it is undefined.

    \b
    Examples:
        lstmprobe features
        lstmprobe features --json
        lstmprobe find-neurons -f quote -f 'next-char:b' -f my_features.py:in_docstring
    """
    from lstmprobe.features import known_features

    known = known_features()
    if as_json:
        echo_json([{"name": k, "definition": v} for k, v in known.items()])
        return
    for name, definition in known.items():
        click.echo(f"{name}\n    {definition}" if not quiet else name)


@main.command("find-neurons")
@store_option
@click.option(
    "--feature",
    "-f",
    "features",
    multiple=True,
    required=True,
    help="Feature to rank units for (repeatable): a built-in, char:X, regex:P, FILE.py:FUNC.",
)
@click.option("--top", default=10, show_default=True, type=click.IntRange(1), help="Rows shown.")
@click.option("--json", "json_path", default=None, help="Write the ranking as JSON (- = stdout).")
@click.option("--csv", "csv_path", default=None, help="Write the ranking as CSV (- = stdout).")
@click.option(
    "--probe/--no-probe",
    default=True,
    show_default=True,
    help="Fit held-out probes, controls and intervals (off: scores only, one pass).",
)
@click.option("--key", "keys", multiple=True, help="Only these datasets, e.g. layer0/cell.")
@click.option(
    "--max-positions",
    default=50_000,
    show_default=True,
    type=click.IntRange(100),
    help="Positions used for probes (contiguous windows).",
)
@click.option("--blocks", default=20, show_default=True, type=click.IntRange(3), help="Blocks.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of splits/controls.")
@click.option(
    "--label-memory",
    default=256,
    show_default=True,
    type=click.IntRange(0),
    metavar="MB",
    help="Keep the labels in memory up to this size; beyond, compute them again from the "
    "stored text for each pass (same results, bounded memory, one more pass).",
)
@click.option("--no-save", is_flag=True, help="Do not write STORE.rankings.json beside the store.")
@quiet_option
@handle_errors
def find_neurons_command(
    store: str,
    features: tuple[str, ...],
    top: int,
    json_path: str | None,
    csv_path: str | None,
    probe: bool,
    keys: tuple[str, ...],
    max_positions: int,
    blocks: int,
    seed: int,
    label_memory: int,
    no_save: bool,
    quiet: bool,
) -> None:
    """Rank every unit of every recorded quantity by how well it tracks each feature.

    Scores: ROC AUC (binary features) or |Spearman| (continuous), with held-out probe
    metrics, a control task (selectivity) and a bootstrap interval for the top units.
    The ranking is saved beside the store (acts.h5 -> acts.rankings.json); the
    recording itself is never modified.

    \b
    Examples:
        lstmprobe find-neurons --feature quote
        lstmprobe find-neurons --store run1.h5 -f indent -f bracket-depth --top 20 --json out.json
        lstmprobe find-neurons -f 'regex:https?://\\S+' -f 'next-char:b' --csv -
    """
    from lstmprobe.probes import rank_units
    from lstmprobe.store import ActivationStore, write_json_atomic

    with ActivationStore(store) as s:
        for key in keys:
            s.n_units(key)  # a clear error for an unknown dataset
        ranking = rank_units(
            s,
            list(features),
            keys=list(keys) or None,
            probe=probe,
            max_probe_positions=max_positions,
            n_blocks=blocks,
            seed=seed,
            label_memory=label_memory << 20,
            progress=not quiet,
            warn=warn,
        )
        saved = None if no_save else s.sibling("rankings.json")
    if not any("skipped" not in f for f in ranking.features.values()):
        fail("no feature could be scored on this corpus (see the warnings above)")
    if saved is not None:
        write_json_atomic(saved, json.loads(ranking.to_json()))
    to_stdout = json_path == "-" or csv_path == "-"
    if json_path == "-":
        click.echo(ranking.to_json())
    elif json_path:
        ranking.to_json(json_path)
    if csv_path == "-":
        click.echo(ranking.to_csv(), nl=False)
    elif csv_path:
        ranking.to_csv(csv_path)
    if not to_stdout:
        click.echo(ranking.format_table(top), nl=False)
        if saved is not None and not quiet:
            click.echo(f"saved {saved}")


if __name__ == "__main__":
    main()
