"""Floating-point units, written for the tensor array's FP32 accumulation.

Policy (``docs/numerics.md``): IEEE 754 binary32, round to nearest even, subnormals
supported on input and output, overflow to Inf, canonical quiet NaN ``0x7FC00000`` for
every NaN result, ``Inf - Inf = NaN``, exact zero sums are ``+0`` unless both operands
are ``-0``. The golden model of the same algorithm is :func:`sim.model.fp.fp32_add_bits`.

Both units take an elaboration-time ``subnormals`` option (default ``True``, the shipped
policy). ``subnormals=False`` builds a flush-to-zero variant for area-constrained builds:
subnormal inputs are read as zeros of their sign, and a result whose IEEE value would be
subnormal becomes a zero of its sign; the logic that only subnormals need is left out.
Latencies are the same. The golden models take the same keyword.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .dsp import RegisteredMultiplier

__all__ = ["FP32Adder", "FPMul16", "CANONICAL_NAN"]

CANONICAL_NAN = 0x7FC00000


def _leading_zeros(value, width):
    """``(count, zero)``: the number of leading zeros of the ``width``-bit ``value``
    (counted from its top bit) and whether it is all zeros, as a balanced tree. A narrower
    value is zero-extended to ``width`` bits, which are padded below with zeros to a
    power of two; an all-zero value gives a count of all ones."""
    k = max(1, (width - 1).bit_length())
    bits = Cat(Const(0, (1 << k) - width), value, Const(0, width - len(value)))

    def tree(lo, n):               # bits[lo : lo + n], n a power of two
        if n == 1:
            return Const(0, 0), ~bits[lo]
        lo_cnt, lo_zero = tree(lo, n // 2)
        hi_cnt, hi_zero = tree(lo + n // 2, n // 2)
        cnt = Cat(Mux(hi_zero, lo_cnt, hi_cnt), hi_zero) if len(hi_cnt) else Cat(hi_zero)
        return cnt, hi_zero & lo_zero

    return tree(0, 1 << k)


class FP32Adder(wiring.Component):
    """Pipelined IEEE binary32 adder, one addition per cycle, ``LATENCY`` = 7.

    Stages: (1) compare the magnitudes and, beside that comparison, take both exponent
    differences (``e_a - e_b`` and ``e_b - e_a``); classify NaN and Inf operands;
    (2) order the operands by magnitude (x the larger), picking the difference that
    applies, limited to 27; (3) align the smaller significand, keeping guard, round and
    sticky bits; (4) add or subtract in 28 bits (no carry correction: a carry stays on
    top); (5) count the leading zeros of the 28-bit sum, limited to the exponent by a
    marker bit (so the result exponent stays >= 1, which yields subnormal results);
    detect zero and overflow; reduce the special outcomes (NaN, Inf, zero, overflow) to
    a forcing code and the result sign; (6) shift left (a carry is a shift of 0) and
    take the result exponent ``e + 1 - shift``; (7) round to nearest even by one
    increment of the packed exponent and fraction (a carry out of the fraction bumps the
    exponent, up to Inf), and force the special results.

    Parameters
    ----------
    subnormals : bool
        ``True`` (default): full IEEE subnormal support. ``False``: flush to zero. A
        subnormal operand counts as a zero of its sign (its exponent field is taken as
        0, not 1, and its significand is ignored); the left shift of stage 6 is not
        limited, and a result left with a biased exponent <= 0 by it, i.e. a nonzero
        sum below ``2**-126``, becomes a zero of its sign. With normal operands such a
        sum is exact, so flushing before or after rounding is the same rule. Golden
        model: ``sim.model.fp.fp32_add_bits(a, b, subnormals=False)``.

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

        def carry(s, *keys):
            return {k: s[k] for k in keys}

        a, b = self.i_a, self.i_b

        # ---- 1: compare magnitudes; both exponent differences; classify ------------------
        def unpack(v):
            s, e, f = v[31], v[23:31], v[:23]
            ez = e == 0
            emax = e == 0xFF
            # IEEE: a subnormal has exponent 1 and no hidden bit. Flush to zero: a zero
            # exponent field means zero, whatever the fraction holds: the fraction stays
            # in the significand, but a flushed y is shifted out entirely in stage 3 (its
            # sticky bit suppressed), and stage 5 knows a flushed x (so y) by exponent 0.
            e_eff = Mux(ez, 1, e) if ieee else e
            return dict(s=s, f=f, ez=ez, e=e_eff, nan=emax & (f != 0), inf=emax & (f == 0))

        A, B = unpack(a), unpack(b)
        d_ab, d_ba = Signal(8), Signal(8)
        m.d.comb += [d_ab.eq(A["e"] - B["e"]), d_ba.eq(B["e"] - A["e"])]

        sub = A["s"] ^ B["s"]
        s1 = stage(
            "s1", swap=b[:31] > a[:31],
            Ma=Cat(A["f"], ~A["ez"]), Mb=Cat(B["f"], ~B["ez"]), ea=A["e"], eb=B["e"],
            sa=A["s"], sb=B["s"], d_ab=d_ab, d_ba=d_ba, sub=sub,
            nan=A["nan"] | B["nan"] | (A["inf"] & B["inf"] & sub),
            inf=A["inf"] | B["inf"], inf_sign=Mux(A["inf"], A["s"], B["s"]),
            valid=self.i_valid)
        keep = ("sub", "nan", "inf", "inf_sign", "valid")

        # ---- 2: order by magnitude (x the larger); limit the exponent difference --------
        def limited(d, My):
            # the difference when the other operand is x (then d >= 0), limited to 27
            # (d > 27 spelt out as bits: a LUT or two rather than a second carry chain)
            far = d[5:8].any() | (d[2:5] == 0b111)
            if not ieee:
                far = far | ~My[23]          # y zero or flushed: shifted out entirely
            return Mux(far, 27, d)[:5]

        swap = s1["swap"]
        s2 = stage(
            "s2",
            MX=Cat(Const(0, 3), Mux(swap, s1["Mb"], s1["Ma"])),
            MY=Cat(Const(0, 3), Mux(swap, s1["Ma"], s1["Mb"])),
            dd=Mux(swap, limited(s1["d_ba"], s1["Ma"]), limited(s1["d_ab"], s1["Mb"])),
            e=Mux(swap, s1["eb"], s1["ea"]),
            sx=Mux(swap, s1["sb"], s1["sa"]), **carry(s1, *keep))
        keep = ("sx",) + keep

        # ---- 3: align the smaller significand (guard, round, sticky) ---------------------
        MY, dd = s2["MY"], s2["dd"]
        lost_mask = ~(Const((1 << 27) - 1, 27) << dd)[:27]
        sticky = (MY & lost_mask) != 0
        if not ieee:
            sticky = sticky & MY[26]         # no hidden bit: y is zero or flushed
        s3 = stage("s3", MX=s2["MX"], MY=(MY >> dd) | sticky, e=s2["e"], **carry(s2, *keep))

        # ---- 4: add or subtract, 28 bits -------------------------------------------------
        # one carry chain: Cat(sub, MX) + Cat(sub, MY ^ sub) carries sub into bit 1
        sub, MX, MY, e = s3["sub"], s3["MX"], s3["MY"], s3["e"]
        S = Signal(30)
        m.d.comb += S.eq(Cat(sub, MX, Const(0, 1)) +
                         Cat(sub, MY ^ Cat(*([sub] * 27)), sub))
        extra = {}
        if ieee:
            # the left shift of stage 6 must stay <= e (result exponent e + 1 - shift
            # >= 1): a marker bit at 27 - e limits the leading-zero count to e
            extra["marker"] = Cat(*[e == 27 - j for j in range(27)], Const(0, 1))
        s4 = stage("s4", R=S[1:29], e=e, **extra, **carry(s3, *keep))

        # ---- 5: leading zeros (limited), zero, overflow; the special outcome --------------
        R, e = s4["R"], s4["e"]
        sh, _ = _leading_zeros(R | s4["marker"] if ieee else R, 28)
        # (flush to zero: no limit; e = 0 only if x, hence y too, is zero or flushed: the
        # sum is a zero)
        zero = (R == 0) if ieee else (R == 0) | (e == 0)
        ovf = (e == 254) & R[27]             # exponent 255 before rounding
        nan, inf, sx = s4["nan"], s4["inf"], s4["sx"]
        sign = Mux(nan, 0, Mux(inf, s4["inf_sign"], Mux(zero, sx & ~s4["sub"], sx)))
        s5 = stage("s5", R=R, sh=sh, e=e, force=nan | inf | zero | ovf,
                   ones=nan | inf | ovf, quiet=nan, sign=sign, valid=s4["valid"])

        # ---- 6: normalise left; the result exponent ----------------------------------------
        # (a carry out of the sum is a shift of 0 and exponent e + 1: R[27] is then the
        # top bit and R[0] a sticky bit)
        sh = s5["sh"]
        er = Signal(signed(10))
        m.d.comb += er.eq(s5["e"] + 1 - sh)
        force = s5["force"]
        if not ieee:
            # a result exponent <= 0: a nonzero result below 2**-126 (exact: only a
            # cancellation shifts left by more than one), flushed to a zero of the sign
            # of the larger operand (the result sign)
            force = force | (er <= 0)
        s6 = stage("s6", R=(s5["R"] << sh)[:28], e=er[:8], force=force,
                   **carry(s5, "ones", "quiet", "sign", "valid"))

        # ---- 7: round to nearest even: one increment of exponent and fraction; force -----
        R = s6["R"]
        # IEEE: without a leading one the result is subnormal and e = 1 (the shift was
        # limited): exponent field 0. A carry of the rounding into it gives the smallest
        # normal, correctly; a carry out of 254 gives Inf, correctly.
        ef = Cat(s6["e"][0] & R[27], s6["e"][1:8]) if ieee else s6["e"]
        rnd = R[3] & (R[:3].any() | R[4])
        p = Signal(31)
        m.d.comb += p.eq(Cat(R[4:27], ef) + rnd)
        force = s6["force"]
        result = Cat(p[:22] & ~Cat(*([force] * 22)), Mux(force, s6["quiet"], p[22]),
                     Mux(force, Cat(*([s6["ones"]] * 8)), p[23:31]), s6["sign"])
        m.d.sync += [self.o_sum.eq(result), self.o_valid.eq(s6["valid"])]
        return m


