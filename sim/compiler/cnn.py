"""Convolutional networks from ONNX on one core (issue 27): a graph, not a chain.

``load_cnn(model)`` reads a float ONNX model (FP32 weights; the core runs it in BF16 or
FP16 with FP32 accumulation) into a :class:`CnnGraph`; :func:`compile_cnn` lowers it to
one program built from the generators of :mod:`sim.compiler.conv` and
:mod:`sim.compiler.pool`; :func:`run_cnn` runs it on a backend.

Operators (anything else, or an attribute outside these, raises
:class:`sim.compiler.onnx_front.UnsupportedModel` naming the node and the reason):

* ``Conv`` (constant weights and bias; any kernel up to 16, stride up to the tensor
  engine's step, padding, dilation, ``group`` including depthwise; ``auto_pad`` NOTSET).
* ``BatchNormalization`` (inference form) directly after a ``Conv`` whose output feeds
  nothing else: folded into the convolution's weights and bias in FP32 (``w * g /
  sqrt(var + eps)``, ``(b - mean) * g / sqrt(var + eps) + beta``).
* ``Relu`` and ``Clip(min=0, max=m)`` (ReLU6 when ``m = 6``) on the output of a
  ``Conv``, ``Gemm``/``MatMul`` or ``Add`` that feeds nothing else: fused into that
  operation's drain (the ACT's ``relu`` and ``clip``).
* ``MaxPool`` (no dilation, ``ceil_mode = 0``, padding below the window),
  ``AveragePool`` (``ceil_mode = 0``; with padding only ``count_include_pad = 1``),
  ``GlobalAveragePool``.
* ``Add`` of two activations of one shape (residual connections; branches and joins).
* ``Flatten`` (axis 1) and ``Reshape`` to ``[N, -1]`` of a ``C x H x W`` activation,
  followed by ``Gemm`` (``alpha = beta = 1``, ``transA = 0``) or ``MatMul`` with a
  constant weight (and an ``Add`` of a constant bias): the fully connected layer is a
  convolution whose kernel is the whole ``H x W`` map (``F x 1 x 1`` out), and a later
  one a 1x1 convolution.
* ``Identity``.

The input is one FP32 ``[N, C, H, W]`` tensor (``N`` may be symbolic); the output one
tensor, ``[N, F]`` after a fully connected layer or ``[N, C, H, W]``.

**Memory.** Every tensor is a stack of padded planes (:class:`sim.compiler.conv.Planes`)
in DRAM, with the padding its consumers read (they must agree: a tensor read by two
convolutions with different padding is refused). A padded tensor gets DRAM of its own,
whose border the host writes once (zeros, or -Inf below a max pool); tensors without
padding share DRAM by liveness: a tensor's bytes are reused once its last consumer has
run (first fit). Each layer's first load waits for every store before it, so a layer
never reads a tensor before it is complete, and never overwrites one that an earlier
layer still reads (the DMA-in queue runs in order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hdl.formats import DTYPE_BYTES

from sim.compiler.conv import ConvLayout, Planes, conv_program, weight_image
from sim.compiler.gemm import Epilogue, bias_image
from sim.compiler.onnx_front import UnsupportedModel, _attrs, _one_line
from sim.compiler.pool import LOWEST, PoolLayout, add_program, maxpool_program
from sim.isa.asm import Program

__all__ = ["CnnOp", "CnnGraph", "load_cnn", "compile_cnn", "CompiledCnn", "run_cnn",
           "cnn_reference"]


@dataclass
class CnnOp:
    """One operation of a :class:`CnnGraph`. ``kind``: ``conv`` (``w`` ``F x C/g x KH x
    KW`` FP32, ``b`` ``F`` or None, ``pads``, ``stride``, ``dilation``, ``groups``,
    ``relu``, ``clip`` (None or the upper bound)), ``maxpool`` (``kernel``, ``stride``,
    ``pads``) or ``add`` (``relu``, ``clip``). ``name``: the ONNX node's."""
    kind: str
    name: str
    inputs: list
    output: str
    p: dict = field(default_factory=dict)


@dataclass
class CnnGraph:
    """Operations in a topological order; ``shapes[t] = (C, H, W)`` per image."""
    input: str
    output: str
    ops: list
    shapes: dict
    flat_output: bool = False


