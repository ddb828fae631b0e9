# amaranth: UnusedElaboratable=no
"""Flush-to-zero builds of FP32Adder and FPMul16 (``subnormals=False``) in Amaranth's
simulator, bit for bit against the golden FTZ models (directed values + random pairs)."""

import numpy as np
import pytest

from amaranth_helpers import run_pipeline
from hdl.fp import CANONICAL_NAN, FP32Adder, FPMul16
from sim.model.fp import fp32_add_bits, mul16_to_fp32_bits


def compare(got, a, b, expected, what):
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g == int(e), f"{what} {int(a[i]):#x}, {int(b[i]):#x}: got {g:#010x}, " \
                            f"expected {int(e):#010x}"


def test_options():
    assert FP32Adder().subnormals and FPMul16().subnormals
    assert not FP32Adder(subnormals=False).subnormals
    assert not FPMul16(subnormals=False).subnormals
    with pytest.raises(TypeError):
        FP32Adder(subnormals=0)
    with pytest.raises(TypeError):
        FPMul16(subnormals="no")
    # the INT8 option of the multiplier (tested in tests/test_fp_amaranth.py)
    assert not FPMul16().int8 and FPMul16(int8=True).int8
    assert not hasattr(FPMul16(), "o_int") and hasattr(FPMul16(int8=True), "o_int")
    with pytest.raises(TypeError, match="int8 must be a bool"):
        FPMul16(int8=1)


# ---- FP32Adder ------------------------------------------------------------------------

ADD_DIRECTED = [
    0x0000_0000, 0x8000_0000,                           # zeros
    0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFF80_0001, 0x7FA0_0000,   # Inf, NaNs
    0x0000_0001, 0x8000_0001, 0x0040_0000, 0x8040_0000,   # subnormals, both signs
    0x007F_FFFF, 0x807F_FFFF,
    0x0080_0000, 0x8080_0000, 0x0080_0001, 0x8080_0001,   # smallest normals
    0x0080_0002, 0x00FF_FFFF, 0x80FF_FFFF, 0x0100_0000, 0x8100_0000,
    0x7F7F_FFFF, 0xFF7F_FFFF, 0x7F7F_FFFE,              # largest normals
    0x3F80_0000, 0xBF80_0000, 0x3380_0000, 0x3F80_0001, 0x3FFF_FFFF, 0x3400_0000,
    0x4B80_0000, 0xCB7F_FFFF,
]


def run_add(pairs):
    got = run_pipeline(FP32Adder(subnormals=False), pairs, "o_sum")
    a = np.array([p[0] for p in pairs], dtype=np.uint32)
    b = np.array([p[1] for p in pairs], dtype=np.uint32)
    compare(got, a, b, fp32_add_bits(a, b, subnormals=False), "add")
    return got


def test_add_directed_all_pairs():
    run_add([(a, b) for a in ADD_DIRECTED for b in ADD_DIRECTED])


@pytest.mark.parametrize("a,b,expected", [
    (0x0000_0001, 0x0000_0000, 0x0000_0000),    # subnormal input read as +0
    (0x8000_0001, 0x8000_0000, 0x8000_0000),    # -sub + -0 = -0
    (0x8000_0001, 0x0000_0001, 0x0000_0000),    # -0 + +0 = +0
    (0x807F_FFFF, 0x807F_FFFF, 0x8000_0000),    # IEEE: -2**-125 + ...; flushed: -0
    (0x007F_FFFF, 0x0000_0001, 0x0000_0000),    # IEEE: exactly the smallest normal
    (0x0080_0001, 0x8080_0000, 0x0000_0000),    # would be +2**-149
    (0x8080_0001, 0x0080_0000, 0x8000_0000),    # would be -2**-149: zero of its sign
    (0x00FF_FFFF, 0x8080_0000, 0x0000_0000),    # would be 2**-126 - 2**-149
    (0x0100_0000, 0x8080_0000, 0x0080_0000),    # exactly 2**-126: kept
    (0x0080_0000, 0x0080_0000, 0x0100_0000),
    (0x3F80_0000, 0x807F_FFFF, 0x3F80_0000),    # 1 - subnormal = 1
    (0x7F80_0000, 0x8000_0001, 0x7F80_0000),    # Inf + flushed subnormal
    (0xFF80_0000, 0x7F80_0000, CANONICAL_NAN),
    (0x7F7F_FFFF, 0x7F7F_FFFF, 0x7F80_0000),    # overflow
    (0x3F80_0001, 0x3380_0000, 0x3F80_0002),    # tie to even
])
def test_add_directed_values(a, b, expected):
    assert run_add([(a, b), (b, a)]) == [expected, expected]


