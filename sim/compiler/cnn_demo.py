"""The CNN part of ``make demo`` (issue 27): a LeNet-style network on the digits, trained
here in NumPy, through ONNX onto the core; and per-layer cycles and utilization of the
three CNNs (LeNet, ResNet-style, MobileNet-style) on the RTL.

Steps (``python -m sim.compiler.cnn_demo [--backend B] [--config C] [--rtl-images N]``):

1. Train the LeNet-style network (:func:`sim.compiler.cnn_models.train_lenet`), write
   ``build/demo/lenet_digits.onnx``.
2. onnxruntime's accuracy on the whole test split (FP32 model).
3. The core's (BF16, FP32 accumulation) on the whole test split, on the golden backend
   (the ISS, bit-exact with the RTL) in batches; agreement with onnxruntime's
   predictions.
4. ``--rtl-images`` test images on the chosen backend (Verilator by default): the DRAM
   image after the run equal to the ISS's byte for byte.
5. Per layer of each network, batch 1, on the backend: cycles, useful MACs and their
   utilization of the array (``MACs / (rows * cols * cycles)``; a pool or add has none).

Figures go to ``build/demo/cnn.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys

import numpy as np

from sim.compiler.cnn import CnnGraph, compile_cnn, load_cnn, run_cnn
from sim.compiler.cnn_models import (digits_images, lenet_onnx, mobilenet_block_model,
                                     ort_run, resnet_block_model, train_lenet)

__all__ = ["layer_figures", "op_macs", "main"]


def op_macs(graph: CnnGraph, op, batch=1):
    """Useful multiply-accumulates of one operation (0 for pools and adds)."""
    if op.kind != "conv":
        return 0
    F, OH, OW = graph.shapes[op.output]
    w = op.p["w"]
    return batch * F * OH * OW * w.shape[1] * w.shape[2] * w.shape[3]


def layer_figures(graph: CnnGraph, config, backend="verilator", dtype="bf16", seed=0):
    """Each operation of ``graph`` compiled and run alone (batch 1, random input of its
    shape): one dict per operation with its cycles and utilization."""
    from hdl.config import named_config
    cfg = named_config(config)
    rng = np.random.default_rng(seed)
    rows = []
    for op in graph.ops:
        g = copy.deepcopy(graph)
        g.ops = [copy.deepcopy(op)]
        g.input = op.inputs[0] if op.kind != "add" else None
        g.output = op.output
        g.flat_output = False
        if op.kind == "add":
            # an add reads two tensors: run it as its own two-input program
            from sim.compiler.pool import add2d
            C, H, W = graph.shapes[op.inputs[0]]
            a, b = (rng.standard_normal((1, C, H, W)).astype(np.float32) for _ in range(2))
            _, r, _ = add2d(a, b, dtype, relu=op.p["relu"], config=cfg, backend=backend,
                            return_result=True)
        else:
            c = compile_cnn(g, cfg, batch=1, dtype=dtype)
            x = rng.standard_normal((1,) + graph.shapes[op.inputs[0]]).astype(np.float32)
            _, r, _ = run_cnn(c, x, backend=backend, return_result=True)
        macs = op_macs(graph, op)
        rows.append(dict(layer=op.name, kind=op.kind,
                         groups=op.p.get("groups", 1) if op.kind == "conv" else None,
                         input=list(graph.shapes[op.inputs[0]]),
                         output=list(graph.shapes[op.output]), macs=macs, cycles=r.cycles,
                         utilization=macs / (cfg.rows * cfg.cols * r.cycles) if macs else None))
    return rows


def print_layers(name, rows):
    print(f"  {name}:")
    print(f"    {'layer':10s} {'kind':8s} {'in (CxHxW)':12s} {'out':12s} {'MACs':>8s} "
          f"{'cycles':>8s} {'util':>6s}")
    for r in rows:
        kind = r["kind"] + ("/dw" if r["groups"] and r["groups"] > 1 else "")
        util = f"{r['utilization']:6.1%}" if r["utilization"] is not None else "     -"
        print(f"    {r['layer']:10s} {kind:8s} {'x'.join(map(str, r['input'])):12s} "
              f"{'x'.join(map(str, r['output'])):12s} {r['macs']:8d} {r['cycles']:8d} {util}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m sim.compiler.cnn_demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="verilator", choices=["golden", "verilator"])
    ap.add_argument("--config", default="8x8-fp",
                    help="core configuration with float types (default 8x8-fp)")
    ap.add_argument("--rtl-images", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=60, help="images per golden run")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--test-images", type=int, default=None,
                    help="the first N test images only (default: the whole split)")
    ap.add_argument("--no-layers", action="store_true", help="skip the per-layer figures")
    args = ap.parse_args(argv)
    from sim.flow.rtl import BUILD
    out_dir = BUILD / "demo"
    out_dir.mkdir(parents=True, exist_ok=True)

    P = train_lenet(seed=0, epochs=args.epochs)
    model = lenet_onnx(P)
    path = out_dir / "lenet_digits.onnx"
    path.write_bytes(model.SerializeToString())
    _, _, x, y = digits_images()
    if args.test_images:
        x, y = x[:args.test_images], y[:args.test_images]
    ref = ort_run(model, x)
    acc_ort = float((ref.argmax(1) == y).mean())
    graph = load_cnn(path)
    print(f"ncore CNN demo: LeNet-style on the 8x8 digits ({path}), trained in NumPy")
    print(f"  onnxruntime (FP32), {len(x)} test images: accuracy {acc_ort:.4f}")

    preds = []
    for s in range(0, len(x), args.chunk):
        xb = x[s:s + args.chunk]
        c = compile_cnn(graph, args.config, batch=len(xb), dtype="bf16")
        preds.append(run_cnn(c, xb).argmax(1))
    pred = np.concatenate(preds)
    acc = float((pred == y).mean())
    agree = float((pred == ref.argmax(1)).mean())
    print(f"  ncore (BF16, FP32 accumulation, ISS): accuracy {acc:.4f}; same prediction as "
          f"onnxruntime on {agree:.2%} of the images")

    n = args.rtl_images
    c = compile_cnn(graph, args.config, batch=n, dtype="bf16")
    y_iss, r_iss, d_iss = run_cnn(c, x[:n], return_result=True)
    y_be, r_be, d_be = run_cnn(c, x[:n], backend=args.backend, return_result=True)
    exact = bool(np.array_equal(d_iss, d_be))
    cycles = f"{r_be.cycles} cycles" if r_be.cycles is not None else "no cycle count"
    print(f"  {n} images on {args.backend} ({args.config}): {cycles}, DRAM "
          f"{'equal to the ISS byte for byte' if exact else 'DIFFERS from the ISS'}")
    figures = dict(model="lenet_digits", test_images=len(x), onnxruntime_accuracy=acc_ort,
                   ncore_accuracy=acc, agreement=agree, backend=args.backend,
                   config=args.config, rtl_images=n, rtl_cycles=r_be.cycles,
                   rtl_equals_iss=exact, layers={})
    if args.backend == "golden" and not args.no_layers:
        print("  per-layer cycles need a cycle-accurate backend (--backend verilator)")
    elif not args.no_layers:
        print(f"  per layer, batch 1, BF16, on {args.backend} ({args.config}):")
        nets = {"lenet": graph, "resnet": load_cnn(resnet_block_model()),
                "mobilenet": load_cnn(mobilenet_block_model())}
        for name, g in nets.items():
            rows = layer_figures(g, args.config, args.backend)
            figures["layers"][name] = rows
            print_layers(name, rows)
    (out_dir / "cnn.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(f"  figures written to {out_dir / 'cnn.json'}")
    if not exact or acc != acc_ort and abs(acc - acc_ort) > 2 / len(x):
        print("  FAILED: see above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
