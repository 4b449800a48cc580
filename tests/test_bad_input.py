"""Damaged recordings and rankings files, made at random: one line and exit 1, or a success.

Each example damages a copy of a real small recording (or of the rankings file beside it) in one
of the ways files get damaged -- truncated, bytes overwritten, a dataset or attribute dropped or
replaced -- and runs real commands on it through click's CliRunner. A command may succeed (a
flipped byte inside the activations is only a different value), but it must never show a
traceback or more than one error line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmprobe.cli import main
from tests.stores import BASE, build_store

SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real recording (400 positions) and the rankings file beside it (2 features)."""
    path = build_store(tmp_path_factory.mktemp("pristine") / "acts.h5", BASE * 3)
    for feature in ("quote", "char:("):  # two runs: a merged file, settings by feature
        result = CliRunner().invoke(
            main, ["find-neurons", "--store", str(path), "-f", feature, "--no-probe", "-q"]
        )
        assert result.exit_code == 0, result.output
    return path


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, list(args))


def assert_one_line_or_success(result) -> None:  # type: ignore[no-untyped-def]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {type(result.exception).__name__}: {result.exception}")
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    if result.exit_code == 1:
        errors = [line for line in lines if not line.startswith("warning: ")]
        assert len(errors) == 1 and errors[0].startswith("error: "), lines
    else:
        assert all(line.startswith("warning: ") for line in lines), lines


# --- ways a recording gets damaged ------------------------------------------------------------

DATASETS = ["tokens", "sequences", "layer0/cell", "layer0/hidden", "positions_written"]
ATTRS = ["format", "format_version", "complete", "model", "vocab", "dtype", "layout",
         "chunk_positions", "created", "model_sha256", "run_config"]  # fmt: skip
JUNK = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=12),
    st.sampled_from(["[]", "{}", '[["layer0/cell", -3]]', '["a", "a"]', "null", "float8"]),
)


def truncate(path: Path, data: st.DataObject) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1), label="keep")])


def overwrite(path: Path, data: st.DataObject) -> None:
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 4), label="places")):
        # the metadata (superblock, object headers, heaps) is mostly in the first 8 KB
        end = data.draw(st.sampled_from([8192, len(raw)]), label="region")
        at = data.draw(st.integers(0, min(end, len(raw)) - 1), label="offset")
        junk = data.draw(st.binary(min_size=1, max_size=16), label="bytes")
        raw[at : at + len(junk)] = junk
    path.write_bytes(bytes(raw[: len(raw)]))


def drop_dataset(path: Path, data: st.DataObject) -> None:
    with h5py.File(path, "r+") as f:
        del f[data.draw(st.sampled_from(DATASETS), label="dataset")]


def replace_dataset(path: Path, data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(DATASETS), label="dataset")
    with h5py.File(path, "r+") as f:
        old = f[key][()]
        del f[key]
        how = data.draw(st.sampled_from(["shorter", "floats", "huge", "negative", "shuffled"]))
        arr = np.asarray(old)
        if how == "shorter":
            arr = arr.reshape(-1)[: max(0, arr.size - 7)]
        elif how == "floats":
            arr = arr.astype(np.float64) + 0.5
        elif how == "huge":
            arr = np.full(arr.shape, 2**31 - 1, dtype=arr.dtype if arr.dtype.kind in "iu" else "i8")
        elif how == "negative":
            arr = -np.abs(arr) - 1
        else:
            arr = np.random.default_rng(0).permutation(arr.reshape(-1)).reshape(arr.shape)
        f[key] = arr


def alter_attr(path: Path, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(ATTRS), label="attr")
    with h5py.File(path, "r+") as f:
        if data.draw(st.booleans(), label="drop"):
            del f.attrs[name]
        else:
            f.attrs[name] = data.draw(JUNK, label="value")


DAMAGE = [truncate, overwrite, drop_dataset, replace_dataset, alter_attr]


