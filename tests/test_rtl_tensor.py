"""Verilator runs of the tensor-subsystem testbenches (tb/tensor): every cocotb test of
``tb.tensor.test_tensor`` on each configuration."""

import pytest

from sim.flow.runner import case_ids, rtl_cases, run_rtl_test

MODULE = "tb.tensor.test_tensor"
CASES = (rtl_cases(MODULE, ["4x4", "8x8", "8x4"])
         # the float build: everything but the INT8 throughput measurement
         + rtl_cases(MODULE, ["4x4-fp"], exclude=["test_throughput"])
         # flush-to-zero units: the array and PSUM's accumulating adders
         + rtl_cases(MODULE, ["4x4-fp-ftz"], only=["test_random_sequences",
                                                   "test_accumulate_hazards"]))


@pytest.mark.rtl
@pytest.mark.parametrize("config,testcase", CASES, ids=case_ids(CASES))
def test_tensor(config, testcase):
    run_rtl_test("tensor_subsystem", MODULE, testcase, config)
