"""Commands that show units: plot KIND, report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from lstmprobe.cli._common import echo_json, warn
from lstmprobe.cli.options import choice_option, int_option, script_options, store_option
from lstmprobe.names import Key

KINDS = (
    "text",
    "gates",
    "saturation",
    "distributions",
    "separator",
    "heatmap",
    "dynamics",
    "trajectories",
)


@click.command("plot")
@click.argument("kind", type=click.Choice(KINDS))
@store_option
@click.option(
    "--unit", "-u", default=None, help="Unit to show (text, gates, dynamics), e.g. layer0/cell/17."
)
@click.option(
    "--key", default=None, help="Dataset (heatmap, separator, trajectories), e.g. layer0/cell."
)
@click.option("--feature", "-f", default=None, help="Colour of the trajectories, e.g. count:a.")
@int_option("--sequences", default=200, minimum=1, help="Sequences drawn (trajectories).")
@click.option(
    "--layer", default=None, help="Layer (saturation, distributions; default: all / first)."
)
@int_option("--start", default=0, help="First position of the span.")
@int_option("--length", help="Chars shown [text 600, gates 300, heatmap 200, dynamics 100].")
@int_option("--width", default=100, minimum=10, help="Columns per row of text.")
@click.option("--char", "char", default=None, help="Separator char (separator), e.g. X.")
@choice_option(
    "--group-by",
    choices=("first-char", "count"),
    default="first-char",
    help="Group sequences by their first char, or by N = chars before the separator (counters).",
)
@click.option(
    "-o", "--output", default=None, help="File to write [beside the store: acts.KIND.png]."
)
@click.option("--svg", is_flag=True, help="Write SVG instead of PNG.")
@click.option(
    "--html",
    "as_html",
    is_flag=True,
    help="text only: a self-contained HTML file (hover shows values).",
)
@int_option("--dpi", default=150, minimum=50, maximum=600, help="PNG resolution.")
@script_options
def plot_command(
    kind: str,
    store: str,
    unit: str | None,
    key: str | None,
    feature: str | None,
    sequences: int,
    layer: str | None,
    start: int,
    length: int | None,
    width: int,
    char: str | None,
    group_by: str,
    output: str | None,
    svg: bool,
    as_html: bool,
    dpi: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Draw one figure of a recording (PNG, SVG, or HTML for text).

    \b
    KIND:
      text           one unit's value as coloured text (--unit)
      gates          a unit's cell, hidden, input/forget/output gates, candidate, stacked (--unit)
      saturation     each gate unit's fraction of positions < 0.1 vs > 0.9 (Karpathy et al. 2015)
      distributions  cell vs hidden per unit (GRU: candidate vs hidden)
      separator      every unit's value at one char (--char) across sequences, grouped
      heatmap        every unit of one dataset (--key) over a span
      dynamics       a unit's state split into kept f*c(t-1) and written i*g, per char (--unit)
      trajectories   a state (--key) on its first two principal components, each sequence a
                     path, coloured by a feature (-f); fixed points (dynamics --fixed-points)

    \b
    Examples:
        lstmprobe plot text --unit layer0/cell/17 -o unit.png --start 1000 --length 600
        lstmprobe plot text --unit layer0/cell/17 --html -o unit.html
        lstmprobe plot gates --unit layer0/cell/17 -o gates.png
        lstmprobe plot saturation -o sat.svg --svg
        lstmprobe plot separator --char X --key layer0/hidden --group-by first-char -o sep.png
        lstmprobe plot dynamics --unit layer0/cell/17 --start 1000 --length 80 -o keep.svg
        lstmprobe plot trajectories --key layer0/cell -f count:a -o paths.png
    """
    from lstmprobe.errors import ReportError
    from lstmprobe.report import data
    from lstmprobe.report.output import atomic_output, check_writable, save_figure

    suffix = Path(output).suffix.lower() if output else ""
    as_html = as_html or (kind == "text" and suffix in (".html", ".htm"))
    if as_html and kind != "text":
        raise ReportError(f"--html is for `plot text`; for {kind} write PNG or SVG (--svg)")
    if kind in ("text", "gates", "dynamics") and not unit:
        raise ReportError(f"plot {kind} needs --unit, e.g. --unit layer0/cell/17")
    if kind == "separator" and not char:
        raise ReportError("plot separator needs --char, e.g. --char X")
    fmt = "html" if as_html else "svg" if svg or suffix == ".svg" else "png"
    if output and suffix in (".svg", ".html", ".htm", ".png") and suffix.lstrip(".")[:3] != fmt[:3]:
        raise ReportError(f"-o {output} ends in {suffix} but the figure is {fmt}; name it .{fmt}")
    with data.open_store(store) as s:
        path = Path(output) if output else s.recording.figure(kind, fmt)
        check_writable(path)
        from lstmprobe.report import figures

        units: list[str] = []
        if kind == "text":
            units = [unit]  # type: ignore[list-item]
            if as_html:
                from lstmprobe.report.html import text_page

                data.check_unit(s, unit)  # type: ignore[arg-type]
                a, b = data.default_span(s, start, length, 600)
                page = text_page(s, unit, a, b, width=width)  # type: ignore[arg-type]
                with atomic_output(path) as part:
                    part.write_text(page, encoding="utf-8")
                fig = None
            else:
                fig = figures.unit_text(s, unit, start, length, width=width)  # type: ignore[arg-type]
        elif kind == "gates":
            units = [unit]  # type: ignore[list-item]
            fig = figures.unit_internals(s, unit, start, length, width=width)  # type: ignore[arg-type]
        elif kind == "dynamics":
            from lstmprobe.report.causal_views import state_unit

            units = [state_unit(s, unit)]  # type: ignore[arg-type]
            fig = figures.keep_write(s, unit, start, length)  # type: ignore[arg-type]
        elif kind == "saturation":
            layers = [_layer(layer)] if layer else s.layers
            for name in layers:
                s.quantities(name)
            gate_keys = [
                k for k in s.keys if Key.parse(k).layer_name in layers and Key.parse(k).is_gate
            ]
            stats = data.summarize(s, gate_keys, progress=not quiet)
            fig = figures.saturation(stats, layers)
        elif kind == "trajectories":
            fig = _trajectories(s, key or _default_key(s, ("cell", "hidden")), feature, sequences)
        elif kind == "distributions":
            fig = figures.distributions(s, _layer(layer) if layer else None)
        elif kind == "separator":
            k = key or _default_key(s)
            s.n_units(k)
            fig = figures.separator(data.separator_values(s, k, char, group_by))  # type: ignore[arg-type]
        else:
            k = key or _default_key(s)
            stats = None
            if not Key.parse(k).is_gate:
                stats = data.summarize(s, [k], progress=not quiet)[k]
            ax = figures.heatmap(s, k, start, length, stats=stats)
            fig = ax.figure
        if fig is not None:
            save_figure(fig, path, fmt, dpi)
    manifest = {
        "kind": kind,
        "path": str(path),
        "format": fmt,
        "bytes": path.stat().st_size,
        "units": units,
    }
    if as_json:
        echo_json(manifest)
    elif not quiet:
        click.echo(f"wrote {path} ({_size(manifest['bytes'])})")


