"""Testbench class for :class:`hdl.systolic.SystolicArray`."""

import time

import numpy as np
from hdl.formats import Dtype, column_layout, result_layout
from sim.model.array import systolic_matmul
from tb.common import TB, Packer, StreamSink, StreamSource, float_operands

__all__ = ["ArrayTB"]


class ArrayTB(TB):
    """Owns the clock, reset and seeded generator (:class:`tb.common.TB`) and the
    three streams.

    All three streams are driven from one per-cycle loop (:meth:`run`): inputs are
    set just after a clock edge, handshakes are sampled once everything has settled
    (``ReadOnly``), and a transfer counts when ``valid & ready`` held before the edge.
    A source that presented a column keeps it stable until it is taken (stream
    rules); pauses only delay presenting the next one.
    """

    IDLE_INPUTS = ("i_w__valid", "i_x__valid", "o_y__ready", "i_perf_clear",
                   "i_error_clear")

    def __init__(self, dut):
        super().__init__(dut)
        self.cols_packer = Packer(column_layout(self.cfg))
        self.res_packer = Packer(result_layout(self.cfg))
        self.stats = {}

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
            # the dtype is ignored on weight columns; sent anyway, as the tensor engine
            # does, so that the waves show the weights in their type (sim/flow/waves.py)
            w += [self.cols_packer.pack(data=Sp[:, j], last=(j == M - 1), **extra)
                  for j in range(M)]
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
        rng = self.rng
        w_items, x_items = self._columns(jobs)
        expected = sum(job[1].shape[1] for job in jobs)
        if max_cycles is None:
            slow = 1.0 / max(1e-3, (1 - max(w_pause, x_pause, y_pause)))
            max_cycles = int(200 + 4 * slow * (len(w_items) + len(x_items) + expected)
                             + 4 * self.cfg.fifo_depth + (y_stall[1] if y_stall else 0))
        w = StreamSource(self.dut, "i_w", w_items, pause=w_pause, rng=rng)
        x = StreamSource(self.dut, "i_x", x_items, pause=x_pause, rng=rng)
        y = StreamSink(self.dut, "o_y", pause=y_pause, rng=rng)
        results = []
        first_w = last_y = first_x = last_x = None
        min_x_ready_low = False
        read_only, edge = self.read_only, self.edge
        t0 = time.perf_counter()
        cycle = 0
        while len(results) < expected:
            if cycle >= max_cycles:
                self.fail(
                    f"watchdog: {len(results)} of {expected} results after {cycle} cycles "
                    f"(weights {w.sent}/{len(w_items)}, moving {x.sent}/{len(x_items)})")
            # drive (the random draws in this order: weights, moving, results)
            w.drive()
            x.drive()
            stalled = y_stall is not None and y_stall[0] <= cycle < y_stall[0] + y_stall[1]
            y.drive(hold=stalled)
            # sample
            await read_only
            if w.sample() and first_w is None:
                first_w = cycle
            if x.sample():
                if first_x is None:
                    first_x = cycle
                last_x = cycle
            elif x.on and stalled:
                min_x_ready_low = True
            word = y.sample()
            if word is not None:
                results.append(word)
                last_y = cycle
            await edge
            w.advance()
            x.advance()
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
        w.stop()
        x.stop()
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
