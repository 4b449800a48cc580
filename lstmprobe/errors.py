"""The exceptions lstmprobe raises for bad input.

Every error a user can cause subclasses :class:`LstmprobeError` and a builtin, and its message is
one line that says what was expected, what was given, and how to fix it. The command line prints
that line on stderr and exits with status 1.
"""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message without terminal colour codes (its type if empty).

    Examples
    --------
    >>> one_line(ValueError("bad shape\\nsecond line"))
    'bad shape'
    >>> one_line(KeyError())
    'KeyError'
    """
    text = _ANSI.sub("", str(exc)).strip()
    line = text.splitlines()[0].strip() if text else ""
    return line or type(exc).__name__


class LstmprobeError(Exception):
    """Base class of every error lstmprobe raises for bad input."""


class ModelLoadError(LstmprobeError, ValueError):
    """A model file is missing, corrupt, unsafe to load, or holds no recurrent layer."""


class CorpusError(LstmprobeError, ValueError):
    """A corpus is missing, empty, not UTF-8, or holds characters the vocabulary lacks."""


class VocabError(LstmprobeError, ValueError):
    """A vocabulary is malformed or does not match the model."""


class StoreError(LstmprobeError, ValueError):
    """An activation store is missing, incomplete, of another format, or would be overwritten."""


class StoreBusyError(StoreError):
    """A recording is being written by another process right now (it holds the file's lock)."""


class DistributedError(LstmprobeError, RuntimeError):
    """Dask is not installed, its scheduler cannot be reached, or a cluster's work failed."""


class FeatureError(LstmprobeError, ValueError):
    """A feature is unknown, fails, or gives labels that cannot be used."""


class TrainingError(LstmprobeError, ValueError):
    """Training settings are invalid, or contradict the checkpoint a run resumes."""


class UnitError(LstmprobeError, KeyError):
    """A unit or quantity name does not exist in a recording."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NoRecurrentLayerError(LstmprobeError, ValueError):
    """The model holds no ``nn.LSTM`` or ``nn.GRU``."""


class InterventionError(LstmprobeError, ValueError):
    """An intervention that cannot be applied (bad mode, value, mask or model)."""


class RecordError(LstmprobeError, ValueError):
    """Recording settings are invalid (an unknown dtype, reset or compression, a bad size)."""


class AblationError(LstmprobeError, ValueError):
    """An ablation that cannot be measured as asked."""


class AttributionError(LstmprobeError, ValueError):
    """An attribution that cannot be computed as asked (a position beyond the text, a model
    that is not a unidirectional char model, a bad method or step count)."""


class DynamicsError(LstmprobeError, ValueError):
    """A state-space analysis that cannot be done as asked (no state to project, a fixed-point
    search that does not converge)."""


class ReportError(LstmprobeError, ValueError):
    """A figure or report cannot be made or written (bad output path, nothing to show)."""


class InteropError(LstmprobeError, ValueError):
    """A recording cannot be exported to, or a project imported from, another tool's format."""


class LstmprobeWarning(UserWarning):
    """Base class of the warnings lstmprobe issues; the command line prints each as one line
    (warnings of other libraries -- numpy, matplotlib, torch -- it does not show)."""


class PrecisionWarning(LstmprobeWarning):
    """Recorded values do not fit the store's dtype (beyond float16's ±65,504: stored as ±inf)."""


#: The command-line spelling of each parameter that library messages name (in backticks:
#: ```force=True```, ```vocab```, ```dtype="float32"```); :func:`for_cli` rewrites them.
CLI_FLAGS: dict[str, str] = {
    "force": "--force",
    "save": "--save",
    "resume": "--resume",
    "vocab": "--vocab",
    "trust_pickle": "--trust-pickle",
    "embedding": "--embedding",
    "decoder": "--decoder",
    "dtype": "--dtype",
    "parallel": "--parallel",
    "reset": "--reset",
    "layers": "--layers",
    "quantities": "--quantities",
    "unknown": "--unknown",
    "out": "-o",
    "outdir": "-o",
    "store": "--store",
    "feature": "-f",
    "features": "-f",
    "units": "--unit",
    "top": "--top",
    "mode": "--mode",
    "n_random": "--n-random",
    "n_blocks": "--n-blocks",
    "max_probe_positions": "--max-probe-positions",
    "label_memory": "--label-memory",
    "keys": "--key",
    "probe": "--probe",
    "task": "--task",
    "start": "--start",
    "length": "--length",
    "max_chars": "--max-chars",
    "chars": "--chars",
    "threads": "--threads",
    "temperature": "--temperature",
    "hidden": "--hidden",
    "cell": "--cell",
    "dropout": "--dropout",
    "seq_len": "--seq-len",
    "batch_size": "--batch-size",
    "steps": "--steps",
    "epochs": "--epochs",
    "lr": "--lr",
    "clip": "--clip",
    "val_fraction": "--val-fraction",
    "checkpoint_every": "--checkpoint-every",
    "slim": "--slim",
    "count": "--count",
    "min_n": "--min-n",
    "max_n": "--max-n",
    "dask": "--dask",
    "shard_chars": "--shard-chars",
    "at": "--at",
    "align": "--align",
    "compare": "--compare",
    "position": "--position",
    "method": "--method",
    "window": "--window",
    "input_char": "--input",
    "tolerance": "--tolerance",
    "fmt": "--format",
    "word_map": "--map",
    "name": "--name",
}
#: The command that does what a library function named in a message does: ```rank_units(
#: store=acts.h5, features=quote)``` reads ```lstmprobe find-neurons --store acts.h5 -f quote```.
CLI_COMMANDS: dict[str, str] = {
    "record_corpus": "lstmprobe record",
    "rank_units": "lstmprobe find-neurons",
    "run_ablation": "lstmprobe ablate",
    "gate_dynamics": "lstmprobe dynamics",
    "patch": "lstmprobe patch",
    "patch_pairs": "lstmprobe patch",
    "attribute": "lstmprobe attribute",
    "fixed_points": "lstmprobe dynamics --fixed-points",
    "tasks.write": "lstmprobe tasks",
    "known_features": "lstmprobe features",
    "build_report": "lstmprobe report",
    "run_demo": "lstmprobe demo",
    "run_bench": "lstmprobe bench",
    "sample": "lstmprobe sample",
    "evaluate": "lstmprobe evaluate",
    "train": "lstmprobe train",
}
_PARAMETER = re.compile(r"`([a-z_]+)(?:=([^`\s]+))?`")
_CALL = re.compile(r"`([a-z_.]+)\(([^`()]*)\)`")


def for_cli(message: str) -> str:
    """``message`` with the parameters it names as the command line spells them.

    Library messages speak to a Python caller (```force=True```); the command line prints them
    through this function, so that its user reads the flag instead (``--force``), and the
    command for a library call (:data:`CLI_COMMANDS`). Backticked text that is not a known
    parameter or call is left as it is.

    Examples
    --------
    >>> for_cli("pass `force=True` to overwrite, or `resume=True` to continue")
    'pass --force to overwrite, or --resume to continue'
    >>> for_cli('record with `dtype="float32"`; `vocab` has 3 characters; see `lstmprobe models`')
    'record with --dtype float32; --vocab has 3 characters; see `lstmprobe models`'
    >>> for_cli("finish it: `record_corpus(MODEL, CORPUS, out=acts.h5, resume=True)`")
    'finish it: `lstmprobe record MODEL CORPUS -o acts.h5 --resume`'
    >>> for_cli("move it away, or pass `save=False`")
    'move it away, or pass --no-save'
    >>> for_cli('`known_features()` lists them; write `tasks.write("ab-memory", count=N)`')
    '`lstmprobe features` lists them; write `lstmprobe tasks ab-memory --count N`'
    """

    def flag(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        spelled = CLI_FLAGS.get(name)
        if spelled is None:
            return match.group(0)
        return _spelled(spelled, value)

    def command(match: re.Match[str]) -> str:
        spelled = CLI_COMMANDS.get(match.group(1))
        if spelled is None:
            return match.group(0)
        words = [spelled]
        for arg in filter(None, (a.strip() for a in match.group(2).split(","))):
            name, eq, value = arg.partition("=")
            words.append(
                _spelled(CLI_FLAGS.get(name, f"--{name.replace('_', '-')}"), value)
                if eq
                else arg.strip(chr(34) + chr(39))  # a positional argument, unquoted
            )
        return f"`{' '.join(words)}`"

    return _PARAMETER.sub(flag, _CALL.sub(command, message))


def _spelled(flag: str, value: str | None) -> str:
    """``--flag`` for a true switch, ``--no-flag`` for a false one, else ``--flag VALUE``
    (unquoted)."""
    if value is None or value == "True":
        return flag
    if value == "False" and flag.startswith("--"):
        return f"--no-{flag[2:]}"
    return f"{flag} {value.strip(chr(34) + chr(39))}"
