"""The ncore runtime: DRAM images in, programs run on a backend, NumPy arrays out.

This is the API the tests, the CLI and users drive the core with::

    from sim.compiler.runtime import Device, matmul
    dev = Device("default", backend="verilator")      # or "golden"
    a = dev.alloc(4096); dev.write(a, my_array)        # tensors into DRAM
    p = dev.load_program(program)                      # a sim.isa.asm.Program
    r = dev.run(p)                                     # RunResult: error, counters
    out = dev.read(c, (64, 64), np.int32)              # results back

    C = matmul(A, B, "int8", config="default", backend="golden")

Backends (both see the same DRAM image and run the same encoded program):

* ``golden``: the instruction-set simulator :func:`sim.model.iss.run`, the bit-exact model.
  It has no clock: ``counters`` holds the instruction count and the MACs, ``cycles``
  is ``None``.
* ``verilator``: the RTL, top ``neuron_core_sim`` (the core plus an in-design AXI
  memory of 64 MiB, :data:`hdl.tops.simdram.SIM_DRAM_BYTES`; first read beat 21 cycles
  after the request) built by Verilator
  and driven by cocotb through the AXI4-Lite host interface, exactly as a driver
  would (``docs/host.md``): PROG_ADDR, the DMA window, WATCHDOG, START, wait for the
  interrupt, read STATUS, ERROR and every counter. One simulator process per
  :meth:`Device.run`; the Verilator build is cached per configuration
  (``build/sim/neuron_core_sim-<config>``).

* ``board``: a board over its UART (``port``: ``/dev/ttyUSB0``; or the simulated
  board's pseudo-terminal, ``tb/board``), through :mod:`sim.compiler.board`: the same
  register sequence (:mod:`sim.compiler.driver`), DRAM at
  :data:`hdl.board.HOST_DRAM_BASE`. The host keeps a copy of the DRAM and moves only
  what changed: :meth:`Device.write` marks the 64-byte blocks whose bytes changed, to
  upload before the next run; a run marks what the program can write (``writes=``,
  default its whole window) as changed on the board; :meth:`Device.read` fetches just
  the blocks it returns. ``counters`` as on ``verilator``.

The Amaranth simulator is not offered as a backend: the whole core runs there at a
few hundred cycles per second, too slow for a model.

DRAM: ``Device(..., dram_bytes=n)``, ``matmul(..., dram_bytes=n)``, CLI ``--dram-mib``.
The default is :func:`default_dram_bytes`: 64 MiB on ``golden`` (any size can be asked
for; the host memory is only touched where written) and ``verilator`` (its most), the
block-RAM window on a board.

Errors: a program that stops with a core error returns a :class:`RunResult` with
``error`` set (``RunResult.check()`` raises it); asking for more DRAM than the
backend has raises :class:`OutOfMemory` before anything runs, and its message says
what to raise.
"""

from __future__ import annotations

import json
import pathlib
import tempfile
from dataclasses import dataclass, field

import numpy as np

from hdl.config import FLOAT_DTYPES, CoreConfig, named_config
from hdl.isa import INSTR_BYTES

from sim.model.fp import to16_bits

__all__ = ["Device", "RunResult", "OutOfMemory", "CoreFault", "BACKENDS", "matmul",
           "GOLDEN_DRAM_BYTES", "default_dram_bytes", "max_dram_bytes", "BOARD_BLOCK"]

BACKENDS = ("golden", "verilator", "board")

#: The host's copy of a board's DRAM is tracked in blocks of this many bytes.
BOARD_BLOCK = 64

#: The golden backend's default DRAM (it takes any size: ``Device(dram_bytes=...)``).
GOLDEN_DRAM_BYTES = 64 << 20

#: How a user asks for more DRAM, for the error messages.
_RAISE = "pass dram_bytes= to Device or matmul (CLI: --dram-mib)"


