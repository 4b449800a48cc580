"""Features: built-ins on tricky text, the registry, regex and user functions."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmprobe.errors import FeatureError
from lstmprobe.features import Feature, feature, get_feature, known_features


def marks(spec: str, text: str, sequences: np.ndarray | None = None) -> str:
    """Labels as a string: '1'/'0' for binary, the digit for small counts, '.' for NaN."""
    values = get_feature(spec).labels(text, sequences)
    return "".join("." if np.isnan(v) else str(int(v))[-1] for v in values)


# --- quote (code) -------------------------------------------------------------------------


def test_quote_simple_and_closing_char_is_outside() -> None:
    assert marks("quote", 'a"bc"d') == "011100"


def test_quote_backslash_escape_does_not_close() -> None:
    assert marks("quote", r'"a\"b"x') == "1111100"


def test_quote_escaped_backslash_then_close() -> None:
    assert marks("quote", r'"a\\"x') == "111100"


def test_quote_ending_in_a_backslash_at_the_end_is_still_open() -> None:
    # the string never closes: its last char, a backslash, escapes nothing
    assert marks("quote", 'x"ab\\') == "01111"
    assert marks("quote", "'''a\\") == "11111"


def test_quote_single_quotes_and_other_quote_inside() -> None:
    assert marks("quote", "'a\"b'c") == "111100"


def test_quote_triple_spans_lines() -> None:
    text = 'x"""a\n"b"\n"""y'
    assert marks("quote", text) == "0" + "1" * 11 + "0" + "0"


def test_quote_unterminated_ends_at_newline() -> None:
    assert marks("quote", "x = 'abc\ny") == "0000111100"


def test_quote_in_comment_does_not_count() -> None:
    assert marks("quote", "a # don't\nb = 'c'") == "0" * 10 + "000011" + "0"


def test_quote_empty_string() -> None:
    assert marks("quote", 'a""b') == "0100"


# --- quote:prose ----------------------------------------------------------------------------


def test_prose_quotes_ignore_apostrophes() -> None:
    text = "He said \"don't go\" and left. It's 'fine'."
    m = marks("quote:prose", text)
    start = text.index('"')
    end = text.index('"', start + 1)
    assert m == "0" * start + "1" * (end - start) + "0" * (len(text) - end)


def test_prose_curly_quotes_and_paragraph_reset() -> None:
    text = "a “b” c “d\n\ne"
    assert (
        marks("quote:prose", text) == "0011000011000"
    )  # the quote ends where the empty line begins


# --- comment --------------------------------------------------------------------------------


def test_comment_markers_inside_strings_do_not_count() -> None:
    assert marks("comment", 'x = "#no" // yes\n') == "0" * 10 + "111111" + "0"


def test_comment_block_closing_slash_is_outside() -> None:
    assert marks("comment", "a/* b */c") == "0" + "111111" + "0" + "0"


def test_comment_hash_ends_at_newline() -> None:
    assert marks("comment", "#x\ny") == "1100"


def test_comment_quote_inside_comment_does_not_open_string() -> None:
    assert marks("comment", "# it's\nz = 1  # x") == "111111" + "0" + "0000000" + "111"


# --- bracket-depth ------------------------------------------------------------------------


def test_bracket_depth_nested_and_ignores_strings_and_comments() -> None:
    assert marks("bracket-depth", 'f(a[")"]) # (') == "0112222100000"


def test_bracket_depth_never_negative() -> None:
    assert marks("bracket-depth", "))(") == "001"


# --- indent and line-position -------------------------------------------------------------


def test_indent_spaces_and_tabs() -> None:
    text = "a\n    bc\n\tx\n  \t y\n"
    # line 2: 4 spaces; line 3: tab -> 4; line 4: 2 spaces + tab -> 4, + space -> 5
    assert marks("indent", text) == "00" + "1234440" + "440" + "124550"


def test_indent_tab_width_parameter() -> None:
    assert marks("indent:8", "\tx") == "88"
    with pytest.raises(FeatureError, match="tab width"):
        get_feature("indent:x")


def test_line_position_resets_on_newline_and_expands_tabs() -> None:
    assert marks("line-position", "ab\n\tc") == "12045"


# --- words ----------------------------------------------------------------------------------


def test_proper_noun_skips_sentence_start_and_common_words() -> None:
    text = "The man met Alice. She saw Bob and The Beatles."
    m = get_feature("proper-noun").labels(text)
    on = {text[i] for i in np.flatnonzero(m)}
    words = {w for w in ("Alice", "Bob", "Beatles") if m[text.index(w)] == 1}
    assert words == {"Alice", "Bob", "Beatles"}
    assert m[0] == 0  # "The" at the start
    assert m[text.index("She")] == 0  # after a full stop
    assert m[text.index("The B")] == 0  # a common word
    assert on <= set("AliceBobBeatles")


def test_proper_noun_not_all_caps() -> None:
    assert get_feature("proper-noun").labels("a NASA b").sum() == 0


def test_caps_words_of_two_letters_or_more() -> None:
    assert marks("caps", "I say FAKE news, OK") == "0000001111000000011"


def test_hashtag_mention_url() -> None:
    text = "see #MAGA2016 and @bob at https://x.co/a. a@b.com"
    h = get_feature("hashtag").labels(text)
    assert text[int(np.flatnonzero(h)[0]) : int(np.flatnonzero(h)[-1]) + 1] == "#MAGA2016"
    m = get_feature("mention").labels(text)
    assert "".join(text[i] for i in np.flatnonzero(m)) == "@bob"  # not the e-mail
    u = get_feature("url").labels(text)
    assert "".join(text[i] for i in np.flatnonzero(u)) == "https://x.co/a"  # no trailing dot
    pos = get_feature("hashtag:position").labels(text)
    assert pos[text.index("#")] == 1 and pos[text.index("#") + 8] == 9


# --- characters, counts, tasks --------------------------------------------------------------


def test_char_and_names() -> None:
    assert marks("char:a", "banana") == "010101"
    assert marks("char:space", "a b") == "010"
    assert marks("char:\\n", "a\nb") == "010"
    with pytest.raises(FeatureError, match="one character"):
        get_feature("char:ab")


def test_next_char_undefined_at_each_sequence_end() -> None:
    seqs = np.array([[0, 3], [3, 6]])
    assert marks("next-char:b", "abxabx", seqs) == "10.10."


def test_count_a_minus_b_per_sequence() -> None:
    seqs = np.array([[0, 8], [8, 11]])
    assert marks("count:a", "aaaXbbb\naXb", seqs) == "12332100" + "110"
    assert marks("count:x-y", "xxyx") == "1212"
    assert marks("count:X", "aXXbX") == "01223"


def test_ab_state() -> None:
    seqs = np.array([[0, 4], [4, 8], [8, 10]])
    assert marks("ab-state", "AxYa" + "BxYb" + "zz", seqs) == "1111" + "0000" + ".."


# --- regex ----------------------------------------------------------------------------------


def test_regex_marks_matches() -> None:
    assert marks("regex:b+", "abbcb") == "01101"


def test_regex_that_does_not_compile() -> None:
    with pytest.raises(FeatureError, match="does not compile"):
        get_feature("regex:(")


def test_regex_with_colon_in_pattern() -> None:
    assert marks("regex:a:b", "a:bx") == "1110"


# --- registry and user functions -----------------------------------------------------------


def test_unknown_feature_lists_known_ones() -> None:
    with pytest.raises(FeatureError, match=r"unknown feature 'nope'; known: quote, .*char:X"):
        get_feature("nope")
    with pytest.raises(FeatureError, match=r"`known_features\(\)` lists them"):
        get_feature("nope")


def test_ab_state_hint_names_the_library_calls() -> None:
    hint = get_feature("ab-state").hint
    assert '`tasks.write("ab-memory", count=N, output=FILE)`' in hint
    assert '`reset="line"`' in hint and "lstmprobe" not in hint


def test_known_features_have_definitions() -> None:
    known = known_features()
    for name in ("quote", "quote:prose", "indent", "bracket-depth", "line-position", "comment",
                 "proper-noun", "hashtag", "url", "mention", "caps", "char:X", "next-char:X",
                 "regex:PATTERN", "count:a", "ab-state", "FILE.py:FUNC"):  # fmt: skip
        assert len(known[name]) > 20, name


def test_decorator_registers_and_returns_function() -> None:
    @feature("test-vowel")
    def vowel(text: str) -> np.ndarray:
        """The char just read is a vowel."""
        return np.array([c in "aeiou" for c in text], dtype=float)

    assert callable(vowel)
    f = get_feature("test-vowel")
    assert f.definition == "The char just read is a vowel."
    assert f.labels("hat").tolist() == [0.0, 1.0, 0.0]
    assert f.infer_kind(f.labels("hat")) == "binary"


def test_user_file_feature(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "my_features.py"
    path.write_text(
        "import numpy as np\n"
        "def in_x(text):\n    return np.array([c == 'x' for c in text], float)\n"
        "def wrong(text):\n    return [1.0]\n"
        "def boom(text):\n    raise RuntimeError('kaput')\n"
        "def seqs(text, sequences):\n    return np.full(len(text), float(len(sequences)))\n"
    )
    assert get_feature(f"{path}:in_x").labels("axb").tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(FeatureError, match=r"wrong.*shape \(1,\).*3 characters"):
        get_feature(f"{path}:wrong").labels("abc")
    with pytest.raises(
        FeatureError, match=r"boom.*failed at .*my_features.py:7 \(in boom\): RuntimeError: kaput"
    ):
        get_feature(f"{path}:boom").labels("abc")
    with pytest.raises(FeatureError, match=r"has no function 'nope'.*in_x"):
        get_feature(f"{path}:nope")
    with pytest.raises(FeatureError, match="does not exist"):
        get_feature(f"{tmp_path / 'missing.py'}:f")
    assert get_feature(f"{path}:seqs").labels("abcd", np.array([[0, 2], [2, 4]]))[0] == 2


def test_user_file_runs_once_however_often_its_specs_are_resolved(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    counter, path = tmp_path / "runs.txt", tmp_path / "counted.py"
    path.write_text(
        "import numpy as np\n"
        "from lstmprobe.features import feature\n"
        f"with open({str(counter)!r}, 'a') as fh:\n    fh.write('run\\n')\n"
        "@feature('test-counted-x')\n"
        "def in_x(text):\n    return np.array([c == 'x' for c in text], float)\n"
        "def plain(text):\n    return np.zeros(len(text))\n"
    )
    first = get_feature(f"{path}:in_x")
    assert get_feature(f"{path}:in_x") is first and first.name == "test-counted-x"
    get_feature(f"{path}:plain")
    assert counter.read_text().splitlines() == ["run"]
    stat = path.stat()  # an edited file (a new modification time) runs again
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    get_feature(f"{path}:in_x")
    assert counter.read_text().splitlines() == ["run", "run"]


def test_user_function_definition_is_its_docstrings_first_paragraph_on_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "documented.py"
    path.write_text(
        "def ones(text):\n"
        '    """Ones where\n    the char is x.\n\n    More detail."""\n'
        "    return [float(c == 'x') for c in text]\n"
    )
    assert get_feature(f"{path}:ones").definition == "Ones where the char is x."


def test_user_file_that_fails_to_import(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.py"
    path.write_text("raise ImportError('no module x')\n")
    with pytest.raises(FeatureError, match=r"importing feature file .* failed"):
        get_feature(f"{path}:f")


def test_feature_returning_strings_is_an_error() -> None:
    f = Feature("strs", lambda text: ["a"] * len(text))
    with pytest.raises(FeatureError, match="not numbers"):
        f.labels("ab")


def test_feature_returning_inf_is_an_error_naming_the_first_position() -> None:
    f = Feature("ramp", lambda text: [0.0, float("nan"), -np.inf, np.inf][: len(text)])
    with pytest.raises(FeatureError, match=r"'ramp' returned -inf at position 2 .*finite values"):
        f.labels("abcd")
    huge = Feature("huge", lambda text: np.full(len(text), 1e39))  # inf once float32
    with pytest.raises(FeatureError, match="position 0"):
        huge.labels("ab")
    assert np.isnan(f.labels("ab")[1])  # NaN stays what undefined is


@pytest.mark.skipif(importlib.util.find_spec("spacy") is not None, reason="spaCy is installed here")
def test_proper_noun_spacy_without_spacy_says_what_to_install() -> None:
    f = get_feature("proper-noun:spacy")
    for _ in range(2):  # the failed load is not cached: the same clear error each time
        with pytest.raises(FeatureError, match=r"needs spaCy \(pip install spacy\)"):
            f.labels("Ann met Bob.", np.array([[0, 4], [4, 12]]))


# --- properties -----------------------------------------------------------------------------

BUILTINS = [
    "quote", "quote:prose", "comment", "bracket-depth", "indent", "line-position",
    "proper-noun", "hashtag", "url", "mention", "caps", "char:a", "next-char:a", "count:a",
    "ab-state", "regex:[ab]+", "url:position",
]  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="ab AB\"'#/*\\\n\t(){}[]x.:@", max_size=60))
def test_labels_as_long_as_text(text: str) -> None:
    for spec in BUILTINS:
        values = get_feature(spec).labels(text)
        assert values.shape == (len(text),), spec
        assert values.dtype == np.float32
        if get_feature(spec).kind == "binary":
            assert np.isin(values[~np.isnan(values)], (0.0, 1.0)).all(), spec


# --- Python dialect ---------------------------------------------------------------------------


def test_python_dialect_reads_floor_division_as_an_operator() -> None:
    text = 'x = a // 2; s = "q"  # c\n'
    assert marks("comment", text).startswith("000000111")  # C-like: // opens a comment
    assert marks("comment:python", text) == "0" * 21 + "111" + "0"
    assert marks("quote:python", text) == "0" * 16 + "11" + "0" * 7
    assert marks("quote", text) == "0" * 25  # the string is hidden by the // "comment"


def test_python_bracket_depth_counts_after_floor_division() -> None:
    assert marks("bracket-depth:python", "f(a // 2)") == "011111110"


# --- failures that must stay one line -------------------------------------------------------


def test_regex_whose_repetition_count_overflows() -> None:
    with pytest.raises(FeatureError, match=r"does not compile: the repetition number is too large"):
        get_feature("regex:a{99999999999}")


def test_user_feature_failure_names_its_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "feats.py"
    path.write_text(
        "import numpy as np\n"
        "def helper(text):\n"
        "    return np.zeros(len(text)) / {}[text]\n"
        "def lookup(text):\n"
        "    return helper(text)\n"
    )
    with pytest.raises(FeatureError) as info:
        get_feature(f"{path}:lookup").labels("ab")
    message = str(info.value)
    assert f"at {path}:3 (in helper): KeyError: 'ab'" in message
    assert "\n" not in message


def test_user_feature_calling_sys_exit_is_a_failure(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "feats.py"
    path.write_text("import sys\ndef quits(text):\n    sys.exit(0)\n")
    with pytest.raises(FeatureError, match=r"feats.py:3 \(in quits\): SystemExit\(0\)"):
        get_feature(f"{path}:quits").labels("ab")
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.exit('bye')\n")
    with pytest.raises(
        FeatureError, match=r"importing .* failed at .*bad.py:2.*SystemExit\('bye'\)"
    ):
        get_feature(f"{bad}:f")


def test_user_feature_keeps_its_feature_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "myfeat.py"
    path.write_text(
        "import numpy as np\n"
        "from lstmprobe.features import feature\n"
        "@feature('c_comment_test', kind='continuous')\n"
        "def c_comment(text):\n"
        "    '''Chars read so far.'''\n"
        "    return np.arange(len(text), dtype=float)\n"
    )
    f = get_feature(f"{path}:c_comment")
    assert f.name == "c_comment_test"
    assert f.kind == "continuous"
    assert f.definition == "Chars read so far."
    assert f.labels("abc").tolist() == [0.0, 1.0, 2.0]


# --- C and C++ dialects ---------------------------------------------------------------------

# each line of C, then for each dialect a marker under it: ^ = 1, the last column the newline
C_LINES = [
    '#include "a.h"',
    '  #define S "x // y" /* c */ \\',
    "  more",
    "int f(void) { return '\"'; } // n",
    "/* #no",
    ' */ char *s = "a\\',
    'b";',
    "#if X",
]
C_MARKS = {
    "quote:c": [
        "         ^^^^  ",
        "            ^^^^^^^            ",
        "       ",
        "                     ^^          ",
        "       ",
        "              ^^^^",
        "^   ",
        "      ",
    ],
    "comment:c": [
        "               ",
        "                     ^^^^^^    ",
        "       ",
        "                            ^^^^ ",
        "^^^^^^^",
        "^^                ",
        "    ",
        "      ",
    ],
    "preprocessor": [
        "^^^^^^^^^^^^^^ ",
        "  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        "^^^^^^ ",
        "                                 ",
        "       ",
        "                  ",
        "    ",
        "^^^^^ ",
    ],
}


def test_c_dialects_read_directives_strings_and_comments() -> None:
    text = "\n".join(C_LINES) + "\n"
    for spec, lines in C_MARKS.items():
        assert [len(m) for m in lines] == [len(line) + 1 for line in C_LINES], spec
        want = "".join(lines).replace(" ", "0").replace("^", "1")
        assert marks(spec, text) == want, spec
    # the language-agnostic quote hides the strings of # lines behind a "comment"
    assert marks("quote", text)[: len(C_LINES[0]) + len(C_LINES[1])].count("1") == 0
    assert marks("bracket-depth:c", "#define F(x) ((x)+1)\n") == "000000000110012211100"
    assert marks("bracket-depth", "#define F(x) ((x)+1)\n") == "0" * 21  # a # comment


def test_a_hash_inside_a_line_or_a_comment_is_no_directive() -> None:
    assert marks("preprocessor", "x = 1; # no\n/*\n#no */\n\t# yes\n") == (
        "0" * 12 + "000" + "0000000" + "0" + "11111" + "0"
    )


C_ATOMS = [*"ab\"'\\/*#\n\t (){}x", "#define ", "#include ", "\\\n", "//", "/*", "*/", "  #"]


@settings(max_examples=150, deadline=None)
@given(
    atoms=st.lists(st.sampled_from(C_ATOMS), max_size=60),
    sizes=st.lists(st.integers(1, 9), max_size=40),
)
def test_c_dialects_stream_with_the_labels_of_the_whole_text(
    atoms: list[str], sizes: list[int]
) -> None:
    text = "".join(atoms)
    for spec in ("quote:c", "comment:c", "bracket-depth:c", "preprocessor"):
        scanner = get_feature(spec).scanner()
        got, i = [], 0
        for k in sizes:
            got.append(scanner.feed(text[i : i + k]))
            i += k
        got += [scanner.feed(text[i:]), scanner.finish()]
        np.testing.assert_array_equal(
            np.concatenate(got), get_feature(spec).labels(text), err_msg=f"{spec} on {text!r}"
        )


def test_the_c_dialects_are_listed_with_their_definitions() -> None:
    known = known_features()
    for name in ("quote:c", "comment:c", "bracket-depth:c", "preprocessor"):
        assert "C/C++" in known[name], name


def test_a_constant_feature_says_why_and_what_to_try() -> None:
    from lstmprobe.probes import make_labels

    header = '#ifndef A_H\n#define A_H\n#define NAME "lstm"\n#include "b.h"\n#endif\n'
    skip = make_labels("quote", header).skip
    assert skip is not None and skip.startswith("feature 'quote' is constant (0) on this corpus")
    assert "#include and #define lines read as comments" in skip and "try quote:python" in skip
    assert "quote:c (C/C++" in skip
    assert make_labels("quote:c", header).skip is None  # the strings are there
    assert "try comment:python" in (make_labels("preprocessor", "x = 1\n").skip or "")
    assert "holds no 'Z'" in (make_labels("char:Z", "abc").skip or "")


def test_registration_is_explicit_and_in_one_place():
    from lstmprobe.features import Registry, builtins, default_registry, prose, regex

    table = Registry()
    assert not table.features and not table.families  # a new table holds nothing
    builtins.register_all(table)
    assert "caps" not in table.features  # each module fills its own table
    prose.register_all(table)
    regex.register_all(table)
    assert {"quote", "bracket-depth", "indent", "caps"} <= set(table.features)
    assert set(table.features) <= set(default_registry().features)
    assert table.lookup("regex:a+").labels("baa").tolist() == [0.0, 1.0, 1.0]
    assert table.lookup("char:x").kind == "binary" and table.lookup("no-such") is None

    @table.feature("only-in-this-table", kind="binary")
    def only(text: str) -> np.ndarray:
        return np.zeros(len(text))

    assert table.lookup("only-in-this-table").func is only
    with pytest.raises(FeatureError, match="unknown feature 'only-in-this-table'"):
        get_feature("only-in-this-table")  # another table is not the default registry
