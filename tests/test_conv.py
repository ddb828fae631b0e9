"""Convolution on the core (sim/compiler/conv.py, issue 27): one matmul per kernel
position accumulated in PSUM, on the golden backend, against independent references:
the direct definition in exact integers (INT8), the array's FP32 summation order
written out here (BF16/FP16, bit for bit), float64 and onnxruntime. Every program is
race-checked. The RTL runs are in test_rtl_conv.py."""

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from hdl.config import named_config
from sim.compiler.conv import (ConvError, ConvLayout, Planes, conv2d, conv_program,
                               conv_reference, weight_image)

FTYPE = {"bf16": ml_dtypes.bfloat16, "fp16": np.float16}

# B, C, H, W, F, KH, KW, pads (top, left, bottom, right), dilation, stride
SHAPES = [
    (1, 3, 6, 7, 5, 3, 3, (1, 1, 1, 1), (1, 1), (1, 1)),        # "same" 3x3
    (2, 11, 9, 8, 13, 3, 2, (0, 2, 1, 0), (1, 2), (1, 1)),      # asymmetric pads, dilation, tiles
    (1, 4, 5, 5, 4, 1, 1, (0, 0, 0, 0), (1, 1), (1, 1)),        # pointwise
    (1, 2, 9, 9, 3, 7, 7, (3, 3, 3, 3), (1, 1), (1, 1)),        # 7x7
    (1, 9, 10, 6, 17, 5, 4, (2, 0, 2, 3), (2, 1), (1, 1)),      # 5x4, dilation on rows
    (3, 1, 4, 4, 1, 2, 2, (0, 0, 0, 0), (1, 1), (1, 1)),        # single channels
    (1, 3, 7, 7, 5, 3, 3, (1, 1, 1, 1), (1, 1), (2, 2)),        # strided "same" 3x3
    (2, 11, 9, 8, 13, 3, 2, (0, 2, 1, 0), (1, 2), (2, 3)),      # strides 2 and 3, dilation
    (1, 9, 12, 12, 10, 7, 7, (3, 2, 3, 4), (1, 1), (2, 2)),     # a ResNet-style 7x7/2 stem
    (1, 4, 9, 9, 6, 1, 1, (0, 0, 0, 0), (1, 1), (2, 2)),        # a strided 1x1 (downsampling)
    (1, 3, 10, 17, 4, 3, 3, (1, 1, 1, 1), (2, 1), (3, 8)),      # the widest INT8 step
]


def _ids(shapes):
    return ["b{}c{}h{}w{}f{}k{}x{}p{}d{}s{}".format(
        B, C, H, W, F, KH, KW, "".join(map(str, p)), "".join(map(str, d)), "".join(map(str, st)))
        for B, C, H, W, F, KH, KW, p, d, st in shapes]


@pytest.mark.parametrize("shape", SHAPES, ids=_ids(SHAPES))
@pytest.mark.parametrize("config", ["default", "4x4-fp"])
def test_int8_conv_exact(shape, config):
    B, C, H, W, F, KH, KW, pads, dil, st = shape
    seed = hash((shape, config)) % 10_000
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (B, C, H, W)).astype(np.int8)
    w = rng.integers(-128, 128, (F, C, KH, KW)).astype(np.int8)
    y = conv2d(x, w, "int8", pads=pads, dilation=dil, stride=st, config=config,
               check_races=True)
    want = conv_reference(x, w, pads, dil, st)
    assert np.array_equal(y, want), f"seed {seed}: {np.argwhere(y != want)[:3]}"


def _ordered_conv_f32(x, w, pads, dil, rows, stride=(1, 1)):
    """The FP32 result in the core's summation order (docs/conv.md, "Numerics"): PSUM
    starts with the first (channel tile, kernel position) partial sum and adds the
    others in order, channel tiles outermost, kernel positions row-major; each partial
    sum adds its channels' exact products from the tile's first channel on."""
    B, C, H, W = x.shape
    F, _, KH, KW = w.shape
    t, left, bot, right = pads
    xp = np.zeros((B, C, H + t + bot, W + left + right), np.float32)
    xp[:, :, t:t + H, left:left + W] = x
    dh, dw = dil
    sh, sw = stride
    OH = (xp.shape[2] - (KH - 1) * dh - 1) // sh + 1
    OW = (xp.shape[3] - (KW - 1) * dw - 1) // sw + 1
    out = None
    for c0 in range(0, C, rows):
        for kh in range(KH):
            for kw in range(KW):
                part = np.zeros((B, F, OH, OW), np.float32)
                for c in range(c0, min(C, c0 + rows)):
                    win = xp[:, c, kh * dh:kh * dh + (OH - 1) * sh + 1:sh,
                             kw * dw:kw * dw + (OW - 1) * sw + 1:sw]                # B x OH x OW
                    prod = win[:, None] * w[None, :, c, kh, kw, None, None]     # exact
                    part = (part + prod).astype(np.float32)
                out = part if out is None else (out + part).astype(np.float32)
    return out


