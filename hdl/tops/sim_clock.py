"""The clock and reset of the simulation tops: ``rst`` through one register.

Amaranth gives every register of a domain with a synchronous reset a multiplexer on
``rst``, so when ``rst`` is a top-level input all next-state logic depends on an
input. Verilator evaluates logic that depends on inputs (its ``ico`` region) on
every ``eval()``, that is on both clock edges and after every value the testbench
writes, on top of evaluating it after the registers change: a third of the whole
core's simulation time went there (``docs/sim_speed.md``). Registering ``rst`` once,
at the top, makes every reset multiplexer depend on a register instead, and the logic
is evaluated once per clock edge.

The cost: the design leaves reset one cycle after ``rst`` falls
(:data:`RESET_DELAY`); the testbenches wait that cycle (``tb.common``), told by the
runner through ``NCORE_RESET_DELAY``. Only simulation tops do this; the core itself
keeps its plain synchronous reset for whoever integrates it.
"""

from amaranth.hdl import ClockDomain, ClockSignal, Signal
from amaranth.lib.wiring import In

__all__ = ["CLOCK_PERIOD_NS", "CLOCK_PORTS", "RESET_DELAY", "clock_ports", "clock_and_registered_reset"]

#: The ports a simulation top adds to its signature for :func:`clock_and_registered_reset`.
CLOCK_PORTS = {"clk": In(1), "rst": In(1)}


def clock_ports(registered):
    """:data:`CLOCK_PORTS` for a top that registers its reset, else none (the implicit
    ``sync`` domain's ``clk`` and ``rst`` become the ports, as for any block)."""
    return dict(CLOCK_PORTS) if registered else {}

#: Cycles between ``rst`` falling and the design leaving reset.
RESET_DELAY = 1

#: The simulated clock period in ns (100 MHz): the testbenches' clock, and the clock a
#: free-running simulation model generates itself (``sim.flow.runner.FREE_CLOCK_TOPS``).
CLOCK_PERIOD_NS = 10


def clock_and_registered_reset(m, top, *, registered=True):
    """Define the ``sync`` domain of module ``m`` from ``top.clk`` and ``top.rst``
    (members added with :func:`clock_ports`), its reset ``rst`` delayed by one
    register that itself has no reset and powers up asserted. With ``registered``
    false, do nothing: ``sync`` stays implicit (a top inside another, such as a
    synthesis wrapper, must not define the domain its parent uses)."""
    if not registered:
        return
    cd = m.domains.sync = ClockDomain("sync")
    m.d.comb += cd.clk.eq(top.clk)
    m.domains.rst_reg = ClockDomain("rst_reg", reset_less=True)
    m.d.comb += ClockSignal("rst_reg").eq(top.clk)
    rst_q = Signal(init=1)
    m.d.rst_reg += rst_q.eq(top.rst)
    m.d.comb += cd.rst.eq(rst_q)
