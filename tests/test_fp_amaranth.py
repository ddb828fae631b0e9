"""FP32Adder in Amaranth's simulator against the golden model (directed + random)."""

import numpy as np

from amaranth_helpers import run_pipeline, simulate
from hdl.fp import FP32Adder
from sim.model.fp import fp32_add_bits

DIRECTED = [
    0x0000_0000, 0x8000_0000, 0x3F80_0000, 0xBF80_0000, 0x7F80_0000, 0xFF80_0000,
    0x7FC0_0000, 0xFF80_0001, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x0080_0000, 0x8080_0000,
    0x007F_FFFF, 0x807F_FFFF, 0x0000_0001, 0x8000_0001, 0x3380_0000, 0x3F80_0001,
    0x3FFF_FFFF, 0x3400_0000, 0x4B80_0000, 0xCB7F_FFFF,
]


def run_adder(pairs):
    return run_pipeline(FP32Adder(), pairs, "o_sum")


def check(pairs):
    got = run_adder(pairs)
    a = np.array([p[0] for p in pairs], dtype=np.uint32)
    b = np.array([p[1] for p in pairs], dtype=np.uint32)
    exp = fp32_add_bits(a, b)
    assert len(got) == len(pairs)
    for i, (g, e) in enumerate(zip(got, exp)):
        assert g == int(e), f"{a[i]:#010x} + {b[i]:#010x}: got {g:#010x}, expected {int(e):#010x}"


def test_directed_all_pairs():
    check([(a, b) for a in DIRECTED for b in DIRECTED])


def test_random_with_near_exponents():
    rng = np.random.default_rng(77)
    a = rng.integers(0, 2**32, 600, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2**32, 600, dtype=np.uint64).astype(np.uint32)
    near = ((a & 0xFF80_0000) + (rng.integers(-3, 4, 600) << 23).astype(np.uint32)) \
        | (b & 0x807F_FFFF)
    b = np.where(np.arange(600) % 2 == 0, b, near).astype(np.uint32)
    check(list(zip(a.tolist(), b.tolist())))


# ---- FPMul16 ---------------------------------------------------------------------------

import pytest  # noqa: E402

from hdl.fp import FPMul16  # noqa: E402
from sim.model.fp import mul16_to_fp32_bits  # noqa: E402

SPECIAL16 = {
    # ... 0x1CA0 * 0x1880 = 2.5 * 2**-149 and 0x1CE0 * 0x1800 = 3.5 * 2**-149: subnormal ties
    "bf16": [0x0000, 0x8000, 0x3F80, 0xBF80, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x7F7F,
             0x0080, 0x0001, 0x807F, 0x1080, 0xABB8, 0x2000, 0x1F80, 0x6000, 0x5F80,
             0x1CA0, 0x1880, 0x1CE0, 0x1800],
    "fp16": [0x0000, 0x8000, 0x3C00, 0xBC00, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x7BFF,
             0x0400, 0x0001, 0x83FF, 0x3555, 0x0200, 0xF800, 0x1234],
}


def subnormal_band_pairs(rng, n):
    """BF16 pairs whose product lies in [2**-160, 2**-120]: FP32 subnormals, rounding."""
    ea = rng.integers(1, 134, n)
    eb = np.clip(rng.integers(94, 135, n) - ea, 1, 254)
    a = (rng.integers(0, 2, n) << 15) | (ea << 7) | rng.integers(0, 128, n)
    b = (rng.integers(0, 2, n) << 15) | (eb << 7) | rng.integers(0, 128, n)
    return list(zip(a.tolist(), b.tolist()))


def run_mul(pairs, fmt):
    fmt_code = FPMul16.FMT_FP16 if fmt == "fp16" else FPMul16.FMT_BF16
    return run_pipeline(FPMul16(), pairs, "o_prod", fixed={"i_fmt": fmt_code})


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_mul_directed_and_random(fmt):
    rng = np.random.default_rng(3 if fmt == "bf16" else 4)
    sp = SPECIAL16[fmt]
    pairs = [(a, b) for a in sp for b in sp]
    pairs += list(zip(rng.integers(0, 1 << 16, 500).tolist(), rng.integers(0, 1 << 16, 500).tolist()))
    if fmt == "bf16":
        pairs += subnormal_band_pairs(rng, 600)
    got = run_mul(pairs, fmt)
    a = np.array([p[0] for p in pairs], dtype=np.uint32)
    b = np.array([p[1] for p in pairs], dtype=np.uint32)
    exp = mul16_to_fp32_bits(a, b, fmt)
    assert len(got) == len(pairs)
    for i, (g, e) in enumerate(zip(got, exp)):
        assert g == int(e), f"{fmt} {a[i]:#06x} * {b[i]:#06x}: got {g:#010x}, expected {int(e):#010x}"


