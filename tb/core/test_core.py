"""cocotb tests of the whole core (hdl/core.py NeuronCore) against the ISS (sim/iss.py).
Run through ``tests/test_rtl_core.py``."""

import os

import cocotb
import numpy as np

from sim.asm import Program
from sim.dma import Dma
from sim.iss import run as iss_run
from sim.progen import random_program
from sim.races import find_races
from sim.tensor import Matmul
from tb.core.tb import CoreTB

WATCHDOG = dict(timeout_time=600, timeout_unit="ms")


def compare_dram(tb, want, what=""):
    got = tb.read_dram(0, len(want))
    bad = np.flatnonzero(got != want)
    if bad.size:
        a = int(bad[0])
        runs = np.split(bad, np.flatnonzero(np.diff(bad) != 1) + 1)
        spans = ", ".join(f"[{int(r[0]):#x}, {int(r[-1]) + 1:#x})" for r in runs[:8])
        if os.environ.get("NCORE_DUMP"):
            np.save(os.environ["NCORE_DUMP"] + "_got.npy", got)
            np.save(os.environ["NCORE_DUMP"] + "_want.npy", want)
        what = f"{what} (differing spans {spans})"
        tb.fail(f"{what}: DRAM differs from the ISS at {bad.size} bytes, first at {a:#x}: "
                f"got {got[a]:#04x}, want {want[a]:#04x}")


async def run_and_check(tb, dram, prog_addr, *, max_cycles=300_000, what="program"):
    tb.write_dram(0, dram)
    if os.environ.get("NCORE_DUMP"):
        np.save(os.environ["NCORE_DUMP"] + "_init.npy", dram)
    want = iss_run(tb.cfg, dram, prog_addr, win_base=0, win_limit=len(dram), model=tb.chip)
    # SBUF and PSUM keep their contents from one program to the next (and across
    # SOFT_RESET): the next program starts from this one's final state
    tb.chip.sbuf[...] = want.sbuf
    tb.chip.psum[...] = want.psum
    res = await tb.run(prog_addr, win=(0, len(dram)), max_cycles=max_cycles)
    if want.error != "NONE" or not want.done:
        tb.fail(f"{what}: the ISS did not finish cleanly: {want.error} {want.blocked}")
    if res["ERROR"] or not res["DONE"] or res["error"] != "NONE":
        tb.fail(f"{what}: core stopped with {res}")
    compare_dram(tb, want.dram, what)
    return res, want


@cocotb.test(**WATCHDOG)
async def test_smoke(dut):
    """DMA a tile in, one matmul, store PSUM, END."""
    tb = CoreTB(dut)
    cfg = tb.cfg
    await tb.reset()
    size = 1 << 14
    dram = np.zeros(size, dtype=np.uint8)
    dram[0x1000:0x1000 + 2048] = tb.rng.integers(0, 256, 2048, dtype=np.uint8)
    p = Program(cfg)
    R, C = cfg.rows, cfg.cols
    p.dma(Dma(addr=0x1000, rows=R, row_bytes=64, row_stride=64), signal="in")
    p.matmul(Matmul(k=R, m=C, n=16, s_off=0, x_off=16), wait=("in", 1), signal="mm")
    p.dma(Dma(addr=0x2000, rows=C, row_bytes=64, row_stride=64, store=True, mem="psum"),
          wait=("mm", 1), signal="out")
    p.end(wait=("out", 1))
    code = p.encode()
    prog = 0x3000
    dram[prog:prog + len(code)] = np.frombuffer(code, dtype=np.uint8)
    res, _ = await run_and_check(tb, dram, prog, what="smoke")
    dut._log.info(f"smoke: {res}")


@cocotb.test(**WATCHDOG)
async def test_random_programs(dut):
    """Random race-free programs (sim.progen) with random AXI backpressure."""
    tb = CoreTB(dut)
    await tb.reset()
    count = int(os.environ.get("NCORE_COUNT", "4"))
    for i in range(count):
        tb.set_backpressure(float(tb.rng.choice([0.0, 0.2, 0.5])))
        prog, dram, prog_addr = random_program(tb.cfg, tb.rng, n=30, dram_size=1 << 14)
        races = find_races(tb.cfg, prog.instructions, prog_addr)
        assert not races, races
        await run_and_check(tb, dram, prog_addr, what=f"random program {i}")
