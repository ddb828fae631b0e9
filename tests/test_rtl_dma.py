"""Verilator runs of the DMA testbenches (tb/dma): every cocotb test of
``tb.dma.test_dma`` on each configuration."""

import pytest

from sim.flow.runner import case_ids, rtl_cases, run_rtl_test

CASES = rtl_cases("tb.dma.test_dma", ["8x8", "4x4"])


@pytest.mark.rtl
@pytest.mark.parametrize("config,testcase", CASES, ids=case_ids(CASES))
def test_dma(config, testcase):
    run_rtl_test("dma_subsystem", "tb.dma.test_dma", testcase, config)
