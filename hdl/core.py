"""One NeuronCore: controller, engines, on-chip memories, host interface, one AXI4 port.

:class:`Core` is the engines and memories behind the controller, driven by plain
signals; :class:`NeuronCore` adds the AXI4-Lite :class:`~hdl.host.HostInterface`, whose
SOFT_RESET resets everything in :class:`Core` (not the memories' contents). The block
diagram and the memory clients are described in ``docs/core.md``.
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4LiteSignature, AXIInFlight
from .config import CoreConfig, check_config
from .controller import Controller
from .dma import DMAEngine
from .host import HostInterface
from .interfaces import (ChipLink, ConfigComponent, FETCH_ID, CoreControl, CoreStatus,
                         StatusLights, axi_signature)
from .memory import MemorySubsystem
from .tensor_engine import TensorEngine
from .vector import VectorEngine

__all__ = ["AXIJoin", "Core", "NeuronCore"]


class AXIJoin(ConfigComponent):
    """Three AXI4 managers onto one port: the instruction fetch and the DMA-in engine
    share AR/R, the DMA-out engine owns AW/W/B.

    AR requests pass through one register stage, granted alternately when both
    managers ask (a request waiting is served within two grants). R beats go back by
    ``RID``: :data:`~hdl.interfaces.FETCH_ID` to the fetcher, any other ID to DMA-in.
    The fetcher's and DMA-in's write channels and DMA-out's read channels are never
    used and are held idle.

    While ``i_quiesce`` is high no new burst starts: no AR request enters the register
    stage, and an AW that DMA-out raises is not shown on the port (DMA-out keeps it
    until ``awready``, so nothing is lost). An AR or AW already on the port stays until
    accepted (AXI forbids withdrawing a valid), and R, W and B of bursts in flight pass
    as usual, so every burst already started completes (SOFT_RESET waits for that).

    Members
    -------
    i_fetch, i_dma_in, i_dma_out : In(AXI4Signature)   the managers
    m_axi : Out(AXI4Signature)                          the shared port
    i_quiesce : In(1)                                   start no new burst
    """

    def __init__(self, config: CoreConfig):
        sig = axi_signature(config)
        super().__init__(config, {
            "i_fetch": In(sig), "i_dma_in": In(sig), "i_dma_out": In(sig), "m_axi": Out(sig),
            "i_quiesce": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        f, d, w, o = self.i_fetch, self.i_dma_in, self.i_dma_out, self.m_axi
        # ---- AR: register slice with a two-way alternating grant -------------------
        fields = ("arid", "araddr", "arlen", "arsize", "arburst", "arlock", "arcache", "arprot")
        last_fetch = Signal()
        free = ~o.arvalid | o.arready
        go = ~self.i_quiesce
        pick_f = go & f.arvalid & (~d.arvalid | ~last_fetch)
        pick_d = go & d.arvalid & ~pick_f
        m.d.comb += [f.arready.eq(free & pick_f), d.arready.eq(free & pick_d)]
        with m.If(free):
            m.d.sync += o.arvalid.eq(pick_f | pick_d)
            with m.If(pick_f):
                m.d.sync += [getattr(o, n).eq(getattr(f, n)) for n in fields]
                m.d.sync += last_fetch.eq(1)
            with m.Elif(pick_d):
                m.d.sync += [getattr(o, n).eq(getattr(d, n)) for n in fields]
                m.d.sync += last_fetch.eq(0)
        # ---- R: by ID ----------------------------------------------------------------
        to_f = o.rid == FETCH_ID
        for mgr, sel in ((f, to_f), (d, ~to_f)):
            m.d.comb += [
                mgr.rid.eq(o.rid), mgr.rdata.eq(o.rdata), mgr.rresp.eq(o.rresp),
                mgr.rlast.eq(o.rlast), mgr.rvalid.eq(o.rvalid & sel),
            ]
        m.d.comb += o.rready.eq(Mux(to_f, f.rready, d.rready))
        # ---- AW/W/B: DMA-out alone -------------------------------------------------------
        for n in ("awid", "awaddr", "awlen", "awsize", "awburst", "awlock", "awcache", "awprot",
                  "wdata", "wstrb", "wlast", "wvalid", "bready"):
            m.d.comb += getattr(o, n).eq(getattr(w, n))
        # an AW shown on the port and not yet accepted must stay there, quiesce or not;
        # DMA-out sends W beats only for accepted AWs, so W needs no gate
        aw_shown = Signal()
        aw_pass = Signal()
        m.d.comb += aw_pass.eq(~self.i_quiesce | aw_shown)
        m.d.sync += aw_shown.eq(o.awvalid & ~o.awready)
        m.d.comb += [
            o.awvalid.eq(w.awvalid & aw_pass),
            w.awready.eq(o.awready & aw_pass), w.wready.eq(o.wready),
            w.bid.eq(o.bid), w.bresp.eq(o.bresp), w.bvalid.eq(o.bvalid),
            # unused channels: never ready, never valid
            f.awready.eq(0), f.wready.eq(0), f.bvalid.eq(0),
            d.awready.eq(0), d.wready.eq(0), d.bvalid.eq(0),
            w.arready.eq(0), w.rvalid.eq(0),
        ]
        return m


class Core(ConfigComponent):
    """The controller, the four engines and the memory subsystem.

    Memory clients (round-robin per port, see ``docs/memory.md``): SBUF reads (0) the
    tensor engine's stationary fetcher, (1) its moving fetcher, (2) the vector engine,
    (3) DMA-out; SBUF writes (0) DMA-in, (1) the vector engine, (2) other cores' peer
    stores (``i_peer_wr``, on a chip). PSUM write: the tensor engine; PSUM reads (0)
    the vector engine, (1) DMA-out.

    Members
    -------
    m_axi : Out(AXI4Signature)      the core's only bus port (fetch + DMA)
    ctrl : In(CoreControl)          start, program address, watchdog, DMA window; quiesce
                                    (to :class:`AXIJoin`: no new AXI burst)
    status : Out(CoreStatus)        run state, the last fault, per-cycle counter increments
    i_cores, o_signal, i_signal, i_peer_wr    only with ``chip=True``, the chip's side
                                    (:class:`ChipLink`): the core count, cross-core signals
                                    out and in, peer stores into this core's SBUF. Without
                                    ``chip`` none of that logic is built (no peer aperture,
                                    remote SEMs fault with PEER)
    """

    def __init__(self, config: CoreConfig, *, chip=False):
        check_config(config)
        self._chip = bool(chip)
        link = ChipLink(config).members
        super().__init__(config, {
            "m_axi": Out(axi_signature(config)),
            "ctrl": In(CoreControl()),
            "status": Out(CoreStatus()),
            **({n: link[n] for n in ("i_cores", "o_signal", "i_signal", "i_peer_wr")}
               if chip else {}),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        chip = self._chip
        ctl = m.submodules.controller = Controller(cfg, chip=chip)
        mem = m.submodules.mem = MemorySubsystem(cfg, sbuf_read=4, sbuf_write=3 if chip else 2,
                                                 psum_read=2, psum_write=1)
        te = m.submodules.tensor = TensorEngine(cfg)
        ve = m.submodules.vector = VectorEngine(cfg)
        din = m.submodules.dma_in = DMAEngine(cfg, chip=chip)
        dout = m.submodules.dma_out = DMAEngine(cfg, chip=chip)
        join = m.submodules.axi = AXIJoin(cfg)

        wiring.connect(m, ctl.m_axi, join.i_fetch)
        wiring.connect(m, din.m_axi, join.i_dma_in)
        wiring.connect(m, dout.m_axi, join.i_dma_out)
        wiring.connect(m, join.m_axi, wiring.flipped(self.m_axi))

        # controller <-> engines
        wiring.connect(m, ctl.o_dma_in, din.i_desc)
        wiring.connect(m, din.o_done, ctl.i_dma_in_done)
        wiring.connect(m, ctl.o_dma_out, dout.i_desc)
        wiring.connect(m, dout.o_done, ctl.i_dma_out_done)
        wiring.connect(m, ctl.o_tensor, te.i_cmd)
        wiring.connect(m, ctl.o_vector, ve.i_cmd)
        wiring.connect(m, te.status, ctl.tensor)
        wiring.connect(m, ve.status, ctl.vector)
        m.d.comb += [te.i_perf_clear.eq(0), ve.i_perf_clear.eq(0)]

        # memories
        wiring.connect(m, te.s_rd, mem.sbuf_rd[0])
        wiring.connect(m, te.x_rd, mem.sbuf_rd[1])
        wiring.connect(m, ve.sbuf_rd, mem.sbuf_rd[2])
        wiring.connect(m, dout.sbuf_rd, mem.sbuf_rd[3])
        wiring.connect(m, din.sbuf_wr, mem.sbuf_wr[0])
        wiring.connect(m, ve.sbuf_wr, mem.sbuf_wr[1])
        if chip:
            # the chip: peer stores into SBUF, core count, cross-core signals
            wiring.connect(m, wiring.flipped(self.i_peer_wr), mem.sbuf_wr[2])
            m.d.comb += [ctl.i_cores.eq(self.i_cores), din.i_cores.eq(self.i_cores),
                         dout.i_cores.eq(self.i_cores)]
            wiring.connect(m, ctl.o_remote, wiring.flipped(self.o_signal))
            wiring.connect(m, wiring.flipped(self.i_signal), ctl.i_remote)
        wiring.connect(m, te.psum_wr, mem.psum_wr[0])
        wiring.connect(m, ve.psum_rd, mem.psum_rd[0])
        wiring.connect(m, dout.psum_rd, mem.psum_rd[1])
        # DMA-in never reads on chip, DMA-out never writes SBUF (the controller routes
        # descriptors by direction): those ports stay idle.
        m.d.comb += [
            din.sbuf_rd.req.ready.eq(0), din.sbuf_rd.resp.valid.eq(0),
            din.psum_rd.req.ready.eq(0), din.psum_rd.resp.valid.eq(0),
            dout.sbuf_wr.ready.eq(0),
        ]

        ctrl, st = self.ctrl, self.status
        m.d.comb += [
            join.i_quiesce.eq(ctrl.quiesce),
            ctl.i_engine_busy.eq(din.o_busy | dout.o_busy | te.o_busy | mem.o_busy | ve.o_busy),
            din.i_win_base.eq(ctrl.win_base), din.i_win_limit.eq(ctrl.win_limit),
            dout.i_win_base.eq(ctrl.win_base), dout.i_win_limit.eq(ctrl.win_limit),
            st.busy_dma_in.eq(din.o_busy),
            st.busy_dma_out.eq(dout.o_busy),
            st.busy_tensor.eq(te.o_busy | mem.o_busy),
            st.busy_vector.eq(ve.o_busy),
            st.active.eq(te.o_fire),
        ]
        wiring.connect(m, wiring.flipped(ctrl.run), ctl.ctrl)
        wiring.connect(m, ctl.status, wiring.flipped(st.run))
        return m


class NeuronCore(ConfigComponent):
    """A complete core: :class:`Core` behind an AXI4-Lite :class:`~hdl.host.HostInterface`.

    The host writes PROG_ADDR, the DMA window, WATCHDOG and IRQ_ENABLE, then START; the
    core fetches and runs the program over ``m_axi`` and raises ``o_irq`` on done or on
    a fault. SOFT_RESET resets the whole core except the host interface and the
    contents of SBUF and PSUM, once every AXI burst in flight has completed (an
    :class:`~hdl.axi.AXIInFlight` monitor on ``m_axi``, outside the reset, tells the host
    interface; ``docs/core.md``). Register map: ``docs/registers.md``.

    Members
    -------
    s_axil : In(AXI4LiteSignature(addr_width=12))
    m_axi : Out(AXI4Signature)
    o_irq : Out(1)
    o_lights : Out(StatusLights)    STATUS.BUSY, DONE, ERROR as levels (a board's LEDs)
    chip : Out(ChipLink)            only with ``chip=True`` (a core of
                                    :class:`~hdl.chip.Chip`): the core count, cross-core
                                    signals, peer stores, the chip's START and SOFT_RESET
    """

    def __init__(self, config: CoreConfig, *, chip=False):
        check_config(config)
        self._chip = bool(chip)
        super().__init__(config, {
            "s_axil": In(AXI4LiteSignature(addr_width=12)),
            "m_axi": Out(axi_signature(config)),
            "o_irq": Out(1),
            "o_lights": Out(StatusLights),
            **({"chip": Out(ChipLink(config))} if chip else {}),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        host = m.submodules.host = HostInterface(cfg)
        core = Core(cfg, chip=self._chip)
        if self._chip:
            link = self.chip
            m.d.comb += [core.i_cores.eq(link.i_cores), host.i_start.eq(link.i_start),
                         host.i_soft_reset.eq(link.i_soft_reset)]
            wiring.connect(m, core.o_signal, wiring.flipped(link.o_signal))
            wiring.connect(m, wiring.flipped(link.i_signal), core.i_signal)
            wiring.connect(m, wiring.flipped(link.i_peer_wr), core.i_peer_wr)
        # off a chip the core has no chip logic at all (Core(chip=False)); the host
        # interface's chip START/SOFT_RESET inputs stay 0
        soft = Signal()
        m.submodules.core = ResetInserter({"sync": soft})(core)
        m.d.comb += soft.eq(host.o_soft_reset)
        wiring.connect(m, wiring.flipped(self.s_axil), host.s_axil)
        wiring.connect(m, core.m_axi, wiring.flipped(self.m_axi))
        wiring.connect(m, host.ctrl, core.ctrl)
        wiring.connect(m, core.status, host.status)
        # at most dma_outstanding DMA-in bursts and one instruction fetch burst read at a
        # time; dma_outstanding DMA-out bursts write
        mon = m.submodules.in_flight = AXIInFlight(cfg.dma_outstanding + 1)
        a = self.m_axi
        m.d.comb += [getattr(mon, f"i_{n}").eq(getattr(a, n)) for n in (
            "arvalid", "arready", "rvalid", "rready", "rlast",
            "awvalid", "awready", "bvalid", "bready")]
        m.d.comb += [host.i_bus_busy.eq(mon.o_busy), self.o_irq.eq(host.o_irq),
                     self.o_lights.eq(host.o_lights)]
        return m