def _fail(node, i, why):
    label = f"'{node.name}'" if node.name else f"#{i} ({node.op_type})"
    raise UnsupportedModel(f"{why} (node {label})")


def load_cnn(model) -> CnnGraph:
    """Read an ONNX CNN (module docstring). ``model``: ``onnx.ModelProto``, bytes or a
    path. Raises :class:`UnsupportedModel`."""
    import onnx
    from onnx import numpy_helper
    if isinstance(model, (bytes, bytearray)):
        try:
            model = onnx.load_from_string(bytes(model))
        except Exception as e:          # noqa: BLE001 - protobuf raises several types
            raise UnsupportedModel(f"not a valid ONNX model: {_one_line(e)}") from None
    elif not isinstance(model, onnx.ModelProto):
        try:
            model = onnx.load(str(model))
        except Exception as e:          # noqa: BLE001
            raise UnsupportedModel(f"{model} is not a valid ONNX model: {_one_line(e)}") from None
    try:
        onnx.checker.check_model(model)
    except Exception as e:              # noqa: BLE001
        raise UnsupportedModel(f"not a valid ONNX model: {_one_line(e)}") from None
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        raise UnsupportedModel(f"a CNN needs one input and one output, not {len(inputs)} "
                               f"and {len(g.output)}")
    x = inputs[0]
    tt = x.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    if tt.elem_type != onnx.TensorProto.FLOAT or len(dims) != 4 or None in dims[1:]:
        raise UnsupportedModel(f"the input must be FP32 [N, C, H, W], not {dims}")
    shapes = {x.name: tuple(dims[1:])}
    flat = {}                      # tensor -> (C, H, W) it flattens
    producer = {}                  # tensor -> its CnnOp
    uses = {}
    for node in g.node:
        for i in node.input:
            uses[i] = uses.get(i, 0) + 1
    for o in g.output:
        uses[o.name] = uses.get(o.name, 0) + 1
    alias = {}
    ops = []

    def act(name, node, i):
        name = alias.get(name, name)
        if name not in shapes:
            _fail(node, i, f"input '{name}' is not an activation the core computed")
        return name

    def fuse_target(name, node, i, what):
        """The op whose output ``name`` is, when ``what`` may fuse into it."""
        name = alias.get(name, name)
        op = producer.get(name)
        if op is None or op.kind not in ("conv", "add"):
            _fail(node, i, f"{what} must follow a Conv, Gemm, MatMul or Add")
        if uses.get(name, 0) != 1:
            _fail(node, i, f"{what} after an output that other nodes read too")
        return op

    for i, node in enumerate(g.node):
        a = _attrs(node)
        t = node.op_type
        if t == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(a["value"]).astype(np.float32)
            continue
        if t == "Identity":
            if node.input[0] in consts:
                consts[node.output[0]] = consts[node.input[0]]
            else:
                alias[node.output[0]] = alias.get(node.input[0], node.input[0])
                shapes_src = alias[node.output[0]]
                if shapes_src in flat:
                    flat[node.output[0]] = flat[shapes_src]
            continue
        if t == "Conv":
            xin = act(node.input[0], node, i)
            if node.input[1] not in consts:
                _fail(node, i, "Conv weights must be constant")
            w = consts[node.input[1]]
            b = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            if len(node.input) > 2 and node.input[2] and b is None:
                _fail(node, i, "Conv bias must be constant")
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                _fail(node, i, f"auto_pad {a['auto_pad']!r} is not supported (give pads)")
            if w.ndim != 4:
                _fail(node, i, f"only 2-D convolutions are supported (weights {w.shape})")
            C, H, W = shapes[xin]
            grp = int(a.get("group", 1))
            if w.shape[1] * grp != C:
                _fail(node, i, f"weights {w.shape} with group {grp} do not fit {C} channels")
            pads = tuple(a.get("pads", [0, 0, 0, 0]))
            stride = tuple(a.get("strides", [1, 1]))
            dil = tuple(a.get("dilations", [1, 1]))
            F, _, KH, KW = w.shape
            OH = (H + pads[0] + pads[2] - (KH - 1) * dil[0] - 1) // stride[0] + 1
            OW = (W + pads[1] + pads[3] - (KW - 1) * dil[1] - 1) // stride[1] + 1
            op = CnnOp("conv", node.name or f"#{i}", [xin], node.output[0],
                       dict(w=w, b=b, pads=pads, stride=stride, dilation=dil, groups=grp,
                            relu=False, clip=None))
            shapes[node.output[0]] = (F, OH, OW)
        elif t == "BatchNormalization":
            if len(node.output) > 1 and any(node.output[1:]):
                _fail(node, i, "BatchNormalization in training mode is not supported")
            conv = fuse_target(node.input[0], node, i, "BatchNormalization")
            if conv.kind != "conv" or conv.p["relu"] or conv.p["clip"] is not None:
                _fail(node, i, "BatchNormalization must directly follow a Conv")
            if any(n not in consts for n in node.input[1:5]):
                _fail(node, i, "BatchNormalization parameters must be constant")
            gam, beta, mean, var = (consts[n].astype(np.float32) for n in node.input[1:5])
            eps = np.float32(a.get("epsilon", 1e-5))
            k = gam / np.sqrt(var + eps)
            b = conv.p["b"] if conv.p["b"] is not None else np.zeros_like(mean)
            conv.p["w"] = (conv.p["w"] * k[:, None, None, None]).astype(np.float32)
            conv.p["b"] = ((b - mean) * k + beta).astype(np.float32)
            alias[node.output[0]] = conv.output
            continue
        elif t in ("Relu", "Clip"):
            op = fuse_target(node.input[0], node, i, t)
            if t == "Clip":
                lo = a.get("min", None)
                hi = a.get("max", None)
                if len(node.input) > 1 and node.input[1]:
                    lo = consts.get(node.input[1])
                if len(node.input) > 2 and node.input[2]:
                    hi = consts.get(node.input[2])
                if lo is None or float(np.asarray(lo)) != 0.0 or hi is None:
                    _fail(node, i, "Clip must have constant min 0 and a constant max (ReLU6)")
                op.p["clip"] = float(np.asarray(hi))
            if op.p["relu"]:
                _fail(node, i, "a second ReLU/Clip on one output")
            op.p["relu"] = True
            alias[node.output[0]] = op.output
            continue
        elif t in ("MaxPool", "AveragePool", "GlobalAveragePool"):
            xin = act(node.input[0], node, i)
            C, H, W = shapes[xin]
            if t == "GlobalAveragePool":
                k, stride, pads = (H, W), (1, 1), (0, 0, 0, 0)
            else:
                if a.get("ceil_mode", 0):
                    _fail(node, i, f"{t} with ceil_mode=1 is not supported")
                if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                    _fail(node, i, f"{t} auto_pad is not supported (give pads)")
                if any(d != 1 for d in a.get("dilations", [1, 1])):
                    _fail(node, i, f"{t} with dilation is not supported")
                if len(node.output) > 1 and node.output[1]:
                    _fail(node, i, "MaxPool's Indices output is not supported")
                k = tuple(a["kernel_shape"])
                stride = tuple(a.get("strides", [1, 1]))
                pads = tuple(a.get("pads", [0, 0, 0, 0]))
                if t == "AveragePool" and any(pads) and not a.get("count_include_pad", 0):
                    _fail(node, i, "AveragePool with padding needs count_include_pad=1 (the "
                                   "default divides border windows differently)")
            OH = (H + pads[0] + pads[2] - k[0]) // stride[0] + 1
            OW = (W + pads[1] + pads[3] - k[1]) // stride[1] + 1
            if t == "MaxPool":
                op = CnnOp("maxpool", node.name or f"#{i}", [xin], node.output[0],
                           dict(kernel=k, stride=stride, pads=pads))
            else:
                w = np.full((C, 1) + k, 1.0 / (k[0] * k[1]), np.float32)
                op = CnnOp("conv", node.name or f"#{i}", [xin], node.output[0],
                           dict(w=w, b=None, pads=pads, stride=stride, dilation=(1, 1),
                                groups=C, relu=False, clip=None))
            shapes[node.output[0]] = (C, OH, OW)
        elif t == "Add":
            names = [alias.get(n, n) for n in node.input]
            if all(n in shapes for n in names):
                if shapes[names[0]] != shapes[names[1]]:
                    _fail(node, i, f"Add of shapes {shapes[names[0]]} and {shapes[names[1]]} "
                                   f"(broadcasting is not supported)")
                op = CnnOp("add", node.name or f"#{i}", names, node.output[0],
                           dict(relu=False, clip=None))
                shapes[node.output[0]] = shapes[names[0]]
            else:
                # a constant bias after a fully connected layer
                act_name = next((n for n in names if n in shapes), None)
                const = next((n for n in node.input if n in consts), None)
                if act_name is None or const is None:
                    _fail(node, i, "Add needs two activations, or an activation and a constant")
                fc = fuse_target(act_name, node, i, "a bias Add")
                F = shapes[fc.output][0]
                bias = consts[const].reshape(-1)
                if fc.kind != "conv" or not fc.p.get("fc") or bias.size != F or fc.p["relu"]:
                    _fail(node, i, "a constant Add is only supported as a fully connected "
                                   "layer's bias")
                fc.p["b"] = bias if fc.p["b"] is None else fc.p["b"] + bias
                alias[node.output[0]] = fc.output
                continue
        elif t in ("Flatten", "Reshape"):
            xin = act(node.input[0], node, i)
            if t == "Flatten" and a.get("axis", 1) != 1:
                _fail(node, i, "Flatten must have axis 1")
            if t == "Reshape":
                shape = consts.get(node.input[1])
                if shape is None or shape.size != 2 or shape[1] != -1 or shape[0] not in (0, -1) \
                        and shape[0] != 1:
                    _fail(node, i, "Reshape must flatten to [N, -1]")
            flat[node.output[0]] = shapes[xin]
            alias[node.output[0]] = xin
            continue
        elif t in ("Gemm", "MatMul"):
            src = node.input[0]
            xin = act(src, node, i)
            if node.input[1] not in consts:
                _fail(node, i, f"{t} weights must be constant")
            w = consts[node.input[1]]
            if t == "Gemm":
                if a.get("transA", 0) or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                    _fail(node, i, "Gemm needs transA=0, alpha=1, beta=1")
                if a.get("transB", 0):
                    w = w.T
            C, H, W = flat.get(src, flat.get(xin, shapes[xin]))
            if src not in flat and xin not in flat and (H, W) != (1, 1):
                _fail(node, i, f"{t} on a {C}x{H}x{W} map needs a Flatten first")
            if w.ndim != 2 or w.shape[0] != C * H * W:
                _fail(node, i, f"{t} weights {w.shape} do not fit {C * H * W} features")
            F = w.shape[1]
            b = None
            if t == "Gemm" and len(node.input) > 2 and node.input[2]:
                if node.input[2] not in consts:
                    _fail(node, i, "Gemm bias must be constant")
                b = consts[node.input[2]].reshape(-1)
            op = CnnOp("conv", node.name or f"#{i}", [xin], node.output[0],
                       dict(w=np.ascontiguousarray(w.T.reshape(F, C, H, W)), b=b,
                            pads=(0, 0, 0, 0), stride=(1, 1), dilation=(1, 1), groups=1,
                            relu=False, clip=None, fc=True))
            shapes[node.output[0]] = (F, 1, 1)
        else:
            _fail(node, i, f"unsupported operator '{t}'")
        producer[op.output] = op
        ops.append(op)
    out = alias.get(g.output[0].name, g.output[0].name)
    if out not in shapes:
        raise UnsupportedModel(f"the output '{g.output[0].name}' is not computed on the core")
    last = producer.get(out)
    return CnnGraph(x.name, out, ops, shapes,
                    flat_output=bool(last is not None and last.p.get("fc")))


