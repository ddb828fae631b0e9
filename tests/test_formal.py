# amaranth: UnusedElaboratable=no
"""The formal proofs of ``sim/flow/formal_props.py`` (SymbiYosys; ``docs/formal.md``),
one test each, and a check that the flow reports a broken block as a failed proof
with a counterexample rather than passing it."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from sim.flow.formal import FormalFailure, FormalTop, Monitor, check, run
from sim.flow.formal_props import PROOFS, run_proof
from tests.tiers import regress

# A proof is marked regress when its solver time is over ~10 s (docs/formal.md); the
# same block and property stay in make test at a smaller depth (dma-rules for
# dma-rules-deep).
CASES = [pytest.param(p, id=p.name, marks=[regress] if p.regress else []) for p in PROOFS]


@pytest.mark.parametrize("proof", CASES)
def test_proof(proof):
    result = run_proof(proof)
    assert result.passed, result.describe()


class _DropsValid(wiring.Component):
    """A broken register stage: it drops ``o.valid`` after one cycle whether or not
    the consumer took the payload (the rule is: hold it until ``ready``)."""

    i: In(stream.Signature(4))
    o: Out(stream.Signature(4))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid)
        m.d.sync += self.o.valid.eq(self.i.valid & ~self.o.valid)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.o.payload.eq(self.i.payload)
        return m


class _BrokenTop(FormalTop):
    def elaborate(self, platform):
        m = Module()
        mon = Monitor(m)
        dut = m.submodules.dut = _DropsValid()
        self.free_inputs(dut)
        mon.stream(dut.i, assume=True, name="i")
        mon.stream(dut.o, name="o")
        return m


@pytest.mark.parametrize("mode", ["prove", "bmc"])
def test_broken_block_fails(mode):
    result = run(_BrokenTop(), f"selftest-broken-{mode}", mode=mode, depth=4)
    assert not result.passed and result.status == "FAIL"
    assert result.traces and all(t.exists() and t.suffix == ".vcd" for t in result.traces)
    # the failed assertion is located at the line that asked for the rule
    assert any("test_formal.py" in f for f in result.failures)
    with pytest.raises(FormalFailure, match=r"counterexample: .*\.vcd"):
        check(_BrokenTop(), f"selftest-broken-{mode}", mode=mode, depth=4)


def test_free_inputs_are_signals():
    top = FormalTop()
    with pytest.raises(TypeError, match="a free input must be a Signal, not"):
        top.free(Signal(2) + 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "cover"}, "mode must be one of ('prove', 'bmc'), not 'cover'"),
    ({"depth": 0}, "depth must be a positive integer, not 0"),
])
def test_run_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(_BrokenTop(), "x", **kwargs)
