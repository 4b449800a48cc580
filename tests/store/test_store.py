"""Tests of lstmprobe.store: round trips, crash safety and resume, refusal of bad files."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmprobe import __version__
from lstmprobe.errors import LstmprobeError, PrecisionWarning, StoreError, UnitError
from lstmprobe.store import (
    FORMAT,
    FORMAT_VERSION,
    GRU_QUANTITIES,
    LSTM_QUANTITIES,
    TARGET_CHUNK_BYTES,
    ActivationStore,
    RecordingSpec,
    StoreWriter,
    default_chunk_positions,
    parse_unit,
    partial_path,
    write_json_atomic,
)
from lstmprobe.store._mapped import prefetched
from lstmprobe.text import Vocab, sequences

VOCAB = Vocab(tuple("abcdefgh\n"))
LAYOUT = {
    "layer0/input_gate": 8,
    "layer0/cell": 8,
    "layer0/hidden": 8,
    "layer0_reverse/hidden": 5,
    "layer1/cell": 3,
}


def corpus(n: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return "".join(rng.choice(list(VOCAB.chars), size=n))


def values(layout: dict[str, int], start: int, stop: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic activations of positions [start, stop): value depends on (key, pos, unit)."""
    out = {}
    for i, (key, n) in enumerate(layout.items()):
        pos = np.arange(start, stop, dtype=np.float64)[:, None]
        unit = np.arange(n, dtype=np.float64)[None, :]
        out[key] = np.sin(pos * 0.37 + unit * 1.3 + i + seed) * (1 + unit)
    return out


def logprob(start: int, stop: int) -> np.ndarray:
    return -np.log1p(np.arange(start, stop, dtype=np.float64) % 7)


SPEC_FIELDS = [f.name for f in dataclasses.fields(RecordingSpec)]


def writer(path: Path, text: str, **kwargs) -> StoreWriter:
    options = {
        "tokens": VOCAB.encode(text),
        "sequences": sequences(text, "line"),
        "vocab": VOCAB,
        "layout": LAYOUT,
        "model_summary": {"cell": "lstm", "hidden_size": 8},
        "model_sha256": "m" * 64,
        "corpus_sha256": "c" * 64,
        "has_next_logprob": True,
        "run_config": {"reset": "line", "quantities": ["cell", "hidden"]},
    }
    options.update(kwargs)
    spec = {k: options.pop(k) for k in SPEC_FIELDS if k in options}
    return StoreWriter(path, RecordingSpec(**spec), **options)


def record(
    path: Path, text: str, step: int = 333, layout: dict[str, int] = LAYOUT, **kwargs
) -> Path:
    kwargs.setdefault("has_next_logprob", True)
    w = writer(path, text, layout=layout, **kwargs)
    n = len(text)
    for a in range(w.written, n, step):
        b = min(a + step, n)
        w.write(a, values(layout, a, b), logprob(a, b) if kwargs["has_next_logprob"] else None)
    return w.finish()


def expected(layout: dict[str, int], n: int, dtype: str) -> dict[str, np.ndarray]:
    return {k: v.astype(dtype).astype(np.float32) for k, v in values(layout, 0, n).items()}


def contents(path: Path) -> dict[str, object]:
    """Every dataset and attribute of an HDF5 file except the creation time."""
    out: dict[str, object] = {}
    with h5py.File(path, "r") as f:
        out.update({f"@{k}": f.attrs[k] for k in f.attrs if k != "created"})
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return out


