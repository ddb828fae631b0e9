"""ONNX front end: load a chain of fully connected layers into a :class:`sim.compiler.net.Net`.

``load_onnx(model)`` accepts an ``onnx.ModelProto``, serialised bytes or a path. It runs
``onnx.checker.check_model``, then walks the (topologically sorted) nodes once. Tensors
computed only from initializers and ``Constant`` nodes are constants; every other tensor
is an *activation* on the single chain from the graph input to the graph output. Each
activation may feed one node only (no branching), and every node touching the chain
takes exactly one activation (plus constants).

Supported graphs
----------------
* One graph input (inputs that are also initializers are ignored), FP32, rank 2
  ``[batch, features]`` (``batch`` may be symbolic); one FP32 graph output.
* Constant folding: ``Constant``, ``Identity``, ``Cast`` to FLOAT of an FP32 constant,
  and ``DequantizeLinear`` of constants (kept unfolded as weight/bias candidates).

Float models (FP32 weights and biases):

* ``MatMul(x, W)``, ``W`` a constant 2-D FP32 ``K x N`` matrix: starts a layer.
* ``Gemm(x, B, C?)`` with ``transA=0``, ``transB`` 0 or 1 (``B`` is transposed at load
  time), ``alpha=1`` and, when ``C`` is given, ``beta=1``; ``C`` is the bias.
* ``Add(y, b)`` / ``Add(b, y)``, ``y`` the current layer's MatMul/Gemm (or bias add)
  output and ``b`` a constant of shape ``[N]`` or ``[1, N]``: the bias (a second bias
  add is summed into it).
* ``Relu`` directly after a layer's MatMul/Gemm or bias add: ``relu=True``.
* ``Identity``; ``Cast`` to FLOAT of a float tensor (an identity).

QDQ INT8 models (ONNX Runtime's QDQ format; :mod:`sim.compiler.onnx_build` writes them)::

    x -> QuantizeLinear(s_in, zp_in) -> DequantizeLinear
      -> MatMul(., DequantizeLinear(W_q int8, w_scale, 0))   (or Gemm, transB allowed)
      -> [Add(., DequantizeLinear(b_q int32, in_scale*w_scale, 0)) or Add(., FP32 b)]
      -> [Relu] -> QuantizeLinear(s_out, zp_out) -> DequantizeLinear -> next layer ...

* Scales and zero points are per tensor (a one-element scale); activations are INT8
  or UINT8 (UINT8 zero points are shifted by -128, see :mod:`sim.compiler.net`). Weights are
  INT8 with zero point 0. A ``DequantizeLinear`` must repeat its ``QuantizeLinear``
  partner's scale, zero point and type.
* A DQ bias must have zero point 0 and scale ``in_scale*w_scale`` within 1e-6
  (relative). An FP32 bias is quantised to INT32 as ``rint(b / (in_scale*w_scale))``
  (half to even, saturating; the scale product taken in FP32) and noted in
  ``Net.notes``.
* Every MatMul/Gemm input must come through QuantizeLinear -> DequantizeLinear; the
  first QuantizeLinear (on the graph input) gives ``Net.input_quant``. The last layer
  either ends with Q -> DQ (``out_quant`` set; the host dequantises) or unquantised
  (``out_quant`` None). Mixing float and quantised layers is not supported.

QLinearMatMul INT8 models (ONNX's operator-oriented "QOperator" format; ONNX Runtime's
quantiser writes it for bias-free MatMul layers; :func:`sim.compiler.onnx_build.mlp_qlinear`)::

    x -> QuantizeLinear(s_in, zp_in)
      -> QLinearMatMul(., s_in, zp_in, W_q, w_scale, 0, s_out, zp_out)   a layer
      -> [QLinearMatMul ...] -> DequantizeLinear(s_out, zp_out) -> output

* Input ``a`` must be the integer activation itself, from a QuantizeLinear or a previous
  QLinearMatMul (not a DequantizeLinear output), and ``a_scale``/``a_zero_point`` must
  equal that activation's scale, zero point and type exactly.
* ``b`` is a constant (initializer or Constant) 2-D INT8 ``K x N`` matrix with a
  per-tensor FP32 scale and zero point 0. UINT8 weights are refused (with zero point 0
  they need not fit INT8; any other zero point is refused as for QDQ), as are
  per-column scales or zero points and a ``b`` computed by a node.
* The layer has no bias and no ReLU (``bias=None``, ``relu=False``) and requantises to
  ``y_scale``/``y_zero_point`` (``out_quant``; INT8 or UINT8). A ReLU or bias add in
  between would be a float operator on a DequantizeLinear output, and is refused; ONNX
  Runtime's quantiser folds a ReLU into the output range instead (zero point at the
  bottom of the range), which loads as a plain layer.
* The graph output comes from a DequantizeLinear repeating the last QLinearMatMul's
  ``y_scale``, ``y_zero_point`` and type.
* QDQ layers and QLinearMatMul layers may follow each other: a QDQ layer's
  QuantizeLinear output may feed a QLinearMatMul, and a QLinearMatMul's DequantizeLinear
  output a QDQ MatMul/Gemm (the arithmetic is the same).
* ``MatMulInteger`` (an INT32 result rescaled by separate float operators, as dynamic
  quantisation writes) is refused with its own message.

Anything else raises :class:`UnsupportedModel` naming the node, never a silent
miscompile: ``unsupported operator 'Conv' (node 'conv1')``.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError
import onnx
from onnx import TensorProto, helper, numpy_helper

from sim.compiler.net import Layer, Net, Quant

__all__ = ["UnsupportedModel", "load_onnx"]


class UnsupportedModel(ValueError):
    """The model is invalid or uses an operator, attribute or pattern ncore cannot run."""


@dataclass
class _DQConst:
    """``DequantizeLinear`` of constants, kept unfolded: a weight or bias candidate."""
    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray | None
    node: str


@dataclass(frozen=True)
class _QParams:
    """An activation's QuantizeLinear parameters as written in the model."""
    scale: np.float32
    zero_point: int
    dtype: np.dtype                      # int8 or uint8

    def quant(self) -> Quant:
        return Quant(float(self.scale),
                     self.zero_point - (128 if self.dtype == np.uint8 else 0))

    def __str__(self):
        return f"scale {self.scale!r}, zero point {self.zero_point} ({self.dtype})"


