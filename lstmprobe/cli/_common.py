"""What every command shares: one-line errors, warnings, JSON output, corpus names.

The options several commands take are in :mod:`lstmprobe.cli.options`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import click

from lstmprobe._io import write_failed
from lstmprobe.errors import LstmprobeError, LstmprobeWarning, for_cli

if TYPE_CHECKING:
    from lstmprobe.text import Corpus


def fail(message: str) -> None:
    """Print one red line on stderr and exit 1."""
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Python's warnings on the command line: lstmprobe's own as one ``warning:`` line each;
    those of other libraries (numpy's invalid values, matplotlib's missing glyphs, torch's
    kernels) are not shown -- they say nothing the user can act on."""
    if issubclass(category, LstmprobeWarning):
        warn(str(message))


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors (and Ctrl-C, and a broken pipe) into one line and a non-zero exit,
    and warnings into one line each (:func:`_show_warning`)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")  # each once per place, whatever -W says
                warnings.showwarning = _show_warning
                return func(*args, **kwargs)
        except LstmprobeError as exc:
            fail(for_cli(str(exc)))
        except KeyboardInterrupt:
            click.secho("interrupted", fg="red", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)
        except OSError as exc:  # a file the library could not write or read, said in one line
            where = f" {exc.filename}" if exc.filename else ""
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                fail(write_failed(exc.filename, exc))
            fail(f"cannot use{where}: {exc.strerror or exc}")

    return wrapper


def require_writable(path: str | os.PathLike[str], alternative: str | None = None) -> None:
    """Fail with one line unless a file can be created at ``path`` (its directory exists and
    takes new files): checked before long work, so that no computation is thrown away."""
    from lstmprobe._io import cannot_write

    reason = cannot_write(os.path.abspath(path))
    if reason is not None:
        other = f", or pass {alternative}" if alternative else ""
        fail(f"cannot write {os.fspath(path)}: {reason}{other}")


def warn(message: str) -> None:
    """One yellow warning line on stderr (the library's ``warn`` callbacks)."""
    click.secho(f"warning: {for_cli(message)}", fg="yellow", err=True)


def echo_json(obj: Any) -> None:
    """``obj`` as JSON on stdout, numbers as numbers (as the files have them)."""
    from lstmprobe._io import json_default

    def default(value: Any) -> Any:
        try:
            return json_default(value)
        except TypeError:
            return str(value)

    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=default))


def resolve_corpus(corpus: str) -> str:
    """A corpus path, or a bundled sample's name (``sample:code``) -> the text."""
    from lstmprobe.errors import CorpusError
    from lstmprobe.models.bundled import SAMPLES, sample_path
    from lstmprobe.text import read_corpus

    if corpus.startswith("sample:"):
        path = sample_path(corpus)
        if path is None:
            known = ", ".join(f"sample:{name}" for name in SAMPLES) or "none"
            raise CorpusError(f"no bundled sample {corpus!r}; bundled samples: {known}")
        return read_corpus(path)
    return read_corpus(corpus)


def resolve_corpora(sources: tuple[str, ...]) -> Corpus:
    """Corpus arguments -> a :class:`~lstmprobe.text.Corpus`: one bundled sample
    (``sample:code``), or text files, directories and globs (each file one sequence); the
    files skipped (not UTF-8 text) are told in one warning line."""
    from lstmprobe.text import Corpus, read_corpora

    if len(sources) == 1 and sources[0].startswith("sample:"):
        return Corpus.of_text(resolve_corpus(sources[0]), sources[0])
    corpus = read_corpora(sources)
    if corpus.skipped:
        shown = ", ".join(corpus.skipped[:3]) + (" ..." if len(corpus.skipped) > 3 else "")
        warn(f"skipped {len(corpus.skipped)} files that are not UTF-8 text: {shown}")
    return corpus


def split_names(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def layer_names(value: str | None) -> tuple[str, ...] | None:
    names = split_names(value)
    if names is None:
        return None
    return tuple(f"layer{n}" if n.isdigit() else n for n in names)


@contextlib.contextmanager
def cluster(address: str | None) -> Iterator[Any]:
    """A Dask client for ``--dask ADDRESS`` while the block runs (None without the flag)."""
    if address is None:
        yield None
        return
    from lstmprobe.distributed import connect

    with connect(address) as client:
        yield client
