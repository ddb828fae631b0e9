"""Tiled GEMM programs (sim/compiler/gemm.py) on the ISS: race-free, complete, and correct.

INT8 results must equal NumPy's integer product exactly; BF16/FP16 results must equal
an independent per-element reference that adds the exact products in the array's
order (row 0 first within a K slice, slices in order) with float32 rounding after
each addition -- the numerics documented in docs/numerics.md.
"""

import ml_dtypes
import numpy as np
import pytest

from hdl.config import CoreConfig
from sim.compiler.gemm import GemmLayout, gemm_dram, gemm_program
from sim.model.iss import run
from sim.isa.races import find_races
from tb.core.test_bench import operands

INT = CoreConfig(rows=8, cols=8)
FLT = CoreConfig(rows=4, cols=4, dtypes=("int8", "bf16", "fp16"))


def _layout(M, N, K, dtype):
    eb = 1 if dtype == "int8" else 2
    a = 0
    b = (K * M * eb + 63) // 64 * 64
    c = b + (K * N * eb + 63) // 64 * 64
    return GemmLayout(M, N, K, dtype, a_addr=a, b_addr=b, c_addr=c)


def _float_reference(A, B, dtype, rows):
    """Sum of exact products in float32, in the array's order, element by element.
    The array adds a K slice's products down the column starting from 0 (row 0 first)
    and PSUM adds each slice's sum to the running total (docs/numerics.md)."""
    t = ml_dtypes.bfloat16 if dtype == "bf16" else np.float16
    a = A.view(t).astype(np.float32)
    b = B.view(t).astype(np.float32)
    M, K = a.shape
    N = b.shape[1]
    out = np.zeros((M, N), dtype=np.float32)
    for k0 in range(0, K, rows):
        part = np.zeros((M, N), dtype=np.float32)
        for k in range(k0, min(K, k0 + rows)):
            # bf16/fp16 products are exact in float32
            part = (part + a[:, k:k + 1] * b[k:k + 1, :]).astype(np.float32)
        out = part if k0 == 0 else (out + part).astype(np.float32)
    return out


def _run(cfg, M, N, K, dtype, seed, **kw):
    rng = np.random.default_rng(seed)
    L = _layout(M, N, K, dtype)
    prog = gemm_program(cfg, L, **kw)
    pa = (L.c_addr + L.c_bytes + 31) // 32 * 32
    A, B = operands(rng, M, N, K, dtype)
    dram = gemm_dram(L, A, B, prog, prog_addr=pa, size=pa + 32 * len(prog))
    races = find_races(cfg, prog, pa)
    assert not races, f"seed {seed}: {races[0]}"
    res = run(cfg, dram, pa)
    assert res.done and res.error == "NONE", f"seed {seed}: {res.error} {res.blocked}"
    C = res.dram[L.c_addr:L.c_addr + L.c_bytes]
    return A, B, C, prog


SHAPES = [(1, 1, 1), (8, 8, 8), (7, 13, 29), (64, 64, 64), (100, 37, 71), (3, 300, 5),
          (33, 2, 257), (40, 513, 16)]


@pytest.mark.parametrize("schedule", [None, "psum", "resident", "stream"])
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_int8_gemm_exact(M, N, K, schedule):
    seed = M * 1000003 + N * 1009 + K
    try:
        A, B, C, _ = _run(INT, M, N, K, "int8", seed, schedule=schedule)
    except ValueError as e:
        # a schedule may not fit a shape; the automatic choice (None) always must
        assert schedule is not None and "does not fit" in str(e), e
        return
    want = (A.astype(np.int64) @ B.astype(np.int64)).astype(np.int32)
    assert np.array_equal(C.view(np.int32).reshape(M, N), want), f"seed {seed}"


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("M,N,K", [(5, 3, 9), (13, 7, 11), (9, 70, 6), (4, 4, 4)])
def test_float_gemm_bit_exact(M, N, K, dtype):
    for schedule in (None, "stream"):
        seed = M * 7919 + N * 104729 + K
        A, B, C, _ = _run(FLT, M, N, K, dtype, seed, schedule=schedule)
        want = _float_reference(A, B, dtype, FLT.rows)
        got = C.view(np.float32).reshape(M, N)
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), \
            f"seed {seed} schedule {schedule}"


def test_single_buffered_is_race_free_and_equal():
    A, B, C1, p1 = _run(INT, 40, 300, 24, "int8", 5, double_buffer=False)
    _, _, C2, p2 = _run(INT, 40, 300, 24, "int8", 5)
    assert np.array_equal(C1, C2)


def test_bad_requests():
    with pytest.raises(ValueError, match="not in this configuration"):
        gemm_program(INT, _layout(8, 8, 8, "bf16"))
    with pytest.raises(ValueError, match="positive"):
        gemm_program(INT, _layout(0, 8, 8, "int8"))
    with pytest.raises(ValueError, match="schedule must be"):
        gemm_program(INT, _layout(8, 8, 8, "int8"), schedule="fast")
