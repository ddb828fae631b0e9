"""The vector engine: PSUM/SBUF tiles -> bias, ReLU, casts, requantisation -> SBUF."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .config import CoreConfig, FP_ADD_LATENCY, check_config
from .fifo import StreamSlice
from .formats import ActCmd, ActError, ActType, sbuf_write_layout
from .fp import FP32Adder
from .interfaces import (COUNTER_WIDTH, ConfigComponent, EngineStatus, psum_read_client,
                         sbuf_read_client, sbuf_write_client)
from .vector_units import F32Narrow, Requantizer

__all__ = ["ActChecker", "ActState", "VectorEngine"]


class ActChecker(ConfigComponent):
    """The refusal checks of an :class:`~hdl.formats.ActCmd`, in :class:`ActError`
    order (TYPES, PARTS, SRC_RANGE, DST_RANGE, BIAS_RANGE, OVERLAP; the golden model is
    ``sim.model.vector.check``).

    Contract: ``o_code`` is the first failing check of the command that was on
    ``i_cmd`` in the previous cycle (``NONE`` if it runs). Each check's verdict is
    registered and the priority choice made after the register, so the sums and
    compares and the choice are in different cycles.

    Members
    -------
    i_cmd : In(ActCmd)
    o_code : Out(ActError)
    """

    i_cmd: In(ActCmd)
    o_code: Out(ActError)

    def __init__(self, config: CoreConfig):
        super().__init__(config)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        R = cfg.rows
        floats = cfg.has_float
        c = self.i_cmd
        des = Signal(3)     # destination element bytes
        des_log = Signal(2)
        with m.Switch(c.dst_type):
            with m.Case(ActType.INT8):
                m.d.comb += [des.eq(1), des_log.eq(0)]
            with m.Case(ActType.BF16, ActType.FP16):
                m.d.comb += [des.eq(2), des_log.eq(1)]
            with m.Default():
                m.d.comb += [des.eq(4), des_log.eq(2)]
        dst_float = ((c.dst_type == ActType.FP32) | (c.dst_type == ActType.BF16)
                     | (c.dst_type == ActType.FP16))
        dst_int = (c.dst_type == ActType.INT32) | (c.dst_type == ActType.INT8)
        src_parts = Mux(c.src_psum, cfg.cols, R)
        src_elems = Mux(c.src_psum, cfg.psum_entries, cfg.sbuf_bytes // 4)
        dst_end = Signal(40)
        m.d.comb += dst_end.eq(c.dst_off + (c.n << des_log))
        src_lo = c.src_off * 4
        src_hi = (c.src_off + c.n) * 4
        parts_overlap = (c.src_p0 < c.dst_p0 + c.parts) & (c.dst_p0 < c.src_p0 + c.parts)
        bytes_overlap = (src_lo < dst_end) & (c.dst_off < src_hi)
        in_place = (c.src_p0 == c.dst_p0) & (c.dst_off == src_lo)
        fail = Signal(6)
        m.d.sync += fail.eq(Cat(
            Mux(c.src_fp, ~dst_float | (not floats), ~dst_int),
            (c.parts == 0) | (c.src_p0 + c.parts > src_parts) | (c.dst_p0 + c.parts > R),
            (c.n == 0) | (c.src_off + c.n > src_elems),
            ((c.dst_off & (des - 1)) != 0) | (dst_end > cfg.sbuf_bytes),
            c.bias & ((c.bias_off[:2] != 0) | (c.bias_off + 4 > cfg.sbuf_bytes)),
            ~c.src_psum & parts_overlap & bytes_overlap & ~in_place,
        ))
        for i, err in reversed(list(enumerate((
                ActError.TYPES, ActError.PARTS, ActError.SRC_RANGE, ActError.DST_RANGE,
                ActError.BIAS_RANGE, ActError.OVERLAP)))):
            with m.If(fail[i]):
                m.d.comb += self.o_code.eq(err)
        return m


class ActState(enum.Enum, shape=3):
    """The vector engine's control state (an enum so that waveforms show it by name,
    ``sim/flow/waves.py``): IDLE takes a command; CHECK registers it and CHECK2 has the
    checks' verdict; BIAS_REQ/BIAS_WAIT read the bias row; RUN streams the rows."""
    IDLE = 0
    CHECK = 1
    CHECK2 = 2
    BIAS_REQ = 3
    BIAS_WAIT = 4
    RUN = 5


