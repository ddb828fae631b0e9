"""The compiler (sim/compiler/lower.py) and runtime (sim/compiler/runtime.py) on the golden model.

Expected values come from NumPy references written here, independently of the
compiler: exact integer arithmetic for INT8 (with the requantiser's documented
rounding), and for BF16/FP16 the FP32 sums taken one product at a time in the array's
order (the products of two 16-bit floats are exact in FP32). Every compiled program is
also put through the race checker. ONNX models are compared with onnxruntime in
tests/test_onnx_compile.py; the Verilator samples are in tests/test_rtl_compiler.py.
"""

import math

import ml_dtypes
import numpy as np
import pytest

from hdl.config import NAMED_CONFIGS, CoreConfig
from sim.compiler.lower import CompileError, compile_net, requant_params, run_compiled
from sim.compiler.net import Layer, Net, Quant
from sim.compiler.runtime import Device, OutOfMemory, matmul

INT = CoreConfig(rows=8, cols=8)
FLT = CoreConfig(rows=4, cols=4, dtypes=("int8", "bf16", "fp16"))
SMALL = CoreConfig(rows=4, cols=4, sbuf_bytes=512, psum_depth=64)   # forces streaming
FTYPE = {"bf16": ml_dtypes.bfloat16, "fp16": np.float16}


# ---- references ----------------------------------------------------------------------

def ordered_gemm_f32(a, b, rows):
    """``a @ b`` (float32 values exactly representable in 16 bits) summed in the
    array's order: each K slice of ``rows`` from 0 (row 0 first), then slices added
    to the running total in order (docs/numerics.md)."""
    M, K = a.shape
    out = None
    for k0 in range(0, K, rows):
        part = np.zeros((M, b.shape[1]), np.float32)
        for k in range(k0, min(K, k0 + rows)):
            part = (part + a[:, k:k + 1] * b[k:k + 1, :]).astype(np.float32)
        out = part if out is None else (out + part).astype(np.float32)
    return out


def float_net_reference(net, x, dtype, rows):
    """The FP32 output of a float net run with ``dtype`` operands on the array."""
    t = FTYPE[dtype]
    h = np.asarray(x, np.float32).astype(t).astype(np.float32)        # input cast (RNE)
    for i, L in enumerate(net.layers):
        w = L.weight.astype(t).astype(np.float32)
        y = ordered_gemm_f32(w.T, h.T, rows).T                          # batch x N
        if L.bias is not None:
            y = (y + L.bias.astype(np.float32)).astype(np.float32)
        if L.relu:
            y = np.where(y < 0, np.float32(0), y)
            y = np.where(y == 0, np.float32(0), y)                      # -0 -> +0
        if i < len(net.layers) - 1:
            y = y.astype(t).astype(np.float32)                          # the cast (RNE)
        h = y
    return h


def round_shift(p, shift):
    """``p / 2**shift`` rounded half away from zero (Python integers)."""
    if shift == 0:
        return p
    q, r = divmod(abs(p), 1 << shift)
    q += r * 2 >= (1 << shift)
    return q if p >= 0 else -q


def int_net_reference(net, xq):
    """The INT8 codes (or INT32 accumulators) a quantised net computes from input codes."""
    h = np.asarray(xq).astype(np.int64)
    for i, L in enumerate(net.layers):
        qin = net.in_quant(i)
        acc = (h - qin.zero_point) @ L.weight.astype(np.int64)
        if L.bias is not None:
            acc = acc + L.bias.astype(np.int64)
        assert np.abs(acc).max(initial=0) < 2 ** 31
        if L.out_quant is None:
            h = np.maximum(acc, 0) if L.relu else acc
            continue
        mult = (float(np.float32(qin.scale)) * float(np.float32(L.w_scale))
                / float(np.float32(L.out_quant.scale)))
        scale, shift = requant_params(mult)
        zp = L.out_quant.zero_point
        y = np.array([[round_shift(int(a) * scale, shift) + zp for a in row] for row in acc])
        y = np.clip(y, -128, 127)
        if L.relu:
            y = np.maximum(y, zp)
        h = y
    return h


# ---- random nets -----------------------------------------------------------------------

def random_float_net(rng, dims, relu_last=False):
    layers = []
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        w = (rng.standard_normal((k, n)) / math.sqrt(k)).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32) if rng.random() < 0.8 else None
        relu = i < len(dims) - 2 or relu_last
        layers.append(Layer(f"fc{i}", w, b, relu))
    return Net(layers)


