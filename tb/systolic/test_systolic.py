"""cocotb tests of the systolic array against the golden model.

Run through ``tests/test_rtl_systolic.py`` (pytest + sim.flow.runner), which builds the
Verilog for each configuration and passes it in ``NCORE_CONFIG``.
"""

import json
import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from hdl.config import DTYPES
from tb.systolic.tb import ArrayTB

# Every test has a simulated-time watchdog on top of the per-loop cycle watchdog.
WATCHDOG = dict(timeout_time=20, timeout_unit="ms")


@cocotb.test(**WATCHDOG)
async def test_zeros(dut):
    """Zero weights give zero results, and zero moving data gives zero results."""
    tb = ArrayTB(dut)
    await tb.reset()
    r, c = tb.cfg.rows, tb.cfg.cols
    jobs = [
        (np.zeros((r, c), dtype=np.int64), tb.rng.integers(-128, 128, (r, 5))),
        (tb.rng.integers(-128, 128, (r, c)), np.zeros((r, 5), dtype=np.int64)),
    ]
    tb.check(jobs, await tb.run(jobs))


@cocotb.test(**WATCHDOG)
async def test_identity(dut):
    """S = I passes the moving tile through: Y[m, n] = X[m, n] for m < min(rows, cols)."""
    tb = ArrayTB(dut)
    await tb.reset()
    r, c = tb.cfg.rows, tb.cfg.cols
    S = np.eye(r, c, dtype=np.int64)
    X = tb.rng.integers(-128, 128, (r, 2 * c + 1))
    results = await tb.run([(S, X)])
    tb.check([(S, X)], results)
    d = min(r, c)
    got = np.array([tb.res_packer.unpack_array(w, "data") for w in results]).T
    assert np.array_equal(got[:d], X[:d]), "identity weights did not pass X through"


@cocotb.test(**WATCHDOG)
async def test_extremes(dut):
    """Full-size tiles of -128 and 127: the largest sums the array can form."""
    tb = ArrayTB(dut)
    await tb.reset()
    r, c = tb.cfg.rows, tb.cfg.cols
    lo = np.full((r, c), -128, dtype=np.int64)
    hi = np.full((r, c), 127, dtype=np.int64)
    jobs = [(lo, np.full((r, 3), -128)), (lo, np.full((r, 3), 127)),
            (hi, np.full((r, 3), 127)), (hi, np.full((r, 3), -128))]
    results = await tb.run(jobs)
    tb.check(jobs, results)
    first = tb.res_packer.unpack_array(results[0], "data")
    assert (first == 128 * 128 * r).all(), "-128 x -128 sums are wrong"


@cocotb.test(**WATCHDOG)
async def test_one_hot(dut):
    """A single non-zero weight at every (k, m) routes row k of X to output m only."""
    tb = ArrayTB(dut)
    await tb.reset()
    r, c = tb.cfg.rows, tb.cfg.cols
    jobs = []
    for k in range(r):
        for m in range(c):
            S = np.zeros((r, c), dtype=np.int64)
            S[k, m] = -128 if (k + m) % 2 else 1
            jobs.append((S, tb.rng.integers(-128, 128, (r, 2))))
    tb.check(jobs, await tb.run(jobs))


@cocotb.test(**WATCHDOG)
async def test_random_tiles(dut):
    """Back-to-back matmuls of random K <= rows, M <= cols, N, changing weights."""
    tb = ArrayTB(dut)
    await tb.reset()
    jobs = [tb.random_job() for _ in range(40)]
    tb.check(jobs, await tb.run(jobs))


@cocotb.test(**WATCHDOG)
@cocotb.parametrize(pauses=[(0.0, 0.0, 0.5), (0.3, 0.3, 0.0), (0.4, 0.4, 0.6)])
async def test_random_backpressure(dut, pauses):
    """Random idle cycles on both inputs and random output backpressure."""
    tb = ArrayTB(dut)
    await tb.reset()
    jobs = [tb.random_job() for _ in range(25)]
    w_p, x_p, y_p = pauses
    tb.check(jobs, await tb.run(jobs, w_pause=w_p, x_pause=x_p, y_pause=y_p))


@cocotb.test(**WATCHDOG)
async def test_long_output_stall(dut):
    """A consumer that stalls far longer than the FIFO: input throttled, nothing lost."""
    tb = ArrayTB(dut)
    await tb.reset()
    c = tb.cfg.cols
    n = 3 * tb.cfg.fifo_depth
    jobs = [tb.random_job(M=c, N=n)]
    results = await tb.run(jobs, y_stall=(5, 4 * tb.cfg.fifo_depth))
    tb.check(jobs, results)
    assert tb.stats["x_throttled_during_stall"], "i_x was never throttled by the stall"


