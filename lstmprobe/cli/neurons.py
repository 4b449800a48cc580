"""Commands that find neurons: features, find-neurons."""

from __future__ import annotations

import functools
from typing import Any

import click

from lstmprobe.cli._common import (
    cluster,
    echo_json,
    fail,
    handle_errors,
    require_writable,
    warn,
)
from lstmprobe.cli.options import (
    SIZE,
    ModelOptions,
    dask_option,
    int_option,
    model_options,
    path_or_stdout_option,
    quiet_option,
    renamed_option,
    script_options,
    store_option,
)


@click.command("features")
@script_options
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


@click.command("find-neurons")
@store_option
@click.option(
    "--feature",
    "-f",
    "features",
    multiple=True,
    required=True,
    help="Feature to rank units for (repeatable): a built-in, char:X, regex:P, FILE.py:FUNC.",
)
@int_option("--top", default=10, minimum=1, help="Rows shown.")
@click.option(
    "-o",
    "--output",
    "outputs",
    multiple=True,
    metavar="PATH",
    help="Also write the ranking to PATH: CSV when PATH ends in .csv, else JSON (repeatable).",
)
@path_or_stdout_option(
    "--json", "json_flag", help="Print the ranking as JSON instead of the table."
)
@path_or_stdout_option("--csv", "csv_flag", help="Print the ranking as CSV instead of the table.")
@renamed_option("--json-out", "-o", "json_out", metavar="PATH")
@renamed_option("--csv-out", "-o PATH.csv", "csv_out", metavar="PATH")
@click.option(
    "--probe/--no-probe",
    default=True,
    show_default=True,
    help="Fit held-out probes, controls and intervals (off: scores only, one pass).",
)
@click.option("--key", "keys", multiple=True, help="Only these datasets, e.g. layer0/cell.")
@int_option(
    "--max-probe-positions",
    default=50_000,
    minimum=100,
    help="Positions used for probes (contiguous windows).",
)
@renamed_option("--max-positions", "--max-probe-positions", "max_probe_positions", type=int)
@int_option(
    "--n-blocks",
    default=20,
    minimum=3,
    help="Contiguous blocks of the train/validation/test split and the bootstrap.",
)
@renamed_option("--blocks", "--n-blocks", "n_blocks", type=int)
@int_option("--seed", default=0, help="Seed of splits/controls.")
@click.option(
    "--label-memory",
    type=SIZE,
    default="256MB",
    show_default=True,
    metavar="SIZE",
    help="Keep the labels in memory up to this size (bytes, or with a unit: 256MB, 1GB); "
    "beyond, compute them again from the stored text for each pass (same results, bounded "
    "memory, one more pass).",
)
@click.option("--no-save", is_flag=True, help="Do not write STORE.rankings.json beside the store.")
@int_option(
    "--ablate",
    "ablate_k",
    minimum=1,
    metavar="K",
    help="Zero each of the top K units of every feature (needs --model) and add its causal "
    "effect and p-value against random units as columns (docs/causal.md).",
)
@click.option("--model", default=None, help="The recorded model, for --ablate.")
@model_options
@int_option(
    "--n-random",
    minimum=0,
    help="Random same-size unit sets per ablated unit [default: 99, so that p can reach 0.01; "
    "every other unit of the layer where there are fewer].",
)
@renamed_option("--ablate-random", "--n-random", "n_random", type=int)
@dask_option
@quiet_option
@handle_errors
def find_neurons_command(
    store: str,
    features: tuple[str, ...],
    top: int,
    outputs: tuple[str, ...],
    json_flag: str | None,
    csv_flag: str | None,
    probe: bool,
    keys: tuple[str, ...],
    max_probe_positions: int,
    n_blocks: int,
    seed: int,
    label_memory: int,
    no_save: bool,
    ablate_k: int | None,
    model: str | None,
    model_options: ModelOptions,
    n_random: int | None,
    dask: str | None,
    quiet: bool,
    json_out: str | None = None,
    csv_out: str | None = None,
) -> None:
    """Rank every unit of every recorded quantity by how well it tracks each feature.

    Scores: ROC AUC (binary features) or |Spearman| (continuous), with held-out probe
    metrics, a control task (selectivity) and a bootstrap interval for the top units.
    The ranking is saved beside the store (acts.h5 -> acts.rankings.json), merged by
    feature with what is there: ranking a feature again replaces it, the others stay.
    The recording itself is never modified.

    \b
    Examples:
        lstmprobe find-neurons --feature quote
        lstmprobe find-neurons --store run1.h5 -f indent -f bracket-depth --top 20 -o out.json
        lstmprobe find-neurons -f quote --json | jq '.rows[0]'
        lstmprobe find-neurons -f 'regex:https?://\\S+' -f 'next-char:b' -o ranks.csv
        lstmprobe find-neurons -f quote --ablate 4 --model model.pt
        lstmprobe find-neurons --store run/acts.h5 -f quote --dask tcp://scheduler:8786
    """
    from lstmprobe.features import get_feature
    from lstmprobe.probes import rank_units
    from lstmprobe.probes.ranking import save_ranking, saved_ranking
    from lstmprobe.store import ActivationStore

    files = _outputs(outputs, json_flag, json_out, csv_flag, csv_out)
    resolved = [get_feature(f) for f in dict.fromkeys(features)]  # each spec built once
    json_stdout, csv_stdout = json_flag == "-", csv_flag == "-"
    for path in files:
        require_writable(path)

    loaded = None
    if ablate_k and not model:
        fail("--ablate runs the model again: give it with --model MODEL")
    if ablate_k and model:
        loaded = model_options.load(model, store=store)  # before the ranking

    with ActivationStore(store) as s, cluster(dask) as client:
        scorer, runs = None, {}
        if client is not None:
            from lstmprobe.distributed.causal import runs_on
            from lstmprobe.distributed.scoring import unit_scores as score_on_cluster

            scorer = functools.partial(score_on_cluster, client=client)
            runs = {"runs": functools.partial(runs_on, client)}
        for key in keys:
            s.n_units(key)  # a clear error for an unknown dataset
        if loaded is not None:
            from lstmprobe.causal import check_model_matches

            check_model_matches(s, loaded.sha256, model=str(model))
        recording = s.recording
        saved = None if no_save else recording.rankings
        if saved is not None:  # before the work, not after it
            recording.check_writable("rankings", instead="`save=False`")
            saved_ranking(recording)  # one that cannot be merged into is refused now
        ranking = rank_units(
            s,
            resolved,
            keys=list(keys) or None,
            probe=probe,
            max_probe_positions=max_probe_positions,
            n_blocks=n_blocks,
            seed=seed,
            label_memory=label_memory,
            progress=not quiet,
            warn=warn,
            scorer=scorer,
        )
        if ablate_k and loaded is not None:
            from lstmprobe.causal import with_causal_columns

            ranking = with_causal_columns(
                ranking,
                s,
                loaded,
                ablate_k,
                model=str(model),
                features={f.name: f for f in resolved},  # as ranked: a user's file read once
                n_random=n_random,
                seed=seed,
                threads=model_options.threads,
                progress=not quiet,
                warn=warn,
                **runs,
            )
    if not ranking.scored:
        fail("no feature could be scored on this corpus (see the warnings above)")
    merged = ranking
    if saved is not None:
        merged = save_ranking(ranking, recording, warn=warn)
    for path, fmt in files.items():
        ranking.to_csv(path) if fmt == "csv" else ranking.to_json(path)
    if json_stdout:
        click.echo(ranking.to_json(), nl=False)
    if csv_stdout:
        click.echo(ranking.to_csv(), nl=False)
    if not json_stdout and not csv_stdout:
        click.echo(ranking.format_table(top), nl=False)
        if not quiet:
            click.echo(column_notes(ranking, top))
        if saved is not None and not quiet:
            kept = [f for f in merged.features if f not in ranking.features]
            more = f" (with the earlier {', '.join(kept)})" if kept else ""
            click.echo(f"saved {saved}{more}")


