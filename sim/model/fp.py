"""Bit-level golden model of ncore's floating-point arithmetic (NumPy, vectorised).

Policy (``docs/numerics.md``): IEEE 754 binary32 with round-to-nearest-even;
subnormal inputs and outputs are supported (no flushing); overflow rounds to Inf;
every NaN result is the canonical quiet NaN ``0x7FC00000`` (input payloads and signs
are not propagated); ``Inf - Inf`` is NaN; an exact zero sum is ``+0`` unless both
operands are ``-0``.

The adder here follows the same algorithm as the gateware (:class:`hdl.fp.FP32Adder`):
swap so the larger magnitude comes first, align the smaller with guard, round and
sticky bits, add or subtract, normalise, round to nearest even. It works on integer
bit patterns only; tests check it against NumPy's own float32 addition.

Flush to zero (``subnormals=False``, the option of the gateware units for
area-constrained builds; not the shipped policy): subnormal operands are read as zeros
of their sign, the operation is done as above, and a subnormal result is replaced by the
zero of its sign ("flush after rounding"). For these two operations on normal operands
that is the same as flushing every nonzero exact result below ``2**-126``: such a sum
is exact, and no BF16 product lies within rounding distance below ``2**-126``.
"""

import numpy as np

__all__ = ["CANONICAL_NAN", "FORMATS16", "fp32_add_bits", "mul16_to_fp32_bits",
           "canonicalise_nan", "flush_subnormals", "f32_bits", "bits_f32", "to16_bits"]

CANONICAL_NAN = 0x7FC00000


def f32_bits(x):
    """float32 values -> uint32 bit patterns."""
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def bits_f32(b):
    """uint32 bit patterns -> float32 values."""
    return np.asarray(b, dtype=np.uint32).view(np.float32)


def to16_bits(x, fmt):
    """Values (taken as float32 first) rounded to ``fmt`` (``"bf16"`` via ``ml_dtypes``,
    ``"fp16"`` via NumPy; both round to nearest even) -> uint16 bit patterns. How the
    compiler and the runtime turn FP32 operands into the array's 16-bit ones."""
    x = np.asarray(x, dtype=np.float32)
    if fmt == "bf16":
        import ml_dtypes
        return x.astype(ml_dtypes.bfloat16).view(np.uint16)
    if fmt == "fp16":
        with np.errstate(over="ignore"):             # overflow to Inf is the rule
            return x.astype(np.float16).view(np.uint16)
    raise ValueError(f"fmt must be 'bf16' or 'fp16', not {fmt!r}")


def canonicalise_nan(bits):
    """Replace every NaN bit pattern by :data:`CANONICAL_NAN`."""
    bits = np.asarray(bits, dtype=np.uint32)
    nan = ((bits >> 23) & 0xFF == 0xFF) & (bits & 0x7FFFFF != 0)
    return np.where(nan, np.uint32(CANONICAL_NAN), bits).astype(np.uint32)


def flush_subnormals(bits, ebits=8, fbits=23):
    """Replace every subnormal bit pattern of a binary format (sign bit just above
    ``ebits`` exponent and ``fbits`` fraction bits) by the zero of its sign; any other
    pattern is returned unchanged. Defaults: binary32."""
    bits = np.asarray(bits).astype(np.int64)
    sub = ((bits >> fbits) & ((1 << ebits) - 1) == 0) & (bits & ((1 << fbits) - 1) != 0)
    return np.where(sub, bits & (1 << (ebits + fbits)), bits)


def _bit_length(v):
    """floor(log2(v)) + 1 for int64 v >= 0 (0 for 0), exactly, without floats."""
    n = np.zeros_like(v)
    v = v.copy()
    for step in (32, 16, 8, 4, 2, 1):
        big = v >= (np.int64(1) << step)
        n = np.where(big, n + step, n)
        v = np.where(big, v >> step, v)
    return n + (v > 0)


