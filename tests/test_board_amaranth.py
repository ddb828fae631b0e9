# amaranth: UnusedElaboratable=no
"""The board's DRAM window in block RAM and the host's address decoder
(:mod:`hdl.board`) in Amaranth's simulator, and the whole host path: UARTBone frames
through :class:`hdl.uart.UARTBone`, the decoder, into the memory and a register stub;
the ECP5 PLL's dividers against Project Trellis's ecppll.

Expected values come from a Python memory model fed by the same random traffic, never
from the design. The core's port is driven by an AXI4 manager model with several bursts
in flight and random valid/ready gaps; the host's by an AXI4-Lite manager model at the
same time, on a different part of the memory, then each reads what the other wrote.
"""

import pathlib
import random
import re
import shutil
import subprocess
import sys

import pytest

from amaranth.hdl import Module
from amaranth.lib import wiring

from amaranth_helpers import raises_exactly, simulate, wait_for
from hdl.axi import AXIResp
from hdl.board import HOST_DRAM_BASE, BlockRamDram, HostDecoder, ecp5_pll_settings
from hdl.config import CoreConfig, named_config
from hdl.uart import Cmd, UARTBone

SEEDS = [1, 2, 3]


async def axi4_reads(ctx, bus, bursts, rng, out):
    """Issue AR for every ``(addr, beats, id)`` in ``bursts`` as fast as accepted (so
    several are in flight) while :func:`axi4_collect` takes the beats."""
    for addr, beats, ident in bursts:
        while rng.random() < 0.3:
            ctx.set(bus.arvalid, 0)
            await ctx.tick()
        ctx.set(bus.arvalid, 1)
        ctx.set(bus.araddr, addr)
        ctx.set(bus.arlen, beats - 1)
        ctx.set(bus.arid, ident)
        await wait_for(ctx, bus.arready)
    ctx.set(bus.arvalid, 0)


async def axi4_collect(ctx, bus, rng, out):
    """Take R beats with random rready: ``out`` gets ``(data, resp, last, id)``."""
    while True:
        ready = rng.random() < 0.7
        ctx.set(bus.rready, ready)
        _, _, v, d, r, last, i = await ctx.tick().sample(bus.rvalid, bus.rdata, bus.rresp,
                                                          bus.rlast, bus.rid)
        if v and ready:
            out.append((d, r, last, i))


async def axi4_writes(ctx, bus, bursts, rng, nb, responses):
    """One write burst at a time: AW, then the beats with random gaps, then B."""
    for addr, words, strbs, ident in bursts:
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.awlen, len(words) - 1)
        ctx.set(bus.awid, ident)
        await wait_for(ctx, bus.awready)
        ctx.set(bus.awvalid, 0)
        for k, (word, strb) in enumerate(zip(words, strbs)):
            while rng.random() < 0.3:
                ctx.set(bus.wvalid, 0)
                await ctx.tick()
            ctx.set(bus.wvalid, 1)
            ctx.set(bus.wdata, word)
            ctx.set(bus.wstrb, strb)
            ctx.set(bus.wlast, k == len(words) - 1)
            await wait_for(ctx, bus.wready)
        ctx.set(bus.wvalid, 0)
        ctx.set(bus.bready, 1)
        responses.append(tuple(await wait_for(ctx, bus.bvalid, bus.bresp, bus.bid)))
        ctx.set(bus.bready, 0)


async def axil_write(ctx, bus, addr, data, strb=0xF):
    """One AXI4-Lite write (AW and W together); returns BRESP."""
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.wvalid, 1)
    ctx.set(bus.wdata, data)
    ctx.set(bus.wstrb, strb)
    aw = w = False
    for _ in range(20_000):
        if aw and w:
            break
        _, _, awr, wr = await ctx.tick().sample(bus.awready, bus.wready)
        aw, w = aw or awr, w or wr
        if aw:
            ctx.set(bus.awvalid, 0)
        if w:
            ctx.set(bus.wvalid, 0)
    else:
        raise AssertionError("watchdog: AW or W never accepted")
    ctx.set(bus.bready, 1)
    resp, = await wait_for(ctx, bus.bvalid, bus.bresp)
    ctx.set(bus.bready, 0)
    return resp


async def axil_read(ctx, bus, addr):
    """One AXI4-Lite read; returns ``(data, resp)``."""
    ctx.set(bus.arvalid, 1)
    ctx.set(bus.araddr, addr)
    await wait_for(ctx, bus.arready)
    ctx.set(bus.arvalid, 0)
    ctx.set(bus.rready, 1)
    d, resp = await wait_for(ctx, bus.rvalid, bus.rdata, bus.rresp)
    ctx.set(bus.rready, 0)
    return d, resp


