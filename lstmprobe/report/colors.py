"""Colour scales of the report and the figures: one definition, shared by matplotlib and HTML.

Signed quantities (cell, hidden, candidate) use a diverging, colour-blind-safe palette
(ColorBrewer RdBu: red negative, white zero, blue positive, as in "Exploring LSTMs"); gates,
which live in [0, 1], use a sequential one (ColorBrewer Greens: white 0, dark green 1).

A unit's range is fixed for the whole recording, never renormalised per span. How it is chosen
is a :class:`Range` (``--range``):

* ``p99`` (the default, any ``pNN``): each side of 0 ends at the 99th percentile of that unit's
  ``|value|`` on that side over the whole recording, and spans at least a quarter of the other
  side; 0 stays white. A few extreme values do not wash out the rest, and a lopsided unit
  (``[-5.3, 1.8]``) shows both of its sides. Values beyond are drawn at the end colour and
  marked;
* ``max``: ``m`` = the largest ``|value|`` (hidden and candidate: ``[-1, 1]``, tanh's range,
  unless the unit leaves it);
* ``LO,HI``: a range given; a diverging one keeps white at 0 (each side scaled on its own).

Gates always span ``[0, 1]``, their full range (unless ``LO,HI`` is given). Every figure states
its range and rule (:meth:`Scale.describe`).
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
#: The codes a value inside its range takes (1..253; 0 and 255 are beyond it).
CODES = 253


@dataclass(frozen=True)
class Range:
    """How a unit's colour range is chosen: ``max``, ``pNN`` (a percentile of ``|value|``) or
    ``LO,HI`` (given).

    Examples
    --------
    >>> Range.parse("p99.5").percentile, str(Range.parse("-2,3")), str(Range.parse("max"))
    (99.5, '-2,3', 'max')
    """

    how: Literal["max", "percentile", "given"] = "percentile"
    percentile: float = 99.0
    lo: float = -1.0
    hi: float = 1.0

    @classmethod
    def parse(cls, text: str | Range | None) -> Range:
        """``max``, ``pNN`` (0 < NN <= 100) or ``LO,HI`` (LO < HI); None: the default p99."""
        from lstmprobe.errors import ReportError

        if text is None:
            return DEFAULT_RANGE
        if isinstance(text, Range):
            return text
        value = str(text).strip()
        if value == "max":
            return cls("max")
        try:
            if value.startswith("p"):
                q = float(value[1:])
                if 0 < q <= 100:
                    return cls("percentile", q)
            elif "," in value:
                lo, hi = (float(x) for x in value.split(","))
                if lo < hi and np.isfinite(lo) and np.isfinite(hi):
                    return cls("given", lo=lo, hi=hi)
        except ValueError:
            pass
        raise ReportError(
            f"a colour range is max, pNN (a percentile of |value|, e.g. p99) or LO,HI with "
            f"LO < HI (e.g. -2,5), got {value!r}; give `range=p99`"
        )

    def __str__(self) -> str:
        if self.how == "max":
            return "max"
        if self.how == "percentile":
            return f"p{self.percentile:g}"
        return f"{self.lo:g},{self.hi:g}"


#: The default: the 99th percentile of |value| of each unit over the whole recording.
DEFAULT_RANGE = Range()


@dataclass(frozen=True)
class Scale:
    """A unit's colour scale: palette kind and the fixed value range it spans.

    A diverging scale whose range holds 0 maps 0 to its middle (white), each side on its own
    slope; a value beyond the range takes the end colour and is *beyond* (marked in figures).

    Examples
    --------
    >>> s = scale_for("layer0/forget_gate")
    >>> s.kind, s.vmin, s.vmax
    ('sequential', 0.0, 1.0)
    >>> scale_for("layer0/cell", max_abs=2.5, rng=Range("max")).describe()
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

    @property
    def centered(self) -> bool:
        """Whether 0 sits at the middle (a diverging range holding 0)."""
        return self.kind == "diverging" and self.vmin < 0 < self.vmax

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Values mapped to [0, 1] along the scale (clipped), NaN kept."""
        v = np.asarray(values, dtype=np.float64)
        if self.centered:
            with np.errstate(invalid="ignore"):
                out = np.where(v >= 0, 0.5 + 0.5 * v / self.vmax, 0.5 - 0.5 * v / self.vmin)
        else:
            span = self.vmax - self.vmin
            out = (v - self.vmin) / (span if span > 0 else 1.0)
        return np.clip(out, 0.0, 1.0)

    def beyond(self, values: np.ndarray) -> np.ndarray:
        """-1 below the range, 1 above it, 0 inside (int8; NaN: 0)."""
        v = np.asarray(values, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return (v > self.vmax).astype(np.int8) - (v < self.vmin).astype(np.int8)

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """Values as 8-bit codes along the scale (the HTML report embeds these): 1..253 inside
        the range, 0 below it and 255 above it (drawn at the end colours, marked; 254 unused).

        Inside, code ``q`` stands for the point ``(q - 1) / 252`` of the way along the scale
        (:meth:`normalize`): a step of ``(vmax - vmin) / 252`` (of ``vmax / 126`` on each side
        of a centred scale, whose 0 is code 127); :func:`code_palette` colours the codes.

        Examples
        --------
        >>> Scale("diverging", -1.0, 1.0, "").quantize(np.array([-2, -1, 0, 1, 2])).tolist()
        [0, 1, 127, 253, 255]
        """
        v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
        codes = 1 + np.rint(self.normalize(v) * (CODES - 1))
        side = self.beyond(v)
        codes = np.where(side < 0, 0, np.where(side > 0, 255, codes))
        return codes.astype(np.uint8)


def _num(x: float) -> str:
    return f"{x:.3g}"


def _round_up(m: float) -> float:
    """``m`` to 3 significant digits, never below it (values at ``m`` stay inside)."""
    r = float(f"{m:.3g}")
    if r < m:
        r = float(f"{np.nextafter(r, np.inf) + 10 ** (np.floor(np.log10(m)) - 2):.3g}")
    return r


#: Each side of a percentile range spans at least this share of the other side's.
SIDE_FLOOR = 0.25


def scale_for(
    key: str,
    max_abs: float | None = None,
    *,
    rng: Range | str | None = None,
    level: tuple[float, float] | None = None,
) -> Scale:
    """The fixed colour scale of the units of dataset ``key`` (``layer0/cell``).

    Parameters
    ----------
    key : str
        A dataset key or unit name; its quantity decides the palette.
    max_abs : float, optional
        The unit's largest ``|value|`` over the recording.
    rng : Range or str, optional
        How the range is chosen (default ``p99``, :class:`Range`).
    level : (float, float), optional
        The unit's percentile of ``|value|`` that ``rng`` asks for, of its negative values and
        of the others (``summarize`` reads them from its bins). Each side of 0 ends there, and
        is at least :data:`SIDE_FLOOR` of the other side (noise on a side the unit barely uses
        stays pale); without it a percentile range falls back to ``max_abs``.

    Examples
    --------
    >>> s = scale_for("layer0/cell", 5.3, level=(5.0, 1.8))
    >>> s.vmin, s.vmax, s.centered
    (-5.0, 1.8, True)
    >>> s = scale_for("layer0/cell", 9.0, level=(0.01, 8.0))
    >>> s.vmin, s.vmax
    (-2.0, 8.0)
    """
    rng = Range.parse(rng)
    quantity = key if key in QUANTITIES else parse_name(key).quantity
    if rng.how == "given":
        kind: Kind = "sequential" if quantity in GATES else "diverging"
        return Scale(kind, rng.lo, rng.hi, f"the range given ({rng}); values beyond are marked")
    if quantity in GATES:
        return Scale("sequential", 0.0, 1.0, "a gate's full range")
    finite_max = max_abs is not None and np.isfinite(max_abs) and max_abs > 0
    usable = level is not None and all(np.isfinite(x) for x in level) and max(level) > 0
    if rng.how == "max" or not usable:
        if quantity in TANH_BOUNDED and (max_abs is None or max_abs <= 1.0 + 1e-3):
            return Scale("diverging", -1.0, 1.0, "tanh's range")
        m = float(max_abs) if finite_max else 1.0  # type: ignore[arg-type]
        m = _round_up(m) if m >= 1e-3 else 1e-3
        return Scale("diverging", -m, m, "±max|value| of this unit over the whole recording")
    below, above = level  # type: ignore[misc]
    big = max(below, above)
    below, above = (_round_up(max(x, SIDE_FLOOR * big, 1e-3)) for x in (below, above))
    return Scale(
        "diverging", -below, above,
        f"each side of 0: the {rng} of this unit's |values| there over the whole recording "
        "(at least ¼ of the other side; beyond: the end colour, marked)",
    )  # fmt: skip


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


def code_palette(kind: Kind) -> np.ndarray:
    """The colour of each 8-bit code of :meth:`Scale.quantize`, uint8 of shape (256, 3): the
    palette over codes 1..253, its end colours at 0 and at 254 and 255.

    Examples
    --------
    >>> code_palette("diverging")[[0, 127, 255]].tolist()
    [[103, 0, 31], [247, 247, 247], [5, 48, 97]]
    """
    inside = lut(kind, CODES)
    return np.concatenate([inside[:1], inside, inside[-1:], inside[-1:]])


def text_color(rgb: np.ndarray) -> np.ndarray:
    """Black or white text for each background colour (relative luminance)."""
    rgb = np.asarray(rgb, dtype=np.float64) / 255.0
    lum = rgb @ np.array([0.2126, 0.7152, 0.0722])
    return np.where(lum[..., None] < 0.45, 255, 0).astype(np.uint8).repeat(3, -1)


def norm(scale: Scale):  # -> matplotlib.colors.Normalize
    """The scale's normalisation for matplotlib (imports it): linear, or two slopes around 0
    for a centred diverging scale, as :meth:`Scale.normalize`."""
    from matplotlib.colors import Normalize, TwoSlopeNorm

    if scale.centered and scale.vmin != -scale.vmax:
        return TwoSlopeNorm(0.0, scale.vmin, scale.vmax)
    return Normalize(scale.vmin, scale.vmax)


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
