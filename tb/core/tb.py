"""Testbench class for the whole core (:class:`hdl.core.NeuronCore`).

Two DRAM models:

* top ``neuron_core``: cocotbext-axi ``AxiRam`` on ``m_axi`` (AXI protocol checked by a
  third-party model, random pauses on every channel; Python on every beat);
* tops ``neuron_core_sim*``: :class:`hdl.tops.simdram.SimDram` inside the design, loaded and
  read through the simulator (``dut.dram.mem`` backdoor), so long runs need no Python
  per cycle.

The host side is always the real AXI4-Lite port, driven by cocotbext-axi's
``AxiLiteMaster`` with register offsets from :mod:`hdl.regmap`.
"""

import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge, Timer
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from hdl.regmap import RegisterMap
from sim.compiler.driver import decode_result, result_reads, start_writes
from tb.common import CLOCK_PERIOD_NS, TB, AxiPauses

__all__ = ["CoreTB"]


class CoreTB(TB):
    """Clock, reset, DRAM, CSR access and program runs on one core."""

    def __init__(self, dut, dram_size=1 << 16):
        super().__init__(dut)
        # pauses draw from their own generator, so the programs a seed makes do not
        # depend on how many cycles earlier runs took
        self.pause_rng = np.random.default_rng(self.seed + 1)
        self.pauses = AxiPauses(self.pause_rng)
        self.regs = RegisterMap(self.cfg)
        self.csr = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
        self.backdoor = hasattr(dut, "dram")     # neuron_core_sim*: SimDram inside
        if self.backdoor:
            self.mem = self._find_mem()
            self.dram_size = len(self.mem) * self.cfg.axi_data_bytes
            self.ram = None
        else:
            self.dram_size = dram_size
            self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_"), dut.clk, dut.rst,
                              size=dram_size)
        from sim.model.tensor import TensorModel
        #: what SBUF and PSUM hold (zero after power-up), kept up to date by the tests
        self.chip = TensorModel(self.cfg)

    def _find_mem(self):
        dut = self.dut
        for path in (("dram", "mem"), ("dram", "mem_data"), ("dram_mem",)):
            h = dut
            try:
                for p in path:
                    h = getattr(h, p)
                return h
            except AttributeError:
                continue
        raise AssertionError("cannot find the SimDram memory in the design")

    # -- DRAM ----------------------------------------------------------------------

    def axi_channels(self):
        """``set_backpressure`` pauses AxiRam's five channels (none with SimDram)."""
        return AxiPauses.axi_ram_channels(self.ram) if self.ram is not None else ()

    def write_dram(self, addr, data):
        data = bytes(np.asarray(data, dtype=np.uint8).tobytes())
        if self.ram is not None:
            self.ram.write(addr, data)
            return
        nb = self.cfg.axi_data_bytes
        assert addr % nb == 0 and len(data) % nb == 0, "backdoor writes whole words"
        words = np.frombuffer(data, dtype=np.uint8).reshape(-1, nb)
        base = addr // nb
        for i, w in enumerate(words):
            v = int.from_bytes(w.tobytes(), "little")
            self.mem[base + i].value = v

    def load_dram(self, image):
        """Load ``image`` at address 0 of a DRAM that still holds its power-up zeros
        (a fresh simulation): through the backdoor only the words that are not zero
        are written, so a large, mostly empty image (the runtime's 64 MiB) costs what
        it holds, not its size."""
        image = np.asarray(image, dtype=np.uint8)
        if self.ram is not None:
            self.ram.write(0, image.tobytes())
            return
        nb = self.cfg.axi_data_bytes
        assert image.size % nb == 0, "backdoor writes whole words"
        words = image.reshape(-1, nb)
        for i in np.flatnonzero(words.any(axis=1)).tolist():
            self.mem[i].value = int.from_bytes(words[i].tobytes(), "little")

    def read_dram(self, addr=0, length=None):
        if length is None:
            length = self.dram_size - addr
        if self.ram is not None:
            return np.frombuffer(self.ram.read(addr, length), dtype=np.uint8).copy()
        nb = self.cfg.axi_data_bytes
        lo, hi = addr // nb, -(-(addr + length) // nb)
        out = bytearray()
        for i in range(lo, hi):
            out += int(self.mem[i].value).to_bytes(nb, "little")
        off = addr - lo * nb
        return np.frombuffer(bytes(out[off:off + length]), dtype=np.uint8).copy()

    # -- CSRs ----------------------------------------------------------------------

    async def write_reg(self, name, value):
        r = await self.csr.write_dword(self.regs[name].offset, value)
        return r

    async def read_reg(self, name):
        return await self.csr.read_dword(self.regs[name].offset)

    async def read_counter(self, name):
        lo = await self.read_reg(f"{name}_LO")
        hi = await self.read_reg(f"{name}_HI")
        return lo | (hi << 32)

    async def write_wide(self, name, value):
        await self.write_reg(f"{name}_LO", value & 0xFFFF_FFFF)
        await self.write_reg(f"{name}_HI", value >> 32)

    async def status(self):
        s = await self.read_reg("STATUS")
        return self.regs["STATUS"].decode(s)

    async def start(self, prog_addr, *, win=None, watchdog=0):
        """The host's start sequence (:func:`sim.compiler.driver.start_writes`)."""
        win = win or (0, self.dram_size)
        for name, value in start_writes(self.regs, prog_addr, win, watchdog):
            await self.write_reg(name, value)

    async def wait_irq(self, max_cycles, chunk=None):
        """Wait until ``o_irq`` rises; fail after ``max_cycles``. With ``chunk`` the
        design runs that many cycles per Python wake-up (fast for long runs)."""
        dut = self.dut
        waited = 0
        step = chunk or 1
        while not int(dut.o_irq.value):
            if waited >= max_cycles:
                st = await self.status()
                self.fail(f"watchdog: no interrupt after {max_cycles} cycles, STATUS {st}")
            if chunk:
                await Timer(step * CLOCK_PERIOD_NS, unit="ns")
            else:
                await RisingEdge(dut.clk)
            waited += step
        return waited

    def keep_chip(self, sbuf, psum):
        """Record what SBUF and PSUM hold now (an ISS result's ``sbuf``/``psum``, or
        contents read back): the memories keep them from one program to the next and
        across SOFT_RESET, so the ISS of the next program starts from ``self.chip``."""
        self.chip.sbuf[...] = sbuf
        self.chip.psum[...] = psum

    async def run(self, prog_addr, *, win=None, watchdog=0, max_cycles=200_000, chunk=None):
        """Start the program, wait for the interrupt, return a dict with STATUS fields,
        error code name, detail, fault address and the counters."""
        await self.start(prog_addr, win=win, watchdog=watchdog)
        await self.wait_irq(max_cycles, chunk)
        return await self.result()

    async def result(self):
        """STATUS fields, error name, detail, fault address and every counter
        (:func:`sim.compiler.driver.decode_result`)."""
        values = {}
        for name in result_reads(self.regs):
            values[name] = await self.read_reg(name)
        return decode_result(self.regs, values)

    async def soft_reset(self, max_polls=2000):
        """Write CTRL.SOFT_RESET and poll STATUS until BUSY is clear: the reset waits
        for the AXI bursts in flight to complete (``docs/core.md``); fail if it never
        does. Then acknowledge any interrupt."""
        await self.write_reg("CTRL", self.regs["CTRL"].encode(SOFT_RESET=1))
        for _ in range(max_polls):
            await ClockCycles(self.dut.clk, 2)
            st = await self.status()
            if not st["BUSY"]:
                break
        else:
            self.fail(f"SOFT_RESET: still busy after {max_polls} polls: {st}")
        await self.write_reg("IRQ_STATUS", 0b11)
