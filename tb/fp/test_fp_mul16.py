"""FPMul16 on Verilator: directed special values and a million random BF16/FP16 pairs
(the format switching between operations) streamed through one simulation, compared
bit for bit with the golden model (sim.model.fp). The IEEE build (top ``fp_mul16``) and
the flush-to-zero build (top ``fp_mul16_ftz``) each have their test."""

import cocotb
import numpy as np

from hdl.fp import FPMul16
from sim.model.fp import mul16_to_fp32_bits
from tb.common import sample_pipeline
from tb.fp.common import assert_exact, open_bench, stream_all

LATENCY = FPMul16.LATENCY
SPECIALS = {
    0: [0x0000, 0x8000, 0x3F80, 0xBF80, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0x7F7F, 0x0080,
        0x0001, 0x807F, 0x1080, 0xABB8, 0x2000, 0x1F80, 0x6000, 0x5F80, 0x1CA0, 0x1880,
        0x1CE0, 0x1800],
    1: [0x0000, 0x8000, 0x3C00, 0xBC00, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0x7BFF, 0x0400,
        0x0001, 0x83FF, 0x3555, 0x0200, 0xF800, 0x1234],
}


def operands(rng, n):
    """Directed pairs of each format, then random ones: a random format per operation,
    random bit patterns, and for BF16 a quarter in the band whose products are FP32
    subnormals (where rounding happens)."""
    a, b, f = [], [], []
    for fmt, sp in SPECIALS.items():
        for x in sp:
            for y in sp:
                a.append(x), b.append(y), f.append(fmt)
    ra = rng.integers(0, 1 << 16, n)
    rb = rng.integers(0, 1 << 16, n)
    rf = rng.integers(0, 2, n)
    band = (np.arange(n) % 4 == 0) & (rf == 0)
    ea = rng.integers(1, 134, n)
    eb = np.clip(rng.integers(94, 135, n) - ea, 1, 254)
    ra = np.where(band, (ra & 0x807F) | (ea << 7), ra)
    rb = np.where(band, (rb & 0x807F) | (eb << 7), rb)
    return (np.concatenate([a, ra]).astype(np.uint32), np.concatenate([b, rb]).astype(np.uint32),
            np.concatenate([f, rf]).astype(np.uint32))


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_fp_mul16(dut):
    await check_mul(dut, subnormals=True)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_fp_mul16_ftz(dut):
    """The flush-to-zero build (top ``fp_mul16_ftz``) against its golden model."""
    await check_mul(dut, subnormals=False)


async def check_mul(dut, *, subnormals):
    tb, seed, rng, n = open_bench(dut, "NCORE_FP_VECTORS", 1_000_000, idle_inputs=["i_valid"])
    await tb.reset()
    a, b, f = operands(rng, n)
    got, wall = await stream_all(dut, {"i_a": a, "i_b": b, "i_fmt": f}, "o_prod",
                                 latency=LATENCY, seed=seed)
    exp = np.where(f == 1, mul16_to_fp32_bits(a, b, "fp16", subnormals=subnormals),
                   mul16_to_fp32_bits(a, b, "bf16", subnormals=subnormals)).astype(np.uint64)
    assert_exact(got, exp, what="{n} mismatches", digits=8, seed=seed,
                 first=lambda i: f"{'fp16' if f[i] else 'bf16'} {a[i]:#06x} * {b[i]:#06x}")
    dut._log.info("%d products bit-exact, %.0f cycles/s", a.size, a.size / wall)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_fp_mul16_int8(dut):
    """Tops ``fp_mul16_int8`` and ``fp_mul16_int8_ecp5``; see :func:`check_mul_int8`."""
    await check_mul_int8(dut, subnormals=True)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_fp_mul16_ftz_int8(dut):
    await check_mul_int8(dut, subnormals=False)


async def check_mul_int8(dut, *, subnormals):
    """``FPMul16(int8=True)``, the multiplier of a float PE: top ``fp_mul16_int8``
    (portable), ``fp_mul16_int8_ecp5`` and ``fp_mul16_ftz_int8_ecp5`` (built for the
    ECP5 target: the significand multiplier is a MULT18X18D primitive, run on the model
    in tb/models/). Every INT8 pair (junk in the high bytes) mixed at random with the
    directed and random BF16/FP16 operations above, one operation per cycle: INT8
    products checked ``INT_LATENCY`` cycles later against exact products, float
    products ``LATENCY`` cycles later against the golden model."""
    tb, seed, rng, n_float = open_bench(dut, "NCORE_FP_VECTORS", 100_000,
                                        idle_inputs=["i_valid"])
    ia, ib = np.meshgrid(np.arange(256), np.arange(256))
    junk = rng.integers(0, 256, (2, ia.size)) << 8
    fa, fb, ff = operands(rng, n_float)
    n = ia.size + fa.size
    is_int = np.zeros(n, dtype=bool)
    is_int[rng.choice(n, ia.size, replace=False)] = True
    a = np.zeros(n, dtype=np.int64)
    b = np.zeros(n, dtype=np.int64)
    f = np.zeros(n, dtype=np.int64)
    a[is_int], b[is_int] = ia.ravel() | junk[0], ib.ravel() | junk[1]
    a[~is_int], b[~is_int], f[~is_int] = fa, fb, ff
    f[is_int] = rng.integers(0, 2, ia.size)          # ignored for INT8
    await tb.reset()
    dut.i_valid.value = 1
    got = await sample_pipeline(
        dut, {"i_a": a.tolist(), "i_b": b.tolist(), "i_fmt": f.tolist(),
              "i_int": is_int.astype(int).tolist()},
        ["o_int", "o_prod", "o_valid"], extra=LATENCY + 1)
    dut.i_valid.value = 0
    il = FPMul16.INT_LATENCY
    s8 = lambda v: ((v & 0xFF) ^ 0x80) - 0x80          # noqa: E731
    exp_int = (s8(a) * s8(b)) & 0xFFFF
    res_int = got["o_int"][il:il + n]
    exp_fp = np.where(f == 1, mul16_to_fp32_bits(a, b, "fp16", subnormals=subnormals),
                      mul16_to_fp32_bits(a, b, "bf16", subnormals=subnormals))
    res_fp = got["o_prod"][LATENCY:LATENCY + n]
    assert got["o_valid"][LATENCY:LATENCY + n].all(), f"o_valid dropped (seed {seed})"
    for kind, mask, res, exp in (("int8", is_int, res_int, exp_int),
                                 ("float", ~is_int, res_fp, exp_fp.astype(np.int64))):
        assert_exact(res, exp, mask=mask, what=f"{{n}} wrong {kind} products", seed=seed,
                     first=lambda i: f"(op {i}, fmt {f[i]}) {a[i]:#06x} * {b[i]:#06x}")
    dut._log.info("%d INT8 and %d float products exact (subnormals=%s)",
                  int(is_int.sum()), int((~is_int).sum()), subnormals)