def random_quant_net(rng, dims, last_quant=True):
    layers = []
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        w = rng.integers(-127, 128, (k, n)).astype(np.int8)
        b = rng.integers(-3000, 3000, n).astype(np.int32) if rng.random() < 0.8 else None
        last = i == len(dims) - 2
        oq = None if last and not last_quant else Quant(float(rng.uniform(0.02, 0.5)),
                                                        int(rng.integers(-128, 128)))
        layers.append(Layer(f"fc{i}", w, b, bool(rng.random() < 0.7), float(rng.uniform(0.002, 0.02)), oq))
    return Net(layers, input_quant=Quant(float(rng.uniform(0.01, 0.1)), int(rng.integers(-20, 20))))


# ---- compiled GEMMs ----------------------------------------------------------------------

GEMM_SHAPES = [(1, 1, 1), (1, 7, 13), (13, 1, 7), (7, 13, 1), (8, 8, 8), (31, 17, 29),
               (64, 37, 71), (9, 300, 23), (70, 260, 40)]


@pytest.mark.parametrize("cfg", [INT, SMALL], ids=["8x8", "4x4-small-sbuf"])
@pytest.mark.parametrize("M,N,K", GEMM_SHAPES)
def test_compiled_gemm_int8_exact(cfg, M, N, K):
    """A one-layer quantised net without requantisation is an INT32 GEMM: the output
    accumulators equal NumPy's ``(X - zp) @ W + b`` exactly."""
    seed = M * 10007 + N * 101 + K
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (K, N)).astype(np.int8)
    b = rng.integers(-10 ** 6, 10 ** 6, N).astype(np.int32)
    zp = int(rng.integers(-128, 128))
    net = Net([Layer("fc", w, b, False, 1.0, None)], input_quant=Quant(1.0, zp))
    x = rng.integers(-128, 128, (M, K)).astype(np.int8)
    c = compile_net(net, cfg, batch=M, check=True)
    _, r, dram = run_compiled(c, bits=np.ascontiguousarray(x.T))
    got = c.output_bits(dram).T
    want = (x.astype(np.int64) - zp) @ w.astype(np.int64) + b
    assert np.array_equal(got, want.astype(np.int32)), f"seed {seed}"
    assert r.counters["tensor_macs"] == M * N * K


@pytest.mark.parametrize("cfg", [FLT, SMALL.__class__(rows=4, cols=4, sbuf_bytes=512,
                                                       psum_depth=64,
                                                       dtypes=("int8", "bf16", "fp16"))],
                         ids=["4x4-fp", "4x4-fp-small-sbuf"])
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (5, 3, 7), (13, 31, 17), (40, 150, 37)])
def test_compiled_gemm_float_bit_exact(cfg, dtype, M, N, K):
    seed = M * 7919 + N * 31 + K + (dtype == "fp16")
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((K, N)) * 4.0 ** rng.integers(-3, 4, (K, N))).astype(np.float32)
    x = (rng.standard_normal((M, K)) * 4.0 ** rng.integers(-3, 4, (M, K))).astype(np.float32)
    net = Net([Layer("fc", w)])
    c = compile_net(net, cfg, batch=M, dtype=dtype, check=True)
    y, _, _ = run_compiled(c, x)
    want = float_net_reference(net, x, dtype, cfg.rows)
    assert np.array_equal(y.view(np.uint32), want.view(np.uint32)), f"seed {seed}"


# ---- compiled nets -------------------------------------------------------------------------

NET_DIMS = [[5, 3], [16, 9, 4], [64, 64, 10], [23, 41, 2, 7], [100, 130, 33]]


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("seed", range(5))
def test_float_net_bit_exact(dtype, seed):
    rng = np.random.default_rng(seed)
    dims = NET_DIMS[seed]
    net = random_float_net(rng, dims, relu_last=seed % 2 == 1)
    batch = int(rng.choice([1, 3, 17, 70, 300]))
    cfg = [FLT, CoreConfig(rows=8, cols=8, dtypes=("int8", "bf16", "fp16"))][seed % 2]
    x = rng.standard_normal((batch, dims[0])).astype(np.float32)
    c = compile_net(net, cfg, batch=batch, dtype=dtype, check=True)
    y, _, _ = run_compiled(c, x)
    want = float_net_reference(net, x, dtype, cfg.rows)
    assert np.array_equal(y.view(np.uint32), want.view(np.uint32)), \
        f"seed {seed}: {np.count_nonzero(y != want)} of {y.size} differ"


