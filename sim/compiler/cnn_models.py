"""The CNNs of issue 27, built and trained by the project in NumPy (no downloads), and
written as ONNX models with ``onnx.helper``.

* :func:`train_lenet`: a LeNet-style network on scikit-learn's 8x8 digits: Conv 3x3
  (1 -> 8, pad 1) + ReLU, MaxPool 2x2, Conv 3x3 (8 -> 16, pad 1) + ReLU, MaxPool 2x2,
  Flatten, Gemm (64 -> 10). Trained with Adam on the training split (softmax cross
  entropy, mini-batches of 32), FP32.
* :func:`resnet_block_model`: a small ResNet-style network (random weights, fixed
  seed): a stem Conv + BatchNorm + ReLU, two residual blocks (Conv-BN-ReLU-Conv-BN, Add,
  ReLU), one of them strided with a 1x1/2 Conv-BN shortcut, GlobalAveragePool, Flatten,
  Gemm.
* :func:`mobilenet_block_model`: a depthwise-separable block (MobileNet style): a
  depthwise 3x3 Conv + BatchNorm + ReLU6 (Clip 0..6), a pointwise 1x1 Conv + BatchNorm +
  ReLU6, then a MaxPool, Flatten and Gemm.

The NumPy training uses its own forward and backward passes (im2col convolutions); the
ONNX graph is built from the same parameters, so onnxruntime and the core run exactly
the trained network.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["digits_images", "train_lenet", "lenet_onnx", "resnet_block_model",
           "mobilenet_block_model", "ort_run"]

OPSET = 17


def digits_images():
    """scikit-learn's digits as ``N x 1 x 8 x 8`` FP32 in [0, 1], split as the MLP demo
    splits them (80/20, stratified, random_state 0): ``(x_train, y_train, x_test,
    y_test)``."""
    from sim.compiler.demo import load_data
    x_tr, x_te, y_tr, y_te = load_data()
    return (x_tr.reshape(-1, 1, 8, 8), y_tr, x_te.reshape(-1, 1, 8, 8), y_te)


# ---- NumPy layers -------------------------------------------------------------------------

def _cols(x, K, pad):
    """``N x C x H x W`` -> ``N x (C*K*K) x (H*W)`` patches of a stride-1 'same' conv."""
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((N, C, K, K, H, W), x.dtype)
    for i in range(K):
        for j in range(K):
            cols[:, :, i, j] = xp[:, :, i:i + H, j:j + W]
    return cols.reshape(N, C * K * K, H * W)


def _uncols(dcols, shape, K, pad):
    N, C, H, W = shape
    d = dcols.reshape(N, C, K, K, H, W)
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dcols.dtype)
    for i in range(K):
        for j in range(K):
            dxp[:, :, i:i + H, j:j + W] += d[:, :, i, j]
    return dxp[:, :, pad:pad + H, pad:pad + W]


def _lenet_forward(P, x):
    cache = {}
    h = x
    for k in (1, 2):
        w, b = P[f"w{k}"], P[f"b{k}"]
        cols = _cols(h, 3, 1)
        z = np.einsum("fk,nkp->nfp", w.reshape(w.shape[0], -1), cols) + b[None, :, None]
        z = z.reshape(h.shape[0], w.shape[0], h.shape[2], h.shape[3])
        a = np.maximum(z, 0)
        N, C, H, W = a.shape
        blocks = a.reshape(N, C, H // 2, 2, W // 2, 2)
        pooled = blocks.max(axis=(3, 5))
        cache[k] = (h, cols, z, a, pooled)
        h = pooled
    flat = h.reshape(h.shape[0], -1)
    logits = flat @ P["wf"] + P["bf"]
    cache["flat"] = flat
    return logits, cache


def _lenet_backward(P, cache, dlogits):
    g = {"wf": cache["flat"].T @ dlogits, "bf": dlogits.sum(0)}
    dh = (dlogits @ P["wf"].T).reshape(cache[2][4].shape)
    for k in (2, 1):
        h, cols, z, a, pooled = cache[k]
        N, C, H, W = a.shape
        blocks = a.reshape(N, C, H // 2, 2, W // 2, 2)
        mask = blocks == pooled[:, :, :, None, :, None]
        # one winner per window (the first maximum), as a max pool's gradient
        first = np.cumsum(mask.reshape(N, C, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5)
                          .reshape(N, C, H // 2, W // 2, 4), axis=-1) == 1
        first = first & mask.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H // 2, W // 2, 4)
        da = (first * dh[..., None]).reshape(N, C, H // 2, W // 2, 2, 2) \
            .transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H, W)
        dz = da * (z > 0)
        w = P[f"w{k}"]
        dzf = dz.reshape(N, C, H * W)
        g[f"w{k}"] = np.einsum("nfp,nkp->fk", dzf, cols).reshape(w.shape)
        g[f"b{k}"] = dzf.sum(axis=(0, 2))
        if k == 2:
            dcols = np.einsum("fk,nfp->nkp", w.reshape(w.shape[0], -1), dzf)
            dh = _uncols(dcols, h.shape, 3, 1)
    return g


def train_lenet(seed=0, epochs=20, batch=32, lr=3e-3):
    """Train the LeNet-style network (module docstring); returns its parameters
    (``w1 8x1x3x3, b1, w2 16x8x3x3, b2, wf 64x10, bf``, FP32)."""
    x_tr, y_tr, _, _ = digits_images()
    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    P = {"w1": he((8, 1, 3, 3), 9), "b1": np.zeros(8, np.float32),
         "w2": he((16, 8, 3, 3), 72), "b2": np.zeros(16, np.float32),
         "wf": he((64, 10), 64), "bf": np.zeros(10, np.float32)}
    m = {k: np.zeros_like(v) for k, v in P.items()}
    v = {k: np.zeros_like(v) for k, v in P.items()}
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(x_tr))
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            logits, cache = _lenet_forward(P, x_tr[idx])
            e = np.exp(logits - logits.max(1, keepdims=True))
            prob = e / e.sum(1, keepdims=True)
            prob[np.arange(len(idx)), y_tr[idx]] -= 1
            g = _lenet_backward(P, cache, prob / len(idx))
            step += 1
            for k in P:
                m[k] = 0.9 * m[k] + 0.1 * g[k]
                v[k] = 0.999 * v[k] + 0.001 * g[k] ** 2
                mh, vh = m[k] / (1 - 0.9 ** step), v[k] / (1 - 0.999 ** step)
                P[k] = (P[k] - lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
    return P


def lenet_predict(P, x):
    """The NumPy network's logits (FP32)."""
    return _lenet_forward(P, np.asarray(x, np.float32))[0]


