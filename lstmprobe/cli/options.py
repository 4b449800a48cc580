"""The options several commands take, written once: each means the same wherever it appears.

:func:`int_option` and :func:`choice_option` make the typed options (their defaults shown in
``--help``); :func:`script_options` is the ``--quiet``/``--json`` pair with one-line errors.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

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


_RENAMED = "lstmprobe.renamed"


def renamed_option(old: str, new: str, dest: str, **settings: Any) -> Decorator:
    """A hidden older spelling ``old`` of the option ``new`` (whose parameter is ``dest``): it
    still works, and says once, on stderr, what replaced it; giving both is a usage error.

    ``settings`` are click's for the old option (``type``, ``is_flag``, ...).

    Examples
    --------
    >>> @click.command()
    ... @click.option("--n-random", "n_random", type=int, default=20)
    ... @renamed_option("--random", "--n-random", "n_random", type=int)
    ... def cmd(n_random: int) -> None:
    ...     click.echo(n_random)
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(cmd, ["--random", "5"])
    >>> result.stdout, result.stderr
    ('5\\n', 'warning: --random is now spelled --n-random\\n')
    """

    def remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is not None and value != () and value is not False:
            ctx.meta.setdefault(_RENAMED, {})[dest] = (old, new, value)
        return value

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            ctx = click.get_current_context()
            given = ctx.meta.get(_RENAMED, {}).get(dest)
            if given is not None and given[0] == old:
                source = ctx.get_parameter_source(dest)
                if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
                    raise click.UsageError(f"{old} is an older spelling of {new}; give {new} once")
                click.secho(f"warning: {old} is now spelled {new}", fg="yellow", err=True)
                kwargs[dest] = given[2]
            return func(*args, **kwargs)

        name = f"renamed_{old.lstrip('-').replace('-', '_')}"
        option = click.option(
            old, name, hidden=True, expose_value=False, callback=remember, **settings
        )
        return option(command)

    return decorator


class Size(click.ParamType):
    """A size in bytes, with an optional unit: ``1000000``, ``256MB``, ``1.5GB``, ``512K``.

    A number without a unit below 100,000 is the older spelling in megabytes
    (``--label-memory 256``): read as such, and said once.

    Examples
    --------
    >>> SIZE.convert("256MB", None, None), SIZE.convert("1.5 GiB", None, None)
    (268435456, 1610612736)
    """

    name = "size"
    _UNITS: ClassVar[dict[str, int]] = {
        "": 1,
        "B": 1,
        "K": 1 << 10,
        "M": 1 << 20,
        "G": 1 << 30,
        "T": 1 << 40,
    }

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(?:I?B)?\s*", str(value).upper())
        if match is None:
            self.fail(f"{value!r} is not a size: give bytes or e.g. 256MB, 1GB", param, ctx)
        number, unit = float(match[1]), match[2]
        if not unit and not str(value).strip().upper().endswith("B") and 0 < number < 100_000:
            flag = param.opts[0] if param is not None and param.opts else "the size"
            click.secho(
                f"warning: {flag} {value} (megabytes) is now spelled {flag} {value}MB",
                fg="yellow",
                err=True,
            )
            unit = "M"
        return int(number * self._UNITS[unit])


SIZE = Size()


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
    help="torch CPU threads while the model runs (default: 1 for a small model on the CPU, "
    "whose forward gains nothing from more, so the rest overlaps it; torch's choice otherwise).",
)
vocab_option = click.option(
    "--vocab",
    type=click.Path(dir_okay=False),
    help="JSON vocabulary (a list in index order, or an object char->index) for a model file "
    "that stores none, such as a plain state_dict; with a store, its vocabulary is used when "
    "this is left out and it fits the model.",
)
UNKNOWN_HELP = "What to do with characters not in the vocabulary."


def unknown_option(help: str = UNKNOWN_HELP) -> Decorator:
    """``--unknown error|skip|map:C``, as ``record`` and the commands that read text take it."""
    return click.option(
        "--unknown", default="error", show_default=True, metavar="error|skip|map:C", help=help
    )


@dataclass(frozen=True)
class ModelOptions:
    """The options of every command that loads a model (:func:`model_options`): ``--vocab``,
    ``--unknown``, ``--trust-pickle``, ``--threads``."""

    vocab: str | None = None
    unknown: str = "error"
    trust_pickle: bool = False
    threads: int | None = None

    def load(self, model: str, *, store: str | None = None, **extra: Any) -> Any:
        """The model file (or bundled name) ``model``, loaded as these options say.

        With ``store`` (a recording of it) and no ``--vocab``, a file that stores no vocabulary
        takes the recording's, checked against the model like any other. ``extra`` goes to
        :func:`~lstmprobe.models.load_model` (``embedding``, ``decoder``, ``force``).
        """
        from lstmprobe.models import load_model

        fallback = None
        if store is not None and self.vocab is None:
            fallback = _recorded_vocab(store)
        return load_model(
            model,
            vocab=self.vocab,
            trust_pickle=self.trust_pickle,
            default_vocab=fallback,
            **extra,
        )


def _recorded_vocab(store: str) -> Any:
    """The vocabulary a recording stores, or None when there is no readable recording."""
    import os

    from lstmprobe.errors import LstmprobeError
    from lstmprobe.store import ActivationStore

    if not os.path.isfile(store):
        return None
    try:
        with ActivationStore(store, require_complete=False) as s:
            return s.vocab
    except LstmprobeError:
        return None  # the command reads the store itself and says what is wrong with it


def model_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--vocab``, ``--unknown``, ``--trust-pickle`` and ``--threads``, the same flags with the
    same help on every command that loads a model, given to it as one :class:`ModelOptions`
    (the parameter ``model_options``)."""

    @functools.wraps(func)
    def command(
        *args: Any,
        vocab: str | None,
        unknown: str,
        trust_pickle: bool,
        threads: int | None,
        **kw: Any,
    ) -> Any:
        return func(*args, model_options=ModelOptions(vocab, unknown, trust_pickle, threads), **kw)

    wrapped: Callable[..., Any] = command
    for option in (threads_option, unknown_option(), trust_option, vocab_option):
        wrapped = option(wrapped)
    return wrapped


def script_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--quiet`` and ``--json`` (``quiet``, ``as_json``), and the command's errors as one line."""
    return quiet_option(json_option(handle_errors(func)))