def assert_same_contents(a: Path, b: Path) -> None:
    ca, cb = contents(a), contents(b)
    assert sorted(ca) == sorted(cb)
    for k in ca:
        np.testing.assert_array_equal(ca[k], cb[k], err_msg=k)


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "compression"),
    [("float16", None), ("float32", None), ("float16", "lzf"), ("float32", "gzip")],
)
def test_round_trip(tmp_path: Path, dtype: str, compression: str | None) -> None:
    text = corpus(2500)
    path = record(tmp_path / "acts.h5", text, dtype=dtype, compression=compression)
    assert path == tmp_path / "acts.h5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts.h5"]  # no partial left behind
    want = expected(LAYOUT, len(text), dtype)
    with ActivationStore(path) as store:
        assert store.complete
        assert store.n_positions == store.positions_written == 2500
        assert store.dtype == dtype
        assert store.keys == list(LAYOUT)
        assert store.layers == ["layer0", "layer0_reverse", "layer1"]
        assert store.quantities("layer0") == ["input_gate", "cell", "hidden"]
        assert store.n_units("layer0_reverse/hidden") == 5
        assert store.units("layer1/cell") == ["layer1/cell/0", "layer1/cell/1", "layer1/cell/2"]
        assert len(store.units()) == sum(LAYOUT.values())
        assert store.text == text
        assert store.tokens.dtype == np.int32
        np.testing.assert_array_equal(store.tokens, VOCAB.encode(text))
        np.testing.assert_array_equal(store.sequences, sequences(text, "line"))
        assert store.sequences.dtype == np.int64
        assert store.vocab == VOCAB
        assert store.model == {"cell": "lstm", "hidden_size": 8}
        assert store.run_config == {"reset": "line", "quantities": ["cell", "hidden"]}
        assert store.model_sha256 == "m" * 64 and store.corpus_sha256 == "c" * 64
        assert store.lstmprobe_version == __version__
        for key, arr in want.items():
            full = store.read(key)
            assert full.dtype == np.float32 and full.shape == arr.shape
            np.testing.assert_array_equal(full, arr)
            np.testing.assert_array_equal(store.read(key, 100, 1234), arr[100:1234])
            np.testing.assert_array_equal(store.read(key, 7, 7), arr[7:7])
        blk = store.read("layer0/cell", 10, 900, units=[5, 1, 1, 7])
        np.testing.assert_array_equal(blk, want["layer0/cell"][10:900][:, [5, 1, 1, 7]])
        assert store.read("layer0/cell", units=[]).shape == (2500, 0)
        np.testing.assert_array_equal(store.unit("layer0/cell/6"), want["layer0/cell"][:, 6])
        for size in (None, 1000, 777):
            parts = list(store.iter_chunks(["layer0/hidden", "layer1/cell"], chunk_size=size))
            assert parts[0][0] == 0 and parts[-1][1] == 2500
            assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
            for key in ("layer0/hidden", "layer1/cell"):
                joined = np.concatenate([p[2][key] for p in parts])
                np.testing.assert_array_equal(joined, want[key])
        window = list(store.iter_chunks("layer1/cell", chunk_size=1000, start=900, stop=2100))
        assert [(a, b) for a, b, _ in window] == [(900, 1000), (1000, 2000), (2000, 2100)]
        lp = store.next_logprob
        assert lp is not None and lp.dtype == np.float32
        np.testing.assert_allclose(lp, logprob(0, 2500).astype(np.float32))
        summary = store.summary()
        json.dumps(summary)
        assert summary["positions"] == 2500 and summary["compression"] == compression
        assert summary["datasets"] == LAYOUT and summary["vocab_size"] == len(VOCAB)
        assert "2,500 positions" in repr(store) and "complete" in repr(store)


def test_plain_h5py_layout(tmp_path: Path) -> None:
    path = record(tmp_path / "acts.h5", corpus(1500), chunk_positions=256)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT and f.attrs["format_version"] == FORMAT_VERSION
        assert bool(f.attrs["complete"]) is True
        assert json.loads(f.attrs["vocab"]) == list(VOCAB.chars)
        assert json.loads(f.attrs["model"])["cell"] == "lstm"
        assert f.attrs["created"].endswith("+00:00")
        assert f["positions_written"][()] == 1500
        assert f["tokens"].dtype == np.int32 and f["sequences"].dtype == np.int64
        assert list(f) == [
            "tokens",
            "sequences",
            "layer0",
            "layer0_reverse",
            "layer1",
            "next_logprob",
            "positions_written",
        ]
        assert list(f["layer0"]) == ["input_gate", "cell", "hidden"]
        ds = f["layer0/cell"]
        assert ds.dtype == np.float16 and ds.shape == (1500, 8) and ds.chunks == (256, 8)
        np.testing.assert_array_equal(
            ds[:, 3], values(LAYOUT, 0, 1500)["layer0/cell"][:, 3].astype(np.float16)
        )


def test_wide_layer_chunks_and_unit_selection(tmp_path: Path) -> None:
    layout = {"layer0/hidden": 200}
    text = corpus(700)
    path = record(tmp_path / "acts.h5", text, layout=layout, dtype="float32", chunk_positions=128)
    want = expected(layout, 700, "float32")["layer0/hidden"]
    with h5py.File(path, "r") as f:
        assert f["layer0/hidden"].chunks == (128, 64)
    with ActivationStore(path) as store:
        for units in ([199, 0, 150], [3, 4, 5], list(range(0, 200, 7)), np.array([42])):
            np.testing.assert_array_equal(
                store.read("layer0/hidden", 50, 650, units=units), want[50:650][:, units]
            )
        np.testing.assert_array_equal(store.unit("layer0/hidden/199"), want[:, 199])


def test_default_chunking() -> None:
    for units, dtype in [([512] * 6, "float16"), ([128], "float32"), ([8], "float16")]:
        rows = default_chunk_positions(units, dtype, 10**7)
        chunk_bytes = rows * min(max(units), 64) * np.dtype(dtype).itemsize
        assert rows & (rows - 1) == 0
        assert chunk_bytes <= 2 * TARGET_CHUNK_BYTES
        assert chunk_bytes >= TARGET_CHUNK_BYTES // 4 or rows == 65536
    assert default_chunk_positions([512], "float16", 100) == 100


