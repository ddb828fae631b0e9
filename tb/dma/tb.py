"""Testbench class for :class:`hdl.dma.DMASubsystem`: cocotbext-axi ``AxiRam`` as DRAM."""

import numpy as np
from cocotbext.axi import AxiBus, AxiRam

from hdl.formats import dma_done_layout
from sim import codec
from sim.dma import Dma, apply, check, onchip_bytes
from tb.common import AxiRamErrors, Packer
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
        self.backpressure = 0.0
        self._pauses_installed = False

    # -- error injection (tb.common.AxiRamErrors) --------------------------------------

    @property
    def err_regions(self):
        """``(lo, hi, "slverr" | "decerr")`` regions where DRAM accesses fail."""
        return self.errors.regions

    @err_regions.setter
    def err_regions(self, regions):
        self.errors.regions = list(regions)

    def set_backpressure(self, p):
        """Random pauses with probability ``p`` on all five AXI channels (0 = none).

        The pause generators are installed once and read ``self.backpressure`` every
        cycle: swapping generators while a channel sleeps can leave cocotbext-axi's
        sink waiting for a wake-up that never comes (seen as AWREADY stuck low)."""
        self.backpressure = p
        if not self._pauses_installed:
            rd, wr = self.ram.read_if, self.ram.write_if
            for ch in (rd.ar_channel, rd.r_channel, wr.aw_channel, wr.w_channel,
                       wr.b_channel):
                ch.set_pause_generator(self._pauses())
            self._pauses_installed = True

    def _pauses(self):
        while True:
            p = self.backpressure
            yield bool(p and self.rng.random() < p)

    # -- setup ------------------------------------------------------------------------

    async def reset(self):
        dut = self.dut
        for name in ("i_desc__valid", "i_sbuf_wr__valid", "i_sbuf_rd__valid",
                     "i_psum_wr__valid", "i_psum_rd__valid", "o_sbuf_rd__ready",
                     "o_psum_rd__ready", "o_done__ready"):
            getattr(dut, name).value = 0
        self.set_window(*self.win)
        from tb.common import start_clock_and_reset
        await start_clock_and_reset(dut)

    def set_window(self, base, limit):
        self.win = (base, limit)
        self.dut.i_win_base.value = base
        self.dut.i_win_limit.value = limit

    def random_dram(self):
        self.dram[...] = self.rng.integers(0, 256, DRAM_SIZE, dtype=np.uint8)
        self.ram.write(0, self.dram.tobytes())

    # -- running descriptors ----------------------------------------------------------

    async def run_descs(self, descs, done_pause=0.0, max_cycles=None):
        """Send descriptors and collect one completion each: ``[(tag, code name)]``.
        Returns also the cycles from the first acceptance to the last completion."""
        dut = self.dut
        items = [d.encode() for d in descs]
        if max_cycles is None:
            max_cycles = 2000 + sum(40 * d.rows + 8 * d.rows * (d.row_bytes // 8 + 2)
                                    for d in descs)
        done = []
        i, on, t = 0, False, 0
        first = None
        while len(done) < len(descs):
            if t >= max_cycles:
                self.dump_state()
                self.fail(f"watchdog: {len(done)} of {len(descs)} descriptors completed "
                          f"after {t} cycles ({descs[len(done)]})")
            if not on and i < len(items):
                dut.i_desc__payload.value = items[i]
                dut.i_desc__valid.value = 1
                on = True
            take = not done_pause or self.rng.random() >= done_pause
            dut.o_done__ready.value = int(take)
            await self.read_only
            fired = on and bool(dut.i_desc__ready.value)
            if fired and first is None:
                first = self.cycle
            if take and dut.o_done__valid.value:
                c = codec.decode(dma_done_layout(), dut.o_done__payload.value.to_unsigned(),
                                 enums="name")
                done.append((c["tag"], c["error"]))
                last = self.cycle
            await self.tick()
            t += 1
            if fired:
                i += 1
                on = False
                dut.i_desc__valid.value = 0
        dut.o_done__ready.value = 0
        return done, last - first + 1

    def dump_state(self):
        """Log the engine's control registers (for a hang)."""
        import cocotb
        dma = self.dut.dma
        for name in ("dma_state", "in_load", "in_store", "q_busy", "q_setup", "q_row", "q_left",
                     "feed_busy", "feed_row", "out_row", "s_count", "r_out", "b_out",
                     "w_beat", "aw_busy", "aw_setup", "aw_left", "aw_row", "ar_busy",
                     "ar_setup", "ar_left", "stored_all"):
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
