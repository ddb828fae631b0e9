"""Golden model of the vector engine's numerics: PSUM accumulators -> layer outputs.

Pure NumPy, vectorised over arrays of bit patterns (``uint32``) or integers
(``int64``); it never imports Amaranth or cocotb. The gateware in
:mod:`hdl.vector_units` is bit-exact with every function here.

Float narrowing (FP32 patterns -> 16-bit patterns), policy of ``docs/numerics.md``:

* :func:`f32_to_bf16_bits` -- FP32 to BF16 (8 exponent bits, 7 fraction bits).
  Round to nearest, ties to even, on the 16 bits dropped. A value that rounds past
  BF16's largest finite value (``0x7F7F``) becomes ``+-Inf``; ``+-Inf`` stay ``+-Inf``.
  FP32 subnormals are BF16 subnormals (same exponent range) and are rounded, not
  flushed; ``+-0`` keep their sign. Any NaN (whatever its sign and payload) becomes the
  canonical quiet NaN ``0x7FC0``.
* :func:`f32_to_fp16_bits` -- FP32 to IEEE binary16 (5 exponent bits, 10 fraction
  bits). Round to nearest, ties to even. Magnitudes at or above ``65520`` (the midpoint
  between the largest finite FP16 value ``65504`` and ``2**16``, which rounds to the
  even neighbour ``2**16``) become ``+-Inf``, as do ``+-Inf``. Magnitudes below the
  smallest normal ``2**-14`` become FP16 subnormals, multiples of ``2**-24`` rounded to
  nearest even; at most ``2**-25`` (the tie between ``0`` and ``2**-24``) they become
  a zero with the input's sign. A subnormal that rounds up to ``2**-14`` is the smallest
  normal (the carry moves into the exponent field). FP32 subnormals (below ``2**-126``)
  therefore always give a signed zero. Any NaN becomes the canonical ``0x7E00``.
* :func:`relu_f32_bits` -- ReLU on FP32 patterns: ``x`` if ``x`` is a NaN or its sign
  bit is 0, else ``+0``; so ``-0 -> +0``, ``-Inf -> +0``, NaNs pass unchanged
  (payload and sign kept: ReLU is a selection, not an arithmetic operation).

Both narrowing casts use one rounding step: the magnitude is split into the kept bits
``keep`` (15 bits: exponent and fraction of the result), the guard bit ``g`` (the first
dropped bit) and ``sticky`` (OR of the rest); the result magnitude is
``keep + (g & (sticky | keep[0]))``. A carry out of the fraction increments the
exponent field, so rounding into the next binade, from the largest subnormal into the
smallest normal and from the largest finite value into Inf (``0x7C00``/``0x7F80``) all
happen by themselves.

Requantization (:func:`requantize`), INT32 accumulator -> INT8 output:

1. ``p = acc * scale`` exactly (``acc`` INT32, ``scale`` signed 16-bit: ``|p| <= 2**46``,
   fits 48 bits signed);
2. ``r = p`` if ``shift == 0``, else ``r = round(p / 2**shift)`` with ties rounded away
   from zero (gemmlowp/TFLite rounding right shift), ``shift`` in ``0..47``; with
   integers only: ``(p + 2**(shift-1)) >> shift`` for ``p >= 0`` and
   ``(p + 2**(shift-1) - 1) >> shift`` for ``p < 0`` (arithmetic shift = floor);
3. ``y = r + zero_point`` (``zero_point`` in ``-128..127``);
4. saturate ``y`` to ``[-128, 127]``;
5. if ``relu``: ``y = max(y, zero_point)`` (the quantised value of real 0).

The vector engine's ADD adds a second product before the shift, ``p = acc * scale +
acc2 * scale2`` (``|p| <= 2**47``), so that two INT8 activations with different scales
are added with each one's own multiplier; and its ``clip`` lowers the upper bound of
step 4 from 127 to ``hi`` (ReLU6). Both are arguments of :func:`requantize`, neutral by
default.

Widening (the vector engine's activation operands, :func:`widen_bits`): INT8 is sign
extended; BF16 is the upper half of its FP32 (every BF16 value, NaN payloads included,
is an FP32 value); FP16 is converted exactly (exponent rebiased by 112, subnormals
normalised, Inf kept, a NaN keeps its sign and payload shifted up 13 bits). No rounding
and no flushing happen: ``subnormals=False`` flushes in arithmetic only.

:func:`max_f32_bits` is the vector engine's MAX on FP32 patterns: the second operand if
it is greater (numerically: ``-0`` and ``+0`` are equal), else the first; a NaN in
either operand gives the first NaN operand (the first operand if it is a NaN, else the
second), unchanged.
"""

import numpy as np