@pytest.mark.slow
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(1, 400),
    chunk=st.integers(1, 150),
    steps=st.lists(st.integers(1, 120), min_size=1, max_size=8),
    units=st.lists(st.integers(1, 70), min_size=1, max_size=3),
    dtype=st.sampled_from(["float16", "float32"]),
    read_chunk=st.integers(1, 200),
    close_at=st.integers(0, 400),
)
def test_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory,
    n: int,
    chunk: int,
    steps: list[int],
    units: list[int],
    dtype: str,
    read_chunk: int,
    close_at: int,
) -> None:
    """Any write sizes, chunking and one close/resume in between read back exactly."""
    path = tmp_path_factory.mktemp("prop") / "acts.h5"
    layout = {f"layer{i}/hidden": u for i, u in enumerate(units)}
    text = corpus(n, seed=n)
    kwargs = {"layout": layout, "dtype": dtype, "chunk_positions": chunk, "has_next_logprob": False}
    w = writer(path, text, **kwargs)
    pos, i = 0, 0
    while pos < n:
        b = min(pos + steps[i % len(steps)], n)
        if pos <= close_at < b:
            w.close()
            w = writer(path, text, resume=True, **kwargs)
            assert w.written == pos
        w.write(pos, values(layout, pos, b))
        pos, i = b, i + 1
    w.finish()
    want = expected(layout, n, dtype)
    with ActivationStore(path) as store:
        assert store.next_logprob is None
        for key, arr in want.items():
            np.testing.assert_array_equal(store.read(key), arr)
            got = np.concatenate([c[key] for _, _, c in store.iter_chunks([key], read_chunk)])
            np.testing.assert_array_equal(got, arr)
            last = f"{key}/{layout[key] - 1}"
            np.testing.assert_array_equal(store.unit(last), arr[:, -1])


@pytest.mark.parametrize("dtype", ["bogus", "U5", object])
def test_iter_chunks_names_a_bad_dtype_not_damage(tmp_path: Path, dtype: object) -> None:
    path = record(tmp_path / "acts.h5", corpus(300))
    with ActivationStore(path) as store:
        with pytest.raises(StoreError, match="`dtype` must be a numeric numpy dtype") as info:
            next(store.iter_chunks("layer0/hidden", dtype=dtype))
        assert "damaged" not in str(info.value)
        _, _, values = next(store.iter_chunks("layer0/hidden", dtype="float64"))
        assert values["layer0/hidden"].dtype == np.float64


def test_iter_chunks_streams(tmp_path: Path) -> None:
    """Reading every chunk never holds more than a few chunks in memory."""
    layout = {"layer0/cell": 8, "layer0/hidden": 8}
    # the peak is about 270 kB whatever n is (two chunk windows); tracemalloc also counts other
    # threads' allocations (a Dask cluster's, earlier in one-process CI: 342 kB once), so the
    # corpus is large enough that "a few chunks" and "the whole" are far apart
    n = 160_000
    w = writer(
        tmp_path / "acts.h5", corpus(n), layout=layout, dtype="float32", has_next_logprob=False
    )
    w.write(0, values(layout, 0, n))
    path = w.finish()
    total = n * 16 * 4
    with ActivationStore(path) as store:
        tracemalloc.start()
        try:
            sums = 0.0
            for _, _, chunk in store.iter_chunks(chunk_size=1000):
                sums += sum(float(v.sum()) for v in chunk.values())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < total / 8


@pytest.mark.parametrize(
    ("dtype", "compression", "mapped"),
    [("float16", None, True), ("float32", None, True), ("float16", "lzf", False)],
)
def test_iter_blocks_are_the_stored_values(
    tmp_path: Path, dtype: str, compression: str | None, mapped: bool
) -> None:
    layout = {"layer0/cell": 150, "layer0/hidden": 3}  # 150 units: chunk columns of 64, 64, 22
    text = corpus(9000)
    path = record(tmp_path / "acts.h5", text, layout=layout, dtype=dtype, compression=compression)
    with ActivationStore(path) as store:
        rows = store.chunk_positions
        windows = list(store.iter_blocks(start=17, stop=8990))
        assert windows[0][:2] == (17, min(8990, rows))
        assert windows[-1][1] == 8990
        for a, b, blocks in windows:
            for key, parts in blocks.items():
                joined = np.concatenate([x for _, x in parts], axis=1)
                np.testing.assert_array_equal(joined, store._dataset(key)[a:b])
                assert joined.dtype == np.dtype(dtype)
                assert [first for first, _ in parts] == (
                    list(range(0, layout[key], 64)) if mapped else [0]
                )
                # mapped blocks are read-only views of the file, not copies (except a padded
                # last chunk column, copied), and all are C-contiguous
                full = [x for first, x in parts if first + 64 <= layout[key]]
                assert all(x.flags.writeable != mapped for x in full)
                assert all(x.flags.c_contiguous for _, x in parts)


