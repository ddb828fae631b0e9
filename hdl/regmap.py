"""The control and status registers (CSRs) of ncore's host interface, described once.

This module is the single description of the register map. :class:`hdl.host.HostInterface`
builds its address decoder, its reset values and its storage by looping over
:func:`registers`; ``docs/registers.md`` is generated from it (:func:`markdown`,
``python -m hdl.regmap > docs/registers.md``); testbenches take offsets, masks and reset
values from it (:class:`RegisterMap`). Nobody writes an offset or a bit position twice.

All registers are 32 bits wide at 32-bit aligned byte offsets in a 12-bit (4 KiB)
AXI4-Lite address space. Access types:

``RO``
    Read-only. A write to a register whose access is ``RO`` is answered with SLVERR
    and changes nothing. A field marked ``const`` is a constant (its ``reset`` value);
    the others show hardware state, which is ``reset`` after reset.
``RW``
    Read-write, with byte strobes: a write changes only the bytes whose ``WSTRB`` bit
    is set.
``W1C``
    Write one to clear (strobed bytes only); hardware sets the bits.
``WO``
    Write-only pulse: writing a one (in a strobed byte) triggers the action for one
    cycle; reads return zero.

Bits not covered by a field read zero and ignore writes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .config import DTYPES, CoreConfig
from .interfaces import (COUNTER_WIDTH, ERROR_DETAIL_WIDTH, FAULT_ADDR_BITS, PROG_ADDR_BITS,
                         PROG_ALIGN_BITS, WATCHDOG_WIDTH, WINDOW_BITS)
from .isa import CoreError

__all__ = [
    "Field", "Register", "RegisterMap", "registers", "markdown", "ACCESS",
    "ADDR_WIDTH", "DATA_BYTES", "ID_VALUE", "VERSION", "COUNTERS", "RESTART_ON_ACTIVE", "COUNTER_BITS",
    "COUNTER_BASE", "PROG_ALIGN_BITS", "WINDOW_BITS", "PROG_ADDR_BITS",
    "FAULT_ADDR_BITS",
]

#: Access types, in the order the documentation lists them.
ACCESS = ("RO", "RW", "W1C", "WO")

#: Address bits of the AXI4-Lite port (a 4 KiB register file).
ADDR_WIDTH = 12
#: Data bytes of the AXI4-Lite port (32-bit registers).
DATA_BYTES = 4
REG_BITS = 8 * DATA_BYTES

#: Contents of the ID register: ASCII "NCOR".
ID_VALUE = 0x4E434F52
#: Contents of the VERSION register: the revision of this register map.
VERSION = 2

#: Width of every performance counter (they are read as LO/HI register pairs).
COUNTER_BITS = COUNTER_WIDTH
#: Byte offset of the first counter; counter ``i`` is at ``COUNTER_BASE + 8*i`` (LO)
#: and ``+ 4`` (HI).
COUNTER_BASE = 0x100

#: Performance counters: (name, what is counted). All count only while the core runs
#: (from an accepted START until its done or fault pulse) and are cleared by an accepted
#: START and by SOFT_RESET.
COUNTERS = (
    ("CYCLES", "cycles while the core runs"),
    ("BUSY_DMA_IN", "cycles the DMA-in engine is busy"),
    ("BUSY_DMA_OUT", "cycles the DMA-out engine is busy"),
    ("BUSY_TENSOR", "cycles the tensor engine is busy"),
    ("BUSY_VECTOR", "cycles the vector engine is busy"),
    ("TENSOR_ACTIVE", "cycles the systolic array accepts a moving column"),
    ("TENSOR_MACS", "multiply-accumulates done by the systolic array"),
    ("INSTRUCTIONS", "instructions retired"),
    ("ARRAY_LEAD", "cycles before the systolic array's first moving column of the run "
                   "(the first matmul's wait for its operands)"),
    ("ARRAY_TAIL", "cycles since the systolic array's last moving column (at the end of "
                   "a run: the drain after the last matmul)"),
)
#: Counters that restart from 0 in a cycle the systolic array accepts a moving column
#: (every other counter only adds its increment).
RESTART_ON_ACTIVE = ("ARRAY_TAIL",)


@dataclass(frozen=True)
class Field:
    """Bits ``[lsb + width - 1 : lsb]`` of a register.

    Parameters
    ----------
    name : str
        Upper-case identifier, unique within its register.
    lsb, width : int
    access : str
        One of :data:`ACCESS`.
    reset : int
        Value after reset (for a ``const`` field: its value, always).
    doc : str
        One sentence or a few, for the documentation.
    const : bool
        A read-only constant (only with ``access="RO"``).
    """

    name: str
    lsb: int
    width: int
    access: str
    reset: int = 0
    doc: str = ""
    const: bool = False

    def __post_init__(self):
        if not self.name.isidentifier() or self.name != self.name.upper():
            raise ValueError(f"field name must be an upper-case identifier, not {self.name!r}")
        if self.access not in ACCESS:
            raise ValueError(f"field {self.name}: access must be one of {ACCESS}, "
                             f"not {self.access!r}")
        for what, value, lo in (("lsb", self.lsb, 0), ("width", self.width, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"field {self.name}: {what} must be an integer of at "
                                 f"least {lo}, not {value!r}")
        if self.lsb + self.width > REG_BITS:
            raise ValueError(f"field {self.name}: bits [{self.msb}:{self.lsb}] do not fit "
                             f"in a {REG_BITS}-bit register")
        if not 0 <= self.reset < 1 << self.width:
            raise ValueError(f"field {self.name}: reset {self.reset:#x} does not fit in "
                             f"{self.width} bits")
        if self.const and self.access != "RO":
            raise ValueError(f"field {self.name}: only an RO field can be const, "
                             f"not a {self.access} one")
        if self.access == "WO" and self.reset:
            raise ValueError(f"field {self.name}: a WO field reads zero, so its reset "
                             f"must be 0, not {self.reset:#x}")

    @property
    def msb(self):
        return self.lsb + self.width - 1

    @property
    def mask(self):
        """The field's bits within the register."""
        return ((1 << self.width) - 1) << self.lsb

    @property
    def bits(self):
        """``"[msb:lsb]"``, or ``"[lsb]"`` for one bit."""
        return f"[{self.lsb}]" if self.width == 1 else f"[{self.msb}:{self.lsb}]"

    def get(self, word):
        """The field's value in a register value."""
        return (word & self.mask) >> self.lsb

    def put(self, value):
        """``value`` placed at the field's bits (checked to fit)."""
        if not 0 <= value < 1 << self.width:
            raise ValueError(f"field {self.name}: {value:#x} does not fit in {self.width} bits")
        return value << self.lsb


