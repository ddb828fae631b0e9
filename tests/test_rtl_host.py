"""Verilator runs of the host-interface testbench (tb/host): every cocotb test of
``tb.host.test_host`` on each configuration."""

from rtl_wrapper import rtl_test
from sim.flow.runner import rtl_cases

CASES = rtl_cases("tb.host.test_host", ["8x8", "4x4-fp"])

test_host = rtl_test("host_interface", "tb.host.test_host", CASES)