@pytest.mark.parametrize("compression", [None, "lzf"])
def test_iter_blocks_of_several_chunk_rows(tmp_path: Path, compression: str | None) -> None:
    layout = {"layer0/cell": 150}
    text = corpus(30_000)
    path = record(tmp_path / "acts.h5", text, layout=layout, compression=compression)
    with ActivationStore(path) as store:
        rows = store.chunk_positions
        assert 3 * rows < 30_000  # more than one window of 3 chunk rows
        windows = list(store.iter_blocks(start=5, stop=29_999, chunk_rows=3))
        assert windows[0][:2] == (5, 3 * rows)
        assert windows[-1][1] == 29_999
        for a, b, blocks in windows:
            parts = blocks["layer0/cell"]
            # each chunk row's columns, then the next row's: stack the pieces of each column
            columns: dict[int, list[np.ndarray]] = {}
            for first, x in parts:
                columns.setdefault(first, []).append(x)
            joined = np.concatenate([np.concatenate(xs) for xs in columns.values()], axis=1)
            np.testing.assert_array_equal(joined, store.read("layer0/cell", a, b))
            n_rows = len(range(a // rows * rows, b, rows))
            assert len(parts) == (3 * n_rows if compression is None else 1)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS")
def test_a_pass_over_mapped_blocks_does_not_keep_the_pages(tmp_path: Path) -> None:
    layout = {"layer0/cell": 256}
    n = 120_000  # 61 MB of float16
    w = writer(tmp_path / "acts.h5", corpus(n), layout=layout, has_next_logprob=False)
    for a in range(0, n, 20_000):
        w.write(a, {k: v.astype(np.float16) for k, v in values(layout, a, a + 20_000).items()})
    path = w.finish()

    def rss_mb() -> float:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024

    with ActivationStore(path) as store:
        before = rss_mb()
        total = 0.0
        for _, _, blocks in store.iter_blocks():
            total += sum(
                float(x[:, :4].sum()) + float(x[-1].sum()) for _, x in blocks["layer0/cell"]
            )
            for _, x in blocks["layer0/cell"]:
                total += float(np.asarray(x, dtype=np.float32).sum())  # touch every page
        grown = rss_mb() - before
    assert np.isfinite(total)
    assert grown < 30, f"RSS grew {grown:.0f} MB over a 61 MB pass"


def mapped_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path``."""
    total, current = 0, ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's header line
            current = line
        elif line.startswith("Rss:") and current.endswith(str(path)):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc/self/smaps")
def test_partial_windows_and_a_scoring_pass_leave_no_pages_mapped(tmp_path: Path) -> None:
    # windows that touch a little of each chunk, and the pipelined scoring pass: the kernel
    # maps pages around each fault too, and those must go as well
    from lstmprobe.probes import unit_scores

    layout = {"layer0/cell": 2, "layer0/hidden": 2}
    n = 300_000
    w = writer(tmp_path / "acts.h5", corpus(n), layout=layout, has_next_logprob=False)
    for a in range(0, n, 50_000):
        w.write(a, {k: v.astype(np.float16) for k, v in values(layout, a, a + 50_000).items()})
    path = w.finish()
    with ActivationStore(path) as store:
        for a in range(0, n - 1000, 37_000):
            for _, _, blocks in store.iter_blocks(start=a, stop=a + 1000):
                assert all(
                    np.isfinite(x.astype(np.float32)).all() for _, x in blocks["layer0/cell"]
                )
        assert mapped_kb(path) == 0
        unit_scores(store, ["char:a"], threads=2)
        assert mapped_kb(path) == 0


def test_read_ahead_yields_the_same_windows_and_stops_cleanly(tmp_path: Path) -> None:
    layout = {"layer0/cell": 4}
    n = 5000
    w = writer(tmp_path / "acts.h5", corpus(n), layout=layout, has_next_logprob=False)
    w.write(0, values(layout, 0, n))
    path = w.finish()
    with ActivationStore(path) as store:
        plain = list(store.iter_chunks(chunk_size=700, start=3, stop=4800))
        ahead = list(store.iter_chunks(chunk_size=700, start=3, stop=4800, read_ahead=True))
        assert [(a, b) for a, b, _ in ahead] == [(a, b) for a, b, _ in plain]
        for (_, _, x), (_, _, y) in zip(plain, ahead):
            np.testing.assert_array_equal(x["layer0/cell"], y["layer0/cell"])
        # leaving early stops the reading thread
        for _ in store.iter_chunks(chunk_size=100, read_ahead=True):
            break
        assert not any(t.name == "lstmprobe-read-ahead" for t in threading.enumerate())


def test_read_ahead_raises_the_reading_error() -> None:
    def read(a: int, b: int) -> int:
        if a == 2:
            raise OSError("disk gone")
        return a

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for a in prefetched(read, [(0, 1), (1, 2), (2, 3), (3, 4)]):
            got.append(a)
    assert got == [0, 1]


# --- next_logprob ------------------------------------------------------------------------------


def test_next_logprob_nan_and_argument_checks(tmp_path: Path) -> None:
    text = "ab\nab\n"
    layout = {"layer0/cell": 2}
    w = writer(tmp_path / "acts.h5", text, layout=layout)
    lp = np.array([-1.0, -2.0, np.nan, -1.5, -0.5, np.nan])
    with pytest.raises(StoreError, match="pass next_logprob"):
        w.write(0, values(layout, 0, 6))
    with pytest.raises(StoreError, match=r"shape \(6,\)"):
        w.write(0, values(layout, 0, 6), lp[:5])
    w.write(0, values(layout, 0, 6), lp)
    with ActivationStore(w.finish()) as store:
        np.testing.assert_array_equal(store.next_logprob, lp.astype(np.float32))
    w = writer(tmp_path / "b.h5", text, layout=layout, has_next_logprob=False)
    with pytest.raises(StoreError, match="has_next_logprob=False"):
        w.write(0, values(layout, 0, 6), lp)
    w.abort()


# --- writer checks -----------------------------------------------------------------------------


def test_write_validation(tmp_path: Path) -> None:
    text = corpus(100)
    w = writer(tmp_path / "acts.h5", text, has_next_logprob=False)
    with pytest.raises(StoreError, match="continue at position 0"):
        w.write(5, values(LAYOUT, 5, 10))
    with pytest.raises(StoreError, match="missing"):
        w.write(0, {"layer0/cell": np.zeros((3, 8))})
    bad = values(LAYOUT, 0, 10)
    bad["layer1/cell"] = np.zeros((10, 4))
    with pytest.raises(StoreError, match=r"shape \(n, 3\)"):
        w.write(0, bad)
    with pytest.raises(StoreError, match="past the end"):
        w.write(0, values(LAYOUT, 0, 101))
    w.write(0, values(LAYOUT, 0, 60))
    with pytest.raises(StoreError, match="60 of 100 positions"):
        w.finish()
    w.abort()
    assert not partial_path(tmp_path / "acts.h5").exists()
    assert not (tmp_path / "acts.h5").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dtype": "float64"}, "dtype must be one of"),
        ({"compression": "zstd"}, "compression must be"),
        ({"layout": {}}, "layout is empty"),
        ({"layout": {"layer0/cell": 0}}, "positive unit count"),
        ({"tokens": np.array([], dtype=np.int64)}, "non-empty"),
        ({"tokens": np.full(10, 99)}, "vocab ids"),
        ({"sequences": [[0, 3]]}, "covering positions"),
        ({"sequences": [[0, 4], [5, 10]]}, r"sequence 1 \[5, 10\] leaves a gap after sequence 0"),
        ({"sequences": []}, "no sequences"),
        ({"chunk_positions": 0}, "chunk_positions"),
    ],
)
def test_writer_rejects_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(StoreError, match=match):
        writer(tmp_path / "acts.h5", corpus(10), **kwargs)
    assert not partial_path(tmp_path / "acts.h5").exists()


def test_writer_rejects_bad_layout_key(tmp_path: Path) -> None:
    with pytest.raises(UnitError, match="unknown quantity 'gates'"):
        writer(tmp_path / "acts.h5", corpus(10), layout={"layer0/gates": 3})
    with pytest.raises(UnitError, match="layer0/cell"):
        writer(tmp_path / "acts.h5", corpus(10), layout={"lstm/cell": 3})


def test_quantity_names() -> None:
    assert LSTM_QUANTITIES == (
        "input_gate",
        "forget_gate",
        "candidate",
        "output_gate",
        "cell",
        "hidden",
    )
    assert GRU_QUANTITIES == ("reset_gate", "update_gate", "candidate", "hidden")


# --- overwrite, force, resume ------------------------------------------------------------------


def test_refuses_overwrite_and_force_replaces_at_finish(tmp_path: Path) -> None:
    path = record(tmp_path / "acts.h5", corpus(300))
    with pytest.raises(
        StoreError, match=r"acts.h5 already exists; pass `force=True` to overwrite or `out`"
    ):
        writer(path, corpus(300))
    w = writer(path, corpus(200, seed=1), force=True)
    # until finish(), the old recording is still there and readable
    with ActivationStore(path) as store:
        assert store.n_positions == 300
    w.write(0, values(LAYOUT, 0, 200), logprob(0, 200))
    w.finish()
    with ActivationStore(path) as store:
        assert store.n_positions == 200 and store.text == corpus(200, seed=1)


def test_partial_requires_resume_or_force(tmp_path: Path) -> None:
    path = tmp_path / "acts.h5"
    w = writer(path, corpus(300))
    w.write(0, values(LAYOUT, 0, 100), logprob(0, 100))
    w.close()
    assert partial_path(path).exists() and not path.exists()
    with pytest.raises(
        StoreError, match="pass `resume=True` to continue it or `force=True` to start over"
    ):
        writer(path, corpus(300))
    w = writer(path, corpus(300), force=True)
    assert w.written == 0
    w.abort()
    assert not partial_path(path).exists()


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_resume_after_close_matches_uninterrupted(tmp_path: Path, compression: str | None) -> None:
    text = corpus(3000)
    reference = record(
        tmp_path / "ref.h5", text, step=250, compression=compression, chunk_positions=512
    )
    path = tmp_path / "acts.h5"
    kwargs = {"compression": compression, "chunk_positions": 512}
    with pytest.raises(KeyboardInterrupt), writer(path, text, **kwargs) as w:
        for a in range(0, 1300, 250):  # stops mid-chunk: 1500 positions accepted
            w.write(a, values(LAYOUT, a, a + 250), logprob(a, a + 250))
        raise KeyboardInterrupt
    assert partial_path(path).exists() and not path.exists()
    with pytest.raises(StoreError, match="unfinished recording"):
        ActivationStore(partial_path(path))
    with ActivationStore(partial_path(path), require_complete=False) as store:
        assert not store.complete and store.positions_written == 1500
        assert "incomplete" in repr(store)
    w = writer(path, text, resume=True, chunk_positions=64, **{"compression": compression})
    assert w.written == 1500 and w.chunk_positions == 512
    for a in range(1500, 3000, 700):
        b = min(a + 700, 3000)
        w.write(a, values(LAYOUT, a, b), logprob(a, b))
    assert w.finish() == path
    assert_same_contents(path, reference)


def test_resume_without_partial_starts_new(tmp_path: Path) -> None:
    w = writer(tmp_path / "acts.h5", corpus(50), resume=True)
    assert w.written == 0
    w.abort()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"corpus_sha256": "d" * 64}, "corpus_sha256"),
        ({"model_sha256": "x"}, "model_sha256"),
        ({"dtype": "float32"}, "dtype"),
        ({"layout": {"layer0/cell": 8}}, "layout"),
        ({"run_config": {"reset": "none"}}, "run_config"),
    ],
)
def test_resume_mismatch(tmp_path: Path, change: dict, match: str) -> None:
    path = tmp_path / "acts.h5"
    text = corpus(400)
    w = writer(path, text)
    w.write(0, values(LAYOUT, 0, 100), logprob(0, 100))
    w.close()
    with pytest.raises(StoreError, match=rf"cannot resume .*different {match}.*`force=True`"):
        writer(path, text, resume=True, **change)
    # resume + force: a partial that does not match is discarded
    w = writer(path, text, resume=True, force=True, **change)
    assert w.written == 0
    w.abort()


def test_resume_corrupted_partial(tmp_path: Path) -> None:
    path = tmp_path / "acts.h5"
    partial_path(path).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(StoreError, match=r"corrupted.*start over with `force=True`"):
        writer(path, corpus(100), resume=True)
    w = writer(path, corpus(100), force=True)
    w.abort()


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    import time
    sys.path.insert(0, sys.argv[2])
    import test_store as t

    w = t.writer(t.Path(sys.argv[1]), t.corpus(60_000), chunk_positions=256, resume=True)
    print(w.written, flush=True)
    n = w.n_positions
    for a in range(w.written, n, 37):
        b = min(a + 37, n)
        w.write(a, t.values(t.LAYOUT, a, b), t.logprob(a, b))
        time.sleep(0.001)  # slow enough to be killed half-way
    """
)


@pytest.mark.slow
def test_sigkill_then_resume(tmp_path: Path) -> None:
    """A writer killed with SIGKILL leaves a partial whose recorded progress is on disk."""
    path = tmp_path / "acts.h5"
    script = tmp_path / "killed_writer.py"
    script.write_text(KILLED_WRITER)
    text = corpus(60_000)
    for delay in (0.4, 0.2):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(path), str(Path(__file__).parent)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        proc.stdout.readline()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert not path.exists()
    with ActivationStore(partial_path(path), require_complete=False) as store:
        done = store.positions_written
        assert done < 60_000
        want = values(LAYOUT, 0, done)["layer0/cell"].astype(np.float16)
        np.testing.assert_array_equal(store.read("layer0/cell", 0, done), want)
    w = writer(path, text, resume=True)
    # resumes right after the last write() that returned
    assert w.written == done and done % 37 == 0
    for a in range(w.written, 60_000, 5000):
        b = min(a + 5000, 60_000)
        w.write(a, values(LAYOUT, a, b), logprob(a, b))
    w.finish()
    want_all = expected(LAYOUT, 60_000, "float16")
    with ActivationStore(path) as store:
        for key, arr in want_all.items():
            np.testing.assert_array_equal(store.read(key), arr)
        np.testing.assert_allclose(store.next_logprob, logprob(0, 60_000).astype(np.float32))


# --- opening bad files -------------------------------------------------------------------------


def test_open_missing(tmp_path: Path) -> None:
    with pytest.raises(
        StoreError, match=r"does not exist; record it first \(`record_corpus\(MODEL, CORPUS"
    ):
        ActivationStore(tmp_path / "acts.h5")
    w = writer(tmp_path / "acts.h5", corpus(100))
    w.close()
    with pytest.raises(StoreError, match=r"unfinished recording .*resume=True\)`$"):
        ActivationStore(tmp_path / "acts.h5")


def test_open_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "acts.h5"
    path.write_text("hello")
    with pytest.raises(StoreError, match="not an HDF5 file"):
        ActivationStore(path)
    with pytest.raises(StoreError, match="is a directory"):
        ActivationStore(tmp_path)


def test_open_other_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(StoreError, match="not an lstmprobe recording"):
        ActivationStore(path)


def test_open_newer_version(tmp_path: Path) -> None:
    path = record(tmp_path / "acts.h5", corpus(50))
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(StoreError, match=r"version 2.*upgrade lstmprobe"):
        ActivationStore(path)


# --- units -------------------------------------------------------------------------------------


def test_parse_unit() -> None:
    assert parse_unit("layer0/cell/17") == ("layer0/cell", 17)
    assert parse_unit("layer3_reverse/update_gate/0") == ("layer3_reverse/update_gate", 0)
    for bad in (
        "layer0/cell",
        "layer0/cell/-1",
        "layer0/cell/x",
        "l0/cell/1",
        "layer0/c/1",
        "layer0/cell/1/2",
    ):
        with pytest.raises(UnitError):
            parse_unit(bad)


def test_unknown_units(tmp_path: Path) -> None:
    path = record(tmp_path / "acts.h5", corpus(100))
    with ActivationStore(path) as store:
        with pytest.raises(
            UnitError, match=r"layer0/forget_gate was not recorded.*recorded: layer0/input_gate"
        ):
            store.unit("layer0/forget_gate/1")
        with pytest.raises(UnitError, match=r"units 0\.\.7"):
            store.unit("layer0/cell/8")
        with pytest.raises(UnitError, match=r"units 0\.\.2, got unit 3"):
            store.read("layer1/cell", units=[0, 3])
        with pytest.raises(UnitError, match="was not recorded"):
            store.read("layer2/cell")
        with pytest.raises(UnitError, match="layer 'layer9' was not recorded"):
            store.quantities("layer9")
        with pytest.raises(KeyError):  # UnitError is a KeyError and a LstmprobeError
            store.n_units("layer5/hidden")
        with pytest.raises(LstmprobeError):
            store.units(["layer0/nope"])
        with pytest.raises(StoreError, match="0 <= start <= stop <= 100"):
            store.read("layer0/cell", 50, 101)
    with pytest.raises(StoreError, match="closed"):
        store.read("layer0/cell")


# --- beside the store --------------------------------------------------------------------------


def test_sibling_and_write_json_atomic(tmp_path: Path) -> None:
    path = record(tmp_path / "acts.h5", corpus(50))
    with ActivationStore(path) as store:
        target = store.sibling("rankings.json")
    assert target == tmp_path / "acts.rankings.json"
    out = write_json_atomic(
        target, {"units": ["layer0/cell/3"], "score": np.float32(0.5), "n": np.int64(2)}
    )
    assert out == target
    assert json.loads(target.read_text()) == {"units": ["layer0/cell/3"], "score": 0.5, "n": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts.h5", "acts.rankings.json"]
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text())["n"] == 2  # the old file survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acts.h5", "acts.rankings.json"]
    w = writer(tmp_path / "b.h5", corpus(10))
    w.close()
    with ActivationStore(partial_path(tmp_path / "b.h5"), require_complete=False) as store:
        assert store.sibling("rankings.json") == tmp_path / "b.rankings.json"


# --- damaged recordings: one StoreError, never an h5py or numpy traceback ----------------------


def _damage(path: Path, offset: int, n: int = 8) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + n] = b"\xff" * n
    path.write_bytes(bytes(data))


