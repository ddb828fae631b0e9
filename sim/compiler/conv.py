"""Convolution on the core without im2col: one matmul per kernel position, accumulated
in PSUM (issue 27, first part: stride 1).

The activation crosses the bus once, as it lies in DRAM; the core forms the patches
itself. The idea is the one NKI kernels use: a convolution is the sum, over kernel
positions ``(kh, kw)`` and input-channel tiles, of matmuls whose stationary operand is
the weight slab ``W[c, kh, kw, f]`` (``c`` on partitions, ``f`` the output channels)
and whose moving operand is the input shifted by ``(kh * dh, kw * dw)``.

**Layouts.** An activation is a stack of *padded planes*: image ``b``, channel ``c`` is
an ``Hp x Wp`` row-major plane (``Hp = H + top + bottom`` padding, ``Wp = W + left +
right``) whose border is zero, planes in ``(b, c)`` order (:class:`Planes`). The
producer (the host for a net's input, the previous layer's stores for the others)
writes only the interior, so the zeros of a fresh DRAM image are the padding: the
padding costs no work on the core and the load of a block of input rows is one DMA
of contiguous bytes per channel.

**The wide grid.** With the input rows of a block in SBUF as they lie in the plane
(pitch ``Wp``), output pixel ``(oh, ow)`` of kernel position ``(kh, kw)`` reads element
``(oh + kh*dh) * Wp + ow + kw*dw``. Numbering the outputs ``i = oh * Wp + ow`` over
the full pitch, every kernel position reads the contiguous run ``x_off + i``, so one
matmul of ``N = (R - 1) * Wp + OW`` columns computes ``R`` output rows at once, as the
tensor engine's contiguous moving reads allow. The columns ``ow >= OW`` (``Wp - OW``
per row, ``(KW - 1) * dw`` of them) are computed and never stored: the price is a
fraction ``OW / Wp`` of useful MACs, 28/30 for a 3x3 "same" convolution of a 28-wide
map.

**Schedule** (:func:`conv_program`). Output channels in tiles of ``cols``; for each
image, tile and block of ``R`` output rows (``N`` at most ``psum_depth``): for each
input-channel tile, one DMA loads the block's ``R + (KH-1)*dh`` input rows (double
buffered: the next tile's or block's rows load while this one computes), then
``KH * KW`` matmuls accumulate into the block's PSUM bank (banks round robin). The
block drains through the vector engine (bias, ReLU, requantisation or float cast: the
:class:`sim.compiler.gemm.Epilogue`) into a staging buffer (two, alternating), and one
DMA per output row stores its ``OW`` valid pixels of every channel into the
consumer's padded planes. The weights of an output tile (every input-channel tile,
every kernel position) stay in SBUF while the tile's blocks run.

Cost: ``KH * KW * ceil(C / rows)`` matmuls of ``N`` columns per block and tile, one
input load per block and channel tile, ``R`` stores per block and channel chunk.
SBUF per partition: ``ceil(C/rows) * KH*KW * min(F, cols)`` weight elements, two
input blocks of ``(R + (KH-1)*dh) * Wp`` elements and two staging buffers of ``N``
outputs.

Not yet (refused with :class:`ConvError`): stride above 1 (it needs strided moving
reads in the tensor engine), groups (depthwise), a padded row wider than PSUM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.formats import ACT_BYTES, DTYPE_BYTES

from sim.compiler.gemm import Epilogue, _align, _ceil, accumulator_out, bias_slots
from sim.isa.asm import Program
from sim.model.dma import Dma
from sim.model.tensor import Matmul
from sim.model.vector import FLOAT_OUT, INT_OUT, Act

__all__ = ["ConvError", "Planes", "ConvLayout", "conv_program", "conv_reference",
           "weight_image", "conv2d", "BENCH_CASES", "conv_bench"]


#: Largest kernel side (Conv; pools use the same machinery with their window).
MAX_KERNEL = 16


class ConvError(ValueError):
    """A convolution the core cannot run (yet), with the reason."""


@dataclass(frozen=True)
class Planes:
    """An activation in DRAM: ``B x C`` padded planes of ``H x W`` pixels, elements of
    ``esize`` bytes, at ``addr``. ``pads = (top, left, bottom, right)`` zero rows and
    columns around each plane."""
    addr: int
    B: int
    C: int
    H: int
    W: int
    esize: int
    pads: tuple = (0, 0, 0, 0)

    @property
    def Hp(self):
        return self.H + self.pads[0] + self.pads[2]

    @property
    def Wp(self):
        return self.W + self.pads[1] + self.pads[3]

    @property
    def plane_bytes(self):
        return self.Hp * self.Wp * self.esize

    @property
    def nbytes(self):
        return self.B * self.C * self.plane_bytes

    def at(self, b, c, y, x):
        """Byte address of padded-plane element ``(y, x)`` of image ``b``, channel ``c``."""
        return self.addr + (b * self.C + c) * self.plane_bytes + (y * self.Wp + x) * self.esize

    def image(self, values, fill=0):
        """The DRAM bytes of ``values`` (``B x C x H x W``, already of the element type)
        in this layout, the padding filled with the element bits ``fill`` (0: zeros, as
        a convolution pads; a max pool's input wants the type's lowest value)."""
        v = np.asarray(values)
        if v.shape != (self.B, self.C, self.H, self.W) or v.dtype.itemsize != self.esize:
            raise ValueError(f"values of shape {v.shape} and {v.dtype.itemsize}-byte elements "
                             f"do not match {self.B}x{self.C}x{self.H}x{self.W} of "
                             f"{self.esize} bytes")
        t, left = self.pads[0], self.pads[1]
        out = np.zeros((self.B, self.C, self.Hp, self.Wp), dtype=v.dtype)
        if fill:
            out.view(f"<u{self.esize}")[...] = fill
        out[:, :, t:t + self.H, left:left + self.W] = v
        return out.view(np.uint8).reshape(-1)

    def read(self, dram, dtype):
        """The interior (``B x C x H x W`` of ``dtype``) from a DRAM image."""
        raw = np.asarray(dram[self.addr:self.addr + self.nbytes]).copy().view(dtype)
        full = raw.reshape(self.B, self.C, self.Hp, self.Wp)
        t, left = self.pads[0], self.pads[1]
        return full[:, :, t:t + self.H, left:left + self.W]


@dataclass(frozen=True)
class ConvLayout:
    """One 2-D convolution (ONNX ``Conv`` semantics, NCHW, ``groups = 1``) from padded
    planes ``x`` to padded planes ``y``.

    The input's own padding is the convolution's (``x.pads``); ``y.pads`` is the
    padding the consumer wants. Weights at ``w_addr`` as :func:`weight_image` lays
    them out (``F x C x KH x KW`` regrouped per output tile). ``out_type``: the ACT
    destination type (default INT32 for INT8, FP32 for floats)."""
    x: Planes
    y: Planes
    F: int
    KH: int
    KW: int
    dtype: str
    w_addr: int
    dilation: tuple = (1, 1)
    stride: tuple = (1, 1)
    out_type: str | None = None
    groups: int = 1
    #: The convolution's own padding when it is less than the planes' (``x.pads``, which
    #: another reader of the tensor wants): the convolution then reads the window of the
    #: stored planes that this padding gives. None: ``x.pads``.
    pads: tuple | None = None

    @property
    def conv_pads(self):
        return self.x.pads if self.pads is None else tuple(self.pads)

    @property
    def origin(self):
        """Row and column of the stored padded plane where this convolution's padded
        input starts."""
        p = self.conv_pads
        return self.x.pads[0] - p[0], self.x.pads[1] - p[1]

    @property
    def Hv(self):
        p = self.conv_pads
        return self.x.H + p[0] + p[2]

    @property
    def Wv(self):
        p = self.conv_pads
        return self.x.W + p[1] + p[3]

    @property
    def Cg(self):
        """Input channels per group."""
        return self.x.C // self.groups

    @property
    def Fg(self):
        """Output channels per group."""
        return self.F // self.groups

    def in_range(self, f0, m):
        """Input channels ``[lo, hi)`` that output channels ``f0 .. f0+m-1`` read: their
        groups' channels (every channel when ``groups == 1``)."""
        return (f0 // self.Fg) * self.Cg, ((f0 + m - 1) // self.Fg + 1) * self.Cg

    @property
    def OH(self):
        return (self.Hv - (self.KH - 1) * self.dilation[0] - 1) // self.stride[0] + 1

    @property
    def OW(self):
        return (self.Wv - (self.KW - 1) * self.dilation[1] - 1) // self.stride[1] + 1

    @property
    def c_type(self):
        return accumulator_out(self.dtype, self.out_type)

    @property
    def macs(self):
        """Useful multiply-accumulates (the wide grid's extra columns not counted)."""
        return self.x.B * self.F * self.OH * self.OW * self.Cg * self.KH * self.KW


def _tile_range(F, Fg, Cg, f0, m):
    return (f0 // Fg) * Cg, ((f0 + m - 1) // Fg + 1) * Cg


def weight_image(config, W, groups=1):
    """DRAM bytes of weights ``W`` (``F x C/groups x KH x KW``, ONNX order, element
    type already) as :func:`conv_program` loads them: per output tile (``cols``
    channels ``f0 .. f0+m-1``), one row per input channel the tile reads
    (:meth:`ConvLayout.in_range`: all ``C`` without groups, the tile's groups' with
    them) of ``KH*KW*m`` elements (kernel position major), zero where an input channel
    is not in an output channel's group; so one DMA of ``rows`` partitions loads a
    channel tile's slab of every kernel position."""
    W = np.asarray(W)
    F, Cg, KH, KW = W.shape
    Fg = F // groups
    parts = []
    for f0 in range(0, F, config.cols):
        m = min(config.cols, F - f0)
        lo, hi = _tile_range(F, Fg, Cg, f0, m)
        dense = np.zeros((hi - lo, KH, KW, m), dtype=W.dtype)
        for j in range(m):
            g = (f0 + j) // Fg
            dense[g * Cg - lo:(g + 1) * Cg - lo, :, :, j] = W[f0 + j]
        # [c][kh*KW + kw][f]
        parts.append(np.ascontiguousarray(dense.reshape(hi - lo, KH * KW * m))
                     .view(np.uint8).reshape(-1))
    return np.concatenate(parts)


def _weight_offset(config, L, ft):
    """Byte offset of output tile ``ft`` in :func:`weight_image`'s layout."""
    KK, eb = L.KH * L.KW, DTYPE_BYTES[L.dtype]
    total = 0
    for f0 in range(0, ft * config.cols, config.cols):
        m = min(config.cols, L.F - f0)
        lo, hi = L.in_range(f0, m)
        total += (hi - lo) * KK * m * eb
    return total


def _check(config, L):
    if L.dtype not in config.dtypes:
        raise ConvError(f"dtype {L.dtype!r} is not in this configuration {config.dtypes}")
    eb = DTYPE_BYTES[L.dtype]
    if L.x.esize != eb:
        raise ConvError(f"the input's elements are {L.x.esize} bytes, {L.dtype} has {eb}")
    if L.y.esize != ACT_BYTES[L.c_type]:
        raise ConvError(f"the output's elements are {L.y.esize} bytes, {L.c_type} has "
                        f"{ACT_BYTES[L.c_type]}")
    if L.c_type not in (INT_OUT if L.dtype == "int8" else FLOAT_OUT):
        raise ConvError(f"a {L.dtype} convolution cannot write {L.c_type}")
    for name, v in (("KH", L.KH), ("KW", L.KW)):
        if not 1 <= v <= MAX_KERNEL:
            raise ConvError(f"kernel size {name}={v} is outside 1..{MAX_KERNEL}")
    if L.groups < 1 or L.x.C % L.groups or L.F % L.groups:
        raise ConvError(f"groups={L.groups} must divide the input channels ({L.x.C}) and the "
                        f"output channels ({L.F})")
    if any(s < 1 for s in L.stride):
        raise ConvError(f"stride must be at least 1, not {L.stride}")
    if L.stride[1] * eb > config.sbuf_word_bytes:
        raise ConvError(f"a column stride of {L.stride[1]} reads {L.stride[1] * eb}-byte steps, "
                        f"more than the tensor engine's {config.sbuf_word_bytes}-byte SBUF word "
                        f"(MatmulCmd.x_skip)")
    if any(d < 1 for d in L.dilation):
        raise ConvError(f"dilation must be at least 1, not {L.dilation}")
    if any(p > q for p, q in zip(L.conv_pads, L.x.pads)) or any(p < 0 for p in L.conv_pads):
        raise ConvError(f"the convolution's padding {L.conv_pads} is not within the planes' "
                        f"{L.x.pads}")
    if L.OH < 1 or L.OW < 1:
        raise ConvError(f"the kernel ({L.KH}x{L.KW}, dilation {L.dilation}) is larger than "
                        f"the padded input ({L.Hv}x{L.Wv})")
    if (L.y.B, L.y.C, L.y.H, L.y.W) != (L.x.B, L.F, L.OH, L.OW):
        raise ConvError(f"the output planes are {L.y.B}x{L.y.C}x{L.y.H}x{L.y.W}, the "
                        f"convolution gives {L.x.B}x{L.F}x{L.OH}x{L.OW}")
    if L.OW > config.psum_depth:
        raise ConvError(f"an output row of {L.OW} pixels is longer than a PSUM bank "
                        f"({config.psum_depth} entries); column tiling is not done yet")


def conv_program(config, L: ConvLayout, *, epilogue: Epilogue | None = None, rows=None,
                 program=None, after=None, end=True) -> Program:
    """The program of convolution ``L`` on ``config`` (see the module docstring).

    ``epilogue``: bias (one value per output channel, :func:`sim.compiler.gemm.bias_image`
    of ``F`` rows), ReLU and requantisation, fused into the draining ACTs. ``rows``:
    output rows per block (default: the most that fit PSUM and SBUF). ``program``:
    append to it (semaphore counts continue from its own); ``after=("name", n)``: the
    first load waits for it, and with it every later load (DMA-in runs in order): a
    layer reading the planes an earlier layer stored waits for those stores. ``end``:
    finish with END. Raises :class:`ConvError`."""
    cfg = config
    _check(cfg, L)
    E = epilogue or Epilogue()
    R, Cc = cfg.rows, cfg.cols
    eb = DTYPE_BYTES[L.dtype]
    ce = ACT_BYTES[L.c_type]
    X, Y = L.x, L.y
    Wp, KK = X.Wp, L.KH * L.KW
    row0, col0 = L.origin          # where the convolution's padded input starts
    dh, dw = L.dilation
    sh, sw = L.stride
    halo = (L.KH - 1) * dh                # extra input rows a block of outputs needs
    # Two ways to lay a block of rb output rows out in PSUM:
    # wide (stride 1): the rows at the input's pitch, one matmul of (rb-1)*Wp + OW
    #   columns per kernel position, Wp - OW of every Wp computed and not stored;
    # rows (stride > 1): the rows at pitch OW, one matmul per output row and kernel
    #   position, reading every sw-th input element (x_skip = sw - 1), nothing wasted.
    wide = (sh, sw) == (1, 1)
    pitch = Wp if wide else L.OW          # PSUM entries from one output row to the next

    def span(rb):
        """PSUM entries (and staged outputs) of a block of rb output rows."""
        return (rb - 1) * pitch + L.OW

    def in_rows(rb):
        """Input rows a block of rb output rows reads."""
        return (rb - 1) * sh + halo + 1
    FT = _ceil(L.F, Cc)
    # each output tile reads the input channels of its groups, in tiles of rows
    ranges = [L.in_range(ft * Cc, min(Cc, L.F - ft * Cc)) for ft in range(FT)]
    CT = max(_ceil(hi - lo, R) for lo, hi in ranges)
    chunk = min(R, Cc)
    nbanks = cfg.psum_banks

    # SBUF map (bytes in every partition): weights of one output tile, the bias words at
    # the top, then two input buffers and two staging buffers sized by the block
    top = cfg.sbuf_bytes
    if E.bias_addr is not None:
        bchunk, r0s = bias_slots(cfg, L.F)
        bias_at = (top - 4 * len(r0s)) // 8 * 8
        bias_off = {r0: bias_at + 4 * j for j, r0 in enumerate(r0s)}
        top = bias_at
    w_slab = _align(KK * min(Cc, L.F) * eb)
    w_bytes = CT * w_slab

    def need(rb):
        return w_bytes + 2 * _align(in_rows(rb) * Wp * eb) + 2 * _ceil(min(Cc, L.F), chunk) \
            * _align(span(rb) * ce)
    most = min(L.OH, (cfg.psum_depth - L.OW) // pitch + 1)
    if rows is None:
        rows = most
        while rows > 1 and need(rows) > top:
            rows -= 1
    if not 1 <= rows <= most:
        raise ConvError(f"rows per block must be 1..{most}, not {rows}")
    if need(rows) > top:
        raise ConvError(f"a block of {rows} output rows needs {need(rows)} bytes of SBUF "
                        f"per partition, {top} are free (weights {w_bytes})")
    x_buf = [w_bytes, w_bytes + _align(in_rows(rows) * Wp * eb)]
    stg0 = x_buf[1] + _align(in_rows(rows) * Wp * eb)
    nchunk = _ceil(min(Cc, L.F), chunk)
    stg = [[stg0 + (par * nchunk + c) * _align(span(rows) * ce)
            for c in range(nchunk)] for par in range(2)]

    p = Program(cfg) if program is None else program
    base = {n: p.signals(n) for n in ("ld", "mm", "act", "st")}
    cnt = dict.fromkeys(base, 0)

    def W(name, n):
        return (name, base[name] + n)

    first = [after]

    def emit(kind, name, cmd, wait=None):
        if kind == "dma" and name == "ld" and first[0] is not None:
            if wait is not None:
                raise AssertionError("the first load has a wait of its own")
            wait, first[0] = first[0], None
        getattr(p, kind)(cmd, wait=wait, signal=name)
        cnt[name] += 1

    if E.bias_addr is not None:
        emit("dma", "ld", Dma(addr=E.bias_addr, rows=bchunk, row_bytes=4 * len(r0s),
                              row_stride=4 * len(r0s), partition=0, offset=bias_at))

    def act(f_r0, **f):
        extra = E.act_fields()
        if E.bias_addr is not None:
            extra.update(bias=True, bias_off=bias_off[f_r0])
        return Act(dst_type=L.c_type, src_psum=True, src_fp=L.dtype != "int8", **f, **extra)

    step = 0                 # input loads so far (each one a step of matmuls)
    block = 0
    acts_of_block = []       # ACT count after each block's drain
    stores_of_block = []     # store count after each block's drain
    for ft in range(FT):
        f0 = ft * Cc
        m = min(Cc, L.F - f0)
        # the output tile's weights: every channel tile's slab, once (after every matmul
        # that read the previous tile's)
        w_off = L.w_addr + _weight_offset(cfg, L, ft)
        c_lo, c_hi = ranges[ft]
        CTf = _ceil(c_hi - c_lo, R)
        for ct in range(CTf):
            kk = min(R, c_hi - c_lo - ct * R)
            emit("dma", "ld", Dma(addr=w_off + ct * R * KK * m * eb, rows=kk,
                                  row_bytes=KK * m * eb, row_stride=KK * m * eb, partition=0,
                                  offset=ct * w_slab),
                 wait=W("mm", step) if ct == 0 and step else None)
        for b in range(X.B):
            for oh0 in range(0, L.OH, rows):
                rb = min(rows, L.OH - oh0)
                n = span(rb)
                bank = block % nbanks
                if block >= nbanks:
                    # the bank's previous block has been drained
                    p.sem(wait=W("act", acts_of_block[block - nbanks]))
                # the matmuls of a step: (x offset from the buffer, columns, PSUM entry)
                if wide:
                    mms = [(kh * dh * Wp + kw * dw + col0, n, 0)
                           for kh in range(L.KH) for kw in range(L.KW)]
                else:
                    mms = [((r * sh + kh * dh) * Wp + kw * dw + col0, L.OW, r * L.OW)
                           for r in range(rb) for kh in range(L.KH) for kw in range(L.KW)]
                for ct in range(CTf):
                    kk = min(R, c_hi - c_lo - ct * R)
                    buf = step % 2
                    emit("dma", "ld", Dma(addr=X.at(b, c_lo + ct * R, row0 + oh0 * sh, 0),
                                          rows=kk,
                                          row_bytes=in_rows(rb) * Wp * eb,
                                          row_stride=X.plane_bytes, partition=0,
                                          offset=x_buf[buf]),
                         wait=W("mm", step - 1) if step >= 2 else None)
                    step += 1
                    for j, (xo, cols, po) in enumerate(mms):
                        k = j % KK
                        cmd = Matmul(k=kk, m=m, n=cols, p0=0,
                                     s_off=(ct * w_slab) // eb + k * m,
                                     x_off=x_buf[buf] // eb + xo, x_skip=0 if wide else sw - 1,
                                     bank=bank, psum_off=po, acc=ct > 0 or k > 0,
                                     dtype=L.dtype)
                        wait = W("ld", cnt["ld"]) if j == 0 else None
                        if j == len(mms) - 1:     # a step's last matmul: "mm" counts steps
                            emit("matmul", "mm", cmd, wait)
                        else:
                            p.matmul(cmd, wait=wait)
                # drain: ACT each chunk of channels to staging, then store row by row
                par = block % 2
                if block >= 2:
                    p.sem(wait=W("st", stores_of_block[block - 2]))
                for c in range(_ceil(m, chunk)):
                    c0 = c * chunk
                    pc = min(chunk, m - c0)
                    emit("act", "act", act(f0 + c0, parts=pc, n=n, src_p0=c0,
                                           src_off=bank * cfg.psum_depth, dst_p0=0,
                                           dst_off=stg[par][c]),
                         wait=W("mm", cnt["mm"]) if c == 0 else None)
                    for r in range(rb):
                        yt, yl = Y.pads[0], Y.pads[1]
                        emit("dma", "st", Dma(addr=Y.at(b, f0 + c0, oh0 + r + yt, yl), rows=pc,
                                              row_bytes=L.OW * ce, row_stride=Y.plane_bytes,
                                              partition=0, offset=stg[par][c] + r * pitch * ce,
                                              store=True),
                             wait=W("act", cnt["act"]) if r == 0 else None)
                acts_of_block.append(cnt["act"])
                stores_of_block.append(cnt["st"])
                block += 1
    if end:
        p.end(wait=W("st", cnt["st"]))
    return p


def conv_reference(x, w, pads=(0, 0, 0, 0), dilation=(1, 1), stride=(1, 1), groups=1):
    """ONNX ``Conv`` of ``x`` (``B x C x H x W``) and ``w`` (``F x C/groups x KH x KW``)
    in exact integer (or float64) arithmetic, written directly from the definition:
    ``y[b, f, i, j] = sum_{c, u, v} x_pad[b, g*Cg + c, i*sh + u*dh, j*sw + v*dw] *
    w[f, c, u, v]``, ``g = f // (F/groups)``. An independent reference for the tests, not
    the lowering."""
    x = np.asarray(x)
    w = np.asarray(w)
    if groups > 1:
        F = w.shape[0]
        Cg, Fg = x.shape[1] // groups, F // groups
        return np.concatenate([
            conv_reference(x[:, g * Cg:(g + 1) * Cg], w[g * Fg:(g + 1) * Fg], pads,
                           dilation, stride) for g in range(groups)], axis=1)
    acc = np.int64 if np.issubdtype(x.dtype, np.integer) else np.float64
    B, C, H, Wd = x.shape
    F, C2, KH, KW = w.shape
    assert C == C2
    t, left, bot, right = pads
    xp = np.zeros((B, C, H + t + bot, Wd + left + right), acc)
    xp[:, :, t:t + H, left:left + Wd] = x
    dh, dw = dilation
    sh, sw = stride
    OH = (xp.shape[2] - (KH - 1) * dh - 1) // sh + 1
    OW = (xp.shape[3] - (KW - 1) * dw - 1) // sw + 1
    y = np.zeros((B, F, OH, OW), acc)
    wa = w.astype(acc)
    for i in range(OH):
        for j in range(OW):
            patch = xp[:, :, i * sh:i * sh + (KH - 1) * dh + 1:dh,
                       j * sw:j * sw + (KW - 1) * dw + 1:dw]          # B x C x KH x KW
            y[:, :, i, j] = np.tensordot(patch, wa, axes=([1, 2, 3], [1, 2, 3]))
    return y


_OUT_DTYPE = {"INT32": np.int32, "INT8": np.int8, "FP32": np.float32, "BF16": np.uint16,
              "FP16": np.uint16}


def conv2d(x, w, dtype="int8", *, bias=None, relu=False, out_type=None, scale=1, shift=0,
           zp=0, pads=(0, 0, 0, 0), dilation=(1, 1), stride=(1, 1), groups=1,
           config="default", backend="golden",
           rows=None, return_result=False, check_races=False):
    """``Conv(x, w) + bias`` on one core: ``x`` ``B x C x H x W``, ``w`` ``F x C/groups
    x KH x KW`` (int8 values, or floats rounded to ``dtype``, or uint16 bit patterns).

    The drain's :class:`sim.compiler.gemm.Epilogue`: ``bias`` (``F`` INT32 values for
    ``int8``, FP32 for floats), ``relu``, ``out_type`` (default INT32 / FP32; ``"INT8"``
    requantises with ``scale``, ``shift``, ``zp``; ``"BF16"``/``"FP16"`` come back as
    uint16 bit patterns). Returns ``B x F x OH x OW``; with ``return_result`` also the
    :class:`sim.compiler.runtime.RunResult` and the DRAM image after the run (to compare
    backends byte for byte). ``check_races``: run the race checker on the program
    first."""
    from hdl.config import named_config
    from sim.compiler.gemm import bias_image
    from sim.compiler.runtime import Device, _operand_bits
    cfg = named_config(config)
    xb = _operand_bits(x, dtype)
    wb = _operand_bits(w, dtype)
    if xb.ndim != 4 or wb.ndim != 4 or xb.shape[1] != wb.shape[1] * groups:
        raise ValueError(f"shape mismatch: x {xb.shape}, w {wb.shape}, groups {groups}")
    B, C, H, Wd = xb.shape
    F, _, KH, KW = wb.shape
    eb = DTYPE_BYTES[dtype]
    out_type = accumulator_out(dtype, out_type)
    if out_type not in _OUT_DTYPE:
        raise ValueError(f"out_type must be one of {tuple(_OUT_DTYPE)}, not {out_type!r}")
    dev = Device(cfg, backend)
    xin = Planes(0, B, C, H, Wd, eb, tuple(pads))
    probe = ConvLayout(xin, Planes(0, B, F, 1, 1, 4), F, KH, KW, dtype, 0, tuple(dilation),
                       tuple(stride), groups=groups)
    xin = Planes(dev.alloc(xin.nbytes), B, C, H, Wd, eb, tuple(pads))
    ye = ACT_BYTES[out_type]
    yout = Planes(dev.alloc(max(B * F * probe.OH * probe.OW * ye, 1)), B, F, probe.OH,
                  probe.OW, ye)
    wimg = weight_image(cfg, wb, groups)
    w_addr = dev.alloc(wimg.size)
    epi = Epilogue(relu=relu, scale=scale, shift=shift, zp=zp)
    if bias is not None:
        bits = np.asarray(bias, np.int32 if dtype == "int8" else np.float32)
        if bits.shape != (F,):
            raise ValueError(f"the bias must have {F} values, not shape {bits.shape}")
        bimg = bias_image(cfg, F, bits.view(np.uint32))
        b_addr = dev.alloc(bimg.nbytes)
        dev.write(b_addr, bimg)
        epi = Epilogue(bias_addr=b_addr, relu=relu, scale=scale, shift=shift, zp=zp)
    L = ConvLayout(xin, yout, F, KH, KW, dtype, w_addr, tuple(dilation), tuple(stride),
                   out_type=out_type, groups=groups)
    dev.write(xin.addr, xin.image(xb))
    dev.write(w_addr, wimg)
    prog = conv_program(cfg, L, epilogue=epi, rows=rows)
    prog_addr = dev.load_program(prog)
    if check_races:
        from sim.isa.races import find_races
        races = find_races(cfg, prog, prog_addr=prog_addr)
        if races:
            raise AssertionError(f"the convolution program races: {races[0]}")
    r = dev.run(prog_addr).check()
    y = yout.read(dev.dram, _OUT_DTYPE[out_type])
    return (y, r, dev.dram[:dev.top].copy()) if return_result else y


#: ``conv_bench`` cases: (C, F, H = W, kernel, stride), "same" padding, batch 1.
BENCH_CASES = [(8, 8, 28, 3, 1), (32, 32, 14, 3, 1), (16, 16, 28, 3, 2), (32, 32, 14, 1, 1)]


def conv_bench(config="default", cases=None, backend="verilator"):
    """Convolutions on the RTL: cycles, useful MACs over ``rows * cols * cycles``
    (utilization), the engines' busy fractions. Each result is checked against
    :func:`conv_reference`. Returns one dict per case."""
    from hdl.config import named_config
    cfg = named_config(config)
    rows = []
    for C, F, H, K, s in cases or BENCH_CASES:
        p = K // 2
        rng = np.random.default_rng(C * 1000 + H * 10 + K)
        x = rng.integers(-128, 128, (1, C, H, H)).astype(np.int8)
        w = rng.integers(-128, 128, (F, C, K, K)).astype(np.int8)
        y, r, _ = conv2d(x, w, pads=(p,) * 4, stride=(s, s), config=cfg, backend=backend,
                         return_result=True)
        if not np.array_equal(y, conv_reference(x, w, (p,) * 4, (1, 1), (s, s))):
            raise AssertionError(f"conv bench case {(C, F, H, K, s)}: wrong result")
        oh = (H + 2 * p - K) // s + 1
        useful = F * oh * oh * C * K * K
        c = r.counters
        rows.append(dict(C=C, F=F, H=H, K=K, stride=s, cycles=r.cycles, useful_macs=useful,
                         issued_macs=c["tensor_macs"],
                         utilization=useful / (cfg.rows * cfg.cols * r.cycles),
                         tensor_busy=c["busy_tensor"] / r.cycles,
                         dma_in_busy=c["busy_dma_in"] / r.cycles,
                         dma_out_busy=c["busy_dma_out"] / r.cycles))
    return rows


def print_conv_table(rows):
    print(f"{'conv (INT8, same padding, batch 1)':36s} {'cycles':>8s} {'util':>7s} "
          f"{'issued/useful':>13s} {'tensor':>7s} {'dma_in':>7s} {'dma_out':>7s}")
    for r in rows:
        name = f"C={r['C']} F={r['F']} {r['H']}x{r['H']} {r['K']}x{r['K']}/{r['stride']}"
        print(f"{name:36s} {r['cycles']:8d} {r['utilization']:7.1%} "
              f"{r['issued_macs'] / r['useful_macs']:13.3f} {r['tensor_busy']:7.1%} "
              f"{r['dma_in_busy']:7.1%} {r['dma_out_busy']:7.1%}")
