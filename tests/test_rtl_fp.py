"""Verilator runs of the floating-point unit testbenches (tb/fp): a million random pairs
per unit, for the IEEE and the flush-to-zero build of each; the float PE's multiplier
with INT8 on the same DSP (every INT8 pair among float operations), portable and built
for the ECP5 target; and the DSP multipliers alone, portable and ECP5 (the ECP5 builds
run the MULT18X18D primitive on the model in tb/models/)."""

import os

import pytest

from sim.runner import run_cocotb

#: (top, testbench module, cocotb test)
CASES = [
    ("fp32_adder", "tb.fp.test_fp32_adder", "test_fp32_adder"),
    ("fp_mul16", "tb.fp.test_fp_mul16", "test_fp_mul16"),
    ("fp32_adder_ftz", "tb.fp.test_fp32_adder", "test_fp32_adder_ftz"),
    ("fp_mul16_ftz", "tb.fp.test_fp_mul16", "test_fp_mul16_ftz"),
    ("fp_mul16_int8", "tb.fp.test_fp_mul16", "test_fp_mul16_int8"),
    ("fp_mul16_int8_ecp5", "tb.fp.test_fp_mul16", "test_fp_mul16_int8"),
    ("fp_mul16_ftz_int8_ecp5", "tb.fp.test_fp_mul16", "test_fp_mul16_ftz_int8"),
    ("dsp_multipliers", "tb.fp.test_dsp", "test_dsp_multipliers"),
    ("dsp_multipliers_ecp5", "tb.fp.test_dsp", "test_dsp_multipliers"),
]


@pytest.mark.rtl
@pytest.mark.parametrize("top,module,testcase", CASES, ids=[c[0] for c in CASES])
def test_million_pairs(top, module, testcase):
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb(top, module, testcase, "default",
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
