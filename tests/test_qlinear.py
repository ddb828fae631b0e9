"""QLinearMatMul (ONNX's operator-oriented INT8 form) in the front end, the builder and on
ncore, against onnxruntime.

* Round trips: ``mlp_qlinear`` models load back into exactly the Net they were built
  from (INT8 and UINT8 activations, opsets 10, 17 and 21); ``mlp_qlinear`` refuses nets
  it cannot express.
* onnxruntime's QLinearMatMul, as found here by comparing it with exact arithmetic
  (:func:`test_onnxruntime_qlinearmatmul_rounding`): the INT32 accumulator is exact and
  requantised as ``saturate(rint_half_even(fp32(fp32(acc) * m32)) + zp_y)`` with the
  multiplier ``m32 = fp32(fp32(a_scale * b_scale) / y_scale)``: both the FP32
  multiplier and the FP32 product can move a value across a rounding boundary that the
  exact ``acc * a_scale * b_scale / y_scale`` does not cross, and ties go to even.
* ncore against onnxruntime, layer by layer as for QDQ models in
  tests/test_onnx_compile.py: each layer is compiled alone, fed onnxruntime's own input
  codes, and must give onnxruntime's output codes, except where a rounding boundary
  ``k + 1/2`` lies within reach of the exact ``acc * m`` (``m`` from the FP32 scales,
  taken exactly): between it, ncore's 15-bit multiplier ``scale / 2**shift`` and
  onnxruntime's FP32 evaluation (at most ``3`` FP32 roundings of ``acc * m``, bounded
  here by ``4 * 2**-24 * |acc * m|``). There the codes may differ by one. With
  power-of-two scales both multipliers are exact and only exact ties may differ (ncore
  rounds them away from zero, onnxruntime to even). onnxruntime runs with graph
  optimisations disabled and with its defaults (which leave QuantizeLinear ->
  QLinearMatMul -> DequantizeLinear as it is: checked). The whole net is then run on
  ncore from the FP32 input: every batch row in which no layer differed must equal
  onnxruntime's output exactly. Shapes include 1 and primes (features and batch);
  nets with multipliers next to 1/2 exercise hundreds of near-ties.
* onnxruntime's UINT8 x INT8 kernel (:func:`test_onnxruntime_u8s8_kernel`): exact, or on
  x86 CPUs without VNNI the pairwise INT16 saturation of VPMADDUBSW (tests/ort_oracle.py);
  exact on every x86 CPU for weights in ``-64..64``, which the comparisons with UINT8
  activations therefore use (7-bit weights, onnxruntime's ``reduce_range``).
* QDQ and QLinearMatMul layers mixed in one chain load as the same Net and agree (the
  QDQ layer with the margin of onnxruntime's FP32 MatMul).
* Models from onnxruntime's own quantiser in the QOperator format: bias-free MatMul
  MLPs load and agree; a bias becomes ``com.microsoft.QLinearAdd``, which is refused.
* Refusals: mismatching ``a_scale``/``a_zero_point``, weight zero points, per-channel
  weight scales, UINT8 weights, MatMulInteger, a ``b`` that is not a constant, and the
  other ways a QOperator graph can leave the supported chain.
"""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sim.compiler.lower import compile_net, requant_params, run_compiled
from sim.compiler.net import Layer, Net, Quant, dequantize, quantize_input
from sim.compiler.onnx_build import mlp_float, mlp_qlinear, quantize_mlp
from sim.compiler.onnx_front import UnsupportedModel, load_onnx
from ort_oracle import W_SAFE, calibration_reader, matmul_integer, pairwise_saturated
from test_onnx_compile import FLT, INT, _pow2_net, near_boundary, session

U32 = 2.0 ** -24                       # FP32 unit roundoff
SEEDS = list(range(6))
DIMS = [[7, 5], [1, 13, 3], [31, 1, 17], [64, 37, 10], [13, 70, 23, 11], [2, 3, 1]]
BATCH = [1, 41, 7, 131, 13, 1]
LEVELS = {"no_opt": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "default": None}
ELEM = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}


def _session(model, extra_outputs=(), elem=TensorProto.INT8, level="no_opt"):
    return session(model, extra_outputs, elem, optimize=level == "default")


def _as_int8(codes):
    """onnxruntime's INT8/UINT8 tensor in the Net's INT8 convention (UINT8 - 128)."""
    o = np.asarray(codes)
    return (o.astype(np.int16) - 128).astype(np.int8) if o.dtype == np.uint8 \
        else o.astype(np.int8)


