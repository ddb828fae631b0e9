"""One processing element of the weight-stationary systolic array."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from . import config as _config
from .config import FP_ADD_LATENCY, FP_MUL_LATENCY
from .formats import OPERAND_SHAPE, Dtype
from .dsp import RegisteredMultiplier
from .fp import FP32Adder, FPMul16

__all__ = ["PE", "weight_token_layout"]


def weight_token_layout(cols, operand=OPERAND_SHAPE):
    """A stationary weight travelling right along an array row.

    Members
    -------
    valid : 1 bit
        The token carries a weight.
    buf : 1 bit
        Which of the two weight registers it is for.
    col : ``ceil_log2(cols)`` bits
        The array column that keeps it.
    first : 1 bit
        First column of a tile: every PE it passes (other than its own column)
        clears its ``buf`` register, so a tile narrower than the array computes zeros
        in its unused columns instead of stale products.
    data : the operand shape
        The weight (INT8, or a 16-bit pattern in a configuration with floats).
    """
    return data.StructLayout({
        "valid": 1,
        "buf": 1,
        "col": unsigned(max(1, ceil_log2(cols))),
        "first": 1,
        "data": operand,
    })


class PE(wiring.Component):
    """Multiply-accumulate cell with a double-buffered stationary weight.

    Moving operands and weight tokens enter from the left already registered by the
    neighbour and leave to the right one cycle later. A moving operand seen in cycle
    ``c`` has its product ready in cycle ``c + P`` (``product_latency``), where it meets
    the partial sum from above (``i_psum``, seen in that cycle); their sum leaves
    downward ``H`` cycles later (``row_hop``). The array delays row ``k`` by ``H * k``
    cycles, so each partial sum meets the next row's product exactly on time.

    * INT8-only (``floats=False``): operand registers (2), multiply, product register,
      add: ``P = 4``, ``H = 1``. Products and sums are INT32 with wrap-around.
    * With floats: the moving operand carries a :class:`~hdl.formats.Dtype`; 16-bit
      operands. BF16/FP16 products come from :class:`~hdl.fp.FPMul16` and are added
      with :class:`~hdl.fp.FP32Adder`; INT8 multiplies the operands' low bytes on the
      same multiplier (one DSP per PE) and is delayed to the same timing:
      ``P = 1 + FP_MUL_LATENCY``, ``H = FP_ADD_LATENCY``.

    A weight token addressed to this PE's column writes ``w[buf]`` at the end of the
    cycle it is seen. A moving operand uses ``w[sel]`` in the cycle it is seen, so a
    token that enters the array in the same cycle as, or after, the last moving column
    that uses that buffer never disturbs it: both travel at the same speed.

    Parameters
    ----------
    col : int
        This PE's column index (the address weight tokens are compared with).
    cols : int
        Columns of the array (sets the width of the token's column field).
    acc_width : int
        Width of the partial sums.
    floats : bool
        Elaborate the BF16/FP16 data path.
    subnormals : bool
        With ``floats``: IEEE subnormals (``True``) or flush to zero (``False``) in the
        multiplier and adder (:class:`~hdl.fp.FP32Adder`).

    Members
    -------
    i_x : In(operand)
        Moving operand from the left.
    i_sel : In(1)
        Weight buffer the moving operand multiplies with.
    i_dtype : In(Dtype), only with ``floats``
        Operand type of the moving operand.
    i_wtok : In(weight_token_layout(cols, operand))
        Weight token from the left.
    i_psum : In(signed(acc_width))
        Partial sum from the PE above (zero, i.e. +0.0, for row 0).
    o_x, o_sel, o_dtype, o_wtok : Out
        The inputs above, registered, for the PE to the right.
    o_psum : Out(signed(acc_width))
        ``i_psum + w[sel] * x`` for the PE below.
    """

    def __init__(self, *, col, cols, acc_width=32, floats=False, subnormals=True):
        if not isinstance(cols, int) or cols < 1:
            raise ValueError(f"cols must be a positive integer, not {cols!r}")
        if not isinstance(col, int) or not 0 <= col < cols:
            raise ValueError(f"col must be an integer in range(0, {cols}), not {col!r}")
        if FP32Adder.LATENCY != FP_ADD_LATENCY or FPMul16.LATENCY != FP_MUL_LATENCY:
            raise AssertionError("hdl.config FP latencies disagree with hdl.fp")
        self._col = col
        self._cols = cols
        self._acc_width = acc_width
        self._floats = bool(floats)
        if not isinstance(subnormals, bool):
            raise TypeError(f"subnormals must be a bool, not {subnormals!r}")
        self._subnormals = subnormals
        operand = unsigned(16) if floats else OPERAND_SHAPE
        self._operand = operand
        tok = weight_token_layout(cols, operand)
        members = {
            "i_x": In(operand),
            "i_sel": In(1),
            "i_wtok": In(tok),
            "i_psum": In(signed(acc_width)),
            "o_x": Out(operand),
            "o_sel": Out(1),
            "o_wtok": Out(tok),
            "o_psum": Out(signed(acc_width)),
        }
        if floats:
            members["i_dtype"] = In(Dtype)
            members["o_dtype"] = Out(Dtype)
        super().__init__(members)

    @property
    def col(self):
        return self._col

    @property
    def product_latency(self):
        """:func:`hdl.config.product_latency` of this PE (the array's skew assumes it)."""
        return _config.product_latency(self._floats)

    @property
    def row_hop(self):
        """:func:`hdl.config.row_hop` of this PE."""
        return _config.row_hop(self._floats)

    def elaborate(self, platform):
        m = Module()
        operand = self._operand

        def delay(value, cycles, name):
            """``value`` delayed by ``cycles`` reset-less registers."""
            for i in range(cycles):
                reg = Signal.like(value, name=f"{name}_d{i}", reset_less=True)
                m.d.sync += reg.eq(value)
                value = reg
            return value

        def ram_delay(value, cycles, name):
            """``value`` delayed by ``cycles`` (>= 2): a ring of ``cycles - 1`` entries
            read asynchronously and written in the same cycle (the read sees the entry
            before the write), then one register. On ECP5 the ring maps to distributed
            RAM (DPR16X4) instead of ``cycles - 1`` flip-flops per bit."""
            depth = cycles - 1
            ring = Memory(shape=len(value), depth=depth, init=[])
            m.submodules[f"{name}_ring"] = ring
            ptr = Signal(range(depth), name=f"{name}_ptr", reset_less=True)
            m.d.sync += ptr.eq(Mux(ptr == depth - 1, 0, ptr + 1))
            wr = ring.write_port()
            rd = ring.read_port(domain="comb")
            m.d.comb += [wr.addr.eq(ptr), wr.data.eq(value), wr.en.eq(1), rd.addr.eq(ptr)]
            out = Signal.like(value, name=f"{name}_q", reset_less=True)
            m.d.sync += out.eq(rd.data)
            return out

        # Data-path registers have no reset (reset_less): their contents only matter
        # once valid data reaches them, and leaving them out of the reset net spares
        # thousands of high-fanout loads. Only the token's valid bit is reset.

        # The two stationary weight registers (a tile's first token clears them).
        w0 = Signal(operand, reset_less=True)
        w1 = Signal(operand, reset_less=True)
        tok = self.i_wtok
        for b, w in enumerate((w0, w1)):
            with m.If(tok.valid & (tok.buf == b)):
                with m.If(tok.col == self._col):
                    m.d.sync += w.eq(tok.data)
                with m.Elif(tok.first):
                    m.d.sync += w.eq(0)

        # Select the weight and register both operands.
        weight = Signal(operand)
        m.d.comb += weight.eq(w0)
        with m.If(self.i_sel):
            m.d.comb += weight.eq(w1)
        op_w = Signal(operand, reset_less=True)
        op_x = Signal(operand, reset_less=True)
        m.d.sync += [op_w.eq(weight), op_x.eq(self.i_x)]

        # INT8: the operands go through a RegisteredMultiplier (a second operand
        # register, multiply, product register: on ECP5 all three inside the DSP block,
        # see docs/systolic.md, "Timing closure"), and the product meets the partial
        # sum. With floats, the FP multiplier's significand multiplier does it
        # (FPMul16(int8=True)), so a float PE needs one DSP, not two. The product of
        # the operands registered in cycle c + 1 arrives in cycle ``product_at`` and
        # waits there for the float product's timing.
        if self._floats:
            m.submodules.mul = mul = FPMul16(subnormals=self._subnormals, int8=True)
            op_dt = delay(self.i_dtype, 1, "op_dtype")
            m.d.comb += [
                mul.i_a.eq(op_w), mul.i_b.eq(op_x), mul.i_valid.eq(1),
                mul.i_fmt.eq(op_dt == Dtype.FP16), mul.i_int.eq(op_dt == Dtype.INT8),
            ]
            product = mul.o_int
            product_at = 1 + FPMul16.INT_LATENCY
        else:
            m.submodules.mul = mul = RegisteredMultiplier(operand.width, operand.width,
                                                          signed=True)
            m.d.comb += [mul.i_a.eq(op_w), mul.i_b.eq(op_x)]
            product = mul.o_p
            product_at = 1 + RegisteredMultiplier.LATENCY
        addend = delay(product, self.product_latency - product_at, "addend")

        int_sum = Signal(signed(self._acc_width), reset_less=True)
        m.d.sync += int_sum.eq(self.i_psum + addend)          # wraps at acc_width bits

        if self._floats:
            m.submodules.add = add = FP32Adder(subnormals=self._subnormals)
            m.d.comb += [
                add.i_a.eq(self.i_psum), add.i_b.eq(mul.o_prod), add.i_valid.eq(1),
            ]
            out_dt = delay(op_dt, FP_MUL_LATENCY + FP_ADD_LATENCY, "out_dtype")
            # the INT32 sum waits for the float adder's latency: 32 bits x 6 cycles, in
            # distributed RAM rather than flip-flops (the float array is FF-bound)
            int_out = ram_delay(int_sum, FP_ADD_LATENCY - 1, "int_sum")
            with m.If(out_dt == Dtype.INT8):
                m.d.comb += self.o_psum.eq(int_out)
            with m.Else():
                m.d.comb += self.o_psum.eq(add.o_sum)
        else:
            m.d.comb += self.o_psum.eq(int_sum)

        # Pass moving data and weight tokens to the right.
        x_q = Signal(operand, reset_less=True)
        sel_q = Signal(reset_less=True)
        tok_q = Signal(self.o_wtok.shape(), reset_less=True)
        tok_valid = Signal()
        m.d.sync += [x_q.eq(self.i_x), sel_q.eq(self.i_sel), tok_q.eq(tok),
                     tok_valid.eq(tok.valid)]
        m.d.comb += [
            self.o_x.eq(x_q),
            self.o_sel.eq(sel_q),
            self.o_wtok.eq(tok_q),
            self.o_wtok.valid.eq(tok_valid),
        ]
        if self._floats:
            dt_q = Signal(Dtype, reset_less=True)
            m.d.sync += dt_q.eq(self.i_dtype)
            m.d.comb += self.o_dtype.eq(dt_q)
        return m