def _outputs(
    outputs: tuple[str, ...],
    json_flag: str | None,
    json_out: str | None,
    csv_flag: str | None,
    csv_out: str | None,
) -> dict[str, str]:
    """The files to write, each with its format: ``-o PATH`` (CSV for ``.csv``, else JSON),
    and the older spellings ``--json PATH``, ``--json-out PATH``, ``--csv PATH``,
    ``--csv-out PATH`` (each said once)."""
    files = {p: "csv" if p.lower().endswith(".csv") else "json" for p in outputs}
    for flag, path, fmt in (("--json", json_flag, "json"), ("--csv", csv_flag, "csv")):
        if path not in (None, "-"):
            warn(f"{flag} PATH is now spelled -o PATH")
            files[path] = fmt  # type: ignore[index]
    for path, fmt in ((json_out, "json"), (csv_out, "csv")):
        if path is not None:
            files[path] = fmt
    return files


def column_notes(ranking: Any, top: int) -> str:
    """One line per column the find-neurons table shows: what it is and its range."""
    rows = [r for name in ranking.scored for r in ranking.for_feature(name)[:top]]
    if not rows:
        return ""
    kinds = {s.kind for s in ranking.features.values() if s.scored}
    score = []
    if "binary" in kinds:
        score.append("binary feature: ROC AUC of the unit, folded to [0.5, 1] (0.5 = chance)")
    if "continuous" in kinds:
        score.append("continuous feature: |Spearman| in [0, 1] (0 = no monotone relation)")
    lines = ["  columns:", f"    score     {'; '.join(score)}; on every position"]
    lines.append("    sign      + the unit is higher where the feature is on (or larger), - lower")
    if any(r.test_metric is not None for r in rows):
        lines += [
            "    held-out  the same metric on held-out contiguous test blocks, the sign fitted on"
            " the train blocks (AUC: 0.5 chance, 1 perfect; Spearman: 0 chance, 1 perfect)",
            "    control   the same on control labels: a random label per char type, with the"
            " feature's values (Hewitt & Liang); high = the unit reacts to which char it read",
            "    select.   held-out - control, in [-1, 1]: 0 = no better on the feature than on"
            " the meaningless char-type control; > 0 = it tracks the feature beyond which char it"
            " read; < 0 = it fits the char-type control better than the feature (a char detector)",
            "    sample [95% interval]  the score on the probe's sampled positions, and a block"
            " bootstrap interval of it",
        ]
    if any(r.causal is not None and r.causal.causal_p_value is not None for r in rows):
        lines += [
            "    ablated   bits/char lost where the feature is on (read where the model"
            " predicts) when the unit is zeroed; > 0: the model needs it there",
            "    random    the same for random units of its layer and quantity (mean)",
            "    p         the share of random units at least as costly, counting the unit: its"
            " floor is 1/(1 + random units)",
        ]
    if any(
        s.probe is not None and s.probe.test_metric is not None for s in ranking.features.values()
    ):
        lines.append(
            "  the summary line's probe on many units can learn any per-char labelling, so its"
            " control is near its held-out metric by design (selectivity near 0); 'beyond the"
            " char' (its held-out metric minus a probe on the current char alone) says what the"
            " units know beyond the char"
        )
    return "\n".join(lines)
