"""A recording in shards (``lstmprobe record --dask``, docs/scale-out.md).

Each shard is an ordinary store of its own positions, written with the writer's crash safety
(``.partial``, fsync, rename) into the recording's shard folder::

    run/acts.h5.shards/shard-00000.h5     positions [0, 81920) of the recording
    run/acts.h5.shards/shard-00001.h5     positions [81920, 163840) ...
    run/acts.h5                           the recording: HDF5 virtual datasets over the shards

The store's ``/layer{l}/{quantity}`` and ``/next_logprob`` are virtual datasets whose sources
are the shards' datasets, named by paths relative to the store's directory (the folder can be
moved); ``/tokens``, ``/sequences`` and the corpus's files are ordinary datasets. Every reader
(``ActivationStore``, plain h5py) reads it as one recording, and opening it checks that every
shard is there and is the one it names (:func:`~lstmprobe.store._virtual.check_sources`).
:func:`consolidate` copies it into one ordinary file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe._io import atomic_path, progress_bar
from lstmprobe.errors import StoreError, one_line
from lstmprobe.names import Key
from lstmprobe.store._files import check_output, write_files
from lstmprobe.store._format import (
    Contents,
    RecordingSpec,
    check_contents,
    dataset,
    normalized,
    recording_header,
)
from lstmprobe.store._virtual import (
    RECORDING_ID,
    TABLE,
    ShardFile,
    shard_identity,
    table_text,
)
from lstmprobe.store.checksum import ATTR as CHECKSUM_ATTR
from lstmprobe.store.checksum import Checksum
from lstmprobe.store.reader import ActivationStore
from lstmprobe.store.recording import Recording
from lstmprobe.store.writer import StoreWriter

SHARD_NAME = "shard-{:05d}.h5"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of the recording ``recording``: its positions ``[start, stop)``.

    ``chunk_positions`` is the whole recording's HDF5 chunking (every shard is chunked alike)
    and ``batched`` says that the whole recording reads its sequences in batches (a shard must
    read the same batches to record the same values).
    """

    recording: str
    index: int
    start: int
    stop: int
    chunk_positions: int
    batched: bool

    def attrs(self) -> dict[str, Any]:
        """The shard's identity, as root attributes of its file (a new uid each time)."""
        return {
            "shard_of": self.recording,
            "shard_index": self.index,
            "shard_start": self.start,
            "shard_stop": self.stop,
            "shard_uid": uuid.uuid4().hex,
        }

    def path(self, store: str | os.PathLike[str]) -> Path:
        """The shard's file in the shard folder of ``store``."""
        return shard_path(store, self.index)


def shard_path(store: str | os.PathLike[str], index: int) -> Path:
    """``run/acts.h5`` -> ``run/acts.h5.shards/shard-00012.h5`` for shard 12."""
    return Recording.at(store).shards / SHARD_NAME.format(index)


