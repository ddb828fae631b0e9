"""Run one program on ``neuron_core_sim`` for the runtime's ``verilator`` backend.

:func:`sim.compiler.runtime.Device.run` writes a job file (``NCORE_JOB``, an ``.npz``: the DRAM
image, the program address, the DMA window, the watchdog and a cycle limit) and starts
this test through :func:`sim.flow.runner.run_cocotb`. The test loads the image through the
SimDram backdoor (its non-zero words only: the DRAM powers up zero), runs the
program through the host interface (START, interrupt),
and writes ``NCORE_JOB_OUT`` (``.npz``: the DRAM image after the run, and the STATUS,
ERROR and counter registers as JSON). A run that ends in an error is reported, not
failed: the runtime turns it into its result. A run that never interrupts fails the
test after the cycle limit (the simulation's watchdog).
"""

import json
import os
import time

import cocotb
import numpy as np

from tb.core.tb import CoreTB

WATCHDOG = dict(timeout_time=6000, timeout_unit="sec")


@cocotb.test(**WATCHDOG)
async def run_job(dut):
    job = np.load(os.environ["NCORE_JOB"])
    dram = job["dram"]
    prog_addr = int(job["prog_addr"])
    win = (int(job["win_base"]), int(job["win_limit"]))
    tb = CoreTB(dut)
    if getattr(tb, "mem", None) is None:
        tb.fail("the runtime's verilator backend needs the neuron_core_sim top")
    if dram.size > tb.dram_size:
        tb.fail(f"the image has {dram.size} bytes, the simulated DRAM {tb.dram_size}")
    await tb.reset()
    nb = tb.cfg.axi_data_bytes
    used = int(job["used"])
    used = min(tb.dram_size, -(-used // nb) * nb)
    image = np.zeros(used, np.uint8)
    image[:min(used, dram.size)] = dram[:used]
    tb.load_dram(image)
    t0 = time.perf_counter()
    await tb.start(prog_addr, win=win, watchdog=int(job["watchdog"]))
    await tb.wait_irq(max_cycles=int(job["max_cycles"]), chunk=1000)
    wall = time.perf_counter() - t0
    res = await tb.result()
    res["wall_s"] = wall
    out = dram.copy()
    out[:used] = tb.read_dram(0, used)
    np.savez(os.environ["NCORE_JOB_OUT"], dram=out, result=json.dumps(res))
