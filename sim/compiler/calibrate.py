"""The cost model (:mod:`sim.compiler.cost`) against the RTL: estimate vs measured cycles.

``python -m sim.compiler.calibrate [bench.json ...]`` reads the ``gemm`` rows that
``python -m sim.flow.cli bench --gemm-only`` wrote (default ``build/bench.json``; each
row records the options its program was written with), rebuilds each program exactly,
and prints the measured cycles, the estimate with :data:`sim.compiler.cost.DEFAULT_TIMING`
and the relative error, then the mean and largest error. ``--fit`` also searches a small
grid of :class:`sim.compiler.cost.Timing` values around the default for the lowest mean
error and prints the best (copy it into ``DEFAULT_TIMING`` after a change of the RTL,
e.g. when the DMA engines overlap descriptors: add ``--dma-overlap``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys

from hdl.config import named_config

from sim.compiler.cost import DEFAULT_TIMING, simulate
from sim.compiler.gemm import GemmLayout, gemm_program
from sim.flow.rtl import BUILD

__all__ = ["main", "bench_points", "errors"]


def _config(row):
    """The configuration a bench row ran on (its ``config`` name, e.g. ``8x8-int8``)."""
    name = row.get("config")
    for cand in ("default", "8x8-fp"):
        if named_config(cand).name == name:
            return named_config(cand)
    return named_config("default" if row["dtype"] == "int8" else "8x8-fp")


def bench_points(paths):
    """``[(name, config, program, measured cycles)]`` from bench.json files (rows without
    recorded ``options`` are skipped: their program cannot be rebuilt exactly)."""
    out = []
    for path in paths:
        with open(path) as f:
            rows = json.load(f)
        rows = rows.get("gemm", []) if isinstance(rows, dict) else rows
        for r in rows:
            if "options" not in r:
                continue
            cfg = _config(r)
            M, N, K, dt = r["M"], r["N"], r["K"], r["dtype"]
            eb = 1 if dt == "int8" else 2
            a = 0
            b = a + ((K * M * eb + 63) // 64) * 64
            c = b + ((K * N * eb + 63) // 64) * 64
            L = GemmLayout(M, N, K, dt, a_addr=a, b_addr=b, c_addr=c)
            p = gemm_program(cfg, L, double_buffer=r.get("double_buffer", True),
                             **r["options"])
            out.append((r["name"], cfg, p, r["cycles"]))
    return out


def errors(points, timing):
    """Relative errors (estimate / measured - 1) of ``points`` with ``timing``."""
    return [simulate(p, cfg, timing).cycles / cyc - 1 for _, cfg, p, cyc in points]


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim.compiler.calibrate",
                                 description=__doc__.split("\n\n")[1])
    ap.add_argument("bench", nargs="*", default=[str(BUILD / "bench.json")])
    ap.add_argument("--fit", action="store_true", help="search Timing values")
    ap.add_argument("--dma-overlap", action="store_true",
                    help="fit with dma_overlap=True (DMA engines that overlap descriptors)")
    args = ap.parse_args(argv)
    pts = bench_points(args.bench)
    if not pts:
        print("no bench rows with recorded options", file=sys.stderr)
        return 1
    T = DEFAULT_TIMING
    if args.dma_overlap:
        T = T.with_(dma_overlap=True)
    print(f"{'case':44s} {'RTL':>8s} {'estimate':>9s} {'error':>7s}")
    errs = errors(pts, T)
    for (name, cfg, p, cyc), e in zip(pts, errs):
        print(f"{name:44s} {cyc:8d} {round(cyc * (1 + e)):9d} {e:+7.1%}")
    print(f"mean |error| {sum(map(abs, errs)) / len(errs):.1%}, "
          f"largest {max(map(abs, errs)):.1%} ({T})")
    if args.fit:
        best = None
        grid = dict(load_latency=(T.load_latency - 8, T.load_latency, T.load_latency + 8),
                    store_latency=(T.store_latency - 8, T.store_latency, T.store_latency + 8),
                    mm_fill=(T.mm_fill - 8, T.mm_fill, T.mm_fill + 8),
                    act_fixed=(max(0, T.act_fixed - 8), T.act_fixed, T.act_fixed + 8),
                    store_share=(T.store_share - 0.1, T.store_share, T.store_share + 0.1),
                    store_share_float=(T.store_share_float - 0.1, T.store_share_float,
                                       T.store_share_float + 0.1))
        for vals in itertools.product(*grid.values()):
            t = T.with_(**dict(zip(grid, vals)))
            es = errors(pts, t)
            m = sum(map(abs, es)) / len(es)
            if best is None or m < best[0]:
                best = (m, max(map(abs, es)), t)
        print(f"best: mean |error| {best[0]:.1%}, largest {best[1]:.1%}: {best[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
