"""cocotb tests of the whole core (hdl/core.py NeuronCore) against the ISS (sim/model/iss.py).
Run through ``tests/test_rtl_core.py``.

* ``test_smoke``: one DMA-in, MATMUL, DMA-out, END.
* ``test_each_instruction``: one small program per instruction kind (DMA load/store,
  DMA store from PSUM, MATMUL of every operand type with acc 0 and 1, ACT of every
  legal type combination from PSUM and SBUF, SEM, END with a wait).
* ``test_random_programs``: race-free random programs (``sim.isa.progen``), AXI
  backpressure drawn per program (``NCORE_COUNT`` programs, default 8).
* ``test_faults``: every :class:`hdl.isa.CoreError` (``PEER``: a remote SEM on a core
  that is not on a chip): the core stops with the ISS's
  code, detail and fault address, raises the ERROR interrupt, refuses START until
  SOFT_RESET, and runs a good program afterwards.
* ``test_csr``: reset values, RW read-back with byte strobes, RO writes and unmapped
  offsets (SLVERR), IRQ_STATUS W1C, START while BUSY, performance counters.

Every program is compared with the ISS on the whole DRAM image, and every finished
program also on the INSTRUCTIONS, TENSOR_MACS and TENSOR_ACTIVE counters.
"""

import collections
import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge
from cocotb.utils import get_sim_time
from cocotbext.axi.constants import AxiResp

from hdl.formats import ACT_BYTES, ActError, DmaError, TensorError
from hdl.isa import BODY_WIDTH, INSTR_BYTES, CoreError, Instr, Opcode
from hdl.regmap import COUNTERS
from sim.model.vector import Act
from sim.isa import codec
from sim.isa.asm import Instruction, Program
from sim.model.dma import Dma
from sim.model.iss import run as iss_run
from sim.isa.progen import random_program
from sim.isa.races import find_races
from sim.model.tensor import Matmul
from tb.common import CLOCK_PERIOD_NS
from tb.common import AxiRamErrors, float_bits
from tb.core.tb import CoreTB

WATCHDOG = dict(timeout_time=600, timeout_unit="ms")

# DRAM image of the directed tests: inputs, outputs, program.
IMAGE = 1 << 14
IN_INT = 0x000          # random bytes (INT8 operands, INT32 words)
IN_F32 = 0x400          # FP32 words of modest magnitude
IN_BF16 = 0x800         # BF16 patterns of modest magnitude
IN_FP16 = 0xC00         # FP16 patterns of modest magnitude
OUT = 0x1000            # zeros; every store writes in [OUT, PROG)
PROG = 0x3000
IN_OF = {"int8": IN_INT, "bf16": IN_BF16, "fp16": IN_FP16}


# ---------------------------------------------------------------------------------
# Images and programs
# ---------------------------------------------------------------------------------

