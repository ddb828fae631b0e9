"""Verilator runs of the floating-point unit testbenches (tb/fp): a million random pairs
per unit in ``make regress`` (131,072 in ``make test``; both include every directed
special case), for the IEEE and the flush-to-zero build of each; the float PE's multiplier
with INT8 on the same DSP (every INT8 pair among float operations), portable and built
for the ECP5 target; and the DSP multipliers alone, portable and ECP5 (the ECP5 builds
run the MULT18X18D primitive on the model in tb/models/)."""

import pytest

from sim.flow.runner import cocotb_tests, run_rtl_test
from tiers import scaled

#: random pairs per unit (NCORE_FP_VECTORS)
VECTORS = scaled(1 << 17, 1_000_000)

#: (top, testbench module, cocotb test): each test needs its own top, so this table
#: is the list; checked at collection against the tests the modules define
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
_named = {(m, t) for _, m, t in CASES}
_defined = {(m, t) for m in {m for _, m, _ in CASES} for t in cocotb_tests(m)}
if _named != _defined:
    raise ValueError(f"tests/test_rtl_fp.py CASES: tests without a top "
                     f"{sorted(_defined - _named)}, unknown tests {sorted(_named - _defined)}")


@pytest.mark.rtl
@pytest.mark.parametrize("top,module,testcase", CASES, ids=[c[0] for c in CASES])
def test_fp_unit(top, module, testcase):
    run_rtl_test(top, module, testcase, "default",
                 extra_env={"NCORE_FP_VECTORS": str(VECTORS)})