def _layer(value: str) -> str:
    return f"layer{value}" if value.isdigit() else value


def _trajectories(s: Any, key: str, feature: str | None, sequences: int) -> Any:
    import json

    import numpy as np

    from lstmprobe.causal.state_space import trajectories
    from lstmprobe.report.causal_figures import trajectories as draw
    from lstmprobe.store import Recording

    s.n_units(key)
    tr = trajectories(s, key, max_sequences=sequences)
    colour = None
    if feature:
        from lstmprobe.features import get_feature

        feat = get_feature(feature)
        colour = np.asarray(feat.labels(s.text, s.sequences), dtype=np.float64)[tr.positions]
        feature = feat.name
    fixed, stable, held = None, [], ""
    path = Recording.at(s.path).fixed_points
    if path.exists():
        found = json.loads(path.read_text(encoding="utf-8"))
        keys = [tuple(k) for k in found.get("keys", [])]
        if found.get("model_sha256") in (None, s.model_sha256) and key in dict(keys):
            from lstmprobe.causal.state_space import key_of

            part = key_of(keys, key)  # type: ignore[arg-type]
            states = np.array([p["state"] for p in found.get("points", [])], dtype=np.float64)
            if len(states):
                fixed = tr.components.project(states[:, part])
                stable = [bool(p["stable"]) for p in found["points"]]
                held = str(found.get("input", ""))
    ax = draw(
        tr.points,
        tr.sequences,
        colour,
        tr.components.explained[:2].tolist(),
        feature=feature or "",
        key=key,
        fixed=fixed,
        fixed_stable=stable,
        fixed_input=held,
    )
    return ax.figure


