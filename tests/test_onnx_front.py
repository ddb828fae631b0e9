"""The ONNX front end (sim/compiler/onnx_front.py) and the model builders (sim/compiler/onnx_build.py).

* Round trips: float and QDQ MLPs built by sim.compiler.onnx_build load back into exactly the
  Net they were built from.
* onnxruntime agreement: float nets match ORT within FP32 tolerance. QDQ nets are
  checked against an independent NumPy model of ORT's QDQ semantics (DequantizeLinear
  ``(q - zp) * s`` in FP32, FP32 MatMul and bias add, ReLU, QuantizeLinear
  ``saturate(rint(v / s) + zp)`` with the FP32 division and round half to even), layer
  by layer on ORT's own intermediate INT8 tensors, with ``graph_optimization_level =
  ORT_DISABLE_ALL`` so ORT runs the QDQ ops literally. Every quantised code must match
  exactly, except where the FP32 rounding error bound of the MatMul (whose summation
  order ORT does not specify) straddles a rounding boundary; there ORT may be off by
  one. With power-of-two scales all FP32 arithmetic is exact and the whole net must
  match exactly, ties included.
* Errors: unsupported operators and patterns raise UnsupportedModel naming the node.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sim.compiler.net import Layer, Net, Quant, dequantize, quantize_input
from sim.compiler.onnx_build import mlp_float, mlp_qdq, quantize_mlp
from sim.compiler.onnx_front import UnsupportedModel, load_onnx
from ort_oracle import W_SAFE, calibration_reader

DIMS = (1, 2, 3, 5, 7, 8, 13, 16, 31, 64)
SEEDS = list(range(10))
U = 2.0 ** -24                                    # FP32 unit roundoff


def _session(model, *, optimize=False, extra_outputs=()):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for name, elem in extra_outputs:
        m.graph.output.append(helper.make_tensor_value_info(name, elem, None))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(m.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def _dims(rng):
    return [int(d) for d in rng.choice(DIMS, int(rng.integers(2, 5)))]


def _float_mlp(rng):
    dims = _dims(rng)
    ws = [rng.standard_normal((k, n)).astype(np.float32) for k, n in zip(dims, dims[1:])]
    bs = [rng.standard_normal(n).astype(np.float32) if rng.random() < 0.7 else None
          for n in dims[1:]]
    return ws, bs, [bool(rng.random() < 0.6) for _ in ws]


def _pow2(s):
    return float(2.0 ** np.round(np.log2(s)))


def _qnet(rng, scales="random", w_max=None):
    """A random quantised Net. ``scales``: "random", "pow2" (every FP32 step exact) or
    "near_tie" (decimal scales with in_scale*w_scale/out_scale ~ 1/2: many near-ties).
    ``w_max``: weights in ``-w_max..w_max`` instead of the whole INT8 range."""
    dims = _dims(rng)
    s_in = float(np.float32(rng.uniform(0.005, 0.2)))
    s_in = _pow2(s_in) if scales == "pow2" else s_in
    net = Net([], input_quant=Quant(s_in, int(rng.integers(-128, 128))))
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        lo, hi = (-128, 127) if w_max is None else (-w_max, w_max)
        w = rng.integers(lo, hi + 1, (k, n)).astype(np.int8)
        b = rng.integers(-2**16, 2**16, n).astype(np.int32) if rng.random() < 0.7 else None
        s_w = float(np.float32(rng.uniform(0.001, 0.05)))
        s_out = s_in * s_w * np.sqrt(k) * 70 * 70 / 60 * rng.uniform(0.5, 2)
        if scales == "pow2":
            s_w, s_out = _pow2(s_w), _pow2(s_out)
        elif scales == "near_tie":
            s_w, s_out = float(np.float32(0.3)), 2 * s_in * 0.3 * (1 + 1e-7)
        zp = int(rng.integers(-128, 128)) if rng.random() < 0.5 else int(rng.integers(-10, 10))
        q = Quant(float(np.float32(s_out)), zp)
        net.layers.append(Layer(f"matmul{i}", w, b, bool(rng.random() < 0.5), s_w, q))
        s_in = q.scale
    return net.check()


def _assert_same_net(got: Net, want: Net, msg):
    assert got.input_quant == want.input_quant, msg
    assert len(got.layers) == len(want.layers), msg
    for i, (g, w) in enumerate(zip(got.layers, want.layers)):
        m = f"{msg}, layer {i}"
        assert g.weight.dtype == w.weight.dtype and np.array_equal(g.weight, w.weight), m
        if w.bias is None:
            assert g.bias is None, m
        else:
            assert g.bias.dtype == w.bias.dtype and np.array_equal(g.bias, w.bias), m
        assert (g.relu, g.w_scale, g.out_quant) == (w.relu, w.w_scale, w.out_quant), m


# -- float models ---------------------------------------------------------------------------

FORMS = {"matmul": {}, "gemm": {"use_gemm": True}, "gemm_transB": {"use_gemm": True,
                                                                   "trans_b": True}}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_float_round_trip_and_ort(seed, form):
    rng = np.random.default_rng(seed)
    ws, bs, relus = _float_mlp(rng)
    batch = int(rng.choice([1, 3, 17]))
    model = mlp_float(ws, bs, relus, batch=batch if seed % 2 else None, **FORMS[form])
    net = load_onnx(model.SerializeToString() if seed % 3 == 0 else model)
    msg = f"seed {seed}, {form}"
    want = Net([Layer("", w, b, r) for w, b, r in zip(ws, bs, relus)])
    assert not net.quantized and net.notes == [], msg
    assert (net.input_name, net.output_name) == ("input", "output"), msg
    _assert_same_net(net, want, msg)

    x = rng.standard_normal((batch, ws[0].shape[0])).astype(np.float32)
    y = x
    for L in net.layers:
        y = y @ L.weight + (L.bias if L.bias is not None else np.float32(0))
        y = np.maximum(y, np.float32(0)) if L.relu else y
    (got,) = _session(model).run(None, {"input": x})
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, y, rtol=1e-5, atol=1e-5 * np.abs(y).max(), err_msg=msg)


def test_load_from_path(tmp_path):
    rng = np.random.default_rng(0)
    ws, bs, relus = _float_mlp(rng)
    path = tmp_path / "m.onnx"
    onnx.save(mlp_float(ws, bs, relus), path)
    for p in (path, str(path)):
        assert len(load_onnx(p).layers) == len(ws)


# -- QDQ models: round trips ---------------------------------------------------------------

@pytest.mark.parametrize("end", ["quantised", "float"])
@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_qdq_round_trip(seed, act, end):
    rng = np.random.default_rng(seed)
    net = _qnet(rng)
    if end == "float":
        net.layers[-1].out_quant = None
    got = load_onnx(mlp_qdq(net, uint8_activations=act == "uint8"))
    assert got.quantized and got.notes == [], f"seed {seed}"
    assert [L.name for L in got.layers] == [f"matmul{i}" for i in range(len(net.layers))]
    _assert_same_net(got, net, f"seed {seed}, {act}, {end}")


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_quantize_mlp(seed, act):
    """Post-training quantisation: the documented scales, a lossless round trip through
    ONNX, and ORT's QDQ model close to the float model."""
    rng = np.random.default_rng(seed)
    ws, bs, relus = _float_mlp(rng)
    x = (rng.standard_normal((64, ws[0].shape[0])) * rng.uniform(0.1, 10)).astype(np.float32)
    u8 = act == "uint8"
    net = quantize_mlp(ws, bs, relus, x, uint8_activations=u8)
    msg = f"seed {seed}, {act}"
    for L, w, r in zip(net.layers, ws, relus):
        assert L.w_scale == np.float32(np.abs(w).max() / 127), msg
        assert np.abs(L.weight).max() == 127 and L.out_quant is not None, msg
        if not u8:
            assert L.out_quant.zero_point == (-128 if r else 0), msg
    c = quantize_input(x, net.input_quant)            # the calibration range is used
    if u8:
        assert c.min() <= -127 and c.max() >= 126, msg
    else:
        assert c.min() >= -127 and np.abs(c).max() >= 126, msg
    _assert_same_net(load_onnx(mlp_qdq(net, uint8_activations=u8)), net, msg)

    (yq,) = _session(mlp_qdq(net, uint8_activations=u8)).run(None, {"input": x})
    (yf,) = _session(mlp_float(ws, bs, relus)).run(None, {"input": x})
    err = np.linalg.norm(yq - yf) / max(np.linalg.norm(yf), 1e-6)
    assert err < 0.05, f"{msg}: relative error {err:.3g} of the quantised model"


