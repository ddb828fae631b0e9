"""The golden model on its own, against independent Python-integer arithmetic."""

import numpy as np
import pytest

from sim.model.array import matmul_int8, systolic_matmul, wrap_int32


def reference(S, X):
    """Plain Python integers, reduced modulo 2**32 at the end (order-free for ints)."""
    K, M = S.shape
    N = X.shape[1]
    out = np.zeros((M, N), dtype=np.int64)
    for m in range(M):
        for n in range(N):
            v = sum(int(S[k, m]) * int(X[k, n]) for k in range(K))
            out[m, n] = ((v + 2**31) % 2**32) - 2**31
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_against_python_ints(seed):
    rng = np.random.default_rng(seed)
    K, M, N = (int(v) for v in rng.integers(1, 12, 3))
    S = rng.integers(-128, 128, (K, M))
    X = rng.integers(-128, 128, (K, N))
    assert np.array_equal(matmul_int8(S, X), reference(S, X)), f"seed {seed}"


@pytest.mark.parametrize("K", [1, 8, 128, 256])
def test_most_negative_products_at_largest_k(K):
    S = np.full((K, 3), -128)
    X = np.full((K, 2), -128)
    Y = matmul_int8(S, X)
    assert Y.dtype == np.int32
    assert (Y == 16384 * K).all()


def test_wrap_around():
    # 131072 * 16384 = 2**31 exactly: one past INT32_MAX wraps to INT32_MIN.
    K = 131072
    S = np.full((K, 1), -128)
    X = np.full((K, 1), -128)
    assert matmul_int8(S, X)[0, 0] == -2**31
    # and a mixed-sign case two wraps deep
    K = 300000
    rng = np.random.default_rng(3)
    S = rng.choice([-128, 127], size=(K, 2))
    X = np.full((K, 1), -128)
    assert np.array_equal(matmul_int8(S, X), reference(S[:, :], X) if K < 1000 else
                          np.array([[((int((S[:, m].astype(np.int64) * -128).sum()) + 2**31)
                                      % 2**32) - 2**31] for m in range(2)]))


def test_wrap_int32_edges():
    v = np.array([2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32, 0])
    assert wrap_int32(v).tolist() == [2**31 - 1, -2**31, -2**31, 2**31 - 1, 0, 0]


def test_systolic_matmul_pads_unused_columns():
    S = np.ones((2, 3), dtype=np.int64)
    X = np.arange(8).reshape(2, 4)
    Y = systolic_matmul(S, X, rows=4, cols=5)
    assert Y.shape == (5, 4)
    assert (Y[3:] == 0).all() and np.array_equal(Y[:3], reference(S, X))
    with pytest.raises(ValueError, match="does not fit a 4x2 array"):
        systolic_matmul(S, X, rows=4, cols=2)


def test_input_checks():
    with pytest.raises(ValueError, match="outside INT8"):
        matmul_int8(np.array([[128]]), np.array([[1]]))
    with pytest.raises(ValueError, match="must share K"):
        matmul_int8(np.zeros((2, 2), int), np.zeros((3, 2), int))
    with pytest.raises(TypeError, match="must hold integers"):
        matmul_int8(np.zeros((2, 2)), np.zeros((2, 2), int))


# ---- floating-point matmul in the array's order -----------------------------------------

import ml_dtypes  # noqa: E402

from sim.model.fp import canonicalise_nan, f32_bits  # noqa: E402
from sim.model.array import matmul_float_bits  # noqa: E402
from tb.common import float_operands  # noqa: E402


def accumulate_rows(Sf, Xf, mac):
    """The float references' common loop: ``out[m, n]`` starts at +0.0 and takes
    ``acc = mac(acc, Sf[k, m], Xf[k, n])`` for k in order (one row at a time, as the
    array does); returned as canonical FP32 bit patterns."""
    out = np.zeros((Sf.shape[1], Xf.shape[1]), dtype=np.uint32)
    with np.errstate(all="ignore"):
        for m in range(Sf.shape[1]):
            for n in range(Xf.shape[1]):
                acc = np.float32(0.0)
                for k in range(Sf.shape[0]):
                    acc = mac(acc, Sf[k, m], Xf[k, n])
                out[m, n] = canonicalise_nan(f32_bits(acc))
    return out


def float_reference(S, X, fmt):
    """Independent: NumPy float32 scalars, one product and one addition per row, in order."""
    t = ml_dtypes.bfloat16 if fmt == "bf16" else np.float16
    Sf = S.astype(np.uint16).view(t).astype(np.float32)
    Xf = X.astype(np.uint16).view(t).astype(np.float32)
    return accumulate_rows(Sf, Xf, lambda acc, s, x: np.float32(acc + np.float32(s * x)))


