"""A recording in shards: the store of virtual datasets over them reads as one recording, equal
bit for bit to a one-process recording, opens only when every shard is there and is its own,
and consolidates into one ordinary file (docs/scale-out.md)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from lstmprobe.errors import StoreError
from lstmprobe.models import LoadedModel
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.store import ActivationStore, Recording, consolidate, partial_path
from lstmprobe.text import Corpus, Vocab
from tests.conftest import CORPUS, make_model
from tests.stores import record_sharded


def corpus() -> Corpus:
    return Corpus.of_files([(f"f{i:02d}.txt", CORPUS[i * 5 :] * (1 + i % 3)) for i in range(10)])


def raw(path: Path) -> dict[str, object]:
    """Every dataset's values (floats as their bytes: NaN == NaN; strings as text)."""
    out: dict[str, object] = {}

    def take(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            value = (
                np.asarray(obj.asstr()[()]).tolist() if obj.dtype.kind == "O" else obj[()].tobytes()
            )
            out[name] = value

    with h5py.File(path, "r") as f:
        f.visititems(take)
    return out


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A one-process recording and a sharded one of the same files (4 shards)."""
    d = tmp_path_factory.mktemp("shards")
    vocab = Vocab.from_text(CORPUS)
    loaded = LoadedModel(make_model(vocab), vocab, "checkpoint", sha256="1" * 64)
    options = RecordOptions(batch_chars=500)
    record_corpus(loaded, corpus(), d / "one.h5", options)
    (d / "run").mkdir()
    record_sharded(loaded, corpus(), d / "run" / "acts.h5", options)
    return d, loaded


def sharded_copy(recordings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    shutil.copytree(recordings[0] / "run", tmp_path / "run")
    return tmp_path / "run" / "acts.h5"


def test_a_sharded_store_equals_the_one_process_recording_bit_for_bit(recordings) -> None:
    d, _ = recordings
    one, sharded = raw(d / "one.h5"), raw(d / "run" / "acts.h5")
    count = len(sorted((d / "run" / "acts.h5.shards").glob("shard-*.h5")))
    assert count >= 3
    for name in one:
        if name != "positions_written":
            assert one[name] == sharded[name], name
    with h5py.File(d / "run" / "acts.h5", "r") as f:
        ds = f["layer0/cell"]
        assert ds.is_virtual
        assert {s.file_name for s in ds.virtual_sources()} == {
            f"acts.h5.shards/shard-{i:05d}.h5" for i in range(count)
        }  # relative to the store's folder
    with ActivationStore(d / "run" / "acts.h5") as store, ActivationStore(d / "one.h5") as ref:
        assert len(store.shards) == count and store.summary()["shards"] == count
        assert store.files == ref.files and store.text == ref.text
        np.testing.assert_array_equal(store.unit("layer1/cell/2"), ref.unit("layer1/cell/2"))
        blocks = [w for _, _, w in store.iter_blocks(["layer0/hidden"], chunk_rows=2)]
        got = np.concatenate([b["layer0/hidden"][0][1] for b in blocks])
        np.testing.assert_array_equal(got, ref.read("layer0/hidden").astype(np.float16))


def test_the_folder_moves_with_its_shards(recordings, tmp_path: Path) -> None:
    store = sharded_copy(recordings, tmp_path)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    os.rename(store.parent, moved)
    here = Path.cwd()
    os.chdir(tmp_path / "elsewhere")
    try:
        with ActivationStore(moved / "acts.h5") as s:
            assert s.read("layer0/cell").shape == (len(corpus().text), 3)
    finally:
        os.chdir(here)


def damage(store: Path, how: str, recordings) -> None:  # type: ignore[no-untyped-def]
    shard = Recording.at(store).shards / "shard-00002.h5"
    if how == "missing":
        shard.unlink()
    elif how == "truncated":
        os.truncate(shard, shard.stat().st_size // 2)
    elif how == "garbage":
        shard.write_bytes(b"\x00" * shard.stat().st_size)
    elif how == "foreign":  # the same shard of a recording of another model
        other = recordings[0] / "other"
        if not other.exists():
            v = recordings[1].vocab
            loaded = LoadedModel(make_model(v, seed=5), v, "checkpoint", sha256="2" * 64)
            other.mkdir()
            record_sharded(loaded, corpus(), other / "acts.h5", RecordOptions(batch_chars=500))
        src = Recording.at(other / "acts.h5").shards / "shard-00002.h5"
        shard.unlink()
        shutil.copy(src, shard)
    elif how == "recorded again":  # the same shard of this recording, recorded again
        from lstmprobe.store.shards import Shard

        with h5py.File(shard, "r") as f:
            a = dict(f.attrs)
        again = Shard(str(a["shard_of"]), 2, int(a["shard_start"]), int(a["shard_stop"]),
                      int(a["chunk_positions"]), True)  # fmt: skip
        shard.unlink()
        part = corpus().part(again.start, again.stop)
        record_corpus(recordings[1], part, shard, RecordOptions(batch_chars=500), shard=again)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("missing", "whose shard .*shard-00002.h5 is missing .*fill values"),
        ("truncated", "shard .*shard-00002.h5 of .* bytes where .* were written: it was cut short"),
        ("garbage", "shard .*shard-00002.h5 of .*is damaged"),
        ("foreign", "shard .*shard-00002.h5 of .* belongs to another recording"),
        ("recorded again", "is not the shard the store was made from"),
    ],
)
def test_a_missing_cut_or_foreign_shard_is_refused_never_read_as_fill_values(
    recordings, tmp_path: Path, how: str, message: str
) -> None:
    store = sharded_copy(recordings, tmp_path)
    with ActivationStore(store):
        pass  # whole: it opens (and this process has checked its shards once)
    damage(store, how, recordings)
    with pytest.raises(StoreError, match=message) as info:
        ActivationStore(store)
    assert "\n" not in str(info.value)
    with pytest.raises(StoreError, match=message):
        consolidate(store, tmp_path / "one-file.h5")
    assert not (tmp_path / "one-file.h5").exists()
    assert not partial_path(tmp_path / "one-file.h5").exists()


def test_consolidate_copies_into_one_ordinary_file_bit_for_bit(recordings, tmp_path: Path) -> None:
    d, _ = recordings
    out = consolidate(d / "run" / "acts.h5", tmp_path / "one-file.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one-file.h5"]
    one, copied = raw(d / "one.h5"), raw(out)
    assert one == copied
    with h5py.File(out, "r") as f:
        assert not f["layer0/cell"].is_virtual and "shards" not in f
    with pytest.raises(StoreError, match="already exists"):
        consolidate(d / "run" / "acts.h5", out)
    consolidate(d / "run" / "acts.h5", out, force=True, compression="gzip")
    with ActivationStore(out) as s:
        assert s.compression == "gzip"
    with pytest.raises(StoreError, match="another file"):
        consolidate(out, out)


@pytest.mark.parametrize(
    "how", ["another file", "other positions", "a path out of the folder", "no table"]
)
def test_a_crafted_sharded_store_is_refused(recordings, tmp_path: Path, how: str) -> None:
    # the table and the virtual datasets must agree: HDF5 follows the datasets' own sources
    store = sharded_copy(recordings, tmp_path)
    (tmp_path / "secret.h5").write_bytes((recordings[0] / "one.h5").read_bytes())
    with h5py.File(store, "a") as f:
        ds = f["layer0/cell"]
        shape, dtype = ds.shape, ds.dtype
        table = json.loads(f["shards"][()])
        if how == "a path out of the folder":
            table[1]["path"] = "../secret.h5"
            del f["shards"]
            f.create_dataset("shards", data=json.dumps(table), dtype=h5py.string_dtype())
        elif how == "no table":
            del f["shards"]
        else:
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            for s in table:
                src = "../secret.h5" if how == "another file" and s["index"] == 1 else s["path"]
                lo, hi = s["start"], s["stop"]
                if how == "other positions" and s["index"] == 1:
                    lo, hi = lo + 1, hi
                layout[lo:hi] = h5py.VirtualSource(src, "layer0/cell", shape=(hi - lo, shape[1]))
            del f["layer0/cell"]
            f["layer0"].create_virtual_dataset("cell", layout, fillvalue=np.nan)
    with pytest.raises(StoreError, match="damaged lstmprobe recording") as info:
        ActivationStore(store)
    assert "\n" not in str(info.value)


def test_a_sharded_store_is_verified_shard_by_shard(recordings, tmp_path: Path) -> None:
    # each shard stores the checksums of its values; the store's table keeps them, and a pass
    # over a whole dataset checks every shard's values against them (harden: checksums)
    d, _ = recordings
    with ActivationStore(d / "run" / "acts.h5") as s, ActivationStore(d / "one.h5") as ref:
        assert s.has_checksums and ref.has_checksums
        assert all(s.verify().values()) and set(s.verify()) == set(ref.verify())
    out = consolidate(d / "run" / "acts.h5", tmp_path / "one-file.h5")
    with h5py.File(out, "r") as copied, h5py.File(d / "one.h5", "r") as one:
        for name in ("tokens", "sequences", "layer0/cell", "layer1/hidden", "next_logprob"):
            assert copied[name].attrs["sha256"] == one[name].attrs["sha256"], name
    store = sharded_copy(recordings, tmp_path / "changed")
    shard = Recording.at(store).shards / "shard-00001.h5"
    with h5py.File(shard, "r") as f:
        offset = f["layer0/cell"].id.get_chunk_info(0).byte_offset  # uncompressed
    size = shard.stat().st_size
    with open(shard, "r+b") as fh:  # one value changed in place: same size, same attributes
        fh.seek(offset + 2)
        byte = fh.read(1)
        fh.seek(offset + 2)
        fh.write(bytes([byte[0] ^ 0x40]))
    assert shard.stat().st_size == size
    with ActivationStore(store) as s:  # opening checks identities, not values
        s.read("layer0/cell", 0, 3)
        with pytest.raises(StoreError, match=r"shard .*shard-00001\.h5 .* was changed after"):
            s.read("layer0/cell")
        assert s.verify(["layer0/hidden"]) == {"layer0/hidden": True}
    with pytest.raises(StoreError, match="layer0/cell do not match"):
        consolidate(store, tmp_path / "again.h5")
    assert not (tmp_path / "again.h5").exists() and not partial_path(tmp_path / "again.h5").exists()
