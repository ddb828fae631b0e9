"""Pooling, residual additions and grouped (depthwise) convolutions on the core
(sim/compiler/pool.py, sim/compiler/conv.py; issue 27), on the golden backend, against
independent references: the definitions written out here or in the modules'
``*_reference`` functions (not the lowering), and onnxruntime. Every program is
race-checked. The RTL runs are in test_rtl_conv.py."""

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from hdl.config import named_config
from sim.compiler.conv import ConvError, Planes, conv2d, conv_reference
from sim.compiler.pool import (PoolLayout, add2d, add_params, avgpool2d, maxpool2d,
                               maxpool_program, maxpool_reference)

FTYPE = {"bf16": ml_dtypes.bfloat16, "fp16": np.float16}

# B, C, H, W, kernel, stride, pads (top, left, bottom, right)
POOLS = [
    (1, 8, 8, 8, (2, 2), (2, 2), (0, 0, 0, 0)),      # LeNet-style 2x2/2
    (2, 11, 9, 9, (3, 3), (2, 2), (1, 1, 1, 1)),     # ResNet-style 3x3/2 pad 1, two tiles
    (1, 3, 7, 10, (3, 2), (1, 3), (0, 1, 2, 0)),     # asymmetric window, stride and pads
    (1, 5, 6, 6, (1, 1), (1, 1), (0, 0, 0, 0)),      # 1x1: a copy
    (1, 4, 16, 16, (4, 4), (4, 4), (0, 0, 0, 0)),    # 4x4/4
]
IDS = ["2x2s2", "3x3s2p1", "3x2s13", "1x1", "4x4s4"]


def _ort(node_type, inputs, outputs_shape=None, **attrs):
    names = [f"i{k}" for k in range(len(inputs))]
    node = helper.make_node(node_type, names, ["y"], **attrs)
    g = helper.make_graph([node], "g",
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, v.shape)
                           for n, v in zip(names, inputs)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    ops = [helper.make_opsetid("", 17)]
    model = helper.make_model(g, opset_imports=ops,
                              ir_version=helper.find_min_ir_version_for(ops))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {n: v.astype(np.float32) for n, v in zip(names, inputs)})[0]


@pytest.mark.parametrize("case", POOLS, ids=IDS)
@pytest.mark.parametrize("config", ["default", "4x4-fp"])
def test_maxpool_int8_exact(case, config):
    B, C, H, W, k, s, pads = case
    seed = (hash(case) + len(config)) % 10_000
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (B, C, H, W)).astype(np.int8)
    x[0, 0, 0, :] = -128          # windows whose largest value is the lowest code
    y = maxpool2d(x, k, stride=s, pads=pads, config=config, check_races=True)
    assert np.array_equal(y, maxpool_reference(x, k, s, pads)), f"seed {seed}"


@pytest.mark.parametrize("case", POOLS[:3], ids=IDS[:3])
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_maxpool_float_exact_and_onnxruntime(case, dtype):
    """Float max pools select one input, so they are exact: equal to the reference and to
    onnxruntime's MaxPool bit for bit, with -0/+0, infinities and subnormals among the
    inputs (padding -Inf)."""
    B, C, H, W, k, s, pads = case
    rng = np.random.default_rng(11)
    t = FTYPE[dtype]
    x = rng.standard_normal((B, C, H, W)).astype(t)
    flat = x.reshape(-1)
    flat[:6] = np.array([0.0, -0.0, np.inf, -np.inf, 1e-40 if dtype == "bf16" else 1e-7,
                         -3.0], dtype=np.float32).astype(t)
    y = maxpool2d(x.view(np.uint16), k, dtype, stride=s, pads=pads, config="4x4-fp",
                  check_races=True).view(t).astype(np.float32)
    want = maxpool_reference(x.astype(np.float32), k, s, pads)
    assert np.array_equal(y, want)
    ref = _ort("MaxPool", [x.astype(np.float32)], kernel_shape=list(k), strides=list(s),
               pads=list(pads))
    assert np.array_equal(y, ref)


