"""AMBA AXI4 (full) port signature, and a read-latency shim for testing.

Signal names follow the AXI specification (``araddr``, ``rvalid``, ...). A port named
``m_axi`` appears in Verilog as ``m_axi__araddr`` etc.; cocotbext-axi finds it with
``AxiBus.from_prefix(dut, "m_axi_")``.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

__all__ = ["AXI4Signature", "AXI4LiteSignature", "AXIResp", "AXIReadLatency", "AXIInFlight",
           "serve_axi4_writes"]


class AXIResp:
    """``RRESP``/``BRESP`` codes."""
    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


class AXI4Signature(wiring.Signature):
    """An AXI4 manager (master) port: AR, R, AW, W, B channels, INCR bursts.

    Parameters
    ----------
    addr_width, data_bytes, id_width : int
    """

    def __init__(self, *, addr_width, data_bytes, id_width):
        self.addr_width = addr_width
        self.data_bytes = data_bytes
        self.id_width = id_width
        dw = 8 * data_bytes
        members = {}
        for ch in ("ar", "aw"):
            members.update({
                f"{ch}id": Out(id_width), f"{ch}addr": Out(addr_width), f"{ch}len": Out(8),
                f"{ch}size": Out(3), f"{ch}burst": Out(2), f"{ch}lock": Out(1),
                f"{ch}cache": Out(4), f"{ch}prot": Out(3), f"{ch}valid": Out(1),
                f"{ch}ready": In(1),
            })
        members.update({
            "rid": In(id_width), "rdata": In(dw), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
            "wdata": Out(dw), "wstrb": Out(data_bytes), "wlast": Out(1), "wvalid": Out(1),
            "wready": In(1),
            "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        })
        super().__init__(members)

    def __eq__(self, other):
        return (isinstance(other, AXI4Signature) and other.addr_width == self.addr_width
                and other.data_bytes == self.data_bytes and other.id_width == self.id_width)

    def __repr__(self):
        return (f"AXI4Signature(addr_width={self.addr_width}, data_bytes={self.data_bytes}, "
                f"id_width={self.id_width})")


class AXIReadLatency(wiring.Component):
    """Holds every read request (AR) for ``latency`` cycles (at least two, the internal
    FIFO's own latency) before passing it on.

    Placed between a manager and a memory model, it turns a fast memory into one with
    ``latency`` extra cycles from address to first data, as DRAM behind an
    interconnect has, while keeping up to ``depth`` requests in flight. Everything but
    AR passes straight through. For testing and benchmarks, not for synthesis.

    Members
    -------
    i_axi : In(AXI4Signature)   (the manager side)
    o_axi : Out(AXI4Signature)  (the memory side)
    """

    def __init__(self, signature: AXI4Signature, *, latency=20, depth=16):
        if latency < 1:
            raise ValueError(f"latency must be at least 1, not {latency!r}")
        self._sig = signature
        self._latency = latency
        self._depth = depth
        super().__init__({"i_axi": In(signature), "o_axi": Out(signature)})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i_axi, self.o_axi
        ar = ("arid", "araddr", "arlen", "arsize", "arburst", "arlock", "arcache", "arprot")
        for name, member in self._sig.members.items():
            if name.startswith("ar"):
                continue
            if member.flow == Out:
                m.d.comb += getattr(o, name).eq(getattr(i, name))
            else:
                m.d.comb += getattr(i, name).eq(getattr(o, name))
        now = Signal(16)
        m.d.sync += now.eq(now + 1)
        payload = Cat(*(getattr(i, n) for n in ar), now)
        fifo = m.submodules.fifo = SyncFIFOBuffered(width=len(payload), depth=self._depth)
        m.d.comb += [
            fifo.w_data.eq(payload),
            fifo.w_en.eq(i.arvalid & fifo.w_rdy),
            i.arready.eq(fifo.w_rdy),
        ]
        out = Cat(*(getattr(o, n) for n in ar))
        stamp = fifo.r_data[len(out):]
        ripe = (now - stamp)[:16] >= self._latency
        m.d.comb += [
            out.eq(fifo.r_data[:len(out)]),
            o.arvalid.eq(fifo.r_rdy & ripe),
            fifo.r_en.eq(o.arready & ripe),
        ]
        return m


class AXI4LiteSignature(wiring.Signature):
    """An AXI4-Lite manager (master) port: AW, W, B, AR, R channels, one beat each.

    A subordinate (slave) port is ``In(AXI4LiteSignature(...))``. A port named ``s_axil``
    appears in Verilog as ``s_axil__awaddr`` etc.; cocotbext-axi finds it with
    ``AxiLiteBus.from_prefix(dut, "s_axil_")``.

    Parameters
    ----------
    addr_width : int
    data_bytes : int
        4 (32-bit data) or 8 (64-bit data), as the AXI4-Lite specification allows.
    """

    def __init__(self, *, addr_width, data_bytes=4):
        if isinstance(addr_width, bool) or not isinstance(addr_width, int) or addr_width < 1:
            raise ValueError(f"addr_width must be a positive integer, not {addr_width!r}")
        if data_bytes not in (4, 8):
            raise ValueError(f"data_bytes must be 4 or 8, not {data_bytes!r}")
        self.addr_width = addr_width
        self.data_bytes = data_bytes
        dw = 8 * data_bytes
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(dw), "wstrb": Out(data_bytes), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(dw), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    def __eq__(self, other):
        return (isinstance(other, AXI4LiteSignature) and other.addr_width == self.addr_width
                and other.data_bytes == self.data_bytes)

    def __repr__(self):
        return f"AXI4LiteSignature(addr_width={self.addr_width}, data_bytes={self.data_bytes})"


class AXIInFlight(wiring.Component):
    """Watches an AXI4 manager port and says whether any transaction is in flight.

    A manager may not simply forget a transaction: a subordinate that accepted an AR
    still sends its R beats, and one that accepted an AW waits for its W beats and
    then sends B. The core's SOFT_RESET therefore waits until this monitor reports the
    port idle (``docs/core.md``, "SOFT_RESET"). It lives outside the reset domain it
    watches, so its counts survive that reset.

    In flight: an AR or AW shown and not yet accepted (its valid cannot be withdrawn),
    a read burst from AR acceptance to its last R beat, a write burst from AW
    acceptance to its B response (which the subordinate sends only after the last W
    beat, so the W beats are covered).

    Parameters
    ----------
    max_bursts : int
        Most read (and, separately, write) bursts the manager can have in flight; the
        counters are sized for it and must never exceed it.

    Members
    -------
    i_arvalid, i_arready, i_rvalid, i_rready, i_rlast, i_awvalid, i_awready, i_bvalid, i_bready : In(1)
        The port's handshake signals.
    o_busy : Out(1)
        Something is in flight (combinational from the counters and the valids).
    o_reads, o_writes : Out(range(max_bursts + 1))
        Read and write bursts accepted and not yet finished.
    """

    def __init__(self, max_bursts):
        if isinstance(max_bursts, bool) or not isinstance(max_bursts, int) or max_bursts < 1:
            raise ValueError(f"max_bursts must be a positive integer, not {max_bursts!r}")
        self._max = max_bursts
        members = {f"i_{n}": In(1) for n in ("arvalid", "arready", "rvalid", "rready", "rlast",
                                              "awvalid", "awready", "bvalid", "bready")}
        members.update({"o_busy": Out(1), "o_reads": Out(range(max_bursts + 1)),
                        "o_writes": Out(range(max_bursts + 1))})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ar = self.i_arvalid & self.i_arready
        r_end = self.i_rvalid & self.i_rready & self.i_rlast
        aw = self.i_awvalid & self.i_awready
        b = self.i_bvalid & self.i_bready
        m.d.sync += [self.o_reads.eq(self.o_reads + ar - r_end),
                     self.o_writes.eq(self.o_writes + aw - b)]
        m.d.comb += self.o_busy.eq(self.i_arvalid | self.i_awvalid
                                   | (self.o_reads != 0) | (self.o_writes != 0))
        return m


def serve_axi4_writes(m, bus, *, size, outstanding, aw_gate=1, w_gate=1, b_latency=0):
    """The write half of an in-order AXI4 memory subordinate on ``bus`` (the
    subordinate's view of an :class:`AXI4Signature`), added to module ``m``: the memory
    models (:class:`hdl.tops.simdram.SimDram`) and the board's block-RAM DRAM window
    (:class:`hdl.board.BlockRamDram`) share it.

    Up to ``outstanding`` AW requests are queued (submodule ``awq``); their bursts are
    taken one at a time, in order, INCR, one W beat a cycle at most, each beat at the
    next word address. A beat at or beyond ``size`` bytes is not written and makes its
    burst's response DECERR. The B responses wait in their own queue (``bq``), so W
    beats are refused only when it is full. ``aw_gate``/``w_gate`` (1-bit values) can
    hold off AW and W acceptance (random stalls, a host port that takes the memory).
    ``b_latency`` > 0: each B response is held until that many cycles after its last
    beat was written (a memory controller's write-acknowledge latency; 0: the cycle
    after).

    Returns ``(fire, ok, addr)``: a W beat is taken this cycle; it lies inside the
    memory; its byte address. The caller writes ``bus.wdata`` under ``bus.wstrb`` at
    ``addr`` when ``fire & ok``.
    """
    aw, idw = len(bus.awaddr), len(bus.awid)
    nb = len(bus.wstrb)
    awq = m.submodules.awq = SyncFIFOBuffered(width=aw + idw, depth=outstanding)
    m.d.comb += [
        bus.awready.eq(awq.w_rdy & aw_gate),
        awq.w_en.eq(bus.awvalid & bus.awready),
        awq.w_data.eq(Cat(bus.awaddr, bus.awid)),
    ]
    w_addr = Signal(aw)
    w_id = Signal(idw)
    w_busy = Signal()
    w_err = Signal()
    tw = 32 if b_latency else 0           # the B queue's due-time field
    bq = m.submodules.bq = SyncFIFOBuffered(width=idw + 2 + tw, depth=outstanding)
    if b_latency:
        now = Signal(32, name="b_now")
        m.d.sync += now.eq(now + 1)
        b_due = (now - bq.r_data[idw + 2:])[31] == 0      # now >= due, modulo 2**32
    with m.If(~w_busy & awq.r_rdy):
        m.d.comb += awq.r_en.eq(1)
        m.d.sync += [w_busy.eq(1), w_addr.eq(awq.r_data[:aw]), w_id.eq(awq.r_data[aw:]),
                     w_err.eq(0)]
    w_ok = w_addr < size
    m.d.comb += bus.wready.eq(w_busy & bq.w_rdy & w_gate)
    w_fire = bus.wvalid & bus.wready
    m.d.comb += [
        bq.w_en.eq(w_fire & bus.wlast),
        bq.w_data.eq(Cat(w_id, Mux(w_err | ~w_ok, AXIResp.DECERR, AXIResp.OKAY))),
        bus.bvalid.eq(bq.r_rdy & b_due if b_latency else bq.r_rdy),
        bus.bid.eq(bq.r_data[:idw]),
        bus.bresp.eq(bq.r_data[idw:idw + 2] if b_latency else bq.r_data[idw:]),
        bq.r_en.eq(bus.bready & b_due if b_latency else bus.bready),
    ]
    if b_latency:
        m.d.comb += bq.w_data[idw + 2:].eq(now + b_latency)
    with m.If(w_fire):
        m.d.sync += [w_addr.eq(w_addr + nb), w_err.eq(w_err | ~w_ok)]
        with m.If(bus.wlast):
            m.d.sync += w_busy.eq(0)
    return w_fire, w_ok, w_addr
