"""Testbench class for :class:`hdl.systolic.SystolicArray`."""

import time

import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from hdl.formats import Dtype, column_layout, result_layout
from sim.golden import systolic_matmul
from tb.common import (Packer, config_from_env, float_operands, seed_from_env,
                       start_clock_and_reset)

__all__ = ["ArrayTB"]


class ArrayTB:
    """Owns the clock, reset, the three streams and a seeded random generator.

    All three streams are driven from one per-cycle loop (:meth:`run`): inputs are
    set just after a clock edge, handshakes are sampled once everything has settled
    (``ReadOnly``), and a transfer counts when ``valid & ready`` held before the edge.
    A source that presented a column keeps it stable until it is taken (stream
    rules); pauses only delay presenting the next one.
    """

    def __init__(self, dut):
        self.dut = dut
        self.cfg = config_from_env()
        self.seed = seed_from_env()
        self.rng = np.random.default_rng(self.seed)
        self.cols_packer = Packer(column_layout(self.cfg))
        self.res_packer = Packer(result_layout(self.cfg))
        self.stats = {}

    async def reset(self):
        dut = self.dut
        dut.i_w__valid.value = 0
        dut.i_x__valid.value = 0
        dut.o_y__ready.value = 0
        dut.i_perf_clear.value = 0
        dut.i_error_clear.value = 0
        await start_clock_and_reset(dut)

    # -- stimulus ------------------------------------------------------------------

    def random_job(self, K=None, M=None, N=None, lo=-128, hi=127, dtype="int8"):
        """A random matmul ``(S, X, dtype)``; floats as 16-bit patterns, wide spread."""
        r, c = self.cfg.rows, self.cfg.cols
        K = K or int(self.rng.integers(1, r + 1))
        M = M or int(self.rng.integers(1, c + 1))
        N = N or int(self.rng.integers(1, 2 * c + 3))
        if dtype == "int8":
            S = self.rng.integers(lo, hi + 1, (K, M))
            X = self.rng.integers(lo, hi + 1, (K, N))
        else:
            S = float_operands(self.rng, (K, M), dtype)
            X = float_operands(self.rng, (K, N), dtype)
        return S, X, dtype

    def _columns(self, jobs):
        rows = self.cfg.rows
        w, x = [], []
        for job in jobs:
            S, X, dtype = self.unpack_job(job)
            K, M = S.shape
            N = X.shape[1]
            Sp = np.zeros((rows, M), dtype=np.int64)
            Sp[:K] = S
            Xp = np.zeros((rows, N), dtype=np.int64)
            Xp[:K] = X
            extra = {"dtype": Dtype[dtype.upper()].value} if self.cfg.has_float else {}
            w += [self.cols_packer.pack(data=Sp[:, j], last=(j == M - 1)) for j in range(M)]
            x += [self.cols_packer.pack(data=Xp[:, n], last=(n == N - 1), **extra)
                  for n in range(N)]
        return w, x

    @staticmethod
    def unpack_job(job):
        """``(S, X)`` is an INT8 matmul; ``(S, X, dtype)`` names the type."""
        return (job[0], job[1], job[2] if len(job) > 2 else "int8")

    # -- the per-cycle loop ----------------------------------------------------------

    async def run(self, jobs, *, w_pause=0.0, x_pause=0.0, y_pause=0.0,
                  y_stall=None, max_cycles=None):
        """Stream ``jobs`` = [(S, X), ...] through the array; return result words.

        ``y_stall`` = (start, length) holds ``o_y.ready`` low for ``length`` cycles
        from cycle ``start``. Fails with a watchdog message if results stop coming.
        """
        dut = self.dut
        rng = self.rng
        w_items, x_items = self._columns(jobs)
        expected = sum(job[1].shape[1] for job in jobs)
        if max_cycles is None:
            slow = 1.0 / max(1e-3, (1 - max(w_pause, x_pause, y_pause)))
            max_cycles = int(200 + 4 * slow * (len(w_items) + len(x_items) + expected)
                             + 4 * self.cfg.fifo_depth + (y_stall[1] if y_stall else 0))
        results = []
        wi = xi = 0
        w_on = x_on = False
        first_w = last_y = first_x = last_x = None
        min_x_ready_low = False
        # handles and triggers looked up once; signals written only when they change
        w_valid, x_valid, y_ready_h = dut.i_w__valid, dut.i_x__valid, dut.o_y__ready
        w_ready, x_ready, y_valid = dut.i_w__ready, dut.i_x__ready, dut.o_y__valid
        w_payload, x_payload, y_payload = dut.i_w__payload, dut.i_x__payload, dut.o_y__payload
        read_only, edge = ReadOnly(), RisingEdge(dut.clk)
        driven = [None, None, None]
        t0 = time.perf_counter()
        cycle = 0
        while len(results) < expected:
            if cycle >= max_cycles:
                raise AssertionError(
                    f"watchdog: {len(results)} of {expected} results after {cycle} cycles "
                    f"(weights {wi}/{len(w_items)}, moving {xi}/{len(x_items)}); "
                    f"seed {self.seed}")
            # drive
            if not w_on and wi < len(w_items) and (not w_pause or rng.random() >= w_pause):
                w_on = True
                w_payload.value = w_items[wi]
            if not x_on and xi < len(x_items) and (not x_pause or rng.random() >= x_pause):
                x_on = True
                x_payload.value = x_items[xi]
            stalled = y_stall is not None and y_stall[0] <= cycle < y_stall[0] + y_stall[1]
            y_ready = not stalled and (not y_pause or rng.random() >= y_pause)
            for i, (handle, value) in enumerate(((w_valid, w_on), (x_valid, x_on),
                                                 (y_ready_h, y_ready))):
                if driven[i] != value:
                    handle.value = int(value)
                    driven[i] = value
            # sample
            await read_only
            if w_on and w_ready.value:
                if first_w is None:
                    first_w = cycle
                wi += 1
                w_on = False
            if x_on:
                if x_ready.value:
                    if first_x is None:
                        first_x = cycle
                    last_x = cycle
                    xi += 1
                    x_on = False
                elif stalled:
                    min_x_ready_low = True
            if y_ready and y_valid.value:
                results.append(y_payload.value.to_unsigned())
                last_y = cycle
            await edge
            cycle += 1
        wall = time.perf_counter() - t0
        self.stats = {
            "cycles": last_y - first_w + 1,
            # cycles over which the moving columns entered (one per cycle if no bubble)
            "x_cycles": last_x - first_x + 1,
            "sim_cycles": cycle,
            "wall_s": wall,
            "sim_cycles_per_s": cycle / wall if wall else 0.0,
            "x_throttled_during_stall": min_x_ready_low,
        }
        w_valid.value = 0
        x_valid.value = 0
        return results

    # -- checking --------------------------------------------------------------------

    def check(self, jobs, results):
        """Compare result words with the golden model, column by column."""
        cfg = self.cfg
        i = 0
        for j, job in enumerate(jobs):
            S, X, dtype = self.unpack_job(job)
            Y = systolic_matmul(S, X, cfg.rows, cfg.cols, dtype, subnormals=cfg.subnormals)
            for n in range(X.shape[1]):
                word = results[i]
                got = self.res_packer.unpack_array(word, "data")
                last = self.res_packer.unpack(word, "last")
                if not np.array_equal(got, Y[:, n]):
                    fmt = (lambda v: [f"{int(e) & 0xFFFFFFFF:#010x}" for e in v]) \
                        if dtype != "int8" else (lambda v: v.tolist())
                    raise AssertionError(
                        f"matmul {j} ({dtype}, K,M,N={S.shape[0]},{S.shape[1]},{X.shape[1]}) "
                        f"column {n}: got {fmt(got)}, expected {fmt(Y[:, n])} (seed {self.seed})")
                if last != (n == X.shape[1] - 1):
                    raise AssertionError(f"matmul {j} column {n}: last={last} (seed {self.seed})")
                i += 1
        if i != len(results):
            raise AssertionError(f"{len(results) - i} unexpected extra results")
