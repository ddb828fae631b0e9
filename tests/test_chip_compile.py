"""Nets on a chip, golden level (``sim/compiler/pipeline.py``, ``sim/compiler/chip.py``):
pipelined and data-parallel runs give exactly the single-core compiler's output (which
``tests/test_compiler.py`` checks against independent NumPy references), every chip
program is race-free, the weights of a pipeline are loaded once, and what cannot be
compiled is refused with the reason."""

import math

import numpy as np
import pytest

from hdl.config import NAMED_CONFIGS, CoreConfig
from sim.compiler.chip import compile_data_parallel, run_chip_compiled
from sim.compiler.lower import CompileError, compile_net, run_compiled
from sim.compiler.net import Layer, Net, Quant
from sim.compiler.pipeline import compile_pipeline

INT = NAMED_CONFIGS["default"]
FLT = NAMED_CONFIGS["4x4-fp"]


def quant_net(rng, dims):
    layers = []
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        w = rng.integers(-127, 128, (k, n)).astype(np.int8)
        b = rng.integers(-3000, 3000, n).astype(np.int32) if rng.random() < 0.8 else None
        oq = Quant(float(rng.uniform(0.02, 0.5)), int(rng.integers(-128, 128)))
        layers.append(Layer(f"fc{i}", w, b, bool(rng.random() < 0.7),
                            float(rng.uniform(0.002, 0.02)), oq))
    return Net(layers, input_quant=Quant(float(rng.uniform(0.01, 0.1)),
                                         int(rng.integers(-20, 20))))


def float_net(rng, dims):
    layers = []
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        w = (rng.standard_normal((k, n)) / math.sqrt(k)).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32) if rng.random() < 0.8 else None
        layers.append(Layer(f"fc{i}", w, b, i < len(dims) - 2))
    return Net(layers)


CASES = [
    # (dims, config, cores, batch, dtype)
    ([64, 64, 10], INT, 2, 13, None),
    ([100, 70, 40, 33, 9], INT, 4, 37, None),
    ([128, 128, 128, 128, 128], INT, 4, 40, None),
    ([20, 16, 12, 8, 4, 3], INT, 3, 5, None),
    ([40, 30, 20, 10], FLT, 4, 21, "bf16"),
    ([24, 17, 9], FLT, 2, 6, "fp16"),
]


@pytest.mark.parametrize("dims,cfg,cores,batch,dtype", CASES,
                         ids=[f"{'-'.join(map(str, c[0]))}-{c[1].name}-{c[2]}c" for c in CASES])
def test_pipeline_and_data_parallel_match_one_core(dims, cfg, cores, batch, dtype):
    seed = sum(dims) + cores
    rng = np.random.default_rng(seed)
    net = quant_net(rng, dims) if dtype is None else float_net(rng, dims)
    x = rng.normal(size=(batch, dims[0])).astype(np.float32)
    want, _, _ = run_compiled(compile_net(net, cfg, batch=batch, dtype=dtype), x)
    for compile_ in (compile_pipeline, compile_data_parallel):
        cc = compile_(net, cfg, batch=batch, cores=cores, dtype=dtype, check=True)
        assert cc.races() == []
        y, run = run_chip_compiled(cc, x)
        np.testing.assert_array_equal(y, want, err_msg=f"{cc.mode}, seed {seed}")
        assert sum(r["tensor_macs"] for r in run.results if r) == cc.macs


def _dram_traffic(cc):
    """(weight bytes, other DRAM bytes) the programs move (peer stores excluded)."""
    from hdl.chipmap import PeerAperture
    ap = PeerAperture(cc.config)
    w = other = 0
    for prog in cc.programs:
        for ins in prog or []:
            if ins.op == "DMA" and ins.cmd.addr < ap.base:
                nbytes = ins.cmd.rows * ins.cmd.row_bytes
                if any(lo <= ins.cmd.addr < hi for lo, hi in cc.weight_ranges):
                    w += nbytes
                else:
                    other += nbytes
    return w, other


