"""Golden model of the vector engine's ACT command (``hdl/vector.py``).

Semantics, per partition lane ``k < parts`` and element ``i < n`` (``docs/vector.md``)::

    e1 = SRC[src_p0 + k][element src_off + i*(src_skip+1)]      element of src_type:
    e2 = SRC[src_p0 + k][element src2_off + i*(src2_skip+1)]     ACC = 4-byte INT32/FP32
                                                (PSUM entry or SBUF), INT8/BF16/FP16 SBUF
    x1, x2 = widen(e1), widen(e2)         sim.model.casts.widen_bits; INT: minus zp1/zp2
    b = SBUF[dst_p0 + k][bias_off : +4] if bias else 0    (INT32 or FP32)
    FP32:  y = x1 | max(x1, x2) (max_f32_bits)  [+ b, FP32 RNE]     (COPY | MAX)
           y = x1 + x2 (FP32 RNE, no bias)                          (ADD)
           ReLU: y < 0 -> +0 (NaN kept); clip: y > widen(hi as BF16) -> that value;
           then FP32 (bits unchanged), BF16 or FP16 (sim.model.casts casts)
    INT:   a = x1 | max(x1, x2), + b (INT32 wrap)
           INT32: a (+ x2 for ADD), ReLU clamps at 0, clip at the signed 16-bit hi
           INT8:  requantize(a, scale, shift, zp, relu, acc2=x2 and scale2 for ADD,
                  hi=signed hi[7:0] with clip)
    SBUF[dst_p0 + k][dst_off + i*size : +size] = y   (little-endian)

Refusals (``ActError`` order): TYPES, PARTS, SRC_RANGE, DST_RANGE, BIAS_RANGE, OVERLAP,
OP. The command format is :class:`hdl.formats.ActCmd`; :meth:`Act.encode` and
:meth:`Act.decode` go through it with :mod:`sim.isa.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.formats import ACT_BYTES, SRC_BYTES, ActCmd, ActError, ActOp, ActType, SrcType

import sim.isa.codec as codec
from sim.model.fp import fp32_add_bits
from sim.model.array import wrap_int32
from sim.model.casts import (clip_f32_bits, f32_to_bf16_bits, f32_to_fp16_bits,
                             max_f32_bits, relu_f32_bits, requantize, widen_bits)

__all__ = ["Act", "ACT_ERRORS", "check", "apply"]

#: Refusal reasons in check order: the names of ``hdl.formats.ActError``.
ACT_ERRORS = tuple(e.name for e in sorted(ActError, key=lambda e: e.value))
#: ``dst_type`` as :class:`Act` spells it: the :class:`~hdl.formats.ActType` names, and
#: ``"TYPE5"`` .. ``"TYPE7"`` for values no member has (refused with ``TYPES``).
DST_TYPE_TEXT = codec.EnumText(ActType, "TYPE")
#: ``op`` as :class:`Act` spells it (``"OP3"`` for the value no member has: ``OP``).
OP_TEXT = codec.EnumText(ActOp, "OP")
#: ``src_type`` as :class:`Act` spells it (every value is a member).
SRC_TYPE_TEXT = codec.EnumText(SrcType, "SRC")
#: Bool-valued 1-bit fields.
_FLAGS = ("src_psum", "src_fp", "bias", "relu", "clip")
#: Destination types of an FP32 source and of an INT32 source (the engine refuses any
#: other pairing with ``TYPES``); the order is the one sim.isa.progen draws from.
FLOAT_OUT = tuple(t.name for t in (ActType.FP32, ActType.BF16, ActType.FP16))
INT_OUT = tuple(t.name for t in (ActType.INT32, ActType.INT8))


@dataclass(frozen=True)
class Act(codec.Command):
    parts: int
    n: int
    dst_type: str = "FP32"
    src_psum: bool = True
    src_fp: bool = True
    src_p0: int = 0
    src_off: int = 0
    dst_p0: int = 0
    dst_off: int = 0
    bias: bool = False
    bias_off: int = 0
    relu: bool = False
    scale: int = 1
    shift: int = 0
    zp: int = 0
    op: str = "COPY"
    src_type: str = "ACC"
    src_skip: int = 0
    src2_skip: int = 0
    src2_off: int = 0
    scale2: int = 0
    zp1: int = 0
    zp2: int = 0
    clip: bool = False
    hi: int = 0

    LAYOUT = ActCmd
    TEXT = {"dst_type": DST_TYPE_TEXT, "op": OP_TEXT, "src_type": SRC_TYPE_TEXT}
    FLAGS = _FLAGS

    @property
    def two(self) -> bool:
        """The command reads a second operand (every ``op`` but COPY)."""
        return self.op != "COPY"

    @property
    def src_bytes(self) -> int:
        """Bytes per operand element."""
        return SRC_BYTES[self.src_type]

    def operands(self):
        """``(first element index, step)`` of each operand read."""
        ops = [(self.src_off, self.src_skip + 1)]
        if self.two:
            ops.append((self.src2_off, self.src2_skip + 1))
        return ops

    def spans(self):
        """Element index range ``[lo, hi)`` each operand reads (a strided operand
        counts as its whole span)."""
        return [(off, off + (self.n - 1) * step + 1) for off, step in self.operands()]


def check(config, a: Act) -> str:
    """The refusal reason, ``"NONE"`` when the command runs."""
    if a.src_fp:
        if a.dst_type not in FLOAT_OUT or not config.has_float:
            return "TYPES"
    elif a.dst_type not in INT_OUT:
        return "TYPES"
    if a.src_type != "ACC" and (a.src_psum or a.src_fp != (a.src_type != "INT8")):
        return "TYPES"
    src_parts = config.cols if a.src_psum else config.rows
    if a.parts == 0 or a.src_p0 + a.parts > src_parts or a.dst_p0 + a.parts > config.rows:
        return "PARTS"
    es = a.src_bytes
    src_elems = config.psum_entries if a.src_psum else config.sbuf_bytes // es
    if a.n == 0 or any(hi > src_elems for _, hi in a.spans()):
        return "SRC_RANGE"
    size = ACT_BYTES[a.dst_type]
    if a.dst_off % size or a.dst_off + a.n * size > config.sbuf_bytes:
        return "DST_RANGE"
    if a.bias and (a.bias_off % 4 or a.bias_off + 4 > config.sbuf_bytes):
        return "BIAS_RANGE"
    if not a.src_psum:
        parts = (a.src_p0 < a.dst_p0 + a.parts) and (a.dst_p0 < a.src_p0 + a.parts)
        for (lo, hi), (off, step) in zip(a.spans(), a.operands()):
            overlap = es * lo < a.dst_off + a.n * size and a.dst_off < es * hi
            # written bytes never run ahead of the reads: each element writes at most
            # the bytes its own read spans, starting where the operand starts
            in_place = (a.src_p0 == a.dst_p0 and a.dst_off == es * off
                        and size <= es * step)
            if parts and overlap and not in_place:
                return "OVERLAP"
    if a.op == "OP3" or (a.src_fp and a.op == "ADD" and a.bias):
        return "OP"
    return "NONE"


def _words32(raw):
    """[..., 4*m] uint8 -> [..., m] uint32 (little-endian)."""
    raw = np.ascontiguousarray(raw)
    return raw.view("<u4").astype(np.uint32)


def _operand(config, a: Act, model, off, step):
    """One operand's elements, ``[parts, n]``: raw unsigned element bits."""
    idx = off + step * np.arange(a.n)
    if a.src_psum:
        flat = model.psum.reshape(config.cols, -1)
        return flat[a.src_p0:a.src_p0 + a.parts][:, idx].astype(np.int64)
    es = a.src_bytes
    rows = model.sbuf[a.src_p0:a.src_p0 + a.parts].astype(np.int64)
    raw = np.zeros((a.parts, a.n), dtype=np.int64)
    for j in range(es):
        raw |= rows[:, es * idx + j] << (8 * j)
    return raw


