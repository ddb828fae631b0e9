"""A registered multiplier that maps onto an FPGA DSP block with its own registers.

Every multiplier in the processing elements is "register the operands, multiply,
register the product". Yosys infers the multiply itself into an ECP5 ``MULT18X18D``
but leaves both registers in the fabric, so on a large array the routes between the
fabric registers and a DSP block placed far away are the critical path (the 8x8 float
array: 4.8 ns to the DSP and 4.8 ns back, around its 3.9 ns multiply). Elaborated for
the ECP5 target, :class:`RegisteredMultiplier` instantiates the ``MULT18X18D`` with its
A, B and output registers enabled instead, so both registers sit inside the DSP block:
each register-to-register path then has one long route, not two, and the fabric
saves the flip-flops of the operand and product registers. (``product_in_dsp=False``
keeps the product register in the fabric, for a product that feeds heavy logic.)

The target is chosen by the ``platform`` object handed to elaboration (Amaranth passes
it down the whole hierarchy): :data:`ECP5` selects the primitive, anything else
(``None`` in simulation) the portable description. Both have the same cycle behaviour:
the product of the operands seen in cycle ``t`` is on ``o_p`` in cycle ``t + 2``; the
registers have no reset (their contents only matter once valid data reaches them).

The primitive's behaviour used here (Lattice TN1267, ECP5 sysDSP usage guide):
``P = A * B`` with ``A``/``B`` signed when ``SIGNEDA``/``SIGNEDB`` is high; with
``REG_INPUTA_CLK``/``REG_INPUTB_CLK``/``REG_OUTPUT_CLK`` = ``"CLK0"`` the operands and
the product are registered on ``CLK0`` (enabled by ``CE0``, reset by ``RST0``), and
the pipeline register is bypassed. ``tb/models/MULT18X18D.v`` is a simulation model of
exactly that subset, used to run the ECP5 netlist on Verilator
(``tests/test_rtl_fp.py``).
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ECP5", "Target", "RegisteredMultiplier", "target_named"]


class Target:
    """An elaboration target for vendor primitives: pass it as ``platform`` to
    ``amaranth.back.verilog.convert``. It has no other platform methods, so
    memories and everything else elaborate as they do in simulation."""

    def __init__(self, name, dsp, bram=None):
        self.name = name
        #: Which DSP primitive :class:`RegisteredMultiplier` instantiates (or ``None``).
        self.dsp = dsp
        #: Which block-RAM primitive :class:`~hdl.fifo.StreamFIFO` instantiates, to use
        #: the RAM's own output register (or ``None``: an inferred memory).
        self.bram = bram

    def __repr__(self):
        return f"Target({self.name!r})"


#: Lattice ECP5: ``MULT18X18D`` with input and output registers; ``DP16KD`` with its
#: output register for the block-RAM FIFOs.
ECP5 = Target("ecp5", dsp="MULT18X18D", bram="DP16KD")

_TARGETS = {"generic": None, "ecp5": ECP5}


def target_named(name):
    """``"generic"`` -> ``None`` (portable Verilog), ``"ecp5"`` -> :data:`ECP5`."""
    if name not in _TARGETS:
        raise ValueError(f"unknown target {name!r}; choose from {', '.join(_TARGETS)}")
    return _TARGETS[name]


class RegisteredMultiplier(wiring.Component):
    """``o_p = i_a * i_b``, ``LATENCY`` = 2 cycles later: operand registers, multiply,
    product register. On the ECP5 target, one ``MULT18X18D`` holding all three.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths, 1 to 18 (one 18 x 18 DSP multiplier).
    signed : bool
        Two's complement operands and product (``True``) or unsigned (``False``).
    product_in_dsp : bool
        On the ECP5 target, use the DSP's output register for the product (default).
        ``False`` keeps the product register in the fabric (``REG_OUTPUT_CLK =
        "NONE"``): the multiply then ends in a fabric register, which is better when
        heavy logic follows the product (the IEEE ``FPMul16``'s leading-zero count:
        its stage would otherwise start with the route out of the DSP). Same cycle
        behaviour either way; no effect on the portable description.

    Members
    -------
    i_a : In(a_width), i_b : In(b_width)
        Operands (signed shapes if ``signed``).
    o_p : Out(a_width + b_width)
        Their exact product, two cycles later.
    """

    LATENCY = 2
    MAX_WIDTH = 18

    def __init__(self, a_width, b_width, *, signed=True, product_in_dsp=True):
        for name, w in (("a_width", a_width), ("b_width", b_width)):
            if not isinstance(w, int) or isinstance(w, bool) or not 1 <= w <= self.MAX_WIDTH:
                raise ValueError(f"{name} must be an integer from 1 to {self.MAX_WIDTH} "
                                 f"(one 18 x 18 DSP multiplier), not {w!r}")
        if not isinstance(signed, bool):
            raise TypeError(f"signed must be a bool, not {signed!r}")
        if not isinstance(product_in_dsp, bool):
            raise TypeError(f"product_in_dsp must be a bool, not {product_in_dsp!r}")
        self.a_width, self.b_width, self.signed = a_width, b_width, signed
        self.product_in_dsp = product_in_dsp
        shape = _signed_shape if signed else unsigned
        super().__init__({
            "i_a": In(shape(a_width)),
            "i_b": In(shape(b_width)),
            "o_p": Out(shape(a_width + b_width)),
        })

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "dsp", None) == "MULT18X18D":
            self._ecp5(m)
            return m
        a = Signal.like(self.i_a, name="a_q", reset_less=True)
        b = Signal.like(self.i_b, name="b_q", reset_less=True)
        p = Signal.like(self.o_p, name="p_q", reset_less=True)
        m.d.sync += [a.eq(self.i_a), b.eq(self.i_b), p.eq(a * b)]
        m.d.comb += self.o_p.eq(p)
        return m

    def _ecp5(self, m):
        # Operands extended to the DSP's 18 bits (sign- or zero-, by their shapes).
        a18, b18 = Signal(_ext(self.signed)), Signal(_ext(self.signed))
        p36 = Signal(36)
        m.d.comb += [a18.eq(self.i_a), b18.eq(self.i_b)]
        # Connected: A, B, C (unused, 0), SIGNEDA/B, SOURCEA/B (0: operands from A and
        # B, not the shift chain), CLK0, CE0 (1), RST0 (0), P; as Yosys's own ECP5 DSP
        # mapping does, the other clock, enable and reset inputs and the shift-chain
        # inputs are left unconnected (nextpnr ties them off; a constant driven onto
        # them through the routing can be unroutable).
        ports = {}
        for i in range(18):
            ports[f"i_A{i}"] = a18[i]
            ports[f"i_B{i}"] = b18[i]
            ports[f"i_C{i}"] = Const(0, 1)
        for i in range(36):
            ports[f"o_P{i}"] = p36[i]
        sgn = Const(int(self.signed), 1)
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
            p_REG_INPUTC_CLK="NONE",
            p_REG_PIPELINE_CLK="NONE",
            p_REG_OUTPUT_CLK="CLK0" if self.product_in_dsp else "NONE",
            p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
            # B from the B input: "B_SHIFT" (the primitive's default) with SOURCEB low.
            # Not "B_INPUT": Yosys and nextpnr pass it on, but Project Trellis's
            # database has no such value and ecppack fails on it (found by the first
            # ULX3S bitstream; make synth stops before ecppack).
            p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED", p_CAS_MATCH_REG="FALSE",
            p_RESETMODE="SYNC", p_GSR="DISABLED",
            i_SIGNEDA=sgn, i_SIGNEDB=sgn, i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
            i_CLK0=ClockSignal("sync"), i_CE0=Const(1, 1), i_RST0=Const(0, 1),
            **ports,
        )
        if self.product_in_dsp:
            m.d.comb += self.o_p.eq(p36[:len(self.o_p)])
        else:
            p = Signal.like(self.o_p, name="p_q", reset_less=True)
            m.d.sync += p.eq(p36[:len(self.o_p)])
            m.d.comb += self.o_p.eq(p)


def _signed_shape(width):
    return signed(width)


def _ext(is_signed):
    return signed(18) if is_signed else unsigned(18)

