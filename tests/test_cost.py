"""The compiler's cost model (sim/compiler/cost.py) and the choices it drives
(sim/compiler/gemm.py ``plan_gemm``, the resident schedule's options, weight prefetch in
sim/compiler/lower.py).

The model's figures are calibrated on the RTL (``python -m sim.compiler.calibrate``);
these tests check only structural properties that hold for any calibration, and that
every program the new options write is race-free and computes the exact result on the
ISS."""

import numpy as np
import pytest

from hdl.config import CoreConfig, named_config
from sim.compiler.cost import DEFAULT_TIMING, SketchProgram, Timing, estimate, simulate
from sim.compiler.gemm import gemm_program, plan_gemm
from sim.compiler.lower import compile_net, run_compiled
from sim.isa.asm import Program
from sim.isa.races import find_races

from test_gemm import _float_reference, _layout, _run
from test_compiler import (float_net_reference, int_net_reference, random_float_net,
                           random_quant_net)

DEFAULT = named_config("default")
FP = named_config("8x8-fp")
FLT4 = CoreConfig(rows=4, cols=4, dtypes=("int8", "bf16", "fp16"))


def _run_exact(cfg, M, N, K, dtype, seed, **kw):
    """Race-free, runs to END on the ISS (``test_gemm._run``), and C equals the
    reference bit for bit."""
    A, B, C, prog = _run(cfg, M, N, K, dtype, seed, **kw)
    if dtype == "int8":
        want = (A.astype(np.int64) @ B.astype(np.int64)).astype(np.int32)
        assert np.array_equal(C.view(np.int32).reshape(M, N), want), kw
    else:
        want = _float_reference(A, B, dtype, cfg.rows)
        assert np.array_equal(C.view(np.uint32).reshape(M, N), want.view(np.uint32)), kw
    return prog


# ---- the resident schedule's options ----------------------------------------------------

RES_OPTIONS = [(None, 1, None), (1, 1, 1), (3, 3, 1), (6, 2, 2), (16, 4, None), (4, 1, 2)]


@pytest.mark.parametrize("g0,tail,lead", RES_OPTIONS)
@pytest.mark.parametrize("M,N,K", [(100, 37, 71), (64, 64, 64), (13, 5, 17), (9, 3, 2)])
def test_resident_options_int8(M, N, K, g0, tail, lead):
    _run_exact(DEFAULT, M, N, K, "int8", M + N + K, schedule="resident", g0=g0, tail=tail,
               lead=lead)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("g0,tail,lead", RES_OPTIONS[1:4])
def test_resident_options_float(dtype, g0, tail, lead):
    _run_exact(FLT4, 23, 19, 13, dtype, 7, schedule="resident", g0=g0, tail=tail, lead=lead)


@pytest.mark.regress
@pytest.mark.parametrize("dtype", ["int8", "bf16"])
@pytest.mark.parametrize("M,N,K", [(100, 37, 71), (64, 64, 64), (33, 2, 57), (8, 200, 9),
                                   (70, 13, 40), (1, 1, 1)])
def test_resident_options_sweep(dtype, M, N, K):
    cfg = DEFAULT if dtype == "int8" else FP
    for g0 in (None, 1, 2, 5, 8, 24):
        for tail in (1, 2, 5):
            for lead in (None, 1, 3):
                try:
                    _run_exact(cfg, M, N, K, dtype, g0 or 0, schedule="resident", g0=g0,
                               tail=tail, lead=lead)
                except ValueError as e:
                    assert "does not fit" in str(e)
                    return


@pytest.mark.parametrize("cfg,dtype", [(DEFAULT, "int8"), (FP, "bf16"), (FP, "fp16"),
                                       (named_config("8x4"), "int8")],
                         ids=["default", "8x8-fp-bf16", "8x8-fp-fp16", "8x4"])
