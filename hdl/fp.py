"""Floating-point units, written for the tensor array's FP32 accumulation.

Policy (``docs/numerics.md``): IEEE 754 binary32, round to nearest even, subnormals
supported on input and output, overflow to Inf, canonical quiet NaN ``0x7FC00000`` for
every NaN result, ``Inf - Inf = NaN``, exact zero sums are ``+0`` unless both operands
are ``-0``. The golden model of the same algorithm is :func:`sim.fp.fp32_add_bits`.

Both units take an elaboration-time ``subnormals`` option (default ``True``, the shipped
policy). ``subnormals=False`` builds a flush-to-zero variant for area-constrained builds:
subnormal inputs are read as zeros of their sign, and a result whose IEEE value would be
subnormal becomes a zero of its sign; the logic that only subnormals need is left out.
Latencies are the same. The golden models take the same keyword.
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
    """Pipelined IEEE binary32 adder, one addition per cycle, ``LATENCY`` = 7.

    Stages: (1) order the operands by magnitude; (2) classify special values, take the
    exponent difference; (3) align the smaller significand, keeping guard, round and
    sticky bits; (4) add or subtract, and on a carry shift right one keeping sticky;
    (5) count leading zeros and limit the left shift so that the exponent stays >= 1
    (which yields subnormal results); (6) shift left; (7) round to nearest even, pack.

    Parameters
    ----------
    subnormals : bool
        ``True`` (default): full IEEE subnormal support. ``False``: flush to zero. A
        subnormal operand counts as a zero of its sign (its exponent field is taken as
        0, not 1, and its significand is ignored); the left shift of stage 5 is not
        limited, and a result left with a biased exponent <= 0 by it, i.e. a nonzero
        sum below ``2**-126``, becomes a zero of its sign. With normal operands such a
        sum is exact, so flushing before or after rounding is the same rule. Golden
        model: ``sim.fp.fp32_add_bits(a, b, subnormals=False)``.

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

    LATENCY = 7

    i_a: In(32)
    i_b: In(32)
    i_valid: In(1)
    o_sum: Out(32)
    o_valid: Out(1)

    def __init__(self, *, subnormals=True):
        if not isinstance(subnormals, bool):
            raise TypeError(f"subnormals must be a bool, not {subnormals!r}")
        self.subnormals = subnormals
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        ieee = self.subnormals

        def stage(name, **values):
            """Register ``values`` (name -> expression) into fresh reset-less signals;
            the valid bit alone is reset."""
            out = {}
            for key, value in values.items():
                sig = Signal.like(value, name=f"{name}_{key}", reset_less=(key != "valid")) \
                    if isinstance(value, Signal) else \
                    Signal(len(value), name=f"{name}_{key}", reset_less=(key != "valid"))
                m.d.sync += sig.eq(value)
                out[key] = sig
            return out

        a, b = self.i_a, self.i_b

        # ---- 1: order by magnitude ---------------------------------------------------
        swap = b[:31] > a[:31]
        s1 = stage("s1", x=Mux(swap, b, a), y=Mux(swap, a, b), valid=self.i_valid)

        # ---- 2: classify, exponent difference ------------------------------------------
        x, y = s1["x"], s1["y"]
        sx, ex, fx = x[31], x[23:31], x[:23]
        sy, ey, fy = y[31], y[23:31], y[:23]
        if ieee:
            e_x = Mux(ex == 0, 1, ex)
            e_y = Mux(ey == 0, 1, ey)
        else:
            # flush: a zero exponent field means zero, whatever the fraction holds. The
            # fractions stay in MX and MY (whose registers then copy those of x and y,
            # which synthesis merges): a flushed y is shifted out entirely in stage 3,
            # its sticky bit suppressed; stage 5 knows a flushed x (so y) by exponent 0.
            e_x, e_y = ex, ey
        d = Signal(8)
        m.d.comb += d.eq(e_x - e_y)
        s2 = stage(
            "s2",
            MX=Cat(Const(0, 3), fx, ex != 0), MY=Cat(Const(0, 3), fy, ey != 0),
            dd=Mux((d > 27) if ieee else (d > 27) | (ey == 0), 27, d)[:5],
            e=e_x, sx=sx, sub=sx != sy,
            nan=((ex == 0xFF) & (fx != 0)) | ((ey == 0xFF) & (fy != 0)),
            inf_x=(ex == 0xFF) & (fx == 0), inf_y=(ey == 0xFF) & (fy == 0),
            x=x, y=y, valid=s1["valid"])

        # ---- 3: align the smaller significand (guard, round, sticky) ---------------------
        MY, dd = s2["MY"], s2["dd"]
        lost_mask = ~(Const((1 << 27) - 1, 27) << dd)[:27]
        sticky = (MY & lost_mask) != 0
        if not ieee:
            sticky = sticky & MY[26]         # no hidden bit: y is zero or flushed
        keep = ("e", "sx", "sub", "nan", "inf_x", "inf_y", "x", "y", "valid")
        s3 = stage("s3", MX=s2["MX"], MY=(MY >> dd) | sticky,
                   **{k: s2[k] for k in keep})

        # ---- 4: add or subtract; carry -> shift right one, keeping sticky ---------------
        R0 = Signal(28)
        m.d.comb += R0.eq(Mux(s3["sub"], s3["MX"] - s3["MY"], s3["MX"] + s3["MY"]))
        carry = R0[27]
        s4 = stage("s4", R=Mux(carry, R0[1:28] | R0[0], R0[:27]), e=(s3["e"] + carry)[:9],
                   **{k: s3[k] for k in keep if k != "e"})

        # ---- 5: leading zeros; the left shift, limited so the exponent stays >= 1 ---------
        R1, e1 = s4["R"], s4["e"]
        n = _bit_length(m, R1, 27)
        lz = Signal(range(28))
        m.d.comb += lz.eq(27 - n)
        # (flush to zero: no limit, a result pushed to exponent <= 0 is flushed in stage
        # 7; e1 = 0 only if x, hence y too, is zero or flushed: the sum is a zero)
        s5a = stage("s5a", R=R1, e=e1, sh=(Mux(lz > e1 - 1, e1 - 1, lz) if ieee else lz)[:5],
                    zero=(R1 == 0) if ieee else (R1 == 0) | (e1 == 0),
                    **{k: s4[k] for k in keep if k != "e"})

        # ---- 6: normalise left ----------------------------------------------------------------
        if ieee:
            s5 = stage("s5", R=(s5a["R"] << s5a["sh"])[:27], e=(s5a["e"] - s5a["sh"])[:9],
                       zero=s5a["zero"], **{k: s5a[k] for k in keep if k != "e"})
        else:
            # the exponent after the shift, one bit wider: <= 0 means a nonzero result
            # below 2**-126 (exact: only a cancellation shifts left by more than one),
            # flushed in stage 7 to a zero with the sign of the larger operand
            e6 = Signal(10)
            m.d.comb += e6.eq(s5a["e"] - s5a["sh"])
            s5 = stage("s5", R=(s5a["R"] << s5a["sh"])[:27], e=e6[:9], zero=s5a["zero"],
                       tiny=e6[9] | (e6 == 0), **{k: s5a[k] for k in keep if k != "e"})

        # ---- 7: round to nearest even, pack ------------------------------------------------
        R = s5["R"]
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
            e3.eq(s5["e"] + ovf),
        ]
        exp_field = Signal(10)
        # (flush to zero: every result that gets here is normalised, mant[23] = 1)
        m.d.comb += exp_field.eq(Mux(mant[23], e3, 0) if ieee else e3)

        result = Signal(32)
        with m.If(s5["nan"] | (s5["inf_x"] & s5["inf_y"] & s5["sub"])):
            m.d.comb += result.eq(CANONICAL_NAN)
        with m.Elif(s5["inf_x"]):
            m.d.comb += result.eq(s5["x"])
        with m.Elif(s5["inf_y"]):
            m.d.comb += result.eq(s5["y"])
        with m.Elif(s5["zero"]):
            m.d.comb += result.eq(Cat(Const(0, 31), s5["sx"] & ~s5["sub"]))
        if not ieee:
            with m.Elif(s5["tiny"]):
                m.d.comb += result.eq(Cat(Const(0, 31), s5["sx"]))
        with m.Elif(exp_field >= 255):
            m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), s5["sx"]))
        with m.Else():
            m.d.comb += result.eq(Cat(mant[:23], exp_field[:8], s5["sx"]))

        m.d.sync += [self.o_sum.eq(result), self.o_valid.eq(s5["valid"])]
        return m