def _default_key(s: object, order: tuple[str, ...] = ("hidden", "cell")) -> str:
    keys = s.keys  # type: ignore[attr-defined]
    for q in order:
        for k in keys:
            if Key.parse(k).quantity == q:
                return k
    return keys[0]


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


@click.command("report")
@store_option
@click.option(
    "-o", "--output", default=None, help="HTML file to write [beside the store: acts.report.html]."
)
@click.option(
    "--feature",
    "-f",
    "features",
    multiple=True,
    help="Features of the ranking to show (repeatable; default: all).",
)
@int_option("--top", default=5, minimum=1, maximum=50, help="Top units shown per feature.")
@click.option(
    "--rankings",
    "rankings_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Rankings file [beside the store: acts.rankings.json].",
)
@click.option(
    "--no-rankings", is_flag=True, help="Ignore any ranking: show every unit, ordered by layer."
)
@int_option(
    "--max-chars",
    default=2000,
    minimum=1,
    help="Chars of text the explorer embeds (each shown unit: one byte per char).",
)
@int_option(
    "--max-units",
    default=0,
    minimum=0,
    help="Units embedded per dataset (0: all; top-ranked units always).",
)
@int_option("--start", default=0, help="First position of the explorer's text.")
@click.option(
    "--no-figures",
    is_flag=True,
    help="Leave out the saturation/distribution/curve figures (faster).",
)
@script_options
def report_command(
    store: str,
    output: str | None,
    features: tuple[str, ...],
    top: int,
    rankings_path: str | None,
    no_rankings: bool,
    max_chars: int,
    max_units: int,
    start: int,
    no_figures: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Write one self-contained HTML report of a recording, with an explorer.

    Reads STORE (and STORE's rankings, acts.rankings.json, when present) and writes
    one HTML file that opens offline from disk: no server, no network. It shows each
    ranked unit as coloured text where its feature changes and where it is most
    active, and an explorer over --max-chars chars for every unit (j/k: next/previous
    unit, ?: help). Values are embedded as 8-bit codes along each unit's fixed scale.
    With acts.ablations.h5 (`lstmprobe ablate`) and acts.dynamics.json (`lstmprobe
    dynamics`) beside the store, it adds Ablations and Dynamics sections and shows each
    unit's ablation effect, timescale and recurrent drivers in its card.

    \b
    Examples:
        lstmprobe report
        lstmprobe report --store run1.h5 -o run1.html -f quote -f indent --top 10
        lstmprobe report --max-chars 5000 --max-units 64 --json
    """
    from lstmprobe.report import data
    from lstmprobe.report.html import build_report
    from lstmprobe.report.output import check_writable

    with data.open_store(store) as s:
        path = Path(output) if output else s.recording.report
        check_writable(path)
        report = build_report(
            s,
            rankings_path=rankings_path,
            use_rankings=not no_rankings,
            features=list(features) or None,
            top=top,
            max_chars=max_chars,
            max_units=max_units or None,
            start=start,
            figures=not no_figures,
            progress=not quiet,
            warn=warn,
        )
    report.save(path)
    manifest = {"path": str(path), "bytes": path.stat().st_size, **report.manifest}
    manifest.pop("store", None)
    manifest = {"store": str(store), **manifest}
    if as_json:
        echo_json(manifest)
    elif not quiet:
        click.echo(
            f"wrote {path} ({_size(manifest['bytes'])}): {manifest['units_shown']:,} of "
            f"{manifest['units_total']:,} units over {manifest['chars']:,} chars"
            + (
                f", features {', '.join(manifest['features'])}"
                if manifest["features"]
                else ", no ranking"
            )
            + (_conditions(manifest["ablations"]) if manifest.get("ablations") else "")
            + (", gate dynamics" if manifest.get("dynamics") else "")
        )


def _conditions(n: int) -> str:
    return f", {n} ablated condition{'s' if n != 1 else ''}"