def wide_spread_pairs(rng, n):
    """Random binary32 pairs: a third with independent exponents over the whole range
    (all of 0..255, so subnormals, Inf and NaN too), a third with b's exponent within
    +-2 of a's (either sign: cancellation), a third at the bottom of the range
    (exponents 0..4) where cancellations leave results below 2**-126."""
    k = n // 3

    def pattern(sign, exp, frac):
        return ((sign << 31) | (exp << 23) | frac).astype(np.uint32)

    def rnd_sign(m):
        return rng.integers(0, 2, m).astype(np.int64)

    def rnd_frac(m):
        return rng.integers(0, 1 << 23, m).astype(np.int64)

    ea = rng.integers(0, 256, n)
    a = pattern(rnd_sign(n), ea, rnd_frac(n))
    b_far = pattern(rnd_sign(k), rng.integers(0, 256, k), rnd_frac(k))
    b_near = pattern(rnd_sign(k), np.clip(ea[k:2 * k] + rng.integers(-2, 3, k), 0, 255),
                     rnd_frac(k))
    m = n - 2 * k
    a[2 * k:] = pattern(rnd_sign(m), rng.integers(0, 5, m), rnd_frac(m))
    b_low = pattern(rnd_sign(m), rng.integers(0, 5, m), rnd_frac(m))
    b = np.concatenate([b_far, b_near, b_low])
    return list(zip(a.tolist(), b.tolist()))


def test_add_random_wide_spread():
    rng = np.random.default_rng(1301)
    pairs = wide_spread_pairs(rng, 3000)
    # and exact near-cancellations: b = -(a +- a few ulps)
    a = rng.integers(0, 2**32, 300, dtype=np.uint64).astype(np.int64)
    b = ((a ^ 0x8000_0000) + rng.integers(-4, 5, 300)) & 0xFFFF_FFFF
    pairs += list(zip(a.tolist(), b.tolist()))
    run_add(pairs)


# ---- FPMul16 ------------------------------------------------------------------------------

MUL_DIRECTED = {
    "bf16": [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFC1,   # zeros, Inf, NaN
             0x0001, 0x8001, 0x007F, 0x807F, 0x0040,                   # subnormals
             0x0080, 0x8080, 0x0081, 0x7F7F, 0xFF7F,                   # extreme normals
             0x3F80, 0xBF80, 0x3FFF,
             # products around 2**-126: 0x2000**2 = 2**-126, 0x1F80 * 0x2000 = 2**-127,
             # 0x1FFF**2 = (2 - 2**-7)**2 * 2**-128 (the largest product below 2**-126)
             0x2000, 0xA000, 0x1F80, 0x1FFF, 0x9FFF, 0x2001,
             # and 2**64 * 2**64 = 2**128 (Inf), 0x5F7F * 0x5F80 just below
             0x5F80, 0x5F7F, 0x6000, 0x1CA0, 0x1880],
    "fp16": [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE01,
             0x0001, 0x8001, 0x03FF, 0x83FF, 0x0200,
             0x0400, 0x8400, 0x0401, 0x7BFF, 0xFBFF,
             0x3C00, 0xBC00, 0x3555, 0x3BFF, 0x1234, 0xF800],
}


