"""The chip's address maps, described once: the peer aperture and the host registers.

A chip (:class:`hdl.chip.Chip`) is up to :data:`~hdl.isa.MAX_CORES` NeuronCores on one
DRAM port. Two address spaces are the chip's own, and every block that needs them (the
DMA engines' checks, the interconnect, the golden model, the assembler, the compiler
and the testbenches) reads them from here.

**Peer aperture** (:class:`PeerAperture`). The top half of a core's AXI address space,
``[2**(axi_addr_width-1), 2**axi_addr_width)``, is on a chip not DRAM but the other
cores' SBUFs: a DMA *store* whose DRAM address lies there writes the tile into core
``core``'s SBUF, partition ``partition + r`` for row ``r``, from byte ``offset``::

    addr = base | core << core_shift | partition << offset_bits | offset

so the rows of a peer store are :attr:`PeerAperture.stride` bytes apart (the descriptor's
``row_stride`` must be that when ``rows > 1``). A standalone core (not on a chip) has no
aperture: the top half is DRAM as before.

**Host map.** The chip's AXI4-Lite port has :data:`CHIP_ADDR_WIDTH` address bits in
4 KiB pages: page 0 holds the chip registers (:func:`chip_registers`), page ``1 + k``
core ``k``'s own register file (``docs/registers.md``, unchanged).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from amaranth.utils import ceil_log2

from .config import CoreConfig, check_config, check_int_range
from .isa import CORE_BITS, MAX_CORES
from .regmap import ADDR_WIDTH, Field, Register, _config_fields, _cell, _hex

__all__ = [
    "PeerAperture", "CHIP_ADDR_WIDTH", "PAGE_BITS", "CHIP_ID_VALUE", "CHIP_VERSION",
    "core_page", "chip_registers", "ChipRegisterMap", "chip_markdown", "check_cores",
    "MAX_CORES", "CORE_BITS",
]

#: Address bits of a chip's host port: 16 pages of 4 KiB.
CHIP_ADDR_WIDTH = 16
#: Address bits of one page (a core's register file).
PAGE_BITS = ADDR_WIDTH
#: Contents of the chip's ID register: ASCII "NCHP".
CHIP_ID_VALUE = 0x4E434850
#: Contents of the chip's VERSION register.
CHIP_VERSION = 1


def check_cores(cores):
    """``ValueError`` unless ``cores`` is an integer from 1 to :data:`MAX_CORES`."""
    check_int_range("cores", cores, 1, MAX_CORES)
    return cores


def core_page(core):
    """Byte offset of core ``core``'s register file on the chip's host port."""
    return (1 + core) << PAGE_BITS


@dataclass(frozen=True)
class PeerAperture:
    """Where the other cores' SBUFs appear to a core's DMA on a chip.

    ``offset_bits`` address a byte of a partition (``ceil(log2(sbuf_bytes))``),
    ``partition_bits`` a partition (``ceil(log2(rows))``), then :data:`CORE_BITS` the
    core; the aperture's base is the top bit of the AXI address. ``ValueError`` if
    ``axi_addr_width`` leaves no room for that (a chip needs
    ``offset_bits + partition_bits + CORE_BITS + 1`` address bits).
    """
    config: CoreConfig

    def __post_init__(self):
        check_config(self.config)
        need = self.core_shift + CORE_BITS + 1
        if need > self.config.axi_addr_width:
            raise ValueError(
                f"axi_addr_width={self.config.axi_addr_width} is too small for a chip: the "
                f"peer aperture needs {need} address bits ({self.offset_bits} for a byte of "
                f"a partition, {self.partition_bits} for the partition, {CORE_BITS} for the "
                f"core, 1 for the aperture); raise axi_addr_width")

    @property
    def offset_bits(self):
        return max(1, ceil_log2(self.config.sbuf_bytes))

    @property
    def partition_bits(self):
        return ceil_log2(self.config.rows)

    @property
    def core_shift(self):
        return self.offset_bits + self.partition_bits

    @property
    def stride(self):
        """Bytes from one partition to the next in the aperture (a peer store's
        ``row_stride``)."""
        return 1 << self.offset_bits

    @property
    def base(self):
        """First address of the aperture: DRAM on a chip is below it."""
        return 1 << (self.config.axi_addr_width - 1)

    def addr(self, core, partition=0, offset=0):
        """The aperture address of byte ``offset`` of partition ``partition`` of core
        ``core``'s SBUF (checked to exist in the configuration)."""
        cfg = self.config
        check_int_range("core", core, 0, MAX_CORES - 1)
        check_int_range("partition", partition, 0, cfg.rows - 1)
        check_int_range("offset", offset, 0, cfg.sbuf_bytes - 1)
        return self.base | core << self.core_shift | partition << self.offset_bits | offset

    def decode(self, addr):
        """``(core, partition, offset, extra)`` of an aperture address; ``extra`` is
        true when bits above the core field (below the base bit) or above the address
        width are set, which no legal peer address has."""
        cfg = self.config
        rel = addr - self.base
        extra = bool(rel >> (self.core_shift + CORE_BITS)) or addr >> cfg.axi_addr_width
        return ((rel >> self.core_shift) & (MAX_CORES - 1),
                (rel >> self.offset_bits) & ((1 << self.partition_bits) - 1),
                rel & (self.stride - 1), bool(extra))


