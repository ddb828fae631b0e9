"""Open GTKWave save files headless (Xvfb): check that every trace resolves, and take
screenshots to look at.

Not part of the test suite's fast tier (it needs Debian's ``gtkwave``, ``xvfb`` and
``imagemagick``); ``make regress`` runs :func:`check` on the waves of real runs
(``tests/test_waves.py``), and the README's screenshot is made with::

    python -m sim.flow.waveshot build/waves/neuron_core-8x8-int8/test_smoke.gtkw \\
        --png docs/img/waves-core.png

``check`` asks GTKWave itself (its Tcl interface, ``gtkwave -S``) how many traces it
loaded: a name the dump does not have is dropped silently when GTKWave reads a save
file, so a save file whose names drifted from the design would open with rows
missing and nobody would notice.
"""

import argparse
import contextlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

__all__ = ["check", "screenshot", "expected_traces", "xvfb"]

_TCL = """\
set n [gtkwave::getTotalNumTraces]
puts "NCORE_TRACES $n"
for {set i 0} {$i < $n} {incr i} {
    puts "NCORE_TRACE [gtkwave::getTraceNameFromIndex $i]"
}
puts "NCORE_WINDOW [gtkwave::getWindowStartTime] [gtkwave::getWindowEndTime]"
gtkwave::/File/Quit
"""


def _need(tool, package):
    if shutil.which(tool) is None:
        raise RuntimeError(f"{tool} not found: install Debian's {package} "
                           f"(apt-get install gtkwave xvfb imagemagick)")


@contextlib.contextmanager
def xvfb(size=(1800, 1000)):
    """A private X server for the duration: yields its DISPLAY value."""
    _need("Xvfb", "xvfb")
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0",
                             f"{size[0]}x{size[1]}x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(w)
    try:
        with os.fdopen(r) as f:
            display = f.readline().strip()
        if not display:
            raise RuntimeError("Xvfb did not start")
        yield f":{display}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def expected_traces(gtkw):
    """Rows the save file asks for: traces, bundles and group title rows."""
    n = 0
    for line in pathlib.Path(gtkw).read_text().splitlines():
        if line.startswith(("+{", "#{", "-")):
            n += 1
    return n


def check(gtkw, timeout=120):
    """Load ``gtkw`` in GTKWave under Xvfb; return ``(expected, loaded, window)``:
    the rows the file asks for, the rows GTKWave shows, and the visible time range."""
    _need("gtkwave", "gtkwave")
    gtkw = pathlib.Path(gtkw).resolve()
    with tempfile.TemporaryDirectory() as tmp, xvfb() as display:
        tcl = pathlib.Path(tmp) / "check.tcl"
        tcl.write_text(_TCL)
        out = subprocess.run(["gtkwave", "-S", str(tcl), str(gtkw)], cwd=tmp,
                             env=dict(os.environ, DISPLAY=display), capture_output=True,
                             text=True, timeout=timeout).stdout
    m = re.search(r"NCORE_TRACES (\d+)", out)
    if not m:
        raise RuntimeError(f"GTKWave did not load {gtkw}:\n{out[-2000:]}")
    w = re.search(r"NCORE_WINDOW (\d+) (\d+)", out)
    window = (int(w.group(1)), int(w.group(2))) if w else None
    return expected_traces(gtkw), int(m.group(1)), window


def screenshot(gtkw, png, settle=6.0, size=(1800, 1000)):
    """A PNG of GTKWave showing ``gtkw`` (the whole X screen), after ``settle`` seconds
    for the filter processes to start and the window to draw."""
    _need("gtkwave", "gtkwave")
    _need("import", "imagemagick")
    png = pathlib.Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with xvfb(size) as display:
        env = dict(os.environ, DISPLAY=display)
        gw = subprocess.Popen(["gtkwave", str(pathlib.Path(gtkw).resolve())], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(settle)
            subprocess.run(["import", "-window", "root", str(png)], env=env, check=True)
        finally:
            gw.terminate()
            gw.wait(timeout=10)
    return png


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m sim.flow.waveshot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("gtkw", nargs="+", help="save files (sim/flow/waves.py writes them)")
    p.add_argument("--png", help="screenshot file (one save file only)")
    p.add_argument("--settle", type=float, default=6.0)
    args = p.parse_args(argv)
    bad = 0
    for gtkw in args.gtkw:
        expected, loaded, window = check(gtkw)
        ok = expected == loaded
        bad += not ok
        print(f"{'ok  ' if ok else 'BAD '} {gtkw}: {loaded}/{expected} rows, "
              f"window {window}")
    if args.png:
        print(f"wrote {screenshot(args.gtkw[0], args.png, args.settle)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
