"""The DMA engine: 2-D strided tiles between DRAM (AXI4) and SBUF/PSUM."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from .config import CoreConfig, check_config, check_int_range
from .fifo import StreamSlice
from .formats import DmaDesc, DmaError, _bits_for, dma_done_layout
from .chipmap import PeerAperture
from .isa import CORE_BITS
from .interfaces import (CORES_BITS, ConfigComponent, WINDOW_BITS, axi_signature, psum_read_client, sbuf_read_client,
                         sbuf_write_client)

__all__ = ["Realigner", "DmaState", "DMAEngine"]

#: Bits of the byte counts inside one row (a row is at most 1 MiB).
LEN_BITS = 21
#: Bits of word and beat counts within a row.
COUNT_BITS = 22


class Realigner(wiring.Component):
    """Moves one row of bytes from one word alignment to another.

    For each row on ``i_row`` (``in_off``: byte offset of the row's first byte in its
    first input word; ``out_off``: the same for the output; ``length`` bytes), the
    realigner takes ``ceil((in_off + length) / B)`` words on ``i`` and emits
    ``ceil((out_off + length) / B)`` words on ``o``, with ``strb`` marking the row's bytes
    (``B`` = ``nbytes``). Output word ``j`` is bytes ``[j*B - out_off, (j+1)*B - out_off)``
    of the row, cut from two consecutive input words by one byte shift. ``err`` on an
    output word is set if any input word of the row so far had ``err``; ``last`` marks
    the row's final output word. One word per cycle in each direction, plus at most
    one extra cycle per row (one input word read ahead when the output needs bytes from
    two input words): the next row is set up in the last step of the previous one
    when it is already offered, so rows follow each other without a bubble (an idle
    realigner takes one cycle to set up a row).

    Members
    -------
    i_row : In(stream.Signature({in_off, out_off, length}))
    i : In(stream.Signature({data: 8*B, err: 1}))
    o : Out(stream.Signature({data: 8*B, strb: B, err: 1, last: 1}))
    """

    def __init__(self, nbytes):
        self._B = nbytes
        lb = exact_log2(nbytes)
        super().__init__({
            "i_row": In(stream.Signature(data.StructLayout({
                "in_off": max(lb, 1), "out_off": max(lb, 1), "length": LEN_BITS}))),
            "i": In(stream.Signature(data.StructLayout({"data": 8 * nbytes, "err": 1}))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": 8 * nbytes, "strb": nbytes, "err": 1, "last": 1}))),
        })

    def elaborate(self, platform):
        m = Module()
        B = self._B
        lb = exact_log2(B)
        row = self.i_row.payload

        active = Signal()
        t = Signal(COUNT_BITS)          # step: input word t, output word t - lag
        lag = Signal()                  # output word j needs input word j + lag
        k = Signal(range(B + 1))        # byte shift into Cat(prev, cur)
        first_strb = Signal(B)
        last_strb = Signal(B)
        prev = Signal(8 * B)
        err = Signal()

        # ---- steps ------------------------------------------------------------------
        # Where step t stands is kept in flags, each set a step ahead from an equality
        # compare against a register (or from other flags), so that the handshake and
        # the step enable (which reaches every bit of prev and t) read flip-flops; with
        # the magnitude compares of t in front of the handshake, this was the DMA
        # engine's critical path on the ECP5. A row has at least one byte (the DMA
        # engine rejects descriptors with row_bytes == 0), so every row has an input
        # and an output word.
        need_in = Signal()      # t < n_in
        last_in = Signal()      # t == n_in - 1
        need_out = Signal()     # t_first <= t <= t_last
        at_first = Signal()     # t == t_first
        at_last = Signal()      # t == t_last: the row's last step
        t0 = Signal()           # t == 0
        n_in_m2 = Signal(COUNT_BITS)        # the steps before last_in and at_last
        t_last_m1 = Signal(COUNT_BITS)
        in_ok = ~need_in | self.i.valid
        out_ok = ~need_out | self.o.ready
        fire = Signal()
        m.d.comb += fire.eq(active & in_ok & out_ok)
        cur = Signal(8 * B)
        m.d.comb += cur.eq(Mux(need_in, self.i.payload.data, 0))
        window = Signal(16 * B)
        m.d.comb += window.eq(Cat(prev, cur) >> (k * 8))
        all_b = Const((1 << B) - 1, B)
        m.d.comb += [
            self.i.ready.eq(active & need_in & out_ok),
            self.o.valid.eq(active & need_out & in_ok),
            self.o.payload.data.eq(window[:8 * B]),
            self.o.payload.strb.eq(Mux(at_first, first_strb, all_b)
                                   & Mux(at_last, last_strb, all_b)),
            self.o.payload.err.eq(err | (need_in & self.i.payload.err)),
            self.o.payload.last.eq(at_last),
        ]
        with m.If(fire):
            m.d.sync += [
                prev.eq(cur), t.eq(t + 1), t0.eq(0),
                need_in.eq(need_in & ~last_in),
                last_in.eq(t == n_in_m2),
                need_out.eq(~at_last & (need_out | t0)),
                at_first.eq(t0 & lag),
                at_last.eq(t == t_last_m1),
            ]
            with m.If(need_in & self.i.payload.err):
                m.d.sync += err.eq(1)
            with m.If(at_last):
                m.d.sync += active.eq(0)

        # ---- row setup: when idle, or in the row's last step (no bubble between rows);
        # after the steps, so that its assignments win in that cycle ------------------
        # With n_in = ceil((in_off + length) / B) input words and n_out = ceil((out_off +
        # length) / B) output words, the last output word is at step t_last = n_out - 1 +
        # lag, and that is also the row's last step: if lag (in_off > out_off), n_in is
        # n_out or n_out + 1, so n_in - 1 <= t_last; else n_in <= n_out. The registers
        # hold n_in - 2 and t_last - 1 (one step ahead of the flags), each computed with
        # one adder as floor((x - (2B - (B - 1))) / B) instead of an adder, a shift and
        # a subtraction: the setup is in the step enable's cycle, and it was the DMA
        # engine's critical path (after the step compares).
        m.d.comb += self.i_row.ready.eq(~active | (fire & at_last))
        with m.If(self.i_row.valid & self.i_row.ready):
            d_pos = row.in_off > row.out_off
            n_in_m2_v = Signal(signed(COUNT_BITS + 1))
            t_last_m1_v = Signal(signed(COUNT_BITS + 1))
            m.d.comb += [
                n_in_m2_v.eq((row.in_off + row.length - (B + 1)) >> lb),
                t_last_m1_v.eq((row.out_off + row.length + Mux(d_pos, -1, -(B + 1))) >> lb),
            ]
            end = (row.out_off + row.length + (B - 1))[:lb] + 1   # 1..B
            m.d.sync += [
                active.eq(1), t.eq(0), t0.eq(1), err.eq(0),
                lag.eq(d_pos),
                need_in.eq(1),
                last_in.eq(n_in_m2_v == -1),
                n_in_m2.eq(n_in_m2_v),
                need_out.eq(~d_pos),
                at_first.eq(~d_pos),
                at_last.eq(t_last_m1_v == -1),
                t_last_m1.eq(t_last_m1_v),
                k.eq(Mux(d_pos, row.in_off - row.out_off, B - (row.out_off - row.in_off))),
                first_strb.eq((Const((1 << B) - 1, B) << row.out_off)[:B]),
                last_strb.eq((Const(1, B + 1) << end) - 1),
            ]
        return m


class _BurstGen:
    """Splits the rows of a descriptor into AXI INCR bursts (AR or AW).

    A burst starts at a bus-aligned address, is at most ``dma_max_burst`` beats and
    never crosses a 4 KiB boundary. ``start`` (one cycle) begins ``desc``, which must
    hold still until ``busy`` falls; with ``track_last``, ``last`` marks the
    descriptor's last burst while it is on the channel. Used by :class:`DMAEngine`'s issue stage for both channels.

    Each burst's length (the minimum of what is left of the row, the burst limit and
    the distance to the 4 KiB boundary) is computed and registered in the cycle
    before the burst is offered, with whether it ends the row: the two compares and
    the two multiplexers then no longer sit in front of the address, count and row
    updates (in one cycle they were the DMA engine's critical path on the ECP5). So a
    row takes a setup cycle, then a burst at most every second cycle: a burst of two
    beats or more keeps the data channel as busy as before.
    """

    def __init__(self, m, cfg, name, desc, start, axi, ch, may_issue, track_last=False):
        B = cfg.axi_data_bytes
        lb = exact_log2(B)
        row = Signal(9, name=f"{name}_row")
        row_addr = Signal(64, name=f"{name}_row_addr")
        addr = Signal(64, name=f"{name}_addr")
        left = Signal(COUNT_BITS, name=f"{name}_left")
        setup = Signal(name=f"{name}_setup")
        self.busy = busy = Signal(name=f"{name}_busy")
        have_len = Signal(name=f"{name}_have_len")   # n_q, row_end hold the next burst's
        n_q = Signal(9, name=f"{name}_len_q")
        row_end = Signal(name=f"{name}_row_end")
        with m.If(start):
            m.d.sync += [busy.eq(1), setup.eq(1), row.eq(0), row_addr.eq(desc.addr),
                         have_len.eq(0)]
        with m.Elif(busy & setup):
            m.d.sync += [
                addr.eq(row_addr & ~(B - 1)),
                left.eq((row_addr[:lb] + desc.row_bytes + (B - 1)) >> lb),
                setup.eq(0),
            ]
        to4k = Signal(range(4096 // B + 1), name=f"{name}_to4k")
        m.d.comb += to4k.eq((4096 - addr[:12]) >> lb)
        n1 = Signal(9, name=f"{name}_len_row")
        n = Signal(9, name=f"{name}_len")
        m.d.comb += [
            n1.eq(Mux(left < cfg.dma_max_burst, left, cfg.dma_max_burst)),
            n.eq(Mux(to4k < n1, to4k, n1)),
        ]
        with m.If(busy & ~setup & ~have_len):
            m.d.sync += [n_q.eq(n), row_end.eq(left == n), have_len.eq(1)]
        valid = busy & ~setup & have_len & (left != 0) & may_issue
        m.d.comb += [
            getattr(axi, f"{ch}valid").eq(valid),
            getattr(axi, f"{ch}addr").eq(addr),
            getattr(axi, f"{ch}len").eq(n_q - 1),
            getattr(axi, f"{ch}size").eq(lb),
            getattr(axi, f"{ch}burst").eq(1),          # INCR
            getattr(axi, f"{ch}cache").eq(0b0011),     # normal, non-cacheable, bufferable
            getattr(axi, f"{ch}id").eq(0),
        ]
        self.fire = Signal(name=f"{name}_fire")
        self.len = n_q
        m.d.comb += self.fire.eq(valid & getattr(axi, f"{ch}ready"))
        if track_last:      # only the write side needs it (for the B responses)
            self.last = Signal(name=f"{name}_last")
            m.d.comb += self.last.eq(row_end & (row == desc.rows - 1))
        with m.If(self.fire):
            m.d.sync += [addr.eq(addr + (n_q << lb)), left.eq(left - n_q), have_len.eq(0)]
            with m.If(row_end):
                m.d.sync += [row.eq(row + 1), row_addr.eq(row_addr + desc.row_stride),
                             setup.eq(1)]
                with m.If(row == desc.rows - 1):
                    m.d.sync += busy.eq(0)


class DmaState(enum.Enum, shape=3):
    """The DMA engine's check stage (an enum so that waveforms show it by name,
    ``sim/flow/waves.py``): IDLE takes a descriptor from the queue; CHECK1..3 compute
    and check its extent (one step a cycle); PASS hands it, with its code, to the
    issue, data and completion stages (and waits there while they are full)."""
    IDLE = 0
    CHECK1 = 1
    CHECK2 = 2
    CHECK3 = 3
    PASS = 4


#: What the check stage hands to the issue and data stages: the descriptor and its code.
_checked_layout = data.StructLayout({"desc": DmaDesc, "code": DmaError})
#: What it hands to the completion stage.
_retire_layout = data.StructLayout({"tag": 8, "code": DmaError, "wait_b": 1})


class DMAEngine(ConfigComponent):
    """AXI4 DMA between DRAM and the on-chip memories, descriptors overlapped.

    A descriptor goes through four stages, each working on one descriptor at a time
    and all of them at once on consecutive descriptors, so the DRAM latency is exposed
    once per run of queued descriptors rather than once per descriptor:

    1. **check** (three cycles): ``TARGET``, then ``RANGE``, then ``PEER`` or ``WINDOW``
       (:class:`~hdl.formats.DmaError`). A refused descriptor moves nothing; it goes
       through the other stages as an empty one and completes, in its turn, with its
       code.
    2. **issue**: the descriptor's read (load) or write (store) bursts (INCR, at most
       ``dma_max_burst`` beats, never across 4 KiB). At most ``dma_outstanding`` read
       bursts await their last beat and at most ``dma_outstanding`` write bursts their
       B response, counted across descriptors: the issue stage starts descriptor
       ``n+1``'s bursts as soon as ``n``'s are all issued, while ``n``'s data is still
       arriving (load) or leaving (store).
    3. **data**: a :class:`Realigner` re-packs each row between the DRAM and on-chip
       alignments. A **load** writes each word to partition ``partition + r`` with byte
       strobes, so bytes outside the tile never change; after a beat with an error
       response (SLVERR/DECERR) the rest of the descriptor is read but not written.
       A **store** reads the row's words from SBUF or PSUM (PSUM: ``B/4`` entries a
       word) and sends them as W beats, only for bursts whose AW was accepted.
    4. **completion**, in order: a load completes when its last word is written, a
       store when its last B response is in (a B error is reported; the writes go on,
       so the bus transactions stay complete).

    Each descriptor completes exactly once on ``o_done``, in order, with its ``tag``
    and the first error met. The R and B responses of one ID come back in order, so
    every beat belongs to the descriptor the data (or completion) stage holds: an
    error in descriptor ``n`` cannot reach ``n+1``. Ordering against memory: a load's
    bursts wait until every earlier store of this engine has completed (a load after
    a store to the same DRAM bytes reads what the store wrote); a store's on-chip
    reads come after an earlier load's on-chip writes (the data stage is in order,
    and SBUF returns data written in the same cycle as the read or before). The DRAM
    window ``[i_win_base, i_win_limit)`` bounds every byte a descriptor may touch.

    Members
    -------
    i_desc : In(stream.Signature(DmaDesc))
        Descriptors, through a queue of ``queue_depth`` entries (a controller can post
        several and go on).
    o_done : Out(stream.Signature(dma_done_layout()))
    m_axi : Out(AXI4Signature)
    i_win_base, i_win_limit : In(WINDOW_BITS)
    i_cores : In(CORES_BITS)
        Only with ``chip=True``: the chip's core count (a chip of ``i_cores`` cores; 0
        switches the aperture off). On a chip the top half of the
        address space is the peer aperture (:class:`~hdl.chipmap.PeerAperture`): a
        descriptor there must be a store into an existing core's SBUF with rows
        ``stride`` apart, else ``PEER``; a DRAM tile must end below it, else
        ``WINDOW``. A peer store's bursts go out on ``m_axi`` like any store (the
        chip's interconnect routes them), so it completes when its last B is in.
    sbuf_wr : Out(sbuf_write_client(config))   loads
    sbuf_rd : Out(sbuf_read_client(config))    stores from SBUF
    psum_rd : Out(psum_read_client(config))    stores from PSUM
    o_busy : Out(1)
        A descriptor is queued, being checked, moved or completed.
    """

    #: Descriptors between the check stage and completion, at most (the data stage's
    #: queue; more would only let the issue stage run further ahead of the data).
    IN_FLIGHT = 4

    def __init__(self, config: CoreConfig, *, queue_depth=4, chip=False):
        check_config(config)
        check_int_range("queue_depth", queue_depth, 4, 64)
        self._queue_depth = queue_depth
        self._chip = bool(chip)
        if chip:
            PeerAperture(config)        # ValueError if the address leaves no room for it
        super().__init__(config, {
            "i_desc": In(stream.Signature(DmaDesc)),
            "o_done": Out(stream.Signature(dma_done_layout())),
            "m_axi": Out(axi_signature(config)),
            "i_win_base": In(WINDOW_BITS),
            "i_win_limit": In(WINDOW_BITS),
            **({"i_cores": In(CORES_BITS)} if chip else {}),
            "sbuf_wr": Out(sbuf_write_client(config)),
            "sbuf_rd": Out(sbuf_read_client(config)),
            "psum_rd": Out(psum_read_client(config)),
            "o_busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        B = cfg.axi_data_bytes
        lb = exact_log2(B)
        axi = self.m_axi
        D = self.IN_FLIGHT

        queue = m.submodules.desc_queue = SyncFIFOBuffered(
            width=DmaDesc.as_shape().size, depth=self._queue_depth)
        m.d.comb += [
            queue.w_en.eq(self.i_desc.valid),
            queue.w_data.eq(self.i_desc.payload),
            self.i_desc.ready.eq(queue.w_rdy),
        ]
        head_valid = queue.r_rdy
        head = Signal(DmaDesc)
        m.d.comb += head.eq(queue.r_data)
        take_desc = Signal()
        m.d.comb += queue.r_en.eq(take_desc)
        # the stages' queues: the check stage pushes every descriptor into all three
        issue_q = m.submodules.issue_queue = SyncFIFOBuffered(
            width=_checked_layout.size, depth=3)
        data_q = m.submodules.data_queue = SyncFIFOBuffered(
            width=_checked_layout.size, depth=D)
        retire_q = m.submodules.retire_queue = SyncFIFOBuffered(
            width=_retire_layout.size, depth=D + 2)
        # the data stage's result per descriptor (never full: it holds no more entries
        # than retire_q, which every descriptor entered first)
        fin_q = m.submodules.finish_queue = SyncFIFOBuffered(
            width=DmaError.as_shape().width, depth=D + 2)

        # ---- stage 1: check ---------------------------------------------------------
        desc = Signal(DmaDesc)
        ccode = Signal(DmaError)
        hi = Signal(64)          # one past the last DRAM byte of the tile
        extent = Signal(64)      # (rows - 1) * row_stride
        # the peer aperture (a chip only): the fields of a peer store's address
        ap = PeerAperture(cfg) if self._chip else None
        if ap is not None:
            peer = Signal()
            peer_bad = Signal()
            above_dram = Signal()   # a DRAM tile reaching into the aperture
            p_core = desc.addr[ap.core_shift:ap.core_shift + CORE_BITS]
            p_part = desc.addr[ap.offset_bits:ap.core_shift]
            p_off = desc.addr[:ap.offset_bits]
            aw = cfg.axi_addr_width
            m.d.comb += [
                peer.eq((self.i_cores != 0) & desc.addr[aw - 1:].any()),
                peer_bad.eq(~desc.store
                            | desc.addr[aw:].any()
                            | desc.addr[ap.core_shift + CORE_BITS:aw - 1].any()
                            | (p_core >= self.i_cores)
                            | ((desc.rows > 1) & (desc.row_stride != ap.stride))
                            | (p_part + desc.rows > cfg.rows)
                            | (p_off + desc.row_bytes > cfg.sbuf_bytes)),
                above_dram.eq((self.i_cores != 0) & (hi > ap.base)),
            ]
        IDLE, CHECK1, CHECK2, CHECK3, PASS = DmaState
        state = Signal(DmaState, name="dma_state")
        passed = Signal()
        m.d.comb += passed.eq((state == PASS) & issue_q.w_rdy & data_q.w_rdy & retire_q.w_rdy)
        checked = Signal(_checked_layout)
        retire_in = Signal(_retire_layout)
        m.d.comb += [
            checked.desc.eq(desc), checked.code.eq(ccode),
            retire_in.tag.eq(desc.tag), retire_in.code.eq(ccode),
            retire_in.wait_b.eq(desc.store & (ccode == DmaError.NONE)),
            issue_q.w_data.eq(checked), data_q.w_data.eq(checked),
            retire_q.w_data.eq(retire_in),
            issue_q.w_en.eq(passed), data_q.w_en.eq(passed), retire_q.w_en.eq(passed),
        ]
        # States as a plain register with a `default` branch (a 5-state FSM in 3 bits
        # would leave case encodings uncovered in the Verilog).
        with m.Switch(state):
            with m.Case(CHECK1):        # the multiply and the sums in separate cycles
                m.d.sync += [extent.eq((desc.rows - 1) * desc.row_stride), state.eq(CHECK2)]
            with m.Case(CHECK2):
                m.d.sync += [hi.eq(desc.addr + extent + desc.row_bytes), state.eq(CHECK3)]
            with m.Case(CHECK3):
                parts = Mux(desc.mem, cfg.cols, cfg.rows)
                nbytes = Mux(desc.mem, 4 * cfg.psum_entries, cfg.sbuf_bytes)
                m.d.sync += state.eq(PASS)
                with m.If(desc.mem & ~desc.store):
                    m.d.sync += ccode.eq(DmaError.TARGET)
                with m.Elif((desc.rows == 0) | (desc.row_bytes == 0)
                            | (desc.partition + desc.rows > parts)
                            | (desc.offset + desc.row_bytes > nbytes)):
                    m.d.sync += ccode.eq(DmaError.RANGE)
                window_bad = ((desc.addr < self.i_win_base) | (hi > self.i_win_limit)
                              | (hi > (1 << cfg.axi_addr_width)))
                if ap is not None:
                    with m.Elif(peer):
                        with m.If(peer_bad):
                            m.d.sync += ccode.eq(DmaError.PEER)
                    window_bad = window_bad | above_dram
                with m.Elif(window_bad):
                    m.d.sync += ccode.eq(DmaError.WINDOW)
            with m.Default():           # IDLE, or PASS handing the descriptor on
                with m.If(passed | (state != PASS)):
                    m.d.comb += take_desc.eq(head_valid)
                    with m.If(head_valid):
                        m.d.sync += [desc.eq(head), ccode.eq(DmaError.NONE), state.eq(CHECK1)]
                    with m.Else():
                        m.d.sync += state.eq(IDLE)
        m.d.comb += self.o_busy.eq((state != IDLE) | head_valid | (queue.level != 0)
                                   | retire_q.r_rdy | (retire_q.level != 0))

        def bus_error(resp, valid, code):
            """Record the first error response of the descriptor in ``code``."""
            with m.If(valid & resp[1] & (code == DmaError.NONE)):
                m.d.sync += code.eq(Mux(resp[0], DmaError.DECERR, DmaError.SLVERR))

        in_load = Signal()       # the data stage moves a load, a store
        in_store = Signal()

        # ---- stage 2: issue (AR and AW bursts) ----------------------------------------
        ihead = Signal(_checked_layout)
        m.d.comb += ihead.eq(issue_q.r_data)
        idesc = Signal(DmaDesc)
        i_wait = Signal()        # taken, its bursts not started yet
        i_take = Signal()
        i_start = Signal()
        st_open = Signal(range(D + 3))   # stores past the issue stage, not completed
        st_retire = Signal()
        r_out = Signal(range(cfg.dma_outstanding + 1))
        b_out = Signal(range(cfg.dma_outstanding + 1))
        wlen_q = m.submodules.wlen_queue = SyncFIFOBuffered(
            width=8, depth=max(3, cfg.dma_outstanding))
        blast_q = m.submodules.b_last_queue = SyncFIFOBuffered(
            width=1, depth=max(3, cfg.dma_outstanding))
        ar = _BurstGen(m, cfg, "ar", idesc, i_start & ~idesc.store, axi, "ar",
                       may_issue=r_out < cfg.dma_outstanding)
        aw = _BurstGen(m, cfg, "aw", idesc, i_start & idesc.store, axi, "aw",
                       may_issue=(b_out < cfg.dma_outstanding) & wlen_q.w_rdy & blast_q.w_rdy,
                       track_last=True)
        i_free = ~i_wait & ~ar.busy & ~aw.busy
        m.d.comb += [
            i_take.eq(i_free & issue_q.r_rdy),
            issue_q.r_en.eq(i_take),
            # a load's bursts wait for every earlier store to complete (read after write)
            i_start.eq(i_wait & (idesc.store | (st_open == 0))),
        ]
        with m.If(i_take):
            m.d.sync += [idesc.eq(ihead.desc), i_wait.eq(ihead.code == DmaError.NONE)]
        with m.Elif(i_start):
            m.d.sync += i_wait.eq(0)
        m.d.sync += st_open.eq(st_open + (i_start & idesc.store) - st_retire)

        # ---- stage 3: data ------------------------------------------------------------
        dhead = Signal(_checked_layout)
        m.d.comb += dhead.eq(data_q.r_data)
        ddesc = Signal(DmaDesc)
        code = Signal(DmaError)  # the data stage's descriptor: the first R error
        d_wait = Signal()        # taken, not started
        load_start = Signal()
        store_start = Signal()
        d_free = ~d_wait & ~in_load & ~in_store
        d_take = Signal()
        d_skip = Signal()        # a refused descriptor: straight to completion
        m.d.comb += [
            d_take.eq(d_free & data_q.r_rdy),
            d_skip.eq(d_take & (dhead.code != DmaError.NONE)),
            data_q.r_en.eq(d_take),
            load_start.eq(d_wait & ~ddesc.store),
            store_start.eq(d_wait & ddesc.store),
        ]
        with m.If(d_take):
            m.d.sync += [ddesc.eq(dhead.desc), code.eq(DmaError.NONE),
                         d_wait.eq(dhead.code == DmaError.NONE)]
        with m.Elif(d_wait):
            m.d.sync += d_wait.eq(0)

        # ---- row feeder: one Realigner row per descriptor row ----------------------------
        ra = m.submodules.realign = Realigner(B)
        # Register slices around the realigner's data path (timing: the partition
        # select, the realigner's byte shift and the SBUF write or W data were one
        # combinational path, the DMA engine's critical path on the ECP5). The
        # realigner's output always goes through one (`rao` below); on a store its
        # input words do too (`store_words`: the selector makes exactly the words of
        # this descriptor, so the slice never holds another's). Loads take R beats
        # straight: a slice there could take a beat of the next load's bursts.
        # Each output word carries whether it is a store's: a store's data stage ends
        # when its last word leaves the realigner (its completion waits for the B
        # responses anyway), so the next descriptor starts while the words drain to W;
        # a load's ends when its last word is written to SBUF.
        ra_out = m.submodules.realign_out = StreamSlice(data.StructLayout({
            "data": 8 * B, "strb": B, "err": 1, "last": 1, "store": 1}))
        m.d.comb += [
            ra_out.i.valid.eq(ra.o.valid),
            ra_out.i.payload.data.eq(ra.o.payload.data),
            # a load word's strobes are cleared here, when it enters the slice, if it or
            # an earlier beat of the descriptor had an error: later beats may still
            # arrive (and set `code`) while the word waits in the slice, and a waiting
            # word's payload must not change
            ra_out.i.payload.strb.eq(Mux(~in_store & (ra.o.payload.err
                                                      | (code != DmaError.NONE)),
                                         0, ra.o.payload.strb)),
            ra_out.i.payload.err.eq(ra.o.payload.err),
            ra_out.i.payload.last.eq(ra.o.payload.last),
            ra_out.i.payload.store.eq(in_store),
            ra.o.ready.eq(ra_out.i.ready),
        ]
        rao = ra_out.o
        rao_load = rao.valid & rao.ready & ~rao.payload.store    # a load word written
        feed_busy = Signal()
        feed_row = Signal(9)
        feed_addr = Signal(64)
        with m.If(load_start | store_start):
            m.d.sync += [feed_busy.eq(1), feed_row.eq(0), feed_addr.eq(ddesc.addr)]
        dram_off = feed_addr[:lb]
        chip_off = ddesc.offset[:lb]
        m.d.comb += [
            ra.i_row.valid.eq(feed_busy),
            ra.i_row.payload.in_off.eq(Mux(ddesc.store, chip_off, dram_off)),
            ra.i_row.payload.out_off.eq(Mux(ddesc.store, dram_off, chip_off)),
            ra.i_row.payload.length.eq(ddesc.row_bytes),
        ]
        with m.If(ra.i_row.valid & ra.i_row.ready):
            m.d.sync += [feed_row.eq(feed_row + 1), feed_addr.eq(feed_addr + ddesc.row_stride)]
            with m.If(feed_row == ddesc.rows - 1):
                m.d.sync += feed_busy.eq(0)

        # rows completed: a store's as they leave the realigner, a load's as they are
        # written to SBUF (the slice may still hold the previous store's words then)
        out_row = Signal(9)
        row_done = Mux(in_store, ra.o.valid & ra.o.ready & ra.o.payload.last,
                       rao_load & rao.payload.last)
        with m.If(load_start | store_start):
            m.d.sync += out_row.eq(0)
        with m.If(row_done):
            m.d.sync += out_row.eq(out_row + 1)
        rows_out = (out_row == ddesc.rows - 1) & row_done

        # ---- load: R beats -> realigner -> SBUF writes ------------------------------------
        r_fire = axi.rvalid & axi.rready
        m.d.sync += r_out.eq(r_out + ar.fire - (r_fire & axi.rlast))
        bus_error(axi.rresp, r_fire, code)
        # the code including this cycle's beat (the row's last beat may be its last word)
        code_now = Signal(DmaError)
        m.d.comb += code_now.eq(code)
        with m.If((code == DmaError.NONE) & r_fire & axi.rresp[1]):
            m.d.comb += code_now.eq(Mux(axi.rresp[0], DmaError.DECERR, DmaError.SLVERR))

        # SBUF word address and partition of the realigner's output
        w_word = Signal(_bits_for(cfg.sbuf_words))
        with m.If(load_start | (rao_load & rao.payload.last)):
            m.d.sync += w_word.eq(ddesc.offset >> lb)
        with m.Elif(rao_load):
            m.d.sync += w_word.eq(w_word + 1)
        wr = self.sbuf_wr.payload
        m.d.comb += [
            wr.addr.eq(w_word),
            wr.pmask.eq((Const(1, cfg.rows + 1) << (ddesc.partition + out_row))[:cfg.rows]),
            wr.strb.eq(rao.payload.strb),
        ]
        for p in range(cfg.rows):
            m.d.comb += wr.data[p].eq(rao.payload.data)

        # ---- store: on-chip reads -> selector -> realigner -> W ---------------------------
        per_word = B // 4                       # PSUM entries per bus word
        sel_layout = data.StructLayout({"part": 9, "last": COUNT_BITS})
        sel_q = m.submodules.select_queue = SyncFIFOBuffered(width=sel_layout.size, depth=4)

        # request generator
        q_busy = Signal()
        q_setup = Signal()
        q_row = Signal(9)
        q_left = Signal(COUNT_BITS)
        q_idx = Signal(32)                      # SBUF word or PSUM entry index
        with m.If(store_start):
            m.d.sync += [q_busy.eq(1), q_setup.eq(1), q_row.eq(0)]
        n_words = (chip_off + ddesc.row_bytes + (B - 1)) >> lb
        with m.If(q_busy & q_setup & sel_q.w_rdy):
            m.d.sync += [
                q_setup.eq(0),
                q_left.eq(Mux(ddesc.mem, n_words * per_word, n_words)),
                q_idx.eq(Mux(ddesc.mem, (ddesc.offset >> lb) * per_word, ddesc.offset >> lb)),
            ]
        sel_in = Signal(sel_layout)
        m.d.comb += [
            sel_in.part.eq(ddesc.partition + q_row),
            sel_in.last.eq(Mux(ddesc.mem, n_words * per_word, n_words) - 1),
            sel_q.w_en.eq(q_busy & q_setup & sel_q.w_rdy),
            sel_q.w_data.eq(sel_in),
        ]
        q_valid = q_busy & ~q_setup & (q_left != 0)
        ebits = ceil_log2(cfg.psum_depth)
        m.d.comb += [
            self.sbuf_rd.req.valid.eq(q_valid & ~ddesc.mem),
            self.sbuf_rd.req.payload.addr.eq(q_idx),
            self.psum_rd.req.valid.eq(q_valid & ddesc.mem),
            self.psum_rd.req.payload.entry.eq(q_idx[:ebits]),
            self.psum_rd.req.payload.bank.eq(q_idx[ebits:]),
        ]
        q_fire = (self.sbuf_rd.req.valid & self.sbuf_rd.req.ready) | \
                 (self.psum_rd.req.valid & self.psum_rd.req.ready)
        with m.If(q_fire):
            m.d.sync += [q_idx.eq(q_idx + 1), q_left.eq(q_left - 1)]
            with m.If(q_left == 1):
                m.d.sync += [q_row.eq(q_row + 1), q_setup.eq(1)]
                with m.If(q_row == ddesc.rows - 1):
                    m.d.sync += q_busy.eq(0)

        store_words = m.submodules.store_words = StreamSlice(ra.i.payload.shape())
        # selector: the row's partition out of each response; PSUM entries packed to words
        sel = Signal(sel_layout)
        m.d.comb += sel.eq(sel_q.r_data)
        s_count = Signal(COUNT_BITS)
        s_sub = Signal(range(max(per_word, 2)))
        packed = Signal(8 * B)
        sbuf_word = Signal(8 * B)
        m.d.comb += sbuf_word.eq(self.sbuf_rd.resp.payload.as_value().word_select(sel.part, 8 * B))
        entry = Signal(32)
        m.d.comb += entry.eq(self.psum_rd.resp.payload.as_value().word_select(sel.part, 32))
        resp_valid = Mux(ddesc.mem, self.psum_rd.resp.valid, self.sbuf_rd.resp.valid)
        word_ready = Signal()   # the selector may take a response now
        word_out = Signal()     # ... and that response completes a word
        if per_word > 1:
            m.d.comb += word_out.eq(~ddesc.mem | (s_sub == per_word - 1))
            word_data = Mux(ddesc.mem, Cat(packed[32:], entry), sbuf_word)
        else:
            m.d.comb += word_out.eq(1)
            word_data = Mux(ddesc.mem, entry, sbuf_word)
        m.d.comb += [
            word_ready.eq(in_store & sel_q.r_rdy & (~word_out | store_words.i.ready)),
            self.sbuf_rd.resp.ready.eq(word_ready & ~ddesc.mem),
            self.psum_rd.resp.ready.eq(word_ready & ddesc.mem),
        ]
        take = resp_valid & word_ready
        with m.If(take):
            m.d.sync += s_count.eq(s_count + 1)
            if per_word > 1:
                m.d.sync += [packed.eq(Cat(packed[32:], entry)),
                             s_sub.eq(Mux(s_sub == per_word - 1, 0, s_sub + 1))]
            with m.If(s_count == sel.last):
                m.d.sync += s_count.eq(0)
        m.d.comb += sel_q.r_en.eq(take & (s_count == sel.last))
        with m.If(store_start):
            m.d.sync += [s_count.eq(0), s_sub.eq(0)]

        # realigner input: R beats (load) or selected words (store)
        m.d.comb += [
            store_words.i.valid.eq(in_store & resp_valid & sel_q.r_rdy & word_out),
            store_words.i.payload.data.eq(word_data),
            store_words.o.ready.eq(in_store & ra.i.ready),
            ra.i.valid.eq(Mux(in_store, store_words.o.valid, axi.rvalid & in_load)),
            ra.i.payload.data.eq(Mux(in_store, store_words.o.payload.data, axi.rdata)),
            ra.i.payload.err.eq(~in_store & axi.rresp[1]),
            axi.rready.eq(in_load & ra.i.ready),
        ]

        # AW bursts: their lengths go to the W side, their last-of-descriptor flags to B
        m.d.comb += [wlen_q.w_en.eq(aw.fire), wlen_q.w_data.eq(aw.len - 1),
                     blast_q.w_en.eq(aw.fire), blast_q.w_data.eq(aw.last)]
        w_beat = Signal(8)
        w_last = w_beat == wlen_q.r_data
        m.d.comb += [
            axi.wvalid.eq(rao.valid & rao.payload.store & wlen_q.r_rdy),
            axi.wdata.eq(rao.payload.data),
            axi.wstrb.eq(rao.payload.strb),
            axi.wlast.eq(w_last),
        ]
        w_fire = axi.wvalid & axi.wready
        with m.If(w_fire):
            m.d.sync += w_beat.eq(Mux(w_last, 0, w_beat + 1))
        m.d.comb += wlen_q.r_en.eq(w_fire & w_last)

        # realigner output goes to SBUF (load) or W (store)
        m.d.comb += [
            self.sbuf_wr.valid.eq(rao.valid & ~rao.payload.store),
            rao.ready.eq(Mux(rao.payload.store, axi.wready & wlen_q.r_rdy, self.sbuf_wr.ready)),
        ]
        # the data stage is done with its descriptor: the result goes to completion
        d_done = Signal()
        m.d.comb += [
            d_done.eq((in_load | in_store) & rows_out),
            fin_q.w_en.eq(d_done | d_skip),
            fin_q.w_data.eq(Mux(d_skip, DmaError.NONE, code_now)),
        ]
        with m.If(load_start):
            m.d.sync += in_load.eq(1)
        with m.If(store_start):
            m.d.sync += in_store.eq(1)
        with m.If(d_done):
            m.d.sync += [in_load.eq(0), in_store.eq(0)]

        # ---- B responses: each one belongs to the oldest store not completed ----------
        b_done = Signal()       # that store's last B is in (held until it completes)
        b_code = Signal(DmaError)
        b_fire = Signal()
        m.d.comb += [axi.bready.eq(~b_done), b_fire.eq(axi.bvalid & axi.bready),
                     blast_q.r_en.eq(b_fire)]
        m.d.sync += b_out.eq(b_out + aw.fire - b_fire)
        bus_error(axi.bresp, b_fire, b_code)
        with m.If(b_fire & blast_q.r_data):
            m.d.sync += b_done.eq(1)

        # ---- stage 4: completion, in order ----------------------------------------------
        rhead = Signal(_retire_layout)
        m.d.comb += rhead.eq(retire_q.r_data)
        fin_code = Signal(DmaError)
        m.d.comb += fin_code.eq(fin_q.r_data)
        m.d.comb += [
            self.o_done.valid.eq(retire_q.r_rdy & fin_q.r_rdy & (~rhead.wait_b | b_done)),
            self.o_done.payload.tag.eq(rhead.tag),
            self.o_done.payload.error.eq(
                Mux(rhead.code != DmaError.NONE, rhead.code,
                    Mux(rhead.wait_b, b_code, fin_code))),
        ]
        retire = self.o_done.valid & self.o_done.ready
        m.d.comb += [retire_q.r_en.eq(retire), fin_q.r_en.eq(retire),
                     st_retire.eq(retire & rhead.wait_b)]
        with m.If(st_retire):
            m.d.sync += [b_done.eq(0), b_code.eq(DmaError.NONE)]
        return m
