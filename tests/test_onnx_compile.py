"""ONNX models compiled for ncore and run on the golden model, against onnxruntime.

* **Float models** (run as BF16 or FP16 with FP32 accumulation): ncore's output must be
  within an error bound derived from the formats' rounding, propagated layer by layer
  in float64 (:func:`float_error_bound`), everywhere; and the median error must be
  below 4 units of the 16-bit format relative to the median output (the bound is
  rigorous but loose for wide layers; a wrong transpose, bias or ReLU fails both).
* **QDQ INT8 models**: layer by layer, ncore is fed onnxruntime's own input codes for
  the layer and must give onnxruntime's output codes exactly, except where the exact
  real value lies within the conventions' difference of a rounding boundary
  (documented in docs/compiler.md): ncore's requantiser rounds ties away from zero
  with a 15-bit multiplier, onnxruntime computes in FP32 and rounds ties to even.
  There the codes may differ by one. With power-of-two scales the multiplier is exact
  and only true ties may differ.
"""

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from hdl.config import CoreConfig
from sim.compiler.lower import compile_net, requant_params, run_compiled
from sim.compiler.onnx_build import mlp_float, mlp_qdq, quantize_mlp
from sim.compiler.onnx_front import UnsupportedModel, load_onnx

FLT = CoreConfig(rows=4, cols=4, dtypes=("int8", "bf16", "fp16"))
FLT8 = CoreConfig(rows=8, cols=8, dtypes=("int8", "bf16", "fp16"))
INT = CoreConfig(rows=8, cols=8)
UNIT = {"bf16": 2.0 ** -8, "fp16": 2.0 ** -11}      # unit roundoff
U32 = 2.0 ** -24


def session(model, extra_outputs=(), elem=onnx.TensorProto.INT8, optimize=False):
    """An onnxruntime CPU session; ``extra_outputs`` (tensors of type ``elem``) become
    graph outputs; graph optimisations off unless ``optimize`` (onnxruntime's default,
    ORT_ENABLE_ALL)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for name in extra_outputs:
        m.graph.output.append(helper.make_tensor_value_info(name, elem, None))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def float_error_bound(net, x, dtype):
    """An upper bound on |ncore - exact| for a float net, per output element.

    Per layer, with ``e`` the bound on the input activations' error and ``u`` the
    16-bit format's unit roundoff: the input (first layer) and the weights are rounded
    to the format (relative ``u`` each), the K products are exact and summed in FP32
    (at most ``K * 2**-24`` relative to the sum of magnitudes, plus one rounding for the
    bias), ReLU does not increase errors and the cast of an intermediate output adds
    ``u`` relative. onnxruntime's own FP32 error (the same FP32 term again) is added."""
    u = UNIT[dtype]
    h = np.abs(np.asarray(x, np.float64))
    e = u * h
    for i, L in enumerate(net.layers):
        aw = np.abs(L.weight.astype(np.float64)) * (1 + u)
        mag = (h + e) @ aw
        y = np.abs(h @ np.abs(L.weight.astype(np.float64)))
        b = 0 if L.bias is None else np.abs(L.bias.astype(np.float64))
        gamma = 2 * L.K * U32 * 1.01
        e = e @ aw + u * (h @ np.abs(L.weight.astype(np.float64))) + gamma * mag \
            + 2 * U32 * (mag + b)
        h = y + b
        if i < len(net.layers) - 1:
            e = e + u * (h + e)
    return e * 1.01 + 1e-30


def random_mlp(rng, dims):
    ws = [(rng.standard_normal((k, n)) / math.sqrt(k)).astype(np.float32)
          for k, n in zip(dims, dims[1:])]
    bs = [rng.standard_normal(n).astype(np.float32) * 0.5 if rng.random() < 0.8 else None
          for n in dims[1:]]
    relus = [i < len(ws) - 1 or bool(rng.random() < 0.3) for i in range(len(ws))]
    return ws, bs, relus


DIMS = [[7, 5], [16, 13, 3], [64, 64, 10], [31, 1, 9], [40, 70, 23, 11]]


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("form", ["matmul_add", "gemm", "gemm_transb"])
@pytest.mark.parametrize("seed", range(5))
def test_float_model_against_onnxruntime(seed, form, dtype):
    rng = np.random.default_rng(seed)
    dims = DIMS[seed]
    ws, bs, relus = random_mlp(rng, dims)
    model = mlp_float(ws, bs, relus, use_gemm=form != "matmul_add",
                      trans_b=form == "gemm_transb")
    net = load_onnx(model)
    batch = int(rng.choice([1, 7, 33, 130]))
    x = rng.standard_normal((batch, dims[0])).astype(np.float32)
    want = session(model).run(None, {"input": x})[0]
    cfg = FLT if seed % 2 else FLT8
    c = compile_net(net, cfg, batch=batch, dtype=dtype, check=True)
    got, _, _ = run_compiled(c, x)
    bound = float_error_bound(net, x, dtype)
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bad = err > bound
    assert not bad.any(), (f"seed {seed}: {bad.sum()} outputs beyond the bound, worst "
                           f"{err[bad].max():.3g} vs bound {bound[bad].min():.3g}")
    # The bound is rigorous but loose for wide layers (sums of magnitudes), so also
    # check the typical error: a few units of the 16-bit format, as rounding gives
    # (a wrong transpose, bias or ReLU gives errors of the order of the outputs)
    typical = np.median(err) / np.median(np.abs(want))
    assert typical < 4 * UNIT[dtype], f"seed {seed}: median relative error {typical:.3g}"


