"""ncore command line: ``python -m sim.flow.cli {verilog,lint,synth,bench,run,configs,mutate}``.

The Makefile's targets are thin wrappers around these commands.
"""

import argparse
import json
import os
import shutil
import sys
import time

from hdl.config import DTYPES, NAMED_CONFIGS, named_config
from sim.flow.rtl import BUILD, LISTED_TOPS, SYNTH_TOPS, TOPS, elaborate, write_if_changed


def cmd_verilog(args):
    cfg = named_config(args.config)
    out = BUILD / ("verilog" if args.target is None else f"verilog-{args.target}")
    for top in (args.top or list(LISTED_TOPS)):
        path = out / f"{top}.v"
        changed = write_if_changed(path, elaborate(top, cfg, args.target))
        print(f"{path}  ({cfg.name}{'' if changed else ', unchanged'})")
    write_if_changed(out / "config.json", cfg.to_json() + "\n")


def cmd_lint(args):
    from sim.flow.runner import lint
    failed = 0
    for config in args.config:
        cfg = named_config(config)
        for top in (args.top or list(LISTED_TOPS)):
            t0 = time.perf_counter()
            res = lint(top, cfg, target=args.target)
            ok = res.returncode == 0
            failed += not ok
            print(f"lint {'ok  ' if ok else 'FAIL'} {top:24s} {cfg.name:16s} "
                  f"({time.perf_counter() - t0:.1f} s)")
            if not ok:
                print(res.stdout + res.stderr)
    return 1 if failed else 0


def cmd_synth(args):
    from sim.flow.synth import ROUTERS, synthesise
    rows = []
    for device in args.device:
        for config in args.config:
            for top in (args.top or list(SYNTH_TOPS)):
                for seed in args.seed or [1]:
                    rows.append(synthesise(
                        top, config, device, freq_mhz=args.freq, seed=seed,
                        timing_weight=args.timing_weight, crit_exp=args.crit_exp,
                        density=args.density, placer=args.placer, routers=args.router or ROUTERS,
                        router2_timeout=args.router2_timeout))
    print(f"\n{'top':16s} {'config':12s} {'device':12s} {'seed':>4s} {'LUTs':>7s} {'FFs':>7s} "
          f"{'DSPs':>5s} {'BRAMs':>5s} {'Fmax MHz':>9s} {'P&R s':>6s}")
    for r in rows:
        pnr = sum(r["nextpnr_seconds"].values())
        print(f"{r['top']:16s} {r['config']:12s} {r['device']:12s} {r['seed']:4d} "
              f"{r['luts']:7d} {r['ffs']:7d} {r['dsps']:5d} {r['brams']:5d} "
              f"{r['fmax_mhz']:9.2f} {pnr:6.0f}")
    from sim.flow.synth import describe_path
    for r in rows:
        print(f"\n{r['top']} ({r['config']}, seed {r['seed']}, {r['router']}"
              + (f"; router2 failed: {r['router2_failure']}" if r.get("router2_failure") else "")
              + "), critical paths (from -> through -> [to.port]):")
        for p in r["critical_paths"]:
            print(f"  {p['clocks']}\n    {describe_path(p)}")
    return 0


