"""Test top: the PEs' :class:`~hdl.dsp.RegisteredMultiplier` shapes side by side.

Not part of the IP: ``tests/test_rtl_fp.py`` simulates it (portable and ECP5 builds)
and ``tests/test_dsp_amaranth.py`` checks it in the Amaranth simulator.
"""

from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..dsp import RegisteredMultiplier

__all__ = ["MultiplierSet"]


class MultiplierSet(wiring.Component):
    """Test top: the :class:`RegisteredMultiplier` shapes the PEs use, side by
    side on shared inputs, so one simulation checks each (and, built for the ECP5
    target, the wiring of each to the ``MULT18X18D`` model).

    Members
    -------
    i_a, i_b : In(18)
        Operand bits; each multiplier takes the low bits it needs.
    o_s8 : Out(signed(16))
        ``i_a[:8] * i_b[:8]`` as signed INT8 (the INT8-only PE).
    o_s12 : Out(signed(24))
        ``i_a[:12] * i_b[:12]``, signed (``FPMul16(subnormals=False, int8=True)``).
    o_s12f : Out(signed(24))
        The same with ``product_in_dsp=False`` (``FPMul16(int8=True)``).
    o_u11 : Out(22)
        ``i_a[:11] * i_b[:11]``, unsigned, ``product_in_dsp=False`` (``FPMul16()``).
    """

    LATENCY = RegisteredMultiplier.LATENCY

    def __init__(self):
        super().__init__({
            "i_a": In(18), "i_b": In(18),
            "o_s8": Out(signed(16)), "o_s12": Out(signed(24)), "o_s12f": Out(signed(24)),
            "o_u11": Out(22),
        })

    def elaborate(self, platform):
        m = Module()
        for name, width, sgn, in_dsp in (("s8", 8, True, True), ("s12", 12, True, True),
                                         ("s12f", 12, True, False), ("u11", 11, False, False)):
            mul = RegisteredMultiplier(width, width, signed=sgn, product_in_dsp=in_dsp)
            m.submodules[f"mul_{name}"] = mul
            m.d.comb += [mul.i_a.eq(self.i_a[:width]), mul.i_b.eq(self.i_b[:width]),
                         getattr(self, f"o_{name}").eq(mul.o_p)]
        return m
