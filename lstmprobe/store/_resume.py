"""Continuing an unfinished recording: what its partial file holds, and whether it may go on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe.errors import StoreError, one_line
from lstmprobe.names import Key
from lstmprobe.store._files import quiet_close
from lstmprobe.store._format import FORMAT, attr_str, dataset, short


@dataclass(frozen=True)
class Resumed:
    """A partial file opened to continue: ``file`` (open ``r+``), its chunk size, the
    positions durably written, and whether it was already marked complete."""

    file: h5py.File
    chunk_positions: int
    written: int
    complete: bool


def partial_complete(partial: Path) -> bool:
    """Whether ``partial`` is a finished recording: one not yet moved into place (a partial
    path), or one that was (a final path)."""
    try:
        with h5py.File(partial, "r", locking=False) as f:
            return attr_str(f.attrs.get("format", "")) == FORMAT and bool(
                f.attrs.get("complete", False)
            )
    except Exception:
        return False


def open_resume(
    partial: Path,
    identity: dict[str, Any],
    tokens: np.ndarray,
    n_positions: int,
    sequences: np.ndarray | None = None,
) -> Resumed:
    """Open ``partial`` to continue it, after checking it was recorded with the same
    ``identity`` (model, corpus, layout, dtype, options), ``tokens`` and ``sequences`` (when
    given), and that its progress marker does not run ahead of the values on disk."""
    broken = (
        f"the unfinished recording {partial} cannot be resumed: it was probably "
        "damaged when the recording was killed; start over with `force=True`"
    )
    try:
        f = h5py.File(partial, "r+", locking=False)
    except (OSError, RuntimeError) as exc:
        raise StoreError(f"{broken} ({one_line(exc)})") from None
    try:
        a = f.attrs
        if attr_str(a.get("format", "")) != FORMAT:
            raise StoreError(
                f"{partial} is not an unfinished lstmprobe recording; remove it or "
                "start over with `force=True`"
            )
        stored = {
            "model_sha256": attr_str(a.get("model_sha256", "")),
            "corpus_sha256": attr_str(a.get("corpus_sha256", "")),
            "layout": json.loads(attr_str(a.get("layout", "[]"))),
            "dtype": attr_str(a.get("dtype", "")),
            "run_config": json.loads(attr_str(a.get("run_config", "null"))),
            "has_next_logprob": bool(a.get("has_next_logprob", False)),
        }
        differs = [name for name in identity if identity[name] != stored[name]]
        if not np.array_equal(dataset(f, "tokens")[()], tokens):
            differs.append("tokens")
        elif sequences is not None and not np.array_equal(dataset(f, "sequences")[()], sequences):
            differs.append("sequences (the corpus's files or lines)")
        if differs:
            what = ", ".join(
                f"{n} (file: {short(stored[n])}, now: {short(identity[n])})" if n in stored else n
                for n in differs
            )
            raise StoreError(
                f"cannot resume {partial}: it was recorded with a different {what}; "
                "record with the same model, corpus and options, or start over with `force=True`"
            )
        chunk_positions = int(a["chunk_positions"])  # pyright: ignore[reportArgumentType]
        written = int(dataset(f, "positions_written")[()])
        if not 0 <= written <= n_positions:
            raise StoreError(f"{broken} (it claims {written} of {n_positions} positions written)")
        complete = bool(a.get("complete", False))
        if complete:
            if written != n_positions:
                raise StoreError(f"{broken} (marked complete with {written} positions)")
        elif written and not row_was_written(f, [k for k, _ in identity["layout"]], written - 1):
            raise StoreError(
                f"{broken} (position {written - 1} is marked written but holds no values: "
                "a write did not reach the disk)"
            )
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        quiet_close(f)
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"{broken} ({one_line(exc)})") from None
    except BaseException:
        quiet_close(f)
        raise
    return Resumed(f, chunk_positions, written, complete)


def row_was_written(f: h5py.File, keys: list[str], position: int) -> bool:
    """Whether the values of ``position`` reached the file (unwritten space reads as zeros).

    A gate is a sigmoid output, in (0, 1): a row of a gate dataset that is zero in every
    unit was never written. Without a gate dataset (values written through the API, say)
    nothing can be told, and the row is taken as written.
    """
    gates = [k for k in keys if Key.parse(k).is_gate]
    if not gates:
        return True
    return any(np.any(dataset(f, key)[position] != 0) for key in gates)
