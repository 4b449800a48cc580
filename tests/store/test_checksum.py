"""Checksums of a recording's values: stored at finish, verified before a dataset is read in
full, and by `lstmprobe info --verify` (issue 17, caveat 8: edited recordings were accepted
silently)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.errors import StoreError
from lstmprobe.store import ActivationStore
from lstmprobe.store.checksum import ATTR, PENDING, Checksum, checksummed, dataset_checksum
from tests.store.test_store import LAYOUT
from tests.stores import BASE, build_store


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line(result, *parts: str) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert all(p in lines[0] for p in parts), lines[0]
    return lines[0]


@pytest.mark.parametrize("compression", [None, "gzip"])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_a_finished_recording_holds_the_sha256_of_each_dataset_values(
    tmp_path: Path, compression: str | None, dtype: str
) -> None:
    from tests.store.test_store import record

    path = record(tmp_path / "acts.h5", "ab\ncd\n" * 300, dtype=dtype, compression=compression)
    with h5py.File(path, "r") as f:
        names = checksummed(LAYOUT, True)
        for name in names:
            ds = f[name]
            reference = hashlib.sha256(np.ascontiguousarray(ds[()]).tobytes()).hexdigest()
            assert ds.attrs[ATTR].decode() == reference == dataset_checksum(ds), name
    with ActivationStore(path) as store:
        assert store.has_checksums and all(store.verify().values())


def test_the_checksum_streams_in_any_windows() -> None:
    values = np.random.default_rng(0).normal(size=(1000, 7)).astype(np.float16)
    one = Checksum()
    one.update(values)
    parts = Checksum()
    for a, b in [(0, 1), (1, 333), (333, 334), (334, 1000)]:
        parts.update(values[a:b])
    big_endian = Checksum()
    big_endian.update(values.astype(">f2"))  # the same values in the other byte order
    assert one.hexdigest() == parts.hexdigest() == big_endian.hexdigest()


@pytest.fixture
def edited(tmp_path: Path) -> Path:
    """A finished recording with one value of layer0/hidden changed afterwards."""
    path = build_store(tmp_path / "acts.h5", BASE * 3)
    with h5py.File(path, "r+") as f:
        f["layer0/hidden"][100, 2] += 0.5
    return path


def test_an_edited_recording_is_refused_before_it_is_read_in_full(edited: Path) -> None:
    with ActivationStore(edited) as store:
        store.read("layer0/hidden", 0, 10)  # a window is read without a full check
        assert store.verify(["layer0/cell"]) == {"layer0/cell": True}
        with pytest.raises(StoreError, match=r"values of layer0/hidden do not match"):
            store.verify()
        with pytest.raises(StoreError, match="was changed after it was recorded"):
            list(store.iter_chunks(["layer0/hidden"]))
    one_line(run("info", "--store", edited, "--verify"), "changed after it was recorded")
    assert run("info", "--store", edited).exit_code == 0  # what it holds, unchecked
    one_line(run("report", "--store", edited, "-q"), "layer0/hidden do not match")
    assert not edited.with_name("acts.report.html").exists()
    found = run("find-neurons", "--store", edited, "-f", "quote", "--no-probe", "-q")
    one_line(found, "layer0/hidden do not match")
    assert not edited.with_name("acts.rankings.json").exists()


def test_an_edited_token_is_refused(tmp_path: Path) -> None:
    path = build_store(tmp_path / "acts.h5", BASE * 3)
    with h5py.File(path, "r+") as f:
        f["tokens"][7] = (int(f["tokens"][7]) + 1) % 5  # another char of the vocabulary
    with ActivationStore(path) as store:
        assert store.read_text(0, 20)
        with pytest.raises(StoreError, match="values of tokens do not match"):
            store.read_text()


def test_info_verify_says_what_it_checked(tmp_path: Path) -> None:
    path = build_store(tmp_path / "acts.h5", BASE * 3)
    result = run("info", "--store", path, "--verify")
    assert result.exit_code == 0, result.output
    assert "verified: 4 datasets match their checksums" in result.stdout
    result = run("info", "--store", path, "--verify", "--json")
    import json

    got = json.loads(result.stdout)
    assert got["checksums"] is True and got["unverified"] == []
    assert got["verified"] == ["tokens", "sequences", "layer0/cell", "layer0/hidden"]


def test_a_recording_without_checksums_still_opens_and_reads(tmp_path: Path) -> None:
    """A recording finished before checksums existed (no attribute): read as before."""
    path = build_store(tmp_path / "acts.h5", BASE * 3)
    with h5py.File(path, "r+") as f:
        for name in ("tokens", "sequences", "layer0/cell", "layer0/hidden"):
            del f[name].attrs[ATTR]
        f["layer0/cell"][3, 0] = 7.0  # nothing can tell
    with ActivationStore(path) as store:
        assert not store.has_checksums
        assert store.verify() == dict.fromkeys(
            ["tokens", "sequences", "layer0/cell", "layer0/hidden"], False
        )
        assert store.read("layer0/cell")[3, 0] == 7.0
    result = run("info", "--store", path, "--verify")
    assert result.exit_code == 0 and "unverified: tokens, sequences" in result.stdout
    assert run("report", "--store", path, "-q", "--no-figures").exit_code == 0


def test_a_placeholder_left_in_a_finished_recording_does_not_verify(tmp_path: Path) -> None:
    path = build_store(tmp_path / "acts.h5", BASE * 3)
    with h5py.File(path, "r+") as f:
        f["layer0/cell"].attrs.modify(ATTR, np.bytes_(PENDING.encode()))
    with ActivationStore(path) as store, pytest.raises(StoreError, match="layer0/cell"):
        store.verify()


def test_an_unfinished_recording_has_placeholders_of_the_final_size(tmp_path: Path) -> None:
    """Finishing rewrites the attributes in place: no HDF5 metadata grows at finish."""
    from tests.store.test_store import corpus, writer

    path = tmp_path / "acts.h5"
    w = writer(path, corpus(100), has_next_logprob=False)
    w.close()
    with h5py.File(path.with_name("acts.h5.partial"), "r") as f:
        for name in checksummed(LAYOUT, False):
            assert f[name].attrs[ATTR] == PENDING.encode()
            assert f[name].attrs.get_id(ATTR).dtype.itemsize == 64


@pytest.mark.parametrize("how", ["resumed", "rewound"])
def test_the_checksums_of_a_resumed_or_rewound_recording_are_its_values(
    tmp_path: Path, how: str
) -> None:
    """A recording written in one go hashes its values as they are written; after a resume or
    a rewind the values before it were not seen by this writer, and are read back instead."""
    from tests.store.test_store import logprob, values, writer

    text = "ab\ncd\n" * 300
    path, n = tmp_path / "acts.h5", len(text)
    w = writer(path, text)
    w.write(0, values(LAYOUT, 0, 500), logprob(0, 500))
    if how == "resumed":
        w.close()
        w = writer(path, text, resume=True)
    else:
        w.write(500, values(LAYOUT, 500, 900, seed=1), logprob(500, 900))  # then taken back
        w.rewind(500)
    w.write(500, values(LAYOUT, 500, n), logprob(500, n))
    w.finish()
    with h5py.File(path, "r") as f:
        for name in checksummed(LAYOUT, True):
            assert f[name].attrs[ATTR].decode() == dataset_checksum(f[name]), name
