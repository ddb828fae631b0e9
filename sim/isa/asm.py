"""Assembler and disassembler of the ncore instruction set (``hdl/isa.py``).

An instruction is one 256-bit word (32 bytes, little-endian in DRAM: bit 0 of the word
is bit 0 of its first byte) with the layout :class:`hdl.isa.Instr`: a 32-bit header
(``opcode``, ``wait_en``, ``wait_sem``, ``wait_val``, ``sig_en``, ``sig_sem``) and a
224-bit body holding, in its low bits, the engine command of the opcode
(:class:`hdl.formats.DmaDesc`, :class:`hdl.formats.MatmulCmd`,
:class:`hdl.formats.ActCmd`; nothing for SEM and END).

Semaphores
----------
The core has ``config.n_sems`` semaphores. Each is a 16-bit counter that is 0 when the
core starts and is only ever incremented: by one when an instruction that *signals* it
has finished (all of its writes are visible to every engine). An instruction that
*waits* on ``(sem, value)`` is held at the head of its queue (SEM and END: in the
decoder) until the semaphore's value is at least ``value``, compared unsigned. As the
counters never decrease, a wait for the ``n``-th signal of a semaphore is
``wait=(name, n)``; :meth:`Program.signals` counts the signals issued so far, so a
consumer written right after its producer waits for ``prog.signals(name)``.

Decoding mirrors the hardware's checks, in this order (the first failing one is the
:class:`hdl.isa.CoreError` reported):

* ``OPCODE``: opcode 0 or 6..15;
* ``RESERVED``: a body bit above the command is set, or ``wait_sem``/``wait_val`` are
  not zero while ``wait_en`` is 0, or ``sig_sem`` is not zero while ``sig_en`` is 0;
* ``SEM_RANGE``: an enabled ``wait_sem`` or ``sig_sem`` is not below ``config.n_sems``;
* ``PEER``: a SEM signals core ``peer`` of a chip with ``cores`` cores and
  ``peer >= cores`` (a standalone core has ``cores = 0``: every remote signal).

Cross-core signals
------------------
On a chip (:class:`hdl.chip.Chip`) a SEM may signal a semaphore of *another* core
(``peer``, :class:`hdl.isa.SemCmd`): the decoder waits as usual, then semaphore
``signal`` of core ``peer`` counts up instead of its own. Waits are always on a core's
own semaphores.

Engine-level problems (a matmul the tensor engine refuses, an enum field holding a value
no enum member has, ...) are *not* decode errors: the instruction is legal and the
engine refuses it when it starts. A ``MATMUL`` whose ``dtype`` field holds the unused
value 3 decodes to ``Matmul(dtype="dtype3")``; an ``ACT`` whose ``dst_type`` holds 5..7
decodes to ``Act(dst_type="TYPE5")`` etc. (refused with ``DTYPE`` and ``TYPES``), and
such commands encode back to the same bits.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from hdl.isa import (BODY_WIDTH, INSTR_BITS, INSTR_BYTES, MAX_CORES, MAX_SEMS, SEM_VALUE_BITS,
                     CoreError, Instr, Opcode, SemCmd)

import sim.isa.codec as codec
from sim.model.vector import Act
from sim.model.dma import Dma
from sim.model.tensor import Matmul

__all__ = ["IllegalInstruction", "Instruction", "Program", "disassemble", "decode_program",
           "OPS", "QUEUES"]

#: Mnemonics, by opcode value: the names of :class:`hdl.isa.Opcode`.
OPS = tuple(op.name for op in sorted(Opcode, key=lambda op: op.value))
#: Queue names, in the order the ISS and the watchdog report look at them.
QUEUES = ("dma_in", "dma_out", "tensor", "vector")

#: The command dataclass of each opcode with a body; each packs and unpacks its own
#: layout (:class:`hdl.formats.DmaDesc`, ...) through :mod:`sim.isa.codec`.
#: The opcodes that carry an engine command, and the command's golden-model class
#: (its ``LAYOUT`` is the hardware format). ``sim/flow/wavefilter.py`` reads it too.
CMD_TYPES = {"DMA": Dma, "MATMUL": Matmul, "ACT": Act}
_CMD_TYPES = CMD_TYPES
_SEM_MAX = (1 << SEM_VALUE_BITS) - 1
_ALL = (1 << INSTR_BITS) - 1


class IllegalInstruction(Exception):
    """A word the decoder refuses.

    Attributes
    ----------
    code : str
        The :class:`hdl.isa.CoreError` name the hardware reports (``"OPCODE"``,
        ``"RESERVED"``, ``"SEM_RANGE"``; :func:`decode_program` also uses ``"FETCH"``
        for a program that runs off the end of its data).
    detail : str
        What exactly is wrong, for people.
    addr : int or None
        Byte address of the word, when known (set by :func:`decode_program`).
    """

    def __init__(self, code, detail="", addr=None):
        assert code in CoreError.__members__, code
        self.code = code
        self.detail = detail
        self.addr = addr
        where = "" if addr is None else f" at 0x{addr:x}"
        super().__init__(f"{code}{where}: {detail}" if detail else f"{code}{where}")


# ---------------------------------------------------------------------------------------
# One instruction
# ---------------------------------------------------------------------------------------

def _sem_text(index, names):
    return names.get(index, f"s{index}")


@dataclass(frozen=True)
class Instruction:
    """One instruction.

    Parameters
    ----------
    op : str
        ``"DMA"``, ``"MATMUL"``, ``"ACT"``, ``"SEM"`` or ``"END"``.
    cmd : :class:`sim.model.dma.Dma`, :class:`sim.model.tensor.Matmul`, :class:`sim.model.vector.Act` or None
        The engine command (``None`` for SEM and END).
    wait : (int, int) or None
        ``(sem_index, value)``: do not start until semaphore ``sem_index`` >= ``value``
        (unsigned 16-bit compare; semaphores start at 0 and only count up).
    signal : int or None
        Semaphore incremented by one when the instruction has finished.
    peer : int or None
        SEM only: the core of the chip whose semaphore ``signal`` counts up (a
        cross-core signal); ``None`` for this core's own.

    Construction checks that every field fits its bits (``ValueError``); whether the
    semaphore indices exist in a configuration is checked by :meth:`decode` (the
    hardware reports ``SEM_RANGE``), so an instruction the core refuses can be built.
    """
    op: str
    cmd: object = None
    wait: tuple | None = None
    signal: int | None = None
    peer: int | None = None

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}; choose from {OPS}")
        if self.op in _CMD_TYPES:
            if not isinstance(self.cmd, _CMD_TYPES[self.op]):
                raise ValueError(f"{self.op} needs a {_CMD_TYPES[self.op].__name__} command, "
                                 f"not {self.cmd!r}")
            self.cmd.encode()       # ValueError unless every field fits its bits
        elif self.cmd is not None:
            raise ValueError(f"{self.op} takes no command, not {self.cmd!r}")
        if self.wait is not None:
            if not (isinstance(self.wait, tuple) and len(self.wait) == 2):
                raise ValueError(f"wait must be (sem_index, value), not {self.wait!r}")
            sem, value = self.wait
            _check_index("wait semaphore", sem)
            if not _is_int(value) or not 0 <= value <= _SEM_MAX:
                raise ValueError(f"wait value must be 0..{_SEM_MAX}, not {value!r}")
            object.__setattr__(self, "wait", (int(sem), int(value)))
        if self.signal is not None:
            _check_index("signal semaphore", self.signal)
            object.__setattr__(self, "signal", int(self.signal))
        if self.peer is not None:
            if self.op != "SEM" or self.signal is None:
                raise ValueError(f"only a SEM that signals can signal another core "
                                 f"({self.op}, signal={self.signal!r}, peer={self.peer!r})")
            if not _is_int(self.peer) or not 0 <= self.peer < MAX_CORES:
                raise ValueError(f"peer must be a core index 0..{MAX_CORES - 1}, "
                                 f"not {self.peer!r}")
            object.__setattr__(self, "peer", int(self.peer))

    # -- binary -------------------------------------------------------------------------

    def encode(self) -> int:
        """The 256-bit instruction word (bit 0 = bit 0 of the first byte in DRAM)."""
        body = self.cmd.encode() if self.cmd is not None else 0
        if self.peer is not None:
            body = codec.encode(SemCmd, {"remote": 1, "core": self.peer})
        fields = {"opcode": Opcode[self.op], "body": body}
        if self.wait is not None:
            fields.update(wait_en=1, wait_sem=self.wait[0], wait_val=self.wait[1])
        if self.signal is not None:
            fields.update(sig_en=1, sig_sem=self.signal)
        return codec.encode(Instr, fields)

    @classmethod
    def decode(cls, word: int, config, cores: int = 0) -> "Instruction":
        """The instruction a 256-bit word holds, or :class:`IllegalInstruction` with the
        :class:`hdl.isa.CoreError` name the core reports (OPCODE, RESERVED, SEM_RANGE,
        PEER, checked in that order). ``cores``: the chip's core count (0 for a
        standalone core, which refuses every cross-core signal)."""
        if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word <= _ALL:
            raise ValueError(f"an instruction word is an integer 0 .. 2**{INSTR_BITS}-1, "
                             f"not {word!r}")
        h = codec.decode(Instr, word)
        if not isinstance(h["opcode"], Opcode):
            raise IllegalInstruction("OPCODE", f"opcode {h['opcode']} is not defined")
        op = h["opcode"].name
        width = BODY_WIDTH[Opcode[op]]
        body = h["body"]
        if body >> width:
            raise IllegalInstruction(
                "RESERVED", f"{op} body bits above bit {width - 1} are not zero "
                f"(body bits 0x{(body >> width) << width:x})")
        if not h["wait_en"] and (h["wait_sem"] or h["wait_val"]):
            raise IllegalInstruction(
                "RESERVED", f"wait_en=0 but wait_sem={h['wait_sem']} wait_val={h['wait_val']}")
        if not h["sig_en"] and h["sig_sem"]:
            raise IllegalInstruction("RESERVED", f"sig_en=0 but sig_sem={h['sig_sem']}")
        peer = None
        if op == "SEM":
            sc = codec.decode(SemCmd, body)
            if sc["remote"] and not h["sig_en"]:
                raise IllegalInstruction("RESERVED", "a remote SEM must signal (sig_en=0)")
            if not sc["remote"] and sc["core"]:
                raise IllegalInstruction("RESERVED", f"remote=0 but core={sc['core']}")
            peer = sc["core"] if sc["remote"] else None
        for en, sem in (("wait_en", "wait_sem"), ("sig_en", "sig_sem")):
            if h[en] and h[sem] >= config.n_sems:
                raise IllegalInstruction(
                    "SEM_RANGE", f"{sem}={h[sem]} but the core has {config.n_sems} semaphores")
        if peer is not None and peer >= cores:
            raise IllegalInstruction(
                "PEER", f"signals core {peer} but " + (f"the chip has {cores} cores" if cores
                                                       else "the core is not on a chip"))
        cmd = _CMD_TYPES[op].decode(body) if op in _CMD_TYPES else None
        return cls(op, cmd,
                   wait=(h["wait_sem"], h["wait_val"]) if h["wait_en"] else None,
                   signal=h["sig_sem"] if h["sig_en"] else None, peer=peer)

    # -- properties ---------------------------------------------------------------------

    @property
    def queue(self) -> str:
        """Where the decoder sends the instruction: ``"dma_in"`` (a DMA load),
        ``"dma_out"`` (a DMA store), ``"tensor"`` (MATMUL), ``"vector"`` (ACT) or
        ``"seq"`` (SEM and END, which the decoder executes itself)."""
        if self.op == "DMA":
            return "dma_out" if self.cmd.store else "dma_in"
        return {"MATMUL": "tensor", "ACT": "vector"}.get(self.op, "seq")

    def sync_text(self, sem_names=None) -> str:
        """``wait(name>=value) signal(name)``, or the part present, or ``""``."""
        names = _index_names(sem_names)
        parts = []
        if self.wait is not None:
            parts.append(f"wait({_sem_text(self.wait[0], names)}>={self.wait[1]})")
        if self.signal is not None:
            if self.peer is not None:
                parts.append(f"signal(core{self.peer}.s{self.signal})")
            else:
                parts.append(f"signal({_sem_text(self.signal, names)})")
        return " ".join(parts)

    def text(self, sem_names=None) -> str:
        """One readable line, e.g. ``MATMUL k=8 m=8 n=64 ... wait(wload>=3) signal(mm)``.

        ``sem_names`` maps names to semaphore indices (as :attr:`Program.sem_names`);
        semaphores without a name are shown as ``s<index>``.
        """
        c = self.cmd
        if self.op == "DMA":
            words = [f"DMA {'store' if c.store else 'load'} {c.mem}", f"addr=0x{c.addr:x}",
                     f"rows={c.rows}", f"row_bytes={c.row_bytes}",
                     f"row_stride={c.row_stride}", f"partition={c.partition}",
                     f"offset={c.offset}", f"tag={c.tag}"]
        elif self.op == "MATMUL":
            words = ["MATMUL"] + [f"{k}={v}" for k, v in (
                ("k", c.k), ("m", c.m), ("n", c.n), ("p0", c.p0), ("s_off", c.s_off),
                ("x_off", c.x_off), ("bank", c.bank), ("psum_off", c.psum_off),
                ("acc", int(c.acc)), ("dtype", c.dtype))] + (
                [f"x_skip={c.x_skip}"] if c.x_skip else [])
        elif self.op == "ACT":
            src = f"{'psum' if c.src_psum else 'sbuf'}:{'fp32' if c.src_fp else 'int32'}"
            words = ["ACT", f"parts={c.parts}", f"n={c.n}", f"src={src}",
                     f"src_p0={c.src_p0}", f"src_off={c.src_off}", f"dst={c.dst_type}",
                     f"dst_p0={c.dst_p0}", f"dst_off={c.dst_off}", f"relu={int(c.relu)}",
                     f"bias={int(c.bias)}"]
            if c.bias or c.bias_off:
                words.append(f"bias_off={c.bias_off}")
            if c.dst_type == "INT8" or (c.scale, c.shift, c.zp) != (1, 0, 0):
                words += [f"scale={c.scale}", f"shift={c.shift}", f"zp={c.zp}"]
            # the CNN fields, where they are not their neutral values
            for name, neutral in (("op", "COPY"), ("src_type", "ACC"), ("src_skip", 0),
                                  ("src2_off", 0), ("src2_skip", 0), ("scale2", 0),
                                  ("zp1", 0), ("zp2", 0), ("clip", False), ("hi", 0)):
                v = getattr(c, name)
                if v != neutral:
                    words.append(f"{name}={int(v) if isinstance(v, bool) else v}")
        else:
            words = [self.op]
        sync = self.sync_text(sem_names)
        if sync:
            words.append(sync)
        return " ".join(words)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _check_index(what, index):
    if not _is_int(index) or not 0 <= index < MAX_SEMS:
        raise ValueError(f"{what} must be an index 0..{MAX_SEMS - 1}, not {index!r}")


def _index_names(sem_names):
    """``{index: name}`` from ``{name: index}`` (or ``None``)."""
    return {i: n for n, i in (sem_names or {}).items()}


# ---------------------------------------------------------------------------------------
# Programs
# ---------------------------------------------------------------------------------------

class Program:
    """A program under construction: instructions with named semaphores.

    Semaphore names get indices 0, 1, ... in order of first use (by a wait or a
    signal); more names than ``config.n_sems`` is a ``ValueError``. A wait is
    ``wait=("name", value)``: hold the instruction until the semaphore has been signalled
    at least ``value`` times (0..65535); a signal is ``signal="name"``. Semaphores are
    16-bit counters that start at 0 and only count up, so a semaphore may be signalled
    at most 65535 times in a program (more is a ``ValueError``).

    Each adder returns the index of the new instruction in :attr:`instructions`.
    """

    def __init__(self, config):
        self.config = config
        self.instructions: list[Instruction] = []
        self.sem_names: dict[str, int] = {}
        self._signals: dict[str, int] = {}

    def __len__(self):
        return len(self.instructions)

    def _sem(self, name):
        if not isinstance(name, str) or not name:
            raise ValueError(f"a semaphore is named by a non-empty string, not {name!r}")
        if name not in self.sem_names:
            if len(self.sem_names) >= self.config.n_sems:
                raise ValueError(
                    f"too many semaphores: {name!r} would be number {len(self.sem_names) + 1} "
                    f"but the configuration has n_sems={self.config.n_sems} "
                    f"(already named: {', '.join(self.sem_names)})")
            self.sem_names[name] = len(self.sem_names)
        return self.sem_names[name]

    def _add(self, op, cmd, wait, signal, peer=None):
        w = s = None
        if wait is not None:
            if not (isinstance(wait, tuple) and len(wait) == 2):
                raise ValueError(f"wait must be ('name', value), not {wait!r}")
            name, value = wait
            if not _is_int(value) or not 0 <= value <= _SEM_MAX:
                raise ValueError(f"wait value for {name!r} must be 0..{_SEM_MAX}, not {value!r}")
        if peer is None and signal is not None and self._signals.get(signal, 0) >= _SEM_MAX:
            raise ValueError(f"semaphore {signal!r} would be signalled more than {_SEM_MAX} "
                             f"times (a 16-bit counter would wrap)")
        # build everything before changing any state, so a refused call leaves no trace
        names = dict(self.sem_names)
        try:
            if wait is not None:
                w = (self._sem(wait[0]), wait[1])
            if peer is not None:
                s = signal          # an index of the other core's semaphores
            elif signal is not None:
                s = self._sem(signal)
            instr = Instruction(op, cmd, wait=w, signal=s, peer=peer)
        except Exception:
            self.sem_names.clear()
            self.sem_names.update(names)
            raise
        if signal is not None and peer is None:
            self._signals[signal] = self._signals.get(signal, 0) + 1
        self.instructions.append(instr)
        return len(self.instructions) - 1

    @staticmethod
    def _cmd(kind, cmd, fields):
        if cmd is None:
            return kind(**fields)
        if fields:
            raise TypeError(f"give either a {kind.__name__} or its fields, not both")
        return cmd

    def dma(self, cmd=None, *, wait=None, signal=None, **fields) -> int:
        """A DMA (:class:`sim.model.dma.Dma`, or its fields); loads go to the DMA-in queue,
        stores to the DMA-out queue."""
        return self._add("DMA", self._cmd(Dma, cmd, fields), wait, signal)

    def matmul(self, cmd=None, *, wait=None, signal=None, **fields) -> int:
        """A MATMUL (:class:`sim.model.tensor.Matmul`, or its fields), tensor queue."""
        return self._add("MATMUL", self._cmd(Matmul, cmd, fields), wait, signal)

    def act(self, cmd=None, *, wait=None, signal=None, **fields) -> int:
        """An ACT (:class:`sim.model.vector.Act`, or its fields), vector queue."""
        return self._add("ACT", self._cmd(Act, cmd, fields), wait, signal)

    def sem(self, *, wait=None, signal=None) -> int:
        """A SEM: the decoder itself waits (holding back every later instruction), then
        signals at once."""
        return self._add("SEM", None, wait, signal)

    def signal_peer(self, core, sem, *, wait=None) -> int:
        """A SEM that waits (``wait``, on this core's semaphores), then signals semaphore
        index ``sem`` of core ``core`` of the chip (a cross-core signal; the other
        program's :attr:`sem_names` give the index)."""
        return self._add("SEM", None, wait, sem, peer=core)

    def end(self, *, wait=None) -> int:
        """END: wait, then wait for every engine to finish; the core is done. (END may
        legally carry a signal field, but the core ignores it, so none is offered.)"""
        return self._add("END", None, wait, None)

    def signals(self, name) -> int:
        """How many instructions added so far signal ``name`` (0 for an unknown name)."""
        return self._signals.get(name, 0)

    def encode(self) -> bytes:
        """The program image: 32 little-endian bytes per instruction."""
        return b"".join(i.encode().to_bytes(INSTR_BYTES, "little") for i in self.instructions)

    def listing(self, base_addr=0) -> str:
        """:func:`disassemble` of this program with its semaphore names (cross-core
        signals shown as on a chip of :data:`~hdl.isa.MAX_CORES` cores)."""
        return disassemble(self.encode(), self.config, base_addr, self.sem_names, MAX_CORES)


# ---------------------------------------------------------------------------------------
# Whole images
# ---------------------------------------------------------------------------------------

def _words(data):
    data = bytes(data)
    for off in range(0, len(data) - INSTR_BYTES + 1, INSTR_BYTES):
        yield off, int.from_bytes(data[off:off + INSTR_BYTES], "little")


def disassemble(data: bytes, config, base_addr=0, sem_names=None, cores=0) -> str:
    """A listing of ``data`` (32-byte words from ``base_addr``): one line per word,
    ``address: hex  text``. The hex is the 256-bit word as a number (most significant
    digit first). A word the decoder refuses is shown as ``ILLEGAL(<code>) <detail>``;
    trailing bytes that do not fill a word are noted on a last line. Never raises for
    the contents of ``data``."""
    lines = []
    for off, word in _words(data):
        try:
            text = Instruction.decode(word, config, cores).text(sem_names)
        except IllegalInstruction as e:
            text = f"ILLEGAL({e.code}) {e.detail}"
        lines.append(f"{base_addr + off:08x}: {word:064x}  {text}")
    rest = len(data) % INSTR_BYTES
    if rest:
        addr = base_addr + len(data) - rest
        lines.append(f"{addr:08x}: ({rest} trailing bytes, not an instruction)")
    return "\n".join(lines)


def decode_program(data: bytes, config, cores=0) -> list[Instruction]:
    """The instructions of ``data`` up to and including the first END.

    Raises :class:`IllegalInstruction` (with ``addr`` = the byte offset in ``data``) for
    the first word the decoder refuses, or with code ``FETCH`` if ``data`` ends before
    an END.
    """
    out = []
    for off, word in _words(data):
        try:
            instr = Instruction.decode(word, config, cores)
        except IllegalInstruction as e:
            raise IllegalInstruction(e.code, e.detail, off) from None
        out.append(instr)
        if instr.op == "END":
            return out
    end = len(data) - len(data) % INSTR_BYTES
    raise IllegalInstruction("FETCH", "no END before the end of the data", end)

