from __future__ import annotations

import numpy as np
import pytest

from lstmprobe.errors import ReportError
from lstmprobe.report.colors import Range, code_palette, lut, scale_for, text_color


@pytest.mark.parametrize("key", ["layer0/input_gate", "layer1/forget_gate", "layer0/update_gate"])
def test_gates_get_the_sequential_scale_over_their_full_range(key):
    s = scale_for(key, max_abs=0.3)  # never renormalised to the data
    assert (s.kind, s.vmin, s.vmax) == ("sequential", 0.0, 1.0)


def test_signed_quantities_are_diverging_and_cells_use_their_own_fixed_range():
    assert (scale_for("layer0/hidden", 0.7).vmin, scale_for("layer0/hidden", 0.7).vmax) == (-1, 1)
    cell = scale_for("layer0/cell", max_abs=3.21)
    assert cell.kind == "diverging" and (cell.vmin, cell.vmax) == (-3.21, 3.21)
    assert "max|value|" in cell.describe() and "[-3.21, 3.21]" in cell.describe()
    # a projected hidden state that leaves tanh's range gets the data range, not a clipped one
    assert scale_for("layer0/hidden", 2.5).vmax == 2.5


def test_red_is_negative_and_blue_positive():
    pal = lut("diverging")
    low, mid, high = pal[0], pal[128], pal[255]
    assert low[0] > low[2] and high[2] > high[0]  # red end, blue end
    assert abs(int(mid[0]) - int(mid[2])) < 10  # near white at zero
    seq = lut("sequential")
    assert seq[0].sum() > seq[255].sum()  # light at 0, dark at 1


def decode(s, q):  # the report's valueOf (report.js), in NumPy
    u = (q.astype(np.float64) - 1) / 252
    if s.centered:
        v = np.where(u >= 0.5, (2 * u - 1) * s.vmax, (1 - 2 * u) * s.vmin)
    else:
        v = s.vmin + u * (s.vmax - s.vmin)
    return np.where(q == 0, s.vmin, np.where(q >= 254, s.vmax, v))


@pytest.mark.parametrize(
    "scale",
    [
        scale_for("layer0/cell", max_abs=4.0, rng="max"),  # symmetric
        scale_for("layer0/cell", max_abs=5.0, level=(5.0, 1.8)),  # lopsided, 0 white
        scale_for("layer0/cell", rng="0.5,3"),  # not holding 0: linear
        scale_for("layer0/forget_gate"),
    ],
)
def test_quantised_values_decode_within_half_a_step(scale):
    s = scale
    v = np.linspace(s.vmin, s.vmax, 1001)
    q = s.quantize(v)
    assert q.min() >= 1 and q.max() <= 253  # inside: codes 1..253
    step = (max(s.vmax, 0) - min(s.vmin, 0)) / 252 if s.centered else (s.vmax - s.vmin) / 252
    side = np.where(v >= 0, s.vmax, -s.vmin) / 126 if s.centered else step
    assert (np.abs(decode(s, q) - v) <= side / 2 + 1e-9).all()
    out = s.quantize(np.array([s.vmin - 1, s.vmax + 1]))
    assert out.tolist() == [0, 255]  # beyond: the end codes, marked
    assert s.beyond(np.array([s.vmin - 1, s.vmin, s.vmax, s.vmax + 1])).tolist() == [-1, 0, 0, 1]
    if s.centered:
        assert s.quantize(np.array([0.0])).tolist() == [127]  # 0 is white
        assert code_palette("diverging")[127].tolist() == [247, 247, 247]


@pytest.mark.parametrize(
    "text, want",
    [("p99", ("percentile", 99.0)), ("p99.9", ("percentile", 99.9)), ("max", ("max", 99.0)),
     ("-2,5", ("given", 99.0))],
)  # fmt: skip
def test_a_range_is_parsed_once(text, want):
    r = Range.parse(text)
    assert (r.how, r.percentile) == want and str(r) == text


@pytest.mark.parametrize("text", ["p0", "p101", "5,2", "x", "1,inf", "p"])
def test_a_bad_range_says_what_to_give(text):
    with pytest.raises(ReportError, match="max, pNN"):
        Range.parse(text)


def test_a_percentile_range_shows_both_sides_of_a_lopsided_unit():
    s = scale_for("layer0/cell", 5.33, level=(5.0, 1.8))
    assert (s.vmin, s.vmax) == (-5.0, 1.8) and s.centered and "p99" in s.rule
    noisy = scale_for("layer0/cell", 9.0, level=(0.01, 8.0))  # noise below 0 stays pale
    assert (noisy.vmin, noisy.vmax) == (-2.0, 8.0)
    assert scale_for("layer0/cell", 3.0, rng="max").vmin == -3.0
    assert scale_for("layer0/hidden", 0.5, rng="max").rule == "tanh's range"
    assert scale_for("layer0/input_gate", 0.5, level=(0.0, 0.3)).vmax == 1.0  # a gate's [0, 1]


def test_text_is_white_on_dark_backgrounds_and_black_on_light_ones():
    ink = text_color(np.array([[5, 48, 97], [247, 247, 247]]))
    assert ink.tolist() == [[255, 255, 255], [0, 0, 0]]
