"""The compiler's model representation: a chain of fully connected layers.

A :class:`Net` is what the ONNX front end (:mod:`sim.compiler.onnx_front`) produces and the
compiler (:mod:`sim.compiler.lower`) lowers. It is a chain: the input feeds layer 0, each
layer's output feeds the next, the last layer's output is the model's output.
Activations are batches of feature vectors, ``batch x features``, as in ONNX.

Each layer is ``y = act(x @ W + b)``:

* **float nets** (``Net.quantized`` false): ``W`` is FP32 ``K x N``, ``b`` FP32 ``N`` or
  absent, ``act`` ReLU or identity. On ncore they run with BF16 or FP16 operands and
  FP32 accumulation (the compiler casts weights, the runtime casts inputs; numerics in
  ``docs/compiler.md``).
* **quantised nets** (``Net.quantized`` true, from QDQ models): every activation
  between layers is INT8 with a per-tensor :class:`Quant` (``real = scale * (q -
  zero_point)``); ``W`` is INT8 with a per-tensor scale and zero point 0; ``b`` is INT32
  in units of ``in_scale * w_scale`` (ONNX's bias convention). The layer's accumulator
  is ``sum_k (x_q - x_zp) * w_q + b``; it is requantised to the next activation's
  :class:`Quant`, or, for a last layer without output quantisation, returned as the
  INT32 accumulator and dequantised on the host (``acc * in_scale * w_scale``).

UINT8 activations (ONNX's usual choice) are held as INT8 with the zero point moved by
-128: ``q_u8 - zp_u8 == (q_u8 - 128) - (zp_u8 - 128)``, so the arithmetic is the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Quant", "Layer", "Net", "quantize_input", "dequantize"]


@dataclass(frozen=True)
class Quant:
    """Per-tensor affine INT8 quantisation: ``real = scale * (q - zero_point)``.

    ``scale`` is an FP32 value > 0, ``zero_point`` in -128..127 (UINT8 tensors
    already shifted by -128, see the module docstring).
    """
    scale: float
    zero_point: int = 0

    def __post_init__(self):
        s = np.float32(self.scale)
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"a quantisation scale must be finite and > 0, not {self.scale}")
        if not -128 <= int(self.zero_point) <= 127:
            raise ValueError(f"an INT8 zero point must be in -128..127, not {self.zero_point}")


@dataclass
class Layer:
    """One fully connected layer ``y = act(x @ weight + bias)``.

    ``name`` is the ONNX node (MatMul or Gemm) it came from, for messages and listings.
    """
    name: str
    weight: np.ndarray                   # K x N: float32 (float nets) or int8 (quantised)
    bias: np.ndarray | None = None       # N: float32 (float) or int32 (quantised)
    relu: bool = False
    w_scale: float | None = None         # quantised: the weight's scale (zero point 0)
    out_quant: Quant | None = None       # quantised: requantise the output to this

    @property
    def K(self):
        return self.weight.shape[0]

    @property
    def N(self):
        return self.weight.shape[1]


@dataclass
class Net:
    """A chain of :class:`Layer` s from ``input_name`` to ``output_name``.

    ``input_quant`` is set for quantised nets: the host quantises the FP32 input with it
    (round half to even, saturate: ONNX QuantizeLinear). The output is FP32 for both
    kinds: quantised nets dequantise their last activation on the host.
    """
    layers: list[Layer]
    input_name: str = "input"
    output_name: str = "output"
    input_quant: Quant | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def quantized(self):
        return self.input_quant is not None

    @property
    def in_features(self):
        return self.layers[0].K

    @property
    def out_features(self):
        return self.layers[-1].N

    def check(self):
        """Raise ``ValueError`` if the chain is inconsistent."""
        if not self.layers:
            raise ValueError("a net needs at least one MatMul/Gemm layer")
        for i, L in enumerate(self.layers):
            w = np.asarray(L.weight)
            if w.ndim != 2 or min(w.shape) < 1:
                raise ValueError(f"layer {i} ({L.name}): the weight must be a non-empty "
                                 f"2-D matrix, not shape {w.shape}")
            if i and self.layers[i - 1].N != L.K:
                raise ValueError(
                    f"shape mismatch: layer {i - 1} ({self.layers[i - 1].name}) gives "
                    f"{self.layers[i - 1].N} features, layer {i} ({L.name}) takes {L.K}")
            if L.bias is not None and np.asarray(L.bias).shape != (L.N,):
                raise ValueError(f"layer {i} ({L.name}): bias shape {np.asarray(L.bias).shape}"
                                 f" does not match the {L.N} outputs")
            if self.quantized:
                if w.dtype != np.int8:
                    raise ValueError(f"layer {i} ({L.name}): quantised weights must be int8")
                if L.w_scale is None:
                    raise ValueError(f"layer {i} ({L.name}): quantised layer without w_scale")
                if L.bias is not None and np.asarray(L.bias).dtype != np.int32:
                    raise ValueError(f"layer {i} ({L.name}): quantised bias must be int32")
                if L.out_quant is None and i != len(self.layers) - 1:
                    raise ValueError(f"layer {i} ({L.name}): only the last layer may leave "
                                     f"its output unquantised")
            elif w.dtype != np.float32:
                raise ValueError(f"layer {i} ({L.name}): float weights must be float32")
        return self

    def in_quant(self, i) -> Quant | None:
        """The quantisation of layer ``i``'s input (quantised nets)."""
        if not self.quantized:
            return None
        return self.input_quant if i == 0 else self.layers[i - 1].out_quant


def quantize_input(x, q: Quant):
    """ONNX QuantizeLinear to INT8: ``saturate(round_half_even(x / scale) + zp)``."""
    x = np.asarray(x, dtype=np.float32)
    r = np.rint(x / np.float32(q.scale)).astype(np.float64) + q.zero_point
    return np.clip(r, -128, 127).astype(np.int8)


def dequantize(q_values, q: Quant):
    """ONNX DequantizeLinear: ``(q - zp) * scale`` in FP32."""
    return ((np.asarray(q_values).astype(np.int32) - q.zero_point).astype(np.float32)
            * np.float32(q.scale))
