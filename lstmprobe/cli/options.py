"""The options several commands take, written once: each means the same wherever it appears.

:func:`int_option` and :func:`choice_option` make the typed options (their defaults shown in
``--help``); :func:`script_options` is the ``--quiet``/``--json`` pair with one-line errors.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
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
