"""The names of recorded quantities: one spelling each, shared by the recorder, the store, the
command line and the report (``layer0/cell/17`` addresses unit 17 of ``cell`` in ``layer0``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

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

_LAYER_RE = re.compile(r"layer([0-9]+)(_reverse)?")
_UNIT_FORM = "layer/quantity/index, e.g. layer0/cell/17"
_KEY_FORM = "layer/quantity, e.g. layer0/cell or layer1_reverse/hidden"

Direction = Literal["forward", "reverse"]


def _check_quantity(quantity: str, whole: str) -> None:
    if quantity not in QUANTITIES:
        raise UnitError(
            f"unknown quantity {quantity!r} in {whole!r}; expected one of {', '.join(QUANTITIES)}"
        )


@dataclass(frozen=True, order=True)
class Key:
    """A recorded quantity of one layer: the dataset ``layer{l}[_reverse]/{quantity}``.

    Parsed once at the edge (:meth:`parse`), then passed on as a value; ``str(key)`` is the
    one spelling used by the store, the command line, JSON and the report.

    Examples
    --------
    >>> key = Key.parse("layer1_reverse/hidden")
    >>> key.layer, key.quantity, key.direction
    (1, 'hidden', 'reverse')
    >>> str(key), key.layer_name, key.is_gate
    ('layer1_reverse/hidden', 'layer1_reverse', False)
    >>> key.unit(3)
    Unit.parse('layer1_reverse/hidden/3')
    """

    layer: int
    quantity: str
    direction: Direction = "forward"

    def __post_init__(self) -> None:
        if isinstance(self.layer, bool) or not isinstance(self.layer, int) or self.layer < 0:
            raise UnitError(f"a layer is a non-negative integer, got {self.layer!r}")
        if self.direction not in ("forward", "reverse"):
            raise UnitError(f"a direction is 'forward' or 'reverse', got {self.direction!r}")
        _check_quantity(self.quantity, f"{self.layer_name}/{self.quantity}")

    @classmethod
    def parse(cls, text: str | Key) -> Key:
        """``"layer0/cell"`` -> ``Key(0, "cell")``; a :class:`Key` is returned as it is."""
        if isinstance(text, Key):
            return text
        if not isinstance(text, str):
            raise UnitError(f"a dataset key is a string ({_KEY_FORM}), got {type(text).__name__}")
        parts = text.split("/")
        if len(parts) != 2 or _LAYER_RE.fullmatch(parts[0]) is None:
            raise UnitError(f"a dataset key looks like {_KEY_FORM}, got {text!r}")
        layer, direction = _parse_layer(parts[0])
        _check_quantity(parts[1], text)
        return cls(layer, parts[1], direction)

    @property
    def layer_name(self) -> str:
        """``layer0`` or ``layer0_reverse``: the store's group of this layer and direction."""
        return layer_name(self.layer, self.direction)

    @property
    def is_gate(self) -> bool:
        """A sigmoid gate (its values lie in (0, 1)); the candidate is not one."""
        return self.quantity in GATES

    def unit(self, index: int) -> Unit:
        """Unit ``index`` of this dataset."""
        return Unit(self.layer, self.quantity, index, self.direction)

    def __str__(self) -> str:
        return f"{self.layer_name}/{self.quantity}"

    def __repr__(self) -> str:
        return f"Key.parse({str(self)!r})"


