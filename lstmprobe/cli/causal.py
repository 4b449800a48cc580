"""Commands that test whether units matter: ablate, dynamics."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import click

from lstmprobe.cli._common import (
    cluster,
    echo_json,
    fail,
    handle_errors,
    require_writable,
    resolve_corpora,
    warn,
)
from lstmprobe.cli.options import (
    ModelOptions,
    choice_option,
    dask_option,
    int_option,
    model_options,
    path_or_stdout_option,
    quiet_option,
    renamed_option,
    reset_option,
    script_options,
    store_option,
)
from lstmprobe.errors import for_cli


@click.command("ablate")
@click.argument("model")
@click.argument("corpus", nargs=-1, required=True)
@store_option
@click.option(
    "--unit", "-u", "units", multiple=True, help="A unit to intervene on (repeatable; together)."
)
@int_option(
    "--top",
    minimum=1,
    help="The top K units of -f FEATURE in STORE.rankings.json, each alone and all together.",
)
@click.option("--feature", "-f", default=None, help="Where the units should matter (on vs off).")
@choice_option(
    "--feature-at",
    choices=("state", "target"),
    default="state",
    help="Read FEATURE at t, where the model stands when it predicts char t+1 (state), or at "
    "the predicted char t+1 (target).",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="FEATURE is on above this value [default: 1 for a binary feature, not 0 for a "
    "continuous one].",
)
@click.option("--mode", default="zero", show_default=True, help="zero | mean | clamp:V.")
@int_option(
    "--n-random",
    "n_random",
    minimum=0,
    help="Random same-size unit sets of the same layer and quantity per condition [default: "
    "99, so that p can reach 0.01; every distinct set where there are fewer].",
)
@renamed_option("--random", "--n-random", "n_random", type=int)
@int_option("--seed", default=0, help="Seed of the random draws.")
@reset_option("How the model reads the corpus; default: as the store was recorded, else none.")
@click.option("--task", is_flag=True, help="Also measure exact greedy completion (task corpora).")
@click.option("--force", is_flag=True, help="Use a store recorded with other model weights.")
@model_options
@click.option(
    "-o", "--output", default=None, metavar="PATH", help="Write the results as JSON to PATH."
)
@path_or_stdout_option("--json", "json_path", "Print the results as JSON instead of the verdicts.")
@click.option("--no-save", is_flag=True, help="Do not write STORE.ablations.h5 beside the store.")
@dask_option
@quiet_option
@handle_errors
def ablate_command(
    model: str,
    corpus: tuple[str, ...],
    store: str,
    units: tuple[str, ...],
    top: int | None,
    feature: str | None,
    feature_at: str,
    threshold: float | None,
    mode: str,
    n_random: int | None,
    seed: int,
    reset: str | None,
    task: bool,
    force: bool,
    model_options: ModelOptions,
    output: str | None,
    json_path: str | None,
    no_save: bool,
    dask: str | None,
    quiet: bool,
) -> None:
    """Does a unit matter? Next-char loss with and without it, against random units.

    Runs MODEL over CORPUS as it is and with the units set to zero, their mean over the
    recording, or a constant, at every position; reports the change of the loss in bits
    per char where FEATURE is on and where it is off, the same for --n-random sets of
    units of the same layer and quantity, and the p-value of the chosen units' effect
    among them, with its floor 1/(1 + random sets). The loss of predicting char t+1
    counts as on where FEATURE is on at t, where the model stands when it predicts
    (--feature-at target: at t+1). The per-char loss differences are saved beside the
    store (acts.h5 -> acts.ablations.h5).

    \b
    Examples:
        lstmprobe ablate model.pt corpus.txt --unit layer0/cell/17 -f quote
        lstmprobe ablate model.pt corpus.txt --top 4 -f quote --n-random 20 -o out.json
        lstmprobe ablate counter.pt counter.txt --reset line -u layer0/cell/7 --task
        lstmprobe ablate counter.pt counter.txt -u layer0/cell/7 -f count:a --threshold 5
        lstmprobe ablate code-lstm sample:code --mode mean --unit layer1/hidden/3 -f indent
        lstmprobe ablate model.pt corpus/ --store run/acts.h5 --top 4 -f quote --dask local:8
    """
    from lstmprobe.causal import AblationError, check_selection, plan_ablation, run_ablation
    from lstmprobe.features import get_feature
    from lstmprobe.record.interventions import parse_mode
    from lstmprobe.store import Recording
    from lstmprobe.store.ablations import write_ablations

    parse_mode(mode)  # a bad --mode before any work
    check_selection(units, top, feature)
    feat = get_feature(feature) if feature else None
    loaded = model_options.load(model, store=store)
    files = resolve_corpora(corpus).checked(loaded.vocab, model_options.unknown)
    text = files.text
    if loaded.model.decoder is None:
        raise AblationError(
            f"{model} has no decoder, so it predicts no next char: loss and task effects cannot "
            "be measured; `lstmprobe record` and `lstmprobe dynamics` still work, and "
            "interventions still change its states (Recorder(model, interventions=...))"
        )
    if json_path not in (None, "-"):
        warn("--json PATH is now spelled -o PATH")
        output, json_path = output or json_path, None
    if output is not None:
        require_writable(output)  # before the work, not after it
    from lstmprobe.record import corpus_sha256

    plan = plan_ablation(
        store,
        loaded.sha256,
        corpus_sha256=corpus_sha256(text),
        units=units,
        top=top,
        feature=feat.name if feat else None,
        mode=mode,
        reset=reset,
        force=force,
        model=model,
    )
    if not no_save:
        Recording.at(plan.saved_to).check_writable("ablations", instead="`save=False`")
    with cluster(dask) as client:
        runs = None
        if client is not None:
            from lstmprobe.distributed.causal import runs_on

            runs = functools.partial(runs_on, client)
        result = run_ablation(
            loaded.model,
            loaded.vocab,
            text,
            plan.conditions,
            feature=feat,
            mode=mode,
            means=plan.means,
            reset=plan.reset,
            n_random=n_random,
            seed=seed,
            task=task,
            feature_at=feature_at,  # type: ignore[arg-type]
            threshold=threshold,
            threads=model_options.threads,
            progress=not quiet,
            # a corpus of several files: each file a sequence, as it was recorded
            sequences=files.sequences(plan.reset) if len(files.files) > 1 else None,
            runs=runs,
        )
    out = result.to_dict()
    out["settings"].update(model=model, corpus=" ".join(corpus), **plan.store)
    if not no_save:
        write_ablations(
            plan.saved_to,
            base_bits=result.base_bits,
            conditions=[c.to_dict() for c in result.conditions],
            deltas=result.deltas,
            random_deltas=result.random_deltas,
            feature_on=result.feature_on,
            attrs={
                "store": plan.store.get("store", ""),
                "model_sha256": loaded.sha256,
                "corpus_sha256": corpus_sha256(text),
                "reset": plan.reset,
                "feature": feature or "",
                "feature_at": feature_at if feature else "",
            },
        )
        out["saved"] = str(plan.saved_to)
    if output:
        from lstmprobe.store import write_json_atomic

        write_json_atomic(output, out)
    if json_path == "-":
        echo_json(out)
        return
    for cond in result.conditions:
        click.echo(for_cli(cond.verdict))
    if not quiet and not no_save:
        click.echo(f"saved {plan.saved_to}")


@click.command("dynamics")
@store_option
@click.option("--model", default=None, help="The recorded model (adds drivers).")
@model_options
@click.option(
    "--unit", "-u", "units", multiple=True, help="Units to show (default: longest timescales)."
)
@int_option("--top", default=10, minimum=1, help="Rows shown.")
@click.option("--force", is_flag=True, help="Use a model whose weights are not the recorded ones.")
@click.option(
    "-o",
    "--output",
    default=None,
    metavar="PATH",
    help="Where to write the dynamics [beside the store: acts.dynamics.json, or with "
    "--fixed-points acts.fixedpoints.json].",
)
@click.option(
    "--fixed-points", is_flag=True, help="Find the states a step with --input held returns to."
)
@click.option("--input", "input_char", default=None, help="The input char held (--fixed-points).")
@int_option("--samples", default=64, minimum=1, help="Recorded states the search starts from.")
@click.option(
    "--tolerance",
    default=1e-6,
    show_default=True,
    type=float,
    help="Largest residual of a fixed point.",
)
@int_option("--iterations", default=2000, minimum=0, help="Adam steps of the search.")
@int_option("--seed", default=0, help="Seed of the starting states' draw.")
@click.option(
    "--slow-points", is_flag=True, help="Report the slowest points when no fixed point converges."
)
@dask_option
@script_options
def dynamics_command(
    store: str,
    model: str | None,
    model_options: ModelOptions,
    units: tuple[str, ...],
    top: int,
    force: bool,
    fixed_points: bool,
    input_char: str | None,
    samples: int,
    tolerance: float,
    iterations: int,
    seed: int,
    slow_points: bool,
    output: str | None,
    dask: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Gate dynamics of every unit: when is its state written, held, reset?

    Splits each cell update into keep (f * c_prev) and write (i * g), gives each unit's
    forget-gate timescale -1/ln(mean f) with its distribution per layer, the chars
    after which it writes most and resets, and (with --model, or the recorded model
    when its file is still there) the units that drive it through W_hh. Saved beside
    the store (acts.h5 -> acts.dynamics.json).

    With --fixed-points --input C: the states s* where one step reading C returns to
    s* (|F(s*) - s*| <= --tolerance in every coordinate), searched from --samples
    recorded states, with the eigenvalues of the step's Jacobian there (|lambda| < 1:
    a stable direction; near 1: a slow mode). Saved as acts.fixedpoints.json; `lstmprobe
    plot trajectories` draws them.

    \b
    Examples:
        lstmprobe dynamics
        lstmprobe dynamics --store run1.h5 --unit layer0/cell/17 --json
        lstmprobe dynamics --model counter.pt --store counter.h5
        lstmprobe dynamics --store counter.h5 --model counter.pt --fixed-points --input b
        lstmprobe dynamics --store run/acts.h5 --dask local:4
    """
    from lstmprobe.causal import drivers_model, gate_dynamics
    from lstmprobe.store import ActivationStore, write_json_atomic

    if (fixed_points or input_char is not None) and dask is not None:
        fail("--fixed-points searches the model here; leave out --dask (it sums the dynamics)")
    if fixed_points or input_char is not None:
        _fixed_points(
            store,
            model,
            model_options,
            input_char,
            samples,
            tolerance,
            iterations,
            seed,
            slow_points,
            force,
            output,
            as_json,
            quiet,
        )
        return

    loaded = model_options.load(model, store=store) if model else None
    with ActivationStore(store) as s, cluster(dask) as client:
        saved = Path(output) if output else s.recording.dynamics
        require_writable(saved)  # before the work
        drivers = drivers_model(s, loaded, force=force, model_name=model)
        if client is None:
            result = gate_dynamics(s, drivers, list(units) or None, progress=not quiet)
        else:
            from lstmprobe.distributed import gate_dynamics as dynamics_on_cluster

            result = dynamics_on_cluster(s, drivers, list(units) or None, client=client)
    write_json_atomic(saved, result)
    if as_json:
        echo_json(result)
        return
    click.echo(format_dynamics(result, top))
    if not quiet:
        click.echo(f"saved {saved}")