def wide_spread(rng, shape, fmt):
    return float_operands(rng, shape, fmt)


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
@pytest.mark.parametrize("seed", range(4))
def test_float_matmul_order_and_rounding(fmt, seed):
    rng = np.random.default_rng(seed)
    K, M, N = (int(v) for v in rng.integers(1, 9, 3))
    S = wide_spread(rng, (K, M), fmt)
    X = wide_spread(rng, (K, N), fmt)
    assert np.array_equal(matmul_float_bits(S, X, fmt), float_reference(S, X, fmt)), \
        f"{fmt} seed {seed}"


def test_float_matmul_is_not_pairwise():
    """Order matters: 1 + 2**-24 + 2**-24 row by row stays 1, a pairwise sum would not."""
    one, tiny = 0x3F80, 0x3380      # bf16 1.0 and 2**-24
    S = np.array([[one], [tiny], [tiny]], dtype=np.uint32)
    X = np.array([[one], [one], [one]], dtype=np.uint32)
    assert int(matmul_float_bits(S, X, "bf16")[0, 0]) == 0x3F80_0000


# ---- flush-to-zero configurations (CoreConfig(subnormals=False)) ---------------------------

def float_reference_ftz(S, X, fmt):
    """Independent flush-to-zero reference: operands with a zero exponent field read as
    zeros of their sign, each product and each sum computed in NumPy float32 (IEEE, on
    the flushed values) and then flushed if subnormal, row by row in order."""
    t = ml_dtypes.bfloat16 if fmt == "bf16" else np.float16

    def flush16(v):
        ebits = 0x7F80 if fmt == "bf16" else 0x7C00
        v = v.astype(np.uint16)
        return np.where(v & ebits == 0, v & 0x8000, v).view(t).astype(np.float32)

    def flush32(x):
        b = np.float32(x).view(np.uint32)
        return np.uint32(b & 0x8000_0000).view(np.float32) if b & 0x7F80_0000 == 0 else x

    def mac(acc, s, x):
        prod = flush32(np.float32(np.float64(s) * np.float64(x)))
        return flush32(np.float32(acc + prod))

    return accumulate_rows(flush16(S), flush16(X), mac)


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
@pytest.mark.parametrize("seed", range(6))
def test_float_matmul_flush_to_zero(fmt, seed):
    rng = np.random.default_rng(100 + seed)
    K, M, N = (int(v) for v in rng.integers(1, 9, 3))
    S = wide_spread(rng, (K, M), fmt)
    X = wide_spread(rng, (K, N), fmt)
    got = matmul_float_bits(S, X, fmt, subnormals=False)
    assert np.array_equal(got, float_reference_ftz(S, X, fmt)), f"{fmt} seed {100 + seed}"


@pytest.mark.parametrize("fmt", ["bf16", "fp16"])
def test_flush_to_zero_differs_on_test_data(fmt):
    """The wide-spread operands of the array tests reach subnormals, so the RTL tests of
    a flush-to-zero configuration tell the two policies apart."""
    rng = np.random.default_rng(7)
    S = wide_spread(rng, (8, 8), fmt)
    X = wide_spread(rng, (8, 64), fmt)
    ieee = matmul_float_bits(S, X, fmt)
    ftz = matmul_float_bits(S, X, fmt, subnormals=False)
    assert (ieee != ftz).any()
    assert np.array_equal(ftz, float_reference_ftz(S, X, fmt))


def test_flush_to_zero_directed():
    """BF16 2**-64 * 2**-65 = 2**-129: a subnormal under IEEE, +0 flushed; an FP16
    subnormal operand is read as zero."""
    S = np.array([[0x1F80]], dtype=np.uint32)
    X = np.array([[0x1F80 - 0x80]], dtype=np.uint32)
    assert int(matmul_float_bits(S, X, "bf16")[0, 0]) == f32_bits(np.float32(2.0 ** -129))
    assert int(matmul_float_bits(S, X, "bf16", subnormals=False)[0, 0]) == 0
    one, sub = 0x3C00, 0x0001                 # fp16 1.0 and 2**-24
    S = np.array([[sub]], dtype=np.uint32)
    X = np.array([[one]], dtype=np.uint32)
    assert int(matmul_float_bits(S, X, "fp16")[0, 0]) == f32_bits(np.float32(2.0 ** -24))
    assert int(matmul_float_bits(S, X, "fp16", subnormals=False)[0, 0]) == 0
