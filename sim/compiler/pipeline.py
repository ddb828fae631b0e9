"""A net pipelined across the cores of a chip: each core one stage, its weights resident
in its SBUF, activations streamed from core to core without DRAM (``docs/chip.md``).

**Stages.** The layers of an FC chain are cut into at most ``cores`` contiguous stages,
balanced by an estimate of each layer's cycles per micro-batch (its matmuls,
``ceil(K/rows) * ceil(M/cols) * max(nb, rows)`` plus a fixed cost per matmul and per
drain), subject to each stage fitting one core's SBUF (dynamic programming over the
cut points, minimising the slowest stage).

**SBUF of a stage** (every partition; the array must be square, so a layer's output
chunk of ``cols`` features is the next layer's K chunk of ``rows`` partitions):
the weights of each layer (K chunk ``i`` in partitions ``0..``, all ``M`` columns),
its bias slots (:func:`sim.compiler.gemm.bias_image`), two input buffers (the previous
stage writes one while this one reads the other), one buffer per layer boundary inside
the stage, and two output buffers (read by the stores while the next micro-batch is
computed). A buffer holds a micro-batch: feature ``f`` at partition ``f % rows``,
bytes ``(f // rows) * nb * esize`` on.

**A micro-batch** of ``nb`` inputs (``nb`` = PSUM depth, or less) goes through a stage
as: (stage 0) DMA loads of its columns of ``X^T``, or (later stages) a SEM waiting for
the previous core's *full* signal; then each layer's tiles: the K-chunk matmuls
accumulating in one PSUM bank (banks used round-robin; a tile's first matmul waits for
the ACT that drained the bank's previous tile and, inside a stage, for the ACTs of the
layer before, which wrote its input), and the ACT that drains it with the
layer's bias, ReLU and cast or requantisation (the epilogue of
:func:`sim.compiler.lower.compile_net`, so results are identical); after the stage's
first layer a remote SEM tells the previous core its input buffer is free. Each tile of
the stage's last layer leaves as soon as its ACT has drained it, while the next tiles
are computed: a peer store into the next core's input buffer (the layer waits, with a
SEM, for that core's *free*), or, in the last stage, a DMA store of its rows of ``Y^T``
to DRAM; after the last tile a remote SEM signals the next core's *full*. The weights and biases are loaded once, at the start.

Every program is checked with the chip race checker when ``check=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.chipmap import PeerAperture
from hdl.config import named_config
from hdl.formats import ACT_BYTES, DTYPE_BYTES
from hdl.isa import INSTR_BYTES

from sim.compiler.chip import ChipCompiled, check_cores_for
from sim.compiler.gemm import bias_image, bias_slots
from sim.compiler.lower import CompileError, _layer_epilogue, check_net, output_values
from sim.compiler.net import quantize_input
from sim.isa.asm import Program
from sim.isa.chipgen import FREE, FULL
from sim.model.dma import Dma
from sim.model.fp import to16_bits
from sim.model.tensor import Matmul
from sim.model.vector import Act

__all__ = ["compile_pipeline", "StagePlan", "stage_bytes"]

#: Fixed cycles charged per matmul and per ACT by the balancing estimate.
MATMUL_OVERHEAD = 4
ACT_OVERHEAD = 8


def _ceil(a, b):
    return -(-a // b)


def _align(x, a=8):
    return _ceil(x, a) * a


@dataclass
class StagePlan:
    """One core's share: layers ``[lo, hi)`` and its SBUF layout (byte offsets in
    every partition)."""
    core: int
    lo: int
    hi: int
    weights: dict          # layer -> offset
    bias: dict             # layer -> offset (layers with a bias)
    inputs: tuple          # the two input buffers
    inner: dict            # layer -> its input buffer (layers after the stage's first)
    outputs: tuple         # the two output buffers
    top: int               # bytes used
    cycles: int = 0        # the balancing estimate per micro-batch


def _layer_types(net, dtype):
    """Per layer: (out_type, bias bits or None, epilogue fields)."""
    return [_layer_epilogue(net, i, dtype) for i in range(len(net.layers))]


def _layer_cost(cfg, L, nb):
    kc, mc = _ceil(L.K, cfg.rows), _ceil(L.N, cfg.cols)
    return kc * mc * (max(nb, cfg.rows) + MATMUL_OVERHEAD) + mc * (nb + ACT_OVERHEAD)


def stage_bytes(cfg, net, types, lo, hi, nb, eb):
    """The SBUF layout of a stage of layers ``[lo, hi)`` (a :class:`StagePlan` with
    ``core=-1``), micro-batches of ``nb``."""
    R = cfg.rows
    off = 0
    weights, bias, inner = {}, {}, {}
    for i in range(lo, hi):
        L = net.layers[i]
        weights[i] = off
        off += _ceil(L.K, R) * _align(L.N * eb)
        if types[i][1] is not None:
            bias[i] = off
            off += _align(4 * len(bias_slots(cfg, L.N)[1]))
    in_bytes = _align(_ceil(net.layers[lo].K, R) * nb * eb)
    inputs = (off, off + in_bytes)
    off += 2 * in_bytes
    for i in range(lo + 1, hi):
        inner[i] = off
        off += _align(_ceil(net.layers[i].K, R) * nb * ACT_BYTES[types[i - 1][0]])
    out_bytes = _align(_ceil(net.layers[hi - 1].N, R) * nb * ACT_BYTES[types[hi - 1][0]])
    outputs = (off, off + out_bytes)
    off += 2 * out_bytes
    return StagePlan(-1, lo, hi, weights, bias, inputs, inner, outputs, off)


def _partition(cfg, net, types, cores, nb, eb):
    """Cut points minimising the slowest stage's estimate, every stage fitting SBUF;
    ``None`` if no cut fits."""
    n = len(net.layers)
    cost = [_layer_cost(cfg, L, nb) for L in net.layers]
    S = min(cores, n)
    INF = float("inf")
    # best[s][j]: (max stage cost, cuts) covering layers [0, j) with s stages
    best = [[(INF, None)] * (n + 1) for _ in range(S + 1)]
    best[0][0] = (0, [])
    for s in range(1, S + 1):
        for j in range(1, n + 1):
            for i in range(s - 1, j):
                prev, cuts = best[s - 1][i]
                if cuts is None:
                    continue
                if stage_bytes(cfg, net, types, i, j, nb, eb).top > cfg.sbuf_bytes:
                    continue
                c = max(prev, sum(cost[i:j]))
                if c < best[s][j][0]:
                    best[s][j] = (c, cuts + [(i, j)])
    cands = [best[s][n] for s in range(1, S + 1) if best[s][n][1] is not None]
    if not cands:
        return None
    return min(cands, key=lambda t: (t[0], -len(t[1])))[1]


def compile_pipeline(net, config="default", *, batch, cores, dtype=None, nb=None,
                     check=False, dram_bytes=None) -> ChipCompiled:
    """``net`` as a pipeline over ``cores`` cores (fewer stages if the net has fewer
    layers); the batch streams through in micro-batches of ``nb`` inputs (default: the
    PSUM depth, or the largest that lets every stage fit its SBUF). Raises
    :class:`~sim.compiler.lower.CompileError` with the reason if the array is not
    square, the configuration has fewer than 7 semaphores, or a layer does not fit a
    core's SBUF even alone."""
    cfg = named_config(config)
    check_cores_for(cfg, cores)
    dtype = check_net(net, cfg, dtype, batch)
    if cfg.rows != cfg.cols:
        raise CompileError(f"pipeline mode needs a square array (a layer's output chunk of "
                           f"cols features is the next one's K chunk of rows partitions), "
                           f"not {cfg.rows}x{cfg.cols}; use the data-parallel mode")
    if cfg.n_sems < 7:
        raise CompileError(f"pipeline mode uses 7 semaphores, the configuration has "
                           f"{cfg.n_sems}")
    batch = int(batch)
    eb = DTYPE_BYTES[dtype]
    types = _layer_types(net, dtype)
    # the largest micro-batch every stage of some cut fits (SBUF only shrinks with nb)
    hi_nb = min(nb or cfg.psum_depth, cfg.psum_depth, batch)
    cuts = _partition(cfg, net, types, cores, hi_nb, eb)
    nb = hi_nb
    if cuts is None:
        lo_nb, nb = 0, 0
        while hi_nb - lo_nb > 1:            # invariant: lo_nb fits (or 0), hi_nb does not
            mid = (lo_nb + hi_nb) // 2
            c = _partition(cfg, net, types, cores, mid, eb)
            if c is not None:
                lo_nb, cuts, nb = mid, c, mid
            else:
                hi_nb = mid
    if cuts is None:
        big = max(range(len(net.layers)),
                  key=lambda i: stage_bytes(cfg, net, types, i, i + 1, 1, eb).top)
        need = stage_bytes(cfg, net, types, big, big + 1, 1, eb).top
        if need > cfg.sbuf_bytes:
            raise CompileError(f"layer {big} ({net.layers[big].name}) does not fit one "
                               f"core's SBUF even alone ({need} of {cfg.sbuf_bytes} bytes "
                               f"per partition); use the data-parallel mode")
        raise CompileError(f"the {len(net.layers)} layers do not fit the SBUFs of "
                           f"{cores} core(s) as pipeline stages ({cfg.sbuf_bytes} bytes per "
                           f"partition each); use more cores or the data-parallel mode")
    plans = []
    for k, (lo, hi) in enumerate(cuts):
        sp = stage_bytes(cfg, net, types, lo, hi, nb, eb)
        sp.core = k
        sp.cycles = sum(_layer_cost(cfg, net.layers[i], nb) for i in range(lo, hi))
        plans.append(sp)

    # ---- DRAM: weights and bias images, input, output, programs ------------------------
    top = 0
    chunks = []

    def put(raw):
        nonlocal top
        addr = top
        raw = np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
        chunks.append((addr, raw))
        top = _align(addr + raw.size, 64)
        return addr

    def reserve(nbytes):
        nonlocal top
        addr = top
        top = _align(addr + nbytes, 64)
        return addr

    w_addr, b_addr = {}, {}
    for i, L in enumerate(net.layers):
        w = np.asarray(L.weight)
        w_addr[i] = put(w.astype(np.int8) if dtype == "int8" else to16_bits(w, dtype))
        if types[i][1] is not None:
            b_addr[i] = put(bias_image(cfg, L.N, types[i][1]))
    K0 = net.layers[0].K
    in_addr = reserve(K0 * batch * eb)
    last_type = types[-1][0]
    ce = ACT_BYTES[last_type]
    M_last = net.layers[-1].N
    out_addr = reserve(M_last * batch * ce)
    ap = PeerAperture(cfg)
    S = len(plans)
    programs = [_stage_program(cfg, net, types, plans, s, batch, nb, dtype, w_addr, b_addr,
                               in_addr, out_addr, ap) for s in range(S)]
    prog_addrs = []
    for p in programs:
        prog_addrs.append(reserve(INSTR_BYTES * len(p)))
        chunks.append((prog_addrs[-1], np.frombuffer(p.encode(), np.uint8)))
    if dram_bytes is not None and top > dram_bytes:
        raise CompileError(f"the pipeline's image needs {top} bytes of DRAM, the device "
                           f"has {dram_bytes}")
    if top > ap.base:
        raise CompileError(f"the pipeline's image ({top} bytes) reaches the peer aperture")
    image = np.zeros(top, np.uint8)
    for a, raw in chunks:
        image[a:a + raw.size] = raw
    instrs = [p.instructions for p in programs] + [None] * (cores - S)
    addrs = prog_addrs + [None] * (cores - S)

    def input_bits(x):
        x = np.asarray(x, dtype=np.float32)
        if x.shape != (batch, K0):
            raise ValueError(f"input shape {x.shape} does not match ({batch}, {K0})")
        if dtype == "int8":
            return np.ascontiguousarray(quantize_input(x, net.input_quant).T)
        return np.ascontiguousarray(to16_bits(x.T, dtype))

    def place_input(img, bits):
        raw = np.ascontiguousarray(bits).view(np.uint8).reshape(-1)
        if raw.size != K0 * batch * eb:
            raise ValueError(f"the input has {raw.size} bytes, not {K0 * batch * eb}")
        img[in_addr:in_addr + raw.size] = raw

    dt = {"INT8": np.int8, "INT32": np.int32, "FP32": np.float32, "BF16": np.uint16,
          "FP16": np.uint16}[last_type]

    def output(dram):
        raw = np.asarray(dram[out_addr:out_addr + M_last * batch * ce], dtype=np.uint8)
        y = raw.copy().view(dt).reshape(M_last, batch)
        return output_values(net, len(net.layers) - 1, last_type, y)

    macs = sum(L.K * L.N for L in net.layers) * batch
    cc = ChipCompiled(cfg, cores, "pipeline", batch, image, instrs, addrs, macs,
                      input_bits, place_input, output, [(out_addr, M_last * batch * ce)],
                      notes=list(net.notes), stages=[(p.lo, p.hi) for p in plans])
    cc.nb = nb
    cc.plans = plans
    cc.weight_ranges = [(a, a + raw.size) for a, raw in chunks[:len(w_addr) + len(b_addr)]]
    if check:
        races = cc.races()
        if races:
            raise CompileError(f"internal error: the pipeline has {len(races)} races, "
                               f"first {races[0]}")
    return cc


