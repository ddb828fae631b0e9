"""One NeuronCore: controller, engines, on-chip memories, host interface, one AXI4 port.

:class:`Core` is the engines and memories behind the controller, driven by plain
signals; :class:`NeuronCore` adds the AXI4-Lite :class:`~hdl.host.HostInterface`, whose
SOFT_RESET resets everything in :class:`Core` (not the memories' contents). The block
diagram and the memory clients are described in ``docs/core.md``.
"""

from amaranth.hdl import Module, Mux, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import CoreConfig
from .controller import FETCH_ID, MACS_WIDTH, Controller, axi_signature
from .dma import DMAEngine
from .isa import CoreError
from .psum import PSUM
from .sbuf import SBUF
from .tensor_engine import TensorEngine
from .vector import VectorEngine

__all__ = ["AXIJoin", "Core", "NeuronCore"]


class AXIJoin(wiring.Component):
    """Three AXI4 managers onto one port: the instruction fetch and the DMA-in engine
    share AR/R, the DMA-out engine owns AW/W/B.

    AR requests pass through one register stage, granted alternately when both
    managers ask (a request waiting is served within two grants). R beats go back by
    ``RID``: :data:`~hdl.controller.FETCH_ID` to the fetcher, any other ID to DMA-in.
    The fetcher's and DMA-in's write channels and DMA-out's read channels are never
    used and are held idle.

    Members
    -------
    i_fetch, i_dma_in, i_dma_out : In(AXI4Signature)   the managers
    m_axi : Out(AXI4Signature)                          the shared port
    """

    def __init__(self, config: CoreConfig):
        sig = axi_signature(config)
        super().__init__({
            "i_fetch": In(sig), "i_dma_in": In(sig), "i_dma_out": In(sig), "m_axi": Out(sig),
        })

    def elaborate(self, platform):
        m = Module()
        f, d, w, o = self.i_fetch, self.i_dma_in, self.i_dma_out, self.m_axi
        # ---- AR: register slice with a two-way alternating grant -------------------
        fields = ("arid", "araddr", "arlen", "arsize", "arburst", "arlock", "arcache", "arprot")
        last_fetch = Signal()
        free = ~o.arvalid | o.arready
        pick_f = f.arvalid & (~d.arvalid | ~last_fetch)
        pick_d = d.arvalid & ~pick_f
        m.d.comb += [f.arready.eq(free & pick_f), d.arready.eq(free & pick_d)]
        with m.If(free):
            m.d.sync += o.arvalid.eq(f.arvalid | d.arvalid)
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
                  "awvalid", "wdata", "wstrb", "wlast", "wvalid", "bready"):
            m.d.comb += getattr(o, n).eq(getattr(w, n))
        m.d.comb += [
            w.awready.eq(o.awready), w.wready.eq(o.wready),
            w.bid.eq(o.bid), w.bresp.eq(o.bresp), w.bvalid.eq(o.bvalid),
            # unused channels: never ready, never valid
            f.awready.eq(0), f.wready.eq(0), f.bvalid.eq(0),
            d.awready.eq(0), d.wready.eq(0), d.bvalid.eq(0),
            w.arready.eq(0), w.rvalid.eq(0),
        ]
        return m