def _model(nodes, inits, in_shape, name, classes=10):
    g = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", classes])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()])
    ops = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(g, opset_imports=ops,
                              ir_version=helper.find_min_ir_version_for(ops))
    onnx.checker.check_model(model)
    return model


def lenet_onnx(P) -> onnx.ModelProto:
    """The LeNet-style network as an FP32 ONNX model (input ``x`` ``[N, 1, 8, 8]``)."""
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv1"),
        n("Relu", ["c1"], ["r1"], name="relu1"),
        n("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        n("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv2"),
        n("Relu", ["c2"], ["r2"], name="relu2"),
        n("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], name="pool2"),
        n("Flatten", ["p2"], ["f"], axis=1, name="flatten"),
        n("Gemm", ["f", "wf", "bf"], ["y"], name="fc"),
    ]
    return _model(nodes, P, (1, 8, 8), "lenet_digits")


def _bn(rng, prefix, C, inits):
    inits[f"{prefix}_g"] = rng.uniform(0.5, 1.5, C)
    inits[f"{prefix}_b"] = rng.uniform(-0.2, 0.2, C)
    inits[f"{prefix}_m"] = rng.uniform(-0.2, 0.2, C)
    inits[f"{prefix}_v"] = rng.uniform(0.5, 1.5, C)
    return [f"{prefix}_g", f"{prefix}_b", f"{prefix}_m", f"{prefix}_v"]


def _conv_w(rng, F, Cg, K):
    return (rng.standard_normal((F, Cg, K, K)) * np.sqrt(2.0 / (Cg * K * K))).astype(np.float32)


def resnet_block_model(seed=1, C=8, H=8, classes=10) -> onnx.ModelProto:
    """The small ResNet-style network (module docstring), input ``[N, 3, H, H]``."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    inits = {}
    nodes = []

    def conv_bn(name, x, F, Cin, K, stride, pad, relu):
        inits[f"{name}_w"] = _conv_w(rng, F, Cin, K)
        nodes.append(n("Conv", [x, f"{name}_w"], [f"{name}_c"], kernel_shape=[K, K],
                       strides=[stride, stride], pads=[pad] * 4, name=name))
        nodes.append(n("BatchNormalization", [f"{name}_c"] + _bn(rng, name, F, inits),
                       [f"{name}_bn"], epsilon=1e-5, name=f"{name}_bn"))
        if relu:
            nodes.append(n("Relu", [f"{name}_bn"], [f"{name}_r"], name=f"{name}_relu"))
            return f"{name}_r"
        return f"{name}_bn"
    h = conv_bn("stem", "x", C, 3, 3, 1, 1, True)
    # block 1: identity shortcut
    a = conv_bn("b1a", h, C, C, 3, 1, 1, True)
    a = conv_bn("b1b", a, C, C, 3, 1, 1, False)
    nodes.append(n("Add", [a, h], ["b1_sum"], name="b1_add"))
    nodes.append(n("Relu", ["b1_sum"], ["b1_out"], name="b1_relu"))
    # block 2: strided, with a 1x1/2 projection shortcut
    a = conv_bn("b2a", "b1_out", 2 * C, C, 3, 2, 1, True)
    a = conv_bn("b2b", a, 2 * C, 2 * C, 3, 1, 1, False)
    s = conv_bn("b2s", "b1_out", 2 * C, C, 1, 2, 0, False)
    nodes.append(n("Add", [a, s], ["b2_sum"], name="b2_add"))
    nodes.append(n("Relu", ["b2_sum"], ["b2_out"], name="b2_relu"))
    nodes.append(n("GlobalAveragePool", ["b2_out"], ["gap"], name="gap"))
    nodes.append(n("Flatten", ["gap"], ["flat"], axis=1, name="flatten"))
    inits["fc_w"] = (rng.standard_normal((2 * C, classes)) / np.sqrt(2 * C)).astype(np.float32)
    inits["fc_b"] = rng.uniform(-0.1, 0.1, classes)
    nodes.append(n("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc"))
    return _model(nodes, inits, (3, H, H), "resnet_tiny", classes)


def mobilenet_block_model(seed=2, C=8, F=16, H=8, classes=10) -> onnx.ModelProto:
    """The depthwise-separable network (module docstring), input ``[N, C, H, H]``."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    inits = {"dw_w": _conv_w(rng, C, 1, 3), "pw_w": _conv_w(rng, F, C, 1),
             "six": np.array(6.0), "zero": np.array(0.0)}
    nodes = [
        n("Conv", ["x", "dw_w"], ["dw_c"], kernel_shape=[3, 3], pads=[1] * 4, group=C,
          name="dw"),
        n("BatchNormalization", ["dw_c"] + _bn(rng, "dw", C, inits), ["dw_bn"], name="dw_bn"),
        n("Clip", ["dw_bn", "zero", "six"], ["dw_r"], name="dw_relu6"),
        n("Conv", ["dw_r", "pw_w"], ["pw_c"], kernel_shape=[1, 1], name="pw"),
        n("BatchNormalization", ["pw_c"] + _bn(rng, "pw", F, inits), ["pw_bn"], name="pw_bn"),
        n("Clip", ["pw_bn", "zero", "six"], ["pw_r"], name="pw_relu6"),
        n("MaxPool", ["pw_r"], ["pool"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        n("Flatten", ["pool"], ["flat"], axis=1, name="flatten"),
    ]
    inits["fc_w"] = (rng.standard_normal((F * (H // 2) ** 2, classes)) * 0.05).astype(np.float32)
    inits["fc_b"] = rng.uniform(-0.1, 0.1, classes)
    nodes.append(n("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc"))
    return _model(nodes, inits, (C, H, H), "mobilenet_block", classes)


def ort_run(model, x):
    """onnxruntime's output of ``model`` on ``x`` (FP32)."""
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: np.asarray(x, np.float32)})[0]