@pytest.mark.parametrize("M,N,K", [(100, 37, 71), (64, 64, 64), (40, 300, 20)])
def test_planned_program_exact(cfg, dtype, M, N, K):
    """``schedule=None``: whatever plan_gemm picks is race-free and exact."""
    _run_exact(cfg, M, N, K, dtype, M * N + K)


def test_min_config_refused():
    """"min" has one semaphore: no GEMM program fits it (the planner says so)."""
    with pytest.raises(ValueError):
        gemm_program(named_config("min"), _layout(1, 1, 1, "int8"))


# ---- the cost model --------------------------------------------------------------------

def test_plan_beats_the_fixed_rule():
    """(100, 37, 71) INT8: the fixed rule (resident, 3 tiles in the first group, all
    loads first, whole last tile) is DMA-bound at the start; the planner's choice is
    estimated cheaper, and plan_gemm reports that estimate."""
    L = _layout(100, 37, 71, "int8")
    rule = estimate(gemm_program(DEFAULT, L, schedule="resident", g0=None, tail=1,
                                 lead=None), DEFAULT)
    plan = plan_gemm(DEFAULT, L)
    chosen = estimate(gemm_program(DEFAULT, L), DEFAULT)
    assert chosen == plan["estimate"]
    assert chosen < rule
    assert (plan["g0"], plan["tail"], plan["lead"]) != (None, 1, None)


def test_plan_is_the_cheapest_candidate():
    L = _layout(64, 64, 64, "int8")
    plan = plan_gemm(DEFAULT, L)
    for kw in (dict(schedule="stream"), dict(schedule="psum"),
               dict(schedule="resident", g0=None, tail=1, lead=None)):
        assert plan["estimate"] <= estimate(gemm_program(DEFAULT, L, **kw), DEFAULT), kw


@pytest.mark.parametrize("dtype", ["int8", "bf16"])
def test_more_columns_cost_more(dtype):
    cfg = DEFAULT if dtype == "int8" else FP
    prev = 0
    for N in (8, 16, 32, 64, 128):
        e = estimate(gemm_program(cfg, _layout(32, N, 32, dtype), schedule="stream"), cfg)
        assert e > prev, N
        prev = e