# ---------------------------------------------------------------------------------------
# Lowering
# ---------------------------------------------------------------------------------------

@dataclass
class CompiledCnn:
    """A CNN compiled for one core: the program, the DRAM image before the run (weights,
    biases, the padding of every padded tensor), the input and output planes."""
    config: object
    graph: CnnGraph
    dtype: str
    batch: int
    program: Program
    image: np.ndarray
    planes: dict
    layers: list        # (op name, kind, first instruction, last instruction)

    @property
    def prog_addr(self):
        """Where :func:`run_cnn` puts the program: after the image, 32-byte aligned."""
        return (self.image.size + 31) // 32 * 32

    def races(self):
        """The race checker's findings on the program (:func:`sim.isa.races.find_races`)."""
        from sim.isa.races import find_races
        return find_races(self.config, self.program, prog_addr=self.prog_addr)


class _Bump:
    """DRAM addresses from 0 up, 64-byte aligned."""

    def __init__(self):
        self.top = 0

    def take(self, n):
        a = self.top
        self.top = a + (max(n, 1) + 63) // 64 * 64
        return a


def _bf16_bits(v, dtype):
    from sim.compiler.runtime import _operand_bits
    return _operand_bits(np.asarray(v, np.float32), dtype)


def compile_cnn(graph: CnnGraph, config="default", *, batch, dtype="bf16") -> CompiledCnn:
    """Lower ``graph`` for ``batch`` images in ``dtype`` (``bf16`` or ``fp16``): one
    program of every layer in order (module docstring)."""
    from hdl.config import named_config
    cfg = named_config(config)
    if dtype not in ("bf16", "fp16") or dtype not in cfg.dtypes:
        raise UnsupportedModel(f"a float CNN runs in bf16 or fp16 on a configuration that "
                               f"has it, not {dtype!r} on {cfg.name}")
    eb = DTYPE_BYTES[dtype]
    # the padding each tensor is stored with: the most any reader wants, side by side (a
    # convolution that wants less reads a window of it); and its fill
    pads = {}
    fill = {}
    readers = {}
    for op in graph.ops:
        for t in op.inputs:
            if op.kind != "add":
                readers.setdefault(t, []).append(op)
    for t, ops in readers.items():
        pads[t] = tuple(max(op.p["pads"][j] for op in ops) for j in range(4))
        pooled = [op for op in ops if op.kind == "maxpool" and any(op.p["pads"])]
        if pooled:
            if any(op.kind == "conv" and any(op.p["pads"]) for op in ops):
                raise UnsupportedModel(f"tensor '{t}' is padded for a max pool and a "
                                       f"convolution (node '{pooled[0].name}'); not supported")
            if any(op.p["pads"] != pads[t] for op in pooled):
                raise UnsupportedModel(f"tensor '{t}' is read by max pools with different "
                                       f"padding (node '{pooled[0].name}'); not supported")
            fill[t] = LOWEST[dtype]
    last_use = {}
    for k, op in enumerate(graph.ops):
        for t in op.inputs:
            last_use[t] = k
    last_use[graph.output] = len(graph.ops)
    alloc = _Bump()
    image = []                     # (addr, bytes) the host writes before the run

    def planes(t, addr=None):
        C, H, W = graph.shapes[t]
        pd = pads.get(t) or (0, 0, 0, 0)
        return Planes(0 if addr is None else addr, batch, C, H, W, eb, tuple(pd))

    # padded tensors (and the input and output) get DRAM of their own; the others share
    # a pool by liveness
    placed = {}
    for t in [graph.input] + [op.output for op in graph.ops]:
        pl = planes(t)
        if any(pl.pads) or t in (graph.input, graph.output):
            placed[t] = planes(t, alloc.take(pl.nbytes))
            if fill.get(t):
                image.append((placed[t].addr, placed[t].image(
                    np.zeros((batch,) + graph.shapes[t], f"<u{eb}"), fill=fill[t])))
    free = []                      # (addr, size) of dead shared tensors

    def take_shared(n):
        for j, (a, size) in enumerate(free):
            if size >= n:
                free[j] = (a + n, size - n)
                return a
        return alloc.take(n)

    p = Program(cfg)
    layers = []
    for k, op in enumerate(graph.ops):
        if op.output not in placed:
            placed[op.output] = planes(op.output, take_shared(planes(op.output).nbytes))
        X = [placed[t] for t in op.inputs]
        Y = placed[op.output]
        after = ("st", p.signals("st")) if p.signals("st") else None
        first = len(p.instructions)
        if op.kind == "conv":
            w = op.p["w"]
            wimg = weight_image(cfg, _bf16_bits(w, dtype), op.p["groups"])
            w_addr = alloc.take(wimg.size)
            image.append((w_addr, wimg))
            epi = Epilogue(relu=op.p["relu"], clip=op.p["clip"])
            if op.p["b"] is not None:
                bimg = bias_image(cfg, w.shape[0], np.asarray(op.p["b"], np.float32).view(np.uint32))
                b_addr = alloc.take(bimg.nbytes)
                image.append((b_addr, bimg.view(np.uint8).reshape(-1)))
                epi = Epilogue(bias_addr=b_addr, relu=op.p["relu"], clip=op.p["clip"])
            L = ConvLayout(X[0], Y, w.shape[0], w.shape[2], w.shape[3], dtype, w_addr,
                           tuple(op.p["dilation"]), tuple(op.p["stride"]),
                           out_type=dtype.upper(), groups=op.p["groups"],
                           pads=tuple(op.p["pads"]))
            conv_program(cfg, L, epilogue=epi, program=p, after=after, end=False)
        elif op.kind == "maxpool":
            kh, kw = op.p["kernel"]
            maxpool_program(cfg, PoolLayout(X[0], Y, kh, kw, dtype, tuple(op.p["stride"])),
                            program=p, after=after, end=False)
        else:
            add_program(cfg, X[0], X[1], Y, dtype, relu=op.p["relu"], clip=op.p["clip"],
                        program=p, after=after, end=False)
        layers.append((op.name, op.kind, first, len(p.instructions) - 1))
        for t in op.inputs:
            if last_use.get(t) == k and not any(placed[t].pads) and \
                    t not in (graph.input, graph.output):
                free.append((placed[t].addr, placed[t].nbytes))
    p.end(wait=("st", p.signals("st")))
    size = alloc.top
    img = np.zeros(size, np.uint8)
    for a, data in image:
        img[a:a + data.size] = data
    return CompiledCnn(cfg, graph, dtype, batch, p, img, placed, layers)


