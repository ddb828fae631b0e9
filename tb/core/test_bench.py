"""Whole-core GEMM benchmark on ``neuron_core_sim`` (the core + SimDram, no Python per
cycle). Driven by ``python -m sim.flow.cli bench`` through ``NCORE_BENCH`` (a JSON list of
cases) and ``NCORE_BENCH_OUT`` (where the results go). Each case is also checked: the C
matrix in DRAM must equal the ISS's bit for bit (and NumPy's exactly for INT8).
``bench_store_share`` measures DMA-out's store rate alone and while matmuls read SBUF
(the cost model's ``store_share`` figures), also checked against the ISS."""

import json
import os
import time

import cocotb
import numpy as np

from sim.compiler.cost import estimate
from sim.compiler.gemm import GemmLayout, gemm_dram, gemm_program, plan_gemm
from sim.isa.asm import Program
from sim.model.dma import Dma
from sim.model.iss import run as iss_run
from sim.model.tensor import Matmul
from tb.core.tb import CoreTB

WATCHDOG = dict(timeout_time=3000, timeout_unit="sec")


def operands(rng, M, N, K, dtype):
    """Random A (M x K) and B (K x N): INT8 values, or 16-bit float patterns of
    normally distributed values (the ISS decides the bits, so any values do)."""
    if dtype == "int8":
        return (rng.integers(-128, 128, (M, K), dtype=np.int8),
                rng.integers(-128, 128, (K, N), dtype=np.int8))
    import ml_dtypes
    t = ml_dtypes.bfloat16 if dtype == "bf16" else np.float16
    return (rng.standard_normal((M, K)).astype(t).view(np.uint16),
            rng.standard_normal((K, N)).astype(t).view(np.uint16))


def bench_program(cfg, layout, case):
    """The program of a bench case and the options it was written with: ``case``'s
    ``options`` (``gemm_program`` keywords) if it has them, else ``plan_gemm``'s choice
    (``schedule`` and ``double_buffer`` from the case)."""
    db = case.get("double_buffer", True)
    options = dict(case.get("options") or {})
    if case.get("schedule") is not None:
        options.setdefault("schedule", case["schedule"])
    if "schedule" not in options:
        plan = plan_gemm(cfg, layout, double_buffer=db)
        options = {k: plan[k] for k in ("schedule", "n_block", "g0", "tail", "lead")}
    return gemm_program(cfg, layout, double_buffer=db, **options), options