@pytest.mark.parametrize("M,N,K", [(64, 64, 64), (100, 37, 71), (20, 300, 30)])
def test_faster_engines_never_cost_more(M, N, K):
    """Overlapping DMA descriptors, or a shorter DMA latency, never makes the estimate
    of the same program larger; the estimate is at least every engine's busy time."""
    p = gemm_program(DEFAULT, _layout(M, N, K, "int8"))
    base = simulate(p, DEFAULT)
    assert base.cycles >= max(base.busy.values())
    T = DEFAULT_TIMING
    assert estimate(p, DEFAULT, T.with_(dma_overlap=True)) <= base.cycles
    assert estimate(p, DEFAULT, T.with_(load_latency=T.load_latency // 2,
                                        store_latency=T.store_latency // 2)) <= base.cycles
    assert estimate(p, DEFAULT, T.with_(act_fixed=0)) <= base.cycles


def test_sketch_program_estimates_like_a_program():
    """plan_gemm writes candidates into a SketchProgram (no encoding): the same
    instructions as a Program, so the same estimate."""
    from sim.compiler.gemm import _emit
    L = _layout(100, 37, 71, "int8")
    kw = dict(double_buffer=True, n_block=None, schedule="resident", epilogue=None,
              after=None, end=True, keep_a=True, g0=5, tail=2, lead=1, sbuf_top=None,
              preloaded=None, prefetch=None)
    a = _emit(DEFAULT, L, program=Program(DEFAULT), **kw)
    b = _emit(DEFAULT, L, program=SketchProgram(DEFAULT), **kw)
    assert len(a) == len(b)
    assert estimate(a, DEFAULT) == estimate(b, DEFAULT)


def test_wait_on_a_later_signal_is_refused():
    p = Program(DEFAULT)
    p.matmul(k=8, m=8, n=8, wait=("ld", 1))
    p.dma(addr=0, rows=8, row_bytes=8, row_stride=8, signal="ld")
    p.end()
    with pytest.raises(ValueError, match="later"):
        simulate(p, DEFAULT)


def _store_beside_matmuls(cfg, dtype, n_mm, *, store_first=True):
    """``n_mm`` independent 64-column matmuls and one 8 x 1 KiB store, in either order."""
    p = Program(cfg)

    def mms():
        for i in range(n_mm):
            p.matmul(k=8, m=8, n=64, bank=i % 4, dtype=dtype, signal="mm")

    def store():
        p.dma(addr=0, rows=8, row_bytes=1024, row_stride=1024, offset=0, store=True,
              signal="st")
    if store_first:
        store()
        mms()
    else:
        mms()
        store()
    p.end(wait=("st", 1))
    return p


@pytest.mark.parametrize("dtype,share", [("int8", "store_share"),
                                         ("bf16", "store_share_float")])
def test_stores_beside_matmuls_share_sbuf(dtype, share):
    """A store that runs while the array streams takes ``store_share`` times as long
    (SBUF's one read port), also when the matmuls come after it in program order (the
    model's second pass), and no longer than that; without matmuls, its own length."""
    # no gaps between the matmuls: the streams are back to back
    T = DEFAULT_TIMING.with_(mm_gap=0, mm_gap_float=0, **{share: 1.5})
    alone = simulate(_store_beside_matmuls(FP, dtype, 0), FP, T).busy["dma_out"]
    for first in (True, False):
        beside = simulate(_store_beside_matmuls(FP, dtype, 32, store_first=first), FP, T)
        if first:
            work = alone - T.store_latency
            assert beside.busy["dma_out"] == pytest.approx(T.store_latency + 1.5 * work)
        else:
            # written after the matmuls: it starts once they are dispatched and still
            # overlaps their streams for a while, so it is slower than alone
            assert beside.busy["dma_out"] > alone
    same = simulate(_store_beside_matmuls(FP, dtype, 32), FP, T.with_(**{share: 1.0}))
    assert same.busy["dma_out"] == alone


@pytest.mark.parametrize("cfg", [DEFAULT, FP], ids=["int", "float"])
def test_short_accumulations_wait_for_psum(cfg):
    """Back-to-back accumulations into the same entries stall only when shorter than
    PSUM's read-modify-write pipeline (``A + 1`` columns: 8 with floats, 3 without; the
    figures documented in hdl.psum, written here independently of the code)."""
    A = 7 if cfg.has_float else 2
    T = DEFAULT_TIMING.with_(mm_gap=0, mm_gap_float=0)

    def run(n, acc):
        p = Program(cfg)
        for i in range(16):
            p.matmul(k=8, m=8, n=n, acc=acc and i > 0, signal="mm")
        p.end(wait=("mm", 16))
        return simulate(p, cfg, T).busy["tensor"]
    for n in (1, A, A + 1, 2 * A + 3):
        want = 16 * n + (15 * (A + 1 - n) if n <= A else 0)
        assert run(n, True) == want, n
        assert run(n, False) == 16 * n, n


def test_timing_is_a_parameter():
    T = Timing(load_latency=10)
    assert T.with_(load_latency=20).load_latency == 20 and T.load_latency == 10


# ---- weight prefetch between layers ---------------------------------------------------------

PF_CASES = [
    # config, dtype, dims, batch
    (DEFAULT, "int8", [64, 64, 10], 40),
    (DEFAULT, "int8", [24, 37, 10, 5], 70),
    (DEFAULT, "int8", [97, 13, 20], 600),
    (FP, "bf16", [64, 64, 10], 36),
    (FP, "fp16", [20, 33, 7, 9], 45),
    (FLT4, "bf16", [9, 17, 5], 300),
]


@pytest.mark.parametrize("prefetch", [True, False, None])
@pytest.mark.parametrize("case", range(len(PF_CASES)))
def test_prefetch_race_free_and_exact(case, prefetch):
    """Multi-layer nets with the next layer's weights and bias prefetched (or not, or
    chosen by estimate): race-free (check=True) and bit-exact against NumPy."""
    cfg, dtype, dims, batch = PF_CASES[case]
    rng = np.random.default_rng(case)
    if dtype == "int8":
        net = random_quant_net(rng, dims)
        xq = rng.integers(-128, 128, (batch, dims[0])).astype(np.int8)
        c = compile_net(net, cfg, batch=batch, dtype=dtype, check=True, prefetch=prefetch)
        _, _, dram = run_compiled(c, bits=np.ascontiguousarray(xq.T))
        got = c.output_bits(dram).T.astype(np.int64)
        assert np.array_equal(got, int_net_reference(net, xq))
    else:
        net = random_float_net(rng, dims)
        x = rng.standard_normal((batch, dims[0])).astype(np.float32)
        c = compile_net(net, cfg, batch=batch, dtype=dtype, check=True, prefetch=prefetch)
        y, _, _ = run_compiled(c, x)
        want = float_net_reference(net, x, dtype, cfg.rows)
        assert np.array_equal(y.view(np.uint32), want.view(np.uint32))
    if prefetch:
        assert any(L.prefetched for L in c.layers[1:])
    if prefetch is False:
        assert not any(L.prefetched for L in c.layers)


def test_prefetched_weights_are_loaded_before_the_previous_layer_ends():
    """With prefetch, layer 1's weight loads sit in layer 0's part of the program and
    wait for nothing; layer 1 itself loads only its activations."""
    rng = np.random.default_rng(1)
    net = random_quant_net(rng, [64, 64, 10])
    c = compile_net(net, DEFAULT, batch=40, check=True, prefetch=True)
    L0, L1 = c.layers
    assert L1.prefetched
    w = L1.layout.a_addr
    wl = [i for i, ins in enumerate(c.program.instructions)
          if ins.op == "DMA" and not ins.cmd.store and w <= ins.cmd.addr < w + 64 * 10]
    assert wl and all(L0.first <= i < L0.first + L0.count for i in wl)
    assert all(c.program.instructions[i].wait is None for i in wl)


def test_prefetch_falls_back_when_sbuf_is_full():
    """A layer whose buffers leave no room for the next layer's weights: no prefetch,
    the same result."""
    cfg = CoreConfig(rows=4, cols=4, sbuf_bytes=512, psum_depth=64)
    rng = np.random.default_rng(2)
    net = random_quant_net(rng, [60, 50, 40])
    xq = rng.integers(-128, 128, (20, 60)).astype(np.int8)
    c = compile_net(net, cfg, batch=20, check=True, prefetch=True)
    assert not any(L.prefetched for L in c.layers)
    _, _, dram = run_compiled(c, bits=np.ascontiguousarray(xq.T))
    assert np.array_equal(c.output_bits(dram).T.astype(np.int64), int_net_reference(net, xq))


@pytest.mark.parametrize("tail", [2, 3])
@pytest.mark.parametrize("M,N,K,db", [(40, 300, 24, True), (9, 300, 23, True),
                                      (70, 260, 40, True)])
def test_stream_tail_exact(M, N, K, db, tail):
    """The stream schedule's last block in column pieces: race-free and exact."""
    _run_exact(DEFAULT, M, N, K, "int8", M + tail, schedule="stream", tail=tail,
               double_buffer=db)
    _run_exact(FLT4, M // 2 + 1, N // 3, K, "bf16", M + tail, schedule="stream", tail=tail)


# ---- finer layer-to-layer dependency --------------------------------------------------------

FINE_CASES = [
    # config, dtype, dims, batch, bias
    ("default", "int8", [64, 64, 10], 360, True),
    ("default", "int8", [40, 24, 16], 300, False),
    ("default", "int8", [30, 50, 20, 12], 280, True),
    ("8x8-fp", "bf16", [64, 64, 10], 360, True),
    ("8x8-fp", "bf16", [33, 20, 9], 300, False),
    ("8x8-fp", "int8", [64, 48, 10], 270, True),
    ("4x4", "int8", [24, 20, 10], 300, True),
    ("4x4", "int8", [17, 12, 6, 5], 290, False),
]


def _no_bias(net):
    for L in net.layers:
        L.bias = None
    return net


def _layer_b_loads(c, j):
    """(index, instruction) of layer j's loads of its activations (layer j-1's C)."""
    P, L = c.layers[j - 1].layout, c.layers[j]
    lo, hi = P.c_addr, P.c_addr + P.c_bytes
    return [(i, x) for i, x in enumerate(c.program.instructions[L.first:L.first + L.count],
                                         L.first)
            if x.op == "DMA" and not x.cmd.store and lo <= x.cmd.addr < hi]


@pytest.mark.parametrize("case", range(len(FINE_CASES)))
def test_fine_layer_deps_race_free_and_exact(case):
    """Nets of 2-3 layers whose activation loads wait only for the stores of the layer
    before that wrote their bytes: race-free, bit-exact against NumPy, and the first
    activation load of a later layer waits for fewer stores than the layer before
    issues (the old rule waited for all of them)."""
    config, dtype, dims, batch, bias = FINE_CASES[case]
    cfg = named_config(config)
    rng = np.random.default_rng(100 + case)
    if dtype == "int8":
        net = random_quant_net(rng, dims)
        if not bias:
            net = _no_bias(net)
        xq = rng.integers(-128, 128, (batch, dims[0])).astype(np.int8)
        c = compile_net(net, cfg, batch=batch, dtype=dtype, check=True)
        _, _, dram = run_compiled(c, bits=np.ascontiguousarray(xq.T))
        got = c.output_bits(dram).T.astype(np.int64)
        assert np.array_equal(got, int_net_reference(net, xq))
    else:
        net = random_float_net(rng, dims)
        if not bias:
            net = _no_bias(net)
        x = rng.standard_normal((batch, dims[0])).astype(np.float32)
        c = compile_net(net, cfg, batch=batch, dtype=dtype, check=True)
        y, _, _ = run_compiled(c, x)
        want = float_net_reference(net, x, dtype, cfg.rows)
        assert np.array_equal(y.view(np.uint32), want.view(np.uint32))
    assert not find_races(cfg, c.program, prog_addr=c.prog_addr)
    fine = [j for j in range(1, len(c.layers)) if c.layers[j].fine_deps]
    assert fine, "the finer dependency was not used"
    p = c.program
    st = p.sem_names["st"]
    for j in fine:
        # stores issued up to the end of layer j-1
        before = sum(1 for x in p.instructions[:c.layers[j].first] if x.signal == st)
        first_i, first = _layer_b_loads(c, j)[0]
        waits = [x.wait for x in p.instructions[c.layers[j].first:first_i + 1]
                 if x.wait is not None and x.wait[0] == st]
        assert all(v < before for _, v in waits), (j, waits, before)


def test_fine_layer_deps_beat_the_old_rule():
    """The demo's shapes: the cost model sees the earlier start of layer 1."""
    rng = np.random.default_rng(7)
    net = random_quant_net(rng, [64, 64, 10])
    from sim.compiler import lower
    new = compile_net(net, DEFAULT, batch=360, prefetch=True)
    assert new.layers[1].fine_deps
    layers = [(L.index, net.layers[L.index], L.layout, L.epilogue) for L in new.layers]
    old, plans = lower._emit_net(DEFAULT, layers, True, None, True, None, fine=False)
    assert plans[1].prefetched and not plans[1].fine_deps
    assert estimate(new.program, DEFAULT) < estimate(old, DEFAULT)
