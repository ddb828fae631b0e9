"""A chip: up to eight NeuronCores on one DRAM port, with on-chip core-to-core transfers.

::

    host s_axil --AXILitePages--+-- page 0: ChipRegs (ID, CORES, CONFIG, START, SOFT_RESET, STATUS)
                                +-- page 1+k: core k's own registers
    core k m_axi --+
                   +-- ChipInterconnect --+-- m_axi (DRAM; IDs widened by the core index)
                   |                      +-- o_peer_wr[t] -> core t's SBUF (peer stores)
    core k chip.o_signal -- SignalRouter -- core t chip.i_signal (cross-core semaphores)

A core's DMA store into the peer aperture (:class:`hdl.chipmap.PeerAperture`) leaves
the core as an ordinary AXI write burst; the interconnect sends its beats into the
target core's SBUF instead of DRAM and answers the B response itself once the last
beat has been accepted by that SBUF's write port. A SEM with a remote signal
(:class:`hdl.isa.SemCmd`) reaches the target core's semaphores through the router. So
the usual producer/consumer protocol works across cores: store the tile to the peer
(its completion signals the producer's own semaphore), then a remote SEM waiting on
that semaphore tells the consumer the tile is there. The whole design is described in
``docs/chip.md``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from .axi import AXI4LiteSignature, AXI4Signature, AXIResp
from .chipmap import (CHIP_ADDR_WIDTH, PAGE_BITS, ChipRegisterMap, PeerAperture, check_cores)
from .config import CoreConfig, check_config
from .core import NeuronCore
from .interfaces import ConfigComponent, RemoteSignal, StatusLights, sbuf_write_client
from .isa import CORE_BITS, MAX_CORES, SEM_BITS

__all__ = ["Chip", "ChipInterconnect", "SignalRouter", "AXILitePages", "ChipRegs",
           "chip_axi_signature", "chip_id_width"]


def chip_id_width(config: CoreConfig, cores: int):
    """AXI ID bits of the chip's DRAM port: a core's, plus the core index."""
    return config.axi_id_width + ceil_log2(cores)


def chip_axi_signature(config: CoreConfig, cores: int):
    """The chip's AXI4 manager port to DRAM."""
    return AXI4Signature(addr_width=config.axi_addr_width, data_bytes=config.axi_data_bytes,
                         id_width=chip_id_width(config, cores))


def _round_robin(m, name, requests, last):
    """One-hot grants of a round-robin arbiter: the first requester after ``last`` (the
    index granted last time), wrapping around. Returns the list of grant signals."""
    n = len(requests)
    grants = [Signal(name=f"{name}_grant{k}") for k in range(n)]
    if n == 1:
        m.d.comb += grants[0].eq(requests[0])
        return grants
    with m.Switch(last):
        for lst in range(n):
            with m.Case(lst):
                taken = Const(0)
                for off in range(1, n + 1):
                    k = (lst + off) % n
                    m.d.comb += grants[k].eq(requests[k] & ~taken)
                    taken = taken | requests[k]
    return grants


class SignalRouter(wiring.Component):
    """Cross-core signals from every core to their target cores.

    Each target takes at most one signal per cycle, from its sources in round-robin
    order (a signal waiting is taken within ``cores`` cycles). The output is
    registered, so a signal reaches the target's semaphore one cycle after the
    handshake. The targets' inputs are always ready (:class:`~hdl.controller.Controller`).
    A signal to a core index not below ``cores`` cannot happen (the sender's decoder
    refuses it with PEER); it would be dropped.

    Members
    -------
    i_signal : In(stream.Signature(RemoteSignal)).array(cores)   from each core
    o_signal : Out(stream.Signature(SEM_BITS)).array(cores)      to each core
    """

    def __init__(self, cores):
        self._cores = check_cores(cores)
        super().__init__({
            "i_signal": In(stream.Signature(RemoteSignal)).array(cores),
            "o_signal": Out(stream.Signature(SEM_BITS)).array(cores),
        })

    def elaborate(self, platform):
        m = Module()
        n = self._cores
        ready = [Const(0)] * n
        for t in range(n):
            reqs = [s.valid & (s.payload.core == t) for s in self.i_signal]
            last = Signal(range(max(n, 2)), name=f"last{t}")
            grants = _round_robin(m, f"to{t}", reqs, last)
            out = self.o_signal[t]
            m.d.sync += out.valid.eq(Cat(*grants).any())
            for k, g in enumerate(grants):
                with m.If(g):
                    m.d.sync += [out.payload.eq(self.i_signal[k].payload.sem), last.eq(k)]
                ready[k] = ready[k] | g
        for k in range(n):
            m.d.comb += self.i_signal[k].ready.eq(ready[k])
        return m


