"""Every top-level passes `verilator --lint-only -Wall` (with the waivers in
hdl/verilator.vlt, each with its reason) for an INT8 and a float configuration (the
FP units and DSP multipliers take no configuration: once); and the systolic array
elaborated for the ECP5 target (MULT18X18D primitives, linted against the simulation
model in tb/models/, which checks every port connection). ``make regress`` also runs
``make lint`` itself (1x1, 8x4, 16x16: tests/test_commands.py)."""

import pytest

from sim.flow.rtl import TOPS, config_free
from tiers import regress_cases

#: make regress only, each a whole-core elaboration of its own: the bench's baseline
#: (neuron_core_sim with a plain reset; make test lints neuron_core_sim), and the float
#: core inside the simulation top and the synthesis wrapper (make test lints the float
#: neuron_core and both wrappers with the INT8 core), and the board tops with the
#: float core (make test lints them with the INT8 core).
REGRESS_ONLY = (("neuron_core_sim_baseline", "default"), ("neuron_core_sim_baseline", "4x4-fp"),
                ("neuron_core_synth", "4x4-fp"), ("neuron_core_sim", "4x4-fp"),
                ("ulx3s", "4x4-fp"), ("board_sim", "4x4-fp"))

#: the chip tops differ only in their core count: make test lints the two-core chip,
#: make regress also the four-core one and the float cores on a chip
CHIP_TOPS = {("chip_sim2", "default"), ("chip_sim4", "default"), ("chip_sim2", "4x4-fp")}
REGRESS_ONLY += (("chip_sim4", "default"), ("chip_sim2", "4x4-fp"))
CASES = [(top, config, None) for config in ("default", "4x4-fp") for top in TOPS
         if (config == "default" or not config_free(top))
         and (not top.startswith("chip") or (top, config) in CHIP_TOPS)]
CASES += [("systolic_array", config, "ecp5") for config in ("default", "4x4-fp")]
#: the smallest legal configurations (one partition, one PSUM bank, 2-entry queues, one
#: outstanding burst): the whole core, whose Verilog must have no zero-width signal
CASES += [("neuron_core", config, None) for config in ("min", "min-fp")]


def test_config_free_tops():
    assert {t for t in TOPS if config_free(t)} >= {"fp32_adder", "dsp_multipliers_ecp5",
                                                    "fp_mul16_synth"}
    assert not config_free("neuron_core")


@pytest.mark.rtl
@pytest.mark.parametrize("top,config,target",
                         regress_cases(CASES, lambda t, c, g: (t, c) in REGRESS_ONLY),
                         ids=[f"{t}-{c}" + (f"-{g}" if g else "") for t, c, g in CASES])
def test_lint(top, config, target):
    from sim.flow.runner import lint
    res = lint(top, config, target=target)
    assert res.returncode == 0, f"lint of {top} ({config}):\n{res.stdout}{res.stderr}"


@pytest.mark.parametrize("top,config", [("neuron_core", "min"), ("neuron_core", "min-fp"),
                                        ("vector_subsystem", "1x1"), ("host_interface", "min"),
                                        ("chip_sim1", "min"), ("chip_sim2", "min")])
def test_no_zero_width_ranges(top, config):
    """Degenerate configurations elaborate without zero-width or reversed ranges
    (Amaranth declares a zero-width signal as ``[-1:0]``; Verilator's ASCRANGE, and
    some synthesis tools, reject it). A direct scan of the Verilog, independent of the
    lint waivers."""
    import re
    from hdl.config import named_config
    from sim.flow.rtl import elaborate
    text = elaborate(top, named_config(config))
    bad = sorted({line.strip() for line in text.splitlines()
                  if re.search(r"\[\s*-\d+\s*:", line)})
    assert not bad, f"{top} ({config}): {bad[:10]}"
