"""Colour scales of the report and the figures: one definition, shared by matplotlib and HTML.

Signed quantities (cell, hidden, candidate) use a diverging, colour-blind-safe palette
(ColorBrewer RdBu: red negative, white zero, blue positive, as in "Exploring LSTMs"); gates,
which live in [0, 1], use a sequential one (ColorBrewer Greens: white 0, dark green 1).

A unit's range is fixed for the whole recording, never renormalised per span:

* gates: ``[0, 1]``, their full range;
* hidden and candidate: ``[-1, 1]`` (tanh's range), unless the unit leaves it (a projected
  hidden state), then as for the cell;
* cell: symmetric ``[-m, m]`` where ``m`` is the largest ``|value|`` of that unit over the
  whole recording.

Every figure states its range and this rule (:meth:`Scale.describe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from lstmprobe.names import (  # the report's modules take it from here, with the scales
    GATES,
    QUANTITIES,
    parse_name,
)

Kind = Literal["diverging", "sequential"]

#: ColorBrewer RdBu, 11 classes, low (red) to high (blue).
DIVERGING = (
    "#67001f",
    "#b2182b",
    "#d6604d",
    "#f4a582",
    "#fddbc7",
    "#f7f7f7",
    "#d1e5f0",
    "#92c5de",
    "#4393c3",
    "#2166ac",
    "#053061",
)
#: ColorBrewer Greens, 9 classes, low (white) to high (dark green).
SEQUENTIAL = (
    "#f7fcf5",
    "#e5f5e0",
    "#c7e9c0",
    "#a1d99b",
    "#74c476",
    "#41ab5d",
    "#238b45",
    "#006d2c",
    "#00441b",
)
#: Where a value is NaN (not a number): grey, outside both palettes.
MISSING_RGB = (189, 189, 189)
#: Quantities that a tanh bounds to [-1, 1] (unless projected).
TANH_BOUNDED = ("hidden", "candidate")


@dataclass(frozen=True)
class Scale:
    """A unit's colour scale: palette kind and the fixed value range it spans.

    Examples
    --------
    >>> s = scale_for("layer0/forget_gate")
    >>> s.kind, s.vmin, s.vmax
    ('sequential', 0.0, 1.0)
    >>> scale_for("layer0/cell", max_abs=2.5).describe()
    'diverging red<0<blue, range [-2.5, 2.5] = ±max|value| of this unit over the whole recording'
    """

    kind: Kind
    vmin: float
    vmax: float
    rule: str

    def describe(self) -> str:
        """One line stating the palette, range and normalisation."""
        palette = "diverging red<0<blue" if self.kind == "diverging" else "sequential white→green"
        return f"{palette}, range [{_num(self.vmin)}, {_num(self.vmax)}] = {self.rule}"

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Values mapped to [0, 1] along the scale (clipped), NaN kept."""
        span = self.vmax - self.vmin
        out = (np.asarray(values, dtype=np.float64) - self.vmin) / (span if span > 0 else 1.0)
        return np.clip(out, 0.0, 1.0)

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """Values as 8-bit codes 0..255 along the scale (the HTML report embeds these).

        The value of code ``q`` is ``vmin + q / 255 * (vmax - vmin)``: a step of
        ``(vmax - vmin) / 255``.
        """
        return np.rint(self.normalize(np.nan_to_num(values)) * 255).astype(np.uint8)


def _num(x: float) -> str:
    return f"{x:.3g}"


def scale_for(key: str, max_abs: float | None = None) -> Scale:
    """The fixed colour scale of the units of dataset ``key`` (``layer0/cell``).

    Parameters
    ----------
    key : str
        A dataset key or unit name; its quantity decides the palette.
    max_abs : float, optional
        The unit's largest ``|value|`` over the recording: needed for cells, and for hidden or
        candidate units that leave ``[-1, 1]``.
    """
    quantity = key if key in QUANTITIES else parse_name(key).quantity
    if quantity in GATES:
        return Scale("sequential", 0.0, 1.0, "a gate's full range")
    if quantity in TANH_BOUNDED and (max_abs is None or max_abs <= 1.0 + 1e-3):
        return Scale("diverging", -1.0, 1.0, "tanh's range")
    m = float(max_abs) if max_abs is not None and np.isfinite(max_abs) and max_abs > 0 else 1.0
    m = float(f"{m:.3g}") if m >= 1e-3 else 1e-3
    return Scale("diverging", -m, m, "±max|value| of this unit over the whole recording")


def nonfinite_note(values: np.ndarray, marked: str = ", outlined") -> str:
    """How a figure drew ``values`` that are not finite (empty when all are finite).

    Examples
    --------
    >>> nonfinite_note(np.array([1.0, np.inf, np.inf, -np.inf, np.nan]))
    '; 3 infinite (2 +inf, 1 -inf): drawn at the ends of the scale, outlined; 1 NaN: grey'
    >>> nonfinite_note(np.zeros(3))
    ''
    """
    v = np.asarray(values, dtype=np.float64)
    pos, neg, nan = int(np.sum(v == np.inf)), int(np.sum(v == -np.inf)), int(np.isnan(v).sum())
    note = ""
    if pos or neg:
        note += (
            f"; {pos + neg:,} infinite ({pos:,} +inf, {neg:,} -inf): drawn at the ends of the "
            f"scale{marked}"
        )
    if nan:
        note += f"; {nan:,} NaN: grey"
    return note


def _hex(colors: tuple[str, ...]) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colors], dtype=np.float64)


def lut(kind: Kind, n: int = 256) -> np.ndarray:
    """The palette as ``n`` RGB colours, uint8 array of shape (n, 3), low to high.

    Examples
    --------
    >>> lut("diverging")[[0, 128, 255]].tolist()
    [[103, 0, 31], [246, 247, 247], [5, 48, 97]]
    """
    anchors = _hex(DIVERGING if kind == "diverging" else SEQUENTIAL)
    x = np.linspace(0, len(anchors) - 1, n)
    out = np.stack([np.interp(x, np.arange(len(anchors)), anchors[:, c]) for c in range(3)], 1)
    return np.rint(out).astype(np.uint8)


def text_color(rgb: np.ndarray) -> np.ndarray:
    """Black or white text for each background colour (relative luminance)."""
    rgb = np.asarray(rgb, dtype=np.float64) / 255.0
    lum = rgb @ np.array([0.2126, 0.7152, 0.0722])
    return np.where(lum[..., None] < 0.45, 255, 0).astype(np.uint8).repeat(3, -1)


def cmap(kind: Kind):  # -> matplotlib.colors.ListedColormap
    """The palette as a matplotlib colormap (imports matplotlib)."""
    from matplotlib.colors import ListedColormap

    palette = ListedColormap(lut(kind) / 255.0, name=f"lstmprobe-{kind}")
    grey = (MISSING_RGB[0] / 255.0, MISSING_RGB[1] / 255.0, MISSING_RGB[2] / 255.0)
    return palette.with_extremes(bad=grey)  # NaN: grey, as in the coloured text


def clipped(values: np.ndarray, scale: Scale) -> np.ndarray:
    """``values`` with ±inf at the ends of ``scale`` (NaN kept): what an image draws.

    Examples
    --------
    >>> clipped(np.array([np.inf, -np.inf, 0.5, np.nan]), Scale("diverging", -2, 2, "")).tolist()
    [2.0, -2.0, 0.5, nan]
    """
    v = np.asarray(values, dtype=np.float64)
    return np.where(np.isinf(v), np.where(v > 0, scale.vmax, scale.vmin), v)
