"""Verilator runs of the host-interface testbench (tb/host), one per test and config."""

import os

import pytest

from sim.runner import run_cocotb

TESTS = ["test_reset_values", "test_read_write", "test_w1c_and_irq", "test_slverr",
         "test_start_rejected", "test_counters"]
CONFIGS = ["8x8", "4x4-fp"]
CASES = [(c, t) for t in TESTS for c in CONFIGS]


@pytest.mark.rtl
@pytest.mark.parametrize("config,testcase", CASES, ids=[f"{t}-{c}" for c, t in CASES])
def test_host(config, testcase):
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb("host_interface", "tb.host.test_host", testcase, config,
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