def _code_names(model):
    """The integer activations: the input's QuantizeLinear, then each layer's output."""
    return [n.output[0] for n in model.graph.node
            if n.op_type in ("QuantizeLinear", "QLinearMatMul")]


def _random_net(rng, dims, scales="random", w_max=None):
    """A bias-free, ReLU-free quantised Net with random INT8 weights and zero points.
    ``scales``: "random", or "near_tie": every multiplier within 3e-7 of 1/2 and
    weights in -1..1 (small accumulators: about half the odd ones are near-ties in range,
    given inputs near the zero point). ``w_max``: "random" weights in ``-w_max..w_max``
    instead of the whole INT8 range."""
    s_in = float(np.float32(rng.uniform(0.005, 0.2)))
    zp_range = (-100, 101) if scales == "near_tie" else (-128, 128)
    net = Net([], input_quant=Quant(s_in, int(rng.integers(*zp_range))))
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        if scales == "near_tie":
            w = rng.integers(-1, 2, (k, n)).astype(np.int8)
            s_w = float(np.float32(rng.uniform(0.1, 0.9)))
            s_out = 2 * s_in * s_w * (1 + rng.uniform(-3e-7, 3e-7))
        else:
            lo, hi = (-128, 127) if w_max is None else (-w_max, w_max)
            w = rng.integers(lo, hi + 1, (k, n)).astype(np.int8)
            s_w = float(np.float32(rng.uniform(0.001, 0.05)))
            s_out = s_in * s_w * np.sqrt(k) * 74 * rng.uniform(0.5, 2)
        q = Quant(float(np.float32(s_out)), int(rng.integers(*zp_range)))
        net.layers.append(Layer(f"matmul{i}", w, None, False, s_w, q))
        s_in = q.scale
    return net.check()