def cmd_bench(args):
    from sim.flow.runner import run_cocotb
    cases, tensor, dma, act = [], [], [], []
    for config in ([] if args.gemm_only else args.config):
        cfg = named_config(config)
        out = BUILD / "bench" / f"array-{cfg.name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        run_cocotb("systolic_array", "tb.systolic.test_systolic", "test_throughput", cfg,
                   extra_env={"NCORE_BENCH_OUT": str(out), "NCORE_BENCH_T": str(args.T),
                              "NCORE_BENCH_N": ",".join(map(str, args.N))})
        cases += json.loads(out.read_text())
        out = BUILD / "bench" / f"tensor-{cfg.name}.json"
        run_cocotb("tensor_subsystem", "tb.tensor.test_tensor", "test_throughput", cfg,
                   extra_env={"NCORE_BENCH_OUT": str(out), "NCORE_BENCH_T": str(args.T),
                              "NCORE_BENCH_N": ",".join(map(str, args.tensor_N))})
        tensor += json.loads(out.read_text())
        out = BUILD / "bench" / f"dma-{cfg.name}.json"
        run_cocotb("dma_subsystem", "tb.dma.test_dma", "test_bandwidth", cfg,
                   extra_env={"NCORE_BENCH_OUT": str(out)})
        dma += json.loads(out.read_text())
        out = BUILD / "bench" / f"act-{cfg.name}.json"
        run_cocotb("vector_subsystem", "tb.vector.test_vector", "test_pass_cycles", cfg,
                   extra_env={"NCORE_BENCH_OUT": str(out)})
        act += json.loads(out.read_text())
    if args.cold:
        # true cold builds of the whole-core models: no ccache, no previous build
        os.environ["CCACHE_DISABLE"] = "1"
        for top in ("neuron_core_sim", "neuron_core_sim_baseline"):
            for config in (args.gemm_config, args.gemm_float_config):
                shutil.rmtree(BUILD / "sim" / f"{top}-{named_config(config).key}",
                              ignore_errors=True)
    if args.compare:
        rows = run_compare(args.gemm_config, args.gemm_float_config)
        (BUILD / "bench-compare.json").write_text(json.dumps(rows, indent=1) + "\n")
        print_compare_table(rows)
        print(f"written to {BUILD / 'bench-compare.json'}")
        return 0
    gemm = run_gemm_bench(args.gemm_config, args.gemm_float_config) if args.gemm else []
    comp = (run_compiler_bench(args.gemm_config, args.gemm_float_config)
            if args.gemm else [])
    share = run_store_share(args.gemm_float_config) if args.gemm else []
    chip = []
    if args.chip:
        from sim.flow.chipbench import run_chip_bench
        chip = run_chip_bench(args.gemm_config)
    (BUILD / "bench.json").write_text(json.dumps(
        {"gemm": gemm, "compiler": comp, "array": cases, "tensor": tensor, "dma": dma,
         "act": act, "store_share": share, "chip": chip}, indent=1) + "\n")
    print("systolic array alone (weights and moving columns from the testbench):")
    print(f"{'name':28s} {'cycles':>8s} {'MACs':>10s} {'util':>7s} {'steady':>7s} "
          f"{'sim cyc/s':>10s}")
    for c in cases:
        print(f"{c['name']:28s} {c['cycles']:8d} {c['macs']:10d} {c['utilization']:7.2%} "
              f"{c['steady_state_utilization']:7.2%} "
              f"{c['sim_cycles_per_s']:10.0f}")
    print("\ntensor engine (SBUF -> array -> PSUM, new stationary tile every command, "
          "SBUF written every cycle by a second client):")
    print(f"{'name':28s} {'cycles':>8s} {'util':>7s} {'steady':>7s} {'WS model':>9s} "
          f"{'ratio':>6s} {'max(N,64)':>9s} {'ratio':>6s}")
    for c in tensor:
        st, ws, nc = (c["steady_state_utilization"], c["scalesim_ws_utilization"],
                      c["neuroncore_issue_utilization"])
        print(f"{c['name']:28s} {c['cycles']:8d} {c['utilization']:7.2%} {st:7.2%} "
              f"{ws:9.2%} {st / ws:6.2f} {nc:9.2%} {st / nc:6.2f}")
    print("\nDMA (AxiRam DRAM model, 20-cycle read latency, "
          "8 rows x sbuf_bytes per transfer):")
    print(f"{'name':28s} {'bytes':>8s} {'cycles':>8s} {'B/cycle':>8s} {'of bus':>7s}")
    for c in dma:
        print(f"{c['name']:28s} {c['bytes']:8d} {c['cycles']:8d} {c['bytes_per_cycle']:8.2f} "
              f"{c['efficiency']:7.2%}")
    print("\nvector engine (one pass over a cols x 512 PSUM tile, bias + ReLU + cast):")
    print(f"{'name':28s} {'elements':>8s} {'cycles':>8s} {'el/cycle':>8s}")
    for c in act:
        print(f"{c['name']:28s} {c['elements_per_partition']:8d} {c['cycles']:8d} "
              f"{c['elements_per_cycle_per_partition']:8.3f}")
    if gemm:
        print_gemm_table(gemm)
    if comp:
        print_compiler_table(comp)
    if share:
        print("\nDMA-out stores while the array streams (SBUF's one read port serves the "
              "tensor engine's fetchers and DMA-out; docs/core.md, \"Figures\"):")
        print(f"{'name':28s} {'config':20s} {'beats':>6s} {'busy':>6s} {'beats/cycle':>11s}")
        for c in share:
            print(f"{c['name']:28s} {c['config']:20s} {c['store_beats']:6d} "
                  f"{c['busy_dma_out']:6d} {c['beats_per_cycle']:11.3f}")
    if chip:
        from sim.flow.chipbench import print_chip_table
        print_chip_table(chip)
    print(f"written to {BUILD / 'bench.json'}")
    return 0


def cmd_chip_bench(args):
    """Only the chip section of make bench (``sim/flow/chipbench.py``)."""
    from sim.flow.chipbench import print_chip_table, run_chip_bench
    rows = run_chip_bench(args.config, batch=args.batch, cores=tuple(args.cores or (1, 2, 4)))
    out = BUILD / "bench-chip.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print_chip_table(rows)
    print(f"written to {out}")
    return 0


def cmd_conv_bench(args):
    """Convolutions on the RTL (``sim.compiler.conv.conv_bench``)."""
    from sim.compiler.conv import conv_bench, print_conv_table
    rows = conv_bench(args.config)
    out = BUILD / "bench-conv.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print_conv_table(rows)
    print(f"written to {out}")
    return 0


