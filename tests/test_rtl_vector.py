"""Verilator runs of the vector-engine testbenches (tb/vector), one per test and config."""

import os

import pytest

from sim.runner import run_cocotb

TESTS = ["test_random_commands", "test_casts_and_relu", "test_requantise_exhaustive",
         "test_composed", "test_illegal_commands", "test_pass_cycles"]
CONFIGS = ["4x4-fp", "8x4"]
CASES = ([(c, t) for t in TESTS for c in CONFIGS]
         # flush-to-zero bias adders
         + [("4x4-fp-ftz", t) for t in ("test_random_commands", "test_casts_and_relu")])


@pytest.mark.rtl
@pytest.mark.parametrize("config,testcase", CASES, ids=[f"{t}-{c}" for c, t in CASES])
def test_vector(config, testcase):
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb("vector_subsystem", "tb.vector.test_vector", testcase, config,
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
