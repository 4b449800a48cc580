"""Writing figures and reports atomically, and what a page embeds (its own assets, PNG data URIs,
compact values).

A file is written to a temporary file in the target directory, then renamed: a crash or an error
while rendering leaves nothing behind at the target path (the previous file, if any, stays as it
was).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lstmprobe._io import atomic_path, cannot_write
from lstmprobe.errors import ReportError
from lstmprobe.names import Key, Unit


def check_writable(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, or a ReportError saying why it cannot be written."""
    path = Path(path)
    reason = cannot_write(path)
    if reason is not None:
        raise ReportError(f"cannot write {path}: {reason}, or choose another `out`")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    The temporary is :func:`lstmprobe._io.atomic_path`'s: created exclusively, with the user's
    usual permissions (``0o666`` less the umask), fsynced before the rename.

    Examples
    --------
    >>> import tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> target = Path(tmp.name) / "unit.txt"
    >>> with atomic_output(target) as part:
    ...     _ = part.write_text("hello")
    >>> target.read_text()
    'hello'
    >>> tmp.cleanup()
    """
    path = check_writable(path)
    with contextlib.ExitStack() as stack:
        try:
            part = stack.enter_context(atomic_path(path))
        except OSError as exc:
            raise ReportError(f"cannot write {path}: {exc.strerror}; choose another -o") from None
        yield part


@contextlib.contextmanager
def _no_glyph_warnings() -> Iterator[None]:
    """A char the figure's font lacks (an emoji, CJK) is drawn as a box: no warning per char."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Glyph .* missing from font", category=UserWarning
        )
        yield


def save_figure(
    fig: object, path: str | os.PathLike[str], fmt: str = "png", dpi: int = 150
) -> Path:
    """Save a matplotlib Figure atomically as PNG or SVG, then close it."""
    import matplotlib.pyplot as plt

    from lstmprobe.report.theme import THEME

    path = Path(path)
    try:
        with atomic_output(path) as part, plt.rc_context(THEME), _no_glyph_warnings():
            fig.savefig(part, format=fmt, dpi=dpi)  # type: ignore[attr-defined]
    finally:
        plt.close(fig)  # type: ignore[arg-type]
    return path


def asset(name: str) -> str:
    """The text of one of the page's own files (``lstmprobe/report/assets/``: the skeleton, the
    style and the scripts), embedded into every report."""
    from importlib.resources import files

    return files("lstmprobe.report").joinpath("assets").joinpath(name).read_text(encoding="utf-8")


def png_uri(fig: object, dpi: int = 110) -> str:
    """A matplotlib Figure as a ``data:`` URI (PNG, base64), then closed: how the report embeds
    its figures."""
    import base64
    import io

    import matplotlib.pyplot as plt

    from lstmprobe.report.theme import THEME

    buf = io.BytesIO()
    try:
        with plt.rc_context(THEME), _no_glyph_warnings():
            fig.savefig(buf, format="png", dpi=dpi, bbox_inches=None)  # type: ignore[attr-defined]
    finally:
        plt.close(fig)  # type: ignore[arg-type]
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def uint8_b64(arr: object) -> str:
    """An array of 8-bit codes as base64 text, the form the page's script decodes.

    Examples
    --------
    >>> uint8_b64([0, 128, 255])
    'AID/'
    """
    import base64

    import numpy as np

    return base64.b64encode(np.ascontiguousarray(arr, dtype=np.uint8).tobytes()).decode("ascii")


def unit_parts(unit: str | Unit) -> dict[str, Any]:
    """A unit as the page's script receives it: its name and its parts, parsed here once
    (:class:`~lstmprobe.names.Unit`), so the script never parses a name.

    Examples
    --------
    >>> unit_parts("layer1_reverse/cell/7")
    {'name': 'layer1_reverse/cell/7', 'layer': 1, 'direction': 'reverse', 'quantity': 'cell', 'index': 7}
    """
    u = Unit.parse(unit)
    return {
        "name": str(u),
        "layer": u.layer,
        "direction": u.direction,
        "quantity": u.quantity,
        "index": u.index,
    }


def key_parts(key: str | Key) -> dict[str, Any]:
    """A dataset as the page's script receives it (:class:`~lstmprobe.names.Key`).

    Examples
    --------
    >>> key_parts("layer0/forget_gate")
    {'key': 'layer0/forget_gate', 'layer': 0, 'direction': 'forward', 'layer_name': 'layer0', 'quantity': 'forget_gate'}
    """
    k = Key.parse(key)
    return {
        "key": str(k),
        "layer": k.layer,
        "direction": k.direction,
        "layer_name": k.layer_name,
        "quantity": k.quantity,
    }


def compact(obj: Any) -> Any:
    """``obj`` ready for the page's JSON: floats to 5 significant digits, NaN and infinities to
    None, NumPy scalars to Python numbers, tuples to lists (nested dicts and lists included).

    Examples
    --------
    >>> import numpy as np
    >>> compact({"a": [1 / 3, float("nan")], "b": (np.float32(2.5), "x")})
    {'a': [0.33333, None], 'b': [2.5, 'x']}
    """
    import numpy as np

    if isinstance(obj, float):
        return None if not np.isfinite(obj) else float(f"{obj:.5g}")
    if isinstance(obj, dict):
        return {k: compact(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [compact(v) for v in obj]
    if isinstance(obj, np.generic):
        return compact(obj.item())
    return obj
