"""The pieces a board top puts around the NeuronCore: the core's DRAM window in block
RAM, shared with the host, and the host's address map.

On a board without (or before) a DRAM controller, the core's AXI4 port is served by
block RAM beside the core; the host (through :class:`hdl.uart.UARTBridge`) loads the
tensors and the program into that memory and reads the results back, and reaches the
core's registers, all over one AXI4-Lite port that :class:`HostDecoder` splits by
address (:data:`HOST_REG_BASE`, :data:`HOST_DRAM_BASE`). ``docs/board.md`` has the
address map.
"""

from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .axi import AXI4LiteSignature, AXIResp, serve_axi4_writes
from .config import CoreConfig, check_config, check_int_range
from .core import NeuronCore
from .interfaces import ConfigComponent, StatusLights, axi_signature
from .regmap import ADDR_WIDTH as REG_ADDR_WIDTH
from .uart import UARTBridge

__all__ = ["BlockRamDram", "HostDecoder", "BoardCore", "HOST_ADDR_WIDTH", "HOST_REG_BASE",
           "HOST_DRAM_BASE", "PLLSettings", "ecp5_pll_settings", "BOARD_BAUD",
           "BRIDGE_TIMEOUT_S"]

#: the host's byte address width (the UART bridge's port)
HOST_ADDR_WIDTH = 32
#: where the host sees the core's registers (``docs/registers.md``): 4 KiB
HOST_REG_BASE = 0x0000_0000
#: where the host sees the DRAM window: host address ``HOST_DRAM_BASE + a`` is the
#: core's DRAM address ``a`` (LiteX puts its main RAM here too)
HOST_DRAM_BASE = 0x4000_0000
#: the host link's baud rate on a board (the FTDI FT231X of the ULX3S reaches 3 Mbaud)
BOARD_BAUD = 3_000_000
#: a frame whose next byte does not come within this many seconds is abandoned
BRIDGE_TIMEOUT_S = 0.1


def _check_size(size, config: CoreConfig):
    lo = 4 * config.axi_data_bytes
    if (isinstance(size, bool) or not isinstance(size, int) or size < lo
            or size & (size - 1) or size > min(HOST_DRAM_BASE, 1 << config.axi_addr_width)):
        raise ValueError(f"size must be a power of two from {lo} to "
                         f"{min(HOST_DRAM_BASE, 1 << config.axi_addr_width)} bytes, "
                         f"not {size!r}")