def _read_everything(path: Path) -> None:
    with ActivationStore(path) as store:
        store.summary()
        store.read_text()
        for key in store.keys:
            store.read(key)
        list(store.iter_chunks())
        list(store.iter_blocks())


def test_damaged_object_header_is_one_store_error(tmp_path: Path) -> None:
    path = record(tmp_path / "acts.h5", corpus(300))
    with h5py.File(path, "r") as f:
        address = h5py.h5o.get_info(f["layer0/cell"].id).addr
    _damage(path, address)
    with pytest.raises(StoreError, match=r"acts.h5 is a damaged lstmprobe recording \(.*object"):
        _read_everything(path)


def test_damaged_global_heap_is_one_store_error(tmp_path: Path) -> None:
    path = record(tmp_path / "acts.h5", corpus(300))
    heap = path.read_bytes().find(b"GCOL")  # the global heap holds the string attributes
    assert heap > 0
    _damage(path, heap + 16)
    with pytest.raises(StoreError, match=r"damaged lstmprobe recording \(.*heap"):
        _read_everything(path)


def test_tokens_outside_the_vocabulary_are_refused(tmp_path: Path) -> None:
    path = record(tmp_path / "acts.h5", corpus(300))
    with h5py.File(path, "r+") as f:
        f["tokens"][17] = len(VOCAB) + 3
    with ActivationStore(path) as store:
        store.read_tokens(0, 10)  # the damage is elsewhere
        with pytest.raises(StoreError, match=r"position 17 has token 12, outside its vocabulary"):
            store.read_text()


