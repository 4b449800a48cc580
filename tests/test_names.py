"""names.Key and names.Unit: the one parser of unit names, and its round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstmprobe.errors import UnitError
from lstmprobe.names import QUANTITIES, Key, Unit, check_key, layer_of, parse_unit

units = st.builds(
    Unit,
    layer=st.integers(0, 50),
    quantity=st.sampled_from(QUANTITIES),
    index=st.integers(0, 5000),
    direction=st.sampled_from(["forward", "reverse"]),
)


@given(units)
def test_unit_round_trips_through_its_one_spelling(unit: Unit) -> None:
    assert Unit.parse(str(unit)) == unit
    assert Key.parse(str(unit.key)) == unit.key
    assert parse_unit(str(unit)) == (str(unit.key), unit.index)
    assert layer_of(str(unit.key)) == unit.layer_name
    assert unit.key.unit(unit.index) == unit


@pytest.mark.parametrize(
    "bad",
    [
        "layer0/cell",
        "layer0/cell/",
        "layer0/cell/1/2",
        "layer0//cell/1",
        "layer0/cell/-1",
        "layer0/cell/1x",
        "layer0/cell/\u0661",  # an Arabic-Indic digit: isdecimal, but not a unit index
        "layer\u0661/cell/1",
        "layerx/cell/1",
        "Layer0/cell/1",
        "layer0/bogus/1",
        "layer0/cell/1<img src=x>",
        "",
    ],
)
def test_malformed_unit_names_are_refused_in_one_line(bad: str) -> None:
    with pytest.raises(UnitError) as info:
        Unit.parse(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("bad", ["layer0", "layer0/cell/1", "layer0/<b>", "layer0//cell", 17])
def test_malformed_keys_are_refused(bad: object) -> None:
    with pytest.raises(UnitError):
        Key.parse(bad)  # type: ignore[arg-type]
    with pytest.raises(UnitError):
        check_key(bad)  # type: ignore[arg-type]


def test_parts_are_validated_when_built_directly() -> None:
    with pytest.raises(UnitError):
        Unit(0, "cell", -1)
    with pytest.raises(UnitError):
        Unit(-1, "cell", 0)
    with pytest.raises(UnitError):
        Unit(0, "cell", True)  # type: ignore[arg-type]
    with pytest.raises(UnitError):
        Key(0, "cell", "backward")  # type: ignore[arg-type]


def test_gates_and_values() -> None:
    assert Key.parse("layer0/forget_gate").is_gate
    assert not Key.parse("layer0/candidate").is_gate
    assert {Unit.parse("layer0/cell/1"), Unit(0, "cell", 1)} == {Unit(0, "cell", 1)}