FLOAT_SHAPES = SHAPES[:5] + SHAPES[6:9]


@pytest.mark.parametrize("shape", FLOAT_SHAPES, ids=_ids(FLOAT_SHAPES))
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_float_conv_bit_exact(shape, dtype):
    B, C, H, W, F, KH, KW, pads, dil, st = shape
    seed = hash((shape, dtype)) % 10_000
    rng = np.random.default_rng(seed)
    t = FTYPE[dtype]
    x = rng.standard_normal((B, C, H, W)).astype(t).astype(np.float32)
    w = rng.standard_normal((F, C, KH, KW)).astype(t).astype(np.float32)
    cfg = named_config("4x4-fp")
    if st[1] * 2 > cfg.sbuf_word_bytes:
        with pytest.raises(ConvError, match="column stride"):
            conv2d(x, w, dtype, pads=pads, dilation=dil, stride=st, config=cfg)
        return
    y = conv2d(x, w, dtype, pads=pads, dilation=dil, stride=st, config=cfg, check_races=True)
    want = _ordered_conv_f32(x, w, pads, dil, cfg.rows, st)
    assert np.array_equal(y.view(np.uint32), want.view(np.uint32)), f"seed {seed}"
    exact = conv_reference(x.astype(np.float64), w.astype(np.float64), pads, dil, st)
    assert np.allclose(y, exact, rtol=1e-5, atol=1e-4), f"seed {seed}"


def _ort_conv(x, w, pads, dil, st):
    F, C, KH, KW = w.shape
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[KH, KW],
                            pads=[pads[0], pads[1], pads[2], pads[3]], dilations=list(dil),
                            strides=list(st))
    g = helper.make_graph([node], "conv",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [onnx.numpy_helper.from_array(w.astype(np.float32), "w")])
    ops = [helper.make_opsetid("", 17)]
    model = helper.make_model(g, opset_imports=ops, ir_version=helper.find_min_ir_version_for(ops))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.astype(np.float32)})[0]


@pytest.mark.parametrize("shape", SHAPES, ids=_ids(SHAPES))
def test_conv_agrees_with_onnxruntime(shape):
    """ONNX pads are (top, left, bottom, right) as begin..., end...: the same order."""
    B, C, H, W, F, KH, KW, pads, dil, st = shape
    rng = np.random.default_rng(7)
    x = rng.standard_normal((B, C, H, W)).astype(ml_dtypes.bfloat16).astype(np.float32)
    w = rng.standard_normal((F, C, KH, KW)).astype(ml_dtypes.bfloat16).astype(np.float32)
    if st[1] * 2 > 8:
        st = (st[0], 4)                 # the widest BF16 step
    y = conv2d(x, w, "bf16", pads=pads, dilation=dil, stride=st, config="4x4-fp")
    ref = _ort_conv(x, w, pads, dil, st)
    assert y.shape == ref.shape
    assert np.allclose(y, ref, rtol=1e-5, atol=1e-4)


def test_rows_per_block_do_not_change_the_result():
    """Blocks of 1, 2 and the most output rows: the same bits (each output pixel's sum
    does not depend on the blocking)."""
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, (1, 5, 7, 6)).astype(np.int8)
    w = rng.integers(-128, 128, (6, 5, 3, 3)).astype(np.int8)
    want = conv_reference(x, w, (1, 1, 1, 1))
    for rows in (1, 2, None):
        y = conv2d(x, w, pads=(1, 1, 1, 1), rows=rows, check_races=True)
        assert np.array_equal(y, want), rows


def test_planes_and_weight_layout():
    rng = np.random.default_rng(3)
    v = rng.integers(-128, 128, (2, 3, 4, 5)).astype(np.int8)
    P = Planes(64, 2, 3, 4, 5, 1, (1, 2, 0, 1))
    img = np.zeros(64 + P.nbytes, np.uint8)
    img[64:] = P.image(v)
    assert np.array_equal(P.read(img, np.int8), v)
    full = img[64:].view(np.int8).reshape(2, 3, 5, 8)
    assert not full[:, :, 0].any() and not full[:, :, :, :2].any() and not full[:, :, :, 7].any()
    assert P.at(1, 2, 1, 2) == 64 + (1 * 3 + 2) * 40 + 1 * 8 + 2
    cfg = named_config("default")
    w = rng.integers(-128, 128, (11, 3, 2, 2)).astype(np.int8)        # 2 output tiles
    wi = weight_image(cfg, w).view(np.int8)
    first = wi[:3 * 4 * 8].reshape(3, 4, 8)                           # [c][kpos][f]
    assert np.array_equal(first[2, 3], w[:8, 2, 1, 1])
    rest = wi[3 * 4 * 8:].reshape(3, 4, 3)
    assert np.array_equal(rest[1, 0], w[8:, 1, 0, 0])


