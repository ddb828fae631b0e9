"""Random, correct ncore programs (for differential tests of the ISS and the RTL).

:func:`random_program` builds a program of random legal DMA loads, MATMULs, ACTs and
DMA stores whose semaphores make it race-free by construction, together with a DRAM
image holding random input data and the program itself. :func:`racy_variant` removes
one needed wait again, so :func:`sim.isa.races.find_races` has something to find.

Synchronisation scheme
----------------------
Every engine instruction signals its queue's semaphore (``q_dma_in``, ``q_dma_out``,
``q_tensor``, ``q_vector``), and nothing else signals those, so the ``r``-th
instruction of queue ``Q`` has finished exactly when ``q_Q >= r``. The generator keeps
the vector clocks of :mod:`sim.isa.races` as it goes (every wait names an earlier
instruction, so program order is a topological order) and, for a new instruction
``j``, finds per other queue the latest earlier instruction that conflicts with ``j``
(same bytes, one writing) and is not yet ordered before ``j``. One of those queues is
waited for by ``j``'s own wait, the others by SEM instructions inserted just before
``j``. Random extra waits and SEM barriers (some signalling a ``seq`` semaphore that
later instructions wait for) are sprinkled in. Waits only ever refer to earlier
instructions, so the program cannot deadlock whatever the queue depth.

Memory use
----------
SBUF and PSUM offsets are drawn mostly from a small "hot" area at the start of each
partition (PSUM: of each bank), so instructions overlap often and the semaphores
matter. The DRAM window ``[0, dram_size)`` is split into three disjoint regions in
random order: inputs (random data; bf16/fp16 bit patterns of modest values when the
configuration has floats, random bytes otherwise), outputs (zeros; every DMA store
writes there), and the program (placed at a random 32-byte aligned address in its
region, which is sized for the worst case of four instructions per generated
command). Besides loads from the inputs, a few loads ("reload" in ``mix``) read back
from the output area, which makes DRAM ordering between the two DMA queues matter.
"""

from __future__ import annotations

import numpy as np

from hdl.formats import ACT_BYTES, DTYPE_BYTES, SRC_BYTES

import sim.model.vector as act_model
import sim.model.dma as dma_model
from sim.isa.asm import Instruction, Program
from sim.isa.races import QUEUES, accesses, find_races
from sim.model.tensor import Matmul, TensorModel

__all__ = ["random_program", "racy_variant", "DEFAULT_MIX", "QUEUE_SEMS", "SHARED_SEM"]

#: Relative frequencies of the generated commands.
DEFAULT_MIX = {"load": 3, "matmul": 3, "act": 2, "store": 2, "reload": 0.5, "accumulate": 0}
#: The semaphore each engine queue signals.
QUEUE_SEMS = {q: f"q_{q}" for q in QUEUES[:4]}
_QI = {q: n for n, q in enumerate(QUEUES)}
_SEQ = _QI["seq"]
_NQ = len(QUEUES)


def _ri(rng, lo, hi):
    """A random integer in ``[lo, hi]`` (``lo`` if the range is empty)."""
    return lo if hi <= lo else int(rng.integers(lo, hi + 1))


def _overlap(a, b):
    """Whether two access lists (:func:`sim.isa.races.accesses`) conflict."""
    for (ma, pa0, pa1, la, ha, wa) in a:
        for (mb, pb0, pb1, lb, hb, wb) in b:
            if ma == mb and (wa or wb) and pa0 < pb1 and pb0 < pa1 and la < hb and lb < ha:
                return True
    return False


#: The semaphore the tensor and vector queues share in ``shared=True`` programs.
SHARED_SEM = "q_tv"


