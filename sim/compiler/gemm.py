"""Tiled GEMM programs: ``C = A @ B`` from DRAM to DRAM, double-buffered by semaphores.

The operands live in DRAM as the tensor engine wants them, contraction dimension
first: ``A^T`` as a ``K x M`` row-major array and ``B`` as ``K x N`` (elements of
``dtype``); ``C`` is written as ``M x N`` row-major INT32 (INT8 operands) or FP32
(BF16/FP16). A *step* loads one ``rows``-deep slice of ``B`` and of ``A^T`` into SBUF
and runs matmuls with ``S`` = the ``A^T`` slice (``m <= cols`` rows of C per matmul)
and ``X`` = the ``B`` slice, accumulating over K in PSUM. Finished tiles go back
through the vector engine (PSUM -> SBUF staging buffer, an exact INT32/FP32 copy) and
DMA-out. Three schedules; ``schedule=None`` picks one, and its options, with the
lowest estimate of the cost model (:func:`plan_gemm`, :mod:`sim.compiler.cost`: an
event model of the controller's queues and the engines, calibrated on the RTL):

* **resident** (every slice of ``A^T`` and ``B`` fits in SBUF at once, ``N <=
  psum_depth``): each slice is loaded once; the first ``g0`` output tiles accumulate
  together, K outermost (the array starts on the first slice while the rest load;
  the old fixed rule was ``g0 = psum_banks - 1``, the planner picks it so the array
  keeps up with the loads without making too many tiles finish at once); the other
  tiles then run one at a time, each draining while the following ones compute. Tiles
  take PSUM slots of ``N`` entries round robin over the banks; a tile reusing a slot
  waits (its first matmul, not a SEM that would stop the decoder) for the ACT that
  drained it. ``lead``: the loads of step ``kt + lead`` are written before the
  matmuls of step ``kt`` (interleaved, so the decoder does not stall behind a full
  DMA-in queue with the matmuls still undispatched). ``tail``: the last tile runs as
  that many column pieces, each drained (ACT, DMA-out) while the next computes, so
  only the last piece's drain is exposed at the end.
* **stream** (large GEMMs): C is cut into blocks of up to ``psum_banks // 2`` banks,
  each holding ``psum_depth // NB`` tiles of ``cols x NB`` (``NB = psum_depth``, half
  that for 2-byte operands so each B slice serves twice the rows); a block runs all K
  steps with two SBUF buffers per operand (step ``s+1`` loads while step ``s``
  computes), then drains while the next block accumulates into the other half of PSUM.
  ``tail``: the last block runs as that many column pieces (each through all K), so
  only the last piece's drain is exposed.
* **psum** (every tile fits in PSUM at once): K outermost over all tiles; every tile
  drains at the end (kept for comparison).

Every dependency is a semaphore (:func:`sim.isa.races.find_races` accepts every program
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

For the compiler (:mod:`sim.compiler.lower`) the GEMM can also

* fuse an :class:`Epilogue` into the draining ACTs: a per-row bias (loaded first, by
  one DMA, into the top of SBUF; :func:`bias_image` lays it out), ReLU, and the
  output type of :class:`GemmLayout` (``out_type``: INT8 requantised with
  ``scale``/``shift``/``zp``, BF16/FP16 cast, or INT32/FP32);
* keep all of ``A^T`` (a layer's weights) in SBUF in the stream schedule when it fits
  (``keep_a``): each slice is loaded by the first block that needs it, then reused;
* append to an existing :class:`Program` (``program=``): every wait is relative to
  the semaphore counts the program already has, and ``after=("st", n)`` makes the
  GEMM's first load (and so every later one) wait for an earlier layer's stores
  (or ``b_wait``: each load of ``B`` waits for what the caller says, the compiler's
  finer dependency on the stores that wrote its bytes);
* stay below ``sbuf_top`` in SBUF, find ``A^T`` and the bias already loaded
  (``preloaded``, written earlier by :func:`preload_program`: the compiler's weight
  prefetch), and call ``prefetch(program)`` right after its own last load, where the
  compiler writes the next layer's weight and bias loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.formats import ACT_BYTES, DTYPE_BYTES

from sim.model.vector import FLOAT_OUT, INT_OUT, Act
from sim.isa.asm import Program
from sim.model.dma import Dma
from sim.model.tensor import Matmul

__all__ = ["GemmLayout", "Epilogue", "accumulator_out", "gemm_program", "gemm_reference_shapes", "bias_slots",
           "bias_image", "plan_gemm", "preload_program", "preload_bytes"]


def _ceil(a, b):
    return -(-a // b)


def _align(x, a=8):
    return _ceil(x, a) * a


def accumulator_out(dtype, out_type=None):
    """The ACT destination type of a result: ``out_type`` if given, else the
    accumulator's own (INT32 for INT8 operands, FP32 for BF16/FP16)."""
    if out_type is not None:
        return out_type
    return "INT32" if dtype == "int8" else "FP32"