#: Whole-core GEMM cases of ``make bench`` and SCALE-Sim 3.0's figure for each shape on
#: an 8x8 weight-stationary array (compute only, no DMA), quoted from issue 6.
GEMM_CASES = [
    ("int8", 64, 64, 64, 0.744),
    ("int8", 256, 256, 256, 0.921),
    ("int8", 100, 37, 71, 0.748),
    ("bf16", 64, 64, 64, 0.744),
    ("bf16", 256, 256, 256, 0.921),
    ("bf16", 100, 37, 71, 0.748),
]


def run_gemm_bench(int_config, float_config, cases=None, top="neuron_core_sim"):
    """Run the tiled GEMM cases end to end on ``top`` (core + SimDram); INT8 on
    ``int_config``, BF16/FP16 on ``float_config``. Returns the result rows, each with
    the model's last build time (``build_s``)."""
    from sim.flow.runner import build_time, run_cocotb
    rows = []
    for config, floats in ((int_config, False), (float_config, True)):
        cfg = named_config(config)
        todo = []
        for dtype, M, N, K, ref in (cases or GEMM_CASES):
            if (dtype != "int8") != floats:
                continue
            todo.append({"name": f"gemm-{dtype}-{M}x{N}x{K}", "M": M, "N": N, "K": K,
                         "dtype": dtype, "scalesim": ref})
            if (M, N, K) == (256, 256, 256) and not floats and cases is None:
                todo.append({"name": f"gemm-{dtype}-{M}x{N}x{K}-single-buffered", "M": M,
                             "N": N, "K": K, "dtype": dtype, "double_buffer": False,
                             "scalesim": ref})
        if not todo:
            continue
        out = BUILD / "bench" / f"gemm-{top}-{cfg.name}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        run = run_cocotb(top, "tb.core.test_bench", "bench_gemm", cfg,
                         extra_env={"NCORE_BENCH": json.dumps(todo),
                                    "NCORE_BENCH_OUT": str(out)})
        built = build_time(run["build_dir"]) or {}
        for r, case in zip(json.loads(out.read_text()), todo):
            r["config"] = cfg.name
            r["top"] = top
            r["scalesim_ws_utilization"] = case["scalesim"]
            r["build_s"] = built.get("seconds")
            r["build_ccache"] = built.get("ccache")
            rows.append(r)
    return rows


def run_store_share(config):
    """``tb.core.test_bench.bench_store_share`` on ``neuron_core_sim``: DMA-out's store
    rate alone and while INT8 / BF16 matmuls stream. Returns its rows."""
    from sim.flow.runner import run_cocotb
    cfg = named_config(config)
    out = BUILD / "bench" / f"store-share-{cfg.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    run_cocotb("neuron_core_sim", "tb.core.test_bench", "bench_store_share", cfg,
               extra_env={"NCORE_BENCH_OUT": str(out)})
    return json.loads(out.read_text())


def _build_s(r):
    if r.get("build_s") is None:
        return "?"
    return f"{r['build_s']:.0f}{'*' if r.get('build_ccache') else ''}"


def print_gemm_table(rows):
    print("\nwhole core: tiled GEMM from DRAM to DRAM (DMA -> SBUF -> matmul -> PSUM -> vector "
          "-> DMA), SimDram 20-cycle latency; utilization = MACs / (rows*cols*cycles):")
    print(f"{'name':40s} {'config':14s} {'cycles':>8s} {'MACs':>10s} {'util':>7s} "
          f"{'SCALE-Sim':>9s} {'sim cyc/s':>10s} {'build s':>8s}")
    for r in rows:
        print(f"{r['name']:40s} {r['config']:14s} {r['cycles']:8d} {r['macs']:10d} "
              f"{r['utilization']:7.2%} {r['scalesim_ws_utilization']:9.1%} "
              f"{r['sim_cycles_per_s']:10.0f} {_build_s(r):>8s}")
    print("build s: Verilator + C++ compile of the model at its last rebuild "
          "(* ccache was on; make bench --cold rebuilds without it)")
    print_gemm_losses(rows)


def gemm_losses(r, rows, cols):
    """Where a GEMM's cycles go, from the host counters (all in cycles, summing to
    ``cycles``): ``ideal`` = MACs / (rows*cols), the physical limit; ``tiles`` = columns
    the array streamed beyond that (tiles narrower than the array, K not a multiple
    of its rows); ``lead`` = before the first moving column (ARRAY_LEAD); ``tail`` =
    after the last one (ARRAY_TAIL: the last drain); ``gaps`` = the rest, cycles
    between matmuls in the middle of the run."""
    ideal = r["macs"] / (rows * cols)
    active = r["tensor_active"]
    lead, tail = r["array_lead"], r["array_tail"]
    return {"ideal": ideal, "tiles": active - ideal, "lead": lead, "tail": tail,
            "gaps": r["cycles"] - active - lead - tail}


