"""A cycle estimate of a program: a small event model of the controller and the engines.

:func:`simulate` walks the program in order as the controller does (``docs/isa.md``,
"Queues"): the decoder dispatches one instruction per cycle into its engine's queue
(``config.queue_depth`` entries; it stops while the target queue is full, and at a
``SEM`` until its wait holds); the head of a queue is issued when its semaphore wait
holds and the engine's in-flight FIFO (8 commands) has room; each engine runs its
commands one after another. A signal counts when its instruction has finished, and a
wait ``(s, v)`` holds from the time of the ``v``-th signal of ``s``. Durations come from
:class:`Timing`, a per-instruction model:

* DMA (each direction its own engine): ``latency`` (the DRAM round trip and the
  descriptor's set-up, ``load_latency`` / ``store_latency``) plus one cycle per bus word
  of every row plus ``row_cycles`` per row. With ``dma_overlap`` the engine starts a
  queued descriptor's requests while the previous one's data still streams, so the
  latency is exposed once per burst of back-to-back descriptors (the DMA change of
  issue 23); without it every descriptor pays it. A store shares SBUF's one read port
  with the tensor engine's fetchers: while the array streams, each of its words and
  rows takes ``store_share`` (INT8 matmuls) or ``store_share_float`` (BF16/FP16) times
  as long (``make bench`` measures both: "DMA-out stores while the array streams").
* MATMUL: the moving operand streams ``n`` columns (``mm_gap`` cycles between two
  matmuls; the next stationary tile loads while the current one streams), and its
  results are in PSUM ``mm_fill`` cycles after the last column entered the array. A
  matmul accumulating into the entries the one before it wrote waits for PSUM's
  read-modify-write of them when it is shorter than that pipeline: ``A + 1 - n`` more
  cycles for ``n <= A`` columns (``A`` = :attr:`hdl.psum.PSUM.add_latency`, from
  :func:`hdl.config.psum_add_latency`: 7 with floats elaborated, else 2).
* ACT: ``act_fixed + n`` cycles (all partitions in parallel).

The figures of :data:`DEFAULT_TIMING` are calibrated against the RTL (``neuron_core_sim``,
SimDram with its first read beat 21 cycles after the request) with
``python -m sim.compiler.calibrate``, which prints the estimate next to the measured
cycles for a set of GEMMs; ``docs/compiler.md`` ("Cost model") has the figures. When
the DMA engines change (descriptor overlap), re-run it and update :data:`DEFAULT_TIMING`
(``dma_overlap=True`` and the new latencies).

Waits must be for signals of *earlier* instructions in program order (every program the
compiler emits is written that way, which also makes it free of deadlocks); a wait on a
later signal raises ``ValueError``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

from hdl.config import psum_add_latency

__all__ = ["Timing", "DEFAULT_TIMING", "Estimate", "simulate", "estimate", "SketchProgram"]

#: Entries of each engine's in-flight FIFO in the controller (``docs/isa.md``).
INFLIGHT = 8


@dataclass(frozen=True)
class Timing:
    """Per-instruction durations of the event model (cycles)."""
    load_latency: int = 38          # DMA-in: per descriptor (or per burst with dma_overlap)
    store_latency: int = 62         # DMA-out: per descriptor (write responses included)
    row_cycles: float = 1.0         # DMA: per row (partition) of a descriptor
    dma_overlap: bool = False       # DMA engines overlap consecutive descriptors
    mm_gap: int = 2                 # tensor: cycles between two INT8 matmuls' streams
    mm_gap_float: int = 1           # the same for BF16/FP16 matmuls
    store_share: float = 1.0        # DMA-out: word and row cost while INT8 matmuls stream
    store_share_float: float = 1.0  # the same while BF16/FP16 matmuls stream
    mm_fill: int = 24               # tensor: last column in -> results in PSUM
    act_fixed: int = 16             # vector: per ACT, besides one cycle per column
    dispatch: int = 1               # decoder: cycles per instruction

    def with_(self, **kw):
        return replace(self, **kw)


#: Calibrated on the current RTL, whose DMA engines overlap consecutive descriptors
#: (``python -m sim.compiler.calibrate --fit --dma-overlap`` on ``make bench``'s GEMMs);
#: the two store shares come from ``make bench``'s ``bench_store_share``: DMA-out's busy
#: cycles beside INT8 / BF16 matmuls (5,488 / 6,251 for 32 stores of 8 x 128 bytes),
#: less about one latency, over the model's word and row cycles of those stores
#: (4,096 + 256). Mean error 2.8%, largest 9.3% (BF16 (100,37,71), underestimated);
#: ``docs/compiler.md``.
DEFAULT_TIMING = Timing(load_latency=46, store_latency=54, dma_overlap=True,
                        mm_fill=32, act_fixed=24, store_share=1.25, store_share_float=1.42)


@dataclass
class Estimate:
    """What :func:`simulate` found: the cycles from start to END, each engine's busy
    cycles, and per instruction its start and end (``None`` for SEM/END's engine)."""
    cycles: int
    busy: dict
    start: list
    end: list

    def __int__(self):
        return int(self.cycles)


def _dma_words(c, bus):
    first = c.addr % bus
    return c.rows * (-(-(first + c.row_bytes) // bus))


def simulate(program, config, timing: Timing | None = None) -> Estimate:
    """The event model's run of ``program`` (a :class:`sim.isa.asm.Program` or a list of
    instructions) on ``config``. See the module docstring. Two passes: the first finds
    when the array streams (a store is written in program order before the later
    matmuls that run beside it), the second times the stores inside those streams."""
    T = timing or DEFAULT_TIMING
    ins = program.instructions if hasattr(program, "instructions") else list(program)
    est, streams = _pass(ins, config, T, [])
    if streams:
        est, _ = _pass(ins, config, T, streams)
    return est


def _pass(ins, cfg, T, streams):
    bus = cfg.axi_data_bytes
    new_streams = []
    qd = cfg.queue_depth
    signals = {}                    # sem -> sorted signal times
    n = len(ins)
    start = [None] * n
    end = [None] * n
    issued = {q: [] for q in ("dma_in", "dma_out", "tensor", "vector")}
    ends = {q: [] for q in issued}
    free = {q: 0 for q in issued}   # engine free (DMA: beats free; tensor: stream free)
    busy = {q: 0 for q in issued}
    last_issue = {q: 0 for q in issued}
    dec = 0                         # the decoder's time
    last_mm = None                  # PSUM target of the previous matmul
    add_latency = psum_add_latency(cfg.has_float)
    last_end = 0

    def sem_time(w, i):
        sem, v = w
        if v <= 0:
            return 0
        ts = signals.get(sem, [])
        if len(ts) < v:
            raise ValueError(f"instruction {i} waits for signal {v} of semaphore {sem}, "
                             f"which only later instructions give")
        return ts[v - 1]

    def signal(x, t):
        if x.signal is not None:
            bisect.insort(signals.setdefault(x.signal, []), t)

    for i, x in enumerate(ins):
        q = x.queue if hasattr(x, "queue") else None
        if x.op in ("SEM", "END"):
            t = dec + T.dispatch
            if x.wait is not None:
                t = max(t, sem_time(x.wait, i))
            if x.op == "END":
                t = max([t, last_end] + [free[k] for k in free])
                start[i] = end[i] = t
                return Estimate(int(round(t)), busy, start[:i + 1], end[:i + 1]), new_streams
            start[i] = end[i] = t
            signal(x, t)
            dec = t
            continue
        # dispatch: one per cycle, into a queue with room (an entry leaves at issue)
        d = dec + T.dispatch
        qi = issued[q]
        if len(qi) >= qd:
            d = max(d, qi[-qd])
        dec = d
        # issue: in order, wait holds, in-flight FIFO has room
        s = max(d, last_issue[q])
        if x.wait is not None:
            s = max(s, sem_time(x.wait, i))
        if len(ends[q]) >= INFLIGHT:
            s = max(s, ends[q][-INFLIGHT])
        qi.append(s)
        last_issue[q] = s
        c = x.cmd
        if x.op == "DMA":
            lat = T.store_latency if c.store else T.load_latency
            work = _dma_words(c, bus) + T.row_cycles * c.rows
            if T.dma_overlap:
                # requests go out at issue; data streams once the previous data is done
                b0 = max(s + lat, free[q])
                e = b0 + (_shared(work, b0, streams) if c.store else work)
                busy[q] += e - max(s, free[q])
            else:
                b0 = max(s, free[q])
                e = b0 + lat + work
                busy[q] += e - b0
            free[q] = e
            st = b0
        elif x.op == "MATMUL":
            gap = T.mm_gap if c.dtype == "int8" else T.mm_gap_float
            tgt = (c.bank, c.psum_off)
            if c.acc and tgt == last_mm:
                gap += max(0, add_latency + 1 - c.n)
            last_mm = tgt
            b0 = max(s, free[q])
            free[q] = b0 + c.n + gap
            e = b0 + c.n + T.mm_fill
            share = T.store_share if c.dtype == "int8" else T.store_share_float
            if share != 1.0:
                new_streams.append((b0, b0 + c.n, share))
            busy[q] += c.n + gap
            st = b0
        elif x.op == "ACT":
            b0 = max(s, free[q])
            e = b0 + T.act_fixed + c.n
            free[q] = e
            busy[q] += e - b0
            st = b0
        else:
            raise ValueError(f"unknown op {x.op}")
        ends[q].append(e)
        start[i], end[i] = st, e
        last_end = max(last_end, e)
        signal(x, e)
    return (Estimate(int(round(max([dec, last_end] + list(free.values())))), busy, start, end),
            new_streams)


def _shared(work, b0, streams):
    """Cycles of ``work`` (the word and row cycles of a store alone) from ``b0`` when
    each takes ``share`` times as long inside the array's streams ``(start, end,
    share)`` (sorted by start, not overlapping)."""
    if not streams:
        return work
    t, rem = b0, work
    for a, z, share in streams[max(0, bisect.bisect_right(streams, (b0,)) - 1):]:
        if z <= t:
            continue
        if a > t:
            if rem <= a - t:
                break
            rem -= a - t
            t = a
        cap = (z - t) / share
        if rem <= cap:
            return t + rem * share - b0
        rem -= cap
        t = z
    return t + rem - b0


def estimate(program, config, timing: Timing | None = None) -> int:
    """The estimated cycles of ``program`` (:func:`simulate`)."""
    return simulate(program, config, timing).cycles


class _Ins:
    __slots__ = ("op", "cmd", "wait", "signal", "queue")

    def __init__(self, op, cmd, wait, signal):
        self.op, self.cmd, self.wait, self.signal = op, cmd, wait, signal
        if op == "DMA":
            self.queue = "dma_out" if cmd.store else "dma_in"
        else:
            self.queue = {"MATMUL": "tensor", "ACT": "vector"}.get(op, "seq")


class SketchProgram:
    """A stand-in for :class:`sim.isa.asm.Program` that only records what :func:`simulate`
    needs (no encoding, no checks): the compiler writes candidate schedules into one to
    estimate them quickly. Semaphores are kept by name."""

    def __init__(self, config):
        self.config = config
        self.instructions = []
        self._signals = {}

    def __len__(self):
        return len(self.instructions)

    def _add(self, op, cmd, wait, signal):
        if signal is not None:
            self._signals[signal] = self._signals.get(signal, 0) + 1
        self.instructions.append(_Ins(op, cmd, wait, signal))
        return len(self.instructions) - 1

    def dma(self, cmd, *, wait=None, signal=None):
        return self._add("DMA", cmd, wait, signal)

    def matmul(self, cmd, *, wait=None, signal=None):
        return self._add("MATMUL", cmd, wait, signal)

    def act(self, cmd, *, wait=None, signal=None):
        return self._add("ACT", cmd, wait, signal)

    def sem(self, *, wait=None, signal=None):
        return self._add("SEM", None, wait, signal)

    def end(self, *, wait=None):
        return self._add("END", None, wait, None)

    def signals(self, name):
        return self._signals.get(name, 0)
