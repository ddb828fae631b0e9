"""Engine test tops: one engine, the memory subsystem and backdoor memory clients.

Each harness gives the engine under test the first memory clients and the testbench
the rest (the *backdoor*: ``i_sbuf_wr``, ``i_sbuf_rd``/``o_sbuf_rd``, ``i_psum_rd``/
``o_psum_rd`` and, where the engine does not write PSUM itself, ``i_psum_wr``), so a
test can fill SBUF and PSUM, run commands, and read back every byte. The client order
is the core's (:class:`~hdl.core.Core`): the engine's clients first. The port names
are the Verilog names the testbenches drive.
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..axi import AXIReadLatency
from ..config import CoreConfig, check_config
from ..dma import DMAEngine
from ..formats import (ActCmd, ActError, DmaDesc, MatmulCmd, TensorError, dma_done_layout,
                       psum_data_layout, psum_read_layout, sbuf_data_layout, sbuf_read_layout)
from ..interfaces import (ConfigComponent, COUNTER_WIDTH, WINDOW_BITS, axi_signature, psum_write_client,
                          sbuf_write_client)
from ..memory import MemorySubsystem
from ..tensor_engine import TensorEngine
from ..vector import VectorEngine

__all__ = ["TensorHarness", "VectorHarness", "DMAHarness"]


class _Harness(ConfigComponent):
    """The backdoor ports and their wiring, shared by the three harnesses.

    A subclass passes its own ports and how many clients of each kind its engine
    takes; the backdoor clients come after them.
    """

    def __init__(self, config, ports, *, psum_write_backdoor):
        check_config(config)
        self._psum_write_backdoor = psum_write_backdoor
        backdoor = {
            "i_sbuf_wr": In(sbuf_write_client(config)),
            "i_sbuf_rd": In(stream.Signature(sbuf_read_layout(config))),
            "o_sbuf_rd": Out(stream.Signature(sbuf_data_layout(config))),
            "i_psum_rd": In(stream.Signature(psum_read_layout(config))),
            "o_psum_rd": Out(stream.Signature(psum_data_layout(config))),
        }
        if psum_write_backdoor:
            backdoor["i_psum_wr"] = In(psum_write_client(config))
        super().__init__(config, {**ports, **backdoor})

    def _memory(self, m, *, sbuf_read, sbuf_write, psum_read, psum_write):
        """The memory subsystem with the engine's client counts plus the backdoor's,
        its backdoor clients already wired."""
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
        return mem


class TensorHarness(_Harness):
    """:class:`~hdl.tensor_engine.TensorEngine` with SBUF, PSUM and backdoor clients.

    SBUF read clients: (0) the stationary fetcher, (1) the moving fetcher, (2) the
    backdoor; SBUF write: the backdoor. PSUM write: the engine; PSUM read: the backdoor.

    Members
    -------
    i_cmd : In(stream.Signature(MatmulCmd))
    o_idle : Out(1)
        No command in the engine and no PSUM write in flight: PSUM holds every
        result of every accepted command.
    o_error, o_error_code, i_error_clear : the engine's ``status`` refusal members
    o_busy_cycles, o_active, o_cycles, i_perf_clear : as the engine's
    i_sbuf_wr, i_sbuf_rd, o_sbuf_rd, i_psum_rd, o_psum_rd : the backdoor
    """

    def __init__(self, config: CoreConfig):
        super().__init__(config, {
            "i_cmd": In(stream.Signature(MatmulCmd)),
            "o_idle": Out(1),
            "o_error": Out(1),
            "o_error_code": Out(TensorError),
            "i_error_clear": In(1),
            "o_busy_cycles": Out(COUNTER_WIDTH),
            "o_active": Out(COUNTER_WIDTH),
            "o_cycles": Out(COUNTER_WIDTH),
            "i_perf_clear": In(1),
        }, psum_write_backdoor=False)

    def elaborate(self, platform):
        m = Module()
        te = m.submodules.engine = TensorEngine(self._config)
        mem = self._memory(m, sbuf_read=2, sbuf_write=0, psum_read=0, psum_write=1)
        wiring.connect(m, wiring.flipped(self.i_cmd), te.i_cmd)
        wiring.connect(m, te.s_rd, mem.sbuf_rd[0])
        wiring.connect(m, te.x_rd, mem.sbuf_rd[1])
        wiring.connect(m, te.psum_wr, mem.psum_wr[0])
        m.d.comb += [
            self.o_idle.eq(~te.o_busy & ~mem.o_busy),
            self.o_error.eq(te.status.error),
            self.o_error_code.eq(te.status.error_code),
            te.status.error_clear.eq(self.i_error_clear),
            self.o_busy_cycles.eq(te.o_busy_cycles),
            self.o_active.eq(te.o_active),
            self.o_cycles.eq(te.o_cycles),
            te.i_perf_clear.eq(self.i_perf_clear),
        ]
        return m


class VectorHarness(_Harness):
    """:class:`~hdl.vector.VectorEngine` with SBUF, PSUM and backdoor clients.

    SBUF read clients: (0) the engine, (1) the backdoor; SBUF write clients: (0) the
    engine, (1) the backdoor. PSUM write: the backdoor; PSUM read clients: (0) the
    engine, (1) the backdoor.

    Members
    -------
    i_cmd : In(stream.Signature(ActCmd))
    o_busy : Out(1)      the engine or PSUM is busy
    o_error, o_error_code, i_error_clear : the engine's ``status`` refusal members
    o_busy_cycles, i_perf_clear : as the engine's
    i_sbuf_wr, i_sbuf_rd, o_sbuf_rd, i_psum_wr, i_psum_rd, o_psum_rd : the backdoor
    """

    def __init__(self, config: CoreConfig):
        super().__init__(config, {
            "i_cmd": In(stream.Signature(ActCmd)),
            "o_busy": Out(1),
            "o_error": Out(1),
            "o_error_code": Out(ActError),
            "i_error_clear": In(1),
            "o_busy_cycles": Out(COUNTER_WIDTH),
            "i_perf_clear": In(1),
        }, psum_write_backdoor=True)

    def elaborate(self, platform):
        m = Module()
        ve = m.submodules.vector = VectorEngine(self._config)
        mem = self._memory(m, sbuf_read=1, sbuf_write=1, psum_read=1, psum_write=0)
        wiring.connect(m, wiring.flipped(self.i_cmd), ve.i_cmd)
        wiring.connect(m, ve.sbuf_rd, mem.sbuf_rd[0])
        wiring.connect(m, ve.sbuf_wr, mem.sbuf_wr[0])
        wiring.connect(m, ve.psum_rd, mem.psum_rd[0])
        m.d.comb += [
            self.o_busy.eq(ve.o_busy | mem.o_busy),
            self.o_error.eq(ve.status.error),
            self.o_error_code.eq(ve.status.error_code),
            ve.status.error_clear.eq(self.i_error_clear),
            self.o_busy_cycles.eq(ve.o_busy_cycles),
            ve.i_perf_clear.eq(self.i_perf_clear),
        ]
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
    i_desc, o_done, m_axi, i_win_base, i_win_limit, o_busy : the engine's
    i_sbuf_wr, i_sbuf_rd, o_sbuf_rd, i_psum_wr, i_psum_rd, o_psum_rd : the backdoor
    """

    def __init__(self, config: CoreConfig, *, read_latency=20):
        self._latency = read_latency
        super().__init__(config, {
            "i_desc": In(stream.Signature(DmaDesc)),
            "o_done": Out(stream.Signature(dma_done_layout())),
            "m_axi": Out(axi_signature(config)),
            "i_win_base": In(WINDOW_BITS),
            "i_win_limit": In(WINDOW_BITS),
            "o_busy": Out(1),
        }, psum_write_backdoor=True)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        dma = m.submodules.dma = DMAEngine(cfg)
        mem = self._memory(m, sbuf_read=1, sbuf_write=1, psum_read=1, psum_write=0)
        lat = m.submodules.latency = AXIReadLatency(axi_signature(cfg), latency=self._latency,
                                                    depth=max(4, 2 * cfg.dma_outstanding))
        wiring.connect(m, wiring.flipped(self.i_desc), dma.i_desc)
        wiring.connect(m, dma.o_done, wiring.flipped(self.o_done))
        wiring.connect(m, dma.m_axi, lat.i_axi)
        wiring.connect(m, lat.o_axi, wiring.flipped(self.m_axi))
        wiring.connect(m, dma.sbuf_wr, mem.sbuf_wr[0])
        wiring.connect(m, dma.sbuf_rd, mem.sbuf_rd[0])
        wiring.connect(m, dma.psum_rd, mem.psum_rd[0])
        m.d.comb += [
            dma.i_win_base.eq(self.i_win_base),
            dma.i_win_limit.eq(self.i_win_limit),
            self.o_busy.eq(dma.o_busy),
        ]
        return m