def recording_id(spec: RecordingSpec, bounds: Sequence[int], chunk_positions: int) -> str:
    """The identity of a sharded recording: a hash of what makes it (model, corpus, layout,
    dtype, options, the shards' bounds and the chunking), the same for every run of it."""
    what = {
        "model_sha256": spec.model_sha256,
        "corpus_sha256": spec.corpus_sha256,
        "layout": [[k, int(n)] for k, n in spec.layout.items()],
        "dtype": spec.dtype,
        "run_config": normalized(spec.run_config),
        "bounds": [int(b) for b in bounds],
        "chunk_positions": int(chunk_positions),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def finished_shard(store: str | os.PathLike[str], shard: Shard) -> ShardFile | None:
    """The finished file of ``shard`` (None where there is none yet).

    Raises
    ------
    StoreError
        A file is there but is a shard of another recording, or not a shard at all.
    """
    path = shard.path(store)
    if not path.exists():
        return None
    try:
        got = shard_identity(path)
    except Exception as exc:
        raise StoreError(
            f"{path} is not a shard lstmprobe can read ({one_line(exc)[:100]}); remove it, or "
            "start over with `force=True`"
        ) from None
    if got["shard_of"] != shard.recording or (got["shard_start"], got["shard_stop"]) != (
        shard.start,
        shard.stop,
    ):
        raise StoreError(
            f"the shard folder {path.parent} holds shards of another recording (another model, "
            "corpus or options); remove it, or start over with `force=True`"
        )
    if not got["complete"]:
        return None
    rel = path.relative_to(Path(store).parent).as_posix()
    return ShardFile(shard.index, shard.start, shard.stop, rel, str(got["shard_uid"]),
                     path.stat().st_size, got["sha256"])  # fmt: skip


def write_sharded_store(
    out: str | os.PathLike[str],
    spec: RecordingSpec,
    shards: Sequence[ShardFile],
    chunk_positions: int,
    recording: str,
) -> Path:
    """Write ``out``, the store of virtual datasets over ``shards``, atomically, complete.

    Each shard is checked first (it is there, complete, of this recording, with the positions
    the table gives), so the store is marked complete only when every shard is.
    """
    out = check_output(out)
    contents = check_contents(spec, None, chunk_positions)
    bounds = [0, *(s.stop for s in shards)]
    if [s.start for s in shards] != bounds[:-1] or bounds[-1] != contents.n_positions:
        raise StoreError(
            f"the shards of {out} do not cover its {contents.n_positions} positions in order"
        )
    for s in shards:
        got = shard_identity(out.parent / s.path)
        if (got["shard_of"], got["shard_uid"], got["complete"], got["sha256"]) != (
            recording,
            s.uid,
            True,
            s.sha256,
        ):
            raise StoreError(f"shard {s.path} is not the finished shard {s.index} of {out}")
    identity = {
        "model_sha256": str(spec.model_sha256),
        "corpus_sha256": str(spec.corpus_sha256),
        "layout": [[k, n] for k, n in contents.layout.items()],
        "dtype": contents.dtype,
        "run_config": normalized(spec.run_config),
        "has_next_logprob": contents.has_next_logprob,
    }
    header = recording_header(identity, spec.model_summary, spec.vocab, chunk_positions)
    header |= {"complete": True, RECORDING_ID: recording}
    with atomic_path(out) as tmp, h5py.File(tmp, "w", track_order=True, locking=False) as f:
        for name, value in header.items():
            f.attrs[name] = value
        _virtual_datasets(f, contents, shards)
        f.create_dataset("positions_written", data=np.int64(contents.n_positions))
        f.create_dataset(TABLE, data=table_text(list(shards)), dtype=h5py.string_dtype())
    return out


def _virtual_datasets(f: h5py.File, contents: Contents, shards: Sequence[ShardFile]) -> None:
    # the ordinary datasets hold their checksums as a one-process recording's do; the virtual
    # ones are verified shard by shard (the table holds each shard's checksums)
    plain = (("tokens", contents.tokens, np.int32), ("sequences", contents.sequences, np.int64))
    for name, values, dtype in plain:
        ds = f.create_dataset(name, data=values, dtype=dtype)
        check = Checksum()
        check.update(ds[()])
        ds.attrs.create(CHECKSUM_ATTR, np.bytes_(check.hexdigest().encode("ascii")))
    if contents.files:
        write_files(f, contents.files, contents.sequence_files)
    n = contents.n_positions
    names: list[tuple[str, tuple[int, ...], str]] = [
        (k, (n, u), contents.dtype) for k, u in contents.layout.items()
    ]
    if contents.has_next_logprob:
        names.append(("next_logprob", (n,), "float32"))
    for key, shape, dtype in names:
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        for s in shards:
            source = h5py.VirtualSource(s.path, key, shape=(s.positions, *shape[1:]))
            layout[s.start : s.stop] = source
        target: Any = f
        name = key
        if key in contents.layout:  # a layer's quantity: in its layer's group
            parsed = Key.parse(key)
            layer = parsed.layer_name
            target = f[layer] if layer in f else f.create_group(layer, track_order=True)
            name = parsed.quantity
        target.create_virtual_dataset(name, layout, fillvalue=np.nan)


def sharded_table(path: str | os.PathLike[str]) -> list[ShardFile] | None:
    """The shards of the sharded store at ``path`` (None for an ordinary store), unchecked."""
    from lstmprobe.store._virtual import read_table

    with h5py.File(path, "r", locking=False) as f:
        if TABLE not in f:
            return None
        return read_table(f)


def store_spec(store: ActivationStore) -> RecordingSpec:
    """What ``store`` records besides its values, as a :class:`RecordingSpec` (to write the
    same recording again, :func:`consolidate`)."""
    return RecordingSpec(
        tokens=store.tokens,
        sequences=store.sequences,
        vocab=store.vocab,
        layout={k: store.n_units(k) for k in store.keys},
        model_summary=store.model,
        model_sha256=store.model_sha256,
        corpus_sha256=store.corpus_sha256,
        has_next_logprob=store.next_logprob is not None,
        run_config=store.run_config,
        dtype=store.dtype,
        files=store.files,
        sequence_files=store.sequence_files,
    )


def consolidate(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    compression: str | None = None,
    force: bool = False,
    resume: bool = False,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Copy the recording ``source`` (sharded or not) into ``out``, one ordinary file.

    Written by :class:`StoreWriter`: to ``out.partial``, fsynced, renamed when complete (a
    copy that was stopped continues with ``resume=True``). The values are copied as stored
    (bit for bit), chunk row by chunk row; ``compression`` (``"lzf"``, ``"gzip"``) compresses
    the copy. The source is verified against its checksums first (a sharded one shard by shard,
    :meth:`ActivationStore.verify`; a damaged source is refused before anything is written),
    and the copy stores the checksums of its values like any recording.

    Examples
    --------
    >>> consolidate("run/acts.h5", "acts-one-file.h5")  # doctest: +SKIP
    PosixPath('acts-one-file.h5')
    """
    source, out = Path(source), Path(out)
    if source.resolve() == out.resolve():
        raise StoreError(f"`out` must be another file than the recording {source}")
    with ActivationStore(source) as store:
        store.verify()
        spec = store_spec(store)
        cp = store.chunk_positions
        writer = StoreWriter(out, spec, compression=compression, chunk_positions=cp,
                             force=force, resume=resume, warn=warn)  # fmt: skip
        step = cp * max(1, (8 << 20) // (cp * max(spec.layout.values()) * 4))
        bar = progress_bar(store.n_positions, initial=writer.written, desc="consolidate",
                           unit="pos", unit_scale=True, enabled=progress)  # fmt: skip
        try:
            with h5py.File(source, "r") as f:
                for a in range(writer.written, store.n_positions, step):
                    b = min(a + step, store.n_positions)
                    arrays = {k: dataset(f, k)[a:b] for k in spec.layout}
                    logprob = dataset(f, "next_logprob")[a:b] if spec.has_next_logprob else None
                    writer.write(a, arrays, logprob)
                    bar.update(b - a)
        except BaseException:
            bar.close()
            with contextlib.suppress(StoreError):
                writer.close()
            raise
        bar.close()
    return writer.finish()


def describe(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """How many shards the sharded store at ``path`` has and their bytes (None: not sharded)."""
    table = sharded_table(path)
    if table is None:
        return None
    return {"shards": len(table), "shard_bytes": sum(s.size for s in table)}
