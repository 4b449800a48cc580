from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from lstmprobe._float16 import decode_exact, decode_finite, kernel_view, reference_decode


@njit
def _decode_all(bits, finite):  # type: ignore[no-untyped-def]
    out = np.empty(bits.shape[0], dtype=np.float32)
    for i in range(bits.shape[0]):
        out[i] = decode_finite(bits[i]) if finite else decode_exact(bits[i])  # pyright: ignore[reportCallIssue]
    return out


@pytest.mark.parametrize("finite", [True, False])
def test_the_compiled_decoders_equal_the_numpy_reference_on_every_bit_pattern(finite: bool) -> None:
    bits = np.arange(1 << 16, dtype=np.uint16)
    got, want = _decode_all(bits, finite), reference_decode(bits, finite)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))  # -0.0 too
    if finite:
        assert not nan.any() and np.isfinite(got).all()
    assert np.isinf(got).sum() == (0 if finite else 2)


def test_float32_passes_through_and_float16_is_viewed_as_its_bits() -> None:
    x = np.array([1.5, -np.inf], np.float16)
    assert kernel_view(x).dtype == np.uint16
    assert np.array_equal(kernel_view(x), x.view(np.uint16))
    y = np.array([1.0, -3.25, 1e30], np.float32)
    assert kernel_view(y) is y
    assert np.array_equal(_decode_all(y, True), y)  # float32 is read as it is
