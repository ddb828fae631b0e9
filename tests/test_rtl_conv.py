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
