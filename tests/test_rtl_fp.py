"""Verilator runs of the floating-point unit testbenches (tb/fp)."""

import os

import pytest

from sim.runner import run_cocotb


@pytest.mark.rtl
def test_fp32_adder_million_pairs():
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb("fp32_adder", "tb.fp.test_fp32_adder", "test_fp32_adder", "default",
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")


@pytest.mark.rtl
def test_fp_mul16_million_pairs():
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb("fp_mul16", "tb.fp.test_fp_mul16", "test_fp_mul16", "default",
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")


@pytest.mark.rtl
def test_fp32_adder_ftz_million_pairs():
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb("fp32_adder_ftz", "tb.fp.test_fp32_adder", "test_fp32_adder_ftz", "default",
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")


@pytest.mark.rtl
def test_fp_mul16_ftz_million_pairs():
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb("fp_mul16_ftz", "tb.fp.test_fp_mul16", "test_fp_mul16_ftz", "default",
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