@dataclass(frozen=True)
class GemmLayout:
    """Where a GEMM's operands live in DRAM (byte addresses) and its shape."""
    M: int
    N: int
    K: int
    dtype: str
    a_addr: int         # A^T, K x M, dtype
    b_addr: int         # B, K x N, dtype
    c_addr: int         # C, M x N, out_type (INT32 or FP32 by default)
    out_type: str | None = None     # ACT destination type of C; None: INT32 / FP32

    @property
    def macs(self):
        return self.M * self.N * self.K

    @property
    def esize(self):
        return DTYPE_BYTES[self.dtype]

    @property
    def c_type(self):
        return accumulator_out(self.dtype, self.out_type)

    @property
    def c_esize(self):
        return ACT_BYTES[self.c_type]

    @property
    def c_bytes(self):
        return self.c_esize * self.M * self.N


def gemm_reference_shapes(layout):
    """(A^T bytes, B bytes, C bytes) sizes of the three DRAM regions."""
    eb = layout.esize
    return layout.K * layout.M * eb, layout.K * layout.N * eb, layout.c_bytes


@dataclass(frozen=True)
class Epilogue:
    """What the vector engine does to each finished tile on its way to DRAM (fused into
    the ACT that drains PSUM; :class:`sim.model.vector.Act` semantics).

    ``bias_addr``: DRAM address of the bias image (:func:`bias_image`, 4-byte INT32 or
    FP32 values, one per row of C); ``relu``; requantisation ``scale``/``shift``/``zp``
    (INT32 -> INT8 outputs). The output type is the layout's ``out_type``.
    """
    bias_addr: int | None = None
    relu: bool = False
    scale: int = 1
    shift: int = 0
    zp: int = 0
    #: Upper bound of the result (ReLU6: 6.0), or None: a float bound (rounded down to
    #: BF16 for a float result), an INT8 code for an INT8 result.
    clip: float | int | None = None

    def act_fields(self):
        """The ACT fields of this epilogue (bias aside)."""
        f = dict(relu=self.relu, scale=self.scale, shift=self.shift, zp=self.zp)
        if self.clip is not None:
            f.update(clip=True, hi=clip_bits(self.clip))
        return f


def clip_bits(bound):
    """The ACT's ``hi`` for an upper bound: an INT8 code as is (``int``), a float as the
    largest BF16 value not above it (the ACT compares in FP32 against a BF16 bound)."""
    if isinstance(bound, (int, np.integer)):
        if not -128 <= bound <= 127:
            raise ValueError(f"an INT8 clip bound must be in -128..127, not {bound}")
        return int(bound) & 0xFFFF
    b = np.float32(bound).view(np.uint32)
    hi = int(b) >> 16
    if np.uint32(hi << 16).view(np.float32) > np.float32(bound):
        hi += 1                 # a negative bound: the next BF16 value towards -inf
    return hi


def bias_slots(config, M):
    """The ACT tiles of a GEMM with ``M`` rows of C: ``(chunk, [r0, ...])``.

    Every schedule drains C in ACTs of at most ``chunk = min(rows, cols)`` rows starting
    at the rows ``r0`` listed (output tile ``t`` of ``cols`` rows, cut into chunks); the
    ACT for ``r0`` writes partitions ``0..`` and finds the bias of row ``r0 + k`` at
    partition ``k``, slot ``j`` (its index in the list), byte ``4 * j`` of the bias area.
    """
    C = config.cols
    chunk = min(config.rows, C)
    r0s = []
    for t in range(_ceil(M, C)):
        m = min(C, M - t * C)
        r0s += [t * C + c0 for c0 in range(0, m, chunk)]
    return chunk, r0s


def bias_image(config, M, bias_bits):
    """The DRAM image of a per-row bias (``M`` 32-bit patterns, INT32 or FP32 bits):
    ``uint32[chunk, slots]`` with row ``r0_j + k`` at ``[k, j]`` (zero past ``M``), so
    one DMA of ``chunk`` rows loads every slot (see :func:`bias_slots`)."""
    bits = np.asarray(bias_bits).view(np.uint32).reshape(-1)
    if bits.size != M:
        raise ValueError(f"the bias has {bits.size} values, C has {M} rows")
    chunk, r0s = bias_slots(config, M)
    img = np.zeros((chunk, len(r0s)), dtype=np.uint32)
    for j, r0 in enumerate(r0s):
        n = min(chunk, M - r0)
        img[:n, j] = bits[r0:r0 + n]
    return img


