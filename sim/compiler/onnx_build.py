"""Build small ONNX MLPs: float models, QDQ and QLinearMatMul INT8 models, and a
post-training quantiser.

Used by the ONNX front-end tests and the demo; the models are what
:func:`sim.compiler.onnx_front.load_onnx` reads back.

* :func:`mlp_float` -- an FP32 MLP: ``MatMul`` + ``Add`` (or ``Gemm`` with ``C``, ``B``
  optionally stored transposed with ``transB=1``) + ``Relu`` per layer.
* :func:`mlp_qdq` -- the QDQ model of a quantised :class:`~sim.compiler.net.Net`, in ONNX
  Runtime's QDQ layout::

      input -> QuantizeLinear -> DequantizeLinear
        -> MatMul(., DequantizeLinear(W_q int8, w_scale))
        -> Add(., DequantizeLinear(b_q int32, in_scale*w_scale))   (FP32 product)
        -> [Relu] -> QuantizeLinear -> DequantizeLinear -> next layer ... -> output

  Activations are INT8, or UINT8 with the zero point moved by +128 (the same
  arithmetic). A last layer without ``out_quant`` ends unquantised: the output is the
  FP32 MatMul + bias (+ ReLU).
* :func:`mlp_qlinear` -- the same net in ONNX's operator-oriented (QOperator) form,
  for nets without biases and ReLUs whose every layer requantises::

      input -> QuantizeLinear
        -> QLinearMatMul(., s_in, zp_in, W_q int8, w_scale, 0, s_out, zp_out)
        -> QLinearMatMul ... -> DequantizeLinear -> output

  Activations INT8 or UINT8 as above; every scale and zero point is a scalar
  initializer, the integer tensors stay integer between the layers (``input_q``,
  ``act0_q``, ...; the nodes are ``quant_input``, ``matmul0``, ... and
  ``dequant_act{n-1}``). Default opset 17 (QLinearMatMul-10); 21 gives QLinearMatMul-21.
* :func:`quantize_mlp` -- per-tensor post-training quantisation from a calibration
  batch. Weights: symmetric, ``w_scale = max|W| / 127``, ``W_q = clip(rint(W / w_scale),
  -127, 127)``; with ``reduce_range`` 7 bits as ONNX Runtime's quantiser option of that
  name, ``w_scale = max|W| / 64`` and ``W_q`` in ``-64..64`` (for onnxruntime on x86 CPUs
  without VNNI, whose UINT8 x INT8 kernel saturates pairs of products to 16 bits; ncore
  is exact either way). Activations (the input and every layer output, the last one included),
  from the float model's activations on the calibration batch:

  - default (INT8 flavour): a tensor after ReLU uses ``[0, max]`` over all 256 codes,
    ``scale = max / 255``, zero point -128; any other tensor is symmetric,
    ``scale = max|a| / 127``, zero point 0.
  - ``uint8_activations`` (ONNX Runtime's default UINT8 flavour): asymmetric
    ``[min(a, 0), max(a, 0)]``, ``scale = (hi - lo) / 255``, UINT8 zero point
    ``rint(-lo / scale)`` (stored shifted by -128 in the :class:`Quant`).

  A tensor that is all zeros gets scale 1. Biases: ``b_q = rint(b / (s_in * s_w))`` with
  the scale product in FP32, saturated to INT32. Scales are FP32 values.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sim.compiler.net import Layer, Net, Quant

__all__ = ["mlp_float", "mlp_qdq", "mlp_qlinear", "quantize_mlp"]


def _model(nodes, inits, k0, n_out, batch, opset, name):
    b = batch if batch is not None else "N"
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [b, k0])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [b, n_out])],
        initializer=inits)
    ops = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=ops, producer_name="ncore.onnx_build",
                              ir_version=helper.find_min_ir_version_for(ops))
    onnx.checker.check_model(model)
    return model


def _init(name, value, dtype=None):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def mlp_float(weights, biases, relus, *, use_gemm=False, trans_b=False, opset=17,
              batch=None) -> onnx.ModelProto:
    """An FP32 MLP: layer ``i`` is ``relu?(x @ weights[i] + biases[i])``.

    ``weights[i]`` is ``K x N``, ``biases[i]`` ``(N,)`` or None, ``relus[i]`` a bool.
    ``use_gemm`` writes ``Gemm`` (bias as ``C``) instead of ``MatMul`` + ``Add``;
    ``trans_b`` (Gemm only) stores ``B`` as ``N x K`` with ``transB=1``. Input ``input``
    ``[batch or "N", K0]``, output ``output``.
    """
    if trans_b and not use_gemm:
        raise ValueError("trans_b needs use_gemm")
    if not len(weights) == len(biases) == len(relus) >= 1:
        raise ValueError("weights, biases and relus must have the same non-zero length")
    nodes, inits, x = [], [], "input"
    for i, (w, b, r) in enumerate(zip(weights, biases, relus)):
        w = np.asarray(w, dtype=np.float32)
        last = i == len(weights) - 1
        inits.append(_init(f"w{i}", w.T if trans_b else w))
        y = f"mm{i}"
        if use_gemm:
            ins = [x, f"w{i}"] + ([f"b{i}"] if b is not None else [])
            nodes.append(helper.make_node("Gemm", ins, [y], name=f"gemm{i}",
                                          transB=int(trans_b)))
        else:
            nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [y], name=f"matmul{i}"))
        if b is not None:
            inits.append(_init(f"b{i}", b, np.float32))
            if not use_gemm:
                nodes.append(helper.make_node("Add", [y, f"b{i}"], [f"add{i}"],
                                              name=f"add{i}"))
                y = f"add{i}"
        if r:
            nodes.append(helper.make_node("Relu", [y], [f"relu{i}"], name=f"relu{i}"))
            y = f"relu{i}"
        if last:
            nodes[-1].output[0] = "output"
        x = y
    return _model(nodes, inits, weights[0].shape[0], weights[-1].shape[1], batch, opset,
                  "mlp_float")


def mlp_qdq(net: Net, *, uint8_activations=False, opset=17) -> onnx.ModelProto:
    """The QDQ ONNX model of a quantised :class:`Net` (layout in the module docstring)."""
    if not net.quantized:
        raise ValueError("mlp_qdq needs a quantised Net")
    net.check()
    act_t = np.uint8 if uint8_activations else np.int8
    nodes, inits = [], []

    def qdq(x, q: Quant, tag):
        zp = q.zero_point + (128 if uint8_activations else 0)
        inits.extend([_init(f"{tag}_scale", q.scale, np.float32), _init(f"{tag}_zp", zp, act_t)])
        args = [f"{tag}_scale", f"{tag}_zp"]
        nodes.append(helper.make_node("QuantizeLinear", [x] + args, [f"{tag}_q"],
                                      name=f"quant_{tag}"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{tag}_q"] + args,
                                      [f"{tag}_dq"], name=f"dequant_{tag}"))
        return f"{tag}_dq"

    x = qdq("input", net.input_quant, "input")
    for i, L in enumerate(net.layers):
        s_in = np.float32(net.in_quant(i).scale)
        inits += [_init(f"w{i}_q", L.weight, np.int8), _init(f"w{i}_scale", L.w_scale,
                  np.float32), _init(f"w{i}_zp", 0, np.int8)]
        nodes.append(helper.make_node("DequantizeLinear", [f"w{i}_q", f"w{i}_scale",
                                      f"w{i}_zp"], [f"w{i}"], name=f"dequant_w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"mm{i}"], name=f"matmul{i}"))
        y = f"mm{i}"
        if L.bias is not None:
            inits += [_init(f"b{i}_q", L.bias, np.int32),
                      _init(f"b{i}_scale", s_in * np.float32(L.w_scale), np.float32)]
            nodes.append(helper.make_node("DequantizeLinear", [f"b{i}_q", f"b{i}_scale"],
                                          [f"b{i}"], name=f"dequant_b{i}"))
            nodes.append(helper.make_node("Add", [y, f"b{i}"], [f"add{i}"], name=f"add{i}"))
            y = f"add{i}"
        if L.relu:
            nodes.append(helper.make_node("Relu", [y], [f"relu{i}"], name=f"relu{i}"))
            y = f"relu{i}"
        if L.out_quant is not None:
            y = qdq(y, L.out_quant, f"act{i}")
        x = y
    nodes[-1].output[0] = "output"
    return _model(nodes, inits, net.in_features, net.out_features, None, opset, "mlp_qdq")


def mlp_qlinear(net: Net, *, uint8_activations=False, opset=17) -> onnx.ModelProto:
    """The QOperator (QLinearMatMul) ONNX model of a quantised :class:`Net` (layout in
    the module docstring). Every layer must have no bias, no ReLU and ``out_quant`` set
    (QLinearMatMul has no bias or activation and always requantises): ``ValueError``
    otherwise. ``opset`` is 10 or later."""
    if not net.quantized:
        raise ValueError("mlp_qlinear needs a quantised Net")
    net.check()
    for i, L in enumerate(net.layers):
        what = ("a bias" if L.bias is not None else "a ReLU" if L.relu
                else "no output quantisation" if L.out_quant is None else None)
        if what:
            raise ValueError(f"layer {i} ({L.name}) has {what}: a QLinearMatMul layer has "
                             f"no bias and no ReLU and requantises its output (use mlp_qdq)")
    if opset < 10:
        raise ValueError(f"QLinearMatMul needs opset 10 or later, not {opset}")
    act_t = np.uint8 if uint8_activations else np.int8
    nodes, inits = [], []

    def qparams(q: Quant, tag):
        zp = q.zero_point + (128 if uint8_activations else 0)
        inits.extend([_init(f"{tag}_scale", q.scale, np.float32),
                      _init(f"{tag}_zp", zp, act_t)])
        return [f"{tag}_scale", f"{tag}_zp"]

    a = qparams(net.input_quant, "input")
    nodes.append(helper.make_node("QuantizeLinear", ["input"] + a, ["input_q"],
                                  name="quant_input"))
    x = "input_q"
    for i, L in enumerate(net.layers):
        inits += [_init(f"w{i}_q", L.weight, np.int8),
                  _init(f"w{i}_scale", L.w_scale, np.float32), _init(f"w{i}_zp", 0, np.int8)]
        y = qparams(L.out_quant, f"act{i}")
        nodes.append(helper.make_node(
            "QLinearMatMul", [x] + a + [f"w{i}_q", f"w{i}_scale", f"w{i}_zp"] + y,
            [f"act{i}_q"], name=f"matmul{i}"))
        x, a = f"act{i}_q", y
    nodes.append(helper.make_node("DequantizeLinear", [x] + a, ["output"],
                                  name=f"dequant_act{len(net.layers) - 1}"))
    return _model(nodes, inits, net.in_features, net.out_features, None, opset,
                  "mlp_qlinear")


def _act_quant(a, relu, uint8_activations) -> Quant:
    a = np.asarray(a, dtype=np.float32)
    if uint8_activations:
        lo, hi = min(float(a.min()), 0.0), max(float(a.max()), 0.0)
        scale = np.float32((hi - lo) / 255) if hi > lo else np.float32(1)
        zp = int(np.clip(np.rint(-lo / np.float64(scale)), 0, 255))
        return Quant(float(scale), zp - 128)
    if relu:
        m = float(a.max())
        return Quant(float(np.float32(m / 255)) if m > 0 else 1.0, -128)
    m = float(np.abs(a).max())
    return Quant(float(np.float32(m / 127)) if m > 0 else 1.0, 0)


def quantize_mlp(weights, biases, relus, calib_x, *, uint8_activations=False,
                 reduce_range=False) -> Net:
    """Per-tensor post-training quantisation of a float MLP (scheme in the module
    docstring). Returns a quantised :class:`Net` whose every activation, the output
    included, is quantised."""
    x = np.asarray(calib_x, dtype=np.float32)
    net = Net([], input_quant=_act_quant(x, False, uint8_activations))
    s_in = np.float32(net.input_quant.scale)
    for i, (w, b, r) in enumerate(zip(weights, biases, relus)):
        w = np.asarray(w, dtype=np.float32)
        m = float(np.abs(w).max())
        q_max = 64 if reduce_range else 127
        s_w = np.float32(m / q_max) if m > 0 else np.float32(1)
        w_q = np.clip(np.rint(w / s_w), -q_max, q_max).astype(np.int8)
        b_q = None
        x = x @ w
        if b is not None:
            b = np.asarray(b, dtype=np.float32)
            b_q = np.clip(np.rint(b.astype(np.float64) / np.float64(s_in * s_w)),
                          -2**31, 2**31 - 1).astype(np.int32)
            x = x + b
        if r:
            x = np.maximum(x, np.float32(0))
        out_q = _act_quant(x, r, uint8_activations)
        net.layers.append(Layer(f"matmul{i}", w_q, b_q, bool(r), float(s_w), out_q))
        s_in = np.float32(out_q.scale)
    return net.check()
