"""Convolutions (sim/compiler/conv.py) on the RTL: the runtime's ``verilator`` backend
against the golden backend, the whole used DRAM image byte for byte, plus the
reference result and the tensor engine's MAC counter (the wide grid's extra columns
included: ``KH*KW`` matmuls of ``N`` columns per block and channel tile)."""

import numpy as np
import pytest

from sim.compiler.conv import conv2d, conv_reference

pytestmark = pytest.mark.rtl

CASES = [
    # B, C, H, W, F, KH, KW, pads, dilation, stride
    (1, 11, 8, 9, 10, 3, 3, (1, 1, 1, 1), (1, 1), (1, 1)),   # two channel and output tiles
    (2, 3, 6, 5, 4, 2, 3, (0, 2, 1, 0), (2, 1), (1, 1)),     # asymmetric pads, dilation
    (1, 5, 11, 13, 9, 3, 3, (1, 1, 1, 1), (1, 1), (2, 3)),   # strided reads (x_skip 2)
]


@pytest.mark.parametrize("case", CASES, ids=["same3x3", "asym-dilated", "strided"])
def test_conv_on_rtl(case):
    B, C, H, W, F, KH, KW, pads, dil, st = case
    seed = sum(case[:7]) * 31
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (B, C, H, W)).astype(np.int8)
    w = rng.integers(-128, 128, (F, C, KH, KW)).astype(np.int8)
    y_iss, r_iss, dram_iss = conv2d(x, w, pads=pads, dilation=dil, stride=st,
                                    return_result=True)
    y_rtl, r_rtl, dram_rtl = conv2d(x, w, pads=pads, dilation=dil, stride=st,
                                    backend="verilator", return_result=True)
    diff = np.flatnonzero(dram_iss != dram_rtl)
    assert diff.size == 0, (f"seed {seed}: DRAM differs from the ISS in {diff.size} bytes, "
                            f"first at {int(diff[0]):#x}")
    assert np.array_equal(y_rtl, conv_reference(x, w, pads, dil, st))
    assert r_rtl.counters["tensor_macs"] == r_iss.counters["tensor_macs"]
    assert r_rtl.counters["instructions"] == r_iss.counters["instructions"]
    print(f"{case}: {r_rtl.cycles} cycles, {r_rtl.counters['tensor_macs']} MACs issued")


def test_conv_bench_command(capsys):
    """``python -m sim.flow.cli conv-bench`` (docs/conv.md's figures): every case's result
    is checked inside; the figures must be sane."""
    import json
    from sim.flow.cli import main
    from sim.flow.rtl import BUILD
    from sim.compiler.conv import BENCH_CASES
    assert main(["conv-bench"]) == 0
    out = capsys.readouterr().out
    assert "C=32 F=32 14x14 3x3/1" in out
    rows = json.loads((BUILD / "bench-conv.json").read_text())
    assert len(rows) == len(BENCH_CASES)
    for r in rows:
        assert 0 < r["utilization"] <= r["tensor_busy"] <= 1
        assert r["issued_macs"] >= r["useful_macs"]
        assert (r["issued_macs"] == r["useful_macs"]) == (r["stride"] > 1 or r["K"] == 1)


def _same_dram(run):
    """``run(backend)`` -> (y, RunResult, dram) on golden and on the RTL: the DRAM images
    must be equal byte for byte. Returns the RTL's result."""
    y_iss, r_iss, dram_iss = run("golden")
    y_rtl, r_rtl, dram_rtl = run("verilator")
    diff = np.flatnonzero(dram_iss != dram_rtl)
    assert diff.size == 0, (f"DRAM differs from the ISS in {diff.size} bytes, first at "
                            f"{int(diff[0]):#x}")
    assert r_rtl.counters["instructions"] == r_iss.counters["instructions"]
    return y_rtl, r_rtl


POOL_CASES = ["maxpool-int8", "maxpool-bf16", "add-int8", "add-fp16", "depthwise-int8",
              "avgpool-bf16"]


