"""Engine test tops: one engine, the memory subsystem and backdoor memory clients.

Each harness gives the engine under test the first memory clients and the testbench
the rest (the *backdoor*: ``i_sbuf_wr``, ``i_sbuf_rd``/``o_sbuf_rd``, ``i_psum_rd``/
``o_psum_rd`` and, where the engine does not write PSUM itself, ``i_psum_wr``), so a
test can fill SBUF and PSUM, run commands, and read back every byte. The client order
is the core's (:class:`~hdl.core.Core`): the engine's clients first. Every other
port is the engine's own (its command stream, ``status``, counters), taken from the
engine's signature, so the harness cannot drift from the engine; the port names are
the Verilog names the testbenches drive. ``clk`` and ``rst`` are ports too: each
harness registers its reset once (:mod:`hdl.tops.sim_clock`), for simulation speed.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..axi import AXIReadLatency
from ..config import CoreConfig, check_config
from ..dma import DMAEngine
from ..formats import psum_data_layout, psum_read_layout, sbuf_data_layout, sbuf_read_layout
from ..interfaces import ConfigComponent, axi_signature, psum_write_client, sbuf_write_client
from ..memory import MemorySubsystem
from ..tensor_engine import TensorEngine
from ..vector import VectorEngine
from .sim_clock import clock_and_registered_reset, clock_ports

__all__ = ["TensorHarness", "VectorHarness", "DMAHarness", "DMA_READ_LATENCY"]

#: Cycles :class:`DMAHarness` holds each read request (the testbench's DRAM latency).
DMA_READ_LATENCY = 20


class _Harness(ConfigComponent):
    """The engine, the backdoor ports and their wiring, shared by the three harnesses.

    Parameters
    ----------
    engine : ConfigComponent
        The engine under test; its members named in ``passed`` become the harness's
        own ports and are connected straight through.
    ports : dict
        The harness's further ports.
    psum_write_backdoor : bool
        Add ``i_psum_wr`` (for engines that do not write PSUM themselves).
    registered_reset : bool
        ``clk``/``rst`` ports with ``rst`` registered once (:mod:`hdl.tops.sim_clock`);
        false for a harness inside another top (the synthesis wrapper).
    """

    def __init__(self, config, engine, passed, ports, *, psum_write_backdoor,
                 registered_reset=True):
        check_config(config)
        self._registered_reset = registered_reset
        self._engine = engine
        self._passed = passed
        self._psum_write_backdoor = psum_write_backdoor
        members = engine.signature.members
        backdoor = {
            "i_sbuf_wr": In(sbuf_write_client(config)),
            "i_sbuf_rd": In(stream.Signature(sbuf_read_layout(config))),
            "o_sbuf_rd": Out(stream.Signature(sbuf_data_layout(config))),
            "i_psum_rd": In(stream.Signature(psum_read_layout(config))),
            "o_psum_rd": Out(stream.Signature(psum_data_layout(config))),
        }
        if psum_write_backdoor:
            backdoor["i_psum_wr"] = In(psum_write_client(config))
        super().__init__(config, {**clock_ports(registered_reset), **{n: members[n] for n in passed}, **ports,
                                  **backdoor})

    def _build(self, m, name, *, sbuf_read, sbuf_write, psum_read, psum_write):
        """The engine (as submodule ``name``, its passed ports connected) and the memory
        subsystem with the engine's client counts plus the backdoor's, its backdoor
        clients wired, and the clock and registered reset. Returns ``(engine, memory)``."""
        clock_and_registered_reset(m, self, registered=self._registered_reset)
        engine = m.submodules[name] = self._engine
        for n in self._passed:
            port, mine = getattr(engine, n), getattr(self, n)
            if hasattr(port, "signature"):      # an interface (stream, EngineStatus)
                wiring.connect(m, port, wiring.flipped(mine))
            elif engine.signature.members[n].flow == In:
                m.d.comb += port.eq(mine)
            else:
                m.d.comb += mine.eq(port)
        mem = m.submodules.mem = MemorySubsystem(
            self._config, sbuf_read=sbuf_read + 1, sbuf_write=sbuf_write + 1,
            psum_read=psum_read + 1, psum_write=psum_write + self._psum_write_backdoor)
        wiring.connect(m, wiring.flipped(self.i_sbuf_wr), mem.sbuf_wr[sbuf_write])
        wiring.connect(m, wiring.flipped(self.i_sbuf_rd), mem.sbuf_rd[sbuf_read].req)
        wiring.connect(m, mem.sbuf_rd[sbuf_read].resp, wiring.flipped(self.o_sbuf_rd))
        wiring.connect(m, wiring.flipped(self.i_psum_rd), mem.psum_rd[psum_read].req)
        wiring.connect(m, mem.psum_rd[psum_read].resp, wiring.flipped(self.o_psum_rd))
        if self._psum_write_backdoor:
            wiring.connect(m, wiring.flipped(self.i_psum_wr), mem.psum_wr[psum_write])
        return engine, mem


class TensorHarness(_Harness):
    """:class:`~hdl.tensor_engine.TensorEngine` with SBUF, PSUM and backdoor clients.

    SBUF read clients: (0) the stationary fetcher, (1) the moving fetcher, (2) the
    backdoor; SBUF write: the backdoor. PSUM write: the engine; PSUM read: the backdoor.

    Members
    -------
    i_cmd, status, o_busy_cycles, o_active, o_cycles, i_perf_clear : the engine's
    o_idle : Out(1)
        No command in the engine and no PSUM write in flight: PSUM holds every
        result of every accepted command.
    i_sbuf_wr, i_sbuf_rd, o_sbuf_rd, i_psum_rd, o_psum_rd : the backdoor
    """

    def __init__(self, config: CoreConfig, *, registered_reset=True):
        super().__init__(config, TensorEngine(config),
                         ("i_cmd", "status", "o_busy_cycles", "o_active", "o_cycles",
                          "i_perf_clear"),
                         {"o_idle": Out(1)}, psum_write_backdoor=False,
                         registered_reset=registered_reset)

    def elaborate(self, platform):
        m = Module()
        te, mem = self._build(m, "engine", sbuf_read=2, sbuf_write=0, psum_read=0, psum_write=1)
        wiring.connect(m, te.s_rd, mem.sbuf_rd[0])
        wiring.connect(m, te.x_rd, mem.sbuf_rd[1])
        wiring.connect(m, te.psum_wr, mem.psum_wr[0])
        m.d.comb += self.o_idle.eq(~te.o_busy & ~mem.o_busy)
        return m


class VectorHarness(_Harness):
    """:class:`~hdl.vector.VectorEngine` with SBUF, PSUM and backdoor clients.

    SBUF read clients: (0) the engine, (1) the backdoor; SBUF write clients: (0) the
    engine, (1) the backdoor. PSUM write: the backdoor; PSUM read clients: (0) the
    engine, (1) the backdoor.

    Members
    -------
    i_cmd, status, o_busy_cycles, i_perf_clear : the engine's
    o_busy : Out(1)      the engine or PSUM is busy
    i_sbuf_wr, i_sbuf_rd, o_sbuf_rd, i_psum_wr, i_psum_rd, o_psum_rd : the backdoor
    """

    def __init__(self, config: CoreConfig):
        super().__init__(config, VectorEngine(config),
                         ("i_cmd", "status", "o_busy_cycles", "i_perf_clear"),
                         {"o_busy": Out(1)}, psum_write_backdoor=True)

    def elaborate(self, platform):
        m = Module()
        ve, mem = self._build(m, "vector", sbuf_read=1, sbuf_write=1, psum_read=1, psum_write=0)
        wiring.connect(m, ve.sbuf_rd, mem.sbuf_rd[0])
        wiring.connect(m, ve.sbuf_wr, mem.sbuf_wr[0])
        wiring.connect(m, ve.psum_rd, mem.psum_rd[0])
        m.d.comb += self.o_busy.eq(ve.o_busy | mem.o_busy)
        return m


class DMAHarness(_Harness):
    """:class:`~hdl.dma.DMAEngine` with SBUF, PSUM, backdoor clients and a DRAM latency
    shim.

    SBUF write clients: (0) the DMA, (1) the backdoor; SBUF read clients: (0) the DMA,
    (1) the backdoor. PSUM write: the backdoor; PSUM read clients: (0) the DMA, (1) the
    backdoor. Read requests on ``m_axi`` are held ``read_latency`` cycles
    (:class:`~hdl.axi.AXIReadLatency`) to model DRAM behind an interconnect.

    Members
    -------
    i_desc, o_done, i_win_base, i_win_limit, o_busy : the engine's
    m_axi : Out(AXI4Signature)   the engine's, behind the latency shim
    i_sbuf_wr, i_sbuf_rd, o_sbuf_rd, i_psum_wr, i_psum_rd, o_psum_rd : the backdoor
    """

    def __init__(self, config: CoreConfig, *, read_latency=DMA_READ_LATENCY):
        self._latency = read_latency
        super().__init__(config, DMAEngine(config),
                         ("i_desc", "o_done", "i_win_base", "i_win_limit", "o_busy"),
                         {"m_axi": Out(axi_signature(config))}, psum_write_backdoor=True)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        dma, mem = self._build(m, "dma", sbuf_read=1, sbuf_write=1, psum_read=1, psum_write=0)
        lat = m.submodules.latency = AXIReadLatency(axi_signature(cfg), latency=self._latency,
                                                    depth=max(4, 2 * cfg.dma_outstanding))
        wiring.connect(m, dma.m_axi, lat.i_axi)
        wiring.connect(m, lat.o_axi, wiring.flipped(self.m_axi))
        wiring.connect(m, dma.sbuf_wr, mem.sbuf_wr[0])
        wiring.connect(m, dma.sbuf_rd, mem.sbuf_rd[0])
        wiring.connect(m, dma.psum_rd, mem.psum_rd[0])
        return m
