"""What the exports share: which datasets of a recording they write, how many positions they
read at a time, and what they return."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lstmprobe.errors import InteropError
from lstmprobe.names import QUANTITIES, Key
from lstmprobe.store import ActivationStore

#: Bytes of float32 values an export holds in memory at once (one window of positions).
WINDOW_BYTES = 32 << 20


def select_keys(
    store: ActivationStore,
    layers: Sequence[str] | None = None,
    quantities: Sequence[str] | None = None,
) -> list[Key]:
    """The recorded datasets of ``layers`` and ``quantities`` (default: all), in store order.

    Parameters
    ----------
    store : ActivationStore
    layers : sequence of str, optional
        Layer names as the store spells them, e.g. ``["layer0", "layer1_reverse"]``.
    quantities : sequence of str, optional
        Quantity names, e.g. ``["cell", "hidden"]``.

    Raises
    ------
    InteropError
        A layer or quantity that is not recorded, or nothing left to export.
    """
    keys = [Key.parse(k) for k in store.keys]
    if layers:
        missing = [name for name in layers if name not in store.layers]
        if missing:
            raise InteropError(
                f"`layers`: {', '.join(missing)} not recorded in {store.path}; it has "
                f"{', '.join(store.layers)}"
            )
        keys = [k for k in keys if k.layer_name in layers]
    if quantities:
        unknown = [q for q in quantities if q not in QUANTITIES]
        if unknown:
            raise InteropError(
                f"`quantities`: unknown {', '.join(unknown)}; quantities are "
                f"{', '.join(QUANTITIES)}"
            )
        recorded = {k.quantity for k in keys}
        missing = [q for q in quantities if q not in recorded]
        if missing:
            raise InteropError(
                f"`quantities`: {', '.join(missing)} not recorded in {store.path} (for the layers "
                f"chosen); it has {', '.join(sorted(recorded))}"
            )
        keys = [k for k in keys if k.quantity in quantities]
    return keys


def window(store: ActivationStore, keys: Sequence[Key]) -> int:
    """Positions per window when ``keys`` are read together as float32: about
    :data:`WINDOW_BYTES`, a whole number of the store's chunks."""
    units = sum(store.n_units(str(k)) for k in keys)
    chunk = store.chunk_positions
    return max(1, WINDOW_BYTES // (4 * max(1, units) * chunk)) * chunk


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes
    ----------
    path : Path
        The directory written.
    format : {"lstmvis", "explorer"}
    files : tuple of str
        The files written in it.
    datasets : dict of str to str
        Each exported dataset (``layer0/cell``) and where it went (``states.h5:cell1 (state,
        layer 1)``, ``cs0``).
    start, stop : int
        The positions exported, ``[start, stop)``.
    left_out : tuple of str
        What the format has no place for, one line each.
    """

    path: Path
    format: Literal["lstmvis", "explorer"]
    files: tuple[str, ...]
    datasets: dict[str, str]
    start: int
    stop: int
    left_out: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what ``lstmprobe export --json`` prints)."""
        return {
            "path": str(self.path),
            "format": self.format,
            "files": list(self.files),
            "datasets": dict(self.datasets),
            "start": self.start,
            "stop": self.stop,
            "left_out": list(self.left_out),
        }
