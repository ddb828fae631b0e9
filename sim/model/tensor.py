"""Golden model of SBUF, PSUM and the tensor engine's matmul command.

State is plain NumPy: ``sbuf[rows, sbuf_bytes]`` (uint8) and
``psum[cols, psum_banks, psum_depth]`` (uint32 bit patterns: INT32 two's complement or
FP32). :meth:`TensorModel.matmul` applies one :class:`Matmul` exactly as the hardware
does (array order, INT32 wrap-around, FP32 RNE accumulate with the policy of
``docs/numerics.md``) or refuses it with the same :class:`TensorError` reason and no
change to the state.

The command's binary format is :class:`hdl.formats.MatmulCmd` (one definition for
hardware, model and testbenches): :meth:`Matmul.encode` packs and :meth:`Matmul.decode`
unpacks through it with :mod:`sim.isa.codec`, the one codec of every format (the assembler
and the ISS use these two methods too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdl.formats import DTYPE_BYTES, Dtype, MatmulCmd, TensorError

import sim.isa.codec as codec
from sim.model.fp import fp32_add_bits
from sim.model.array import systolic_matmul, wrap_int32

__all__ = ["Matmul", "TensorModel", "TENSOR_ERRORS"]

#: Refusal reasons in check order: the names of ``hdl.formats.TensorError``.
TENSOR_ERRORS = tuple(e.name for e in sorted(TensorError, key=lambda e: e.value))

#: ``dtype`` as :class:`Matmul` spells it: ``"int8"``, ``"bf16"``, ``"fp16"``, and
#: ``"dtype3"`` for the value no member has (refused by the engine with ``DTYPE``).
DTYPE_TEXT = codec.EnumText(Dtype, "dtype", lower=True)


@dataclass(frozen=True)
class Matmul(codec.Command):
    """``PSUM[bank][0:m, psum_off:psum_off+n] (=|+=) S^T @ X`` with
    ``S = SBUF[p0:p0+k, s_off:s_off+m]`` and ``X = SBUF[p0:p0+k, x_off:x_off+n*step:step]``
    (offsets in elements of ``dtype``; ``step = x_skip + 1``). See
    :class:`hdl.formats.MatmulCmd`."""
    k: int
    m: int
    n: int
    p0: int = 0
    s_off: int = 0
    x_off: int = 0
    bank: int = 0
    psum_off: int = 0
    acc: bool = False
    dtype: str = "int8"
    x_skip: int = 0

    LAYOUT = MatmulCmd

    @property
    def x_step(self):
        """Elements between consecutive moving elements."""
        return self.x_skip + 1

    @property
    def x_end(self):
        """One past the last moving element read (elements from the partition's start)."""
        return self.x_off + (self.n - 1) * self.x_step + 1
    TEXT = {"dtype": DTYPE_TEXT}
    FLAGS = ("acc",)


class TensorModel:
    """SBUF + PSUM state and the matmul command semantics of one configuration."""

    def __init__(self, config):
        self.config = config
        self.sbuf = np.zeros((config.rows, config.sbuf_bytes), dtype=np.uint8)
        self.psum = np.zeros((config.cols, config.psum_banks, config.psum_depth),
                             dtype=np.uint32)

    def check(self, cmd: Matmul) -> str:
        """The refusal reason (a name in :data:`TENSOR_ERRORS`), ``"NONE"`` if legal."""
        cfg = self.config
        if cmd.dtype not in cfg.dtypes:
            return "DTYPE"
        if cmd.k == 0 or cmd.p0 + cmd.k > cfg.rows:
            return "K_RANGE"
        if cmd.m == 0 or cmd.m > cfg.cols:
            return "M_RANGE"
        if cmd.n == 0 or cmd.n > cfg.psum_depth:
            return "N_RANGE"
        if cmd.bank >= cfg.psum_banks or cmd.psum_off + cmd.n > cfg.psum_depth:
            return "PSUM_RANGE"
        esize = DTYPE_BYTES[cmd.dtype]
        if ((cmd.s_off + cmd.m) * esize > cfg.sbuf_bytes
                or cmd.x_end * esize > cfg.sbuf_bytes):
            return "SBUF_RANGE"
        if cmd.x_step * esize > cfg.sbuf_word_bytes:
            return "STEP"
        return "NONE"

    def tile(self, p0, k, off, count, dtype, step=1):
        """``SBUF[p0:p0+k, off:off+count*step:step]`` as elements of ``dtype``: int64
        values for INT8, uint32 holding 16-bit patterns for BF16/FP16."""
        esize = DTYPE_BYTES[dtype]
        raw = self.sbuf[p0:p0 + k, off * esize:(off + (count - 1) * step + 1) * esize]
        raw = raw.reshape(k, -1, esize)[:, ::step]
        if esize == 1:
            return raw[:, :, 0].view(np.int8).astype(np.int64)
        return raw[:, :, 0].astype(np.uint32) | (raw[:, :, 1].astype(np.uint32) << 8)

    def result(self, cmd: Matmul):
        """``S^T @ X`` of a legal command as the array computes it: ``[m, n]`` uint32
        bit patterns (INT32 or FP32)."""
        cfg = self.config
        S = self.tile(cmd.p0, cmd.k, cmd.s_off, cmd.m, cmd.dtype)
        X = self.tile(cmd.p0, cmd.k, cmd.x_off, cmd.n, cmd.dtype, cmd.x_step)
        Y = systolic_matmul(S, X, cfg.rows, cfg.cols, cmd.dtype, subnormals=cfg.subnormals)
        return Y[:cmd.m].view(np.uint32)

    def matmul(self, cmd: Matmul) -> str:
        """Apply ``cmd``; return its refusal reason (``"NONE"`` when it ran)."""
        reason = self.check(cmd)
        if reason != "NONE":
            return reason
        Y = self.result(cmd)
        region = self.psum[:cmd.m, cmd.bank, cmd.psum_off:cmd.psum_off + cmd.n]
        if not cmd.acc:
            region[...] = Y
        elif cmd.dtype == "int8":
            region[...] = wrap_int32(region.view(np.int32).astype(np.int64)
                                     + Y.view(np.int32)).astype(np.int32).view(np.uint32)
        else:
            region[...] = fp32_add_bits(region, Y, subnormals=self.config.subnormals)
        return "NONE"

    def run(self, cmds):
        """Apply commands in order; return the first refusal reason (or ``"NONE"``), as
        the hardware's sticky ``o_error_code`` reports it."""
        first = "NONE"
        for cmd in cmds:
            reason = self.matmul(cmd)
            if first == "NONE":
                first = reason
        return first