@dataclass(frozen=True, order=True)
class Unit:
    """One unit of one recorded quantity: ``layer{l}[_reverse]/{quantity}/{index}``.

    The one parser of unit names (:meth:`parse`); every stage takes a :class:`Unit` (or parses
    the user's text here, at the edge) and asks it for its parts instead of splitting text.

    Examples
    --------
    >>> u = Unit.parse("layer0/cell/17")
    >>> u.layer, u.quantity, u.index, u.direction
    (0, 'cell', 17, 'forward')
    >>> str(u), str(u.key)
    ('layer0/cell/17', 'layer0/cell')
    >>> Unit.parse(u) is u
    True
    >>> sorted([Unit.parse("layer1/cell/0"), Unit.parse("layer0/hidden/2")])
    [Unit.parse('layer0/hidden/2'), Unit.parse('layer1/cell/0')]
    """

    layer: int
    quantity: str
    index: int
    direction: Direction = "forward"

    def __post_init__(self) -> None:
        Key(self.layer, self.quantity, self.direction)  # validates the parts
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise UnitError(f"a unit index is a non-negative integer, got {self.index!r}")

    @classmethod
    def parse(cls, text: str | Unit) -> Unit:
        """``"layer0/cell/17"`` -> ``Unit(0, "cell", 17)``; a :class:`Unit` is returned as it is."""
        if isinstance(text, Unit):
            return text
        if not isinstance(text, str):
            raise UnitError(f"a unit name is a string ({_UNIT_FORM}), got {type(text).__name__}")
        parts = text.split("/")
        if len(parts) != 3 or not parts[2].isdecimal() or not parts[2].isascii():
            raise UnitError(f"a unit name looks like {_UNIT_FORM}, got {text!r}")
        if _LAYER_RE.fullmatch(parts[0]) is None:
            raise UnitError(f"a unit name looks like {_UNIT_FORM}, got {text!r}")
        layer, direction = _parse_layer(parts[0])
        _check_quantity(parts[1], text)
        return cls(layer, parts[1], int(parts[2]), direction)

    @property
    def key(self) -> Key:
        """The dataset this unit belongs to."""
        return Key(self.layer, self.quantity, self.direction)

    @property
    def layer_name(self) -> str:
        return self.key.layer_name

    def __str__(self) -> str:
        return f"{self.layer_name}/{self.quantity}/{self.index}"

    def __repr__(self) -> str:
        return f"Unit.parse({str(self)!r})"


def parse_name(text: str | Unit | Key) -> Unit | Key:
    """A unit (``layer0/cell/17``) or a dataset key (``layer0/cell``), whichever ``text`` names.

    Examples
    --------
    >>> parse_name("layer0/cell"), parse_name("layer0/cell/17")
    (Key.parse('layer0/cell'), Unit.parse('layer0/cell/17'))
    """
    if isinstance(text, (Unit, Key)):
        return text
    if isinstance(text, str) and text.count("/") == 1:
        return Key.parse(text)
    return Unit.parse(text)


def _parse_layer(text: str) -> tuple[int, Direction]:
    match = _LAYER_RE.fullmatch(text)
    if match is None:  # callers match first; kept for a direct call
        raise UnitError(f"a layer looks like layer0 or layer1_reverse, got {text!r}")
    return int(match[1]), ("reverse" if match[2] else "forward")


def layer_name(layer: int, direction: Direction = "forward") -> str:
    """The one spelling of a layer's name: ``layer_name(1, "reverse")`` is ``layer1_reverse``.

    Examples
    --------
    >>> layer_name(0), layer_name(1, "reverse")
    ('layer0', 'layer1_reverse')
    """
    return f"layer{layer}" + ("_reverse" if direction == "reverse" else "")


def parse_layer(text: str) -> tuple[int, Direction]:
    """``"layer1_reverse"`` -> ``(1, "reverse")``.

    Examples
    --------
    >>> parse_layer("layer2")
    (2, 'forward')
    """
    if not isinstance(text, str):
        raise UnitError(f"a layer is a string like layer0, got {type(text).__name__}")
    return _parse_layer(text)


def check_key(key: str) -> str:
    """Validate a dataset key ``layer{l}[_reverse]/{quantity}``; returns it."""
    return str(Key.parse(key))


def parse_unit(name: str) -> tuple[str, int]:
    """Split a unit name into its dataset key and unit index (see :meth:`Unit.parse`).

    Only the form is checked here; whether the unit exists in a recording is checked by
    :meth:`ActivationStore.unit`.

    Examples
    --------
    >>> parse_unit("layer0/cell/17")
    ('layer0/cell', 17)
    >>> parse_unit("layer1_reverse/hidden/0")
    ('layer1_reverse/hidden', 0)
    """
    unit = Unit.parse(name)
    return str(unit.key), unit.index


def layer_of(key: str) -> str:
    """``"layer0/cell"`` -> ``"layer0"``."""
    return Key.parse(key).layer_name
