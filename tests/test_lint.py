"""Every top-level passes `verilator --lint-only -Wall` (with the waivers in
hdl/verilator.vlt, each with its reason) for an INT8 and a float configuration; and
the systolic array elaborated for the ECP5 target (MULT18X18D primitives, linted
against the simulation model in tb/models/, which checks every port connection)."""

import pytest

from sim.flow.rtl import TOPS

CASES = [(top, config, None) for config in ("default", "4x4-fp") for top in TOPS]
CASES += [("systolic_array", config, "ecp5") for config in ("default", "4x4-fp")]


@pytest.mark.rtl
@pytest.mark.parametrize("top,config,target", CASES,
                         ids=[f"{t}-{c}" + (f"-{g}" if g else "") for t, c, g in CASES])
def test_lint(top, config, target):
    from sim.flow.runner import lint
    res = lint(top, config, target=target)
    assert res.returncode == 0, f"lint of {top} ({config}):\n{res.stdout}{res.stderr}"
