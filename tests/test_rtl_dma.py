"""Verilator runs of the DMA testbenches (tb/dma), one per test and config."""

import os

import pytest

from sim.runner import run_cocotb

TESTS = ["test_load_sweep", "test_store_sweep", "test_random_mixed",
         "test_refused_descriptors", "test_bus_errors", "test_reset_mid_transfer",
         "test_bandwidth"]
CONFIGS = ["8x8", "4x4"]
CASES = [(c, t) for t in TESTS for c in CONFIGS]


@pytest.mark.rtl
@pytest.mark.parametrize("config,testcase", CASES, ids=[f"{t}-{c}" for c, t in CASES])
def test_dma(config, testcase):
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb("dma_subsystem", "tb.dma.test_dma", testcase, config,
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
