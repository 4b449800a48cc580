"""The options several commands take, written once: each means the same wherever it appears.

:func:`int_option` and :func:`choice_option` make the typed options (their defaults shown in
``--help``); :func:`script_options` is the ``--quiet``/``--json`` pair with one-line errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lstmprobe.cli._common import handle_errors

DEFAULT_STORE = "acts.h5"

store_option = click.option(
    "--store",
    default=DEFAULT_STORE,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The recording to read (what `lstmprobe record` wrote).",
)
trust_option = click.option(
    "--trust-pickle",
    "--trust-code",
    "trust_pickle",
    is_flag=True,
    help="Allow a pickled full module: unpickling runs code from the file, so only for files "
    "you trust. TorchScript archives and .safetensors files never need it.",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar or chatter.")
dask_option = click.option(
    "--dask",
    "dask",
    metavar="ADDRESS",
    default=None,
    help="Run on a Dask cluster: local:N starts N worker processes here, tcp://HOST:8786 uses a "
    'running scheduler (pip install "lstmprobe[dask]"; docs/scale-out.md).',
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def int_option(
    *decls: str,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    help: str | None = None,
    **extra: Any,
) -> Decorator:
    """An integer option, bounded when ``minimum`` or ``maximum`` is given, its default shown.

    Examples
    --------
    >>> @click.command()
    ... @int_option("--top", default=10, minimum=1, help="Rows shown.")
    ... def cmd(top: int) -> None: ...
    >>> cmd.params[0].type, cmd.params[0].default
    (<IntRange x>=1>, 10)
    """
    bounded = minimum is not None or maximum is not None
    kind = click.IntRange(minimum, maximum) if bounded else int
    return click.option(*decls, type=kind, help=help, **_default(default), **extra)


def choice_option(
    *decls: str, choices: tuple[str, ...], default: str | None = None, help: str | None = None
) -> Decorator:
    """An option that takes one of ``choices``, its default shown when it has one."""
    kind = click.Choice(list(choices))
    return click.option(*decls, type=kind, help=help, **_default(default))


def _default(value: Any) -> dict[str, Any]:
    """click's ``default`` and ``show_default``: given and shown, or not given at all."""
    return {} if value is None else {"default": value, "show_default": True}


def path_or_stdout_option(flag: str, dest: str, help: str) -> Decorator:
    """``--json`` alone (stdout, ``-``) or ``--json PATH`` (a file): an option whose value is
    optional."""
    return click.option(
        flag, dest, is_flag=False, flag_value="-", default=None, metavar="[PATH]", help=help
    )


def reset_option(help: str, default: str | None = None) -> Decorator:
    """``--reset none|line``: how a command reads a corpus (one stream, or a sequence a line)."""
    return choice_option("--reset", choices=("none", "line"), default=default, help=help)


threads_option = int_option(
    "--threads",
    minimum=1,
    help="torch CPU threads (default: torch's choice, usually one per core).",
)


def unknown_option(help: str = "What to do with characters not in the vocabulary.") -> Decorator:
    """``--unknown error|skip|map:C``, as ``record`` and the commands that read text take it."""
    return click.option(
        "--unknown", default="error", show_default=True, metavar="error|skip|map:C", help=help
    )


def script_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--quiet`` and ``--json`` (``quiet``, ``as_json``), and the command's errors as one line."""
    return quiet_option(json_option(handle_errors(func)))
