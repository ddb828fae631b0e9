"""The vector engine: PSUM/SBUF tiles -> bias, ReLU, casts, requantisation -> SBUF."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import enum, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .config import CoreConfig, FP_ADD_LATENCY, check_config
from .fifo import StreamSlice
from .formats import ActCmd, ActError, ActOp, ActType, SrcType, sbuf_write_layout
from .fp import FP32Adder, _leading_zeros
from .interfaces import (COUNTER_WIDTH, ConfigComponent, EngineStatus, psum_read_client,
                         sbuf_read_client, sbuf_write_client)
from .vector_units import F32Narrow, Requantizer

__all__ = ["ActChecker", "ActState", "VectorEngine"]


def src_bytes_log(m, src_type):
    """log2 of an operand element's bytes (:data:`hdl.formats.SRC_BYTES`): ACC 2,
    INT8 0, BF16/FP16 1."""
    es_log = Signal(2)
    with m.Switch(src_type):
        with m.Case(SrcType.ACC):
            m.d.comb += es_log.eq(2)
        with m.Case(SrcType.INT8):
            m.d.comb += es_log.eq(0)
        with m.Default():
            m.d.comb += es_log.eq(1)
    return es_log


def widen(m, raw, src_type, name, floats=True):
    """An operand element (``raw``: its bytes, zero-extended to 32 bits) as INT32 or
    FP32 bits: :func:`sim.model.casts.widen_bits` (exact; FP16 subnormals normalised).
    Without ``floats`` (an INT8-only core, which refuses float operands) only INT8 and
    ACC are widened."""
    out = Signal(32, name=f"{name}_wide")
    if not floats:
        m.d.comb += out.eq(Mux(src_type == SrcType.INT8, Cat(raw[:8], raw[7].replicate(24)),
                               raw))
        return out
    s = raw[15]
    e = raw[10:15]
    f = raw[:10]
    lz4, _ = _leading_zeros(f, 10)
    sub_frac = (f << (lz4 + 1))[:10]
    fp16 = Signal(32, name=f"{name}_fp16")
    with m.If(e == 0x1F):
        m.d.comb += fp16.eq(Cat(Const(0, 13), f, Const(0xFF, 8), s))
    with m.Elif(e == 0):
        with m.If(f == 0):
            m.d.comb += fp16.eq(Cat(Const(0, 31), s))
        with m.Else():
            m.d.comb += fp16.eq(Cat(Const(0, 13), sub_frac, (112 - lz4)[:8], s))
    with m.Else():
        m.d.comb += fp16.eq(Cat(Const(0, 13), f, (e + 112)[:8], s))
    with m.Switch(src_type):
        with m.Case(SrcType.ACC):
            m.d.comb += out.eq(raw)
        with m.Case(SrcType.INT8):
            m.d.comb += out.eq(raw[:8].as_signed())
        with m.Case(SrcType.BF16):
            m.d.comb += out.eq(Cat(Const(0, 16), raw[:16]))
        with m.Default():
            m.d.comb += out.eq(fp16)
    return out


def _operand_walk(m, cmd, two, n_m1, start, advance, finished, name):
    """The walk over a command's operand elements, one step per read (``advance``): the
    element count, each operand's next element index (``src_off``/``src2_off`` plus
    the steps ``skip + 1``) and the phase (1: the second operand's read is next, for ADD
    and MAX). The request side and the response side each keep one, so the responses
    know their bytes without a queue. ``finished`` (a statement) runs with the last
    element's last read. Returns ``(p1, p2, phase)``."""
    i = Signal(17, name=f"{name}_i")
    p1 = Signal(21, name=f"{name}_p1")
    p2 = Signal(21, name=f"{name}_p2")
    ph = Signal(name=f"{name}_ph")
    with m.If(start):
        m.d.sync += [i.eq(0), p1.eq(cmd.src_off), p2.eq(cmd.src2_off), ph.eq(0)]
    with m.Elif(advance):
        with m.If(two & ~ph):
            m.d.sync += ph.eq(1)
        with m.Else():
            m.d.sync += [i.eq(i + 1), ph.eq(0), p1.eq(p1 + cmd.src_skip + 1),
                         p2.eq(p2 + cmd.src2_skip + 1)]
            with m.If(i == n_m1):
                m.d.sync += finished
    return p1, p2, ph


def f32_key(bits):
    """FP32 bits -> a signed 33-bit value in numeric order (``-0 == +0``)."""
    mag = bits[:31].as_unsigned()
    return Mux(bits[31], -mag, mag)