def test_qdq_float_bias_is_quantised_with_a_note():
    rng = np.random.default_rng(7)
    net = _qnet(rng)
    model = mlp_qdq(net)
    L = net.layers[0]
    if L.bias is None:
        L.bias = np.arange(L.N, dtype=np.int32) - 3
        model = mlp_qdq(net)
    s = np.float32(net.input_quant.scale) * np.float32(L.w_scale)
    fb = (L.bias.astype(np.float64) * s + 0.3 * s).astype(np.float32)   # off the grid
    g = model.graph
    g.node.remove(next(n for n in g.node if n.name == "dequant_b0"))
    g.initializer.append(numpy_helper.from_array(fb, "b0"))
    got = load_onnx(model)
    _assert_same_net(got, net, "seed 7")
    assert len(got.notes) == 1 and "FP32 bias" in got.notes[0] and "matmul0" in got.notes[0]


# -- QDQ models against onnxruntime ----------------------------------------------------------

def _qdq_reference(L: Layer, q_in, qin: Quant):
    """ORT's QDQ semantics for one layer from its input codes (Net's INT8 convention).

    Returns the FP32 NumPy result, the same in float64 from the same FP32 operands, and
    a bound on the FP32 evaluation error of any summation order.
    """
    x, w = dequantize(q_in, qin), L.weight.astype(np.float32) * np.float32(L.w_scale)
    b = np.zeros(L.N, np.float32)
    if L.bias is not None:
        b = L.bias.astype(np.float32) * (np.float32(qin.scale) * np.float32(L.w_scale))
    v32 = x @ w + b
    v64 = x.astype(np.float64) @ w.astype(np.float64) + b.astype(np.float64)
    err = 2 * (L.K + 2) * U * (np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64))
                               + np.abs(b.astype(np.float64)))
    if L.relu:
        v32, v64 = np.maximum(v32, np.float32(0)), np.maximum(v64, 0)
    return v32, v64, err