def test_refusals():
    cfg = named_config("default")
    x = Planes(0, 1, 4, 8, 8, 1)

    def L(**kw):
        args = dict(x=x, y=Planes(4096, 1, 4, 6, 6, 4), F=4, KH=3, KW=3, dtype="int8",
                    w_addr=8192)
        args.update(kw)
        return ConvLayout(**args)
    with pytest.raises(ConvError, match="column stride of 9 reads 9-byte steps"):
        conv_program(cfg, L(stride=(1, 9), y=Planes(4096, 1, 4, 6, 1, 4)))
    with pytest.raises(ConvError, match="at least 1"):
        conv_program(cfg, L(stride=(0, 1)))
    with pytest.raises(ConvError, match="outside 1..16"):
        conv_program(cfg, L(KH=17, y=Planes(4096, 1, 4, 1, 6, 4)))
    with pytest.raises(ConvError, match="larger than the padded input"):
        conv_program(cfg, ConvLayout(Planes(0, 1, 4, 2, 2, 1), Planes(4096, 1, 4, 1, 1, 4),
                                     4, 3, 3, "int8", 8192))
    with pytest.raises(ConvError, match="not in this configuration"):
        conv_program(cfg, L(dtype="bf16"))
    with pytest.raises(ConvError, match="convolution gives"):
        conv_program(cfg, L(y=Planes(4096, 1, 4, 8, 8, 4)))
    with pytest.raises(ConvError, match="longer than a PSUM bank"):
        wide = Planes(0, 1, 1, 1, cfg.psum_depth + 3, 1)
        conv_program(cfg, ConvLayout(wide, Planes(4096, 1, 1, 1, cfg.psum_depth + 1, 4),
                                     1, 1, 3, "int8", 8192))
    with pytest.raises(ConvError, match="rows per block"):
        conv_program(cfg, L(), rows=7)
    with pytest.raises(ConvError, match="bytes of SBUF"):
        big = ConvLayout(Planes(0, 1, 8, 8, 8, 1), Planes(1 << 16, 1, 8, 2, 2, 4), 8, 7, 7,
                         "int8", 1 << 17)
        conv_program(named_config("min"), big)


def test_epilogue_int8():
    """Bias, ReLU and requantisation fused into the drain: INT32 with bias and ReLU,
    and INT8 out (``sim.model.casts.requantize``, the ACT's documented rounding)."""
    from sim.model.casts import requantize
    rng = np.random.default_rng(21)
    x = rng.integers(-128, 128, (2, 10, 5, 6)).astype(np.int8)
    w = rng.integers(-128, 128, (12, 10, 3, 3)).astype(np.int8)
    bias = rng.integers(-20000, 20000, 12).astype(np.int32)
    acc = conv_reference(x, w, (1, 1, 1, 1)) + bias[None, :, None, None]
    y = conv2d(x, w, bias=bias, relu=True, pads=(1, 1, 1, 1), check_races=True)
    assert np.array_equal(y, np.maximum(acc, 0))
    y8 = conv2d(x, w, bias=bias, relu=True, out_type="INT8", scale=77, shift=20, zp=-5,
                pads=(1, 1, 1, 1), check_races=True)
    assert np.array_equal(y8, requantize(acc, 77, 20, -5, True).astype(np.int8))
    assert len(np.unique(y8)) > 10                   # not all clamped


def test_epilogue_float():
    """FP32 bias added to the FP32 sum (RNE), ReLU (-0 -> +0), then the BF16 cast (RNE)."""
    rng = np.random.default_rng(22)
    t = ml_dtypes.bfloat16
    x = rng.standard_normal((1, 6, 7, 5)).astype(t).astype(np.float32)
    w = rng.standard_normal((5, 6, 2, 3)).astype(t).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    cfg = named_config("4x4-fp")
    s = _ordered_conv_f32(x, w, (1, 0, 0, 2), (1, 1), cfg.rows)
    s = (s + bias[None, :, None, None]).astype(np.float32)
    s = np.where(s <= 0, np.float32(0), s)
    want = s.astype(t).view(np.uint16)
    y = conv2d(x, w, "bf16", bias=bias, relu=True, out_type="BF16", pads=(1, 0, 0, 2),
               config=cfg, check_races=True)
    assert np.array_equal(y, want)