@cocotb.test(**WATCHDOG)
async def bench_gemm(dut):
    tb = CoreTB(dut)
    cfg = tb.cfg
    await tb.reset()
    cases = json.loads(os.environ.get("NCORE_BENCH", "[]")) or [
        {"name": "gemm-int8-64x64x64", "M": 64, "N": 64, "K": 64, "dtype": "int8"}]
    results = []
    for case in cases:
        M, N, K, dtype = case["M"], case["N"], case["K"], case["dtype"]
        eb = 1 if dtype == "int8" else 2
        a_addr = 0
        b_addr = a_addr + ((K * M * eb + 63) // 64) * 64
        c_addr = b_addr + ((K * N * eb + 63) // 64) * 64
        prog_addr = c_addr + ((4 * M * N + 63) // 64) * 64
        L = GemmLayout(M, N, K, dtype, a_addr=a_addr, b_addr=b_addr, c_addr=c_addr)
        prog, options = bench_program(cfg, L, case)
        end = prog_addr + 32 * len(prog)
        if end > tb.dram_size:
            tb.fail(f"{case['name']}: needs {end} bytes of DRAM, the model has {tb.dram_size}")
        A, B = operands(tb.rng, M, N, K, dtype)
        dut._log.info(f"{case['name']}: {len(prog)} instructions")
        dram = gemm_dram(L, A, B, prog, prog_addr=prog_addr, size=end)
        want = iss_run(cfg, dram, prog_addr, win_base=0, win_limit=end)
        if want.error != "NONE" or not want.done:
            tb.fail(f"{case['name']}: ISS {want.error} {want.blocked}")
        # load: operands and program (C is overwritten entirely by the program)
        nb = cfg.axi_data_bytes
        pad = (-end) % nb
        image = np.concatenate([dram, np.zeros(pad, np.uint8)])
        tb.write_dram(0, image[:c_addr])
        tb.write_dram(prog_addr, image[prog_addr:])
        t0, c0 = time.perf_counter(), time.process_time()
        await tb.start(prog_addr, win=(0, end),
                       watchdog=int(os.environ.get("NCORE_WATCHDOG", "100000")))
        await tb.wait_irq(max_cycles=50 * M * N * K // (cfg.rows * cfg.cols) + 100_000,
                          chunk=2000)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        # CLOCK_MONOTONIC bounds of the run, to cut a profile to it
        # (perf record -k CLOCK_MONOTONIC; perf report --time start,end; docs/sim_speed.md)
        end = time.clock_gettime(time.CLOCK_MONOTONIC)
        dut._log.info(f"{case['name']}: run window (CLOCK_MONOTONIC) {end - wall:.6f},{end:.6f}")
        res = await tb.result()
        if res["error"] != "NONE" or not res["DONE"]:
            if res["error"] == "WATCHDOG":
                from sim.isa.asm import disassemble
                a = res["fault_addr"]
                dut._log.info(f"blocked at {a:#x}: " + disassemble(
                    bytes(dram[a:a + 32]), cfg, base_addr=a, sem_names=prog.sem_names))
                dut._log.info(f"ISS semaphores at the end: {dict(zip(prog.sem_names, want.sems))}")
            tb.fail(f"{case['name']}: core stopped with {res}")
        got = tb.read_dram(c_addr, 4 * M * N)
        exp = want.dram[c_addr:c_addr + 4 * M * N]
        bad = np.flatnonzero(got != exp)
        if bad.size:
            tb.fail(f"{case['name']}: C differs from the ISS in {bad.size} bytes, "
                    f"first at byte {int(bad[0])}")
        if dtype == "int8":
            ref = A.astype(np.int64) @ B.astype(np.int64)
            if not np.array_equal(got.view(np.int32).reshape(M, N), ref.astype(np.int32)):
                tb.fail(f"{case['name']}: C differs from NumPy")
        cycles = res["cycles"]
        macs = M * N * K
        results.append({
            "name": case["name"], "M": M, "N": N, "K": K, "dtype": dtype,
            "double_buffer": case.get("double_buffer", True),
            "cycles": cycles, "macs": macs,
            "utilization": macs / (cfg.rows * cfg.cols * cycles),
            "tensor_macs_counter": res["tensor_macs"],
            "tensor_active": res["tensor_active"],
            "busy_dma_in": res["busy_dma_in"], "busy_dma_out": res["busy_dma_out"],
            "busy_tensor": res["busy_tensor"], "busy_vector": res["busy_vector"],
            "array_lead": res["array_lead"], "array_tail": res["array_tail"],
            "rows": cfg.rows, "cols": cfg.cols,
            "instructions": res["instructions"], "program_instructions": len(prog),
            # the schedule and options the program was written with, and the cost
            # model's estimate (python -m sim.compiler.calibrate compares them)
            "options": options, "estimate": estimate(prog, cfg),
            "sim_cycles_per_s": cycles / wall, "wall_s": wall,
            # the simulator process's own CPU time: less disturbed by other work on
            # a shared machine than the wall time
            "sim_cycles_per_cpu_s": cycles / cpu, "cpu_s": cpu,
        })
        dut._log.info(f"bench {results[-1]}")
    out = os.environ.get("NCORE_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)


def store_share_programs(cfg):
    """The programs of :func:`bench_store_share`: ``(name, dtype or None, program,
    store beats)``. Each stores 32 tiles of ``rows`` SBUF partitions x 128 bytes (4,096
    bus beats on the 8x8 core) from SBUF bytes 2048-3071; with a ``dtype`` it also
    streams 128 full-size 64-column matmuls (8,192 array cycles) with operands from SBUF
    bytes 0-1279, so the stores run for their whole length while the tensor engine's
    fetchers read SBUF. Consecutive matmuls accumulate into the same PSUM entries (eight
    to a tile), as a tile of a GEMM does."""
    R = cfg.rows
    beats_per_store = R * 128 // cfg.axi_data_bytes
    progs = []
    for dtype in (None, "int8", "bf16"):
        if dtype is not None and dtype not in cfg.dtypes:
            continue
        p = Program(cfg)
        eb = 1 if dtype in (None, "int8") else 2
        stores = 0
        for i in range(128):
            if dtype is not None:
                p.matmul(Matmul(k=cfg.rows, m=cfg.cols, n=64, p0=0,
                                s_off=1024 // eb + (i % 8) * cfg.cols,
                                x_off=(i % 8) * (128 // eb),
                                bank=(i // 8) % cfg.psum_banks, psum_off=0, acc=i % 8 > 0,
                                dtype=dtype), signal="mm")
            if i % 4 == 0:
                p.dma(Dma(addr=STORE_BASE + (stores % 8) * 1024, rows=R, row_bytes=128,
                          row_stride=128, partition=0, offset=2048 + (stores % 8) * 128,
                          store=True), signal="st")
                stores += 1
        p.end(wait=("st", stores))
        progs.append(("stores" if dtype is None else f"stores+{dtype}-matmuls", dtype, p,
                      stores * beats_per_store))
    return progs


#: where :func:`store_share_programs` writes (8 KiB) and reads its SBUF image from
STORE_BASE = 0x4000
PRELOAD_BASE = 0x6000


@cocotb.test(**WATCHDOG)
async def bench_store_share(dut):
    """How fast DMA-out stores SBUF while the tensor engine reads it (both use SBUF's one
    read port): each program of :func:`store_share_programs` runs after a preload of
    random SBUF contents; DRAM must equal the ISS's afterwards, bit for bit. Reports
    store beats per DMA-out busy cycle."""
    tb = CoreTB(dut)
    cfg = tb.cfg
    await tb.reset()
    results = []
    for name, dtype, prog, beats in store_share_programs(cfg):
        # preload: random bytes into SBUF bytes 0-3071 of every partition
        R = cfg.rows
        pre = Program(cfg)
        pre.dma(Dma(addr=PRELOAD_BASE, rows=R, row_bytes=3072, row_stride=3072, partition=0,
                    offset=0), signal="ld")
        pre.end(wait=("ld", 1))
        image = np.zeros(0x10000, np.uint8)
        image[PRELOAD_BASE:PRELOAD_BASE + R * 3072] = tb.rng.integers(0, 256, R * 3072)
        # finite float operands (the high byte of each 16-bit element below 0x40): any
        # bits would do for the stores, but the matmuls should compute ordinary numbers
        image[PRELOAD_BASE + 1:PRELOAD_BASE + R * 3072:2] &= 0x3F
        pre_addr, prog_addr = 0xC000, 0xD000
        image[pre_addr:pre_addr + 32 * len(pre)] = np.frombuffer(pre.encode(), np.uint8)
        image[prog_addr:prog_addr + 32 * len(prog)] = np.frombuffer(prog.encode(), np.uint8)
        want = iss_run(cfg, image, pre_addr, model=tb.chip)
        tb.keep_chip(want.sbuf, want.psum)
        want = iss_run(cfg, want.dram, prog_addr, model=tb.chip)
        if want.error != "NONE" or not want.done:
            tb.fail(f"{name}: ISS {want.error} {want.blocked}")
        tb.write_dram(0, image)
        for addr in (pre_addr, prog_addr):
            await tb.start(addr, win=(0, 0x10000), watchdog=100000)
            await tb.wait_irq(max_cycles=100_000, chunk=2000)
            res = await tb.result()
            if res["error"] != "NONE" or not res["DONE"]:
                tb.fail(f"{name}: core stopped with {res}")
        tb.keep_chip(want.sbuf, want.psum)
        got = tb.read_dram(0, 0x10000)
        bad = np.flatnonzero(got != want.dram)
        if bad.size:
            tb.fail(f"{name}: DRAM differs from the ISS in {bad.size} bytes, "
                    f"first at byte {int(bad[0])}")
        results.append({"name": name, "dtype": dtype, "config": cfg.name,
                        "cycles": res["cycles"], "store_beats": beats,
                        "busy_dma_out": res["busy_dma_out"],
                        "busy_tensor": res["busy_tensor"],
                        "beats_per_cycle": beats / res["busy_dma_out"]})
        dut._log.info(f"store share {results[-1]}")
    out = os.environ.get("NCORE_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)

