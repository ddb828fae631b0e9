"""Verilator runs of the floating-point unit testbenches (tb/fp): a million random pairs
per unit, for the IEEE and the flush-to-zero build of each."""

import os

import pytest

from sim.runner import run_cocotb

#: (top, testbench module, cocotb test)
CASES = [
    ("fp32_adder", "tb.fp.test_fp32_adder", "test_fp32_adder"),
    ("fp_mul16", "tb.fp.test_fp_mul16", "test_fp_mul16"),
    ("fp32_adder_ftz", "tb.fp.test_fp32_adder", "test_fp32_adder_ftz"),
    ("fp_mul16_ftz", "tb.fp.test_fp_mul16", "test_fp_mul16_ftz"),
]


@pytest.mark.rtl
@pytest.mark.parametrize("top,module,testcase", CASES, ids=[c[0] for c in CASES])
def test_million_pairs(top, module, testcase):
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb(top, module, testcase, "default",
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