def max_dram_bytes(config, backend):
    """The most DRAM ``backend`` can give ``config`` (``None``: no limit, golden)."""
    cfg = named_config(config)
    if backend == "golden":
        return None
    if backend == "verilator":
        from hdl.tops.simdram import sim_dram_bytes
        return sim_dram_bytes(cfg)
    if backend == "board":
        from hdl.tops.ulx3s import ULX3S
        return ULX3S.dram_bytes(cfg)
    raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")


def default_dram_bytes(config, backend):
    """DRAM a :class:`Device` gets unless told: :data:`GOLDEN_DRAM_BYTES` on ``golden``
    (capped by the address space), the whole simulated or block-RAM DRAM otherwise."""
    limit = max_dram_bytes(config, backend)
    if limit is None:
        return min(GOLDEN_DRAM_BYTES, 1 << named_config(config).axi_addr_width)
    return limit


class OutOfMemory(ValueError):
    """The tensors or program do not fit the backend's DRAM (or the DMA window)."""


class CoreFault(RuntimeError):
    """The core stopped with an error (``RunResult.check``)."""


@dataclass
class RunResult:
    """How a run ended, and the core's counters.

    ``counters``: ``instructions`` and ``tensor_macs`` on every backend; on
    ``verilator`` and ``board`` also ``cycles`` (START to DONE), ``tensor_active`` and the busy
    cycles of each engine (``busy_dma_in``, ``busy_dma_out``, ``busy_tensor``,
    ``busy_vector``), as the host interface's counters read them.
    """
    backend: str
    done: bool
    error: str = "NONE"
    detail: str | int = ""
    fault_addr: int | None = None
    counters: dict = field(default_factory=dict)
    wall_s: float | None = None

    @property
    def cycles(self):
        return self.counters.get("cycles")

    def utilization(self, config, macs=None):
        """MACs / (rows * cols * cycles), or ``None`` without a cycle count."""
        cfg = named_config(config)
        if not self.cycles:
            return None
        macs = self.counters.get("tensor_macs") if macs is None else macs
        return macs / (cfg.rows * cfg.cols * self.cycles)

    def check(self):
        """Raise :class:`CoreFault` unless the program ran to END without error."""
        if self.error != "NONE" or not self.done:
            raise CoreFault(f"the core stopped with {self.error}"
                            f"{' (' + str(self.detail) + ')' if self.detail not in ('', 0) else ''}"
                            f" at {self.fault_addr:#x}" if self.fault_addr is not None else
                            f"the core stopped with {self.error}")
        return self


