from __future__ import annotations

import numpy as np
import pytest

from lstmprobe.report.colors import lut, scale_for, text_color


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


def test_quantised_values_decode_within_half_a_step():
    s = scale_for("layer0/cell", max_abs=4.0)
    v = np.linspace(-4, 4, 1001)
    q = s.quantize(v)
    back = s.vmin + q / 255 * (s.vmax - s.vmin)
    assert np.abs(back - v).max() <= (s.vmax - s.vmin) / 510 + 1e-9
    assert s.quantize(np.array([-10.0, 10.0])).tolist() == [0, 255]  # clipped at the ends


def test_text_is_white_on_dark_backgrounds_and_black_on_light_ones():
    ink = text_color(np.array([[5, 48, 97], [247, 247, 247]]))
    assert ink.tolist() == [[255, 255, 255], [0, 0, 0]]
