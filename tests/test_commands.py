"""Every command the README documents is run by a test, so a broken command cannot land
unnoticed (issue 21: ``make lint`` once failed on a fresh clone because the suite linted
only two configurations).

* :data:`COVERED` maps each documented command to the test that runs it. The fast test
  :func:`test_every_readme_command_is_covered` reads the README's command table and
  quick start and fails on a command nobody runs, or on a mapping to a test that does
  not exist: a new README command needs a test here (or a named one elsewhere).
* The commands that take minutes (``make lint`` over all its configurations,
  ``make verilog`` for both targets, ``make bench``, ``make demo`` on Verilator, a
  ``make synth`` run) run in ``make regress``; each is run literally, through ``make``
  where the README says ``make``, so the Makefile itself is tested.
"""

import pathlib
import re
import subprocess
import sys

import pytest

from tiers import regress

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: README command (its first words, as the Commands table writes them) -> the test that
#: runs it ("module::test"). ``make test``/``make regress`` run themselves (CI and the
#: pre-resolve rule); ``make sim``/``make unit`` are the same pytest selection with a
#: narrower mark, run here as a collection.
COVERED = {
    "make test": "ci: .ci/run",
    "make regress": "the long tier itself (run before resolving an issue)",
    "make sim": "test_commands.py::test_make_sim_and_unit_select",
    "make unit": "test_commands.py::test_make_sim_and_unit_select",
    "make verilog": "test_commands.py::test_make_verilog",
    "make lint": "test_commands.py::test_make_lint",
    "make synth": "test_commands.py::test_synth_one_run",
    "make demo": "test_commands.py::test_make_demo",
    "make bench": "test_commands.py::test_make_bench",
    "make mutate": "test_commands.py::test_mutate_one",
    "make formal": "test_formal.py",
    "make waves": "test_waves.py::test_make_waves",
    "sim.flow.cli waves": "test_waves.py::test_waves_open_in_gtkwave",
    "sim.flow.waveshot": "test_waves.py::test_waves_open_in_gtkwave",
    "sim.flow.cli run": "test_cli_run.py::test_run_prints_outputs_and_counters",
    "sim.flow.cli lint": "test_lint.py::test_lint",
    "sim.flow.cli bench": "test_commands.py::test_make_bench",
    "sim.flow.cli configs": "test_commands.py::test_cli_configs",
    "sim.flow.cli synth": "test_commands.py::test_synth_one_run",
    "sim.flow.cli formal": "test_formal.py",
    "sim.flow.cli mutate": "test_commands.py::test_mutate_one",
    "sim.compiler.demo": "test_demo.py::test_demo_golden_quick",
    "sim.compiler.cnn_demo": "test_cnn.py::test_cnn_demo_golden_quick",
    "sim.flow.isadoc": "test_isadoc.py::test_docs_up_to_date",
    "hdl.regmap": "test_host_amaranth.py::test_docs_up_to_date",
    "pytest": "test_commands.py::test_waves_and_seed_single_test",
    "make bitstream": "test_commands.py::test_make_bitstream_min",
    "make program": "test_board_top.py::test_make_program_dry_run",
    "sim.flow.cli board-bench": "test_commands.py::test_board_bench",
    "sim.flow.cli chip-bench": "test_commands.py::test_chip_bench",
    "sim.flow.cli conv-bench": "test_rtl_conv.py::test_conv_bench_command",
    "sim.cli": "test_rtl_board.py::test_cli_run_on_simulated_board",
}


def readme_commands(text):
    """The commands the README documents: ``make <target>`` in its code blocks and in
    the first column of its Commands table, and ``python -m <module> <sub>`` anywhere in
    backquotes or code blocks."""
    found = set()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    table = [line.split("|")[1] for line in text.splitlines()
             if line.startswith("| `") and line.count("|") >= 3]
    for chunk in blocks + table + re.findall(r"`([^`\n]+)`", text):
        for target in re.findall(r"(?:^|`)make ([a-z]+)(?![\w-])", chunk, re.M):
            found.add(f"make {target}")
        for mod, sub in re.findall(r"python -m ([\w.]+)(?: ([\w-]+))?", chunk):
            if mod == "pytest":
                found.add("pytest")
            elif mod == "sim.flow.cli":
                if sub:
                    found.add(f"sim.flow.cli {sub}")
            else:
                found.add(mod)
    return found