def _stage_program(cfg, net, types, plans, s, batch, nb, dtype, w_addr, b_addr, in_addr,
                   out_addr, ap):
    """Core ``s``'s program (see the module docstring for the protocol). Every layer's
    input has the operand type ``dtype`` (INT8, or BF16/FP16 for float nets; only the
    net's last layer writes another type)."""
    R = cfg.rows
    eb = DTYPE_BYTES[dtype]
    sp = plans[s]
    first, last = s == 0, s == len(plans) - 1
    p = Program(cfg)
    assert p._sem("full") == FULL and p._sem("free") == FREE
    count = {"mm": 0, "act": 0, "st": 0, "in": 0}

    def signal(name):
        count[name] += 1
        return name

    # weights and biases, once
    nw = 0
    for i in range(sp.lo, sp.hi):
        L = net.layers[i]
        mrow = _align(L.N * eb)
        for c in range(_ceil(L.K, R)):
            k = min(R, L.K - c * R)
            p.dma(Dma(addr=w_addr[i] + c * R * L.N * eb, rows=k, row_bytes=L.N * eb,
                      row_stride=L.N * eb, offset=sp.weights[i] + c * mrow), signal="wld")
            nw += 1
        if i in sp.bias:
            chunk, r0s = bias_slots(cfg, L.N)
            p.dma(Dma(addr=b_addr[i], rows=chunk, row_bytes=4 * len(r0s),
                      row_stride=4 * len(r0s), offset=sp.bias[i]), signal="wld")
            nw += 1
    p.sem(wait=("wld", nw))
    banks = cfg.psum_banks
    tile = 0                         # PSUM tiles so far (bank = tile % banks)
    act_of_tile = []                 # ACT count when each tile's drain has finished
    mm_after_first = []              # mm count after the stage's first layer, per mb
    stores_of_mb = []                # st count after each micro-batch's stores
    K0 = net.layers[sp.lo].K
    for u, u0 in enumerate(range(0, batch, nb)):
        n = min(nb, batch - u0)
        buf_in = sp.inputs[u % 2]
        # ---- the input ----------------------------------------------------------------
        if first:
            for c in range(_ceil(K0, R)):
                k = min(R, K0 - c * R)
                # the buffer is free once the first layer of micro-batch u-2 has run
                wait = ("mm", mm_after_first[u - 2]) if u >= 2 else None
                p.dma(Dma(addr=in_addr + (c * R * batch + u0) * eb, rows=k,
                          row_bytes=n * eb, row_stride=batch * eb,
                          offset=buf_in + c * nb * eb), wait=wait, signal=signal("in"))
            p.sem(wait=("in", count["in"]))
        else:
            p.sem(wait=("full", u + 1))
        # ---- the layers --------------------------------------------------------------
        src = buf_in
        for i in range(sp.lo, sp.hi):
            L = net.layers[i]
            out_type, bias, ef = types[i]
            eo = ACT_BYTES[out_type]
            dst = sp.inner[i + 1] if i + 1 < sp.hi else sp.outputs[u % 2]
            if i + 1 == sp.hi and u >= 2:
                # the output buffer of micro-batch u-2 has been stored, and (pipeline)
                # the next core is done with its input buffer u % 2
                p.sem(wait=("st", stores_of_mb[u - 2]))
                if not last:
                    p.sem(wait=("free", u - 1))
            kc, mc = _ceil(L.K, R), _ceil(L.N, cfg.cols)
            mrow = _align(L.N * eb)
            acts_before_layer = count["act"]
            for j in range(mc):
                m = min(cfg.cols, L.N - j * cfg.cols)
                bank = tile % banks
                for c in range(kc):
                    k = min(R, L.K - c * R)
                    wait = None
                    if c == 0:
                        # the bank's last drain, and (inside the stage) every ACT of the
                        # layer before, which wrote this layer's input: both count "act"
                        need = max(act_of_tile[tile - banks] if tile >= banks else 0,
                                   acts_before_layer if i > sp.lo else 0)
                        wait = ("act", need) if need else None
                    p.matmul(Matmul(k=k, m=m, n=n, p0=0,
                                    s_off=(sp.weights[i] + c * mrow) // eb + j * cfg.cols,
                                    x_off=(src + c * nb * eb) // eb, bank=bank,
                                    psum_off=0, acc=c > 0, dtype=dtype),
                             wait=wait, signal=signal("mm"))
                extra = dict(relu=ef.get("relu", False), scale=ef.get("scale", 1),
                             shift=ef.get("shift", 0), zp=ef.get("zp", 0))
                if bias is not None:
                    extra.update(bias=True, bias_off=sp.bias[i] + 4 * j)
                p.act(Act(parts=m, n=n, dst_type=out_type, src_psum=True,
                          src_fp=not net.quantized, src_p0=0,
                          src_off=bank * cfg.psum_depth, dst_p0=0,
                          dst_off=dst + j * nb * eo, **extra),
                      wait=("mm", count["mm"]), signal=signal("act"))
                act_of_tile.append(count["act"])
                tile += 1
                if i + 1 == sp.hi:
                    # the tile leaves at once: to DRAM (last stage) or into the next
                    # core's input buffer, while the next tiles are computed
                    if last:
                        p.dma(Dma(addr=out_addr + (j * cfg.cols * batch + u0) * eo, rows=m,
                                  row_bytes=n * eo, row_stride=batch * eo,
                                  offset=dst + j * nb * eo, store=True),
                              wait=("act", count["act"]), signal=signal("st"))
                    else:
                        dst_off = plans[s + 1].inputs[u % 2] + j * nb * eo
                        p.dma(Dma(addr=ap.addr(s + 1, 0, dst_off), rows=m, row_bytes=n * eo,
                                  row_stride=ap.stride, offset=dst + j * nb * eo,
                                  store=True),
                              wait=("act", count["act"]), signal=signal("st"))
            if i == sp.lo:
                mm_after_first.append(count["mm"])
                if not first:
                    # this core's input buffer u % 2 is free for the previous core
                    p.signal_peer(s - 1, FREE, wait=("mm", count["mm"]))
            src = dst
        if not last:
            p.signal_peer(s + 1, FULL, wait=("st", count["st"]))
        stores_of_mb.append(count["st"])
    p.end(wait=("st", count["st"]) if count["st"] else None)
    return p