@dataclass(frozen=True)
class _Act:
    """An activation on the chain.

    ``kind``: ``"input"`` (the graph input), ``"layer"`` (output of layer ``layer`` after
    its ``stage``: ``"matmul"``, ``"bias"`` or ``"relu"``), ``"quant"`` (an integer
    QuantizeLinear or QLinearMatMul output, quantised with ``qp`` by ``src``) or
    ``"dequant"`` (its DequantizeLinear).
    """
    kind: str
    layer: int = -1
    stage: str = ""
    qp: _QParams | None = None
    src: tuple[str, str] = ("", "")      # "quant"/"dequant": (op, node) that quantised it

    def describe(self):
        return {"input": "the graph input", "layer": f"a layer output (after {self.stage})",
                "quant": "a quantised (integer) tensor",
                "dequant": "a dequantised activation"}[self.kind]


def _node_label(node, i):
    return node.name or f"#{i} (unnamed)"


def _scalar_scale(scale, where):
    s = np.asarray(scale)
    if s.size != 1:
        raise UnsupportedModel(f"per-channel quantisation ({s.size} scales) in {where} is "
                               f"not supported: ncore quantises per tensor")
    if s.dtype != np.float32:
        raise UnsupportedModel(f"{where}: the scale must be FP32, not {s.dtype}")
    return np.float32(s.reshape(()))