@pytest.mark.slow
@SETTINGS
@given(data=st.data())
def test_a_damaged_recording_is_one_line_or_a_success(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("damaged") / "acts.h5"
    shutil.copy(pristine, path)
    damage = data.draw(st.sampled_from(DAMAGE), label="damage")
    damage(path, data)
    assert_one_line_or_success(run("info", "--store", str(path)))
    assert_one_line_or_success(
        run("find-neurons", "--store", str(path), "-f", "quote", "--no-save", "--no-probe", "-q")
    )
    probed = ["-f", "indent", "--no-save", "--max-positions", "100", "--blocks", "3", "-q"]
    assert_one_line_or_success(run("find-neurons", "--store", str(path), *probed))
    for fmt in ("lstmvis", "explorer"):  # an export leaves a whole directory or none
        out = path.with_name(fmt)
        result = run("export", "--format", fmt, "-o", str(out), "--store", str(path), "-q")
        assert_one_line_or_success(result)
        assert out.exists() == (result.exit_code == 0)


# --- ways a rankings file gets damaged --------------------------------------------------------


def _mutate_json(obj: object, data: st.DataObject, depth: int = 0) -> object:
    """Replace, drop or retype one value somewhere in ``obj``."""
    if isinstance(obj, dict) and obj and depth < 4 and data.draw(st.booleans(), label="deeper"):
        key = data.draw(st.sampled_from(sorted(obj)), label="key")
        if data.draw(st.integers(0, 3), label="drop") == 0:
            return {k: v for k, v in obj.items() if k != key}
        return {**obj, key: _mutate_json(obj[key], data, depth + 1)}
    if isinstance(obj, list) and obj and depth < 4 and data.draw(st.booleans(), label="deeper"):
        i = data.draw(st.integers(0, len(obj) - 1), label="index")
        return [*obj[:i], _mutate_json(obj[i], data, depth + 1), *obj[i + 1 :]]
    return data.draw(
        st.one_of(JUNK, st.none(), st.lists(st.integers(), max_size=2), st.just({"x": 1})),
        label="new value",
    )


@SETTINGS
@given(data=st.data())
def test_a_damaged_rankings_file_is_one_line_or_a_success(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("rankings")
    path = folder / "acts.h5"
    shutil.copy(pristine, path)
    rankings = folder / "acts.rankings.json"
    text = pristine.with_name("acts.rankings.json").read_text()
    how = data.draw(st.sampled_from(["text", "json", "binary"]), label="how")
    if how == "text":  # cut or garbled JSON
        cut = data.draw(st.integers(0, len(text)), label="cut")
        text = text[:cut] + data.draw(st.text(max_size=5), label="tail")
        rankings.write_text(text)
    elif how == "json":  # valid JSON, wrong content
        rankings.write_text(json.dumps(_mutate_json(json.loads(text), data)))
    else:
        rankings.write_bytes(data.draw(st.binary(max_size=64), label="bytes"))
    result = run("find-neurons", "--store", str(path), "-f", "indent", "--no-probe", "-q")
    assert_one_line_or_success(result)
    if result.exit_code == 0:  # what was kept or replaced is a readable rankings file again
        from lstmprobe.probes import Ranking

        assert "indent" in Ranking.read_json(rankings).features


@pytest.mark.slow
def test_a_real_process_prints_one_line_for_a_damaged_recording(
    pristine: Path, tmp_path: Path
) -> None:
    """`python -m lstmprobe.cli`, warnings shown as Python shows them: one line, exit 1."""
    import os
    import subprocess
    import sys

    path = tmp_path / "acts.h5"
    shutil.copy(pristine, path)
    with h5py.File(path, "r+") as f:
        f["tokens"][5] = 1000
    proc = subprocess.run(
        [sys.executable, "-W", "default", "-m", "lstmprobe.cli", "find-neurons", "--store",
         str(path), "-f", "quote", "--no-save", "-q"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: {path} is a damaged lstmprobe recording: position 5 has token 1000, outside "
        "its vocabulary of 38 characters; record it again"
    ]
