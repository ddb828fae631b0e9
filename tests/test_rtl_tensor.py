"""Verilator runs of the tensor-subsystem testbenches (tb/tensor), one per test and config."""

import os

import pytest

from sim.runner import run_cocotb

TESTS = ["test_random_sequences", "test_large_k", "test_accumulate_hazards",
         "test_illegal_commands", "test_throughput"]
CONFIGS = ["4x4", "8x8", "8x4"]
FLOAT_CONFIGS = ["4x4-fp"]
FLOAT_TESTS = ["test_random_sequences", "test_large_k", "test_accumulate_hazards",
               "test_illegal_commands"]
CASES = ([(c, t) for t in TESTS for c in CONFIGS]
         + [(c, t) for t in FLOAT_TESTS for c in FLOAT_CONFIGS]
         # flush-to-zero units: the array and PSUM's accumulating adders
         + [("4x4-fp-ftz", t) for t in ("test_random_sequences", "test_accumulate_hazards")])


@pytest.mark.rtl
@pytest.mark.parametrize("config,testcase", CASES, ids=[f"{t}-{c}" for c, t in CASES])
def test_tensor(config, testcase):
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb("tensor_subsystem", "tb.tensor.test_tensor", testcase, config,
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