@pytest.mark.parametrize(
    ("seqs", "match"),
    [
        ([[0, 100], [100, 400]], r"cover \[0, 400\), not the 300 positions"),
        ([[0, 100], [90, 300]], r"sequence 1 \[90, 300\] overlaps sequence 0"),
        ([[0, 100], [150, 300]], r"leaves a gap after sequence 0"),
        ([[0, 200], [100, 200], [200, 300]], r"sequence 1 \[100, 200\] overlaps"),
        ([[0, 0], [0, 300]], r"sequence 0 is \[0, 0\], empty or reversed"),
        ([[0, 300, 5]], r"sequences of shape \(1, 3\)"),
    ],
)
def test_sequences_are_validated_on_open(tmp_path: Path, seqs: list, match: str) -> None:
    path = record(tmp_path / "acts.h5", corpus(300))
    with h5py.File(path, "r+") as f:
        del f["sequences"]
        f["sequences"] = np.array(seqs, dtype=np.int64)
    with pytest.raises(StoreError, match=match):
        ActivationStore(path)


def test_float_sequences_are_refused(tmp_path: Path) -> None:
    path = record(tmp_path / "acts.h5", corpus(300))
    with h5py.File(path, "r+") as f:
        del f["sequences"]
        f["sequences"] = np.array([[0.0, 300.0]])
    with pytest.raises(StoreError, match="expected integer pairs"):
        ActivationStore(path)