def gemm_program(config, layout: GemmLayout, *, double_buffer=True, n_block=None,
                 schedule=None, epilogue: Epilogue | None = None, program=None,
                 after=None, end=True, keep_a=True, g0=None, tail=None, lead=None,
                 sbuf_top=None, preloaded=None, prefetch=None, timing=None, b_wait=None,
                 first_group=0, prev_acts=None, prev_stores=None) -> Program:
    """The program computing ``layout``'s GEMM on ``config``.

    ``epilogue`` fuses bias, ReLU and the cast/requantisation of C into the draining
    ACTs (default: an exact INT32/FP32 copy). ``program``: append to this
    :class:`Program` instead of a new one (semaphore counts continue from its current
    values); ``after=("name", count)``: the GEMM's first load waits for it (e.g. the
    previous layer's stores), and with it every later load; ``end``: finish with END.
    ``keep_a``: in the stream schedule, keep all of ``A^T`` (a layer's weights) in SBUF
    when it fits, loading each slice once instead of once per block of N columns.

    ``schedule=None`` picks the schedule (and ``n_block``, ``g0``, ``tail``, ``lead``
    when they are ``None``) with the lowest :func:`sim.compiler.cost.estimate` among the
    feasible ones (:func:`plan_gemm`). Resident schedule: ``g0`` tiles accumulate
    together, K outermost (default ``psum_banks - 1``); ``tail``: the last tile runs
    as that many column pieces, each drained while the next computes (1: whole);
    ``lead``: the loads of K step ``kt + lead`` come before the matmuls of step ``kt``
    in program order (``None``: all loads first).

    ``sbuf_top``: use only SBUF bytes below it (default: all). ``preloaded={"a": off,
    "bias": off}``: ``A^T`` (slice ``kt`` at ``off + kt * align(M * esize)``) and/or the
    bias image are already in SBUF (loaded earlier in the program's DMA-in queue, by
    :func:`preload_program`), so the GEMM does not load them. ``prefetch``: a callable
    ``prefetch(program)`` called right after the GEMM's last load is written (the
    compiler puts the next layer's weight loads there).

    Finer dependency on an earlier layer (stream schedule only; the compiler's
    :func:`sim.compiler.lower.compile_net` uses it, with ``after=None``):
    ``b_wait(k0, kk, n0, nb, own, off)`` is called for each load of ``B`` rows
    ``k0..k0+kk``, columns ``n0..n0+nb`` (to SBUF byte ``off``) with the wait the
    schedule itself gives it (``own``, or ``None``) and returns ``(sem_wait, wait)``:
    the load's wait, and a wait for a SEM written just before it (or ``None``).
    ``first_group``: the PSUM group (half of the banks) of the first block, so it can
    avoid the banks the layer before drains last; ``prev_acts=(before_last, all)``:
    ACT counts of the layer before, up to its last drain and in all: a SEM before the
    first block's matmuls waits for the first, one before the first block of the other
    group for the second. ``prev_stores``: a SEM before the first drain waits for that
    store count (the layer before's staging buffers may be this one's).

    Raises ``ValueError`` if the operand type is not in the configuration or the SBUF
    buffers do not fit a partition.
    """
    if schedule is None:
        opts = plan_gemm(config, layout, double_buffer=double_buffer, n_block=n_block,
                         epilogue=epilogue, keep_a=keep_a, g0=g0, tail=tail, lead=lead,
                         sbuf_top=sbuf_top, preloaded=preloaded, timing=timing)
        schedule, n_block = opts["schedule"], opts["n_block"]
        g0, tail, lead = opts["g0"], opts["tail"], opts["lead"]
    return _emit(config, layout, double_buffer=double_buffer, n_block=n_block,
                 schedule=schedule, epilogue=epilogue, program=program, after=after,
                 end=end, keep_a=keep_a, g0=g0, tail=tail, lead=lead, sbuf_top=sbuf_top,
                 preloaded=preloaded, prefetch=prefetch, b_wait=b_wait,
                 first_group=first_group, prev_acts=prev_acts, prev_stores=prev_stores)


