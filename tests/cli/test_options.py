"""The shared options of lstmprobe/cli/options.py: each means the same in every command."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.cli.lm import TASKS
from lstmprobe.cli.options import (
    choice_option,
    int_option,
    path_or_stdout_option,
    reset_option,
    script_options,
)
from lstmprobe.errors import StoreError


def _command(*decorators):
    def callback(**kwargs):
        click.echo(json.dumps(kwargs, sort_keys=True))

    for decorator in reversed(decorators):
        callback = decorator(callback)
    return click.command()(callback)


def test_int_option_bounds_the_value_and_shows_its_default():
    cmd = _command(int_option("--top", default=10, minimum=1, maximum=50, help="Rows."))
    runner = CliRunner()
    assert json.loads(runner.invoke(cmd, []).output) == {"top": 10}
    assert json.loads(runner.invoke(cmd, ["--top", "50"]).output) == {"top": 50}
    for bad in ("0", "51", "x"):
        result = runner.invoke(cmd, ["--top", bad])
        assert result.exit_code == 2, bad
    assert "[default: 10; 1<=x<=50]" in runner.invoke(cmd, ["--help"]).output


def test_int_option_without_bounds_or_default_is_a_plain_integer():
    cmd = _command(int_option("--length", help="Chars."))
    runner = CliRunner()
    assert json.loads(runner.invoke(cmd, []).output) == {"length": None}
    assert json.loads(runner.invoke(cmd, ["--length", "-3"]).output) == {"length": -3}
    shown = runner.invoke(cmd, ["--help"]).output
    assert "--length INTEGER" in shown and "default" not in shown and "RANGE" not in shown


def test_choice_and_reset_options():
    cmd = _command(
        reset_option("How to read.", default="none"),
        choice_option("--group-by", choices=("first-char", "count"), help="Groups."),
    )
    runner = CliRunner()
    assert json.loads(runner.invoke(cmd, []).output) == {"group_by": None, "reset": "none"}
    out = runner.invoke(cmd, ["--reset", "line", "--group-by", "count"]).output
    assert json.loads(out) == {"group_by": "count", "reset": "line"}
    assert runner.invoke(cmd, ["--reset", "lines"]).exit_code == 2
    assert "[none|line]" in runner.invoke(cmd, ["--help"]).output


def test_path_or_stdout_option_takes_a_path_or_nothing():
    cmd = _command(path_or_stdout_option("--csv", "csv_flag", help="CSV."))
    runner = CliRunner()
    assert json.loads(runner.invoke(cmd, []).output) == {"csv_flag": None}
    assert json.loads(runner.invoke(cmd, ["--csv"]).output) == {"csv_flag": "-"}
    assert json.loads(runner.invoke(cmd, ["--csv", "out.csv"]).output) == {"csv_flag": "out.csv"}


def test_script_options_give_quiet_json_and_one_line_errors():
    @click.command()
    @script_options
    def cmd(quiet: bool, as_json: bool) -> None:
        if as_json:
            raise StoreError(f"quiet={quiet}: pass `force=True`")

    runner = CliRunner()
    assert runner.invoke(cmd, ["-q"]).exit_code == 0
    result = runner.invoke(cmd, ["--json", "--quiet"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: quiet=True: pass --force"


def test_the_tasks_the_cli_offers_are_the_library_tasks():
    from lstmprobe.lm.tasks import TASKS as LIBRARY_TASKS

    assert tuple(LIBRARY_TASKS) == TASKS
    for name in ("tasks", "evaluate"):
        shown = CliRunner().invoke(main, [name, "--help"]).output
        assert "selective-counter" in shown


def test_older_spellings_still_work_and_say_once_what_replaced_them(tmp_path):
    from tests.stores import BASE, build_store

    store = build_store(tmp_path / "acts.h5", BASE * 8)
    base = [
        "find-neurons",
        "--store",
        str(store),
        "-f",
        "quote",
        "--no-save",
        "--json",
        "-q",
        "--no-probe",
    ]
    new = CliRunner().invoke(main, [*base, "--n-blocks", "3", "--max-probe-positions", "200",
                                    "--label-memory", "1MB"])  # fmt: skip
    old = CliRunner().invoke(main, [*base, "--blocks", "3", "--max-positions", "200",
                                    "--label-memory", "1"])  # fmt: skip
    assert new.exit_code == 0 and old.exit_code == 0, old.output
    assert json.loads(new.stdout)["settings"] == json.loads(old.stdout)["settings"]
    assert json.loads(old.stdout)["settings"]["n_blocks"] == 3
    assert new.stderr == ""
    assert sorted(old.stderr.splitlines()) == [
        "warning: --blocks is now spelled --n-blocks",
        "warning: --label-memory 1 (megabytes) is now spelled --label-memory 1MB",
        "warning: --max-positions is now spelled --max-probe-positions",
    ]
    both = CliRunner().invoke(main, [*base, "--blocks", "3", "--n-blocks", "4"])
    assert both.exit_code == 2 and "older spelling of --n-blocks" in both.stderr


def test_the_renamed_options_are_hidden_and_each_names_its_replacement():
    renamed = {
        "find-neurons": {"--blocks", "--max-positions", "--ablate-random", "--json-out",
                         "--csv-out"},
        "ablate": {"--random"},
    }  # fmt: skip
    for name, old in renamed.items():
        hidden = {
            o for p in main.commands[name].params if getattr(p, "hidden", False) for o in p.opts
        }
        assert hidden == old, name
        shown = CliRunner().invoke(main, [name, "--help"]).output
        assert not any(f"{o} " in shown for o in old), name


def test_a_size_takes_units_and_refuses_what_is_not_one():
    from lstmprobe.cli.options import SIZE

    assert SIZE.convert("0", None, None) == 0
    assert SIZE.convert("2GB", None, None) == 2 << 30
    assert SIZE.convert("100000", None, None) == 100_000  # large enough to be bytes
    cmd = _command(click.option("--label-memory", type=SIZE, default="256MB"))
    runner = CliRunner()
    assert json.loads(runner.invoke(cmd, []).output) == {"label_memory": 256 << 20}
    bad = runner.invoke(cmd, ["--label-memory", "lots"])
    assert bad.exit_code == 2 and "is not a size" in bad.output
