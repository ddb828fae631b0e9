# amaranth: UnusedElaboratable=no
"""The vector engine's units in Amaranth's simulator against :mod:`sim.model.casts`.

One operation per cycle is streamed through each pipeline, all its inputs (format,
requantization parameters) changing with every operation; results are collected by
``o_valid`` and compared in order with the golden model. The golden model itself is
checked against ml_dtypes / NumPy / exact rationals in ``tests/test_vector_golden.py``.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.vector_units import F32Narrow, Requantizer
from sim.model.casts import f32_to_bf16_bits, f32_to_fp16_bits, requantize


def run_stream(dut, inputs, outputs, gap_every=0):
    """Feed ``inputs`` (port name -> sequence, equal lengths) into a fixed-latency unit,
    one operation per cycle (an idle cycle after every ``gap_every`` operations, if
    nonzero); return the ``outputs`` (port names) of every valid result, in order, and
    check that exactly one result leaves ``LATENCY`` cycles after each operation."""
    names = list(inputs)
    n = len(inputs[names[0]])
    columns = [[int(v) for v in inputs[k]] for k in names]
    ports = [getattr(dut, k) for k in names]
    out_ports = [getattr(dut, k) for k in outputs]
    got = []
    issued, seen = [], []

    async def tb(ctx):
        i = 0
        t = 0
        while i < n or t <= (issued[-1] if issued else 0) + dut.LATENCY:
            feed = i < n and not (gap_every and t % (gap_every + 1) == gap_every)
            if feed:
                for port, col in zip(ports, columns):
                    ctx.set(port, col[i])
                issued.append(t)
                i += 1
            ctx.set(dut.i_valid, feed)
            sampled = await ctx.tick().sample(*out_ports, dut.o_valid)
            values, valid = sampled[2:-1], sampled[-1]      # after clk and rst
            if valid:
                got.append(tuple(values))
                seen.append(t)
            t += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    # tick().sample() captures the outputs at clock edge t, as a register would, i.e.
    # what the output registers took at edge t - 1: the operation of cycle t - LATENCY
    assert len(got) == n
    assert seen == [t + dut.LATENCY for t in issued]
    return got


# ---- F32Narrow -----------------------------------------------------------------------

def narrow_patterns(fmt, seed):
    """~3000 FP32 patterns: each boundary of the format +-3 ulps, specials, ties
    at random places, every exponent, random patterns; both signs."""
    rng = np.random.default_rng(seed)
    if fmt == "bf16":
        centres = [0x7F7F_8000, 0x7F7F_7FFF, 0x7F80_0000, 0x007F_8000, 0x0000_8000,
                   0x0001_8000, 0x3F80_8000, 0x3F81_8000, 0x3FFF_8000, 0x0080_0000]
        # ties (low half 0x8000) and neighbours at random upper halves
        upper = rng.integers(0, 1 << 16, 300).astype(np.int64) << 16
        ties = np.concatenate([upper | 0x8000, upper | 0x7FFF, upper | 0x8001])
    else:
        centres = [0x477F_E000, 0x477F_F000, 0x4780_0000, 0x3880_0000, 0x387F_E000,
                   0x3380_0000, 0x3300_0000, 0x33C0_0000, 0x3FFF_F000, 0x44FF_F000,
                   0x3F80_1000, 0x3F80_3000]
        # ties between FP16 neighbours: normal range (13 dropped bits) and subnormals
        e = rng.integers(113, 143, 300).astype(np.int64)
        normal_ties = (e << 23) | (rng.integers(0, 1 << 10, 300) << 13) | 0x1000
        k = rng.integers(0, 1 << 11, 300)          # (k + 1/2) * 2**-24, exactly
        sub_ties = np.asarray(np.float32((k + 0.5) * 2.0 ** -24)).view(np.uint32)
        ties = np.concatenate([normal_ties, normal_ties - 1, normal_ties + 1, sub_ties])
    near = (np.array(centres, dtype=np.int64)[:, None] + np.arange(-3, 4)).ravel()
    specials = [0, 1, 0x7FFFFF, 0x400000, 0x7F80_0000, 0x7F80_0001, 0x7FC0_0000,
                0x7FFF_FFFF, 0x7FA0_1234, 0x3F80_0000]
    exps = (np.arange(256, dtype=np.int64) << 23) | rng.integers(0, 1 << 23, 256)
    rand = rng.integers(0, 1 << 32, 700, dtype=np.uint64).astype(np.int64)
    pos = np.concatenate([near, specials, ties, exps]) & 0x7FFF_FFFF
    bits = np.concatenate([pos, pos | (1 << 31), rand]).astype(np.uint32)
    rng.shuffle(bits)
    return bits


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_narrow_one_format(fmt):
    bits = narrow_patterns(fmt, 21 if fmt == "bf16" else 22)
    assert bits.size >= 2500
    code = F32Narrow.FMT_FP16 if fmt == "fp16" else F32Narrow.FMT_BF16
    got = run_stream(F32Narrow(), {"i_a": bits, "i_fmt": [code] * bits.size}, ["o_res"])
    exp = (f32_to_fp16_bits if fmt == "fp16" else f32_to_bf16_bits)(bits)
    for i, ((g,), e) in enumerate(zip(got, exp)):
        assert g == int(e), f"{fmt} {int(bits[i]):#010x}: got {g:#06x}, expected {int(e):#06x}"


def test_narrow_format_changes_every_cycle():
    """The format bit travels with its operand; idle cycles in between."""
    rng = np.random.default_rng(23)
    bits = np.concatenate([narrow_patterns("bf16", 24)[:600], narrow_patterns("fp16", 25)[:600]])
    fmt = rng.integers(0, 2, bits.size)
    got = run_stream(F32Narrow(), {"i_a": bits, "i_fmt": fmt}, ["o_res"], gap_every=7)
    exp = np.where(fmt == 1, f32_to_fp16_bits(bits), f32_to_bf16_bits(bits))
    for i, ((g,), e) in enumerate(zip(got, exp)):
        assert g == int(e), f"fmt {fmt[i]} {int(bits[i]):#010x}: got {g:#06x}, expected {int(e):#06x}"


# ---- Requantizer --------------------------------------------------------------------

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
ZERO_POINTS = [-128, -5, 0, 77, 127]
EXTREME_ACCS = [INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX]
# (scale, shift): identity, every tie of both signs, ties for some k, no ties,
# the largest products, shift 47
PAIRS = [(1, 0), (-32768, 0), (1, 1), (-1, 4), (3, 5), (16384, 20), (-32768, 26),
         (32767, 31), (-12345, 33), (32767, 47), (-32768, 47), (-32768, 46)]
TIE_PAIRS = {(1, 1), (-1, 4), (3, 5), (16384, 20), (-32768, 26)}


def sweep_accs(scale, shift, k_range=264):
    """Accumulators with ``acc * scale / 2**shift`` at and next to each ``k`` and
    ``k + 1/2`` (``|k| <= k_range``): the integers either side of the exact accumulator,
    or, when that is an integer, itself (and for a tie its two neighbours as well);
    plus the INT32 extremes."""
    accs = set(EXTREME_ACCS)
    for twice_t in range(-2 * k_range - 1, 2 * k_range + 2):
        a = Fraction(twice_t * (1 << shift), 2 * scale)
        if a.denominator != 1:
            near = (math.floor(a), math.ceil(a))
        else:
            near = (a - 1, a, a + 1) if twice_t % 2 else (a,)
        for c in near:
            if INT32_MIN <= c <= INT32_MAX:
                accs.add(int(c))
    return sorted(accs)


def check_requantizer(acc, scale, shift, zp, relu, gap_every=0):
    ins = {"i_acc": acc, "i_scale": scale, "i_shift": shift, "i_zp": zp, "i_relu": relu}
    got = run_stream(Requantizer(), ins, ["o_res"], gap_every=gap_every)
    exp = requantize(np.array(acc), np.array(scale), np.array(shift), np.array(zp),
                     np.array(relu, dtype=bool))
    for i, ((g,), e) in enumerate(zip(got, exp)):
        assert g == int(e), (f"acc={acc[i]} scale={scale[i]} shift={shift[i]} zp={zp[i]} "
                             f"relu={relu[i]}: got {g}, expected {int(e)}")
    return exp


@pytest.mark.parametrize("scale,shift", PAIRS)
def test_requantizer_sweep(scale, shift):
    """Every output value at every zero point, saturation both ways, every tie, with
    and without ReLU; zero point and ReLU change from one vector to the next."""
    accs = sweep_accs(scale, shift)
    combos = [(z, r) for z in ZERO_POINTS for r in (0, 1)]
    acc = [a for a in accs for _ in combos]
    zp = [z for _ in accs for z, _r in combos]
    relu = [r for _ in accs for _z, r in combos]
    n = len(acc)
    if (scale, shift) in TIE_PAIRS:     # exact ties k + 1/2 of both signs are there
        tie = [a * scale for a in accs if (a * scale) % (1 << shift) == 1 << (shift - 1)]
        assert sum(p > 0 for p in tie) >= 40 and sum(p < 0 for p in tie) >= 40
    exp = check_requantizer(acc, [scale] * n, [shift] * n, zp, relu)
    if abs(scale) <= (1 << shift) < (1 << 40):     # the stimulus reaches every output
        for z in ZERO_POINTS:
            for r in (0, 1):
                outs = {int(e) for e, zz, rr in zip(exp, zp, relu) if (zz, rr) == (z, r)}
                assert outs == set(range(z if r else -128, 128)), (z, r)


def test_requantizer_extremes_every_shift():
    """acc and scale at their extremes (and -1, 0, 1) at every shift 0..47, zero point
    and ReLU varied; idle cycles in between."""
    rng = np.random.default_rng(31)
    scales = [-32768, -32767, -1, 0, 1, 32767]
    rows = [(a, s, sh) for a in EXTREME_ACCS for s in scales for sh in range(48)]
    acc, scale, shift = (list(c) for c in zip(*rows))
    n = len(rows)
    zp = rng.choice(ZERO_POINTS, n).tolist()
    relu = rng.integers(0, 2, n).tolist()
    check_requantizer(acc, scale, shift, zp, relu, gap_every=5)


def test_requantizer_random():
    rng = np.random.default_rng(32)
    n = 1500
    acc = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    acc[::2] >>= rng.integers(0, 31, acc[::2].size)
    check_requantizer(acc.tolist(), rng.integers(-32768, 32767, n, endpoint=True).tolist(),
                      rng.integers(0, 48, n).tolist(),
                      rng.integers(-128, 127, n, endpoint=True).tolist(),
                      rng.integers(0, 2, n).tolist())


def test_requantizer_two_products_and_clip():
    """The ADD form (``acc * scale + acc2 * scale2``) and the clip: both products at
    their extremes (the sum reaches 2**47 in magnitude), sums whose sign differs from
    each product's, ties of the sum, every shift; ``hi`` below, at and above the zero
    point with and without ReLU (``lo > hi`` included). Against
    :func:`sim.model.casts.requantize`, and spot checks with Python integers."""
    rng = np.random.default_rng(33)
    n = 2000
    acc = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    acc2 = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    acc[::3] >>= rng.integers(0, 31, acc[::3].size)
    acc2[1::3] >>= rng.integers(0, 31, acc2[1::3].size)
    acc[:4], acc2[:4] = [INT32_MIN, INT32_MAX, INT32_MIN, 5], [INT32_MIN, INT32_MAX, INT32_MAX, -5]
    scale = rng.integers(-32768, 32767, n, endpoint=True)
    scale2 = rng.integers(-32768, 32767, n, endpoint=True)
    scale[:4], scale2[:4] = [-32768, 32767, -32768, 3], [-32768, 32767, 32767, 3]
    shift = rng.integers(0, 48, n)
    shift[:4] = [47, 47, 0, 1]
    zp = rng.integers(-128, 127, n, endpoint=True)
    relu = rng.integers(0, 2, n)
    hi = rng.integers(-128, 127, n, endpoint=True)
    hi[::4] = 127
    ins = {"i_acc": acc.tolist(), "i_scale": scale.tolist(), "i_acc2": acc2.tolist(),
           "i_scale2": scale2.tolist(), "i_shift": shift.tolist(), "i_zp": zp.tolist(),
           "i_relu": relu.tolist(), "i_hi": hi.tolist()}
    got = run_stream(Requantizer(), ins, ["o_res"], gap_every=3)
    exp = requantize(acc, scale, shift, zp, relu, acc2=acc2, scale2=scale2, hi=hi)
    for i, ((g,), e) in enumerate(zip(got, exp)):
        assert g == int(e), (f"acc={acc[i]}*{scale[i]} + {acc2[i]}*{scale2[i]} >> {shift[i]} "
                             f"zp={zp[i]} relu={relu[i]} hi={hi[i]}: got {g}, expected {int(e)}")
    # independent: the first rows with Python integers
    for i in range(8):
        prod = int(acc[i]) * int(scale[i]) + int(acc2[i]) * int(scale2[i])
        sh = int(shift[i])
        r = abs(prod) if sh == 0 else (abs(prod) + (1 << (sh - 1))) >> sh
        y = min(max((r if prod >= 0 else -r) + int(zp[i]), -128), 127)
        y = min(max(y, int(zp[i])) if relu[i] else y, int(hi[i]))
        assert int(exp[i]) == y, i