def test_maxpool_blocking_and_refusals():
    """Blocks of 1 and 3 output rows give the same result; padding as large as the
    window, a stride past the ACT's 3-bit skip and a wrong output shape are refused."""
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 9, 10, 10)).astype(np.int8)
    want = maxpool_reference(x, (3, 3), (2, 2), (1, 1, 1, 1))
    for rows in (1, 3):
        assert np.array_equal(maxpool2d(x, (3, 3), stride=(2, 2), pads=(1, 1, 1, 1),
                                        rows=rows, check_races=True), want)
    cfg = named_config("default")
    X = Planes(0, 1, 4, 8, 8, 1, (2, 2, 2, 2))
    with pytest.raises(ConvError, match="as large as the window"):
        maxpool_program(cfg, PoolLayout(X, Planes(4096, 1, 4, 11, 11, 1), 2, 2, "int8"))
    X = Planes(0, 1, 4, 8, 8, 1)
    with pytest.raises(ConvError, match="outside 1..8"):
        maxpool_program(cfg, PoolLayout(X, Planes(4096, 1, 4, 1, 1, 1), 1, 1, "int8", (9, 9)))
    with pytest.raises(ConvError, match="the pool gives 1x4x4x4"):
        maxpool_program(cfg, PoolLayout(X, Planes(4096, 1, 4, 3, 3, 1), 2, 2, "int8", (2, 2)))
    with pytest.raises(ConvError, match="no float types"):
        maxpool_program(cfg, PoolLayout(Planes(0, 1, 4, 8, 8, 2), Planes(4096, 1, 4, 4, 4, 2),
                                        2, 2, "bf16", (2, 2)))


# ---- grouped and depthwise convolutions --------------------------------------------------

# B, C, F, groups, H, W, K, stride, pads
GROUPED = [
    (1, 16, 16, 16, 8, 8, 3, 1, 1),      # depthwise 3x3, two tiles of the 8x8 array
    (2, 12, 12, 12, 9, 7, 3, 2, 1),      # depthwise 3x3/2
    (1, 12, 24, 3, 6, 6, 3, 1, 1),       # 3 groups of 4 -> 8
    (1, 16, 8, 2, 5, 5, 1, 1, 0),        # 2 groups, pointwise, a tile spanning both groups
    (1, 6, 6, 6, 9, 9, 5, 1, 2),         # depthwise 5x5
]