_FIELD_ACCESS = {"RO": ("RO",), "RW": ("RW", "RO"), "W1C": ("W1C", "RO"), "WO": ("WO",)}


@dataclass(frozen=True)
class Register:
    """One 32-bit register.

    Parameters
    ----------
    name : str
        Upper-case identifier, unique in the map.
    offset : int
        Byte offset, a multiple of 4 below 4096.
    access : str
        One of :data:`ACCESS`. Only a register whose access is ``RO`` refuses writes
        (SLVERR). An RW or W1C register may also hold RO fields; a WO register holds
        only WO fields.
    fields : tuple of Field
    doc : str
    """

    name: str
    offset: int
    access: str
    fields: tuple
    doc: str = ""

    def __post_init__(self):
        if not self.name.isidentifier() or self.name != self.name.upper():
            raise ValueError(f"register name must be an upper-case identifier, not {self.name!r}")
        if self.access not in ACCESS:
            raise ValueError(f"register {self.name}: access must be one of {ACCESS}, "
                             f"not {self.access!r}")
        if (isinstance(self.offset, bool) or not isinstance(self.offset, int)
                or self.offset % DATA_BYTES or not 0 <= self.offset < 1 << ADDR_WIDTH):
            raise ValueError(f"register {self.name}: offset must be a multiple of "
                             f"{DATA_BYTES} below {1 << ADDR_WIDTH:#x}, not {self.offset!r}")
        object.__setattr__(self, "fields", tuple(self.fields))
        if not self.fields:
            raise ValueError(f"register {self.name} has no fields")
        used = 0
        names = set()
        for f in self.fields:
            if not isinstance(f, Field):
                raise TypeError(f"register {self.name}: fields must be Field objects, not {f!r}")
            if f.name in names:
                raise ValueError(f"register {self.name}: field {f.name} appears twice")
            names.add(f.name)
            if used & f.mask:
                raise ValueError(f"register {self.name}: field {f.name} {f.bits} overlaps "
                                 f"another field")
            used |= f.mask
            if f.access not in _FIELD_ACCESS[self.access]:
                raise ValueError(f"register {self.name} ({self.access}) cannot hold the "
                                 f"{f.access} field {f.name}")

    @property
    def writable(self):
        """Whether a write is accepted (answered OKAY)."""
        return self.access != "RO"

    @property
    def reset(self):
        """The register's value after reset."""
        return sum(f.put(f.reset) for f in self.fields if f.access != "WO")

    @property
    def mask(self):
        """Bits covered by a field."""
        return sum(f.mask for f in self.fields)

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}; it has "
                       f"{', '.join(f.name for f in self.fields)}")

    def encode(self, **values):
        """A register value from field values, e.g. ``CTRL.encode(START=1)``."""
        return sum(self.field(name).put(value) for name, value in values.items())

    def decode(self, word):
        """``{field name: value}`` of a register value."""
        return {f.name: f.get(word) for f in self.fields}