def print_gemm_losses(rows):
    print("\nwhere the cycles go (host counters): ideal = MACs/(rows*cols); tiles = "
          "columns streamed beyond it;\nlead = before the first moving column; tail = "
          "after the last; gaps = between matmuls; busy = engine busy cycles:")
    print(f"{'name':40s} {'cycles':>8s} {'ideal':>8s} {'tiles':>7s} {'lead':>6s} "
          f"{'tail':>6s} {'gaps':>7s} {'dma-in':>8s} {'dma-out':>8s} {'tensor':>8s} "
          f"{'vector':>7s}")
    for r in rows:
        if "array_lead" not in r:
            continue
        x = gemm_losses(r, r["rows"], r["cols"])
        print(f"{r['name']:40s} {r['cycles']:8d} {x['ideal']:8.0f} {x['tiles']:7.0f} "
              f"{x['lead']:6d} {x['tail']:6d} {x['gaps']:7.0f} {r['busy_dma_in']:8d} "
              f"{r['busy_dma_out']:8d} {r['busy_tensor']:8d} {r['busy_vector']:7d}")


#: the cases of ``make bench --compare``: one INT8 and one float 256^3 GEMM
COMPARE_CASES = [("int8", 256, 256, 256, 0.921), ("bf16", 256, 256, 256, 0.921)]


def run_compare(int_config, float_config, repeats=3):
    """The 256^3 GEMMs on ``neuron_core_sim_baseline`` (built as before the speed work,
    docs/sim_speed.md) and on ``neuron_core_sim``, alternating ``repeats`` times in this
    one run, so both see the same machine. Returns the rows."""
    rows = []
    for rep in range(repeats):
        for top in ("neuron_core_sim_baseline", "neuron_core_sim"):
            for r in run_gemm_bench(int_config, float_config, COMPARE_CASES, top=top):
                r["repeat"] = rep
                rows.append(r)
    return rows


def print_compare_table(rows):
    print("\nsimulation speed before/after (docs/sim_speed.md), same run, same machine; "
          "best of the repeats; cycles per second of wall time (per CPU second of the "
          "simulator process):")
    print(f"{'case':28s} {'config':20s} {'before cyc/s':>18s} {'after cyc/s':>18s} "
          f"{'ratio':>11s} {'build s before':>14s} {'after':>6s}")
    best = {}
    for r in rows:
        k = (r["name"], r["config"], r["top"])
        if k not in best or r["sim_cycles_per_s"] > best[k]["sim_cycles_per_s"]:
            best[k] = r
    for (name, config, top), r in best.items():
        if top != "neuron_core_sim":
            continue
        b = best[(name, config, "neuron_core_sim_baseline")]
        if b["cycles"] != r["cycles"]:
            raise SystemExit(f"{name}: the baseline took {b['cycles']} cycles, the "
                             f"optimised model {r['cycles']}: they must be the same design")
        bc = max(x["sim_cycles_per_cpu_s"] for x in rows
                 if (x["name"], x["config"], x["top"]) == (name, config, b["top"]))
        rc = max(x["sim_cycles_per_cpu_s"] for x in rows
                 if (x["name"], x["config"], x["top"]) == (name, config, top))
        print(f"{name:28s} {config:20s} {b['sim_cycles_per_s']:8.0f} ({bc:7.0f}) "
              f"{r['sim_cycles_per_s']:8.0f} ({rc:7.0f}) "
              f"{r['sim_cycles_per_s'] / b['sim_cycles_per_s']:4.2f} ({rc / bc:4.2f}) "
              f"{_build_s(b):>14s} {_build_s(r):>6s}")


def run_compiler_bench(int_config, float_config, backend="verilator"):
    """A 256x256x256 GEMM compiled as a one-layer net (INT8 on ``int_config``, BF16 on
    ``float_config``) with the compiler's double buffering on and off."""
    import numpy as np
    from sim.compiler.lower import compile_net, run_compiled
    from sim.compiler.net import Layer, Net, Quant
    rows = []
    rng = np.random.default_rng(256)
    n = 256
    x = rng.standard_normal((n, n)).astype(np.float32)
    for dtype, config in (("int8", int_config), ("bf16", float_config)):
        if dtype == "int8":
            net = Net([Layer("gemm", rng.integers(-128, 128, (n, n)).astype(np.int8), None,
                             False, 1.0, None)], input_quant=Quant(0.02, 0))
        else:
            net = Net([Layer("gemm", rng.standard_normal((n, n)).astype(np.float32))])
        for db in (True, False):
            c = compile_net(net, config, batch=n, dtype=dtype, double_buffer=db)
            _, r, _ = run_compiled(c, x, backend=backend)
            rows.append({"name": f"compiled-{dtype}-{n}x{n}x{n}", "config": c.config.name,
                         "double_buffer": db, "cycles": r.cycles, "macs": c.macs,
                         "instructions": len(c.program),
                         "utilization": r.utilization(c.config, c.macs)})
    return rows


