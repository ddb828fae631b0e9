"""The tensor-engine golden model (sim/model/tensor.py) against independent computations."""

import dataclasses

import numpy as np
import pytest

from hdl.config import CoreConfig, DTYPES
from hdl.formats import MatmulCmd, TensorError
from sim.model.fp import bits_f32
from sim.model.tensor import TENSOR_ERRORS, Matmul, TensorModel

CFG = CoreConfig(rows=4, cols=3, dtypes=DTYPES, sbuf_bytes=64, psum_banks=2, psum_depth=8)


def test_error_names_match_hardware_enum():
    assert TENSOR_ERRORS == tuple(e.name for e in TensorError)


@pytest.mark.parametrize("seed", range(20))
def test_encode_decode_round_trip(seed):
    rng = np.random.default_rng(seed)
    fields = {name: int(rng.integers(0, 1 << field.width))
              for name, field in MatmulCmd.as_shape() if name not in ("dtype", "acc")}
    cmd = Matmul(**fields, acc=bool(rng.integers(2)), dtype=DTYPES[seed % 3])
    word = cmd.encode()
    assert word < 1 << MatmulCmd.as_shape().size
    assert Matmul.decode(word) == cmd, f"seed {seed}"


@pytest.mark.parametrize("cmd,reason", [
    (Matmul(k=4, m=3, n=8), "NONE"),
    (Matmul(k=4, m=3, n=8, dtype="bf16", s_off=29, x_off=24), "NONE"),
    (Matmul(k=0, m=1, n=1), "K_RANGE"),
    (Matmul(k=2, m=1, n=1, p0=3), "K_RANGE"),
    (Matmul(k=1, m=4, n=1), "M_RANGE"),
    (Matmul(k=1, m=0, n=1), "M_RANGE"),
    (Matmul(k=1, m=1, n=9), "N_RANGE"),
    (Matmul(k=1, m=1, n=1, bank=2), "PSUM_RANGE"),
    (Matmul(k=1, m=1, n=2, psum_off=7), "PSUM_RANGE"),
    (Matmul(k=1, m=1, n=1, s_off=64), "SBUF_RANGE"),
    (Matmul(k=1, m=1, n=1, x_off=32, dtype="fp16"), "SBUF_RANGE"),
    (Matmul(k=0, m=0, n=0, bank=9), "K_RANGE"),      # the first failing check wins
])
def test_check_reasons(cmd, reason):
    assert TensorModel(CFG).check(cmd) == reason


def test_dtype_refused_when_absent():
    model = TensorModel(CoreConfig(rows=2, cols=2, sbuf_bytes=64, psum_depth=8))
    assert model.check(Matmul(k=1, m=1, n=1, dtype="bf16")) == "DTYPE"


@pytest.mark.parametrize("seed", range(10))
def test_int8_matmul_and_accumulate(seed):
    """INT8: PSUM after overwrite + accumulate equals an exact int64 product, wrapped."""
    rng = np.random.default_rng(seed)
    model = TensorModel(CFG)
    model.sbuf[...] = rng.integers(0, 256, model.sbuf.shape)
    sb = model.sbuf.view(np.int8).astype(np.int64)
    p0, k, m, n = 1, 3, 2, 5
    c1 = Matmul(k=k, m=m, n=n, p0=p0, s_off=3, x_off=40, bank=1, psum_off=2)
    c2 = dataclasses.replace(c1, s_off=11, x_off=50, acc=True)
    before = model.psum.copy()
    assert model.run([c1, c2]) == "NONE"
    want = sum(sb[p0:p0 + k, c.s_off:c.s_off + m].T @ sb[p0:p0 + k, c.x_off:c.x_off + n]
               for c in (c1, c2))
    got = model.psum[:m, 1, 2:2 + n].view(np.int32)
    assert np.array_equal(got, want.astype(np.int32)), f"seed {seed}"
    touched = np.zeros_like(before, dtype=bool)
    touched[:m, 1, 2:2 + n] = True
    assert np.array_equal(model.psum[~touched], before[~touched])


def test_int32_wraps():
    model = TensorModel(CFG)
    model.sbuf[:, 0] = 0x80            # -128 everywhere at element 0
    model.psum[0, 0, 0] = 0x7FFF_FFFF
    model.matmul(Matmul(k=4, m=1, n=1, acc=True))
    assert model.psum[0, 0, 0] == (0x7FFF_FFFF + 4 * 128 * 128) % (1 << 32)


def test_float_accumulate_rounds_in_fp32():
    """BF16 1.0 x 1.0 accumulated onto 2**24 stays 2**24 (RNE, FP32), while an
    overwrite gives exactly 1.0: the model adds in FP32, not in float64."""
    model = TensorModel(CFG)
    model.sbuf[0, 0:2] = [0x80, 0x3F]   # bf16 1.0 at element 0 of partition 0
    model.psum[0, 0, 0] = np.float32(2 ** 24).view(np.uint32)
    model.matmul(Matmul(k=1, m=1, n=1, acc=True, dtype="bf16"))
    assert bits_f32(model.psum[0, 0, 0]) == 2 ** 24
    model.matmul(Matmul(k=1, m=1, n=1, acc=False, dtype="bf16"))
    assert bits_f32(model.psum[0, 0, 0]) == 1.0


def test_refused_command_changes_nothing():
    rng = np.random.default_rng(5)
    model = TensorModel(CFG)
    model.sbuf[...] = rng.integers(0, 256, model.sbuf.shape)
    model.psum[...] = rng.integers(0, 1 << 32, model.psum.shape, dtype=np.uint64)
    sbuf, psum = model.sbuf.copy(), model.psum.copy()
    assert model.matmul(Matmul(k=1, m=1, n=1, psum_off=8)) == "PSUM_RANGE"
    assert np.array_equal(model.sbuf, sbuf) and np.array_equal(model.psum, psum)


def test_tile_reads_little_endian_16_bit():
    model = TensorModel(CFG)
    model.sbuf[2, 6:10] = [0x34, 0x12, 0x78, 0x56]
    assert model.tile(2, 1, 3, 2, "fp16").tolist() == [[0x1234, 0x5678]]
