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
