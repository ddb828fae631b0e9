"""Verilator runs of the systolic array testbenches (tb/systolic): the cocotb tests of
``tb.systolic.test_systolic`` on each configuration."""

import pytest

from sim.flow.runner import case_ids, rtl_cases, run_rtl_test
from tiers import regress_cases

MODULE = "tb.systolic.test_systolic"
#: tests of BF16/FP16 (or of a missing type): not run on the INT8-only arrays
FLOAT_ONLY = ["test_float_random", "test_dtype_switching", "test_float_specials",
              "test_absent_dtype"]
#: Configurations with BF16/FP16: the INT8 path (now padded to the float timing) and
#: the float paths, with a subset of the INT8 tests to keep the regression short.
FLOAT_TESTS = [
    "test_random_tiles", "test_random_backpressure", "test_throughput",
    "test_reset_mid_stream", "test_float_random", "test_dtype_switching",
    "test_float_specials",
]
CASES = (rtl_cases(MODULE, ["1x1", "4x4", "8x8", "8x4"], exclude=FLOAT_ONLY)
         + rtl_cases(MODULE, ["1x1-fp", "4x4-fp", "8x4-fp", "8x8-fp"], only=FLOAT_TESTS)
         + rtl_cases(MODULE, ["4x4-int8-bf16"], only=["test_absent_dtype", "test_float_random",
                                                      "test_random_tiles"])
         # flush-to-zero units (CoreConfig.subnormals=False) against the flushing model
         + rtl_cases(MODULE, ["4x4-fp-ftz"], only=["test_float_random", "test_dtype_switching",
                                                   "test_float_specials",
                                                   "test_random_backpressure"]))


#: make regress only: the 8x8 float array (the largest model of the suite). make test
#: keeps floats on 1x1/4x4, non-square floats on 8x4-fp and the 8x8 INT8 array, and the
#: 8x8 float array runs inside the whole core in make bench.
REGRESS_ONLY = ("8x8-fp",)


# The first test of a configuration also builds it: the 8x8 float array's Verilator
# build takes about 15 minutes on a busy 2-core machine, past the suite's 900 s default.
@pytest.mark.rtl
@pytest.mark.timeout(2700)
@pytest.mark.parametrize("config,testcase",
                         regress_cases(CASES, lambda c, t: c in REGRESS_ONLY),
                         ids=case_ids(CASES))
def test_systolic(config, testcase):
    run_rtl_test("systolic_array", MODULE, testcase, config)


#: The array elaborated for the ECP5 target (``systolic_array_ecp5``): its output FIFO in
#: DP16KD primitives with their output register, its multipliers in MULT18X18Ds, both
#: on the models in tb/models/. The tests that stress the FIFO (stalls, backpressure,
#: full rate, reset with entries in the RAM) on an INT8 and a float array in make test;
#: the 8x8 INT8 array (the one whose Fmax the primitive is for) in make regress.
ECP5_TESTS = ["test_random_tiles", "test_random_backpressure", "test_long_output_stall",
              "test_throughput", "test_reset_mid_stream"]
ECP5_CASES = (rtl_cases(MODULE, ["4x4", "8x8"], only=ECP5_TESTS)
              + rtl_cases(MODULE, ["4x4-fp"], only=ECP5_TESTS + ["test_float_random"]))


@pytest.mark.rtl
@pytest.mark.timeout(2700)
@pytest.mark.parametrize("config,testcase",
                         regress_cases(ECP5_CASES, lambda c, t: c == "8x8"),
                         ids=case_ids(ECP5_CASES))
def test_systolic_ecp5(config, testcase):
    run_rtl_test("systolic_array_ecp5", MODULE, testcase, config)
