"""docs/commands.md lists every command with its Python function and every option with the
parameter it sets: generated from the commands themselves, so the page cannot fall behind.

``python -m tests.cli.test_commands_doc`` writes the page again after a command changes.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import sys
from pathlib import Path

import click

from lstmprobe.cli import main

PAGE = Path(__file__).resolve().parents[2] / "docs" / "commands.md"

#: each command's Python function (module, name): what it runs, taking the same parameters
FUNCTIONS: dict[str, tuple[str, str]] = {
    "record": ("lstmprobe.record", "record_corpus"),
    "info": ("lstmprobe.store", "ActivationStore.summary"),
    "bench": ("lstmprobe.record.bench", "run_bench"),
    "demo": ("lstmprobe.demo", "run_demo"),
    "tasks": ("lstmprobe.lm.tasks", "write"),
    "train": ("lstmprobe.lm", "train"),
    "sample": ("lstmprobe.lm", "sample"),
    "evaluate": ("lstmprobe.lm", "evaluate"),
    "models": ("lstmprobe.lm", "iter_bundled"),
    "features": ("lstmprobe.features", "known_features"),
    "find-neurons": ("lstmprobe.probes", "rank_units"),
    "report": ("lstmprobe.report", "build_report"),
    "plot text": ("lstmprobe.report.figures", "unit_text"),
    "plot gates": ("lstmprobe.report.figures", "unit_internals"),
    "plot saturation": ("lstmprobe.report.figures", "saturation"),
    "plot distributions": ("lstmprobe.report.figures", "distributions"),
    "plot separator": ("lstmprobe.report.figures", "separator"),
    "plot heatmap": ("lstmprobe.report.figures", "heatmap"),
    "plot dynamics": ("lstmprobe.report.figures", "keep_write"),
    "plot trajectories": ("lstmprobe.report.causal_figures", "trajectories"),
    "plot ablation": ("lstmprobe.report.figures", "random_effects_grid"),
    "profile": ("lstmprobe.causal.profile", "profile"),
    "ablate": ("lstmprobe.causal", "run_ablation"),
    "dynamics": ("lstmprobe.causal", "gate_dynamics"),
    "patch": ("lstmprobe.causal", "patch"),
    "attribute": ("lstmprobe.causal", "attribute"),
    "export": ("lstmprobe.interop", "export_lstmvis"),
    "import lstmvis": ("lstmprobe.interop", "import_lstmvis"),
    "consolidate": ("lstmprobe.store", "consolidate"),
}
#: more than one function, said in one line
ALSO: dict[str, str] = {
    "find-neurons": "saved with `probes.save_ranking`; `--ablate` adds "
    "`causal.with_causal_columns(ranking, store, model, k, n_random=...)`",
    "ablate": "the recording's part (`--store`, `--top`, `--mode mean`) is `causal.plan_ablation`",
    "export": "`--format explorer` runs `interop.export_explorer`",
    "plot text": "`--html` writes `report.html.text_page(store, unit, start, stop, width, rng)`",
    "plot saturation": "of `report.data.summarize(store, keys)`",
    "plot separator": "of `report.data.separator_values(store, key, char, group_by)`",
    "plot trajectories": "over `causal.trajectories(store, key, max_sequences)`",
    "plot ablation": "of the conditions `report.causal_views.load_ablations(store)` reads",
    "profile": "`-o` draws `report.figures.profile_figure(profile)`",
    "info": "`lstmprobe.store.ActivationStore(store).summary()`",
    "dynamics": "the drivers' model: `causal.drivers_model`; `--fixed-points` runs "
    "`causal.fixed_points` from `causal.state_space.sample_states`; with `--dask`, "
    "`distributed.gate_dynamics(..., client=)`",
    "record": "with `--dask`, `distributed.record_corpus(..., client=connect(ADDRESS))`",
    "patch": "`--pairs` runs `causal.patch_pairs` (pairs read by `text.read_pairs`), "
    "`--sweep` `causal.patch_sweep`; `--top` reads `causal.top_conditions`",
    "tasks": "`--pairs` runs `lm.tasks.write_pairs`",
}
for _name in ("find-neurons", "ablate"):
    ALSO[_name] += f"; with `--dask`, `distributed.{FUNCTIONS[_name][1]}(..., client=)`"
#: more functions whose parameters a command's options set (beside FUNCTIONS[name])
ALSO_TAKES: dict[str, tuple[tuple[str, str], ...]] = {
    "record": (("lstmprobe.record", "RecordOptions"), ("lstmprobe.models", "load_model")),
    "info": (("lstmprobe.store", "ActivationStore"),),
    "plot separator": (("lstmprobe.report.data", "separator_values"),),
    "plot text": (("lstmprobe.report.html", "text_page"),),
    "train": (("lstmprobe.lm", "TrainConfig"),),
    "find-neurons": (("lstmprobe.causal", "with_causal_columns"),
                     ("lstmprobe.causal", "run_ablation")),
    "ablate": (("lstmprobe.causal", "plan_ablation"),),
    "dynamics": (("lstmprobe.causal", "drivers_model"), ("lstmprobe.causal", "fixed_points")),
    "patch": (("lstmprobe.causal", "patch_pairs"), ("lstmprobe.causal", "patch_sweep")),
    "export": (("lstmprobe.interop", "export_explorer"),),
}  # fmt: skip
#: an option that sets a parameter of another name, or its opposite
SETS: dict[tuple[str, str], str] = {
    ("record", "model"): "`loaded` (`load_model(MODEL)`)",
    ("record", "corpus"): "`text` (the corpus read)",
    ("ablate", "corpus"): "`text` (the corpus read)",
    ("evaluate", "corpus"): "`text` (the corpus read)",
    ("train", "corpus"): "`text` (the corpus read)",
    ("report", "no_rankings"): "`use_rankings=False`",
    ("import lstmvis", "output"): "`out`",
    ("info", "store"): "`path` of `ActivationStore`",
    ("report", "no_figures"): "`figures=False`",
    ("find-neurons", "ablate_k"): "`k` of `with_causal_columns`",
    ("find-neurons", "no_save"): "*CLI* (no `save_ranking`)",
    ("ablate", "no_save"): "*CLI* (no saved per-char results)",
    ("plot saturation", "layer"): "`layers` (of `saturation`)",
    ("plot saturation", "store"): "`store` (of `summarize`)",
    ("plot ablation", "store"): "`store` (of `load_ablations`)",
    ("plot trajectories", "sequences"): "`max_sequences` (of `causal.trajectories`)",
    ("profile", "output"): "*CLI* (`profile_figure` drawn)",
    ("patch", "pairs_path"): "`pairs` (the file read by `text.read_pairs`)",
    ("patch", "units"): "`units` (`patch`), `conditions` (`patch_pairs`), `rows` (`patch_sweep`)",
    ("patch", "sweep"): "*CLI* (runs `patch_sweep`)",
    ("patch", "no_save"): "*CLI* (no saved results)",
    ("attribute", "corpus"): "`text` (the corpus read)",
    ("attribute", "no_save"): "*CLI* (no saved attribution)",
    ("record", "shard_chars"): "`shard_chars` of `distributed.record_corpus`",
    ("consolidate", "source"): "`source`",
    ("consolidate", "store"): "`source` (when STORE is not given)",
    **{
        (name, "dask"): "`client` (`distributed.connect(ADDRESS)`)"
        for name in ("record", "find-neurons", "ablate", "dynamics")
    },
}
MODEL_OPTIONS = ("vocab", "unknown", "trust_pickle", "threads")


def parameters(name: str) -> set[str]:
    """The parameter names of the functions a command runs."""
    out: set[str] = set()
    for module, function in (FUNCTIONS[name], *ALSO_TAKES.get(name, ())):
        obj = importlib.import_module(module)
        for part in function.split("."):
            obj = getattr(obj, part)
        if dataclasses.is_dataclass(obj):
            out |= {f.name for f in dataclasses.fields(obj)}
        elif callable(obj):
            out |= set(inspect.signature(obj).parameters)
    return out


#: what a positional argument is
ARGUMENTS = {
    "model": "A model file or a bundled model's name (`lstmprobe models`).",
    "corpus": "A UTF-8 text file, or a bundled sample (sample:NAME).",
    "corpora": "UTF-8 text files, directories or globs (each file one sequence), or a bundled "
    "sample (sample:NAME).",
    "source": "The recording to copy (default: --store).",
    "kind": "Which figure (see KIND above).",
    "name": "Which task.",
    "project": "The LSTMVis project folder (its lstm.yml).",
}


def commands() -> list[tuple[str, click.Command]]:
    """Every command, subcommands of a group as ``group sub``, in the order of ``--help``."""
    out = []
    for name, cmd in main.commands.items():
        if isinstance(cmd, click.Group):
            out += [(f"{name} {sub}", c) for sub, c in cmd.commands.items()]
        else:
            out.append((name, cmd))
    return out


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def page() -> str:
    lines = [
        "# Commands and their Python functions",
        "",
        "Every command of `lstmprobe` is a thin layer over one library function: the table of",
        "each command names the function and, for each option, the parameter it sets (one name",
        "on both sides: `--n-random` sets `n_random`, `--max-probe-positions` sets",
        "`max_probe_positions`). Options marked *CLI* only shape the command's output. The",
        "conventions every command follows:",
        "",
        "- **The model**: a required model is the first argument (`MODEL`: a file or a bundled",
        "  name, `lstmprobe models`); where it is optional it is `--model`. Every command that",
        "  loads one takes the same model options: `--vocab`, `--unknown`, `--trust-pickle`,",
        "  `--threads` (`cli/options.py`, `model_options`). Beside a store, a model file without",
        "  a vocabulary takes the recording's, once it is checked to fit the model.",
        "- **`-o`** is the command's main output file; **`--json`** prints JSON on stdout",
        "  instead of the text; **`--quiet`** drops progress bars and chatter.",
        "- **Older spellings** (`--random`, `--blocks`, `--max-positions`, `--ablate-random`,",
        "  `--json-out`, `--csv-out`, `--json PATH`, `--label-memory 256`) still work, hidden,",
        "  and say once on stderr what replaced them.",
        "- **Messages**: the library names parameters (`` `n_random=3` ``); the command line",
        "  prints them as flags (`--n-random 3`) through `errors.for_cli`.",
        "",
        "This page is generated from the commands (`python -m tests.cli.test_commands_doc`);",
        "`tests/cli/test_commands_doc.py` fails when it falls behind.",
        "",
    ]
    for name, cmd in commands():
        module, function = FUNCTIONS[name]
        lines += [f"## `lstmprobe {name}`", ""]
        lines.append(f"{_cell(cmd.get_short_help_str(120))}")
        lines.append("")
        lines.append(
            f"Python: `{module}.{function}`" + (f"; {ALSO[name]}." if name in ALSO else ".")
        )
        lines += ["", "| option | parameter | what |", "|---|---|---|"]
        known = parameters(name)
        for p in cmd.params:
            if getattr(p, "hidden", False):
                continue
            if isinstance(p, click.Argument):
                flags = p.human_readable_name
            else:
                flags = ", ".join(f"`{o}`" for o in (*p.opts, *p.secondary_opts))
            argument = "corpora" if p.name == "corpus" and getattr(p, "nargs", 1) == -1 else p.name
            what = _cell(getattr(p, "help", None)) or ARGUMENTS.get(str(argument), "")
            if p.name in MODEL_OPTIONS:
                what = "a model option (above)"
                cell = f"`{p.name}`" if p.name in known else "`load_model`'s, or the run's"
            elif (name, p.name) in SETS:
                cell = SETS[(name, str(p.name))]
            elif p.name in known:
                cell = f"`{p.name}`"
            else:
                cell = "*CLI*"
            lines.append(f"| {flags} | {cell} | {what} |")
        lines.append("")
    return "\n".join(lines)


def test_the_page_lists_every_command_with_its_function_and_parameters() -> None:
    assert sorted(name for name, _ in commands()) == sorted(FUNCTIONS), (
        "a command without its function in FUNCTIONS (tests/cli/test_commands_doc.py)"
    )
    for module, function in FUNCTIONS.values():
        obj = importlib.import_module(module)
        for part in function.split("."):
            obj = getattr(obj, part)  # the function named exists
    assert PAGE.read_text(encoding="utf-8") == page(), (
        "docs/commands.md is behind the commands: run python -m tests.cli.test_commands_doc"
    )


if __name__ == "__main__":
    PAGE.write_text(page(), encoding="utf-8")
    sys.stdout.write(f"wrote {PAGE}\n")
