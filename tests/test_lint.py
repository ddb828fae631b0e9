"""Every top-level passes `verilator --lint-only -Wall` (with the waivers in
hdl/verilator.vlt, each with its reason) for an INT8 and a float configuration; and
the systolic array elaborated for the ECP5 target (MULT18X18D primitives, linted
against the simulation model in tb/models/, which checks every port connection)."""

import subprocess

import pytest

from sim.rtl import TARGET_MODELS, TOPS, target_of, verilog_for

CASES = [(top, config, None) for config in ("default", "4x4-fp") for top in TOPS]
CASES += [("systolic_array", config, "ecp5") for config in ("default", "4x4-fp")]


@pytest.mark.rtl
@pytest.mark.parametrize("top,config,target", CASES,
                         ids=[f"{t}-{c}" + (f"-{g}" if g else "") for t, c, g in CASES])
def test_lint(top, config, target):
    from sim.runner import WAIVERS, ensure_toolchain
    ensure_toolchain()
    vfile = verilog_for(top, config, target=target)
    models = [str(f) for f in TARGET_MODELS[target_of(top, target)]]
    res = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top,
                          str(WAIVERS), *models, str(vfile)], capture_output=True, text=True)
    assert res.returncode == 0, f"lint of {top} ({config}):\n{res.stdout}{res.stderr}"
