"""The DSP multipliers (hdl.dsp.RegisteredMultiplier) on Verilator: top
``dsp_multipliers`` (portable description) and ``dsp_multipliers_ecp5`` (each a
MULT18X18D primitive with its input and output registers, run on the model in
tb/models/). The shapes the PEs use (signed 8 x 8, signed 12 x 12 with the product
register in the DSP and in the fabric, unsigned 11 x 11) see the same operands: every extreme pair, then random ones; each product is
checked two cycles later against exact integer products computed here."""

import cocotb
import numpy as np

from hdl.tops.multipliers import MultiplierSet
from tb.common import sample_pipeline
from tb.fp.common import assert_exact, open_bench

SHAPES = (("o_s8", 8, True), ("o_s12", 12, True), ("o_s12f", 12, True), ("o_u11", 11, False))


def _as_operand(v, width, is_signed):
    v = v & ((1 << width) - 1)
    return np.where(is_signed & (v >= 1 << (width - 1)), v - (1 << width), v)


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def test_dsp_multipliers(dut):
    tb, seed, rng, n = open_bench(dut, "NCORE_DSP_VECTORS", 200_000)
    # extremes of every shape (0, 1, -1, the most negative and positive values, the
    # largest unsigned), all pairs, then random 18-bit patterns
    edges = [0, 1, 0x3FFFF, 0x80, 0x7F, 0x800, 0x7FF, 0x400, 0x3FF, 0xFF, 0xFFF, 0x3FF80,
             0x3F800, 0x155, 0x2AA]
    ea, eb = np.meshgrid(edges, edges)
    a = np.concatenate([ea.ravel(), rng.integers(0, 1 << 18, n)]).astype(np.int64)
    b = np.concatenate([eb.ravel(), rng.integers(0, 1 << 18, n)]).astype(np.int64)
    await tb.reset()
    lat = MultiplierSet.LATENCY
    got = await sample_pipeline(dut, {"i_a": a.tolist(), "i_b": b.tolist()},
                                [name for name, _, _ in SHAPES], extra=lat + 1)
    for name, width, is_signed in SHAPES:
        exp = (_as_operand(a, width, is_signed) * _as_operand(b, width, is_signed)) \
            & ((1 << (2 * width)) - 1)
        assert_exact(got[name][lat:lat + a.size], exp, what=f"{name}: {{n}} wrong products",
                     seed=seed, first=lambda i: f"{a[i]:#07x} * {b[i]:#07x}")
    dut._log.info("%d operand pairs, %d multipliers, all exact", a.size, len(SHAPES))
