"""cocotb tests of the vector engine (hdl/vector.py) against sim/model/vector.py.
Run through ``tests/test_rtl_vector.py``."""

import json
import os

import cocotb
import numpy as np

from sim.model.vector import Act, check
from tb.vector.tb import VectorTB

WATCHDOG = dict(timeout_time=400, timeout_unit="ms")

#: FP32 patterns at the edges of the BF16/FP16 casts and of ReLU.
FLOAT_SPECIALS = [
    0x0000_0000, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0001,
    0x7F80_0001, 0x0000_0001, 0x8000_0001, 0x007F_FFFF, 0x0080_0000, 0x7F7F_FFFF,
    0xFF7F_FFFF, 0x3F80_0000, 0xBF80_0000, 0x3F80_8000, 0x3F81_8000, 0x3F80_7FFF,
    0x3F80_8001, 0x7F7F_8000, 0x477F_E000, 0x477F_EFFF, 0x477F_F000, 0x4780_0000,
    0x3880_0000, 0x387F_F000, 0x3380_0000, 0x3300_0000, 0x3300_0001, 0x3340_0000,
    0xB300_0000, 0x33C0_0000, 0x3A80_1000, 0x4B80_0000,
]


async def load_psum_values(tb, values):
    """Fill PSUM (every partition, every entry) cycling through ``values``."""
    cfg = tb.cfg
    flat = np.resize(np.asarray(values, dtype=np.uint64), cfg.cols * cfg.psum_entries)
    tb.model.psum[...] = flat.astype(np.uint32).reshape(cfg.cols, cfg.psum_banks,
                                                        cfg.psum_depth)
    items = [tb.pw.pack(bank=b, entry=e, mask=(1 << cfg.cols) - 1, acc=0, fp=0,
                        data=tb.model.psum[:, b, e])
             for b in range(cfg.psum_banks) for e in range(cfg.psum_depth)]
    await tb.drive("i_psum_wr", items)
    await tb.wait_psum_quiet()


@cocotb.test(**WATCHDOG)
async def test_random_commands(dut):
    """Random ACT commands (PSUM or SBUF source, every type pair, random placement,
    bias, ReLU, requantisation parameters); SBUF compared whole after each batch."""
    tb = VectorTB(dut)
    await tb.reset()
    await tb.random_onchip()
    for batch in range(int(os.environ.get("NCORE_ACT_BATCHES", "4"))):
        cmds = [tb.random_act() for _ in range(6)]
        _, _, code = await tb.act(cmds, pause=0.3 if batch % 2 else 0.0)
        assert code == "NONE"
        assert await tb.act_code() == "NONE"
        await tb.check_sbuf(f"batch {batch}: {cmds}")


@cocotb.test(**WATCHDOG)
async def test_casts_and_relu(dut):
    """FP32 -> FP32/BF16/FP16 on special values (+-0, +-Inf, NaNs of both signs,
    subnormals, ties, round-up into the next binade, overflow), with and without bias
    and ReLU; SBUF checked after every ACT."""
    tb = VectorTB(dut)
    await tb.reset()
    if not tb.cfg.has_float:
        assert check(tb.cfg, Act(parts=1, n=1, dst_type="BF16")) == "TYPES"
        return
    await tb.random_onchip()
    rng = tb.rng
    values = FLOAT_SPECIALS + [int(v) for v in rng.integers(0, 1 << 32, 200, dtype=np.uint64)]
    await load_psum_values(tb, values)
    cfg = tb.cfg
    n = min(len(FLOAT_SPECIALS) + 20, cfg.psum_entries)
    for dst in ("FP32", "BF16", "FP16"):
        for bias, relu in ((False, False), (False, True), (True, False), (True, True)):
            a = Act(parts=cfg.cols, n=n, dst_type=dst, src_fp=True, bias=bias, relu=relu,
                    bias_off=cfg.sbuf_bytes - 4, dst_off=0)
            await tb.act([a])
            # every ACT writes the same place: check each one (the specials include NaNs
            # of both signs, which ReLU must pass unchanged)
            await tb.check_sbuf(f"casts: {a}")
    # subnormal biases: subnormal + subnormal, and the smallest normal minus a subnormal,
    # are subnormal under IEEE and flushed with CoreConfig(subnormals=False)
    tiny = np.array([0x0000_0003, 0x8000_0005, 0x807F_FFFF, 0x0040_0000], dtype=np.uint32)
    bias = np.resize(tiny, cfg.rows)
    tb.model.sbuf[:, cfg.sbuf_bytes - 4:] = bias.view(np.uint8).reshape(cfg.rows, 4)
    await tb.load_sbuf()
    for dst in ("FP32", "BF16"):
        await tb.act([Act(parts=cfg.cols, n=n, dst_type=dst, src_fp=True, bias=True,
                          bias_off=cfg.sbuf_bytes - 4, dst_off=0)])
        await tb.check_sbuf(f"subnormal bias to {dst}")