def test_pipeline_keeps_weights_resident():
    """Weights and biases cross the DRAM port once per run whatever the batch; the rest
    of the traffic is exactly the inputs and the outputs."""
    rng = np.random.default_rng(7)
    dims = [128, 128, 128, 128, 128]
    net = quant_net(rng, dims)
    from sim.compiler.gemm import bias_image
    from sim.compiler.lower import _layer_epilogue
    weights = sum(k * n for k, n in zip(dims, dims[1:]))
    biases = sum(bias_image(INT, L.N, b).nbytes for L, (_, b, _) in
                 zip(net.layers, (_layer_epilogue(net, i, "int8") for i in range(4)))
                 if b is not None)
    for batch in (8, 64):
        cc = compile_pipeline(net, INT, batch=batch, cores=4)
        w, other = _dram_traffic(cc)
        assert w == weights + biases
        assert other == batch * (dims[0] + dims[-1])                  # INT8 in and out
    assert [hi - lo for lo, hi in cc.stages] == [1, 1, 1, 1]


def test_stages_balance():
    """A heavy layer gets a core to itself; light ones share."""
    rng = np.random.default_rng(3)
    net = quant_net(rng, [16, 16, 16, 256, 16, 16])
    cc = compile_pipeline(net, INT, batch=16, cores=3)
    assert (2, 3) in cc.stages or (3, 4) in cc.stages, cc.stages
    assert len(cc.stages) == 3


def test_compile_net_keywords():
    """``compile_net(..., pipeline_cores=N)`` / ``data_parallel_cores=N`` are the chip
    compilers."""
    rng = np.random.default_rng(9)
    net = quant_net(rng, [16, 16, 8])
    cc = compile_net(net, INT, batch=4, pipeline_cores=2)
    assert cc.mode == "pipeline" and cc.stages == [(0, 1), (1, 2)]
    assert compile_net(net, INT, batch=4, data_parallel_cores=2).mode == "data"
    with pytest.raises(CompileError, match="not both"):
        compile_net(net, INT, batch=4, pipeline_cores=2, data_parallel_cores=2)


def test_refusals():
    rng = np.random.default_rng(1)
    net = quant_net(rng, [16, 8, 4])
    with pytest.raises(CompileError, match="square"):
        compile_pipeline(net, NAMED_CONFIGS["8x4"], batch=4, cores=2)
    with pytest.raises(CompileError, match="semaphores"):
        compile_pipeline(net, CoreConfig(n_sems=4), batch=4, cores=2)
    with pytest.raises(CompileError, match="cores"):
        compile_pipeline(net, INT, batch=4, cores=9)
    with pytest.raises(CompileError, match="cores"):
        compile_data_parallel(net, INT, batch=4, cores=0)
    big = quant_net(rng, [8, 4096, 8])
    small = CoreConfig(rows=8, cols=8, sbuf_bytes=1024)
    with pytest.raises(CompileError, match="does not fit one core's SBUF"):
        compile_pipeline(big, small, batch=4, cores=4)
    with pytest.raises(CompileError, match="too small for a chip"):
        compile_pipeline(net, CoreConfig(axi_addr_width=16), batch=4, cores=2)


def test_more_cores_than_layers_and_batch():
    """Idle cores where there is nothing to give them."""
    rng = np.random.default_rng(5)
    net = quant_net(rng, [32, 16, 8])
    x = rng.normal(size=(3, 32)).astype(np.float32)
    want, _, _ = run_compiled(compile_net(net, INT, batch=3), x)
    cc = compile_pipeline(net, INT, batch=3, cores=4)
    assert cc.programs[2:] == [None, None]
    np.testing.assert_array_equal(run_chip_compiled(cc, x)[0], want)
    cc = compile_data_parallel(net, INT, batch=3, cores=4)
    assert cc.programs[3] is None
    np.testing.assert_array_equal(run_chip_compiled(cc, x)[0], want)
