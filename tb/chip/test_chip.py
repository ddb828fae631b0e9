"""cocotb tests of a chip (hdl/chip.py on a SimDram) against the chip ISS
(``sim.model.iss.run_chip``). Run through ``tests/test_rtl_chip.py``.

* ``test_registers``: the chip registers, each core's page, SLVERR and DECERR.
* ``test_chain``: tiles streamed through every core's SBUF (peer stores and cross-core
  semaphores, ``sim.isa.chipgen.chain_programs``), several sizes.
* ``test_parallel``: every core runs its own random race-free program
  (``sim.isa.progen``) in its own DRAM region, all started together: the interconnect
  under load from every core at once.
* ``test_refusals``: a peer store to a core the chip lacks (DMA PEER, nothing written,
  checked by reading the other cores' SBUFs back), a remote SEM to it (PEER), the
  chip-wide SOFT_RESET, and a good run afterwards.

Every run is compared with the ISS on the whole DRAM image and each core's end state.
The ``chip_sim2_stall`` top adds random stalls on every DRAM channel.
"""

import cocotb
import numpy as np
from cocotbext.axi.constants import AxiResp

from hdl.chipmap import CHIP_ID_VALUE, CHIP_VERSION, PeerAperture, core_page
from hdl.regmap import ID_VALUE
from sim.isa.asm import Program
from sim.isa.chipgen import chain_programs, place, relocate
from sim.isa.progen import random_program
from sim.isa.races import find_chip_races
from sim.model.dma import Dma
from sim.model.iss import run_chip
from sim.model.tensor import TensorModel
from tb.chip.tb import ChipTB

WATCHDOG = dict(timeout_time=900, timeout_unit="ms")
IMAGE = 1 << 16


async def run_checked(tb, dram, addrs, models, what, *, expect=None, max_cycles=400_000):
    """Run the chip program (``addrs[k]``: core ``k``'s program, None: idle) on the
    RTL and the ISS; compare the whole DRAM image and every started core's DONE,
    error, detail and fault address. ``models``: each core's SBUF/PSUM before the run
    (updated to the ISS's after it). ``expect``: per-core error names the ISS must
    give (default: every started core done)."""
    want = run_chip(tb.cfg, dram, addrs, models=models)
    started = [k for k, a in enumerate(addrs) if a is not None]
    for k in started:
        w = want.cores[k]
        ok = (w.error == expect[k]) if expect else (w.done and w.error == "NONE")
        if not ok:
            tb.fail(f"{what}: the ISS gives core {k} {w.error} {w.detail} {w.blocked}")
    tb.write_dram(0, dram)
    await tb.start_cores(addrs, watchdog=20_000)
    await tb.wait_cores(started, max_cycles)
    got = tb.read_dram(0, len(dram))
    bad = np.flatnonzero(got != want.dram)
    if bad.size:
        a = int(bad[0])
        tb.fail(f"{what}: DRAM differs from the ISS at {bad.size} bytes, first 0x{a:x}: "
                f"RTL {got[a]:#04x}, ISS {want.dram[a]:#04x}")
    for k in started:
        res = await tb.core_result(k)
        w = want.cores[k]
        detail = res["detail"]
        got_k = (bool(res["DONE"]), res["error"], res["fault_addr"] if res["ERROR"] else None)
        want_k = (w.done, w.error, w.fault_addr)
        if got_k != want_k:
            tb.fail(f"{what}: core {k} ended {got_k} (detail {detail}), the ISS {want_k} "
                    f"({w.detail})")
        if w.error == "DMA":
            from hdl.formats import DmaError
            if DmaError(detail).name != w.detail:
                tb.fail(f"{what}: core {k} DMA detail {DmaError(detail).name}, ISS {w.detail}")
    for k in range(tb.cores):
        models[k].sbuf[...] = want.cores[k].sbuf
        models[k].psum[...] = want.cores[k].psum
    return want


@cocotb.test(**WATCHDOG)
async def test_registers(dut):
    tb = ChipTB(dut)
    await tb.reset()
    n = tb.cores
    regs = tb.chip_regs
    for name, want in (("ID", CHIP_ID_VALUE), ("VERSION", CHIP_VERSION), ("CORES", n),
                       ("CONFIG", regs["CONFIG"].reset), ("STATUS", 0)):
        got = await tb.chip_read(name)
        if got != want:
            tb.fail(f"chip {name} reads {got:#x}, not {want:#x}")
    for k in range(n):
        if await tb.core_read(k, "ID") != ID_VALUE:
            tb.fail(f"core {k}'s page does not read ID NCOR")
        if await tb.core_read(k, "CONFIG") != regs["CONFIG"].reset:
            tb.fail(f"core {k}'s CONFIG differs from the chip's")
    # RO and unmapped chip registers: SLVERR; a page past the last core: DECERR
    for addr, resp in ((regs["ID"].offset, AxiResp.SLVERR), (0xFFC, AxiResp.SLVERR),
                       (core_page(n), AxiResp.DECERR)):
        w = await tb.csr.write(addr, (0x1234).to_bytes(4, "little"))
        if w.resp != resp:
            tb.fail(f"write to {addr:#x} answered {w.resp}, not {resp}")
    r = await tb.csr.read(core_page(n), 4)
    if r.resp != AxiResp.DECERR or r.data != bytes(4):
        tb.fail(f"read past the last core answered {r.resp} {r.data!r}")
    r = await tb.csr.read(0xFFC, 4)
    if r.resp != AxiResp.SLVERR:
        tb.fail(f"unmapped chip register read answered {r.resp}")