class _Gen:
    def __init__(self, config, rng, n, dram_size, mix, max_rows, shared=False,
                 checkpoints=0.0):
        self.c = config
        self.rng = rng
        self.n = n
        self.shared = shared
        self.checkpoints = checkpoints
        self.commands = 0                       # DMA, MATMUL and ACT instructions so far
        # the semaphore each queue signals (tensor and vector share one if ``shared``)
        self.qsem = dict(QUEUE_SEMS)
        if shared:
            self.qsem["tensor"] = self.qsem["vector"] = SHARED_SEM
        self.mix = dict(DEFAULT_MIX if mix is None else mix)
        if not self.mix or any(k not in DEFAULT_MIX for k in self.mix) \
                or any(v < 0 for v in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ValueError(f"mix must map some of {list(DEFAULT_MIX)} to weights, not {mix!r}")
        self.max_rows = max_rows if max_rows is not None else max(config.rows, config.cols)
        if self.max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, not {max_rows!r}")
        if config.n_sems < 5:
            raise ValueError(f"random programs need 5 semaphores, the configuration has "
                             f"{config.n_sems}")
        if n > 65535:
            raise ValueError(f"at most 65535 commands (16-bit semaphores), not {n}")
        self.prog = Program(config)
        self.tm = TensorModel(config)          # for its check() only
        # sizes of the hot areas
        self.nmax = min(config.psum_depth, 16)
        self.hot = min(config.sbuf_bytes, max(128, 2 * config.cols, 2 * self.nmax))
        self.phot = min(config.psum_depth, 32)          # hot entries per PSUM bank
        # DRAM layout
        reserve = 32 * (4 * n + 2)
        if 2 * reserve > dram_size or dram_size < 1024:
            raise ValueError(f"dram_size={dram_size} is too small for {n} commands "
                             f"(need at least {max(2 * reserve, 1024)})")
        region = ((dram_size - reserve) // 2) // 32 * 32
        sizes = {"in": region, "out": region, "prog": reserve}
        order = list(sizes)
        rng.shuffle(order)
        self.base, a = {}, 0
        for name in order:
            self.base[name] = a
            a += sizes[name]
        self.size = sizes
        self.dram_size = dram_size
        # happens-before bookkeeping (vector clocks as sim.isa.races)
        self.count = [0] * _NQ
        self.hist = [[] for _ in range(_NQ)]   # per queue: (vend, accesses)
        self.last_start = [[0] * _NQ for _ in range(_NQ)]
        self.last_end = [[0] * _NQ for _ in range(_NQ)]
        self.barrier = [0] * _NQ                # start clock of the last SEM
        self.seq_sems = []                      # start clocks of SEMs signalling "seq"

    # -- clocks -----------------------------------------------------------------------

    def _base(self, qi):
        return [max(x, y) for x, y in zip(self.last_start[qi], self.barrier)]

    def _wait_clock(self, wait):
        name, v = wait
        if name == "seq":
            return self.seq_sems[v - 1]
        if name == SHARED_SEM:
            # only ever waited for by a SEM, for every signal so far (see _shared_barrier)
            qs = [_QI["tensor"], _QI["vector"]]
            assert v == sum(self.count[q] for q in qs)
            ends = [self.hist[q][-1][0] for q in qs if self.hist[q]]
            return [max(x) for x in zip(*ends)]
        qi = _QI[name[2:]]
        return self.hist[qi][v - 1][0]

    def _shared_barrier(self):
        """A SEM waiting for every tensor and vector instruction so far: the one sound
        wait on a semaphore two engines signal. The decoder holds every later
        instruction until a SEM's wait is met, so only earlier instructions can have
        signalled, and ``q_tv >= (their number)`` means all of them finished; a wait
        for fewer would be met by whichever finished first."""
        total = self.count[_QI["tensor"]] + self.count[_QI["vector"]]
        self._emit("SEM", None, _SEQ, (SHARED_SEM, total), None)

    def _tv(self, q):
        return self.shared and QUEUES[q] in ("tensor", "vector")

    def _emit(self, op, cmd, qi, wait, signal, acc=()):
        start = self._base(qi)
        if wait is not None:
            start = [max(x, y) for x, y in zip(start, self._wait_clock(wait))]
        end = [max(x, y) for x, y in zip(start, self.last_end[qi])]
        self.count[qi] += 1
        end[qi] = self.count[qi]
        if op == "SEM":
            self.prog.sem(wait=wait, signal=signal)
            self.barrier = start
            end = list(start)
            end[qi] = self.count[qi]
            if signal == "seq":
                self.seq_sems.append(end)
        else:
            getattr(self.prog, op.lower())(cmd, wait=wait, signal=signal)
        self.last_start[qi] = start
        self.last_end[qi] = end
        self.hist[qi].append((end, acc))

    # -- one command with its synchronisation --------------------------------------------

    def add(self, op, cmd):
        rng = self.rng
        queue = Instruction(op, cmd).queue
        qi = _QI[queue]
        acc = accesses(self.c, Instruction(op, cmd))
        if rng.random() < 0.04:                 # a random barrier
            self._random_sem()
        needs = self._needs(qi, acc)
        wait = None
        while needs:
            q = list(needs)[_ri(rng, 0, len(needs) - 1)]
            if self._tv(q):
                self._shared_barrier()
            elif len(needs) == 1:
                wait = (self.qsem[QUEUES[q]], needs[q])
                break
            else:
                self._emit("SEM", None, _SEQ, (self.qsem[QUEUES[q]], needs[q]), None)
            needs = self._needs(qi, acc)
        if wait is None and rng.random() < 0.15:
            wait = self._random_wait(qi)
        self._emit(op, cmd, qi, wait, self.qsem[queue], acc)
        self.commands += 1
        if op in ("MATMUL", "ACT") and rng.random() < self.checkpoints \
                and self.commands < self.n:
            self.add("DMA", self._checkpoint(op, cmd))

    def _checkpoint(self, op, cmd):
        """A store of what ``cmd`` just wrote (its PSUM or SBUF tile, clipped to
        ``max_rows`` rows and 48 bytes a row) to the output area, so the final DRAM image
        holds this intermediate result even if a later instruction overwrites it.
        (:meth:`add` makes it wait for ``cmd``.)"""
        c = self.c
        if op == "MATMUL":
            rows, part = min(cmd.m, self.max_rows), 0
            off = 4 * (cmd.bank * c.psum_depth + cmd.psum_off)
            row_bytes, mem = min(4 * cmd.n, 48), "psum"
        else:
            rows, part = min(cmd.parts, self.max_rows), cmd.dst_p0
            off, row_bytes, mem = cmd.dst_off, min(cmd.n * ACT_BYTES[cmd.dst_type], 48), "sbuf"
        addr, stride = self._dram("out", rows, row_bytes)
        return dma_model.Dma(addr=addr, rows=rows, row_bytes=row_bytes, row_stride=stride,
                             partition=part, offset=off, store=True, mem=mem,
                             tag=_ri(self.rng, 0, 255))

    def _needs(self, qi, acc):
        """``{queue: rank}``: the latest conflicting instruction of each other queue not
        yet ordered before a new instruction of queue ``qi``."""
        base = self._base(qi)
        needs = {}
        for q in range(4):
            if q == qi:
                continue
            h = self.hist[q]
            for r in range(len(h), base[q], -1):
                if _overlap(h[r - 1][1], acc):
                    needs[q] = r
                    break
        return needs

    def _random_wait(self, qi):
        choices = [q for q in range(4) if q != qi and self.count[q]]
        if self.seq_sems and self.rng.random() < 0.2:
            return ("seq", _ri(self.rng, 1, len(self.seq_sems)))
        if not choices:
            return None
        q = choices[_ri(self.rng, 0, len(choices) - 1)]
        if self._tv(q):
            if qi != _SEQ:
                return None                     # only a SEM may wait on the shared one
            total = self.count[_QI["tensor"]] + self.count[_QI["vector"]]
            return (SHARED_SEM, total)
        return (self.qsem[QUEUES[q]], _ri(self.rng, 1, self.count[q]))

    def _random_sem(self):
        wait = self._random_wait(_SEQ)
        signal = "seq" if self.rng.random() < 0.5 else None
        self._emit("SEM", None, _SEQ, wait, signal)

    # -- random commands ------------------------------------------------------------------

    def _dram(self, area, rows, row_bytes):
        """``(addr, row_stride)`` of a tile inside DRAM region ``area``."""
        rng = self.rng
        lo, size = self.base[area], self.size[area]
        row_bytes = min(row_bytes, size)
        kind = rng.random()
        if rows == 1 or kind < 0.2:
            stride = row_bytes
        elif kind < 0.3:
            stride = 0
        elif kind < 0.5:
            stride = _ri(rng, 0, row_bytes)             # overlapping rows
        else:
            stride = _ri(rng, row_bytes, 3 * row_bytes + 64)
        if (rows - 1) * stride + row_bytes > size:
            stride = (size - row_bytes) // max(rows - 1, 1)
        span = (rows - 1) * stride + row_bytes
        return lo + _ri(rng, 0, size - span), stride

    def _sbuf_off(self, nbytes, limit=None, align=1):
        """A byte offset of ``nbytes`` bytes in an SBUF partition, mostly in the hot area."""
        limit = self.c.sbuf_bytes if limit is None else limit
        top = self.hot if self.rng.random() < 0.9 else limit
        top = max(min(top, limit), nbytes)
        return _ri(self.rng, 0, (top - nbytes) // align) * align

    def _psum_byte(self, nbytes):
        c = self.c
        bank = _ri(self.rng, 0, c.psum_banks - 1)
        top = 4 * self.phot if self.rng.random() < 0.9 else 4 * c.psum_depth
        base = 4 * bank * c.psum_depth
        total = 4 * c.psum_entries
        off = base + _ri(self.rng, 0, max(top - nbytes, 0))
        return min(off, total - nbytes)

    def load(self, area="in"):
        c, rng = self.c, self.rng
        rows = _ri(rng, 1, min(self.max_rows, c.rows))
        part = _ri(rng, 0, c.rows - rows)
        row_bytes = _ri(rng, 1, min(48, c.sbuf_bytes))
        off = self._sbuf_off(row_bytes)
        addr, stride = self._dram(area, rows, row_bytes)
        return dma_model.Dma(addr=addr, rows=rows, row_bytes=row_bytes, row_stride=stride,
                             partition=part, offset=off, store=False, mem="sbuf",
                             tag=_ri(rng, 0, 255))

    def store(self):
        c, rng = self.c, self.rng
        psum = rng.random() < 0.4
        parts = c.cols if psum else c.rows
        rows = _ri(rng, 1, min(self.max_rows, parts))
        part = _ri(rng, 0, parts - rows)
        if psum:
            row_bytes = _ri(rng, 1, min(48, 4 * c.psum_entries))
            off = self._psum_byte(row_bytes)
        else:
            row_bytes = _ri(rng, 1, min(48, c.sbuf_bytes))
            off = self._sbuf_off(row_bytes)
        addr, stride = self._dram("out", rows, row_bytes)
        return dma_model.Dma(addr=addr, rows=rows, row_bytes=row_bytes, row_stride=stride,
                             partition=part, offset=off, store=True,
                             mem="psum" if psum else "sbuf", tag=_ri(rng, 0, 255))

    def matmul(self):
        c, rng = self.c, self.rng
        dtype = c.dtypes[_ri(rng, 0, len(c.dtypes) - 1)]
        eb = DTYPE_BYTES[dtype]
        k = _ri(rng, 1, c.rows)
        p0 = _ri(rng, 0, c.rows - k)
        elems = c.sbuf_bytes // eb
        m = _ri(rng, 1, min(c.cols, elems))
        # a strided moving tile one time in four (step up to one SBUF word)
        skip = _ri(rng, 1, c.sbuf_word_bytes // eb - 1) \
            if c.sbuf_word_bytes > eb and rng.random() < 0.25 else 0
        n = _ri(rng, 1, min(self.nmax, (elems - 1) // (skip + 1) + 1))
        s_off = self._sbuf_off(m * eb, align=eb) // eb
        x_off = self._sbuf_off(((n - 1) * (skip + 1) + 1) * eb, align=eb) // eb
        bank = _ri(rng, 0, c.psum_banks - 1)
        top = self.phot if rng.random() < 0.9 else c.psum_depth
        psum_off = _ri(rng, 0, max(top - n, 0))
        cmd = Matmul(k=k, m=m, n=n, p0=p0, s_off=s_off, x_off=x_off, bank=bank,
                     psum_off=psum_off, acc=bool(rng.random() < 0.5), dtype=dtype,
                     x_skip=skip)
        assert self.tm.check(cmd) == "NONE", cmd
        return cmd

    def accumulate(self):
        """2 to 4 short MATMULs back to back into the same PSUM entries, all but the
        first accumulating (other operands each time): PSUM's read-modify-write must
        keep up, and a reader waiting on the last must see every update."""
        rng = self.rng
        first = self.matmul()
        n = min(first.n, 4)
        for i in range(min(_ri(rng, 2, 4), self.n - self.commands)):
            nxt = self.matmul() if i else first
            cmd = Matmul(k=nxt.k, m=nxt.m, n=n, p0=nxt.p0, s_off=nxt.s_off, x_off=nxt.x_off,
                         bank=first.bank, psum_off=first.psum_off, acc=bool(i) or first.acc,
                         dtype=nxt.dtype, x_skip=nxt.x_skip)
            if self.tm.check(cmd) != "NONE":
                break
            self.add("MATMUL", cmd)

    def act(self):
        c, rng = self.c, self.rng
        for _ in range(100):
            src_psum = rng.random() < 0.7
            src_fp = c.has_float and rng.random() < 0.5
            if src_fp:
                dst = act_model.FLOAT_OUT[_ri(rng, 0, 2)]
            else:
                dst = act_model.INT_OUT[_ri(rng, 0, 1)]
            size = ACT_BYTES[dst]
            src_parts = c.cols if src_psum else c.rows
            parts = _ri(rng, 1, min(src_parts, c.rows, self.max_rows))
            src_p0 = _ri(rng, 0, src_parts - parts)
            dst_p0 = _ri(rng, 0, c.rows - parts)
            n = _ri(rng, 1, min(self.nmax, c.sbuf_bytes // 4))
            # the CNN forms: an SBUF activation as the operands, a second operand
            # (ADD, MAX), strides
            src_type = "ACC"
            if not src_psum and rng.random() < 0.4:
                src_type = ("BF16", "FP16")[_ri(rng, 0, 1)] if src_fp else "INT8"
            es = SRC_BYTES[src_type]
            op = ("COPY", "ADD", "MAX")[_ri(rng, 0, 2)] if rng.random() < 0.4 else "COPY"
            skip, skip2 = (_ri(rng, 0, 2) if rng.random() < 0.3 else 0 for _ in range(2))
            spans = [((n - 1) * (k + 1) + 1) * es for k in (skip, skip2)]
            if src_psum:
                src_off, src2_off = (self._psum_byte(b) // 4 for b in spans)
            else:
                src_off, src2_off = (self._sbuf_off(b, align=es) // es for b in spans)
            dst_off = self._sbuf_off(n * size, align=size)
            if not src_psum and rng.random() < 0.3 and size <= es * (skip + 1):  # in place
                dst_p0, dst_off = src_p0, es * src_off
            bias = rng.random() < 0.4 and not (src_fp and op == "ADD")
            bias_off = self._sbuf_off(4, align=4) if bias else 0
            clip = rng.random() < 0.2
            a = act_model.Act(parts=parts, n=n, dst_type=dst, src_psum=src_psum,
                              src_fp=src_fp, src_p0=src_p0, src_off=src_off, dst_p0=dst_p0,
                              dst_off=dst_off, bias=bias, bias_off=bias_off,
                              relu=bool(rng.random() < 0.5),
                              scale=_ri(rng, -(1 << 15), (1 << 15) - 1) if dst == "INT8" else 1,
                              shift=_ri(rng, 0, 24) if dst == "INT8" else 0,
                              zp=_ri(rng, -128, 127) if dst == "INT8" else 0,
                              op=op, src_type=src_type, src_skip=skip, src2_skip=skip2,
                              src2_off=src2_off if op != "COPY" else 0,
                              scale2=_ri(rng, -(1 << 15), (1 << 15) - 1) if op == "ADD" else 0,
                              zp1=_ri(rng, -128, 127) if src_type == "INT8" else 0,
                              zp2=_ri(rng, -128, 127) if src_type == "INT8" and op != "COPY"
                              else 0,
                              clip=clip, hi=_ri(rng, 0, (1 << 16) - 1) if clip else 0)
            if act_model.check(c, a) == "NONE":
                return a
        raise AssertionError("no legal ACT found")       # pragma: no cover

    # -- the whole program --------------------------------------------------------------

    def data(self):
        rng, c = self.rng, self.c
        dram = np.zeros(self.dram_size, dtype=np.uint8)
        lo, size = self.base["in"], self.size["in"]
        if c.has_float:
            words = size // 2
            sign = rng.integers(0, 2, words, dtype=np.uint16) << 15
            bf = sign | (rng.integers(121, 134, words, dtype=np.uint16) << 7) \
                | rng.integers(0, 128, words, dtype=np.uint16)
            hf = sign | (rng.integers(9, 21, words, dtype=np.uint16) << 10) \
                | rng.integers(0, 1024, words, dtype=np.uint16)
            w = np.where(rng.random(words) < 0.5, bf, hf).astype("<u2")
            dram[lo:lo + 2 * words] = w.view(np.uint8)
        else:
            dram[lo:lo + size] = rng.integers(0, 256, size, dtype=np.uint8)
        return dram

    def build(self):
        rng = self.rng
        kinds = [k for k, v in self.mix.items() if v > 0]
        p = np.array([self.mix[k] for k in kinds], dtype=float)
        p /= p.sum()
        while self.commands < self.n:
            kind = kinds[int(rng.choice(len(kinds), p=p))]
            if kind == "load":
                self.add("DMA", self.load("in"))
            elif kind == "reload":
                self.add("DMA", self.load("out"))
            elif kind == "store":
                self.add("DMA", self.store())
            elif kind == "matmul":
                self.add("MATMUL", self.matmul())
            elif kind == "accumulate":
                self.accumulate()
            else:
                self.add("ACT", self.act())
        self.prog.end(wait=self._random_wait(_SEQ) if rng.random() < 0.3 else None)
        dram = self.data()
        code = self.prog.encode()
        slack = (self.size["prog"] - len(code)) // 32
        assert slack >= 0
        prog_addr = self.base["prog"] + 32 * _ri(rng, 0, slack)
        dram[prog_addr:prog_addr + len(code)] = np.frombuffer(code, dtype=np.uint8)
        return self.prog, dram, prog_addr


def random_program(config, rng, n=40, dram_size=1 << 16, *, mix=None, max_rows=None,
                   shared=False, checkpoints=0.0):
    """A random race-free program of ``n`` commands (plus its SEMs and a final END).

    Parameters
    ----------
    config : CoreConfig
        Needs at least 5 semaphores.
    rng : numpy.random.Generator or int
        Randomness (an integer is a seed).
    n : int
        Commands (DMA, MATMUL, ACT) to generate.
    dram_size : int
        Size of the DRAM image; everything (inputs, outputs, program) lies in
        ``[0, dram_size)``, so the default DMA window works.
    mix : dict, optional
        Relative weights of ``"load"``, ``"matmul"``, ``"act"``, ``"store"`` and
        ``"reload"`` (a load from the output area); missing kinds are not generated.
        Default :data:`DEFAULT_MIX`.
    max_rows : int, optional
        Upper bound on DMA rows and ACT partitions.
    shared : bool
        The tensor and vector queues signal one semaphore (:data:`SHARED_SEM`) instead
        of one each, so both engines often signal it in the same cycle; orderings on
        them become SEM barriers that wait for every signal so far.
    checkpoints : float
        Probability of a store, right after a MATMUL or ACT, of what it wrote (the
        final image then holds intermediate results too).

    Returns
    -------
    (Program, dram, prog_addr)
        The program, the DRAM image (uint8, ``dram_size`` bytes, with the program's
        bytes at ``prog_addr``) and the program's 32-byte aligned address.
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    return _Gen(config, rng, n, dram_size, mix, max_rows, shared, checkpoints).build()


def _rebuild(program, instructions):
    """A new :class:`Program` with ``instructions`` (names as in ``program``)."""
    names = {i: name for name, i in program.sem_names.items()}
    new = Program(program.config)
    for x in instructions:
        wait = None if x.wait is None else (names.get(x.wait[0], f"s{x.wait[0]}"), x.wait[1])
        signal = None if x.signal is None else names.get(x.signal, f"s{x.signal}")
        if x.op == "END":
            new.end(wait=wait)
        elif x.op == "SEM":
            new.sem(wait=wait, signal=signal)
        else:
            getattr(new, x.op.lower())(x.cmd, wait=wait, signal=signal)
    return new


def racy_variant(program, rng=None):
    """``program`` with one wait removed such that :func:`sim.isa.races.find_races` reports
    a race: an instruction loses its wait (a SEM that signals nothing is dropped
    instead). Candidates are tried in program order, or in a random order with
    ``rng``; ``ValueError`` if no wait is needed."""
    ins = list(program.instructions)
    cand = [i for i, x in enumerate(ins) if x.wait is not None and x.op != "END"]
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        rng.shuffle(cand)
    for i in cand:
        x = ins[i]
        if x.op == "SEM" and x.signal is None:
            variant = ins[:i] + ins[i + 1:]
        else:
            variant = ins[:i] + [Instruction(x.op, x.cmd, None, x.signal)] + ins[i + 1:]
        if find_races(program.config, variant):
            return _rebuild(program, variant)
    raise ValueError("no wait of this program is needed to avoid a race")