@pytest.mark.parametrize("seed", range(8))
def test_quant_net_exact(seed):
    rng = np.random.default_rng(100 + seed)
    dims = NET_DIMS[seed % len(NET_DIMS)]
    net = random_quant_net(rng, dims, last_quant=seed % 3 != 2)
    batch = int(rng.choice([1, 5, 64, 257]))
    cfg = [INT, SMALL, FLT][seed % 3]
    xq = rng.integers(-128, 128, (batch, dims[0])).astype(np.int8)
    c = compile_net(net, cfg, batch=batch, check=True)
    _, _, dram = run_compiled(c, bits=np.ascontiguousarray(xq.T))
    got = c.output_bits(dram).T
    want = int_net_reference(net, xq)
    assert np.array_equal(got.astype(np.int64), want), \
        f"seed {100 + seed}: {np.count_nonzero(got != want)} of {got.size} differ"


def test_quant_net_float_io():
    """The host side of a quantised net: QuantizeLinear of the input, DequantizeLinear
    of the output, as ONNX defines them."""
    rng = np.random.default_rng(7)
    net = random_quant_net(rng, [12, 9, 5])
    x = (rng.standard_normal((6, 12)) * 2).astype(np.float32)
    c = compile_net(net, INT, batch=6)
    y, _, _ = run_compiled(c, x)
    q = net.input_quant
    xq = np.clip(np.rint(x / np.float32(q.scale)) + q.zero_point, -128, 127).astype(np.int8)
    codes = int_net_reference(net, xq)
    oq = net.layers[-1].out_quant
    want = (codes - oq.zero_point).astype(np.float32) * np.float32(oq.scale)
    assert np.array_equal(y, want)


def test_layer_ranges_compose():
    """Running the layers one at a time (``layers=(i, i+1)``, as the per-layer figures
    do) gives the same activations as the whole program."""
    rng = np.random.default_rng(3)
    net = random_float_net(rng, [20, 30, 11])
    x = rng.standard_normal((9, 20)).astype(np.float32)
    whole = compile_net(net, FLT, batch=9, dtype="bf16")
    y, _, _ = run_compiled(whole, x)
    bits = whole.input_bits(x)
    for i in range(2):
        part = compile_net(net, FLT, batch=9, dtype="bf16", layers=(i, i + 1))
        yi, _, dram = run_compiled(part, bits=bits)
        bits = part.output_bits(dram)
    assert np.array_equal(yi.view(np.uint32), y.view(np.uint32))


def test_weights_stay_on_chip():
    """With a batch wider than PSUM, each weight slice is loaded once (keep_a) instead
    of once per block of the batch; the results are the same."""
    rng = np.random.default_rng(5)
    net = random_quant_net(rng, [64, 64])
    xq = rng.integers(-128, 128, (600, 64)).astype(np.int8)
    outs = []
    loads = []
    for keep in (True, False):
        import sim.compiler.lower as comp
        orig = comp.gemm_program

        def patched(*a, **k):
            k["keep_a"] = keep
            k["tail"] = 1           # whole blocks: 5 of them (the planner may split the last)
            return orig(*a, **k)
        comp.gemm_program = patched
        try:
            c = compile_net(net, INT, batch=600, n_block=128, check=True)
        finally:
            comp.gemm_program = orig
        w_addr = c.layers[0].layout.a_addr
        loads.append(sum(1 for ins in c.program.instructions
                         if ins.op == "DMA" and not ins.cmd.store
                         and w_addr <= ins.cmd.addr < w_addr + 64 * 64))
        _, _, dram = run_compiled(c, bits=np.ascontiguousarray(xq.T))
        outs.append(c.output_bits(dram))
    assert np.array_equal(outs[0], outs[1])
    assert loads[1] == 5 * loads[0], loads      # 600 columns = 5 blocks of 128


# ---- requantisation parameters --------------------------------------------------------------

@pytest.mark.parametrize("m", [1.0, 0.5, 3e-5, 0.0123456, 0.99999, 1.5, 300.7, 32767.0, 2 ** -40])
def test_requant_params(m):
    scale, shift = requant_params(m)
    assert 1 <= scale <= 32767 and 0 <= shift <= 47
    assert abs(scale / 2 ** shift - m) <= m * 2 ** -14 + 2 ** -(shift + 1)
    if shift < 47:      # the largest shift that keeps the scale in 15 bits
        assert math.floor(m * 2 ** (shift + 1) + 0.5) > 32767


