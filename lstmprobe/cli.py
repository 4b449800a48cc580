"""The ``lstmprobe`` command line: thin click commands over the library.

Errors from the library (:class:`~lstmprobe.errors.LstmprobeError`) become one line on stderr and
exit status 1; usage errors are click's (exit 2).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from lstmprobe.errors import LstmprobeError

DEFAULT_STORE = "acts.h5"


def fail(message: str) -> None:
    """Print one red line on stderr and exit 1."""
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors (and Ctrl-C, and a broken pipe) into one line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LstmprobeError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            click.secho("interrupted", fg="red", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)

    return wrapper


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


store_option = click.option(
    "--store",
    default=DEFAULT_STORE,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The recording to read (what `lstmprobe record` wrote).",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar or chatter.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lstmprobe")
def main() -> None:
    """Open up trained LSTMs and GRUs.

    \b
    Record every gate and state of a model over a corpus, find the neurons that
    track properties of the text, and show them:
        lstmprobe record model.pt corpus.txt      # writes ./acts.h5
        lstmprobe find-neurons --feature quote    # reads ./acts.h5
        lstmprobe info                            # what a recording holds
    """


# --- commands: recording (foundation) ---

# --- commands: training and tasks ---

# --- commands: features and neurons ---


if __name__ == "__main__":
    main()
