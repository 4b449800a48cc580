"""Commands that find neurons: features, find-neurons."""

from __future__ import annotations

import json
from typing import Any

import click

from lstmprobe.cli._common import (
    echo_json,
    fail,
    handle_errors,
    json_option,
    quiet_option,
    store_option,
    warn,
)


@click.command("features")
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
@click.option(
    "--ablate",
    "ablate_k",
    type=click.IntRange(1),
    default=None,
    metavar="K",
    help="Zero each of the top K units of every feature (needs --model) and add its causal "
    "effect and p-value against random units as columns (docs/causal.md).",
)
@click.option("--model", "model_path", default=None, help="The recorded model, for --ablate.")
@click.option(
    "--ablate-random",
    default=20,
    show_default=True,
    type=click.IntRange(0),
    help="Random units per ablated unit.",
)
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
    ablate_k: int | None,
    model_path: str | None,
    ablate_random: int,
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
        lstmprobe find-neurons -f quote --ablate 4 --model model.pt
    """
    from lstmprobe.probes import rank_units
    from lstmprobe.store import ActivationStore, write_json_atomic

    if ablate_k and not model_path:
        fail("--ablate runs the model again: give it with --model MODEL")

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
        if ablate_k:
            ranking = _with_causal(s, ranking, ablate_k, model_path, ablate_random, seed, quiet)
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


def _with_causal(
    store: Any, ranking: Any, k: int, model_path: str | None, n_random: int, seed: int, quiet: bool
) -> Any:
    """``--ablate K``: the ranking with causal columns for the top K units of each feature."""
    from lstmprobe.causal.ablation import ranking_effects
    from lstmprobe.cli.causal import check_model_matches
    from lstmprobe.models import load_model

    loaded = load_model(model_path)
    check_model_matches(store, loaded.sha256, False, model_path)
    effects = ranking_effects(
        ranking,
        loaded.model,
        loaded.vocab,
        store.text,
        k,
        reset=str(store.run_config.get("reset", "none")),
        n_random=n_random,
        seed=seed,
        progress=not quiet,
        warn=warn,
    )
    return ranking.with_columns(effects)