@cocotb.test(**WATCHDOG)
async def test_int32_relu_only_when_asked(dut):
    """INT32 -> INT32 over negative, zero and positive accumulators (both extremes):
    without ReLU every value, negatives included, passes unchanged; with ReLU the
    negatives become 0. With and without a bias (whose sum may turn a sign). SBUF
    checked against the model after every ACT, and the model's INT32 results spot
    checked by hand."""
    tb = VectorTB(dut)
    await tb.reset()
    await tb.random_onchip()
    cfg = tb.cfg
    specials = [-1, -2, -(1 << 31), -(1 << 31) + 1, -12345, 0, 1, (1 << 31) - 1, 777]
    randoms = [int(v) for v in tb.rng.integers(-(1 << 31), 1 << 31, 64)]
    values = [v & 0xFFFF_FFFF for v in specials + randoms]
    await load_psum_values(tb, values)
    n = min(len(values), cfg.psum_entries, cfg.sbuf_bytes // 4 - 1)
    for bias, relu in ((False, False), (False, True), (True, False), (True, True)):
        a = Act(parts=cfg.cols, n=n, dst_type="INT32", src_fp=False, bias=bias,
                relu=relu, bias_off=cfg.sbuf_bytes - 4, dst_off=0)
        await tb.act([a])
        await tb.check_sbuf(f"INT32 pass: {a}")
        if not bias:
            # independent of the model: PSUM partition 0, entry e holds values[e]
            out = tb.model.sbuf[0, :4 * n].view("<i4")
            src = np.array([values[e] for e in range(n)],
                           dtype=np.uint32).view(np.int32)
            want = np.maximum(src, 0) if relu else src
            assert (want < 0).any() == (not relu)
            assert np.array_equal(out, want), f"{a}: {out} != {want}"


@cocotb.test(**WATCHDOG)
async def test_requantise_exhaustive(dut):
    """INT32 -> INT8 at several scales and shifts over accumulators that hit every INT8
    output, both saturations and every rounding tie; with ReLU and zero points."""
    tb = VectorTB(dut)
    await tb.reset()
    await tb.random_onchip()
    cfg = tb.cfg
    for scale, shift in ((1, 0), (1, 1), (1, 7), (3, 4), (-5, 9), (32767, 40), (-32768, 47)):
        half = 1 << (shift - 1) if shift else 0
        accs = []
        for r in range(-140, 141):          # every INT8 output, and both saturations
            target = r << shift             # the product that rounds to r
            for t in (target, target + half, target - half, target + 1, target - 1):
                acc = t // scale            # nearest accumulators (exact when |scale| = 1)
                accs += [acc, acc + 1]
        accs = [max(-(1 << 31), min((1 << 31) - 1, a)) for a in accs]
        await load_psum_values(tb, [a & 0xFFFF_FFFF for a in accs])
        n = min(cfg.psum_entries, (len(accs) + cfg.cols - 1) // cfg.cols + 1,
                cfg.sbuf_bytes)
        for zp, relu in ((0, False), (-5, True), (77, False), (-128, True), (127, False)):
            a = Act(parts=cfg.cols, n=n, dst_type="INT8", src_fp=False, relu=relu,
                    scale=scale, shift=shift, zp=zp)
            await tb.act([a])
            await tb.check_sbuf(f"requantise scale {scale} shift {shift} zp {zp} relu {relu}")


@cocotb.test(**WATCHDOG)
async def test_composed(dut):
    """bias + ReLU + cast, and requantise + ReLU, from PSUM and from SBUF, with random
    placement; in-place SBUF -> SBUF (allowed) included."""
    tb = VectorTB(dut)
    await tb.reset()
    await tb.random_onchip()
    cfg = tb.cfg
    cmds = []
    for _ in range(6):
        if cfg.has_float:
            cmds.append(tb.random_act(src_fp=True, dst_type="BF16"))
        cmds.append(tb.random_act(src_fp=False, dst_type="INT8"))
    cmds = [Act(**{**c.__dict__, "bias": True, "relu": True}) for c in cmds]
    cmds = [c for c in cmds if check(cfg, c) == "NONE"]
    await tb.act(cmds)
    in_place = Act(parts=cfg.rows, n=16, dst_type="INT8" if not cfg.has_float else "BF16",
                   src_psum=False, src_fp=cfg.has_float, src_off=64, dst_off=256, relu=True)
    assert check(cfg, in_place) == "NONE"
    await tb.act([in_place])
    await tb.check_sbuf("composed")


@cocotb.test(**WATCHDOG)
async def test_illegal_commands(dut):
    """Each refusal code is reported; nothing is written; the next command runs."""
    tb = VectorTB(dut)
    await tb.reset()
    await tb.random_onchip()
    cfg = tb.cfg
    S = cfg.sbuf_bytes
    bad = [
        ("TYPES", Act(parts=1, n=1, src_fp=False, dst_type="BF16")),
        ("TYPES", Act(parts=1, n=1, src_fp=True, dst_type="INT8")),
        ("PARTS", Act(parts=0, n=1, src_fp=False, dst_type="INT32")),
        ("PARTS", Act(parts=cfg.cols, n=1, src_p0=1, src_fp=False, dst_type="INT32")),
        ("PARTS", Act(parts=cfg.rows, n=1, dst_p0=1, src_psum=False, src_fp=False,
                      dst_type="INT32", src_off=S // 8)),
        ("SRC_RANGE", Act(parts=1, n=0, src_fp=False, dst_type="INT32")),
        ("SRC_RANGE", Act(parts=1, n=2, src_off=cfg.psum_entries - 1, src_fp=False,
                          dst_type="INT32")),
        ("DST_RANGE", Act(parts=1, n=1, dst_off=2, src_fp=False, dst_type="INT32")),
        ("DST_RANGE", Act(parts=1, n=2, dst_off=S - 4, src_fp=False, dst_type="INT32")),
        ("BIAS_RANGE", Act(parts=1, n=1, bias=True, bias_off=6, src_fp=False,
                           dst_type="INT32")),
        ("BIAS_RANGE", Act(parts=1, n=1, bias=True, bias_off=S, src_fp=False,
                           dst_type="INT32")),
        ("OVERLAP", Act(parts=2, n=8, src_psum=False, src_fp=False, dst_type="INT32",
                        src_off=4, dst_off=20)),
    ]
    if cfg.has_float:
        bad.append(("TYPES", Act(parts=1, n=1, src_fp=False, dst_type="FP16")))
    else:
        bad.append(("TYPES", Act(parts=1, n=1, src_fp=True, dst_type="FP32")))
    for want, a in bad:
        assert check(cfg, a) == want, f"table wrong for {a}"
        ok = tb.random_act(n_max=8)
        await tb.act([a, ok])
        code = await tb.act_code()
        if code != want:
            tb.fail(f"{a}: code {code}, expected {want}")
        dut.status__error_clear.value = 1
        await tb.tick()
        dut.status__error_clear.value = 0
        assert await tb.act_code() == "NONE"
    await tb.check_sbuf("after illegal commands")


@cocotb.test(**WATCHDOG)
async def test_pass_cycles(dut):
    """One element-wise pass over a rows x 512 PSUM tile (the limit is 512 cycles at one
    element per partition per cycle), alone and while a second SBUF client writes
    every cycle (arbitration backpressure on the engine's writes). Figures to
    ``$NCORE_BENCH_OUT``."""
    tb = VectorTB(dut)
    await tb.reset()
    await tb.random_onchip()
    cfg = tb.cfg
    n = min(512, cfg.psum_entries)
    figures = []
    for dst, fp in (("BF16", True), ("INT8", False), ("FP32", True)):
        if fp and not cfg.has_float:
            continue
        a = Act(parts=cfg.cols, n=n, dst_type=dst, src_fp=fp, bias=True, relu=True,
                bias_off=cfg.sbuf_bytes - 4, scale=3, shift=20, zp=-3)
        for busy_writer in (False, True):
            if busy_writer:
                # a second client writes the upper half of SBUF every cycle
                half = cfg.sbuf_words // 2
                dut.i_sbuf_wr__payload.value = tb.wr.pack(
                    addr=half + 1, pmask=(1 << cfg.rows) - 1, strb=(1 << cfg.sbuf_word_bytes) - 1,
                    data=[0] * cfg.rows)
                dut.i_sbuf_wr__valid.value = 1
            first, end, _ = await tb.act([a])
            dut.i_sbuf_wr__valid.value = 0
            if busy_writer:
                tb.model.sbuf[:, (half + 1) * cfg.sbuf_word_bytes:
                              (half + 2) * cfg.sbuf_word_bytes] = 0
            cycles = end - first
            figures.append({"name": f"act-{dst}-{'contended' if busy_writer else 'alone'}",
                            "elements_per_partition": n, "cycles": cycles,
                            "elements_per_cycle_per_partition": n / cycles})
            cocotb.log.info("ACT %s over %dx%d, %s: %d cycles (limit %d)", dst, cfg.cols, n,
                            "with a busy SBUF writer" if busy_writer else "alone", cycles, n)
            await tb.check_sbuf(f"pass {dst}")
            if not busy_writer:
                assert cycles <= n + 40, f"{dst}: {cycles} cycles for {n} elements"
    out = os.environ.get("NCORE_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(figures, f, indent=1)