def q_outputs(model):
    """Names of the QuantizeLinear outputs, in order: input codes, then each layer's."""
    return [n.output[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]


def near_boundary(v, v2, eps):
    """True where a rounding boundary (k + 1/2) lies within [min - eps, max + eps]."""
    lo = np.minimum(v, v2) - eps
    hi = np.maximum(v, v2) + eps
    return np.floor(hi - 0.5) >= np.ceil(lo - 0.5)


def _check_qdq_layers(net, model, x, cfg, msg, *, pow2, elem):
    names = q_outputs(model)
    outs = session(model, names, elem).run(names, {"input": x})
    codes = []
    for o in outs:
        o = np.asarray(o)
        codes.append((o.astype(np.int16) - 128).astype(np.int8) if o.dtype == np.uint8
                     else o.astype(np.int8))
    assert len(codes) == len(net.layers) + 1, msg
    flagged = 0
    for i, L in enumerate(net.layers):
        part = compile_net(net, cfg, batch=x.shape[0], layers=(i, i + 1), check=True)
        _, _, dram = run_compiled(part, bits=np.ascontiguousarray(codes[i].T))
        got = part.output_bits(dram).T.astype(np.int64)
        want = codes[i + 1].astype(np.int64)
        qin, oq = net.in_quant(i), L.out_quant
        acc = (codes[i].astype(np.int64) - qin.zero_point) @ L.weight.astype(np.int64)
        if L.bias is not None:
            acc = acc + L.bias
        m = float(np.float32(qin.scale)) * float(np.float32(L.w_scale)) / float(np.float32(oq.scale))
        scale, shift = requant_params(m)
        v = acc * m                                    # the exact real result / out scale
        v2 = acc * (scale / 2.0 ** shift)              # what ncore's multiplier computes
        diff = got != want
        if pow2:
            assert scale / 2.0 ** shift == m
            allowed = (v - np.floor(v)) == 0.5         # exact ties only
        else:
            allowed = near_boundary(v, v2, 1e-5 * (np.abs(v) + 1))
        unexplained = diff & ~allowed
        assert not unexplained.any(), (
            f"{msg}: layer {i}: {unexplained.sum()} codes differ from onnxruntime away "
            f"from rounding boundaries, e.g. ncore {got[unexplained][:4]} ort "
            f"{want[unexplained][:4]}")
        assert (np.abs(got - want)[diff] <= 1).all(), f"{msg}: layer {i}: differ by > 1"
        flagged += int(diff.sum())
    return flagged


def _pow2_net(net):
    """The same net with every scale rounded to a power of two (exact multipliers)."""
    from sim.compiler.net import Quant
    p2 = lambda s: float(2.0 ** round(math.log2(s)))
    for L in net.layers:
        L.w_scale = p2(L.w_scale)
        if L.out_quant is not None:
            L.out_quant = Quant(p2(L.out_quant.scale), L.out_quant.zero_point)
    net.input_quant = Quant(p2(net.input_quant.scale), net.input_quant.zero_point)
    return net


@pytest.mark.parametrize("scales", ["calibrated", "pow2"])
@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("seed", range(4))
def test_qdq_model_against_onnxruntime(seed, act, scales):
    rng = np.random.default_rng(50 + seed)
    dims = DIMS[seed + 1]
    ws, bs, relus = random_mlp(rng, dims)
    calib = rng.standard_normal((200, dims[0])).astype(np.float32)
    qnet = quantize_mlp(ws, bs, relus, calib, uint8_activations=act == "uint8")
    if scales == "pow2":
        qnet = _pow2_net(qnet)
    model = mlp_qdq(qnet, uint8_activations=act == "uint8")
    net = load_onnx(model)
    x = rng.standard_normal((int(rng.choice([3, 40, 300])), dims[0])).astype(np.float32)
    cfg = [INT, FLT][seed % 2]
    _check_qdq_layers(net, model, x, cfg, f"seed {50 + seed} {act} {scales}",
                      pow2=scales == "pow2", elem=onnx.TensorProto.UINT8 if act == "uint8"
                      else onnx.TensorProto.INT8)
    # the whole net, input quantised and output dequantised on the host: with the
    # same codes at every layer (checked above) the outputs agree with onnxruntime
    # except where a boundary case changed a code
    c = compile_net(net, cfg, batch=x.shape[0], check=True)
    got, _, _ = run_compiled(c, x)
    want = session(model).run(None, {"input": x})[0]
    close = np.isclose(got, want, rtol=0, atol=1.01 * net.layers[-1].out_quant.scale)
    assert close.mean() > 0.97, f"seed {50 + seed}: only {close.mean():.3f} within one code"


def test_unsupported_operator_is_refused_by_name():
    x = helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["N", 4])
    g = helper.make_graph([helper.make_node("Sigmoid", ["input"], ["output"], name="sig0")],
                          "g", [x], [y])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedModel, match=r"Sigmoid.*sig0"):
        load_onnx(model)


def test_shape_mismatch_is_refused():
    rng = np.random.default_rng(0)
    ws = [rng.standard_normal((6, 5)).astype(np.float32),
          rng.standard_normal((4, 3)).astype(np.float32)]
    with pytest.raises(Exception, match="(?i)shape|mismatch|incompatible|dimension"):
        model = mlp_float(ws, [None, None], [True, False])
        load_onnx(model)
