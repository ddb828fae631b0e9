"""The vector engine's golden model (:mod:`sim.model.casts`) against independent references.

* Narrowing casts against ``ml_dtypes.bfloat16`` and NumPy's ``astype(np.float16)``
  (both IEEE round to nearest even with subnormals), NaNs canonicalised on the
  reference side, plus hand-checked constants.
* ReLU against float comparisons.
* ``requantize`` against exact rational arithmetic (``fractions.Fraction``) with an
  explicit round-half-away-from-zero.
"""

import math
from fractions import Fraction
from functools import lru_cache

import ml_dtypes
import numpy as np
import pytest

from sim.model.casts import (f32_to_bf16_bits, f32_to_fp16_bits, relu_f32_bits,
                        requantize)

# ---- references for the casts --------------------------------------------------------


def f32(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def bits_of(values):
    return np.asarray(values, dtype=np.float32).view(np.uint32)


def ref_bf16(bits):
    """ml_dtypes' float32 -> bfloat16 cast; every NaN replaced by 0x7FC0."""
    with np.errstate(all="ignore"):
        h = f32(bits).astype(ml_dtypes.bfloat16).view(np.uint16).astype(np.uint32)
    nan = ((h >> 7) & 0xFF == 0xFF) & (h & 0x7F != 0)
    return np.where(nan, 0x7FC0, h).astype(np.uint32)


def ref_fp16(bits):
    """NumPy's float32 -> float16 cast; every NaN replaced by 0x7E00."""
    with np.errstate(all="ignore"):
        h = f32(bits).astype(np.float16).view(np.uint16).astype(np.uint32)
    nan = ((h >> 10) & 0x1F == 0x1F) & (h & 0x3FF != 0)
    return np.where(nan, 0x7E00, h).astype(np.uint32)


def assert_same(got, exp, bits, what):
    bits = np.asarray(bits, dtype=np.uint32)
    bad = np.nonzero(np.asarray(got) != np.asarray(exp))[0]
    assert bad.size == 0, (
        f"{what}: {bad.size} mismatches, first {int(bits[bad[0]]):#010x} -> "
        f"{int(got[bad[0]]):#06x}, expected {int(exp[bad[0]]):#06x}")


def with_negatives(bits):
    bits = np.asarray(bits, dtype=np.uint32)
    return np.concatenate([bits, bits | np.uint32(0x8000_0000)])


# ---- BF16 ---------------------------------------------------------------------------

# 0x8000 is the exact tie; 0x7FFF / 0x8001 one FP32 ulp either side of it
BF16_LOW_HALVES = [0x0000, 0x0001, 0x4000, 0x7FFF, 0x8000, 0x8001, 0xC000, 0xFFFF]


def test_bf16_every_upper_half():
    """All 2**16 upper halves x the interesting lower halves (+ 4 random ones each)."""
    rng = np.random.default_rng(16)
    upper = np.arange(1 << 16, dtype=np.uint32) << 16
    lows = [np.full(upper.size, lo, dtype=np.uint32) for lo in BF16_LOW_HALVES]
    lows += [rng.integers(0, 1 << 16, upper.size).astype(np.uint32) for _ in range(4)]
    bits = np.concatenate([upper | lo for lo in lows])
    assert_same(f32_to_bf16_bits(bits), ref_bf16(bits), bits, "bf16")


def test_bf16_million_random():
    rng = np.random.default_rng(1601)
    bits = rng.integers(0, 1 << 32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    assert_same(f32_to_bf16_bits(bits), ref_bf16(bits), bits, "bf16 random")


@pytest.mark.parametrize("bits,expected", [
    (0x0000_0000, 0x0000), (0x8000_0000, 0x8000),            # signed zeros
    (0x3F80_0000, 0x3F80), (0xBF80_0000, 0xBF80),            # +-1
    (0x3F80_8000, 0x3F80), (0x3F81_8000, 0x3F82),            # ties to even
    (0x3F80_8001, 0x3F81), (0x3F81_7FFF, 0x3F81),            # just above / below a tie
    (0x3FFF_8000, 0x4000),                                   # round up into next binade
    (0x7F7F_7FFF, 0x7F7F), (0x7F7F_8000, 0x7F80),            # max finite / tie -> Inf
    (0xFF7F_8000, 0xFF80), (0x7F7F_FFFF, 0x7F80),
    (0x7F80_0000, 0x7F80), (0xFF80_0000, 0xFF80),            # +-Inf
    (0x7F80_0001, 0x7FC0), (0xFF80_0001, 0x7FC0),            # NaN payload in low half
    (0x7FC0_0000, 0x7FC0), (0xFFFF_FFFF, 0x7FC0), (0x7FA0_0000, 0x7FC0),
    (0x0000_8000, 0x0000), (0x0001_8000, 0x0002),            # subnormal ties, kept
    (0x0000_8001, 0x0001), (0x8000_8001, 0x8001),
    (0x007F_8000, 0x0080), (0x807F_FFFF, 0x8080),            # largest subnormal -> min normal
    (0x0000_0001, 0x0000), (0x8000_0001, 0x8000),            # tiny FP32 subnormals
])
def test_bf16_hand_checked(bits, expected):
    assert int(f32_to_bf16_bits(bits)) == expected


# ---- FP16 ---------------------------------------------------------------------------

FP16_BOUNDARIES = [
    65504.0,                  # max normal (0x7BFF)
    65520.0,                  # midpoint max normal / 2**16: tie -> Inf
    65536.0,                  # 2**16, first value whose FP32 exponent is out of range
    2.0 ** -14,               # smallest normal
    2.0 ** -14 - 2.0 ** -25,  # tie between largest subnormal and smallest normal
    2.0 ** -24,               # smallest subnormal
    2.0 ** -25,               # tie between 0 and the smallest subnormal
    1.5 * 2.0 ** -24,         # tie between subnormals 1 and 2
    2.0 - 2.0 ** -11,         # tie rounding up into the next binade
    2048.0 - 0.5,             # same, ulp 1
    1.0, 2.0 ** 15,
]


def dense_around(values, width):
    """FP32 patterns within ``width`` ulps of each value, both signs."""
    centres = bits_of(values).astype(np.int64)
    offs = np.arange(-width, width + 1)
    return with_negatives((centres[:, None] + offs[None, :]).ravel().astype(np.uint32))


def test_fp16_dense_boundaries():
    bits = dense_around(FP16_BOUNDARIES, 4096)
    assert_same(f32_to_fp16_bits(bits), ref_fp16(bits), bits, "fp16 boundaries")


def test_fp16_every_value_and_midpoint():
    """Each finite FP16 value, each midpoint to its successor (ties), +-2 FP32 ulps."""
    h = np.arange(0x7C00, dtype=np.uint16)
    lo = h.view(np.float16).astype(np.float64)
    hi = np.append(lo[1:], 65536.0)
    mids = (lo + hi) / 2                              # exact in float64 and float32
    centres = bits_of(np.concatenate([lo, mids]).astype(np.float32)).astype(np.int64)
    assert np.array_equal(f32(centres.astype(np.uint32)).astype(np.float64),
                          np.concatenate([lo, mids]))
    bits = with_negatives((centres[:, None] + np.arange(-2, 3)[None, :])
                          .ravel().clip(0, 0x7F80_0000).astype(np.uint32))
    assert_same(f32_to_fp16_bits(bits), ref_fp16(bits), bits, "fp16 values/midpoints")


def test_fp16_every_exponent_and_specials():
    rng = np.random.default_rng(1602)
    e = np.repeat(np.arange(256, dtype=np.uint32), 400)
    frac = rng.integers(0, 1 << 23, e.size).astype(np.uint32)
    frac[::400] = 0
    frac[1::400] = 1
    frac[2::400] = 0x7FFFFF
    frac[3::400] = 0x400000
    bits = with_negatives((e << 23) | frac)
    specials = with_negatives([0, 0x7F80_0000, 0x7F80_0001, 0x7FC0_0000, 0x7FFF_FFFF,
                               0x7FA0_1234, 1, 0x7FFFFF, 0x400000])
    bits = np.concatenate([bits, specials])
    assert_same(f32_to_fp16_bits(bits), ref_fp16(bits), bits, "fp16 exponents")


def test_fp16_million_random():
    rng = np.random.default_rng(1603)
    bits = rng.integers(0, 1 << 32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    # half of them in and near FP16's range (FP32 exponents 95..150)
    near = (rng.integers(95, 151, bits.size).astype(np.uint32) << 23) | (bits & 0x807F_FFFF)
    bits = np.where(np.arange(bits.size) % 2 == 0, bits, near).astype(np.uint32)
    assert_same(f32_to_fp16_bits(bits), ref_fp16(bits), bits, "fp16 random")


def test_fp32_subnormals_to_fp16_signed_zero():
    rng = np.random.default_rng(1604)
    bits = with_negatives(rng.integers(1, 1 << 23, 10_000).astype(np.uint32))
    got = f32_to_fp16_bits(bits)
    assert np.array_equal(got, (bits >> 16) & 0x8000)
    assert_same(got, ref_fp16(bits), bits, "fp16 from FP32 subnormals")


@pytest.mark.parametrize("bits,expected", [
    (0x0000_0000, 0x0000), (0x8000_0000, 0x8000),
    (0x3F80_0000, 0x3C00), (0xC000_0000, 0xC000),            # 1.0, -2.0
    (0x477F_E000, 0x7BFF),                                   # 65504
    (0x477F_EFFF, 0x7BFF),                                   # just below 65520
    (0x477F_F000, 0x7C00), (0xC77F_F000, 0xFC00),            # 65520: tie -> +-Inf
    (0x4780_0000, 0x7C00), (0x501502F9, 0x7C00),             # 65536, 1e10
    (0x7F80_0000, 0x7C00), (0xFF80_0000, 0xFC00),
    (0x7F80_0001, 0x7E00), (0xFFC0_0000, 0x7E00), (0x7FFF_FFFF, 0x7E00),
    (0x3880_0000, 0x0400),                                   # 2**-14
    (0x387F_C000, 0x03FF), (0x387F_E000, 0x0400),            # largest subnormal; tie up
    (0x3380_0000, 0x0001),                                   # 2**-24
    (0x3300_0000, 0x0000), (0xB300_0000, 0x8000),            # 2**-25: tie -> +-0
    (0x3300_0001, 0x0001),                                   # just above it
    (0x33C0_0000, 0x0002), (0x3420_0000, 0x0002),            # 1.5 and 2.5 * 2**-24
    (0x44FF_F000, 0x6800),                                   # 2047.5 -> 2048 (even)
    (0x3FFF_F000, 0x4000),                                   # 2 - 2**-11 -> 2.0
    (0x3F80_1000, 0x3C00), (0x3F80_3000, 0x3C02),            # ties in [1, 2)
    (0x0000_0001, 0x0000), (0x807F_FFFF, 0x8000),            # FP32 subnormals
])
def test_fp16_hand_checked(bits, expected):
    assert int(f32_to_fp16_bits(bits)) == expected


# ---- ReLU ----------------------------------------------------------------------------


def test_relu_against_float_comparison():
    rng = np.random.default_rng(1605)
    bits = rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32)
    bits = np.concatenate([bits, with_negatives([0, 1, 0x7F80_0000, 0x7F80_0001,
                                                 0x7FC0_0000, 0x3F80_0000])])
    x = f32(bits)
    expected = np.where(np.isnan(x) | (x > 0), bits, 0).astype(np.uint32)
    assert_same(relu_f32_bits(bits), expected, bits, "relu")


@pytest.mark.parametrize("bits,expected", [
    (0x8000_0000, 0), (0xFF80_0000, 0), (0xBF80_0000, 0), (0x8000_0001, 0),
    (0x0000_0000, 0), (0x7F80_0000, 0x7F80_0000), (0x0000_0001, 1),
    (0xFFC0_0001, 0xFFC0_0001), (0x7F80_0001, 0x7F80_0001),
])
def test_relu_hand_checked(bits, expected):
    assert int(relu_f32_bits(bits)) == expected


# ---- requantize --------------------------------------------------------------------

ZERO_POINTS = [-128, -5, 0, 77, 127]
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def round_half_away(x):
    """Nearest integer to a Fraction, ties away from zero (written independently)."""
    a = abs(x)
    n = math.floor(a)
    if a - n >= Fraction(1, 2):
        n += 1
    return n if x >= 0 else -n


def ref_requant_r(acc, scale, shift):
    """``round(acc * scale / 2**shift)`` as an exact rational, ties away from zero."""
    return round_half_away(Fraction(acc * scale, 1 << shift))


def ref_finish(r, zp, relu):
    y = min(max(r + zp, -128), 127)
    return max(y, zp) if relu else y


# (scale, shift, wide, ties): `wide` pairs reach every INT8 output at every zero point;
# `ties` pairs have exact ties p / 2**shift = k + 1/2 for many k of both signs.
PAIRS = [
    (1, 0, True, False), (-1, 0, True, False), (1, 1, True, True), (-1, 5, True, True),
    (3, 4, True, True), (5, 12, True, True), (-7, 9, True, True),
    (16384, 20, True, True), (-32768, 26, True, True), (32767, 31, True, False),
    (-12345, 33, True, False), (-32768, 38, True, True),
    (1, 47, False, False), (32767, 47, False, False), (-32768, 47, False, False),
    (-32768, 46, False, False),
]
EXTREME_ACCS = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30, INT32_MAX - 1,
                INT32_MAX]


def sweep_accs(scale, shift, k_range=300, seed=0):
    """Accumulators putting ``acc * scale / 2**shift`` at and next to every ``k`` and
    ``k + 1/2`` for ``|k| <= k_range``, plus extremes and a few random values."""
    accs = set(EXTREME_ACCS)
    for twice_t in range(-2 * k_range - 1, 2 * k_range + 2):
        a = Fraction(twice_t * (1 << shift), 2 * scale)
        for c in (math.floor(a) - 1, math.floor(a), math.ceil(a), math.ceil(a) + 1):
            if INT32_MIN <= c <= INT32_MAX:
                accs.add(c)
    rng = np.random.default_rng(seed)
    accs.update(rng.integers(INT32_MIN, INT32_MAX, 200, endpoint=True).tolist())
    return sorted(accs)


@lru_cache(maxsize=None)
def pair_vectors(scale, shift):
    accs = sweep_accs(scale, shift, seed=(scale + 32768) * 64 + shift)
    return accs, [ref_requant_r(a, scale, shift) for a in accs]


@pytest.mark.parametrize("scale,shift,wide,ties", PAIRS)
def test_requantize_sweep(scale, shift, wide, ties):
    accs, rs = pair_vectors(scale, shift)
    acc = np.array(accs, dtype=np.int64)
    if ties:       # the sweep really contains exact ties of both signs
        tie = [a * scale for a in accs if (a * scale) % (1 << shift) == 1 << (shift - 1)]
        assert sum(p > 0 for p in tie) >= 40 and sum(p < 0 for p in tie) >= 40
    for zp in ZERO_POINTS:
        for relu in (False, True):
            expected = [ref_finish(r, zp, relu) for r in rs]
            got = requantize(acc, scale, shift, zp, relu)
            assert got.dtype == np.int64 and got.shape == acc.shape
            bad = np.nonzero(got != np.array(expected))[0]
            assert bad.size == 0, (
                f"acc={accs[bad[0]]} scale={scale} shift={shift} zp={zp} relu={relu}: "
                f"got {int(got[bad[0]])}, expected {expected[bad[0]]}")
            if wide:   # every output value occurs, saturation both ways included
                lo = zp if relu else -128
                assert set(expected) == set(range(lo, 128))
                assert sum(r + zp > 127 for r in rs) and sum(r + zp < -128 for r in rs)


def test_requantize_extremes_every_shift():
    scales = [-32768, -32767, -1, 0, 1, 32767]
    acc, scale, shift, zp, relu, expected = [], [], [], [], [], []
    for a in EXTREME_ACCS:
        for s in scales:
            for sh in range(48):
                r = ref_requant_r(a, s, sh)
                for z in ZERO_POINTS:
                    for rl in (0, 1):
                        acc.append(a); scale.append(s); shift.append(sh)
                        zp.append(z); relu.append(rl)
                        expected.append(ref_finish(r, z, rl))
    got = requantize(np.array(acc), np.array(scale), np.array(shift), np.array(zp),
                     np.array(relu, dtype=bool))
    bad = np.nonzero(got != np.array(expected))[0]
    assert bad.size == 0, f"first mismatch at {[acc[bad[0]], scale[bad[0]], shift[bad[0]]]}"


def test_requantize_random_per_element_parameters():
    rng = np.random.default_rng(1606)
    n = 30_000
    acc = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    acc[::3] >>= rng.integers(0, 31, acc[::3].size)        # many small magnitudes too
    scale = rng.integers(-32768, 32767, n, endpoint=True)
    shift = rng.integers(0, 48, n)
    zp = rng.integers(-128, 127, n, endpoint=True)
    relu = rng.integers(0, 2, n).astype(bool)
    got = requantize(acc, scale, shift, zp, relu)
    for i in range(n):
        a, s, sh, z, rl = int(acc[i]), int(scale[i]), int(shift[i]), int(zp[i]), bool(relu[i])
        assert int(got[i]) == ref_finish(ref_requant_r(a, s, sh), z, rl), (a, s, sh, z, rl)


@pytest.mark.parametrize("acc,scale,shift,zp,relu,expected", [
    (5, 1, 1, 0, False, 3), (-5, 1, 1, 0, False, -3),        # 2.5 -> 3, -2.5 -> -3
    (3, 1, 1, 0, False, 2), (-3, 1, 1, 0, False, -2),        # 1.5 -> 2, -1.5 -> -2
    (-1, 1, 1, 0, False, -1), (1, 1, 1, 0, False, 1),        # +-0.5 -> +-1
    (-1, 1, 2, 0, False, 0), (-3, 1, 2, 0, False, -1),       # -0.25 -> 0, -0.75 -> -1
    (INT32_MIN, -32768, 47, 0, False, 1),                    # 2**46 / 2**47 = 0.5 -> 1
    (INT32_MIN, -32768, 0, 0, False, 127), (INT32_MIN, 32767, 0, 0, False, -128),
    (200, 1, 0, -100, False, 100), (-200, 1, 0, 100, False, -100),
    (-50, 1, 0, 10, True, 10), (50, 1, 0, 10, True, 60), (-1000, 1, 0, 127, True, 127),
])
def test_requantize_hand_checked(acc, scale, shift, zp, relu, expected):
    assert int(requantize(acc, scale, shift, zp, relu)) == expected


@pytest.mark.parametrize("kwargs", [
    dict(acc=1 << 31), dict(acc=INT32_MIN - 1), dict(scale=32768), dict(scale=-32769),
    dict(shift=48), dict(shift=-1), dict(zero_point=128), dict(zero_point=-129),
    dict(relu=2),
])
def test_requantize_rejects_out_of_range(kwargs):
    args = dict(acc=0, scale=1, shift=0, zero_point=0, relu=False) | kwargs
    with pytest.raises(ValueError):
        requantize(**args)


# ---- the CNN operations: widening, MAX, two-operand ACTs -------------------------------

def test_widen_every_fp16_and_bf16():
    """Every FP16 pattern widens to the FP32 that NumPy's exact float16 -> float32
    conversion gives (NaNs: the sign and the payload shifted up 13 bits, quietness
    kept); every BF16 pattern is the upper half of its FP32; INT8 is sign extended."""
    from sim.model.casts import widen_bits
    h = np.arange(1 << 16)
    got = widen_bits(h, "FP16")
    f16 = h.astype(np.uint16).view(np.float16)
    nan = np.isnan(f16)
    want = f16.astype(np.float32).view(np.uint32)
    assert np.array_equal(got[~nan], want[~nan])
    assert np.array_equal(got[nan], ((h[nan] >> 15) << 31) | 0x7F80_0000 | ((h[nan] & 0x3FF) << 13))
    assert np.array_equal(widen_bits(h, "BF16"), (h << 16).astype(np.uint32))
    assert np.array_equal(widen_bits(np.arange(256), "INT8"),
                          np.arange(256).astype(np.uint8).view(np.int8))


def test_max_f32_against_numpy():
    """MAX agrees with NumPy's maximum on every pair without a NaN (-0 vs +0: the first
    operand, as the definition says), and picks the first NaN operand otherwise."""
    from sim.model.casts import max_f32_bits
    rng = np.random.default_rng(41)
    specials = np.array([0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 1, 0x8000_0001,
                         0x3F80_0000, 0xBF80_0000, 0x7FC0_0000, 0xFFC0_0001, 0x7F80_0001],
                        dtype=np.uint32)
    a = np.concatenate([np.repeat(specials, specials.size),
                        rng.integers(0, 1 << 32, 100_000, dtype=np.uint64).astype(np.uint32)])
    b = np.concatenate([np.tile(specials, specials.size),
                        rng.integers(0, 1 << 32, 100_000, dtype=np.uint64).astype(np.uint32)])
    got = max_f32_bits(a, b)
    fa, fb = a.view(np.float32), b.view(np.float32)
    ok = ~np.isnan(fa) & ~np.isnan(fb)
    assert np.array_equal(got[ok].view(np.float32), np.maximum(fa[ok], fb[ok]))
    zeros = ok & (fa == 0) & (fb == 0)
    assert zeros.sum() >= 4 and np.array_equal(got[zeros], a[zeros])
    assert np.array_equal(got[np.isnan(fa)], a[np.isnan(fa)])
    only_b = ~np.isnan(fa) & np.isnan(fb)
    assert np.array_equal(got[only_b], b[only_b])


def test_act_two_operand_forms_against_independent_arithmetic():
    """ACT MAX/ADD over SBUF INT8 and BF16 activations (strided, with zero points, ReLU
    and clip), computed by ``sim.model.vector.apply``, equal values computed here with
    Python numbers and ml_dtypes."""
    from hdl.config import named_config
    from sim.model.tensor import TensorModel
    from sim.model.vector import Act, apply
    cfg = named_config("4x4-fp")
    rng = np.random.default_rng(42)
    model = TensorModel(cfg)
    model.sbuf[...] = rng.integers(0, 256, model.sbuf.shape, dtype=np.uint8)
    # INT8 MAX with strides 2 and 1 and zero points, ReLU, clip at 50
    a = Act(parts=4, n=20, dst_type="INT8", src_psum=False, src_fp=False, src_type="INT8",
            op="MAX", src_off=0, src_skip=1, src2_off=100, zp1=3, zp2=-4, zp=2, relu=True,
            clip=True, hi=50, dst_off=1024)
    assert apply(cfg, a, model) == "NONE"
    for p in range(4):
        x1 = model.sbuf[p, 0:40:2].view(np.int8).astype(int) - 3
        x2 = model.sbuf[p, 100:120].view(np.int8).astype(int) + 4
        want = np.minimum(np.maximum(np.clip(np.maximum(x1, x2) + 2, -128, 127), 2), 50)
        assert np.array_equal(model.sbuf[p, 1024:1044].view(np.int8), want)
    # BF16 ADD to FP32 (one rounding), BF16 MAX to BF16 (exact)
    b = Act(parts=4, n=32, dst_type="FP32", src_psum=False, src_fp=True, src_type="BF16",
            op="ADD", src_off=0, src2_off=64, dst_off=2048)
    assert apply(cfg, b, model) == "NONE"
    bf = ml_dtypes.bfloat16
    for p in range(4):
        x1 = model.sbuf[p, 0:64].view(bf).astype(np.float32)
        x2 = model.sbuf[p, 128:192].view(bf).astype(np.float32)
        got = model.sbuf[p, 2048:2048 + 128].view(np.float32)
        ok = np.isfinite(x1) & np.isfinite(x2) & (np.abs(x1 + x2) < 1e38)
        # subnormal sums are IEEE in the default config
        assert np.array_equal(got[ok], (x1 + x2)[ok])
