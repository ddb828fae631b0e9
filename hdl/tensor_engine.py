"""The tensor engine: matmul commands from SBUF through the systolic array into PSUM."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .config import CoreConfig, check_config, check_int_range
from .formats import (Dtype, MatmulCmd, TensorError, _bits_for, column_layout, psum_write_layout,
                      sbuf_data_layout)
from .interfaces import ConfigComponent, COUNTER_WIDTH, EngineStatus, psum_write_client, sbuf_read_client
from .systolic import SystolicArray

__all__ = ["Fetcher", "TensorEngine", "fetch_layout"]


def fetch_layout(config: CoreConfig):
    """What a :class:`Fetcher` needs to know about one tile.

    Members
    -------
    word : first SBUF word address
    nwords : words to read (the tile may straddle word boundaries)
    byte0 : byte offset of the first element in the first word
    last : elements per partition minus one (``M - 1`` for S, ``N - 1`` for X)
    wide : elements are 2 bytes (BF16/FP16), else 1 (INT8)
    step : bytes from one element to the next (the element size, times the moving
        step for X); at most a word, so every word read yields an element
    p0 : first partition (array row ``k`` gets partition ``p0 + k``)
    k : partitions used; array rows ``>= k`` get zeros
    dtype : operand type, passed on with the columns
    """
    return data.StructLayout({
        "word": _bits_for(config.sbuf_words),
        "nwords": _bits_for(config.sbuf_words + 2),
        "byte0": _bits_for(config.sbuf_word_bytes),
        "last": 17,
        "wide": 1,
        "step": _bits_for(config.sbuf_word_bytes + 1),
        "p0": _bits_for(config.rows),
        "k": _bits_for(config.rows + 1),
        "dtype": Dtype,
    })


def _writer_layout(config: CoreConfig):
    return data.StructLayout({
        "bank": _bits_for(config.psum_banks),
        "entry": _bits_for(config.psum_depth),
        "last": 17,
        "m": _bits_for(config.cols + 1),
        "acc": 1,
        "fp": 1,
    })


class Fetcher(ConfigComponent):
    """Reads one operand tile per command from SBUF and emits it as array columns.

    For each command on ``i_cmd`` the fetcher requests words ``word .. word+nwords-1``
    (every partition at once) and turns the responses into ``last + 1`` columns: column
    ``i`` holds the element ``i * step`` bytes past the tile's first (``step``: the
    element size, times the moving step for X) in every partition, shifted so that array
    row ``k`` gets partition ``p0 + k``, with rows ``k >= K`` zero. One column per
    cycle while responses keep up; ``last`` marks a tile's final column. The unpack
    takes two registered stages (element select, then partition shift and K mask), so
    a column is on ``o_col`` two cycles after its word reaches the head of the local
    word FIFO.

    Members
    -------
    i_cmd : In(stream.Signature(fetch_layout(config)))
    rd : Out(sbuf_read_client(config))
        The SBUF read client the tile is read through.
    o_col : Out(stream.Signature(column_layout(config)))
        Columns for the systolic array (``i_w`` or ``i_x``).
    o_busy : Out(1)
        A command is being read or unpacked.
    """

    def __init__(self, config: CoreConfig):
        check_config(config)
        super().__init__(config, {
            "i_cmd": In(stream.Signature(fetch_layout(config))),
            "rd": Out(sbuf_read_client(config)),
            "o_col": Out(stream.Signature(column_layout(config))),
            "o_busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        layout = fetch_layout(cfg)
        wb = cfg.sbuf_word_bytes
        ew = cfg.operand_width
        rows = cfg.rows

        # ---- reader: issue the word reads, hand the command to the unpacker --------
        pending = m.submodules.pending = SyncFIFOBuffered(width=layout.size, depth=4)
        reading = Signal()
        addr = Signal.like(self.rd.req.payload.addr)
        left = Signal(layout["nwords"].shape)
        m.d.comb += [
            self.i_cmd.ready.eq(~reading & pending.w_rdy),
            pending.w_en.eq(self.i_cmd.valid & self.i_cmd.ready),
            pending.w_data.eq(self.i_cmd.payload),
            self.rd.req.valid.eq(reading),
            self.rd.req.payload.addr.eq(addr),
        ]
        with m.If(self.i_cmd.valid & self.i_cmd.ready):
            m.d.sync += [
                reading.eq(1),
                addr.eq(self.i_cmd.payload.word),
                left.eq(self.i_cmd.payload.nwords),
            ]
        with m.Elif(self.rd.req.valid & self.rd.req.ready):
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
            with m.If(left == 1):
                m.d.sync += reading.eq(0)

        # ---- unpacker: one column per cycle from the response words ----------------
        # The words first enter a small local FIFO: its ready depends only on its fill
        # level, so the unpacker's word-consumed decision does not reach back into
        # SBUF's response FIFO and read arbiter in the same cycle.
        words = m.submodules.words = SyncFIFOBuffered(
            width=len(self.rd.resp.payload.as_value()), depth=4)
        resp = Signal(sbuf_data_layout(cfg))
        m.d.comb += [
            words.w_en.eq(self.rd.resp.valid),
            words.w_data.eq(self.rd.resp.payload),
            self.rd.resp.ready.eq(words.w_rdy),
            resp.eq(words.r_data),
        ]
        head = Signal(layout)
        m.d.comb += head.eq(pending.r_data)
        started = Signal()
        bp = Signal(range(wb))          # byte pointer into the current word
        idx = Signal(17)                # elements emitted of this tile
        cur_bp = Signal(range(wb))
        m.d.comb += cur_bp.eq(Mux(started, bp, head.byte0))

        # Two stages, so that no cycle holds the whole unpack (it was the tensor
        # subsystem's critical path on the ECP5): `sel` takes each partition's element
        # out of its word (a byte or halfword select by the byte pointer); the output
        # register takes the partition shift by `p0` and the K mask. Each stage moves
        # when the one after it is free, so a column still leaves every cycle.
        out_free = ~self.o_col.valid | self.o_col.ready
        sel = Signal(rows * ew)
        sel_valid = Signal()
        sel_p0 = Signal.like(head.p0)
        sel_k = Signal.like(head.k)
        sel_last = Signal()
        sel_dtype = Signal.like(head.dtype)
        sel_free = ~sel_valid | out_free
        emit = Signal()
        m.d.comb += emit.eq(pending.r_rdy & words.r_rdy & sel_free)

        elems = []
        for p in range(rows):
            word = resp[p]
            e8 = word.word_select(cur_bp, 8)
            if ew == 16:
                e16 = word.word_select(cur_bp >> 1, 16)
                elems.append(Mux(head.wide, e16, e8))
            else:
                elems.append(e8)

        step = head.step
        next_bp = Signal(range(2 * wb + 1))
        m.d.comb += next_bp.eq(cur_bp + step)
        last_elem = idx == head.last
        word_end = next_bp >= wb

        with m.If(emit):
            m.d.sync += [sel.eq(Cat(elems)), sel_valid.eq(1), sel_p0.eq(head.p0),
                         sel_k.eq(head.k), sel_last.eq(last_elem), sel_dtype.eq(head.dtype)]
            with m.If(last_elem):
                m.d.sync += [started.eq(0), idx.eq(0)]
            with m.Else():
                m.d.sync += [started.eq(1), bp.eq(next_bp), idx.eq(idx + 1)]
        with m.Elif(out_free):
            m.d.sync += sel_valid.eq(0)

        shifted = Signal(rows * ew)
        m.d.comb += shifted.eq(sel >> (sel_p0 * ew))
        with m.If(sel_valid & out_free):
            for k in range(rows):
                m.d.sync += self.o_col.payload.data[k].eq(
                    Mux(k < sel_k, shifted[k * ew:(k + 1) * ew], 0))
            m.d.sync += [self.o_col.valid.eq(1), self.o_col.payload.last.eq(sel_last)]
            if cfg.has_float:
                m.d.sync += self.o_col.payload.dtype.eq(sel_dtype)
        with m.Elif(self.o_col.ready):
            m.d.sync += self.o_col.valid.eq(0)
        m.d.comb += [
            words.r_en.eq(emit & (word_end | last_elem)),
            pending.r_en.eq(emit & last_elem),
            self.o_busy.eq(reading | pending.r_rdy | sel_valid | self.o_col.valid),
        ]
        return m


class TensorEngine(ConfigComponent):
    """Runs :class:`~hdl.formats.MatmulCmd` commands at one moving column per cycle.

    A command is checked when it is accepted; a legal one is split three ways: the
    stationary fetcher reads ``S`` into the array's weight buffer, the moving
    fetcher streams ``X`` through the array, and the writer sends each result column
    to PSUM (overwrite or accumulate, FP32 for BF16/FP16). Each part has its own
    queue, so the next command's stationary tile loads while the current moving
    tile streams (the array is double-buffered), and back-to-back commands with
    ``N >= M`` keep the array busy every cycle when SBUF reads keep up.

    An illegal command (see :class:`~hdl.formats.TensorError`) is dropped: it reads
    nothing and writes nothing. ``status.error`` goes high and ``status.error_code``
    holds the reason for the first refusal until ``status.error_clear``.

    Members
    -------
    i_cmd : In(stream.Signature(MatmulCmd))
    s_rd : Out(sbuf_read_client(config))   SBUF read client for the stationary tiles
    x_rd : Out(sbuf_read_client(config))   SBUF read client for the moving tiles
    psum_wr : Out(psum_write_client(config))
        PSUM write client.
    o_busy : Out(1)
        A command is being checked or has results not yet handed to PSUM.
    status : Out(EngineStatus(TensorError))
        ``done`` pulses one cycle per legal command, when PSUM accepts its last result
        column (in command order; a later PSUM reader sees every result); refused
        commands give none. ``error``/``error_code``/``error_clear``: the first refusal.
    o_fire : Out(1)
        A moving column enters the array this cycle (the increment of ``o_active``).
    o_busy_cycles, o_active, o_cycles : Out(48)
        Cycles with ``o_busy`` set; moving columns streamed; all cycles (since reset
        or ``i_perf_clear``).
    i_perf_clear : In(1)
    """

    def __init__(self, config: CoreConfig, *, result_queue_depth=16):
        check_config(config)
        check_int_range("result_queue_depth", result_queue_depth, 4, 256)
        self._wq_depth = result_queue_depth
        super().__init__(config, {
            "i_cmd": In(stream.Signature(MatmulCmd)),
            "s_rd": Out(sbuf_read_client(config)),
            "x_rd": Out(sbuf_read_client(config)),
            "psum_wr": Out(psum_write_client(config)),
            "o_busy": Out(1),
            "status": Out(EngineStatus(TensorError)),
            "o_fire": Out(1),
            "o_busy_cycles": Out(COUNTER_WIDTH),
            "o_active": Out(COUNTER_WIDTH),
            "o_cycles": Out(COUNTER_WIDTH),
            "i_perf_clear": In(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        flayout = fetch_layout(cfg)
        wlayout = _writer_layout(cfg)
        wb_log = exact_log2(cfg.sbuf_word_bytes)

        # ---- check and decode ----------------------------------------------------------
        cmd = self.i_cmd.payload
        wide = Signal()
        m.d.comb += wide.eq(cmd.dtype != Dtype.INT8)
        code = Signal(TensorError)
        allowed = Signal()
        for name in cfg.dtypes:
            with m.If(cmd.dtype == Dtype[name.upper()]):
                m.d.comb += allowed.eq(1)
        x_step = Signal(4)
        m.d.comb += x_step.eq(cmd.x_skip + 1)
        s_end = (cmd.s_off + cmd.m) << wide
        # one past the last moving element: (n - 1) * step + 1 elements from x_off
        x_end = (cmd.x_off + (cmd.n - 1) * x_step + 1) << wide
        with m.If(~allowed):
            m.d.comb += code.eq(TensorError.DTYPE)
        with m.Elif((cmd.k == 0) | (cmd.p0 + cmd.k > cfg.rows)):
            m.d.comb += code.eq(TensorError.K_RANGE)
        with m.Elif((cmd.m == 0) | (cmd.m > cfg.cols)):
            m.d.comb += code.eq(TensorError.M_RANGE)
        with m.Elif((cmd.n == 0) | (cmd.n > cfg.psum_depth)):
            m.d.comb += code.eq(TensorError.N_RANGE)
        with m.Elif((cmd.bank >= cfg.psum_banks) | (cmd.psum_off + cmd.n > cfg.psum_depth)):
            m.d.comb += code.eq(TensorError.PSUM_RANGE)
        with m.Elif((s_end > cfg.sbuf_bytes) | (x_end > cfg.sbuf_bytes)):
            m.d.comb += code.eq(TensorError.SBUF_RANGE)
        with m.Elif((x_step << wide) > cfg.sbuf_word_bytes):
            m.d.comb += code.eq(TensorError.STEP)

        def fetch_cmd(off, count, step):
            # the tile spans (count - 1) * step + 1 elements from off
            start = Signal(22)
            m.d.comb += start.eq(off << wide)
            span = ((count - 1) * step + 1) << wide
            nbytes = (start[:wb_log] + span + cfg.sbuf_word_bytes - 1)
            return {
                "word": start >> wb_log,
                "nwords": nbytes >> wb_log,
                "byte0": start[:wb_log],
                "last": count - 1,
                "wide": wide,
                "step": step << wide,
                "p0": cmd.p0,
                "k": cmd.k,
                "dtype": cmd.dtype,
            }

        dec_valid = Signal()
        dec_code = Signal(TensorError)
        dec_s = Signal(flayout)
        dec_x = Signal(flayout)
        dec_w = Signal(wlayout)

        s_q = m.submodules.s_queue = SyncFIFOBuffered(width=flayout.size, depth=4)
        x_q = m.submodules.x_queue = SyncFIFOBuffered(width=flayout.size, depth=4)
        w_q = m.submodules.result_queue = SyncFIFOBuffered(width=wlayout.size,
                                                           depth=self._wq_depth)
        legal = dec_code == TensorError.NONE
        room = s_q.w_rdy & x_q.w_rdy & w_q.w_rdy
        consume = dec_valid & (~legal | room)
        m.d.comb += [
            self.i_cmd.ready.eq(~dec_valid | consume),
            s_q.w_en.eq(consume & legal), s_q.w_data.eq(dec_s),
            x_q.w_en.eq(consume & legal), x_q.w_data.eq(dec_x),
            w_q.w_en.eq(consume & legal), w_q.w_data.eq(dec_w),
        ]
        with m.If(self.i_cmd.valid & self.i_cmd.ready):
            m.d.sync += [dec_valid.eq(1), dec_code.eq(code)]
            for field, value in fetch_cmd(cmd.s_off, cmd.m, 1).items():
                m.d.sync += dec_s[field].eq(value)
            for field, value in fetch_cmd(cmd.x_off, cmd.n, x_step).items():
                m.d.sync += dec_x[field].eq(value)
            m.d.sync += [
                dec_w.bank.eq(cmd.bank), dec_w.entry.eq(cmd.psum_off), dec_w.last.eq(cmd.n - 1),
                dec_w.m.eq(cmd.m), dec_w.acc.eq(cmd.acc), dec_w.fp.eq(wide),
            ]
        with m.Elif(consume):
            m.d.sync += dec_valid.eq(0)

        with m.If(self.status.error_clear):
            m.d.sync += [self.status.error.eq(0), self.status.error_code.eq(TensorError.NONE)]
        with m.Elif(consume & ~legal & ~self.status.error):
            m.d.sync += [self.status.error.eq(1), self.status.error_code.eq(dec_code)]

        # ---- fetchers and the array -------------------------------------------------------
        sf = m.submodules.s_fetch = Fetcher(cfg)
        xf = m.submodules.x_fetch = Fetcher(cfg)
        array = m.submodules.array = SystolicArray(cfg)
        for q, f in ((s_q, sf), (x_q, xf)):
            m.d.comb += [
                f.i_cmd.valid.eq(q.r_rdy),
                f.i_cmd.payload.eq(q.r_data),
                q.r_en.eq(f.i_cmd.ready),
            ]
        wiring.connect(m, sf.rd, wiring.flipped(self.s_rd))
        wiring.connect(m, xf.rd, wiring.flipped(self.x_rd))
        wiring.connect(m, sf.o_col, array.i_w)
        wiring.connect(m, xf.o_col, array.i_x)
        m.d.comb += [
            array.i_perf_clear.eq(self.i_perf_clear),
            # the engine refuses absent types itself, so the array's own flag never rises
            array.i_error_clear.eq(self.status.error_clear),
            self.o_active.eq(array.o_active),
            self.o_cycles.eq(array.o_cycles),
        ]

        # ---- writer: result columns to PSUM ---------------------------------------------
        # The requests pass through a small FIFO so that PSUM's ready (arbitration and
        # the hazard compare) does not reach back into the array's output FIFO.
        wcmd = Signal(wlayout)
        m.d.comb += wcmd.eq(w_q.r_data)
        widx = Signal(17)
        y = array.o_y
        req_layout = psum_write_layout(cfg)
        # one extra bit marks a command's last column (for status.done)
        out_q = m.submodules.psum_queue = SyncFIFOBuffered(width=req_layout.size + 1, depth=4)
        req = Signal(req_layout)
        m.d.comb += [
            req.bank.eq(wcmd.bank),
            req.entry.eq(wcmd.entry + widx),
            req.mask.eq((Const(1, cfg.cols + 1) << wcmd.m) - 1),
            req.acc.eq(wcmd.acc),
            req.fp.eq(wcmd.fp),
        ]
        for j in range(cfg.cols):
            m.d.comb += req.data[j].eq(y.payload.data[j])
        take = Signal()
        m.d.comb += [
            take.eq(y.valid & w_q.r_rdy & out_q.w_rdy),
            y.ready.eq(w_q.r_rdy & out_q.w_rdy),
            out_q.w_en.eq(take),
            out_q.w_data.eq(Cat(req, widx == wcmd.last)),
            self.psum_wr.valid.eq(out_q.r_rdy),
            self.psum_wr.payload.eq(out_q.r_data[:req_layout.size]),
            out_q.r_en.eq(self.psum_wr.ready),
            self.status.done.eq(out_q.r_rdy & self.psum_wr.ready & out_q.r_data[-1]),
            self.o_fire.eq(array.i_x.valid & array.i_x.ready),
        ]
        w_last = widx == wcmd.last
        with m.If(take):
            m.d.sync += widx.eq(Mux(w_last, 0, widx + 1))
        m.d.comb += w_q.r_en.eq(take & w_last)

        # ---- status ---------------------------------------------------------------------
        m.d.comb += self.o_busy.eq(dec_valid | (w_q.level != 0) | (out_q.level != 0))
        with m.If(self.i_perf_clear):
            m.d.sync += self.o_busy_cycles.eq(0)
        with m.Elif(self.o_busy):
            m.d.sync += self.o_busy_cycles.eq(self.o_busy_cycles + 1)
        return m