def _wide(name, offset, access, bits, doc, *, lo_lsb=0, reset=0, field="ADDR",
          field_doc=""):
    """A value of ``bits`` bits as a LO/HI register pair (LO holds bits
    ``[31:lo_lsb]``, whose lower bits read zero; HI holds the rest)."""
    hi_bits = bits - REG_BITS
    assert 0 < hi_bits <= REG_BITS and reset % (1 << lo_lsb) == 0
    lo = Register(f"{name}_LO", offset, access, (
        Field(field, lo_lsb, REG_BITS - lo_lsb, access, (reset % (1 << REG_BITS)) >> lo_lsb,
              f"Bits [31:{lo_lsb}] of the value. {field_doc}".strip()),
    ), f"{doc} Bits [31:0].")
    hi = Register(f"{name}_HI", offset + 4, access, (
        Field(field, 0, hi_bits, access, reset >> REG_BITS,
              f"Bits [{bits - 1}:32] of the value. {field_doc}".strip()),
    ), f"{doc} Bits [{bits - 1}:32].")
    return [lo, hi]


def _config_fields(config):
    dtype_bits = sum(1 << i for i, d in enumerate(DTYPES) if d in config.dtypes)
    return (
        Field("ROWS", 0, 9, "RO", config.rows, "Systolic array rows (`rows`).", const=True),
        Field("COLS", 9, 9, "RO", config.cols, "Systolic array columns (`cols`).", const=True),
        Field("DTYPES", 18, len(DTYPES), "RO", dtype_bits,
              "Operand types elaborated, one bit each: "
              + ", ".join(f"bit {18 + i} {d}" for i, d in enumerate(DTYPES)) + ".",
              const=True),
        Field("N_SEMS", 18 + len(DTYPES), 6, "RO", config.n_sems,
              "Semaphores of the controller (`n_sems`).", const=True),
        Field("FTZ", 24 + len(DTYPES), 1, "RO", int(not config.subnormals),
              "1: the floating-point units flush subnormals to zero "
              "(`subnormals=False`); 0: IEEE subnormals, or no float type.", const=True),
    )


def registers(config: CoreConfig | None = None):
    """Every register of ``config`` (default: ``CoreConfig()``), by increasing offset.

    Only CONFIG and the reset value of WIN_LIMIT depend on the configuration.
    """
    if config is None:
        config = CoreConfig()
    if not isinstance(config, CoreConfig):
        raise TypeError(f"config must be a CoreConfig, not {config!r}")
    return _registers(config)