# ---- FPMul16(int8=True): the significand multiplier shared with INT8 ------------------

@pytest.mark.parametrize("subnormals", [True, False], ids=["ieee", "ftz"])
def test_mul_int8_shared_multiplier(subnormals):
    """Every INT8 pair (with junk in the operands' high bytes), interleaved with float
    operations of both formats: ``o_int`` is the exact signed product ``INT_LATENCY``
    cycles later and every float product still matches the golden model."""
    seed = 91 + subnormals
    rng = np.random.default_rng(seed)
    ia, ib = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    ia, ib = ia.ravel(), ib.ravel()
    n_int = ia.size
    high = rng.integers(0, 256, (2, n_int))
    # a float operation after every 16th integer one, alternating formats: rows of
    # 16 INT8 operations and one float operation, flattened
    n_fl = n_int // 16
    fl = rng.integers(0, 1 << 16, (2, n_fl))
    kinds = np.array(["int"] * 16 + ["float"])[None, :].repeat(n_fl, 0)
    kinds[:, 16] = np.where(np.arange(n_fl) % 2, "bf16", "fp16")
    op_a = np.concatenate([(ia | (high[0] << 8)).reshape(n_fl, 16), fl[0][:, None]], 1)
    op_b = np.concatenate([(ib | (high[1] << 8)).reshape(n_fl, 16), fl[1][:, None]], 1)
    ops = list(zip(kinds.ravel().tolist(), op_a.ravel().tolist(), op_b.ravel().tolist()))
    dut = FPMul16(subnormals=subnormals, int8=True)
    ints, floats = [], []

    async def tb(ctx):
        for t in range(len(ops) + dut.LATENCY + 1):
            if t < len(ops):
                kind, a, b = ops[t]
                ctx.set(dut.i_a, a)
                ctx.set(dut.i_b, b)
                ctx.set(dut.i_int, kind == "int")
                ctx.set(dut.i_fmt, FPMul16.FMT_FP16 if kind == "fp16" else FPMul16.FMT_BF16)
            ctx.set(dut.i_valid, t < len(ops))
            _, _, pi, pf = await ctx.tick().sample(dut.o_int, dut.o_prod)
            # sampled at edge t (before it): the results of the operation set at t - latency
            ti, tf = t - dut.INT_LATENCY, t - dut.LATENCY
            if 0 <= ti < len(ops) and ops[ti][0] == "int":
                ints.append(pi)
            if 0 <= tf < len(ops) and ops[tf][0] != "int":
                floats.append(pf)

    simulate(dut, tb)
    expected = (((ia + 128) % 256 - 128) * ((ib + 128) % 256 - 128)).tolist()
    assert len(ints) == n_int
    bad = [i for i in range(n_int) if ints[i] != expected[i]]
    assert not bad, (f"seed {seed}: {len(bad)} wrong INT8 products, first "
                     f"{int(ia[bad[0]]):#04x} * {int(ib[bad[0]]):#04x} = {ints[bad[0]]}, "
                     f"expected {expected[bad[0]]}")
    fa, fb, fk = op_a[:, 16].astype(np.uint32), op_b[:, 16].astype(np.uint32), kinds[:, 16]
    assert len(floats) == n_fl
    exp = np.where(fk == "fp16", mul16_to_fp32_bits(fa, fb, "fp16", subnormals=subnormals),
                   mul16_to_fp32_bits(fa, fb, "bf16", subnormals=subnormals))
    bad = np.nonzero(np.array(floats, dtype=np.int64) != exp.astype(np.int64))[0]
    assert not bad.size, (f"seed {seed}: {bad.size} wrong float products, first "
                          f"{fk[bad[0]]} {fa[bad[0]]:#06x} * {fb[bad[0]]:#06x}: got "
                          f"{floats[bad[0]]:#010x}, expected {int(exp[bad[0]]):#010x}")
