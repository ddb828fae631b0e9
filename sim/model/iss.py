"""Instruction-set simulator: the golden model of a whole ncore running a program.

:func:`run` executes the program at ``prog_addr`` of a DRAM image with the same
structure as the hardware controller (``hdl/controller.py``):

* A *decoder* reads the instructions in program order from the image as it was at the
  start (the program is read-only; a fetch past the image stops the core with
  ``FETCH``) and dispatches each to its engine queue: ``dma_in`` (DMA loads),
  ``dma_out`` (DMA stores), ``tensor`` (MATMUL), ``vector`` (ACT). A queue holds at
  most ``config.queue_depth`` instructions that have not started; the decoder blocks
  while the target queue is full. The decoder executes SEM itself (it blocks until the
  SEM's wait holds, then signals at once) and END (it waits for END's own wait, then
  until every queue is empty and every instruction finished; then the core is done;
  END does not signal, even with ``sig_en`` set, as in the controller).
* An instruction at the head of an engine queue starts when its wait holds
  (semaphore >= value, unsigned); here it then runs atomically through the engine's
  golden model (:mod:`sim.model.dma`, :class:`sim.model.tensor.TensorModel`, :mod:`sim.model.vector`) and
  signals its semaphore.

Semaphores only ever increase, so once an agent (the decoder or a queue head) can
move it stays able to, and a greedy loop reaches every state the hardware can: for a
properly synchronised program (no two unordered instructions touching the same bytes)
the result does not depend on the order the loop picks ready agents in. When nothing
can move before END completes, the hardware's watchdog fires: error ``WATCHDOG``,
``fault_addr`` the address of the first blocked agent, in the order decoder (a SEM or
END whose own wait does not hold), dma_in, dma_out, tensor, vector (a queue head whose
wait does not hold).

Faults stop the core at once; nothing after them executes:

* an illegal instruction (``OPCODE``, ``RESERVED``, ``SEM_RANGE``) when the decoder
  reaches it, ``FETCH`` for a fetch past the image (``fault_addr``: its address);
* ``DMA`` when :func:`sim.model.dma.check` refuses a descriptor (``detail`` its code, e.g.
  ``WINDOW``) or it touches DRAM past the image (``detail`` ``DECERR``);
* ``TENSOR`` / ``VECTOR`` when the tensor / vector engine refuses its command
  (``detail`` the :data:`sim.model.tensor.TENSOR_ERRORS` / :data:`sim.model.vector.ACT_ERRORS` name).

Engine faults happen when the instruction starts (nothing of it is done).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from hdl.isa import INSTR_BYTES, SEM_VALUE_BITS

import sim.model.vector as act_model
import sim.model.dma as dma_model
from sim.isa.asm import QUEUES, IllegalInstruction, Instruction
from sim.model.tensor import TensorModel

__all__ = ["IssResult", "ChipResult", "run", "run_chip"]

_SEM_MASK = (1 << SEM_VALUE_BITS) - 1


@dataclass
class IssResult:
    """The state of the core when it stopped.

    Attributes
    ----------
    dram : np.ndarray
        A modified copy of the DRAM image (uint8).
    sbuf, psum : np.ndarray
        SBUF ``[rows, sbuf_bytes]`` uint8 and PSUM ``[cols, banks, depth]`` uint32.
    done : bool
        END completed.
    error : str
        ``"NONE"`` or the :class:`hdl.isa.CoreError` name.
    detail : str
        The refusing engine's code for DMA, TENSOR and VECTOR errors; else ``""``.
    fault_addr : int or None
        Address of the instruction (or fetch) that stopped the core.
    executed : list of int
        Instruction indices (``(addr - prog_addr) // 32``) in the order they finished,
        SEM and END included.
    sems : list of int
        Semaphore values at the end (``config.n_sems`` of them).
    blocked : list of str
        On a deadlock (``WATCHDOG``), one line per blocked agent.
    """
    dram: np.ndarray
    sbuf: np.ndarray
    psum: np.ndarray
    done: bool = False
    error: str = "NONE"
    detail: str = ""
    fault_addr: int | None = None
    executed: list = field(default_factory=list)
    sems: list = field(default_factory=list)
    blocked: list = field(default_factory=list)


class _Fault(Exception):
    def __init__(self, error, addr, detail=""):
        super().__init__(error)
        self.error, self.addr, self.detail = error, addr, detail


class _Core:
    def __init__(self, config, dram, image, prog_addr, win_base, win_limit, model, chip=None,
                 cores=0):
        self.config = config
        self.image = image                      # what the decoder fetches from
        self.dram = dram                        # shared by the cores of a chip
        self.chip = chip if chip is not None else [self]
        self.cores = cores                      # the chip's core count, 0 if standalone
        self.prog_addr = prog_addr
        self.win_base = win_base
        self.win_limit = win_limit
        self.model = TensorModel(config)
        if model is not None:
            self.model.sbuf[...] = model.sbuf
            self.model.psum[...] = model.psum
        self.sems = [0] * config.n_sems
        self.queues = {q: deque() for q in QUEUES}
        self.pc = prog_addr
        self.current = None                     # (addr, Instruction) held by the decoder
        self.done = False
        self.stopped = prog_addr is None        # done, faulted, deadlocked or never started
        self.result = None                      # (error, detail, fault_addr, blocked)
        self.executed = []

    # -- helpers ------------------------------------------------------------------------

    def holds(self, instr):
        return instr.wait is None or self.sems[instr.wait[0]] >= instr.wait[1]

    def index(self, addr):
        return (addr - self.prog_addr) // INSTR_BYTES

    def finish(self, addr, instr):
        if instr.signal is not None:
            # a cross-core signal (a SEM with peer) counts up the other core's semaphore
            sems = self.chip[instr.peer].sems if instr.peer is not None else self.sems
            sems[instr.signal] = (sems[instr.signal] + 1) & _SEM_MASK
        self.executed.append(self.index(addr))

    # -- the decoder --------------------------------------------------------------------

    def fetch(self):
        """Fetch and decode the next instruction into ``current`` (may fault)."""
        addr = self.pc
        if addr + INSTR_BYTES > len(self.image):
            raise _Fault("FETCH", addr)
        word = int.from_bytes(self.image[addr:addr + INSTR_BYTES], "little")
        try:
            self.current = (addr, Instruction.decode(word, self.config, self.cores))
        except IllegalInstruction as e:
            raise _Fault(e.code, addr) from None

    def decoder_ready(self):
        """Whether the decoder can do something (fetching counts: it may fault)."""
        if self.done or self.stopped:
            return False
        if self.current is None:
            return True
        _, instr = self.current
        if instr.op == "SEM":
            return self.holds(instr)
        if instr.op == "END":
            return self.holds(instr) and not any(self.queues.values())
        return len(self.queues[instr.queue]) < self.config.queue_depth

    def decoder_step(self):
        if self.current is None:
            self.fetch()
            if not self.decoder_ready():
                return
        addr, instr = self.current
        if instr.op == "SEM":
            self.finish(addr, instr)
        elif instr.op == "END":
            # as in the controller, END never signals (a legal sig_en is ignored)
            self.executed.append(self.index(addr))
            self.done = True
        else:
            self.queues[instr.queue].append((addr, instr))
        self.current = None
        self.pc = addr + INSTR_BYTES

    # -- the engines --------------------------------------------------------------------

    def engine_ready(self, q):
        return (not self.stopped and bool(self.queues[q])
                and self.holds(self.queues[q][0][1]))

    def engine_step(self, q):
        addr, instr = self.queues[q].popleft()
        cmd = instr.cmd
        if instr.op == "DMA":
            code = dma_model.check(self.config, cmd, self.win_base, self.win_limit,
                                   self.cores)
            if code != "NONE":
                raise _Fault("DMA", addr, code)
            peer = dma_model.peer_target(self.config, cmd, self.cores)
            if peer is not None:
                core, partition, offset = peer
                dma_model.apply_peer(cmd, self.model, self.chip[core].model, partition,
                                     offset)
            else:
                if cmd.addr + (cmd.rows - 1) * cmd.row_stride + cmd.row_bytes > len(self.dram):
                    raise _Fault("DMA", addr, "DECERR")
                dma_model.apply(cmd, self.dram, self.model)
        elif instr.op == "MATMUL":
            code = self.model.check(cmd)
            if code != "NONE":
                raise _Fault("TENSOR", addr, code)
            self.model.matmul(cmd)
        else:
            code = act_model.check(self.config, cmd)
            if code != "NONE":
                raise _Fault("VECTOR", addr, code)
            if cmd.dst_type == "INT8" and not cmd.src_fp and cmd.shift > 47:
                raise ValueError(f"ACT at 0x{addr:x}: shift={cmd.shift} (48..63) is not "
                                 f"supported by the vector engine; its result is undefined")
            act_model.apply(self.config, cmd, self.model)
        self.finish(addr, instr)

    # -- deadlock report ----------------------------------------------------------------

    def sem_state(self, instr):
        sem, value = instr.wait
        return f"waits for s{sem}>={value}, s{sem}={self.sems[sem]}"

    def deadlock(self):
        """``(fault_addr, blocked lines)`` when nothing can move."""
        lines, first = [], None
        if self.current is not None:
            addr, instr = self.current
            where = f"decoder: 0x{addr:x} #{self.index(addr)} {instr.text()}"
            if instr.op in ("SEM", "END") and not self.holds(instr):
                first = addr
                lines.append(f"{where}: {self.sem_state(instr)}")
            elif instr.op == "END":
                busy = ", ".join(f"{q}={len(v)}" for q, v in self.queues.items() if v)
                lines.append(f"{where}: waits for the engines to finish ({busy})")
            else:
                lines.append(f"{where}: queue {instr.queue} is full "
                             f"({self.config.queue_depth} instructions)")
        for q in QUEUES:
            if self.queues[q]:
                addr, instr = self.queues[q][0]
                if first is None:
                    first = addr
                lines.append(f"{q}: 0x{addr:x} #{self.index(addr)} {instr.text()}: "
                             f"{self.sem_state(instr)} ({len(self.queues[q])} queued)")
        return first, lines


def _check_dram(dram):
    dram = np.asarray(dram)
    if dram.dtype != np.uint8 or dram.ndim != 1:
        raise ValueError(f"dram must be a 1-D uint8 array, not {dram.dtype} {dram.shape}")
    return dram


def _check_prog_addr(prog_addr):
    if isinstance(prog_addr, bool) or not isinstance(prog_addr, (int, np.integer)) \
            or prog_addr < 0 or prog_addr % INSTR_BYTES:
        raise ValueError(f"prog_addr must be a non-negative multiple of {INSTR_BYTES}, "
                         f"not {prog_addr!r}")
    return int(prog_addr)


def run(config, dram: np.ndarray, prog_addr: int, *, win_base=0, win_limit=None,
        max_steps=10**7, model=None, _order="engines") -> IssResult:
    """Run the program at ``prog_addr`` of ``dram`` until END, a fault or a deadlock.

    Parameters
    ----------
    config : CoreConfig
    dram : np.ndarray
        The DRAM image, uint8, indexed by byte address (not modified: the result holds
        a modified copy).
    prog_addr : int
        Address of the first instruction, a multiple of 32 (``ValueError`` otherwise).
    win_base, win_limit : int
        The DMA window (``win_limit`` defaults to ``len(dram)``).
    max_steps : int
        Safety limit on decoder and engine steps; exceeding it raises ``RuntimeError``
        (a program always terminates, so this only catches simulator bugs).
    model : TensorModel, optional
        Initial SBUF and PSUM contents (copied, not modified); zeros by default.
    _order : str or int
        Which ready agent moves first (testing only): ``"engines"`` (queue heads before
        the decoder), ``"decoder"`` (the decoder as far as it goes first), or an integer
        seed for a random choice at every step.
    """
    dram = _check_dram(dram)
    prog_addr = _check_prog_addr(prog_addr)
    if win_limit is None:
        win_limit = len(dram)
    res = _run_cores(config, dram, [prog_addr], [(win_base, win_limit)], [model], 0,
                     max_steps, _order)
    return res.cores[0]


@dataclass
class ChipResult:
    """The state of a chip when every core stopped: ``dram`` (the shared image, a
    modified copy) and ``cores``, one :class:`IssResult` per core (its ``dram`` is the
    same array; a core that was not started reports ``done=False``, ``error="NONE"``)."""
    dram: np.ndarray
    cores: list


def run_chip(config, dram: np.ndarray, prog_addrs, *, windows=None, max_steps=10**7,
             models=None, _order="engines") -> ChipResult:
    """Run a chip (:class:`hdl.chip.Chip`): core ``k`` runs the program at
    ``prog_addrs[k]`` (``None``: the core is not started), all started together (the
    chip's START register) on one shared DRAM.

    The cores' agents (each core's decoder and queue heads) move in one greedy loop,
    so for a properly synchronised chip program the result is the hardware's. A DMA
    store into the peer aperture (:class:`hdl.chipmap.PeerAperture`) writes the target
    core's SBUF; a SEM with ``peer`` counts up the target core's semaphore. A fault
    stops its core only. When no agent of any core can move, every core still running
    stops with ``WATCHDOG`` (on the hardware each core's own watchdog fires; the
    watchdog must be longer than the longest wait for another core).

    ``windows``: per core ``(win_base, win_limit)`` (default: all of ``dram``);
    ``models``: per core initial SBUF/PSUM (:class:`~sim.model.tensor.TensorModel`).
    """
    dram = _check_dram(dram)
    cores = len(prog_addrs)
    from hdl.chipmap import PeerAperture, check_cores
    check_cores(cores)
    PeerAperture(config)            # ValueError if the configuration cannot be a chip
    addrs = [None if a is None else _check_prog_addr(a) for a in prog_addrs]
    if windows is None:
        windows = [(0, len(dram))] * cores
    if models is None:
        models = [None] * cores
    if len(windows) != cores or len(models) != cores:
        raise ValueError(f"windows and models need one entry per core ({cores})")
    return _run_cores(config, dram, addrs, windows, models, cores, max_steps, _order)


def _run_cores(config, dram, addrs, windows, models, cores, max_steps, _order):
    """The loop of :func:`run` (``cores=0``: one standalone core) and :func:`run_chip`."""
    image = bytes(dram.tobytes())
    shared = dram.copy()
    chip = []
    for a, (wb, wl), mdl in zip(addrs, windows, models):
        chip.append(_Core(config, shared, image, a, wb, wl, mdl, chip, cores))
    rng = random.Random(_order) if isinstance(_order, int) else None
    if rng is None and _order not in ("engines", "decoder"):
        raise ValueError(f"_order must be 'engines', 'decoder' or a seed, not {_order!r}")

    steps = 0
    while True:
        ready = [(c, q) for c in chip for q in QUEUES if c.engine_ready(q)]
        decoders = [(c, "decoder") for c in chip if c.decoder_ready()]
        ready = decoders + ready if _order == "decoder" else ready + decoders
        if not ready:
            for c in chip:
                if not c.stopped:
                    fault_addr, blocked = c.deadlock()
                    c.result = ("WATCHDOG", "", fault_addr, blocked)
                    c.stopped = True
            break
        steps += 1
        if steps > max_steps:
            raise RuntimeError(f"ISS: more than {max_steps} steps")
        core, agent = rng.choice(ready) if rng is not None else ready[0]
        try:
            if agent == "decoder":
                core.decoder_step()
            else:
                core.engine_step(agent)
        except _Fault as f:
            core.result = (f.error, f.detail, f.addr, [])
            core.stopped = True
        if core.done:
            core.stopped = True

    results = []
    for c in chip:
        error, detail, fault_addr, blocked = c.result or ("NONE", "", None, [])
        results.append(IssResult(dram=shared, sbuf=c.model.sbuf, psum=c.model.psum,
                                 done=c.done, error=error, detail=detail,
                                 fault_addr=fault_addr, executed=c.executed,
                                 sems=list(c.sems), blocked=blocked))
    return ChipResult(dram=shared, cores=results)