@functools.lru_cache(maxsize=None)
def _registers(config):
    code_width = CoreError.as_shape().width
    regs = [
        Register("ID", 0x000, "RO", (
            Field("ID", 0, 32, "RO", ID_VALUE, 'ASCII "NCOR".', const=True),
        ), "Identifies an ncore."),
        Register("VERSION", 0x004, "RO", (
            Field("VERSION", 0, 32, "RO", VERSION, "Revision of this register map.",
                  const=True),
        ), "Register map revision."),
        Register("CONFIG", 0x008, "RO", _config_fields(config),
                 "The configuration this core was elaborated with (`hdl.config.CoreConfig`); "
                 "reset values shown are those of the configuration documented."),
        Register("CTRL", 0x010, "WO", (
            Field("START", 0, 1, "WO", 0,
                  "Start the program at PROG_ADDR. Accepted only while STATUS.BUSY and "
                  "STATUS.ERROR are clear; an accepted START clears STATUS.DONE, "
                  "STATUS.START_REJECTED and the counters. Otherwise it is ignored and "
                  "sets STATUS.START_REJECTED."),
            Field("SOFT_RESET", 1, 1, "WO", 0,
                  "Reset the core (not the host interface's RW registers nor IRQ_STATUS): "
                  "clears STATUS.DONE, STATUS.ERROR, STATUS.START_REJECTED, ERROR, "
                  "FAULT_ADDR and the counters. The core first starts no new AXI burst "
                  "and lets those in flight complete (STATUS.BUSY is set meanwhile), then "
                  "resets: two cycles after the write on an idle bus. A START written "
                  "together with it is ignored."),
        ), "Commands (one-cycle pulses); reads return 0."),
        Register("STATUS", 0x014, "RO", (
            Field("BUSY", 0, 1, "RO", 0,
                  "The core is running: from an accepted START until its done or fault "
                  "pulse, or while the core reports busy, or while a SOFT_RESET waits "
                  "for the AXI bursts in flight."),
            Field("DONE", 1, 1, "RO", 0,
                  "Sticky: the program finished (END). Cleared by an accepted START or "
                  "SOFT_RESET."),
            Field("ERROR", 2, 1, "RO", 0,
                  "Sticky: the core stopped with an error (see ERROR, FAULT_ADDR). Cleared "
                  "only by SOFT_RESET; START is refused while it is set."),
            Field("START_REJECTED", 3, 1, "RO", 0,
                  "Sticky: a START was written while BUSY or ERROR was set and ignored. "
                  "Cleared by an accepted START or SOFT_RESET."),
        ), "Core state."),
        Register("ERROR", 0x018, "RO", (
            Field("CODE", 0, code_width, "RO", 0,
                  "Why the core stopped (`hdl.isa.CoreError`: "
                  + ", ".join(f"{e.value} {e.name}" for e in CoreError) + ")."),
            Field("DETAIL", 8, ERROR_DETAIL_WIDTH, "RO", 0,
                  "The refusing engine's own code for DMA (`DmaError`), TENSOR "
                  "(`TensorError`) and VECTOR (`ActError`); 0 otherwise."),
        ), "Captured with the first fault after a SOFT_RESET (later faults do not "
           "overwrite it); cleared by SOFT_RESET."),
        *_wide("FAULT_ADDR", 0x01C, "RO", FAULT_ADDR_BITS,
               "Address of the instruction that faulted, captured with ERROR."),
        Register("IRQ_ENABLE", 0x024, "RW", (
            Field("DONE", 0, 1, "RW", 0, "Raise `o_irq` while IRQ_STATUS.DONE is set."),
            Field("ERROR", 1, 1, "RW", 0, "Raise `o_irq` while IRQ_STATUS.ERROR is set."),
        ), "Interrupt enables: `o_irq = |(IRQ_STATUS & IRQ_ENABLE)`."),
        Register("IRQ_STATUS", 0x028, "W1C", (
            Field("DONE", 0, 1, "W1C", 0, "Set by the core's done pulse."),
            Field("ERROR", 1, 1, "W1C", 0, "Set by the core's fault pulse."),
        ), "Interrupt causes, set by hardware whether enabled or not; write 1 to clear. "
           "A hardware set in the cycle a write of 1 takes effect wins (the new event is "
           "not lost). SOFT_RESET leaves them alone (clear them by writing 1)."),
        *_wide("PROG_ADDR", 0x030, "RW", PROG_ADDR_BITS,
               "DRAM byte address of the program's first instruction.",
               lo_lsb=PROG_ALIGN_BITS,
               field_doc="Programs are 32-byte aligned: bits [4:0] read 0."),
        *_wide("WIN_BASE", 0x038, "RW", WINDOW_BITS,
               "Lowest DRAM byte address the DMA engines may touch."),
        *_wide("WIN_LIMIT", 0x040, "RW", WINDOW_BITS,
               "DMA window limit: the engines may touch [WIN_BASE, WIN_LIMIT). Resets to "
               "`2**axi_addr_width` (the whole address space).",
               reset=1 << config.axi_addr_width),
        Register("WATCHDOG", 0x048, "RW", (
            Field("CYCLES", 0, WATCHDOG_WIDTH, "RW", 0,
                  "Cycles without progress after which the core stops with error "
                  "WATCHDOG; 0 turns the watchdog off."),
        ), "Watchdog limit."),
    ]
    for i, (name, what) in enumerate(COUNTERS):
        base = COUNTER_BASE + 8 * i
        regs.append(Register(f"{name}_LO", base, "RO", (
            Field("COUNT", 0, REG_BITS, "RO", 0,
                  f"Bits [31:0]; reading them copies bits [{COUNTER_BITS - 1}:32] to "
                  f"{name}_HI."),
        ), f"Counter: {what}. Low half."))
        regs.append(Register(f"{name}_HI", base + 4, "RO", (
            Field("COUNT", 0, COUNTER_BITS - REG_BITS, "RO", 0,
                  f"Bits [{COUNTER_BITS - 1}:32] as of the last read of {name}_LO."),
        ), f"Counter: {what}. High half (snapshot)."))
    offsets = [r.offset for r in regs]
    names = [r.name for r in regs]
    assert len(set(offsets)) == len(offsets) and len(set(names)) == len(names)
    return tuple(sorted(regs, key=lambda r: r.offset))