class ChipInterconnect(ConfigComponent):
    """``cores`` AXI4 managers (the cores' ``m_axi``) onto one DRAM port, and their peer
    stores into the cores' SBUFs.

    **Reads** all go to DRAM: AR through one register stage, granted round-robin
    (a request waiting is granted within ``cores`` grants), ``ARID`` extended by the
    core index above the core's own ID bits; R beats go back by that index. Reads in
    the peer aperture are not refused here (only instruction fetches can make them:
    the DMA engines refuse peer loads) and reach DRAM, which answers as it does for
    any address it lacks.

    **Writes.** AW requests are granted round-robin into a queue of granted bursts; W
    beats are taken from the manager at the queue's head, in grant order, one beat per
    cycle for the whole chip. A burst is

    * *DRAM* (address below the aperture): AW through a register stage to ``m_axi``
      (``AWID`` extended like ``ARID``), W beats passed through, B back by ID;
    * *peer* (in the aperture, an existing core): each beat becomes an SBUF write of
      target core ``t`` (``o_peer_wr[t]``: word ``offset/word_bytes + beat``, partition
      ``partition``, the beat's strobes); the B response (OKAY) is made here once the
      last beat has been accepted;
    * *refused* (in the aperture, a core the chip lacks or bits above the core field
      set; or a beat past the SBUF's end): those beats are taken and dropped, nothing
      is written, and the B response is DECERR. (A core's DMA refuses such descriptors
      before any burst with ``PEER``; this is the second line.)

    **Ordering.** AXI requires a manager's write responses of one ID in order. DRAM
    answers in order and the local responses are made in order, so a manager's
    bursts of one kind complete in order; a manager is granted a burst of the other
    kind only when all its bursts of the first have been answered. (A core switching
    between DRAM and peer stores therefore waits for its DRAM writes to finish: the
    same point at which its own DMA-in would wait for them.)

    Members
    -------
    s : In(AXI4Signature).array(cores)    the cores' ports
    m_axi : Out(chip_axi_signature)       DRAM
    o_peer_wr : Out(sbuf_write_client).array(cores)   peer stores into core ``t``'s SBUF
    """

    def __init__(self, config: CoreConfig, cores: int, *, local_depth=None):
        check_config(config)
        self._cores = check_cores(cores)
        self._ap = PeerAperture(config)
        self._local_depth = local_depth or max(2, config.dma_outstanding)
        sig = AXI4Signature(addr_width=config.axi_addr_width,
                            data_bytes=config.axi_data_bytes, id_width=config.axi_id_width)
        super().__init__(config, {
            "s": In(sig).array(cores),
            "m_axi": Out(chip_axi_signature(config, cores)),
            "o_peer_wr": Out(sbuf_write_client(config)).array(cores),
        })

    def elaborate(self, platform):
        cfg = self._config
        n = self._cores
        ap = self._ap
        m = Module()
        o = self.m_axi
        s = self.s
        idw = cfg.axi_id_width
        aw = cfg.axi_addr_width
        lb = exact_log2(cfg.axi_data_bytes)
        cb = ceil_log2(n)

        def core_index(wide_id):
            return wide_id[idw:] if cb else Const(0, 1)

        # ---- AR: register stage, round-robin ----------------------------------------
        ar_fields = ("araddr", "arlen", "arsize", "arburst", "arlock", "arcache", "arprot")
        ar_last = Signal(range(max(n, 2)))
        ar_free = ~o.arvalid | o.arready
        ar_grants = _round_robin(m, "ar", [p.arvalid for p in s], ar_last)
        for k, g in enumerate(ar_grants):
            m.d.comb += s[k].arready.eq(ar_free & g)
        with m.If(ar_free):
            m.d.sync += o.arvalid.eq(Cat(*ar_grants).any())
            for k, g in enumerate(ar_grants):
                with m.If(g):
                    m.d.sync += [getattr(o, f).eq(getattr(s[k], f)) for f in ar_fields]
                    m.d.sync += [o.arid.eq(Cat(s[k].arid, Const(k, cb)) if cb else s[k].arid),
                                 ar_last.eq(k)]
        # ---- R: back by the core index -------------------------------------------------
        r_to = core_index(o.rid)
        for k in range(n):
            m.d.comb += [
                s[k].rid.eq(o.rid[:idw]), s[k].rdata.eq(o.rdata), s[k].rresp.eq(o.rresp),
                s[k].rlast.eq(o.rlast), s[k].rvalid.eq(o.rvalid & (r_to == k)),
            ]
        m.d.comb += o.rready.eq(Cat(*(s[k].rready & (r_to == k) for k in range(n))).any())

        # ---- AW: classify, grant round-robin into the burst queue ----------------------
        DRAM, PEER, BAD = 0, 1, 2
        word_bits = max(1, ap.offset_bits - lb)
        part_bits = max(1, ap.partition_bits)
        entry = data.StructLayout({
            "mgr": max(1, cb), "kind": 2, "target": CORE_BITS, "word": word_bits,
            "part": part_bits, "id": idw,
        })
        depth = self._local_depth
        wq = m.submodules.burst_queue = SyncFIFOBuffered(width=entry.size,
                                                         depth=max(2, 2 * depth))
        dram_out = [Signal(range(64 + 1), name=f"dram_out{k}") for k in range(n)]
        loc_out = [Signal(range(depth + 1), name=f"loc_out{k}") for k in range(n)]
        kinds = []
        entries = []
        for k, p in enumerate(s):
            a = p.awaddr
            in_ap = a[aw - 1]
            core_t = a[ap.core_shift:ap.core_shift + CORE_BITS]
            extra = (a[ap.core_shift + CORE_BITS:aw - 1].any()
                     if ap.core_shift + CORE_BITS < aw - 1 else Const(0))
            kind = Signal(2, name=f"aw_kind{k}")
            m.d.comb += kind.eq(Mux(~in_ap, DRAM, Mux((core_t >= n) | extra, BAD, PEER)))
            e = Signal(entry, name=f"aw_entry{k}")
            m.d.comb += [e.mgr.eq(k), e.kind.eq(kind), e.target.eq(core_t),
                         e.word.eq(a[lb:ap.offset_bits] if ap.offset_bits > lb else 0),
                         e.id.eq(p.awid)]
            if ap.partition_bits:
                m.d.comb += e.part.eq(a[ap.offset_bits:ap.core_shift])
            kinds.append(kind)
            entries.append(e)
        aw_free = ~o.awvalid | o.awready
        aw_fields = ("awaddr", "awlen", "awsize", "awburst", "awlock", "awcache", "awprot")
        reqs = []
        for k, p in enumerate(s):
            is_dram = kinds[k] == DRAM
            ok = Mux(is_dram, aw_free & (loc_out[k] == 0),
                     (dram_out[k] == 0) & (loc_out[k] < depth))
            reqs.append(p.awvalid & ok & wq.w_rdy)
        aw_last = Signal(range(max(n, 2)))
        aw_grants = _round_robin(m, "aw", reqs, aw_last)
        m.d.comb += wq.w_en.eq(Cat(*aw_grants).any())
        grant_dram = [Signal(name=f"grant_dram{k}") for k in range(n)]
        grant_loc = [Signal(name=f"grant_loc{k}") for k in range(n)]
        for k, g in enumerate(aw_grants):
            m.d.comb += [s[k].awready.eq(g), grant_dram[k].eq(g & (kinds[k] == DRAM)),
                         grant_loc[k].eq(g & (kinds[k] != DRAM))]
            with m.If(g):
                m.d.comb += wq.w_data.eq(entries[k])
                m.d.sync += aw_last.eq(k)
        with m.If(Cat(*grant_dram).any()):
            m.d.sync += o.awvalid.eq(1)
            for k in range(n):
                with m.If(grant_dram[k]):
                    m.d.sync += [getattr(o, f).eq(getattr(s[k], f)) for f in aw_fields]
                    m.d.sync += o.awid.eq(Cat(s[k].awid, Const(k, cb)) if cb else s[k].awid)
        with m.Elif(o.awready):
            m.d.sync += o.awvalid.eq(0)

        # ---- W: from the manager at the head of the queue -------------------------------
        head = Signal(entry)
        m.d.comb += head.eq(wq.r_data)
        have = wq.r_rdy
        beat = Signal(8)
        burst_err = Signal()
        wv = Signal()
        wl = Signal()
        wdata = Signal(8 * cfg.axi_data_bytes)
        wstrb = Signal(cfg.axi_data_bytes)
        wready = Signal()
        for k in range(n):
            with m.If(head.mgr == k):
                m.d.comb += [wv.eq(have & s[k].wvalid), wl.eq(s[k].wlast),
                             wdata.eq(s[k].wdata), wstrb.eq(s[k].wstrb)]
            m.d.comb += s[k].wready.eq(have & (head.mgr == k) & wready)
        word = Signal(max(word_bits, 8) + 1)
        m.d.comb += word.eq(head.word + beat)
        in_range = (word < cfg.sbuf_words) & (head.part < cfg.rows)
        m.d.comb += [o.wdata.eq(wdata), o.wstrb.eq(wstrb), o.wlast.eq(wl)]
        with m.Switch(head.kind):
            with m.Case(DRAM):
                m.d.comb += [o.wvalid.eq(wv), wready.eq(o.wready)]
            with m.Case(PEER):
                for t in range(n):
                    pw = self.o_peer_wr[t]
                    m.d.comb += [
                        pw.payload.addr.eq(word), pw.payload.pmask.eq(1 << head.part),
                        pw.payload.strb.eq(wstrb),
                        pw.payload.data.eq(Cat(*[wdata] * cfg.rows)),
                    ]
                    with m.If(head.target == t):
                        m.d.comb += pw.valid.eq(wv & in_range)
                        m.d.comb += wready.eq(Mux(in_range, pw.ready, 1))
            with m.Default():
                m.d.comb += wready.eq(1)
        take = wv & wready
        loc_done = Signal()        # the last beat of a local (peer or refused) burst
        loc_resp = Signal(2)
        with m.If(take):
            m.d.sync += beat.eq(Mux(wl, 0, beat + 1))
            m.d.sync += burst_err.eq(Mux(wl, 0, burst_err | ~in_range))
        m.d.comb += [
            wq.r_en.eq(take & wl),
            loc_done.eq(take & wl & (head.kind != DRAM)),
            loc_resp.eq(Mux((head.kind == BAD) | burst_err | ~in_range, AXIResp.DECERR,
                            AXIResp.OKAY)),
        ]

        # ---- B: local responses first, else DRAM's by the core index ---------------------
        b_to = core_index(o.bid)
        b_ready = []
        for k in range(n):
            lq = m.submodules[f"local_b{k}"] = SyncFIFOBuffered(width=idw + 2, depth=max(3, depth))
            m.d.comb += [lq.w_en.eq(loc_done & (head.mgr == k)),
                         lq.w_data.eq(Cat(head.id, loc_resp))]
            from_dram = o.bvalid & (b_to == k) & ~lq.r_rdy
            m.d.comb += [
                s[k].bvalid.eq(lq.r_rdy | from_dram),
                s[k].bid.eq(Mux(lq.r_rdy, lq.r_data[:idw], o.bid[:idw])),
                s[k].bresp.eq(Mux(lq.r_rdy, lq.r_data[idw:], o.bresp)),
                lq.r_en.eq(s[k].bready),
            ]
            b_ready.append(s[k].bready & from_dram)
            loc_b = lq.r_rdy & s[k].bready
            dram_b = from_dram & s[k].bready
            m.d.sync += [dram_out[k].eq(dram_out[k] + grant_dram[k] - dram_b),
                         loc_out[k].eq(loc_out[k] + grant_loc[k] - loc_b)]
        m.d.comb += o.bready.eq(Cat(*b_ready).any())
        return m


