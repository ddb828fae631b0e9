# amaranth: UnusedElaboratable=no
"""The waveform views (sim/flow/waves.py): every save file's traces exist in the design,
payloads are split and decoded as documented, the window opens on the test.

The fast tests elaborate each top for its names (no Verilator). ``make regress`` reruns
real tests with waves (``make waves``) and asks GTKWave itself, under Xvfb, whether it
loaded every row of the save file (``sim/flow/waveshot.py``: GTKWave drops a name the
dump does not have without a word)."""

import math
import os
import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from sim.flow import waves
from sim.flow.wavefilter import make_translator
from tiers import regress

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: (top, configuration) pairs whose views the fast tier elaborates: every simulation
#: top, integer and float. (neuron_core_sim, the core with its simulated DRAM, takes
#: half a minute to elaborate: make regress opens its waves in GTKWave instead.)
CASES = [("systolic_array", "default"), ("systolic_array", "4x4-fp"),
         ("tensor_subsystem", "4x4"), ("dma_subsystem", "4x4"),
         ("vector_subsystem", "4x4-fp"), ("host_interface", "default"),
         ("fp32_adder", "default"), ("fp_mul16", "default"), ("neuron_core", "default")]


def _traces(groups):
    return [t for g in groups for t in g.traces()]


@pytest.mark.parametrize("top,config", CASES, ids=[f"{t}-{c}" for t, c in CASES])
def test_views_resolve(top, config):
    """Every entry of the view names a signal the design has, and every filter kind
    is one the filter accepts."""
    groups, missing = waves.views(top, config)
    assert missing == [], f"{top}: the design has no signal for {missing}"
    traces = _traces(groups)
    assert len(traces) >= 6
    for t in traces:
        for name in t.names():
            assert name.startswith(f"{top}."), name
        if t.kind:
            make_translator(t.kind)     # ValueError for a kind the filter lacks
    labels = [(g.title, t.label) for g in groups for t in g.traces()]
    assert len(labels) == len(set(labels)), "a label twice in one group"


def _group(groups, title):
    found = [g for g in groups if g.title == title]
    assert found, f"no group {title!r} in {[g.title for g in groups]}"
    return found[0]


def test_core_view():
    """The whole core: fetch and decode show instructions, each queue its level,
    semaphore wait and decoded command, each engine its command and named state, every
    semaphore's value, and the DRAM bus one group per AXI channel."""
    from hdl.config import named_config
    cfg = named_config("default")
    groups, _ = waves.views("neuron_core", cfg)
    titles = [g.title for g in groups]
    kinds = {g.title: {t.label: t.kind for t in g.traces()} for g in groups}
    assert kinds["controller: fetch"]["fetch.o.instr"].startswith("insn:")
    assert kinds["controller: decode"]["decode.i.instr"].startswith("insn:")
    assert kinds["controller: decode"]["decode.fault.code"] == "enum:hdl.isa.CoreError"
    for q, cmd in (("dma_in", "dma"), ("dma_out", "dma"), ("tensor", "matmul"),
                   ("vector", "act")):
        labels = kinds[f"queue: {q}"]
        assert {f"{q}.level", f"{q}.wait.sem", f"{q}.wait.val", f"{q}.blocked"} <= set(labels)
        assert labels[f"{q}.issue"] == cmd
    assert kinds["engine: dma_in"]["state"] == "enum:hdl.dma.DmaState"
    assert kinds["engine: vector"]["state"] == "enum:hdl.vector.ActState"
    assert kinds["engine: tensor"]["status.error_code"] == "enum:hdl.formats.TensorError"
    assert kinds["engine: dma_out"]["done.error"] == "enum:hdl.formats.DmaError"
    assert len(kinds["semaphores"]) == cfg.n_sems
    for ch in ("AW", "W", "B", "AR", "R"):
        assert f"DRAM m_axi {ch}" in titles
        assert f"host s_axil {ch}" in titles
    ar = _group(groups, "DRAM m_axi AR")
    assert {t.label for t in ar.traces()} >= {"m_axi.araddr", "m_axi.arvalid", "m_axi.arready"}


def test_int8_lanes_signed_decimal():
    """INT8 operand lanes and INT32 results are split per lane, in signed decimal."""
    groups, _ = waves.views("systolic_array", "default")
    lanes = [t for t in _group(groups, "i_x (INT8 lanes)").traces() if "data" in t.label]
    assert len(lanes) == 8
    for t in lanes + [t for t in _group(groups, "o_y (INT32 lanes)").traces()
                      if "data" in t.label]:
        assert t.flags & waves.SIGNED and t.flags & waves.DEC and not t.kind, t.label
    assert lanes[3].name == "systolic_array.i_x__payload.data[3][7:0]"


def test_float_lanes():
    """A float array's operand lanes are bundles of the column's dtype above the 16
    bits (the ``op16`` filter), its results FP32 numbers (and INT32, folded)."""
    groups, _ = waves.views("systolic_array", "4x4-fp")
    lanes = [t for t in _group(groups, "i_w (dtype + 16-bit lanes)").traces() if t.bits]
    assert len(lanes) == 4 and all(t.kind == "op16" for t in lanes)
    bits = lanes[2].bits
    assert bits[:2] == [(0, "systolic_array.i_w__payload.dtype[1:0]"),
                        (1, "systolic_array.i_w__payload.dtype[1:0]")]
    assert bits[2:] == [(k, "systolic_array.i_w__payload.data[2][15:0]") for k in range(16)]
    y = [t for t in _group(groups, "o_y (FP32 lanes)").traces() if "data" in t.label]
    assert [t.kind for t in y] == ["fp32"] * 4
    assert _group(groups, "o_y as INT32 (INT8 matmuls)").closed


