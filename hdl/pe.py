"""One processing element of the weight-stationary systolic array."""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .formats import OPERAND_SHAPE

__all__ = ["PE", "weight_token_layout"]


def weight_token_layout(cols):
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
    data : ``signed(8)``
        The weight.
    """
    return data.StructLayout({
        "valid": 1,
        "buf": 1,
        "col": unsigned(max(1, ceil_log2(cols))),
        "first": 1,
        "data": OPERAND_SHAPE,
    })


class PE(wiring.Component):
    """Multiply-accumulate cell with a double-buffered stationary weight.

    Moving operands and weight tokens enter from the left already registered by the
    neighbour and leave to the right one cycle later; partial sums enter from above and
    leave downward :data:`~hdl.config.PE_LATENCY` (3) cycles after the moving operand
    arrived (operand registers, multiply, add), so the array's skew stays one cycle
    per row and column whatever the PE's pipeline depth.

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
        Width of the partial sums (wrap-around arithmetic).

    Members
    -------
    i_x : In(signed(8))
        Moving operand from the left.
    i_sel : In(1)
        Weight buffer the moving operand multiplies with.
    i_wtok : In(weight_token_layout(cols))
        Weight token from the left.
    i_psum : In(signed(acc_width))
        Partial sum from the PE above (zero for row 0).
    o_x, o_sel, o_wtok : Out
        The three inputs above, registered, for the PE to the right.
    o_psum : Out(signed(acc_width))
        ``i_psum + w[sel] * x``, for the PE below, ``PE_LATENCY`` cycles after ``x``
        and ``PE_LATENCY - 1`` cycles after ``i_psum`` was seen.
    """

    def __init__(self, *, col, cols, acc_width=32):
        if not isinstance(cols, int) or cols < 1:
            raise ValueError(f"cols must be a positive integer, not {cols!r}")
        if not isinstance(col, int) or not 0 <= col < cols:
            raise ValueError(f"col must be an integer in range(0, {cols}), not {col!r}")
        self._col = col
        self._cols = cols
        self._acc_width = acc_width
        tok = weight_token_layout(cols)
        super().__init__({
            "i_x": In(OPERAND_SHAPE),
            "i_sel": In(1),
            "i_wtok": In(tok),
            "i_psum": In(signed(acc_width)),
            "o_x": Out(OPERAND_SHAPE),
            "o_sel": Out(1),
            "o_wtok": Out(tok),
            "o_psum": Out(signed(acc_width)),
        })

    @property
    def col(self):
        return self._col

    def elaborate(self, platform):
        m = Module()

        # Data-path registers have no reset (reset_less): their contents only matter
        # once valid data reaches them, and leaving them out of the reset net spares
        # thousands of high-fanout loads. Only the token's valid bit is reset.

        # The two stationary weight registers (a tile's first token clears them).
        w0 = Signal(OPERAND_SHAPE, reset_less=True)
        w1 = Signal(OPERAND_SHAPE, reset_less=True)

        tok = self.i_wtok
        for b, w in enumerate((w0, w1)):
            with m.If(tok.valid & (tok.buf == b)):
                with m.If(tok.col == self._col):
                    m.d.sync += w.eq(tok.data)
                with m.Elif(tok.first):
                    m.d.sync += w.eq(0)

        # Stage 1: select the weight and register both operands.
        weight = Signal(OPERAND_SHAPE)
        m.d.comb += weight.eq(w0)
        with m.If(self.i_sel):
            m.d.comb += weight.eq(w1)
        op_w = Signal(OPERAND_SHAPE, reset_less=True)
        op_x = Signal(OPERAND_SHAPE, reset_less=True)
        m.d.sync += [op_w.eq(weight), op_x.eq(self.i_x)]

        # Stage 2: a second operand register, free to sit beside the multiplier (on an
        # FPGA the DSP sites are few and fixed; see docs/systolic.md, "Timing closure").
        mul_w = Signal(OPERAND_SHAPE, reset_less=True)
        mul_x = Signal(OPERAND_SHAPE, reset_less=True)
        m.d.sync += [mul_w.eq(op_w), mul_x.eq(op_x)]

        # Stage 3: multiply (one DSP on FPGAs), product registered.
        product = Signal(signed(2 * OPERAND_SHAPE.width), reset_less=True)
        m.d.sync += product.eq(mul_w * mul_x)

        # Stage 4: the product travels to the adder through one more register.
        addend = Signal.like(product, reset_less=True)
        m.d.sync += addend.eq(product)

        # Stage 5: accumulate down the column, wrapping at acc_width bits.
        psum = Signal(signed(self._acc_width), reset_less=True)
        m.d.sync += psum.eq(self.i_psum + addend)
        m.d.comb += self.o_psum.eq(psum)

        # Pass moving data and weight tokens to the right.
        x_q = Signal(OPERAND_SHAPE, reset_less=True)
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
        return m
