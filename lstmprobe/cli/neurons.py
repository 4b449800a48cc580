"""Commands that find neurons: features, find-neurons."""

from __future__ import annotations

from typing import Any

import click

from lstmprobe.cli._common import echo_json, fail, handle_errors, require_writable, warn
from lstmprobe.cli.options import (
    int_option,
    path_or_stdout_option,
    quiet_option,
    script_options,
    store_option,
    trust_option,
)
from lstmprobe.errors import LstmprobeError


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
@path_or_stdout_option(
    "--json",
    "json_flag",
    help="Print the ranking as JSON instead of the table (as everywhere); --json PATH, the "
    "older spelling, writes it to PATH like --json-out.",
)
@click.option(
    "--json-out", "-o", "json_out", default=None, metavar="PATH", help="Write the JSON to PATH."
)
@path_or_stdout_option(
    "--csv",
    "csv_flag",
    help="Print the ranking as CSV instead of the table; --csv PATH writes it to PATH.",
)
@click.option("--csv-out", "csv_out", default=None, metavar="PATH", help="Write the CSV to PATH.")
@click.option(
    "--probe/--no-probe",
    default=True,
    show_default=True,
    help="Fit held-out probes, controls and intervals (off: scores only, one pass).",
)
@click.option("--key", "keys", multiple=True, help="Only these datasets, e.g. layer0/cell.")
@int_option(
    "--max-positions",
    default=50_000,
    minimum=100,
    help="Positions used for probes (contiguous windows).",
)
@int_option("--blocks", default=20, minimum=3, help="Blocks.")
@int_option("--seed", default=0, help="Seed of splits/controls.")
@int_option(
    "--label-memory",
    default=256,
    minimum=0,
    metavar="MB",
    help="Keep the labels in memory up to this size; beyond, compute them again from the "
    "stored text for each pass (same results, bounded memory, one more pass).",
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
@click.option("--model", "model_path", default=None, help="The recorded model, for --ablate.")
@int_option(
    "--ablate-random",
    minimum=0,
    help="Random units per ablated unit [default: 99, so that p can reach 0.01; every other "
    "unit of the layer where there are fewer].",
)
@trust_option
@quiet_option
@handle_errors
def find_neurons_command(
    store: str,
    features: tuple[str, ...],
    top: int,
    json_flag: str | None,
    json_out: str | None,
    csv_flag: str | None,
    csv_out: str | None,
    probe: bool,
    keys: tuple[str, ...],
    max_positions: int,
    blocks: int,
    seed: int,
    label_memory: int,
    no_save: bool,
    ablate_k: int | None,
    model_path: str | None,
    ablate_random: int | None,
    trust_pickle: bool,
    quiet: bool,
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
        lstmprobe find-neurons -f 'regex:https?://\\S+' -f 'next-char:b' --csv-out ranks.csv
        lstmprobe find-neurons -f quote --ablate 4 --model model.pt
    """
    from lstmprobe.probes import Ranking, rank_units
    from lstmprobe.store import ActivationStore

    json_stdout, json_path = _output("--json", json_flag, json_out)
    csv_stdout, csv_path = _output("--csv", csv_flag, csv_out)
    for path in (json_path, csv_path):
        if path is not None:
            require_writable(path)

    loaded = None
    if ablate_k and not model_path:
        fail("--ablate runs the model again: give it with --model MODEL")
    if ablate_k and model_path:
        from lstmprobe.models import load_model

        loaded = load_model(model_path, trust_pickle=trust_pickle)  # before the ranking

    with ActivationStore(store) as s:
        for key in keys:
            s.n_units(key)  # a clear error for an unknown dataset
        if loaded is not None:
            from lstmprobe.causal import check_model_matches

            check_model_matches(s, loaded.sha256, model=str(model_path))
        saved = None if no_save else s.sibling("rankings.json")
        earlier = None
        if saved is not None:
            require_writable(saved, "--no-save")  # before the work, not after it
            if saved.exists():
                try:
                    earlier = Ranking.read_json(saved)
                except LstmprobeError as exc:
                    fail(
                        f"{exc}; find-neurons merges its ranking into that file: move it away, "
                        "or pass --no-save"
                    )
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
        if ablate_k and loaded is not None:
            from lstmprobe.causal import with_causal_columns

            ranking = with_causal_columns(
                ranking,
                s,
                loaded,
                ablate_k,
                model=str(model_path),
                n_random=ablate_random,
                seed=seed,
                progress=not quiet,
                warn=warn,
            )
    if not any("skipped" not in f for f in ranking.features.values()):
        fail("no feature could be scored on this corpus (see the warnings above)")
    merged = ranking
    if saved is not None:
        merged = ranking.merged_with_saved(earlier, path=saved, warn=warn)
        merged.to_json(saved)
    if json_path:
        ranking.to_json(json_path)
    if csv_path:
        ranking.to_csv(csv_path)
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


def _output(flag: str, given: str | None, out: str | None) -> tuple[bool, str | None]:
    """Where one format goes: (to stdout?, file or None). ``--json`` alone (or ``--json -``) is
    stdout, ``--json PATH`` (the older spelling) and ``--json-out PATH`` a file."""
    stdout = given == "-" or out == "-"
    files = {p for p in (given, out) if p not in (None, "-")}
    if len(files) > 1:
        fail(f"{flag} {given} and {flag}-out {out} name two files; give one")
    return stdout, files.pop() if files else None


def column_notes(ranking: Any, top: int) -> str:
    """One line per column the find-neurons table shows: what it is and its range."""
    rows = [r for name in ranking.features for r in ranking.for_feature(name)[:top]]
    if not rows:
        return ""

    def shown(column: str) -> bool:
        return any(r.get(column) is not None for r in rows)

    kinds = {s.get("kind") for s in ranking.features.values() if "skipped" not in s}
    score = []
    if "binary" in kinds:
        score.append("binary feature: ROC AUC of the unit, folded to [0.5, 1] (0.5 = chance)")
    if "continuous" in kinds:
        score.append("continuous feature: |Spearman| in [0, 1] (0 = no monotone relation)")
    lines = ["  columns:", f"    score     {'; '.join(score)}; on every position"]
    lines.append("    sign      + the unit is higher where the feature is on (or larger), - lower")
    if shown("test_metric"):
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
    if shown("causal_p_value"):
        lines += [
            "    ablated   bits/char lost where the feature is on (read where the model"
            " predicts) when the unit is zeroed; > 0: the model needs it there",
            "    random    the same for random units of its layer and quantity (mean)",
            "    p         the share of random units at least as costly, counting the unit: its"
            " floor is 1/(1 + random units)",
        ]
    if any(
        (s.get("probe") or {}).get("test_metric") is not None for s in ranking.features.values()
    ):
        lines.append(
            "  the summary line's probe on many units can learn any per-char labelling, so its"
            " control is near its held-out metric by design (selectivity near 0); 'beyond the"
            " char' (its held-out metric minus a probe on the current char alone) says what the"
            " units know beyond the char"
        )
    return "\n".join(lines)
