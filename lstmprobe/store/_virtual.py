"""A store whose datasets are HDF5 virtual datasets over shard files: its table of shards, and
the check, on every open, that each shard is there and is the one the table names.

HDF5 reads a virtual dataset's missing source as its fill value, silently; so a sharded store
is opened only after every shard it names is found: the file exists, has the size the table
recorded, and is a complete shard of this recording with the table's identity.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe.errors import StoreError, one_line
from lstmprobe.store._format import FORMAT, attr_str, dataset
from lstmprobe.store.checksum import PENDING, Checksum, stored, window_rows
from lstmprobe.store.recording import SHARDS_SUFFIX

#: The root attribute naming a sharded recording (the same in its store and its shards).
RECORDING_ID = "recording_id"
#: The dataset of a sharded store that lists its shards (JSON text).
TABLE = "shards"
#: A shard's own root attributes, beside the format's.
SHARD_ATTRS = ("shard_of", "shard_index", "shard_start", "shard_stop", "shard_uid")


@dataclass(frozen=True)
class ShardFile:
    """One finished shard file as a sharded store's table names it.

    ``path`` is relative to the store's directory (POSIX); ``uid`` was drawn when the shard
    file was created and ``size`` is its length in bytes, so that a shard replaced or cut
    short after the store was written is told apart from the one it names. ``sha256`` holds
    the checksum of each of the shard's datasets (:mod:`lstmprobe.store.checksum`), as the
    shard stored it when it was finished: the store's virtual datasets are verified shard by
    shard against them (:func:`verify_shards`).
    """

    index: int
    start: int
    stop: int
    path: str
    uid: str
    size: int
    sha256: dict[str, str]

    @property
    def positions(self) -> int:
        return self.stop - self.start


def read_table(f: h5py.File) -> list[ShardFile]:
    """The shards a sharded store names (in position order); KeyError/ValueError if damaged.

    Each path must be ``FOLDER/shard-NNNNN.h5`` relative to the store (never absolute, never
    ``..``), and the shards must tile the positions in order."""
    rows = json.loads(attr_str(dataset(f, TABLE)[()]))
    shards = [ShardFile(**{k: row[k] for k in ShardFile.__dataclass_fields__}) for row in rows]
    stop = 0
    for s in shards:
        if not isinstance(s.path, str) or not isinstance(s.uid, str):
            raise ValueError("a shard's path and uid are text")
        for number in (s.index, s.start, s.stop, s.size):
            if isinstance(number, bool) or not isinstance(number, int):
                raise ValueError("a shard's index, positions and size are integers")
        if not isinstance(s.sha256, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in s.sha256.items()
        ):
            raise ValueError("a shard's checksums are text by dataset name")
        parts = Path(s.path).parts
        if (
            len(parts) != 2
            or not parts[0].endswith(SHARDS_SUFFIX)
            or ".." in parts
            or Path(s.path).is_absolute()
        ):
            raise ValueError(f"shard path {s.path[:80]!r} is not FOLDER.shards/NAME")
        if s.start != stop or s.stop <= s.start:
            raise ValueError("the shards do not tile the positions in order")
        stop = s.stop
    return shards


def check_virtual(
    f: h5py.File, names: list[str], shards: list[ShardFile], store: Path | None = None
) -> None:
    """Every virtual dataset of ``names`` maps exactly the table's shards, in order, each to its
    positions; a store without a table has no virtual dataset (ValueError otherwise).

    A sharded ``store`` checked once by this process is not checked again while its file is the
    same (size, time, inode): reading 512 shards' mappings of 7 datasets took 0.8 s an open.
    """
    key = None
    if store is not None and shards:
        st = os.stat(store)
        key = (str(store), st.st_size, st.st_mtime_ns, st.st_ino)
        with _verified_lock:
            if _mapped.get(key) == tuple(names):
                return
    for name in names:
        ds = dataset(f, name)
        if not ds.is_virtual:
            if shards:
                raise ValueError(f"{name} is not a virtual dataset over the shards")
            continue
        if not shards:
            raise ValueError(f"{name} is a virtual dataset but the store names no shards")
        sources = ds.virtual_sources()
        if len(sources) != len(shards):
            raise ValueError(f"{name} maps {len(sources)} sources for {len(shards)} shards")
        for source, s in zip(sources, shards):
            lo, hi = source.vspace.get_select_bounds()
            if (source.file_name, source.dset_name.lstrip("/")) != (s.path, name) or (
                lo[0],
                hi[0] + 1,
            ) != (s.start, s.stop):
                raise ValueError(
                    f"{name} maps another file or other positions than shard {s.index}"
                )
    if key is not None:
        with _verified_lock:
            _mapped[key] = tuple(names)


def table_text(shards: list[ShardFile]) -> str:
    return json.dumps([asdict(s) for s in shards])


def shard_identity(path: Path) -> dict[str, Any]:
    """A shard file's identity attributes and whether it is complete (OSError and the like
    where it is not an HDF5 file)."""
    with h5py.File(path, "r", locking=False) as f:
        a = f.attrs
        out: dict[str, Any] = {
            "format": attr_str(a.get("format", "")),
            "complete": bool(a.get("complete", False)),
        }
        for name in SHARD_ATTRS:
            value = a.get(name)
            out[name] = attr_str(value) if isinstance(value, (str, bytes)) else value
        out["sha256"] = shard_checksums(f)
    return out


def shard_checksums(f: h5py.File) -> dict[str, str]:
    """The checksums a shard file stored for its datasets (attributes only: nothing is read);
    a dataset without one (an unfinished shard) is left out."""
    found: dict[str, str] = {}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            digest = stored(obj.attrs)
            if digest is not None and digest != PENDING:
                found[name] = digest

    f.visititems(visit)
    return found


def verify_shards(store: Path, shards: list[ShardFile], name: str, ds: Any) -> bool:
    """Check the values of the virtual dataset ``ds`` (``name`` of the sharded ``store``) shard
    by shard against the checksum each shard stored when it was finished (the store's table
    keeps them); False where a shard holds none. Read through ``ds`` itself, window by window
    (:func:`~lstmprobe.store.checksum.window_rows`): the values are the shard's own.

    Raises
    ------
    StoreError
        A shard's values differ from its checksum: the shard was changed after it was recorded.
    """
    step = window_rows(tuple(ds.shape), np.dtype(ds.dtype).itemsize)
    for s in shards:
        expected = s.sha256.get(name)
        if expected is None:
            return False
        check = Checksum()
        for a in range(s.start, s.stop, step):
            check.update(np.asarray(ds[a : min(a + step, s.stop)]))
        if check.hexdigest() != expected:
            raise StoreError(
                f"shard {store.parent / s.path} of {store} was changed after it was recorded: "
                f"the values of {name} do not match the checksum stored when the shard was "
                "finished (docs/store-format.md); record the shard again with `resume=True`, "
                "or restore it"
            )
    return True


# the shards checked by this process: (path, size, mtime, inode) -> (recording, uid, start, stop)
_verified: dict[tuple[str, int, int, int], tuple[str, str, int, int]] = {}
_verified_lock = threading.Lock()
# the sharded stores whose virtual datasets this process checked: (path, size, mtime, inode)
_mapped: dict[tuple[str, int, int, int], tuple[str, ...]] = {}


def check_sources(f: h5py.File, store: Path) -> list[ShardFile]:
    """Check every shard the sharded store ``f`` (at ``store``) names; returns its table.

    Each shard file must exist beside the store at its relative path, have the size the table
    recorded, and be a complete shard of this recording (``recording_id``) with the table's
    uid and positions. A shard already checked by this process is checked again only when its
    size, time or inode changed (an ``os.stat`` per shard on later opens).

    Raises
    ------
    StoreError
        One line naming the first shard that is missing, cut short, damaged or foreign.
    """
    recording = attr_str(f.attrs.get(RECORDING_ID, ""))
    shards = read_table(f)
    base = store.parent
    for s in shards:
        path = base / s.path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise StoreError(
                f"{store} is a sharded recording whose shard {path} is missing (HDF5 would read "
                "its positions as fill values); put the shard back (a sharded store moves with "
                f"its {Path(s.path).parent} folder), or record the missing shards again with "
                "`resume=True`"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read shard {path} of {store}: {exc.strerror}") from None
        if st.st_size != s.size:
            raise StoreError(
                f"shard {path} of {store} has {st.st_size:,} bytes where {s.size:,} were "
                "written: it was cut short or replaced; record the shard again with `resume=True`"
            )
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        want = (recording, s.uid, s.start, s.stop)
        with _verified_lock:
            if _verified.get(key) == want:
                continue
        _check_shard(path, store, s, recording)
        with _verified_lock:
            _verified[key] = want
    return shards


def _check_shard(path: Path, store: Path, s: ShardFile, recording: str) -> None:
    try:
        got = shard_identity(path)
    except Exception as exc:
        raise StoreError(
            f"shard {path} of {store} is damaged ({one_line(exc)[:120]}); record the shard "
            "again with `resume=True`"
        ) from None
    if got["format"] != FORMAT or not got["complete"]:
        raise StoreError(
            f"shard {path} of {store} is not a complete lstmprobe recording; record the shard "
            "again with `resume=True`"
        )
    if got["shard_of"] != recording:
        raise StoreError(
            f"shard {path} of {store} belongs to another recording (recording "
            f"{str(got['shard_of'])[:12]}, this store's {recording[:12]}); put this store's "
            "shard back, or record again"
        )
    if (got["shard_uid"], got["shard_start"], got["shard_stop"], got["sha256"]) != (
        s.uid,
        s.start,
        s.stop,
        s.sha256,
    ):
        raise StoreError(
            f"shard {path} of {store} is not the shard the store was made from (recorded "
            "again since?); make the store again from its shards with `resume=True`"
        )
