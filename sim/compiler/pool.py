"""Pooling and residual additions on the core (issue 27): the vector engine's MAX and ADD
over activations in SBUF, and average pooling as a depthwise convolution.

**Layouts** are :class:`sim.compiler.conv.Planes`: padded planes per image and channel,
channels on SBUF partitions once loaded.

**Max pooling** (:func:`maxpool_program`). For a block of output rows of a channel tile
(``rows`` channels, one per partition), one DMA loads the block's input rows as they
lie in the planes. Each output row is then ``KH*KW - 1`` ACT MAX commands (a 1x1 window
is one COPY): the first takes window positions ``(0, 0)`` and ``(0, 1)`` as its two
operands, every later one the running result (in place in a staging row) and the next
position; an operand reads every ``sw``-th element of its input row (``src_skip = sw -
1``), which is the column stride. One DMA per output row stores the ``OW`` results of
every channel of the tile into the consumer's planes. Loads are double buffered, the
staging area is two blocks, so loads, ACTs and stores of neighbouring blocks overlap.
The pooled values are the input values themselves (MAX selects), so the result is
exact for every type: INT8 (with any zero point: the window's largest code is the
largest value), BF16 and FP16.

*Padding.* ONNX pads a max pool with -infinity. The input's padding must hold the
type's lowest value (INT8 -128, BF16/FP16 -Inf): :meth:`Planes.image` writes it with
``fill=`` when the host writes the planes; a producer on the core writes only the
interior, so the border keeps what the host's image put there. A window that covers
only padding would give that value (ONNX: the same -Inf; such windows need ``pads >=
kernel``, refused).

**Average pooling** (:func:`avgpool2d`) is a depthwise convolution
(:func:`sim.compiler.conv.conv2d` with ``groups = C``) whose weights are all 1 (INT8:
the sum, then the ACT's requantisation scales by ``1 / (KH*KW)`` together with the
input and output scales, and a bias of ``-KH*KW*zp_in`` removes the input's zero point)
or ``1/(KH*KW)`` rounded to the float type (floats: exact when ``KH*KW`` is a power of
two). Global average pooling is the same with the whole map as the window. The ONNX
default ``count_include_pad = 0`` divides border windows by the number of real pixels,
which differs per position: with padding only ``count_include_pad = 1`` is done.

**Residual add** (:func:`add_program`): per channel tile and block of rows, two loads
(one per operand), one ACT ADD per row (INT8: each operand with its own multiplier,
``docs/vector.md``; floats: one FP32 rounding and the cast) and one store per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.formats import DTYPE_BYTES

from sim.compiler.conv import ConvError, Planes
from sim.compiler.gemm import _align
from sim.isa.asm import Program
from sim.model.dma import Dma
from sim.model.vector import Act

__all__ = ["PoolLayout", "maxpool_program", "maxpool_reference", "maxpool2d",
           "avgpool2d", "add_program", "add_params", "add2d", "LOWEST", "SRC_TYPE"]

#: The ACT operand type of each activation type.
SRC_TYPE = {"int8": "INT8", "bf16": "BF16", "fp16": "FP16"}
#: The lowest value of each type, as the bits a max pool's padding holds.
LOWEST = {"int8": 0x80, "bf16": 0xFF80, "fp16": 0xFC00}


@dataclass(frozen=True)
class PoolLayout:
    """One max pool (ONNX ``MaxPool``, NCHW, no dilation) from padded planes ``x`` (its
    padding is the pool's, holding :data:`LOWEST`) to padded planes ``y``."""
    x: Planes
    y: Planes
    KH: int
    KW: int
    dtype: str
    stride: tuple = (1, 1)

    @property
    def OH(self):
        return (self.x.Hp - self.KH) // self.stride[0] + 1

    @property
    def OW(self):
        return (self.x.Wp - self.KW) // self.stride[1] + 1


def _check_pool(cfg, L: PoolLayout):
    if L.dtype not in SRC_TYPE:
        raise ConvError(f"pooling of {L.dtype!r} is not supported (int8, bf16, fp16)")
    if L.dtype != "int8" and not cfg.has_float:
        raise ConvError(f"this configuration has no float types for a {L.dtype} pool")
    eb = DTYPE_BYTES[L.dtype]
    if L.x.esize != eb or L.y.esize != eb:
        raise ConvError(f"the planes' elements must be {eb} bytes for {L.dtype}")
    if not (1 <= L.KH <= 16 and 1 <= L.KW <= 16):
        raise ConvError(f"pool window {L.KH}x{L.KW} is outside 1..16")
    if not all(1 <= s <= 8 for s in L.stride):
        raise ConvError(f"pool stride {L.stride} is outside 1..8 (the ACT's src_skip)")
    t, left, b, r = L.x.pads
    if max(t, b) >= L.KH or max(left, r) >= L.KW:
        raise ConvError(f"padding {L.x.pads} as large as the window {L.KH}x{L.KW}: a "
                        f"window could hold padding only")
    if L.OH < 1 or L.OW < 1:
        raise ConvError(f"the window {L.KH}x{L.KW} is larger than the padded input "
                        f"({L.x.Hp}x{L.x.Wp})")
    if (L.y.B, L.y.C, L.y.H, L.y.W) != (L.x.B, L.x.C, L.OH, L.OW):
        raise ConvError(f"the output planes are {L.y.B}x{L.y.C}x{L.y.H}x{L.y.W}, the pool "
                        f"gives {L.x.B}x{L.x.C}x{L.OH}x{L.OW}")


def _blocks(config, B, C, H, rows):
    """The blocks of a layer over channels on partitions: ``(step, b, c0, kk, h0, rb)``
    for image ``b``, channels ``c0 .. c0+kk-1`` (at most ``rows`` of the core), output
    rows ``h0 .. h0+rb-1`` (at most ``rows`` argument per block); ``step`` counts the
    blocks (double-buffering parity)."""
    step = 0
    for b in range(B):
        for c0 in range(0, C, config.rows):
            kk = min(config.rows, C - c0)
            for h0 in range(0, H, rows):
                yield step, b, c0, kk, h0, min(rows, H - h0)
                step += 1


def _store_rows(e, Y, b, c0, kk, h0, rb, W, eb, offset):
    """One DMA store per output row of a block (``W`` elements of ``kk`` channels from
    SBUF ``offset``, rows ``W * eb`` bytes apart) into the padded planes ``Y``; the first
    waits for the block's ACTs."""
    for r in range(rb):
        e.emit("dma", "st", Dma(addr=Y.at(b, c0, h0 + r + Y.pads[0], Y.pads[1]), rows=kk,
                                row_bytes=W * eb, row_stride=Y.plane_bytes, partition=0,
                                offset=offset + r * W * eb, store=True),
               wait=e.W("act", e.cnt["act"]) if r == 0 else None)


class _Emitter:
    """Semaphore bookkeeping shared by the programs here: every instruction signals the
    counter of its kind, waits name counts relative to the program's own start."""

    def __init__(self, p: Program, after, names=("ld", "act", "st")):
        self.p = p
        self.base = {n: p.signals(n) for n in names}
        self.cnt = dict.fromkeys(names, 0)
        self.after = after

    def W(self, name, n):
        return (name, self.base[name] + n)

    def emit(self, kind, name, cmd, wait=None):
        if kind == "dma" and name == "ld" and self.after is not None:
            if wait is not None:
                self.p.sem(wait=self.after)
            else:
                wait = self.after
            self.after = None
        getattr(self.p, kind)(cmd, wait=wait, signal=name)
        self.cnt[name] += 1

    def block_acts(self, acts):
        """A block's ACTs: the first waits for every load so far, the last signals
        ``act`` (one count per block)."""
        for j, a in enumerate(acts):
            wait = self.W("ld", self.cnt["ld"]) if j == 0 else None
            if j == len(acts) - 1:
                self.emit("act", "act", a, wait)
            else:
                self.p.act(a, wait=wait)


def maxpool_program(config, L: PoolLayout, *, rows=None, program=None, after=None,
                    end=True) -> Program:
    """The program of max pool ``L`` (module docstring). ``rows``: output rows per
    block (default: as many as SBUF holds). ``program``, ``after``, ``end``: as
    :func:`sim.compiler.conv.conv_program`. Raises :class:`ConvError`."""
    cfg = config
    _check_pool(cfg, L)
    X, Y = L.x, L.y
    eb = DTYPE_BYTES[L.dtype]
    sh, sw = L.stride
    Wp = X.Wp

    def in_rows(rb):
        return (rb - 1) * sh + L.KH

    def need(rb):
        return 2 * _align(in_rows(rb) * Wp * eb) + 2 * _align(rb * L.OW * eb)
    rows = rows or L.OH
    while rows > 1 and need(rows) > cfg.sbuf_bytes:
        rows -= 1
    if need(rows) > cfg.sbuf_bytes:
        raise ConvError(f"one output row of the pool needs {need(rows)} bytes of SBUF per "
                        f"partition, there are {cfg.sbuf_bytes}")
    x_buf = [0, _align(in_rows(rows) * Wp * eb)]
    stg0 = 2 * x_buf[1]
    stg = [stg0, stg0 + _align(rows * L.OW * eb)]
    p = Program(cfg) if program is None else program
    e = _Emitter(p, after)
    W = e.W
    st = SRC_TYPE[L.dtype]
    fp = L.dtype != "int8"
    positions = [(kh, kw) for kh in range(L.KH) for kw in range(L.KW)]
    stores_of_block = []
    for step, b, c0, kk, oh0, rb in _blocks(cfg, X.B, X.C, L.OH, rows):
        buf = step % 2
        e.emit("dma", "ld", Dma(addr=X.at(b, c0, oh0 * sh, 0), rows=kk,
                                row_bytes=in_rows(rb) * Wp * eb,
                                row_stride=X.plane_bytes, partition=0, offset=x_buf[buf]),
               wait=W("act", step - 1) if step >= 2 else None)
        if step >= 2:
            # the staging half of two blocks ago has been stored
            p.sem(wait=W("st", stores_of_block[step - 2]))
        base = x_buf[buf] // eb
        out = stg[buf]
        acts = []
        for r in range(rb):
            def at(kh, kw):
                return base + (r * sh + kh) * Wp + kw
            dst = out + r * L.OW * eb
            common = dict(parts=kk, n=L.OW, dst_type=st if fp else "INT8", src_psum=False,
                          src_fp=fp, src_type=st, dst_off=dst, src_skip=sw - 1,
                          src2_skip=sw - 1)
            if len(positions) == 1:
                acts.append(Act(**common, src_off=at(0, 0)))
            else:
                acts.append(Act(**common, op="MAX", src_off=at(*positions[0]),
                                src2_off=at(*positions[1])))
            for pos in positions[2:]:
                acts.append(Act(**{**common, "src_skip": 0}, op="MAX", src_off=dst // eb,
                                src2_off=at(*pos)))
        e.block_acts(acts)
        _store_rows(e, Y, b, c0, kk, oh0, rb, L.OW, eb, out)
        stores_of_block.append(e.cnt["st"])
    if end:
        p.end(wait=W("st", e.cnt["st"]))
    return p


def maxpool_reference(x, kernel, stride=(1, 1), pads=(0, 0, 0, 0)):
    """ONNX ``MaxPool`` of ``x`` (``B x C x H x W``; NumPy integers or floats), padding
    with -infinity, straight from the definition: an independent reference."""
    x = np.asarray(x)
    KH, KW = kernel
    t, left, bot, right = pads
    lowest = np.iinfo(x.dtype).min if np.issubdtype(x.dtype, np.integer) else -np.inf
    xp = np.full(x.shape[:2] + (x.shape[2] + t + bot, x.shape[3] + left + right), lowest,
                 dtype=x.dtype)
    xp[:, :, t:t + x.shape[2], left:left + x.shape[3]] = x
    OH = (xp.shape[2] - KH) // stride[0] + 1
    OW = (xp.shape[3] - KW) // stride[1] + 1
    y = np.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
    for i in range(OH):
        for j in range(OW):
            win = xp[:, :, i * stride[0]:i * stride[0] + KH, j * stride[1]:j * stride[1] + KW]
            y[:, :, i, j] = win.max(axis=(2, 3))
    return y


def _device(config, backend):
    from hdl.config import named_config
    from sim.compiler.runtime import Device
    cfg = named_config(config)
    return cfg, Device(cfg, backend)


def _run(cfg, dev, prog, check_races):
    addr = dev.load_program(prog)
    if check_races:
        from sim.isa.races import find_races
        races = find_races(cfg, prog, prog_addr=addr)
        if races:
            raise AssertionError(f"the program races: {races[0]}")
    return dev.run(addr).check()


def maxpool2d(x, kernel, dtype="int8", *, stride=None, pads=(0, 0, 0, 0), config="default",
              backend="golden", rows=None, return_result=False, check_races=False):
    """ONNX ``MaxPool`` on one core: ``x`` ``B x C x H x W`` (int8 values, or float
    bits/values of ``dtype``). Returns the pooled planes (uint16 bit patterns for
    floats); with ``return_result`` also the RunResult and the DRAM image."""
    from sim.compiler.runtime import _operand_bits
    cfg, dev = _device(config, backend)
    xb = _operand_bits(x, dtype)
    if xb.ndim != 4:
        raise ValueError(f"x must be B x C x H x W, not {xb.shape}")
    B, C, H, Wd = xb.shape
    KH, KW = kernel
    stride = tuple(stride or (1, 1))
    eb = DTYPE_BYTES[dtype]
    probe = PoolLayout(Planes(0, B, C, H, Wd, eb, tuple(pads)), Planes(0, B, C, 1, 1, eb),
                       KH, KW, dtype, stride)
    X = Planes(dev.alloc(probe.x.nbytes), B, C, H, Wd, eb, tuple(pads))
    Y = Planes(dev.alloc(B * C * probe.OH * probe.OW * eb), B, C, probe.OH, probe.OW, eb)
    L = PoolLayout(X, Y, KH, KW, dtype, stride)
    dev.write(X.addr, X.image(xb, fill=LOWEST[dtype]))
    r = _run(cfg, dev, maxpool_program(cfg, L, rows=rows), check_races)
    y = Y.read(dev.dram, xb.dtype)
    return (y, r, dev.dram[:dev.top].copy()) if return_result else y


def avgpool2d(x, kernel, dtype="int8", *, stride=(1, 1), pads=(0, 0, 0, 0), scale=1,
              shift=0, zp=0, zp_in=0, config="default", backend="golden", rows=None,
              return_result=False, check_races=False):
    """Average pooling (``count_include_pad = 1``) as a depthwise convolution (module
    docstring). INT8: returns ``requant(sum(x - zp_in), scale, shift, zp)`` (the caller
    folds ``1 / (KH*KW)`` into ``scale``/``shift``); floats: the window sum of ``x *
    fl(1/(KH*KW))`` in FP32, cast to ``dtype`` (uint16 bit patterns)."""
    from sim.compiler.conv import conv2d
    from sim.compiler.runtime import _operand_bits
    xb = _operand_bits(x, dtype)
    C = xb.shape[1]
    KH, KW = kernel
    if dtype == "int8":
        w = np.ones((C, 1, KH, KW), np.int8)
        bias = np.full(C, -KH * KW * zp_in, np.int32)
        return conv2d(xb, w, dtype, bias=bias, out_type="INT8", scale=scale, shift=shift,
                      zp=zp, pads=pads, stride=stride, groups=C, config=config,
                      backend=backend, rows=rows, return_result=return_result,
                      check_races=check_races)
    w = np.full((C, 1, KH, KW), 1.0 / (KH * KW), np.float32)
    return conv2d(xb, w, dtype, out_type=dtype.upper(), pads=pads, stride=stride,
                  groups=C, config=config, backend=backend, rows=rows,
                  return_result=return_result, check_races=check_races)


# ---------------------------------------------------------------------------------------
# Residual add
# ---------------------------------------------------------------------------------------

def add_params(sa, sb, sy):
    """``(scale, scale2, shift)`` for an INT8 ADD ``Y = A + B`` with scales ``sa``,
    ``sb`` into ``sy``: the largest shift (at most 47) at which both multipliers
    ``round(s / sy * 2**shift)`` fit 16 signed bits."""
    ra, rb = sa / sy, sb / sy
    for shift in range(47, -1, -1):
        ca, cb = round(ra * 2 ** shift), round(rb * 2 ** shift)
        if max(abs(ca), abs(cb)) <= 32767:
            return ca, cb, shift
    raise ConvError(f"an ADD with scale ratios {ra:g} and {rb:g} does not fit 16-bit "
                    f"multipliers")


def add_program(config, a: Planes, b: Planes, y: Planes, dtype, *, scale=1, scale2=1,
                shift=0, zp=0, zp1=0, zp2=0, relu=False, clip=None, program=None, after=None,
                end=True) -> Program:
    """``y = a + b`` elementwise (same ``B x C x H x W``; each with its own padding):
    per channel tile and block of rows, a load of each operand's rows, one ACT ADD per
    row into staging, one store per row. INT8: ``requant((a - zp1) * scale + (b - zp2)
    * scale2, shift, zp)``; floats: FP32 sum, cast to ``dtype``. ``relu``, ``clip``
    (an upper bound, :func:`sim.compiler.gemm.clip_bits`) as an epilogue's."""
    from sim.compiler.gemm import clip_bits
    cfg = config
    if dtype not in SRC_TYPE:
        raise ConvError(f"an add of {dtype!r} is not supported (int8, bf16, fp16)")
    if (a.B, a.C, a.H, a.W) != (b.B, b.C, b.H, b.W) or (a.B, a.C, a.H, a.W) != (y.B, y.C, y.H, y.W):
        raise ConvError(f"add operands and result differ in shape: {a}, {b}, {y}")
    eb = DTYPE_BYTES[dtype]
    if {a.esize, b.esize, y.esize} != {eb}:
        raise ConvError(f"the planes' elements must be {eb} bytes for {dtype}")

    def need(rb):
        return 2 * (_align(rb * a.Wp * eb) + _align(rb * b.Wp * eb) + _align(rb * a.W * eb))
    rows = a.H
    while rows > 1 and need(rows) > cfg.sbuf_bytes:
        rows -= 1
    if need(rows) > cfg.sbuf_bytes:
        raise ConvError(f"one row of the add needs {need(rows)} bytes of SBUF per partition")
    sz = [_align(rows * a.Wp * eb), _align(rows * b.Wp * eb), _align(rows * a.W * eb)]
    half = sum(sz)
    p = Program(cfg) if program is None else program
    e = _Emitter(p, after)
    W = e.W
    st = SRC_TYPE[dtype]
    fp = dtype != "int8"
    stores_of_block = []
    for step, bi, c0, kk, h0, rb in _blocks(cfg, a.B, a.C, a.H, rows):
        o = (step % 2) * half
        abuf, bbuf, sbuf = o, o + sz[0], o + sz[0] + sz[1]
        for k, (pl, buf) in enumerate(((a, abuf), (b, bbuf))):
            e.emit("dma", "ld", Dma(addr=pl.at(bi, c0, h0 + pl.pads[0], 0), rows=kk,
                                    row_bytes=rb * pl.Wp * eb, row_stride=pl.plane_bytes,
                                    partition=0, offset=buf),
                   wait=W("act", step - 1) if step >= 2 and k == 0 else None)
        if step >= 2:
            p.sem(wait=W("st", stores_of_block[step - 2]))
        acts = []
        for r in range(rb):
            acts.append(Act(parts=kk, n=a.W, dst_type=st if fp else "INT8", src_psum=False,
                      src_fp=fp, src_type=st, op="ADD",
                      src_off=abuf // eb + r * a.Wp + a.pads[1],
                      src2_off=bbuf // eb + r * b.Wp + b.pads[1],
                      dst_off=sbuf + r * a.W * eb, relu=relu,
                      **({} if clip is None else dict(clip=True, hi=clip_bits(clip))),
                      **({} if fp else dict(scale=scale, scale2=scale2, shift=shift,
                                            zp=zp, zp1=zp1, zp2=zp2))))
        e.block_acts(acts)
        _store_rows(e, y, bi, c0, kk, h0, rb, a.W, eb, sbuf)
        stores_of_block.append(e.cnt["st"])
    if end:
        p.end(wait=W("st", e.cnt["st"]))
    return p


def add2d(a, b, dtype="int8", *, scale=1, scale2=1, shift=0, zp=0, zp1=0, zp2=0,
          relu=False, config="default", backend="golden", return_result=False,
          check_races=False):
    """``a + b`` (``B x C x H x W`` each) on one core with :func:`add_program`."""
    from sim.compiler.runtime import _operand_bits
    cfg, dev = _device(config, backend)
    ab, bb = _operand_bits(a, dtype), _operand_bits(b, dtype)
    if ab.shape != bb.shape or ab.ndim != 4:
        raise ValueError(f"add operands must have one B x C x H x W shape: {ab.shape}, {bb.shape}")
    B, C, H, Wd = ab.shape
    eb = DTYPE_BYTES[dtype]
    A = Planes(dev.alloc(ab.nbytes), B, C, H, Wd, eb)
    Bp = Planes(dev.alloc(bb.nbytes), B, C, H, Wd, eb)
    Y = Planes(dev.alloc(ab.nbytes), B, C, H, Wd, eb)
    dev.write(A.addr, A.image(ab))
    dev.write(Bp.addr, Bp.image(bb))
    prog = add_program(cfg, A, Bp, Y, dtype, scale=scale, scale2=scale2, shift=shift, zp=zp,
                       zp1=zp1, zp2=zp2, relu=relu)
    r = _run(cfg, dev, prog, check_races)
    y = Y.read(dev.dram, ab.dtype)
    return (y, r, dev.dram[:dev.top].copy()) if return_result else y
