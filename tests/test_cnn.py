"""CNN graphs from ONNX on the core (sim/compiler/cnn.py, issue 27), golden backend:
the LeNet-style digits network trained here in NumPy, a ResNet-style network with two
residual blocks (one strided, with a projection shortcut) and BatchNorm, and a
depthwise-separable (MobileNet-style) block with ReLU6; against onnxruntime on the same
ONNX model, and against the graph's own float64 reference. Refusals of unsupported
operators and attributes. The RTL runs are in test_rtl_cnn.py."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from sim.compiler.cnn import cnn_reference, compile_cnn, load_cnn, run_cnn
from sim.compiler.cnn_models import (digits_images, lenet_onnx, mobilenet_block_model,
                                     ort_run, resnet_block_model, train_lenet)
from sim.compiler.onnx_front import UnsupportedModel


@pytest.fixture(scope="module")
def lenet():
    P = train_lenet(seed=0)
    return P, lenet_onnx(P)


def test_lenet_digits_accuracy_and_onnxruntime(lenet):
    """The first 60 test digits in BF16 on the core (the demo runs the whole split): the
    same predictions as
    onnxruntime's FP32 model but for samples onnxruntime itself finds close (top-two
    margin under 0.1), logits within BF16 rounding of onnxruntime's, and accuracy
    equal to onnxruntime's on these samples."""
    _, model = lenet
    _, _, x, y = digits_images()
    x, y = x[:60], y[:60]
    c = compile_cnn(load_cnn(model), "4x4-fp", batch=len(x), dtype="bf16")
    got = run_cnn(c, x)
    ref = ort_run(model, x)
    assert got.shape == ref.shape == (len(x), 10)
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()
    top2 = np.sort(ref, axis=1)[:, -2:]
    sure = top2[:, 1] - top2[:, 0] > 0.1
    assert np.array_equal(got.argmax(1)[sure], ref.argmax(1)[sure])
    acc, acc_ort = (got.argmax(1) == y).mean(), (ref.argmax(1) == y).mean()
    print(f"LeNet digits, 60 test samples: core (BF16) {acc:.3f}, onnxruntime (FP32) "
          f"{acc_ort:.3f}")
    assert acc == acc_ort and acc > 0.9


def test_lenet_matches_its_reference_and_fp16(lenet):
    """BF16 and FP16 runs against the graph's float64 reference with each layer's
    output rounded to the type (the core sums in FP32, so the difference is a few
    units in the last place)."""
    _, model = lenet
    _, _, x, _ = digits_images()
    g = load_cnn(model)
    for dtype, tol in (("bf16", 2 ** -6), ("fp16", 2 ** -9)):
        got = run_cnn(compile_cnn(g, "4x4-fp", batch=6, dtype=dtype), x[:6])
        want = cnn_reference(g, x[:6], dtype)
        assert np.allclose(got, want, rtol=tol, atol=tol), dtype


def test_resnet_style_blocks():
    """Residual blocks (branches and joins), BatchNorm folded into convolutions, a
    strided block with a 1x1/2 shortcut, GlobalAveragePool and an FC: close to
    onnxruntime, and the programs are race-free."""
    model = resnet_block_model()
    g = load_cnn(model)
    kinds = [o.kind for o in g.ops]
    assert kinds.count("add") == 2 and kinds.count("conv") == 8   # 6 convs, GAP, FC
    x = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    c = compile_cnn(g, "4x4-fp", batch=2, dtype="bf16")
    assert not c.races()
    got = run_cnn(c, x)
    ref = ort_run(model, x)
    assert np.allclose(got, ref, rtol=0.05, atol=0.05 * np.abs(ref).max()), (got, ref)
    assert np.allclose(got, cnn_reference(g, x), rtol=2 ** -6, atol=2 ** -6)


