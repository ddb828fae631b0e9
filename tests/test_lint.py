"""Every top-level passes `verilator --lint-only -Wall` (with the waivers in
hdl/verilator.vlt, each with its reason) for an INT8 and a float configuration."""

import subprocess

import pytest

from sim.rtl import TOPS, verilog_for

CASES = [(top, config) for config in ("default", "4x4-fp") for top in TOPS]


@pytest.mark.rtl
@pytest.mark.parametrize("top,config", CASES, ids=[f"{t}-{c}" for t, c in CASES])
def test_lint(top, config):
    from sim.runner import WAIVERS, ensure_toolchain
    ensure_toolchain()
    vfile = verilog_for(top, config)
    res = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top,
                          str(WAIVERS), str(vfile)], capture_output=True, text=True)
    assert res.returncode == 0, f"lint of {top} ({config}):\n{res.stdout}{res.stderr}"