def _quantize_exact(v64, err, q: Quant):
    """The INT8 codes of the exact values and where an error up to ``err`` (plus the
    FP32 division's) could move the rounding: the distance to a half-integer is small."""
    r = v64 / q.scale
    codes = np.clip(np.rint(r) + q.zero_point, -128, 127).astype(np.int64)
    margin = (err / q.scale + 2 * U * np.abs(r)) * 1.01
    return codes, np.abs(np.abs(r - np.floor(r)) - 0.5) <= margin


def _check_qdq_against_ort(net, model, x, msg, *, optimize=False, exact=False):
    """Run ORT with every QuantizeLinear output as an extra graph output and check each
    layer on ORT's own input codes. Returns (codes compared, near-ties, codes differing
    from the plain FP32 NumPy reference)."""
    qnodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    zp_type = {t.name: t.data_type for t in model.graph.initializer}
    extra = [] if optimize else [(n.output[0], zp_type[n.input[2]]) for n in qnodes]
    outs = _session(model, optimize=optimize, extra_outputs=extra).run(None, {"input": x})
    y, codes = outs[0], [o.astype(np.int64) - (128 if o.dtype == np.uint8 else 0)
                         for o in outs[1:]]
    assert not codes or np.array_equal(codes[0], quantize_input(x, net.input_quant)), msg
    q_in, stats = quantize_input(x, net.input_quant), [0, 0, 0]
    for i, L in enumerate(net.layers):
        m = f"{msg}, layer {i}"
        v32, v64, err = _qdq_reference(L, q_in, net.in_quant(i))
        if L.out_quant is None:
            assert np.all(np.abs(y.astype(np.float64) - v64) <= err + U * np.abs(v64)), m
            np.testing.assert_allclose(y, v32, rtol=1e-5, atol=1e-5 * np.abs(v32).max(),
                                       err_msg=m)
            return stats
        want, tie = _quantize_exact(v64, err, L.out_quant)
        if i + 1 < len(codes):
            got = codes[i + 1]
        elif i == len(net.layers) - 1:      # the output: ORT's DequantizeLinear is exact
            got = np.rint(y / np.float32(L.out_quant.scale)).astype(np.int64)
            got += L.out_quant.zero_point
            assert np.array_equal(dequantize(got, L.out_quant), y), m
        else:
            raise AssertionError(f"{m}: no ORT output for this layer")
        ref32 = quantize_input(v32, L.out_quant)
        if exact:
            assert np.array_equal(got, want), f"{m}: {np.sum(got != want)} codes differ"
            assert np.array_equal(got, ref32), m
        else:
            assert np.array_equal(got[~tie], want[~tie]), \
                f"{m}: {np.sum(got[~tie] != want[~tie])} codes differ away from ties"
            assert np.all(np.abs(got - want) <= 1), m
        stats[0] += got.size
        stats[1] += int(tie.sum())
        stats[2] += int(np.sum(got != ref32))
        q_in = got.astype(np.int8)
    return stats