def test_zoom_for():
    """GTKWave draws 2**-zoom/200 time units per pixel: the zoom shows the span in the
    wave area, with the margin."""
    for span in (1000, 4_570_000, 10**10):
        z = waves.zoom_for(span)
        shown = 2 ** -z / 200 * waves.WAVE_WIDTH
        assert span < shown <= span / 0.95
    assert waves.zoom_for(1) == 0.0            # never zoomed in past GTKWave's limit


def test_save_file(tmp_path):
    """Header, markers and zoom from the run, absolute paths, config for the filter,
    and every filter line runs the installed filter with a kind it accepts."""
    fst = tmp_path / "t.fst"
    path = waves.write_gtkw("host_interface", "default", fst, end_ps=2_000_000,
                            marks={"A": ("reset_released", 40_000),
                                   "B": ("test_end", 2_000_000)})
    lines = path.read_text().splitlines()
    assert f'[dumpfile] "{fst.resolve()}"' in lines
    star = [line for line in lines if line.startswith("*")]
    assert len(star) == 1
    fields = star[0][1:].split()
    assert math.isclose(float(fields[0]), waves.zoom_for(2_000_000), abs_tol=1e-6)
    assert fields[1:4] == ["-1", "40000", "2000000"]
    assert "[markername] Areset_released" in lines and "[markername] Btest_end" in lines
    assert (tmp_path / "config.json").exists()
    filters = [line for line in lines if line.startswith("^>1 ")]
    assert filters
    for line in filters:
        cmd, kind = line[4:].split(" ")
        assert cmd == waves.FILTER_CMD and os.access(cmd, os.X_OK), cmd
        make_translator(kind)
    # a trace with a filter has the PTRANSLATED flag in the @ line just before
    for i, line in enumerate(lines):
        if line.startswith("^>1 "):
            assert int(lines[i - 1][1:], 16) & waves.PTRANSLATED


def test_runner_writes_save_file_after_the_run(tmp_path, monkeypatch):
    """The runner's hook: end time from cocotb's results file, marker A from the
    testbench's marks, the path appended to NCORE_WAVES_INDEX."""
    from sim.flow.runner import _write_save_file
    results = tmp_path / "results.xml"
    suite = ET.Element("testsuites")
    case = ET.SubElement(ET.SubElement(suite, "testsuite"), "testcase", name="t")
    props = ET.SubElement(case, "properties")
    # the stop time before its unit: read as a pair, whatever their order
    for name, value in (("sim_time_stop", "1.234"), ("sim_time_unit", "us")):
        ET.SubElement(props, "property", name=name, value=value)
    ET.ElementTree(suite).write(results)
    marks = tmp_path / "marks.txt"
    marks.write_text("60000 reset released\n")
    index = tmp_path / "index.txt"
    monkeypatch.setenv("NCORE_WAVES_INDEX", str(index))
    gtkw = _write_save_file("fp32_adder", "default", tmp_path / "t.fst", results, marks)
    text = gtkw.read_text()
    assert "[markername] Areset_released" in text and "[markername] Btest_end" in text
    star = next(line for line in text.splitlines() if line.startswith("*"))
    assert star.split()[1:4] == ["-1", "60000", "1234000"]
    assert index.read_text() == f"{gtkw}\t{tmp_path / 't.fst'}\n"


#: make regress: one short test per simulation top, rerun with waves and opened in
#: GTKWave (every row must load; the window must show the whole test)
WAVE_TESTS = [
    "tests/test_rtl_systolic.py::test_systolic[test_dtype_switching-4x4-fp]",
    "tests/test_rtl_core.py::test_core[test_smoke-default]",
    "tests/test_rtl_tensor.py::test_tensor[test_large_k-4x4]",
    "tests/test_rtl_dma.py::test_dma[test_load_sweep-4x4]",
    "tests/test_rtl_vector.py::test_vector[test_casts_and_relu-4x4-fp]",
    "tests/test_rtl_host.py::test_host[test_reset_values-8x8]",
    "tests/test_rtl_fp.py::test_fp_unit[fp_mul16]",
]


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("node", WAVE_TESTS)
def test_waves_open_in_gtkwave(node, tmp_path):
    """``python -m sim.flow.cli waves <node>`` (what ``make waves TEST=`` runs) writes
    an FST and a save file that GTKWave loads whole, zoomed to the test."""
    from sim.flow.waveshot import check
    out = subprocess.run([sys.executable, "-m", "sim.flow.cli", "waves", node], cwd=ROOT,
                         capture_output=True, text=True, timeout=3000)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    opened = [line.split()[1] for line in out.stdout.splitlines()
              if line.strip().startswith("gtkwave ")]
    assert opened, out.stdout[-2000:]
    for gtkw in opened:
        expected, loaded, window = check(ROOT / gtkw)
        assert loaded == expected, f"{gtkw}: GTKWave loaded {loaded} of {expected} rows"
        end = next(int(line.split()[3]) for line in (ROOT / gtkw).read_text().splitlines()
                   if line.startswith("*"))
        assert window[0] == 0 and end <= window[1] <= end / 0.9, (window, end)


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
def test_make_waves():
    """The README's form, literally: ``make waves TEST=<id>`` prints the commands."""
    node = "tests/test_rtl_fp.py::test_fp_unit[fp32_adder]"
    out = subprocess.run(["make", "waves", f"TEST={node}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=3000)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "gtkwave build/waves/" in out.stdout and "surfer build/waves/" in out.stdout
