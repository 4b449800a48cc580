"""A span of a recording as the JSON that LSTM Explorer reads (the viewer of Edwin Chen's
"Exploring LSTMs", github.com/echen/lstm-explorer; docs/interop.md).

The explorer loads ``data/NAME.json`` and reads ``chars`` (one character per position), an
optional ``name``, and per layer L (from 0) six arrays of neurons, each a list of one value per
character: ``cs{L}`` (cell), ``hs{L}`` (hidden), ``i_gate{L}``, ``f_gate{L}``, ``o_gate{L}``
and ``j_gate{L}`` (the candidate). It counts its layers as the non-empty arrays and strings of
the file, less one, over six; an empty array stands for a quantity that is absent.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lstmprobe.errors import InteropError
from lstmprobe.interop._outdir import check_target, staged
from lstmprobe.interop.common import ExportResult, select_keys
from lstmprobe.names import LSTM_QUANTITIES, Key
from lstmprobe.store import ActivationStore

#: The explorer's name of each LSTM quantity (a layer's index follows it: ``cs0``).
EXPLORER_NAMES: dict[str, str] = {
    "cell": "cs",
    "hidden": "hs",
    "input_gate": "i_gate",
    "forget_gate": "f_gate",
    "output_gate": "o_gate",
    "candidate": "j_gate",
}
FORMAT = "lstmprobe.explorer"
DEFAULT_LENGTH = 500
#: The most values one file may hold (span x units): the explorer is a page in a browser.
MAX_VALUES = 10_000_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def export_explorer(
    store: str | os.PathLike[str],
    outdir: str | os.PathLike[str],
    *,
    start: int = 0,
    length: int | None = None,
    layers: Sequence[str] | None = None,
    quantities: Sequence[str] | None = None,
    name: str | None = None,
    digits: int = 4,
    force: bool = False,
) -> ExportResult:
    """Write ``[start, start + length)`` of the recording at ``store`` as ``outdir/NAME.json``.

    Every recorded layer (or those of ``layers``) gets an index from 0 in store order, and its
    six LSTM quantities their explorer names (:data:`EXPLORER_NAMES`); a quantity not exported
    is an empty array. A GRU layer has no cell and no input, forget or output gate: only its
    hidden (``hs``) and candidate (``j_gate``) map, so it is exported only with ``quantities``
    limited to those. Values are rounded to ``digits`` decimals. The file's ``lstmprobe``
    object (which the explorer does not read) names the source, the span and what maps to what.

    Parameters
    ----------
    store : str or PathLike
        The recording.
    outdir : str or PathLike
        Where ``NAME.json`` goes: a new or empty directory, or with ``force`` any directory
        (only ``NAME.json`` is replaced), e.g. the explorer's ``data/``.
    start, length : int
        The span (default: the first 500 characters).
    layers, quantities : sequence of str, optional
        Export only these.
    name : str, optional
        The file's name and the explorer's ``file`` parameter (default: the store's stem).
    digits : int
        Decimals kept.
    force : bool
        Write into a non-empty directory.

    Returns
    -------
    ExportResult

    Examples
    --------
    >>> export_explorer("acts.h5", "explorer-data", length=300).files  # doctest: +SKIP
    ('acts.json',)
    """
    outdir = Path(outdir)
    check_target(outdir, force=force)
    with ActivationStore(store) as s:
        name = name or s.path.stem
        if not _NAME.fullmatch(name):
            raise InteropError(
                f"`name` {name!r} must be letters, digits, '.', '_' or '-' (it becomes the file "
                "name and the explorer's file= parameter)"
            )
        a, b = _span(s.n_positions, start, length)
        keys = select_keys(s, layers, quantities)
        _check_maps(s, keys)
        layer_names = list(dict.fromkeys(k.layer_name for k in keys))
        units = sum(s.n_units(str(k)) for k in keys)
        if units * (b - a) > MAX_VALUES:
            raise InteropError(
                f"{b - a:,} characters x {units:,} units is {units * (b - a):,} values, more than "
                f"the {MAX_VALUES:,} a page in a browser can show; give a shorter `length`, or "
                "fewer `layers` or `quantities`"
            )
        data: dict[str, Any] = {"name": name, "chars": list(s.read_text(a, b))}
        mapping: dict[str, str] = {}
        for index, layer in enumerate(layer_names):
            for quantity in LSTM_QUANTITIES:
                field = f"{EXPLORER_NAMES[quantity]}{index}"
                key = next(
                    (k for k in keys if k.layer_name == layer and k.quantity == quantity), None
                )
                data[field] = [] if key is None else _neurons(s, key, a, b, digits)
                if key is not None:
                    mapping[field] = str(key)
        left_out = tuple(
            f"{layer}/{q}: {EXPLORER_NAMES[q]}{i} is empty"
            for i, layer in enumerate(layer_names)
            for q in LSTM_QUANTITIES
            if f"{EXPLORER_NAMES[q]}{i}" not in mapping
        )
        seqs = s.sequences
        inside = seqs[(seqs[:, 0] >= a) & (seqs[:, 0] < b), 0]
        data["lstmprobe"] = {
            "format": FORMAT,
            "store": str(s.path),
            "model_sha256": s.model_sha256,
            "corpus_sha256": s.corpus_sha256,
            "start": a,
            "stop": b,
            "layers": {str(i): layer for i, layer in enumerate(layer_names)},
            "datasets": mapping,
            "sequence_starts": (inside - a).tolist(),
        }
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        with staged(outdir, force=force) as stage:
            stage.file(f"{name}.json").write_text(text + "\n", encoding="utf-8")
        return ExportResult(
            outdir,
            "explorer",
            (f"{name}.json",),
            {k: f for f, k in mapping.items()},
            a,
            b,
            left_out,
        )


def _span(n: int, start: int, length: int | None) -> tuple[int, int]:
    if not 0 <= start < n:
        raise InteropError(
            f"`start` must be in [0, {n:,}) (the recording's positions), got {start:,}"
        )
    if length is not None and length < 1:
        raise InteropError(f"`length` must be at least 1, got {length}")
    return start, min(n, start + (DEFAULT_LENGTH if length is None else length))


def _check_maps(s: ActivationStore, keys: list[Key]) -> None:
    """Refuse what the explorer has no place for, saying which quantities map."""
    for key in keys:
        if key.quantity in EXPLORER_NAMES:
            continue
        layer = key.layer_name
        recorded = s.quantities(layer)
        mapped = [q for q in recorded if q in EXPLORER_NAMES]
        shown = ", ".join(f"{q} -> {EXPLORER_NAMES[q]}" for q in mapped) or "none"
        others = ", ".join(q for q in recorded if q not in EXPLORER_NAMES)
        hint = f"pass `quantities={','.join(mapped)}` to export those" if mapped else ""
        raise InteropError(
            f"{layer} is a GRU layer: "
            f"the explorer shows LSTM quantities; of {layer}'s, {shown} map (the GRU's candidate "
            f"as the candidate memory), and {others} have no place; {hint}".rstrip("; ")
        )


def _neurons(s: ActivationStore, key: Key, a: int, b: int, digits: int) -> list[list[float]]:
    values = s.read(str(key), a, b)  # (b - a, n_units)
    if not np.isfinite(values).all():
        row, unit = np.argwhere(~np.isfinite(values))[0]
        raise InteropError(
            f"{key}/{unit} is {values[row, unit]} at position {a + row:,}: JSON holds no such "
            "value; choose another span (`start`, `length`)"
        )
    return np.round(values.T.astype(np.float64), digits).tolist()