def test_every_readme_command_is_covered():
    found = readme_commands((ROOT / "README.md").read_text())
    assert {"make test", "make lint", "make verilog", "sim.flow.cli run"} <= found, found
    missing = sorted(found - set(COVERED))
    assert not missing, f"README commands with no test in tests/test_commands.py COVERED: {missing}"
    for cmd, where in COVERED.items():
        if "::" in where:
            module, name = where.split("::")
            src = (ROOT / "tests" / module).read_text()
            assert f"def {name}(" in src, f"{cmd!r} maps to missing test {where}"


def test_readme_commands_parser():
    """The extraction itself: a command in a code block, in the table and in backquotes
    is found; prose mentioning 'make' is not a command."""
    text = ("```sh\nmake foo   # x\napt-get install g++ make liblz4-dev\n```\n"
            "| `make bar [X=1]` | y |\n"
            "run `.venv/bin/python -m sim.flow.cli baz --x` or make sure\n")
    assert readme_commands(text) == {"make foo", "make bar", "sim.flow.cli baz"}


def _run(cmd, **kw):
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)
    assert res.returncode == 0, f"{' '.join(cmd)}:\n{res.stdout[-4000:]}{res.stderr[-4000:]}"
    return res.stdout


def test_cli_configs():
    """``python -m sim.flow.cli configs`` lists every named configuration."""
    from hdl.config import NAMED_CONFIGS
    out = _run([sys.executable, "-m", "sim.flow.cli", "configs"])
    for name in NAMED_CONFIGS:
        assert name in out


