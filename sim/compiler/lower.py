"""The ncore compiler: a :class:`sim.compiler.net.Net` (from ONNX) -> one program and a DRAM image.

Lowering (``docs/compiler.md`` has the full description and the numerics):

* **Layout.** Activations are kept feature-major in DRAM: a layer computes
  ``Y^T = W^T X^T``, i.e. a GEMM (:mod:`sim.compiler.gemm`) with ``M`` = output features,
  ``N`` = batch, ``K`` = input features, ``A^T = W`` (the ONNX weight, ``K x N_out``,
  row-major: the stationary operand) and ``B = X^T`` (the streaming operand). A layer's
  output ``Y^T`` is therefore already the next layer's ``B``: no transposes between
  layers. The host transposes the input and the output.
* **Tiling** is :func:`sim.compiler.gemm.gemm_program`'s: K in steps of ``rows`` accumulated in
  PSUM, M in tiles of ``cols``, N in blocks that fit PSUM; operands double-buffered
  in SBUF against the matmuls with semaphores; the weights kept in SBUF when they fit
  (``resident`` schedule, or ``keep_a`` in ``stream``). The compiler picks the
  schedule and its options (N block, tiles per group, tail pieces, load lead) with an
  event model of the core (:mod:`sim.compiler.cost`, :func:`sim.compiler.gemm.plan_gemm`).
* **Fusion.** Bias, ReLU and the output cast (FP32 -> BF16/FP16) or requantisation
  (INT32 -> INT8) run in the ACT that drains each PSUM tile (:class:`sim.compiler.gemm.Epilogue`).
  The bias of a quantised layer also carries the input zero point's correction
  ``-zp_in * sum_k W[k, n]``.
* **Layers in sequence.** Between two stream GEMMs (the next one's weights
  prefetched), each activation load of layer ``l+1`` waits only for the stores of
  layer ``l`` that wrote its bytes (:func:`_fine_deps`; proved race-free by the race
  checker, else the old rule). Otherwise the first activation load of layer ``l+1``
  waits for every store of layer ``l`` (a semaphore count), which orders all of layer
  ``l+1``'s SBUF and PSUM use after layer ``l``'s. Its weights and bias are prefetched: loaded right
  after layer ``l``'s last load into SBUF bytes layer ``l`` never uses (when they fit
  and the estimate says it wins). The whole net is one program ending in END.

Every emitted program is free of races by construction; :func:`compile_net` can prove
it with :func:`sim.isa.races.find_races` (``check=True``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hdl.config import FLOAT_DTYPES, named_config
from hdl.formats import ACT_BYTES, DTYPE_BYTES
from hdl.isa import INSTR_BYTES

from sim.model.fp import to16_bits
from sim.compiler.gemm import (Epilogue, GemmLayout, bias_image, gemm_program, plan_gemm,
                               preload_bytes, preload_program)
from sim.compiler.net import Net, dequantize, quantize_input

__all__ = ["CompileError", "Compiled", "LayerPlan", "compile_net", "requant_params",
           "output_values", "check_net",
           "estimate_cycles", "run_compiled"]

FLOAT_TYPES = FLOAT_DTYPES


class CompileError(ValueError):
    """The net cannot be compiled for this configuration (with the reason)."""


def _align(x, a=64):
    return -(-x // a) * a


def requant_params(multiplier):
    """``(scale, shift)`` with ``scale / 2**shift`` closest to ``multiplier`` (> 0):
    the largest ``shift`` in 0..47 whose ``scale = round(multiplier * 2**shift)``
    (half away from zero) is at most 32767, so the vector engine's 16-bit signed scale
    keeps 15 significant bits. Raises :class:`CompileError` if it is out of range."""
    m = float(multiplier)
    if not (math.isfinite(m) and m > 0):
        raise CompileError(f"a requantisation multiplier must be finite and > 0, not {m}")
    for shift in range(47, -1, -1):
        scale = math.floor(m * 2.0 ** shift + 0.5)
        if scale <= 32767:
            if scale == 0:
                raise CompileError(f"requantisation multiplier {m:g} is below 2**-48")
            return scale, shift
    raise CompileError(f"requantisation multiplier {m:g} is above 32767")


def estimate_cycles(program, config, timing=None):
    """The estimated cycles of a program: :func:`sim.compiler.cost.estimate` (an event
    model of the controller's queues and the engines, calibrated on the RTL). Used to
    choose between schedules and tilings (:func:`sim.compiler.gemm.plan_gemm`) and
    whether to prefetch weights; never reported as a measurement."""
    from sim.compiler.cost import estimate
    return estimate(program, config, timing)


@dataclass
class LayerPlan:
    """Where a compiled layer lives: its GEMM, epilogue and instructions."""
    index: int
    name: str
    layout: GemmLayout
    epilogue: Epilogue
    first: int          # index of its first instruction
    count: int          # its number of instructions
    n_block: int | None
    schedule: str = ""          # the GEMM schedule used (plan_gemm's choice)
    options: dict = field(default_factory=dict)     # plan_gemm's whole choice
    prefetched: bool = False    # its weights (and bias) were loaded during the layer before
    fine_deps: bool = False     # its activation loads wait only for the stores they read

    @property
    def macs(self):
        return self.layout.macs


@dataclass
class Compiled:
    """A compiled net: program, DRAM image and how to pack inputs and read outputs.

    The image holds the weights, biases and program; :meth:`image_for` adds an input.
    Addresses are byte addresses from 0; the DMA window is ``[0, size)``.
    """
    config: object
    net: Net
    batch: int
    dtype: str
    program: object
    image: np.ndarray
    prog_addr: int
    input_addr: int
    output_addr: int
    layers: list
    first_layer: int = 0
    notes: list = field(default_factory=list)

    @property
    def size(self):
        return self.image.size

    @property
    def macs(self):
        return sum(L.macs for L in self.layers)

    @property
    def output_layout(self):
        return self.layers[-1].layout

    def input_bits(self, x):
        """The FP32 input ``batch x features`` as the core reads it: transposed, cast to
        BF16/FP16 (round to nearest even) or quantised to INT8 (ONNX QuantizeLinear)."""
        if self.first_layer != 0:
            raise ValueError("this program starts inside the net: give input_bits directly")
        x = np.asarray(x, dtype=np.float32)
        K = self.layers[0].layout.K
        if x.shape != (self.batch, K):
            raise ValueError(f"input shape {x.shape} does not match ({self.batch}, {K})")
        if self.dtype == "int8":
            q = quantize_input(x, self.net.input_quant)
            return np.ascontiguousarray(q.T)
        return np.ascontiguousarray(to16_bits(x.T, self.dtype))

    def image_for(self, bits):
        """The DRAM image with the input (``input_bits``: ``K x batch``) in place."""
        L = self.layers[0].layout
        raw = np.ascontiguousarray(bits).view(np.uint8).reshape(-1)
        if raw.size != L.K * L.N * L.esize:
            raise ValueError(f"the input has {raw.size} bytes, the layer reads "
                             f"{L.K * L.N * L.esize}")
        img = self.image.copy()
        img[self.input_addr:self.input_addr + raw.size] = raw
        return img

    def written_ranges(self):
        """``[(addr, nbytes), ...]``: the DRAM the program writes (each layer's output)."""
        return [(L.layout.c_addr, L.layout.c_bytes) for L in self.layers]

    def output_bits(self, dram):
        """The last layer's raw output ``N_out x batch`` from a DRAM image."""
        L = self.output_layout
        raw = np.asarray(dram[L.c_addr:L.c_addr + L.c_bytes], dtype=np.uint8)
        dt = {"INT8": np.int8, "INT32": np.int32, "FP32": np.float32,
              "BF16": np.uint16, "FP16": np.uint16}[L.c_type]
        return raw.copy().view(dt).reshape(L.M, L.N)

    def output(self, dram):
        """The net's FP32 output, ``batch x N_out`` (dequantised on the host for
        quantised nets, as ONNX DequantizeLinear does)."""
        return output_values(self.net, len(self.layers) + self.first_layer - 1,
                             self.output_layout.c_type, self.output_bits(dram))

    def listing(self):
        return self.program.listing(base_addr=self.prog_addr)


def output_values(net, last_index, c_type, y):
    """FP32 ``batch x N_out`` from the raw output ``y`` (``N_out x batch`` of
    ``c_type``) of layer ``last_index`` (dequantised as ONNX DequantizeLinear does)."""
    last = net.layers[last_index]
    if c_type == "INT8":
        y = dequantize(y, last.out_quant)
    elif c_type == "INT32":
        s = np.float32(np.float32(net.in_quant(len(net.layers) - 1).scale)
                       * np.float32(last.w_scale))
        y = y.astype(np.float32) * s
    elif c_type == "BF16":
        y = (y.astype(np.uint32) << 16).view(np.float32)
    elif c_type == "FP16":
        y = y.view(np.float16).astype(np.float32)
    return np.ascontiguousarray(y.T)


def _layer_epilogue(net, i, dtype):
    """(out_type, bias bits (uint32[N]) or None, Epilogue fields) of layer ``i``."""
    L = net.layers[i]
    last = i == len(net.layers) - 1
    if dtype != "int8":
        out_type = "FP32" if last else dtype.upper()
        bias = None if L.bias is None else np.asarray(L.bias, np.float32).view(np.uint32)
        return out_type, bias, dict(relu=L.relu)
    qin = net.in_quant(i)
    w = np.asarray(L.weight).astype(np.int64)
    b = np.zeros(L.N, np.int64) if L.bias is None else np.asarray(L.bias).astype(np.int64)
    b = b - int(qin.zero_point) * w.sum(axis=0)
    if b.min() < -2 ** 31 or b.max() >= 2 ** 31:
        raise CompileError(f"layer {i} ({L.name}): the bias with the input zero point's "
                           f"correction does not fit INT32")
    bias = b.astype(np.int32).view(np.uint32) if b.any() else None
    if L.out_quant is None:
        return "INT32", bias, dict(relu=L.relu)
    mult = float(np.float32(qin.scale)) * float(np.float32(L.w_scale)) / \
        float(np.float32(L.out_quant.scale))
    scale, shift = requant_params(mult)
    return "INT8", bias, dict(relu=L.relu, scale=scale, shift=shift,
                              zp=int(L.out_quant.zero_point))


def check_net(net, cfg, dtype, batch):
    """``CompileError`` unless ``net`` is well formed and runs as ``dtype`` (default:
    int8 for a quantised net, bf16 for a float one) on ``cfg`` with a positive
    ``batch``; returns the operand type."""
    try:
        net.check()
    except ValueError as e:
        raise CompileError(str(e)) from None
    if dtype is None:
        dtype = "int8" if net.quantized else "bf16"
    if net.quantized and dtype != "int8":
        raise CompileError(f"a quantised net runs as int8, not {dtype!r}")
    if not net.quantized and dtype not in FLOAT_TYPES:
        raise CompileError(f"a float net runs as bf16 or fp16, not {dtype!r}")
    if dtype not in cfg.dtypes:
        raise CompileError(f"configuration {cfg.name!r} has no {dtype} "
                           f"(it has {', '.join(cfg.dtypes)}); pick one that does")
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise CompileError(f"batch must be a positive integer, not {batch!r}")
    return dtype


def compile_net(net: Net, config="default", *, batch, dtype=None, double_buffer=True,
                n_block=None, layers=None, check=False, dram_bytes=None, prefetch=None,
                timing=None, pipeline_cores=None, data_parallel_cores=None) -> Compiled:
    """Compile ``net`` for ``config`` and a batch of ``batch`` inputs.

    ``dtype``: ``"int8"`` for quantised nets; ``"bf16"`` (default) or ``"fp16"`` for
    float nets. ``double_buffer=False`` gives every GEMM one SBUF buffer and one PSUM
    group (for comparisons). ``n_block``: force the N block size (default: chosen by
    :func:`estimate_cycles`). ``layers=(lo, hi)``: compile only those layers (the
    input is then the raw activation entering layer ``lo``; used for per-layer figures).
    ``check``: run the race checker on the program. ``dram_bytes``: fail with
    :class:`CompileError` if the image would not fit that much DRAM. ``prefetch``:
    load each layer's weights and bias during the layer before, into SBUF bytes that
    layer never uses (``True``: wherever they fit; ``False``: never; ``None``, the
    default: compile both ways and keep the program with the lower
    :func:`sim.compiler.cost.estimate`). ``timing``: the cost model's
    :class:`sim.compiler.cost.Timing` (default: calibrated on the current RTL).

    ``pipeline_cores=N``: compile for a chip of ``N`` cores, one pipeline stage per core
    (:func:`sim.compiler.pipeline.compile_pipeline`); ``data_parallel_cores=N``: every
    core the whole net on a share of the batch
    (:func:`sim.compiler.chip.compile_data_parallel`). Both return a
    :class:`sim.compiler.chip.ChipCompiled` (run it with
    :func:`sim.compiler.chip.run_chip_compiled`).
    """
    if pipeline_cores is not None or data_parallel_cores is not None:
        if pipeline_cores is not None and data_parallel_cores is not None:
            raise CompileError("give pipeline_cores or data_parallel_cores, not both")
        if layers is not None:
            raise CompileError("a chip compiles the whole net (no layers=)")
        if pipeline_cores is not None:
            from sim.compiler.pipeline import compile_pipeline
            return compile_pipeline(net, config, batch=batch, cores=pipeline_cores,
                                    dtype=dtype, check=check, dram_bytes=dram_bytes)
        from sim.compiler.chip import compile_data_parallel
        return compile_data_parallel(net, config, batch=batch, cores=data_parallel_cores,
                                     dtype=dtype, check=check, dram_bytes=dram_bytes,
                                     double_buffer=double_buffer, n_block=n_block,
                                     prefetch=prefetch, timing=timing)
    cfg = named_config(config)
    dtype = check_net(net, cfg, dtype, batch)
    lo, hi = layers or (0, len(net.layers))
    if not 0 <= lo < hi <= len(net.layers):
        raise CompileError(f"layers must be a range within 0..{len(net.layers)}, not {layers}")
    eb = DTYPE_BYTES[dtype]

    # ---- DRAM layout: weights and biases, then activations, then the program -------
    top = 0
    chunks = []                      # (addr, uint8 bytes)

    def place(raw):
        nonlocal top
        addr = top
        raw = np.ascontiguousarray(raw).view(np.uint8).reshape(-1)
        chunks.append((addr, raw))
        top = _align(addr + raw.size)
        return addr

    def reserve(nbytes):
        nonlocal top
        addr = top
        top = _align(addr + nbytes)
        return addr

    specs = []
    for i in range(lo, hi):
        L = net.layers[i]
        w = np.asarray(L.weight)
        w_bits = w.astype(np.int8) if dtype == "int8" else to16_bits(w, dtype)
        out_type, bias, efields = _layer_epilogue(net, i, dtype)
        a_addr = place(w_bits)          # A^T = W, K x N_out
        b_img = None if bias is None else bias_image(cfg, L.N, bias)
        bias_addr = None if b_img is None else place(b_img)
        specs.append((i, L, a_addr, out_type, bias_addr, efields))
    in_addr = reserve(net.layers[lo].K * batch * eb)
    act_bytes = sum(_align(net.layers[i].N * batch * ACT_BYTES[s[3]]) for i, s in
                    zip(range(lo, hi), specs))
    too_big = dram_bytes is not None and top + act_bytes > dram_bytes

    def refuse(size):
        raise CompileError(f"the model needs {size} bytes of DRAM (weights, activations "
                           f"for a batch of {batch}, program), the DMA window has "
                           f"{dram_bytes}")
    if too_big:         # before generating a program that may be huge
        refuse(top + act_bytes)
    prev = in_addr
    layers_ = []
    for (i, L, a_addr, out_type, bias_addr, efields) in specs:
        c_addr = reserve(L.N * batch * ACT_BYTES[out_type])
        layout = GemmLayout(M=L.N, N=batch, K=L.K, dtype=dtype, a_addr=a_addr,
                            b_addr=prev, c_addr=c_addr, out_type=out_type)
        layers_.append((i, L, layout, Epilogue(bias_addr=bias_addr, **efields)))
        prev = c_addr
    if prefetch is None and len(layers_) > 1 and double_buffer:
        from sim.compiler.cost import estimate
        with_pf = _emit_net(cfg, layers_, double_buffer, n_block, True, timing)
        without = _emit_net(cfg, layers_, double_buffer, n_block, False, timing)
        ests = [estimate(q[0], cfg, timing) for q in (with_pf, without)]
        p, plans = with_pf if ests[0] <= ests[1] else without
    else:
        p, plans = _emit_net(cfg, layers_, double_buffer, n_block, bool(prefetch), timing)
    if any(L.fine_deps for L in plans):
        # the finer layer-to-layer dependency is proved race-free here; if it is not
        # (a layout it does not foresee), every layer waits for all stores before it
        from sim.isa.races import find_races
        if find_races(cfg, p, prog_addr=top, program_bytes=INSTR_BYTES * len(p)):
            p, plans = _emit_net(cfg, layers_, double_buffer, n_block,
                                 any(L.prefetched for L in plans), timing, fine=False)
    prog_addr = reserve(INSTR_BYTES * len(p))
    code = np.frombuffer(p.encode(), dtype=np.uint8)
    chunks.append((prog_addr, code))
    size = top
    if dram_bytes is not None and size > dram_bytes:
        refuse(size)
    image = np.zeros(size, dtype=np.uint8)
    for addr, raw in chunks:
        image[addr:addr + raw.size] = raw
    if check:
        from sim.isa.races import find_races
        races = find_races(cfg, p, prog_addr=prog_addr)
        if races:
            raise CompileError(f"internal error: the program has {len(races)} races, "
                               f"first {races[0]}")
    return Compiled(cfg, net, batch, dtype, p, image, prog_addr, in_addr, prev, plans,
                    first_layer=lo, notes=list(net.notes))


def _preload_region(cfg, layout, epi, cur):
    """Where the compiler prefetches a layer's weights and bias: ``(start, a_off,
    bias_off, end)`` in every SBUF partition, the highest bytes clear of ``cur`` (the
    region of the layer before, or ``None``); ``None`` if there is no room."""
    a_bytes, b_bytes = preload_bytes(cfg, layout, epi)
    size = a_bytes + b_bytes
    S = cfg.sbuf_bytes
    start = S - size
    if cur is not None and start < cur[3]:
        start = cur[0] - size
    if start <= 0:
        return None
    return (start, start, start + a_bytes if b_bytes else None, start + size)


def _fine_deps(cfg, p, prev, layout):
    """The finer dependency of a layer on the one before (``prev``, a stream GEMM just
    written to ``p``): ``gemm_program``'s ``b_wait``, ``first_group``, ``prev_acts``, ``prev_stores``.

    Each load of the layer's ``B`` (= ``prev``'s C) needs the stores of ``prev`` that
    wrote the bytes it reads. Stores up to the highest ``st`` count a SEM of ``prev``
    waits for are already ordered before every later instruction (the decoder stops at a
    SEM); a load needing only those waits, if it has no wait of its own, for the last
    matmul of ``prev`` reading its SBUF bytes (an ``mm`` count). A load
    needing a later store waits for all of ``prev``'s stores (today's rule: they come
    after every ACT and matmul of ``prev``), on a SEM if the load has a wait of its own.
    The first block's matmuls use the half of PSUM ``prev`` did not drain last (after
    a SEM for ``prev``'s ACTs before its last drain), the other half waits (a SEM) for
    every ACT of ``prev``, and the first drain (a SEM) for every store of ``prev``. Whatever this leaves unordered
    (staging buffers, other layouts) :func:`compile_net` finds with the race checker,
    and then falls back to the old rule.
    """
    ins = p.instructions[prev.first:prev.first + prev.count]
    idx = p.sem_names
    st_i, mm_i = idx.get("st"), idx.get("mm")
    st_hi, mm_all, acts = p.signals("st"), p.signals("mm"), p.signals("act")
    st_lo = st_hi - sum(1 for x in ins if x.signal == st_i)
    stores, n, covered = [], st_lo, st_lo
    for x in ins:
        if x.signal == st_i:
            n += 1
            if x.op == "DMA" and x.cmd.store:
                stores.append((n, x.cmd.addr, x.cmd.rows, x.cmd.row_bytes, x.cmd.row_stride))
        if x.op == "SEM" and x.wait is not None and x.wait[0] == st_i:
            covered = max(covered, x.wait[1])
    P = prev.layout
    stride = P.N * P.c_esize
    eb = layout.esize

    def overlaps(r0, rows, c0, cb, st):
        a, srows, srb, sstride = st[1:]
        if sstride != stride:
            return True
        s_r0, s_c0 = divmod(a - P.c_addr, stride)
        return (s_r0 < r0 + rows and r0 < s_r0 + srows and s_c0 < c0 + cb and c0 < s_c0 + srb)

    # the SBUF bytes each mm count of prev frees: (count, lo, hi) read by the matmuls
    # up to the one signalling it (the tensor queue runs in order)
    mm_reads, n, pend = [], mm_all - sum(1 for x in ins if x.signal == mm_i), []
    for x in ins:
        if x.op == "MATMUL":
            c, e = x.cmd, prev.layout.esize
            pend += [(c.x_off * e, (c.x_off + c.n) * e), (c.s_off * e, (c.s_off + c.m) * e)]
            if x.signal == mm_i:
                n += 1
                mm_reads += [(n, lo, hi) for lo, hi in pend]
                pend = []
    state = {"covered": covered, "mm": 0}

    def b_wait(k0, kk, n0, nb, own, off):
        need = max((st[0] for st in stores if overlaps(k0, kk, n0 * eb, nb * eb, st)),
                   default=st_lo)
        if need <= state["covered"]:
            if own is None and not pend:
                # the load's SBUF bytes: free once the matmuls of prev reading them are
                mm = max((c for c, lo, hi in mm_reads if lo < off + nb * eb and off < hi),
                         default=0)
                if mm > state["mm"]:
                    state["mm"] = mm
                    return None, ("mm", mm)
                return None, None
            if own is None:
                return None, ("mm", mm_all)
            return None, own
        state["covered"] = st_hi
        if own is None:
            return None, ("st", st_hi)
        return ("st", st_hi), own

    ngroups = 2 if cfg.psum_banks >= 2 else 1
    G = max(1, cfg.psum_banks // 2)
    last = max(i for i, x in enumerate(ins) if x.op == "MATMUL")
    first_group = (ins[last].cmd.bank // G + 1) % ngroups if ngroups == 2 else 0
    last_drain = sum(1 for x in ins[last:] if x.op == "ACT")
    return {"b_wait": b_wait, "first_group": first_group,
            "prev_acts": (acts - last_drain, acts), "prev_stores": st_hi}


def _emit_net(cfg, layers, double_buffer, n_block, prefetch, timing, fine=True):
    """The whole net's program and its :class:`LayerPlan` list. With ``prefetch``, each
    layer's weight and bias loads are written right after the previous layer's last
    load (:func:`sim.compiler.gemm.preload_program`) into a region of SBUF the previous
    layer does not use (its own buffers are kept below both regions); where that does
    not fit, the layer loads its weights itself as before."""
    from sim.isa.asm import Program
    p = Program(cfg)
    plans = []
    S = cfg.sbuf_bytes
    regions = [None] * (len(layers) + 1)

    def pre(r):
        return None if r is None else {"a": r[1], "bias": r[2]}

    def plan(j, top, region):
        i, L, layout, epi = layers[j]
        return plan_gemm(cfg, layout, double_buffer=double_buffer, n_block=n_block,
                         epilogue=epi, sbuf_top=top, preloaded=pre(region), timing=timing)

    for j, (i, L, layout, epi) in enumerate(layers):
        cur = regions[j]
        opts = None
        nxt = None
        if prefetch and double_buffer and j + 1 < len(layers):
            nxt = _preload_region(cfg, layers[j + 1][2], layers[j + 1][3], cur)
            if nxt is not None:
                try:
                    plan(j + 1, nxt[0], nxt)        # the next layer fits with it
                    top = min(r[0] for r in (cur, nxt) if r is not None)
                    opts = plan(j, top, cur)
                except ValueError:
                    nxt = None
        if nxt is None:
            top = S if cur is None else cur[0]
            try:
                opts = plan(j, top, cur)
            except ValueError as e:
                raise CompileError(f"layer {i} ({L.name}): {e}") from None
        regions[j + 1] = nxt
        hook = None
        if nxt is not None:
            nlayout, nepi = layers[j + 1][2], layers[j + 1][3]

            def hook(prog, nlayout=nlayout, nepi=nepi, nxt=nxt):
                preload_program(cfg, prog, nlayout, nepi, nxt[1], nxt[2])
        after = ("st", p.signals("st")) if plans else None
        extra = {}
        if (fine and plans and plans[-1].schedule == "stream" and opts["schedule"] == "stream"
                and cur is not None and cur[1] is not None
                and (epi.bias_addr is None or cur[2] is not None)):
            extra = _fine_deps(cfg, p, plans[-1], layout)
            after = None
        first = len(p)
        try:
            gemm_program(cfg, layout, double_buffer=double_buffer,
                         n_block=opts["n_block"], schedule=opts["schedule"], g0=opts["g0"],
                         tail=opts["tail"], lead=opts["lead"], epilogue=epi, program=p,
                         after=after, end=j == len(layers) - 1, sbuf_top=top,
                         preloaded=pre(cur), prefetch=hook, **extra)
        except ValueError as e:
            raise CompileError(f"layer {i} ({L.name}): {e}") from None
        plans.append(LayerPlan(i, L.name, layout, epi, first, len(p) - first,
                               opts["n_block"], opts["schedule"], opts, cur is not None,
                               bool(extra)))
    return p, plans


def run_compiled(compiled: Compiled, x=None, *, backend="golden", bits=None, watchdog=100_000,
                 device=None, image=True, dram_bytes=None):
    """Run a compiled net on ``x`` (FP32, ``batch x features``; or raw ``bits`` as
    :meth:`Compiled.input_bits` gives) on a backend. Returns ``(y, result, dram)``:
    the FP32 output ``batch x N_out``, the :class:`sim.compiler.runtime.RunResult` (checked:
    a core error raises) and the DRAM image after the run (``None`` with
    ``image=False``: on a board only the output is then read back).

    ``device``: run on this :class:`sim.compiler.runtime.Device` (e.g. a board's, kept
    open between inferences: what the board already holds is not sent again) instead of
    a new one on ``backend`` with ``dram_bytes`` of DRAM (default: the backend's
    default, or just what the model needs if that is more and the backend has it)."""
    from sim.compiler.runtime import Device, OutOfMemory, default_dram_bytes, max_dram_bytes
    if device is None:
        if dram_bytes is None:
            dram_bytes = default_dram_bytes(compiled.config, backend)
            most = max_dram_bytes(compiled.config, backend)
            if compiled.size > dram_bytes and (most is None or compiled.size <= most):
                dram_bytes = compiled.size
        device = Device(compiled.config, backend, dram_bytes)
    dev = device
    if compiled.size > dev.dram_bytes:
        raise OutOfMemory(f"the model needs {compiled.size} bytes of DRAM, this "
                          f"{dev.backend} device has {dev.dram_bytes}; "
                          f"{dev.memory_hint(compiled.size)}")
    if bits is None:
        bits = compiled.input_bits(x)
    dev.top = 0
    base = dev.alloc(compiled.size)
    assert base == 0
    # the image, less what the program writes before it reads it (each layer's output):
    # on a board that keeps the model, only the input then goes up again
    img = compiled.image_for(bits)
    pos = 0
    for a, n in sorted(compiled.written_ranges()) + [(compiled.size, 0)]:
        if a > pos:
            dev.write(pos, img[pos:a])
        pos = max(pos, a + n)
    r = dev.run(compiled.prog_addr, win=(0, compiled.size), watchdog=watchdog,
                writes=compiled.written_ranges()).check()
    L = compiled.output_layout
    dev.read(L.c_addr, (L.c_bytes,))            # a board: fetch the output
    if image:
        dev.sync(compiled.size)
    return compiled.output(dev.dram), r, dev.dram[:compiled.size].copy() if image else None