def base_image(rng):
    """The DRAM image of a directed test: input regions filled, the rest zero."""
    dram = np.zeros(IMAGE, dtype=np.uint8)
    dram[IN_INT:IN_F32] = rng.integers(0, 256, IN_F32 - IN_INT, dtype=np.uint8)
    # magnitudes within a few binades of 1 (float_bits exponent bands)
    for lo, hi, fmt, band, dtype in ((IN_F32, IN_BF16, "fp32", (112, 140), np.uint32),
                                     (IN_BF16, IN_FP16, "bf16", (121, 134), np.uint16),
                                     (IN_FP16, OUT, "fp16", (9, 21), np.uint16)):
        bits = float_bits(rng, (hi - lo) // np.dtype(dtype).itemsize, fmt, band, dtype=dtype)
        dram[lo:hi] = bits.astype(np.dtype(dtype).newbyteorder("<")).view(np.uint8)
    return dram


def place(dram, code, addr):
    code = np.frombuffer(bytes(code), dtype=np.uint8)
    assert addr % INSTR_BYTES == 0 and addr + len(code) <= len(dram)
    dram[addr:addr + len(code)] = code
    return addr


def image_of(tb, prog, addr=PROG, raw=None, check_races=True):
    """A fresh image holding ``prog`` at ``addr``; ``raw`` maps instruction indices to
    raw 256-bit words that replace them (illegal instructions)."""
    if check_races:
        races = find_races(tb.cfg, prog, addr)
        assert not races, f"test program has races: {races}"
    dram = base_image(tb.rng)
    code = bytearray(prog.encode())
    for i, word in (raw or {}).items():
        code[INSTR_BYTES * i:INSTR_BYTES * (i + 1)] = word.to_bytes(INSTR_BYTES, "little")
    place(dram, code, addr)
    return dram


def listing(tb, dram, prog_addr, count=64):
    from sim.isa.asm import disassemble
    end = min(len(dram), prog_addr + INSTR_BYTES * count)
    return disassemble(dram[prog_addr:end].tobytes(), tb.cfg, prog_addr)


def expected_counters(cfg, dram, prog_addr, want):
    """INSTRUCTIONS, TENSOR_MACS and TENSOR_ACTIVE of the ISS's run, plus which queues
    ran something."""
    macs = active = 0
    used = collections.Counter()
    for idx in want.executed:
        a = prog_addr + INSTR_BYTES * idx
        ins = Instruction.decode(int.from_bytes(dram[a:a + INSTR_BYTES].tobytes(), "little"),
                                 cfg)
        used[ins.queue] += 1
        if ins.op == "MATMUL":
            macs += ins.cmd.k * ins.cmd.m * ins.cmd.n
            active += ins.cmd.n
    return {"instructions": len(want.executed), "tensor_macs": macs,
            "tensor_active": active}, used


def compare_dram(tb, want, what="", got=None):
    """Fail unless DRAM (or ``got``, a snapshot of it) equals ``want``."""
    if got is None:
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


def check_counters(tb, res, dram, prog_addr, want, what):
    exp, used = expected_counters(tb.cfg, dram, prog_addr, want)
    for name, value in exp.items():
        if res[name] != value:
            tb.fail(f"{what}: counter {name.upper()} = {res[name]}, expected {value}")
    cycles = res["cycles"]
    if cycles <= 0:
        tb.fail(f"{what}: CYCLES = {cycles}")
    for queue, counter in (("dma_in", "busy_dma_in"), ("dma_out", "busy_dma_out"),
                           ("tensor", "busy_tensor"), ("vector", "busy_vector")):
        if res[counter] > cycles:
            tb.fail(f"{what}: {counter.upper()} = {res[counter]} > CYCLES = {cycles}")
        if used[queue] and not res[counter]:
            tb.fail(f"{what}: {counter.upper()} = 0 but {used[queue]} {queue} "
                    f"instructions ran")


def iss(tb, dram, prog_addr, win):
    return iss_run(tb.cfg, dram, prog_addr, win_base=win[0], win_limit=win[1],
                   model=tb.chip)


def check_iss_done(tb, want, what):
    if want.error != "NONE" or not want.done:
        tb.fail(f"{what}: the ISS did not finish cleanly: {want.error} {want.blocked}")


def check_done(tb, res, dram, prog_addr, want, what, at_irq=None):
    """The run ended with DONE, DRAM as the ISS's (``at_irq``: a snapshot taken when
    the interrupt came, which must already be complete), counters as expected."""
    if res["ERROR"] or not res["DONE"] or res["error"] != "NONE":
        tb.fail(f"{what}: core stopped with {res}\n{listing(tb, dram, prog_addr)}")
    if at_irq is not None:
        compare_dram(tb, want.dram, f"{what} (at the DONE interrupt)", got=at_irq)
    compare_dram(tb, want.dram, what)
    check_counters(tb, res, dram, prog_addr, want, what)


async def run_and_check(tb, dram, prog_addr, *, max_cycles=300_000, what="program"):
    """Run a program that must finish; compare DRAM and counters with the ISS."""
    tb.write_dram(0, dram)
    if os.environ.get("NCORE_DUMP"):
        np.save(os.environ["NCORE_DUMP"] + "_init.npy", dram)
    win = (0, len(dram))
    want = iss(tb, dram, prog_addr, win)
    check_iss_done(tb, want, what)
    tb.keep_chip(want.sbuf, want.psum)
    await tb.start(prog_addr, win=win)
    await tb.wait_irq(max_cycles)
    # DONE means every write of the program is visible: snapshot DRAM at once
    at_irq = tb.read_dram(0, len(dram))
    res = await tb.result()
    check_done(tb, res, dram, prog_addr, want, what, at_irq)
    return res, want


async def run_all(tb, programs):
    """Run ``[(what, dram, prog_addr, backpressure)]`` with :func:`run_and_check`; a
    program that fails is recorded, the core soft-reset, and the next one run; fail at
    the end with every failure (so one bug does not hide the others)."""
    failures = []
    for what, dram, prog_addr, bp in programs:
        tb.set_backpressure(bp)
        try:
            await run_and_check(tb, dram, prog_addr, what=what)
            tb.dut._log.info(f"passed: {what.splitlines()[0]}")
        except AssertionError as e:
            failures.append(str(e))
            tb.dut._log.error(f"FAILED: {e}")
            await wait_idle(tb)
            await tb.soft_reset()
    if failures:
        tb.fail(f"{len(failures)} of {len(programs)} programs failed:\n"
                + "\n".join(failures))


# ---------------------------------------------------------------------------------
# Smoke test and random programs
# ---------------------------------------------------------------------------------

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
    """Random race-free programs (sim.isa.progen) with random AXI backpressure (pauses on
    every channel, so also random read and write-response latency). Every other
    program has the tensor and vector engines share one semaphore (``shared``: both
    often signal it in the same cycle, orderings become SEM barriers); all have
    back-to-back accumulations into the same PSUM entries and checkpoint stores of
    intermediate results, so the final image holds more than the last values."""
    tb = CoreTB(dut)
    await tb.reset()
    count = int(os.environ.get("NCORE_COUNT", "8"))
    programs = []
    mix = {"load": 3, "matmul": 3, "act": 2, "store": 2, "reload": 0.5, "accumulate": 1.5}
    for i in range(count):
        bp = float(tb.rng.choice([0.0, 0.2, 0.5]))
        shared = i % 2 == 1
        prog, dram, prog_addr = random_program(tb.cfg, tb.rng, n=30, dram_size=1 << 14,
                                               shared=shared, checkpoints=0.3, mix=mix)
        races = find_races(tb.cfg, prog.instructions, prog_addr)
        assert not races, races
        programs.append((f"random program {i} (backpressure {bp}, shared={shared}, {len(prog)} "
                         f"instructions at {prog_addr:#x})\n{prog.listing(prog_addr)}\n",
                         dram, prog_addr, bp))
    await run_all(tb, programs)


async def read_onchip(tb, base):
    """SBUF and PSUM as the core holds them, read through the core itself: a program of
    two DMA stores copies both to DRAM at ``base``. Sets ``tb.chip`` (the state the ISS
    starts the next program from) and returns nothing."""
    cfg = tb.cfg
    R, C, sb = cfg.rows, cfg.cols, cfg.sbuf_bytes
    pb = 4 * cfg.psum_entries
    p = Program(cfg)
    p.dma(Dma(addr=base, rows=R, row_bytes=sb, row_stride=sb, store=True), signal="d")
    p.dma(Dma(addr=base + R * sb, rows=C, row_bytes=pb, row_stride=pb, store=True,
              mem="psum"), signal="d")
    p.end(wait=("d", 2))
    prog = (base + R * sb + C * pb + 31) & ~31
    code = p.encode()
    tb.write_dram(prog, np.frombuffer(code, dtype=np.uint8))
    res = await tb.run(prog, win=(0, tb.dram_size))
    if res["ERROR"] or not res["DONE"]:
        tb.fail(f"reading SBUF/PSUM back after a reset: {res}")
    sbuf = tb.read_dram(base, R * sb).reshape(R, sb)
    psum = tb.read_dram(base + R * sb, C * pb).view("<u4").reshape(
        C, cfg.psum_banks, cfg.psum_depth)
    tb.keep_chip(sbuf, psum)


@cocotb.test(**WATCHDOG)
async def test_reset_stress(dut):
    """SOFT_RESET or the reset pin at a random cycle of a random program (before its
    first fetch, mid-burst, after its END), then a full random program that must match
    the ISS. What the interrupted program left in SBUF and PSUM is read back through the
    core first (``read_onchip``): memories keep their contents over a reset, and the
    next program starts from them. ``NCORE_RESETS`` sets the count (both kinds
    alternate)."""
    cfg_dram = 1 << 17
    tb = CoreTB(dut, dram_size=cfg_dram)
    await tb.reset()
    cfg = tb.cfg
    count = int(os.environ.get("NCORE_RESETS", "4"))
    for i in range(count):
        kind = ("soft", "pin")[i % 2]
        tb.set_backpressure(float(tb.rng.choice([0.0, 0.3])))
        prog, dram, prog_addr = random_program(cfg, tb.rng, n=30, dram_size=1 << 14)
        tb.write_dram(0, dram)
        await tb.start(prog_addr, win=(0, len(dram)))
        at = int(tb.rng.integers(0, 4000))
        await ClockCycles(dut.clk, at)
        what = f"reset {i} ({kind} at cycle {at} of a random program)"
        if kind == "soft":
            await tb.soft_reset()
        else:
            dut.rst.value = 1
            await ClockCycles(dut.clk, 3)
            dut.rst.value = 0
            await ClockCycles(dut.clk, 2)
            await tb.write_reg("IRQ_STATUS", 0b11)
        st = await tb.status()
        if st["BUSY"]:
            tb.fail(f"{what}: core still busy after the reset: {st}")
        await read_onchip(tb, 1 << 14)
        prog, dram, prog_addr = random_program(cfg, tb.rng, n=30, dram_size=1 << 14)
        await run_and_check(tb, dram, prog_addr,
                            what=f"full program after {what}\n{prog.listing(prog_addr)}")
        dut._log.info(f"passed: {what}")


# ---------------------------------------------------------------------------------
# One program per instruction kind
# ---------------------------------------------------------------------------------

def prog_dma_sbuf(cfg):
    """DMA loads (aligned multi-burst, unaligned, overlapping and zero strides) into
    SBUF, then stores of the same bytes back to DRAM."""
    R = cfg.rows
    p = Program(cfg)
    p.dma(Dma(addr=IN_INT + 0x40, rows=R, row_bytes=256, row_stride=256 if R <= 3 else 96,
              partition=0, offset=1024), signal="ld")
    p.dma(Dma(addr=IN_INT + 0x13, rows=R, row_bytes=37, row_stride=50, partition=0,
              offset=5), signal="ld")
    p.dma(Dma(addr=IN_F32 + 0x7, rows=max(1, R - 1), row_bytes=11, row_stride=0,
              partition=min(1, R - 1), offset=2000, tag=0xA5), signal="ld")
    p.dma(Dma(addr=OUT + 0x3, rows=R, row_bytes=256, row_stride=300, partition=0,
              offset=1024, store=True), wait=("ld", 1), signal="st")
    p.dma(Dma(addr=OUT + 0xA00, rows=R, row_bytes=37, row_stride=41, partition=0, offset=5,
              store=True, tag=7), wait=("ld", 2), signal="st")
    p.dma(Dma(addr=OUT + 0xC01, rows=max(1, R - 1), row_bytes=11, row_stride=13,
              partition=min(1, R - 1), offset=2000, store=True), wait=("ld", 3), signal="st")
    # a store whose rows overlap in DRAM (later rows win)
    p.dma(Dma(addr=OUT + 0x1000, rows=R, row_bytes=24, row_stride=9, partition=0,
              offset=1024 + 3, store=True), wait=("st", 3), signal="st")
    p.end(wait=("st", 4))
    return p


def prog_matmul(cfg, dtype, bank):
    """Operands in, MATMUL acc=0, MATMUL acc=1 on the same PSUM entries (other tiles,
    fewer rows and columns), PSUM out."""
    R, C = cfg.rows, cfg.cols
    p = Program(cfg)
    p.dma(Dma(addr=IN_OF[dtype], rows=R, row_bytes=256, row_stride=96, partition=0,
              offset=0), signal="ld")
    n = 24
    p.matmul(Matmul(k=R, m=C, n=n, s_off=0, x_off=C + 3, bank=bank, psum_off=3,
                    acc=False, dtype=dtype), wait=("ld", 1), signal="mm")
    p.matmul(Matmul(k=max(1, R - 1), p0=min(1, R - 1), m=max(1, C - 1), n=n - 5,
                    s_off=40, x_off=70, bank=bank, psum_off=5, acc=True, dtype=dtype),
             signal="mm")
    p.dma(Dma(addr=OUT + 0x100 * bank, rows=C, row_bytes=4 * (n + 2), row_stride=4 * (n + 2),
              partition=0, offset=4 * (bank * cfg.psum_depth + 2), store=True, mem="psum"),
          wait=("mm", 2), signal="st")
    p.end(wait=("st", 1))
    return p


def prog_dma_psum(cfg):
    """DMA stores from PSUM: unaligned, across a bank boundary, a partial set of
    partitions (the data: three matmuls, one each side of the bank 0/1 boundary)."""
    R, C, D = cfg.rows, cfg.cols, cfg.psum_depth
    p = Program(cfg)
    p.dma(Dma(addr=IN_INT + 0x100, rows=R, row_bytes=128, row_stride=80), signal="ld")
    p.matmul(Matmul(k=R, m=C, n=16, s_off=0, x_off=10, bank=0, psum_off=D - 16),
             wait=("ld", 1), signal="mm")
    p.matmul(Matmul(k=R, m=C, n=16, s_off=5, x_off=30, bank=1, psum_off=0), signal="mm")
    p.matmul(Matmul(k=R, m=C, n=40, s_off=9, x_off=60, bank=2, psum_off=1), signal="mm")
    p.dma(Dma(addr=OUT + 0x5, rows=C, row_bytes=4 * 9 + 3, row_stride=57, partition=0,
              offset=4 * (D - 5) + 1, store=True, mem="psum"), wait=("mm", 3), signal="st")
    p.dma(Dma(addr=OUT + 0x400, rows=max(1, C - 1), row_bytes=4 * 30, row_stride=4 * 31,
              partition=min(1, C - 1), offset=4 * (2 * D + 1), store=True, mem="psum",
              tag=3), wait=("mm", 3), signal="st")
    p.dma(Dma(addr=OUT + 0x800, rows=1, row_bytes=4 * 3 * D // 2, partition=C - 1,
              offset=4 * D // 2, store=True, mem="psum"), wait=("mm", 3), signal="st")
    p.end(wait=("st", 3))
    return p


def act_combos(cfg):
    """Legal (src_fp, dst_type) of the configuration."""
    out = [(False, "INT32"), (False, "INT8")]
    if cfg.has_float:
        out += [(True, "FP32"), (True, "BF16"), (True, "FP16")]
    return out


def prog_act(cfg, rng, src_fp, dst, src_psum, bias, relu):
    """One ACT: from PSUM (just written by a MATMUL) or from SBUF (just loaded), with or
    without a bias (loaded), result stored to DRAM."""
    R, C, D = cfg.rows, cfg.cols, cfg.psum_depth
    p = Program(cfg)
    n = 20
    size = ACT_BYTES[dst]
    words = IN_F32 if src_fp else IN_INT
    loads = 0
    if src_psum:
        dtype = "bf16" if src_fp else "int8"
        p.dma(Dma(addr=IN_OF[dtype], rows=R, row_bytes=128, row_stride=128), signal="ld")
        loads += 1
        p.matmul(Matmul(k=R, m=C, n=n, s_off=0, x_off=16, bank=1, psum_off=5, dtype=dtype),
                 wait=("ld", 1), signal="mm")
        parts, src_p0, dst_p0 = min(R, C), 0, max(0, R - min(R, C))
        src_off = D + 5
    else:
        parts, src_p0, dst_p0 = max(1, R - 1), min(1, R - 1), 0
        p.dma(Dma(addr=words + 0x20, rows=R, row_bytes=4 * n, row_stride=4 * n + 4,
                  offset=512), signal="ld")
        loads += 1
        src_off = 512 // 4
    if bias:
        p.dma(Dma(addr=words + 0x300, rows=R, row_bytes=4, row_stride=12, offset=1024),
              signal="ld")
        loads += 1
    int8 = dst == "INT8"
    act = Act(parts=parts, n=n, dst_type=dst, src_psum=src_psum, src_fp=src_fp,
              src_p0=src_p0, src_off=src_off, dst_p0=dst_p0, dst_off=2048, bias=bias,
              bias_off=1024, relu=relu,
              scale=int(rng.integers(-(1 << 15), 1 << 15)) if int8 else 1,
              shift=int(rng.integers(0, 25)) if int8 else 0,
              zp=int(rng.integers(-128, 128)) if int8 else 0)
    # wait for the last load (DMA-in is in order) and, from PSUM, for the matmul
    if src_psum:
        p.sem(wait=("ld", loads))
        p.act(act, wait=("mm", 1), signal="act")
    else:
        p.act(act, wait=("ld", loads), signal="act")
    p.dma(Dma(addr=OUT + 0x11, rows=parts, row_bytes=n * size, row_stride=n * size + 3,
              partition=dst_p0, offset=2048, store=True), wait=("act", 1), signal="st")
    p.end(wait=("st", 1))
    return p


def prog_act_in_place(cfg):
    """ACT INT32 -> INT32 with ReLU, in place in SBUF."""
    R = cfg.rows
    p = Program(cfg)
    p.dma(Dma(addr=IN_INT + 0x80, rows=R, row_bytes=64, row_stride=64, offset=256),
          signal="ld")
    p.act(Act(parts=R, n=16, dst_type="INT32", src_psum=False, src_fp=False, src_off=64,
              dst_off=256, relu=True), wait=("ld", 1), signal="act")
    p.dma(Dma(addr=OUT, rows=R, row_bytes=64, row_stride=64, offset=256, store=True),
          wait=("act", 1), signal="st")
    p.end(wait=("st", 1))
    return p


def prog_sem(cfg):
    """SEM with wait and signal, signal only, wait only; waits for values above 1; a
    MATMUL and a store ordered through SEM-signalled semaphores; END with a wait."""
    R, C = cfg.rows, cfg.cols
    p = Program(cfg)
    p.dma(Dma(addr=IN_INT, rows=R, row_bytes=64, row_stride=64), signal="a")
    p.dma(Dma(addr=IN_INT + 0x200, rows=R, row_bytes=64, row_stride=64, offset=64),
          signal="a")
    p.sem(wait=("a", 2), signal="b")              # both loads done
    p.sem(signal="c")                             # signal only
    p.sem(wait=("c", 1))                          # wait only
    p.matmul(Matmul(k=R, m=C, n=32, s_off=0, x_off=64), wait=("b", 1), signal="d")
    p.sem(wait=("d", 1), signal="b")
    p.dma(Dma(addr=OUT, rows=C, row_bytes=128, row_stride=128, store=True, mem="psum"),
          wait=("b", 2), signal="e")
    p.dma(Dma(addr=OUT + 0x800, rows=R, row_bytes=128, row_stride=128, store=True),
          wait=("b", 2), signal="e")
    p.end(wait=("e", 2))
    return p


def prog_shared_sem(cfg, count=48):
    """The tensor and vector engines signal one semaphore: ``count`` short MATMULs (N of
    1 or 2, accumulating into the same PSUM entries back to back) interleaved with
    ``count`` short ACTs, all signalling ``shared``, so their completions often fall in
    the same cycle; a SEM waits for all ``2 * count`` signals before the results are
    stored. An increment lost when two engines signal at once hangs the SEM (the run
    then misses its interrupt). Random programs never share a semaphore between
    engines (``sim.isa.progen``: one per queue), so only this program checks it."""
    R, C = cfg.rows, cfg.cols
    p = Program(cfg)
    p.dma(Dma(addr=IN_INT, rows=R, row_bytes=256, row_stride=256), signal="ld")
    # MATMUL i and ACT i both start once all 2i earlier signals have arrived; the ACT's
    # length sweeps 1..count elements (a cycle each) against a MATMUL of 1 or 2
    # columns, so in some pair the two completions fall in the same cycle
    for i in range(count):
        wait = ("shared", 2 * i) if i else ("ld", 1)
        p.matmul(Matmul(k=R, m=C, n=1 + i % 2, s_off=3 * i, x_off=100 + i, bank=0,
                        psum_off=7, acc=i > 0), wait=wait, signal="shared")
        p.act(Act(parts=R, n=1 + i, dst_type="INT32", src_psum=False, src_fp=False,
                  src_off=i % 16, dst_off=1024 + 8 * i, relu=bool(i % 2)),
              wait=wait, signal="shared")
    p.sem(wait=("shared", 2 * count), signal="all")
    p.dma(Dma(addr=OUT, rows=C, row_bytes=8, row_stride=8, offset=4 * 7, store=True,
              mem="psum"), wait=("all", 1), signal="st")
    # (ACT i overwrites part of ACT i-1's output: ordered by the waits, no race)
    span = 12 * count
    p.dma(Dma(addr=OUT + 0x100, rows=R, row_bytes=span, row_stride=span, offset=1024,
              store=True), wait=("all", 1), signal="st")
    p.end(wait=("st", 2))
    return p


def prog_end_wait(cfg):
    """A store that only END waits for (END waits for its semaphore, then for every
    engine)."""
    R = cfg.rows
    p = Program(cfg)
    p.dma(Dma(addr=IN_INT + 0x33, rows=R, row_bytes=40, row_stride=40, offset=8),
          signal="ld")
    p.dma(Dma(addr=OUT + 0x101, rows=R, row_bytes=40, row_stride=40, offset=8,
              store=True), wait=("ld", 1), signal="st")
    p.end(wait=("st", 1))
    return p


def prog_end_after_store(cfg):
    """END without a wait right behind a DMA store: END must wait for it. The SEM holds
    the decoder until the load is done, so the store is queued, and END decoded, in
    the two cycles after the SEM (END is fetched by then)."""
    p = Program(cfg)
    p.dma(Dma(addr=IN_INT, rows=1, row_bytes=8), signal="a")
    p.sem(wait=("a", 1))
    p.dma(Dma(addr=OUT + 0x40, rows=cfg.rows, row_bytes=24, row_stride=24, store=True))
    p.end()
    return p


def prog_end_after_issue(cfg):
    """END without a wait while a store waits in its queue: END must wait until the
    store has finished (it is issued the cycle before END sees the queues empty)."""
    R = cfg.rows
    p = Program(cfg)
    p.dma(Dma(addr=IN_INT, rows=1, row_bytes=8), signal="a")
    p.dma(Dma(addr=OUT + 0x100, rows=R, row_bytes=64, row_stride=64, store=True),
          wait=("a", 1))
    p.end()
    return p


def each_instruction_programs(tb):
    cfg = tb.cfg
    out = [("DMA load + store (SBUF)", prog_dma_sbuf(cfg))]
    for i, dtype in enumerate(cfg.dtypes):
        out.append((f"MATMUL {dtype} acc=0 then acc=1", prog_matmul(cfg, dtype, i % 4)))
    out.append(("DMA store from PSUM", prog_dma_psum(cfg)))
    for j, (src_fp, dst) in enumerate(act_combos(cfg)):
        for src_psum in (True, False):
            bias, relu = (src_psum ^ (j % 2 == 0)), (src_psum ^ (j % 2 == 1))
            out.append((f"ACT {'FP32' if src_fp else 'INT32'} -> {dst} from "
                        f"{'PSUM' if src_psum else 'SBUF'} bias={int(bias)} relu={int(relu)}",
                        prog_act(cfg, tb.rng, src_fp, dst, src_psum, bias, relu)))
    out.append(("ACT INT32 in place", prog_act_in_place(cfg)))
    out.append(("SEM wait/signal", prog_sem(cfg)))
    out.append(("one semaphore signalled by the tensor and vector engines",
                prog_shared_sem(cfg)))
    out.append(("END with wait", prog_end_wait(cfg)))
    out.append(("END without wait after a store", prog_end_after_store(cfg)))
    out.append(("END without wait, store issued last", prog_end_after_issue(cfg)))
    return out


@cocotb.test(**WATCHDOG)
async def test_each_instruction(dut):
    """One program per instruction kind, each compared with the ISS (whole DRAM)."""
    tb = CoreTB(dut)
    await tb.reset()
    await run_all(tb, [(f"{what}\n{prog.listing(PROG)}\n", image_of(tb, prog), PROG, 0.0)
                       for what, prog in each_instruction_programs(tb)])


# ---------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------

#: ISS detail name -> ERROR.DETAIL value, per error code
_DETAIL_ENUM = {"DMA": DmaError, "TENSOR": TensorError, "VECTOR": ActError}


def detail_value(error, detail):
    if error in _DETAIL_ENUM:
        return _DETAIL_ENUM[error][detail].value
    return 0


async def wait_idle(tb, polls=200):
    """Poll STATUS until BUSY is clear (bounded); the last STATUS read."""
    for _ in range(polls):
        st = await tb.status()
        if not st["BUSY"]:
            break
        await ClockCycles(tb.dut.clk, 10)
    return st


async def check_fault(tb, dram, prog_addr, *, win, watchdog=0, what, detail=None,
                      compare=True, problems=None):
    """Run a program that must fault; check the fault against the ISS, the documented
    state after it, START refused while ERROR is set, and SOFT_RESET's effect.
    ``detail`` overrides the ISS's detail name (the ISS knows no SLVERR). A STATUS.BUSY
    that does not fall after the fault is appended to ``problems`` (so the other cases
    still run) rather than failing at once."""
    regs = tb.regs
    tb.write_dram(0, dram)
    want = iss(tb, dram, prog_addr, win)
    if want.error == "NONE":
        tb.fail(f"{what}: the ISS did not fault\n{listing(tb, dram, prog_addr)}")
    code = CoreError[want.error].value
    det = detail_value(want.error, detail or want.detail)
    what = (f"{what} (expected {want.error}/{detail or want.detail} at "
            f"{want.fault_addr:#x})\n{listing(tb, dram, prog_addr, 16)}\n")
    res = await tb.run(prog_addr, win=win, watchdog=watchdog, max_cycles=50_000)
    got = (res["error"], res["detail"], res["fault_addr"])
    if got != (want.error, det, want.fault_addr) or not res["ERROR"] or res["DONE"]:
        tb.fail(f"{what}: core reports {got}, ERROR={res['ERROR']} DONE={res['DONE']}, "
                f"expected {(want.error, det, want.fault_addr)}")
    assert code == CoreError[res["error"]].value
    short = what.split("\n")[0]
    st = await wait_idle(tb)
    busy = st["BUSY"]
    if busy:
        msg = f"{short}: STATUS.BUSY still set 2000+ cycles after the fault (STATUS {st})"
        if problems is None:
            tb.fail(msg)
        problems.append(msg)
    if dict(st, BUSY=0) != {"BUSY": 0, "DONE": 0, "ERROR": 1, "START_REJECTED": 0}:
        tb.fail(f"{what}: STATUS after the fault {st}")
    irq = regs["IRQ_STATUS"].decode(await tb.read_reg("IRQ_STATUS"))
    if irq != {"DONE": 0, "ERROR": 1} or not int(tb.dut.o_irq.value):
        tb.fail(f"{what}: IRQ_STATUS {irq}, o_irq {int(tb.dut.o_irq.value)}")
    if compare:
        # only effects ordered before the fault (by a SEM) are written in these programs
        compare_dram(tb, want.dram, what)
    tb.keep_chip(want.sbuf, want.psum)

    # START while ERROR is set: refused, flagged, nothing runs
    instructions = await tb.read_counter("INSTRUCTIONS")
    await tb.write_reg("CTRL", regs["CTRL"].encode(START=1))
    await ClockCycles(tb.dut.clk, 20)
    st = await tb.status()
    if st != {"BUSY": busy, "DONE": 0, "ERROR": 1, "START_REJECTED": 1}:
        tb.fail(f"{what}: STATUS after START while ERROR {st}")
    if await tb.read_counter("INSTRUCTIONS") != instructions:
        tb.fail(f"{what}: INSTRUCTIONS changed after a refused START")
    err = regs["ERROR"].decode(await tb.read_reg("ERROR"))
    if (err["CODE"], err["DETAIL"]) != (code, det):
        tb.fail(f"{what}: ERROR changed after a refused START: {err}")

    # SOFT_RESET: STATUS, ERROR, FAULT_ADDR and counters cleared; RW registers and
    # IRQ_STATUS kept
    prog_lo = await tb.read_reg("PROG_ADDR_LO")
    await tb.write_reg("CTRL", regs["CTRL"].encode(SOFT_RESET=1))
    await ClockCycles(tb.dut.clk, 2)
    st = await tb.status()
    if st != {"BUSY": 0, "DONE": 0, "ERROR": 0, "START_REJECTED": 0}:
        tb.fail(f"{what}: STATUS after SOFT_RESET {st}")
    for name in ("ERROR", "FAULT_ADDR_LO", "FAULT_ADDR_HI"):
        if await tb.read_reg(name):
            tb.fail(f"{what}: {name} not cleared by SOFT_RESET")
    for name, _ in COUNTERS:
        if await tb.read_counter(name):
            tb.fail(f"{what}: counter {name} not cleared by SOFT_RESET")
    if await tb.read_reg("PROG_ADDR_LO") != prog_lo \
            or await tb.read_reg("WATCHDOG") != watchdog:
        tb.fail(f"{what}: SOFT_RESET changed an RW register")
    irq = regs["IRQ_STATUS"].decode(await tb.read_reg("IRQ_STATUS"))
    if irq != {"DONE": 0, "ERROR": 1}:
        tb.fail(f"{what}: IRQ_STATUS after SOFT_RESET {irq} (SOFT_RESET leaves it alone)")
    await tb.write_reg("IRQ_STATUS", regs["IRQ_STATUS"].encode(ERROR=1))
    await ClockCycles(tb.dut.clk, 1)
    if int(tb.dut.o_irq.value) or await tb.read_reg("IRQ_STATUS"):
        tb.fail(f"{what}: interrupt not cleared by W1C")
    return want


def recovery_program(cfg):
    """A self-contained program using every engine (it reads only what it writes, so
    its result does not depend on what a faulted program left on chip)."""
    R, C = cfg.rows, cfg.cols
    p = Program(cfg)
    p.dma(Dma(addr=IN_INT + 0x10, rows=R, row_bytes=96, row_stride=40), signal="ld")
    p.dma(Dma(addr=IN_INT + 0x200, rows=R, row_bytes=64, row_stride=64, offset=512),
          signal="ld")
    p.matmul(Matmul(k=R, m=C, n=40, s_off=0, x_off=20, bank=2), wait=("ld", 1),
             signal="mm")
    p.act(Act(parts=R, n=16, dst_type="INT8", src_psum=False, src_fp=False, src_off=128,
              dst_off=700, scale=1234, shift=9, zp=-3, relu=True), wait=("ld", 2),
          signal="act")
    p.dma(Dma(addr=OUT, rows=C, row_bytes=160, row_stride=160, offset=4 * 2 * cfg.psum_depth,
              mem="psum", store=True), wait=("mm", 1), signal="st")
    p.dma(Dma(addr=OUT + 0x800, rows=R, row_bytes=16, row_stride=17, offset=700,
              store=True), wait=("act", 1), signal="st")
    p.end(wait=("st", 2))
    return p


def fault_prefix(cfg, p):
    """Load, store, and a SEM that waits for the store: effects ordered before
    whatever follows."""
    R = cfg.rows
    p.dma(Dma(addr=IN_INT + 0x21, rows=R, row_bytes=30, row_stride=33, offset=300),
          signal="pl")
    p.dma(Dma(addr=OUT + 0x41, rows=R, row_bytes=30, row_stride=31, offset=300, store=True),
          wait=("pl", 1), signal="ps")
    p.sem(wait=("ps", 1))


def _with(word, **fields):
    """``word`` (an :class:`hdl.isa.Instr`) with header fields or the body replaced:
    words the assembler refuses to write."""
    return codec.replace(Instr, word, **fields)


def _body(word):
    return codec.decode(Instr, word)["body"]


def fault_cases(tb):
    """``(name, Program, {index: raw word}, options)`` of every fault case."""
    cfg = tb.cfg
    R, C = cfg.rows, cfg.cols
    full = (0, 1 << cfg.axi_addr_width)
    cases = []

    def case(name, build, raw=None, **opts):
        p = Program(cfg)
        fault_prefix(cfg, p)
        idx = build(p)
        raws = {}
        if raw is not None:
            raws[idx] = raw(p.instructions[idx])
        opts.setdefault("win", full)
        cases.append((name, p, raws, opts))

    def decode_fault(name, raw, **opts):
        def build(p):
            idx = p.sem()                       # placeholder, replaced by the raw word
            # a store after the fault: must never run (the DRAM comparison sees it)
            p.dma(Dma(addr=OUT + 0x400, rows=1, row_bytes=16, store=True))
            p.end()
            return idx
        case(name, build, raw, **opts)

    sem_word = Instruction("SEM").encode()
    decode_fault("OPCODE 0", lambda _: _with(sem_word, opcode=0, body=1 << 8))
    decode_fault("OPCODE 0 (zero word)", lambda _: 0)
    decode_fault("OPCODE 7", lambda _: _with(Instruction("SEM", signal=1).encode(), opcode=7))
    decode_fault("OPCODE 15", lambda _: _with(sem_word, opcode=15))
    decode_fault("RESERVED SEM body bit", lambda _: _with(sem_word, body=1))
    dma_word = Instruction("DMA", Dma(addr=OUT, rows=1, row_bytes=4)).encode()
    decode_fault("RESERVED DMA body bit",
                 lambda _: _with(dma_word, body=_body(dma_word) | 1 << BODY_WIDTH[Opcode.DMA]))
    decode_fault("RESERVED wait_val without wait_en", lambda _: _with(sem_word, wait_val=5))
    decode_fault("RESERVED sig_sem without sig_en", lambda _: _with(sem_word, sig_sem=3))
    # a cross-core signal on a core that is not on a chip (hdl.isa.SemCmd)
    decode_fault("PEER remote SEM off a chip",
                 lambda _: Instruction("SEM", signal=0, peer=1).encode())
    if cfg.n_sems < 32:
        decode_fault("SEM_RANGE signal",
                     lambda _: Instruction("SEM", signal=cfg.n_sems).encode())
        decode_fault("SEM_RANGE wait",
                     lambda _: Instruction("DMA", Dma(addr=OUT, rows=1, row_bytes=4),
                                           wait=(31, 1)).encode())

    def engine_fault(name, op, cmd, **opts):
        def build(p):
            idx = getattr(p, op)(cmd)
            # hold the decoder until the engine has refused (the watchdog, far later,
            # would end a run whose engine did not fault)
            p.end(wait=("never", 1))
            return idx
        opts.setdefault("watchdog", 5000)
        case(name, build, **opts)

    # a tile outside the window [0, OUT + 0x400): refused, nothing moved
    engine_fault("DMA WINDOW (load)", "dma",
                 Dma(addr=OUT + 0x800, rows=R, row_bytes=16, row_stride=16),
                 win=(0, OUT + 0x400))
    engine_fault("DMA WINDOW (store)", "dma",
                 Dma(addr=OUT + 0x3F8, rows=1, row_bytes=16, store=True),
                 win=(0, OUT + 0x400))
    engine_fault("DMA RANGE", "dma", Dma(addr=IN_INT, rows=R + 1, row_bytes=8))
    engine_fault("DMA TARGET", "dma", Dma(addr=IN_INT, rows=1, row_bytes=8, mem="psum"))
    engine_fault("DMA DECERR (load past the DRAM)", "dma",
                 Dma(addr=IMAGE - 8, rows=2, row_bytes=8, row_stride=64))
    engine_fault("DMA SLVERR (store)", "dma",
                 Dma(addr=IMAGE + 0x100, rows=2, row_bytes=24, row_stride=32, store=True),
                 detail="SLVERR", slverr=(IMAGE, IMAGE + 0x1000))
    engine_fault("TENSOR K_RANGE", "matmul", Matmul(k=R + 1, m=C, n=8))
    engine_fault("TENSOR N_RANGE", "matmul", Matmul(k=R, m=C, n=cfg.psum_depth + 1))
    if "bf16" not in cfg.dtypes:
        engine_fault("TENSOR DTYPE", "matmul", Matmul(k=R, m=C, n=8, dtype="bf16"))
    engine_fault("VECTOR PARTS", "act", Act(parts=0, n=4, src_fp=False, dst_type="INT32"))
    engine_fault("VECTOR SRC_RANGE", "act",
                 Act(parts=1, n=8, src_fp=False, dst_type="INT32",
                     src_off=cfg.psum_entries - 4))
    if not cfg.has_float:
        engine_fault("VECTOR TYPES", "act", Act(parts=1, n=4, src_fp=True, dst_type="FP32"))

    # WATCHDOG: a queue head waiting for a semaphore nobody signals (END then waits
    # for the engines), and a SEM waiting in the decoder
    def wd_queue(p):
        i = p.dma(Dma(addr=IN_INT, rows=1, row_bytes=8), wait=("never", 1))
        p.dma(Dma(addr=OUT + 0x400, rows=1, row_bytes=8, store=True), wait=("never", 2))
        p.sem()
        p.end()
        return i

    def wd_sem(p):
        i = p.sem(wait=("never", 1), signal="x")
        p.end()
        return i

    def wd_end(p):
        p.matmul(Matmul(k=R, m=C, n=8))
        return p.end(wait=("never", 3))

    case("WATCHDOG (DMA queue head)", wd_queue, watchdog=200)
    case("WATCHDOG (SEM)", wd_sem, watchdog=200)
    case("WATCHDOG (END)", wd_end, watchdog=150)
    return cases


@cocotb.test(**WATCHDOG)
async def test_faults(dut):
    """Every fault: code, detail and address as the ISS says, ERROR interrupt, BUSY
    falls, START refused until SOFT_RESET, then a good program runs correctly."""
    tb = CoreTB(dut)
    await tb.reset()
    errs = AxiRamErrors(tb.ram)
    # everything past the image answers DECERR (the ISS's DRAM ends there)
    errs.regions = [(IMAGE, 1 << 48, "decerr")]
    good = recovery_program(tb.cfg)
    cases = fault_cases(tb)
    seen = set()
    problems = []
    for name, prog, raw, opts in cases:
        slverr = opts.pop("slverr", None)
        errs.regions = ([(*slverr, "slverr")] if slverr else []) + [(IMAGE, 1 << 48, "decerr")]
        dram = image_of(tb, prog, raw=raw)
        want = await check_fault(tb, dram, PROG, what=f"fault {name}", problems=problems,
                                 **opts)
        seen.add(want.error)
        await run_and_check(tb, image_of(tb, good), PROG, what=f"recovery after {name}")
        dut._log.info(f"passed: fault {name} ({want.error} "
                      f"{opts.get('detail') or want.detail})")

    # FETCH: a program without END at the end of the DRAM runs into the error region
    errs.regions = [(IMAGE, 1 << 48, "decerr")]
    p = Program(tb.cfg)
    fault_prefix(tb.cfg, p)
    p.matmul(Matmul(k=tb.cfg.rows, m=tb.cfg.cols, n=8))
    addr = IMAGE - INSTR_BYTES * len(p)
    dram = image_of(tb, p, addr=addr)
    want = await check_fault(tb, dram, addr, win=(0, IMAGE), what="fault FETCH",
                             problems=problems)
    seen.add(want.error)
    await run_and_check(tb, image_of(tb, good), PROG, what="recovery after FETCH")
    dut._log.info("passed: fault FETCH")
    missing = {e.name for e in CoreError} - {"NONE"} - seen
    assert not missing, f"fault codes not exercised: {missing}"
    if problems:
        tb.fail("the core did not reach the documented state after some faults "
                "(everything else passed):\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------------------------
# CSRs
# ---------------------------------------------------------------------------------

async def read_resp(tb, addr):
    r = await tb.csr.read(addr, 4)
    return int.from_bytes(r.data, "little"), r.resp


async def write_resp(tb, addr, value, nbytes=4):
    r = await tb.csr.write(addr, int(value).to_bytes(nbytes, "little"))
    return r.resp


def long_program(cfg):
    """Six long matmuls (n = psum_depth) and a few stores: thousands of cycles."""
    R, C, D = cfg.rows, cfg.cols, cfg.psum_depth
    p = Program(cfg)
    p.dma(Dma(addr=IN_INT, rows=R, row_bytes=512, row_stride=64), signal="ld")
    for j in range(6):
        p.matmul(Matmul(k=R, m=C, n=D, s_off=j * 3, x_off=40 + j * 30, bank=j % 4,
                        acc=j >= 4), wait=("ld", 1), signal="mm")
    for b in range(4):
        p.dma(Dma(addr=OUT + 0x400 * b, rows=C, row_bytes=64, row_stride=128,
                  offset=4 * (b * D + 100), mem="psum", store=True),
              wait=("mm", 6), signal="st")
    p.end(wait=("st", 4))
    return p


@cocotb.test(**WATCHDOG)
async def test_csr(dut):
    """Registers of the whole core: reset values, RW with byte strobes, SLVERR, W1C,
    START while BUSY, START+SOFT_RESET, counters."""
    tb = CoreTB(dut)
    cfg, regs = tb.cfg, tb.regs
    await tb.reset()

    # -- reset values ---------------------------------------------------------------
    for r in regs:
        value, resp = await read_resp(tb, r.offset)
        if resp != AxiResp.OKAY or value != r.reset:
            tb.fail(f"{r.name} after reset: {value:#x} {resp!r}, expected {r.reset:#x}")
    config = regs["CONFIG"].decode(await tb.read_reg("CONFIG"))
    dtype_bits = regs.field("CONFIG.DTYPES").get(await tb.read_reg("CONFIG"))
    assert (config["ROWS"], config["COLS"], config["N_SEMS"]) == (cfg.rows, cfg.cols,
                                                                  cfg.n_sems), config
    from hdl.config import DTYPES
    assert [d for i, d in enumerate(DTYPES) if dtype_bits >> i & 1] == list(cfg.dtypes)
    assert config["FTZ"] == int(not cfg.subnormals), config
    assert int(dut.o_irq.value) == 0

    # -- unmapped offsets and RO registers: SLVERR, nothing changes ------------------------
    unmapped = [a for a in (0x00C, 0x020, 0x02C, 0x04C, 0x050, 0x0FC, 0x140, 0x800, 0xFFC)
                if regs.at(a) is None]
    assert len(unmapped) >= 6
    for addr in unmapped:
        value, resp = await read_resp(tb, addr)
        if (value, resp) != (0, AxiResp.SLVERR):
            tb.fail(f"read of unmapped {addr:#x}: {value:#x} {resp!r}")
        resp = await write_resp(tb, addr, 0xFFFF_FFFF)
        if resp != AxiResp.SLVERR:
            tb.fail(f"write to unmapped {addr:#x}: {resp!r}")
    for r in regs:
        if r.access == "RO":
            resp = await write_resp(tb, r.offset, 0xFFFF_FFFF)
            if resp != AxiResp.SLVERR:
                tb.fail(f"write to RO {r.name}: {resp!r}")
    for r in regs:
        value, resp = await read_resp(tb, r.offset)
        if (value, resp) != (r.reset, AxiResp.OKAY):
            tb.fail(f"{r.name} after SLVERR writes: {value:#x} {resp!r}")

    # -- RW registers: full writes and byte-strobed writes, read back ----------------------
    rw = [r for r in regs if r.access == "RW"]
    model = {r.name: r.reset for r in rw}
    for step in range(40):
        r = rw[int(tb.rng.integers(len(rw)))]
        first = int(tb.rng.integers(4)) if step % 2 else 0
        nbytes = int(tb.rng.integers(1, 5 - first)) if step % 2 else 4
        value = int(tb.rng.integers(1 << 32)) & ((1 << 8 * nbytes) - 1)
        resp = await write_resp(tb, r.offset + first, value, nbytes)
        if resp != AxiResp.OKAY:
            tb.fail(f"write to {r.name}: {resp!r}")
        m = (((1 << 8 * nbytes) - 1) << 8 * first) & r.mask
        model[r.name] = (model[r.name] & ~m) | ((value << 8 * first) & m)
        for name in (r.name, rw[int(tb.rng.integers(len(rw)))].name):
            got = await tb.read_reg(name)
            if got != model[name]:
                tb.fail(f"step {step}: {name} reads {got:#x}, expected {model[name]:#x}")
    await tb.write_reg("IRQ_ENABLE", 0)
    await ClockCycles(dut.clk, 1)
    assert int(dut.o_irq.value) == 0

    # -- START together with SOFT_RESET is only a SOFT_RESET -------------------------------
    await tb.write_reg("CTRL", regs["CTRL"].encode(START=1, SOFT_RESET=1))
    await ClockCycles(dut.clk, 20)
    st = await tb.status()
    if st != {"BUSY": 0, "DONE": 0, "ERROR": 0, "START_REJECTED": 0}:
        tb.fail(f"START+SOFT_RESET started something: {st}")

    # -- a program; counters; IRQ_STATUS W1C --------------------------------------------
    prog = prog_sem(cfg)
    dram = image_of(tb, prog)
    res, want = await run_and_check(tb, dram, PROG, what="counter program")
    irq = regs["IRQ_STATUS"]
    assert irq.decode(await tb.read_reg("IRQ_STATUS")) == {"DONE": 1, "ERROR": 0}
    assert int(dut.o_irq.value) == 1
    await tb.write_reg("IRQ_STATUS", 0)                             # writes 0: no effect
    await tb.write_reg("IRQ_STATUS", irq.encode(ERROR=1))           # other bit: no effect
    assert await write_resp(tb, regs["IRQ_STATUS"].offset + 1, 0xFF, 1) == AxiResp.OKAY
    assert irq.decode(await tb.read_reg("IRQ_STATUS")) == {"DONE": 1, "ERROR": 0}
    await tb.write_reg("IRQ_ENABLE", regs["IRQ_ENABLE"].encode(ERROR=1))
    await ClockCycles(dut.clk, 1)
    assert int(dut.o_irq.value) == 0, "DONE is pending but not enabled"
    await tb.write_reg("IRQ_ENABLE", regs["IRQ_ENABLE"].encode(DONE=1))
    await ClockCycles(dut.clk, 1)
    assert int(dut.o_irq.value) == 1
    await tb.write_reg("IRQ_STATUS", irq.encode(DONE=1))
    assert await tb.read_reg("IRQ_STATUS") == 0
    await ClockCycles(dut.clk, 1)
    assert int(dut.o_irq.value) == 0
    # counters hold their totals until the next START; reading twice gives the same
    again = await tb.result()
    for name, _ in COUNTERS:
        if again[name.lower()] != res[name.lower()]:
            tb.fail(f"counter {name} changed after the run: {res[name.lower()]} -> "
                    f"{again[name.lower()]}")

    # -- START while BUSY: refused and flagged, the running program unaffected ------------
    prog = long_program(cfg)
    dram = image_of(tb, prog)
    tb.write_dram(0, dram)
    win = (0, len(dram))
    want = iss(tb, dram, PROG, win)
    check_iss_done(tb, want, "long program")
    tb.keep_chip(want.sbuf, want.psum)
    await tb.write_wide("PROG_ADDR", PROG)
    await tb.write_wide("WIN_BASE", win[0])
    await tb.write_wide("WIN_LIMIT", win[1])
    await tb.write_reg("IRQ_ENABLE", 0b11)
    await RisingEdge(dut.clk)
    t0 = get_sim_time(unit="ns")
    await tb.write_reg("CTRL", regs["CTRL"].encode(START=1))
    st = await tb.status()
    if st != {"BUSY": 1, "DONE": 0, "ERROR": 0, "START_REJECTED": 0}:
        tb.fail(f"STATUS right after START: {st}")
    await ClockCycles(dut.clk, 200)
    await tb.write_reg("CTRL", regs["CTRL"].encode(START=1))
    st = await tb.status()
    if st != {"BUSY": 1, "DONE": 0, "ERROR": 0, "START_REJECTED": 1}:
        tb.fail(f"STATUS after START while BUSY: {st}")
    await tb.wait_irq(100_000)
    elapsed = round((get_sim_time(unit="ns") - t0) / CLOCK_PERIOD_NS)
    at_irq = tb.read_dram(0, len(dram))
    res = await tb.result()
    if not res["START_REJECTED"]:
        tb.fail("START_REJECTED is not sticky until the next START")
    check_done(tb, res, dram, PROG, want, "long program with a START while BUSY", at_irq)
    # a restart by the second START would have cleared CYCLES 200 cycles into the run
    if not elapsed - 20 <= res["cycles"] <= elapsed:
        tb.fail(f"CYCLES = {res['cycles']} but {elapsed} cycles passed from START to the "
                f"interrupt: the refused START restarted the core?")
    dut._log.info(f"long program: {res}")

    # -- an accepted START clears START_REJECTED and DONE ------------------------------
    res, _ = await run_and_check(tb, image_of(tb, prog_end_wait(cfg)), PROG,
                                 what="after START while BUSY")
    assert not res["START_REJECTED"]