def test_two_layers_through_padded_planes():
    """Conv -> ReLU -> INT8 -> Conv in one program: the first layer stores straight into
    the second's padded planes (its ``y.pads``), whose border stays the fresh image's
    zeros, and the second waits for those stores (``after``). Race-checked."""
    from sim.compiler.runtime import Device
    from sim.isa.races import find_races
    from sim.model.casts import requantize
    from sim.compiler.gemm import Epilogue
    cfg = named_config("default")
    rng = np.random.default_rng(23)
    B, C, H, W, F1, F2 = 1, 9, 7, 8, 10, 6
    x = rng.integers(-128, 128, (B, C, H, W)).astype(np.int8)
    w1 = rng.integers(-128, 128, (F1, C, 3, 3)).astype(np.int8)
    w2 = rng.integers(-128, 128, (F2, F1, 3, 3)).astype(np.int8)
    dev = Device(cfg)
    xin = Planes(dev.alloc(B * C * (H + 2) * (W + 2)), B, C, H, W, 1, (1, 1, 1, 1))
    mid = Planes(dev.alloc(B * F1 * (H + 2) * (W + 2)), B, F1, H, W, 1, (1, 1, 1, 1))
    out = Planes(dev.alloc(B * F2 * H * W * 4), B, F2, H, W, 4)
    wa1 = dev.alloc(w1.size)
    wa2 = dev.alloc(w2.size)
    dev.write(xin.addr, xin.image(x))
    dev.write(wa1, weight_image(cfg, w1))
    dev.write(wa2, weight_image(cfg, w2))
    L1 = ConvLayout(xin, mid, F1, 3, 3, "int8", wa1, out_type="INT8")
    L2 = ConvLayout(mid, out, F2, 3, 3, "int8", wa2)
    p = conv_program(cfg, L1, epilogue=Epilogue(relu=True, scale=3, shift=10, zp=0), end=False)
    p = conv_program(cfg, L2, program=p, after=("st", p.signals("st")))
    addr = dev.load_program(p)
    assert find_races(cfg, p, prog_addr=addr) == []
    dev.run(addr).check()
    h = requantize(conv_reference(x, w1, (1, 1, 1, 1)), 3, 10, 0, True).astype(np.int8)
    assert np.array_equal(mid.read(dev.dram, np.int8), h)
    assert np.array_equal(out.read(dev.dram, np.int32), conv_reference(h, w2, (1, 1, 1, 1)))
    # without the wait the second layer races with the first one's stores
    q = conv_program(cfg, L1, epilogue=Epilogue(relu=True, scale=3, shift=10), end=False)
    q = conv_program(cfg, L2, program=q)
    assert any(r.memory == "DRAM" for r in find_races(cfg, q, prog_addr=addr))


@pytest.mark.parametrize("K,s,cp", [(1, 2, (0, 0, 0, 0)), (3, 1, (0, 0, 0, 0)),
                                    (3, 2, (1, 0, 1, 0)), (1, 1, (0, 0, 0, 0))])
def test_conv_reads_a_window_of_wider_padding(K, s, cp):
    """A tensor stored with padding 1 (for another reader) read by a convolution with
    less padding (a ResNet shortcut's 1x1/2 next to a 3x3): ``ConvLayout.pads`` picks the
    window; two images and two output tiles (the window's offset in every block)."""
    from sim.compiler.runtime import Device
    cfg = named_config("default")
    rng = np.random.default_rng(K * 10 + s)
    x = rng.integers(-128, 128, (2, 8, 8, 8)).astype(np.int8)
    w = rng.integers(-128, 128, (16, 8, K, K)).astype(np.int8)
    dev = Device(cfg, "golden")
    X = Planes(dev.alloc(2 * 8 * 100), 2, 8, 8, 8, 1, (1, 1, 1, 1))
    probe = ConvLayout(X, Planes(0, 2, 16, 1, 1, 4), 16, K, K, "int8", 0, stride=(s, s),
                       pads=cp)
    Y = Planes(dev.alloc(2 * 16 * probe.OH * probe.OW * 4), 2, 16, probe.OH, probe.OW, 4)
    wi = weight_image(cfg, w)
    wa = dev.alloc(wi.size)
    L = ConvLayout(X, Y, 16, K, K, "int8", wa, stride=(s, s), pads=cp)
    dev.write(X.addr, X.image(x))
    dev.write(wa, wi)
    dev.run(dev.load_program(conv_program(cfg, L))).check()
    assert np.array_equal(Y.read(dev.dram, np.int32), conv_reference(x, w, cp, (1, 1), (s, s)))
    with pytest.raises(ConvError, match="not within the planes"):
        conv_program(cfg, ConvLayout(X, Y, 16, K, K, "int8", wa, pads=(2, 0, 0, 0)))
