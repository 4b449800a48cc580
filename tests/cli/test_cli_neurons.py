"""`lstmprobe features` and `lstmprobe find-neurons`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from tests.stores import BASE, build_store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("cli") / "acts.h5", BASE * 20)


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args))


def test_features_lists_definitions() -> None:
    result = run("features")
    assert result.exit_code == 0
    assert "quote\n    1 inside a string literal" in result.output
    data = json.loads(run("features", "--json").output)
    names = [d["name"] for d in data]
    assert "next-char:X" in names and "regex:PATTERN" in names


def test_find_neurons_table_and_saved_rankings(store_path: Path) -> None:
    result = run("find-neurons", "--store", str(store_path), "-f", "quote", "--top", "3", "-q")
    assert result.exit_code == 0, result.output
    # --quiet drops the progress bar and chatter, never the result
    assert "layer0/cell/4" in result.stdout and "saved" not in result.output
    assert "scoring units" not in result.output
    saved = store_path.with_name("acts.rankings.json")
    data = json.loads(saved.read_text())
    assert data["rows"][0]["unit"] == "layer0/cell/4"
    result = run("find-neurons", "--store", str(store_path), "-f", "quote", "--top", "2")
    assert "layer0/cell/4" in result.output and "saved" in result.output


def test_find_neurons_json_and_csv_to_stdout(store_path: Path, tmp_path: Path) -> None:
    result = run(
        "find-neurons", "--store", str(store_path), "-f", "indent", "-f", "char:Z",
        "--no-probe", "--json", "-", "--no-save",
    )  # fmt: skip
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["features"]["char:Z"]["skipped"]
    assert data["rows"][0]["unit"] == "layer0/hidden/1"
    assert "warning: feature 'char:Z' is constant" in result.stderr
    csv_path = tmp_path / "out.csv"
    result = run(
        "find-neurons", "--store", str(store_path), "-f", "indent", "--no-probe",
        "--csv", str(csv_path), "--no-save", "-q",
    )  # fmt: skip
    assert csv_path.read_text().splitlines()[1].startswith("indent,1,layer0/hidden/1,")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "nope"], "unknown feature 'nope'; known: quote"),
        (["-f", "nope"], "(`lstmprobe features` lists them with their definitions)"),
        (
            ["-f", "ab-state"],
            "(the ab-memory task: a task corpus from `lstmprobe tasks ab-memory --count N "
            "--output FILE`, recorded with --reset line)",
        ),
        (["-f", "regex:("], "does not compile"),
        (["-f", "char:Z"], "no feature could be scored"),
        (["-f", "quote", "--key", "layer9/cell"], "layer9"),
    ],
)
def test_find_neurons_bad_input(store_path: Path, args: list[str], message: str) -> None:
    result = run("find-neurons", "--store", str(store_path), "--no-save", "-q", *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # a warning line at most, then the error


def test_find_neurons_missing_store(tmp_path: Path) -> None:
    result = run("find-neurons", "--store", str(tmp_path / "none.h5"), "-f", "quote")
    assert result.exit_code == 1 and "error:" in result.stderr


def test_find_neurons_user_function(store_path: Path, tmp_path: Path) -> None:
    feats = tmp_path / "feats.py"
    feats.write_text(
        "import numpy as np\n"
        "from lstmprobe.features import get_feature\n"
        "def q(text):\n    return get_feature('quote').labels(text)\n"
        "def short(text):\n    return np.zeros(3)\n"
    )
    ok = run("find-neurons", "--store", str(store_path), "-f", f"{feats}:q", "--no-probe",
             "--json", "-", "--no-save")  # fmt: skip
    assert json.loads(ok.stdout)["rows"][0]["unit"] == "layer0/cell/4"
    bad = run("find-neurons", "--store", str(store_path), "-f", f"{feats}:short", "--no-save")
    assert bad.exit_code == 1 and "short" in bad.stderr and "shape (3,)" in bad.stderr


def test_a_users_feature_file_is_imported_once(store_path: Path, tmp_path: Path) -> None:
    log = tmp_path / "imports.log"
    feats = tmp_path / "counted.py"
    feats.write_text(
        f"with open({str(log)!r}, 'a') as log:\n    log.write('imported\\n')\n"
        "from lstmprobe.features import get_feature\n"
        "def q(text):\n    return get_feature('quote').labels(text)\n"
    )
    ok = run("find-neurons", "--store", str(store_path), "-f", f"{feats}:q", "-f", f"{feats}:q",
             "--no-probe", "--json", "-", "--no-save")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert log.read_text().splitlines() == ["imported"]


@pytest.mark.slow
def test_installed_script_runs(store_path: Path) -> None:
    exe = shutil.which("lstmprobe")
    if exe is None:
        pytest.skip("the lstmprobe script is not installed")
    proc = subprocess.run(
        [exe, "find-neurons", "--store", str(store_path), "-f", "quote", "--no-probe",
         "--json", "-", "--no-save", "-q"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"][0]["unit"] == "layer0/cell/4"


def test_scores_only_table_has_no_empty_probe_columns(store_path: Path) -> None:
    result = run("find-neurons", "--store", str(store_path), "-f", "quote", "--no-probe", "-q")
    assert result.exit_code == 0, result.output
    assert "layer0/cell/4" in result.stdout
    assert "held-out" not in result.stdout and "interval" not in result.stdout


@pytest.mark.slow
def test_label_memory_zero_streams_the_labels_with_the_same_ranking(
    store_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lstmprobe import _io

    monkeypatch.setattr(_io, "on_terminal", lambda stream: True)  # bars are drawn on a terminal
    args = ["find-neurons", "--store", str(store_path), "-f", "quote", "-f", "indent"]
    args += ["--json", "--no-save"]
    in_memory = run(*args)
    streamed = run(*args, "--label-memory", "0")
    assert in_memory.exit_code == 0 and streamed.exit_code == 0, streamed.output
    assert json.loads(streamed.stdout)["rows"] == json.loads(in_memory.stdout)["rows"]
    assert "labelling" in streamed.stderr and "labelling" not in in_memory.stderr


# --- output options: --json is a flag as everywhere, files go to -o ---------------------------


@pytest.fixture
def own_store(tmp_path: Path) -> Path:
    """A store of its own (tests that save rankings beside it)."""
    return build_store(tmp_path / "acts.h5", BASE * 20)


def test_json_alone_prints_and_does_not_swallow_the_next_option(own_store: Path) -> None:
    result = run("find-neurons", "--json", "--store", str(own_store), "-f", "quote", "--no-probe",
                 "--no-save")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"][0]["unit"] == "layer0/cell/4"
    result = run("find-neurons", "--csv", "-f", "quote", "--store", str(own_store), "--no-probe",
                 "--no-save")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].startswith("quote,1,layer0/cell/4,")


def test_o_writes_json_or_csv_by_name_and_the_older_spellings_say_so(
    own_store: Path, tmp_path: Path
) -> None:
    base = ["find-neurons", "--store", str(own_store), "-f", "quote", "--no-probe", "--no-save",
            "-q"]  # fmt: skip
    both = run(*base, "-o", str(tmp_path / "r.json"), "--output", str(tmp_path / "r.csv"))
    assert both.exit_code == 0 and both.stderr == "", both.output
    assert "layer0/cell/4" in both.stdout  # files were asked for: the table is printed
    assert json.loads((tmp_path / "r.json").read_text())["rows"][0]["unit"] == "layer0/cell/4"
    assert (tmp_path / "r.csv").read_text().startswith("feature,rank,unit,")
    for option, new, fmt in (
        ("--json-out", "-o", "json"),
        ("--json", "-o PATH", "json"),
        ("--csv-out", "-o PATH.csv", "csv"),
        ("--csv", "-o PATH", "csv"),
    ):
        out = tmp_path / f"old{option}.txt"
        result = run(*base, option, str(out))
        assert result.exit_code == 0, result.output
        assert result.stderr.splitlines() == [
            f"warning: {option}{' PATH' if option in ('--json', '--csv') else ''} is now spelled {new}"
        ]
        text = out.read_text()
        assert text.startswith("feature,rank,unit,") if fmt == "csv" else json.loads(text)["rows"]


def _counting_feature(tmp_path: Path) -> tuple[Path, Path]:
    log = tmp_path / "calls.log"
    feats = tmp_path / "counting.py"
    feats.write_text(
        "from lstmprobe.features import get_feature\n"
        "def q(text):\n"
        f"    open({str(log)!r}, 'a').write('called\\n')\n"
        "    return get_feature('quote').labels(text)\n"
    )
    return feats, log


@pytest.mark.parametrize("flag", ["-o", "--json", "--json-out", "--csv", "--csv-out"])
def test_an_output_in_a_missing_directory_fails_before_any_work(
    store_path: Path, tmp_path: Path, flag: str
) -> None:
    feats, log = _counting_feature(tmp_path)
    target = tmp_path / "no" / "such" / "out.json"
    result = run("find-neurons", "--store", str(store_path), "-f", f"{feats}:q", "--no-save",
                 flag, str(target))  # fmt: skip
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if not line.startswith("warning: ")]
    assert errors == [
        f"error: cannot write {target}: the directory {target.parent} does not exist; "
        "create it first"
    ]
    assert not log.exists()  # nothing was computed


def test_rankings_that_cannot_be_saved_fail_before_any_work(
    own_store: Path, tmp_path: Path
) -> None:
    feats, log = _counting_feature(tmp_path)
    own_store.with_name("acts.rankings.json").mkdir()  # what was to be replaced is a directory
    result = run("find-neurons", "--store", str(own_store), "-f", f"{feats}:q")
    assert result.exit_code == 1
    assert "is a directory; give a file path, or pass --no-save" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not log.exists()


def test_rankings_beside_a_read_only_store(own_store: Path, tmp_path: Path) -> None:
    feats, log = _counting_feature(tmp_path)
    own_store.parent.chmod(0o555)
    try:
        probe = own_store.parent / "probe"
        try:  # root writes into a read-only directory: nothing to test then
            probe.write_text("")
            probe.unlink()
            pytest.skip("this user can write into a read-only directory")
        except PermissionError:
            pass
        result = run("find-neurons", "--store", str(own_store), "-f", f"{feats}:q")
    finally:
        own_store.parent.chmod(0o755)
    assert result.exit_code == 1 and "Permission denied" in result.stderr
    assert "or pass --no-save" in result.stderr and not log.exists()


# --- rankings accumulate by feature ----------------------------------------------------------


def test_rankings_merge_by_feature(own_store: Path) -> None:
    saved = own_store.with_name("acts.rankings.json")
    args = ["find-neurons", "--store", str(own_store), "--no-probe", "-q"]
    assert run(*args, "-f", "quote", "-f", "char:(").exit_code == 0
    first = json.loads(saved.read_text())
    result = run(*args, "-f", "indent", "-f", "quote", "--seed", "3")
    assert result.exit_code == 0, result.output
    data = json.loads(saved.read_text())
    assert list(data["features"]) == ["quote", "char:(", "indent"]
    n_units = 12
    assert [r["feature"] for r in data["rows"]] == [
        f for f in ("quote", "char:(", "indent") for _ in range(n_units)
    ]
    # the rerun of quote replaced it; char:( is the first run's, untouched
    assert [r for r in data["rows"] if r["feature"] == "char:("] == [
        r for r in first["rows"] if r["feature"] == "char:("
    ]
    assert data["settings"]["by_feature"]["char:("]["seed"] == 0
    assert data["settings"]["by_feature"]["quote"]["seed"] == 3
    from lstmprobe.probes import Ranking

    assert Ranking.read_json(saved).top(1, feature="indent") == ["layer0/hidden/1"]


def test_rankings_of_another_recording_are_replaced(own_store: Path) -> None:
    args = ["find-neurons", "--store", str(own_store), "--no-probe", "-q"]
    assert run(*args, "-f", "quote").exit_code == 0
    own_store.unlink()
    build_store(own_store, BASE * 21, seed=1)  # recorded again: another recording, same path
    result = run(*args, "-f", "indent")
    assert result.exit_code == 0, result.output
    assert "held rankings of another recording (quote); it is replaced" in result.stderr
    data = json.loads(own_store.with_name("acts.rankings.json").read_text())
    assert list(data["features"]) == ["indent"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"format": "something else"}', "not an lstmprobe rankings file"),
        (
            '{"format": "lstmprobe.rankings", "format_version": 1, "features": [], "rows": []}',
            "features: [] is not an object",
        ),
        (
            '{"format": "lstmprobe.rankings", "format_version": 1, "features": {"q": {}}, '
            '"rows": [{"feature": "q", "unit": "layer0/cell/1", "rank": 1, "score": "high"}]}',
            "rows[0].score: 'high' is not a number",
        ),
    ],
)
def test_a_damaged_rankings_file_is_one_line(own_store: Path, content: str, message: str) -> None:
    own_store.with_name("acts.rankings.json").write_text(content)
    result = run("find-neurons", "--store", str(own_store), "-f", "quote", "--no-probe", "-q")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "move it away, or pass --no-save" in lines[0]


# --- user features ---------------------------------------------------------------------------


def test_a_user_feature_calling_sys_exit_is_one_line(store_path: Path, tmp_path: Path) -> None:
    feats = tmp_path / "quits.py"
    feats.write_text("import sys\ndef q(text):\n    sys.exit(0)\n")
    result = run("find-neurons", "--store", str(store_path), "-f", f"{feats}:q", "--no-save")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: feature '{feats}:q' failed at {feats}:3 (in q): SystemExit(0): it called "
        "sys.exit(); return labels instead"
    ]


def test_table_labels_are_the_feature_names(store_path: Path, tmp_path: Path) -> None:
    feats = tmp_path / "myfeat.py"
    feats.write_text(
        "from lstmprobe.features import feature, get_feature\n"
        "@feature('in_c_string', kind='binary')\n"
        "def c_quote(text):\n    '''Inside a string.'''\n"
        "    return get_feature('quote').labels(text)\n"
    )
    result = run("find-neurons", "--store", str(store_path), "-f", f"{feats}:c_quote",
                 "--no-probe", "--no-save", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("in_c_string (binary")
    assert "myfeat.py" not in result.stdout


def test_an_output_in_a_directory_that_takes_no_files(store_path: Path, tmp_path: Path) -> None:
    """/sys refuses new files even to root: a read-only directory wherever tests run as root."""
    folder = Path("/sys")
    try:
        (folder / "lstmprobe-probe").write_text("")
        pytest.skip("/sys takes new files here")
    except FileNotFoundError:
        pytest.skip("no /sys here")
    except OSError:
        pass
    feats, log = _counting_feature(tmp_path)
    target = folder / "ranks.json"
    result = run("find-neurons", "--store", str(store_path), "-f", f"{feats}:q", "--no-save",
                 "-o", str(target))  # fmt: skip
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot write {target}: ")
    assert "choose a directory you can write to" in lines[0] and not log.exists()


def test_json_to_stdout_and_to_a_file_at_once(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = run("find-neurons", "--store", str(store_path), "-f", "quote", "--no-probe",
                 "--no-save", "--json", "-o", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == json.loads(out.read_text())["rows"]


def test_the_table_says_what_each_column_is(own_store: Path) -> None:
    done = run("find-neurons", "--store", str(own_store), "-f", "quote", "--no-save", "--top", "2")
    assert done.exit_code == 0, done.output
    out = done.stdout
    assert "  columns:" in out
    assert "select.   held-out - control, in [-1, 1]: 0 = no better on the feature than on" in out
    assert "< 0 = it fits the char-type control better than the feature" in out
    assert "ROC AUC of the unit, folded to [0.5, 1]" in out
    scores = run("find-neurons", "--store", str(own_store), "-f", "indent", "--no-save",
                 "--no-probe")  # fmt: skip
    assert "|Spearman| in [0, 1]" in scores.stdout and "select." not in scores.stdout
    quiet = run("find-neurons", "--store", str(own_store), "-f", "quote", "--no-save", "-q",
                "--no-probe")  # fmt: skip
    assert "columns:" not in quiet.stdout