def _emit(config, layout, *, double_buffer, n_block, schedule, epilogue, program, after,
          end, keep_a, g0, tail, lead, sbuf_top, preloaded, prefetch, b_wait=None,
          first_group=0, prev_acts=None, prev_stores=None):
    cfg = config
    L = layout
    E = epilogue or Epilogue()
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
    chunk = min(R, C)                   # partitions one ACT moves (SBUF has R)
    nchunks = _ceil(C, chunk)
    # SBUF left for the schedule: the bias (one word per ACT tile) sits at the top
    top = cfg.sbuf_bytes if sbuf_top is None else sbuf_top
    pre = dict(preloaded or {})
    pre_a = pre.get("a")
    pre_bias = pre.get("bias") if E.bias_addr is not None else None
    avail = top
    if E.bias_addr is not None:
        bchunk, r0s = bias_slots(cfg, L.M)
        if pre_bias is None:
            avail = (top - 4 * len(r0s)) // 8 * 8
        if avail <= 0:
            raise ValueError(f"the bias of {L.M} rows does not fit SBUF")

    def stream_bytes(tpb):
        return (nbuf * _align(NB * eb) + nbuf * _align(G * tpb * C * eb)
                + G * tpb * nchunks * _align(4 * NB))
    # fewer tiles per bank when the stream buffers would not fit SBUF
    while tpb > 1 and stream_bytes(tpb) > avail:
        tpb -= 1
    BR = G * tpb * C

    KT = _ceil(L.K, R)
    out_type = L.c_type
    ce = L.c_esize
    if out_type not in (INT_OUT if L.dtype == "int8" else FLOAT_OUT):
        raise ValueError(f"a {L.dtype} GEMM cannot write C as {out_type}")
    p = Program(cfg) if program is None else program
    # semaphore counts continue from the program's: every wait is relative to these
    sem_base = {n: p.signals(n) for n in ("ld", "mm", "fin", "act", "st")}

    def W(name, n):
        return (name, sem_base[name] + n)

    # the bias area: the top of every partition (loaded first, by one DMA that the
    # first matmul waits for through "ld", so every ACT comes after it)
    first_wait = [after]
    bias_off = {}
    if pre_bias is not None:
        bias_off = {r0: pre_bias + 4 * j for j, r0 in enumerate(r0s)}
    elif E.bias_addr is not None:
        bias_off = {r0: avail + 4 * j for j, r0 in enumerate(r0s)}
        p.dma(Dma(addr=E.bias_addr, rows=bchunk, row_bytes=4 * len(r0s),
                  row_stride=4 * len(r0s), partition=0, offset=avail),
              wait=after, signal="ld")
        sem_base["ld"] += 1
        first_wait = [None]

    def load_wait(w):
        """The wait of a load: the first load of the GEMM also waits for ``after``."""
        if first_wait[0] is not None:
            if w is not None:
                raise AssertionError("the first load has a wait of its own")
            w, first_wait[0] = first_wait[0], None
        return w

    def act(r0, **f):
        """An ACT draining rows ``r0..`` of C with the epilogue."""
        extra = E.act_fields()
        if E.bias_addr is not None:
            extra.update(bias=True, bias_off=bias_off[r0])
        return Act(dst_type=out_type, src_psum=True, src_fp=L.dtype != "int8", **f, **extra)
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
    slots = min(tiles, (avail - used) // _align(4 * L.N)) if used < avail else 0
    psum_fits = (double_buffer and n_block is None and per_bank and pre_a is None
                 and tiles <= per_bank * cfg.psum_banks and C <= R and slots >= 1)
    a_all = KT * _align(L.M * eb)
    b_all = KT * _align(L.N * eb)
    res_fits = (double_buffer and n_block is None and L.N <= cfg.psum_depth
                and (0 if pre_a is not None else a_all) + b_all + _align(4 * L.N) <= avail)
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
                  wait=load_wait(W("mm", kt - 1) if kt >= 2 else None), signal="ld")
            p.dma(Dma(addr=L.a_addr + k0 * L.M * eb, rows=kk, row_bytes=L.M * eb,
                      row_stride=L.M * eb, partition=0, offset=aoff[buf]), signal="ld")
            if kt == KT - 1 and prefetch is not None:
                prefetch(p)
            last = kt == KT - 1
            for t in range(tiles):
                m = min(C, L.M - t * C)
                p.matmul(Matmul(k=kk, m=m, n=L.N, p0=0, s_off=aoff[buf] // eb + t * C,
                                x_off=boff[buf] // eb, bank=t // per_bank,
                                psum_off=(t % per_bank) * L.N, acc=kt > 0, dtype=L.dtype),
                         wait=W("ld", 2 * (kt + 1)) if t == 0 else None,
                         signal="fin" if last else ("mm" if t == tiles - 1 else None))
        for t in range(tiles):
            m = min(C, L.M - t * C)
            if t >= slots:
                p.sem(wait=W("st", t - slots + 1))
            p.act(act(t * C, parts=m, n=L.N, src_p0=0,
                      src_off=(t // per_bank) * cfg.psum_depth + (t % per_bank) * L.N,
                      dst_p0=0, dst_off=soff[t % slots]),
                  wait=W("fin", t + 1), signal="act")
            p.dma(Dma(addr=L.c_addr + t * C * L.N * ce, rows=m, row_bytes=ce * L.N,
                      row_stride=ce * L.N, partition=0, offset=soff[t % slots], store=True),
                  wait=W("act", t + 1), signal="st")
        if end:
            p.end(wait=W("st", tiles))
        return p

    # ---- streaming: double-buffered slices (bytes in every partition) -----------------
    off = 0
    boff, aoff = [], []
    for _ in range(nbuf):
        boff.append(off)
        off = _align(off + NB * eb)
    # weights resident: when all of A^T fits next to the B buffers and the staging
    # buffers, each slice of it is loaded once (by the first block that uses it) and
    # kept, instead of once per block of N
    a_res = None
    n_nblocks = _ceil(L.N, NB)
    if pre_a is not None:
        a_res = [pre_a + kt * _align(L.M * eb) for kt in range(KT)]
    elif keep_a and n_nblocks > 1:
        a_slice = _align(L.M * eb)
        res_end = off + KT * a_slice
        _, res_stg_end = staging(res_end)
        if res_stg_end <= avail:
            a_res = [off + kt * a_slice for kt in range(KT)]
            off = res_end
    if a_res is None:
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
                    p.sem(wait=W("st", last_store_of_slot[slot]))
                p.act(act(m0 + t * C + c0, parts=pc, n=nb, src_p0=c0,
                          src_off=(grp * G + t // tpb) * cfg.psum_depth + (t % tpb) * NB,
                          dst_p0=0, dst_off=stg[slot]),
                      wait=W("mm", steps_done) if first else None, signal="act")
                first = False
                acts += 1
                p.dma(Dma(addr=L.c_addr + ((m0 + t * C + c0) * L.N + n0) * ce, rows=pc,
                          row_bytes=ce * nb, row_stride=ce * L.N, partition=0,
                          offset=stg[slot], store=True),
                      wait=W("act", acts), signal="st")
                stores += 1
                last_store_of_slot[slot] = stores
        acts_after_block.append(acts)

    # ---- resident: every slice of A^T and B loaded once -------------------------------
    # The first g0 tiles of C (default psum_banks - 1) accumulate together, K outermost,
    # so the array works on each slice as soon as it arrives; the other tiles then run
    # one at a time (all K at once), each draining (ACT to its own staging buffer,
    # DMA-out) while the following tiles compute. Tiles take PSUM slots of N entries
    # round robin over the banks (psum_depth // N slots per bank); a tile reusing a slot
    # waits (its first matmul) for the ACT that drained the slot. The last tile can run
    # as ``tail`` column pieces, each drained while the next computes, so only the last
    # piece's drain is exposed at the end.
    if schedule == "resident":
        bsz, asz = _align(L.N * eb), _align(L.M * eb)
        ssz = _align(4 * L.N)
        boff = [kt * bsz for kt in range(KT)]
        if pre_a is not None:
            aoff = [pre_a + kt * asz for kt in range(KT)]
            base = KT * bsz
        else:
            aoff = [KT * bsz + kt * asz for kt in range(KT)]
            base = KT * (asz + bsz)
        n_tiles = _ceil(L.M, C)
        nslots = min(n_tiles * nchunks, (avail - base) // ssz)
        banks = cfg.psum_banks
        per_bank = cfg.psum_depth // L.N
        pslots = [(j % banks, (j // banks) * L.N) for j in range(banks * per_bank)]
        G0 = max(1, min(banks - 1, n_tiles)) if g0 is None else g0
        G0 = max(1, min(G0, n_tiles, len(pslots)))
        lead_ = KT if lead is None else max(1, lead)
        loads_done = [0]
        ld_after = []               # ld count once step kt's loads are written

        def emit_loads(upto):
            while len(ld_after) < min(upto, KT):
                kt = len(ld_after)
                k0 = kt * R
                kk = min(R, L.K - k0)
                p.dma(Dma(addr=L.b_addr + k0 * L.N * eb, rows=kk, row_bytes=L.N * eb,
                          row_stride=L.N * eb, partition=0, offset=boff[kt]),
                      wait=load_wait(None), signal="ld")
                loads_done[0] += 1
                if pre_a is None:
                    p.dma(Dma(addr=L.a_addr + k0 * L.M * eb, rows=kk, row_bytes=L.M * eb,
                              row_stride=L.M * eb, partition=0, offset=aoff[kt]),
                          signal="ld")
                    loads_done[0] += 1
                ld_after.append(loads_done[0])
                if kt == KT - 1 and prefetch is not None:
                    prefetch(p)
        slot_act = {}       # PSUM slot -> ACT count once its last tile has been drained
        slot_i = 0

        def tile_mm(t, kt, slot, wait, signal, c0=0, n=None):
            m = min(C, L.M - t * C)
            kk = min(R, L.K - kt * R)
            bank, poff = pslots[slot]
            p.matmul(Matmul(k=kk, m=m, n=L.N if n is None else n, p0=0,
                            s_off=aoff[kt] // eb + t * C, x_off=boff[kt] // eb + c0,
                            bank=bank, psum_off=poff + c0, acc=kt > 0, dtype=L.dtype),
                     wait=wait, signal=signal)

        def tile_drain(t, slot, wait, pieces=((0, None),), slots=None):
            """ACT + DMA-out of tile t's columns c0..c0+n (one piece); ``slots``: the
            staging slots of the tile's chunks (allocated by the first piece)."""
            nonlocal acts, stores, slot_i
            m = min(C, L.M - t * C)
            bank, poff = pslots[slot]
            c0, n = pieces[0]
            n = L.N if n is None else n
            if slots is None:
                slots = []
            for c in range(_ceil(m, chunk)):
                r0 = c * chunk
                pc = min(chunk, m - r0)
                if len(slots) <= c:
                    s = slot_i % nslots
                    slot_i += 1
                    if s in last_store_of_slot:
                        p.sem(wait=W("st", last_store_of_slot[s]))
                    slots.append(s)
                s = slots[c]
                dst = base + s * ssz + c0 * ce
                p.act(act(t * C + r0, parts=pc, n=n, src_p0=r0,
                          src_off=bank * cfg.psum_depth + poff + c0, dst_p0=0, dst_off=dst),
                      wait=wait if c == 0 else None, signal="act")
                acts += 1
                p.dma(Dma(addr=L.c_addr + ((t * C + r0) * L.N + c0) * ce, rows=pc,
                          row_bytes=ce * n, row_stride=ce * L.N, partition=0,
                          offset=dst, store=True),
                      wait=W("act", acts), signal="st")
                stores += 1
                last_store_of_slot[s] = stores
            slot_act[slot] = acts
            return slots

        for kt in range(KT):
            emit_loads(kt + lead_)
            for t in range(G0):
                tile_mm(t, kt, t, W("ld", ld_after[kt]) if t == 0 else None,
                        "fin" if kt == KT - 1 else None)
        for t in range(G0):
            tile_drain(t, t, W("fin", t + 1))
        mm_sigs = 0
        for i, t in enumerate(range(G0, n_tiles)):
            slot = (G0 + i) % len(pslots)
            reuse = W("act", slot_act[slot]) if slot in slot_act else None
            npieces = max(1, min(tail or 1, L.N)) if t == n_tiles - 1 else 1
            edges = [L.N * j // npieces for j in range(npieces + 1)]
            stg = None
            for j in range(npieces):
                c0, n = edges[j], edges[j + 1] - edges[j]
                for kt in range(KT):
                    tile_mm(t, kt, slot, reuse if (kt == 0 and j == 0) else None,
                            "mm" if kt == KT - 1 else None, c0=c0, n=n)
                mm_sigs += 1
                stg = tile_drain(t, slot, W("mm", mm_sigs), pieces=((c0, n),), slots=stg)
        if end:
            p.end(wait=W("st", stores))
        return p

    if off > avail:
        raise ValueError(f"a {L.M}x{L.N}x{L.K} {L.dtype} GEMM needs {off} bytes per SBUF "
                         f"partition with these tiles, the configuration has "
                         f"{avail}; use a smaller n_block")
    stg = stream_stg
    blocks = [(n0, min(NB, L.N - n0), m0) for n0 in range(0, L.N, NB)
              for m0 in range(0, L.M, BR)]
    # the last block in ``tail`` column pieces, each through all K: only the last
    # piece's drain is exposed at the end
    n0, nb, m0 = blocks[-1]
    pieces = max(1, min(tail or 1, nb))
    edges = [nb * j // pieces for j in range(pieces + 1)]
    blocks[-1:] = [(n0 + edges[j], edges[j + 1] - edges[j], m0) for j in range(pieces)]
    step = 0
    loads = 0
    a_loaded = set()
    if pre_a is not None:
        a_loaded = {(kt, m0) for kt in range(KT) for _, _, m0 in blocks}
    n_loads = sum(1 + (a_res is None) for _ in blocks for _ in range(KT)) + len(
        {(kt, m0) for kt in range(KT) for _, _, m0 in blocks} - a_loaded
        if a_res is not None else ())
    for b, (n0, nb, m0) in enumerate(blocks):
        mrows = min(BR, L.M - m0)
        mt = _ceil(mrows, C)
        grp = (b + first_group) % ngroups
        for kt in range(KT):
            k0 = kt * R
            kk = min(R, L.K - k0)
            buf = step % nbuf
            # the buffer was last read by the matmuls of step - nbuf
            need = step - nbuf + 1
            wait = W("mm", need) if need > 0 else None
            if b_wait is not None:
                sem_w, wait = b_wait(k0, kk, n0, nb, wait, boff[buf])
                if sem_w is not None:
                    p.sem(wait=sem_w)
            else:
                wait = load_wait(wait)
            p.dma(Dma(addr=L.b_addr + (k0 * L.N + n0) * eb, rows=kk, row_bytes=nb * eb,
                      row_stride=L.N * eb, partition=0, offset=boff[buf]),
                  wait=wait, signal="ld")
            loads += 1
            if a_res is None:
                a_at = aoff[buf]
                p.dma(Dma(addr=L.a_addr + (k0 * L.M + m0) * eb, rows=kk,
                          row_bytes=mrows * eb, row_stride=L.M * eb, partition=0,
                          offset=a_at), signal="ld")
                loads += 1
            else:
                a_at = a_res[kt] + m0 * eb
                if (kt, m0) not in a_loaded:
                    a_loaded.add((kt, m0))
                    p.dma(Dma(addr=L.a_addr + (k0 * L.M + m0) * eb, rows=kk,
                              row_bytes=mrows * eb, row_stride=L.M * eb, partition=0,
                              offset=a_at), signal="ld")
                    loads += 1
            if loads == n_loads and prefetch is not None:
                prefetch(p)
                prefetch = None
            if kt == 0 and b >= ngroups:
                # the banks were last drained by the ACTs of block b - ngroups
                p.sem(wait=W("act", acts_after_block[b - ngroups]))
            elif kt == 0 and b < ngroups and prev_acts is not None:
                # the first block on these banks: the layer before drained them
                p.sem(wait=("act", prev_acts[b > 0]))
            for t in range(mt):
                m = min(C, mrows - t * C)
                p.matmul(Matmul(k=kk, m=m, n=nb, p0=0, s_off=a_at // eb + t * C,
                                x_off=boff[buf] // eb, bank=grp * G + t // tpb,
                                psum_off=(t % tpb) * NB, acc=kt > 0, dtype=L.dtype),
                         wait=W("ld", loads) if t == 0 else None,
                         signal="mm" if t == mt - 1 else None)
            step += 1
        if b == 0 and prev_stores is not None:
            # the staging buffers may be the layer before's: its stores come first
            p.sem(wait=("st", prev_stores))
        drain(n0, m0, nb, mrows, grp, step)
    if end:
        p.end(wait=W("st", stores))
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


#: How much lower (a fraction) a later candidate's estimate must be to be preferred.
PLAN_MARGIN = 0.003


def _resident_feasible(config, layout, epilogue, double_buffer, sbuf_top, preloaded):
    from sim.compiler.cost import SketchProgram
    try:
        _emit(config, layout, double_buffer=double_buffer, n_block=None,
              schedule="resident", epilogue=epilogue, program=SketchProgram(config), after=None,
              end=True, keep_a=True, g0=1, tail=1, lead=None, sbuf_top=sbuf_top,
              preloaded=preloaded, prefetch=None)
    except ValueError:
        return False
    return True


def plan_gemm(config, layout: GemmLayout, *, double_buffer=True, n_block=None,
              epilogue: Epilogue | None = None, keep_a=True, g0=None, tail=None, lead=None,
              sbuf_top=None, preloaded=None, timing=None):
    """The options :func:`gemm_program` uses when ``schedule=None``: a dict with
    ``schedule``, ``n_block``, ``g0``, ``tail``, ``lead`` and ``estimate`` (cycles of
    the GEMM alone, :func:`sim.compiler.cost.estimate` with ``timing``).

    With ``double_buffer=False`` it is always ``stream`` with the given (or default) N
    block: the single-buffered comparison keeps the double-buffered tiling. Otherwise
    the candidates, each written as a program and estimated, are: the fixed rule of old first
    (``resident`` when it fits, else ``stream``; ties keep it), then the ``resident``
    variants (coordinate search over ``lead``, ``g0`` and ``tail``), ``psum`` when it
    fits, and ``stream`` with the default N block and its halvings down to 4 columns
    (stopping once they get more than 10% worse than the best). Options given (not
    ``None``) are kept fixed. Raises the schedules' ``ValueError`` if none fits.
    """
    from sim.compiler.cost import SketchProgram, estimate
    cfg = config
    L = layout
    common = dict(double_buffer=double_buffer, epilogue=epilogue, keep_a=keep_a,
                  sbuf_top=sbuf_top, preloaded=preloaded)
    seen = {}
    errors = []

    def cost(schedule, nb=None, g=None, t=None, ld=None):
        key = (schedule, nb, g, t, ld)
        if key not in seen:
            try:
                prog = _emit(cfg, L, n_block=nb, schedule=schedule, program=SketchProgram(cfg),
                             after=None, end=True, g0=g, tail=t, lead=ld, prefetch=None,
                             **common)
                seen[key] = estimate(prog, cfg, timing)
            except ValueError as e:
                errors.append(e)
                seen[key] = None
        return seen[key]

    if not double_buffer:
        # single buffering is the comparison ``make bench`` reports: the same tiling
        # as the double-buffered stream schedule's default, not a tuned one
        return {"schedule": "stream", "n_block": n_block, "g0": None, "tail": None,
                "lead": None, "estimate": cost("stream", n_block)}
    res_ok = n_block is None and _resident_feasible(cfg, L, epilogue, double_buffer,
                                                    sbuf_top, preloaded)
    if res_ok:
        tiles = _ceil(L.M, cfg.cols)
        KT = _ceil(L.K, cfg.rows)
        cost("resident", None, g0, 1 if tail is None else tail, lead)     # the old rule
        cur = {"g": g0, "t": 1 if tail is None else tail, "ld": 1 if lead is None else lead}
        choices = {
            # all-loads-first (lead None) only as the old rule: the model underestimates
            # it (the decoder stalls behind a full DMA-in queue longer than modelled;
            # measured up to 8% slower than estimated, docs/compiler.md)
            "ld": [lead] if lead is not None else [1, 2, 4],
            "g": [g0] if g0 is not None else [None] + [k for k in (1, 2, 3, 4, 5, 6, 8, 10, 12,
                                                                   16, 24, 32) if k <= tiles],
            "t": [tail] if tail is not None else [1, 2, 3, 4, 8],
        }
        choices["ld"] = [x for x in choices["ld"] if x is None or x < KT]
        for _ in range(2):
            for name in ("ld", "g", "t"):
                best = None
                for v in choices[name]:
                    trial = dict(cur, **{name: v})
                    c = cost("resident", None, trial["g"], trial["t"], trial["ld"])
                    if c is not None and (best is None or c < best[0]):
                        best = (c, v)
                if best is not None:
                    cur[name] = best[1]
        cost("psum") if n_block is None else None
    elif n_block is None:
        cost("psum")
    nbs = [n_block] if n_block is not None else [None] + [
        cfg.psum_depth >> s for s in range(1, 16)
        if cfg.psum_depth >> s >= 4 and cfg.psum_depth >> s < L.N]
    best_stream = None
    for nb in nbs:
        c = cost("stream", nb, None, tail, None)
        if c is None:
            continue
        if best_stream is not None and c > 1.1 * best_stream[0]:
            break
        if best_stream is None or c < best_stream[0]:
            best_stream = (c, nb)
    if best_stream is not None:
        for t in ([tail] if tail is not None else [2, 4]):
            cost("stream", best_stream[1], None, t, None)
    # in insertion order (the old rule first), a candidate replaces the best so far only
    # if its estimate is lower by more than PLAN_MARGIN: closer than that the model
    # does not rank reliably (docs/compiler.md), and the earlier candidate is the
    # simpler program
    best = None
    for k, c in seen.items():
        if c is not None and (best is None or c < best[0] * (1 - PLAN_MARGIN)):
            best = (c, k)
    if best is None:
        raise errors[0]
    c, (schedule, nb, g, t, ld) = best
    return {"schedule": schedule, "n_block": nb, "g0": g, "tail": t, "lead": ld,
            "estimate": c}


def preload_bytes(config, layout: GemmLayout, epilogue: Epilogue | None = None):
    """``(a_bytes, bias_bytes)``: the SBUF bytes per partition that :func:`preload_program`
    fills: every slice of ``A^T`` and the bias image (0 without a bias)."""
    KT = _ceil(layout.K, config.rows)
    a = KT * _align(layout.M * layout.esize)
    b = 0
    if epilogue is not None and epilogue.bias_addr is not None:
        b = _align(4 * len(bias_slots(config, layout.M)[1]))
    return a, b


def preload_program(config, program: Program, layout: GemmLayout, epilogue, a_off, bias_off):
    """Load ``A^T`` (every K slice, slice ``kt`` at ``a_off + kt * align(M * esize)``) and
    the epilogue's bias image (at ``bias_off``, if it has one) into SBUF: DMA loads with
    no wait that signal ``ld``. A later :func:`gemm_program` given
    ``preloaded={"a": a_off, "bias": bias_off}`` uses them; its loads come later in the
    same queue and every matmul waits for an ``ld`` count past them. The caller must make
    sure nothing else uses those bytes in between (the compiler puts them where the
    running layer never touches)."""
    cfg = config
    L = layout
    eb = L.esize
    R = cfg.rows
    if epilogue is not None and epilogue.bias_addr is not None:
        bchunk, r0s = bias_slots(cfg, L.M)
        program.dma(Dma(addr=epilogue.bias_addr, rows=bchunk, row_bytes=4 * len(r0s),
                        row_stride=4 * len(r0s), partition=0, offset=bias_off), signal="ld")
    for kt in range(_ceil(L.K, R)):
        k0 = kt * R
        kk = min(R, L.K - k0)
        program.dma(Dma(addr=L.a_addr + k0 * L.M * eb, rows=kk, row_bytes=L.M * eb,
                        row_stride=L.M * eb, partition=0,
                        offset=a_off + kt * _align(L.M * eb)), signal="ld")
