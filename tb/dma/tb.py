"""Testbench class for the `dma_subsystem` top (:class:`hdl.tops.harness.DMAHarness`): cocotbext-axi ``AxiRam`` as DRAM."""

import numpy as np
from cocotbext.axi import AxiBus, AxiRam

from hdl.formats import dma_done_layout
from sim.isa import codec
from sim.model.dma import Dma, apply, check
from tb.common import AxiPauses, AxiRamErrors, StreamSink, StreamSource
from tb.tensor.tb import TensorTB

__all__ = ["DmaTB", "DRAM_SIZE"]

#: Bytes of the simulated DRAM (addresses wrap beyond it in AxiRam; tests stay inside).
DRAM_SIZE = 64 * 1024


class DmaTB(TensorTB):
    """Clock, reset, the DRAM model with error injection, backdoors to SBUF/PSUM and the
    golden model (``self.dram`` mirrors the DRAM, ``self.model`` SBUF and PSUM)."""

    def __init__(self, dut):
        super().__init__(dut)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst, size=DRAM_SIZE)
        self.dram = np.zeros(DRAM_SIZE, dtype=np.uint8)
        self.win = (0, DRAM_SIZE)
        self.errors = AxiRamErrors(self.ram)

    # -- error injection (tb.common.AxiRamErrors) --------------------------------------

    @property
    def err_regions(self):
        """``(lo, hi, "slverr" | "decerr")`` regions where DRAM accesses fail."""
        return self.errors.regions

    @err_regions.setter
    def err_regions(self, regions):
        self.errors.regions = list(regions)

    def axi_channels(self):
        """``set_backpressure`` (from :class:`tb.common.TB`) pauses AxiRam's five
        channels, drawing from ``self.rng``."""
        return AxiPauses.axi_ram_channels(self.ram)

    # -- setup ------------------------------------------------------------------------

    IDLE_INPUTS = ("i_desc__valid", "i_sbuf_wr__valid", "i_sbuf_rd__valid",
                   "i_psum_wr__valid", "i_psum_rd__valid", "o_sbuf_rd__ready",
                   "o_psum_rd__ready", "o_done__ready")

    async def reset(self):
        self.set_window(*self.win)
        await super().reset()

    def set_window(self, base, limit):
        self.win = (base, limit)
        self.dut.i_win_base.value = base
        self.dut.i_win_limit.value = limit

    def random_dram(self):
        self.dram[...] = self.rng.integers(0, 256, DRAM_SIZE, dtype=np.uint8)
        self.ram.write(0, self.dram.tobytes())

    # -- running descriptors ----------------------------------------------------------

    async def run_descs(self, descs, done_pause=0.0, max_cycles=None, done_hold=0):
        """Send descriptors and collect one completion each: ``[(tag, code name)]``.
        Returns also the cycles from the first acceptance to the last completion.
        ``done_hold``: completions are refused for that many cycles first."""
        src = StreamSource(self.dut, "i_desc", [d.encode() for d in descs])
        sink = StreamSink(self.dut, "o_done", pause=done_pause, rng=self.rng)
        if max_cycles is None:
            max_cycles = 2000 + sum(40 * d.rows + 8 * d.rows * (d.row_bytes // 8 + 2)
                                    for d in descs)
        done = []
        t = 0
        first = None
        while len(done) < len(descs):
            if t >= max_cycles:
                self.dump_state()
                self.fail(f"watchdog: {len(done)} of {len(descs)} descriptors completed "
                          f"after {t} cycles ({descs[len(done)]})")
            src.drive()
            sink.drive(hold=t < done_hold)
            await self.read_only
            if src.sample() and first is None:
                first = self.cycle
            word = sink.sample()
            if word is not None:
                c = codec.decode(dma_done_layout(), word, enums="name")
                done.append((c["tag"], c["error"]))
                last = self.cycle
            await self.tick()
            t += 1
            src.advance()
        src.stop()
        sink.stop()
        return done, last - first + 1

    def start_bus_log(self):
        """Record the bus handshakes, one list entry per event: ``(cycle, kind, addr)``
        with ``kind`` one of ``"ar"``, ``"aw"`` (``addr`` = the burst's address),
        ``"rlast"``, ``"b"`` (``addr`` None), as the DRAM sees them: an AR reaches it
        :data:`~hdl.tops.harness.DMA_READ_LATENCY` cycles after the engine issued it. Returns the list, which grows until
        :meth:`stop_bus_log`."""
        import cocotb
        from cocotb.triggers import ReadOnly, RisingEdge
        dut = self.dut
        log = []
        self._bus_log_run = True

        def fired(ch):
            return (int(getattr(dut, f"m_axi__{ch}valid").value)
                    and int(getattr(dut, f"m_axi__{ch}ready").value))

        async def watch():
            cycle = 0
            while self._bus_log_run:
                await ReadOnly()
                if fired("ar"):
                    log.append((cycle, "ar", int(dut.m_axi__araddr.value)))
                if fired("aw"):
                    log.append((cycle, "aw", int(dut.m_axi__awaddr.value)))
                if fired("r") and int(dut.m_axi__rlast.value):
                    log.append((cycle, "rlast", None))
                if fired("b"):
                    log.append((cycle, "b", None))
                await RisingEdge(dut.clk)
                cycle += 1
        self._bus_log_task = cocotb.start_soon(watch())
        return log

    def stop_bus_log(self):
        self._bus_log_run = False

    def dump_state(self):
        """Log the engine's control registers (for a hang)."""
        import cocotb
        dma = self.dut.dma
        for name in ("dma_state", "i_wait", "st_open", "d_wait", "in_load", "in_store",
                     "q_busy", "q_setup", "q_row", "q_left", "feed_busy", "feed_row",
                     "out_row", "s_count", "r_out", "b_out", "b_done", "w_beat", "aw_busy",
                     "aw_setup", "aw_left", "aw_row", "ar_busy", "ar_setup", "ar_left"):
            try:
                cocotb.log.info("dma.%s = %s", name, getattr(dma, name).value)
            except AttributeError:
                pass
        for name in ("awvalid", "awready", "wvalid", "wready", "bvalid", "bready",
                     "arvalid", "arready", "rvalid", "rready"):
            cocotb.log.info("m_axi.%s = %s", name,
                            getattr(self.dut, f"m_axi__{name}").value)
        for name in ("active", "t", "n_in", "t_lastout", "t_end", "lag"):
            try:
                cocotb.log.info("dma.realign.%s = %s", name, getattr(dma.realign, name).value)
            except AttributeError:
                pass

    async def run_and_model(self, descs, **kw):
        """Run ``descs``; check each completion's tag and code against the model
        (unless bus errors are injected), apply legal ones to the model."""
        done, cycles = await self.run_descs(descs, **kw)
        for d, (tag, code) in zip(descs, done):
            if tag != d.tag:
                self.fail(f"completion tag {tag} for descriptor with tag {d.tag}")
            want = check(self.cfg, d, *self.win)
            if want != "NONE" or not self.err_regions:
                if code != want:
                    self.fail(f"{d}: code {code}, expected {want}")
            if want == "NONE" and code == "NONE":
                apply(d, self.dram, self.model)
        return done, cycles

    async def compare_all(self, what, sbuf=True, psum=True):
        """DRAM, SBUF and PSUM must equal the model everywhere."""
        got = np.frombuffer(self.ram.read(0, DRAM_SIZE), dtype=np.uint8)
        if not np.array_equal(got, self.dram):
            bad = np.flatnonzero(got != self.dram)
            self.fail(f"{what}: DRAM differs at {len(bad)} bytes, first {bad[0]:#x}: "
                      f"got {got[bad[0]]}, expected {self.dram[bad[0]]}")
        if sbuf:
            got = await self.read_sbuf()
            if not np.array_equal(got, self.model.sbuf):
                bad = np.argwhere(got != self.model.sbuf)
                self.fail(f"{what}: SBUF differs at {len(bad)} bytes, first {bad[0]}: "
                          f"got {got[tuple(bad[0])]}, expected {self.model.sbuf[tuple(bad[0])]}")
        if psum:
            got = await self.read_psum()
            if not np.array_equal(got, self.model.psum):
                self.fail(f"{what}: PSUM changed")

    def random_desc(self, store=None, mem="sbuf", max_len=None, tag=0):
        """A random legal descriptor inside the window (any alignment)."""
        cfg, rng = self.cfg, self.rng
        store = bool(rng.integers(2)) if store is None else store
        parts = cfg.cols if mem == "psum" else cfg.rows
        nbytes = 4 * cfg.psum_entries if mem == "psum" else cfg.sbuf_bytes
        rows = int(rng.integers(1, parts + 1))
        partition = int(rng.integers(0, parts - rows + 1))
        max_len = min(max_len or nbytes, nbytes)
        row_bytes = int(rng.integers(1, max_len + 1))
        offset = int(rng.integers(0, nbytes - row_bytes + 1))
        stride = int(rng.choice([row_bytes, row_bytes + int(rng.integers(0, 64)),
                                 max(1, row_bytes - int(rng.integers(0, row_bytes))),
                                 int(rng.integers(0, 3 * row_bytes + 1))]))
        lo, hi = self.win
        span = (rows - 1) * stride + row_bytes
        if span > hi - lo:
            stride = 0 if row_bytes > (hi - lo) // max(1, rows) else row_bytes
            span = (rows - 1) * stride + row_bytes
        addr = int(rng.integers(lo, hi - span + 1))
        return Dma(addr=addr, rows=rows, row_bytes=row_bytes, row_stride=stride,
                   partition=partition, offset=offset, store=store, mem=mem, tag=tag)