def _num(v: Any, fmt: str = ".2f") -> str:
    return "inf" if v is None else format(v, fmt)


def format_dynamics(result: dict[str, Any], top: int) -> str:
    from lstmprobe.names import Unit

    lines = []
    for layer, info in result["layers"].items():
        d = info["timescales"]
        n = sum(1 for u in result["units"] if Unit.parse(u).layer_name == layer)
        lines.append(
            f"{layer} ({info['kind']}, {n} units): timescale median {_num(d['median'])} steps "
            f"[q25 {_num(d['q25'])}, q75 {_num(d['q75'])}, max {_num(d['max'])}], "
            f"infinite {d['infinite']}; per bin {d['counts']}"
        )
    names = (
        result.get("selected")
        or sorted(
            result["units"], key=lambda u: -(result["units"][u]["timescale"] or float("inf"))
        )[:top]
    )
    lines.append(
        f"  {'unit':<22} {'timescale':>9} {'keep f':>6} {'write':>6} {'held':>5} {'reset':>5}"
        "  writes at / resets at / strongest driver"
    )
    for name in names:
        u = result["units"][name]
        writes = " ".join(f"{w['char']}({w['mean_write']:+.2f})" for w in u["writes_at"])
        resets = " ".join(f"{r['char']}({r['mean_keep_gate']:.2f})" for r in u["resets_at"])
        driver = ""
        if u.get("drivers"):
            d0 = u["drivers"][0]
            driver = f" / {d0['from']} -> {d0['gate']} ({d0['weight']:+.2f})"
        lines.append(
            f"  {name:<22} {_num(u['timescale']):>9} {u['mean_keep_gate']:>6.3f} "
            f"{u['write_share']:>6.3f} {u['held']:>5.2f} {u['reset']:>5.2f}  "
            f"{writes} / {resets}{driver}"
        )
    lines += [
        "  columns:",
        "    timescale  -1/ln(mean keep gate) in steps: how long the state lasts if the gate sat"
        " at its mean (inf: mean keep gate 1)",
        "    keep f     mean forget gate f in [0, 1] (GRU: update gate z); 1 keeps all of the state",
        "    write      share of each update that is new, mean |i*g| / (|f*c(t-1)| + |i*g|), in"
        " [0, 1]",
        "    held       share of positions with f > 0.9 and i < 0.1 (the state kept untouched)",
        "    reset      share of positions with f < 0.1 (the state thrown away)",
        "    writes at / resets at  the chars after which the mean write is largest (signed) /"
        " the keep gate lowest; strongest driver: the unit whose hidden state feeds it most"
        " through W_hh, into which gate, with the weight",
    ]
    return "\n".join(lines)


