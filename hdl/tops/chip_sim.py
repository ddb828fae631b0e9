"""A chip on a simulation DRAM: the top of the chip's Verilator tests and ``make bench``
chip figures (:class:`~hdl.chip.Chip` with a :class:`~hdl.tops.simdram.SimDram` on its
AXI4 port, whose words the testbench loads and reads through the simulator)."""

import dataclasses

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..axi import AXI4LiteSignature
from ..chip import Chip, chip_id_width
from ..chipmap import CHIP_ADDR_WIDTH, check_cores
from ..config import CoreConfig, check_config
from ..interfaces import ConfigComponent, StatusLights
from .sim_clock import clock_and_registered_reset, clock_ports
from .simdram import SimDram

__all__ = ["ChipSim"]


class ChipSim(ConfigComponent):
    """:class:`~hdl.chip.Chip` of ``cores`` cores and a :class:`SimDram` of
    ``dram_size`` bytes (``stall_16ths``: its random backpressure; ``b_latency``: its
    write-response latency).

    Members
    -------
    clk, rst : In(1)
    s_axil : In(AXI4LiteSignature(addr_width=CHIP_ADDR_WIDTH))
    o_irq : Out(1); o_lights : Out(StatusLights)
    """

    def __init__(self, config: CoreConfig, *, cores=4, dram_size=1 << 20, latency=20,
                 stall_16ths=0, b_latency=0):
        check_config(config)
        self._cores = check_cores(cores)
        self._dram = dict(size=dram_size, latency=latency, stall_16ths=stall_16ths,
                          b_latency=b_latency)
        super().__init__(config, {
            **clock_ports(True),
            "s_axil": In(AXI4LiteSignature(addr_width=CHIP_ADDR_WIDTH)),
            "o_irq": Out(1),
            "o_lights": Out(StatusLights),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        clock_and_registered_reset(m, self)
        chip = m.submodules.chip = Chip(cfg, cores=self._cores)
        # the DRAM sees the chip's wider IDs (a core's ID and the core index)
        dram_cfg = dataclasses.replace(cfg, axi_id_width=chip_id_width(cfg, self._cores))
        dram = m.submodules.dram = SimDram(dram_cfg, **self._dram)
        wiring.connect(m, chip.m_axi, dram.s_axi)
        wiring.connect(m, wiring.flipped(self.s_axil), chip.s_axil)
        m.d.comb += [self.o_irq.eq(chip.o_irq), self.o_lights.eq(chip.o_lights)]
        return m
