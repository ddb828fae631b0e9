"""Verilator runs of the chip testbench (tb/chip: hdl/chip.py on a SimDram) against the
chip ISS: two and four cores of 4x4, and two cores with random stalls on every DRAM
channel (``chip_sim2_stall``)."""

import pytest

from sim.flow.runner import run_rtl_test

MODULE = "tb.chip.test_chip"
TESTS = ["test_registers", "test_chain", "test_parallel", "test_refusals"]
CASES = ([("chip_sim2", t) for t in TESTS] + [("chip_sim4", t) for t in TESTS[1:]]
         + [("chip_sim2_stall", t) for t in ("test_chain", "test_parallel")])


@pytest.mark.rtl
@pytest.mark.parametrize("top,testcase", CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_chip(top, testcase):
    run_rtl_test(top, MODULE, testcase, "4x4")
