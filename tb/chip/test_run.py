"""Run one chip job for the runtime's chip backend (:func:`sim.compiler.chip.run_chip_compiled`
with ``backend="verilator"``): ``NCORE_JOB`` (``.npz``: the DRAM image, each core's
program address or -1, the watchdog and a cycle limit) in, ``NCORE_JOB_OUT`` (the DRAM
image after the run and every started core's result registers as JSON) out. The cores
start together through the chip's START register; a run that ends in a core error is
reported, not failed; one that never finishes fails after the cycle limit."""

import json
import os
import time

import cocotb
import numpy as np

from tb.chip.tb import ChipTB

WATCHDOG = dict(timeout_time=6000, timeout_unit="sec")


@cocotb.test(**WATCHDOG)
async def run_job(dut):
    job = np.load(os.environ["NCORE_JOB"])
    dram = job["dram"]
    addrs = [None if a < 0 else int(a) for a in job["prog_addrs"]]
    tb = ChipTB(dut)
    await tb.reset()
    if len(addrs) != tb.cores:
        tb.fail(f"the job has {len(addrs)} programs, the chip {tb.cores} cores")
    if dram.size > tb.dram_size:
        tb.fail(f"the image has {dram.size} bytes, the simulated DRAM {tb.dram_size}")
    nb = tb.cfg.axi_data_bytes
    used = -(-dram.size // nb) * nb
    image = np.zeros(used, np.uint8)
    image[:dram.size] = dram
    tb.write_dram(0, image)
    t0 = time.perf_counter()
    started = await tb.start_cores(addrs, watchdog=int(job["watchdog"]))
    await tb.wait_cores(started, int(job["max_cycles"]), chunk=1000)
    wall = time.perf_counter() - t0
    results = [None] * tb.cores
    for k in started:
        results[k] = await tb.core_result(k)
    out = tb.read_dram(0, used)[:dram.size]
    np.savez(os.environ["NCORE_JOB_OUT"], dram=out,
             result=json.dumps({"cores": results, "wall_s": wall}))
