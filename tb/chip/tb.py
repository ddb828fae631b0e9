"""Testbench class for a chip (:class:`hdl.chip.Chip` on a SimDram: tops ``chip_sim*``).

The host side is the chip's real AXI4-Lite port (cocotbext-axi ``AxiLiteMaster``): the
chip registers from :mod:`hdl.chipmap`, each core's registers in its page with the
offsets of :mod:`hdl.regmap`. DRAM is the SimDram backdoor of :class:`~tb.core.tb.CoreTB`.
"""

from cocotb.triggers import ClockCycles

from hdl.chipmap import ChipRegisterMap, core_page
from hdl.isa import MAX_CORES
from sim.compiler.driver import chip_start_write, decode_result, result_reads, start_writes
from tb.core.tb import CoreTB

__all__ = ["ChipTB"]


class ChipTB(CoreTB):
    """A chip: ``cores`` (read from the CORES register by :meth:`reset`), the chip
    registers (``chip_regs``) and per-core register access."""

    def __init__(self, dut):
        super().__init__(dut)
        self.cores = None
        self.chip_regs = None
        # No random pauses on the host's AXI4-Lite channels: the chip tops run on the
        # model's own free-running clock, where cocotbext-axi samples VALID/READY after
        # the edge's updates, so a paused READY would make it count a beat the design
        # has not taken (docs/chip.md, "Simulation tops and tests").

    async def reset(self):
        await super().reset()
        # the register map needs the core count: read it first (CORES is a constant)
        probe = ChipRegisterMap(self.cfg, MAX_CORES)
        word = await self.csr.read_dword(probe["CORES"].offset)
        self.cores = probe["CORES"].decode(word)["COUNT"]
        self.chip_regs = ChipRegisterMap(self.cfg, self.cores)

    # -- registers -------------------------------------------------------------------

    async def chip_write(self, name, value):
        await self.csr.write_dword(self.chip_regs[name].offset, value)

    async def chip_read(self, name):
        return await self.csr.read_dword(self.chip_regs[name].offset)

    async def core_write(self, core, name, value):
        await self.csr.write_dword(core_page(core) + self.regs[name].offset, value)

    async def core_read(self, core, name):
        return await self.csr.read_dword(core_page(core) + self.regs[name].offset)

    # -- runs ------------------------------------------------------------------------

    async def start_cores(self, prog_addrs, *, windows=None, watchdog=0):
        """Set up every core with a program (``None``: leave it idle), then start them
        all with one write of the chip's START register."""
        started = []
        for k, addr in enumerate(prog_addrs):
            if addr is None:
                continue
            win = windows[k] if windows else (0, self.dram_size)
            for name, value in start_writes(self.regs, addr, win, watchdog, start=False):
                await self.core_write(k, name, value)
            started.append(k)
        await self.chip_write(*chip_start_write(self.chip_regs, started))
        return started

    async def wait_cores(self, cores, max_cycles, chunk=200):
        """Wait until no core in ``cores`` is busy (the chip's STATUS); fail after
        ``max_cycles`` (the simulation's watchdog)."""
        waited = 0
        st = self.chip_regs["STATUS"]
        mask = sum(1 << k for k in cores)
        while True:
            word = await self.chip_read("STATUS")
            if not st.decode(word)["BUSY"] & mask:
                return waited
            if waited >= max_cycles:
                self.fail(f"watchdog: cores {cores} still busy after {max_cycles} cycles "
                          f"(chip STATUS {st.decode(word)})")
            await ClockCycles(self.dut.clk, chunk)
            waited += chunk

    async def core_result(self, core):
        values = {}
        for name in result_reads(self.regs):
            values[name] = await self.core_read(core, name)
        return decode_result(self.regs, values)