class _Loader:
    def __init__(self, graph):
        self.graph = graph
        self.consts: dict[str, np.ndarray | _DQConst] = {
            t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.acts: dict[str, _Act] = {}
        self.consumer: dict[str, str] = {}      # activation -> the node that consumed it
        self.layers: list[Layer] = []
        self.in_scales: list[np.float32] = []   # quantised: each layer's input scale
        self.mode: str | None = None            # "float" or "quant", from the first layer
        self.input_quant: Quant | None = None
        self.notes: list[str] = []
        self.features: int | None = None        # the chain's current feature count

    # -- entry --------------------------------------------------------------------------
    def run(self) -> Net:
        g = self.graph
        inputs = [v for v in g.input if v.name not in self.consts]
        if len(inputs) != 1:
            raise UnsupportedModel(f"the graph must have exactly one input, not "
                                   f"{len(inputs)} ({', '.join(v.name for v in inputs)})")
        if len(g.output) != 1:
            raise UnsupportedModel(f"the graph must have exactly one output, not "
                                   f"{len(g.output)}")
        inp, out = inputs[0], g.output[0]
        tt = inp.type.tensor_type
        if not inp.type.HasField("tensor_type") or tt.elem_type != TensorProto.FLOAT:
            raise UnsupportedModel(f"the graph input {inp.name!r} must be an FP32 tensor")
        if not tt.HasField("shape") or len(tt.shape.dim) != 2:
            raise UnsupportedModel(f"the graph input {inp.name!r} must have rank 2 "
                                   f"[batch, features]")
        if tt.shape.dim[1].HasField("dim_value"):
            self.features = tt.shape.dim[1].dim_value
        self.acts[inp.name] = _Act("input")

        for i, node in enumerate(g.node):
            self._node(i, node)

        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise UnsupportedModel(f"the graph output {out.name!r} must be FP32")
        a = self.acts.get(out.name)
        if a is None:
            raise UnsupportedModel(f"the graph output {out.name!r} is not computed from "
                                   f"the graph input")
        if out.name in self.consumer:
            raise UnsupportedModel(f"the graph output {out.name!r} is also consumed by "
                                   f"node {self.consumer[out.name]!r}")
        if a.kind not in ("layer", "dequant") or not self.layers:
            raise UnsupportedModel(f"the graph output {out.name!r} is {a.describe()}, not "
                                   f"the FP32 output of a MatMul/Gemm layer")
        net = Net(self.layers, input_name=inp.name, output_name=out.name,
                  input_quant=self.input_quant, notes=self.notes)
        try:
            return net.check()
        except ValueError as e:
            raise UnsupportedModel(str(e)) from e

    def _node(self, i, node):
        op, name = node.op_type, _node_label(node, i)
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedModel(f"unsupported operator '{node.domain}.{op}' "
                                   f"(node '{name}')")
        ins = [t for t in node.input if t]
        acts = [t for t in ins if t in self.acts]
        if not acts:
            return self._fold(node, name, ins)
        handler = getattr(self, "_op_" + op, None)
        if handler is None:
            raise UnsupportedModel(f"unsupported operator '{op}' (node '{name}')")
        if len(acts) > 1:
            raise UnsupportedModel(
                f"{op} node '{name}' combines two activations ({', '.join(acts)}); only "
                f"chains of layers with constant weights and biases are supported")
        t = acts[0]
        if t in self.consumer:
            raise UnsupportedModel(
                f"branching graph: tensor {t!r} feeds node '{self.consumer[t]}' and "
                f"{op} node '{name}'; only a single chain of layers is supported")
        self.consumer[t] = name
        if len(node.output) != 1:
            raise UnsupportedModel(f"{op} node '{name}' must have exactly one output")
        self.acts[node.output[0]] = handler(node, name, t, self.acts[t], i)

    def _const(self, node, name, t, what):
        if t not in self.consts:
            raise UnsupportedModel(f"{node.op_type} node '{name}': {what} {t!r} must be a "
                                   f"constant")
        return self.consts[t]

    # -- constants ----------------------------------------------------------------------
    def _fold(self, node, name, ins):
        op, attrs = node.op_type, _attrs(node)
        out = node.output[0] if len(node.output) == 1 else None
        if out is None:
            raise UnsupportedModel(f"{op} node '{name}' must have exactly one output")
        if op == "Constant":
            if "value" in attrs:
                self.consts[out] = numpy_helper.to_array(attrs["value"])
            elif attrs.keys() & {"value_float", "value_floats"}:
                v = attrs.get("value_float", attrs.get("value_floats"))
                self.consts[out] = np.asarray(v, dtype=np.float32)
            elif attrs.keys() & {"value_int", "value_ints"}:
                v = attrs.get("value_int", attrs.get("value_ints"))
                self.consts[out] = np.asarray(v, dtype=np.int64)
            else:
                raise UnsupportedModel(f"Constant node '{name}': unsupported attribute "
                                       f"{sorted(attrs)}")
            return
        vals = [self._const(node, name, t, "input") for t in ins]
        if op == "Identity":
            self.consts[out] = vals[0]
        elif op == "Cast" and attrs.get("to") == TensorProto.FLOAT \
                and isinstance(vals[0], np.ndarray) and vals[0].dtype == np.float32:
            self.consts[out] = vals[0]
        elif op == "DequantizeLinear" and all(isinstance(v, np.ndarray) for v in vals):
            if attrs.get("block_size", 0):
                raise UnsupportedModel(f"blocked quantisation (block_size) in "
                                       f"DequantizeLinear node '{name}' is not supported")
            self.consts[out] = _DQConst(vals[0], vals[1], vals[2] if len(vals) > 2 else None,
                                        name)
        elif op == "Cast":
            raise UnsupportedModel(f"unsupported operator 'Cast' (node '{name}'): only a "
                                   f"cast of an FP32 tensor to FLOAT is supported")
        else:
            raise UnsupportedModel(f"unsupported operator '{op}' (node '{name}') on "
                                   f"constants")

    # -- chain operators: each returns the output activation -----------------------------
    def _op_Identity(self, node, name, t, a, i):
        return a

    def _op_Cast(self, node, name, t, a, i):
        if _attrs(node).get("to") != TensorProto.FLOAT or a.kind == "quant":
            raise UnsupportedModel(f"unsupported operator 'Cast' (node '{name}'): only a "
                                   f"cast of an FP32 tensor to FLOAT is supported")
        return a

    def _op_Relu(self, node, name, t, a, i):
        if a.kind != "layer":
            hint = ""
            if a.kind == "dequant" and a.src[0] == "QLinearMatMul":
                hint = (f" (QLinearMatMul node '{a.src[1]}' has no ReLU: quantise its "
                        f"output to a range starting at 0 instead)")
            elif a.kind == "dequant":
                hint = " (apply Relu before QuantizeLinear)"
            raise UnsupportedModel(f"Relu node '{name}' is applied to {a.describe()}: ReLU "
                                   f"is only supported directly after a layer's "
                                   f"MatMul/Gemm or bias add{hint}")
        self.layers[a.layer].relu = True
        return _Act("layer", a.layer, "relu")

    def _op_MatMul(self, node, name, t, a, i):
        if node.input[0] != t:
            raise UnsupportedModel(f"MatMul node '{name}': the activation must be the "
                                   f"left operand")
        w = self._const(node, name, node.input[1], "weight")
        return self._layer(node, name, a, w, False, None, i)

    def _op_Gemm(self, node, name, t, a, i):
        at = _attrs(node)
        if at.get("transA", 0) != 0:
            raise UnsupportedModel(f"Gemm node '{name}': transA={at['transA']} is not "
                                   f"supported (only transA=0)")
        if at.get("alpha", 1.0) != 1.0:
            raise UnsupportedModel(f"Gemm node '{name}': alpha={at['alpha']} is not "
                                   f"supported (only alpha=1)")
        if node.input[0] != t:
            raise UnsupportedModel(f"Gemm node '{name}': the activation must be input A")
        w = self._const(node, name, node.input[1], "B")
        c = None
        if len(node.input) > 2 and node.input[2]:
            c = self._const(node, name, node.input[2], "C")
            if at.get("beta", 1.0) != 1.0:
                raise UnsupportedModel(f"Gemm node '{name}': beta={at['beta']} is not "
                                       f"supported (only beta=1)")
        return self._layer(node, name, a, w, bool(at.get("transB", 0)), c, i)

    def _layer(self, node, name, a, w, trans, bias, i):
        op = node.op_type
        if a.kind not in ("input", "layer", "dequant"):
            raise UnsupportedModel(f"{op} node '{name}' takes {a.describe()}; expected an "
                                   f"FP32 activation (DequantizeLinear first)")
        mode = "quant" if a.kind == "dequant" else "float"
        if self.mode is None:
            self.mode = mode
        elif self.mode != mode:
            raise UnsupportedModel(
                f"{op} node '{name}': mixed float and quantised layers are not supported "
                f"(every MatMul/Gemm input of a QDQ model must come through QuantizeLinear "
                f"-> DequantizeLinear, and a float model has no QDQ pairs)")
        if mode == "float":
            if isinstance(w, _DQConst):
                raise UnsupportedModel(f"{op} node '{name}': a quantised weight with float "
                                       f"activations (mixed/weight-only quantisation) is "
                                       f"not supported")
            if w.dtype != np.float32:
                raise UnsupportedModel(f"{op} node '{name}': the weight must be FP32, not "
                                       f"{w.dtype}")
            w_scale = None
        else:
            if not isinstance(w, _DQConst):
                raise UnsupportedModel(f"{op} node '{name}': quantised activations need an "
                                       f"INT8 weight through DequantizeLinear (mixed float "
                                       f"and quantised layers are not supported)")
            where = f"the weight of {op} node '{name}' (DequantizeLinear node '{w.node}')"
            w_scale = _scalar_scale(w.scale, where)
            if w.q.dtype != np.int8:
                raise UnsupportedModel(f"{where}: weights must be INT8, not {w.q.dtype}")
            if w.zero_point is not None and np.any(np.asarray(w.zero_point) != 0):
                raise UnsupportedModel(f"{where}: the weight zero point must be 0, not "
                                       f"{np.asarray(w.zero_point).ravel().tolist()}")
            w = w.q
        idx = self._append_layer(node, name, a, w, trans, w_scale, i)
        if bias is None:
            return _Act("layer", idx, "matmul")
        self._add_bias(idx, bias, node, name)
        return _Act("layer", idx, "bias")

    def _append_layer(self, node, name, a, w, trans, w_scale, i):
        """Check the weight's shape against the chain and append the layer; its index."""
        op = node.op_type
        if w.ndim != 2:
            raise UnsupportedModel(f"{op} node '{name}': the weight must be a 2-D matrix, "
                                   f"not shape {w.shape}")
        w = np.ascontiguousarray(w.T if trans else w)
        if self.features is not None and w.shape[0] != self.features:
            raise UnsupportedModel(f"shape mismatch at {op} node '{name}': its weight takes "
                                   f"{w.shape[0]} features but its input has "
                                   f"{self.features}")
        self.features = w.shape[1]
        self.layers.append(Layer(name=node.name or f"{op}_{i}", weight=w,
                                 w_scale=None if w_scale is None else float(w_scale)))
        if self.mode == "quant":
            self.in_scales.append(a.qp.scale)
        return len(self.layers) - 1

    def _op_QLinearMatMul(self, node, name, t, a, i):
        where = f"QLinearMatMul node '{name}'"
        if node.input[0] != t:
            raise UnsupportedModel(f"{where}: the activation must be input a, and b a "
                                   f"constant INT8 weight matrix")
        if a.kind != "quant":
            hint = (" (drop the DequantizeLinear: QLinearMatMul takes the quantised tensor)"
                    if a.kind == "dequant" else " (QuantizeLinear first)")
            raise UnsupportedModel(f"{where} takes {a.describe()}; input a must be an INT8 "
                                   f"or UINT8 activation from QuantizeLinear or another "
                                   f"QLinearMatMul{hint}")
        if self.mode is None:
            self.mode = "quant"
        a_qp = self._qparams(node, name, scale_at=1, zp_at=2, what="a")
        if a_qp != a.qp:
            raise UnsupportedModel(
                f"{where}: a_scale/a_zero_point ({a_qp}) do not match the quantisation of "
                f"its input a ({a.qp}, from {a.src[0]} node '{a.src[1]}')")
        w = self._const(node, name, node.input[3], "b (the weight)")
        wq = f"the weight b of {where}"
        if not isinstance(w, np.ndarray):
            raise UnsupportedModel(f"{wq}: b must be an INT8 initializer or Constant, not a "
                                   f"DequantizeLinear output")
        w_scale = _scalar_scale(self._const(node, name, node.input[4], "b_scale"), wq)
        zp = np.asarray(self._const(node, name, node.input[5], "b_zero_point"))
        if zp.size != 1:
            raise UnsupportedModel(f"per-channel quantisation ({zp.size} zero points) in {wq} "
                                   f"is not supported: ncore quantises per tensor")
        if np.any(zp != 0):
            raise UnsupportedModel(f"{wq}: the weight zero point must be 0, not "
                                   f"{zp.ravel().tolist()} ({zp.dtype})")
        if w.dtype != np.int8:
            raise UnsupportedModel(f"{wq}: weights must be INT8 (zero point 0), not "
                                   f"{w.dtype}")
        idx = self._append_layer(node, name, a, w, False, w_scale, i)
        y_qp = self._qparams(node, name, scale_at=6, zp_at=7, what="y")
        self.layers[idx].out_quant = y_qp.quant()
        return _Act("quant", qp=y_qp, src=("QLinearMatMul", name))

    def _op_MatMulInteger(self, node, name, t, a, i):
        raise UnsupportedModel(
            f"unsupported operator 'MatMulInteger' (node '{name}'): its INT32 output is "
            f"rescaled by separate float operators (dynamic quantisation), which ncore does "
            f"not run; quantise statically to the QDQ format or to QLinearMatMul")

    def _op_Add(self, node, name, t, a, i):
        if a.kind != "layer" or a.stage == "relu":
            hint = (" (a QDQ model must not requantise between MatMul and its bias Add; "
                    "export the layer as Gemm, whose bias ONNX Runtime's quantiser keeps "
                    "in INT32)") if a.kind == "dequant" else ""
            raise UnsupportedModel(f"Add node '{name}' is applied to {a.describe()}: only a "
                                   f"bias add directly after MatMul/Gemm is supported{hint}")
        other = node.input[1] if node.input[0] == t else node.input[0]
        self._add_bias(a.layer, self._const(node, name, other, "bias"), node, name)
        return _Act("layer", a.layer, "bias")

    def _add_bias(self, idx, b, node, name):
        L = self.layers[idx]
        where = f"the bias of layer {idx} ({L.name}) at {node.op_type} node '{name}'"
        shape = (b.q if isinstance(b, _DQConst) else b).shape
        if shape not in ((L.N,), (1, L.N)):
            raise UnsupportedModel(f"{where}: shape {list(shape)} is not [{L.N}] or "
                                   f"[1, {L.N}]")
        if self.mode == "float":
            if isinstance(b, _DQConst) or b.dtype != np.float32:
                raise UnsupportedModel(f"{where}: a float model's bias must be FP32")
            b = b.reshape(L.N)
            L.bias = b.copy() if L.bias is None else (L.bias + b).astype(np.float32)
            return
        s = np.float32(self.in_scales[idx]) * np.float32(L.w_scale)
        if isinstance(b, _DQConst):
            where += f" (DequantizeLinear node '{b.node}')"
            b_scale = _scalar_scale(b.scale, where)
            if b.q.dtype != np.int32:
                raise UnsupportedModel(f"{where}: a quantised bias must be INT32, not "
                                       f"{b.q.dtype}")
            if b.zero_point is not None and np.any(np.asarray(b.zero_point) != 0):
                raise UnsupportedModel(f"{where}: the bias zero point must be 0")
            if abs(float(b_scale) - float(s)) > 1e-6 * float(s):
                raise UnsupportedModel(f"{where}: the bias scale {b_scale!r} is not "
                                       f"in_scale*w_scale = {s!r}")
            bq = b.q.reshape(L.N).astype(np.int64)
        elif b.dtype == np.float32:
            bq = np.clip(np.rint(b.reshape(L.N).astype(np.float64) / np.float64(s)),
                         -2**31, 2**31 - 1).astype(np.int64)
            err = np.max(np.abs(bq * np.float64(s) - b.reshape(L.N)))
            self.notes.append(f"layer {idx} ({L.name}): FP32 bias quantised to INT32 with "
                              f"scale in_scale*w_scale = {s!r} (max error {err:.3g})")
        else:
            raise UnsupportedModel(f"{where}: the bias must be FP32 or INT32 through "
                                   f"DequantizeLinear, not {b.dtype}")
        if L.bias is not None:
            bq = bq + L.bias
        L.bias = np.clip(bq, -2**31, 2**31 - 1).astype(np.int32)

    def _qparams(self, node, name, default_dtype=None, *, scale_at=1, zp_at=2,
                 what="") -> _QParams:
        """An activation's quantisation: the scale and zero point at inputs ``scale_at``
        and ``zp_at`` of ``node`` (``what``: which of a QLinearMatMul's tensors)."""
        at = _attrs(node)
        where = f"{node.op_type} node '{name}'" + (f" ({what})" if what else "")
        if at.get("block_size", 0):
            raise UnsupportedModel(f"blocked quantisation (block_size) in {where} is not "
                                   f"supported")
        s_what, zp_what = (f"{what}_scale", f"{what}_zero_point") if what else \
            ("scale", "zero point")
        scale = _scalar_scale(self._const(node, name, node.input[scale_at], s_what), where)
        zp_name = node.input[zp_at] if len(node.input) > zp_at and node.input[zp_at] \
            else None
        if zp_name is not None:
            zp = np.asarray(self._const(node, name, zp_name, zp_what))
            if zp.size != 1:
                raise UnsupportedModel(f"per-channel quantisation ({zp.size} zero points) "
                                       f"in {where} is not supported")
            dtype, zp = zp.dtype, int(zp.reshape(()))
        elif default_dtype is not None:            # DequantizeLinear: the input's type
            dtype, zp = default_dtype, 0
        else:                                      # QuantizeLinear: UINT8 unless told
            out_t = at.get("output_dtype", 0) or TensorProto.UINT8
            dtype, zp = helper.tensor_dtype_to_np_dtype(out_t), 0
        if dtype not in (np.int8, np.uint8):
            raise UnsupportedModel(f"{where}: activations must be INT8 or UINT8, not "
                                   f"{np.dtype(dtype)}")
        qp = _QParams(scale, zp, np.dtype(dtype))
        try:
            qp.quant()
        except ValueError as e:
            raise UnsupportedModel(f"{where}: {e}") from e
        return qp

    def _op_QuantizeLinear(self, node, name, t, a, i):
        qp = self._qparams(node, name)
        if a.kind == "input":
            self.input_quant = qp.quant()
        elif a.kind == "layer":
            if self.mode != "quant":
                raise UnsupportedModel(f"QuantizeLinear node '{name}' quantises the output "
                                       f"of a float layer: mixed float and quantised layers "
                                       f"are not supported")
            self.layers[a.layer].out_quant = qp.quant()
        else:
            raise UnsupportedModel(f"QuantizeLinear node '{name}' is applied to "
                                   f"{a.describe()}: only the graph input and layer outputs "
                                   f"may be quantised")
        return _Act("quant", qp=qp, src=("QuantizeLinear", name))

    def _op_DequantizeLinear(self, node, name, t, a, i):
        if a.kind != "quant":
            raise UnsupportedModel(f"DequantizeLinear node '{name}' is applied to "
                                   f"{a.describe()}")
        qp = self._qparams(node, name, a.qp.dtype)
        if qp != a.qp:
            raise UnsupportedModel(f"DequantizeLinear node '{name}' ({qp}) does not match "
                                   f"its {a.src[0]} partner '{a.src[1]}' ({a.qp})")
        return _Act("dequant", qp=qp, src=a.src)


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _one_line(e, limit=300):
    """An exception's message as one line of at most ``limit`` characters (ONNX's
    checker writes several, with the offending node in the later ones), so that an
    invalid model is reported in one line."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def load_onnx(model) -> Net:
    """Load an ONNX model (``ModelProto``, serialised bytes or a path) into a :class:`Net`.

    Raises :class:`UnsupportedModel` for invalid models and anything outside the
    supported subset (see the module docstring).
    """
    what = "the model"
    if isinstance(model, (str, os.PathLike)):
        what = os.fspath(model)
        try:
            data = pathlib.Path(model).read_bytes()
        except OSError as e:
            raise UnsupportedModel(f"{what}: cannot read it ({e.strerror or e})") from None
        model = data
    if isinstance(model, (bytes, bytearray)):
        try:
            model = onnx.load_from_string(bytes(model))
        except (DecodeError, ValueError, RuntimeError) as e:
            raise UnsupportedModel(f"{what} is not a valid ONNX model: the file does not "
                                   f"decode as one ({_one_line(e)})") from None
    elif not isinstance(model, onnx.ModelProto):
        raise TypeError(f"load_onnx takes a ModelProto, bytes or a path, not "
                        f"{type(model).__name__}")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise UnsupportedModel(f"{what} is not a valid ONNX model: {_one_line(e)}") from None
    return _Loader(model.graph).run()
