"""Where onnxruntime is an exact oracle for integer matmuls, and where it is not.

onnxruntime's x86 CPU kernels for UINT8 activations times INT8 weights (MatMulInteger,
QLinearMatMul with UINT8 activations, and the QGemm/QLinearMatMul its graph optimiser
makes of QDQ models, which on x86 also turns INT8 activations into UINT8) are exact on
CPUs with AVX-512 VNNI or AVX-VNNI. On CPUs with AVX2 only they use VPMADDUBSW, which
adds the products of neighbouring ``k`` in pairs and saturates each pair sum to INT16::

    acc = sum over j of sat16(a[2j] * b[2j] + a[2j+1] * b[2j+1])

onnxruntime's own quantiser offers ``reduce_range`` (7-bit weights) for this. With
``|b| <= 64`` every pair sum stays within INT16 (``2 * 255 * 64 = 32,640``) and both
kinds of kernel are exact, so the tests that compare ncore with onnxruntime's integer
kernels for UINT8 activations draw their weights from ``[-W_SAFE, W_SAFE]`` on every
machine (the same test everywhere). ncore itself is exact for the full INT8 range; that
is checked against exact integer references elsewhere. ``test_qlinear.py::
test_onnxruntime_u8s8_kernel`` pins down both behaviours above on the machine it runs on.
"""

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

W_SAFE = 64                           # largest |weight| with every u8 x s8 pair in INT16


def pairwise_saturated(a, b):
    """The AVX2 u8 x s8 kernel's result, computed independently: ``a`` (M, K) UINT8 codes,
    ``b`` (K, N) INT8; products of ``k = 2j, 2j+1`` summed and saturated to INT16, then
    the pair sums added exactly."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if a.shape[1] % 2:
        a = np.pad(a, ((0, 0), (0, 1)))
        b = np.pad(b, ((0, 1), (0, 0)))
    p = a[:, :, None] * b[None, :, :]
    return np.clip(p[:, 0::2] + p[:, 1::2], -2**15, 2**15 - 1).sum(axis=1)


def matmul_integer(a, b):
    """onnxruntime's ``MatMulInteger`` of UINT8 ``a`` (M, K) and the INT8 constant ``b``
    (K, N), graph optimisations disabled: the INT32 result."""
    (m, k), n = a.shape, b.shape[1]
    g = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["y"])], "u8s8",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [m, n])],
        [numpy_helper.from_array(np.asarray(b, np.int8), "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"a": np.asarray(a, np.uint8)})[0]


def calibration_reader(x, batch=16):
    """A fresh onnxruntime ``CalibrationDataReader`` for ``quantize_static``: the rows
    of ``x`` in batches of ``batch`` as the graph input ``"input"``, then ``None``."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": x[i:i + batch]} for i in range(0, len(x), batch)])

        def get_next(self):
            return next(self.batches, None)

    return Reader()
