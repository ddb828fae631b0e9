"""Floating-point units, written for the tensor array's FP32 accumulation.

Policy (``docs/numerics.md``): IEEE 754 binary32, round to nearest even, subnormals
supported on input and output, overflow to Inf, canonical quiet NaN ``0x7FC00000`` for
every NaN result, ``Inf - Inf = NaN``, exact zero sums are ``+0`` unless both operands
are ``-0``. The golden model of the same algorithm is :func:`sim.fp.fp32_add_bits`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FP32Adder", "FPMul16", "CANONICAL_NAN"]

CANONICAL_NAN = 0x7FC00000


def _bit_length(m, value, width):
    """A signal holding floor(log2(value)) + 1 (0 for 0): a priority encoder."""
    n = Signal(range(width + 1))
    for i in range(width):           # later (higher) bits take priority
        with m.If(value[i]):
            m.d.comb += n.eq(i + 1)
    return n


class FP32Adder(wiring.Component):
    """Pipelined IEEE binary32 adder, one addition per cycle, ``LATENCY`` = 3.

    Stage 1 orders the operands by magnitude, classifies special values and aligns the
    smaller significand with guard, round and sticky bits. Stage 2 adds or subtracts and
    normalises (carry out, or a left shift limited so that the exponent stays >= 1,
    which yields subnormal results). Stage 3 rounds to nearest even and packs.

    Members
    -------
    i_a, i_b : In(32)
        Operand bit patterns.
    i_valid : In(1)
        Marks a new addition; travels with it.
    o_sum : Out(32)
        ``i_a + i_b``, ``LATENCY`` cycles later.
    o_valid : Out(1)
        ``i_valid`` delayed by ``LATENCY``.
    """

    LATENCY = 3

    i_a: In(32)
    i_b: In(32)
    i_valid: In(1)
    o_sum: Out(32)
    o_valid: Out(1)

    def elaborate(self, platform):
        m = Module()
        a, b = self.i_a, self.i_b

        # ---- stage 1: order, classify, align --------------------------------------
        swap = Signal()
        m.d.comb += swap.eq(b[:31] > a[:31])
        x = Signal(32)
        y = Signal(32)
        m.d.comb += [x.eq(Mux(swap, b, a)), y.eq(Mux(swap, a, b))]
        sx, ex, fx = x[31], x[23:31], x[:23]
        sy, ey, fy = y[31], y[23:31], y[:23]

        nan = Signal()
        inf_x = Signal()
        inf_y = Signal()
        m.d.comb += [
            nan.eq(((ex == 0xFF) & (fx != 0)) | ((ey == 0xFF) & (fy != 0))),
            inf_x.eq((ex == 0xFF) & (fx == 0)),
            inf_y.eq((ey == 0xFF) & (fy == 0)),
        ]
        mx = Cat(fx, ex != 0)                 # 24-bit significands, hidden bit
        my = Cat(fy, ey != 0)
        e_x = Signal(8)
        e_y = Signal(8)
        m.d.comb += [e_x.eq(Mux(ex == 0, 1, ex)), e_y.eq(Mux(ey == 0, 1, ey))]
        d = Signal(8)
        m.d.comb += d.eq(e_x - e_y)
        dd = Signal(range(28))
        m.d.comb += dd.eq(Mux(d > 27, 27, d))
        MY = Signal(27)
        m.d.comb += MY.eq(Cat(Const(0, 3), my))
        lost = Signal(27)
        m.d.comb += lost.eq(MY & ((Const(1, 28) << dd) - 1))
        MY_al = Signal(27)
        m.d.comb += MY_al.eq((MY >> dd) | (lost != 0))

        s1 = {
            "MX": Signal(27), "MY": Signal(27), "e": Signal(8), "sx": Signal(),
            "sub": Signal(), "nan": Signal(), "inf_x": Signal(), "inf_y": Signal(),
            "x": Signal(32), "y": Signal(32), "valid": Signal(),
        }
        m.d.sync += [
            s1["MX"].eq(Cat(Const(0, 3), mx)), s1["MY"].eq(MY_al), s1["e"].eq(e_x),
            s1["sx"].eq(sx), s1["sub"].eq(sx != sy), s1["nan"].eq(nan),
            s1["inf_x"].eq(inf_x), s1["inf_y"].eq(inf_y),
            s1["x"].eq(x), s1["y"].eq(y), s1["valid"].eq(self.i_valid),
        ]

        # ---- stage 2: add / subtract, normalise -----------------------------------
        R0 = Signal(28)
        m.d.comb += R0.eq(Mux(s1["sub"], s1["MX"] - s1["MY"], s1["MX"] + s1["MY"]))
        carry = R0[27]
        R1 = Signal(27)
        e1 = Signal(9)
        m.d.comb += [
            R1.eq(Mux(carry, R0[1:28] | R0[0], R0[:27])),
            e1.eq(s1["e"] + carry),
        ]
        n = _bit_length(m, R1, 27)
        lz = Signal(range(28))
        m.d.comb += lz.eq(27 - n)
        sh = Signal(range(28))
        m.d.comb += sh.eq(Mux(lz > e1 - 1, e1 - 1, lz))
        s2 = {
            "R": Signal(27), "e": Signal(9), "zero": Signal(),
            "sx": Signal(), "sub": Signal(), "nan": Signal(), "inf_x": Signal(),
            "inf_y": Signal(), "x": Signal(32), "y": Signal(32), "valid": Signal(),
        }
        m.d.sync += [
            s2["R"].eq(R1 << sh), s2["e"].eq(e1 - sh), s2["zero"].eq(R1 == 0),
        ] + [s2[k].eq(s1[k]) for k in ("sx", "sub", "nan", "inf_x", "inf_y", "x", "y", "valid")]

        # ---- stage 3: round to nearest even, pack -----------------------------------
        R = s2["R"]
        mant0 = R[3:27]
        guard = R[2]
        rest = R[:2] != 0
        mant1 = Signal(25)
        m.d.comb += mant1.eq(mant0 + (guard & (rest | mant0[0])))
        ovf = mant1[24]
        mant = Signal(24)
        e3 = Signal(10)
        m.d.comb += [
            mant.eq(Mux(ovf, mant1[1:25], mant1[:24])),
            e3.eq(s2["e"] + ovf),
        ]
        exp_field = Signal(10)
        m.d.comb += exp_field.eq(Mux(mant[23], e3, 0))

        result = Signal(32)
        with m.If(s2["nan"] | (s2["inf_x"] & s2["inf_y"] & s2["sub"])):
            m.d.comb += result.eq(CANONICAL_NAN)
        with m.Elif(s2["inf_x"]):
            m.d.comb += result.eq(s2["x"])
        with m.Elif(s2["inf_y"]):
            m.d.comb += result.eq(s2["y"])
        with m.Elif(s2["zero"]):
            m.d.comb += result.eq(Cat(Const(0, 31), s2["sx"] & ~s2["sub"]))
        with m.Elif(exp_field >= 255):
            m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), s2["sx"]))
        with m.Else():
            m.d.comb += result.eq(Cat(mant[:23], exp_field[:8], s2["sx"]))

        m.d.sync += [self.o_sum.eq(result), self.o_valid.eq(s2["valid"])]
        return m


class FPMul16(wiring.Component):
    """Pipelined BF16 x BF16 or FP16 x FP16 multiplier with an FP32 result, ``LATENCY`` = 2.

    The format is chosen per operation (``i_fmt``: 0 = BF16, 1 = FP16). The exact
    product (11 x 11 significand bits at most) is rounded once to binary32, round to
    nearest even: exact for FP16 and for BF16 products in the FP32 normal range; BF16
    products below it round to a subnormal or zero, above it to Inf. NaN operands and
    ``Inf * 0`` give the canonical NaN. Golden model: :func:`sim.fp.mul16_to_fp32_bits`.

    Members
    -------
    i_a, i_b : In(16)
        Operand bit patterns.
    i_fmt : In(1)
        0 for BF16, 1 for FP16.
    i_valid : In(1)
        Travels with the operation.
    o_prod : Out(32)
        The FP32 product, ``LATENCY`` cycles later.
    o_valid : Out(1)
        ``i_valid`` delayed by ``LATENCY``.
    """

    LATENCY = 2
    FMT_BF16 = 0
    FMT_FP16 = 1

    i_a: In(16)
    i_b: In(16)
    i_fmt: In(1)
    i_valid: In(1)
    o_prod: Out(32)
    o_valid: Out(1)

    def elaborate(self, platform):
        m = Module()
        fp16 = self.i_fmt

        def decode(v, name):
            e = Signal(8, name=f"{name}_e")
            f = Signal(10, name=f"{name}_f")
            emax = Signal(name=f"{name}_emax")
            sig = Signal(11, name=f"{name}_sig")
            exp = Signal(signed(10), name=f"{name}_exp")   # value = sig * 2**exp
            with m.If(fp16):
                m.d.comb += [e.eq(v[10:15]), f.eq(v[:10]), emax.eq(v[10:15] == 0x1F)]
                m.d.comb += exp.eq(Mux(e == 0, 1, e) - 25)
                m.d.comb += sig.eq(Cat(f, e != 0))
            with m.Else():
                m.d.comb += [e.eq(v[7:15]), f.eq(v[:7]), emax.eq(v[7:15] == 0xFF)]
                m.d.comb += exp.eq(Mux(e == 0, 1, e) - 134)
                m.d.comb += sig.eq(Cat(f[:7], e != 0))
            nan = emax & (f != 0)
            inf = emax
            return sig, exp, nan, inf

        siga, expa, nana, infa = decode(self.i_a, "a")
        sigb, expb, nanb, infb = decode(self.i_b, "b")

        # ---- stage 1: multiply significands, add exponents -------------------------
        P = Signal(22)
        E = Signal(signed(11))
        sign = Signal()
        nan = Signal()
        inf = Signal()
        zero_in = Signal()
        valid1 = Signal()
        m.d.sync += [
            P.eq(siga * sigb), E.eq(expa + expb), sign.eq(self.i_a[15] ^ self.i_b[15]),
            nan.eq(nana | nanb), inf.eq(infa | infb), zero_in.eq((siga == 0) | (sigb == 0)),
            valid1.eq(self.i_valid),
        ]

        # ---- stage 2: normalise or denormalise, round, pack --------------------------
        n = _bit_length(m, P, 22)
        lead = Signal(signed(12))
        m.d.comb += lead.eq(E + n - 1)

        norm_sig = Signal(24)
        m.d.comb += norm_sig.eq(P << (24 - n)[:5])         # exact: P has n <= 22 bits
        norm = Cat(norm_sig[:23], (lead + 127)[:8], sign)

        up = Signal(signed(12))                            # E + 149: > 0 -> exact left shift
        m.d.comb += up.eq(E + 149)
        down = Signal(range(25))                           # bits to round away, clipped
        m.d.comb += down.eq(Mux(up >= 0, 0, Mux(-up > 24, 24, -up)))
        kept = Signal(24)
        half = Signal()
        below = Signal()
        with m.If(up > 0):
            m.d.comb += kept.eq(P << up[:5])
        with m.Else():
            m.d.comb += [
                kept.eq(P >> down),
                half.eq(Mux(down > 0, (P >> (down - 1)[:5])[0], 0)),
                below.eq(Mux(down > 1, (P & ((Const(1, 24) << (down - 1)[:5]) - 1)) != 0, 0)),
            ]
        rounded = Signal(24)
        m.d.comb += rounded.eq(kept + (half & (below | kept[0])))
        # a subnormal pattern; a carry into bit 23 makes it the smallest normal, correctly
        sub = Cat(rounded, Const(0, 7), sign)

        result = Signal(32)
        with m.If(nan | (inf & zero_in)):
            m.d.comb += result.eq(CANONICAL_NAN)
        with m.Elif(inf | (lead > 127)):
            m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), sign))
        with m.Elif(zero_in):
            m.d.comb += result.eq(Cat(Const(0, 31), sign))
        with m.Elif(lead >= -126):
            m.d.comb += result.eq(norm)
        with m.Else():
            m.d.comb += result.eq(sub)
        m.d.sync += [self.o_prod.eq(result), self.o_valid.eq(valid1)]
        return m
