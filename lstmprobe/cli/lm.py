"""Commands for models to study: tasks, train, sample, evaluate, models, demo."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from lstmprobe.cli._common import echo_json, handle_errors, require_writable, resolve_corpus, warn
from lstmprobe.cli.options import (
    ModelOptions,
    choice_option,
    int_option,
    model_options,
    quiet_option,
    reset_option,
    script_options,
)
from lstmprobe.errors import TrainingError, for_cli

if TYPE_CHECKING:
    from lstmprobe.lm import Evaluation, TrainResult

#: the synthetic tasks of `lstmprobe tasks` (lstmprobe.lm.tasks)
TASKS = ("counter", "selective-counter", "ab-memory", "copy")


@click.command()
@click.option(
    "-o",
    "--outdir",
    default="lstmprobe-demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the demo writes its recording, rankings and report (replaced on each run).",
)
@int_option("--chars", minimum=100, help="Use only the first N characters of the sample (quicker).")
@script_options
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
    from lstmprobe.demo import megabytes, run_demo

    announce = None if quiet else (lambda line: click.echo(for_cli(line), err=True))
    summary = run_demo(outdir, chars=chars, progress=not quiet, warn=warn, announce=announce)
    table = summary.pop("table")
    if as_json:
        echo_json(summary)
        return
    click.echo(table, nl=False)
    click.echo(
        f"recorded {summary['positions']:,} chars of {summary['corpus']} with {summary['model']} "
        f"({summary['record_chars_per_second']:,} chars/s)\n"
        f"recording: {summary['store']}\nrankings:  {summary['rankings']}\n"
        f"report:    {summary['report']} ({summary['report_bytes'] / 1e6:.1f} MB; open it in a browser)\n"
        f"wrote {megabytes(summary['bytes_written'])} into {summary['outdir']} (delete the folder "
        "when done)\n"
        f"next: lstmprobe info --store {summary['store']}\n"
        f"      lstmprobe find-neurons --store {summary['store']} -f bracket-depth:python -f comment:python"
    )


# --- commands: training and tasks ---


def _fmt_bpc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def describe(result: TrainResult | Evaluation) -> str:
    """A few human-readable lines about a training run or an evaluation."""
    from lstmprobe.lm import TrainResult

    if isinstance(result, TrainResult):
        val = (
            f"validation {_fmt_bpc(result.val_bpc)} bits/char "
            f"(last {result.config.get('val_fraction', 0):.0%})"
            if result.val_bpc is not None
            else "no validation (corpus too small to hold out a block)"
        )
        return (
            f"wrote {result.output}: step {result.step}/{result.steps} "
            f"({result.epoch:.1f} epochs), train {_fmt_bpc(result.train_bpc)} bits/char, {val}; "
            f"{result.chars_per_second:,.0f} chars/s over {result.seconds:.0f} s"
        )
    lines = [
        f"{result.bits_per_char:.4f} bits/char over {result.characters} chars, "
        f"{result.sequences} sequence(s) (reset {result.reset})"
    ]
    c = result.completion
    if c is not None:
        lines.append(
            f"{c.task}: {c.correct}/{c.sequences} completed exactly ({c.accuracy:.1%}) "
            "after the separator, greedily"
        )
        if c.by_key:
            lines.append(f"  {c.key:>7}  sequences  exact")
            for key, (n, good) in sorted(c.by_key.items()):
                lines.append(f"  {key:>7}  {n:>9}  {good / n:6.1%}")
            what = {"n": "N (a's, b's)", "x_count": "the number of x's"}.get(c.key or "", c.key)
            lines.append(
                f"  columns: {c.key} = {what} of the line; sequences = lines with it; exact = "
                "share completed exactly after the separator (0-100%)"
            )
    return "\n".join(lines)


def describe_bundled(entries: list[dict[str, Any]]) -> str:
    """The ``lstmprobe models`` table."""
    if not entries:
        return "no bundled models or samples in this installation"
    lines = []
    for e in entries:
        size = f"{e['bytes'] / 1e3:,.0f} KB" if e.get("bytes") is not None else "missing"
        if e["kind"] == "model":
            cfg = e.get("config") or {}
            arch = (
                f"{cfg.get('layers')}x{cfg.get('hidden')} {cfg.get('cell')}"
                if cfg.get("hidden")
                else ""
            )
            bpc = (
                f"train {_fmt_bpc(e.get('train_bpc'))} / val {_fmt_bpc(e.get('val_bpc'))} bits/char"
            )
            lines.append(f"model   {e['name']:<14} {size:>8}  {arch}  {bpc}  {e['description']}")
        else:
            lines.append(f"sample  {e['name']:<14} {size:>8}  {e['description']}")
    return "\n".join(lines)


@click.command("tasks")
@click.argument("name", type=click.Choice(list(TASKS)))
@click.option("-n", "--count", default=1000, show_default=True, help="Sequences (lines).")
@click.option("-o", "--output", default="-", help="Corpus file to write ('-': stdout).")
@click.option("--seed", default=0, show_default=True, help="Random seed (same seed, same corpus).")
@click.option("--min-n", default=1, show_default=True, help="Smallest N (x's for ab-memory).")
@click.option("--max-n", default=10, show_default=True, help="Largest N (x's for ab-memory).")
@click.option(
    "--pairs",
    "as_pairs",
    is_flag=True,
    help="Write source/target pairs for `lstmprobe patch --pairs` instead (ab-memory, copy).",
)
@quiet_option
@handle_errors
def tasks_command(
    name: str,
    count: int,
    output: str,
    seed: int,
    min_n: int,
    max_n: int,
    as_pairs: bool,
    quiet: bool,
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

    \b
    With --pairs, -n pairs of prefixes whose answers differ, one source<TAB>target<TAB>
    expected a line (the expected char is the source's answer), for `lstmprobe patch`:
        lstmprobe tasks ab-memory --pairs -n 200 --seed 1 -o pairs.tsv
    """
    from lstmprobe.lm import tasks

    if as_pairs:
        if output == "-":
            from lstmprobe.text import pairs_text

            click.echo(pairs_text(tasks.pairs(name, count, seed, min_n, max_n)), nl=False)
            return
        tasks.write_pairs(name, count, output, seed, min_n, max_n)
        if not quiet:
            click.echo(f"wrote {count} {name} pairs to {output}", err=True)
        return
    if output == "-":
        click.echo(tasks.corpus(name, count, seed, min_n, max_n), nl=False)
        return
    text = tasks.write(name, count, output, seed, min_n, max_n)
    if not quiet:
        click.echo(f"wrote {count} {name} sequences ({len(text)} chars) to {output}", err=True)


