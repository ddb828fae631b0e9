"""Tiled GEMM programs: ``C = A @ B`` from DRAM to DRAM, double-buffered by semaphores.

The operands live in DRAM as the tensor engine wants them, contraction dimension
first: ``A^T`` as a ``K x M`` row-major array and ``B`` as ``K x N`` (elements of
``dtype``); ``C`` is written as ``M x N`` row-major INT32 (INT8 operands) or FP32
(BF16/FP16). One *step* loads a ``rows``-deep slice of ``B`` (``rows x NB``) and of
``A^T`` (``rows x BR``) into SBUF and runs one matmul per PSUM bank of the block
(``S`` = the ``A^T`` slice, ``X`` = the ``B`` slice), accumulating over K in PSUM. A
*block* is ``BR = G * cols`` rows by ``NB`` columns of ``C`` (``G`` PSUM banks); when it
is complete the vector engine copies each bank to an SBUF staging buffer (INT32 or
FP32, no rounding) and DMA-out stores it to DRAM.

Double buffering (the default): SBUF holds two slices of each operand and PSUM two
groups of banks, so step ``s+1`` loads while step ``s`` computes and block ``b+1``
accumulates while block ``b`` drains. Every dependency is a semaphore:

=========  ==================================================  ============================
semaphore  signalled by                                        waited for by
=========  ==================================================  ============================
``ld``     each load (two per step)                            a step's first matmul
``mm``     a step's last matmul                                loads reusing that buffer,
                                                               the block's first ACT
``act``    each ACT                                            its DMA-out; a SEM before a
                                                               block reusing the banks
``st``     each DMA-out                                        a SEM before an ACT reusing
                                                               its staging buffer; END
=========  ==================================================  ============================

Without double buffering each load waits for the previous step and each block for the
previous block's drain (for comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.formats import DTYPE_BYTES

from .act import Act
from .asm import Program
from .dma import Dma
from .tensor import Matmul

__all__ = ["GemmLayout", "gemm_program", "gemm_reference_shapes"]


def _ceil(a, b):
    return -(-a // b)


def _align(x, a=8):
    return _ceil(x, a) * a


@dataclass(frozen=True)
class GemmLayout:
    """Where a GEMM's operands live in DRAM (byte addresses) and its shape."""
    M: int
    N: int
    K: int
    dtype: str
    a_addr: int         # A^T, K x M, dtype
    b_addr: int         # B, K x N, dtype
    c_addr: int         # C, M x N, INT32 or FP32

    @property
    def macs(self):
        return self.M * self.N * self.K

    @property
    def esize(self):
        return DTYPE_BYTES[self.dtype]

    @property
    def c_bytes(self):
        return 4 * self.M * self.N


def gemm_reference_shapes(layout):
    """(A^T bytes, B bytes, C bytes) sizes of the three DRAM regions."""
    eb = layout.esize
    return layout.K * layout.M * eb, layout.K * layout.N * eb, layout.c_bytes