def test_parameter_errors():
    cfg = named_config("default")
    with raises_exactly(ValueError, "size must be a power of two from 32 to 1073741824 "
                                    "bytes, not 3000"):
        BlockRamDram(cfg, size=3000)
    with raises_exactly(ValueError, "size must be a power of two from 32 to 1073741824 "
                                    "bytes, not 16"):
        BlockRamDram(cfg, size=16)
    with raises_exactly(ValueError, "outstanding must be an integer from 1 to 64, not 0"):
        BlockRamDram(cfg, size=1024, outstanding=0)
    with raises_exactly(ValueError, "dram_size must be a power of two from 8 to 1073741824 "
                                    "bytes, not 100"):
        HostDecoder(dram_size=100)
    with pytest.raises(TypeError):
        BlockRamDram("default", size=1024)


@pytest.mark.parametrize("data_bytes", [8, 4])
@pytest.mark.parametrize("seed", SEEDS)
def test_dram_core_and_host(seed, data_bytes):
    """The core's bursts (the lower half, and some beyond ``size``: DECERR) and the
    host's words (the upper half) at the same time; then the host reads the lower half
    and the core the upper half: everything matches the model."""
    rng = random.Random(seed)
    cfg = CoreConfig(axi_data_bytes=data_bytes, sbuf_word_bytes=data_bytes) \
        if data_bytes != 8 else named_config("default")
    nb = cfg.axi_data_bytes
    size = 1024
    dut = BlockRamDram(cfg, size=size, outstanding=3)
    model = {}                                   # byte address -> byte

    def put(addr, word, strb, width):
        for b in range(width):
            if strb >> b & 1:
                model[addr + b] = word >> (8 * b) & 0xFF

    def get(addr, width):
        return sum(model.get(addr + b, 0) << (8 * b) for b in range(width))

    # the core's writes into [0, size/2), plus one burst at size - nb that runs over
    wbursts = []
    for _ in range(8):
        beats = rng.randrange(1, 6)
        addr = nb * rng.randrange(0, size // 2 // nb - beats)
        words = [rng.getrandbits(8 * nb) for _ in range(beats)]
        strbs = [rng.choice([(1 << nb) - 1, rng.getrandbits(nb)]) for _ in range(beats)]
        wbursts.append((addr, words, strbs, rng.randrange(16)))
    over = (size - nb, [rng.getrandbits(8 * nb) for _ in range(3)], [(1 << nb) - 1] * 3, 5)
    wbursts.append(over)
    for addr, words, strbs, _ in wbursts:
        for k, (w, s) in enumerate(zip(words, strbs)):
            if addr + k * nb < size:
                put(addr + k * nb, w, s, nb)
    # the host's writes into [size/2, size)
    hwrites = [(size // 2 + 4 * rng.randrange(size // 8), rng.getrandbits(32),
                rng.choice([0xF, rng.getrandbits(4)])) for _ in range(24)]
    for a, d, s in hwrites:
        put(a, d, s, 4)

    b_resps, r_beats, h_reads, core_reads = [], [], [], []
    phase = {"core_w": False, "host_w": False}

    async def core(ctx):
        await axi4_writes(ctx, dut.s_axi, wbursts, rng, nb, b_resps)
        phase["core_w"] = True
        for _ in range(20_000):
            if phase["host_w"]:
                break
            await ctx.tick()
        bursts = [(size // 2 + nb * k, 4, k % 16) for k in range(0, size // 2 // nb, 4)]
        bursts.append((size - nb, 2, 3))        # the second beat is beyond: DECERR
        core_reads.extend(bursts)
        await axi4_reads(ctx, dut.s_axi, bursts, rng, r_beats)
        for _ in range(20_000):
            if len(r_beats) == sum(b for _, b, _ in bursts) and len(h_reads) == size // 8:
                return
            await ctx.tick()
        raise AssertionError(f"seed {seed}: watchdog: {len(r_beats)} beats, "
                             f"{len(h_reads)} host reads")

    async def host(ctx):
        for a, d, s in hwrites:
            assert await axil_write(ctx, dut.s_axil, a, d, s) == AXIResp.OKAY
        phase["host_w"] = True
        for _ in range(20_000):
            if phase["core_w"]:
                break
            await ctx.tick()
        for a in range(0, size // 2, 4):
            h_reads.append(await axil_read(ctx, dut.s_axil, a))

    async def collect(ctx):
        await axi4_collect(ctx, dut.s_axi, rng, r_beats)

    simulate(dut, core, host, collect)
    assert b_resps == [(AXIResp.OKAY, i) for *_, i in wbursts[:-1]] + [(AXIResp.DECERR, 5)], \
        f"seed {seed}"
    assert h_reads == [(get(a, 4), AXIResp.OKAY) for a in range(0, size // 2, 4)], f"seed {seed}"
    expect = []
    for addr, beats, ident in core_reads:
        for k in range(beats):
            a = addr + k * nb
            expect.append((get(a, nb) if a < size else 0,
                           AXIResp.OKAY if a < size else AXIResp.DECERR, k == beats - 1, ident))
    assert r_beats == expect, f"seed {seed}"


def test_dram_host_read_while_core_streams():
    """Host reads and writes in the middle of a long core read burst with rready always
    high: every beat and every host word is right, and the burst only loses the cycles
    the host takes (one per host access)."""
    cfg = named_config("default")
    nb = cfg.axi_data_bytes
    dut = BlockRamDram(cfg, size=4096)
    beats, host_words = [], []
    words = [(k << 32) | (1000 + k) for k in range(64)]
    written = []

    async def core(ctx):
        # words 0..63 through the core's port, then one 64-beat read burst
        await axi4_writes(ctx, dut.s_axi, [(0, words, [0xFF] * 64, 1)], random.Random(0),
                          nb, written)
        await axi4_reads(ctx, dut.s_axi, [(0, 64, 2)], random.Random(0), beats)

    async def collect(ctx):
        ctx.set(dut.s_axi.rready, 1)
        t = 0
        while True:
            _, _, v, d = await ctx.tick().sample(dut.s_axi.rvalid, dut.s_axi.rdata)
            t += 1
            if v:
                beats.append((t, d))

    async def host(ctx):
        for _ in range(5000):
            if written:
                break
            await ctx.tick()
        for _ in range(12):                     # into the read burst
            await ctx.tick()
        for k in range(4):
            host_words.append(await axil_read(ctx, dut.s_axil, 8 * (40 + k) + 4))
            assert await axil_write(ctx, dut.s_axil, 2048 + 4 * k, k) == AXIResp.OKAY
        for _ in range(200):
            await ctx.tick()

    simulate(dut, host, core, collect)
    assert [d for _, d in beats] == words
    assert host_words == [(40 + k, AXIResp.OKAY) for k in range(4)]   # the upper halves
    span = beats[-1][0] - beats[0][0] + 1
    assert 64 <= span <= 64 + 8, f"64 beats took {span} cycles"


@pytest.mark.parametrize("seed", SEEDS)
def test_decoder(seed):
    """Registers, DRAM and unmapped addresses through the decoder: each access reaches
    only its target at its offset; unmapped ones get DECERR and read 0."""
    rng = random.Random(seed)
    dram_size = 1 << 12
    m = Module()
    m.submodules.dec = dec = HostDecoder(dram_size=dram_size)
    m.submodules.mem = mem = BlockRamDram(named_config("default"), size=dram_size)
    wiring.connect(m, dec.m_dram, mem.s_axil)
    regs = {}
    log = []

    async def reg_stub(ctx):
        """A register file of 1024 words that records each access."""
        bus = dec.m_regs
        b = r = None
        while True:
            ctx.set(bus.awready, b is None)
            ctx.set(bus.wready, b is None)
            ctx.set(bus.bvalid, b is not None)
            ctx.set(bus.bresp, AXIResp.OKAY)
            ctx.set(bus.arready, r is None)
            ctx.set(bus.rvalid, r is not None)
            ctx.set(bus.rdata, r or 0)
            ctx.set(bus.rresp, AXIResp.OKAY)
            (_, _, awv, awaddr, wv, wdata, br, arv, araddr, rr) = await ctx.tick().sample(
                bus.awvalid, bus.awaddr, bus.wvalid, bus.wdata, bus.bready, bus.arvalid,
                bus.araddr, bus.rready)
            if b is not None and br:
                b = None
            elif awv and wv and b is None:
                regs[awaddr] = wdata
                log.append(("W", awaddr))
                b = True
            if r is not None and rr:
                r = None
            elif arv and r is None:
                r = regs.get(araddr, 0)
                log.append(("R", araddr))

    results = []
    ops = []
    for _ in range(40):
        where = rng.choice(["regs", "dram", "none"])
        off = 4 * rng.randrange(1024)
        addr = {"regs": off, "dram": HOST_DRAM_BASE + off,
                "none": rng.choice([0x1000 + off, HOST_DRAM_BASE + dram_size + off,
                                    0x8000_0000 + off])}[where]
        ops.append((rng.choice("RW"), where, addr, rng.getrandbits(32)))

    async def tb(ctx):
        for op, _, addr, data in ops:
            if op == "W":
                results.append(await axil_write(ctx, dec.s_axil, addr, data))
            else:
                results.append(await axil_read(ctx, dec.s_axil, addr))

    simulate(m, tb, reg_stub)
    model = {"regs": {}, "dram": {}}
    expect, expect_log = [], []
    for op, where, addr, data in ops:
        key = addr & 0xFFF
        if where == "none":
            expect.append(AXIResp.DECERR if op == "W" else (0, AXIResp.DECERR))
            continue
        if where == "regs":
            expect_log.append((op, key))
        if op == "W":
            model[where][key] = data
            expect.append(AXIResp.OKAY)
        else:
            expect.append((model[where].get(key, 0), AXIResp.OKAY))
    assert results == expect, f"seed {seed}"
    assert log == expect_log, f"seed {seed}"


def test_uartbone_into_dram():
    """UARTBone frames through the decoder into the DRAM window and back (the host path
    of a board, minus the serial pins and the core)."""
    rng = random.Random(4)
    m = Module()
    m.submodules.bone = bone = UARTBone(timeout=1000)
    m.submodules.dec = dec = HostDecoder(dram_size=1 << 12)
    m.submodules.mem = mem = BlockRamDram(named_config("default"), size=1 << 12)
    wiring.connect(m, bone.m_axil, dec.s_axil)
    wiring.connect(m, dec.m_dram, mem.s_axil)
    words = [rng.getrandbits(32) for _ in range(8)]
    base = (HOST_DRAM_BASE + 0x100) // 4
    frames = (bytes([Cmd.WRITE_INCR, 8]) + base.to_bytes(4, "big")
              + b"".join(w.to_bytes(4, "big") for w in words)
              + bytes([Cmd.READ_INCR, 8]) + base.to_bytes(4, "big"))
    answer = []

    async def tb(ctx):
        ctx.set(bone.o.ready, 1)
        k = 0
        for _ in range(2000):
            ctx.set(bone.i.valid, k < len(frames))
            ctx.set(bone.i.payload, frames[k] if k < len(frames) else 0)
            _, _, ready, v, p = await ctx.tick().sample(bone.i.ready, bone.o.valid,
                                                        bone.o.payload)
            if ready and k < len(frames):
                k += 1
            if v:
                answer.append(p)

    simulate(m, tb)
    got = [int.from_bytes(bytes(answer[i:i + 4]), "big") for i in range(0, len(answer), 4)]
    assert got == words



def _ecppll(f_in_mhz, f_out_mhz):
    """Project Trellis's ecppll (the yowasp-ecppll wheel) as an independent oracle:
    its refclk, feedback and output dividers and output and VCO frequencies."""
    exe = shutil.which("yowasp-ecppll") or str(
        pathlib.Path(sys.executable).with_name("yowasp-ecppll"))
    out = subprocess.run([exe, "-i", str(f_in_mhz), "-o", str(f_out_mhz)],
                         capture_output=True, text=True, timeout=300, cwd="/tmp").stdout

    def num(label):
        return float(re.search(label + r":\s*([0-9.]+)", out).group(1))
    return (int(num("Refclk divisor")), int(num("Feedback divisor")),
            int(num("clkout0 divisor")), num("clkout0 frequency"), num("VCO frequency"))


@pytest.mark.parametrize("f_in,f_out", [(25, 45), (25, 48), (25, 50), (25, 62.5), (25, 81),
                                        (25, 100), (25, 133), (12, 60), (100, 37.5)])
def test_pll_settings_match_ecppll(f_in, f_out):
    """The EHXPLLL dividers are the ones ecppll picks (closest output, VCO nearest
    600 MHz among equals), within ecppll's printed precision."""
    s = ecp5_pll_settings(f_in * 1e6, f_out * 1e6)
    ref, fb, op, out, vco = _ecppll(f_in, f_out)
    assert (s.clki_div, s.clkfb_div, s.clkop_div) == (ref, fb, op)
    assert s.f_out / 1e6 == pytest.approx(out, abs=1e-3)
    assert s.f_vco / 1e6 == pytest.approx(vco, abs=1e-3)
    assert 400e6 <= s.f_vco <= 800e6 and f_in * 1e6 / s.clki_div >= 3.125e6


def test_pll_settings_errors():
    with raises_exactly(ValueError, "the PLL output must be from 3.125 to 400.0 MHz, "
                                    "not 500.0 MHz"):
        ecp5_pll_settings(25e6, 500e6)
    with raises_exactly(ValueError, "no EHXPLLL setting makes 10.0 MHz from 2.0 MHz"):
        ecp5_pll_settings(2e6, 10e6)
