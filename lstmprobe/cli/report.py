"""Commands that show units: plot KIND, report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from lstmprobe.cli._common import echo_json, warn
from lstmprobe.cli.options import int_option, script_options, store_option
from lstmprobe.names import Key

KINDS = (
    "text", "gates", "saturation", "distributions", "separator", "heatmap", "dynamics",
    "trajectories", "ablation",
)  # fmt: skip

range_option = click.option(
    "--range",
    "rng",
    default="p99",
    show_default=True,
    metavar="max|pNN|LO,HI",
    help="Colour range of each signed unit, fixed over the whole recording: pNN = each side of "
    "0 ends at the NN-th percentile of its |values| there (values beyond drawn at the end "
    "colour and marked), max = ±max|value|, LO,HI = given.",
)


def _figure_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """What every kind takes: --store, -o, --svg, --dpi, --json, --quiet, one-line errors."""
    for option in (
        script_options,
        int_option("--dpi", default=150, minimum=50, maximum=600, help="PNG resolution."),
        click.option("--svg", is_flag=True, help="Write SVG instead of PNG."),
        click.option(
            "-o", "--output", default=None, help="File to write [beside the store: acts.KIND.png]."
        ),
        store_option,
    ):
        func = option(func)
    return func


def _unit_option(what: str) -> Callable[..., Any]:
    return click.option("--unit", "-u", default=None, help=f"{what}, e.g. layer0/cell/17.")


def _span_options(default: int) -> Callable[..., Any]:
    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        func = int_option("--length", help=f"Chars shown [{default}].")(func)
        return int_option("--start", default=0, help="First position of the span.")(func)

    return wrap


@dataclass(frozen=True)
class _Output:
    store: str
    output: str | None
    svg: bool
    dpi: int
    as_json: bool
    quiet: bool


def _draw(
    kind: str,
    out: _Output,
    draw: Callable[[Any, Path], tuple[Any, list[str]]],
    html: bool = False,
) -> None:
    """Open the store, pick the path and format, call ``draw(store, path) -> (figure or None,
    units)``, save the figure and say what was written."""
    from lstmprobe.errors import ReportError
    from lstmprobe.report import data
    from lstmprobe.report.output import check_writable, save_figure

    suffix = Path(out.output).suffix.lower() if out.output else ""
    fmt = "html" if html else "svg" if out.svg or suffix == ".svg" else "png"
    if (
        out.output
        and suffix in (".svg", ".html", ".htm", ".png")
        and suffix.lstrip(".")[:3] != fmt[:3]
    ):
        raise ReportError(
            f"-o {out.output} ends in {suffix} but the figure is {fmt}; name it .{fmt}"
        )
    with data.open_store(out.store) as s:
        path = Path(out.output) if out.output else s.recording.figure(kind, fmt)
        check_writable(path)
        fig, units = draw(s, path)
        if fig is not None:
            save_figure(fig, path, fmt, out.dpi)
    manifest = {
        "kind": kind,
        "path": str(path),
        "format": fmt,
        "bytes": path.stat().st_size,
        "units": units,
    }
    if out.as_json:
        echo_json(manifest)
    elif not out.quiet:
        click.echo(f"wrote {path} ({_size(manifest['bytes'])})")


def _needs_unit(kind: str, unit: str | None) -> str:
    from lstmprobe.errors import ReportError

    if not unit:
        raise ReportError(f"plot {kind} needs --unit, e.g. --unit layer0/cell/17")
    return unit


@click.group("plot")
def plot_command() -> None:
    """Draw one figure of a recording (PNG, SVG, or HTML for text).

    \b
    KIND (lstmprobe plot KIND --help: its options and an example):
      text           one unit's value as coloured text (--unit)
      gates          a unit's cell, hidden, input/forget/output gates, candidate, stacked (--unit)
      saturation     each gate unit's fraction of positions < 0.1 vs > 0.9 (Karpathy et al. 2015)
      distributions  cell vs hidden per unit (GRU: candidate vs hidden)
      separator      every unit's value at one char (--char) across sequences, grouped
      heatmap        every unit of one dataset (--key) over a span
      dynamics       a unit's state split into kept f*c(t-1) and written i*g, per char (--unit)
      trajectories   a state (--key) on its first two principal components, each sequence a
                     path, coloured by a feature (-f); fixed points (dynamics --fixed-points)
      ablation       the random units behind each p-value of `lstmprobe ablate`

    \b
    Examples:
        lstmprobe plot text --unit layer0/cell/17 -o unit.png --start 1000 --length 600
        lstmprobe plot separator --char Y --group-by count:a -o sep.png
        lstmprobe plot text --help
    """


@plot_command.command("text")
@_unit_option("The unit")
@_span_options(600)
@int_option("--width", default=100, minimum=10, help="Columns per row of text.")
@range_option
@click.option(
    "--html", "as_html", is_flag=True, help="A self-contained HTML page (hover shows values)."
)
@_figure_options
def plot_text(unit: str | None, start: int, length: int | None, width: int, rng: str,
              as_html: bool, **out: Any) -> None:  # fmt: skip
    """One unit's value after each char, as coloured text.

    Red < 0 < blue (gates white -> green), on the unit's range fixed over the whole
    recording and stated on the figure (--range); values beyond it take the end
    colour and are marked. An -o name ending in .html writes the HTML page.

    \b
    Examples:
        lstmprobe plot text --unit layer0/cell/17 --start 1000 --length 600 -o unit.png
        lstmprobe plot text --unit layer0/cell/17 --range max -o unit.svg
        lstmprobe plot text --unit layer0/cell/17 --range -2,5 --html -o unit.html
    """
    o = _Output(**out)
    name = _needs_unit("text", unit)
    html = as_html or (Path(o.output).suffix.lower() in (".html", ".htm") if o.output else False)

    def draw(s: Any, path: Path) -> tuple[Any, list[str]]:
        from lstmprobe.report import data, figures
        from lstmprobe.report.colors import Range

        if html:
            from lstmprobe.report.html import text_page
            from lstmprobe.report.output import atomic_output

            data.check_unit(s, name)
            a, b = data.default_span(s, start, length, 600)
            page = text_page(s, name, a, b, width=width, rng=Range.parse(rng))
            with atomic_output(path) as part:
                part.write_text(page, encoding="utf-8")
            return None, [name]
        return figures.unit_text(s, name, start, length, width=width, rng=Range.parse(rng)), [name]

    _draw("text", o, draw, html=html)


@plot_command.command("gates")
@_unit_option("The unit (any of its quantities)")
@_span_options(300)
@int_option("--width", default=100, minimum=10, help="Columns per row of text.")
@range_option
@_figure_options
def plot_gates(unit: str | None, start: int, length: int | None, width: int, rng: str,
               **out: Any) -> None:  # fmt: skip
    """A unit's cell, hidden, input/forget/output gates and candidate, stacked.

    The blog's "all of neuron 2": each quantity as coloured text over the same span,
    each on its own fixed scale (GRU: hidden, reset, update, candidate).

    \b
    Example:
        lstmprobe plot gates --unit layer0/cell/17 --length 200 -o gates.png
    """
    name = _needs_unit("gates", unit)

    def draw(s: Any, path: Path) -> tuple[Any, list[str]]:
        from lstmprobe.report import figures

        return figures.unit_internals(s, name, start, length, width=width, rng=rng), [name]

    _draw("gates", _Output(**out), draw)


@plot_command.command("dynamics")
@_unit_option("The unit (any of its quantities)")
@_span_options(100)
@_figure_options
def plot_dynamics(unit: str | None, start: int, length: int | None, **out: Any) -> None:
    """A unit's state after each char split into kept f*c(t-1) and written i*g.

    \b
    Example:
        lstmprobe plot dynamics --unit layer0/cell/17 --start 1000 --length 80 -o keep.svg
    """
    name = _needs_unit("dynamics", unit)

    def draw(s: Any, path: Path) -> tuple[Any, list[str]]:
        from lstmprobe.report import figures
        from lstmprobe.report.causal_views import state_unit

        return figures.keep_write(s, name, start, length), [state_unit(s, name)]

    _draw("dynamics", _Output(**out), draw)


@plot_command.command("saturation")
@click.option("--layer", default=None, help="Layer, e.g. 0 or layer0 [default: all].")
@_figure_options
def plot_saturation(layer: str | None, **out: Any) -> None:
    """Each gate unit's fraction of positions below 0.1 against above 0.9.

    Karpathy, Johnson & Fei-Fei (2015): a unit on the diagonal acts as a switch.

    \b
    Example:
        lstmprobe plot saturation --layer 0 -o sat.svg
    """
    o = _Output(**out)

    def draw(s: Any, path: Path) -> tuple[Any, list[str]]:
        from lstmprobe.report import data, figures

        layers = [_layer(layer)] if layer else s.layers
        for name in layers:
            s.quantities(name)
        gate_keys = [
            k for k in s.keys if Key.parse(k).layer_name in layers and Key.parse(k).is_gate
        ]
        stats = data.summarize(s, gate_keys, progress=not o.quiet)
        return figures.saturation(stats, layers), []

    _draw("saturation", o, draw)


@plot_command.command("distributions")
@click.option("--layer", default=None, help="Layer, e.g. 0 or layer0 [default: the first].")
@_figure_options
def plot_distributions(layer: str | None, **out: Any) -> None:
    """Cell vs hidden: each unit's distribution (boxes), and all units pooled.

    GRU: candidate vs hidden. The blog's finding: hidden is a sharper, bounded cell.

    \b
    Example:
        lstmprobe plot distributions --layer 1 -o dist.png
    """

    def draw(s: Any, path: Path) -> tuple[Any, list[str]]:
        from lstmprobe.report import figures

        return figures.distributions(s, _layer(layer) if layer else None), []

    _draw("distributions", _Output(**out), draw)


@plot_command.command("separator")
@click.option("--char", "char", default=None, help="The separator char, e.g. X.")
@click.option("--key", default=None, help="Dataset, e.g. layer0/hidden [default: a hidden].")
@click.option(
    "--group-by",
    default="first-char",
    show_default=True,
    help="first-char (the sequence's first char), count (chars before the separator), or any "
    "FEATURE, grouped by its value at the separator (count:a, first-char:b, seq-length).",
)
@range_option
@_figure_options
def plot_separator(char: str | None, key: str | None, group_by: str, rng: str, **out: Any) -> None:
    """Every unit's value at one char, across sequences, grouped.

    Columns are the sequences holding the char (its first one in each), sorted by
    group; rows the units that separate the groups best (eta squared); below, the
    values of the best units as strips per group.

    \b
    Examples:
        lstmprobe plot separator --char X --key layer0/hidden --group-by first-char -o sep.png
        lstmprobe plot separator --char Y --group-by count:a -o n.png   # selective counter
        lstmprobe plot separator --char X --group-by next-char:b -o next.png  # copy task
    """
    from lstmprobe.errors import ReportError

    if not char:
        raise ReportError("plot separator needs --char, e.g. --char X")

    def draw(s: Any, path: Path) -> tuple[Any, list[str]]:
        from lstmprobe.report import data, figures

        k = key or _default_key(s)
        s.n_units(k)
        return figures.separator(data.separator_values(s, k, char, group_by), rng=rng), []

    _draw("separator", _Output(**out), draw)


@plot_command.command("heatmap")
@click.option("--key", default=None, help="Dataset, e.g. layer0/hidden [default: a hidden].")
@_span_options(200)
@range_option
@_figure_options
def plot_heatmap(key: str | None, start: int, length: int | None, rng: str, **out: Any) -> None:
    """Every unit of one dataset over a span: rows units, columns chars.

    Each row on its own unit's fixed range (--range), so small units stay visible.

    \b
    Example:
        lstmprobe plot heatmap --key layer0/cell --start 500 --length 120 -o heat.png
    """
    o = _Output(**out)

    def draw(s: Any, path: Path) -> tuple[Any, list[str]]:
        from lstmprobe.report import data, figures

        k = key or _default_key(s)
        stats = None
        if not Key.parse(k).is_gate:
            stats = data.summarize(s, [k], progress=not o.quiet)[k]
        return figures.heatmap(s, k, start, length, stats=stats, rng=rng).figure, []

    _draw("heatmap", o, draw)


@plot_command.command("trajectories")
@click.option("--key", default=None, help="The state, e.g. layer0/cell [default: a cell].")
@click.option("--feature", "-f", default=None, help="Colour of the paths, e.g. count:a.")
@int_option("--sequences", default=200, minimum=1, help="Sequences drawn.")
@_figure_options
def plot_trajectories(key: str | None, feature: str | None, sequences: int, **out: Any) -> None:
    """A state on its first two principal components, each sequence a path.

    Coloured by a feature's value; the fixed points that `lstmprobe dynamics
    --fixed-points` found (STORE.fixed_points.json) are drawn on it.

    \b
    Example:
        lstmprobe plot trajectories --key layer0/cell -f count:a -o paths.png
    """

    def draw(s: Any, path: Path) -> tuple[Any, list[str]]:
        return _trajectories(s, key or _default_key(s, ("cell", "hidden")), feature, sequences), []

    _draw("trajectories", _Output(**out), draw)


@plot_command.command("ablation")
@_figure_options
def plot_ablation(**out: Any) -> None:
    """The random units behind each p-value of `lstmprobe ablate`.

    Reads STORE.ablations.h5 (acts.h5 -> acts.ablations.h5): for each condition, the
    effect of each random same-size set of units, the chosen units' effect, the
    p-value and its floor.

    \b
    Example:
        lstmprobe ablate model.pt corpus.txt --unit layer0/cell/7 -f count:a
        lstmprobe plot ablation -o random.png
    """

    def draw(s: Any, path: Path) -> tuple[Any, list[str]]:
        from lstmprobe.errors import ReportError
        from lstmprobe.report import figures
        from lstmprobe.report.causal_views import load_ablations

        abl = load_ablations(s, warn=warn)
        if abl is None or not abl.conditions:
            raise ReportError(
                f"no ablations beside {s.path}; run `lstmprobe ablate MODEL CORPUS --store "
                f"{s.path} --unit UNIT` first"
            )
        from lstmprobe.store.ablations import AblationCondition

        problems: list[str] = []
        read = [
            AblationCondition.from_dict(summary, f"summary[{i}]", problems)
            for i, summary in enumerate(abl.summary)
        ]
        conditions = [c for c in read if c is not None]
        if not conditions:
            raise ReportError(f"{abl.path} holds no condition that can be drawn")
        return figures.random_effects_grid(conditions), sorted(
            {u for c in conditions for u in c.names}
        )

    _draw("ablation", _Output(**out), draw)


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
@range_option
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
    rng: str,
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
        lstmprobe report --range max     # colour ranges ±max|value| instead of p99
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
            rng=rng,
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
