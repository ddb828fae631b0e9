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


#: FP16 patterns at the edges of the exact widening: zeros, the smallest and largest
#: subnormals (FP32 normals after widening), the smallest normal, the largest finite
#: value, Infs, quiet and signalling NaNs of both signs.
FP16_SPECIALS = [0x0000, 0x8000, 0x0001, 0x8001, 0x0002, 0x0155, 0x03FF, 0x83FF,
                 0x0400, 0x8400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
                 0x7E00, 0xFE00, 0x7C01, 0xFD55, 0x3555, 0x4600, 0xC600]


def _sbuf_halves(tb, base, values):
    """Write 16-bit ``values`` (cycled) to every partition from byte ``base``."""
    cfg = tb.cfg
    n = len(values)
    v = np.asarray(values, dtype=np.uint16)
    for p in range(cfg.rows):
        tb.model.sbuf[p, base:base + 2 * n] = np.roll(v, 3 * p).view(np.uint8)


@cocotb.test(**WATCHDOG)
async def test_two_operands_and_widening(dut):
    """The CNN operations: MAX and ADD of BF16/FP16 activations holding every class of
    value (both zeros, Infs, NaNs, subnormals, FP16 subnormals that widen to FP32
    normals), with strides, ReLU and a ReLU6 clip, to every float type; INT8 ADD with
    two scales and zero points (both saturations) and INT8 MAX at a stride; a pooling
    chain in place. SBUF compared whole after every ACT; the float MAX and the INT8
    ADD also checked against values computed here with Python numbers."""
    tb = VectorTB(dut)
    await tb.reset()
    await tb.random_onchip()
    cfg = tb.cfg
    rng = tb.rng
    n = 48
    if cfg.has_float:
        bf = [v >> 16 for v in FLOAT_SPECIALS] + [int(v) for v in rng.integers(0, 1 << 16, 30)]
        fp = FP16_SPECIALS + [int(v) for v in rng.integers(0, 1 << 16, 40)]
        for st, vals in (("BF16", bf), ("FP16", fp)):
            _sbuf_halves(tb, 0, vals[:n] + vals[:2 * n - len(vals[:n])])
            _sbuf_halves(tb, 256, list(reversed(vals))[:2 * n])
            await tb.load_sbuf()
            for op, dst, skip, relu, clip in (
                    ("MAX", "FP32", 0, False, False), ("MAX", st, 1, True, True),
                    ("ADD", "FP32", 0, False, False), ("ADD", "BF16", 1, True, True),
                    ("COPY", "FP32", 0, False, False), ("ADD", "FP16", 0, False, False)):
                a = Act(parts=cfg.rows, n=n, dst_type=dst, src_psum=False, src_fp=True,
                        src_type=st, op=op, src_off=0, src2_off=128, src_skip=skip,
                        src2_skip=0, dst_off=1024, relu=relu, clip=clip, hi=0x40C0)
                assert check(cfg, a) == "NONE", a
                await tb.act([a])
                await tb.check_sbuf(f"{a}")
                if dst == "FP32" and op == "MAX" and st == "BF16":
                    # independent: NumPy's float32 maximum, for pairs without NaNs
                    x1 = tb.model.sbuf[0, 0:2 * n].view("<u2").astype(np.uint32) << 16
                    x2 = tb.model.sbuf[0, 256:256 + 2 * n].view("<u2").astype(np.uint32) << 16
                    f1, f2 = x1.view(np.float32), x2.view(np.float32)
                    got = tb.model.sbuf[0, 1024:1024 + 4 * n].view("<f4")
                    ok = ~np.isnan(f1) & ~np.isnan(f2)
                    assert ok.sum() > n // 2
                    assert np.array_equal(got[ok], np.maximum(f1, f2)[ok])
    # INT8: every code as first operand, second operand reversed
    codes = np.arange(-128, 128, dtype=np.int8)
    for p in range(cfg.rows):
        tb.model.sbuf[p, 0:256] = np.roll(codes, p).view(np.uint8)
        tb.model.sbuf[p, 512:768] = np.roll(codes[::-1], 2 * p).view(np.uint8)
    await tb.load_sbuf()
    for scale, scale2, shift, zp1, zp2, zp, relu, clip, hi in (
            (3, 5, 2, 0, 0, 0, False, False, 0), (19000, -7000, 14, -3, 100, 5, True, False, 0),
            (32767, 32767, 9, 127, -128, -128, False, True, 60), (1, 1, 0, 0, 0, 0, False, False, 0)):
        a = Act(parts=cfg.rows, n=256, dst_type="INT8", src_psum=False, src_fp=False,
                src_type="INT8", op="ADD", src_off=0, src2_off=512, dst_off=1024,
                scale=scale, scale2=scale2, shift=shift, zp=zp, zp1=zp1, zp2=zp2,
                relu=relu, clip=clip, hi=hi)
        await tb.act([a])
        await tb.check_sbuf(f"{a}")
        x1 = tb.model.sbuf[0, 0:256].view(np.int8).astype(int)
        x2 = tb.model.sbuf[0, 512:768].view(np.int8).astype(int)
        got = tb.model.sbuf[0, 1024:1280].view(np.int8)
        for i in range(256):
            prod = (int(x1[i]) - zp1) * scale + (int(x2[i]) - zp2) * scale2
            r = abs(prod) if shift == 0 else (abs(prod) + (1 << (shift - 1))) >> shift
            r = r if prod >= 0 else -r
            y = min(max(r + zp, -128), 127)
            y = max(y, zp) if relu else y
            y = min(y, hi) if clip else y
            assert got[i] == y, f"INT8 ADD {a}: element {i}: {got[i]} != {y}"
    # a 2x2/2 max pool of an 8x16 INT8 plane, in place into the first row's buffer
    pool = Act(parts=cfg.rows, n=8, dst_type="INT8", src_psum=False, src_fp=False,
               src_type="INT8", op="MAX", src_off=0, src2_off=1, src_skip=1, src2_skip=1,
               dst_off=2048)
    await tb.act([pool])
    for off in (16, 17):
        await tb.act([Act(**{**pool.__dict__, "src_off": 2048, "src_skip": 0,
                             "src2_off": off})])
    await tb.check_sbuf("pool")
    plane = tb.model.sbuf[0, 0:32].view(np.int8).reshape(2, 16)
    want = plane.reshape(1, 2, 8, 2).max(axis=(1, 3)).ravel()
    assert np.array_equal(tb.model.sbuf[0, 2048:2056].view(np.int8), want)