def test_float16_overflow_is_one_warning_per_dataset_naming_it(tmp_path: Path) -> None:
    """Values beyond float16's range are stored as inf and told once per dataset, through the
    warn callback, with what to do; numpy's own "overflow encountered in cast" never shows
    (warnings are errors here)."""
    text = corpus(900)
    heard: list[str] = []
    w = writer(tmp_path / "acts.h5", text, warn=heard.append)
    for a in range(0, 900, 300):
        arrays = values(LAYOUT, a, a + 300)
        arrays["layer0/cell"][:, 2] = 1e6  # past float16's 65,504 in every write
        if a == 300:
            arrays["layer1/cell"][10, 0] = -7e4
        w.write(a, arrays, logprob(a, a + 300))
    path = w.finish()
    assert len(heard) == 2, heard
    assert heard[0].startswith("layer0/cell: 300 value(s) from position 0 on exceed")
    assert heard[1].startswith("layer1/cell: 1 value(s) from position 310 on exceed")
    assert all("`dtype='float32'`" in line for line in heard)
    with ActivationStore(path) as store:
        assert np.isposinf(store.read("layer0/cell")[:, 2]).all()
        assert store.read("layer1/cell")[310, 0] == -np.inf
        assert np.isfinite(store.read("layer0/hidden")).all()


