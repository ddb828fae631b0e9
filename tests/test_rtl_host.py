"""Verilator runs of the host-interface testbench (tb/host): every cocotb test of
``tb.host.test_host`` on each configuration."""

import pytest

from sim.flow.runner import case_ids, rtl_cases, run_rtl_test

CASES = rtl_cases("tb.host.test_host", ["8x8", "4x4-fp"])


@pytest.mark.rtl
@pytest.mark.parametrize("config,testcase", CASES, ids=case_ids(CASES))
def test_host(config, testcase):
    run_rtl_test("host_interface", "tb.host.test_host", testcase, config)