@pytest.mark.parametrize("case", GROUPED)
def test_grouped_conv_int8_exact(case):
    B, C, F, g, H, W, K, s, p = case
    rng = np.random.default_rng(sum(case))
    x = rng.integers(-128, 128, (B, C, H, W)).astype(np.int8)
    w = rng.integers(-128, 128, (F, C // g, K, K)).astype(np.int8)
    y = conv2d(x, w, pads=(p,) * 4, stride=(s, s), groups=g, check_races=True)
    assert np.array_equal(y, conv_reference(x, w, (p,) * 4, (1, 1), (s, s), g))


def test_depthwise_float_against_onnxruntime():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 6, 7, 7)).astype(ml_dtypes.bfloat16).astype(np.float32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(ml_dtypes.bfloat16).astype(np.float32)
    y = conv2d(x, w, "bf16", pads=(1, 1, 1, 1), groups=6, config="4x4-fp", check_races=True)
    wt = onnx.numpy_helper.from_array(w, "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4,
                            group=6)
    g = helper.make_graph([node], "dw",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [wt])
    ops = [helper.make_opsetid("", 17)]
    model = helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
    ref = ort.InferenceSession(model.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_groups_refused_when_they_do_not_divide():
    x = np.zeros((1, 8, 4, 4), np.int8)
    with pytest.raises(ConvError, match="groups=4 must divide"):
        conv2d(x, np.zeros((6, 2, 1, 1), np.int8), groups=4)
    with pytest.raises(ValueError, match="shape mismatch"):
        conv2d(x, np.zeros((8, 3, 1, 1), np.int8), groups=4)


# ---- average pooling ----------------------------------------------------------------------

def test_avgpool_int8_against_integer_definition():
    """``requant(sum(x - zp_in), scale, shift, zp)`` over each window, written out with
    Python integers (ties away from zero); 2x2/2 and a global 4x4 pool."""
    rng = np.random.default_rng(21)
    x = rng.integers(-128, 128, (2, 10, 4, 4)).astype(np.int8)
    for k, s, scale, shift in (((2, 2), (2, 2), 1, 2), ((4, 4), (1, 1), 17, 8)):
        y = avgpool2d(x, k, stride=s, scale=scale, shift=shift, zp=-3, zp_in=5,
                      check_races=True)
        OH, OW = (4 - k[0]) // s[0] + 1, (4 - k[1]) // s[1] + 1
        assert y.shape == (2, 10, OH, OW)
        for b, c, i, j in np.ndindex(y.shape):
            win = x[b, c, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].astype(int) - 5
            prod = int(win.sum()) * scale
            r = (abs(prod) + (1 << (shift - 1))) >> shift
            want = min(max((r if prod >= 0 else -r) - 3, -128), 127)
            assert y[b, c, i, j] == want, (b, c, i, j)


def test_avgpool_float_against_onnxruntime():
    """BF16 2x2/2 (weights 1/4: exact) and a global 3x3 (weights bf16(1/9)): within the
    float rounding of onnxruntime's AveragePool / GlobalAveragePool."""
    rng = np.random.default_rng(22)
    x = rng.standard_normal((1, 5, 6, 6)).astype(ml_dtypes.bfloat16)
    xf = x.astype(np.float32)
    y = avgpool2d(x.view(np.uint16), (2, 2), "bf16", stride=(2, 2), config="4x4-fp",
                  check_races=True).view(ml_dtypes.bfloat16).astype(np.float32)
    ref = _ort("AveragePool", [xf], kernel_shape=[2, 2], strides=[2, 2])
    # the FP32 sum of exact quarters, rounded once to BF16
    assert np.array_equal(y, ref.astype(ml_dtypes.bfloat16).astype(np.float32))
    x3 = xf[:, :, :3, :3]
    y = avgpool2d(x3.astype(ml_dtypes.bfloat16).view(np.uint16), (3, 3), "bf16",
                  config="4x4-fp").view(ml_dtypes.bfloat16).astype(np.float32)
    ref = _ort("GlobalAveragePool", [x3])
    assert np.allclose(y, ref, rtol=2 ** -7, atol=1e-3)


# ---- residual add -------------------------------------------------------------------------

def test_add_int8_two_scales():
    """INT8 ``Y = A + B`` with its own scale and zero point per operand: exactly the
    integer definition (16-bit multipliers from :func:`add_params`), and within one
    code of the real-number result onnxruntime's QLinearAdd rounds (ties to even)."""
    rng = np.random.default_rng(31)
    a = rng.integers(-128, 128, (2, 11, 5, 7)).astype(np.int8)
    b = rng.integers(-128, 128, (2, 11, 5, 7)).astype(np.int8)
    a[0, 0, 0, :2], b[0, 0, 0, :2] = [127, -128], [127, -128]      # both saturations
    sa, sb, sy, za, zb, zy = 0.031, 0.047, 0.06, 4, -9, -2
    s1, s2, sh = add_params(sa, sb, sy)
    y = add2d(a, b, scale=s1, scale2=s2, shift=sh, zp=zy, zp1=za, zp2=zb, check_races=True)
    prod = (a.astype(np.int64) - za) * s1 + (b.astype(np.int64) - zb) * s2
    r = (np.abs(prod) + (1 << (sh - 1))) >> sh
    want = np.clip(np.where(prod < 0, -r, r) + zy, -128, 127)
    assert np.array_equal(y, want)
    af, bf = a.astype(np.float64), b.astype(np.float64)
    real = np.clip(np.rint(((af - za) * sa + (bf - zb) * sb) / sy) + zy, -128, 127)
    assert np.abs(y.astype(int) - real).max() <= 1


def test_add_float_one_rounding():
    """BF16 + BF16: the FP32 sum (exact here for most pairs, one RNE rounding in general)
    cast to BF16 once; equal to onnxruntime's float Add rounded to BF16."""
    rng = np.random.default_rng(32)
    a = rng.standard_normal((1, 6, 4, 5)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((1, 6, 4, 5)).astype(ml_dtypes.bfloat16)
    y = add2d(a.view(np.uint16), b.view(np.uint16), "bf16", config="4x4-fp",
              check_races=True).view(ml_dtypes.bfloat16)
    ref = _ort("Add", [a.astype(np.float32), b.astype(np.float32)])
    assert np.array_equal(y.astype(np.float32), ref.astype(ml_dtypes.bfloat16).astype(np.float32))


def test_add_params():
    s1, s2, sh = add_params(0.5, 0.25, 1.0)
    assert (s1, s2) == (1 << (sh - 1), 1 << (sh - 2)) and max(s1, s2) <= 32767
    with pytest.raises(ConvError, match="does not fit"):
        add_params(1e6, 1.0, 1.0)