class BlockRamDram(ConfigComponent):
    """``size`` bytes of block RAM behind two ports: the core's AXI4 port (``s_axi``)
    and the host's AXI4-Lite port (``s_axil``, 32-bit data, byte address within the
    memory).

    One memory of ``axi_data_bytes``-wide words with one synchronous read port and
    one write port (a simple dual-port block RAM). The core's bursts (INCR) are served
    in order, reads and writes independently, up to ``outstanding`` addresses queued
    per direction: a read beat every cycle once a burst is under way, one write beat
    every cycle. An access at or beyond ``size`` gets DECERR (reads return zero,
    writes change nothing). The host's accesses, one read and one write at a time,
    take the memory's port for one cycle each when they come, delaying the core's
    next beat by that cycle (a host read waits while the core holds a read beat it
    has not taken: the port's output register holds that beat).

    Members
    -------
    s_axi : In(AXI4Signature)    the core's port
    s_axil : In(AXI4LiteSignature(addr_width=log2(size)))    the host's port
    """

    def __init__(self, config: CoreConfig, *, size, outstanding=4):
        check_config(config)
        _check_size(size, config)
        check_int_range("outstanding", outstanding, 1, 64)
        self.size = size
        self.outstanding = outstanding
        super().__init__(config, {
            "s_axi": In(axi_signature(config)),
            "s_axil": In(AXI4LiteSignature(addr_width=exact_log2(size))),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        bus, host = self.s_axi, self.s_axil
        nb = cfg.axi_data_bytes
        lb = exact_log2(nb)
        aw = cfg.axi_addr_width
        idw = cfg.axi_id_width
        lanes = nb // 4
        mem = m.submodules.mem = Memory(shape=8 * nb, depth=self.size // nb, init=[])
        rd = mem.read_port()
        wr = mem.write_port(granularity=8)

        # ---- the host's port: one read and one write at a time -------------------------
        h_aw = Signal()                  # the host's write address is in
        h_w = Signal()                   # the host's write data is in
        h_waddr = Signal(len(host.awaddr))
        h_wdata = Signal(32)
        h_wstrb = Signal(4)
        h_b = host.bvalid                # its response is owed
        m.d.comb += [
            host.awready.eq(~h_aw & ~h_b), host.wready.eq(~h_w & ~h_b),
            host.bresp.eq(AXIResp.OKAY),
        ]
        with m.If(host.awvalid & host.awready):
            m.d.sync += [h_aw.eq(1), h_waddr.eq(host.awaddr)]
        with m.If(host.wvalid & host.wready):
            m.d.sync += [h_w.eq(1), h_wdata.eq(host.wdata), h_wstrb.eq(host.wstrb)]
        h_write = h_aw & h_w             # takes the write port this cycle
        with m.If(h_write):
            m.d.sync += [h_aw.eq(0), h_w.eq(0), h_b.eq(1)]
        with m.If(host.bvalid & host.bready):
            m.d.sync += h_b.eq(0)

        h_ar = Signal()                  # the host's read address is in
        h_raddr = Signal(len(host.araddr))
        h_got = Signal()                 # the port's output holds the host's word
        h_r = host.rvalid                # its response is owed
        m.d.comb += [
            host.arready.eq(~h_ar & ~h_got & ~h_r),
            host.rresp.eq(AXIResp.OKAY),
        ]
        with m.If(host.arvalid & host.arready):
            m.d.sync += [h_ar.eq(1), h_raddr.eq(host.araddr)]
        with m.If(host.rvalid & host.rready):
            m.d.sync += h_r.eq(0)

        def lane_of(addr):
            return addr[2:lb] if lanes > 1 else Const(0, 1)

        # ---- the core's reads ----------------------------------------------------------
        arq = m.submodules.arq = SyncFIFOBuffered(width=aw + 8 + idw, depth=self.outstanding)
        m.d.comb += [
            bus.arready.eq(arq.w_rdy),
            arq.w_en.eq(bus.arvalid & bus.arready),
            arq.w_data.eq(Cat(bus.araddr, bus.arlen, bus.arid)),
        ]
        r_busy = Signal()                # a burst is being fetched
        r_addr = Signal(aw)
        r_left = Signal(8)               # beats to fetch after this one
        r_id = Signal(idw)
        r_err = Signal()                 # the output beat is beyond the memory
        # the output register (the port's own) moves on when it is empty or being taken
        advance = ~bus.rvalid | bus.rready
        h_read = h_ar & advance          # the host's read takes the port this cycle
        fetch = r_busy & advance & ~h_read
        m.d.comb += [
            rd.en.eq(advance),
            rd.addr.eq(Mux(h_read, h_raddr[lb:], r_addr[lb:])),
            bus.rdata.eq(Mux(r_err, 0, rd.data)),
            bus.rresp.eq(Mux(r_err, AXIResp.DECERR, AXIResp.OKAY)),
        ]
        with m.If(advance):
            m.d.sync += [bus.rvalid.eq(fetch), bus.rlast.eq(r_left == 0),
                         r_err.eq(r_addr >= self.size), bus.rid.eq(r_id), h_got.eq(h_read)]
        with m.If(h_read):
            m.d.sync += h_ar.eq(0)
        with m.If(h_got):
            m.d.sync += [host.rdata.eq(rd.data.word_select(lane_of(h_raddr), 32)), h_r.eq(1),
                         h_got.eq(0)]
        with m.If(fetch):
            m.d.sync += [r_addr.eq(r_addr + nb), r_left.eq(r_left - 1)]
            with m.If(r_left == 0):
                m.d.sync += r_busy.eq(0)
        with m.If((~r_busy | (fetch & (r_left == 0))) & arq.r_rdy):
            m.d.comb += arq.r_en.eq(1)
            m.d.sync += [r_busy.eq(1), r_addr.eq(arq.r_data[:aw]),
                         r_left.eq(arq.r_data[aw:aw + 8]), r_id.eq(arq.r_data[aw + 8:])]

        # ---- the core's writes (a host write takes the port for its cycle) ------------
        w_fire, w_ok, w_addr = serve_axi4_writes(m, bus, size=self.size,
                                                 outstanding=self.outstanding,
                                                 w_gate=~h_write)
        h_strb = (h_wstrb << (4 * lane_of(h_waddr)))[:nb]
        m.d.comb += [
            wr.addr.eq(Mux(h_write, h_waddr[lb:], w_addr[lb:])),
            wr.data.eq(Mux(h_write, h_wdata.replicate(lanes), bus.wdata)),
            wr.en.eq(Mux(h_write, h_strb, Mux(w_fire & w_ok, bus.wstrb, 0))),
        ]
        return m


class HostDecoder(wiring.Component):
    """Splits the host's AXI4-Lite port (``s_axil``, 32-bit addresses) by address:
    ``[HOST_REG_BASE, +4 KiB)`` to the core's
    registers (``m_regs``), ``[HOST_DRAM_BASE, +dram_size)`` to the DRAM window
    (``m_dram``, the offset), anything else answered DECERR here (reads as 0).

    One write and one read are in flight at a time (each to any target); the address
    is decoded while AW/AR is offered (AXI keeps it stable until accepted) and AW, W,
    AR pass straight on to the chosen target, so a transaction costs no extra cycle.

    Members
    -------
    s_axil : In(AXI4LiteSignature(addr_width=32))
    m_regs : Out(AXI4LiteSignature(addr_width=12))
    m_dram : Out(AXI4LiteSignature(addr_width=log2(dram_size)))
    """

    def __init__(self, *, dram_size):
        if (isinstance(dram_size, bool) or not isinstance(dram_size, int) or dram_size < 8
                or dram_size & (dram_size - 1) or dram_size > HOST_DRAM_BASE):
            raise ValueError(f"dram_size must be a power of two from 8 to {HOST_DRAM_BASE} "
                             f"bytes, not {dram_size!r}")
        self.dram_size = dram_size
        super().__init__({
            "s_axil": In(AXI4LiteSignature(addr_width=HOST_ADDR_WIDTH)),
            "m_regs": Out(AXI4LiteSignature(addr_width=REG_ADDR_WIDTH)),
            "m_dram": Out(AXI4LiteSignature(addr_width=exact_log2(dram_size))),
        })

    def _target(self, addr):
        """(regs, dram) hit flags of a host address."""
        regs = addr[REG_ADDR_WIDTH:] == HOST_REG_BASE >> REG_ADDR_WIDTH
        db = exact_log2(self.dram_size)
        dram = addr[db:] == HOST_DRAM_BASE >> db
        return regs, dram

    def elaborate(self, platform):
        m = Module()
        s, regs, dram = self.s_axil, self.m_regs, self.m_dram
        for t in (regs, dram):
            m.d.comb += [t.awaddr.eq(s.awaddr), t.awprot.eq(s.awprot), t.wdata.eq(s.wdata),
                         t.wstrb.eq(s.wstrb), t.araddr.eq(s.araddr), t.arprot.eq(s.arprot)]

        # ---- writes: AW and W to the target, then its B --------------------------------
        w_sel = Signal(2)                # regs, dram (none: DECERR)
        aw_done, w_done = Signal(), Signal()
        w_err_b = Signal()
        with m.FSM(name="write"):
            with m.State("IDLE"):
                with m.If(s.awvalid):
                    m.d.sync += [w_sel.eq(Cat(*self._target(s.awaddr))), aw_done.eq(0),
                                 w_done.eq(0)]
                    m.next = "ADDR"
            with m.State("ADDR"):
                for k, t in enumerate((regs, dram)):
                    m.d.comb += [t.awvalid.eq(w_sel[k] & s.awvalid & ~aw_done),
                                 t.wvalid.eq(w_sel[k] & s.wvalid & ~w_done)]
                none = w_sel == 0
                awr = Mux(w_sel[0], regs.awready, Mux(w_sel[1], dram.awready, 1))
                wr_ = Mux(w_sel[0], regs.wready, Mux(w_sel[1], dram.wready, 1))
                m.d.comb += [s.awready.eq(awr & ~aw_done), s.wready.eq(wr_ & ~w_done)]
                with m.If(s.awvalid & s.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(s.wvalid & s.wready):
                    m.d.sync += w_done.eq(1)
                with m.If((aw_done | (s.awvalid & s.awready)) & (w_done | (s.wvalid & s.wready))):
                    m.d.sync += w_err_b.eq(none)
                    m.next = "RESP"
            with m.State("RESP"):
                for k, t in enumerate((regs, dram)):
                    m.d.comb += t.bready.eq(w_sel[k] & s.bready)
                m.d.comb += [
                    s.bvalid.eq(Mux(w_sel[0], regs.bvalid, Mux(w_sel[1], dram.bvalid, w_err_b))),
                    s.bresp.eq(Mux(w_sel[0], regs.bresp,
                                   Mux(w_sel[1], dram.bresp, AXIResp.DECERR))),
                ]
                with m.If(s.bvalid & s.bready):
                    m.next = "IDLE"

        # ---- reads: AR to the target, then its R ---------------------------------------
        r_sel = Signal(2)
        with m.FSM(name="read"):
            with m.State("IDLE"):
                with m.If(s.arvalid):
                    m.d.sync += r_sel.eq(Cat(*self._target(s.araddr)))
                    m.next = "ADDR"
            with m.State("ADDR"):
                for k, t in enumerate((regs, dram)):
                    m.d.comb += t.arvalid.eq(r_sel[k] & s.arvalid)
                m.d.comb += s.arready.eq(Mux(r_sel[0], regs.arready,
                                             Mux(r_sel[1], dram.arready, 1)))
                with m.If(s.arvalid & s.arready):
                    m.next = "RESP"
            with m.State("RESP"):
                for k, t in enumerate((regs, dram)):
                    m.d.comb += t.rready.eq(r_sel[k] & s.rready)
                m.d.comb += [
                    s.rvalid.eq(Mux(r_sel[0], regs.rvalid, Mux(r_sel[1], dram.rvalid, 1))),
                    s.rdata.eq(Mux(r_sel[0], regs.rdata, Mux(r_sel[1], dram.rdata, 0))),
                    s.rresp.eq(Mux(r_sel[0], regs.rresp,
                                   Mux(r_sel[1], dram.rresp, AXIResp.DECERR))),
                ]
                with m.If(s.rvalid & s.rready):
                    m.next = "IDLE"
        return m


class BoardCore(ConfigComponent):
    """Everything on a board but its clocking: the host's UART bridge, the address
    decoder, the :class:`~hdl.core.NeuronCore` and its DRAM window in block RAM.

    ::

        rx/tx -- UARTBridge -- HostDecoder --+-- NeuronCore.s_axil (registers)
                                             +-- BlockRamDram.s_axil (host's DRAM port)
                              NeuronCore.m_axi -- BlockRamDram.s_axi (core's DRAM port)

    The board top (:mod:`hdl.tops.ulx3s`) adds the PLL, the reset synchroniser and the
    pins; the Verilator model of the board (:class:`hdl.tops.board_sim.BoardSim`) is
    this block with a clock, so the host software meets the same logic in both.

    Parameters
    ----------
    dram_size : int
        Bytes of the DRAM window (a power of two; :class:`BlockRamDram`).
    divisor : int
        Clock cycles per UART bit (:func:`hdl.uart.baud_divisor`).
    timeout : int
        The bridge's inter-byte timeout in cycles (:class:`hdl.uart.UARTBone`).

    Members
    -------
    i_rx : In(1, init=1)        the host's serial line into the board (idle high)
    o_tx : Out(1, init=1)       the board's serial line to the host
    o_lights : Out(StatusLights)
        The core's STATUS.BUSY, DONE and ERROR.
    o_host_error : Out(1)
        Sticky until reset: the bridge met a bad command, a timeout, a bus or range
        error, a framing error or an overrun (the frame was dropped; a host that sees
        this lit should resynchronise, see ``docs/board.md``).
    o_irq : Out(1)              the core's interrupt
    """

    def __init__(self, config: CoreConfig, *, dram_size, divisor, timeout):
        check_config(config)
        _check_size(dram_size, config)
        self.dram_size = dram_size
        self._bridge = UARTBridge(divisor=divisor, addr_width=HOST_ADDR_WIDTH, timeout=timeout)
        super().__init__(config, {
            "i_rx": In(1, init=1), "o_tx": Out(1, init=1),
            "o_lights": Out(StatusLights), "o_host_error": Out(1), "o_irq": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bridge = m.submodules.bridge = self._bridge
        dec = m.submodules.decoder = HostDecoder(dram_size=self.dram_size)
        core = m.submodules.core = NeuronCore(self._config)
        dram = m.submodules.dram = BlockRamDram(self._config, size=self.dram_size)
        wiring.connect(m, bridge.m_axil, dec.s_axil)
        wiring.connect(m, dec.m_regs, core.s_axil)
        wiring.connect(m, dec.m_dram, dram.s_axil)
        wiring.connect(m, core.m_axi, dram.s_axi)
        ev = bridge.o_events
        with m.If(ev.bad_cmd | ev.timeout | ev.bus_error | ev.range_error
                  | bridge.o_framing_error | bridge.o_overrun):
            m.d.sync += self.o_host_error.eq(1)
        m.d.comb += [bridge.i_rx.eq(self.i_rx), self.o_tx.eq(bridge.o_tx),
                     self.o_lights.eq(core.o_lights), self.o_irq.eq(core.o_irq)]
        return m


class PLLSettings(NamedTuple):
    """Dividers of an ECP5 ``EHXPLLL`` with CLKOP fed back: ``f_out = f_in * clkfb_div
    / clki_div``, VCO ``= f_out * clkop_div``."""
    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_out: float
    f_vco: float

    @property
    def clkop_cphase(self):
        """``CLKOP_CPHASE`` for a 0-degree output (what ecppll writes)."""
        return (self.clkop_div - 1) // 2


#: EHXPLLL limits (Lattice TN1263, ECP5 sysCLOCK PLL usage guide; the same numbers as
#: Project Trellis's ecppll): phase detector input, VCO and output frequency, in Hz
PLL_PFD = (3.125e6, 400e6)
PLL_VCO = (400e6, 800e6)
PLL_OUT = (3.125e6, 400e6)
#: the VCO frequency preferred among equally close outputs (ecppll's choice too)
PLL_VCO_AIM = 600e6


def ecp5_pll_settings(f_in, f_out):
    """The ``EHXPLLL`` dividers whose output is closest to ``f_out`` (Hz) from a
    ``f_in`` reference, the VCO nearest 600 MHz among equals; a ``ValueError`` if no
    divider set is legal. The board top states the frequency it gets, not the one it
    asked for (a 25 MHz reference makes 45 MHz exactly but not 48)."""
    if not PLL_OUT[0] <= f_out <= PLL_OUT[1]:
        raise ValueError(f"the PLL output must be from {PLL_OUT[0] / 1e6} to "
                         f"{PLL_OUT[1] / 1e6} MHz, not {f_out / 1e6} MHz")
    best, best_key = None, None
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if f_pfd < PLL_PFD[0]:
            break
        if f_pfd > PLL_PFD[1]:
            continue
        for clkfb_div in range(1, 81):
            out = f_pfd * clkfb_div
            if not PLL_OUT[0] <= out <= PLL_OUT[1]:
                continue
            for clkop_div in {max(1, min(128, round(PLL_VCO_AIM / out)) + d) for d in (-1, 0, 1)}:
                vco = out * clkop_div
                if not (PLL_VCO[0] <= vco <= PLL_VCO[1] and 1 <= clkop_div <= 128):
                    continue
                key = (abs(out - f_out), abs(vco - PLL_VCO_AIM))
                if best_key is None or key < best_key:
                    best, best_key = PLLSettings(clki_div, clkfb_div, clkop_div, out, vco), key
    if best is None:
        raise ValueError(f"no EHXPLLL setting makes {f_out / 1e6} MHz from {f_in / 1e6} MHz")
    return best