class FPMul16(wiring.Component):
    """Pipelined BF16 x BF16 or FP16 x FP16 multiplier with an FP32 result, ``LATENCY`` = 5.

    Stages: (1) decode the operands of the chosen format; (2) multiply the significands
    (one DSP) and add the exponents; (3) find the leading one and the shift amounts;
    (4) normalise (exact) or denormalise keeping guard and sticky; (5) round, pack.

    The format is chosen per operation (``i_fmt``: 0 = BF16, 1 = FP16). The exact
    product (11 x 11 significand bits at most) is rounded once to binary32, round to
    nearest even: exact for FP16 and for BF16 products in the FP32 normal range; BF16
    products below it round to a subnormal or zero, above it to Inf. NaN operands and
    ``Inf * 0`` give the canonical NaN. Golden model: :func:`sim.fp.mul16_to_fp32_bits`.

    Parameters
    ----------
    subnormals : bool
        ``True`` (default): full IEEE subnormal support. ``False``: flush to zero. A
        subnormal operand (either format) counts as a zero of its sign, so ``Inf`` times
        a subnormal is NaN; a product below ``2**-126`` (BF16 only) becomes a zero of
        its sign. Both significands then have their hidden bit, so the product is
        normalised by a one-bit shift and is exact (at most 22 bits): the leading-one
        search, the denormalising shifter and the rounding adder are left out. A
        product of normal BF16 values is never within rounding distance of
        ``2**-126`` from below, so flushing before or after rounding is the same rule.
        Golden model: ``sim.fp.mul16_to_fp32_bits(a, b, fmt, subnormals=False)``.

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

    LATENCY = 5
    FMT_BF16 = 0
    FMT_FP16 = 1

    i_a: In(16)
    i_b: In(16)
    i_fmt: In(1)
    i_valid: In(1)
    o_prod: Out(32)
    o_valid: Out(1)

    def __init__(self, *, subnormals=True):
        if not isinstance(subnormals, bool):
            raise TypeError(f"subnormals must be a bool, not {subnormals!r}")
        self.subnormals = subnormals
        super().__init__()

    def elaborate(self, platform):
        if not self.subnormals:
            return self._elaborate_ftz()
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

        # ---- stage 1: decoded operands registered ----------------------------------
        r = dict(siga=Signal(11), sigb=Signal(11), expa=Signal(signed(10)),
                 expb=Signal(signed(10)), sign=Signal(), nan=Signal(), inf=Signal())
        valid0 = Signal()
        m.d.sync += [
            r["siga"].eq(siga), r["sigb"].eq(sigb), r["expa"].eq(expa), r["expb"].eq(expb),
            r["sign"].eq(self.i_a[15] ^ self.i_b[15]), r["nan"].eq(nana | nanb),
            r["inf"].eq(infa | infb), valid0.eq(self.i_valid),
        ]

        # ---- stage 2: multiply significands, add exponents ------------------------------
        P = Signal(22)
        E = Signal(signed(11))
        sign = Signal()
        nan = Signal()
        inf = Signal()
        zero_in = Signal()
        valid1 = Signal()
        m.d.sync += [
            P.eq(r["siga"] * r["sigb"]), E.eq(r["expa"] + r["expb"]), sign.eq(r["sign"]),
            nan.eq(r["nan"]), inf.eq(r["inf"]),
            zero_in.eq((r["siga"] == 0) | (r["sigb"] == 0)), valid1.eq(valid0),
        ]

        # ---- stage 3: leading one, result exponent, shift amounts -----------------------
        n = _bit_length(m, P, 22)
        q = dict(P=Signal(22), sign=Signal(), nan=Signal(), inf=Signal(), zero_in=Signal(),
                 lead=Signal(signed(12)), norm_shift=Signal(5), up=Signal(signed(12)),
                 down=Signal(range(25)))
        valid2 = Signal()
        up_c = Signal(signed(12))
        m.d.comb += up_c.eq(E + 149)
        m.d.sync += [
            q["P"].eq(P), q["sign"].eq(sign), q["nan"].eq(nan), q["inf"].eq(inf),
            q["zero_in"].eq(zero_in), q["lead"].eq(E + n - 1),
            q["norm_shift"].eq((24 - n)[:5]), q["up"].eq(up_c),
            q["down"].eq(Mux(up_c >= 0, 0, Mux(-up_c > 24, 24, -up_c))),
            valid2.eq(valid1),
        ]

        # ---- stage 4: normalise (exact) or denormalise, keeping the rounding bits ----------
        P, up, down = q["P"], q["up"], q["down"]
        kept = Signal(24)
        half = Signal()
        below = Signal()
        with m.If(up > 0):                                  # E + 149 > 0: exact left shift
            m.d.comb += kept.eq(P << up[:5])
        with m.Else():
            m.d.comb += [
                kept.eq(P >> down),
                half.eq(Mux(down > 0, (P >> (down - 1)[:5])[0], 0)),
                below.eq(Mux(down > 1, (P & ((Const(1, 24) << (down - 1)[:5]) - 1)) != 0, 0)),
            ]
        t = dict(norm_sig=Signal(24), kept=Signal(24), half=Signal(), below=Signal(),
                 lead=Signal(signed(12)), sign=Signal(), nan=Signal(), inf=Signal(),
                 zero_in=Signal())
        valid3 = Signal()
        m.d.sync += [
            t["norm_sig"].eq(P << q["norm_shift"]),         # exact: P has <= 22 bits
            t["kept"].eq(kept), t["half"].eq(half), t["below"].eq(below),
            t["lead"].eq(q["lead"]), t["sign"].eq(q["sign"]), t["nan"].eq(q["nan"]),
            t["inf"].eq(q["inf"]), t["zero_in"].eq(q["zero_in"]), valid3.eq(valid2),
        ]

        # ---- stage 5: round to nearest even, pack ------------------------------------------
        sign, lead = t["sign"], t["lead"]
        nan, inf, zero_in = t["nan"], t["inf"], t["zero_in"]
        norm = Cat(t["norm_sig"][:23], (lead + 127)[:8], sign)
        rounded = Signal(24)
        m.d.comb += rounded.eq(t["kept"] + (t["half"] & (t["below"] | t["kept"][0])))
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
        m.d.sync += [self.o_prod.eq(result), self.o_valid.eq(valid3)]
        return m

    def _elaborate_ftz(self):
        """The flush-to-zero variant: same stages and latency, no subnormal logic."""
        m = Module()
        fp16 = self.i_fmt

        def decode(v, name):
            # Both formats give an 11-bit significand with the hidden bit on top (BF16's
            # 8 bits moved up by 3, compensated in the exponent), value = sig * 2**exp.
            e = Signal(8, name=f"{name}_e")
            sig = Signal(11, name=f"{name}_sig")
            exp = Signal(signed(10), name=f"{name}_exp")
            emax = Signal(name=f"{name}_emax")
            frac_nz = Signal(name=f"{name}_frac_nz")
            with m.If(fp16):
                m.d.comb += [e.eq(v[10:15]), emax.eq(v[10:15] == 0x1F),
                             frac_nz.eq(v[:10] != 0), sig.eq(Cat(v[:10], 1)),
                             exp.eq(v[10:15] - 25)]
            with m.Else():
                m.d.comb += [e.eq(v[7:15]), emax.eq(v[7:15] == 0xFF),
                             frac_nz.eq(v[:7] != 0), sig.eq(Cat(Const(0, 3), v[:7], 1)),
                             exp.eq(v[7:15] - 137)]
            return sig, exp, emax & frac_nz, emax, e == 0   # zero: zero or flushed

        siga, expa, nana, infa, zeroa = decode(self.i_a, "a")
        sigb, expb, nanb, infb, zerob = decode(self.i_b, "b")

        # ---- stage 1: decoded operands registered ----------------------------------
        siga1, sigb1 = Signal(11), Signal(11)
        expa1, expb1 = Signal(signed(10)), Signal(signed(10))
        sign1, nan1, inf1, zero1, valid1 = Signal(), Signal(), Signal(), Signal(), Signal()
        m.d.sync += [
            siga1.eq(siga), sigb1.eq(sigb), expa1.eq(expa), expb1.eq(expb),
            sign1.eq(self.i_a[15] ^ self.i_b[15]), nan1.eq(nana | nanb),
            inf1.eq(infa | infb), zero1.eq(zeroa | zerob), valid1.eq(self.i_valid),
        ]

        # ---- stage 2: multiply significands (2**20 <= P < 2**22), add exponents -----------
        P = Signal(22)
        E = Signal(signed(11))
        sign2, nan2, inf2, zero2, valid2 = Signal(), Signal(), Signal(), Signal(), Signal()
        m.d.sync += [
            P.eq(siga1 * sigb1), E.eq(expa1 + expb1), sign2.eq(sign1), nan2.eq(nan1),
            inf2.eq(inf1), zero2.eq(zero1), valid2.eq(valid1),
        ]

        # ---- stage 3: one-bit normalisation (exact), exponent of the leading one ---------
        frac3 = Signal(23)
        lead3 = Signal(signed(12))
        sign3, nan3, inf3, zero3, valid3 = Signal(), Signal(), Signal(), Signal(), Signal()
        m.d.sync += [
            frac3.eq(Mux(P[21], Cat(Const(0, 2), P[:21]), Cat(Const(0, 3), P[:20]))),
            lead3.eq(E + 20 + P[21]), sign3.eq(sign2), nan3.eq(nan2), inf3.eq(inf2),
            zero3.eq(zero2), valid3.eq(valid2),
        ]

        # ---- stage 4: range checks: overflow to Inf, below 2**-126 flushed ------------------
        frac4 = Signal(23)
        exp4 = Signal(8)
        sign4, nan4, inf4, zero4, valid4 = Signal(), Signal(), Signal(), Signal(), Signal()
        m.d.sync += [
            frac4.eq(frac3), exp4.eq((lead3 + 127)[:8]), sign4.eq(sign3),
            nan4.eq(nan3 | (inf3 & zero3)), inf4.eq(inf3 | (lead3 > 127)),
            zero4.eq(zero3 | (lead3 < -126)), valid4.eq(valid3),
        ]

        # ---- stage 5: pack -------------------------------------------------------------------
        result = Signal(32)
        with m.If(nan4):
            m.d.comb += result.eq(CANONICAL_NAN)
        with m.Elif(inf4):
            m.d.comb += result.eq(Cat(Const(0, 23), Const(0xFF, 8), sign4))
        with m.Elif(zero4):
            m.d.comb += result.eq(Cat(Const(0, 31), sign4))
        with m.Else():
            m.d.comb += result.eq(Cat(frac4, exp4, sign4))
        m.d.sync += [self.o_prod.eq(result), self.o_valid.eq(valid4)]
        return m