__all__ = ["BF16_CANONICAL_NAN", "FP16_CANONICAL_NAN", "f32_to_bf16_bits",
           "f32_to_fp16_bits", "relu_f32_bits", "requantize", "narrow_fields",
           "widen_bits", "max_f32_bits", "clip_f32_bits", "f32_order_key"]

BF16_CANONICAL_NAN = 0x7FC0
FP16_CANONICAL_NAN = 0x7E00

#: Range of each requantization parameter (inclusive).
SCALE_RANGE = (-(1 << 15), (1 << 15) - 1)
SHIFT_RANGE = (0, 47)
ZERO_POINT_RANGE = (-128, 127)
ACC_RANGE = (-(1 << 31), (1 << 31) - 1)


def _fields(bits):
    b = np.asarray(bits, dtype=np.uint32).astype(np.int64)
    return b >> 31, (b >> 23) & 0xFF, b & 0x7FFFFF, b


def narrow_fields(bits, fmt):
    """The rounding inputs of a narrowing cast: ``(sign, keep, g, sticky, inf, nan)``.

    ``keep`` is the 15-bit truncated magnitude of the result, ``g`` the guard bit and
    ``sticky`` the OR of all lower dropped bits; ``inf`` marks results that are Inf
    whatever the rounding (Inf inputs, and for FP16 magnitudes ``>= 2**16``), ``nan``
    NaN inputs. ``fmt`` is ``"bf16"`` or ``"fp16"``. The gateware computes the same
    fields in its first stage.
    """
    s, e, f, b = _fields(bits)
    nan = (e == 0xFF) & (f != 0)
    mag = b & 0x7FFF_FFFF
    if fmt == "bf16":
        keep = mag >> 16
        g = (mag >> 15) & 1
        sticky = (mag & 0x7FFF) != 0
        inf = (e == 0xFF) & (f == 0)
        return s, keep, g, sticky, inf, nan
    if fmt != "fp16":
        raise ValueError(f"fmt must be 'bf16' or 'fp16', not {fmt!r}")
    # normal FP16 result (e >= 113, i.e. |x| >= 2**-14): rebias 127 -> 15, drop 13 bits
    norm_keep = (((e - 112) & 0x1F) << 10) | (f >> 13)
    norm_g = (f >> 12) & 1
    norm_sticky = (f & 0xFFF) != 0
    # subnormal FP16 result: value / 2**-24 = M * 2**(e - 126), M the 24-bit significand;
    # drop sh = 126 - e >= 14 bits (capped at 25: M < 2**24 leaves nothing to round up)
    M = np.where(e == 0, f, f | (1 << 23))
    sh = np.minimum(126 - np.maximum(e, 1), 25)
    sh = np.where(e >= 113, 25, sh)                  # unused there; keep shifts in range
    sub_keep = M >> sh
    sub_g = (M >> (sh - 1)) & 1
    sub_sticky = (M & ((np.int64(1) << (sh - 1)) - 1)) != 0
    normal = e >= 113
    keep = np.where(normal, norm_keep, sub_keep)
    g = np.where(normal, norm_g, sub_g)
    sticky = np.where(normal, norm_sticky, sub_sticky)
    inf = (e >= 143) & ~nan                          # |x| >= 2**16 (and Inf itself)
    return s, keep, g, sticky, inf, nan


def _narrow(bits, fmt, inf_bits, nan_bits):
    s, keep, g, sticky, inf, nan = narrow_fields(bits, fmt)
    mag = keep + (g & (sticky | (keep & 1)))         # RNE; carries move up by themselves
    out = (s << 15) | mag
    out = np.where(inf, (s << 15) | inf_bits, out)
    out = np.where(nan, nan_bits, out)
    return out.astype(np.uint32)


def f32_to_bf16_bits(bits):
    """FP32 bit patterns -> BF16 bit patterns (in ``uint32``), as the module docstring says."""
    return _narrow(bits, "bf16", 0x7F80, BF16_CANONICAL_NAN)


def f32_to_fp16_bits(bits):
    """FP32 bit patterns -> FP16 bit patterns (in ``uint32``), as the module docstring says."""
    return _narrow(bits, "fp16", 0x7C00, FP16_CANONICAL_NAN)


def relu_f32_bits(bits):
    """ReLU on FP32 bit patterns: ``x`` if NaN or sign bit 0, else ``+0``."""
    s, e, f, b = _fields(bits)
    keep = (s == 0) | ((e == 0xFF) & (f != 0))
    return np.where(keep, b, 0).astype(np.uint32)


def _checked(name, value, bounds):
    v = np.asarray(value)
    if not np.issubdtype(v.dtype, np.integer) and v.dtype != np.bool_:
        raise TypeError(f"{name} must hold integers, not {v.dtype}")
    v = v.astype(np.int64)
    lo, hi = bounds
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"{name} holds values outside [{lo}, {hi}]")
    return v


