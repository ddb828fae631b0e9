"""Verilator runs of the DMA testbenches (tb/dma): every cocotb test of
``tb.dma.test_dma`` on each configuration."""

from rtl_wrapper import rtl_test
from sim.flow.runner import rtl_cases

CASES = rtl_cases("tb.dma.test_dma", ["8x8", "4x4"])

test_dma = rtl_test("dma_subsystem", "tb.dma.test_dma", CASES)