def _int_operand(raw, src_type, zp):
    x = widen_bits(raw, src_type)
    x = x.view(np.int32).astype(np.int64) if src_type == "ACC" else x
    return wrap_int32(x - zp)


def apply(config, a: Act, model) -> str:
    """Run ``a`` on ``model`` (a :class:`sim.model.tensor.TensorModel`); return its code."""
    reason = check(config, a)
    if reason != "NONE":
        return reason
    raws = [_operand(config, a, model, off, step) for off, step in a.operands()]
    if a.bias:
        b = _words32(model.sbuf[a.dst_p0:a.dst_p0 + a.parts, a.bias_off:a.bias_off + 4])
    else:
        b = np.zeros((a.parts, 1), dtype=np.uint32)
    b = np.broadcast_to(b, (a.parts, a.n))
    if a.src_fp:
        x1 = widen_bits(raws[0], a.src_type)
        if a.op == "ADD":
            y = fp32_add_bits(x1, widen_bits(raws[1], a.src_type),
                              subnormals=config.subnormals)
        else:
            y = max_f32_bits(x1, widen_bits(raws[1], a.src_type)) if a.op == "MAX" else x1
            if a.bias:
                y = fp32_add_bits(y, b, subnormals=config.subnormals)
        if a.relu:
            y = relu_f32_bits(y)
        if a.clip:
            y = clip_f32_bits(y, a.hi)
        if a.dst_type == "BF16":
            y = f32_to_bf16_bits(y)
        elif a.dst_type == "FP16":
            y = f32_to_fp16_bits(y)
    else:
        x1 = _int_operand(raws[0], a.src_type, a.zp1)
        x2 = _int_operand(raws[1], a.src_type, a.zp2) if a.two else 0
        m = np.maximum(x1, x2) if a.op == "MAX" else x1
        acc = wrap_int32(m + b.view(np.int32).astype(np.int64))
        if a.dst_type == "INT32":
            y = wrap_int32(acc + x2) if a.op == "ADD" else acc
            y = np.where(a.relu & (y < 0), 0, y)
            if a.clip:
                y = np.minimum(y, _sext(a.hi, 16))
        else:
            add = a.op == "ADD"
            y = requantize(acc, a.scale, a.shift, a.zp, a.relu,
                           acc2=x2 if add else 0, scale2=a.scale2 if add else 0,
                           hi=_sext(a.hi & 0xFF, 8) if a.clip else 127)
    size = ACT_BYTES[a.dst_type]
    y = np.asarray(y, dtype=np.int64) & ((1 << (8 * size)) - 1)
    out = np.zeros(y.shape + (size,), dtype=np.uint8)
    for j in range(size):
        out[..., j] = (y >> (8 * j)) & 0xFF
    model.sbuf[a.dst_p0:a.dst_p0 + a.parts, a.dst_off:a.dst_off + a.n * size] = \
        out.reshape(a.parts, a.n * size)
    return "NONE"


def _sext(v, bits):
    v = int(v) & ((1 << bits) - 1)
    return v - (1 << bits) if v >> (bits - 1) else v
