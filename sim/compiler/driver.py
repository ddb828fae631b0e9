"""The host's register sequence for one program run, in one place (``docs/host.md``).

Every way of driving a core uses these lists: the cocotb testbench
(:class:`tb.core.tb.CoreTB`, over the AXI4-Lite port), and the runtime's ``board``
backend (:mod:`sim.compiler.board`, over the UART bridge). Each transport only
supplies "write register", "read register" and a way to wait.

* :func:`start_writes`: PROG_ADDR, the DMA window, WATCHDOG, acknowledge the last
  run's interrupt causes, enable both, START.
* then wait until STATUS.BUSY clears (or the interrupt rises);
* :func:`result_reads` / :func:`decode_result`: STATUS, ERROR, FAULT_ADDR and every
  counter, turned into the dict the runtime makes a ``RunResult`` from.
"""

from hdl.isa import CoreError
from hdl.regmap import COUNTERS, RegisterMap

__all__ = ["start_writes", "chip_start_write", "result_reads", "decode_result", "busy"]


def _wide(name, value):
    return [(f"{name}_LO", value & 0xFFFF_FFFF), (f"{name}_HI", value >> 32)]


def start_writes(regs: RegisterMap, prog_addr, win, watchdog, *, start=True):
    """``[(register name, value), ...]`` that start the program at ``prog_addr`` with
    the DMA window ``win = (base, limit)`` and the no-progress ``watchdog`` (cycles,
    0: off), in order. ``start=False`` leaves out the START: the cores of a chip are
    then started together (:func:`chip_start_write`)."""
    return [*_wide("PROG_ADDR", prog_addr), *_wide("WIN_BASE", win[0]),
            *_wide("WIN_LIMIT", win[1]), ("WATCHDOG", watchdog),
            ("IRQ_STATUS", 0b11),              # W1C: forget the last run
            ("IRQ_ENABLE", 0b11),
            *([("CTRL", regs["CTRL"].encode(START=1))] if start else [])]


def chip_start_write(chip_regs, cores):
    """``(chip register name, value)`` that starts the cores in ``cores`` (indices) in
    the same cycle (:mod:`hdl.chipmap` START)."""
    return ("START", chip_regs["START"].encode(CORES=sum(1 << k for k in set(cores))))


def busy(regs: RegisterMap, status_word):
    """STATUS.BUSY of a STATUS value."""
    return bool(regs["STATUS"].decode(status_word)["BUSY"])


def result_reads(regs: RegisterMap):
    """The registers to read after a run, in order."""
    names = ["STATUS", "ERROR", "FAULT_ADDR_LO", "FAULT_ADDR_HI"]
    for name, _ in COUNTERS:
        names += [f"{name}_LO", f"{name}_HI"]
    return names


def decode_result(regs: RegisterMap, values):
    """The STATUS fields, ``error`` (a :class:`hdl.isa.CoreError` name), ``detail``,
    ``fault_addr`` and every counter (lower-case names) from ``{register: value}``
    of :func:`result_reads`."""
    out = dict(regs["STATUS"].decode(values["STATUS"]))
    err = regs["ERROR"].decode(values["ERROR"])
    out["error"] = CoreError(err["CODE"]).name
    out["detail"] = err["DETAIL"]
    out["fault_addr"] = values["FAULT_ADDR_LO"] | (values["FAULT_ADDR_HI"] << 32)
    for name, _ in COUNTERS:
        out[name.lower()] = values[f"{name}_LO"] | (values[f"{name}_HI"] << 32)
    return out