def test_float16_overflow_warns_without_a_callback_and_not_in_float32(tmp_path: Path) -> None:
    text = corpus(200)
    arrays = values(LAYOUT, 0, 200)
    arrays["layer0/hidden"][5, 1] = 1e5
    w = writer(tmp_path / "acts.h5", text)
    with pytest.warns(PrecisionWarning, match=r"^layer0/hidden: 1 value\(s\) from position 5"):
        w.write(0, arrays, logprob(0, 200))
    w.abort()
    heard: list[str] = []
    w = writer(tmp_path / "b.h5", text, dtype="float32", warn=heard.append)
    w.write(0, arrays, logprob(0, 200))
    w.finish()
    assert heard == []


def test_the_space_reserved_holds_the_whole_uncompressed_file(tmp_path: Path) -> None:
    from lstmprobe.store import recording_bytes

    layout = {"layer0/cell": 70, "layer0/hidden": 3}  # whole blocks of 64 units, whole chunk rows
    text = corpus(20000)  # the padding (58 units a row) is more than the 1 MiB margin
    path = record(tmp_path / "acts.h5", text, step=5000, layout=layout, chunk_positions=96)
    with ActivationStore(path) as store:
        cp = store.chunk_positions
    bound = recording_bytes(list(layout.values()), "float16", len(text), cp,
                            n_sequences=len(sequences(text, "line")))  # fmt: skip
    assert path.stat().st_size <= bound


def test_the_finite_check_of_float16_agrees_with_numpy_on_every_value() -> None:
    from lstmprobe.store.writer import all_finite_float16

    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = np.isfinite(every)
    assert finite.sum() == (1 << 16) - 2 * 1024  # ±inf and 2046 NaNs are the others
    for bits in range(0, 1 << 16, 7):  # one value in a row of finite ones, 9,363 of them
        row = np.ones((3, 5), dtype=np.float16)
        row[1, 2] = every[bits]
        assert all_finite_float16(row) == bool(finite[bits]), hex(bits)
    for bits in (0x7BFF, 0x7C00, 0x7C01, 0x7FFF, 0xFBFF, 0xFC00, 0xFE00, 0xFFFF, 0x8000):
        assert all_finite_float16(every[bits : bits + 1]) == bool(finite[bits]), hex(bits)
        column = np.zeros((4, 3), dtype=np.float16)
        column[2, 1] = every[bits]
        assert all_finite_float16(column[:, 1]) == bool(finite[bits])  # not contiguous
    assert all_finite_float16(np.zeros((0, 4), dtype=np.float16))


def test_writes_without_commit_count_only_once_synced_and_marked(tmp_path: Path) -> None:
    """``commit=False`` leaves the progress marker where it was: a resume continues from the
    last mark, which never passes what a sync made durable."""
    text = corpus(900)
    path = tmp_path / "acts.h5"
    w = writer(path, text)
    w.write(0, values(LAYOUT, 0, 300), logprob(0, 300), commit=False)
    assert (w.written, w.committed) == (300, 0)
    with pytest.raises(StoreError, match="0 are durable"):
        w.mark(300)  # not synced yet
    assert w.sync() == 300
    w.write(300, values(LAYOUT, 300, 600), logprob(300, 600), commit=False)
    with pytest.raises(StoreError, match="300 are durable"):
        w.mark(600)
    w.mark(300)
    w.close()
    with ActivationStore(partial_path(path), require_complete=False) as store:
        assert store.positions_written == 300
    w = writer(path, text, resume=True)
    assert (w.written, w.committed) == (300, 300)
    w.write(300, values(LAYOUT, 300, 900), logprob(300, 900), commit=False)
    assert w.finish() == path  # finishing makes the rest durable and marks it first
    assert_same_contents(path, record(tmp_path / "ref.h5", text, step=300))