class RegisterMap:
    """The registers of one configuration, looked up by name or offset.

    ``RegisterMap(cfg)["STATUS"].field("DONE").mask`` and friends are what testbenches
    and drivers use instead of numbers.
    """

    def __init__(self, config: CoreConfig | None = None):
        self._regs = registers(config)
        self._by_name = {r.name: r for r in self._regs}
        self._by_offset = {r.offset: r for r in self._regs}

    def __iter__(self):
        return iter(self._regs)

    def __len__(self):
        return len(self._regs)

    def __getitem__(self, name) -> Register:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no register named {name!r}") from None

    def __contains__(self, name):
        return name in self._by_name

    def at(self, offset):
        """The register at byte ``offset``, or None if the offset is unmapped."""
        return self._by_offset.get(offset)

    def field(self, key) -> Field:
        """The field ``"REGISTER.FIELD"``."""
        reg, _, field = key.partition(".")
        return self[reg].field(field)


# -- documentation ------------------------------------------------------------------------

_INTRO = """\
# ncore registers

<!-- Generated from hdl/regmap.py by `python -m hdl.regmap > docs/registers.md`;
     do not edit by hand (tests/test_host_amaranth.py checks that it is up to date). -->

The host programs ncore through these registers on the AXI4-Lite subordinate port
`s_axil` of `hdl.host.HostInterface` (12-bit byte addresses, 32-bit data). The
sequence a driver follows is in [host.md](host.md).

## Conventions

* Every register is 32 bits at a 32-bit aligned byte offset; address bits [1:0] are
  ignored. Bits not covered by a field read 0 and ignore writes.
* Access types: **RO** read-only (a *const* field is a constant; the others show
  hardware state); **RW** read-write; **W1C** write 1 to clear (hardware sets the
  bits); **WO** write-only: writing 1 triggers a one-cycle pulse, reads return 0.
* Byte strobes apply: a write changes (or, for W1C/WO, acts on) only the bytes whose
  `WSTRB` bit is set.
* A read of an unmapped offset returns 0 with `RRESP = SLVERR` (2); a write to an
  unmapped offset or to an RO register is answered `BRESP = SLVERR` and changes
  nothing. Everything else answers OKAY (0).
* **64-bit counters.** Counters are {counter_bits} bits wide, read as a LO/HI pair.
  Reading a counter's LO register also copies the counter's upper bits into a
  snapshot, and reading HI returns that snapshot, so reading LO then HI gives one
  consistent value even while the counter runs. Read LO first.
  Counters count only while the core runs (from an accepted START until its done or
  fault pulse) and are cleared by an accepted START and by SOFT_RESET.
* Values wider than 32 bits (addresses, window bounds) are LO/HI pairs without a
  snapshot: write them while the core is idle.
* Reset values are those of the configuration `{config_name}`; only CONFIG and
  WIN_LIMIT depend on the configuration.
"""


def _cell(text):
    """Text for a Markdown table cell (a bare ``|`` would end the cell)."""
    return text.replace("|", "\\|")


def _hex(value, width=32):
    return f"0x{value:0{(width + 3) // 4}X}"


def markdown(config: CoreConfig | None = None) -> str:
    """The register-map document (``docs/registers.md``) for ``config``."""
    if config is None:
        config = CoreConfig()
    regs = registers(config)
    out = [_INTRO.format(counter_bits=COUNTER_BITS, config_name=config.name), "## Summary\n",
           "| offset | register | access | reset | description |",
           "| --- | --- | --- | --- | --- |"]
    for r in regs:
        out.append(f"| {_hex(r.offset, 12)} | [{r.name}](#{r.name.lower()}) | {r.access} "
                   f"| {_hex(r.reset)} | {_cell(r.doc)} |")
    out.append("\n## Registers\n")
    for r in regs:
        out.append(f"### {r.name}\n")
        out.append(f"Offset {_hex(r.offset, 12)}, {r.access}, reset {_hex(r.reset)}. "
                   f"{r.doc}\n")
        out.append("| bits | field | access | reset | description |")
        out.append("| --- | --- | --- | --- | --- |")
        for f in sorted(r.fields, key=lambda f: -f.lsb):
            access = f.access + (" (const)" if f.const else "")
            out.append(f"| {f.bits} | {f.name} | {access} | {_hex(f.reset, f.width)} "
                       f"| {_cell(f.doc)} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
