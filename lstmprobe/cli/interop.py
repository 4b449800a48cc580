"""Commands that move recordings between lstmprobe and other tools: export, import."""

from __future__ import annotations

from pathlib import Path

import click

from lstmprobe.cli._common import echo_json, layer_names, split_names, warn
from lstmprobe.cli.options import (
    DEFAULT_STORE,
    choice_option,
    int_option,
    script_options,
    store_option,
)


@click.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["lstmvis", "explorer"]),
    required=True,
    help="lstmvis: an LSTMVis project directory; explorer: LSTM Explorer's JSON of a span.",
)
@click.option(
    "-o",
    "--output",
    "outdir",
    required=True,
    type=click.Path(file_okay=False),
    help="The directory to write (new or empty, else --force).",
)
@store_option
@click.option("--layers", metavar="L,L", help="Export only these layers, e.g. 0,1 (default: all).")
@click.option(
    "--quantities", metavar="Q,Q", help="Export only these, e.g. cell,hidden (default: all)."
)
@int_option("--start", minimum=0, help="explorer: first position of the span [0].")
@int_option("--length", minimum=1, help="explorer: characters in the span [500].")
@click.option("--name", help="The project's name (lstmvis) or file name (explorer) [store's stem].")
@click.option(
    "--force",
    is_flag=True,
    help="Write into a non-empty directory (only the exported files are replaced).",
)
@script_options
def export_command(
    fmt: str,
    outdir: str,
    store: str,
    layers: str | None,
    quantities: str | None,
    start: int | None,
    length: int | None,
    name: str | None,
    force: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Write a recording in another tool's format: LSTMVis or LSTM Explorer.

    \b
    lstmvis   a project directory for LSTMVis's server: lstm.yml, states.h5 (one
              positions x units dataset per layer and quantity; state = cell,
              output = hidden, layers counted from 1), words.h5 + words.dict (the
              characters; newline and tab as the words \\n and \\t), meta.h5 (where
              each sequence starts). Values as recorded (transform: none).
    explorer  NAME.json for LSTM Explorer ("Exploring LSTMs"): chars and, per
              layer L from 0, cs/hs/i_gate/f_gate/o_gate/j_gate L over a span.

    \b
    Examples:
        lstmprobe export --format lstmvis -o lstmvis-data/acts
        lstmprobe export --format lstmvis -o proj --store run1.h5 --layers 1 --quantities cell,hidden
        lstmprobe export --format explorer -o explorer --start 1000 --length 400
    """
    from lstmprobe.errors import InteropError
    from lstmprobe.interop import export_explorer, export_lstmvis

    chosen_layers, chosen_quantities = layer_names(layers), split_names(quantities)
    if fmt == "lstmvis":
        if start is not None or length is not None:
            raise InteropError(
                "--start and --length choose the span of --format explorer; an LSTMVis project "
                "holds the whole recording"
            )
        result = export_lstmvis(
            store,
            outdir,
            layers=chosen_layers,
            quantities=chosen_quantities,
            name=name,
            force=force,
            progress=not quiet,
        )
        how = f"serve it with LSTMVis: python lstm_server.py -dir {Path(outdir).parent}"
    else:
        result = export_explorer(
            store,
            outdir,
            start=start or 0,
            length=length,
            layers=chosen_layers,
            quantities=chosen_quantities,
            name=name,
            force=force,
        )
        file = Path(result.files[0]).stem
        how = f"copy {result.files[0]} into lstm-explorer/data/ and open index.html#/?file={file}"
    if as_json:
        echo_json(result.to_dict())
        return
    if quiet:
        return
    span = f"positions {result.start:,}-{result.stop:,}"
    click.echo(f"wrote {outdir} ({fmt}, {span}): {', '.join(result.files)}")
    for key, where in result.datasets.items():
        click.echo(f"  {key:<28} -> {where}")
    for line in result.left_out:
        click.echo(f"  {line}")
    click.echo(how)


@click.group("import")
def import_group() -> None:
    """Bring another tool's recording in as a store (acts.h5).

    \b
    Examples:
        lstmprobe import lstmvis path/to/project -o acts.h5
    """


@import_group.command("lstmvis")
@click.argument("project", type=click.Path())
@click.option(
    "-o",
    "--output",
    default=DEFAULT_STORE,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The store to write.",
)
@choice_option(
    "--dtype", choices=("float32", "float16"), default="float32", help="The store's values."
)
@click.option(
    "--map",
    "word_map",
    multiple=True,
    metavar="WORD=C",
    help="A dictionary word that stands for one character (repeatable), e.g. '<eos>=\\n'.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing store.")
@script_options
def import_lstmvis_command(
    project: str,
    output: str,
    dtype: str,
    word_map: tuple[str, ...],
    force: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Turn the LSTMVis project in PROJECT (its lstm.yml and the files it names) into a store.

    Each states type becomes a dataset (state -> cell, output -> hidden, layer L ->
    layer{L-1}); the word ids, through the dictionary, become the characters. The
    store records no model: info, find-neurons, report and plot work on it; ablate
    does not (it needs the model that made the states).

    \b
    Examples:
        lstmprobe import lstmvis lstmvis-data/parens -o parens.h5
        lstmprobe import lstmvis proj -o acts.h5 --map '<eos>=\\n' --map '<unk>=?'
        lstmprobe find-neurons --store parens.h5 -f quote
    """
    from lstmprobe.interop import import_lstmvis

    result = import_lstmvis(
        project,
        output,
        dtype=dtype,
        word_map=_word_map(word_map),
        force=force,
        progress=not quiet,
        warn=warn,
    )
    if as_json:
        echo_json(result.to_dict())
        return
    if quiet:
        return
    click.echo(
        f"imported {result.positions:,} positions ({result.sequences:,} sequence(s), "
        f"{result.vocab_size} characters) into {result.path}"
    )
    for key, where in result.datasets.items():
        click.echo(f"  {key:<28} <- {where}")


def _word_map(pairs: tuple[str, ...]) -> dict[str, str]:
    """``WORD=C`` pairs; C is one character or a stand-in (``\\n``, ``\\t``, ``\\u00a0``)."""
    from lstmprobe.errors import InteropError
    from lstmprobe.interop.lstmvis import word_char

    out = {}
    for pair in pairs:
        word, eq, spec = pair.rpartition("=")
        if not spec and pair.endswith("=="):
            word, eq, spec = pair[:-2], "=", "="
        char = word_char(spec) if spec else None
        if not eq or not word or char is None:
            raise InteropError(
                f"--map takes WORD=C with C one character or \\n, \\t, \\uXXXX; got {pair!r}"
            )
        out[word] = char
    return out