def _calibrated_net(rng, dims, u8):
    """``quantize_mlp`` of a random float MLP without biases and ReLUs (7-bit weights
    with UINT8 activations: tests/ort_oracle.py)."""
    ws = [(rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
          for k, n in zip(dims, dims[1:])]
    calib = rng.standard_normal((200, dims[0])).astype(np.float32)
    return quantize_mlp(ws, [None] * len(ws), [False] * len(ws), calib,
                        uint8_activations=u8, reduce_range=u8)


def _multiplier(net, i):
    """Layer ``i``'s requantisation multiplier from its FP32 scales, exactly (float64)."""
    return (float(np.float32(net.in_quant(i).scale)) * float(np.float32(net.layers[i].w_scale))
            / float(np.float32(net.layers[i].out_quant.scale)))


def _ort_requant(acc, net, i):
    """onnxruntime's QLinearMatMul requantisation of the accumulators ``acc``, as found
    (module docstring): FP32 multiplier and product, ties to even, saturation."""
    qin, L = net.in_quant(i), net.layers[i]
    f32 = np.float32
    m32 = f32(f32(qin.scale) * f32(L.w_scale)) / f32(L.out_quant.scale)
    v = np.asarray(acc).astype(np.float32) * m32
    return np.clip(np.rint(v).astype(np.int64) + L.out_quant.zero_point, -128, 127)


def _accumulator(net, i, codes_in):
    qin = net.in_quant(i)
    return (codes_in.astype(np.int64) - qin.zero_point) @ net.layers[i].weight.astype(np.int64)


def _check_layers(net, model, x, cfg, msg, *, act, pow2, names=None, qdq_layers=()):
    """Compare ncore with onnxruntime layer by layer (module docstring), for both graph
    optimisation levels, then the whole net. Returns the number of differing codes.

    ``names``: the integer tensors entering each layer and the last one's output
    (default: the QuantizeLinear and QLinearMatMul outputs). Layers in ``qdq_layers``
    are QDQ layers, which onnxruntime may run as an FP32 MatMul (summed in any order):
    their margin adds that sum's error bound, ``2 (K + 2) 2**-24 sum_k |x_k w_k|``."""
    names = names or _code_names(model)
    assert len(names) == len(net.layers) + 1, msg
    parts = [compile_net(net, cfg, batch=x.shape[0], layers=(i, i + 1), check=True)
             for i in range(len(net.layers))]
    whole = compile_net(net, cfg, batch=x.shape[0], check=True)
    y_ncore, _, _ = run_compiled(whole, x)
    flagged = 0
    for level in LEVELS:
        m = f"{msg}, onnxruntime {level}"
        outs = _session(model, names, ELEM[act], level).run(None, {"input": x})
        want_y, codes = outs[0], [_as_int8(o) for o in outs[1:]]
        plain = _session(model, level=level).run(None, {"input": x})[0]
        assert np.array_equal(plain, want_y), f"{m}: extra outputs changed the result"
        assert np.array_equal(codes[0], quantize_input(x, net.input_quant)), \
            f"{m}: the input codes differ from the host's QuantizeLinear"
        tainted = np.zeros(x.shape[0], bool)
        for i, L in enumerate(net.layers):
            _, _, dram = run_compiled(parts[i], bits=np.ascontiguousarray(codes[i].T))
            got = parts[i].output_bits(dram).T.astype(np.int64)
            want = codes[i + 1].astype(np.int64)
            acc = _accumulator(net, i, codes[i])
            mult = _multiplier(net, i)
            scale, shift = requant_params(mult)
            v = acc * mult                          # the exact value / out scale
            v2 = acc * (scale / 2.0 ** shift)       # ncore's multiplier
            diff = got != want
            if pow2:
                assert scale / 2.0 ** shift == mult, m
                allowed = (v - np.floor(v)) == 0.5             # exact ties only
            else:
                eps = 4 * U32 * np.abs(v) + 1e-9
                if i in qdq_layers:
                    mag = np.abs(codes[i].astype(np.int64) - net.in_quant(i).zero_point) \
                        @ np.abs(L.weight.astype(np.int64))
                    eps = eps + 2 * (L.K + 2) * U32 * mag * mult
                allowed = near_boundary(v, v2, eps)
            bad = diff & ~allowed
            assert not bad.any(), (
                f"{m}: layer {i}: {bad.sum()} codes differ from onnxruntime away from "
                f"rounding boundaries, e.g. ncore {got[bad][:4]} onnxruntime {want[bad][:4]}")
            assert (np.abs(got - want) <= 1).all(), f"{m}: layer {i}: codes differ by > 1"
            flagged += int(diff.sum())
            tainted |= diff.any(axis=1)
        # the whole net from the FP32 input: rows where every layer agreed are exact
        same = np.all(y_ncore == want_y, axis=1)
        assert same[~tainted].all(), (
            f"{m}: whole net: {np.sum(~same & ~tainted)} rows differ from onnxruntime "
            f"although every layer agreed on them")
    return flagged


# -- round trips and the builder ----------------------------------------------------------

def _assert_same_net(got: Net, want: Net, msg):
    assert got.quantized and got.notes == [], msg
    assert (got.input_name, got.output_name) == ("input", "output"), msg
    assert got.input_quant == want.input_quant, msg
    assert [L.name for L in got.layers] == [f"matmul{i}" for i in range(len(want.layers))], msg
    for i, (g, w) in enumerate(zip(got.layers, want.layers)):
        m = f"{msg}, layer {i}"
        assert g.weight.dtype == np.int8 and np.array_equal(g.weight, w.weight), m
        assert g.bias is None and not g.relu, m
        assert (g.w_scale, g.out_quant) == (w.w_scale, w.out_quant), m


@pytest.mark.parametrize("opset", [10, 17, 21])
@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_round_trip(seed, act, opset):
    rng = np.random.default_rng(seed)
    net = _random_net(rng, DIMS[seed])
    model = mlp_qlinear(net, uint8_activations=act == "uint8", opset=opset)
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["QuantizeLinear"] + ["QLinearMatMul"] * len(net.layers) + \
        ["DequantizeLinear"], f"seed {seed}"
    _assert_same_net(load_onnx(model.SerializeToString()), net,
                     f"seed {seed}, {act}, opset {opset}")


def test_round_trip_of_calibrated_net():
    for u8 in (False, True):
        net = _calibrated_net(np.random.default_rng(3), [13, 70, 23, 11], u8)
        _assert_same_net(load_onnx(mlp_qlinear(net, uint8_activations=u8)), net,
                         f"seed 3, uint8 {u8}")


def test_mlp_qlinear_refuses_what_qlinearmatmul_cannot_express():
    rng = np.random.default_rng(0)
    base = _random_net(rng, [5, 4, 3])
    cases = {"a bias": lambda L: setattr(L, "bias", np.zeros(L.N, np.int32)),
             "a ReLU": lambda L: setattr(L, "relu", True),
             "no output quantisation": lambda L: setattr(L, "out_quant", None)}
    for what, edit in cases.items():
        net = Net([Layer(**vars(L)) for L in base.layers], input_quant=base.input_quant)
        edit(net.layers[-1])
        with pytest.raises(ValueError, match=f"layer 1 \\(matmul1\\) has {what}"):
            mlp_qlinear(net)
    with pytest.raises(ValueError, match="quantised Net"):
        mlp_qlinear(Net([Layer("f", np.ones((2, 2), np.float32))]))
    with pytest.raises(ValueError, match="opset 10"):
        mlp_qlinear(base, opset=9)


# -- onnxruntime's QLinearMatMul ----------------------------------------------------------

@pytest.mark.parametrize("level", list(LEVELS))
@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_onnxruntime_qlinearmatmul_rounding(act, level):
    """How onnxruntime's QLinearMatMul rounds (module docstring), pinned down on cases
    where the candidate computations disagree."""
    u8, elem = act == "uint8", ELEM[act]
    # 1. every product (q - zp) * w of one code grid: K = 1, the batch runs over all
    # input codes and the 256 columns over all weights. Multipliers: a power of two
    # (exact: ties are real ties) and FP32 values whose FP32 product acc * m rounds
    # across a boundary that the exact product does not reach.
    w = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    acc = np.arange(-128, 128).reshape(256, 1) * np.arange(-128, 128).reshape(1, 256)
    rng = np.random.default_rng(1)                       # seed 1
    mults, product_cases = [np.float32(2.0 ** -8)], 0
    while len(mults) < 4:
        m = np.float32(rng.uniform(2.0 ** -9, 2.0 ** -7))
        v32, v = (acc.astype(np.float32) * m).astype(np.float64), acc * float(m)
        cross = (np.rint(v32) != np.rint(v)) & (np.abs(v) < 127)
        if cross.any():
            mults.append(m)
            product_cases += int(cross.sum())
    ties = 0
    for m in mults:
        net = Net([Layer("matmul0", w, None, False, float(m), Quant(1.0, 0))],
                  input_quant=Quant(1.0, 0))
        model = mlp_qlinear(net, uint8_activations=u8)
        x = np.arange(-128, 128, dtype=np.float32).reshape(256, 1)
        outs = _session(model, ["input_q", "act0_q"], elem, level).run(None, {"input": x})
        codes_in, got = _as_int8(outs[1]), _as_int8(outs[2]).astype(np.int64)
        msg = f"seed 1, {act}, {level}, m {m!r}"
        assert np.array_equal(codes_in.ravel(), np.arange(-128, 128)), msg
        assert np.array_equal(got, _ort_requant(acc, net, 0)), \
            f"{msg}: onnxruntime is not rint_even(fp32(fp32(acc) * m32))"
        v = acc * float(m)
        exact = np.clip(np.rint(v), -128, 127)
        ties += int(np.sum((v - np.floor(v) == 0.5) & (np.abs(v) < 127)))
        if m == np.float32(2.0 ** -8):        # exact: the only rounding is the tie rule
            assert np.array_equal(got, exact), f"{msg}: ties are not rounded to even"
    assert product_cases > 0 and ties > 500, f"seed 1: {product_cases} cases, {ties} ties"
    # 2. the multiplier from three scales: FP32 (a_s * b_s) / y_s, not the other FP32
    # order a_s * (b_s / y_s): scale triples where the two orders give different FP32
    # multipliers that round some product of the grid differently
    f32 = np.float32
    found = 0
    while found < 3:
        s_a, s_b, s_y = f32(rng.uniform(0.5, 1)), f32(rng.uniform(2.0 ** -9, 2.0 ** -7)), \
            f32(rng.uniform(0.5, 1))
        m1, m2 = f32(f32(s_a * s_b) / s_y), f32(s_a * f32(s_b / s_y))
        r1 = np.rint(acc.astype(np.float32) * m1)
        r2 = np.rint(acc.astype(np.float32) * m2)
        if m1 == m2 or not ((r1 != r2) & (np.abs(r1) < 127)).any():
            continue
        found += 1
        net = Net([Layer("matmul0", w, None, False, float(s_b), Quant(float(s_y), 0))],
                  input_quant=Quant(float(s_a), 0))
        model = mlp_qlinear(net, uint8_activations=u8)
        x = (np.arange(-128, 128, dtype=np.float32) * s_a).reshape(256, 1)
        outs = _session(model, ["input_q", "act0_q"], elem, level).run(None, {"input": x})
        assert np.array_equal(_as_int8(outs[1]).ravel(), np.arange(-128, 128))
        got = _as_int8(outs[2]).astype(np.int64)
        msg = f"seed 1, {act}, {level}, scales {s_a!r} {s_b!r} {s_y!r}"
        assert np.array_equal(got, _ort_requant(acc, net, 0)), msg
        assert not np.array_equal(got, np.clip(r2, -128, 127)), msg


@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_onnxruntime_optimiser_keeps_the_graph(tmp_path, act):
    """With its default optimisations onnxruntime runs the QOperator graph as written
    (so both levels exercise the same QLinearMatMul kernel)."""
    net = _random_net(np.random.default_rng(7), [13, 7, 5])
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(mlp_qlinear(net, uint8_activations=act == "uint8")
                         .SerializeToString(), so, providers=["CPUExecutionProvider"])
    ops = [(n.domain, n.op_type) for n in onnx.load(tmp_path / "opt.onnx").graph.node]
    assert ops == [("", "QuantizeLinear"), ("", "QLinearMatMul"), ("", "QLinearMatMul"),
                   ("", "DequantizeLinear")], f"seed 7, {act}: {ops}"


def test_onnxruntime_u8s8_kernel():
    """onnxruntime's UINT8 x INT8 MatMulInteger is either exact or, on x86 CPUs without
    VNNI, the pairwise INT16 saturation modelled in tests/ort_oracle.py (anything else
    fails); for weights in ``-W_SAFE..W_SAFE`` it is exact, which the UINT8 comparisons
    with ncore rely on."""
    rng = np.random.default_rng(700)                     # seed 700
    a = rng.integers(200, 256, (4, 64)).astype(np.uint8)
    b = rng.integers(100, 128, (64, 8)).astype(np.int8)
    exact, sat = a.astype(np.int64) @ b.astype(np.int64), pairwise_saturated(a, b)
    assert not np.array_equal(exact, sat)               # the two models differ here
    got = matmul_integer(a, b)
    assert np.array_equal(got, exact) or np.array_equal(got, sat), \
        "seed 700: onnxruntime's u8 x s8 MatMulInteger is neither exact nor pairwise-saturated"
    print("onnxruntime u8 x s8 kernel on this CPU:",
          "exact" if np.array_equal(got, exact) else "pairwise INT16 saturation (no VNNI)")
    for i in range(12):                  # odd and even K, the extremes of both operands
        m, k, n = (int(v) for v in rng.integers(1, 40, 3))
        a = rng.integers(0, 256, (m, k)).astype(np.uint8)
        b = rng.integers(-W_SAFE, W_SAFE + 1, (k, n)).astype(np.int8)
        a[0, :], b[:, 0] = 255, -W_SAFE if i % 2 else W_SAFE
        assert np.array_equal(matmul_integer(a, b), a.astype(np.int64) @ b.astype(np.int64)), \
            f"seed 700, case {i} ({m}x{k}x{n}): inexact with |w| <= {W_SAFE}"


def test_quantize_mlp_reduce_range():
    """``quantize_mlp(reduce_range=True)``: weights ``rint(W / (max|W| / 64))`` in -64..64,
    the rest as without it."""
    rng = np.random.default_rng(701)
    ws = [rng.standard_normal((9, 6)).astype(np.float32),
          rng.standard_normal((6, 3)).astype(np.float32)]
    calib = rng.standard_normal((50, 9)).astype(np.float32)
    full = quantize_mlp(ws, [None, None], [False, False], calib)
    red = quantize_mlp(ws, [None, None], [False, False], calib, reduce_range=True)
    for w, lf, lr in zip(ws, full.layers, red.layers):
        s = np.float32(np.abs(w).max() / 64)
        assert lr.w_scale == float(s)
        assert np.array_equal(lr.weight, np.clip(np.rint(w / s), -64, 64).astype(np.int8))
        assert np.abs(lr.weight.astype(int)).max() == 64
        assert np.abs(lf.weight.astype(int)).max() == 127
    assert red.input_quant == full.input_quant


# -- ncore against onnxruntime ------------------------------------------------------------

ORT_SEEDS = [200 + s for s in SEEDS]


@pytest.mark.parametrize("scales", ["calibrated", "pow2", "random"])
@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("seed", ORT_SEEDS, ids=[f"seed{s}" for s in ORT_SEEDS])
def test_against_onnxruntime(seed, act, scales):
    rng = np.random.default_rng(seed)
    dims, batch, u8 = DIMS[seed - 200], BATCH[seed - 200], act == "uint8"
    if scales == "random":
        net = _random_net(rng, dims, w_max=W_SAFE if u8 else None)
    else:
        net = _calibrated_net(rng, dims, u8)
        if scales == "pow2":
            net = _pow2_net(net)
    model = mlp_qlinear(net, uint8_activations=u8)
    _assert_same_net(load_onnx(model), net, f"seed {seed}")
    iq = net.input_quant
    x = dequantize(rng.integers(-128, 128, (batch, dims[0])), iq)
    # also values off the grid and out of range: rounding and saturation of the input
    x[::2] = x[::2] * np.float32(1.7) + np.float32(0.37 * iq.scale)
    msg = f"seed {seed}, {act}, {scales} scales, dims {dims}, batch {batch}"
    flagged = _check_layers(net, model, x, [INT, FLT][seed % 2], msg, act=act,
                            pow2=scales == "pow2")
    print(f"{msg}: {flagged} codes differ at rounding boundaries (both ORT levels)")


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("seed", [300, 301], ids=["seed300", "seed301"])
def test_near_ties_against_onnxruntime(seed, act):
    """Multipliers within 3e-7 of 1/2: half the odd accumulators are near-ties, where
    the FP32 multiplier, ncore's 15-bit one and the exact value round differently."""
    rng = np.random.default_rng(seed)
    net = _random_net(rng, [31, 16, 5], "near_tie")
    model = mlp_qlinear(net, uint8_activations=act == "uint8")
    iq = net.input_quant
    x = dequantize(iq.zero_point + rng.integers(-8, 9, (40, 31)), iq)
    flagged = _check_layers(net, model, x, [INT, FLT][seed % 2], f"seed {seed}, {act}",
                            act=act, pow2=False)
    print(f"seed {seed}, {act}: {flagged} codes differ at near-ties (both ORT levels)")
    assert flagged > 0, f"seed {seed}: no near-tie differences exercised"


def _mixed_model(net, u8, qdq_layer):
    """Layer ``qdq_layer`` in the QDQ form, the others QLinearMatMul (the two formats
    mixed), with the same integer tensors ``input_q``, ``act0_q``, ... between them."""
    model = mlp_qlinear(net, uint8_activations=u8)
    g, j = model.graph, qdq_layer
    a = "input" if j == 0 else f"act{j - 1}"
    new = []
    for n in g.node:
        if n.name != f"matmul{j}":
            new.append(n)
            continue
        new += [helper.make_node("DequantizeLinear", [f"{a}_q", f"{a}_scale", f"{a}_zp"],
                                 [f"{a}_dq"], name=f"dequant_{a}"),
                helper.make_node("DequantizeLinear", [f"w{j}_q", f"w{j}_scale", f"w{j}_zp"],
                                 [f"w{j}"], name=f"dequant_w{j}"),
                helper.make_node("MatMul", [f"{a}_dq", f"w{j}"], [f"mm{j}"],
                                 name=f"matmul{j}"),
                helper.make_node("QuantizeLinear", [f"mm{j}", f"act{j}_scale", f"act{j}_zp"],
                                 [f"act{j}_q"], name=f"quant_act{j}")]
    del g.node[:]
    g.node.extend(new)
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("qdq_layer", [0, 1], ids=["qdq_first", "qdq_last"])
@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_qdq_and_qlinearmatmul_mixed(act, qdq_layer):
    """A QDQ layer feeding a QLinearMatMul through its QuantizeLinear, and a
    QLinearMatMul feeding a QDQ layer through its DequantizeLinear: the same Net, and
    it agrees with onnxruntime (the QDQ layer with the FP32 MatMul's error margin)."""
    rng = np.random.default_rng(400 + qdq_layer)
    net = _random_net(rng, [13, 7, 5], w_max=W_SAFE if act == "uint8" else None)
    model = _mixed_model(net, act == "uint8", qdq_layer)
    msg = f"seed {400 + qdq_layer}, {act}, QDQ layer {qdq_layer}"
    _assert_same_net(load_onnx(model), net, msg)
    x = dequantize(rng.integers(-128, 128, (17, 13)), net.input_quant)
    _check_layers(net, model, x, INT, msg, act=act, pow2=False,
                  names=["input_q", "act0_q", "act1_q"], qdq_layers=(qdq_layer,))


@pytest.mark.parametrize("relu", [False, True], ids=["linear", "relu"])
@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_ort_quantize_static_qoperator(tmp_path, act, relu):
    """onnxruntime's quantiser, QOperator format, per tensor: a bias-free MatMul MLP
    becomes QuantizeLinear -> QLinearMatMul x 2 -> DequantizeLinear (a ReLU folded into
    the first layer's output range), which loads and agrees with onnxruntime; with a
    bias it writes com.microsoft.QLinearAdd, which is refused."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    rng = np.random.default_rng(500)
    ws = [rng.standard_normal((8, 16)).astype(np.float32),
          rng.standard_normal((16, 5)).astype(np.float32)]
    x = rng.standard_normal((64, 8)).astype(np.float32)

    def quantise(biases):
        onnx.save(mlp_float(ws, biases, [relu, False]), tmp_path / "f.onnx")
        quantize_static(tmp_path / "f.onnx", tmp_path / "q.onnx", calibration_reader(x),
                        quant_format=QuantFormat.QOperator, per_channel=False,
                        activation_type=QuantType.QInt8 if act == "int8" else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, reduce_range=act == "uint8")
        return onnx.load(tmp_path / "q.onnx")

    model = quantise([None, None])
    if act == "uint8":                  # reduce_range: 7-bit weights (tests/ort_oracle.py)
        assert all(np.abs(numpy_helper.to_array(t).astype(np.int64)).max() <= W_SAFE
                   for t in model.graph.initializer if t.data_type == TensorProto.INT8
                   and len(t.dims) == 2)
    assert [n.op_type for n in model.graph.node] == [
        "QuantizeLinear", "QLinearMatMul", "QLinearMatMul", "DequantizeLinear"]
    net = load_onnx(model)
    assert [L.name for L in net.layers] == ["matmul0_quant", "matmul1_quant"]
    if relu:
        assert net.layers[0].out_quant.zero_point == -128       # ReLU folded
    _check_layers(net, model, x, FLT, f"seed 500, quantize_static {act}", act=act,
                  pow2=False)
    with pytest.raises(UnsupportedModel, match=r"com\.microsoft\.QLinearAdd"):
        load_onnx(quantise([rng.standard_normal(16).astype(np.float32), None]))


# -- refusals -----------------------------------------------------------------------------

def _base():
    """A 2-layer QLinearMatMul model (4 -> 5 -> 3) to break, and its parts by name."""
    net = _random_net(np.random.default_rng(600), [4, 5, 3])
    return mlp_qlinear(net)


def _edit(fn, model=None):
    model = model or _base()
    g = model.graph
    fn(g, {n.name: n for n in g.node}, {t.name: t for t in g.initializer})
    return model


def _set(inits, name, value):
    inits[name].CopyFrom(numpy_helper.from_array(np.asarray(value), name))


def _add_init(g, name, value):
    g.initializer.append(numpy_helper.from_array(np.asarray(value), name))


def _a_scale(g, nodes, inits):
    s = numpy_helper.to_array(inits["act0_scale"])
    _add_init(g, "other_scale", np.float32(s * 2))
    nodes["matmul1"].input[1] = "other_scale"


def _a_zero_point(g, nodes, inits):
    zp = numpy_helper.to_array(inits["act0_zp"])
    _add_init(g, "other_zp", np.int8(zp + 1 if zp < 127 else zp - 1))
    nodes["matmul1"].input[2] = "other_zp"


def _uint8_weight(zp):
    def edit(g, nodes, inits):
        w = numpy_helper.to_array(inits["w0_q"])
        _set(inits, "w0_q", (w.astype(np.int16) + zp).clip(0, 255).astype(np.uint8))
        _set(inits, "w0_zp", np.uint8(zp))
    return edit


def _per_channel(what):
    def edit(g, nodes, inits):
        if what == "scale":
            _set(inits, "w0_scale", np.full(5, 0.01, np.float32))
        else:
            _set(inits, "w0_zp", np.zeros(5, np.int8))
    return edit


def _matmul_integer(g, nodes, inits):
    """Dynamic-quantisation style: MatMulInteger -> Cast -> Mul by a_scale * b_scale."""
    _add_init(g, "s", np.float32(0.01))
    new = [nodes["quant_input"],
           helper.make_node("MatMulInteger", ["input_q", "w0_q", "input_zp", "w0_zp"],
                            ["acc"], name="mmi0"),
           helper.make_node("Cast", ["acc"], ["accf"], name="cast0", to=TensorProto.FLOAT),
           helper.make_node("Mul", ["accf", "s"], ["output"], name="mul0")]
    del g.node[:]
    g.node.extend(new)


def _b_is_a(g, nodes, inits):
    nodes["matmul0"].input[3] = "input_q"


def _b_swapped(g, nodes, inits):
    n = nodes["matmul0"]
    n.input[0], n.input[3] = "w0_q", "input_q"


def _b_quantised_at_runtime(g, nodes, inits):
    """b = QuantizeLinear(FP32 constant): computed by a node, not an integer constant."""
    w = numpy_helper.to_array(inits["w0_q"]).astype(np.float32) * np.float32(0.01)
    _add_init(g, "w0_f", w)
    q = helper.make_node("QuantizeLinear", ["w0_f", "w0_scale", "w0_zp"], ["w0_qq"],
                         name="quant_w0")
    nodes["matmul0"].input[3] = "w0_qq"
    new = [q] + list(g.node)
    del g.node[:]
    g.node.extend(new)


def _float_input(g, nodes, inits):
    g.node.remove(nodes["quant_input"])
    nodes["matmul0"].input[0] = "input"


def _dequantised_input(g, nodes, inits):
    dq = helper.make_node("DequantizeLinear", ["input_q", "input_scale", "input_zp"],
                          ["input_dq"], name="dequant_input")
    nodes["matmul0"].input[0] = "input_dq"
    new = list(g.node)
    new.insert(1, dq)
    del g.node[:]
    g.node.extend(new)


def _relu_between(g, nodes, inits):
    """matmul0 -> DequantizeLinear -> Relu -> QuantizeLinear -> matmul1 (a float ReLU)."""
    nodes["matmul0"].output[0] = "h0_q"
    extra = [helper.make_node("DequantizeLinear", ["h0_q", "act0_scale", "act0_zp"],
                              ["h0"], name="dequant_h0"),
             helper.make_node("Relu", ["h0"], ["r0"], name="relu0"),
             helper.make_node("QuantizeLinear", ["r0", "act0_scale", "act0_zp"],
                              ["act0_q"], name="quant_r0")]
    new = list(g.node)
    new[2:2] = extra
    del g.node[:]
    g.node.extend(new)


def _int8_output(g, nodes, inits):
    g.node.remove(nodes["dequant_act1"])
    nodes["matmul1"].output[0] = "output"
    g.output[0].type.tensor_type.elem_type = TensorProto.INT8


def _dq_mismatch(g, nodes, inits):
    _add_init(g, "other_scale", np.float32(0.5))
    nodes["dequant_act1"].input[1] = "other_scale"


def _fp16_scale(g, nodes, inits):
    _set(inits, "w0_scale", np.float16(0.01))


ERRORS = {
    "a_scale": (_a_scale, ["matmul1", "a_scale/a_zero_point", "do not match",
                           "QLinearMatMul node 'matmul0'"]),
    "a_zero_point": (_a_zero_point, ["matmul1", "a_scale/a_zero_point", "do not match"]),
    "weight_zero_point": (lambda g, n, i: _set(i, "w0_zp", np.int8(3)),
                          ["matmul0", "weight zero point must be 0", "[3]"]),
    "uint8_weight_zp128": (_uint8_weight(128), ["matmul0", "zero point must be 0", "128"]),
    "uint8_weight_zp0": (_uint8_weight(0), ["matmul0", "must be INT8", "uint8"]),
    "per_channel_b_scale": (_per_channel("scale"), ["per-channel", "5 scales", "matmul0"]),
    "per_channel_b_zero_point": (_per_channel("zp"), ["per-channel", "5 zero points",
                                                      "matmul0"]),
    "fp16_b_scale": (_fp16_scale, ["matmul0", "FP32"]),
    "matmul_integer": (_matmul_integer, ["unsupported operator 'MatMulInteger'",
                                         "node 'mmi0'", "QLinearMatMul"]),
    "b_same_activation_as_a": (_b_is_a, ["QLinearMatMul", "matmul0", "two activations"]),
    "b_activation_a_constant": (_b_swapped, ["matmul0", "input a", "constant"]),
    "b_quantised_at_runtime": (_b_quantised_at_runtime, ["QuantizeLinear", "quant_w0",
                                                         "constants"]),
    "no_quantize_linear": (_float_input, ["matmul0", "graph input", "QuantizeLinear first"]),
    "dequantised_input": (_dequantised_input, ["matmul0", "dequantised activation"]),
    "relu_between": (_relu_between, ["Relu", "relu0", "QLinearMatMul node 'matmul0' has "
                                                        "no ReLU"]),
    "int8_output": (_int8_output, ["output", "FP32"]),
    "dequantize_mismatch": (_dq_mismatch, ["dequant_act1", "QLinearMatMul partner",
                                           "matmul1"]),
}


@pytest.mark.parametrize("case", ERRORS)
def test_unsupported(case):
    edit, words = ERRORS[case]
    with pytest.raises(UnsupportedModel) as e:
        load_onnx(_edit(edit))
    for w in words:
        assert w in str(e.value), f"{case}: {w!r} not in {str(e.value)!r}"

