"""A DRAM model in gateware, for fast whole-core simulation (not for synthesis).

cocotb's AXI models run Python on every beat, which caps a simulation near 90k
cycles/s; :class:`SimDram` answers the core's AXI4 port inside the simulated design,
so a long run needs no Python until it is done. The testbench loads and reads the
memory through the simulator (``dut.dram.mem``, one 64-bit word per element).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..axi import AXI4LiteSignature, AXIResp, serve_axi4_writes
from ..config import CoreConfig, check_config, check_int_range
from ..core import NeuronCore
from ..interfaces import ConfigComponent, StatusLights, axi_signature
from .sim_clock import clock_and_registered_reset, clock_ports

__all__ = ["SimDram", "NeuronCoreSim", "SIM_DRAM_BYTES", "sim_dram_bytes"]

#: DRAM of :class:`NeuronCoreSim`, the runtime's ``verilator`` backend: 64 MiB, the
#: golden backend's default too, so a model that runs on one runs on the other. The
#: Verilator model holds it as one array (64 MiB of host memory per simulator) that it
#: zeroes at start-up; only the bytes a job uses are loaded and read back, so the size
#: costs no simulation speed (``docs/compiler.md``, "Memory").
SIM_DRAM_BYTES = 64 << 20


def sim_dram_bytes(config: CoreConfig) -> int:
    """Bytes of :class:`NeuronCoreSim`'s DRAM for ``config``: :data:`SIM_DRAM_BYTES`,
    or less if the AXI address space is smaller."""
    return min(SIM_DRAM_BYTES, 1 << config.axi_addr_width)


class SimDram(ConfigComponent):
    """An AXI4 subordinate with ``size`` bytes, a fixed read latency and optional stalls.

    Each read burst's first beat comes ``max(latency, 2) + 1`` cycles after the cycle
    its request was accepted in (up to ``outstanding`` requests queue; queued bursts
    follow each other with one idle cycle between them); write responses come when the
    last beat is written. Bursts are
    served in order (reads and writes independently). An access at or beyond ``size``
    gets DECERR (reads return zero, writes change nothing). INCR bursts only.

    With ``stall_16ths`` = s > 0, a 16-bit LFSR withholds each read beat, write-data
    ready and address ready with probability s/16 (backpressure for tests). With
    ``b_latency`` > 0 each write response waits that many cycles after its last beat.

    Members
    -------
    s_axi : In(AXI4Signature)
    """

    def __init__(self, config: CoreConfig, *, size=1 << 20, latency=20, outstanding=8,
                 stall_16ths=0, b_latency=0):
        check_config(config)
        check_int_range("latency", latency, 1, 1024)
        check_int_range("outstanding", outstanding, 1, 64)
        check_int_range("stall_16ths", stall_16ths, 0, 15)
        check_int_range("b_latency", b_latency, 0, 1024)
        if size % config.axi_data_bytes or size <= 0:
            raise ValueError(f"size must be a positive multiple of {config.axi_data_bytes}, "
                             f"not {size!r}")
        self.size = size
        self.latency = latency
        self.outstanding = outstanding
        self.stall_16ths = stall_16ths
        self.b_latency = b_latency
        super().__init__(config, {"s_axi": In(axi_signature(config))})

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        bus = self.s_axi
        nb = cfg.axi_data_bytes
        lb = exact_log2(nb)
        words = self.size // nb
        aw = cfg.axi_addr_width
        mem = m.submodules.mem = Memory(shape=8 * nb, depth=words, init=[])
        rd = mem.read_port(domain="comb")
        wr = mem.write_port(granularity=8)

        # free-running time and stall source
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        lfsr = Signal(16, init=0xACE1)
        m.d.sync += lfsr.eq(Cat(lfsr[1:], lfsr[0] ^ lfsr[2] ^ lfsr[3] ^ lfsr[5]))
        s = self.stall_16ths

        def go(k):
            if s == 0:
                return Const(1)
            return lfsr[(3 * k) % 13:(3 * k) % 13 + 4] >= s

        idw = cfg.axi_id_width
        # ---- reads ---------------------------------------------------------------------
        ar_w = aw + 8 + idw + 32
        arq = m.submodules.arq = SyncFIFOBuffered(width=ar_w, depth=self.outstanding)
        m.d.comb += [
            bus.arready.eq(arq.w_rdy & go(0)),
            arq.w_en.eq(bus.arvalid & bus.arready),
            arq.w_data.eq(Cat(bus.araddr, bus.arlen, bus.arid, now + self.latency)),
        ]
        r_addr = Signal(aw)
        r_left = Signal(9)
        r_id = Signal(idw)
        r_busy = Signal()
        q_addr = arq.r_data[:aw]
        q_len = arq.r_data[aw:aw + 8]
        q_id = arq.r_data[aw + 8:aw + 8 + idw]
        q_due = arq.r_data[aw + 8 + idw:]
        due = (now - q_due)[31] == 0        # now >= due, modulo 2**32
        m.d.comb += arq.r_en.eq(~r_busy & arq.r_rdy & due)
        with m.If(arq.r_en):
            m.d.sync += [r_busy.eq(1), r_addr.eq(q_addr), r_left.eq(q_len), r_id.eq(q_id)]
        r_ok = r_addr < self.size
        r_hold = Signal()       # a beat once offered stays offered until taken (AXI)
        m.d.sync += r_hold.eq(bus.rvalid & ~bus.rready)
        # the payload of a held beat is frozen too: a write may change the word meanwhile
        r_now = Signal(8 * nb)
        r_held = Signal(8 * nb)
        m.d.comb += r_now.eq(Mux(r_ok, rd.data, 0))
        with m.If(bus.rvalid & ~bus.rready & ~r_hold):
            m.d.sync += r_held.eq(r_now)
        m.d.comb += [
            rd.addr.eq(r_addr[lb:]),
            bus.rvalid.eq(r_busy & (go(1) | r_hold)),
            bus.rdata.eq(Mux(r_hold, r_held, r_now)),
            bus.rresp.eq(Mux(r_ok, AXIResp.OKAY, AXIResp.DECERR)),
            bus.rlast.eq(r_left == 0),
            bus.rid.eq(r_id),
        ]
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += [r_addr.eq(r_addr + nb), r_left.eq(r_left - 1)]
            with m.If(r_left == 0):
                m.d.sync += r_busy.eq(0)

        # ---- writes --------------------------------------------------------------------
        w_fire, w_ok, w_addr = serve_axi4_writes(m, bus, size=self.size,
                                                 outstanding=self.outstanding,
                                                 aw_gate=go(2), w_gate=go(3),
                                                 b_latency=self.b_latency)
        m.d.comb += [
            wr.addr.eq(w_addr[lb:]),
            wr.data.eq(bus.wdata),
            wr.en.eq(Mux(w_fire & w_ok, bus.wstrb, 0)),
        ]
        return m


class NeuronCoreSim(ConfigComponent):
    """:class:`~hdl.core.NeuronCore` with a :class:`SimDram` on its AXI4 port: the
    top of the whole-core benchmarks and long random tests.

    ``registered_reset=False`` feeds ``rst`` straight to the design, as before
    :mod:`hdl.tops.sim_clock` (kept for ``make bench``'s before/after comparison).
    ``dram_size``: bytes of DRAM (default :func:`sim_dram_bytes`).

    Members
    -------
    clk, rst : In(1)
        The clock, and the reset (registered once: :mod:`hdl.tops.sim_clock`); with
        ``registered_reset=False`` the implicit ``sync`` domain's.
    s_axil : In(AXI4LiteSignature(addr_width=12))
    o_irq : Out(1)
    o_lights : Out(StatusLights)
    """

    def __init__(self, config: CoreConfig, *, dram_size=None, latency=20, stall_16ths=0,
                 registered_reset=True):
        if dram_size is None:
            dram_size = sim_dram_bytes(config)
        self._dram = dict(size=dram_size, latency=latency, stall_16ths=stall_16ths)
        self._registered_reset = registered_reset
        super().__init__(config, {
            **clock_ports(registered_reset),
            "s_axil": In(AXI4LiteSignature(addr_width=12)),
            "o_irq": Out(1),
            "o_lights": Out(StatusLights),
        })

    def elaborate(self, platform):
        m = Module()
        clock_and_registered_reset(m, self, registered=self._registered_reset)
        core = m.submodules.core = NeuronCore(self._config)
        dram = m.submodules.dram = SimDram(self._config, **self._dram)
        wiring.connect(m, core.m_axi, dram.s_axi)
        wiring.connect(m, wiring.flipped(self.s_axil), core.s_axil)
        m.d.comb += [self.o_irq.eq(core.o_irq), self.o_lights.eq(core.o_lights)]
        return m
