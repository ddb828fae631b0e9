"""Verilator runs of the systolic array testbenches (tb/systolic), one per test and config."""

import os

import pytest

from sim.runner import run_cocotb

CONFIGS = ["1x1", "4x4", "8x8", "8x4"]
TESTS = [
    "test_zeros", "test_identity", "test_extremes", "test_one_hot", "test_random_tiles",
    "test_random_backpressure", "test_long_output_stall", "test_throughput",
    "test_perf_counters", "test_reset_mid_stream",
]


#: Configurations with BF16/FP16: the INT8 path (now padded to the float timing) and
#: the float paths, with a subset of the INT8 tests to keep the regression short.
FLOAT_CONFIGS = ["1x1-fp", "4x4-fp", "8x4-fp", "8x8-fp"]
FLOAT_TESTS = [
    "test_random_tiles", "test_random_backpressure", "test_throughput",
    "test_reset_mid_stream", "test_float_random", "test_dtype_switching",
    "test_float_specials",
]
CASES = ([(c, t) for t in TESTS for c in CONFIGS]
         + [(c, t) for t in FLOAT_TESTS for c in FLOAT_CONFIGS]
         + [("4x4-int8-bf16", t) for t in ("test_absent_dtype", "test_float_random",
                                           "test_random_tiles")]
         # flush-to-zero units (CoreConfig.subnormals=False) against the flushing model
         + [("4x4-fp-ftz", t) for t in ("test_float_random", "test_dtype_switching",
                                        "test_float_specials", "test_random_backpressure")])


# The first test of a configuration also builds it: the 8x8 float array's Verilator
# build takes about 15 minutes on a busy 2-core machine, past the suite's 900 s default.
@pytest.mark.rtl
@pytest.mark.timeout(2700)
@pytest.mark.parametrize("config,testcase", CASES, ids=[f"{t}-{c}" for c, t in CASES])
def test_systolic(config, testcase):
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb("systolic_array", "tb.systolic.test_systolic", testcase, config,
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