@click.command("train")
@click.argument("corpus")
@click.option("-o", "--output", default="model.pt", show_default=True, help="Checkpoint to write.")
@click.option("--layers", type=int, help="Recurrent layers.  [default: 1]")
@click.option("--hidden", type=int, help="Units per layer.  [default: 128]")
@click.option("--embedding", type=int, help="Embedding size; 0 = one-hot input.  [default: 0]")
@click.option("--cell", type=click.Choice(["lstm", "gru"]), help="Cell type.  [default: lstm]")
@click.option("--dropout", type=float, help="Dropout between layers.  [default: 0]")
@reset_option("none: one stream (state carried); line: each line a sequence.  [default: none]")
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
@click.option(
    "--safetensors",
    "write_safetensors",
    is_flag=True,
    help="Also write the weights and vocab beside the checkpoint as OUTPUT's name with "
    ".safetensors: the safe form to share (loading it cannot run code).",
)
@click.option(
    "--threads",
    type=int,
    help="CPU threads for torch [default: 1 for a small model, as record runs it; else torch's "
    "choice].",
)
@script_options
def train_command(
    corpus: str,
    output: str,
    resume: str | None,
    slim: bool,
    write_safetensors: bool,
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
        lstmprobe train code.txt -o code.pt --safetensors   # also code.safetensors
    """
    import shlex
    from pathlib import Path

    from lstmprobe import lm
    from lstmprobe.models import file_sha256

    shared = Path(output).with_suffix(".safetensors") if write_safetensors else None
    if shared is not None and shared == Path(output):
        raise TrainingError(
            f"-o {output} already ends in .safetensors; give the checkpoint another name "
            "(e.g. model.pt) and --safetensors writes model.safetensors beside it"
        )
    require_writable(output)  # before the training, not after it
    if shared is not None:
        require_writable(shared)
    if threads is not None and threads < 1:
        raise TrainingError(f"--threads must be at least 1, got {threads}")
    config = lm.resolve_config(settings, resume)
    text = resolve_corpus(corpus)
    metadata = {
        "command": shlex.join(["lstmprobe", *sys.argv[1:]]),
        "corpus": corpus,
        "corpus_chars": len(text),
    }
    if not corpus.startswith("sample:"):
        metadata["corpus_sha256"] = file_sha256(corpus)
    result = lm.train(
        text,
        output,
        config,
        resume=resume,
        slim=slim,
        progress=not quiet,
        metadata=metadata,
        threads=threads,
    )
    summary = result.to_dict()
    if shared is not None:
        from lstmprobe.models import load_model, save_safetensors

        written = load_model(output)
        save_safetensors(shared, written.model, written.vocab)
        summary["safetensors"] = str(shared)
    if as_json:
        echo_json(summary)
    else:  # the result line even with --quiet, as evaluate prints its result
        click.echo(describe(result))
        if shared is not None and not quiet:
            click.echo(f"weights and vocab for sharing: {shared}")
    if result.interrupted:
        click.secho(
            f"interrupted at step {result.step}; checkpoint written to {output} "
            f"(continue with --resume {output})",
            fg="yellow",
            err=True,
        )
        sys.exit(130)


@click.command("sample")
@click.argument("model")
@click.option("--prime", default="\n", help="Text to start from.  [default: newline]")
@click.option("-n", "--length", default=500, show_default=True, help="Characters to generate.")
@click.option("--temperature", default=0.8, show_default=True, help="0 = greedy.")
@click.option("--seed", type=int, help="Random seed (same seed, same text).")
@model_options
@script_options
def sample_command(
    model: str,
    prime: str,
    length: int,
    temperature: float,
    seed: int | None,
    model_options: ModelOptions,
    quiet: bool,
    as_json: bool,
) -> None:
    """Generate text from MODEL (a file or a bundled name): the prime, then N chars.

    \b
    Examples:
        lstmprobe sample code-lstm --prime "def " -n 300 --temperature 0.7 --seed 1
        lstmprobe sample counter.pt --prime aaaaX -n 8 --temperature 0
    """
    from lstmprobe import lm

    loaded = model_options.load(model)
    text = lm.sample(
        loaded.model, loaded.vocab, prime, length, temperature, seed,
        unknown=model_options.unknown, threads=model_options.threads,
    )  # fmt: skip
    if as_json:
        echo_json({"prime": prime, "text": text, "temperature": temperature, "seed": seed})
    else:
        click.echo(prime + text)


@click.command("evaluate")
@click.argument("model")
@click.argument("corpus")
@reset_option("none: one stream; line: each line a sequence.  [default: line for task corpora]")
@choice_option(
    "--task",
    choices=("auto", "none", *TASKS),
    default="auto",
    help="Score greedy completion as this task (auto: recognise it by the lines' form).",
)
@model_options
@script_options
def evaluate_command(
    model: str,
    corpus: str,
    reset: str | None,
    task: str,
    model_options: ModelOptions,
    quiet: bool,
    as_json: bool,
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
    from lstmprobe import lm

    loaded = model_options.load(model)
    text = resolve_corpus(corpus)
    result = lm.evaluate(
        loaded.model, loaded.vocab, text, reset, None if task == "none" else task,
        unknown=model_options.unknown, threads=model_options.threads,
    )  # fmt: skip
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(describe(result))


@click.command("models")
@script_options
def models_command(quiet: bool, as_json: bool) -> None:
    """List the bundled models and sample corpora, usable by name anywhere.

    \b
    Example:
        lstmprobe record code-lstm sample:code
    """
    from lstmprobe import lm

    entries = list(lm.iter_bundled())
    if as_json:
        echo_json(entries)
    else:
        click.echo(describe_bundled(entries))


# --- commands: features and neurons ---