SCALES = ["random", "pow2", "near_tie"]


@pytest.mark.parametrize("scales", SCALES)
@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_qdq_against_ort(seed, act, scales):
    rng = np.random.default_rng(seed)
    net = _qnet(rng, scales)
    if seed % 3 == 2:
        net.layers[-1].out_quant = None
    model = mlp_qdq(net, uint8_activations=act == "uint8")
    batch = int(rng.choice([1, 5, 64]))
    codes = rng.integers(-128, 128, (batch, net.in_features))
    x = dequantize(codes, net.input_quant)
    # also values off the grid and out of range, to exercise rounding and saturation
    x[::2] = (x[::2] * np.float32(1.7) + np.float32(0.37 * net.input_quant.scale))
    msg = f"seed {seed}, {act}, {scales} scales"
    n, ties, off32 = _check_qdq_against_ort(net, model, x, msg, exact=scales == "pow2")
    print(f"{msg}: {n} codes, {ties} near rounding ties, {off32} differ from NumPy FP32")


@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_qdq_single_layer_optimised_ort(seed):
    """With ORT's graph optimisations (QDQ fused to QGemm/QLinearMatMul: an integer
    accumulator), one layer still agrees away from the near-ties. ORT runs these with
    UINT8 activations (on x86 it converts INT8 ones), so the weights are 7-bit: exact on
    every x86 kernel (tests/ort_oracle.py)."""
    rng = np.random.default_rng(seed)
    net = _qnet(rng, SCALES[seed % 3], w_max=W_SAFE)
    net.layers[1:] = []
    model = mlp_qdq(net, uint8_activations=bool(seed % 2))
    x = dequantize(rng.integers(-128, 128, (32, net.in_features)), net.input_quant)
    _check_qdq_against_ort(net, model, x, f"seed {seed}, optimised", optimize=True)


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("form", ["gemm", "matmul"])
def test_ort_quantize_static(tmp_path, form, act):
    """Models from ONNX Runtime's own quantiser (QDQ format, per-tensor, MinMax): Gemm
    layers load (the quantiser drops a ReLU its output range makes redundant) and agree
    with ORT; MatMul + Add gets a requantisation between the two, which is refused."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    rng = np.random.default_rng(11)
    ws, bs, relus = [_f32(8, 16, seed=1), _f32(16, 4, seed=2)], [_f32(16), _f32(4)], \
        [True, False]
    x = rng.standard_normal((64, 8)).astype(np.float32)

    onnx.save(mlp_float(ws, bs, relus, use_gemm=form == "gemm"), tmp_path / "f.onnx")
    quantize_static(tmp_path / "f.onnx", tmp_path / "q.onnx", calibration_reader(x),
                    quant_format=QuantFormat.QDQ, per_channel=False,
                    activation_type=QuantType.QInt8 if act == "int8" else QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    model = onnx.load(tmp_path / "q.onnx")
    if form == "matmul":
        with pytest.raises(UnsupportedModel, match="Add node 'add0'"):
            load_onnx(model)
        return
    net = load_onnx(model)
    assert net.quantized and [L.name for L in net.layers] == ["gemm0", "gemm1"]
    assert net.layers[0].out_quant.zero_point == -128        # ReLU folded into Q
    _check_qdq_against_ort(net, model, x, f"quantize_static {act}")


# -- errors ---------------------------------------------------------------------------------

def _f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _model(nodes, inits, *, inputs=(("x", 4),), output="y", out_type=TensorProto.FLOAT):
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", k]) for n, k in inputs]
    g = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info(output, out_type,
                                                                           ["N", "M"])],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", 17)]
    return helper.make_model(g, opset_imports=ops,
                             ir_version=helper.find_min_ir_version_for(ops))


def _node(op, ins, outs, name, **attrs):
    return helper.make_node(op, ins, outs, name=name, **attrs)


def _qdq_model():
    """A 2-layer QDQ model (4 -> 5 -> 3, biases, ReLU in between) to break."""
    ws, bs = [_f32(4, 5, seed=1), _f32(5, 3, seed=2)], [_f32(5, seed=3), _f32(3, seed=4)]
    return mlp_qdq(quantize_mlp(ws, bs, [True, False], _f32(16, 4, seed=5)))


def _edit(fn):
    model = _qdq_model()
    fn(model.graph, {n.name: n for n in model.graph.node},
       {t.name: t for t in model.graph.initializer})
    return model


def _set_init(inits, name, value):
    inits[name].CopyFrom(numpy_helper.from_array(np.asarray(value), name))


def _per_channel(g, nodes, inits):
    _set_init(inits, "w0_scale", np.full(5, 0.01, np.float32))
    _set_init(inits, "w0_zp", np.zeros(5, np.int8))
    nodes["dequant_w0"].attribute.append(helper.make_attribute("axis", 1))


def _unquantise_layer0(g, nodes, inits):
    nodes["matmul1"].input[0] = nodes["quant_act0"].input[0]
    g.node.remove(nodes["quant_act0"])
    g.node.remove(nodes["dequant_act0"])


def _other_dq_scale(g, nodes, inits):
    s = numpy_helper.to_array(inits["act0_scale"])
    g.initializer.append(numpy_helper.from_array(np.float32(s * 2), "other_scale"))
    nodes["dequant_act0"].input[1] = "other_scale"


def _bias_scale(g, nodes, inits):
    _set_init(inits, "b0_scale", numpy_helper.to_array(inits["b0_scale"]) * np.float32(1.001))


def _int8_output(g, nodes, inits):
    g.node.remove(nodes["dequant_act1"])
    nodes["quant_act1"].output[0] = "output"
    g.output[0].type.tensor_type.elem_type = TensorProto.INT8


def _rank3():
    m = _model([_node("MatMul", ["x", "w"], ["y"], "mm0")], W43)
    m.graph.input[0].type.tensor_type.shape.dim.add().dim_value = 2
    return m


W43, W45, W63 = {"w": _f32(4, 3)}, {"w": _f32(4, 5)}, {"w2": _f32(6, 3)}
ERRORS = {
    "sigmoid": (lambda: _model([_node("MatMul", ["x", "w"], ["h"], "mm0"),
                                _node("Sigmoid", ["h"], ["y"], "sig0")], W43),
                ["unsupported operator 'Sigmoid' (node 'sig0')"]),
    "conv": (lambda: _model([_node("Conv", ["x", "w"], ["y"], "conv1")],
                            {"w": _f32(3, 4, 1, 1)}),
             ["unsupported operator 'Conv' (node 'conv1')"]),
    "gemm_alpha": (lambda: _model([_node("Gemm", ["x", "w"], ["y"], "gemm0", alpha=2.0)],
                                  W43), ["alpha", "gemm0"]),
    "gemm_beta": (lambda: _model([_node("Gemm", ["x", "w", "c"], ["y"], "gemm0", beta=0.5)],
                                 {**W43, "c": _f32(3)}), ["beta", "gemm0"]),
    "gemm_transA": (lambda: _model([_node("Gemm", ["x", "w"], ["y"], "gemm0", transA=1)],
                                   {"w": _f32(3, 3)}, inputs=[("x", 3)]),
                    ["transA", "gemm0"]),
    "matmul_two_activations": (lambda: _model([_node("MatMul", ["x", "x"], ["y"], "mm0")],
                                              {}), ["MatMul", "mm0", "two activations"]),
    "add_two_activations": (lambda: _model([_node("MatMul", ["x", "w"], ["h"], "mm0"),
                                            _node("Relu", ["h"], ["r"], "relu0"),
                                            _node("Add", ["h", "r"], ["y"], "add0")], W43),
                            ["add0"]),
    "weight_on_the_left": (lambda: _model([_node("MatMul", ["w", "x"], ["y"], "mm0")],
                                          {"w": _f32(4, 4)}), ["mm0", "left"]),
    "branching": (lambda: _model([_node("MatMul", ["x", "w"], ["h"], "mm0"),
                                  _node("MatMul", ["h", "w2"], ["y"], "mm1"),
                                  _node("Relu", ["h"], ["z"], "relu_side")],
                                 {"w": _f32(4, 6), **W63}), ["branching", "'h'", "relu_side"]),
    "shape_between_layers": (lambda: _model([_node("MatMul", ["x", "w"], ["h"], "mm0"),
                                             _node("MatMul", ["h", "w2"], ["y"], "mm1")],
                                            {**W45, **W63}), ["shape mismatch", "mm1"]),
    "shape_at_input": (lambda: _model([_node("MatMul", ["x", "w2"], ["y"], "mm0")], W63),
                       ["shape mismatch", "mm0", "6", "4"]),
    "bias_shape": (lambda: _model([_node("MatMul", ["x", "w"], ["h"], "mm0"),
                                   _node("Add", ["h", "b"], ["y"], "add0")],
                                  {**W43, "b": _f32(4)}), ["bias", "add0"]),
    "relu_on_input": (lambda: _model([_node("Relu", ["x"], ["r"], "relu_in"),
                                      _node("MatMul", ["r", "w"], ["y"], "mm0")], W43),
                      ["Relu", "relu_in", "graph input"]),
    "relu_then_add": (lambda: _model([_node("MatMul", ["x", "w"], ["h"], "mm0"),
                                      _node("Relu", ["h"], ["r"], "relu0"),
                                      _node("Add", ["r", "b"], ["y"], "add0")],
                                     {**W43, "b": _f32(3)}), ["Add", "add0"]),
    "cast_to_int": (lambda: _model([_node("MatMul", ["x", "w"], ["h"], "mm0"),
                                    _node("Cast", ["h"], ["y"], "cast0", to=TensorProto.INT32)],
                                   W43, out_type=TensorProto.INT32),
                    ["Cast", "cast0"]),
    "fp16_weight": (lambda: _model([_node("MatMul", ["x", "w"], ["y"], "mm0")],
                                   {"w": _f32(4, 3).astype(np.float16)}), ["FP32", "mm0"]),
    "two_inputs": (lambda: _model([_node("MatMul", ["x", "w"], ["y"], "mm0")], W43,
                                  inputs=[("x", 4), ("x2", 4)]),
                   ["exactly one input", "x, x2"]),
    "rank3_input": (lambda: _rank3(), ["rank 2"]),
    "no_layer": (lambda: _model([_node("Identity", ["x"], ["y"], "id0")], {}),
                 ["graph input"]),
    "invalid": (lambda: _model([_node("MatMul", ["x", "nowhere"], ["y"], "mm0")], {}),
                ["not a valid ONNX model", "mm0"]),
    "per_channel_weight": (lambda: _edit(_per_channel), ["per-channel", "dequant_w0"]),
    "weight_zero_point": (lambda: _edit(lambda g, n, i: _set_init(i, "w0_zp", np.int8(3))),
                          ["zero point", "dequant_w0", "matmul0"]),
    "mixed": (lambda: _edit(_unquantise_layer0), ["mixed", "matmul1"]),
    "dq_partner": (lambda: _edit(_other_dq_scale), ["dequant_act0", "QuantizeLinear partner"]),
    "bias_scale": (lambda: _edit(_bias_scale), ["bias scale", "dequant_b0"]),
    "int8_output": (lambda: _edit(_int8_output), ["output", "FP32"]),
}


@pytest.mark.parametrize("case", ERRORS)
def test_unsupported(case):
    build, words = ERRORS[case]
    with pytest.raises(UnsupportedModel) as e:
        load_onnx(build())
    for w in words:
        assert w in str(e.value), f"{case}: {w!r} not in {str(e.value)!r}"


def test_errors_are_value_errors():
    assert issubclass(UnsupportedModel, ValueError)
    with pytest.raises(UnsupportedModel, match="decode"):
        load_onnx(b"\x12\x34 not a model")