class AXILitePages(wiring.Component):
    """An AXI4-Lite port split into ``pages`` pages of ``2**page_bits`` bytes: page
    ``p`` goes to ``m[p]`` (the offset within the page), an address past the last page
    is answered DECERR here (reads as 0).

    A register slice: AW, W and AR are taken into registers whenever no transaction of
    their kind is in progress (``awready``/``wready``/``arready`` are those levels and
    fall only in the cycle after a handshake), then offered to the page, whose response
    comes back unchanged. One write and one read are in flight at a time. (Ready
    signals that rose because a request was seen, as in a decoder that forwards AW
    straight through, would break masters that sample after the clock edge.)

    Members
    -------
    s_axil : In(AXI4LiteSignature(addr_width))
    m : Out(AXI4LiteSignature(page_bits)).array(pages)
    """

    def __init__(self, *, addr_width, page_bits, pages):
        if not 0 < pages <= 1 << (addr_width - page_bits):
            raise ValueError(f"{pages} pages of 2**{page_bits} bytes do not fit "
                             f"{addr_width} address bits")
        self._page_bits = page_bits
        self._pages = pages
        super().__init__({
            "s_axil": In(AXI4LiteSignature(addr_width=addr_width)),
            "m": Out(AXI4LiteSignature(addr_width=page_bits)).array(pages),
        })

    def elaborate(self, platform):
        m = Module()
        s = self.s_axil
        pb = self._page_bits
        n = self._pages

        def page_of(addr):
            page = addr[pb:]
            return Mux(page < n, page, n)

        def page_mux(sel, attr, default):
            value = default
            for k in reversed(range(n)):
                value = Mux(sel == k, getattr(self.m[k], attr), value)
            return value

        # ---- writes: AW and W into registers, then to the page, then its B -------------
        pg_aw_addr = Signal(pb)
        w_sel = Signal(range(n + 1))
        have_aw, have_w = Signal(), Signal()
        aw_sent, w_sent = Signal(), Signal()
        pg_w_data = Signal.like(s.wdata)
        pg_w_strb = Signal.like(s.wstrb)
        pg_aw_prot = Signal(3)
        m.d.comb += [s.awready.eq(~have_aw), s.wready.eq(~have_w)]
        with m.If(s.awvalid & s.awready):
            m.d.sync += [have_aw.eq(1), pg_aw_addr.eq(s.awaddr[:pb]),
                         w_sel.eq(page_of(s.awaddr)), pg_aw_prot.eq(s.awprot)]
        with m.If(s.wvalid & s.wready):
            m.d.sync += [have_w.eq(1), pg_w_data.eq(s.wdata), pg_w_strb.eq(s.wstrb)]
        both = have_aw & have_w
        for k, t in enumerate(self.m):
            sel = w_sel == k
            m.d.comb += [t.awaddr.eq(pg_aw_addr), t.awprot.eq(pg_aw_prot), t.wdata.eq(pg_w_data),
                         t.wstrb.eq(pg_w_strb),
                         t.awvalid.eq(both & sel & ~aw_sent), t.wvalid.eq(both & sel & ~w_sent),
                         t.bready.eq(both & sel & aw_sent & w_sent & s.bready)]
            with m.If(t.awvalid & t.awready):
                m.d.sync += aw_sent.eq(1)
            with m.If(t.wvalid & t.wready):
                m.d.sync += w_sent.eq(1)
        none = w_sel == n           # past the last page: DECERR at once
        m.d.comb += [
            s.bvalid.eq(both & Mux(none, 1, aw_sent & w_sent & page_mux(w_sel, "bvalid", 0))),
            s.bresp.eq(page_mux(w_sel, "bresp", AXIResp.DECERR)),
        ]
        with m.If(s.bvalid & s.bready):
            m.d.sync += [have_aw.eq(0), have_w.eq(0), aw_sent.eq(0), w_sent.eq(0)]

        # ---- reads: AR into a register, then to the page, then its R --------------------
        pg_ar_addr = Signal(pb)
        r_sel = Signal(range(n + 1))
        have_ar, ar_sent = Signal(), Signal()
        pg_ar_prot = Signal(3)
        m.d.comb += s.arready.eq(~have_ar)
        with m.If(s.arvalid & s.arready):
            m.d.sync += [have_ar.eq(1), pg_ar_addr.eq(s.araddr[:pb]),
                         r_sel.eq(page_of(s.araddr)), pg_ar_prot.eq(s.arprot)]
        for k, t in enumerate(self.m):
            sel = r_sel == k
            m.d.comb += [t.araddr.eq(pg_ar_addr), t.arprot.eq(pg_ar_prot),
                         t.arvalid.eq(have_ar & sel & ~ar_sent),
                         t.rready.eq(have_ar & sel & ar_sent & s.rready)]
            with m.If(t.arvalid & t.arready):
                m.d.sync += ar_sent.eq(1)
        r_none = r_sel == n
        m.d.comb += [
            s.rvalid.eq(have_ar & Mux(r_none, 1, ar_sent & page_mux(r_sel, "rvalid", 0))),
            s.rdata.eq(page_mux(r_sel, "rdata", 0)),
            s.rresp.eq(page_mux(r_sel, "rresp", AXIResp.DECERR)),
        ]
        with m.If(s.rvalid & s.rready):
            m.d.sync += [have_ar.eq(0), ar_sent.eq(0)]
        return m


