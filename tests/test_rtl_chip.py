"""Verilator runs of the chip testbench (tb/chip: hdl/chip.py on a SimDram) against the
chip ISS: two cores of 4x4 (``make test``), two cores with random stalls on every DRAM
channel (``chip_sim2_stall``), and four cores (``make regress``: the same generator with
another core count; a model build of its own)."""

import pytest

from sim.flow.runner import run_rtl_test
from tiers import regress_cases

MODULE = "tb.chip.test_chip"
TESTS = ["test_registers", "test_chain", "test_parallel", "test_refusals"]
CASES = ([("chip_sim2", t) for t in TESTS] + [("chip_sim4", t) for t in TESTS[1:]]
         + [("chip_sim2_stall", t) for t in ("test_chain", "test_parallel")])


@pytest.mark.rtl
@pytest.mark.parametrize("top,testcase", regress_cases(CASES, lambda t, c: t == "chip_sim4"),
                         ids=[f"{a}-{b}" for a, b in CASES])
def test_chip(top, testcase):
    run_rtl_test(top, MODULE, testcase, "4x4")


@pytest.mark.rtl
@pytest.mark.parametrize("mode", ["pipeline", "data"])
def test_compiled_on_chip(mode):
    """A compiled INT8 MLP pipelined over (or split across) a two-core 4x4 chip on the RTL:
    output and the whole DRAM image equal to the golden chip model's."""
    import numpy as np
    from sim.compiler.chip import compile_data_parallel, run_chip_compiled
    from sim.compiler.pipeline import compile_pipeline
    from test_chip_compile import quant_net
    rng = np.random.default_rng(11)
    net = quant_net(rng, [24, 20, 16, 12, 10])
    x = rng.normal(size=(19, 24)).astype(np.float32)
    compile_ = compile_pipeline if mode == "pipeline" else compile_data_parallel
    cc = compile_(net, "4x4", batch=19, cores=2, check=True)
    want, gold = run_chip_compiled(cc, x, backend="golden")
    got, rtl = run_chip_compiled(cc, x, backend="verilator")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(rtl.dram, gold.dram)
    assert rtl.cycles > 0 and all(r["error"] == "NONE" for r in rtl.results if r)
