"""Commands that make and describe a recording: record, info, bench."""

from __future__ import annotations

import json
from typing import Any

import click

from lstmprobe.cli._common import (
    echo_json,
    fail,
    handle_errors,
    layer_names,
    resolve_corpora,
    split_names,
    warn,
)
from lstmprobe.cli.options import (
    DEFAULT_STORE,
    ModelOptions,
    choice_option,
    dask_option,
    int_option,
    json_option,
    model_options,
    reset_option,
    script_options,
    store_option,
)


@click.command()
@click.argument("model")
@click.argument("corpus", nargs=-1, required=True)
@click.option(
    "-o",
    "--output",
    "out",
    default=DEFAULT_STORE,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HDF5 recording to write.",
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
@reset_option(
    "none: the corpus is one stream; line: each line is a sequence from the zero state.",
    default="none",
)
@choice_option(
    "--dtype",
    choices=("float16", "float32"),
    default="float16",
    help="The stored values' type (float16 halves the file; values beyond ±65,504 become ±inf).",
)
@choice_option(
    "--compression", choices=("lzf", "gzip"), help="HDF5 compression (default none: fastest)."
)
@click.option(
    "--quantities", metavar="Q,Q", help="Record only these, e.g. cell,hidden (default: all)."
)
@click.option(
    "--layers",
    metavar="L,L",
    help="Record only these layers, e.g. 0,2 or layer1_reverse (default: all).",
)
@int_option("--chunk-size", default=4096, minimum=1, help="Characters per forward call.")
@int_option(
    "--parallel",
    default=0,
    minimum=0,
    help="Run K segments of a stream at once, each warmed up on the --warmup chars before it "
    "(faster, not exact; 0 = exact).",
)
@int_option(
    "--warmup", default=1024, minimum=0, help="Warm-up characters per segment with --parallel."
)
@click.option(
    "--device", default="cpu", show_default=True, help="torch device to run on, e.g. cuda."
)
@model_options
@dask_option
@int_option(
    "--shard-chars",
    minimum=1,
    help="With --dask: characters per shard, cut between sequences (default: about 30 s of "
    "one worker's recording, at most 512 shards).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted recording (same arguments).")
@click.option(
    "--force",
    is_flag=True,
    help="Overwrite an existing recording or discard a partial one (never one that another "
    "record is writing); accept a --vocab other than the one stored in the model file.",
)
@script_options
def record(
    model: str,
    corpus: tuple[str, ...],
    out: str,
    embedding: str | None,
    decoder: str | None,
    reset: str,
    dtype: str,
    compression: str | None,
    quantities: str | None,
    layers: str | None,
    chunk_size: int,
    parallel: int,
    warmup: int,
    device: str,
    model_options: ModelOptions,
    dask: str | None,
    shard_chars: int | None,
    resume: bool,
    force: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Record every gate and state of MODEL over CORPUS into an HDF5 file.

    MODEL is a model file (lstmprobe checkpoint, state_dict, .safetensors,
    TorchScript, or a pickled module with --trust-pickle) or a bundled model's name (`lstmprobe models`).
    CORPUS is one or more UTF-8 text files, directories (every text file under one, sorted)
    or quoted glob patterns, each file one sequence; or a bundled sample (sample:NAME).
    With --dask the sequences are recorded in shards by a Dask cluster (docs/scale-out.md).

    \b
    Examples:
        lstmprobe record model.pt corpus.txt                 # writes ./acts.h5
        lstmprobe record model.pt corpus.txt -o run1.h5 --vocab vocab.json
        lstmprobe record counter.pt counter.txt --reset line --quantities cell,hidden
        lstmprobe record model.pt corpus/ -o run/acts.h5     # every file a sequence
        lstmprobe record model.pt corpus/ -o run/acts.h5 --dask local:8
    """
    import math

    from lstmprobe.models import bits_per_char
    from lstmprobe.record import RecordOptions, record_corpus
    from lstmprobe.store import check_output

    options = RecordOptions(
        reset=reset,
        dtype=dtype,
        compression=compression,
        quantities=split_names(quantities),
        layers=layer_names(layers),
        chunk_size=chunk_size,
        parallel=parallel,
        warmup=warmup,
        unknown=model_options.unknown,
    )
    check_output(out)
    if dask is None and shard_chars is not None:
        fail("--shard-chars cuts a recording for --dask; give --dask ADDRESS too")
    files = resolve_corpora(corpus)
    text = files.text
    loaded = model_options.load(model, embedding=embedding, decoder=decoder, force=force)
    if model_options.vocab is not None and loaded.form != "checkpoint":
        bits = bits_per_char(loaded.model, loaded.vocab, text)
        uniform = math.log2(len(loaded.vocab))
        if bits is not None and bits > uniform + 1:
            warn(
                f"the model's next-char loss on the start of the corpus is {bits:.1f} bits/char, "
                f"worse than uniform guessing ({uniform:.1f}): --vocab may list the characters "
                "in another order than the model was trained with"
            )
    settings = {"force": force, "resume": resume, "progress": not quiet, "device": device,
                "threads": model_options.threads, "warn": warn}  # fmt: skip
    try:
        if dask is None:
            result = record_corpus(loaded, files, out, options, **settings)
        else:
            from lstmprobe.distributed import connect
            from lstmprobe.distributed import record_corpus as record_sharded

            with connect(dask) as client:
                result = record_sharded(loaded, files, out, options, client=client,
                                        shard_chars=shard_chars, **settings)  # fmt: skip
    except KeyboardInterrupt:
        from lstmprobe.store import Recording

        recording = Recording.at(out)
        kept = (
            f"the finished shards in {recording.shards} are kept"
            if dask
            else f"the partial recording {recording.partial} is kept"
        )
        fail(f"interrupted: {kept}; run the same command with --resume to continue it")
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


@click.command()
@store_option
@click.option(
    "--verify",
    is_flag=True,
    help="Read every dataset and check it against the checksum stored when it was finished.",
)
@json_option
@handle_errors
def info(store: str, verify: bool, as_json: bool) -> None:
    """What a recording holds: model, positions, sequences, datasets, dtype, complete?

    \b
    Examples:
        lstmprobe info
        lstmprobe info --store run1.h5 --json
        lstmprobe info --verify        # exit 1 if the file was changed after recording
    """
    from lstmprobe.store import ActivationStore

    with ActivationStore(store, require_complete=False) as s:
        summary = s.summary()
        if verify:
            checked = s.verify()
            summary["verified"] = [name for name, ok in checked.items() if ok]
            summary["unverified"] = [name for name, ok in checked.items() if not ok]
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
        elif key == "verified":
            click.echo(f"verified: {len(value)} datasets match their checksums")
        elif key == "unverified":
            if value:
                click.echo(
                    f"unverified: {', '.join(value)} (no checksum stored: an unfinished "
                    "recording, or one made before lstmprobe stored checksums)"
                )
        else:
            click.echo(f"{key}: {value}")


@click.command()
@click.option(
    "--model",
    "model_path",
    help="Benchmark this model file instead of the built-in 1x128 and 3x512 LSTMs.",
)
@int_option("--chars", minimum=1000, help="Corpus size per model (default: sized per model).")
@int_option("--repeat", default=3, minimum=1, help="Runs per measurement (medians are reported).")
@click.option("--device", default="cpu", show_default=True)
@model_options
@click.option(
    "--memory/--no-memory",
    default=True,
    show_default=True,
    help="Also measure peak memory at two corpus sizes.",
)
@script_options
def bench(
    quiet: bool,
    as_json: bool,
    model_path: str | None,
    model_options: ModelOptions,
    **settings: Any,
) -> None:
    """Recording throughput vs the plain fused forward, measured on this machine in one run.

    The plain forward runs at torch's threads and, for a small model, also on the one thread
    record uses; the faster is the reference (the `threads` column: plain/record).

    \b
    Examples:
        lstmprobe bench
        lstmprobe bench --device cuda --json
        lstmprobe bench --model model.pt --chars 50000
    """
    from lstmprobe.record.bench import format_table, run_bench

    loaded = model_options.load(model_path) if model_path else None
    rows = run_bench(loaded, progress=not quiet, threads=model_options.threads, **settings)
    if as_json:
        echo_json(rows)
    else:
        click.echo(format_table(rows))


@click.command("consolidate")
@click.argument("source", required=False, metavar="[STORE]")
@store_option
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The one ordinary HDF5 file to write.",
)
@choice_option("--compression", choices=("lzf", "gzip"), help="Compress the copy (default none).")
@click.option("--resume", is_flag=True, help="Continue a copy that was stopped.")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@script_options
def consolidate_command(
    source: str | None,
    store: str,
    out: str,
    compression: str | None,
    resume: bool,
    force: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Copy a recording (sharded by record --dask, or not) into one ordinary file.

    The values are copied as stored, bit for bit; the copy is written to OUTPUT.partial
    and renamed when complete, so OUTPUT is never half-written. STORE defaults to --store.

    \b
    Examples:
        lstmprobe consolidate run/acts.h5 -o acts-one-file.h5
        lstmprobe consolidate --store run/acts.h5 -o acts.h5 --compression gzip
    """
    from lstmprobe.store import ActivationStore, consolidate

    path = consolidate(source or store, out, compression=compression, force=force,
                       resume=resume, progress=not quiet, warn=warn)  # fmt: skip
    with ActivationStore(path) as s:
        summary = {"path": str(path), "positions": s.n_positions, "file_size": path.stat().st_size}
    if as_json:
        echo_json(summary)
    elif not quiet:
        click.echo(
            f"consolidated {summary['positions']:,} positions into {path} "
            f"({summary['file_size'] / 2**20:,.1f} MiB)"
        )