def chip_registers(config: CoreConfig, cores: int):
    """The chip registers (page 0 of the chip's host port), by increasing offset."""
    check_config(config)
    check_cores(cores)
    return _chip_registers(config, cores)


@functools.lru_cache(maxsize=None)
def _chip_registers(config, cores):
    return (
        Register("ID", 0x000, "RO", (
            Field("ID", 0, 32, "RO", CHIP_ID_VALUE, 'ASCII "NCHP".', const=True),),
            "Identifies a chip (a core's page reads \"NCOR\")."),
        Register("VERSION", 0x004, "RO", (
            Field("VERSION", 0, 16, "RO", CHIP_VERSION, "Revision of the chip map.",
                  const=True),),
            "Revision of this register map and of the peer aperture."),
        Register("CORES", 0x008, "RO", (
            Field("COUNT", 0, CORE_BITS + 1, "RO", cores,
                  "Cores on the chip; core `k`'s registers are at `0x1000 * (k + 1)`.",
                  const=True),),
            "The number of cores."),
        Register("CONFIG", 0x00C, "RO", _config_fields(config),
                 "The configuration every core is built with (as each core's CONFIG)."),
        Register("START", 0x010, "WO", (
            Field("CORES", 0, MAX_CORES, "WO", 0,
                  "Bit `k` starts core `k` (as its CTRL.START), all in the same cycle, "
                  "so cores that signal each other clear their semaphores together."),),
            "Start several cores at once. Set PROG_ADDR, the window and WATCHDOG in "
            "each core's page first."),
        Register("SOFT_RESET", 0x014, "WO", (
            Field("RESET", 0, 1, "WO", 0,
                  "Every core's CTRL.SOFT_RESET at once (each waits for its own bursts "
                  "in flight to complete)."),),
            "Chip-wide soft reset."),
        Register("STATUS", 0x018, "RO", (
            Field("BUSY", 0, MAX_CORES, "RO", 0, "Bit `k`: core `k`'s STATUS.BUSY."),
            Field("DONE", 8, MAX_CORES, "RO", 0, "Bit `k`: core `k`'s STATUS.DONE."),
            Field("ERROR", 16, MAX_CORES, "RO", 0, "Bit `k`: core `k`'s STATUS.ERROR."),
        ), "Every core's run state in one read; `o_irq` is the OR of the cores' "
           "interrupts."),
    )


class ChipRegisterMap:
    """The chip registers by name (``regs["START"].offset``)."""

    def __init__(self, config: CoreConfig, cores: int):
        self._regs = {r.name: r for r in chip_registers(config, cores)}

    def __iter__(self):
        return iter(self._regs.values())

    def __getitem__(self, name) -> Register:
        try:
            return self._regs[name]
        except KeyError:
            raise KeyError(f"no chip register {name!r}; the chip has "
                           f"{', '.join(self._regs)}") from None


def chip_markdown(config: CoreConfig, cores: int) -> str:
    """The chip register table, for ``docs/chip.md``."""
    out = ["| offset | register | access | reset | bits: field (access) description |",
           "| --- | --- | --- | --- | --- |"]
    for r in chip_registers(config, cores):
        fields = "<br>".join(f"{f.bits}: {f.name} ({f.access}) {_cell(f.doc)}"
                             for f in sorted(r.fields, key=lambda f: -f.lsb))
        out.append(f"| {_hex(r.offset, 12)} | {r.name} | {r.access} | {_hex(r.reset)} "
                   f"| {_cell(r.doc)}<br>{fields} |")
    return "\n".join(out) + "\n"
