"""The golden model of ncore's arithmetic, in pure NumPy.

Everything here is bit-exact with the gateware and is the only source of expected
values for the tests. It never imports cocotb or Amaranth.

Numerics (see ``docs/numerics.md``):

* INT8 x INT8 products are exact (16 bits).
* Partial sums are INT32 and wrap around modulo 2**32, as the hardware's adders do.
* A column of the systolic array sums from row 0 (k = 0) down to row K-1, one
  addition per row, wrapping after every addition. (For integers the order does not
  change the result; the model keeps it anyway so float types can reuse the loop.)
"""

import numpy as np

__all__ = ["wrap_int32", "matmul_int8", "systolic_matmul", "matmul_float_bits"]

INT8_MIN, INT8_MAX = -128, 127


def wrap_int32(a):
    """Reduce integers modulo 2**32 into the signed INT32 range."""
    a = np.asarray(a, dtype=np.int64)
    return ((a + (1 << 31)) & 0xFFFF_FFFF) - (1 << 31)


def _check_int8(name, a):
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, not {a.ndim}-D")
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, not {a.dtype}")
    if a.size and (a.min() < INT8_MIN or a.max() > INT8_MAX):
        raise ValueError(f"{name} holds values outside INT8 [{INT8_MIN}, {INT8_MAX}]")
    return a.astype(np.int64)


def matmul_int8(S, X):
    """``Y = S^T @ X`` for INT8 ``S[K, M]`` and ``X[K, N]``: INT32 ``Y[M, N]``.

    The sum runs over k in increasing order with a wrap to INT32 after every
    addition, exactly as a column of the systolic array computes it.
    """
    S = _check_int8("S", S)
    X = _check_int8("X", X)
    if S.shape[0] != X.shape[0]:
        raise ValueError(f"S and X must share K (dim 0), not {S.shape[0]} and {X.shape[0]}")
    K, M = S.shape
    N = X.shape[1]
    acc = np.zeros((M, N), dtype=np.int64)
    for k in range(K):
        acc = wrap_int32(acc + np.outer(S[k], X[k]))
    return acc.astype(np.int32)


def systolic_matmul(S, X, rows, cols, dtype="int8", *, subnormals=True):
    """What the ``rows x cols`` array emits for one matmul: ``Y[cols, N]``.

    ``S[K, M]`` with ``K <= rows`` and ``M <= cols`` is the weight tile, ``X[K, N]`` the
    moving tile. The array sums all ``rows`` rows (rows ``k >= K`` fed zeros) and all
    ``cols`` columns (weights of columns ``m >= M`` cleared), so the model pads both.
    INT8: INT32 results. BF16/FP16 (16-bit patterns in, FP32 patterns out): products
    and sums as :func:`matmul_float_bits`; the result is returned as INT32 holding the
    FP32 bit pattern, as it appears on the array's output. ``subnormals=False`` models
    a flush-to-zero configuration (``CoreConfig.subnormals``).
    """
    S = np.asarray(S)
    X = np.asarray(X)
    K, M = S.shape
    if K > rows or M > cols:
        raise ValueError(f"a {K}x{M} weight tile does not fit a {rows}x{cols} array")
    if dtype == "int8":
        Y = np.zeros((cols, X.shape[1]), dtype=np.int32)
        Y[:M] = matmul_int8(S, X)
        return Y
    Sp = np.zeros((rows, cols), dtype=np.uint32)
    Sp[:K, :M] = S
    Xp = np.zeros((rows, X.shape[1]), dtype=np.uint32)
    Xp[:K] = X
    return matmul_float_bits(Sp, Xp, dtype, subnormals=subnormals).view(np.int32)


def matmul_float_bits(S, X, fmt, *, subnormals=True):
    """``Y = S^T @ X`` for BF16 or FP16 bit patterns, as a column of the array sums it.

    ``S[K, M]`` and ``X[K, N]`` hold 16-bit patterns of format ``fmt`` (``"bf16"`` or
    ``"fp16"``). Each product is formed by :func:`sim.model.fp.mul16_to_fp32_bits` and added to
    the running FP32 sum with :func:`sim.model.fp.fp32_add_bits`, row 0 first, starting from
    ``+0``: one rounding per row, in the hardware's order (``np.matmul`` would reorder).
    Returns FP32 bit patterns ``Y[M, N]`` (uint32). The caller pads K to the array's rows
    with zeros when it models the array, because the array adds those rows too
    (``-0 + +0`` is ``+0``). ``subnormals=False``: both units flush subnormals to zero
    (the ``subnormals`` keyword of the two functions).
    """
    from sim.model.fp import fp32_add_bits, mul16_to_fp32_bits
    S = np.asarray(S, dtype=np.uint32)
    X = np.asarray(X, dtype=np.uint32)
    if S.ndim != 2 or X.ndim != 2 or S.shape[0] != X.shape[0]:
        raise ValueError(f"S[K, M] and X[K, N] must share K, not {S.shape} and {X.shape}")
    K, M = S.shape
    N = X.shape[1]
    acc = np.zeros((M, N), dtype=np.uint32)
    for k in range(K):
        prod = mul16_to_fp32_bits(S[k][:, None], X[k][None, :], fmt, subnormals=subnormals)
        acc = fp32_add_bits(acc, prod, subnormals=subnormals)
    return acc
