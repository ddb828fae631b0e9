"""Golden model of the vector engine's ACT command (``hdl/vector.py``).

Semantics, per partition lane ``k < parts`` and element ``i < n``::

    x = SRC[src_p0 + k][element src_off + i]     4-byte INT32 or FP32 (PSUM entry, or
                                                 SBUF bytes 4*(src_off+i) .. +4)
    b = SBUF[dst_p0 + k][bias_off : +4] if bias else 0    (same type as x)
    FP32 source:  y = x + b (FP32 RNE, sim.model.fp) if bias else x;  ReLU: y < 0 -> +0
                  (NaN kept);  then FP32 (bits unchanged), BF16 or FP16 (sim.model.casts casts)
    INT32 source: a = x + b (INT32 wrap);  INT32: ReLU clamps at 0;
                  INT8: sim.model.casts.requantize(a, scale, shift, zp, relu)
    SBUF[dst_p0 + k][dst_off + i*size : +size] = y   (little-endian)

Refusals (``ActError`` order): TYPES, PARTS, SRC_RANGE, DST_RANGE, BIAS_RANGE, OVERLAP.
The command format is :class:`hdl.formats.ActCmd`; :meth:`Act.encode` and
:meth:`Act.decode` go through it with :mod:`sim.isa.codec`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.formats import ACT_BYTES, ActCmd, ActError, ActType

import sim.isa.codec as codec
from sim.model.fp import fp32_add_bits
from sim.model.array import wrap_int32
from sim.model.casts import f32_to_bf16_bits, f32_to_fp16_bits, relu_f32_bits, requantize

__all__ = ["Act", "ACT_ERRORS", "check", "apply"]

#: Refusal reasons in check order: the names of ``hdl.formats.ActError``.
ACT_ERRORS = tuple(e.name for e in sorted(ActError, key=lambda e: e.value))
#: ``dst_type`` as :class:`Act` spells it: the :class:`~hdl.formats.ActType` names, and
#: ``"TYPE5"`` .. ``"TYPE7"`` for values no member has (refused with ``TYPES``).
DST_TYPE_TEXT = codec.EnumText(ActType, "TYPE")
#: Bool-valued 1-bit fields.
_FLAGS = ("src_psum", "src_fp", "bias", "relu")
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

    LAYOUT = ActCmd
    TEXT = {"dst_type": DST_TYPE_TEXT}
    FLAGS = _FLAGS


def check(config, a: Act) -> str:
    """The refusal reason, ``"NONE"`` when the command runs."""
    if a.src_fp:
        if a.dst_type not in FLOAT_OUT or not config.has_float:
            return "TYPES"
    elif a.dst_type not in INT_OUT:
        return "TYPES"
    src_parts = config.cols if a.src_psum else config.rows
    if a.parts == 0 or a.src_p0 + a.parts > src_parts or a.dst_p0 + a.parts > config.rows:
        return "PARTS"
    src_elems = config.psum_entries if a.src_psum else config.sbuf_bytes // 4
    if a.n == 0 or a.src_off + a.n > src_elems:
        return "SRC_RANGE"
    size = ACT_BYTES[a.dst_type]
    if a.dst_off % size or a.dst_off + a.n * size > config.sbuf_bytes:
        return "DST_RANGE"
    if a.bias and (a.bias_off % 4 or a.bias_off + 4 > config.sbuf_bytes):
        return "BIAS_RANGE"
    if not a.src_psum:
        parts = (a.src_p0 < a.dst_p0 + a.parts) and (a.dst_p0 < a.src_p0 + a.parts)
        lo, hi = 4 * a.src_off, 4 * (a.src_off + a.n)
        overlap = lo < a.dst_off + a.n * size and a.dst_off < hi
        in_place = a.src_p0 == a.dst_p0 and a.dst_off == lo
        if parts and overlap and not in_place:
            return "OVERLAP"
    return "NONE"


def _words32(raw):
    """[..., 4*m] uint8 -> [..., m] uint32 (little-endian)."""
    raw = np.ascontiguousarray(raw)
    return raw.view("<u4").astype(np.uint32)


def apply(config, a: Act, model) -> str:
    """Run ``a`` on ``model`` (a :class:`sim.model.tensor.TensorModel`); return its code."""
    reason = check(config, a)
    if reason != "NONE":
        return reason
    k = np.arange(a.parts)
    if a.src_psum:
        flat = model.psum.reshape(config.cols, -1)
        x = flat[a.src_p0 + k][:, a.src_off:a.src_off + a.n].astype(np.uint32)
    else:
        raw = model.sbuf[a.src_p0:a.src_p0 + a.parts, 4 * a.src_off:4 * (a.src_off + a.n)]
        x = _words32(raw)
    if a.bias:
        b = _words32(model.sbuf[a.dst_p0:a.dst_p0 + a.parts, a.bias_off:a.bias_off + 4])
    else:
        b = np.zeros((a.parts, 1), dtype=np.uint32)
    b = np.broadcast_to(b, x.shape)
    if a.src_fp:
        y = fp32_add_bits(x, b, subnormals=config.subnormals) if a.bias else x
        if a.relu:
            y = relu_f32_bits(y)
        if a.dst_type == "BF16":
            y = f32_to_bf16_bits(y)
        elif a.dst_type == "FP16":
            y = f32_to_fp16_bits(y)
    else:
        acc = wrap_int32(x.view(np.int32).astype(np.int64) + b.view(np.int32).astype(np.int64))
        if a.dst_type == "INT32":
            y = np.where(a.relu & (acc < 0), 0, acc)
        else:
            y = requantize(acc, a.scale, a.shift, a.zp, a.relu)
    size = ACT_BYTES[a.dst_type]
    y = np.asarray(y, dtype=np.int64) & ((1 << (8 * size)) - 1)
    out = np.zeros(y.shape + (size,), dtype=np.uint8)
    for j in range(size):
        out[..., j] = (y >> (8 * j)) & 0xFF
    model.sbuf[a.dst_p0:a.dst_p0 + a.parts, a.dst_off:a.dst_off + a.n * size] = \
        out.reshape(a.parts, a.n * size)
    return "NONE"