class VectorEngine(ConfigComponent):
    """Runs :class:`~hdl.formats.ActCmd` commands: one element per partition per cycle.

    A command is checked first (:class:`~hdl.formats.ActError`); a refused one reads
    and writes nothing, raises ``status.error`` and records its code until
    ``status.error_clear``.
    A legal one reads the per-partition bias (one SBUF read), then streams the source
    tile, one element of every partition per request (PSUM entry or SBUF word), through
    ``rows`` lanes, each::

        FP32:  x (+ bias, FP32Adder)  -> ReLU -> FP32 | BF16 | FP16 (F32Narrow)
        INT32: x (+ bias, INT32 wrap) -> ReLU -> INT32
                                      -> requantise (Requantizer, ReLU clamps at zp) -> INT8

    and packs the results into SBUF words (byte strobes: only the tile's bytes change).
    The lanes have a fixed latency; a source element is taken only when the output
    FIFO is sure to have room for its result (credits), so SBUF write backpressure
    stalls the reads, never the lanes, and nothing is lost.

    Members
    -------
    i_cmd : In(stream.Signature(ActCmd))
    sbuf_rd : Out(sbuf_read_client(config))   bias; SBUF sources
    psum_rd : Out(psum_read_client(config))   PSUM sources
    sbuf_wr : Out(sbuf_write_client(config))  results
    o_busy : Out(1)
    status : Out(EngineStatus(ActError))
        ``done`` pulses one cycle per legal command, when its last SBUF write has been
        accepted (a later SBUF reader sees every result); refused commands give none.
        ``error``/``error_code``/``error_clear``: the first refusal.
    o_busy_cycles : Out(48), i_perf_clear : In(1)
    """

    def __init__(self, config: CoreConfig):
        check_config(config)
        if config.cols > config.rows:
            raise ValueError(f"the vector engine needs cols <= rows (a PSUM partition per "
                             f"lane), not a {config.rows}x{config.cols} array")
        super().__init__(config, {
            "i_cmd": In(stream.Signature(ActCmd)),
            "sbuf_rd": Out(sbuf_read_client(config)),
            "psum_rd": Out(psum_read_client(config)),
            "sbuf_wr": Out(sbuf_write_client(config)),
            "o_busy": Out(1),
            "status": Out(EngineStatus(ActError)),
            "o_busy_cycles": Out(COUNTER_WIDTH),
            "i_perf_clear": In(1),
        })

    @property
    def lane_latency(self):
        """Cycles from a source element entering the lanes to its result."""
        narrow = F32Narrow.LATENCY
        if self._config.has_float:
            return max(FP_ADD_LATENCY + 1 + narrow, 1 + Requantizer.LATENCY)
        return 1 + Requantizer.LATENCY

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        R = cfg.rows
        W = cfg.sbuf_word_bytes
        lb = exact_log2(W)
        floats = cfg.has_float

        cmd = Signal(ActCmd)
        c = cmd         # the checks look at the registered command (CHECK state)
        # partition offsets narrowed to the lanes (legal commands have them < rows), so
        # the lane shifts below stay as wide as the data; at least one bit, so that a
        # one-row array has no zero-width signal (Verilog `[-1:0]`): its only legal
        # offset is 0, and the checks read the command's full-width fields
        src_p0 = Signal(range(max(R, cfg.cols, 2)))
        dst_p0 = Signal(range(max(R, 2)))
        m.d.comb += [src_p0.eq(cmd.src_p0), dst_p0.eq(cmd.dst_p0)]

        # ---- checks (on the registered command) -------------------------------------------
        des = Signal(3)     # destination element bytes
        with m.Switch(c.dst_type):
            with m.Case(ActType.INT8):
                m.d.comb += des.eq(1)
            with m.Case(ActType.BF16, ActType.FP16):
                m.d.comb += des.eq(2)
            with m.Default():
                m.d.comb += des.eq(4)
        # the verdicts of the registered command, one cycle later (CHECK2)
        chk = m.submodules.check = ActChecker(cfg)
        m.d.comb += chk.i_cmd.eq(c)
        code = chk.o_code

        # ---- control --------------------------------------------------------------------
        IDLE, CHECK, CHECK2, BIAS_REQ, BIAS_WAIT, RUN = ActState
        state = Signal(ActState, name="act_state")
        # n - 1, registered in CHECK: the element counters compare against it without a
        # subtraction in front of the compare
        n_m1 = Signal(len(cmd.n))
        # the destination element size, registered in CHECK: the packer's byte mask and
        # word-complete test read it from a flip-flop
        cmd_des = Signal(3)
        # cmd_des ones (1, 2 or 4 low bits set), registered with it: the packer's byte
        # mask is this shifted by the element's byte offset
        des_ones = Signal(W)
        start = Signal()
        done = Signal()
        m.d.comb += self.i_cmd.ready.eq(state == IDLE)
        with m.If(self.status.error_clear):
            m.d.sync += [self.status.error.eq(0), self.status.error_code.eq(ActError.NONE)]
        with m.Switch(state):
            with m.Case(IDLE):
                with m.If(self.i_cmd.valid):
                    m.d.sync += [cmd.eq(self.i_cmd.payload), state.eq(CHECK)]
            with m.Case(CHECK):         # the command is registered; verdicts next
                m.d.sync += [state.eq(CHECK2), n_m1.eq(cmd.n - 1), cmd_des.eq(des),
                             des_ones.eq((Const(1, W + 1) << des) - 1)]
            with m.Case(CHECK2):
                with m.If(code != ActError.NONE):
                    m.d.sync += state.eq(IDLE)
                    with m.If(~self.status.error & ~self.status.error_clear):
                        m.d.sync += [self.status.error.eq(1), self.status.error_code.eq(code)]
                with m.Else():
                    m.d.sync += state.eq(Mux(cmd.bias, BIAS_REQ, RUN))
                    m.d.comb += start.eq(~cmd.bias)
            with m.Case(BIAS_REQ):
                with m.If(self.sbuf_rd.req.ready):
                    m.d.sync += state.eq(BIAS_WAIT)
            with m.Case(BIAS_WAIT):
                with m.If(self.sbuf_rd.resp.valid):
                    m.d.sync += state.eq(RUN)
                    m.d.comb += start.eq(1)
            with m.Default():       # RUN
                with m.If(done):
                    m.d.sync += state.eq(IDLE)

        # ---- bias -----------------------------------------------------------------------
        bias = [Signal(32, name=f"bias{k}") for k in range(R)]
        bias_word = Signal(R * 32)
        for p in range(R):
            m.d.comb += bias_word[32 * p:32 * (p + 1)].eq(
                self.sbuf_rd.resp.payload[p].word_select(cmd.bias_off[2:lb], 32))
        bias_lanes = Signal(R * 32)
        m.d.comb += bias_lanes.eq(bias_word >> (dst_p0 * 32))
        with m.If(state == BIAS_WAIT):
            for k in range(R):
                m.d.sync += bias[k].eq(bias_lanes[32 * k:32 * (k + 1)])
        with m.If((state == CHECK2) & ~cmd.bias):
            m.d.sync += [b.eq(0) for b in bias]

        # ---- source reads -------------------------------------------------------------------
        req_i = Signal(17)
        reading = Signal()
        with m.If(start):
            m.d.sync += [reading.eq(1), req_i.eq(0)]
        src_idx = Signal(21)
        m.d.comb += src_idx.eq(cmd.src_off + req_i)
        ebits = max(0, exact_log2(cfg.psum_depth))
        m.d.comb += [
            self.psum_rd.req.valid.eq(reading & cmd.src_psum),
            self.psum_rd.req.payload.entry.eq(src_idx[:ebits] if ebits else 0),
            self.psum_rd.req.payload.bank.eq(src_idx[ebits:]),
            self.sbuf_rd.req.valid.eq((reading & ~cmd.src_psum) | (state == BIAS_REQ)),
            self.sbuf_rd.req.payload.addr.eq(Mux(state == BIAS_REQ, cmd.bias_off >> lb,
                                               (src_idx << 2) >> lb)),
        ]
        req_fire = Mux(cmd.src_psum, self.psum_rd.req.valid & self.psum_rd.req.ready,
                       self.sbuf_rd.req.valid & self.sbuf_rd.req.ready & (state == RUN))
        with m.If(req_fire & reading):
            m.d.sync += req_i.eq(req_i + 1)
            with m.If(req_i == n_m1):
                m.d.sync += reading.eq(0)

        # ---- take responses into the lanes (credit-limited) ----------------------------------
        LAT = self.lane_latency
        out_depth = 1
        while out_depth < LAT + 6:
            out_depth *= 2
        out_q = m.submodules.out_queue = SyncFIFOBuffered(width=32 * R, depth=out_depth)
        inflight = Signal(range(out_depth + 1))
        resp_i = Signal(17)
        resp_all = Signal()     # every response of the command taken
        taking = (state == RUN) & ~resp_all & (inflight < out_depth)
        resp_valid = Mux(cmd.src_psum, self.psum_rd.resp.valid, self.sbuf_rd.resp.valid)
        take = Signal()
        m.d.comb += [
            take.eq(taking & resp_valid),
            self.psum_rd.resp.ready.eq(taking & cmd.src_psum),
            self.sbuf_rd.resp.ready.eq((taking & ~cmd.src_psum) | (state == BIAS_WAIT)),
        ]
        with m.If(start):
            m.d.sync += [resp_i.eq(0), resp_all.eq(0)]
        with m.Elif(take):
            m.d.sync += resp_i.eq(resp_i + 1)
            with m.If(resp_i == n_m1):
                m.d.sync += resp_all.eq(1)
        pack_pop = Signal()
        m.d.sync += inflight.eq(inflight + take - pack_pop)

        # source element of every partition, then partitions src_p0.. onto lanes 0..
        resp_elem_byte = ((cmd.src_off + resp_i) << 2)[:lb]
        src_vec = Signal(max(R, cfg.cols) * 32)
        with m.If(cmd.src_psum):
            m.d.comb += src_vec.eq(self.psum_rd.resp.payload.as_value())
        with m.Else():
            m.d.comb += src_vec.eq(Cat(
                self.sbuf_rd.resp.payload[p].word_select(resp_elem_byte[2:], 32)
                for p in range(R)))
        lanes_in = Signal(R * 32)
        m.d.comb += lanes_in.eq(src_vec >> (src_p0 * 32))

        # ---- lanes ----------------------------------------------------------------------------
        x = [Signal(32, name=f"x{k}", reset_less=True) for k in range(R)]
        x_valid = Signal()
        m.d.sync += x_valid.eq(take)
        with m.If(take):
            m.d.sync += [x[k].eq(lanes_in[32 * k:32 * (k + 1)]) for k in range(R)]
        dt = cmd.dst_type
        results = []
        for k in range(R):
            # INT32: add bias (stage 1), then ReLU or requantise.
            acc = Signal(32, name=f"acc{k}", reset_less=True)
            m.d.sync += acc.eq(x[k] + bias[k])
            rq = m.submodules[f"requant{k}"] = Requantizer()
            m.d.comb += [
                rq.i_acc.eq(acc), rq.i_scale.eq(cmd.scale), rq.i_shift.eq(cmd.shift),
                rq.i_zp.eq(cmd.zp), rq.i_relu.eq(cmd.relu), rq.i_valid.eq(1),
            ]
            int32 = Signal(32, name=f"int32_{k}")
            m.d.comb += int32.eq(Mux(cmd.relu & acc[31], 0, acc))
            int_delay = LAT - 1 - Requantizer.LATENCY
            int8 = rq.o_res
            prev32 = int32
            for s in range(Requantizer.LATENCY):
                st = Signal(32, name=f"int32_{k}_d{s}", reset_less=True)
                m.d.sync += st.eq(prev32)
                prev32 = st
            for s in range(int_delay):
                st8 = Signal(8, name=f"int8_{k}_d{s}", reset_less=True)
                st32 = Signal(32, name=f"int32_{k}_e{s}", reset_less=True)
                m.d.sync += [st8.eq(int8), st32.eq(prev32)]
                int8, prev32 = st8, st32
            res = Signal(32, name=f"res{k}")
            m.d.comb += res.eq(Mux(dt == ActType.INT8, int8.as_unsigned(), prev32))
            if floats:
                # FP32: add bias (FP32Adder) or pass, ReLU, narrow.
                add = m.submodules[f"fp_add{k}"] = FP32Adder(subnormals=cfg.subnormals)
                m.d.comb += [add.i_a.eq(x[k]), add.i_b.eq(bias[k]), add.i_valid.eq(1)]
                xd = x[k]
                for s in range(FP_ADD_LATENCY):
                    st = Signal(32, name=f"x{k}_d{s}", reset_less=True)
                    m.d.sync += st.eq(xd)
                    xd = st
                summed = Mux(cmd.bias, add.o_sum, xd)
                nan = (summed[23:31] == 0xFF) & (summed[:23] != 0)
                relued = Signal(32, name=f"relu{k}", reset_less=True)
                m.d.sync += relued.eq(Mux(cmd.relu & summed[31] & ~nan, 0, summed))
                nar = m.submodules[f"narrow{k}"] = F32Narrow()
                m.d.comb += [nar.i_a.eq(relued), nar.i_fmt.eq(dt == ActType.FP16),
                             nar.i_valid.eq(1)]
                f32 = relued
                for s in range(F32Narrow.LATENCY):
                    st = Signal(32, name=f"f32_{k}_d{s}", reset_less=True)
                    m.d.sync += st.eq(f32)
                    f32 = st
                fres = Mux(dt == ActType.FP32, f32, nar.o_res)
                f_delay = LAT - (FP_ADD_LATENCY + 1 + F32Narrow.LATENCY)
                for s in range(f_delay):
                    st = Signal(32, name=f"fres{k}_d{s}", reset_less=True)
                    m.d.sync += st.eq(fres)
                    fres = st
                out = Signal(32, name=f"out{k}")
                m.d.comb += out.eq(Mux(cmd.src_fp, fres, res))
                results.append(out)
            else:
                results.append(res)
        valid = x_valid
        for s in range(LAT):
            st = Signal(name=f"lane_valid_d{s}")
            m.d.sync += st.eq(valid)
            valid = st
        # lane k's result belongs to partition dst_p0 + k: the partition shift is done
        # here, before the queue, so that the packer's cycle holds only the byte shift
        # and merge (with both shifts in one cycle, the packer was the vector engine's
        # critical path on the ECP5)
        lane_out = Signal(R * 32)
        m.d.comb += lane_out.eq(Cat(results) << (dst_p0 * 32))
        # results leave the lanes LAT cycles after x
        out_valid = Signal()
        m.d.comb += out_valid.eq(valid)
        m.d.comb += [out_q.w_en.eq(out_valid), out_q.w_data.eq(lane_out)]

        # ---- packer: elements -> SBUF words ---------------------------------------------------
        # The packer's writes leave through a register slice, so that SBUF's ready (its
        # write arbitration) does not reach the packer's decision in the same cycle
        # (with it, the packer was the vector engine's critical path on the ECP5).
        wq = m.submodules.write_slice = StreamSlice(sbuf_write_layout(cfg))
        wiring.connect(m, wq.o, wiring.flipped(self.sbuf_wr))
        pos = Signal(22)            # destination byte offset of the next element
        pk_i = Signal(17)
        pk_last = Signal()          # pk_i == n - 1 (kept as a flag, not compared)
        # the next element completes a word (it fills the word's last byte, or it is the
        # command's last element): a flag kept one element ahead, so that the pop
        # decision, which enables every byte of the word buffer, is one LUT deep
        completes = Signal()
        wbuf = Signal(R * 8 * W)
        wstrb = Signal(W)
        wr = wq.i
        # the next element's byte mask in its word, a register kept with pos (computed
        # from the next offset when pos moves): it enables every byte of the 512-bit word
        # buffer, and computed from pos in the same cycle it was the vector engine's
        # critical path on the ECP5
        emask = Signal(W)
        with m.If(start):
            m.d.sync += [pos.eq(cmd.dst_off), pk_i.eq(0), pk_last.eq(n_m1 == 0),
                         completes.eq((cmd.dst_off[:lb] + cmd_des == W) | (n_m1 == 0)),
                         emask.eq((des_ones << cmd.dst_off[:lb])[:W]),
                         wbuf.eq(0), wstrb.eq(0)]
        b = pos[:lb]
        new_strb = wstrb | emask
        new_buf = Signal(R * 8 * W)
        for k in range(R):
            e = out_q.r_data[32 * k:32 * (k + 1)]
            lane_bytes = Signal(8 * W, name=f"pack{k}")
            emask_bits = Cat(emask[i].replicate(8) for i in range(W))
            m.d.comb += lane_bytes.eq((wbuf[8 * W * k:8 * W * (k + 1)] & ~emask_bits)
                                      | ((e << (b * 8))[:8 * W] & emask_bits))
            m.d.comb += new_buf[8 * W * k:8 * W * (k + 1)].eq(lane_bytes)
        b_next = (b + cmd_des)[:lb]     # the next element's byte offset in its word
        out_free = ~wr.valid | wr.ready
        m.d.comb += pack_pop.eq(out_q.r_rdy & (state == RUN) & (~completes | out_free))
        m.d.comb += out_q.r_en.eq(pack_pop)
        pmask = (((Const(1, R + 1) << cmd.parts) - 1) << dst_p0)[:R]
        with m.If(pack_pop):
            m.d.sync += [pos.eq(pos + cmd_des), pk_i.eq(pk_i + 1),
                         pk_last.eq(pk_i + 1 == n_m1),
                         completes.eq((b_next + cmd_des == W) | (pk_i + 1 == n_m1)),
                         emask.eq((des_ones << b_next)[:W])]
            with m.If(completes):
                m.d.sync += [
                    wr.valid.eq(1),
                    wr.payload.addr.eq(pos >> lb),
                    wr.payload.pmask.eq(pmask),
                    wr.payload.strb.eq(new_strb),
                    wr.payload.data.eq(new_buf),
                    wbuf.eq(0), wstrb.eq(0),
                ]
            with m.Else():
                m.d.sync += [wbuf.eq(new_buf), wstrb.eq(new_strb)]
                with m.If(wr.ready):
                    m.d.sync += wr.valid.eq(0)
        with m.Elif(wr.ready):
            m.d.sync += wr.valid.eq(0)
        m.d.comb += done.eq((state == RUN) & ~reading & resp_all & (inflight == 0)
                            & ~wr.valid & ~wq.o.valid)

        # ---- status ---------------------------------------------------------------------------
        m.d.comb += self.o_busy.eq(state != IDLE)
        m.d.comb += self.status.done.eq((state == RUN) & done)
        with m.If(self.i_perf_clear):
            m.d.sync += self.o_busy_cycles.eq(0)
        with m.Elif(self.o_busy):
            m.d.sync += self.o_busy_cycles.eq(self.o_busy_cycles + 1)
        return m