@pytest.mark.parametrize("m", [0.0, -1.0, float("inf"), 40000.0, 2 ** -50])
def test_requant_params_refused(m):
    with pytest.raises(CompileError):
        requant_params(m)


# ---- runtime ---------------------------------------------------------------------------------

def test_runtime_matmul_golden():
    rng = np.random.default_rng(11)
    A = rng.integers(-128, 128, (19, 23)).astype(np.int8)
    B = rng.integers(-128, 128, (23, 29)).astype(np.int8)
    C, r = matmul(A, B, "int8", return_result=True)
    assert np.array_equal(C, A.astype(np.int64) @ B.astype(np.int64))
    assert r.done and r.error == "NONE" and r.counters["tensor_macs"] == 19 * 23 * 29
    a = rng.standard_normal((5, 9)).astype(np.float32)
    b = rng.standard_normal((9, 4)).astype(np.float32)
    C = matmul(a, b, "bf16", config=FLT)
    want = ordered_gemm_f32(a.astype(ml_dtypes.bfloat16).astype(np.float32),
                            b.astype(ml_dtypes.bfloat16).astype(np.float32), FLT.rows)
    assert np.array_equal(C.view(np.uint32), want.view(np.uint32))


def test_runtime_device_memory():
    dev = Device(INT, "golden", dram_bytes=4096)
    a = dev.alloc(100)
    dev.write(a, np.arange(25, dtype=np.int32))
    assert np.array_equal(dev.read(a, (5, 5), np.int32), np.arange(25).reshape(5, 5))
    with pytest.raises(OutOfMemory, match="out of DRAM"):
        dev.alloc(8192)
    with pytest.raises(ValueError, match="backend"):
        Device(INT, "amaranth")


def test_runtime_reports_core_errors():
    """A program the core refuses comes back as an error result, not an exception, and
    ``check`` raises it."""
    from sim.isa.asm import Program
    from sim.compiler.runtime import CoreFault
    dev = Device(INT, "golden", dram_bytes=4096)
    p = Program(INT)
    p.dma(addr=1 << 20, rows=1, row_bytes=8)        # outside the window
    p.end()
    r = dev.run(dev.load_program(p))
    assert r.error == "DMA" and not r.done
    with pytest.raises(CoreFault, match="DMA"):
        r.check()


# ---- bad input ----------------------------------------------------------------------------------

def test_model_too_large_for_dram():
    rng = np.random.default_rng(1)
    net = random_float_net(rng, [512, 512, 10])
    with pytest.raises(CompileError, match="bytes of DRAM"):
        compile_net(net, FLT, batch=100_000, dram_bytes=1 << 20)
    net = random_float_net(rng, [16, 16])
    c = compile_net(net, FLT, batch=12_000)         # 1.1 MiB of activations
    with pytest.raises(OutOfMemory, match="bytes of DRAM.*dram_bytes= to Device"):
        run_compiled(c, np.zeros((12_000, 16), np.float32), dram_bytes=1 << 20)
    y, _, _ = run_compiled(c, np.zeros((12_000, 16), np.float32))   # the 64 MiB default
    assert y.shape == (12_000, 16)


def test_dram_sizes():
    """DRAM is a parameter of Device, matmul and run_compiled (issue 27): 64 MiB by
    default on golden and verilator, any size on golden, at most the simulated DRAM
    on verilator, and every refusal says what to raise."""
    from hdl.tops.simdram import SIM_DRAM_BYTES, sim_dram_bytes
    from sim.compiler.runtime import default_dram_bytes, max_dram_bytes
    assert SIM_DRAM_BYTES == 64 << 20
    assert Device(INT).dram_bytes == 64 << 20
    assert Device(INT, "verilator").dram_bytes == SIM_DRAM_BYTES
    assert Device(INT, "golden", 256 << 20).dram_bytes == 256 << 20
    assert max_dram_bytes(INT, "golden") is None
    assert max_dram_bytes("min", "verilator") == sim_dram_bytes(NAMED_CONFIGS["min"]) == 1 << 12
    assert default_dram_bytes("min", "golden") == 1 << 12       # a 12-bit address space
    with pytest.raises(OutOfMemory, match="SIM_DRAM_BYTES.*golden backend takes any size"):
        Device(INT, "verilator", SIM_DRAM_BYTES + 64)
    with pytest.raises(OutOfMemory, match="32-bit AXI address space"):
        Device(INT, "golden", 1 << 33)
    with pytest.raises(ValueError, match="positive"):
        Device(INT, "golden", 0)
    with pytest.raises(OutOfMemory, match="dram_bytes= to Device or matmul.*at least 16384"):
        Device(INT, "golden", 8192).alloc(16384)
    with pytest.raises(OutOfMemory, match="at most 67108864 bytes.*golden backend with "
                                          "dram_bytes >= 67108928"):
        Device(INT, "verilator").alloc(SIM_DRAM_BYTES + 64)
    # a GEMM whose INT32 result alone (2 MiB) passed the old 1 MiB DRAM
    rng = np.random.default_rng(3)
    A = rng.integers(-128, 128, (1024, 16)).astype(np.int8)
    B = rng.integers(-128, 128, (16, 512)).astype(np.int8)
    C = matmul(A, B, "int8")
    assert np.array_equal(C, A.astype(np.int64) @ B.astype(np.int64))
    with pytest.raises(OutOfMemory, match="at least"):
        matmul(A, B, "int8", dram_bytes=1 << 20)