@cocotb.test(**WATCHDOG)
async def test_chain(dut):
    tb = ChipTB(dut)
    await tb.reset()
    cfg, n = tb.cfg, tb.cores
    models = [TensorModel(cfg) for _ in range(n)]
    for i in range(3):
        rows = int(tb.rng.integers(1, cfg.rows + 1))
        row_bytes = int(tb.rng.integers(1, min(64, cfg.sbuf_bytes // 3) + 1))
        tiles = int(tb.rng.integers(3, 8))
        src, dst = 0x8000, 0xC000
        # the second chain also checkpoints core 0's tiles to DRAM and reloads them:
        # DRAM and peer stores mixed in one DMA-out queue (the interconnect must keep
        # that core's write responses in order)
        ckpt = 0x4000 if i == 1 else None
        progs = chain_programs(cfg, n, tiles, rows, row_bytes, src=src, dst=dst,
                               checkpoint=ckpt)
        dram = np.zeros(IMAGE, np.uint8)
        addrs = []
        a = 0
        for p in progs:
            addrs.append(a)
            a = (place(dram, p.instructions, a) + 1023) // 1024 * 1024
        data = tb.rng.integers(0, 256, tiles * rows * row_bytes, dtype=np.uint8)
        dram[src:src + data.size] = data
        assert not find_chip_races(cfg, progs, addrs)
        want = await run_checked(tb, dram, addrs, models,
                                 f"chain {i}: {n} cores, {tiles} tiles of {rows}x{row_bytes}")
        if not np.array_equal(want.dram[dst:dst + data.size], data):
            tb.fail("the ISS's chain does not move the data unchanged")


@cocotb.test(**WATCHDOG)
async def test_parallel(dut):
    tb = ChipTB(dut)
    await tb.reset()
    cfg, n = tb.cfg, tb.cores
    region = IMAGE // n
    models = [TensorModel(cfg) for _ in range(n)]
    mix = {"load": 3, "matmul": 3, "act": 2, "store": 2, "reload": 0.5, "accumulate": 1}
    for i in range(2):
        dram = np.zeros(IMAGE, np.uint8)
        addrs = []
        progs = []
        for k in range(n):
            prog, image, prog_addr = random_program(cfg, tb.rng, n=25, dram_size=region,
                                                    mix=mix)
            base = k * region
            dram[base:base + region] = image
            moved = relocate(cfg, prog.instructions, base)
            place(dram, moved, base + prog_addr)
            addrs.append(base + prog_addr)
            progs.append(moved)
        assert not find_chip_races(cfg, progs, addrs)
        await run_checked(tb, dram, addrs, models, f"parallel {i}: {n} random programs")


@cocotb.test(**WATCHDOG)
async def test_refusals(dut):
    tb = ChipTB(dut)
    await tb.reset()
    cfg, n = tb.cfg, tb.cores
    ap = PeerAperture(cfg)
    models = [TensorModel(cfg) for _ in range(n)]
    dram = np.zeros(IMAGE, np.uint8)
    src = 0x8000
    dram[src:src + 4096] = tb.rng.integers(1, 256, 4096, dtype=np.uint8)
    # every core loads a tile; core 0 then pushes one to a core the chip lacks (refused,
    # nothing written), core 1 (if any) signals that core (PEER)
    assert n < 8, "the test needs a core index the chip lacks"
    progs = []
    for k in range(n):
        p = Program(cfg)
        p.dma(Dma(addr=src + 64 * k, rows=cfg.rows, row_bytes=16, row_stride=64),
              signal="in")
        if k == 0:
            p.dma(Dma(addr=ap.base | n << ap.core_shift, rows=1, row_bytes=8,
                      row_stride=ap.stride, store=True), wait=("in", 1))
        elif k == 1:
            p.signal_peer(n, 0, wait=("in", 1))
        p.end(wait=("in", 1))
        progs.append(p)
    addrs = []
    a = 0
    for p in progs:
        addrs.append(a)
        a = place(dram, p.instructions, a)
        a = (a + 255) // 256 * 256
    expect = ["DMA"] + (["PEER"] if n > 1 else []) + ["NONE"] * (n - 2)
    await run_checked(tb, dram, addrs, models, "refusals", expect=expect)
    st = tb.chip_regs["STATUS"].decode(await tb.chip_read("STATUS"))
    want_err = 0b11 if n > 1 else 0b1
    if st["ERROR"] != want_err:
        tb.fail(f"chip STATUS.ERROR {st['ERROR']:#b}, not {want_err:#b}")
    # chip-wide soft reset clears every core's error; then every core copies its SBUF
    # out: the refused store wrote nothing anywhere
    await tb.chip_write("SOFT_RESET", tb.chip_regs["SOFT_RESET"].encode(RESET=1))
    await tb.wait_cores(range(n), 10_000, chunk=20)
    st = tb.chip_regs["STATUS"].decode(await tb.chip_read("STATUS"))
    if st["ERROR"] or st["BUSY"]:
        tb.fail(f"chip STATUS after SOFT_RESET: {st}")
    dram = np.zeros(IMAGE, np.uint8)
    addrs = []
    for k in range(n):
        p = Program(cfg)
        p.dma(Dma(addr=0x8000 + k * cfg.rows * 64, rows=cfg.rows, row_bytes=64,
                  row_stride=64, store=True), signal="out")
        p.end(wait=("out", 1))
        place(dram, p.instructions, 256 * k)
        addrs.append(256 * k)
    await run_checked(tb, dram, addrs, models, "SBUFs read back after the refusals")
