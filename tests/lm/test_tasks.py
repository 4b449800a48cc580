"""The synthetic task generators: exact forms, seeding, N ranges, splitting, detection, CLI."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmprobe.cli import main
from lstmprobe.errors import CorpusError, for_cli
from lstmprobe.lm import tasks


def check_line(name: str, line: str, lo: int = 1, hi: int = 10) -> None:
    """Assert that ``line`` is a correct, complete line of task ``name`` with N in lo..hi."""
    if name == "counter":
        m = re.fullmatch(r"(a+)X(b+)", line)
        assert m and len(m[1]) == len(m[2]) and lo <= len(m[1]) <= hi, line
    elif name == "selective-counter":
        m = re.fullmatch(r"(a[aX]*)Y(b+)", line)
        assert m and m[1].count("a") == len(m[2]) and lo <= len(m[2]) <= hi, line
    elif name == "ab-memory":
        m = re.fullmatch(r"([AB])(x+)Y([ab])", line)
        assert m and m[3] == m[1].lower() and lo <= len(m[2]) <= hi, line
    else:
        m = re.fullmatch(r"([abc]{3})X([abc]{3})", line)
        assert m and m[1] == m[2], line


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_every_line_has_the_exact_form_of_its_task(name):
    lines = tasks.generate(name, 500, seed=3)
    for line in lines:
        check_line(name, line)
    assert len(set(lines)) > 5  # varied


@pytest.mark.parametrize("name", ["counter", "selective-counter", "ab-memory"])
def test_the_whole_n_range_is_drawn_and_nothing_outside(name):
    key = "a" if name != "ab-memory" else "x"
    ns = {line.split("XY"[name != "counter"])[0].count(key) for line in tasks.generate(name, 800)}
    assert ns == set(range(1, 11))
    far = tasks.generate(name, 400, seed=1, min_n=11, max_n=20)
    for line in far:
        check_line(name, line, 11, 20)


def test_selective_counter_intersperses_xs_and_starts_with_a():
    lines = tasks.generate("selective-counter", 300, seed=0)
    assert all(line[0] == "a" for line in lines)
    assert sum("X" in line for line in lines) > 150
    assert any(line.count("X") == 0 for line in lines)


def test_generation_is_seeded_and_deterministic():
    assert tasks.generate("copy", 50, seed=7) == tasks.generate("copy", 50, seed=7)
    assert tasks.generate("copy", 50, seed=7) != tasks.generate("copy", 50, seed=8)
    # documented stable values (random.Random is stable across Python versions)
    assert tasks.generate("counter", 3, seed=1, max_n=4) == ["aaXbb", "aXb", "aaaXbbb"]


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(list(tasks.TASKS)),
    seed=st.integers(0, 2**32),
    lo=st.integers(1, 30),
    width=st.integers(0, 10),
)
def test_any_seed_and_range_give_correct_lines_that_split_back(name, seed, lo, width):
    hi = lo + width
    for line in tasks.generate(name, 20, seed=seed, min_n=lo, max_n=hi):
        check_line(name, line, lo, hi)
        prefix, target, key = tasks.TASKS[name].split(line + "\n")
        assert prefix + target == line + "\n"
        assert prefix.endswith(tasks.TASKS[name].separator)
        assert target.endswith("\n")
        if name in ("counter", "selective-counter"):
            assert key == len(target) - 1
        elif name == "ab-memory":
            assert key == line.count("x")


def test_split_names_the_deterministic_part():
    assert tasks.TASKS["counter"].split("aaaXbbb\n") == ("aaaX", "bbb\n", 3)
    assert tasks.TASKS["selective-counter"].split("aXaYbb\n") == ("aXaY", "bb\n", 2)
    assert tasks.TASKS["ab-memory"].split("BxxYb\n") == ("BxxY", "b\n", 2)
    assert tasks.TASKS["copy"].split("cabXcab\n") == ("cabX", "cab\n", None)
    with pytest.raises(CorpusError, match="not of the form of the copy task"):
        tasks.TASKS["copy"].split("hello\n")


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_detect_recognises_each_task_corpus(name):
    assert tasks.detect(tasks.generate(name, 200, seed=2)).name == name


def test_detect_says_none_for_other_text():
    assert tasks.detect(["def f(x):", "    return x"]) is None
    assert tasks.detect([]) is None


def test_bad_arguments_are_one_clear_error():
    with pytest.raises(CorpusError, match="unknown task 'count'; choose one of counter"):
        tasks.generate("count", 5)
    with pytest.raises(CorpusError, match="`min_n` <= `max_n`") as info:
        tasks.generate("counter", 5, min_n=5, max_n=2)
    assert for_cli(str(info.value)) == "need 1 <= --min-n <= --max-n, got --min-n 5, --max-n 2"
    with pytest.raises(CorpusError, match="at least 1"):
        tasks.generate("counter", 0)


def test_write_is_one_line_per_sequence(tmp_path):
    out = tmp_path / "c.txt"
    text = tasks.write("ab-memory", 30, out, seed=4)
    assert out.read_text() == text
    assert text.count("\n") == 30 and text.endswith("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]


def test_write_never_follows_a_link_planted_at_the_old_temporary_name(tmp_path):
    # the corpus was once written through the fixed name PATH.tmp: a symlink planted there
    # would have been followed, overwriting its target
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "c.txt"
    (tmp_path / "c.txt.tmp").symlink_to(victim)
    text = tasks.write("counter", 5, out, seed=1)
    assert victim.read_text() == "precious\n"
    assert out.read_text() == text and not out.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.txt", "c.txt.tmp", "victim.txt"]


def test_write_into_a_missing_folder_is_a_corpus_error(tmp_path):
    with pytest.raises(CorpusError, match="cannot write"):
        tasks.write("counter", 5, tmp_path / "no" / "c.txt")


def test_cli_tasks_writes_a_file_and_stdout(tmp_path):
    out = tmp_path / "far.txt"
    args = ["tasks", "counter", "-n", "40", "--min-n", "11", "--max-n", "20", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "wrote 40 counter sequences" in result.stderr
    for line in out.read_text().splitlines():
        check_line("counter", line, 11, 20)
    result = CliRunner().invoke(main, ["tasks", "copy", "-n", "3", "--seed", "5"])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == tasks.generate("copy", 3, seed=5)


def test_cli_tasks_bad_range_is_one_line_and_exit_1(tmp_path):
    result = CliRunner().invoke(main, ["tasks", "counter", "--min-n", "0"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "--min-n" in result.stderr


def test_pairs_of_the_memory_tasks_have_different_answers(tmp_path):
    from lstmprobe.text import read_pairs

    for p in tasks.pairs("ab-memory", 50, seed=2, min_n=2, max_n=6):
        assert tasks.get_task("ab-memory").pattern.fullmatch(p.source)
        assert tasks.get_task("ab-memory").pattern.fullmatch(p.target)
        assert p.expected == p.source[0].lower() != p.target[0].lower()
        assert 2 <= p.source.count("x") <= 6 and p.source.endswith("Y")
    for p in tasks.pairs("copy", 50, seed=2):
        assert p.source.endswith("X") and len(p.source) == len(p.target) == 4
        assert p.expected == p.source[0] != p.target[0]
    made = tasks.write_pairs("copy", 5, tmp_path / "p.tsv", seed=1)
    assert [(p.source, p.target, p.expected) for p in read_pairs(tmp_path / "p.tsv")] == [
        (p.source, p.target, p.expected) for p in made
    ]
    assert tasks.pairs("copy", 5, seed=1) == made  # seeded
    with pytest.raises(CorpusError, match="pairs are written for ab-memory and copy"):
        tasks.pairs("counter", 5)
    with pytest.raises(CorpusError, match="`count`"):
        tasks.pairs("copy", 0)