def test_make_sim_and_unit_select():
    """``make sim`` and ``make unit`` are pytest selections by mark: both collect tests,
    they do not overlap, and together they are ``make test`` (same expression the
    Makefile uses, read from it)."""
    mk = (ROOT / "Makefile").read_text()
    sel = {t: re.search(rf"^{t}:.*\n\t.*-m \"([^\"]+)\"", mk, re.M).group(1)
           for t in ("test", "sim", "unit")}
    assert sel == {"test": "not regress", "sim": "rtl and not regress",
                   "unit": "not rtl and not regress"}, sel
    counts = {}
    for t in ("sim", "unit"):
        out = _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                    "--collect-only", "-m", sel[t], "tests/test_lint.py",
                    "tests/test_config.py"])
        counts[t] = int(re.search(r"(\d+)(?:/\d+)? tests? (?:selected|collected)", out).group(1))
    assert counts["sim"] > 0 and counts["unit"] > 0, counts


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
def test_make_lint():
    """``make lint``: every top lint-clean on each configuration it covers, the smallest
    legal one (``min``: one partition, one PSUM bank, 2-entry queues) included."""
    out = _run(["make", "lint"])
    assert "lint FAIL" not in out
    assert out.count("lint ok") >= 5 * 20, out[-2000:]
    assert "min-int8" in out or "1x1-int8" in out


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("target", [None, "ecp5"])
def test_make_verilog(target):
    """``make verilog`` and ``make verilog TARGET=ecp5``: a Verilog file per top, each
    with its module, none with a zero-width or reversed range."""
    from sim.flow.rtl import LISTED_TOPS
    _run(["make", "verilog"] + ([f"TARGET={target}"] if target else []))
    out = ROOT / "build" / ("verilog-ecp5" if target else "verilog")
    for top in LISTED_TOPS:
        text = (out / f"{top}.v").read_text()
        assert re.search(rf"^module {top}\b", text, re.M), top
        assert not re.search(r"\[\s*-\d+\s*:", text), f"{top}: reversed range"


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
def test_make_bench():
    """``make bench``: every table printed and ``build/bench.json`` written."""
    out = _run(["make", "bench"])
    import json
    data = json.loads((ROOT / "build" / "bench.json").read_text())
    assert data, "empty bench.json"
    assert "cyc/s" in out


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
def test_synth_one_run():
    """``python -m sim.flow.cli synth --top T --config C`` (the README's one-run form of
    ``make synth``) on a small top: Yosys and nextpnr run and print the figures."""
    out = _run([sys.executable, "-m", "sim.flow.cli", "synth", "--top", "systolic_array",
                "--config", "1x1"])
    assert re.search(r"^systolic_array\s+1x1\S*\s+lfe5u-85f\s+\d+\s+\d+", out, re.M), out[-2000:]


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
def test_make_demo():
    """``make demo``: the digits MLP on the Verilator core, BF16 and INT8, checked by the
    demo itself against onnxruntime and the ISS (exit status 0)."""
    _run(["make", "demo"])


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
def test_make_demo_on_simulated_board():
    """``make demo BACKEND=board PORT=sim``: the demo through the simulated board's
    UART (the INT8 mode: the board's core is the default configuration), bit-exact
    against the ISS, with the board figures printed."""
    out = _run(["make", "demo", "BACKEND=board", "PORT=sim"])
    assert "inferences/s" in out and "bf16: not run" in out


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
def test_board_bench():
    """``python -m sim.flow.cli board-bench``: 64 KiB each way through the simulated
    board's UART, read back equal, the figures printed."""
    out = _run([sys.executable, "-m", "sim.flow.cli", "board-bench"])
    assert "DRAM writes" in out and "DRAM reads" in out


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
def test_chip_bench():
    """``python -m sim.flow.cli chip-bench`` on small chips (4x4 cores, 1 and 2 of them,
    a short batch): every run bit-exact with the golden chip model (the command fails
    otherwise), the table printed and the JSON written. ``make bench`` runs the full one."""
    import json
    out = _run([sys.executable, "-m", "sim.flow.cli", "chip-bench", "--config", "4x4",
                "--batch", "32", "--cores", "1", "--cores", "2"])
    assert "inf/kcyc" in out
    rows = json.loads((ROOT / "build" / "bench-chip.json").read_text())
    assert {r["cores"] for r in rows} == {1, 2}


@regress
@pytest.mark.rtl
@pytest.mark.timeout(5400)
def test_make_bitstream_min():
    """``make bitstream`` on the smallest configuration (the default core takes about two
    hours): Yosys, nextpnr and ecppack run and the report is written."""
    import json
    _run(["make", "bitstream", "CONFIG=min"])
    rep = json.loads((ROOT / "build" / "boards" / "ulx3s" / "ncore-report.json").read_text())
    from hdl.config import named_config
    assert rep["config"] == named_config("min").name and rep["bitstream_bytes"] > 0
    assert rep["resources"]["EHXPLLL"]["used"] == 1 and rep["clocks"]


@regress
@pytest.mark.timeout(3600)
def test_mutate_one():
    """``python -m sim.flow.cli mutate --only ID`` (``make mutate`` on one mutant): the
    tool scores a mutant the suite kills."""
    from sim.flow.mutants import MUTANTS
    first = MUTANTS[0]
    out = _run([sys.executable, "-m", "sim.flow.cli", "mutate", "--only", first.id])
    assert "killed" in out, out[-2000:]


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
def test_waves_and_seed_single_test(tmp_path):
    """The README's single-test forms: ``SEED=...`` and ``WAVES=1`` on one pytest node
    id; the FST and its GTKWave save file appear."""
    import os
    node = "tests/test_rtl_systolic.py::test_systolic[test_random_tiles-4x4]"
    env = dict(os.environ, SEED="1234", WAVES="1")
    _run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", node], env=env)
    waves = ROOT / "build" / "waves" / "systolic_array-4x4-int8"
    assert (waves / "test_random_tiles.fst").exists()
    assert (waves / "test_random_tiles.gtkw").exists()