class FPMul16(wiring.Component):
    """Pipelined BF16 x BF16 or FP16 x FP16 multiplier with an FP32 result, ``LATENCY`` = 5.

    Stages: (1) decode the operands of the chosen format (and the trailing zeros of a
    BF16 significand); (2) multiply the significands (one DSP), add the exponents, and
    get the sticky bit of a product that rounds to a subnormal from the exponent of its
    lowest set bit (the trailing zeros of a product are those of its factors added);
    (3) count the leading zeros of the product, limited so that the normalising shift
    stops at the subnormal exponent, and the right shift amount of a product whose
    exponent is below -149 (BF16 only; such products are below ``2**-134``);
    (4) normalise left (exact: every product with exponent >= -149, i.e. a whole multiple
    of ``2**-149``, which includes every FP16 product) and, beside it, shift the others
    right keeping a guard bit; the exponent field and overflow; the special outcomes
    reduced to a forcing code; (5) round the right-shifted product (at most 15 bits: the
    rounding never carries into the exponent), pack.

    The format is chosen per operation (``i_fmt``: 0 = BF16, 1 = FP16). The exact
    product (11 x 11 significand bits at most) is rounded once to binary32, round to
    nearest even: exact for FP16 and for BF16 products in the FP32 normal range; BF16
    products below it round to a subnormal or zero, above it to Inf. NaN operands and
    ``Inf * 0`` give the canonical NaN. Golden model: :func:`sim.model.fp.mul16_to_fp32_bits`.

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
        Golden model: ``sim.model.fp.mul16_to_fp32_bits(a, b, fmt, subnormals=False)``.
    int8 : bool
        Also multiply signed INT8 operands on the same multiplier (one DSP for all
        three types in a PE, instead of a second one for INT8). Adds ``i_int`` and
        ``o_int``. The significand multiplier becomes a signed 12 x 12 one: it is fed
        the zero-extended 11-bit significands, or, when ``i_int`` is set, the
        sign-extended low bytes of ``i_a`` and ``i_b``. ``o_prod`` is then meaningless.

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
    i_int : In(1), only with ``int8``
        Multiply ``i_a[:8]`` and ``i_b[:8]`` as signed integers.
    o_int : Out(signed(16)), only with ``int8``
        Their exact product, ``INT_LATENCY`` cycles later (in the register after the
        multiplier).
    """

    LATENCY = 5
    INT_LATENCY = RegisteredMultiplier.LATENCY
    FMT_BF16 = 0
    FMT_FP16 = 1

    def __init__(self, *, subnormals=True, int8=False):
        if not isinstance(subnormals, bool):
            raise TypeError(f"subnormals must be a bool, not {subnormals!r}")
        if not isinstance(int8, bool):
            raise TypeError(f"int8 must be a bool, not {int8!r}")
        self.subnormals = subnormals
        self.int8 = int8
        members = {
            "i_a": In(16), "i_b": In(16), "i_fmt": In(1), "i_valid": In(1),
            "o_prod": Out(32), "o_valid": Out(1),
        }
        if int8:
            members["i_int"] = In(1)
            members["o_int"] = Out(signed(16))
        super().__init__(members)

    def _significands(self, m, siga, sigb):
        """Stage 1 significand registers, the multiply and the stage 2 product register
        (one :class:`~hdl.dsp.RegisteredMultiplier`, i.e. one DSP with both registers
        inside it on the ECP5 target); returns the 22-bit unsigned significand product.
        With ``int8``, the multiplier is shared with the INT8 product (``o_int``)."""
        if not self.int8:
            m.submodules.sig_mul = mul = RegisteredMultiplier(
                11, 11, signed=False, product_in_dsp=not self.subnormals)
            m.d.comb += [mul.i_a.eq(siga), mul.i_b.eq(sigb)]
            return mul.o_p
        m.submodules.sig_mul = mul = RegisteredMultiplier(
            12, 12, signed=True, product_in_dsp=not self.subnormals)
        m.d.comb += [
            mul.i_a.eq(Mux(self.i_int, self.i_a[:8].as_signed(), siga)),
            mul.i_b.eq(Mux(self.i_int, self.i_b[:8].as_signed(), sigb)),
            self.o_int.eq(mul.o_p[:16]),
        ]
        return mul.o_p[:22]

    def elaborate(self, platform):
        if not self.subnormals:
            return self._elaborate_ftz()
        m = Module()
        fp16 = self.i_fmt

        def decode(v, name):
            # value = sig * 2**(exp - 75); BF16's 8 significand bits sit at the bottom
            # of the 11. tz: the trailing zeros of a BF16 significand (the product's
            # are their sum), for the sticky bit of a product that rounds to a subnormal
            e16, f16 = v[10:15], v[:10]
            e8, f8 = v[7:15], v[:7]
            z16, z8 = e16 == 0, e8 == 0
            sig = Signal(11, name=f"{name}_sig")
            exp = Signal(signed(10), name=f"{name}_exp")
            tz = Signal(3, name=f"{name}_tz")
            sig8 = Cat(f8, ~z8)
            for i in reversed(range(8)):             # lowest set bit wins
                with m.If(sig8[i]):
                    m.d.comb += tz.eq(i)
            m.d.comb += [
                sig.eq(Mux(fp16, Cat(f16, ~z16), sig8)),
                exp.eq(Mux(fp16, Cat(e16[0] | z16, e16[1:]) + (75 - 25),
                           Cat(e8[0] | z8, e8[1:]) - (134 - 75))),
            ]
            emax = Mux(fp16, e16 == 0x1F, e8 == 0xFF)
            frac_nz = Mux(fp16, f16 != 0, f8 != 0)
            zero = Mux(fp16, z16, z8) & ~frac_nz
            return sig, exp, tz, emax & frac_nz, emax, zero

        siga, expa, tza, nana, infa, zeroa = decode(self.i_a, "a")
        sigb, expb, tzb, nanb, infb, zerob = decode(self.i_b, "b")

        # ---- stage 1: decoded operands registered ----------------------------------------
        expa1, expb1 = Signal(signed(10)), Signal(signed(10))
        tza1, tzb1 = Signal(3), Signal(3)
        sign1, nan1, inf1, zero1, valid1 = Signal(), Signal(), Signal(), Signal(), Signal()
        P2 = self._significands(m, siga, sigb)
        m.d.sync += [
            expa1.eq(expa), expb1.eq(expb),
            tza1.eq(tza), tzb1.eq(tzb),
            sign1.eq(self.i_a[15] ^ self.i_b[15]), nan1.eq(nana | nanb),
            inf1.eq(infa | infb), zero1.eq(zeroa | zerob), valid1.eq(self.i_valid),
        ]

        # ---- stage 2: multiply significands; exponent, sticky -------------------------------
        # value = P * 2**(Ep - 150) with Ep = E + 150; the lowest set bit of P is at
        # 2**(Ep + tz - 150): below the guard bit of the smallest subnormal (2**-150) if
        # Ep + tz < 0, which makes the sticky bit of a product that rounds to a subnormal.
        Ep = Signal(signed(11))
        tz = Signal(4)
        m.d.comb += [Ep.eq(expa1 + expb1), tz.eq(tza1 + tzb1)]
        Ep2 = Signal(signed(11))
        sticky2, sign2, nan2, inf2, zero2, valid2 = (Signal() for _ in range(6))
        m.d.sync += [
            Ep2.eq(Ep), sticky2.eq((Ep + tz) < 0),
            sign2.eq(sign1), nan2.eq(nan1 | (inf1 & zero1)), inf2.eq(inf1 & ~nan1),
            zero2.eq(zero1), valid2.eq(valid1),
        ]

        # ---- stage 3: leading zeros (limited); the denormalising right shift amount -------
        # The normalising left shift of P (to put its leading one at bit 23) must not go
        # beyond E + 149 = Ep - 1: a product whose leading one stays below bit 23 then is
        # the (exact) significand of a subnormal result.
        # Ep <= 0 (BF16 only): the product lies below 2**-149 * 2**16, far below 2**-126:
        # it is rounded by shifting P (< 2**16) right by 1 - Ep, keeping a guard bit: by
        # -Ep, P's bit 0 then the guard, limited to 16 (everything shifted out: zero).
        lz, _ = _leading_zeros(P2, 24)
        lim = (Ep2 - 1)[:5]
        sl = Mux((Ep2 <= 24) & (lz > lim), lim, lz)
        P3, Ep3, sl3, dn3 = Signal(22), Signal(signed(11)), Signal(5), Signal(5)
        right3, sticky3, sign3, nan3, inf3, zero3, valid3 = (Signal() for _ in range(7))
        m.d.sync += [
            P3.eq(P2), Ep3.eq(Ep2), sl3.eq(sl), right3.eq(Ep2 <= 0),
            dn3.eq(Mux(Ep2 <= -16, 16, -Ep2)[:5]),
            sticky3.eq(sticky2), sign3.eq(sign2), nan3.eq(nan2), inf3.eq(inf2),
            zero3.eq(zero2), valid3.eq(valid2),
        ]

        # ---- stage 4: normalise left (exact) and denormalise right; exponent, overflow -----
        ef = Signal(signed(12))
        m.d.comb += ef.eq(Ep3 - sl3)          # the exponent field of a normal result
        ovf = ef > 254                        # BF16 only: Inf
        force = nan3 | inf3 | zero3 | ovf
        F4, Y4, ef4 = Signal(24), Signal(16), Signal(8)
        sticky4, use_left4, use_right4, ones4, quiet4, sign4, valid4 = \
            (Signal() for _ in range(7))
        m.d.sync += [
            F4.eq((P3 << sl3)[:24]), Y4.eq(P3[:16] >> dn3), ef4.eq(ef[:8]),
            sticky4.eq(sticky3), use_left4.eq(~force & ~right3), use_right4.eq(~force & right3),
            ones4.eq(nan3 | inf3 | (ovf & ~zero3)), quiet4.eq(nan3),
            sign4.eq(sign3 & ~nan3), valid4.eq(valid3),
        ]

        # ---- stage 5: round the right-shifted product (exact otherwise), pack -------------
        # left: F has its leading one at bit 23 (normal, exponent field ef) or, if the
        # shift was limited, is a subnormal significand (ef is then 1: field 0). Right: Y
        # holds the guard bit and, above it, at most 15 kept bits: their rounding never
        # carries out of the fraction.
        rounded = Signal(16)
        m.d.comb += rounded.eq(Y4[1:] + (Y4[0] & (sticky4 | Y4[1])))
        left = Cat(*([use_left4] * 23))
        frac = (F4[:23] & left) | Cat(rounded & Cat(*([use_right4] * 16)), Const(0, 7))
        exp_field = Cat(ef4[0] & F4[23], ef4[1:]) & Cat(*([use_left4] * 8))
        result = Cat(frac[:22], frac[22] | quiet4, exp_field | Cat(*([ones4] * 8)), sign4)
        m.d.sync += [self.o_prod.eq(result), self.o_valid.eq(valid4)]
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
        expa1, expb1 = Signal(signed(10)), Signal(signed(10))
        sign1, nan1, inf1, zero1, valid1 = Signal(), Signal(), Signal(), Signal(), Signal()
        P = self._significands(m, siga, sigb)
        m.d.sync += [
            expa1.eq(expa), expb1.eq(expb),
            sign1.eq(self.i_a[15] ^ self.i_b[15]), nan1.eq(nana | nanb),
            inf1.eq(infa | infb), zero1.eq(zeroa | zerob), valid1.eq(self.i_valid),
        ]

        # ---- stage 2: multiply significands (2**20 <= P < 2**22), add exponents -----------
        E = Signal(signed(11))
        sign2, nan2, inf2, zero2, valid2 = Signal(), Signal(), Signal(), Signal(), Signal()
        m.d.sync += [
            E.eq(expa1 + expb1), sign2.eq(sign1), nan2.eq(nan1),
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