@click.command("profile")
@store_option
@click.option(
    "--unit", "-u", "unit", required=True, help="The unit, e.g. layer0/cell/4 (any quantity of it)."
)
@click.option(
    "--by",
    default="char",
    show_default=True,
    help="Group positions by the char just read, or by the value of a FEATURE there.",
)
@int_option("--top", default=30, minimum=1, help="Groups shown (the most frequent chars).")
@click.option(
    "-o",
    "--output",
    default=None,
    help="Also draw the profile (PNG, or SVG for a .svg name): bars of the means, ± sd.",
)
@script_options
def profile_command(
    store: str,
    unit: str,
    by: str,
    top: int,
    output: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """A unit's cell, hidden, gates and candidate per input char (or feature value).

    For each char just read (or each value of --by FEATURE), the number of positions
    and the mean ± sd of every quantity of the unit there, and the two parts of its
    state's change: forgotten (f-1)*c(t-1) and written i*g, delta = forgotten + written.
    "Does the input gate ignore the X's while the candidate fires on them?"

    \b
    Examples:
        lstmprobe profile --unit layer0/cell/4
        lstmprobe profile --unit layer0/cell/4 --by count:a@char:Y --json
        lstmprobe profile --unit layer0/cell/4 -o profile.png
    """
    from lstmprobe.causal.profile import profile
    from lstmprobe.report import data

    with data.open_store(store) as s:
        if output:
            from lstmprobe.report.output import check_writable

            check_writable(Path(output))
        result = profile(s, unit, by, progress=not quiet)
    shown = result.top(top)
    if output:
        from lstmprobe.report import figures
        from lstmprobe.report.output import save_figure

        fmt = "svg" if output.lower().endswith(".svg") else "png"
        save_figure(figures.profile_figure(shown), Path(output), fmt, 150)
    if as_json:
        echo_json(result.to_dict())
        return
    click.echo(format_profile(shown, len(result.groups)))
    if output and not quiet:
        click.echo(f"wrote {output}")


#: short column names of a profile's quantities
_SHORT = {"input_gate": "input", "forget_gate": "forget", "output_gate": "output",
          "reset_gate": "reset", "update_gate": "update"}  # fmt: skip


def format_profile(p: Any, total_groups: int) -> str:
    """The ``lstmprobe profile`` table: a row per group, ``mean ±sd`` per quantity, and one
    line per column saying what it is."""
    from lstmprobe.causal.profile import MEANINGS
    from lstmprobe.report.theme import glyph

    what = "the char just read" if p.by == "char" else f"the value of {p.by}"
    lines = [f"{p.unit()} ({p.kind}) by {what}: {p.positions:,} positions"]
    head = "value" if p.by != "char" else "char"
    cols = [_SHORT.get(q, q) for q in p.quantities]
    lines.append(f"  {head:<8} {'count':>8}" + "".join(f"  {c:>12}" for c in cols))
    for gi, g in enumerate(p.groups):
        label = repr(glyph(g)) if p.by == "char" else g
        cells = "".join(
            f"  {_mean_sd(p.mean[qi, gi, 0], p.sd[qi, gi, 0]):>12}"
            for qi in range(len(p.quantities))
        )
        lines.append(f"  {label:<8} {int(p.counts[gi]):>8,}{cells}")
    if total_groups > len(p.groups):
        lines.append(f"  ({total_groups - len(p.groups)} rarer groups not shown; --top, --json)")
    lines.append("  columns: mean ±sd over the positions of the group (population sd)")
    for q, c in zip(("count", *p.quantities), ("count", *cols)):
        lines.append(f"  {c:>10}: {MEANINGS.get(q, q)}")
    for why in p.left_out:
        lines.append(f"  not shown: {why}")
    return "\n".join(lines)


def _mean_sd(m: float, sd: float) -> str:
    if not math.isfinite(m):
        return "–"
    return f"{m:+.2f} ±{sd:.2f}"


def _fixed_points(
    store: str,
    model: str | None,
    model_options: ModelOptions,
    char: str | None,
    samples: int,
    tolerance: float,
    iterations: int,
    seed: int,
    slow: bool,
    force: bool,
    output: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    from lstmprobe.causal.state_space import fixed_points, sample_states
    from lstmprobe.causal.units import check_model_matches
    from lstmprobe.errors import DynamicsError, ModelLoadError
    from lstmprobe.store import ActivationStore, Recording, write_json_atomic

    if char is None:
        raise DynamicsError("--fixed-points needs the input held fixed: --input C, e.g. --input a")
    saved = Path(output) if output else Recording.at(store).fixed_points
    require_writable(saved)
    with ActivationStore(store) as s:
        path = model or (s.model or {}).get("path")
        if not path or (model is None and not Path(path).exists()):
            raise ModelLoadError(
                f"--fixed-points runs the model: give it with --model (the recorded file "
                f"{path or '(unknown)'} is not there)"
            )
        loaded = model_options.load(path, store=store)
        check_model_matches(s, loaded.sha256, force=force, model=path)
        if char not in loaded.vocab:
            raise DynamicsError(f"--input {char!r} is not in the model's vocabulary")
        starts = sample_states(s, loaded.model, samples, seed)
    found = fixed_points(
        loaded.model,
        loaded.vocab,
        char,
        starts,
        tolerance=tolerance,
        iterations=iterations,
        require=not slow,
        progress=not quiet,
    )
    out = found.to_dict()
    out.update(store=str(store), model=str(path), model_sha256=loaded.sha256, seed=seed)
    write_json_atomic(saved, out)
    if as_json:
        echo_json(out)
        return
    click.echo(format_fixed_points(found))
    if not quiet:
        click.echo(f"saved {saved}")


def format_fixed_points(found: Any) -> str:
    import numpy as np

    keys = ", ".join(f"{k} ({n})" for k, n in found.keys)
    lines = [
        f"input {found.char!r} held: {len(found.points)} fixed point(s) within tolerance "
        f"{found.tolerance:g} from {found.starts} starts (state: {keys})"
    ]

    def describe(p: Any, what: str) -> str:
        mags = np.abs(p.eigenvalues)
        slow = (
            ", ".join(
                f"{v.real:+.4f}{v.imag:+.4f}i" if abs(v.imag) > 1e-9 else f"{v.real:+.4f}"
                for v in p.slow
            )
            or "none"
        )
        kind = "stable" if p.stable else "unstable"
        return (
            f"  {what}: residual {p.residual:.2g}, {kind} (largest |eigenvalue| "
            f"{mags.max():.4f}; reached from {p.found_from} start(s)); slow modes "
            f"(|eigenvalue| >= 0.9): {slow}"
        )

    lines += [describe(p, f"fixed point {i}") for i, p in enumerate(found.points)]
    if not found.points:
        lines.append("  no fixed point: the slowest points reached (not fixed):")
    lines += [describe(p, f"slow point {i}") for i, p in enumerate(found.slow_points[:3])]
    return "\n".join(lines)