def test_mobilenet_style_block():
    """Depthwise 3x3 + BN + ReLU6 (Clip), pointwise 1x1 + BN + ReLU6, MaxPool, FC."""
    model = mobilenet_block_model()
    g = load_cnn(model)
    dw = g.ops[0]
    assert dw.kind == "conv" and dw.p["groups"] == 8 and dw.p["clip"] == 6.0 and dw.p["relu"]
    x = (np.random.default_rng(4).standard_normal((2, 8, 8, 8)) * 3).astype(np.float32)
    got = run_cnn(compile_cnn(g, "4x4-fp", batch=2, dtype="bf16"), x)
    ref = ort_run(model, x)
    assert np.allclose(got, ref, rtol=0.05, atol=0.05 * np.abs(ref).max())
    assert np.allclose(got, cnn_reference(g, x), rtol=2 ** -6, atol=2 ** -6)


def _one_node_model(op, attrs=None, inputs=("x",), inits=None, in_shape=(1, 4, 6, 6)):
    node = helper.make_node(op, list(inputs), ["y"], name="the_node", **(attrs or {}))
    g = helper.make_graph([node], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 1, 1])],
                          [onnx.numpy_helper.from_array(np.asarray(v, np.float32), k)
                           for k, v in (inits or {}).items()])
    ops = [helper.make_opsetid("", 17)]
    return helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))


W = np.ones((4, 4, 3, 3), np.float32)


@pytest.mark.parametrize("op,attrs,inputs,inits,why", [
    ("Sigmoid", None, ("x",), None, "unsupported operator 'Sigmoid'"),
    ("Conv", {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"}, ("x", "w"), {"w": W},
     "auto_pad"),
    ("Conv", {"kernel_shape": [3, 3]}, ("x", "x"), None, "weights must be constant"),
    ("MaxPool", {"kernel_shape": [2, 2], "ceil_mode": 1}, ("x",), None, "ceil_mode"),
    ("MaxPool", {"kernel_shape": [2, 2], "dilations": [2, 2]}, ("x",), None, "dilation"),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, ("x",), None,
     "count_include_pad"),
    ("Relu", None, ("x",), None, "must follow a Conv"),
    ("Add", None, ("x", "b"), {"b": np.ones(4)}, "bias Add must follow"),
])
def test_refusals_name_the_node(op, attrs, inputs, inits, why):
    model = _one_node_model(op, attrs, inputs, inits)
    with pytest.raises(UnsupportedModel, match=why) as e:
        load_cnn(model)
    assert "'the_node'" in str(e.value)


def test_refusals_of_graphs():
    """A corrupt file gives one line; a non-4-D input and a BatchNormalization after a
    ReLU are refused; nothing is compiled."""
    with pytest.raises(UnsupportedModel, match="not a valid ONNX model"):
        load_cnn(b"\x08\x01garbage")
    with pytest.raises(UnsupportedModel, match=r"FP32 \[N, C, H, W\]"):
        load_cnn(_one_node_model("Relu", in_shape=(1, 16)))
    n = helper.make_node
    nodes = [n("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1] * 4, name="conv"),
             n("Relu", ["c"], ["r"], name="relu"),
             n("BatchNormalization", ["r", "s", "b", "m", "v"], ["y"], name="bn")]
    inits = {"w": W, "s": np.ones(4), "b": np.zeros(4), "m": np.zeros(4), "v": np.ones(4)}
    g = helper.make_graph(nodes, "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, 4, 6, 6))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1, 1, 1])],
                          [onnx.numpy_helper.from_array(np.asarray(v, np.float32), k)
                           for k, v in inits.items()])
    ops = [helper.make_opsetid("", 17)]
    model = helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
    with pytest.raises(UnsupportedModel, match="BatchNormalization must follow a Conv|"
                                               "must directly follow a Conv|must follow"):
        load_cnn(model)


def test_cnn_demo_golden_quick(capsys):
    """``python -m sim.compiler.cnn_demo --backend golden`` (the CNN part of ``make
    demo``) on 30 test images after 3 epochs: it checks itself (exit status 0: the
    run's DRAM equals the ISS's, accuracy equal to onnxruntime's)."""
    from sim.compiler.cnn_demo import main
    assert main(["--backend", "golden", "--config", "4x4-fp", "--epochs", "3",
                 "--test-images", "30", "--rtl-images", "2"]) == 0
    out = capsys.readouterr().out
    assert "onnxruntime (FP32), 30 test images" in out and "equal to the ISS" in out
