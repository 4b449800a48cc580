"""Commands of causal depth: patch (interchange interventions) and attribute (attribution
through time)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lstmprobe.cli._common import echo_json, handle_errors, require_writable
from lstmprobe.cli.options import (
    ModelOptions,
    choice_option,
    int_option,
    model_options,
    path_or_stdout_option,
    quiet_option,
    renamed_option,
    reset_option,
    store_option,
)

if TYPE_CHECKING:
    from lstmprobe.names import Unit


def _load(model: str, options: ModelOptions, store: str, force: bool) -> Any:
    """The model, checked against the recording at ``store`` when there is one."""
    from lstmprobe.causal import check_model_matches
    from lstmprobe.store import ActivationStore

    here = Path(store).exists()
    loaded = options.load(model, store=store if here else None)
    if here:
        with ActivationStore(store) as s:
            check_model_matches(s, loaded.sha256, force=force, model=model)
    return loaded


def _at(value: str) -> Any:
    from lstmprobe.errors import InterventionError

    if value in ("last", "all"):
        return value
    try:
        return int(value)
    except ValueError:
        raise InterventionError(
            f"--at is last, all or a target position (negative: from the end), got {value!r}"
        ) from None


def _fmt_top(top: list[tuple[str, float]]) -> str:
    return "  ".join(f"{c!r} {p:.3f}" for c, p in top)


@click.command("patch")
@click.argument("model")
@click.option("--source", default=None, help="The source text (its state is patched in).")
@click.option("--target", default=None, help="The target text (it receives the state).")
@click.option(
    "--pairs",
    "pairs_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="A pairs file: source<TAB>target<TAB>expected a line (`lstmprobe tasks NAME --pairs`).",
)
@click.option(
    "--unit", "-u", "units", multiple=True, help="A unit to patch (repeatable; patched together)."
)
@int_option("--top", minimum=1, help="The top K units of -f FEATURE in STORE.rankings.json.")
@click.option("--feature", "-f", default=None, help="The feature whose top units --top reads.")
@store_option
@click.option("--at", default="last", show_default=True, help="Target positions: last|all|POS.")
@choice_option(
    "--align",
    choices=("start", "end"),
    help="How target positions take source positions [default: end, the last chars together].",
)
@click.option("--compare", default=None, help="Chars whose log-prob change is shown, e.g. a,b.")
@int_option(
    "--n-random",
    default=20,
    minimum=0,
    help="Random same-size unit sets of the same layer and quantity per condition (--pairs).",
)
@renamed_option("--random", "--n-random", "n_random", type=int)
@int_option("--seed", default=0, help="Seed of the random draws.")
@click.option(
    "--sweep",
    multiple=True,
    type=click.Choice(["units", "positions"]),
    help="units: every unit of --key alone; positions: each target position alone (heatmap).",
)
@click.option("--key", default=None, help="Dataset swept by --sweep units [the first unit's].")
@click.option("-o", "--output", default=None, help="The sweep's heatmap [acts.patching.png].")
@click.option("--force", is_flag=True, help="Use a store recorded with other model weights.")
@path_or_stdout_option("--json", "json_path", "Print the results as JSON, or write them to PATH.")
@click.option("--no-save", is_flag=True, help="Do not write STORE.patching.h5 beside the store.")
@model_options
@quiet_option
@handle_errors
def patch_command(
    model: str,
    source: str | None,
    target: str | None,
    pairs_path: str | None,
    units: tuple[str, ...],
    top: int | None,
    feature: str | None,
    store: str,
    at: str,
    align: str | None,
    compare: str | None,
    n_random: int,
    seed: int,
    sweep: tuple[str, ...],
    key: str | None,
    output: str | None,
    force: bool,
    json_path: str | None,
    no_save: bool,
    model_options: ModelOptions,
    quiet: bool,
) -> None:
    """Does a unit carry the information? Patch its state from a source into a target.

    Runs MODEL over --source and --target (each from the zero state), sets the units
    in the target run to their values in the source run at the target positions --at
    (aligned with the source's from the end by default), and shows the next-char
    distribution after the target, before and after, and the KL divergence. With
    --pairs, the share of pairs whose patched target now predicts the source's answer
    (the flip rate), against --n-random sets of units of the same layer and quantity.
    --sweep draws the causal-tracing heatmap: units x positions, each patched alone.

    \b
    Examples:
        lstmprobe patch ab.pt --source AxxxY --target BxxxxxY --unit layer0/cell/3
        lstmprobe tasks ab-memory --pairs -n 200 -o pairs.tsv
        lstmprobe patch ab.pt --pairs pairs.tsv --unit layer0/cell/3 --n-random 20
        lstmprobe patch ab.pt --pairs pairs.tsv --store ab.h5 --top 3 -f ab-state
        lstmprobe patch ab.pt --pairs pairs.tsv --unit layer0/cell/3 --sweep units --sweep positions -o trace.png
    """
    from lstmprobe.errors import InterventionError
    from lstmprobe.store import Recording
    from lstmprobe.text import Pair, read_pairs

    single = source is not None or target is not None
    if single and pairs_path:
        raise InterventionError("give --source and --target, or --pairs, not both")
    if single and (source is None or target is None):
        raise InterventionError("a patch needs both --source TEXT and --target TEXT")
    if not single and not pairs_path:
        raise InterventionError("say what to patch: --source TEXT --target TEXT, or --pairs FILE")
    if units and top:
        raise InterventionError("give --unit U or --top K, not both")
    if not units and not top:
        raise InterventionError("say which units: --unit layer0/cell/3, or --top K -f FEATURE")
    if top and not feature:
        raise InterventionError("--top K reads the ranking of a feature: give -f FEATURE")
    where = _at(at)
    if json_path not in (None, "-"):
        require_writable(json_path)
    saved_to = Recording.at(store).patching
    if not no_save:
        require_writable(saved_to, "--no-save")
    figure = None
    if sweep:
        figure = Path(output) if output else Recording.at(store).figure("patching", "png")
        require_writable(figure)
    loaded = _load(model, model_options, store, force)
    conditions = _conditions(store, units, top, feature)
    unknown, threads = model_options.unknown, model_options.threads
    pairs = read_pairs(pairs_path) if pairs_path else [Pair(source, target, "")]  # type: ignore[arg-type]
    if single:
        out, results, pairs = _single(
            loaded, source, target, conditions, where, align, compare, unknown, threads, quiet
        )
    else:
        out, results = _pairs(
            loaded, pairs, conditions, where, align, n_random, seed, unknown, threads, quiet
        )
    text = out.pop("_text")
    out["settings"] = {
        **out.get("settings", {}),
        "model": model,
        "store": store,
        "at": where,
        "align": align or "end",
    }
    if sweep:
        sw, sresult = _sweep(
            loaded, pairs, conditions, sweep, key, where, align, unknown, threads, quiet, figure
        )
        out["sweep"] = sw
        results.append(sresult)
    if not no_save:
        from lstmprobe.store.causal_results import PATCHING, write_results

        write_results(
            saved_to,
            PATCHING,
            results,
            {"model_sha256": loaded.sha256, "store": store, "settings": out["settings"]},
        )
        out["saved"] = str(saved_to)
    if json_path:
        if json_path == "-":
            echo_json(out)
            return
        from lstmprobe.store import write_json_atomic

        write_json_atomic(json_path, out)
    click.echo(text)
    if not quiet and not no_save:
        click.echo(f"saved {saved_to}")
    if figure is not None and not quiet:
        click.echo(f"wrote {figure}")


def _conditions(
    store: str, units: tuple[str, ...], top: int | None, feature: str | None
) -> list[list[Unit]]:
    from lstmprobe.causal.units import Condition

    if not top:
        return [list(Condition.of(units).units)]  # the names parsed once, here
    from lstmprobe.causal import top_conditions
    from lstmprobe.errors import StoreError
    from lstmprobe.features import get_feature
    from lstmprobe.store import ActivationStore

    if not Path(store).exists():
        raise StoreError(
            f"--top reads the ranking beside the recording {store}, which does not exist; record "
            "and rank first, or name the units with --unit"
        )
    with ActivationStore(store) as s:
        return top_conditions(s, get_feature(feature).name, top)  # type: ignore[arg-type]


def _single(
    loaded: Any,
    source: Any,
    target: Any,
    conditions: list[list[Unit]],
    at: Any,
    align: Any,
    compare: str | None,
    unknown: str,
    threads: Any,
    quiet: bool,
) -> tuple[dict[str, Any], list[Any], list[Any]]:
    from lstmprobe.causal.patching import patch
    from lstmprobe.errors import VocabError
    from lstmprobe.store.causal_results import Saved
    from lstmprobe.text import Pair

    chars = [c for c in (compare or "").split(",") if c] if compare else []
    for c in chars:
        if c not in loaded.vocab:
            raise VocabError(f"--compare {c!r}: the model's vocabulary has no such char")
    units = conditions[-1]
    r = patch(
        loaded.model,
        loaded.vocab,
        source,
        target,
        units,
        at=at,
        align=align,
        unknown=unknown,
        threads=threads,
    )
    d = r.to_dict(chars)
    lines = [
        f"patched {', '.join(map(str, r.units))} at target position(s) {list(r.positions)} from source "
        f"position(s) {list(r.source_positions)}",
        f"  before: {_fmt_top(r.top('before'))}",
        f"  after:  {_fmt_top(r.top('after'))}",
        f"  source: {_fmt_top(r.top('source'))}",
        f"  KL(before || after) = {r.kl_bits:.4f} bits",
    ]
    lines += [f"  log2 p({c!r}): {d['compare'][c]['delta_bits']:+.3f} bits" for c in chars]
    d["_text"] = "\n".join(lines)
    meta = {k: v for k, v in d.items() if not k.startswith(("logprob", "_"))}
    arrays = {"before": r.before, "after": r.after, "source": r.source_next}
    pair = [Pair(source, target, r.source_answer)]
    return d, [Saved({"kind": "pair", **meta}, arrays)], pair


def _pairs(
    loaded: Any,
    pairs: Any,
    conditions: list[list[Unit]],
    at: Any,
    align: Any,
    n_random: int,
    seed: int,
    unknown: str,
    threads: Any,
    quiet: bool,
) -> tuple[dict[str, Any], list[Any]]:
    from lstmprobe.causal.patching import patch_pairs
    from lstmprobe.store.causal_results import Saved

    res = patch_pairs(
        loaded.model,
        loaded.vocab,
        pairs,
        conditions,
        at=at,
        align=align,
        n_random=n_random,
        seed=seed,
        unknown=unknown,
        threads=threads,
        progress=not quiet,
    )
    d = res.to_dict()
    d["_text"] = "\n".join(c["verdict"] for c in d["conditions"])
    saved = [
        Saved(
            {"kind": "condition", "pairs": res.n_pairs, "base_rate": res.base_rate, **c},
            {"flips": cond.flips},
        )
        for c, cond in zip(d["conditions"], res.conditions)
    ]
    return d, saved


def _sweep(
    loaded: Any,
    pairs: Any,
    conditions: list[list[Unit]],
    sweep: tuple[str, ...],
    key: str | None,
    at: Any,
    align: Any,
    unknown: str,
    threads: Any,
    quiet: bool,
    figure: Path | None,
) -> tuple[dict[str, Any], Any]:
    from lstmprobe.causal.patching import patch_sweep, sweep_columns
    from lstmprobe.causal.units import check_units
    from lstmprobe.errors import InterventionError
    from lstmprobe.names import Key
    from lstmprobe.store.causal_results import Saved

    side = align or "end"
    named = list(dict.fromkeys(u for c in conditions for u in c))
    if "units" in sweep:
        k = Key.parse(key) if key else named[0].key
        n = check_units(loaded.model, [k.unit(0)])[k]
        rows = [[k.unit(i)] for i in range(n)]
    else:
        rows = [[u] for u in named] + ([named] if len(named) > 1 else [])
    if "positions" in sweep:
        columns = sweep_columns(pairs, loaded.vocab, side, unknown)
    elif at == "last":
        columns = [-1] if side == "end" else []
    elif isinstance(at, int):
        columns = [at]
    else:
        columns = []
    if not columns:
        raise InterventionError(
            "--sweep units patches one position at a time: give --at POS or --at last (with "
            "--align end), or add --sweep positions"
        )
    sw = patch_sweep(
        loaded.model,
        loaded.vocab,
        pairs,
        rows,
        columns,
        align=side,
        unknown=unknown,
        threads=threads,
        progress=not quiet,
    )
    if figure is not None:
        from lstmprobe.report.causal_figures import patch_heatmap
        from lstmprobe.report.output import save_figure

        metric = "flip_rate" if len(pairs) > 1 else "delta_bits"
        values = sw.flip_rate if metric == "flip_rate" else sw.delta_bits
        names = [str(r[0]) if len(r) == 1 else f"{len(r)} units" for r in sw.rows]
        title = (
            f"patching {len(pairs)} pair{'s' if len(pairs) > 1 else ''}, aligned from the {side}"
        )
        ax = patch_heatmap(
            values,
            names,
            sw.columns,
            sw.labels,
            counts=sw.pairs.tolist(),
            metric=metric,
            title=title,
        )
        fmt = "svg" if figure.suffix.lower() == ".svg" else "png"
        save_figure(ax.figure, figure, fmt)
    d = sw.to_dict()
    arrays = {"flip_rate": sw.flip_rate, "delta_bits": sw.delta_bits}
    meta = {k: v for k, v in d.items() if k not in arrays}
    return d, Saved({"kind": "sweep", "pairs": len(pairs), **meta}, arrays)


@click.command("attribute")
@click.argument("model")
@click.argument("corpus")
@int_option("--position", "-p", required=True, help="Where the target is computed (a position).")
@click.option("--unit", "-u", default=None, help="Attribute this unit's value there instead.")
@click.option("--char", default=None, help="The next char whose log-prob is attributed.")
@choice_option("--method", choices=("ig", "grad-input"), default="ig", help="The method.")
@int_option("--steps", default=64, minimum=1, help="Integrated gradients' interpolation points.")
@int_option("--window", default=60, minimum=1, help="Chars attributed, ending at --position.")
@click.option(
    "--state", "states", multiple=True, help="States attributed [each layer's cell (GRU: hidden)]."
)
@store_option
@reset_option("How the corpus is read; default: as the store was recorded, else none.")
@click.option("-o", "--output", default=None, help="Figure: .png, .svg or .html.")
@click.option("--force", is_flag=True, help="Use a store recorded with other model weights.")
@path_or_stdout_option("--json", "json_path", "Print the result as JSON, or write it to PATH.")
@click.option("--no-save", is_flag=True, help="Do not add it to STORE.attributions.h5.")
@model_options
@quiet_option
@handle_errors
def attribute_command(
    model: str,
    corpus: str,
    position: int,
    unit: str | None,
    char: str | None,
    method: str,
    steps: int,
    window: int,
    states: tuple[str, ...],
    store: str,
    reset: str | None,
    output: str | None,
    force: bool,
    json_path: str | None,
    no_save: bool,
    model_options: ModelOptions,
    quiet: bool,
) -> None:
    """Which earlier chars, and which units at which steps, drove a prediction?

    Attributes the log-probability of the next char after --position (or a unit's
    value there, --unit) to the input chars of the --window before it and to each
    state unit after each of them, by integrated gradients (--steps midpoints from a
    zero baseline; the completeness gap is printed) or gradient x input. The state
    before the window is the model's own, held fixed. -o draws the text coloured by
    attribution (PNG, SVG, or an HTML page with the values on hover). Saved beside the
    store (acts.attributions.h5), where the report's unit card shows it.

    \b
    Examples:
        lstmprobe attribute ab.pt ab.txt --position 9 --reset line -o attr.png
        lstmprobe attribute ab.pt ab.txt -p 9 --unit layer0/cell/10 --method grad-input --json
        lstmprobe attribute code-lstm sample:code -p 500 --window 120 -o attr.html
    """
    from lstmprobe.causal.attribution import attribute
    from lstmprobe.cli._common import resolve_corpus
    from lstmprobe.errors import AttributionError, ReportError
    from lstmprobe.store import Recording
    from lstmprobe.text import check_chars, sequences

    fmt = None
    if output:
        suffix = Path(output).suffix.lower()
        fmt = {".png": "png", ".svg": "svg", ".html": "html", ".htm": "html"}.get(suffix)
        if fmt is None:
            raise ReportError(f"-o {output}: name the figure .png, .svg or .html")
        require_writable(output)
    if json_path not in (None, "-"):
        require_writable(json_path)
    saved_to = Recording.at(store).attributions
    if not no_save:
        require_writable(saved_to, "--no-save")
    loaded = _load(model, model_options, store, force)
    text = check_chars(resolve_corpus(corpus), loaded.vocab, model_options.unknown)
    if not 0 <= position < len(text):
        raise AttributionError(
            f"--position {position} is beyond the text ({len(text)} chars, positions "
            f"0..{len(text) - 1})"
        )
    how = reset or _recorded_reset(store)
    seqs = sequences(text, how)
    start = int(seqs[(seqs[:, 0] <= position) & (position < seqs[:, 1])][0, 0])
    end = int(seqs[(seqs[:, 0] <= position) & (position < seqs[:, 1])][0, 1])
    a = attribute(
        loaded.model,
        loaded.vocab,
        text[:end],
        position,
        unit=unit,
        char=char,
        method=method,  # type: ignore[arg-type]
        steps=steps,
        window=window,
        states=list(states) or None,
        start=start,
        threads=model_options.threads,
    )
    d = a.to_dict()
    d["settings"] = {"model": model, "corpus": corpus, "reset": how, "window": window}
    if not no_save:
        from lstmprobe.record import corpus_sha256
        from lstmprobe.store.causal_results import ATTRIBUTIONS, Saved, add_result

        arrays = {"inputs": a.inputs, **{f"states/{k}": v for k, v in a.states.items()}}
        meta = {k: v for k, v in d.items() if k != "inputs"}
        add_result(
            saved_to,
            ATTRIBUTIONS,
            Saved(meta, arrays),
            {"model_sha256": loaded.sha256, "corpus_sha256": corpus_sha256(text), "store": store},
            same=("target", "method", "start"),
        )
        d["saved"] = str(saved_to)
    if fmt is not None:
        _attribution_figure(a, d, Path(output), fmt)  # type: ignore[arg-type]
    if json_path == "-":
        echo_json(d)
        return
    if json_path:
        from lstmprobe.store import write_json_atomic

        write_json_atomic(json_path, d)
    click.echo(_attribution_text(a))
    if not quiet:
        if output:
            click.echo(f"wrote {output}")
        if not no_save:
            click.echo(f"saved {saved_to}")


def _recorded_reset(store: str) -> str:
    if not Path(store).exists():
        return "none"
    from lstmprobe.causal.units import recorded_reset
    from lstmprobe.store import ActivationStore

    with ActivationStore(store) as s:
        return recorded_reset(s)


def _attribution_text(a: Any) -> str:
    lines = [
        f"{a.method} attribution of {a.target.describe()} over positions "
        f"{a.start}..{a.start + len(a.text) - 1}: f = {a.value:.4f}"
    ]
    if a.baseline_value is not None:
        gaps = ", ".join(f"{k} {v:.2%}" for k, v in a.state_gaps.items())
        lines.append(
            f"  f(zero input) = {a.baseline_value:.4f}; the chars' attributions sum to "
            f"{a.inputs.sum():.4f} (completeness gap {a.input_gap:.2%} with {a.steps} steps; "
            f"states: {gaps})"
        )
    lines.append("  chars: " + "  ".join(f"{c!r}@{p} {v:+.3f}" for p, c, v in a.top_chars()))
    lines.append("  units: " + "  ".join(f"{u}@{p} {v:+.3f}" for u, p, v in a.top_units()))
    return "\n".join(lines)


def _attribution_figure(a: Any, d: dict[str, Any], path: Path, fmt: str) -> None:
    if fmt == "html":
        from lstmprobe.report.attribution_page import attribution_page
        from lstmprobe.report.output import atomic_output

        note = f"{a.method} over positions {a.start}..{a.start + len(a.text) - 1}" + (
            f", {a.steps} steps from a zero input" if a.method == "ig" else ""
        )
        with atomic_output(path) as part:
            part.write_text(attribution_page(d, note), encoding="utf-8")
        return
    from lstmprobe.report.causal_figures import attribution_view
    from lstmprobe.report.output import save_figure

    title = f"{a.method} attribution of {a.target.describe()}"
    fig = attribution_view(a.text, a.start, a.inputs, a.states, title=title)
    save_figure(fig, path, fmt)
