"""The names of recorded quantities: one spelling each, shared by the recorder, the store, the
command line and the report (``layer0/cell/17`` addresses unit 17 of ``cell`` in ``layer0``)."""

from __future__ import annotations

import re

from lstmprobe.errors import UnitError

LSTM_QUANTITIES: tuple[str, ...] = (
    "input_gate",
    "forget_gate",
    "candidate",
    "output_gate",
    "cell",
    "hidden",
)
GRU_QUANTITIES: tuple[str, ...] = ("reset_gate", "update_gate", "candidate", "hidden")
QUANTITIES: tuple[str, ...] = tuple(dict.fromkeys(LSTM_QUANTITIES + GRU_QUANTITIES))
#: The gates: sigmoid outputs, in (0, 1) (never exactly 0 in every unit of a recorded position).
GATES: tuple[str, ...] = ("input_gate", "forget_gate", "output_gate", "reset_gate", "update_gate")

_LAYER_RE = re.compile(r"layer\d+(_reverse)?")
_UNIT_FORM = "layer/quantity/index, e.g. layer0/cell/17"


def check_key(key: str) -> str:
    """Validate a dataset key ``layer{l}[_reverse]/{quantity}``; returns it."""
    parts = key.split("/") if isinstance(key, str) else []
    if len(parts) != 2 or not _LAYER_RE.fullmatch(parts[0]):
        raise UnitError(
            f"a dataset key looks like layer0/cell or layer1_reverse/hidden, got {key!r}"
        )
    if parts[1] not in QUANTITIES:
        raise UnitError(
            f"unknown quantity {parts[1]!r} in {key!r}; expected one of {', '.join(QUANTITIES)}"
        )
    return key


def parse_unit(name: str) -> tuple[str, int]:
    """Split a unit name into its dataset key and unit index.

    Only the form is checked here; whether the unit exists in a recording is checked by
    :meth:`ActivationStore.unit`.

    Parameters
    ----------
    name : str
        A unit name ``layer{l}[_reverse]/{quantity}/{index}``.

    Returns
    -------
    key : str
        The dataset key, e.g. ``"layer0/cell"``.
    index : int
        The unit's index within that dataset.

    Examples
    --------
    >>> parse_unit("layer0/cell/17")
    ('layer0/cell', 17)
    >>> parse_unit("layer1_reverse/hidden/0")
    ('layer1_reverse/hidden', 0)
    """
    if not isinstance(name, str):
        raise UnitError(f"a unit name is a string ({_UNIT_FORM}), got {type(name).__name__}")
    parts = name.split("/")
    if len(parts) != 3 or not parts[2].isdecimal() or not _LAYER_RE.fullmatch(parts[0]):
        raise UnitError(f"a unit name looks like {_UNIT_FORM}, got {name!r}")
    key = f"{parts[0]}/{parts[1]}"
    if parts[1] not in QUANTITIES:
        raise UnitError(
            f"unknown quantity {parts[1]!r} in unit {name!r}; expected one of "
            f"{', '.join(QUANTITIES)}"
        )
    return key, int(parts[2])


def layer_of(key: str) -> str:
    return key.split("/", 1)[0]