def run_mul(pairs, fmt):
    code = FPMul16.FMT_FP16 if fmt == "fp16" else FPMul16.FMT_BF16
    got = run_pipeline(FPMul16(subnormals=False), pairs, "o_prod", fixed={"i_fmt": code})
    a = np.array([p[0] for p in pairs], dtype=np.uint32)
    b = np.array([p[1] for p in pairs], dtype=np.uint32)
    compare(got, a, b, mul16_to_fp32_bits(a, b, fmt, subnormals=False), fmt)
    return got


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_mul_directed_all_pairs(fmt):
    sp = MUL_DIRECTED[fmt]
    run_mul([(a, b) for a in sp for b in sp], fmt)


@pytest.mark.parametrize("fmt,a,b,expected", [
    ("bf16", 0x0001, 0x3F80, 0x0000_0000),    # subnormal x 1 = +0
    ("bf16", 0x8001, 0x3F80, 0x8000_0000),    # -subnormal x 1 = -0
    ("bf16", 0x807F, 0xBF80, 0x0000_0000),    # (-0) x (-1) = +0
    ("bf16", 0x0001, 0x7F80, CANONICAL_NAN),  # flushed subnormal x Inf = 0 x Inf
    ("bf16", 0x2000, 0x2000, 0x0080_0000),    # exactly 2**-126: kept
    ("bf16", 0x2000, 0xA000, 0x8080_0000),
    ("bf16", 0x1F80, 0x2000, 0x0000_0000),    # 2**-127 (IEEE: subnormal 0x00400000)
    ("bf16", 0x1FFF, 0x9FFF, 0x8000_0000),    # largest product below 2**-126, negative
    ("bf16", 0x0080, 0x3F80, 0x0080_0000),    # smallest normal x 1
    ("bf16", 0x7F7F, 0x3F80, 0x7F7F_0000),    # largest normal x 1
    ("bf16", 0x5F80, 0x5F80, 0x7F80_0000),    # 2**128 -> Inf
    ("bf16", 0x5F7F, 0xDF80, 0xFF7F_0000),    # (2 - 2**-7) * 2**127, exact
    ("fp16", 0x0001, 0x7BFF, 0x0000_0000),    # FP16 subnormal flushed too
    ("fp16", 0x83FF, 0x3C00, 0x8000_0000),
    ("fp16", 0x0400, 0x0400, 0x3180_0000),    # 2**-14 * 2**-14 = 2**-28
    ("fp16", 0x7BFF, 0x7BFF, 0x4F7F_C004),    # 65504**2, exact in FP32
    ("fp16", 0x03FF, 0x7C00, CANONICAL_NAN),
])
def test_mul_directed_values(fmt, a, b, expected):
    assert run_mul([(a, b), (b, a)], fmt) == [expected, expected]


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_mul_random(fmt):
    rng = np.random.default_rng(17 if fmt == "bf16" else 18)
    n = 1500
    pairs = list(zip(rng.integers(0, 1 << 16, n).tolist(), rng.integers(0, 1 << 16, n).tolist()))
    if fmt == "bf16":
        # products within 2**-160 .. 2**-120: the flush boundary and the IEEE subnormals
        ea = rng.integers(1, 134, n)
        eb = np.clip(rng.integers(94, 135, n) - ea, 0, 254)
        a = (rng.integers(0, 2, n) << 15) | (ea << 7) | rng.integers(0, 128, n)
        b = (rng.integers(0, 2, n) << 15) | (eb << 7) | rng.integers(0, 128, n)
    else:
        # one operand subnormal or at the bottom of the normal range
        a = (rng.integers(0, 2, n) << 15) | (rng.integers(0, 2, n) << 10) \
            | rng.integers(0, 1 << 10, n)
        b = rng.integers(0, 1 << 16, n)
    pairs += list(zip(a.tolist(), b.tolist()))
    run_mul(pairs, fmt)
