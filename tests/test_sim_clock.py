# amaranth: UnusedElaboratable=no
"""The simulation tops' clock and reset (hdl/tops/sim_clock.py) and the runner's rewrite
of a top into a free-running-clock model (sim/flow/runner.py): the reset reaches the
design RESET_DELAY cycles late, the testbench's wait matches it, and the rewrite
touches only the top module's clk."""

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from amaranth.sim import Simulator

from hdl.tops.sim_clock import CLOCK_PERIOD_NS, RESET_DELAY, clock_and_registered_reset, clock_ports


class _Counter(wiring.Component):
    def __init__(self, registered):
        self._registered = registered
        super().__init__({**clock_ports(registered), "count": Out(8)})

    def elaborate(self, platform):
        m = Module()
        clock_and_registered_reset(m, self, registered=self._registered)
        m.d.sync += self.count.eq(self.count + 1)
        return m


def _counts_after_reset(edges_in_reset=3, edges_after=4):
    """``count`` of a registered-reset counter after each rising edge once ``rst`` falls
    (the testbench drives ``clk`` itself: the top's clock is a port)."""
    dut = _Counter(True)
    seen = []
    half = CLOCK_PERIOD_NS * 1e-9 / 2

    async def tb(ctx):
        async def edge():
            ctx.set(dut.clk, 0)
            await ctx.delay(half)
            ctx.set(dut.clk, 1)
            await ctx.delay(half)
        ctx.set(dut.rst, 1)
        for _ in range(edges_in_reset):
            await edge()
        ctx.set(dut.rst, 0)
        for _ in range(edges_after):
            await edge()
            seen.append(ctx.get(dut.count))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    return seen


def test_registered_reset_releases_one_cycle_late():
    # a plain synchronous reset counts from the first edge with rst low: 1, 2, 3, 4
    plain = [1, 2, 3, 4]
    assert RESET_DELAY == 1
    assert _counts_after_reset() == [c - RESET_DELAY for c in plain]


def test_unregistered_adds_no_ports():
    assert clock_ports(False) == {}
    assert set(clock_ports(True)) == {"clk", "rst"}


VERILOG = """module inner(clk, a);
  input clk;
  wire clk;
  input a;
endmodule
module top(rst, a, y
, clk);
  input clk;
  wire clk;
  input rst;
  inner u (.clk(clk), .a(a));
endmodule
"""


def test_top_ports_and_free_clock_rewrite(tmp_path):
    from sim.flow.runner import _free_clock_verilog, top_ports
    v = tmp_path / "top.v"
    v.write_text(VERILOG)
    assert top_ports(v, "top") == ["rst", "a", "y", "clk"]
    build_dir = tmp_path / "build"
    free = _free_clock_verilog("top", v, build_dir)
    text = free.read_text()
    assert top_ports(free, "top") == ["rst", "a", "y"]
    assert f"always #{CLOCK_PERIOD_NS / 2:g} clk = ~clk;" in text
    assert "module inner(clk, a);\n  input clk;" in text      # other modules untouched
    assert text.count("input clk;") == 1


def test_free_clock_rewrite_needs_a_clk_input(tmp_path):
    from sim.flow.runner import _free_clock_verilog
    v = tmp_path / "top.v"
    v.write_text("module top(a);\n  input a;\nendmodule\n")
    with pytest.raises(ValueError, match="no clk input in module top"):
        _free_clock_verilog("top", v, tmp_path / "build")