def run_cnn(compiled: CompiledCnn, x, *, backend="golden", return_result=False):
    """Run ``compiled`` on ``x`` (``batch x C x H x W`` FP32, rounded to the CNN's type).
    Returns the output as FP32 (``batch x F`` after a fully connected layer); with
    ``return_result`` also the RunResult and the DRAM image after the run."""
    from sim.compiler.runtime import Device, _operand_bits
    c = compiled
    dev = Device(c.config, backend)
    dev.alloc(c.image.size)
    dev.write(0, c.image)
    X = c.planes[c.graph.input]
    xb = _operand_bits(np.asarray(x, np.float32), c.dtype)
    if xb.shape != (X.B, X.C, X.H, X.W):
        raise ValueError(f"the input must be {X.B}x{X.C}x{X.H}x{X.W}, not {xb.shape}")
    dev.write(X.addr, X.image(xb, fill=0))
    addr = dev.load_program(c.program)
    assert addr == c.prog_addr
    r = dev.run(addr).check()
    Y = c.planes[c.graph.output]
    y = _to_f32(Y.read(dev.dram, np.uint16), c.dtype)
    if c.graph.flat_output:
        y = y.reshape(X.B, -1)
    return (y, r, dev.dram[:dev.top].copy()) if return_result else y


def _to_f32(bits, dtype):
    import ml_dtypes
    t = ml_dtypes.bfloat16 if dtype == "bf16" else np.float16
    return np.asarray(bits).view(t).astype(np.float32)