@pytest.mark.parametrize("case", POOL_CASES)
def test_cnn_ops_on_rtl(case):
    """The CNN operations besides dense convolution (issue 27) on the RTL: max pools
    (ACT MAX chains over strided INT8/BF16 reads), residual adds (ACT ADD, INT8 with two
    scales, FP16), a depthwise convolution and an average pool (diagonal weights on the
    tensor engine); whole DRAM equal to the ISS's, results equal to the references."""
    import ml_dtypes
    from sim.compiler.pool import add2d, avgpool2d, maxpool2d, maxpool_reference
    rng = np.random.default_rng(POOL_CASES.index(case) + 100)
    if case == "maxpool-int8":
        x = rng.integers(-128, 128, (1, 11, 9, 9)).astype(np.int8)
        y, r = _same_dram(lambda be: maxpool2d(x, (3, 3), stride=(2, 2), pads=(1, 1, 1, 1),
                                               backend=be, return_result=True))
        assert np.array_equal(y, maxpool_reference(x, (3, 3), (2, 2), (1, 1, 1, 1)))
    elif case == "maxpool-bf16":
        x = rng.standard_normal((1, 6, 8, 8)).astype(ml_dtypes.bfloat16)
        y, r = _same_dram(lambda be: maxpool2d(x.view(np.uint16), (2, 2), "bf16",
                                               stride=(2, 2), config="4x4-fp", backend=be,
                                               return_result=True))
        want = maxpool_reference(x.astype(np.float32), (2, 2), (2, 2))
        assert np.array_equal(y.view(ml_dtypes.bfloat16).astype(np.float32), want)
    elif case == "add-int8":
        a = rng.integers(-128, 128, (1, 10, 4, 6)).astype(np.int8)
        b = rng.integers(-128, 128, (1, 10, 4, 6)).astype(np.int8)
        y, r = _same_dram(lambda be: add2d(a, b, scale=20000, scale2=-9000, shift=15, zp=3,
                                           zp1=-2, zp2=5, backend=be, return_result=True))
        prod = (a.astype(np.int64) + 2) * 20000 + (b.astype(np.int64) - 5) * -9000
        rr = (np.abs(prod) + (1 << 14)) >> 15
        assert np.array_equal(y, np.clip(np.where(prod < 0, -rr, rr) + 3, -128, 127))
    elif case == "add-fp16":
        a = rng.standard_normal((1, 5, 3, 7)).astype(np.float16)
        b = rng.standard_normal((1, 5, 3, 7)).astype(np.float16)
        y, r = _same_dram(lambda be: add2d(a.view(np.uint16), b.view(np.uint16), "fp16",
                                           config="4x4-fp", backend=be, return_result=True))
        want = (a.astype(np.float32) + b.astype(np.float32)).astype(np.float16)
        assert np.array_equal(y.view(np.float16), want)
    elif case == "depthwise-int8":
        x = rng.integers(-128, 128, (1, 12, 9, 9)).astype(np.int8)
        w = rng.integers(-128, 128, (12, 1, 3, 3)).astype(np.int8)
        y, r = _same_dram(lambda be: conv2d(x, w, pads=(1, 1, 1, 1), stride=(2, 2),
                                            groups=12, backend=be, return_result=True))
        assert np.array_equal(y, conv_reference(x, w, (1, 1, 1, 1), (1, 1), (2, 2), 12))
    else:
        x = rng.standard_normal((1, 5, 6, 6)).astype(ml_dtypes.bfloat16)
        y, r = _same_dram(lambda be: avgpool2d(x.view(np.uint16), (2, 2), "bf16",
                                               stride=(2, 2), config="4x4-fp", backend=be,
                                               return_result=True))
        xf = x.astype(np.float32)
        want = ((xf[:, :, ::2, ::2] + xf[:, :, 1::2, ::2] + xf[:, :, ::2, 1::2]
                 + xf[:, :, 1::2, 1::2]) / 4).astype(ml_dtypes.bfloat16)
        assert np.array_equal(y.view(ml_dtypes.bfloat16), want)
    print(f"{case}: {r.cycles} cycles")
