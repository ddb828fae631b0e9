"""FP32Adder on Verilator: directed special values and a million random pairs streamed
through one simulation, compared bit for bit with the golden model (sim.model.fp). The IEEE
build (top ``fp32_adder``) and the flush-to-zero build (top ``fp32_adder_ftz``) each
have their test."""

import cocotb
import numpy as np

from hdl.fp import FP32Adder
from sim.model.fp import fp32_add_bits
from tb.fp.common import assert_exact, open_bench, stream_all

LATENCY = FP32Adder.LATENCY
SPECIALS = [
    0x0000_0000, 0x8000_0000, 0x3F80_0000, 0xBF80_0000, 0x7F80_0000, 0xFF80_0000,
    0x7FC0_0000, 0xFFC0_0001, 0x7F80_0001, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x0080_0000,
    0x8080_0000, 0x007F_FFFF, 0x807F_FFFF, 0x0000_0001, 0x8000_0001, 0x3380_0000,
    0x3F80_0001, 0x3FFF_FFFF, 0x3400_0000, 0x4B80_0000, 0xCB7F_FFFF, 0x0100_0000,
]


def operand_pairs(rng, n):
    """Directed pairs, then random ones: half fully random bit patterns, half with the
    second exponent within +-3 of the first (real additions, cancellation, rounding)."""
    sp = np.array(SPECIALS, dtype=np.uint32)
    da, db = np.meshgrid(sp, sp)
    a = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    shift = (rng.integers(-3, 4, n).astype(np.int64) << 23)
    near = ((a.astype(np.int64) & 0x7F80_0000) + shift) & 0x7F80_0000
    near = (near | (b.astype(np.int64) & 0x807F_FFFF)).astype(np.uint32)
    b = np.where(np.arange(n) % 2 == 0, b, near).astype(np.uint32)
    return (np.concatenate([da.ravel(), a]).astype(np.uint32),
            np.concatenate([db.ravel(), b]).astype(np.uint32))


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_fp32_adder(dut):
    """The IEEE build (top ``fp32_adder``): subnormal inputs and results kept."""
    await check_adder(dut, subnormals=True)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_fp32_adder_ftz(dut):
    """The flush-to-zero build (top ``fp32_adder_ftz``) against its golden model."""
    await check_adder(dut, subnormals=False)


async def check_adder(dut, *, subnormals):
    tb, seed, rng, n = open_bench(dut, "NCORE_FP_VECTORS", 1_000_000, idle_inputs=["i_valid"])
    await tb.reset()
    a, b = operand_pairs(rng, n)
    got, wall = await stream_all(dut, {"i_a": a, "i_b": b}, "o_sum", latency=LATENCY, seed=seed)
    exp = fp32_add_bits(a, b, subnormals=subnormals).astype(np.uint64)
    assert_exact(got, exp, what="{n} mismatches", digits=8, seed=seed,
                 first=lambda i: f"{a[i]:#010x} + {b[i]:#010x}")
    dut._log.info("%d pairs bit-exact, %.0f cycles/s", a.size, a.size / wall)