def requantize(acc, scale, shift, zero_point, relu, *, acc2=0, scale2=0, hi=127):
    """INT32 accumulators -> INT8 outputs (``int64`` array), as the module docstring says.

    All arguments broadcast against each other, so each parameter may be one value or
    one per element. ``acc2 * scale2`` is added to the product (the vector engine's
    ADD); ``hi`` (an INT8) replaces 127 as the upper bound (its ``clip``).
    """
    acc = _checked("acc", acc, ACC_RANGE)
    scale = _checked("scale", scale, SCALE_RANGE)
    acc2 = _checked("acc2", acc2, ACC_RANGE)
    scale2 = _checked("scale2", scale2, SCALE_RANGE)
    shift = _checked("shift", shift, SHIFT_RANGE)
    zp = _checked("zero_point", zero_point, ZERO_POINT_RANGE)
    hi = _checked("hi", hi, ZERO_POINT_RANGE)
    relu = _checked("relu", relu, (0, 1)).astype(bool)

    p = acc * scale + acc2 * scale2                  # exact: |p| <= 2**47
    half = np.where(shift > 0, np.int64(1) << np.maximum(shift - 1, 0), 0)
    bias = np.where(shift > 0, half - (p < 0), 0)    # ties away from zero
    r = (p + bias) >> shift                          # >> on int64 is floor division
    y = np.clip(r + zp, -128, 127)
    y = np.where(relu, np.maximum(y, zp), y)
    y = np.minimum(y, hi)
    return np.asarray(y, dtype=np.int64)


def widen_bits(raw, src_type):
    """Operand elements (``raw``: the element's bytes as an unsigned integer) -> INT32
    values (``int64``, for INT8) or FP32 patterns (``uint32``, for BF16/FP16/ACC), as
    the module docstring says. ``src_type``: ``"ACC"``, ``"INT8"``, ``"BF16"``,
    ``"FP16"``; ACC passes the 32 bits through (as ``uint32``)."""
    raw = np.asarray(raw, dtype=np.int64)
    if src_type == "ACC":
        return (raw & 0xFFFF_FFFF).astype(np.uint32)
    if src_type == "INT8":
        b = raw & 0xFF
        return np.where(b >= 128, b - 256, b).astype(np.int64)
    h = raw & 0xFFFF
    if src_type == "BF16":
        return (h << 16).astype(np.uint32)
    if src_type != "FP16":
        raise ValueError(f"unknown source type {src_type!r}")
    sign = (h >> 15) << 31
    e = (h >> 10) & 0x1F
    f = h & 0x3FF
    # subnormal: the top set bit t of f (0..9) makes the value 2**(t-24) * 1.frac
    t = np.zeros_like(f)
    for bit in range(10):
        t = np.where((f >> bit) & 1, bit, t)
    sub_exp = t + 103
    sub_frac = ((f << (10 - t)) & 0x3FF) << 13
    mag = np.where(e == 0x1F, (0xFF << 23) | (f << 13),
                   np.where(e == 0, np.where(f == 0, 0, (sub_exp << 23) | sub_frac),
                            ((e + 112) << 23) | (f << 13)))
    return (sign | mag).astype(np.uint32)


def f32_order_key(bits):
    """FP32 patterns -> signed integers in numeric order (``-0`` and ``+0`` both 0).
    Meaningless for NaNs."""
    b = np.asarray(bits, dtype=np.int64) & 0xFFFF_FFFF
    mag = b & 0x7FFF_FFFF
    return np.where(b >> 31, -mag, mag)


def _is_nan32(bits):
    b = np.asarray(bits, dtype=np.int64)
    return ((b >> 23) & 0xFF == 0xFF) & (b & 0x7F_FFFF != 0)


def clip_f32_bits(y, hi_bf16):
    """The vector engine's clip on FP32 patterns: ``y`` numerically above the BF16 bound
    ``hi_bf16`` (16-bit pattern) becomes the bound; a NaN ``y`` (or bound) changes
    nothing."""
    y = np.asarray(y, dtype=np.uint32)
    hi = widen_bits(np.full(y.shape, hi_bf16), "BF16")
    over = ~_is_nan32(y) & ~_is_nan32(hi) & (f32_order_key(y) > f32_order_key(hi))
    return np.where(over, hi, y).astype(np.uint32)


def max_f32_bits(a, b):
    """The vector engine's MAX on FP32 patterns (module docstring)."""
    a = np.asarray(a, dtype=np.uint32)
    b = np.asarray(b, dtype=np.uint32)
    na, nb = _is_nan32(a), _is_nan32(b)
    take_b = np.where(na, False, nb | (f32_order_key(b) > f32_order_key(a)))
    return np.where(take_b, b, a).astype(np.uint32)
