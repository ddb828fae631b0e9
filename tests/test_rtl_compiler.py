"""Compiled programs on the RTL: the runtime's ``verilator`` backend (``neuron_core_sim``
driven through its host interface) against the ``golden`` backend (the ISS), bit for
bit over the whole DRAM image, plus the core's counters against the program."""

import numpy as np
import pytest

from hdl.config import named_config
from sim.compiler.lower import compile_net, run_compiled
from sim.compiler.net import Layer, Net, Quant
from sim.compiler.runtime import matmul
from tiers import regress_cases

pytestmark = pytest.mark.rtl


def _quant_net(rng, dims):
    layers = []
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        layers.append(Layer(f"fc{i}", rng.integers(-127, 128, (k, n)).astype(np.int8),
                            rng.integers(-4000, 4000, n).astype(np.int32), i < len(dims) - 2,
                            float(rng.uniform(0.002, 0.02)),
                            Quant(float(rng.uniform(0.05, 0.3)), int(rng.integers(-100, 100)))))
    return Net(layers, input_quant=Quant(0.05, 3))


def _float_net(rng, dims):
    return Net([Layer(f"fc{i}", (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32),
                      rng.standard_normal(n).astype(np.float32), i < len(dims) - 2)
                for i, (k, n) in enumerate(zip(dims, dims[1:]))])


CASES = [
    # config, dtype, layer sizes, batch
    ("default", "int8", [24, 37, 10], 70),
    ("default", "int8", [97, 13], 600),             # operands larger than SBUF
    ("4x4-fp", "bf16", [20, 33, 7], 45),
    ("4x4-fp", "fp16", [9, 17, 5], 300),
]


#: make regress only: the float nets, which need a whole-core model of their own
#: (neuron_core_sim on 4x4-fp: about two minutes of elaboration and build on a cold
#: machine). make test runs float programs and GEMMs on the 4x4-fp core
#: (test_rtl_core.py), compiles float nets against the ISS (test_compiler.py) and
#: runs compiled INT8 nets here.
REGRESS_ONLY = ("4x4-fp",)


@pytest.mark.parametrize("config,dtype,dims,batch",
                         regress_cases(CASES, lambda c, d, s, b: c in REGRESS_ONLY),
                         ids=[f"{c}-{d}-{'x'.join(map(str, s))}-b{b}" for c, d, s, b in CASES])
def test_compiled_net_on_rtl(config, dtype, dims, batch):
    seed = sum(dims) * 1000 + batch
    rng = np.random.default_rng(seed)
    net = _quant_net(rng, dims) if dtype == "int8" else _float_net(rng, dims)
    x = rng.standard_normal((batch, dims[0])).astype(np.float32)
    c = compile_net(net, config, batch=batch, dtype=dtype, check=True)
    y_iss, r_iss, dram_iss = run_compiled(c, x, backend="golden")
    y_rtl, r_rtl, dram_rtl = run_compiled(c, x, backend="verilator")
    diff = np.flatnonzero(dram_iss != dram_rtl)
    assert diff.size == 0, (f"seed {seed}: DRAM differs from the ISS in {diff.size} bytes, "
                            f"first at {int(diff[0]):#x}")
    assert np.array_equal(y_iss.view(np.uint32), y_rtl.view(np.uint32))
    assert r_rtl.counters["tensor_macs"] == c.macs == r_iss.counters["tensor_macs"]
    assert r_rtl.counters["instructions"] == len(c.program) == r_iss.counters["instructions"]
    cfg = named_config(config)
    util = r_rtl.utilization(cfg, c.macs)
    print(f"{config} {dtype} {dims} batch {batch}: {r_rtl.cycles} cycles, "
          f"utilization {util:.1%}")
    assert 0 < util <= 1


def test_runtime_matmul_int8_on_rtl():
    rng = np.random.default_rng(9)
    a = rng.integers(-128, 128, (11, 29)).astype(np.int8)
    b = rng.integers(-128, 128, (29, 6)).astype(np.int8)
    got, r = matmul(a, b, "int8", config="default", backend="verilator", return_result=True)
    assert np.array_equal(got, (a.astype(np.int64) @ b.astype(np.int64)).astype(np.int32))
    assert r.cycles > 0 and r.counters["tensor_macs"] == 11 * 29 * 6


@pytest.mark.regress      # the 4x4-fp whole-core model: see REGRESS_ONLY
def test_runtime_matmul_on_rtl():
    rng = np.random.default_rng(9)
    a = rng.standard_normal((11, 29)).astype(np.float32)
    b = rng.standard_normal((29, 6)).astype(np.float32)
    want = matmul(a, b, "bf16", config="4x4-fp", backend="golden")
    got, r = matmul(a, b, "bf16", config="4x4-fp", backend="verilator", return_result=True)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    assert r.cycles > 0 and r.counters["tensor_macs"] == 11 * 29 * 6


def test_runtime_dram_past_one_mib_on_rtl():
    """The verilator backend's DRAM is 64 MiB (issue 27; it was 1 MiB): a GEMM whose
    operands and result lie past the first 3 MiB runs bit-exact against the golden
    backend, whole used DRAM image compared."""
    from sim.compiler.gemm import GemmLayout, gemm_program
    from sim.compiler.runtime import Device
    cfg = named_config("default")
    rng = np.random.default_rng(27)
    M, K, N = 19, 40, 33
    a = rng.integers(-128, 128, (K, M)).astype(np.int8)        # A^T, as the GEMM reads it
    b = rng.integers(-128, 128, (K, N)).astype(np.int8)
    images = {}
    for backend in ("golden", "verilator"):
        dev = Device(cfg, backend)
        assert dev.dram_bytes == 64 << 20
        dev.alloc(3 << 20)                                       # a gap of zeros
        aa, ba, ca = dev.alloc(K * M), dev.alloc(K * N), dev.alloc(4 * M * N)
        assert aa >= 3 << 20
        dev.write(aa, a)
        dev.write(ba, b)
        p = dev.load_program(gemm_program(cfg, GemmLayout(M, N, K, "int8", a_addr=aa,
                                                          b_addr=ba, c_addr=ca)))
        r = dev.run(p).check()
        images[backend] = dev.dram[:dev.top].copy()
        got = dev.read(ca, (M, N), np.int32)
        assert np.array_equal(got, a.T.astype(np.int64) @ b.astype(np.int64)), backend
    assert r.cycles > 0
    diff = np.flatnonzero(images["golden"] != images["verilator"])
    assert diff.size == 0, f"DRAM differs from the ISS at {int(diff[0]):#x}"