@cocotb.test(**WATCHDOG)
async def test_throughput(dut):
    """T back-to-back full-size matmuls stream with no bubble; counters agree.

    Cycles run from the first weight column accepted to the last result taken. With
    ``N >= M`` the moving columns enter on ``T*N`` consecutive cycles, and the only
    overhead is the first weight tile (``M`` cycles) and the pipeline latency through
    the FIFO: ``cycles <= T*N + M + array_latency + 3``.
    Writes figures to ``$NCORE_BENCH_OUT`` when set (``make bench``).
    """
    tb = ArrayTB(dut)
    await tb.reset()
    r, c = tb.cfg.rows, tb.cfg.cols
    T = int(os.environ.get("NCORE_BENCH_T", "8"))
    Ns = [int(v) for v in os.environ.get("NCORE_BENCH_N", "8,32").split(",")]
    figures = []
    for N in Ns:
        N = max(N, c)          # no-bubble regime needs N >= M
        dut.i_perf_clear.value = 1
        await RisingEdge(dut.clk)
        dut.i_perf_clear.value = 0
        jobs = [tb.random_job(K=r, M=c, N=N) for _ in range(T)]
        results = await tb.run(jobs)
        tb.check(jobs, results)
        cycles = tb.stats["cycles"]
        assert tb.stats["x_cycles"] == T * N, \
            f"N={N}: {T * N} moving columns took {tb.stats['x_cycles']} cycles: bubbles"
        bound = T * N + c + tb.cfg.array_latency + 3
        assert cycles <= bound, f"N={N}: {cycles} cycles > {bound}"
        await ReadOnly()
        active = dut.o_active.value.to_unsigned()
        assert active == T * N, f"o_active {active} != {T * N} columns streamed"
        await RisingEdge(dut.clk)
        figures.append({
            "name": f"array-{r}x{c}-T{T}-N{N}",
            "rows": r, "cols": c, "T": T, "N": N,
            "cycles": cycles,
            "macs": T * N * r * c,
            "utilization": T * N / cycles,
            # moving columns per cycle while they entered: excludes the first weight
            # load and the pipeline drain, i.e. the steady state of back-to-back matmuls
            "steady_state_utilization": T * N / tb.stats["x_cycles"],
            "sim_cycles_per_s": tb.stats["sim_cycles_per_s"],
        })
        dut._log.info("N=%d: %d cycles for %d matmuls, utilization %.4f, %.0f sim cycles/s",
                      N, cycles, T, T * N / cycles, tb.stats["sim_cycles_per_s"])
    out = os.environ.get("NCORE_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(figures, f, indent=1)


@cocotb.test(**WATCHDOG)
async def test_perf_counters(dut):
    """o_cycles counts every cycle and o_active every accepted moving column."""
    tb = ArrayTB(dut)
    await tb.reset()
    dut.i_perf_clear.value = 1
    await RisingEdge(dut.clk)
    dut.i_perf_clear.value = 0
    await ClockCycles(dut.clk, 10)
    await ReadOnly()
    assert dut.o_cycles.value.to_unsigned() == 10
    assert dut.o_active.value.to_unsigned() == 0
    await RisingEdge(dut.clk)
    jobs = [tb.random_job() for _ in range(3)]
    tb.check(jobs, await tb.run(jobs))
    await ReadOnly()
    assert dut.o_active.value.to_unsigned() == sum(job[1].shape[1] for job in jobs)


@cocotb.test(**WATCHDOG)
async def test_reset_mid_stream(dut):
    """Reset while tiles stream and results wait in the FIFO: afterwards the array is
    idle (no stale result comes out) and computes the next matmuls correctly."""
    tb = ArrayTB(dut)
    await tb.reset()
    c = tb.cfg.cols
    busy = cocotb.start_soon(tb.run([tb.random_job(M=c, N=4 * c) for _ in range(4)],
                                    y_pause=0.7))
    await ClockCycles(dut.clk, 3 * c + 7)
    busy.cancel()
    await RisingEdge(dut.clk)
    dut.i_w__valid.value = 0
    dut.i_x__valid.value = 0
    dut.o_y__ready.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    for _ in range(tb.cfg.fifo_depth + tb.cfg.array_latency + 8):
        await ReadOnly()
        assert not dut.o_y__valid.value, "a result came out after reset"
        assert not dut.i_x__ready.value, "moving columns accepted with no weights after reset"
        await RisingEdge(dut.clk)
    jobs = [tb.random_job() for _ in range(6)]
    tb.check(jobs, await tb.run(jobs, y_pause=0.3))


# ---- floating point (configurations with BF16/FP16) ---------------------------------------

def _float_types(cfg):
    return [d for d in cfg.dtypes if d in ("bf16", "fp16")]


@cocotb.test(**WATCHDOG)
async def test_float_random(dut):
    """Random BF16/FP16 matmuls with a wide exponent spread, K up to rows, bit-exact."""
    tb = ArrayTB(dut)
    await tb.reset()
    types = _float_types(tb.cfg)
    jobs = [tb.random_job(dtype=types[i % len(types)]) for i in range(24)]
    jobs += [tb.random_job(K=tb.cfg.rows, dtype=t) for t in types]
    tb.check(jobs, await tb.run(jobs, y_pause=0.3))


@cocotb.test(**WATCHDOG)
async def test_dtype_switching(dut):
    """Back-to-back matmuls switching type every tile still stream with no bubble."""
    tb = ArrayTB(dut)
    await tb.reset()
    r, c = tb.cfg.rows, tb.cfg.cols
    types = list(tb.cfg.dtypes)
    T, N = 3 * len(types), 2 * c
    jobs = [tb.random_job(K=r, M=c, N=N, dtype=types[i % len(types)]) for i in range(T)]
    tb.check(jobs, await tb.run(jobs))
    assert tb.stats["x_cycles"] == T * N, \
        f"{T * N} moving columns took {tb.stats['x_cycles']} cycles: bubbles"


@cocotb.test(**WATCHDOG)
async def test_float_specials(dut):
    """Directed special values: signed zeros, Inf, NaN, 0 x Inf, Inf - Inf, overflow of
    the largest values, subnormal products, and exact cancellation down a column."""
    tb = ArrayTB(dut)
    await tb.reset()
    r, c = tb.cfg.rows, tb.cfg.cols
    jobs = []
    table = {
        "bf16": dict(zero=0x0000, nzero=0x8000, one=0x3F80, none=0xBF80, inf=0x7F80,
                     ninf=0xFF80, nan=0x7FC1, big=0x7F7F, tiny=0x0001, half=0x3F00),
        "fp16": dict(zero=0x0000, nzero=0x8000, one=0x3C00, none=0xBC00, inf=0x7C00,
                     ninf=0xFC00, nan=0x7E01, big=0x7BFF, tiny=0x0001, half=0x3800),
    }
    for t in _float_types(tb.cfg):
        v = table[t]
        vals = list(v.values())
        # every value against every value in row 0 (one product per result)
        for a in vals:
            S = np.full((1, c), a, dtype=np.uint32)
            S[0, :min(c, len(vals))] = vals[:c]
            X = np.array([vals], dtype=np.uint32)
            jobs.append((S, X, t))
        # column sums: big + big overflows, x - x cancels to +0, -0 + -0 stays... +0 at
        # the top of the column, Inf + -Inf is NaN
        cases = [(v["big"], v["big"]), (v["one"], v["none"]), (v["nzero"], v["nzero"]),
                 (v["inf"], v["ninf"]), (v["tiny"], v["tiny"]), (v["nan"], v["one"])]
        if r >= 2:
            for p, q in cases:
                S = np.zeros((2, c), dtype=np.uint32)
                S[0, :], S[1, :] = p, q
                X = np.array([[v["one"], v["half"]], [v["one"], v["big"]]], dtype=np.uint32)
                jobs.append((S, X, t))
    tb.check(jobs, await tb.run(jobs))


@cocotb.test(**WATCHDOG)
async def test_absent_dtype(dut):
    """A moving tile of a type the configuration lacks computes zeros and raises the
    sticky error; the next tiles are unaffected; i_error_clear clears the flag."""
    tb = ArrayTB(dut)
    await tb.reset()
    absent = [d for d in DTYPES if d not in tb.cfg.dtypes]
    assert absent, "this test needs a configuration without one of the types"
    present = tb.cfg.dtypes[0]
    good = tb.random_job(dtype=present)
    S, X, _ = tb.random_job(dtype=absent[0])
    results = await tb.run([good, (S, X, absent[0]), good])
    n0, n1 = good[1].shape[1], X.shape[1]
    tb.check([good], results[:n0])
    tb.check([good], results[n0 + n1:])
    for word in results[n0:n0 + n1]:
        assert not tb.res_packer.unpack_array(word, "data").any(), \
            "a refused tile produced non-zero results"
    await ReadOnly()
    assert dut.o_error.value == 1, "o_error not raised for an absent dtype"
    await RisingEdge(dut.clk)
    dut.i_error_clear.value = 1
    await RisingEdge(dut.clk)
    dut.i_error_clear.value = 0
    await ReadOnly()
    assert dut.o_error.value == 0, "i_error_clear did not clear o_error"
