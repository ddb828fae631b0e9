"""End-to-end demo: handwritten digits on ncore, from scikit-learn through ONNX.

``python -m sim.compiler.demo`` (``make demo``):

1. scikit-learn's 8x8 digits (bundled, no download), features scaled to [0, 1], a
   fixed stratified 80/20 split (``random_state=0``: 1437 training, 360 test images).
2. A 64-64-10 MLP (ReLU hidden layer) trained with ``MLPClassifier`` (a second or so).
3. Two ONNX models written to ``build/demo/``: the FP32 model (``mlp_float``) and a QDQ
   INT8 model (``quantize_mlp`` calibrated on the training split, then ``mlp_qdq``).
   Both are read back with the ONNX front end (``load_onnx``); ncore runs what it reads.
4. onnxruntime (CPU) runs both models: the reference accuracies and logits.
5. ncore runs the whole test split as one batch: the float model in BF16 on "8x8-fp",
   the QDQ model in INT8 on "default". Reported per mode: accuracy, top-1 agreement with
   ORT FP32, the largest logit difference from ORT FP32, bit-exactness of the RTL
   against the instruction-set simulator (the whole DRAM image after the run, byte for
   byte; verilator backend only), cycles, cycles per inference, utilization
   (MACs / (rows * cols * cycles)) and the same per layer (each layer compiled and run
   alone, fed the previous layer's output bits).

The exit status is non-zero if a bit-exactness check fails or if ncore's accuracy is
more than 5 percentage points below ORT FP32's (a sanity check, not a benchmark).
All figures go to a JSON file (``--json``, default ``build/demo/demo.json``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import textwrap
import time
import warnings

import numpy as np

from sim.flow.rtl import BUILD

__all__ = ["main", "MODES", "ACCURACY_MARGIN"]

DEMO_DIR = BUILD / "demo"

#: (mode, configuration, dtype, which ONNX model, description)
MODES = (
    ("bf16", "8x8-fp", "bf16", "fp32", "float model, BF16 operands, FP32 accumulation"),
    ("int8", "default", "int8", "qdq", "QDQ model, INT8 operands, INT32 accumulation"),
)

#: ncore may be at most this far below ORT FP32's accuracy (a fraction) before the demo fails.
ACCURACY_MARGIN = 0.05


class _Clock:
    """Wall time of each named step."""

    def __init__(self):
        self.steps = {}

    def __call__(self, name):
        clock = self

        class _Step:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                clock.steps[name] = clock.steps.get(name, 0.0) + time.perf_counter() - self.t0
        return _Step()


# ---- data, training, ONNX ---------------------------------------------------------------

def load_data():
    """The digits, features / 16 as FP32, split 80/20 (stratified, random_state 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return train_test_split(x, d.target, test_size=0.2, random_state=0, stratify=d.target)


def train_mlp(x, y, seed, max_iter=300):
    """A 64-64-10 ``MLPClassifier`` (ReLU hidden layer); returns (classifier, weights,
    biases) with FP32 ``K x N`` weights."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), activation="relu", random_state=seed,
                        max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    weights = [np.asarray(w, dtype=np.float32) for w in clf.coefs_]
    biases = [np.asarray(b, dtype=np.float32) for b in clf.intercepts_]
    return clf, weights, biases


def ort_run(path, x):
    """onnxruntime (CPUExecutionProvider) on the model at ``path``: the FP32 output."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: np.asarray(x, np.float32)})[0]


# ---- ncore -------------------------------------------------------------------------------

def _util(cfg, macs, cycles):
    return macs / (cfg.rows * cfg.cols * cycles) if cycles else None


class BoardHoldsOther(Exception):
    """The board's core was built for another configuration than a mode's."""


def run_mode(net, config, dtype, x, backend, clock, tag, client=None):
    """Compile ``net`` for a batch of ``len(x)`` and run it on ``backend``, whole and
    layer by layer. Returns the logits and a dict of figures (no accuracies). On the
    ``board`` backend (``client``: a :class:`sim.compiler.board.UARTBoneClient`) also
    the host traffic and the board time of one batch: with everything sent; with the
    model already on the board (a new input in, the output out); with the input there
    too (the run and its register traffic alone)."""
    from hdl.config import named_config
    from sim.compiler.lower import compile_net, run_compiled
    from sim.compiler.runtime import Device
    cfg = named_config(config)
    batch = len(x)
    verify = backend != "golden"
    dev = None
    if backend == "board":
        from sim.compiler.board import BoardLink
        link = BoardLink(client, cfg)
        if not link.holds(cfg):
            raise BoardHoldsOther(f"the board's core is not built for {cfg.name}")
        dev = Device(cfg, "board", link=link)
    with clock(f"{tag}: compile"):
        whole = compile_net(net, cfg, batch=batch, dtype=dtype)
    with clock(f"{tag}: run ({backend})"):
        if dev is not None:
            b0, p0 = link.bytes_moved, link.polls
            y, res, _ = run_compiled(whole, x, device=dev, image=False)
            board = _board_figures(link, b0, p0, res.cycles, batch)
            dev.sync(whole.size)
            dram = dev.dram[:whole.size].copy()
            # the same model again, on new input: only that goes up, the output comes back
            b0, p0 = link.bytes_moved, link.polls
            _, res2, _ = run_compiled(whole, x[::-1].copy(), device=dev, image=False)
            board["resident"] = _board_figures(link, b0, p0, res2.cycles, batch)
            # and once more with the input already there: the run alone
            b0, p0 = link.bytes_moved, link.polls
            res3 = dev.run(whole.prog_addr, win=(0, whole.size),
                           writes=whole.written_ranges()).check()
            board["on_board"] = _board_figures(link, b0, p0, res3.cycles, batch)
        else:
            y, res, dram = run_compiled(whole, x, backend=backend)
    bit_exact = None
    if verify:
        with clock(f"{tag}: run (golden, for bit-exactness)"):
            _, _, dram_iss = run_compiled(whole, x, backend="golden")
        bit_exact = bool(dram.shape == dram_iss.shape and np.array_equal(dram, dram_iss))
    cycles = res.cycles
    figures = {
        "config": str(config), "config_detail": cfg.name, "dtype": dtype, "backend": backend, "batch": batch,
        "array": [cfg.rows, cfg.cols], "dram_bytes": int(whole.size),
        "instructions": len(whole.program.instructions),
        "macs": int(whole.macs), "tensor_macs_counted": res.counters.get("tensor_macs"),
        "cycles": cycles,
        "cycles_per_inference": cycles / batch if cycles else None,
        "utilization": _util(cfg, whole.macs, cycles),
        "counters": {k: int(v) for k, v in res.counters.items()},
        "sim_wall_s": res.wall_s,
        "bit_exact": bit_exact,
    }
    if dev is not None:
        figures["board"] = board

    layers = []
    bits = whole.input_bits(x)
    layers_exact = True if verify else None
    with clock(f"{tag}: per-layer runs"):
        for i in range(len(net.layers)):
            part = compile_net(net, cfg, batch=batch, dtype=dtype, layers=(i, i + 1))
            if dev is not None:
                _, r, pdram = run_compiled(part, bits=bits, device=dev)
            else:
                _, r, pdram = run_compiled(part, bits=bits, backend=backend)
            exact = None
            if verify:
                _, _, pdram_iss = run_compiled(part, bits=bits, backend="golden")
                exact = bool(np.array_equal(pdram, pdram_iss))
                layers_exact = layers_exact and exact
            plan = part.layers[0]
            lay = plan.layout
            layers.append({
                "index": i, "name": plan.name, "M": lay.M, "N": lay.N, "K": lay.K,
                "macs": int(plan.macs), "n_block": plan.n_block,
                "instructions": plan.count, "cycles": r.cycles,
                "utilization": _util(cfg, plan.macs, r.cycles), "bit_exact": exact,
            })
            bits = part.output_bits(pdram)
    figures["layers"] = layers
    figures["layers_bit_exact"] = layers_exact
    # the layer-by-layer chain must end where the whole program did
    figures["layers_compose"] = bool(np.array_equal(bits, whole.output_bits(dram)))
    return y, figures


def _board_figures(link, bytes0, polls0, cycles, batch):
    """Host traffic of one run on the board and what it takes at the board's clock
    and baud rate (:func:`sim.compiler.board.board_seconds`)."""
    from hdl.tops.ulx3s import ULX3S
    from sim.compiler.board import board_seconds
    moved, polls = link.bytes_moved - bytes0, link.polls - polls0
    s = board_seconds(moved, polls, cycles, ULX3S)
    return {"bytes_moved": moved, "status_polls": polls, "seconds_at_baud": s,
            "inferences_per_s": batch / s, "baud": ULX3S.baud, "f_clk_hz": ULX3S.f_clk}


# ---- report ------------------------------------------------------------------------------

def _pct(v):
    return "-" if v is None else f"{100 * v:.2f}%"


def _num(v, fmt="d"):
    return "-" if v is None else format(v, fmt)


def _yes(v, na="n/a"):
    return na if v is None else ("yes" if v else "NO")


def print_mode(m, backend):
    name = f"{m['dtype'].upper()} on {m['config']} ({m['what']}), batch {m['batch']}"
    print(f"\n== {name} " + "=" * max(0, 86 - len(name)))
    if backend == "golden":
        print("  bit-exact vs ISS: n/a (the golden backend is the ISS; use --backend verilator)")
    else:
        print(f"  bit-exact vs ISS: {_yes(m['bit_exact'])} (whole DRAM image after the run, "
              f"{m['dram_bytes']} bytes; per-layer runs: {_yes(m['layers_bit_exact'])})")
    ok_acc = "" if m["accuracy_ok"] else "   << more than 5 pp below ORT FP32"
    rows = [
        ("accuracy on ncore", f"{_pct(m['accuracy'])}  ({m['correct']}/{m['batch']}; "
                              f"ORT FP32 {_pct(m['ort_fp32_accuracy'])}, "
                              f"{100 * m['accuracy_delta_vs_ort_fp32']:+.2f} pp){ok_acc}"),
        ("top-1 agreement, ORT FP32", f"{_pct(m['agreement_with_ort_fp32'])}  "
                                      f"({m['agree_count']}/{m['batch']})"),
        ("max |logit - ORT FP32|", f"{m['max_abs_logit_diff_vs_ort_fp32']:.4g}"),
    ]
    if "agreement_with_ort_qdq" in m:
        rows.append(("top-1 agreement, ORT QDQ", f"{_pct(m['agreement_with_ort_qdq'])}; "
                     f"max |logit - ORT QDQ| {m['max_abs_logit_diff_vs_ort_qdq']:.4g} "
                     f"({m['logits_differing_from_ort_qdq']} of "
                     f"{m['batch'] * m['out_features']} differ)"))
    rows += [
        ("cycles", f"{_num(m['cycles'])} total, {_num(m['cycles_per_inference'], '.1f')} "
                   f"per inference"),
        ("utilization", f"{_pct(m['utilization'])}  ({m['macs']} MACs on "
                        f"{m['array'][0]}x{m['array'][1]}, {m['instructions']} instructions)"),
    ]
    if "board" in m:
        b, r = m["board"], m["board"]["resident"]
        rows.append(("board, everything sent", f"{b['bytes_moved']} bytes over the UART, "
                     f"{1e3 * b['seconds_at_baud']:.1f} ms at {b['baud'] / 1e6:g} Mbaud and "
                     f"{b['f_clk_hz'] / 1e6:g} MHz: {b['inferences_per_s']:.0f} inferences/s"))
        rows.append(("board, model resident", f"{r['bytes_moved']} bytes (input in, output "
                     f"out), {1e3 * r['seconds_at_baud']:.1f} ms: {r['inferences_per_s']:.0f} "
                     f"inferences/s"))
        o = m["board"]["on_board"]
        rows.append(("board, data on the board", f"{o['bytes_moved']} bytes (registers "
                     f"only), {1e3 * o['seconds_at_baud']:.2f} ms: "
                     f"{o['inferences_per_s']:.0f} inferences/s"))
    for k, v in rows:
        print(f"  {k:27s} {v}")
    print(f"  {'layer':18s} {'M':>4s} {'N':>5s} {'K':>4s} {'MACs':>9s} {'cycles':>8s} "
          f"{'cyc/inf':>8s} {'util':>7s} {'bit-exact':>9s}")
    for L in m["layers"]:
        cpi = L["cycles"] / m["batch"] if L["cycles"] else None
        print(f"  {str(L['index']) + ' ' + L['name']:18s} {L['M']:4d} {L['N']:5d} {L['K']:4d} "
              f"{L['macs']:9d} {_num(L['cycles']):>8s} {_num(cpi, '.1f'):>8s} "
              f"{_pct(L['utilization']):>7s} {_yes(L['bit_exact']):>9s}")
    print(f"  (layers run one at a time compose to the whole program's output: "
          f"{_yes(m['layers_compose'])})")


# ---- main --------------------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sim.compiler.demo",
        description="Digits MLP on ncore: scikit-learn -> ONNX -> ncore (BF16 and INT8), "
                    "checked against onnxruntime and the ISS.")
    p.add_argument("--backend", choices=("golden", "verilator", "board"), default="verilator",
                   help="where ncore runs (default verilator: the RTL, checked against "
                        "the golden ISS; golden: the ISS alone, quick, no cycle counts; "
                        "board: a board over its UART, --port)")
    p.add_argument("--port", default=None,
                   help="the board's serial port (/dev/ttyUSB0), or 'sim': the simulated "
                        "ULX3S board (Verilator, docs/board.md)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="use only the first N test images (default all 360)")
    p.add_argument("--json", default=str(DEMO_DIR / "demo.json"), metavar="PATH",
                   help="write every figure here (default build/demo/demo.json)")
    p.add_argument("--seed", type=int, default=0,
                   help="MLPClassifier's random_state (the split is fixed; default 0)")
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be at least 1")
    if args.backend == "board" and not args.port:
        p.error("--backend board needs --port (a serial device, or 'sim')")
    if args.backend != "board" and args.port:
        p.error("--port is for --backend board")
    if args.port == "sim":
        from sim.flow.boardsim import SimulatedBoard
        with SimulatedBoard("default") as port:
            return _main(args, port)
    return _main(args, args.port)


def _main(args, port) -> int:
    client = None
    if port is not None:
        from sim.compiler.board import UARTBoneClient
        # the simulated board answers in simulated time: give it longer
        client = UARTBoneClient(port, timeout=120 if args.port == "sim" else 2.0)

    from sim.compiler.lower import CompileError
    from sim.compiler.onnx_build import mlp_float, mlp_qdq, quantize_mlp
    from sim.compiler.onnx_front import load_onnx

    clock = _Clock()
    t_start = time.perf_counter()
    out_dir = DEMO_DIR
    out_dir.mkdir(parents=True, exist_ok=True)

    with clock("data"):
        x_train, x_test, y_train, y_test = load_data()
    n_test_all = len(x_test)
    if args.limit is not None:
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]
    batch = len(x_test)

    with clock("training"):
        clf, weights, biases = train_mlp(x_train, y_train, args.seed)
    relus = [True] * (len(weights) - 1) + [False]

    with clock("onnx export"):
        fp32_path = out_dir / "digits_fp32.onnx"
        qdq_path = out_dir / "digits_int8_qdq.onnx"
        fp32_path.write_bytes(mlp_float(weights, biases, relus).SerializeToString())
        qnet = quantize_mlp(weights, biases, relus, calib_x=x_train)
        qdq_path.write_bytes(mlp_qdq(qnet).SerializeToString())
    with clock("onnx import"):
        nets = {"fp32": load_onnx(str(fp32_path)), "qdq": load_onnx(str(qdq_path))}

    with clock("onnxruntime"):
        ort_out = {k: ort_run(path, x_test) for k, path in
                   (("fp32", fp32_path), ("qdq", qdq_path))}
    ort_pred = {k: v.argmax(axis=1) for k, v in ort_out.items()}
    ort_acc = {k: float(np.mean(v == y_test)) for k, v in ort_pred.items()}

    shapes = "-".join(str(n) for n in [nets["fp32"].in_features] +
                      [L.N for L in nets["fp32"].layers])
    print(f"ncore digits demo: scikit-learn 8x8 digits, MLP {shapes} (ReLU hidden), "
          f"backend {args.backend}")
    print(f"  {'data':27s} {len(x_train)} training / {batch} test images"
          f"{f' (first {batch} of {n_test_all})' if batch != n_test_all else ''}; "
          f"features / 16; stratified split, random_state 0")
    print(f"  {'training':27s} MLPClassifier, seed {args.seed}, {clf.n_iter_} iterations, "
          f"training accuracy {_pct(clf.score(x_train, y_train))}")
    print(f"  {'ONNX (written, read back)':27s} {fp32_path.relative_to(BUILD.parent)}  "
          f"{qdq_path.relative_to(BUILD.parent)}")
    for k, net in nets.items():
        for note in net.notes:
            print(f"  {'front end note (' + k + ')':27s} {note}")
    print(f"  {'onnxruntime FP32 accuracy':27s} {_pct(ort_acc['fp32'])}")
    print(f"  {'onnxruntime QDQ accuracy':27s} {_pct(ort_acc['qdq'])}  (top-1 agreement "
          f"with FP32 {_pct(float(np.mean(ort_pred['qdq'] == ort_pred['fp32'])))})")

    modes = {}
    failures = []
    for mode, config, dtype, which, what in MODES:
        try:
            logits, m = run_mode(nets[which], config, dtype, x_test, args.backend, clock,
                                 mode, client)
        except BoardHoldsOther as e:
            print(f"\n{mode}: not run: {e}")
            continue
        except CompileError as e:
            print(f"\n{mode}: cannot compile for {config}: {e}")
            failures.append(f"{mode}: compile error")
            continue
        pred = logits.argmax(axis=1)
        acc = float(np.mean(pred == y_test))
        m.update({
            "what": what, "onnx": str(fp32_path if which == "fp32" else qdq_path),
            "out_features": int(logits.shape[1]),
            "accuracy": acc, "correct": int(np.sum(pred == y_test)),
            "ort_fp32_accuracy": ort_acc["fp32"],
            "accuracy_delta_vs_ort_fp32": acc - ort_acc["fp32"],
            "accuracy_ok": bool(acc >= ort_acc["fp32"] - ACCURACY_MARGIN - 1e-12),
            "agreement_with_ort_fp32": float(np.mean(pred == ort_pred["fp32"])),
            "agree_count": int(np.sum(pred == ort_pred["fp32"])),
            "max_abs_logit_diff_vs_ort_fp32": float(np.abs(logits - ort_out["fp32"]).max()),
        })
        if which == "qdq":
            d = np.abs(logits - ort_out["qdq"])
            m.update({
                "agreement_with_ort_qdq": float(np.mean(pred == ort_pred["qdq"])),
                "max_abs_logit_diff_vs_ort_qdq": float(d.max()),
                "logits_differing_from_ort_qdq": int(np.count_nonzero(d)),
            })
        modes[mode] = m
        print_mode(m, args.backend)
        if m["bit_exact"] is False or m["layers_bit_exact"] is False:
            failures.append(f"{mode}: the RTL's DRAM image differs from the ISS's")
        if not m["layers_compose"]:
            failures.append(f"{mode}: the per-layer runs do not compose to the whole run")
        if not m["accuracy_ok"]:
            failures.append(f"{mode}: accuracy {_pct(acc)} is more than "
                            f"{100 * ACCURACY_MARGIN:.0f} pp below ORT FP32's "
                            f"{_pct(ort_acc['fp32'])}")

    if not modes and not failures:
        failures.append("no mode ran: the board's core is built for none of the demo's "
                        "configurations (" + ", ".join(c for _, c, *_ in MODES) + ")")
    if client is not None:
        client.close()
    total = time.perf_counter() - t_start
    print("\nsummary " + "-" * 82)
    print(f"  {'mode':6s} {'config':9s} {'accuracy':>9s} {'vs ORT':>8s} {'agree':>8s} "
          f"{'max|dlogit|':>11s} {'bit-exact':>9s} {'cycles':>8s} {'cyc/inf':>8s} "
          f"{'util':>7s}")
    for mode, m in modes.items():
        print(f"  {mode:6s} {m['config']:9s} {_pct(m['accuracy']):>9s} "
              f"{100 * m['accuracy_delta_vs_ort_fp32']:+7.2f}pp "
              f"{_pct(m['agreement_with_ort_fp32']):>8s} "
              f"{m['max_abs_logit_diff_vs_ort_fp32']:11.4g} {_yes(m['bit_exact']):>9s} "
              f"{_num(m['cycles']):>8s} {_num(m['cycles_per_inference'], '.1f'):>8s} "
              f"{_pct(m['utilization']):>7s}")
    print(f"  sanity check: each mode's accuracy on ncore must be within "
          f"{100 * ACCURACY_MARGIN:.0f} pp of ORT FP32's, and (verilator) the RTL bit-exact "
          f"with the ISS")
    walls = ", ".join(f"{k} {v:.1f}" for k, v in clock.steps.items())
    print(textwrap.fill(f"wall time (s): {walls}; total {total:.1f}", width=96,
                        initial_indent="  ", subsequent_indent="    "))

    report = {
        "dataset": {"name": "sklearn digits", "train": len(x_train), "test": batch,
                    "test_total": n_test_all, "limit": args.limit, "split_random_state": 0},
        "model": {"layers": shapes, "seed": args.seed, "iterations": int(clf.n_iter_),
                  "train_accuracy": float(clf.score(x_train, y_train))},
        "onnx": {"fp32": str(fp32_path), "qdq": str(qdq_path)},
        "ort": {"fp32_accuracy": ort_acc["fp32"], "qdq_accuracy": ort_acc["qdq"],
                "qdq_agreement_with_fp32": float(np.mean(ort_pred["qdq"] == ort_pred["fp32"]))},
        "backend": args.backend,
        "accuracy_margin": ACCURACY_MARGIN,
        "modes": modes,
        "wall_s": {**clock.steps, "total": total},
        "failures": failures,
        "ok": not failures,
    }
    json_path = pathlib.Path(args.json)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"  figures written to {json_path}")
    if failures:
        print("\nFAILED:\n" + "".join(f"  {f}\n" for f in failures), end="")
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
