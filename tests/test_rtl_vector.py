"""Verilator runs of the vector-engine testbenches (tb/vector): every cocotb test of
``tb.vector.test_vector`` on each configuration."""

import pytest

from sim.flow.runner import case_ids, rtl_cases, run_rtl_test

MODULE = "tb.vector.test_vector"
CASES = (rtl_cases(MODULE, ["4x4-fp", "8x4"])
         # flush-to-zero bias adders: only the tests that add floats
         + rtl_cases(MODULE, ["4x4-fp-ftz"], only=["test_random_commands",
                                                   "test_casts_and_relu"]))


@pytest.mark.rtl
@pytest.mark.parametrize("config,testcase", CASES, ids=case_ids(CASES))
def test_vector(config, testcase):
    run_rtl_test("vector_subsystem", MODULE, testcase, config)