def _ceil(a, b):
    return -(-a // b)


class Device:
    """One ncore with its DRAM, on a backend (``"golden"`` or ``"verilator"``).

    Memory is handed out by :meth:`alloc` (a bump allocator, 64-byte aligned, no
    free); :meth:`run` gives the core a DMA window covering everything allocated.
    """

    def __init__(self, config="default", backend="golden", dram_bytes=None, *, port=None,
                 baud=None, link=None):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {backend!r}")
        self.config: CoreConfig = named_config(config)
        self.backend = backend
        limit = max_dram_bytes(self.config, backend)
        self.link = None
        if dram_bytes is None:
            dram_bytes = default_dram_bytes(self.config, backend)
        if not isinstance(dram_bytes, int) or dram_bytes <= 0:
            raise ValueError(f"dram_bytes must be a positive number of bytes, not {dram_bytes!r}")
        top = 1 << self.config.axi_addr_width
        if dram_bytes > top:
            raise OutOfMemory(f"{dram_bytes} bytes of DRAM do not fit the core's "
                              f"{self.config.axi_addr_width}-bit AXI address space ({top} bytes)")
        if limit is not None and dram_bytes > limit:
            where = ("the simulated DRAM, hdl.tops.simdram.SIM_DRAM_BYTES"
                     if backend == "verilator" else "the board's block-RAM window")
            raise OutOfMemory(f"the {backend} backend's DRAM has {limit} bytes ({where}), "
                              f"not {dram_bytes}; the golden backend takes any size")
        if backend == "board":
            from hdl.tops.ulx3s import ULX3S
            from sim.compiler.board import BoardLink, UARTBoneClient
            if link is None:
                if port is None:
                    raise ValueError("the board backend needs the serial port (port=...)")
                link = BoardLink(UARTBoneClient(port, baud or ULX3S.baud), self.config)
            self.link = link
        self.dram_bytes = dram_bytes
        self.dram = np.zeros(dram_bytes, dtype=np.uint8)
        self.top = 0
        nblocks = _ceil(dram_bytes, BOARD_BLOCK)
        #: board: blocks written here and not yet uploaded / not known to match the board
        self._dirty = np.zeros(nblocks, dtype=bool)
        self._stale = np.ones(nblocks, dtype=bool)

    def memory_hint(self, need):
        """What to do when ``need`` bytes do not fit, for an :class:`OutOfMemory`."""
        limit = max_dram_bytes(self.config, self.backend)
        if limit is not None and need > limit:
            return (f"the {self.backend} backend has at most {limit} bytes; "
                    f"run on the golden backend with dram_bytes >= {need}")
        return f"{_RAISE} with at least {need} bytes"

    def close(self):
        """Close the board's serial port (other backends: nothing)."""
        if self.link is not None:
            self.link.client.close()

    # -- memory ------------------------------------------------------------------------

    def alloc(self, nbytes, align=64):
        """Reserve ``nbytes`` of DRAM; return the address."""
        addr = _ceil(self.top, align) * align
        if addr + nbytes > self.dram_bytes:
            raise OutOfMemory(f"out of DRAM: {nbytes} bytes at {addr:#x} would end past the "
                              f"{self.dram_bytes} bytes of this {self.backend} device; "
                              f"{self.memory_hint(addr + nbytes)}")
        self.top = addr + nbytes
        return addr

    def write(self, addr, data):
        """Copy an array's bytes (native little-endian layout, C order) to ``addr``."""
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        if addr < 0 or addr + raw.size > self.dram_bytes:
            raise OutOfMemory(f"write of {raw.size} bytes at {addr:#x} leaves the DRAM")
        if self.link is not None and raw.size:
            B = BOARD_BLOCK
            lo, hi = addr // B, _ceil(addr + raw.size, B)
            # a block only partly written keeps the board's other bytes: fetch it first
            for b in {lo, hi - 1}:
                if self._stale[b] and not (addr <= b * B and (b + 1) * B <= addr + raw.size):
                    self._fetch(b, b + 1)
            # upload what differs from the board's copy (all of a block not known)
            old = self.dram[lo * B:hi * B].reshape(-1, B)
            new = old.copy().reshape(-1)
            new[addr - lo * B:addr - lo * B + raw.size] = raw
            self._dirty[lo:hi] |= self._stale[lo:hi] | (old != new.reshape(-1, B)).any(axis=1)
            self._stale[lo:hi] = False
        self.dram[addr:addr + raw.size] = raw

    def read(self, addr, shape, dtype=np.uint8):
        """An array of ``shape`` and ``dtype`` from the bytes at ``addr`` (a copy)."""
        dtype = np.dtype(dtype)
        n = int(np.prod(shape)) * dtype.itemsize
        if addr < 0 or addr + n > self.dram_bytes:
            raise OutOfMemory(f"read of {n} bytes at {addr:#x} leaves the DRAM")
        if self.link is not None and n:
            self._fetch(addr // BOARD_BLOCK, _ceil(addr + n, BOARD_BLOCK))
        return self.dram[addr:addr + n].copy().view(dtype).reshape(shape)

    def sync(self, end=None):
        """Board: bring the host's copy of DRAM ``[0, end)`` (default: everything
        allocated) up to date; then ``self.dram`` is the board's. Other backends:
        nothing to do."""
        if self.link is not None:
            self._fetch(0, _ceil(self.top if end is None else end, BOARD_BLOCK))

    # -- the board's copy ----------------------------------------------------------------

    @staticmethod
    def _runs(flags, lo, hi):
        """(start, stop) block runs where ``flags[lo:hi]`` is set."""
        idx = np.flatnonzero(flags[lo:hi]) + lo
        if idx.size == 0:
            return []
        cuts = np.flatnonzero(np.diff(idx) > 1)
        starts = np.concatenate(([idx[0]], idx[cuts + 1]))
        stops = np.concatenate((idx[cuts], [idx[-1]])) + 1
        return list(zip(starts.tolist(), stops.tolist()))

    def _fetch(self, lo, hi):
        B = BOARD_BLOCK
        for s, e in self._runs(self._stale, lo, hi):
            e_byte = min(e * B, self.dram_bytes)
            self.dram[s * B:e_byte] = self.link.read_dram(s * B, e_byte - s * B)
            self._stale[s:e] = False

    def _upload(self):
        B = BOARD_BLOCK
        for s, e in self._runs(self._dirty, 0, self._dirty.size):
            e_byte = min(e * B, self.dram_bytes)
            self.link.write_dram(s * B, self.dram[s * B:e_byte])
            self._dirty[s:e] = False

    def load_program(self, program):
        """Encode a :class:`sim.isa.asm.Program` (or bytes) into DRAM; return its address."""
        code = program if isinstance(program, (bytes, bytearray)) else program.encode()
        addr = self.alloc(len(code), align=INSTR_BYTES)
        self.write(addr, np.frombuffer(bytes(code), dtype=np.uint8))
        return addr

    # -- running -----------------------------------------------------------------------

    def run(self, prog_addr, *, win=None, watchdog=100_000, max_cycles=None,
            writes=None) -> RunResult:
        """Run the program at ``prog_addr``; DRAM changes in place.

        ``win``: the DMA window (default everything allocated); ``watchdog``: the
        core's no-progress limit in cycles (0: off); ``max_cycles``: the simulation's
        own limit (verilator; default from the DRAM traffic the window allows).
        ``writes``: board only, ``[(addr, nbytes), ...]`` the program can write (default:
        the whole window); the host's copy of the rest is still taken as the board's.
        """
        win = win or (0, self.top)
        if self.backend == "golden":
            return self._run_golden(prog_addr, win)
        if self.backend == "board":
            return self._run_board(prog_addr, win, watchdog, writes)
        return self._run_verilator(prog_addr, win, watchdog, max_cycles)

    def _run_board(self, prog_addr, win, watchdog, writes):
        import time
        t0 = time.perf_counter()
        self._upload()
        info = self.link.run(prog_addr, win, watchdog)
        for a, n in writes if writes is not None else [(win[0], win[1] - win[0])]:
            self._stale[a // BOARD_BLOCK:_ceil(a + n, BOARD_BLOCK)] = True
        return self._result("board", info, time.perf_counter() - t0)

    @staticmethod
    def _result(backend, info, wall_s):
        from hdl.regmap import COUNTERS
        counters = {name.lower(): info[name.lower()] for name, _ in COUNTERS}
        return RunResult(backend, bool(info["DONE"]), info["error"],
                         info["detail"] if info["error"] != "NONE" else "",
                         info["fault_addr"] if info["error"] != "NONE" else None,
                         counters, wall_s)

    def _run_golden(self, prog_addr, win):
        from sim.model.iss import run as iss_run
        from sim.isa.asm import Instruction
        image = self.dram[:max(self.top, win[1])]
        r = iss_run(self.config, image, prog_addr, win_base=win[0], win_limit=win[1])
        self.dram[:r.dram.size] = r.dram
        macs = 0
        instrs = 0
        for idx in r.executed:
            a = prog_addr + INSTR_BYTES * idx
            word = int.from_bytes(bytes(image[a:a + INSTR_BYTES]), "little")
            ins = Instruction.decode(word, self.config)
            instrs += 1
            if ins.op == "MATMUL":
                macs += ins.cmd.k * ins.cmd.m * ins.cmd.n
        return RunResult("golden", r.done, r.error, r.detail, r.fault_addr,
                         {"instructions": instrs, "tensor_macs": macs})

    def _run_verilator(self, prog_addr, win, watchdog, max_cycles):
        from sim.flow.runner import run_cocotb
        used = max(self.top, win[1])
        if max_cycles is None:
            max_cycles = 2_000_000 + 200 * used
        with tempfile.TemporaryDirectory(prefix="ncore-job-") as d:
            job = pathlib.Path(d) / "job.npz"
            out = pathlib.Path(d) / "out.npz"
            np.savez(job, dram=self.dram[:used], prog_addr=prog_addr, win_base=win[0],
                     win_limit=win[1], watchdog=watchdog, max_cycles=max_cycles, used=used)
            run_cocotb("neuron_core_sim", "tb.core.test_run", "run_job", self.config,
                       extra_env={"NCORE_JOB": str(job), "NCORE_JOB_OUT": str(out)},
                       rerun="the runtime's verilator backend (job file removed)")
            res = np.load(out)
            self.dram[:used] = res["dram"][:used]
            info = json.loads(str(res["result"]))
        return self._result("verilator", info, info.get("wall_s"))


def _operand_bits(x, dtype):
    """``x`` as stored in DRAM: int8 values, or BF16/FP16 bit patterns (uint16).
    Float inputs are rounded to nearest even; uint16 arrays are taken as patterns."""
    x = np.asarray(x)
    if dtype == "int8":
        if x.dtype != np.int8:
            if not np.issubdtype(x.dtype, np.integer) or x.min(initial=0) < -128 or \
                    x.max(initial=0) > 127:
                raise ValueError("int8 operands must be integers in -128..127")
            x = x.astype(np.int8)
        return x
    if x.dtype == np.uint16:
        return x
    if dtype in FLOAT_DTYPES:
        return to16_bits(x, dtype)
    raise ValueError(f"dtype must be 'int8', 'bf16' or 'fp16', not {dtype!r}")


def matmul(A, B, dtype="int8", *, config="default", backend="golden",
           double_buffer=True, return_result=False, dram_bytes=None):
    """``C = A @ B`` on one core: ``A`` M x K, ``B`` K x N; C is INT32 (``int8``) or
    FP32 (``bf16``/``fp16``: float operands are rounded to the type first, uint16
    arrays are taken as bit patterns). With ``return_result`` also the
    :class:`RunResult` (counters, cycles on ``verilator``). ``dram_bytes``: the
    device's DRAM (default :func:`default_dram_bytes`)."""
    from sim.compiler.gemm import GemmLayout, gemm_program
    cfg = named_config(config)
    Ab = _operand_bits(A, dtype)
    Bb = _operand_bits(B, dtype)
    if Ab.ndim != 2 or Bb.ndim != 2 or Ab.shape[1] != Bb.shape[0]:
        raise ValueError(f"shape mismatch: A {Ab.shape} @ B {Bb.shape}")
    M, K = Ab.shape
    N = Bb.shape[1]
    dev = Device(cfg, backend, dram_bytes)
    eb = 1 if dtype == "int8" else 2
    a = dev.alloc(K * M * eb)
    b = dev.alloc(K * N * eb)
    c = dev.alloc(4 * M * N)
    L = GemmLayout(M, N, K, dtype, a_addr=a, b_addr=b, c_addr=c)
    dev.write(a, np.ascontiguousarray(Ab.T))
    dev.write(b, Bb)
    p = dev.load_program(gemm_program(cfg, L, double_buffer=double_buffer))
    r = dev.run(p).check()
    C = dev.read(c, (M, N), np.int32 if dtype == "int8" else np.float32)
    return (C, r) if return_result else C