class ChipRegs(ConfigComponent):
    """The chip registers (:func:`hdl.chipmap.chip_registers`) on an AXI4-Lite port.

    Like a core's host interface: AW and W are taken together, the response comes the
    cycle after; a read's data the cycle after AR. Writes to RO registers and unmapped
    offsets are answered SLVERR and change nothing. START and SOFT_RESET pulse
    ``o_start`` / ``o_soft_reset`` for one cycle (strobed bytes only).

    Members
    -------
    s_axil : In(AXI4LiteSignature(addr_width=12))
    i_lights : In(StatusLights).array(cores)   each core's STATUS.BUSY, DONE, ERROR
    o_start : Out(MAX_CORES); o_soft_reset : Out(1)
    """

    def __init__(self, config: CoreConfig, cores: int):
        check_config(config)
        self._cores = check_cores(cores)
        self._regs = ChipRegisterMap(config, cores)
        super().__init__(config, {
            "s_axil": In(AXI4LiteSignature(addr_width=PAGE_BITS)),
            "i_lights": In(StatusLights).array(cores),
            "o_start": Out(MAX_CORES),
            "o_soft_reset": Out(1),
        })

    @property
    def regmap(self):
        return self._regs

    def elaborate(self, platform):
        m = Module()
        s = self.s_axil
        regs = self._regs
        n = self._cores
        lights = self.i_lights
        busy = Cat(*(lights[k].busy for k in range(n)))
        done = Cat(*(lights[k].done for k in range(n)))
        err = Cat(*(lights[k].error for k in range(n)))
        st = regs["STATUS"]
        live = {"STATUS": (busy << st.field("BUSY").lsb) | (done << st.field("DONE").lsb)
                | (err << st.field("ERROR").lsb)}

        # ---- writes: AW and W together, the response a cycle later ----------------------
        aw = Signal(PAGE_BITS)
        have_aw, have_w = Signal(), Signal()
        wdata = Signal(32)
        wstrb = Signal(4)
        m.d.comb += [s.awready.eq(~have_aw & ~s.bvalid), s.wready.eq(~have_w & ~s.bvalid)]
        with m.If(s.awvalid & s.awready):
            m.d.sync += [aw.eq(s.awaddr), have_aw.eq(1)]
        with m.If(s.wvalid & s.wready):
            m.d.sync += [wdata.eq(s.wdata), wstrb.eq(s.wstrb), have_w.eq(1)]
        strobed = Cat(*[wstrb[i // 8] for i in range(32)])
        value = wdata & strobed
        m.d.sync += [self.o_start.eq(0), self.o_soft_reset.eq(0)]
        with m.If(have_aw & have_w):
            m.d.sync += [have_aw.eq(0), have_w.eq(0), s.bvalid.eq(1),
                         s.bresp.eq(AXIResp.SLVERR)]
            with m.Switch(aw[2:]):
                for r in regs:
                    if not r.writable:
                        continue
                    with m.Case(r.offset >> 2):
                        m.d.sync += s.bresp.eq(AXIResp.OKAY)
                        if r.name == "START":
                            f = r.field("CORES")
                            m.d.sync += self.o_start.eq(
                                (value >> f.lsb)[:f.width] & ((1 << n) - 1))
                        elif r.name == "SOFT_RESET":
                            f = r.field("RESET")
                            m.d.sync += self.o_soft_reset.eq(value[f.lsb])
        with m.If(s.bvalid & s.bready):
            m.d.sync += s.bvalid.eq(0)

        # ---- reads: address registered, data the cycle after ---------------------------
        m.d.comb += s.arready.eq(~s.rvalid)
        with m.If(s.arvalid & s.arready):
            m.d.sync += [s.rvalid.eq(1), s.rdata.eq(0), s.rresp.eq(AXIResp.SLVERR)]
            with m.Switch(s.araddr[2:]):
                for r in regs:
                    with m.Case(r.offset >> 2):
                        m.d.sync += [s.rresp.eq(AXIResp.OKAY),
                                     s.rdata.eq(live.get(r.name, r.reset))]
        with m.If(s.rvalid & s.rready):
            m.d.sync += s.rvalid.eq(0)
        return m


class Chip(ConfigComponent):
    """``cores`` :class:`~hdl.core.NeuronCore` s of one configuration, one AXI4 port to
    DRAM, one AXI4-Lite port for the host (``docs/chip.md``).

    Parameters
    ----------
    config : CoreConfig
        Every core's configuration; ``ValueError`` if its AXI address leaves no room for
        the peer aperture (:class:`~hdl.chipmap.PeerAperture`).
    cores : int
        1 to :data:`~hdl.isa.MAX_CORES` (default 4).

    Members
    -------
    s_axil : In(AXI4LiteSignature(addr_width=CHIP_ADDR_WIDTH))
        Page 0 the chip registers, page ``1 + k`` core ``k``'s registers.
    m_axi : Out(chip_axi_signature(config, cores))
    o_irq : Out(1)      the OR of the cores' interrupts
    o_lights : Out(StatusLights)   any core busy, any core done, any core in error
    """

    def __init__(self, config: CoreConfig, *, cores=4):
        check_config(config)
        self._cores = check_cores(cores)
        PeerAperture(config)
        super().__init__(config, {
            "s_axil": In(AXI4LiteSignature(addr_width=CHIP_ADDR_WIDTH)),
            "m_axi": Out(chip_axi_signature(config, cores)),
            "o_irq": Out(1),
            "o_lights": Out(StatusLights),
        })

    @property
    def cores(self):
        return self._cores

    def elaborate(self, platform):
        cfg = self._config
        n = self._cores
        m = Module()
        pages = m.submodules.pages = AXILitePages(addr_width=CHIP_ADDR_WIDTH,
                                                  page_bits=PAGE_BITS, pages=1 + n)
        regs = m.submodules.regs = ChipRegs(cfg, n)
        ic = m.submodules.interconnect = ChipInterconnect(cfg, n)
        router = m.submodules.signals = SignalRouter(n)
        wiring.connect(m, wiring.flipped(self.s_axil), pages.s_axil)
        wiring.connect(m, pages.m[0], regs.s_axil)
        wiring.connect(m, ic.m_axi, wiring.flipped(self.m_axi))
        irqs = []
        for k in range(n):
            core = m.submodules[f"core{k}"] = NeuronCore(cfg, chip=True)
            wiring.connect(m, pages.m[1 + k], core.s_axil)
            wiring.connect(m, core.m_axi, ic.s[k])
            link = core.chip
            m.d.comb += [link.i_cores.eq(n), link.i_start.eq(regs.o_start[k]),
                         link.i_soft_reset.eq(regs.o_soft_reset),
                         regs.i_lights[k].eq(core.o_lights)]
            wiring.connect(m, ic.o_peer_wr[k], link.i_peer_wr)
            wiring.connect(m, link.o_signal, router.i_signal[k])
            wiring.connect(m, router.o_signal[k], link.i_signal)
            irqs.append(core.o_irq)
        m.d.comb += [
            self.o_irq.eq(Cat(*irqs).any()),
            self.o_lights.busy.eq(Cat(*(regs.i_lights[k].busy for k in range(n))).any()),
            self.o_lights.done.eq(Cat(*(regs.i_lights[k].done for k in range(n))).any()),
            self.o_lights.error.eq(Cat(*(regs.i_lights[k].error for k in range(n))).any()),
        ]
        return m
