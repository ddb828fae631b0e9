"""The weight-stationary systolic array: ``Y[M, N] = S[K, M]^T @ X[K, N]``."""

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import CoreConfig, check_config
from .fifo import StreamFIFO
from .formats import Dtype, column_layout, operand_shape, result_layout
from .interfaces import COUNTER_WIDTH, ConfigComponent
from .pe import PE, weight_token_layout

__all__ = ["SystolicArray"]


class SystolicArray(ConfigComponent):
    """A ``rows x cols`` grid of :class:`~hdl.pe.PE` with skew, de-skew and flow control.

    A matmul is a *weight tile* on ``i_w`` (columns ``S[:, 0..M-1]``, ``M <= cols``,
    ``last`` on the final one, or implied after ``cols`` columns) followed by a *moving
    tile* on ``i_x`` (columns ``X[:, 0..N-1]``, any ``N >= 1``, ``last`` on the final
    one). Each moving column produces one result ``Y[:, n]`` on ``o_y``, in order, with
    ``Y[m, n] = sum_k S[k, m] * X[k, n]`` summed from row 0 down and wrapped to 32 bits.
    Result columns ``m >= M`` are zero. Weight and moving tiles pair up in order.

    Weights are double-buffered: the next weight tile loads (on its own path through
    the array) while the current moving tile streams, so back-to-back matmuls with
    ``N >= M`` run with no bubble.

    Flow control never stalls the array itself: a moving column is accepted only when
    the output FIFO is sure to have room for its result when it leaves the array
    (credit counting), so a stalled consumer throttles ``i_x`` and nothing is lost.

    Parameters
    ----------
    config : CoreConfig
        Uses ``rows``, ``cols``, ``acc_width`` and :attr:`~CoreConfig.fifo_depth`.

    Members
    -------
    i_w : In(stream.Signature(column_layout(config)))
        Weight columns.
    i_x : In(stream.Signature(column_layout(config)))
        Moving columns. Not accepted until the paired weight tile is loaded.
    o_y : Out(stream.Signature(result_layout(config)))
        Result columns.
    o_active : Out(48)
        Moving columns accepted since reset or ``i_perf_clear``: each one occupies
        every PE for one cycle, i.e. ``rows * cols`` MAC slots.
    o_cycles : Out(48)
        Cycles since reset or ``i_perf_clear``. ``o_active / o_cycles`` is the array
        utilization for full tiles; for partial tiles multiply by ``K*M/(rows*cols)``.
    i_perf_clear : In(1)
        Clears both counters.
    o_error : Out(1)
        Sticky: a moving column asked for an operand type this configuration was not
        elaborated with (see ``CoreConfig.dtypes``). Such a column is computed as INT8
        zeros, so its results are zero, and the stream stays in step.
    i_error_clear : In(1)
        Clears ``o_error``.
    """

    def __init__(self, config: CoreConfig):
        check_config(config)
        super().__init__(config, {
            "i_w": In(stream.Signature(column_layout(config))),
            "i_x": In(stream.Signature(column_layout(config))),
            "o_y": Out(stream.Signature(result_layout(config))),
            "o_active": Out(COUNTER_WIDTH),
            "o_cycles": Out(COUNTER_WIDTH),
            "i_perf_clear": In(1),
            "o_error": Out(1),
            "i_error_clear": In(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        rows, cols = cfg.rows, cfg.cols
        m = Module()

        operand = operand_shape(cfg)
        floats = cfg.has_float
        tok_layout = weight_token_layout(cols, operand)
        lane_fields = {"x": operand, "sel": 1, "wtok": tok_layout}
        if floats:
            lane_fields["dtype"] = Dtype
        lane_layout = data.StructLayout(lane_fields)

        # ---- weight buffer bookkeeping ------------------------------------------
        loaded = Signal(2)      # buffer b holds a complete tile not yet consumed
        wbuf = Signal()         # buffer the next weight column goes to
        xbuf = Signal()         # buffer the next moving column multiplies with
        wcol = Signal(range(max(cols, 2)))   # at least 1 bit, also for cols == 1

        depth = cfg.fifo_depth
        inflight = Signal(range(depth + 1))

        m.d.comb += [
            self.i_w.ready.eq(~loaded.bit_select(wbuf, 1)),
            self.i_x.ready.eq(loaded.bit_select(xbuf, 1) & (inflight < depth)),
        ]
        w_fire = self.i_w.valid & self.i_w.ready
        x_fire = self.i_x.valid & self.i_x.ready

        w_done = Signal()
        m.d.comb += w_done.eq(self.i_w.payload.last | (wcol == cols - 1))
        set_loaded = Signal(2)
        clr_loaded = Signal(2)
        with m.If(w_fire):
            m.d.comb += set_loaded.bit_select(wbuf, 1).eq(w_done)
            with m.If(w_done):
                m.d.sync += [wcol.eq(0), wbuf.eq(~wbuf)]
            with m.Else():
                m.d.sync += wcol.eq(wcol + 1)
        with m.If(x_fire & self.i_x.payload.last):
            m.d.comb += clr_loaded.bit_select(xbuf, 1).eq(1)
            m.d.sync += xbuf.eq(~xbuf)
        m.d.sync += loaded.eq((loaded | set_loaded) & ~clr_loaded)

        # ---- operand type check ---------------------------------------------------------
        # A moving column of a type this configuration lacks becomes INT8 zeros.
        x_data = self.i_x.payload.data
        x_dtype = None
        if floats:
            allowed = Signal()
            m.d.comb += allowed.eq(0)
            for name in cfg.dtypes:
                with m.If(self.i_x.payload.dtype == Dtype[name.upper()]):
                    m.d.comb += allowed.eq(1)
            x_dtype = Signal(Dtype)
            x_zero = Signal()
            m.d.comb += [
                x_dtype.eq(Mux(allowed, self.i_x.payload.dtype, Dtype.INT8)),
                x_zero.eq(~allowed),
            ]
            with m.If(self.i_error_clear):
                m.d.sync += self.o_error.eq(0)
            with m.Elif(x_fire & ~allowed):
                m.d.sync += self.o_error.eq(1)

        # ---- input register: one lane per row -----------------------------------
        # Lane data has no reset (only valid data is ever used); the weight token's
        # valid bit travels in a separate, reset chain.
        lanes = []
        for k in range(rows):
            lane = Signal(lane_layout, name=f"in_lane{k}", reset_less=True)
            m.d.sync += [
                lane.x.eq(Mux(x_zero, 0, x_data[k]) if floats else x_data[k]),
                lane.sel.eq(xbuf),
                lane.wtok.buf.eq(wbuf),
                lane.wtok.col.eq(wcol),
                lane.wtok.first.eq(wcol == 0),
                lane.wtok.data.eq(self.i_w.payload.data[k]),
            ]
            if floats:
                m.d.sync += lane.dtype.eq(x_dtype)
            lanes.append(lane)
        tok_valid = Signal(name="in_tok_valid")
        m.d.sync += tok_valid.eq(w_fire)

        # ---- input skew: row k is delayed row_hop * k more cycles --------------------
        skewed, skewed_valid = [], []
        for k, lane in enumerate(lanes):
            prev, prev_valid = lane, tok_valid
            for s in range(cfg.row_hop * k):
                stage = Signal(lane_layout, name=f"skew_r{k}_s{s}", reset_less=True)
                stage_valid = Signal(name=f"skew_r{k}_s{s}_tok_valid")
                m.d.sync += [stage.eq(prev), stage_valid.eq(prev_valid)]
                prev, prev_valid = stage, stage_valid
            skewed.append(prev)
            skewed_valid.append(prev_valid)

        # ---- the PE grid ----------------------------------------------------------
        pes = [[PE(col=j, cols=cols, acc_width=cfg.acc_width, floats=floats,
                   subnormals=cfg.subnormals)
                for j in range(cols)] for _ in range(rows)]
        for k in range(rows):
            for j in range(cols):
                pe = pes[k][j]
                m.submodules[f"pe_r{k}_c{j}"] = pe
                if j == 0:
                    m.d.comb += [
                        pe.i_x.eq(skewed[k].x),
                        pe.i_sel.eq(skewed[k].sel),
                        pe.i_wtok.eq(skewed[k].wtok),
                        pe.i_wtok.valid.eq(skewed_valid[k]),
                    ]
                    if floats:
                        m.d.comb += pe.i_dtype.eq(skewed[k].dtype)
                else:
                    left = pes[k][j - 1]
                    m.d.comb += [
                        pe.i_x.eq(left.o_x),
                        pe.i_sel.eq(left.o_sel),
                        pe.i_wtok.eq(left.o_wtok),
                    ]
                    if floats:
                        m.d.comb += pe.i_dtype.eq(left.o_dtype)
                if k == 0:
                    m.d.comb += pe.i_psum.eq(0)
                else:
                    m.d.comb += pe.i_psum.eq(pes[k - 1][j].o_psum)

        # ---- output de-skew: column j is delayed cols-1-j more cycles ---------------
        res_layout = result_layout(cfg)
        result = Signal(res_layout)
        for j in range(cols):
            prev = pes[rows - 1][j].o_psum
            for s in range(cols - 1 - j):
                stage = Signal.like(prev, name=f"deskew_c{j}_s{s}", reset_less=True)
                m.d.sync += stage.eq(prev)
                prev = stage
            m.d.comb += result.data[j].eq(prev)

        # valid/last of each moving column, delayed to meet its de-skewed result
        # (CoreConfig.array_latency explains the count).
        delay = cfg.array_latency
        tag = Signal(2)     # {last, valid}
        m.d.comb += tag.eq(Const(0, 2) | x_fire | (self.i_x.payload.last << 1))
        for s in range(delay):
            stage = Signal(2, name=f"tag_s{s}")
            m.d.sync += stage.eq(tag)
            tag = stage
        m.d.comb += result.last.eq(tag[1])

        # ---- output FIFO with credit-based admission --------------------------------
        fifo = m.submodules.out_fifo = StreamFIFO(res_layout, depth)
        m.d.comb += [
            fifo.i.payload.eq(result),
            fifo.i.valid.eq(tag[0]),    # never refused: inflight <= depth (see above)
        ]
        wiring.connect(m, wiring.flipped(self.o_y), fifo.o)
        y_fire = self.o_y.valid & self.o_y.ready
        m.d.sync += inflight.eq(inflight + x_fire - y_fire)

        # ---- performance counters -----------------------------------------------------
        with m.If(self.i_perf_clear):
            m.d.sync += [self.o_active.eq(0), self.o_cycles.eq(0)]
        with m.Else():
            m.d.sync += [
                self.o_active.eq(self.o_active + x_fire),
                self.o_cycles.eq(self.o_cycles + 1),
            ]
        return m