def f32_nan(bits):
    return (bits[23:31] == 0xFF) & (bits[:23] != 0)


class ActChecker(ConfigComponent):
    """The refusal checks of an :class:`~hdl.formats.ActCmd`, in :class:`ActError`
    order (TYPES, PARTS, SRC_RANGE, DST_RANGE, BIAS_RANGE, OVERLAP, OP; the golden
    model is ``sim.model.vector.check``).

    Contract: ``o_code`` is the first failing check of the command that was on
    ``i_cmd`` ``LATENCY`` = 2 cycles before (``NONE`` if it runs; the command is held
    that long). The operands' strided spans (``off + (n-1) * (skip+1) + 1``, a multiply)
    are registered first; the compares use them a cycle later, each check's verdict is
    registered, and the priority choice is made after that register: multiply, compares
    and choice are in different cycles (span and compares in one cycle made the vector
    engine 47 MHz on the ECP5).

    Members
    -------
    i_cmd : In(ActCmd)
    o_code : Out(ActError)
    """

    LATENCY = 2

    i_cmd: In(ActCmd)
    o_code: Out(ActError)

    def __init__(self, config: CoreConfig):
        super().__init__(config)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        R = cfg.rows
        floats = cfg.has_float
        # stage 1: the command registered, with each operand's span end
        c = Signal(ActCmd)
        m.d.sync += c.eq(self.i_cmd)
        ci = self.i_cmd
        n_m1_in = (ci.n - 1)[:len(ci.n)]     # wraps for n == 0, which fails SRC_RANGE anyway
        ends = []
        for off, skip in ((ci.src_off, ci.src_skip), (ci.src2_off, ci.src2_skip)):
            end = Signal(23, name=f"span_end{len(ends)}")
            m.d.sync += end.eq(off + n_m1_in * (skip + 1) + 1)
            ends.append(end)
        # stage 2: the checks on the registered command
        des = Signal(3)     # destination element bytes
        des_log = Signal(2)
        with m.Switch(c.dst_type):
            with m.Case(ActType.INT8):
                m.d.comb += [des.eq(1), des_log.eq(0)]
            with m.Case(ActType.BF16, ActType.FP16):
                m.d.comb += [des.eq(2), des_log.eq(1)]
            with m.Default():
                m.d.comb += [des.eq(4), des_log.eq(2)]
        es_log = src_bytes_log(m, c.src_type)
        dst_float = ((c.dst_type == ActType.FP32) | (c.dst_type == ActType.BF16)
                     | (c.dst_type == ActType.FP16))
        dst_int = (c.dst_type == ActType.INT32) | (c.dst_type == ActType.INT8)
        narrow_bad = (c.src_type != SrcType.ACC) & (
            c.src_psum | (c.src_fp != (c.src_type != SrcType.INT8)))
        two = c.op != ActOp.COPY
        src_parts = Mux(c.src_psum, cfg.cols, R)
        src_elems = Mux(c.src_psum, cfg.psum_entries, cfg.sbuf_bytes >> es_log)
        dst_end = Signal(40)
        m.d.comb += dst_end.eq(c.dst_off + (c.n << des_log))
        parts_overlap = (c.src_p0 < c.dst_p0 + c.parts) & (c.dst_p0 < c.src_p0 + c.parts)
        range_bad = []
        overlap_bad = []
        for (off, skip), end in zip(((c.src_off, c.src_skip), (c.src2_off, c.src2_skip)),
                                    ends):
            # the operand's span [off, end), in elements and in bytes
            lo_b = off << es_log
            hi_b = end << es_log
            range_bad.append(end > src_elems)
            bytes_overlap = (lo_b < dst_end) & (c.dst_off < hi_b)
            # exactly in place: the writes never run ahead of the reads
            in_place = ((c.src_p0 == c.dst_p0) & (c.dst_off == lo_b)
                        & (des <= ((skip + 1) << es_log)))
            overlap_bad.append(bytes_overlap & ~in_place)
        fail = Signal(7)
        m.d.sync += fail.eq(Cat(
            Mux(c.src_fp, ~dst_float | (not floats), ~dst_int) | narrow_bad,
            (c.parts == 0) | (c.src_p0 + c.parts > src_parts) | (c.dst_p0 + c.parts > R),
            (c.n == 0) | range_bad[0] | (two & range_bad[1]),
            ((c.dst_off & (des - 1)) != 0) | (dst_end > cfg.sbuf_bytes),
            c.bias & ((c.bias_off[:2] != 0) | (c.bias_off + 4 > cfg.sbuf_bytes)),
            ~c.src_psum & parts_overlap & (overlap_bad[0] | (two & overlap_bad[1])),
            (c.op.as_value() == 3) | (c.src_fp & (c.op == ActOp.ADD) & c.bias),
        ))
        for i, err in reversed(list(enumerate((
                ActError.TYPES, ActError.PARTS, ActError.SRC_RANGE, ActError.DST_RANGE,
                ActError.BIAS_RANGE, ActError.OVERLAP, ActError.OP)))):
            with m.If(fail[i]):
                m.d.comb += self.o_code.eq(err)
        return m


