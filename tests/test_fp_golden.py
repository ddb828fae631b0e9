"""The golden FP32 adder (integer algorithm) against NumPy's float32 addition."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sim.model.fp import CANONICAL_NAN, bits_f32, canonicalise_nan, f32_bits, fp32_add_bits


def numpy_add_bits(a, b):
    """IEEE addition as NumPy computes it (x86 SSE, RNE, subnormals kept), NaNs canonical."""
    with np.errstate(all="ignore"):
        s = bits_f32(np.uint32(a)) + bits_f32(np.uint32(b))
    return canonicalise_nan(f32_bits(s))


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_any_bit_patterns(a, b):
    assert int(fp32_add_bits(a, b)) == int(numpy_add_bits(a, b)), f"{a:#010x} + {b:#010x}"


# Values near each other and near the subnormal / overflow edges, where rounding and
# cancellation happen; hypothesis' float strategy biases toward such edge cases.
floats32 = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)


@settings(max_examples=3000, deadline=None)
@given(floats32, floats32)
def test_float_values(x, y):
    a, b = int(f32_bits(np.float32(x))), int(f32_bits(np.float32(y)))
    assert int(fp32_add_bits(a, b)) == int(numpy_add_bits(a, b)), f"{a:#010x} + {b:#010x}"


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(-40, 40))
def test_near_cancellation(a, delta):
    """b = -(a + small delta in ulps): catastrophic cancellation and close exponents."""
    b = ((a ^ 0x8000_0000) + delta) & 0xFFFF_FFFF
    assert int(fp32_add_bits(a, b)) == int(numpy_add_bits(a, b)), f"{a:#010x} + {b:#010x}"


def test_million_random_vectorised():
    rng = np.random.default_rng(2026)
    a = rng.integers(0, 2**32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    # half the pairs with nearby exponents so that real additions happen
    b = rng.integers(0, 2**32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    near = (a & 0xFF80_0000) | (b & 0x007F_FFFF)
    b = np.where(np.arange(b.size) % 2 == 0, b, near ^ np.uint32(rng.integers(0, 2) << 31)
                 ).astype(np.uint32)
    got = fp32_add_bits(a, b)
    exp = numpy_add_bits(a, b)
    bad = np.nonzero(got != exp)[0]
    assert bad.size == 0, f"first mismatch {a[bad[0]]:#010x} + {b[bad[0]]:#010x}"


@pytest.mark.parametrize("a,b,expected", [
    (0x0000_0000, 0x8000_0000, 0x0000_0000),   # +0 + -0 = +0
    (0x8000_0000, 0x8000_0000, 0x8000_0000),   # -0 + -0 = -0
    (0x3F80_0000, 0xBF80_0000, 0x0000_0000),   # 1 - 1 = +0
    (0x7F80_0000, 0xFF80_0000, CANONICAL_NAN),  # Inf - Inf = NaN
    (0x7F80_0000, 0x3F80_0000, 0x7F80_0000),   # Inf + 1 = Inf
    (0xFF80_0001, 0x3F80_0000, CANONICAL_NAN),  # sNaN with sign and payload -> canonical
    (0x7F7F_FFFF, 0x7F7F_FFFF, 0x7F80_0000),   # overflow to Inf
    (0x0000_0001, 0x0000_0001, 0x0000_0002),   # subnormal + subnormal
    (0x007F_FFFF, 0x0000_0001, 0x0080_0000),   # subnormal rounds... exactly into normal
    (0x3F80_0000, 0x3380_0000, 0x3F80_0000),   # 1 + 2**-24: tie, stays even
    (0x3F80_0001, 0x3380_0000, 0x3F80_0002),   # 1+ulp + 2**-24: tie, rounds up to even
    (0x3FFF_FFFF, 0x3400_0000, 0x4000_0000),   # rounds up into the next binade
])
def test_directed(a, b, expected):
    assert int(fp32_add_bits(a, b)) == expected
    assert int(fp32_add_bits(b, a)) == expected
    assert int(numpy_add_bits(a, b)) == expected


# ---- BF16 / FP16 products -----------------------------------------------------------

import ml_dtypes  # noqa: E402

from sim.model.fp import mul16_to_fp32_bits  # noqa: E402

NP16 = {"bf16": ml_dtypes.bfloat16, "fp16": np.float16}


def numpy_mul_bits(a, b, fmt):
    """Both operands widened to float32 exactly, multiplied once in float32 (IEEE RNE)."""
    t = NP16[fmt]
    fa = np.asarray(a, dtype=np.uint16).view(t).astype(np.float32)
    fb = np.asarray(b, dtype=np.uint16).view(t).astype(np.float32)
    with np.errstate(all="ignore"):
        return canonicalise_nan(f32_bits(fa * fb))


def assert_mul_slices(fmt, seed, n_random, reference, directed, **kwargs):
    """Every 16-bit ``a`` against each ``b`` of ``n_random`` random patterns (generator
    seeded ``seed``) followed by ``directed``: ``mul16_to_fp32_bits(a, b, fmt,
    **kwargs)`` equals ``reference(a, b, fmt)`` bit for bit (vectorised over ``a``);
    the message names the first operand pair that differs."""
    rng = np.random.default_rng(seed)
    a = np.arange(1 << 16, dtype=np.uint32)
    for b in np.concatenate([rng.integers(0, 1 << 16, n_random), directed]):
        got = mul16_to_fp32_bits(a, b, fmt, **kwargs)
        exp = reference(a, np.full_like(a, b), fmt)
        bad = np.nonzero(got != exp)[0]
        assert bad.size == 0, f"{fmt}: {a[bad[0]]:#06x} * {int(b):#06x}: " \
                              f"{int(got[bad[0]]):#010x} != {int(exp[bad[0]]):#010x}"


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_mul_exhaustive_slices(fmt):
    """Every a against a spread of b (65536 x 512 pairs), vectorised."""
    assert_mul_slices(fmt, 5, 500, numpy_mul_bits, [
        0, 0x8000, 0x0001, 0x8001, 0x7F80, 0x7C00, 0x3F80, 0x3C00, 0x0080, 0x0400,
        0x7F7F, 0x7BFF
    ])


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.sampled_from(["bf16", "fp16"]))
def test_mul_any_bit_patterns(a, b, fmt):
    assert int(mul16_to_fp32_bits(a, b, fmt)) == int(numpy_mul_bits(a, b, fmt))


# ---- flush-to-zero variants (subnormals=False) -----------------------------------------
# The reference here is independent of sim.model.fp's bit-level flush: the float32 values are
# flushed by magnitude (below FLT_MIN -> zero of the same sign), NumPy adds or multiplies
# them (IEEE, subnormals kept), and the result is flushed the same way.

TINY32 = np.finfo(np.float32).tiny          # 2**-126, the smallest normal


def flush_values(f):
    f = np.asarray(f, dtype=np.float32)
    return np.where(np.abs(f) < TINY32, np.copysign(np.float32(0), f), f).astype(np.float32)


def numpy_add_bits_ftz(a, b):
    with np.errstate(all="ignore"):
        s = flush_values(bits_f32(np.uint32(a))) + flush_values(bits_f32(np.uint32(b)))
    return canonicalise_nan(f32_bits(flush_values(s)))


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_ftz_add_any_bit_patterns(a, b):
    assert int(fp32_add_bits(a, b, subnormals=False)) == int(numpy_add_bits_ftz(a, b)), \
        f"{a:#010x} + {b:#010x}"


@settings(max_examples=3000, deadline=None)
@given(floats32, floats32)
def test_ftz_add_float_values(x, y):
    a, b = int(f32_bits(np.float32(x))), int(f32_bits(np.float32(y)))
    assert int(fp32_add_bits(a, b, subnormals=False)) == int(numpy_add_bits_ftz(a, b)), \
        f"{a:#010x} + {b:#010x}"


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, 0x0200_0000), st.integers(-300, 300), st.booleans())
def test_ftz_add_near_the_bottom(mag, delta, negate):
    """Magnitudes up to 2**-124 against a nearby value of opposite (or same) sign:
    cancellations into the subnormal range, which the FTZ variant flushes."""
    a = mag
    b = (mag + delta) & 0x7FFF_FFFF | (0x8000_0000 if negate else 0)
    assert int(fp32_add_bits(a, b, subnormals=False)) == int(numpy_add_bits_ftz(a, b)), \
        f"{a:#010x} + {b:#010x}"


def test_ftz_add_million_random_vectorised():
    rng = np.random.default_rng(2027)
    n = 1_000_000
    a = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    # exponents of b within +-2 of a's, either sign: frequent cancellation everywhere,
    # including next to the subnormal range
    eb = np.clip(((a >> 23) & 0xFF).astype(np.int64) + rng.integers(-2, 3, n), 0, 255)
    b = ((rng.integers(0, 2, n) << 31) | (eb << 23) | rng.integers(0, 1 << 23, n)).astype(np.uint32)
    got = fp32_add_bits(a, b, subnormals=False)
    exp = numpy_add_bits_ftz(a, b)
    bad = np.nonzero(got != exp)[0]
    assert bad.size == 0, f"first mismatch {a[bad[0]]:#010x} + {b[bad[0]]:#010x}"


@pytest.mark.parametrize("a,b,expected", [
    (0x0000_0001, 0x0000_0000, 0x0000_0000),   # subnormal input -> +0
    (0x8000_0001, 0x0000_0000, 0x0000_0000),   # -0 + +0 = +0
    (0x8000_0001, 0x8000_0000, 0x8000_0000),   # -0 + -0 = -0
    (0x807F_FFFF, 0x807F_FFFF, 0x8000_0000),   # (-sub) + (-sub): -0, not -2**-125
    (0x007F_FFFF, 0x0000_0001, 0x0000_0000),   # IEEE: exactly 2**-126; flushed: 0 + 0
    (0x0080_0001, 0x8080_0000, 0x0000_0000),   # +2**-149 -> +0
    (0x8080_0001, 0x0080_0000, 0x8000_0000),   # -2**-149 -> -0 (sign of the result)
    (0x00FF_FFFF, 0x8080_0000, 0x0000_0000),   # 2**-126 - 2**-149 -> +0
    (0x0100_0000, 0x8080_0000, 0x0080_0000),   # 2**-125 - 2**-126 = 2**-126: kept
    (0x0080_0000, 0x0000_0001, 0x0080_0000),   # smallest normal + flushed subnormal
    (0x0080_0000, 0x0080_0000, 0x0100_0000),   # 2 * smallest normal
    (0x3F80_0000, 0x007F_FFFF, 0x3F80_0000),   # 1 + subnormal = 1
    (0x7F80_0000, 0x8000_0001, 0x7F80_0000),   # Inf + flushed subnormal
    (0x7F7F_FFFF, 0x7F7F_FFFF, 0x7F80_0000),   # overflow to Inf, unchanged
    (0x7F80_0000, 0xFF80_0000, CANONICAL_NAN),  # Inf - Inf
    (0x3F80_0001, 0x3380_0000, 0x3F80_0002),   # normal rounding unchanged
])
def test_ftz_add_directed(a, b, expected):
    assert int(fp32_add_bits(a, b, subnormals=False)) == expected
    assert int(fp32_add_bits(b, a, subnormals=False)) == expected
    assert int(numpy_add_bits_ftz(a, b)) == expected


def numpy_mul_bits_ftz(a, b, fmt):
    t = NP16[fmt]
    fa = flush_values(np.asarray(a, dtype=np.uint16).view(t).astype(np.float32))
    fb = flush_values(np.asarray(b, dtype=np.uint16).view(t).astype(np.float32))
    # a 16-bit subnormal widens to a float32 normal: flush those by the 16-bit format's
    # own smallest normal
    tiny16 = np.float32(ml_dtypes.finfo(t).smallest_normal)
    fa = np.where(np.abs(fa) < tiny16, np.copysign(np.float32(0), fa), fa).astype(np.float32)
    fb = np.where(np.abs(fb) < tiny16, np.copysign(np.float32(0), fb), fb).astype(np.float32)
    with np.errstate(all="ignore"):
        return canonicalise_nan(f32_bits(flush_values(fa * fb)))


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_ftz_mul_exhaustive_slices(fmt):
    """Every a against a spread of b, flush to zero, vectorised."""
    assert_mul_slices(fmt, 6, 300, numpy_mul_bits_ftz, [
        0, 0x8000, 0x0001, 0x8001, 0x007F, 0x03FF, 0x7F80, 0x7C00, 0xFF80, 0x3F80,
        0x3C00, 0x0080, 0x0400, 0x2000, 0x1FFF, 0x7F7F, 0x7BFF
    ], subnormals=False)


@settings(max_examples=2000, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.sampled_from(["bf16", "fp16"]))
def test_ftz_mul_any_bit_patterns(a, b, fmt):
    assert int(mul16_to_fp32_bits(a, b, fmt, subnormals=False)) == \
        int(numpy_mul_bits_ftz(a, b, fmt))


# ---- FP32 -> BF16 / FP16 operand rounding (the compiler's and runtime's cast) ---------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_to16_bits_bf16_rounds_to_nearest_even(seed):
    """``to16_bits(x, "bf16")`` against round-to-nearest-even done on the bit patterns:
    add ``0x7FFF`` plus the kept LSB, drop the low 16 bits (no NaN inputs: their
    rounding is not this rule)."""
    from sim.model.fp import to16_bits
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32)
    # ties and near-ties, which random patterns rarely hit
    b[:4096] = (b[:4096] & 0xFFFF0000) | rng.choice([0x7FFF, 0x8000, 0x8001], 4096)
    b = b[~((b >> 23 & 0xFF) == 0xFF) | ((b & 0x7FFFFF) == 0)]     # drop NaNs
    b64 = b.astype(np.uint64)
    expected = ((b64 + 0x7FFF + ((b64 >> 16) & 1)) >> 16).astype(np.uint16)
    got = to16_bits(b.view(np.float32), "bf16")
    bad = np.nonzero(got != expected)[0]
    assert not bad.size, (f"seed {seed}: {bad.size} wrong, first {int(b[bad[0]]):#010x} -> "
                          f"{int(got[bad[0]]):#06x}, expected {int(expected[bad[0]]):#06x}")


def test_to16_bits_fp16_and_errors():
    from sim.model.fp import to16_bits
    x = np.array([1.0, -2.5, 65504.0, 65520.0, 2.0 ** -24, 2.0 ** -26], np.float32)
    # 65520 rounds (tie, even) up to Inf; 2**-26 is below half the smallest subnormal
    assert to16_bits(x, "fp16").tolist() == [0x3C00, 0xC100, 0x7BFF, 0x7C00, 0x0001, 0x0000]
    with pytest.raises(ValueError, match="bf16"):
        to16_bits(x, "fp32")
