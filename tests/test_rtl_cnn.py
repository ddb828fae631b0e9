"""The CNNs of issue 27 (sim/compiler/cnn.py) on the RTL: the LeNet-style digits network
(trained here), the ResNet-style and the MobileNet-style networks, each compiled to one
program; the runtime's ``verilator`` backend against the golden backend, the whole used
DRAM image byte for byte, and the result against the golden one's."""

import numpy as np
import pytest

from sim.compiler.cnn import compile_cnn, load_cnn, run_cnn
from sim.compiler.cnn_models import (digits_images, lenet_onnx, mobilenet_block_model,
                                     resnet_block_model, train_lenet)

pytestmark = pytest.mark.rtl


def _model(name):
    if name == "lenet":
        _, _, x, _ = digits_images()
        return lenet_onnx(train_lenet(seed=0, epochs=2)), x[:2]
    rng = np.random.default_rng(5)
    if name == "resnet":
        return resnet_block_model(), rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    return mobilenet_block_model(), (3 * rng.standard_normal((1, 8, 8, 8))).astype(np.float32)


@pytest.mark.parametrize("name", ["lenet", "resnet", "mobilenet"])
def test_cnn_on_rtl(name):
    model, x = _model(name)
    c = compile_cnn(load_cnn(model), "4x4-fp", batch=len(x), dtype="bf16")
    assert not c.races()
    y_iss, r_iss, dram_iss = run_cnn(c, x, return_result=True)
    y_rtl, r_rtl, dram_rtl = run_cnn(c, x, backend="verilator", return_result=True)
    diff = np.flatnonzero(dram_iss != dram_rtl)
    assert diff.size == 0, (f"{name}: DRAM differs from the ISS in {diff.size} bytes, first "
                            f"at {int(diff[0]):#x}")
    assert np.array_equal(y_rtl, y_iss)
    assert r_rtl.counters["instructions"] == r_iss.counters["instructions"]
    print(f"{name}: {len(c.program.instructions)} instructions, {r_rtl.cycles} cycles")


def test_layer_figures_on_rtl():
    """Per-layer cycles and utilization (the CNN demo's table) of the MobileNet-style
    network on the RTL: every layer ran, convolutions have a utilization in (0, 1],
    the depthwise one at most 1/rows (its diagonal weights)."""
    from hdl.config import named_config
    from sim.compiler.cnn_demo import layer_figures
    cfg = named_config("4x4-fp")
    rows = layer_figures(load_cnn(mobilenet_block_model()), cfg, "verilator")
    assert [r["kind"] for r in rows] == ["conv", "conv", "maxpool", "conv"]
    for r in rows:
        assert r["cycles"] > 0
        if r["kind"] == "conv":
            assert 0 < r["utilization"] <= 1
    assert rows[0]["groups"] == 8 and rows[0]["utilization"] <= 1 / cfg.rows