class Core(wiring.Component):
    """The controller, the four engines and the two on-chip memories.

    Memory clients (round-robin per port, see ``docs/memory.md``): SBUF reads (0) the
    tensor engine's stationary fetcher, (1) its moving fetcher, (2) the vector engine,
    (3) DMA-out; SBUF writes (0) DMA-in, (1) the vector engine. PSUM write: the tensor
    engine; PSUM reads (0) the vector engine, (1) DMA-out.

    Members
    -------
    m_axi : Out(AXI4Signature)      the core's only bus port (fetch + DMA)
    i_start, i_prog_addr, i_watchdog, o_busy, o_done, o_fault, o_error_code,
    o_error_detail, o_fault_addr, o_retired, o_macs : see :class:`~hdl.controller.Controller`
    i_win_base, i_win_limit : In(49)   DMA window (both DMA engines)
    o_busy_dma_in, o_busy_dma_out, o_busy_tensor, o_busy_vector : Out(1)
    o_active : Out(1)                  a moving column enters the array
    """

    def __init__(self, config: CoreConfig):
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, not {config!r}")
        self._config = config
        super().__init__({
            "m_axi": Out(axi_signature(config)),
            "i_start": In(1),
            "i_prog_addr": In(48),
            "i_watchdog": In(32),
            "i_win_base": In(49),
            "i_win_limit": In(49),
            "o_busy": Out(1),
            "o_done": Out(1),
            "o_fault": Out(1),
            "o_error_code": Out(CoreError),
            "o_error_detail": Out(8),
            "o_fault_addr": Out(48),
            "o_retired": Out(3),
            "o_macs": Out(MACS_WIDTH),
            "o_busy_dma_in": Out(1),
            "o_busy_dma_out": Out(1),
            "o_busy_tensor": Out(1),
            "o_busy_vector": Out(1),
            "o_active": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        ctl = m.submodules.controller = Controller(cfg)
        sbuf = m.submodules.sbuf = SBUF(cfg, n_read=4, n_write=2)
        psum = m.submodules.psum = PSUM(cfg, n_read=2, n_write=1)
        te = m.submodules.tensor = TensorEngine(cfg)
        ve = m.submodules.vector = VectorEngine(cfg)
        din = m.submodules.dma_in = DMAEngine(cfg)
        dout = m.submodules.dma_out = DMAEngine(cfg)
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
        m.d.comb += [
            ctl.i_tensor_done.eq(te.o_done),
            ctl.i_tensor_error.eq(te.o_error),
            ctl.i_tensor_error_code.eq(te.o_error_code),
            te.i_error_clear.eq(ctl.o_tensor_error_clear),
            ctl.i_vector_done.eq(ve.o_done),
            ctl.i_vector_error.eq(ve.o_error),
            ctl.i_vector_error_code.eq(ve.o_error_code),
            ve.i_error_clear.eq(ctl.o_vector_error_clear),
            te.i_perf_clear.eq(0),
            ve.i_perf_clear.eq(0),
        ]

        # memories
        wiring.connect(m, te.o_sreq, sbuf.i_rd0)
        wiring.connect(m, sbuf.o_rd0, te.i_sresp)
        wiring.connect(m, te.o_xreq, sbuf.i_rd1)
        wiring.connect(m, sbuf.o_rd1, te.i_xresp)
        wiring.connect(m, ve.o_sbuf_rd, sbuf.i_rd2)
        wiring.connect(m, sbuf.o_rd2, ve.i_sbuf_rd)
        wiring.connect(m, dout.o_sbuf_rd, sbuf.i_rd3)
        wiring.connect(m, sbuf.o_rd3, dout.i_sbuf_rd)
        wiring.connect(m, din.o_sbuf_wr, sbuf.i_wr0)
        wiring.connect(m, ve.o_sbuf_wr, sbuf.i_wr1)
        wiring.connect(m, te.o_psum, psum.i_wr0)
        wiring.connect(m, ve.o_psum_rd, psum.i_rd0)
        wiring.connect(m, psum.o_rd0, ve.i_psum_rd)
        wiring.connect(m, dout.o_psum_rd, psum.i_rd1)
        wiring.connect(m, psum.o_rd1, dout.i_psum_rd)
        # DMA-in never reads on chip, DMA-out never writes SBUF (the controller routes
        # descriptors by direction): those ports stay idle.
        m.d.comb += [
            din.o_sbuf_rd.ready.eq(0), din.i_sbuf_rd.valid.eq(0),
            din.o_psum_rd.ready.eq(0), din.i_psum_rd.valid.eq(0),
            dout.o_sbuf_wr.ready.eq(0),
        ]

        m.d.comb += [
            ctl.i_start.eq(self.i_start),
            ctl.i_engine_busy.eq(din.o_busy | dout.o_busy | te.o_busy | psum.o_busy | ve.o_busy),
            ctl.i_prog_addr.eq(self.i_prog_addr),
            ctl.i_watchdog.eq(self.i_watchdog),
            din.i_win_base.eq(self.i_win_base), din.i_win_limit.eq(self.i_win_limit),
            dout.i_win_base.eq(self.i_win_base), dout.i_win_limit.eq(self.i_win_limit),
            self.o_busy.eq(ctl.o_busy),
            self.o_done.eq(ctl.o_done),
            self.o_fault.eq(ctl.o_fault),
            self.o_error_code.eq(ctl.o_error_code),
            self.o_error_detail.eq(ctl.o_error_detail),
            self.o_fault_addr.eq(ctl.o_fault_addr),
            self.o_retired.eq(ctl.o_retired),
            self.o_macs.eq(ctl.o_macs),
            self.o_busy_dma_in.eq(din.o_busy),
            self.o_busy_dma_out.eq(dout.o_busy),
            self.o_busy_tensor.eq(te.o_busy | psum.o_busy),
            self.o_busy_vector.eq(ve.o_busy),
            self.o_active.eq(te.o_fire),
        ]
        return m


class NeuronCore(wiring.Component):
    """A complete core: :class:`Core` behind an AXI4-Lite :class:`~hdl.host.HostInterface`.

    The host writes PROG_ADDR, the DMA window, WATCHDOG and IRQ_ENABLE, then START; the
    core fetches and runs the program over ``m_axi`` and raises ``o_irq`` on done or on
    a fault. SOFT_RESET resets the whole core except the host interface and the
    contents of SBUF and PSUM. Register map: ``docs/registers.md``.

    Members
    -------
    s_axil : In(AXI4LiteSignature(addr_width=12))
    m_axi : Out(AXI4Signature)
    o_irq : Out(1)
    """

    def __init__(self, config: CoreConfig):
        from .axi import AXI4LiteSignature
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, not {config!r}")
        self._config = config
        super().__init__({
            "s_axil": In(AXI4LiteSignature(addr_width=12)),
            "m_axi": Out(axi_signature(config)),
            "o_irq": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        from .host import HostInterface
        cfg = self._config
        m = Module()
        host = m.submodules.host = HostInterface(cfg)
        core = Core(cfg)
        soft = Signal()
        m.submodules.core = ResetInserter({"sync": soft})(core)
        m.d.comb += soft.eq(host.o_soft_reset)
        wiring.connect(m, wiring.flipped(self.s_axil), host.s_axil)
        wiring.connect(m, core.m_axi, wiring.flipped(self.m_axi))
        m.d.comb += [
            self.o_irq.eq(host.o_irq),
            core.i_start.eq(host.o_start),
            core.i_prog_addr.eq(host.o_prog_addr),
            core.i_watchdog.eq(host.o_watchdog),
            core.i_win_base.eq(host.o_win_base),
            core.i_win_limit.eq(host.o_win_limit),
            host.i_busy.eq(core.o_busy),
            host.i_done.eq(core.o_done),
            host.i_fault.eq(core.o_fault),
            host.i_error_code.eq(core.o_error_code),
            host.i_error_detail.eq(core.o_error_detail),
            host.i_fault_addr.eq(core.o_fault_addr),
            host.i_busy_dma_in.eq(core.o_busy_dma_in),
            host.i_busy_dma_out.eq(core.o_busy_dma_out),
            host.i_busy_tensor.eq(core.o_busy_tensor),
            host.i_busy_vector.eq(core.o_busy_vector),
            host.i_active.eq(core.o_active),
            host.i_macs.eq(core.o_macs),
            host.i_retired.eq(core.o_retired),
        ]
        return m
