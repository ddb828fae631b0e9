"""``make bench``'s chip section (``python -m sim.flow.cli chip-bench``): a quantised MLP
whose weights need more than one core's SBUF, run on the RTL of chips of 1, 2 and 4
cores (``chip_sim<n>``, INT8 8x8 cores by default), every output checked bit for bit
against the golden chip model.

For each run it reports the chip's cycles (the slowest core's CYCLES counter: the cores
start together), inferences per 1,000 cycles and the speed-up over one core, the
DRAM bytes per inference (weights and biases apart from the activations, counted from
the programs' DMA descriptors; peer stores do not touch DRAM), and for the pipelines
the latency and steady-state figures from runs of 1, 4 and 8 micro-batches: one
micro-batch alone (weights, fill and drain: its latency), the steady-state cycles per
micro-batch ``(C_8 - C_4) / 4`` (what one more micro-batch costs in a long stream), the
throughput that gives, and the fill + drain overhead of the whole batch
``C_batch - batch / nb * steady``.
"""

from __future__ import annotations

import numpy as np

from hdl.chipmap import PeerAperture
from hdl.config import named_config

from sim.compiler.chip import compile_data_parallel, run_chip_compiled
from sim.compiler.lower import CompileError
from sim.compiler.net import Layer, Net, Quant
from sim.compiler.pipeline import compile_pipeline

__all__ = ["bench_net", "run_chip_bench", "print_chip_table", "dram_traffic"]

#: The bench model: four 96x96 INT8 layers, 36 KiB of weights (an 8x8 core has 32 KiB
#: of SBUF).
DIMS = (96, 96, 96, 96, 96)


def bench_net(dims=DIMS, seed=1):
    """A quantised MLP with random weights, biases and scales (fixed by ``seed``)."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        w = rng.integers(-127, 128, (k, n)).astype(np.int8)
        b = rng.integers(-3000, 3000, n).astype(np.int32)
        layers.append(Layer(f"fc{i}", w, b, i < len(dims) - 2, 0.004,
                            Quant(0.25, int(rng.integers(-20, 20)))))
    return Net(layers, input_quant=Quant(0.05, 3))


def dram_traffic(cc):
    """``(weight bytes, activation bytes)`` the programs move over the DRAM port."""
    ap = PeerAperture(cc.config)
    w = act = 0
    ranges = cc.weight_ranges
    for prog in cc.programs:
        for ins in prog or []:
            if ins.op != "DMA" or ins.cmd.addr >= ap.base:
                continue
            n = ins.cmd.rows * ins.cmd.row_bytes
            if any(lo <= ins.cmd.addr < hi for lo, hi in ranges):
                w += n
            else:
                act += n
    return w, act


def _compile(net, cfg, cores, batch, mode):
    if mode == "pipeline":
        return compile_pipeline(net, cfg, batch=batch, cores=cores)
    return compile_data_parallel(net, cfg, batch=batch, cores=cores)


def run_chip_bench(config="default", batch=1024, cores=(1, 2, 4), seed=2):
    """The rows of the chip section (one per core count and mode)."""
    cfg = named_config(config)
    net = bench_net()
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, DIMS[0])).astype(np.float32)
    rows = []
    base_rate = None
    weights = sum(k * n for k, n in zip(DIMS, DIMS[1:]))
    for n in cores:
        modes = ["pipeline", "data"] if n > 1 else ["data"]
        for mode in modes:
            try:
                cc = _compile(net, cfg, n, batch, mode)
            except CompileError as e:
                rows.append({"cores": n, "mode": mode, "refused": str(e)})
                continue
            want, _ = run_chip_compiled(cc, x, backend="golden")
            y, run = run_chip_compiled(cc, x, backend="verilator")
            if not np.array_equal(y, want):
                raise AssertionError(f"{n} cores, {mode}: the RTL's output differs from "
                                     f"the golden model's")
            w, act = dram_traffic(cc)
            rate = 1000 * batch / run.cycles
            if n == 1:
                base_rate = rate
            row = {"cores": n, "mode": mode, "batch": batch, "cycles": run.cycles,
                   "inferences_per_kcycle": rate,
                   "speedup": rate / base_rate if base_rate else None,
                   "weight_bytes": w, "activation_bytes": act,
                   "dram_bytes_per_inference": (w + act) / batch,
                   "activation_bytes_per_inference": act / batch,
                   "model_weight_bytes": weights,
                   "utilization": cc.macs / (run.cycles * n * cfg.rows * cfg.cols),
                   "stages": cc.stages, "nb": cc.nb, "wall_s": run.wall_s}
            if mode == "pipeline":
                # latency: one micro-batch alone (weights, fill and drain); steady state:
                # the cycles of 4 more micro-batches, from runs of 4 and 8 of them
                nb = cc.nb
                cyc = {}
                for mbs in (1, 4, 8):
                    one = _compile(net, cfg, n, mbs * nb, mode)
                    xs = rng.normal(size=(mbs * nb, DIMS[0])).astype(np.float32)
                    _, r1 = run_chip_compiled(one, xs, backend="verilator")
                    cyc[mbs] = r1.cycles
                steady = (cyc[8] - cyc[4]) / 4
                row.update({"one_microbatch_cycles": cyc[1],
                            "steady_cycles_per_microbatch": steady,
                            "fill_drain_cycles": run.cycles - batch / nb * steady,
                            "steady_inferences_per_kcycle": 1000 * nb / steady})
                if base_rate:
                    row["steady_speedup"] = row["steady_inferences_per_kcycle"] / base_rate
            rows.append(row)
    return rows


def print_chip_table(rows):
    print("\nchip: a 4-layer 96-wide INT8 MLP (36 KiB of weights; one 8x8 core holds 32 "
          "KiB) on 1, 2 and 4 cores, RTL, outputs bit-exact with the golden chip model "
          "(mb: inputs per micro-batch; steady: one more micro-batch in a long stream):")
    print(f"{'cores':>5s} {'mode':9s} {'cycles':>8s} {'inf/kcyc':>9s} {'speedup':>8s} "
          f"{'util':>6s} {'DRAM B/inf':>10s} {'act B/inf':>9s} {'weights B':>9s} "
          f"{'mb':>4s} {'1 mb cyc':>8s} {'steady/mb':>9s} {'fill+drain':>10s} "
          f"{'steady inf/kcyc':>15s} {'x':>5s}  stages")
    for r in rows:
        if "refused" in r:
            print(f"{r['cores']:5d} {r['mode']:9s} refused: {r['refused']}")
            continue
        sp = f"{r['speedup']:8.2f}" if r["speedup"] else f"{'-':>8s}"
        one = r.get("one_microbatch_cycles")
        st = r.get("steady_cycles_per_microbatch")
        fd = r.get("fill_drain_cycles")
        srate = f"{r['steady_inferences_per_kcycle']:.3f}" if st else "-"
        sx = f"{r['steady_speedup']:.2f}" if r.get("steady_speedup") else "-"
        print(f"{r['cores']:5d} {r['mode']:9s} {r['cycles']:8d} "
              f"{r['inferences_per_kcycle']:9.3f} {sp} {r['utilization']:6.1%} "
              f"{r['dram_bytes_per_inference']:10.1f} "
              f"{r['activation_bytes_per_inference']:9.1f} {r['weight_bytes']:9d} "
              f"{r['nb'] or '-':>4} {one if one else '-':>8} {f'{st:.0f}' if st else '-':>9} "
              f"{f'{fd:.0f}' if fd else '-':>10} {srate:>15} {sx:>5}  {r['stages'] or ''}")
