"""The rules of an LSTMVis project: dictionary words and their stand-ins, types and layers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstmprobe.errors import InteropError
from lstmprobe.interop.lstmvis import (
    DICT_WHITESPACE,
    dataset_path,
    dict_word,
    key_of,
    parse_dict,
    type_name,
    word_char,
)
from lstmprobe.names import Key


@given(st.characters(exclude_categories=("Cs",)))
def test_every_character_has_a_word_that_one_dictionary_line_holds(char):
    word = dict_word(char)
    line = f"{word} 7"
    # LSTMVis splits the line on whitespace (ASCII, or Unicode in a Python 3 port): two fields,
    # or the leading-space rule for the space itself
    assert line.split() == [word, "7"] or (char == " " and line.startswith(" "))
    assert not any(c in DICT_WHITESPACE for c in word.strip(" ")) and "\n" not in word
    assert word_char(word) == char


def test_the_stand_ins_are_a_string_literal_s_spellings():
    assert [dict_word(c) for c in "\n\t\r\x0b\x0c\u2028"] == [
        "\\n",
        "\\t",
        "\\r",
        "\\v",
        "\\f",
        "\\u2028",
    ]
    assert dict_word("\\") == "\\" and word_char("\\") == "\\"  # a backslash is itself
    assert word_char("\\ud800") is None and word_char("<unk>") is None
    assert word_char("<unk>", {"<unk>": "?"}) == "?"


def test_types_and_layers_map_both_ways():
    for text in ("layer0/cell", "layer2/hidden", "layer1_reverse/forget_gate", "layer0/reset_gate"):
        key = Key.parse(text)
        assert key_of(type_name(key), key.layer + 1, "x") == key
    assert (
        type_name(Key.parse("layer0/cell")) == "state"
        and dataset_path(Key.parse("layer0/cell")) == "cell1"
    )
    assert type_name(Key.parse("layer1_reverse/hidden")) == "output_reverse"
    assert str(key_of("cell", 1, "x")) == "layer0/cell"  # a quantity's own name is read too
    with pytest.raises(InteropError, match="counted from 1"):
        key_of("state", 0, "x")
    with pytest.raises(InteropError, match="counted from 1"):
        key_of("state", True, "x")
    with pytest.raises(InteropError, match="has no lstmprobe quantity"):
        key_of("attention", 1, "x")


def test_a_dictionary_is_read_by_lstmvis_rules(tmp_path):
    path = tmp_path / "words.dict"
    path.write_bytes("a 0\n  1\n\\n 2\n\n\u00e9 3\r\nb\t4\n".encode())
    entries = parse_dict(path)
    assert {i: e.word for i, e in entries.items()} == {
        0: "a",
        1: " ",
        2: "\\n",
        3: "\u00e9",
        4: "b",
    }
    assert entries[3].line == 5
    path.write_bytes(b"a 0\n\xff 1\n")
    with pytest.raises(InteropError, match="not UTF-8"):
        parse_dict(path)
    path.write_text("a x\n")
    with pytest.raises(InteropError, match="the id 'x' is not an integer"):
        parse_dict(path)
    path.write_text("a 0\na 0\n")  # the same line twice is harmless
    assert len(parse_dict(path)) == 1