def cnn_reference(graph: CnnGraph, x, dtype="bf16"):
    """The graph in float64 from its own definition (convolutions by
    :func:`sim.compiler.conv.conv_reference`, pools by the pool references), with the
    inputs and weights rounded to ``dtype`` as the core stores them and each layer's
    output rounded to ``dtype``: close to the core's result (which sums in FP32), for
    checking a lowering, not bit for bit."""
    from sim.compiler.conv import conv_reference
    from sim.compiler.pool import maxpool_reference

    def rnd(v):
        return _to_f32(_bf16_bits(np.asarray(v, np.float32), dtype), dtype).astype(np.float64)
    vals = {graph.input: rnd(x)}
    for op in graph.ops:
        a = vals[op.inputs[0]]
        if op.kind == "conv":
            y = conv_reference(a, rnd(op.p["w"]), op.p["pads"], op.p["dilation"],
                               op.p["stride"], op.p["groups"])
            if op.p["b"] is not None:
                y = y + np.asarray(op.p["b"], np.float32).astype(np.float64)[None, :, None, None]
        elif op.kind == "maxpool":
            y = maxpool_reference(a, op.p["kernel"], op.p["stride"], op.p["pads"])
        else:
            y = a + vals[op.inputs[1]]
        if op.p.get("relu"):
            y = np.maximum(y, 0)
        if op.p.get("clip") is not None:
            y = np.minimum(y, op.p["clip"])
        vals[op.output] = rnd(y)
    out = vals[graph.output]
    return out.reshape(out.shape[0], -1) if graph.flat_output else out
