"""Chip programs for tests and benchmarks: a chain of cores streaming tiles through
their SBUFs, and random single-core programs moved to their own DRAM region.

:func:`chain_programs` is the core-to-core protocol of ``docs/chip.md`` in its
simplest form: core 0 loads tiles from DRAM, every core pushes each tile into the
next core's SBUF (two buffers per core), the last core stores it to DRAM. Each
buffer has a *full* semaphore on its owner (signalled by the producer, remotely,
once the peer store has completed) and a *free* semaphore on the producer
(signalled by the consumer, remotely, once it has forwarded or stored the tile), so
no tile is overwritten while it is read and none is read before it has arrived.

:func:`relocate` shifts a program's DRAM addresses (its DMA descriptors and where
it is placed), so random programs from :func:`sim.isa.progen.random_program` can
run side by side on the cores of a chip, each in its own DRAM region.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hdl.chipmap import PeerAperture
from hdl.isa import INSTR_BYTES

from sim.isa.asm import Instruction, Program

__all__ = ["FULL", "FREE", "chain_programs", "relocate", "place"]

#: Semaphore indices every chain program names first: tile arrived, buffer freed.
FULL, FREE = 0, 1


def chain_programs(cfg, cores, tiles, rows, row_bytes, *, src, dst, skip_free_wait=False,
                   checkpoint=None):
    """Programs of a ``cores``-core chain moving ``tiles`` tiles of ``rows`` x
    ``row_bytes`` from DRAM ``src`` (tile ``t`` at ``src + t*rows*row_bytes``, rows
    packed) through every core's SBUF to DRAM ``dst`` (same layout). Returns one
    :class:`~sim.isa.asm.Program` per core. ``skip_free_wait``: the producers do not
    wait for *free* (a racy chain, for the race checker).

    ``checkpoint=addr``: core 0 also stores each tile to DRAM at ``addr`` (same layout)
    just before its peer store, so its DMA-out queue mixes DRAM and peer bursts, and
    reloads each checkpoint once that store has completed, into SBUF bytes
    ``2*row_bytes`` on, storing the reload at ``addr + tiles*rows*row_bytes``: a
    completion reported before the DRAM write had landed would reload stale bytes."""
    ap = PeerAperture(cfg)
    if not 1 <= rows <= cfg.rows or 3 * row_bytes > cfg.sbuf_bytes:
        raise ValueError(f"a tile of {rows} x {row_bytes} bytes does not fit three times in "
                         f"{cfg.rows} partitions of {cfg.sbuf_bytes} bytes")
    progs = [Program(cfg) for _ in range(cores)]
    for p in progs:
        assert p._sem("full") == FULL and p._sem("free") == FREE
    tb = rows * row_bytes
    for t in range(tiles):
        buf = (t % 2) * row_bytes
        for k, p in enumerate(progs):
            last = k == cores - 1
            if k == 0:
                # reuse the buffer once the tile before last has left it
                p.dma(addr=src + t * tb, rows=rows, row_bytes=row_bytes,
                      row_stride=row_bytes, offset=buf,
                      wait=("sent", t - 1) if t >= 2 else None, signal="have")
                have = ("have", t + 1)
                if checkpoint is not None:
                    p.dma(addr=checkpoint + t * tb, rows=rows, row_bytes=row_bytes,
                          row_stride=row_bytes, offset=buf, store=True, wait=have,
                          signal="ckpt")
            else:
                have = ("full", t + 1)
            if last:
                p.dma(addr=dst + t * tb, rows=rows, row_bytes=row_bytes,
                      row_stride=row_bytes, offset=buf, store=True, wait=have,
                      signal="sent")
            else:
                if t >= 2 and not skip_free_wait:
                    p.sem(wait=("free", t - 1))     # the next core is done with buf
                p.dma(addr=ap.addr(k + 1, 0, buf), rows=rows, row_bytes=row_bytes,
                      row_stride=ap.stride, offset=buf, store=True, wait=have,
                      signal="sent")
                p.signal_peer(k + 1, FULL, wait=("sent", t + 1))
                if k == 0 and checkpoint is not None:
                    # once the checkpoint store has completed (DMA-out completes in
                    # order, so the last reload's store has too: the buffer is free)
                    p.dma(addr=checkpoint + t * tb, rows=rows, row_bytes=row_bytes,
                          row_stride=row_bytes, offset=2 * row_bytes,
                          wait=("ckpt", t + 1), signal="reload")
                    p.dma(addr=checkpoint + (tiles + t) * tb, rows=rows,
                          row_bytes=row_bytes, row_stride=row_bytes, offset=2 * row_bytes,
                          store=True, wait=("reload", t + 1), signal="kept")
            if k > 0:
                p.signal_peer(k - 1, FREE, wait=("sent", t + 1))
    for p in progs:
        p.end()
    return progs


def relocate(cfg, instructions, offset):
    """``instructions`` with every DMA's DRAM address moved by ``offset`` bytes."""
    out = []
    for ins in instructions:
        if ins.op == "DMA":
            ins = Instruction("DMA", dataclasses.replace(ins.cmd, addr=ins.cmd.addr + offset),
                              wait=ins.wait, signal=ins.signal)
        out.append(ins)
    return out


def place(dram, instructions, addr):
    """Write ``instructions`` encoded into ``dram`` at ``addr`` (a multiple of 32)."""
    assert addr % INSTR_BYTES == 0
    code = b"".join(i.encode().to_bytes(INSTR_BYTES, "little") for i in instructions)
    dram[addr:addr + len(code)] = np.frombuffer(code, dtype=np.uint8)
    return addr + len(code)
