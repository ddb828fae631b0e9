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


@pytest.mark.rtl
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("testcase", TESTS)
def test_systolic(config, testcase):
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb("systolic_array", "tb.systolic.test_systolic", testcase, config,
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