def fp32_add_bits(a, b, *, subnormals=True):
    """IEEE binary32 ``a + b`` on uint32 bit patterns, round to nearest even.

    ``subnormals=False``: flush to zero, as :class:`hdl.fp.FP32Adder` built with
    ``subnormals=False`` (subnormal operands and results become zeros of their sign).
    """
    a = np.asarray(a, dtype=np.uint32).astype(np.int64)
    b = np.asarray(b, dtype=np.uint32).astype(np.int64)
    a, b = np.broadcast_arrays(a, b)
    if not subnormals:
        out = fp32_add_bits(flush_subnormals(a), flush_subnormals(b))
        return flush_subnormals(out).astype(np.uint32)
    mag_a = a & 0x7FFFFFFF
    mag_b = b & 0x7FFFFFFF
    swap = mag_b > mag_a
    x = np.where(swap, b, a)
    y = np.where(swap, a, b)

    sx, ex, fx = x >> 31, (x >> 23) & 0xFF, x & 0x7FFFFF
    sy, ey, fy = y >> 31, (y >> 23) & 0xFF, y & 0x7FFFFF
    nan = ((ex == 255) & (fx != 0)) | ((ey == 255) & (fy != 0))
    inf_x = (ex == 255) & (fx == 0)
    inf_y = (ey == 255) & (fy == 0)
    sub = sx != sy

    # significands with the hidden bit; a subnormal has exponent 1 and no hidden bit
    mx = np.where(ex == 0, fx, fx | (1 << 23))
    my = np.where(ey == 0, fy, fy | (1 << 23))
    e = np.maximum(ex, 1)
    d = e - np.maximum(ey, 1)

    # three extra bits (guard, round, sticky); align y, OR-ing lost bits into sticky
    MX = mx << 3
    MY = my << 3
    dd = np.minimum(d, 27)
    lost = MY & ((np.int64(1) << dd) - 1)
    MY = (MY >> dd) | (lost != 0)

    R = np.where(sub, MX - MY, MX + MY)             # < 2**28

    # carry out of the top: shift right one, keeping sticky
    carry = R >> 27
    R = np.where(carry != 0, (R >> 1) | (R & 1), R)
    e = e + carry
    # leading zeros: shift left, but never below exponent 1 (subnormal result)
    lz = 27 - _bit_length(R)
    sh = np.clip(np.minimum(lz, e - 1), 0, None)
    R = R << sh
    e = e - sh

    # round to nearest, ties to even
    mant = R >> 3
    guard = (R >> 2) & 1
    rest = (R & 3) != 0
    mant = mant + (guard & (rest | (mant & 1)))
    ovf = mant >> 24
    mant = np.where(ovf != 0, mant >> 1, mant)
    e = e + ovf
    exp_field = np.where(mant >= (1 << 23), e, 0)

    out = (sx << 31) | (exp_field << 23) | (mant & 0x7FFFFF)
    out = np.where(exp_field >= 255, (sx << 31) | (0xFF << 23), out)     # overflow
    zero = R == 0
    out = np.where(zero, np.where(sub, 0, sx << 31), out)                # exact zero
    out = np.where(inf_x | inf_y, np.where(inf_x, x, y), out)
    out = np.where(nan | (inf_x & inf_y & sub), CANONICAL_NAN, out)
    return out.astype(np.uint32)


#: Half-width operand formats: name -> (exponent bits, fraction bits, bias).
FORMATS16 = {"bf16": (8, 7, 127), "fp16": (5, 10, 15)}


def mul16_to_fp32_bits(a, b, fmt, *, subnormals=True):
    """Product of two BF16 or two FP16 bit patterns as an FP32 bit pattern.

    The exact product (at most 22 significant bits) is rounded once to binary32 with
    round-to-nearest-even: it is exact unless it falls below the normal range
    (BF16 only: rounds into a subnormal or to zero) or above it (BF16 only: Inf).
    NaN operands and ``Inf * 0`` give :data:`CANONICAL_NAN`.

    ``subnormals=False``: flush to zero, as :class:`hdl.fp.FPMul16` built with
    ``subnormals=False``: subnormal operands (of the 16-bit format) become zeros of
    their sign (so ``Inf`` times a subnormal is NaN), a subnormal product the zero of
    its sign.
    """
    ebits, fbits, bias = FORMATS16[fmt]
    a = np.asarray(a, dtype=np.uint32).astype(np.int64) & 0xFFFF
    b = np.asarray(b, dtype=np.uint32).astype(np.int64) & 0xFFFF
    a, b = np.broadcast_arrays(a, b)
    if not subnormals:
        out = mul16_to_fp32_bits(flush_subnormals(a, ebits, fbits),
                                 flush_subnormals(b, ebits, fbits), fmt)
        return flush_subnormals(out).astype(np.uint32)
    emax = (1 << ebits) - 1

    def decode(v):
        s = v >> 15
        e = (v >> fbits) & emax
        f = v & ((1 << fbits) - 1)
        sig = np.where(e == 0, f, f | (1 << fbits))
        exp = np.maximum(e, 1) - bias - fbits            # value = sig * 2**exp
        return s, e, f, sig, exp

    sa, ea, fa, siga, expa = decode(a)
    sb, eb, fb, sigb, expb = decode(b)
    sign = sa ^ sb
    nan = ((ea == emax) & (fa != 0)) | ((eb == emax) & (fb != 0))
    inf = (ea == emax) | (eb == emax)
    zero_in = (siga == 0) | (sigb == 0)

    P = siga * sigb                                       # exact, < 2**22
    E = expa + expb
    lead = E + _bit_length(P) - 1                         # exponent of the leading 1
    # Normal result: shift the significand so its leading 1 is bit 23 (exact).
    n = _bit_length(P)
    norm_sig = np.where(n > 0, P << np.clip(24 - n, 0, None), 0)
    norm = (sign << 31) | ((lead + 127).clip(0, 255) << 23) | (norm_sig & 0x7FFFFF)
    # Subnormal result: value / 2**-149, rounded to nearest even.
    shift = np.clip(-149 - E, 0, 62)                      # bits to drop (round)
    kept = np.where(E + 149 > 0, P << np.clip(E + 149, 0, 23), P >> shift)
    half = np.where(shift > 0, (P >> np.maximum(shift - 1, 0)) & 1, 0)
    below = np.where(shift > 1, (P & ((np.int64(1) << np.maximum(shift - 1, 0)) - 1)) != 0, False)
    kept = kept + (half & (below | (kept & 1)))
    # kept may reach 2**23: the bit pattern then is the smallest normal, as it should
    sub = (sign << 31) | kept

    out = np.where(lead >= -126, norm, sub)
    out = np.where(lead > 127, (sign << 31) | (0xFF << 23), out)
    out = np.where(zero_in, sign << 31, out)
    out = np.where(inf, (sign << 31) | (0xFF << 23), out)
    out = np.where(nan | (inf & zero_in), CANONICAL_NAN, out)
    return out.astype(np.uint32)
