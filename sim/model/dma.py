"""Golden model of the DMA engine's descriptors (``hdl/dma.py``).

A descriptor moves a 2-D strided tile between a DRAM image (a NumPy ``uint8`` array
indexed by byte address) and SBUF or PSUM (the arrays of :class:`sim.model.tensor.TensorModel`).
:func:`check` gives the refusal reason the hardware reports before moving anything;
:func:`apply` performs a legal descriptor. Bus errors (SLVERR/DECERR) depend on the
memory, not the descriptor, and are checked by the testbench.

The binary format is :class:`hdl.formats.DmaDesc`; :meth:`Dma.encode` and
:meth:`Dma.decode` go through it with :mod:`sim.isa.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.chipmap import PeerAperture
from hdl.formats import DmaDesc, DmaError

import sim.isa.codec as codec

__all__ = ["Dma", "DMA_ERRORS", "check", "apply", "apply_peer", "peer_target", "onchip_bytes", "target_mask"]

#: Completion codes in order: the names of ``hdl.formats.DmaError``.
DMA_ERRORS = tuple(e.name for e in sorted(DmaError, key=lambda e: e.value))
#: The 1-bit ``mem`` field: SBUF (0) or PSUM (1).
MEMS = ("sbuf", "psum")


@dataclass(frozen=True)
class Dma(codec.Command):
    """``for r in range(rows): DRAM[addr + r*row_stride : +row_bytes] <->
    MEM[partition + r][offset : +row_bytes]`` (``store``: on-chip -> DRAM)."""
    addr: int
    rows: int
    row_bytes: int
    row_stride: int = 0
    partition: int = 0
    offset: int = 0
    store: bool = False
    mem: str = "sbuf"           # "sbuf" or "psum"
    tag: int = 0

    LAYOUT = DmaDesc
    TEXT = {"mem": codec.Choices(MEMS)}
    FLAGS = ("store",)


def onchip_bytes(model, mem):
    """A writable ``[partitions, bytes]`` uint8 view of SBUF or PSUM (PSUM entries are
    little-endian 32-bit words, entry ``bank * psum_depth + e`` at byte ``4 * that``)."""
    if mem == "sbuf":
        return model.sbuf
    cols = model.psum.shape[0]
    assert model.psum.dtype == np.dtype("<u4")
    return model.psum.reshape(cols, -1).view(np.uint8)


def peer_target(config, d: Dma, cores: int):
    """On a chip of ``cores`` cores (0: a standalone core), ``(core, partition,
    offset)`` of the SBUF a descriptor writes through the peer aperture
    (:class:`hdl.chipmap.PeerAperture`), or ``None`` for a DRAM descriptor."""
    if not cores:
        return None
    ap = PeerAperture(config)
    if d.addr < ap.base:
        return None
    core, partition, offset, _ = ap.decode(d.addr)
    return core, partition, offset


def check(config, d: Dma, win_base: int, win_limit: int, cores: int = 0) -> str:
    """The code a descriptor gets before any transfer (``"NONE"`` if it runs).

    ``cores`` is the chip's core count (0 for a standalone core: no peer aperture).
    On a chip a descriptor whose address is in the aperture must be a store into an
    existing core's SBUF with rows :attr:`~hdl.chipmap.PeerAperture.stride` apart
    (``PEER`` otherwise), and a DRAM tile must end below the aperture (``WINDOW``).
    """
    if d.mem == "psum" and not d.store:
        return "TARGET"
    parts = config.cols if d.mem == "psum" else config.rows
    nbytes = 4 * config.psum_entries if d.mem == "psum" else config.sbuf_bytes
    if (d.rows == 0 or d.row_bytes == 0 or d.partition + d.rows > parts
            or d.offset + d.row_bytes > nbytes):
        return "RANGE"
    if peer_target(config, d, cores) is not None:
        ap = PeerAperture(config)
        core, partition, offset, extra = ap.decode(d.addr)
        if (not d.store or extra or core >= cores
                or (d.rows > 1 and d.row_stride != ap.stride)
                or partition + d.rows > config.rows
                or offset + d.row_bytes > config.sbuf_bytes):
            return "PEER"
        return "NONE"
    hi = d.addr + (d.rows - 1) * d.row_stride + d.row_bytes
    if d.addr < win_base or hi > win_limit or hi > 1 << config.axi_addr_width:
        return "WINDOW"
    if cores and hi > PeerAperture(config).base:
        return "WINDOW"
    return "NONE"


def apply_peer(d: Dma, source, target, partition: int, offset: int):
    """Perform a legal peer store: rows of ``source``'s SBUF or PSUM (a
    :class:`~sim.model.tensor.TensorModel`) into ``target``'s SBUF from
    ``(partition, offset)``."""
    chip = onchip_bytes(source, d.mem)
    for r in range(d.rows):
        p = d.partition + r
        target.sbuf[partition + r, offset:offset + d.row_bytes] = \
            chip[p, d.offset:d.offset + d.row_bytes]


def apply(d: Dma, dram: np.ndarray, model):
    """Perform a legal descriptor on ``dram`` (uint8, indexed by address) and ``model``."""
    chip = onchip_bytes(model, d.mem)
    for r in range(d.rows):
        a = d.addr + r * d.row_stride
        p = d.partition + r
        if d.store:
            dram[a:a + d.row_bytes] = chip[p, d.offset:d.offset + d.row_bytes]
        else:
            chip[p, d.offset:d.offset + d.row_bytes] = dram[a:a + d.row_bytes]


def target_mask(d: Dma, dram_size: int, chip_shape):
    """Boolean masks of the bytes ``d`` may write: ``(dram, chip)``; the other side is
    all False."""
    dram = np.zeros(dram_size, dtype=bool)
    chip = np.zeros(chip_shape, dtype=bool)
    for r in range(d.rows):
        if d.store:
            a = d.addr + r * d.row_stride
            dram[a:a + d.row_bytes] = True
        else:
            chip[d.partition + r, d.offset:d.offset + d.row_bytes] = True
    return dram, chip
