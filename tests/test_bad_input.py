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
        how = data.draw(
            st.sampled_from(["shorter", "floats", "huge", "negative", "shuffled", "strings"])
        )
        arr = np.asarray(old)
        if how == "shorter":
            arr = arr.reshape(-1)[: max(0, arr.size - 7)]
        elif how == "floats":
            arr = arr.astype(np.float64) + 0.5
        elif how == "huge":
            arr = np.full(arr.shape, 2**31 - 1, dtype=arr.dtype if arr.dtype.kind in "iu" else "i8")
        elif how == "negative":
            arr = -np.abs(arr) - 1
        elif how == "strings":  # a dataset of strings (issue 17, break 7)
            arr = np.full(arr.shape, b"x1", dtype="S2")
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
    probed = ["-f", "indent", "--no-save", "--max-probe-positions", "100", "--n-blocks", "3", "-q"]
    assert_one_line_or_success(run("find-neurons", "--store", str(path), *probed))
    shown = ["--no-figures", "--max-chars", "200", "-o", str(path.with_suffix(".html")), "-q"]
    assert_one_line_or_success(run("report", "--store", str(path), *shown))
    assert_one_line_or_success(
        run(
            "plot",
            "text",
            "--store",
            str(path),
            "-u",
            "layer0/cell/1",
            "--length",
            "80",
            "-o",
            str(path.with_suffix(".png")),
            "-q",
        )
    )
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


# --- ways a checkpoint's config gets damaged (issue 17, breaks 5 and 7) ------------------------

CONFIG_FIELDS = ["vocab_size", "hidden_size", "num_layers", "cell", "embedding_dim", "dropout",
                 "proj_size", "bidirectional", "bias", "decoder"]  # fmt: skip
CONFIG_JUNK = st.one_of(
    JUNK,
    st.none(),
    st.booleans(),
    st.sampled_from([0, 1, 2, 3, 5, -1, 10**6, 10**9, 2**62, 10**30, 0.5, 1.0, "gru", "lstm"]),
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real 2-layer LSTM checkpoint (a few KB) and a short corpus of its characters."""
    import torch

    from lstmprobe.models import CharLSTM, ModelConfig, save_checkpoint
    from lstmprobe.text import Vocab

    folder = tmp_path_factory.mktemp("checkpoint")
    text = BASE * 2
    vocab = Vocab.from_text(text)
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(len(vocab), 3, num_layers=2, embedding_dim=2))
    corpus = folder / "corpus.txt"
    corpus.write_text(text, encoding="utf-8")
    return save_checkpoint(folder / "model.pt", model, vocab), corpus


def _with_config(source: Path, target: Path, **changes: object) -> Path:
    import torch

    obj = torch.load(source, weights_only=True)
    obj["config"] = {**obj["config"], **changes}
    torch.save(obj, target)
    return target


@SETTINGS
@given(data=st.data())
def test_a_damaged_checkpoint_config_is_one_line_or_a_success(
    checkpoint: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """One config field replaced by junk, huge or negative sizes included: one line, found from
    the file's tensors before a module is built (a 3 KB file must not build a million layers)."""
    model, corpus = checkpoint
    folder = tmp_path_factory.mktemp("config")
    field = data.draw(st.sampled_from(CONFIG_FIELDS), label="field")
    damaged = _with_config(model, folder / "model.pt", **{field: data.draw(CONFIG_JUNK)})
    out = folder / "acts.h5"
    result = run("record", str(damaged), str(corpus), "-o", str(out), "-q")
    assert_one_line_or_success(result)
    if result.exit_code == 1:
        assert not out.exists()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"num_layers": 10**6}, ["num_layers=1000000", "holds", "damaged or was edited"]),
        ({"proj_size": -1}, ["proj_size must be 0"]),
        ({"proj_size": 2}, ["needs tensor rnn.weight_hh_l0 of shape (12, 2)", "has (12, 3)"]),
        ({"hidden_size": 30}, ["hidden_size=30", "12,774 parameters", "holds 408 values"]),
        ({"dropout": "x"}, ["dropout must be a number"]),
    ],
    ids=["a-million-layers", "negative-proj-size", "proj-size", "hidden-size", "dropout"],
)
def test_a_checkpoint_config_beyond_its_tensors_is_one_line(
    checkpoint: tuple[Path, Path], tmp_path: Path, changes: dict, words: list[str]
) -> None:
    model, corpus = checkpoint
    damaged = _with_config(model, tmp_path / "model.pt", **changes)
    assert damaged.stat().st_size < 8_000
    result = run("record", str(damaged), str(corpus), "-o", str(tmp_path / "acts.h5"), "-q")
    assert_one_line_or_success(result)
    assert result.exit_code == 1 and all(w in result.stderr for w in words), result.stderr


