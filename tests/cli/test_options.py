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
