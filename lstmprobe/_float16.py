"""Reading float16 recordings in compiled loops without a float32 copy.

numba has no float16 on the CPU, so a float16 array is passed to a kernel as its 16-bit patterns
(:func:`kernel_view`) and each value is widened in the loop by the CPU's half-precision
conversion (:data:`decode_exact`, :data:`decode_finite`). Shared by the scoring kernels
(``lstmprobe.probes._kernels``) and the report's summaries (``lstmprobe.report._sweep``).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def float16_decoder(clamp: bool):  # type: ignore[no-untyped-def]
    """A numba intrinsic: a window value as float32; float32 as it is, uint16 as the bits of
    a float16, converted by ``fpext half -> float`` (the vector instruction vcvtph2ps).

    With ``clamp``, inf and NaN first become the largest finite float16 of their sign (their
    magnitude bits clamped to 0x7BFF), in 16-bit lanes. Hand-written IR, because numba has no
    float16 on the CPU and computes integer arithmetic on narrow ints in int64 lanes: the
    plain numba decoders measured slower (docs/probes.md).
    """

    @intrinsic
    def decode(typingctx, v):  # type: ignore[no-untyped-def]
        if v == types.float32:
            return types.float32(v), lambda context, builder, sig, args: args[0]
        if v != types.uint16:
            return None

        def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
            h = args[0]
            if clamp:
                i16 = ir.IntType(16)
                mag = builder.and_(h, ir.Constant(i16, 0x7FFF))
                big = builder.icmp_unsigned(">", mag, ir.Constant(i16, 0x7BFF))
                mag = builder.select(big, ir.Constant(i16, 0x7BFF), mag)
                h = builder.or_(builder.and_(h, ir.Constant(i16, 0x8000)), mag)
            return builder.fpext(builder.bitcast(h, ir.HalfType()), ir.FloatType())

        return types.float32(v), codegen

    return decode


#: inf and NaN as +-65504 (what the scoring sweep counts)
decode_finite = float16_decoder(clamp=True)
#: inf and NaN kept (the probes' range sampling skips them; the report's summaries see them)
decode_exact = float16_decoder(clamp=False)


@intrinsic
def float32_bits(typingctx, v):  # type: ignore[no-untyped-def]
    """A numba intrinsic: the bits of a float32 as a uint32 (a register bitcast, no memory),
    what ``np.float32(v).view(np.uint32)`` is in NumPy."""
    if v != types.float32:
        return None

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(v), codegen


def reference_decode(bits: np.ndarray, finite: bool) -> np.ndarray:
    """What :data:`decode_finite` (``finite``) or :data:`decode_exact` computes, in NumPy: the
    float32 values of float16 bit patterns ``bits`` (uint16).

    Examples
    --------
    >>> bits = np.array([0x3C00, 0x7C00, 0xFE00], np.uint16)  # 1, inf, a negative NaN
    >>> reference_decode(bits, finite=True).tolist()
    [1.0, 65504.0, -65504.0]
    """
    v = bits.view(np.float16).astype(np.float32)
    if finite:
        big = np.where(np.signbit(v), np.float32(-65504), np.float32(65504))
        v = np.where(np.isfinite(v), v, big)
    return v


def kernel_view(x: np.ndarray) -> np.ndarray:
    """A window as the kernels take it: float16 as its bits (uint16), else float32."""
    return x.view(np.uint16) if x.dtype == np.float16 else np.asarray(x, dtype=np.float32)