# --- side files: rankings, dynamics, ablations, one field at a time ---------------------------

#: what a damaged field holds instead: a string where a number belongs, NaN, a lone surrogate,
#: units stored as "null", a type of another kind
WORDS = ["null", "x", "", "\ud800", "a\udfffb", "layer0/cell/-1", "layer0//cell/1",
         "<img src=x onerror=alert(1)>", "NaN", "1e999", "layer9/cell/0", "0:h:1"]  # fmt: skip
HOSTILE = st.one_of(
    st.sampled_from(WORDS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from([None, True, False, [], {}, [None], {"x": 1}, 0, -1]),
    st.text(st.characters(categories=["Cs", "Lo", "So", "Cc"]), max_size=4),
)


def _leaves(obj: object, path: tuple = ()) -> list[tuple]:
    """Every path to a value of ``obj``, and to each key of its objects (as ("key", k))."""
    out = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((*path, ("key", k)))
            out += _leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _leaves(v, (*path, i))
    return out


def edit_one_field(obj: object, data: st.DataObject) -> object:
    """``obj`` (parsed JSON) with one value, or one key, replaced by a hostile one."""
    paths = [p for p in _leaves(obj) if p]
    path = data.draw(st.sampled_from(paths), label="field")
    new = data.draw(HOSTILE, label="value")
    obj = json.loads(json.dumps(obj))  # a copy
    parent = obj
    for step in path[:-1]:
        parent = parent[step]  # type: ignore[index]
    last = path[-1]
    if isinstance(last, tuple):  # a key: renamed (a JSON key is a string)
        value = parent.pop(last[1])  # type: ignore[union-attr]
        parent[new if isinstance(new, str) else json.dumps(new)] = value  # type: ignore[index]
    else:
        parent[last] = new  # type: ignore[index]
    return obj


@pytest.fixture(scope="module")
def side_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real recording of a tiny checkpoint with each side file beside it, made by the CLI:
    acts.rankings.json (find-neurons), acts.ablations.h5 (ablate), acts.dynamics.json."""
    from lstmprobe.models import save_checkpoint
    from lstmprobe.text import Vocab
    from tests.conftest import make_model

    d = tmp_path_factory.mktemp("sides")
    text = BASE * 4
    (d / "corpus.txt").write_text(text, encoding="utf-8")
    vocab = Vocab.from_text(text)
    model = str(save_checkpoint(d / "model.pt", make_model(vocab), vocab))
    store, corpus = str(d / "acts.h5"), str(d / "corpus.txt")
    for args in (
        ["record", model, corpus, "-o", store, "-q"],
        ["find-neurons", "--store", store, "-f", "quote", "--no-probe", "-q"],
        ["ablate", model, corpus, "--store", store, "--top", "2", "-f", "quote", "--n-random", "1",
         "-q"],
        ["dynamics", "--store", store, "--model", model, "-q"],
    ):  # fmt: skip
        result = run(*args)
        assert result.exit_code == 0, result.output
    return d / "acts.h5"


def _sane(obj: object) -> None:
    """A value read back is clean: it writes as UTF-8 JSON (no lone surrogate, no NaN)."""
    json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8")


READ_SETTINGS = settings(SETTINGS, max_examples=150)


@READ_SETTINGS
@given(data=st.data())
def test_a_rankings_file_with_one_field_edited_is_read_clean_or_refused(
    side_files: Path, data: st.DataObject
) -> None:
    from lstmprobe.errors import StoreError
    from lstmprobe.probes import Ranking

    obj = edit_one_field(json.loads(side_files.with_name("acts.rankings.json").read_text()), data)
    said: list[str] = []
    try:
        ranking = Ranking.from_dict(obj, lenient=True, warn=said.append)
    except StoreError:
        return  # not a rankings file at all: one line
    assert len(said) <= 1
    _sane(json.loads(ranking.to_json()))
    assert Ranking.from_dict(json.loads(ranking.to_json())) == ranking  # strict: it is clean
    ranking.format_table(3)
    ranking.to_csv()


@READ_SETTINGS
@given(data=st.data())
def test_a_dynamics_file_with_one_field_edited_is_read_clean_or_refused(
    side_files: Path, data: st.DataObject
) -> None:
    from lstmprobe.errors import StoreError
    from lstmprobe.store.dynamics import Dynamics

    obj = edit_one_field(json.loads(side_files.with_name("acts.dynamics.json").read_text()), data)
    said: list[str] = []
    try:
        dyn = Dynamics.from_dict(obj, lenient=True, warn=said.append)
    except StoreError:
        return
    assert len(said) <= 1
    _sane(dyn.to_dict())
    assert Dynamics.from_dict(dyn.to_dict()) == dyn


ABLATION_ATTRS = ["format", "format_version", "store", "model_sha256", "corpus_sha256", "reset",
                  "feature", "created", "summary"]  # fmt: skip
CONDITION_ATTRS = ["units", "mode", "value", "verdict"]


def damage_ablations(path: Path, data: st.DataObject) -> None:
    """One field of an ablations file: an attribute (a JSON one edited inside), or a dataset."""
    how = data.draw(st.sampled_from(["attr", "condition", "summary", "dataset"]), label="how")
    with h5py.File(path, "r+") as f:
        group = f if how in ("attr", "summary") else f["conditions"][data.draw(
            st.sampled_from(sorted(f["conditions"])), label="condition")]  # fmt: skip
        if how == "summary":
            summary = json.loads(f.attrs["summary"])
            f.attrs["summary"] = json.dumps(edit_one_field(summary, data))
            return
        if how == "dataset":
            names = ["base_bits", "feature_on"] if group is f else sorted(group)
            name = data.draw(st.sampled_from([n for n in names if n in group]), label="dataset")
            old = group[name][()]
            del group[name]
            kind = data.draw(st.sampled_from(["short", "2-d", "text", "nan", "ints"]))
            group[name] = {
                "short": old[:-3],
                "2-d": np.stack([old, old]),
                "text": np.array([b"x"] * len(old)),
                "nan": np.full(len(old), np.nan, dtype=np.float32),
                "ints": np.full(len(old), 7, dtype=np.int64),
            }[kind]
            return
        names = ABLATION_ATTRS if group is f else CONDITION_ATTRS
        name = data.draw(st.sampled_from(names), label="attr")
        value = data.draw(HOSTILE, label="value")
        if isinstance(value, str):  # h5py writes UTF-8: a lone surrogate as the bytes it would be
            raw = value.encode("utf-8", "surrogatepass")
            group.attrs[name] = np.void(raw) if b"\0" in raw else raw  # NUL: opaque bytes
        elif value is None or isinstance(value, (list, dict)) or abs(value) > 2**62:
            group.attrs[name] = json.dumps(value)
        else:
            group.attrs[name] = value


@READ_SETTINGS
@given(data=st.data())
def test_an_ablations_file_with_one_field_edited_is_read_clean_or_refused(
    side_files: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    from lstmprobe.errors import StoreError
    from lstmprobe.store.ablations import AblationCondition, read_ablations

    path = tmp_path_factory.mktemp("abl") / "acts.ablations.h5"
    shutil.copy(side_files.with_name("acts.ablations.h5"), path)
    damage_ablations(path, data)
    said: list[str] = []
    try:
        abl = read_ablations(path, positions=len(BASE * 4), lenient=True, warn=said.append)
    except StoreError:
        return
    assert len(said) <= 1
    for cond, summary in zip(abl.conditions, abl.summary):
        assert len(cond.delta_bits) == len(abl.base_bits)
        read = AblationCondition.from_dict(summary, "summary", [])
        if read is not None:
            _sane(read.to_dict())
    _sane([abl.store, abl.reset, abl.feature, abl.created] + [c.verdict for c in abl.conditions])


@pytest.mark.slow
@settings(SETTINGS, max_examples=20)
@given(data=st.data())
@pytest.mark.parametrize("side", ["rankings", "dynamics", "ablations"])
def test_the_report_skips_a_damaged_side_file_with_a_warning(
    side_files: Path, tmp_path_factory: pytest.TempPathFactory, side: str, data: st.DataObject
) -> None:
    """`lstmprobe report` beside a side file with one field edited: the report is written,
    with at most warnings on stderr -- never a traceback or an error."""
    folder = tmp_path_factory.mktemp("report")
    for name in ("acts.h5", "acts.rankings.json", "acts.ablations.h5", "acts.dynamics.json"):
        shutil.copy(side_files.with_name(name), folder / name)
    if side == "ablations":
        damage_ablations(folder / "acts.ablations.h5", data)
    else:
        path = folder / f"acts.{side}.json"
        path.write_text(json.dumps(edit_one_field(json.loads(path.read_text()), data)))
    out = folder / "r.html"
    result = run("report", "--store", str(folder / "acts.h5"), "-o", str(out), "--no-figures",
                 "--max-chars", "200", "-q")  # fmt: skip
    assert_one_line_or_success(result)
    assert result.exit_code == 0, result.output
    assert out.exists()


@pytest.mark.parametrize(
    ("side", "content", "said"),
    [
        ("rankings.json", "{not json", "not valid JSON"),
        (
            "rankings.json",
            '{"format": "lstmprobe.rankings", "format_version": 1, "features": '
            '{"quote": {"kind": "binary"}}, "rows": [{"feature": "quote", "rank": NaN, '
            '"unit": "null"}]}',
            "rows[0].unit: 'null' is not a unit name",
        ),
        (
            "dynamics.json",
            '{"format": "lstmprobe.dynamics", "format_version": 1, "layers": '
            '{"layer0": {"kind": "lstm", "positions": "many"}}, "units": {}}',
            "layers['layer0'].positions: 'many' is not an integer",
        ),
        (
            "dynamics.json",
            '{"format": "lstmprobe.dynamics", "format_version": 1, "layers": {},'
            ' "units": {"\\ud800": {}}}',
            "is not a unit name",
        ),
        ("ablations.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "is not a readable ablations file"),
    ],
)
def test_the_report_names_the_damaged_side_file_and_goes_on(
    side_files: Path, tmp_path: Path, side: str, content: str | bytes, said: str
) -> None:
    for name in ("acts.h5", "acts.rankings.json", "acts.ablations.h5", "acts.dynamics.json"):
        shutil.copy(side_files.with_name(name), tmp_path / name)
    target = tmp_path / f"acts.{side}"
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content, encoding="utf-8")
    result = run("report", "--store", str(tmp_path / "acts.h5"), "-o", str(tmp_path / "r.html"),
                 "--no-figures", "--max-chars", "200", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    warnings = result.stderr.strip().splitlines()
    assert all(line.startswith("warning: ") for line in warnings), warnings
    assert any(str(target) in line and said in line for line in warnings), warnings
