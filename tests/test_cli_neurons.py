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


def test_label_memory_zero_streams_the_labels_with_the_same_ranking(store_path: Path) -> None:
    args = ["find-neurons", "--store", str(store_path), "-f", "quote", "-f", "indent"]
    args += ["--json", "-", "--no-save"]
    in_memory = run(*args)
    streamed = run(*args, "--label-memory", "0")
    assert in_memory.exit_code == 0 and streamed.exit_code == 0, streamed.output
    assert json.loads(streamed.stdout)["rows"] == json.loads(in_memory.stdout)["rows"]
    assert "labelling" in streamed.stderr and "labelling" not in in_memory.stderr
