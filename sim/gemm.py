"""Tiled GEMM programs: ``C = A @ B`` from DRAM to DRAM, double-buffered by semaphores.

The operands live in DRAM as the tensor engine wants them, contraction dimension
first: ``A^T`` as a ``K x M`` row-major array and ``B`` as ``K x N`` (elements of
``dtype``); ``C`` is written as ``M x N`` row-major INT32 (INT8 operands) or FP32
(BF16/FP16). A *step* loads one ``rows``-deep slice of ``B`` and of ``A^T`` into SBUF
and runs matmuls with ``S`` = the ``A^T`` slice (``m <= cols`` rows of C per matmul)
and ``X`` = the ``B`` slice, accumulating over K in PSUM. Finished tiles go back
through the vector engine (PSUM -> SBUF staging buffer, an exact INT32/FP32 copy) and
DMA-out. Three schedules (``schedule=None`` picks ``resident`` when it fits, else
``stream``):

* **resident** (every slice of ``A^T`` and ``B`` fits in SBUF at once, ``N <=
  psum_depth``): each slice is loaded once; the first ``psum_banks - 1`` output tiles
  accumulate together, K outermost (the array starts on the first slice while the rest
  load); the other tiles then run one at a time in the next PSUM bank (round robin),
  each draining while the following ones compute.
* **stream** (large GEMMs): C is cut into blocks of up to ``psum_banks // 2`` banks,
  each holding ``psum_depth // NB`` tiles of ``cols x NB`` (``NB = psum_depth``, half
  that for 2-byte operands so each B slice serves twice the rows); a block runs all K
  steps with two SBUF buffers per operand (step ``s+1`` loads while step ``s``
  computes), then drains while the next block accumulates into the other half of PSUM.
* **psum** (every tile fits in PSUM at once): K outermost over all tiles; every tile
  drains at the end (kept for comparison).

Every dependency is a semaphore (:func:`sim.races.find_races` accepts every program
this module emits):

=========  ================================================  ============================
semaphore  signalled by                                      waited for by
=========  ================================================  ============================
``ld``     each load                                         a step's first matmul
``mm``     a step's (stream) or tile's (resident) last       loads reusing that buffer;
           matmul                                            the ACT draining it
``fin``    each matmul of the last K step (resident, psum)   the ACT of that tile
``act``    each ACT                                          its DMA-out; a SEM before
                                                             matmuls reusing the bank
``st``     each DMA-out                                      a SEM before an ACT reusing
                                                             its staging buffer; END
=========  ================================================  ============================

``double_buffer=False`` (stream only) gives one SBUF buffer and one PSUM group, so
every load waits for the previous step and every block for the previous drain: the
comparison ``make bench`` reports.
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


def gemm_program(config, layout: GemmLayout, *, double_buffer=True, n_block=None,
                 schedule=None) -> Program:
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
    G = max(1, cfg.psum_banks // 2)     # banks per block (the same tiles either way)
    ngroups = 2 if double_buffer and cfg.psum_banks >= 2 else 1
    # 2-byte operands: half as many columns per block and twice the rows, so each B
    # slice loaded serves twice the MACs (the bus carries as many bytes per MAC as INT8)
    default_nb = cfg.psum_depth if eb == 1 or cfg.psum_depth < 2 else cfg.psum_depth // 2
    NB = min(L.N, cfg.psum_depth, n_block or default_nb)
    # output tiles per PSUM bank (at psum_off t*NB), no more than C has
    tpb = max(1, min(cfg.psum_depth // NB, _ceil(_ceil(L.M, C), G)))
    BR = G * tpb * C
    chunk = min(R, C)                   # partitions one ACT moves (SBUF has R)
    nchunks = _ceil(C, chunk)

    KT = _ceil(L.K, R)
    out_type = "INT32" if L.dtype == "int8" else "FP32"
    p = Program(cfg)
    stores = 0
    acts = 0
    last_store_of_slot = {}
    acts_after_block = []

    def staging(off, tpb=tpb):
        slots = {}
        for t in range(G * tpb):
            for c in range(nchunks):
                slots[t, c] = off
                off = _align(off + 4 * NB)
        return slots, off

    # ---- PSUM-resident: the whole C accumulates in PSUM (small GEMMs) -----------------
    # K outermost: each step loads one slice of B and A^T (double-buffered) and runs a
    # matmul per output tile (tiles packed into banks at psum_off multiples of N); the
    # last step's matmuls signal one by one so each tile drains as soon as it is done.
    tiles = _ceil(L.M, C)
    per_bank = cfg.psum_depth // L.N if L.N <= cfg.psum_depth else 0
    b_bytes = _align(L.N * eb)
    a_bytes = _align(L.M * eb)
    used = 2 * (a_bytes + b_bytes)
    slots = min(tiles, (cfg.sbuf_bytes - used) // _align(4 * L.N)) if used < cfg.sbuf_bytes else 0
    psum_fits = (double_buffer and n_block is None and per_bank
                 and tiles <= per_bank * cfg.psum_banks and C <= R and slots >= 1)
    a_all = KT * _align(L.M * eb)
    b_all = KT * _align(L.N * eb)
    res_fits = (double_buffer and n_block is None and L.N <= cfg.psum_depth
                and a_all + b_all + _align(4 * L.N) <= cfg.sbuf_bytes)
    if schedule is None:
        schedule = "resident" if res_fits else "stream"
    if schedule not in ("psum", "resident", "stream"):
        raise ValueError(f"schedule must be 'psum', 'resident' or 'stream', not {schedule!r}")
    if (schedule == "psum" and not psum_fits) or (schedule == "resident" and not res_fits):
        raise ValueError(f"the {schedule!r} schedule does not fit this GEMM and configuration")
    if schedule == "psum":
        boff = [0, b_bytes]
        aoff = [2 * b_bytes, 2 * b_bytes + a_bytes]
        soff = [used + i * _align(4 * L.N) for i in range(slots)]
        for kt in range(KT):
            k0 = kt * R
            kk = min(R, L.K - k0)
            buf = kt % 2
            p.dma(Dma(addr=L.b_addr + k0 * L.N * eb, rows=kk, row_bytes=L.N * eb,
                      row_stride=L.N * eb, partition=0, offset=boff[buf]),
                  wait=("mm", kt - 1) if kt >= 2 else None, signal="ld")
            p.dma(Dma(addr=L.a_addr + k0 * L.M * eb, rows=kk, row_bytes=L.M * eb,
                      row_stride=L.M * eb, partition=0, offset=aoff[buf]), signal="ld")
            last = kt == KT - 1
            for t in range(tiles):
                m = min(C, L.M - t * C)
                p.matmul(Matmul(k=kk, m=m, n=L.N, p0=0, s_off=aoff[buf] // eb + t * C,
                                x_off=boff[buf] // eb, bank=t // per_bank,
                                psum_off=(t % per_bank) * L.N, acc=kt > 0, dtype=L.dtype),
                         wait=("ld", 2 * (kt + 1)) if t == 0 else None,
                         signal="fin" if last else ("mm" if t == tiles - 1 else None))
        for t in range(tiles):
            m = min(C, L.M - t * C)
            if t >= slots:
                p.sem(wait=("st", t - slots + 1))
            p.act(Act(parts=m, n=L.N, dst_type=out_type, src_psum=True,
                      src_fp=L.dtype != "int8", src_p0=0,
                      src_off=(t // per_bank) * cfg.psum_depth + (t % per_bank) * L.N,
                      dst_p0=0, dst_off=soff[t % slots]),
                  wait=("fin", t + 1), signal="act")
            p.dma(Dma(addr=L.c_addr + t * C * L.N * 4, rows=m, row_bytes=4 * L.N,
                      row_stride=4 * L.N, partition=0, offset=soff[t % slots], store=True),
                  wait=("act", t + 1), signal="st")
        p.end(wait=("st", tiles))
        return p

    # ---- streaming: double-buffered slices (bytes in every partition) -----------------
    off = 0
    boff, aoff = [], []
    for _ in range(nbuf):
        boff.append(off)
        off = _align(off + NB * eb)
    for _ in range(nbuf):
        aoff.append(off)
        off = _align(off + BR * eb)
    stream_stg, off = staging(off)
    stg = stream_stg

    def drain(n0, m0, nb, mrows, grp, steps_done, tpb=tpb):
        """ACT each bank of a finished block to its staging buffer, then DMA it out."""
        nonlocal acts, stores
        first = True
        for t in range(_ceil(mrows, C)):
            m = min(C, mrows - t * C)
            for c in range(_ceil(m, chunk)):
                c0 = c * chunk
                pc = min(chunk, m - c0)
                slot = (t, c)
                if slot in last_store_of_slot:
                    p.sem(wait=("st", last_store_of_slot[slot]))
                p.act(Act(parts=pc, n=nb, dst_type=out_type, src_psum=True,
                          src_fp=L.dtype != "int8", src_p0=c0,
                          src_off=(grp * G + t // tpb) * cfg.psum_depth + (t % tpb) * NB,
                          dst_p0=0, dst_off=stg[slot]),
                      wait=("mm", steps_done) if first else None, signal="act")
                first = False
                acts += 1
                p.dma(Dma(addr=L.c_addr + ((m0 + t * C + c0) * L.N + n0) * 4, rows=pc,
                          row_bytes=4 * nb, row_stride=4 * L.N, partition=0,
                          offset=stg[slot], store=True),
                      wait=("act", acts), signal="st")
                stores += 1
                last_store_of_slot[slot] = stores
        acts_after_block.append(acts)

    # ---- resident: every slice of A^T and B loaded once -------------------------------
    # The first G0 tiles of C (G0 = banks - 1) accumulate together, K outermost, so the
    # array works on each slice as soon as it arrives; the other tiles then run one at a
    # time (all K at once, bank after bank), each draining (ACT to its own staging
    # buffer, DMA-out) while the following tiles compute: only the last tile's drain
    # is exposed at the end.
    if schedule == "resident":
        bsz, asz = _align(L.N * eb), _align(L.M * eb)
        ssz = _align(4 * L.N)
        boff = [kt * bsz for kt in range(KT)]
        aoff = [KT * bsz + kt * asz for kt in range(KT)]
        n_tiles = _ceil(L.M, C)
        base = KT * (asz + bsz)
        nslots = min(n_tiles * nchunks, (cfg.sbuf_bytes - base) // ssz)
        banks = cfg.psum_banks
        G0 = max(1, min(banks - 1, n_tiles))
        for kt in range(KT):
            k0 = kt * R
            kk = min(R, L.K - k0)
            p.dma(Dma(addr=L.b_addr + k0 * L.N * eb, rows=kk, row_bytes=L.N * eb,
                      row_stride=L.N * eb, partition=0, offset=boff[kt]), signal="ld")
            p.dma(Dma(addr=L.a_addr + k0 * L.M * eb, rows=kk, row_bytes=L.M * eb,
                      row_stride=L.M * eb, partition=0, offset=aoff[kt]), signal="ld")
        bank_act = {}       # bank -> ACT count once its last tile has been drained
        slot_i = 0

        def tile_mm(t, kt, bank, wait, signal):
            m = min(C, L.M - t * C)
            kk = min(R, L.K - kt * R)
            p.matmul(Matmul(k=kk, m=m, n=L.N, p0=0, s_off=aoff[kt] // eb + t * C,
                            x_off=boff[kt] // eb, bank=bank, psum_off=0, acc=kt > 0,
                            dtype=L.dtype), wait=wait, signal=signal)

        def tile_drain(t, bank, wait):
            nonlocal acts, stores, slot_i
            m = min(C, L.M - t * C)
            for c in range(_ceil(m, chunk)):
                c0 = c * chunk
                pc = min(chunk, m - c0)
                slot = slot_i % nslots
                slot_i += 1
                if slot in last_store_of_slot:
                    p.sem(wait=("st", last_store_of_slot[slot]))
                p.act(Act(parts=pc, n=L.N, dst_type=out_type, src_psum=True,
                          src_fp=L.dtype != "int8", src_p0=c0, src_off=bank * cfg.psum_depth,
                          dst_p0=0, dst_off=base + slot * ssz),
                      wait=wait if c == 0 else None, signal="act")
                acts += 1
                p.dma(Dma(addr=L.c_addr + (t * C + c0) * L.N * 4, rows=pc, row_bytes=4 * L.N,
                          row_stride=4 * L.N, partition=0, offset=base + slot * ssz,
                          store=True),
                      wait=("act", acts), signal="st")
                stores += 1
                last_store_of_slot[slot] = stores
            bank_act[bank] = acts

        for kt in range(KT):
            for t in range(G0):
                tile_mm(t, kt, t, ("ld", 2 * (kt + 1)) if t == 0 else None,
                        "fin" if kt == KT - 1 else None)
        for t in range(G0):
            tile_drain(t, t, ("fin", t + 1))
        for i, t in enumerate(range(G0, n_tiles)):
            bank = t % banks
            for kt in range(KT):
                if kt == 0 and bank in bank_act:
                    p.sem(wait=("act", bank_act[bank]))
                tile_mm(t, kt, bank, None, "mm" if kt == KT - 1 else None)
            tile_drain(t, bank, ("mm", i + 1))
        p.end(wait=("st", stores))
        return p

    if off > cfg.sbuf_bytes:
        raise ValueError(f"a {L.M}x{L.N}x{L.K} {L.dtype} GEMM needs {off} bytes per SBUF "
                         f"partition with these tiles, the configuration has "
                         f"{cfg.sbuf_bytes}; use a smaller n_block")
    stg = stream_stg
    blocks = [(n0, m0) for n0 in range(0, L.N, NB) for m0 in range(0, L.M, BR)]
    step = 0
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
                                x_off=boff[buf] // eb, bank=grp * G + t // tpb,
                                psum_off=(t % tpb) * NB, acc=kt > 0, dtype=L.dtype),
                         wait=("ld", 2 * (step + 1)) if t == 0 else None,
                         signal="mm" if t == mt - 1 else None)
            step += 1
        drain(n0, m0, nb, mrows, grp, step)
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