class ActState(enum.Enum, shape=3):
    """The vector engine's control state (an enum so that waveforms show it by name,
    ``sim/flow/waves.py``): IDLE takes a command; CHECK registers it, SPANS waits for
    the checker's first stage, and CHECK2 has the
    checks' verdict; BIAS_REQ/BIAS_WAIT read the bias row; RUN streams the rows."""
    IDLE = 0
    CHECK = 1
    CHECK2 = 2
    SPANS = 6
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

    #: Cycles from an element's operands entering the lanes (x) to the INT result:
    #: widen (pre), MAX (op), bias add, requantise.
    INT_LATENCY = 3 + Requantizer.LATENCY
    #: ... to the FP result: pre, op, the adder, ReLU, clip, narrow.
    FP_LATENCY = 2 + FP_ADD_LATENCY + 2 + F32Narrow.LATENCY

    @property
    def lane_latency(self):
        """Cycles from a source element entering the lanes to its result."""
        if self._config.has_float:
            return max(self.FP_LATENCY, self.INT_LATENCY)
        return self.INT_LATENCY

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
        # the verdicts of the registered command, ActChecker.LATENCY cycles later (CHECK2)
        chk = m.submodules.check = ActChecker(cfg)
        m.d.comb += chk.i_cmd.eq(c)
        code = chk.o_code

        # ---- control --------------------------------------------------------------------
        IDLE, CHECK, CHECK2, BIAS_REQ, BIAS_WAIT, RUN, SPANS = ActState
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
        # log2 of the operand element's bytes, and whether a second operand is read
        es_log = Signal(2)
        es_log_c = src_bytes_log(m, cmd.src_type)
        two = Signal()
        start = Signal()
        done = Signal()
        m.d.comb += self.i_cmd.ready.eq(state == IDLE)
        with m.If(self.status.error_clear):
            m.d.sync += [self.status.error.eq(0), self.status.error_code.eq(ActError.NONE)]
        with m.Switch(state):
            with m.Case(IDLE):
                with m.If(self.i_cmd.valid):
                    m.d.sync += [cmd.eq(self.i_cmd.payload), state.eq(CHECK)]
            with m.Case(CHECK):         # the command is registered; the checker's spans next
                m.d.sync += [state.eq(SPANS), n_m1.eq(cmd.n - 1), cmd_des.eq(des),
                             des_ones.eq((Const(1, W + 1) << des) - 1),
                             es_log.eq(es_log_c), two.eq(cmd.op != ActOp.COPY)]
            with m.Case(SPANS):         # the checker's spans are registered; verdicts next
                m.d.sync += state.eq(CHECK2)
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
        # Each element is one read (COPY) or two (ADD, MAX: the first operand, then the
        # second); rq_p1/rq_p2 are the operands' next element indices, rq_ph the phase.
        reading = Signal()
        req_fire = Signal()
        with m.If(start):
            m.d.sync += reading.eq(1)
        rq_p1, rq_p2, rq_ph = _operand_walk(m, cmd, two, n_m1, start, req_fire & reading,
                                            reading.eq(0), "req")
        src_idx = Signal(21)
        m.d.comb += src_idx.eq(Mux(rq_ph, rq_p2, rq_p1))
        src_byte = src_idx << es_log
        ebits = max(0, exact_log2(cfg.psum_depth))
        m.d.comb += [
            self.psum_rd.req.valid.eq(reading & cmd.src_psum),
            self.psum_rd.req.payload.entry.eq(src_idx[:ebits] if ebits else 0),
            self.psum_rd.req.payload.bank.eq(src_idx[ebits:]),
            self.sbuf_rd.req.valid.eq((reading & ~cmd.src_psum) | (state == BIAS_REQ)),
            self.sbuf_rd.req.payload.addr.eq(Mux(state == BIAS_REQ, cmd.bias_off >> lb,
                                               src_byte >> lb)),
        ]
        m.d.comb += req_fire.eq(Mux(
            cmd.src_psum, self.psum_rd.req.valid & self.psum_rd.req.ready,
            self.sbuf_rd.req.valid & self.sbuf_rd.req.ready & (state == RUN)))

        # ---- take responses into the lanes (credit-limited) ----------------------------------
        LAT = self.lane_latency
        out_depth = 1
        while out_depth < LAT + 6:
            out_depth *= 2
        out_q = m.submodules.out_queue = SyncFIFOBuffered(width=32 * R, depth=out_depth)
        inflight = Signal(range(out_depth + 1))
        resp_all = Signal()     # every response of the command taken
        taking = (state == RUN) & ~resp_all & (inflight < out_depth)
        resp_valid = Mux(cmd.src_psum, self.psum_rd.resp.valid, self.sbuf_rd.resp.valid)
        take_any = Signal()     # a response taken (either operand)
        take = Signal()         # an element complete: it enters the lanes
        with m.If(start):
            m.d.sync += resp_all.eq(0)
        rs_p1, rs_p2, rs_ph = _operand_walk(m, cmd, two, n_m1, start, take_any,
                                            resp_all.eq(1), "resp")
        m.d.comb += [
            take_any.eq(taking & resp_valid),
            take.eq(take_any & (~two | rs_ph)),
            self.psum_rd.resp.ready.eq(taking & cmd.src_psum),
            self.sbuf_rd.resp.ready.eq((taking & ~cmd.src_psum) | (state == BIAS_WAIT)),
        ]
        pack_pop = Signal()
        m.d.sync += inflight.eq(inflight + take - pack_pop)

        # source element of every partition (zero-extended to 32 bits), then partitions
        # src_p0.. onto lanes 0..
        resp_byte = (Mux(rs_ph, rs_p2, rs_p1) << es_log)[:lb]
        src_vec = Signal(max(R, cfg.cols) * 32)
        with m.If(cmd.src_psum):
            m.d.comb += src_vec.eq(self.psum_rd.resp.payload.as_value())
        with m.Else():
            elems = []
            for p in range(R):
                word = self.sbuf_rd.resp.payload[p]
                e = Signal(32, name=f"elem{p}")
                with m.Switch(es_log):
                    with m.Case(2):
                        m.d.comb += e.eq(word.word_select(resp_byte[2:], 32))
                    with m.Case(1):
                        m.d.comb += e.eq(word.word_select(resp_byte[1:], 16))
                    with m.Default():
                        m.d.comb += e.eq(word.word_select(resp_byte, 8))
                elems.append(e)
            m.d.comb += src_vec.eq(Cat(elems))
        lanes_in = Signal(R * 32)
        m.d.comb += lanes_in.eq(src_vec >> (src_p0 * 32))

        # ---- lanes ----------------------------------------------------------------------------
        # x1, x2: the element's operands (raw); stage "pre" widens them and subtracts the
        # zero points (u1, u2); stage "op" applies MAX and picks the adder's second
        # operand (v1, v2); then the INT and FP datapaths.
        x1 = [Signal(32, name=f"x{k}", reset_less=True) for k in range(R)]
        x2 = [Signal(32, name=f"x2_{k}", reset_less=True) for k in range(R)]
        hold = [Signal(32, name=f"hold{k}", reset_less=True) for k in range(R)]
        x_valid = Signal()
        m.d.sync += x_valid.eq(take)
        with m.If(take_any & two & ~rs_ph):
            m.d.sync += [hold[k].eq(lanes_in[32 * k:32 * (k + 1)]) for k in range(R)]
        with m.If(take):
            m.d.sync += [x1[k].eq(Mux(two, hold[k], lanes_in[32 * k:32 * (k + 1)]))
                         for k in range(R)]
            m.d.sync += [x2[k].eq(lanes_in[32 * k:32 * (k + 1)]) for k in range(R)]
        dt = cmd.dst_type
        is_add = cmd.op == ActOp.ADD
        is_max = cmd.op == ActOp.MAX
        hi_f32 = Cat(Const(0, 16), cmd.hi)      # clip bound of a float result
        hi_i32 = Cat(cmd.hi, cmd.hi[15].replicate(16))     # of an INT32 result
        results = []
        for k in range(R):
            u1 = Signal(32, name=f"u1_{k}", reset_less=True)
            u2 = Signal(32, name=f"u2_{k}", reset_less=True)
            w1 = widen(m, x1[k], cmd.src_type, f"w1_{k}", floats)
            w2 = widen(m, x2[k], cmd.src_type, f"w2_{k}", floats)
            m.d.sync += [u1.eq(Mux(cmd.src_fp, w1, w1 - cmd.zp1)),
                         u2.eq(Mux(cmd.src_fp, w2, w2 - cmd.zp2))]
            if floats:
                # v1, v2 are the FP32 adder's operand registers themselves (named
                # registers feeding only the adder's ports come out of Amaranth as
                # unused aliases of those ports)
                add = m.submodules[f"fp_add{k}"] = FP32Adder(subnormals=cfg.subnormals)
                v1, v2 = add.i_a, add.i_b
            else:
                v1 = Signal(32, name=f"v1_{k}", reset_less=True)
                v2 = Signal(32, name=f"v2_{k}", reset_less=True)
            if floats:
                f_take2 = ~f32_nan(u1) & (f32_nan(u2) | (f32_key(u2) > f32_key(u1)))
                fmax = Mux(is_max & f_take2, u2, u1)
            else:
                fmax = u1
            i_take2 = is_max & (u2.as_signed() > u1.as_signed())
            imax = Mux(i_take2, u2, u1)
            m.d.sync += [v1.eq(Mux(cmd.src_fp, fmax, imax)),
                         v2.eq(Mux(cmd.src_fp & ~is_add, bias[k], u2))]
            # INT32: add bias (and for ADD to INT32 the second operand), then ReLU and
            # clip, or requantise (ADD: the second operand with its own multiplier).
            acc = Signal(32, name=f"acc{k}", reset_less=True)
            acc2 = Signal(32, name=f"acc2_{k}", reset_less=True)
            m.d.sync += [acc.eq(v1 + bias[k] + Mux(is_add & (dt == ActType.INT32), v2, 0)),
                         acc2.eq(v2)]
            rq = m.submodules[f"requant{k}"] = Requantizer()
            m.d.comb += [
                rq.i_acc.eq(acc), rq.i_scale.eq(cmd.scale),
                rq.i_acc2.eq(Mux(is_add, acc2, 0)), rq.i_scale2.eq(cmd.scale2),
                rq.i_shift.eq(cmd.shift), rq.i_zp.eq(cmd.zp), rq.i_relu.eq(cmd.relu),
                rq.i_hi.eq(Mux(cmd.clip, cmd.hi[:8].as_signed(), 127)), rq.i_valid.eq(1),
            ]
            int32 = Signal(32, name=f"int32_{k}")
            relu32 = Mux(cmd.relu & acc[31], 0, acc)
            m.d.comb += int32.eq(Mux(cmd.clip & (relu32.as_signed() > cmd.hi.as_signed()),
                                     hi_i32, relu32))
            int_delay = LAT - self.INT_LATENCY
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
                # FP32: add bias or the second operand (FP32Adder) or pass, ReLU, clip,
                # narrow.
                m.d.comb += add.i_valid.eq(1)
                xd = v1
                for s in range(FP_ADD_LATENCY):
                    st = Signal(32, name=f"x{k}_d{s}", reset_less=True)
                    m.d.sync += st.eq(xd)
                    xd = st
                summed = Mux(cmd.bias | is_add, add.o_sum, xd)
                nan = f32_nan(summed)
                relued = Signal(32, name=f"relu{k}", reset_less=True)
                m.d.sync += relued.eq(Mux(cmd.relu & summed[31] & ~nan, 0, summed))
                over = (cmd.clip & ~f32_nan(relued) & ~f32_nan(hi_f32)
                        & (f32_key(relued) > f32_key(hi_f32)))
                nar = m.submodules[f"narrow{k}"] = F32Narrow()
                clipped = nar.i_a           # the clip's register is the narrower's input
                m.d.sync += clipped.eq(Mux(over, hi_f32, relued))
                m.d.comb += [nar.i_fmt.eq(dt == ActType.FP16), nar.i_valid.eq(1)]
                f32 = clipped
                for s in range(F32Narrow.LATENCY):
                    st = Signal(32, name=f"f32_{k}_d{s}", reset_less=True)
                    m.d.sync += st.eq(f32)
                    f32 = st
                fres = Mux(dt == ActType.FP32, f32, nar.o_res)
                f_delay = LAT - self.FP_LATENCY
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

