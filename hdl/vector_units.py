"""Arithmetic units of the vector engine, which turns PSUM accumulators into layer outputs.

Both units are fixed-latency pipelines taking one operation per cycle; the valid bit
travels with the data and is the only reset register. Their golden model is
:mod:`sim.model.casts` (policy in ``docs/numerics.md``): :class:`F32Narrow` is bit-exact
with :func:`sim.model.casts.f32_to_bf16_bits` / :func:`sim.model.casts.f32_to_fp16_bits`,
:class:`Requantizer` with :func:`sim.model.casts.requantize`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["F32Narrow", "Requantizer"]


class F32Narrow(wiring.Component):
    """Pipelined FP32 -> BF16 / FP16 cast, round to nearest even, ``LATENCY`` = 2.

    The format is chosen per operation (``i_fmt``: 0 = BF16, 1 = FP16). Both casts use
    one rounding step on the magnitude: a 15-bit truncated result ``keep`` (exponent and
    fraction fields), the guard bit ``g`` and ``sticky`` (OR of the lower dropped bits);
    the result is ``keep + (g & (sticky | keep[0]))``, whose carry moves into the
    exponent field by itself (next binade, largest subnormal -> smallest normal, largest
    finite -> Inf).

    Stage 1 forms ``keep``/``g``/``sticky`` for the chosen format:

    * BF16: the top 15 bits of the magnitude; the lower 16 bits are dropped (FP32
      subnormals become BF16 subnormals).
    * FP16, FP32 exponent ``e >= 113`` (``|x| >= 2**-14``): exponent rebiased to
      ``e - 112`` next to the top 10 fraction bits; 13 bits dropped. ``e >= 143``
      (``|x| >= 2**16``, and Inf) is flagged Inf.
    * FP16, ``e < 113``: a subnormal; the 24-bit significand is shifted right by
      ``126 - e`` (at least 14, capped at 25, beyond which everything rounds to zero).

    Stage 2 rounds and packs: NaN inputs give the canonical NaN of the format
    (``0x7FC0`` / ``0x7E00``), flagged Infs a signed Inf, everything else the sign and
    the rounded magnitude.

    Members
    -------
    i_a : In(32)
        FP32 bit pattern.
    i_fmt : In(1)
        0 for BF16, 1 for FP16; travels with the operation.
    i_valid : In(1)
        Marks a new operation; travels with it.
    o_res : Out(16)
        The BF16 or FP16 pattern, ``LATENCY`` cycles later.
    o_valid : Out(1)
        ``i_valid`` delayed by ``LATENCY``.
    """

    LATENCY = 2
    FMT_BF16 = 0
    FMT_FP16 = 1

    i_a: In(32)
    i_fmt: In(1)
    i_valid: In(1)
    o_res: Out(16)
    o_valid: Out(1)

    def elaborate(self, platform):
        m = Module()

        a = self.i_a
        sign, e, f = a[31], a[23:31], a[:23]
        nan = (e == 0xFF) & (f != 0)

        # ---- stage 1: truncated result, guard and sticky of the chosen format ------------
        keep = Signal(15)
        g = Signal()
        sticky = Signal()
        inf = Signal()

        M = Signal(24)                                  # significand with hidden bit
        sh = Signal(5)                                  # subnormal right shift, 14..25
        m.d.comb += [
            M.eq(Cat(f, e != 0)),
            sh.eq(Mux(e < 101, 25, 126 - e)),           # 126 - e for 101 <= e <= 112
        ]
        # the subnormal path: W = (M << 1) >> sh = M >> (sh - 1), so W[1:] is the kept
        # value and W[0] the guard bit; sticky from a mask of the bits below the guard
        W = Signal(25)
        m.d.comb += W.eq(Cat(Const(0, 1), M) >> sh)
        low_mask = Signal(24)
        m.d.comb += low_mask.eq((Const(1, 25) << (sh - 1)[:5]) - 1)

        with m.If(self.i_fmt == self.FMT_BF16):
            m.d.comb += [
                keep.eq(a[16:31]), g.eq(a[15]), sticky.eq(a[:15] != 0),
                inf.eq((e == 0xFF) & (f == 0)),
            ]
        with m.Elif(e >= 113):
            m.d.comb += [
                keep.eq(Cat(f[13:23], (e - 112)[:5])), g.eq(f[12]), sticky.eq(f[:12] != 0),
                inf.eq((e >= 143) & ~nan),
            ]
        with m.Else():
            m.d.comb += [
                keep.eq(W[1:]), g.eq(W[0]), sticky.eq((M & low_mask) != 0),
            ]

        s1_keep = Signal(15, reset_less=True)
        s1_g = Signal(reset_less=True)
        s1_sticky = Signal(reset_less=True)
        s1_inf = Signal(reset_less=True)
        s1_nan = Signal(reset_less=True)
        s1_sign = Signal(reset_less=True)
        s1_fmt = Signal(reset_less=True)
        s1_valid = Signal()
        m.d.sync += [
            s1_keep.eq(keep), s1_g.eq(g), s1_sticky.eq(sticky), s1_inf.eq(inf),
            s1_nan.eq(nan), s1_sign.eq(sign), s1_fmt.eq(self.i_fmt),
            s1_valid.eq(self.i_valid),
        ]

        # ---- stage 2: round to nearest even, pack -------------------------------------------
        mag = Signal(16)
        m.d.comb += mag.eq(s1_keep + (s1_g & (s1_sticky | s1_keep[0])))
        inf_mag = Mux(s1_fmt, 0x7C00, 0x7F80)
        result = Signal(16)
        with m.If(s1_nan):
            m.d.comb += result.eq(Mux(s1_fmt, 0x7E00, 0x7FC0))
        with m.Elif(s1_inf):
            m.d.comb += result.eq(Cat(inf_mag[:15], s1_sign))
        with m.Else():
            m.d.comb += result.eq(Cat(mag[:15], s1_sign))

        o_res = Signal(16, reset_less=True)
        m.d.sync += [o_res.eq(result), self.o_valid.eq(s1_valid)]
        m.d.comb += self.o_res.eq(o_res)
        return m


class Requantizer(wiring.Component):
    """Pipelined INT32 -> INT8 requantization, ``LATENCY`` = 7.

    ``y = min(max(sat8(round((acc * scale + acc2 * scale2) / 2**shift) + zp), lo), hi)``
    with ``lo = zp`` if ``relu`` else -128; the rounding is to nearest with ties away
    from zero (none when ``shift == 0``). ``acc2 * scale2`` is the vector engine's ADD
    (two activations, each with its own multiplier; 0 otherwise) and ``hi`` its clip
    (127 otherwise). All parameters come with each operation; the golden model is
    :func:`sim.model.casts.requantize`.

    Stages:

    1. ``p1 = acc * scale`` and ``p2 = acc2 * scale2``: two registered 48-bit products
       (DSP multipliers with their output registers).
    2. ``p = p1 + p2``, registered (49 bits: ``|p| <= 2**47``).
    3. ``p + bias``, the rounding bias ``2**(shift-1)`` for ``p >= 0`` and
       ``2**(shift-1) - 1`` for ``p < 0``, 0 if ``shift == 0``.
    4. ``r = (p + bias) >> shift`` (arithmetic shift = floor).
    5. ``r`` clamped to ``[-256, 255]`` (which saturates the same way below), registered.
    6. ``y = r + zp``, the lower bound ``lo``, and whether ``lo > hi``.
    7. ``hi`` if ``y > hi`` or ``lo > hi``, else ``max(y, lo)`` (the same as saturating
       to INT8, then ``max(., lo)``, then ``min(., hi)``, since ``zp`` and ``hi`` are
       INT8s).

    Members
    -------
    i_acc, i_acc2 : In(signed(32))
        The accumulator, and the second operand (ADD).
    i_scale, i_scale2 : In(signed(16))
        Their multipliers.
    i_shift : In(6)
        Right shift, 0..47 (48..63 are not supported).
    i_zp : In(signed(8))
        Output zero point.
    i_relu : In(1)
        Clamp the result below at ``i_zp``.
    i_hi : In(signed(8))
        Upper bound (127: none).
    i_valid : In(1)
        Marks a new operation; travels with it.
    o_res : Out(signed(8))
        The INT8 result, ``LATENCY`` cycles later.
    o_valid : Out(1)
        ``i_valid`` delayed by ``LATENCY``.
    """

    LATENCY = 7

    i_acc: In(signed(32))
    i_scale: In(signed(16))
    i_acc2: In(signed(32))
    i_scale2: In(signed(16))
    i_shift: In(6)
    i_zp: In(signed(8))
    i_relu: In(1)
    i_hi: In(signed(8), init=127)
    i_valid: In(1)
    o_res: Out(signed(8))
    o_valid: Out(1)

    def elaborate(self, platform):
        m = Module()

        def carry(src, name, stage):
            """``src`` registered under a stage name (the parameters travel along)."""
            out = {}
            for key, sig in src.items():
                r = Signal.like(sig, name=f"s{stage}_{key}", reset_less=key != "valid")
                m.d.sync += r.eq(sig)
                out[key] = r
            return out

        params = {"shift": self.i_shift, "zp": self.i_zp, "relu": self.i_relu,
                  "hi": self.i_hi, "valid": self.i_valid}

        # ---- stage 1: the two products (DSPs) -------------------------------------------
        p1 = Signal(signed(48), reset_less=True)
        p2 = Signal(signed(48), reset_less=True)
        m.d.sync += [p1.eq(self.i_acc * self.i_scale), p2.eq(self.i_acc2 * self.i_scale2)]
        s1 = carry(params, "p", 1)

        # ---- stage 2: their sum -----------------------------------------------------------
        p = Signal(signed(49), reset_less=True)
        m.d.sync += p.eq(p1 + p2)
        s2 = carry(s1, "p", 2)

        # ---- stage 3: the rounding bias added ------------------------------------------------
        # (the bias needs the sum's sign, so it cannot be prepared from the operands' signs
        # as with one product; the add and the 49-bit shift below in one cycle were the
        # vector engine's critical path on the ECP5, 30 MHz)
        half = Signal(48)
        m.d.comb += half.eq(Const(1, 48) << (s2["shift"] - 1)[:6])
        bias = Mux(s2["shift"] == 0, 0, half - p[48])
        biased = Signal(signed(50), reset_less=True)
        m.d.sync += biased.eq(p + bias)
        s3a = carry(s2, "b", 3)

        # ---- stage 4: rounding right shift (arithmetic: floor) -----------------------------
        r = Signal(signed(49), reset_less=True)          # |r| <= 2**47
        m.d.sync += r.eq(biased >> s3a["shift"])
        s3 = carry({k: v for k, v in s3a.items() if k != "shift"}, "r", 4)

        # ---- stage 5: clamp the wide r (the wide compares get a cycle of their own) ------
        rc = Signal(signed(10), reset_less=True)         # r clamped to [-256, 255]
        m.d.sync += rc.eq(Mux(r > 255, 255, Mux(r < -256, -256, r)))
        s4 = carry(s3, "c", 5)

        # ---- stage 6: the zero point added, the lower bound chosen -------------------------
        # ReLU's floor zp and the INT8 floor -128 are one bound: for -128 <= zp <= 127,
        # max(sat8(y), zp) = clamp(y, zp, 127). The add and the clamp have a cycle each:
        # in one cycle (add, two compares, the ReLU compare) they were the vector
        # engine's critical path on the ECP5, zp fanning out to every lane.
        y = Signal(signed(11), reset_less=True)
        lo = Signal(signed(8), reset_less=True)
        lo_over = Signal(reset_less=True)                # lo > hi: the result is hi
        lo_v = Mux(s4["relu"], s4["zp"], -128)
        m.d.sync += [y.eq(rc + s4["zp"]), lo.eq(lo_v), lo_over.eq(lo_v > s4["hi"])]
        s5 = carry({"hi": s4["hi"], "valid": s4["valid"]}, "y", 6)

        # ---- stage 7: clamp to [lo, hi] ------------------------------------------------------
        res = Signal(signed(8), reset_less=True)
        m.d.sync += [
            res.eq(Mux((y > s5["hi"]) | lo_over, s5["hi"], Mux(y < lo, lo, y))),
            self.o_valid.eq(s5["valid"]),
        ]
        m.d.comb += self.o_res.eq(res)
        return m
