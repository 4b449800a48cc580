"""A recording as an LSTMVis project: ``lstm.yml``, the states, the word ids, their dictionary
and a meta track of where each sequence starts (docs/interop.md)."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lstmprobe._io import progress_bar
from lstmprobe.interop._outdir import check_target, staged
from lstmprobe.interop.common import ExportResult, select_keys, window
from lstmprobe.interop.lstmvis import (
    CONFIG,
    FILES,
    FORMAT,
    FORMAT_VERSION,
    OWN_KEY,
    SEQUENCE_TRACK,
    WORD_IDS_PATH,
    dataset_path,
    dict_word,
    type_name,
)
from lstmprobe.names import GATES, Key
from lstmprobe.store import ActivationStore


def export_lstmvis(
    store: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    *,
    layers: Sequence[str] | None = None,
    quantities: Sequence[str] | None = None,
    name: str | None = None,
    force: bool = False,
    progress: bool = False,
) -> ExportResult:
    """Write the recording at ``store`` as an LSTMVis project in the directory ``outdir``.

    ``outdir`` then holds ``lstm.yml``, ``states.h5`` (one float32 dataset of positions x units
    per layer and quantity: ``cell1`` for ``layer0/cell``), ``words.h5`` (``word_ids``: the
    vocab id of each position), ``words.dict`` (``word id`` lines; newline, tab and other
    whitespace as the stand-ins ``\\n``, ``\\t``, ``\\u00a0``) and ``meta.h5``
    (``sequence_start``: 1 where a sequence starts). Every state type declares ``transform:
    none``, so LSTMVis shows the values as recorded, and the gates ``unsigned: true``.

    The project is written into a temporary directory and moved into place when complete.

    Parameters
    ----------
    store : str or PathLike
        The recording.
    outdir : str or PathLike
        The project directory: new or empty; a non-empty one only with ``force``, and then
        only the files of the project are replaced.
    layers, quantities : sequence of str, optional
        Export only these (default: every recorded dataset).
    name : str, optional
        The project's name in LSTMVis (default: the store's file name without suffix).
    force : bool
        Write into a non-empty directory.
    progress : bool
        Show a progress bar.

    Returns
    -------
    ExportResult

    Examples
    --------
    >>> export_lstmvis("acts.h5", "lstmvis/acts").files  # doctest: +SKIP
    ('states.h5', 'words.h5', 'words.dict', 'meta.h5', 'lstm.yml')
    """
    outdir = Path(outdir)
    check_target(outdir, force=force)
    with ActivationStore(store) as s:
        keys = select_keys(s, layers, quantities)
        with staged(outdir, force=force) as stage:
            _write_states(s, keys, stage.file(FILES["states"]), progress)
            _write_words(s, stage.file(FILES["word_ids"]), stage.file(FILES["words"]))
            _write_meta(s, stage.file(FILES["meta"]))
            config = _config(s, keys, name or Path(s.path).stem)
            stage.file(CONFIG).write_text(config, encoding="utf-8")  # last: a reader's entry
            files = tuple(stage.names)
        datasets = {
            str(k): f"{FILES['states']}:{dataset_path(k)} ({type_name(k)}, layer {k.layer + 1})"
            for k in keys
        }
        return ExportResult(outdir, "lstmvis", files, datasets, 0, s.n_positions)


def _write_states(s: ActivationStore, keys: list[Key], path: Path, progress: bool) -> None:
    n = s.n_positions
    names = [str(k) for k in keys]
    bar = progress_bar(n, desc="export", unit="char", unit_scale=True, enabled=progress)
    with h5py.File(path, "w") as f, bar:
        # contiguous and uncompressed: LSTMVis reads windows of rows, its docs ask for no compression
        out = {
            str(k): f.create_dataset(dataset_path(k), (n, s.n_units(str(k))), "float32")
            for k in keys
        }
        for a, b, block in s.iter_chunks(names, chunk_size=window(s, keys)):
            for key, values in block.items():
                out[key][a:b] = values
            bar.update(b - a)


def _write_words(s: ActivationStore, ids_path: Path, dict_path: Path) -> None:
    n = s.n_positions
    with h5py.File(ids_path, "w") as f:
        ds = f.create_dataset(WORD_IDS_PATH, (n,), "int32")
        step = 1 << 22
        for a in range(0, n, step):
            ds[a : a + step] = s.read_tokens(a, min(a + step, n))
    lines = [f"{dict_word(c)} {i}\n" for i, c in enumerate(s.vocab.chars)]
    dict_path.write_text("".join(lines), encoding="utf-8", newline="\n")


def _write_meta(s: ActivationStore, path: Path) -> None:
    n = s.n_positions
    starts = s.sequences[:, 0]
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(SEQUENCE_TRACK, (n,), "int8")
        step = 1 << 22
        for a in range(0, n, step):
            b = min(a + step, n)
            block = np.zeros(b - a, dtype=np.int8)
            inside = starts[(starts >= a) & (starts < b)]
            block[inside - a] = 1
            ds[a:b] = block


def _config(s: ActivationStore, keys: list[Key], name: str) -> str:
    import yaml

    from lstmprobe._version import __version__

    n, n_seq = s.n_positions, len(s.sequences)
    description = (
        f"lstmprobe recording {s.path.name}: {n:,} characters in {n_seq:,} "
        f"sequence{'s' if n_seq != 1 else ''} (the meta track {SEQUENCE_TRACK} is 1 where one "
        f"starts from the zero state); model sha256 {s.model_sha256[:12] or 'none'}, "
        f"corpus sha256 {s.corpus_sha256[:12] or 'none'}. Values as recorded (transform none): "
        "gates are unsigned, in [0, 1]; hidden and candidate lie in [-1, 1]; the cell is "
        "unbounded. The words \\n and \\t stand for newline and tab."
    )
    types = [
        {
            "type": type_name(k),
            "layer": k.layer + 1,
            "path": dataset_path(k),
            "unsigned": k.quantity in GATES,
            "transform": "none",
        }
        for k in keys
    ]
    config: dict[str, Any] = {
        # LSTMVis's pages insert the name (pattern finder) and the description (project list)
        # as HTML
        "name": html.escape(name, quote=False),
        "description": html.escape(description, quote=False),
        "files": dict(FILES),
        "word_sequence": {"file": "word_ids", "path": WORD_IDS_PATH, "dict_file": "words"},
        "states": {"file": "states", "types": types},
        "meta": {
            SEQUENCE_TRACK: {
                "file": "meta",
                "path": SEQUENCE_TRACK,
                "vis": {"type": "scalar", "range": [0, 1]},
            }
        },
        OWN_KEY: {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "lstmprobe_version": __version__,
            "store": str(s.path),
            "created": s.created,
            "model_sha256": s.model_sha256,
            "corpus_sha256": s.corpus_sha256,
            "positions": n,
            "sequences": n_seq,
            "sequence_track": SEQUENCE_TRACK,
            "run_config": s.run_config,
            "datasets": {dataset_path(k): str(k) for k in keys},
        },
    }
    header = (
        "# An LSTMVis project written by `lstmprobe export --format lstmvis` (docs/interop.md).\n"
        "# states: type state = lstmprobe's cell, output = hidden, any other type is the\n"
        "# quantity's own name; layer counts from 1 (layer 1 = lstmprobe's layer0).\n"
    )
    body = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100)
    return header + body