def gemm_program(config, layout: GemmLayout, *, double_buffer=True, n_block=None) -> Program:
    """The program computing ``layout``'s GEMM on ``config`` (ends with END).

    Raises ``ValueError`` if the operand type is not in the configuration or the SBUF
    buffers do not fit a partition.
    """
    cfg = config
    L = layout
    if L.dtype not in cfg.dtypes:
        raise ValueError(f"dtype {L.dtype!r} is not in this configuration {cfg.dtypes}")
    if min(L.M, L.N, L.K) < 1:
        raise ValueError(f"GEMM dimensions must be positive, not {(L.M, L.N, L.K)}")
    eb = L.esize
    R, C = cfg.rows, cfg.cols
    nbuf = 2 if double_buffer else 1
    G = max(1, cfg.psum_banks // 2) if double_buffer and cfg.psum_banks >= 2 else cfg.psum_banks
    ngroups = 2 if double_buffer and cfg.psum_banks >= 2 else 1
    NB = min(L.N, cfg.psum_depth, n_block or cfg.psum_depth)
    BR = G * C
    chunk = min(R, C)                   # partitions one ACT moves (SBUF has R)
    nchunks = _ceil(C, chunk)

    # ---- SBUF layout (bytes in every partition) ------------------------------------
    off = 0
    boff, aoff = [], []
    for _ in range(nbuf):
        boff.append(off)
        off = _align(off + NB * eb)
    for _ in range(nbuf):
        aoff.append(off)
        off = _align(off + BR * eb)
    stg = {}
    for t in range(G):
        for c in range(nchunks):
            stg[t, c] = off
            off = _align(off + 4 * NB)
    if off > cfg.sbuf_bytes:
        raise ValueError(f"a {L.M}x{L.N}x{L.K} {L.dtype} GEMM needs {off} bytes per SBUF "
                         f"partition with these tiles, the configuration has "
                         f"{cfg.sbuf_bytes}; use a smaller n_block")

    out_type = "INT32" if L.dtype == "int8" else "FP32"
    p = Program(cfg)
    KT = _ceil(L.K, R)
    blocks = [(n0, m0) for n0 in range(0, L.N, NB) for m0 in range(0, L.M, BR)]
    step = 0
    acts_after_block = []
    stores = 0
    last_store_of_slot = {}
    acts = 0
    for b, (n0, m0) in enumerate(blocks):
        nb = min(NB, L.N - n0)
        mrows = min(BR, L.M - m0)
        mt = _ceil(mrows, C)
        grp = b % ngroups
        for kt in range(KT):
            k0 = kt * R
            kk = min(R, L.K - k0)
            buf = step % nbuf
            # the buffer was last read by the matmuls of step - nbuf
            need = step - nbuf + 1
            wait = ("mm", need) if need > 0 else None
            p.dma(Dma(addr=L.b_addr + (k0 * L.N + n0) * eb, rows=kk, row_bytes=nb * eb,
                      row_stride=L.N * eb, partition=0, offset=boff[buf]),
                  wait=wait, signal="ld")
            p.dma(Dma(addr=L.a_addr + (k0 * L.M + m0) * eb, rows=kk, row_bytes=mrows * eb,
                      row_stride=L.M * eb, partition=0, offset=aoff[buf]),
                  signal="ld")
            if kt == 0 and b >= ngroups:
                # the banks were last drained by the ACTs of block b - ngroups
                p.sem(wait=("act", acts_after_block[b - ngroups]))
            for t in range(mt):
                m = min(C, mrows - t * C)
                p.matmul(Matmul(k=kk, m=m, n=nb, p0=0, s_off=aoff[buf] // eb + t * C,
                                x_off=boff[buf] // eb, bank=grp * G + t, psum_off=0,
                                acc=kt > 0, dtype=L.dtype),
                         wait=("ld", 2 * (step + 1)) if t == 0 else None,
                         signal="mm" if t == mt - 1 else None)
            step += 1
        # ---- drain: PSUM -> SBUF staging -> DRAM ----------------------------------
        first = True
        for t in range(mt):
            m = min(C, mrows - t * C)
            for c in range(_ceil(m, chunk)):
                c0 = c * chunk
                pc = min(chunk, m - c0)
                slot = (t, c)
                if slot in last_store_of_slot:
                    p.sem(wait=("st", last_store_of_slot[slot]))
                p.act(Act(parts=pc, n=nb, dst_type=out_type, src_psum=True,
                          src_fp=L.dtype != "int8", src_p0=c0,
                          src_off=(grp * G + t) * cfg.psum_depth, dst_p0=0, dst_off=stg[slot]),
                      wait=("mm", step) if first else None, signal="act")
                first = False
                acts += 1
                p.dma(Dma(addr=L.c_addr + ((m0 + t * C + c0) * L.N + n0) * 4, rows=pc,
                          row_bytes=4 * nb, row_stride=4 * L.N, partition=0,
                          offset=stg[slot], store=True),
                      wait=("act", acts), signal="st")
                stores += 1
                last_store_of_slot[slot] = stores
        acts_after_block.append(acts)
    p.end(wait=("st", stores))
    return p


def gemm_dram(layout: GemmLayout, A, B, program: Program, *, prog_addr, size):
    """A DRAM image holding ``A`` (M x K) transposed, ``B`` (K x N) and the program.
    ``A``/``B`` are int8 arrays or uint16 bit patterns (BF16/FP16)."""
    L = layout
    dram = np.zeros(size, dtype=np.uint8)
    At = np.ascontiguousarray(np.asarray(A).T)
    Bm = np.ascontiguousarray(np.asarray(B))
    a = At.view(np.uint8).reshape(-1)
    b = Bm.view(np.uint8).reshape(-1)
    dram[L.a_addr:L.a_addr + a.size] = a
    dram[L.b_addr:L.b_addr + b.size] = b
    code = np.frombuffer(program.encode(), dtype=np.uint8)
    dram[prog_addr:prog_addr + code.size] = code
    return dram
