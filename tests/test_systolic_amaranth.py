"""Fast Amaranth-simulator tests of the systolic array (small configurations)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.config import DTYPES, CoreConfig
from hdl.formats import Dtype
from hdl.systolic import SystolicArray
from sim.model.array import systolic_matmul
from tb.common import float_operands


def run_array(cfg, jobs, *, seed=0, x_pause=0.0, y_pause=0.0, max_cycles=5000):
    """Drive ``jobs`` = [(S, X), ...] through a SystolicArray; return results and counters.

    Weight tiles and moving tiles are sent on their own streams as fast as the DUT
    accepts them (with optional random pauses), and results are collected under
    random output backpressure.
    """
    dut = SystolicArray(cfg)
    rng = np.random.default_rng(seed)
    w_cols, x_cols = [], []
    mask = 0xFFFF if cfg.has_float else -1
    for job in jobs:
        S, X = job[0], job[1]
        dtype = job[2] if len(job) > 2 else "int8"
        K, M = S.shape
        Sp = np.zeros((cfg.rows, M), dtype=np.int64); Sp[:K] = S
        Xp = np.zeros((cfg.rows, X.shape[1]), dtype=np.int64); Xp[:K] = X
        extra = {"dtype": Dtype[dtype.upper()]} if cfg.has_float else {}
        w_cols += [({"data": [int(v) & mask for v in Sp[:, j]], "last": j == M - 1})
                   for j in range(M)]
        x_cols += [({"data": [int(v) & mask for v in Xp[:, n]], "last": n == X.shape[1] - 1,
                     **extra}) for n in range(X.shape[1])]
    expected = sum(job[1].shape[1] for job in jobs)
    results = []
    state = {}

    async def driver(ctx):
        wi = xi = 0
        x_valid = False
        for cycle in range(max_cycles):
            w_valid = wi < len(w_cols)
            # a presented column stays valid until taken; pauses only delay the next
            x_valid = x_valid or (xi < len(x_cols) and rng.random() >= x_pause)
            if w_valid:
                ctx.set(dut.i_w.payload, w_cols[wi])
            ctx.set(dut.i_w.valid, w_valid)
            if x_valid:
                ctx.set(dut.i_x.payload, x_cols[xi])
            ctx.set(dut.i_x.valid, x_valid)
            y_ready = rng.random() >= y_pause
            ctx.set(dut.o_y.ready, y_ready)
            _, _, wr, xr, yv, yp = await ctx.tick().sample(
                dut.i_w.ready, dut.i_x.ready, dut.o_y.valid, dut.o_y.payload)
            if w_valid and wr:
                wi += 1
            if x_valid and xr:
                xi += 1
                x_valid = False
            if yv and y_ready:
                results.append(([int(v) for v in yp.data], int(yp.last)))
            if len(results) == expected:
                state["cycles"] = cycle + 1
                state["active"] = ctx.get(dut.o_active)
                return
        raise AssertionError(f"watchdog: only {len(results)} of {expected} results "
                             f"after {max_cycles} cycles (seed {seed})")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(driver)
    sim.run()
    return results, state


def check(cfg, jobs, results, seed=None):
    i = 0
    for job in jobs:
        S, X = job[0], job[1]
        Y = systolic_matmul(S, X, cfg.rows, cfg.cols, job[2] if len(job) > 2 else "int8",
                                subnormals=cfg.subnormals)
        for n in range(X.shape[1]):
            got, last = results[i]
            assert got == list(Y[:, n]), f"column {n}: {got} != {list(Y[:, n])} (seed {seed})"
            assert last == (n == X.shape[1] - 1)
            i += 1


@pytest.mark.parametrize("rows,cols", [(1, 1), (2, 3), (3, 2)])
def test_random_back_to_back(rows, cols):
    cfg = CoreConfig(rows=rows, cols=cols)
    rng = np.random.default_rng(1234 + rows * 10 + cols)
    jobs = []
    for _ in range(4):
        K = int(rng.integers(1, rows + 1)); M = int(rng.integers(1, cols + 1))
        N = int(rng.integers(1, 6))
        jobs.append((rng.integers(-128, 128, (K, M)), rng.integers(-128, 128, (K, N))))
    results, _ = run_array(cfg, jobs, seed=7, x_pause=0.3, y_pause=0.4)
    check(cfg, jobs, results)


def test_full_rate_no_bubbles():
    """N >= M back to back: one moving column accepted per cycle in steady state."""
    cfg = CoreConfig(rows=2, cols=2)
    rng = np.random.default_rng(5)
    jobs = [(rng.integers(-128, 128, (2, 2)), rng.integers(-128, 128, (2, 4)))
            for _ in range(6)]
    results, state = run_array(cfg, jobs)
    check(cfg, jobs, results)
    # 24 columns, plus the first weight tile (2 cycles) and the pipeline latency.
    assert state["cycles"] <= 24 + 2 + cfg.array_latency + 3, state


def test_watchdog_fires_when_weights_never_come():
    """A moving tile with no weight tile is never accepted: the harness must fail, not hang."""
    cfg = CoreConfig(rows=2, cols=2)
    dut_jobs = [(np.zeros((2, 0), dtype=np.int64), np.ones((2, 3), dtype=np.int64))]
    with pytest.raises(AssertionError, match="watchdog: only 0 of 3 results"):
        run_array(cfg, dut_jobs, max_cycles=200)


@pytest.mark.parametrize("rows,cols", [(1, 5), (5, 1), (3, 7), (7, 3)])
def test_odd_shapes(rows, cols):
    """An elaboration-and-simulation sweep over shapes the Verilator runs do not cover."""
    cfg = CoreConfig(rows=rows, cols=cols)
    seed = 900 + rows * 10 + cols
    rng = np.random.default_rng(seed)
    jobs = []
    for _ in range(3):
        K = int(rng.integers(1, rows + 1)); M = int(rng.integers(1, cols + 1))
        N = int(rng.integers(1, 9))
        jobs.append((rng.integers(-128, 128, (K, M)), rng.integers(-128, 128, (K, N))))
    results, _ = run_array(cfg, jobs, seed=seed, x_pause=0.2, y_pause=0.3)
    check(cfg, jobs, results, seed=seed)


@pytest.mark.parametrize("rows,cols", [(2, 3), (3, 2)])
def test_float_mixed_back_to_back(rows, cols):
    """BF16, INT8 and FP16 matmuls back to back on a configuration with all types."""
    cfg = CoreConfig(rows=rows, cols=cols, dtypes=DTYPES)
    seed = 70 + rows
    rng = np.random.default_rng(seed)
    jobs = []
    for dt in ["bf16", "int8", "fp16", "bf16", "fp16"]:
        K = int(rng.integers(1, rows + 1)); M = int(rng.integers(1, cols + 1))
        N = int(rng.integers(1, 6))
        if dt == "int8":
            jobs.append((rng.integers(-128, 128, (K, M)), rng.integers(-128, 128, (K, N)), dt))
        else:
            jobs.append((float_operands(rng, (K, M), dt), float_operands(rng, (K, N), dt), dt))
    results, _ = run_array(cfg, jobs, seed=seed, x_pause=0.2, y_pause=0.3)
    check(cfg, jobs, results, seed=seed)