def print_compiler_table(rows):
    print("\ncompiler: a 256x256x256 GEMM compiled as a one-layer net, double buffering "
          "on / off:")
    print(f"{'name':28s} {'config':10s} {'double buf':>10s} {'cycles':>8s} {'instrs':>7s} "
          f"{'util':>7s}")
    for r in rows:
        print(f"{r['name']:28s} {r['config']:10s} {'on' if r['double_buffer'] else 'off':>10s} "
              f"{r['cycles']:8d} {r['instructions']:7d} {r['utilization']:7.2%}")


def cmd_run(args):
    """Compile an ONNX model for a configuration and run it on a backend."""
    import numpy as np
    from sim.compiler.lower import CompileError, compile_net, run_compiled
    from sim.compiler.onnx_front import UnsupportedModel, load_onnx
    from sim.compiler.runtime import CoreFault, OutOfMemory
    try:
        net = load_onnx(args.model)
        x = None
        if args.input:
            x = np.load(args.input).astype(np.float32)
            if x.ndim == 1:
                x = x[None, :]
            batch = x.shape[0]
        else:
            batch = args.batch
        if args.cores is not None:
            return _run_chip(args, net, x, batch)
        c = compile_net(net, args.config, batch=batch, dtype=args.dtype,
                        double_buffer=not args.no_double_buffer, check=args.check)
    except (UnsupportedModel, CompileError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = c.config
    print(f"{args.model}: {len(net.layers)} layers, {c.dtype} on {cfg.name} "
          f"({cfg.rows}x{cfg.cols}), batch {batch}, {len(c.program)} instructions, "
          f"{c.size} bytes of DRAM")
    for n in c.notes:
        print(f"note: {n}")
    for L in c.layers:
        g = L.layout
        print(f"  layer {L.index} {L.name}: out {g.M} x batch {g.N} x in {g.K}, "
              f"{g.c_type} out, {L.macs} MACs, instructions {L.first}..{L.first + L.count - 1}")
    if args.listing:
        print(c.listing())
    if x is None:
        if not args.listing:
            print("no --input given: compiled only")
        return 0
    if args.backend == "board" and not args.port:
        print("error: --backend board needs --port (a serial device, or 'sim')", file=sys.stderr)
        return 2
    try:
        if args.backend == "board":
            y, r = _run_on_board(c, x, args.port)
        else:
            y, r, _ = run_compiled(c, x, backend=args.backend, dram_bytes=_dram_bytes(args))
    except (OutOfMemory, CoreFault, ValueError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _print_output(net, y, args)
    print(f"counters ({r.backend}): " + ", ".join(f"{k} {v}" for k, v in r.counters.items()))
    if r.cycles:
        print(f"cycles per inference {r.cycles / batch:.1f}, utilization "
              f"{r.utilization(cfg, c.macs):.1%}")
    return 0


def _dram_bytes(args):
    """``--dram-mib`` in bytes (``None``: the backend's default)."""
    if args.dram_mib is None:
        return None
    if args.dram_mib <= 0:
        raise ValueError(f"--dram-mib must be positive, not {args.dram_mib}")
    return int(args.dram_mib * (1 << 20)) // 64 * 64


def _print_output(net, y, args):
    """Print a run's output (and save it with ``--output``)."""
    import numpy as np
    np.set_printoptions(precision=5, suppress=True, linewidth=100, threshold=200)
    print(f"output ({net.output_name}, {y.shape[0]} x {y.shape[1]}):")
    print(y)
    if args.output:
        np.save(args.output, y)
        print(f"written to {args.output}")


def _run_chip(args, net, x, batch):
    """``run --cores N``: the net on a chip, pipelined or data parallel."""
    from sim.compiler.chip import compile_data_parallel, run_chip_compiled
    from sim.compiler.lower import CompileError
    from sim.compiler.pipeline import compile_pipeline
    from sim.compiler.runtime import CoreFault
    if args.backend == "board":
        print("error: the board holds one core; --cores needs the golden or verilator "
              "backend", file=sys.stderr)
        return 2
    try:
        compile_ = compile_pipeline if args.mode == "pipeline" else compile_data_parallel
        cc = compile_(net, args.config, batch=batch, cores=args.cores, dtype=args.dtype,
                      check=args.check)
    except CompileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = cc.config
    print(f"{args.model}: {len(net.layers)} layers on a chip of {cc.cores} cores of "
          f"{cfg.name} ({cfg.rows}x{cfg.cols}), {cc.mode}, batch {batch}, "
          f"{cc.size} bytes of DRAM")
    for k, prog in enumerate(cc.programs):
        what = "idle" if prog is None else f"{len(prog)} instructions"
        if cc.mode == "pipeline" and k < len(cc.stages):
            lo, hi = cc.stages[k]
            what += f", layers {lo}..{hi - 1}"
        print(f"  core {k}: {what}")
    if x is None:
        print("no --input given: compiled only")
        return 0
    try:
        y, run = run_chip_compiled(cc, x, backend=args.backend)
    except (CoreFault, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _print_output(net, y, args)
    if run.cycles:
        print(f"chip cycles {run.cycles}, {1000 * batch / run.cycles:.2f} inferences per "
              f"1,000 cycles, utilization {cc.macs / (run.cycles * cc.cores * cfg.rows * cfg.cols):.1%}")
    return 0


def _run_on_board(c, x, port):
    """Run a compiled net on a board at ``port`` ('sim': the simulated board)."""
    import contextlib
    from sim.compiler.board import BoardLink, UARTBoneClient
    from sim.compiler.lower import run_compiled
    from sim.compiler.runtime import Device
    from sim.flow.boardsim import SimulatedBoard
    with SimulatedBoard(c.config) if port == "sim" else contextlib.nullcontext(port) as dev_port:
        client = UARTBoneClient(dev_port, timeout=120 if port == "sim" else 2.0)
        try:
            link = BoardLink(client, c.config)
            if not link.holds(c.config):
                raise ValueError(f"the board's core is not built for {c.config.name} "
                                 f"(its CONFIG register differs): use --config")
            dev = Device(c.config, "board", link=link)
            y, r, _ = run_compiled(c, x, device=dev, image=False)
            print(f"board: {link.bytes_moved} bytes over the UART, {link.polls} STATUS polls")
            return y, r
        finally:
            client.close()


def cmd_formal(args):
    """List or run the formal proofs (``sim/flow/formal_props.py``) and print a table."""
    from sim.flow.formal_props import PROOFS, proof, run_proof
    todo = [proof(n) for n in args.proof] if args.proof else \
        [p for p in PROOFS if args.regress or not p.regress]
    print(f"{'proof':22s} {'block':28s} {'mode':5s} {'depth':>5s} {'tier':7s} "
          f"{'result':7s} {'seconds':>7s}  property")
    failed = []
    for p in todo:
        tier = "regress" if p.regress else "test"
        if args.list:
            result, secs = "", ""
        else:
            r = run_proof(p)
            result, secs = r.status, f"{r.seconds:.1f}"
            if not r.passed:
                failed.append(r)
        print(f"{p.name:22s} {p.block:28s} {p.mode:5s} {p.depth:5d} {tier:7s} "
              f"{result:7s} {secs:>7s}  {p.prop}", flush=True)
    for r in failed:
        print("\n" + r.describe())
    return 1 if failed else 0


def cmd_bitstream(args):
    from sim.flow.bitstream import build_bitstream
    from sim.flow.synth import describe_path
    r = build_bitstream(args.board, args.config or "default", seed=args.seed)
    res = r["resources"]
    print(f"{r['bitstream']} ({r['bitstream_bytes']} bytes), {r['config']} on {r['device']}")
    for name in ("TRELLIS_COMB", "TRELLIS_FF", "MULT18X18D", "DP16KD", "EHXPLLL"):
        if name in res:
            print(f"  {name:13s} {res[name]['used']:6d} / {res[name]['available']}")
    for clk, c in r["clocks"].items():
        print(f"  clock {clk}: {c['fmax_mhz']:.2f} MHz routed, target {c['target_mhz']:.2f} "
              f"({'met' if c['met'] else 'NOT MET'})")
    for p in r["critical_paths"][:1]:
        print(f"  critical path: {describe_path(p)}")
    print(f"  build seconds: {r['seconds']}")
    if not r["timing_met"]:
        print("WARNING: timing is not met at the core clock; the bitstream was written anyway")


def cmd_board_bench(args):
    from sim.flow.boardsim import board_bench
    board_bench(args.port, args.config or "default", args.bytes)


def cmd_program(args):
    import subprocess
    from sim.flow.bitstream import program_command
    argv = program_command(args.board, flash=args.flash, bitfile=args.bitfile)
    print(" ".join(argv))
    if args.dry_run:
        return 0
    return subprocess.run(argv).returncode


def cmd_configs(args):
    for name, cfg in NAMED_CONFIGS.items():
        print(f"{name:10s} {cfg.to_json()}")
    return 0


def cmd_mutate(args):
    from sim.flow.mutate import run
    return run(args)


def cmd_waves(args):
    """Rerun pytest tests with waves (``WAVES=1``) and print how to open what they wrote."""
    import subprocess
    import sys
    import tempfile
    from sim.flow.rtl import ROOT
    with tempfile.NamedTemporaryFile("r", suffix=".txt", prefix="ncore-waves-") as index:
        env = dict(os.environ, WAVES="1", NCORE_WAVES_INDEX=index.name)
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args.test]
        rc = subprocess.call(cmd, cwd=ROOT, env=env)
        written = [line.split("\t") for line in index.read().splitlines() if line]
    if not written:
        print("no waves were written: is the test a Verilator test (tests/test_rtl_*.py, "
              "test_commands, ...)?", file=sys.stderr)
        return rc or 1
    print("\nwaves written" + (" (the test FAILED: the waves show the run up to the failure)"
                               if rc else "") + ":")
    for gtkw, fst in written:
        print(f"  gtkwave {os.path.relpath(gtkw)}")
        print(f"  surfer {os.path.relpath(fst)}")
    return rc


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m sim.flow.cli", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    def tops_and_target(parser, target_help):
        parser.add_argument("--top", action="append", choices=list(TOPS))
        parser.add_argument("--target", choices=["generic", "ecp5"], default=None,
                            help=target_help)

    v = sub.add_parser("verilog", help="write build/verilog/<top>.v for every top")
    v.add_argument("--config", default=os.environ.get("CONFIG") or "default")
    tops_and_target(v, "ecp5: multipliers as MULT18X18D primitives with their registers "
                       "(for FPGA builds; written to build/verilog-ecp5/)")
    v.set_defaults(func=cmd_verilog)

    lint = sub.add_parser("lint", help="verilator --lint-only -Wall on every top")
    lint.add_argument("--config", action="append")
    tops_and_target(lint, "ecp5: DSP primitives, linted against tb/models/ (default: each "
                          "top's own target)")
    lint.set_defaults(func=cmd_lint)

    s = sub.add_parser("synth", help="yosys + nextpnr-ecp5 resource and Fmax figures")
    s.add_argument("--config", action="append")
    s.add_argument("--top", action="append", choices=list(SYNTH_TOPS))
    s.add_argument("--device", action="append",
                   help="lfe5u-85f (default; speed 6), lfe5u-85f-7, lfe5u-85f-8, lfe5u-45f, "
                        "lfe5u-25f")
    s.add_argument("--freq", type=float, default=150)
    s.add_argument("--seed", type=int, action="append",
                   help="nextpnr placement seed (repeat for several; default 1)")
    s.add_argument("--placer", choices=["heap", "static"], default="heap",
                   help="nextpnr placer (default %(default)s)")
    from sim.flow.synth import HEAP_CRIT_EXP, HEAP_TIMING_WEIGHT, ROUTER2_TIMEOUT, ROUTERS
    s.add_argument("--router", action="append", choices=sorted(ROUTERS),
                   help="router to try (repeat: tried in order; default "
                        f"{', then '.join(ROUTERS)} if the first fails)")
    s.add_argument("--router2-timeout", type=float, default=ROUTER2_TIMEOUT,
                   help="stop router2 after this many seconds (a failure, reported; then "
                        "the next router); default %(default)s")
    s.add_argument("--timing-weight", type=int, default=HEAP_TIMING_WEIGHT,
                   help="nextpnr HeAP timing weight (default %(default)s; nextpnr's own is 10)")
    s.add_argument("--crit-exp", type=int, default=HEAP_CRIT_EXP,
                   help="nextpnr HeAP criticality exponent (default %(default)s; nextpnr's own "
                        "is 2)")
    s.add_argument("--density", type=float, default=None,
                   help="nextpnr HeAP maximum placement density, (0, 1] (default: nextpnr's "
                        "0.9); lower spreads the cells for the router")
    s.set_defaults(func=cmd_synth)

    b = sub.add_parser("bench", help="array and tensor-engine throughput on Verilator "
                                      "-> build/bench.json")
    b.add_argument("--config", action="append")
    b.add_argument("-T", type=int, default=32, help="back-to-back matmuls per case")
    b.add_argument("-N", type=int, action="append", help="moving columns per matmul (array)")
    b.add_argument("--tensor-N", type=int, action="append",
                   help="moving columns per matmul (tensor engine)")
    b.add_argument("--gemm-config", default="default",
                   help="configuration of the whole-core INT8 GEMM cases")
    b.add_argument("--gemm-float-config", default="8x8-fp",
                   help="configuration of the BF16 GEMM cases (the default one is INT8-only)")
    b.add_argument("--no-gemm", dest="gemm", action="store_false",
                   help="skip the whole-core GEMM cases")
    b.add_argument("--gemm-only", action="store_true",
                   help="run only the whole-core GEMM cases")
    b.add_argument("--compare", action="store_true",
                   help="simulation speed before/after (docs/sim_speed.md): the 256^3 GEMMs "
                        "on the baseline build and the optimised one, same run")
    b.add_argument("--cold", action="store_true",
                   help="rebuild the whole-core models without ccache first (true build "
                        "times)")
    b.add_argument("--no-chip", dest="chip", action="store_false",
                   help="skip the chip section (1, 2 and 4 cores)")
    b.set_defaults(func=cmd_bench)

    vb = sub.add_parser("conv-bench", help="convolutions on the RTL core: cycles, "
                                           "utilization -> build/bench-conv.json")
    vb.add_argument("--config", default="default")
    vb.set_defaults(func=cmd_conv_bench)

    cb = sub.add_parser("chip-bench", help="the chip section of make bench alone "
                                           "-> build/bench-chip.json")
    cb.add_argument("--config", default="default")
    cb.add_argument("--batch", type=int, default=1024)
    cb.add_argument("--cores", type=int, action="append", default=None)
    cb.set_defaults(func=cmd_chip_bench)

    r = sub.add_parser("run", help="compile an ONNX model and run it on a backend")
    r.add_argument("model", help="ONNX file (FP32 MLP, or QDQ INT8)")
    r.add_argument("--input", help=".npy input, batch x features (FP32)")
    r.add_argument("--batch", type=int, default=1, help="batch to compile for without --input")
    r.add_argument("--config", default=os.environ.get("CONFIG") or "default")
    r.add_argument("--backend", default="golden", choices=["golden", "verilator", "board"])
    r.add_argument("--port", help="board backend: the serial port (/dev/ttyUSB0), or 'sim' "
                                  "for the simulated board")
    r.add_argument("--dtype", choices=list(DTYPES),
                   help="operand type (default: int8 for QDQ models, bf16 for float ones)")
    r.add_argument("--listing", action="store_true", help="print the program")
    r.add_argument("--output", help="write the output to this .npy")
    r.add_argument("--no-double-buffer", action="store_true")
    r.add_argument("--check", action="store_true", help="run the race checker on the program")
    r.add_argument("--dram-mib", type=float, help="MiB of DRAM for the run (default: 64 on "
                   "golden and verilator, the block-RAM window on a board)")
    r.add_argument("--cores", type=int, help="run on a chip of this many cores (1..8)")
    r.add_argument("--mode", choices=["pipeline", "data"], default="pipeline",
                   help="with --cores: one stage per core (weights resident), or every "
                        "core the whole net on a share of the batch")
    r.set_defaults(func=cmd_run)

    bs = sub.add_parser("bitstream", help="board bitstream -> build/boards/<board>/ncore.bit "
                                          "and ncore-report.json")
    bs.add_argument("--board", default="ulx3s")
    bs.add_argument("--config", default=None)
    bs.add_argument("--seed", type=int, default=1)
    bs.set_defaults(func=cmd_bitstream)
    bb = sub.add_parser("board-bench", help="host throughput through the board's UART "
                                            "-> build/board-bench.json")
    bb.add_argument("--port", default="sim", help="serial port, or 'sim' (default)")
    bb.add_argument("--config", default=None)
    bb.add_argument("--bytes", type=int, default=1 << 16)
    bb.set_defaults(func=cmd_board_bench)
    pg = sub.add_parser("program", help="load the board's bitstream with openFPGALoader")
    pg.add_argument("--board", default="ulx3s")
    pg.add_argument("--bitfile", default=None)
    pg.add_argument("--flash", action="store_true", help="write the flash (kept on power-off)")
    pg.add_argument("--dry-run", action="store_true", help="print the command only")
    pg.set_defaults(func=cmd_program)

    c = sub.add_parser("configs", help="list the named configurations")
    c.set_defaults(func=cmd_configs)

    f = sub.add_parser("formal", help="run the formal proofs (SymbiYosys) -> build/formal/")
    f.add_argument("proof", nargs="*", help="proofs to run (default: those of make test)")
    f.add_argument("--regress", action="store_true",
                   help="also the proofs that run only in make regress")
    f.add_argument("--list", action="store_true", help="list the proofs, run nothing")
    f.set_defaults(func=cmd_formal)

    mu = sub.add_parser("mutate", help="mutation testing of hdl/ (catalogue: "
                                        "sim/flow/mutants.py) -> build/mutate.json")
    from sim.flow.mutate import add_arguments
    add_arguments(mu)
    mu.set_defaults(func=cmd_mutate)

    w = sub.add_parser("waves", help="rerun a test with waves and print the commands that "
                                      "open them (GTKWave save file, FST for Surfer)")
    w.add_argument("test", nargs="+", help="pytest node id(s), e.g. "
                   "'tests/test_rtl_core.py::test_core[test_smoke-default]'")
    w.set_defaults(func=cmd_waves)

    args = p.parse_args(argv)
    env_cfg = os.environ.get("CONFIG")
    if args.cmd == "lint" and not args.config:
        args.config = [env_cfg] if env_cfg else ["default", "8x4", "1x1", "min", "16x16"]
    if args.cmd in ("bitstream", "board-bench") and not args.config:
        args.config = env_cfg or "default"
    if args.cmd in ("synth", "bench") and not args.config:
        args.config = [env_cfg or "default"]
    if args.cmd == "synth" and not args.device:
        args.device = ["lfe5u-85f"]
    if args.cmd == "bench" and not args.N:
        args.N = [8, 32, 128]
    if args.cmd == "bench" and not args.tensor_N:
        args.tensor_N = [4, 8, 16, 64, 256]
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