def test_bad_requests():
    rng = np.random.default_rng(2)
    fnet = random_float_net(rng, [8, 4])
    qnet = random_quant_net(rng, [8, 4])
    with pytest.raises(CompileError, match="has no bf16"):
        compile_net(fnet, INT, batch=2)
    with pytest.raises(CompileError, match="quantised net runs as int8"):
        compile_net(qnet, FLT, batch=2, dtype="bf16")
    with pytest.raises(CompileError, match="batch"):
        compile_net(fnet, FLT, batch=0)
    bad = Net([Layer("a", np.zeros((8, 4), np.float32)), Layer("b", np.zeros((5, 3), np.float32))])
    with pytest.raises(CompileError, match="shape mismatch"):
        compile_net(bad, FLT, batch=2)
    c = compile_net(fnet, FLT, batch=2)
    with pytest.raises(ValueError, match="input shape"):
        run_compiled(c, np.zeros((3, 8), np.float32))


#: the smallest legal cores (two SBUF words per partition) hold no net: the compiler
#: refuses them with a clear error (test_tiny_configuration_refused)
TINY = ("min", "min-fp")
ALL_CONFIGS = {name: cfg for name, cfg in NAMED_CONFIGS.items()
               if name != "128x128" and name not in TINY}
ALL_CONFIGS["4x16"] = CoreConfig(rows=4, cols=16)                  # more columns than rows
ALL_CONFIGS["2x8-fp"] = CoreConfig(rows=2, cols=8, dtypes=("int8", "bf16", "fp16"))


@pytest.mark.parametrize("name", list(ALL_CONFIGS))
def test_every_configuration(name):
    """A quantised and (where the configuration has floats) a float net compile and run
    exactly on every named configuration and two odd shapes."""
    cfg = ALL_CONFIGS[name]
    rng = np.random.default_rng(len(name))
    net = random_quant_net(rng, [13, 21, 5])
    xq = rng.integers(-128, 128, (37, 13)).astype(np.int8)
    c = compile_net(net, cfg, batch=37, check=True)
    _, _, dram = run_compiled(c, bits=np.ascontiguousarray(xq.T))
    assert np.array_equal(c.output_bits(dram).T.astype(np.int64), int_net_reference(net, xq))
    for dtype in ("bf16", "fp16"):
        if dtype not in cfg.dtypes:
            continue
        fnet = random_float_net(rng, [13, 21, 5])
        x = rng.standard_normal((37, 13)).astype(np.float32)
        c = compile_net(fnet, cfg, batch=37, dtype=dtype, check=True)
        y, _, _ = run_compiled(c, x)
        want = float_net_reference(fnet, x, dtype, cfg.rows)
        assert np.array_equal(y.view(np.uint32), want.view(np.uint32)), dtype


@pytest.mark.parametrize("name", TINY)
def test_tiny_configuration_refused(name):
    """A net on a core whose SBUF partition holds 16 bytes is refused with a message
    naming the layer and what does not fit, not miscompiled."""
    from sim.compiler.lower import CompileError
    rng = np.random.default_rng(0)
    net = random_quant_net(rng, [13, 21, 5])
    with pytest.raises(CompileError, match=r"layer 0 \(fc0\): .* does not fit SBUF"):
        compile_net(net, NAMED_CONFIGS[name], batch=37, check=True)
