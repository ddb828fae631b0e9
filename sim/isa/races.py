"""Static race detector for ncore programs.

A program runs on five in-order queues (``dma_in``, ``dma_out``, ``tensor``, ``vector``
and ``seq``, the decoder itself); between queues the only ordering comes from
semaphores and SEM barriers. :func:`find_races` builds the happens-before relation
those guarantees imply -- exactly, and conservatively where a semaphore is signalled
from several queues -- and reports every pair of instructions on different queues
that touch the same bytes of DRAM, SBUF or PSUM, at least one of them writing,
without being ordered.

Events and edges
----------------
Every instruction ``i`` has two events, ``start_i`` and ``end_i`` (all of its writes
visible, its signal given). The edges are:

* ``start_i -> end_i``;
* same queue, ``i`` before ``j`` in program order: ``start_i -> start_j`` and
  ``end_i -> end_j`` (but not ``end_i -> start_j``: a queue may pipeline);
* a wait ``(s, v)`` of ``j``: with ``T`` signallers of ``s`` in the program, ``n_Q`` of
  them on queue ``Q``, at least ``v - (T - n_Q)`` of ``Q``'s signals have been given
  when the wait holds, so (if that is positive) the end of ``Q``'s
  ``(v - (T - n_Q))``-th signaller -> ``start_j``. For a SEM or END (the decoder's own
  waits: it dispatches nothing after one until it holds) only the signallers before
  ``j`` in program order count, so a SEM waiting for every signal so far of a
  semaphore two engines share orders all of them. Nothing else is assumed;
* SEM ``k``: ``end_k = start_k`` (it signals as soon as its wait holds) and
  ``start_k -> start_j`` for every ``j`` after ``k`` (the decoder blocks on it);
* END: its end follows the end of every earlier instruction. The decoder stops at the
  first END: instructions after it are never executed and are ignored.

An instruction whose wait can never hold (``v > T``) never starts; neither does one
caught in a cycle of waits, nor anything ordered after them. Those are deadlocks,
which the instruction-set simulator reports; they are not races, so such
instructions are left out (they make no accesses).

The relation is represented by vector clocks over the five queues: for an event
``e`` and queue ``Q``, ``V[e][Q]`` is the number of ``Q``'s instructions whose end
happens before ``e`` (ends of one queue are totally ordered, so that set is always a
prefix). ``end_a -> start_b`` iff ``V[start_b][queue(a)] >= rank(a)``.

Accesses
--------
DMA load: DRAM rows read, SBUF rectangle written. DMA store: SBUF or PSUM rectangle
read (PSUM as bytes, entry ``bank*psum_depth+e`` at byte ``4*that``), DRAM rows
written. MATMUL: the S and X rectangles of SBUF read, PSUM partitions ``0..m-1``
written (an accumulating matmul also reads them; it counts as a write). ACT: source
(PSUM or SBUF) and bias read, SBUF destination written. Overlapping pairs are found
with a sort-and-sweep over byte ranges (vectorised), so thousands of instructions
take well under a second.

Programs writing themselves
---------------------------
A DMA store whose DRAM rows overlap the program's own bytes
``[prog_addr, prog_addr + program_bytes)`` is reported as
``Race(first=i, second=None, second_addr=None, memory="DRAM", kind="writes program")``,
whatever the ordering (the decoder fetches instructions at times no semaphore
controls).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Race", "find_races", "find_chip_races", "accesses", "happens_before", "QUEUES"]

#: Queue order of the vector-clock components.
QUEUES = ("dma_in", "dma_out", "tensor", "vector", "seq")
_QI = {q: n for n, q in enumerate(QUEUES)}
_MEMS = ("DRAM", "SBUF", "PSUM")
_INSTR_BYTES = 32
#: Candidate pairs handled per vectorised step of the sweep.
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Race:
    """Two unordered conflicting instructions (or a store into the program).

    ``first`` < ``second`` are instruction indices (``second`` is ``None`` for
    ``kind == "writes program"``); ``first_addr``/``second_addr`` their DRAM addresses
    (``prog_addr + 32*index``). ``memory`` is ``"DRAM"``, ``"SBUF"`` or ``"PSUM"``;
    ``kind`` is ``"write/write"`` (both write a common byte), ``"read/write"`` or
    ``"writes program"``. ``where`` describes one conflicting location; ``first_text``
    and ``second_text`` are the instructions' disassembly.
    """
    first: int
    second: int | None
    first_addr: int
    second_addr: int | None
    memory: str
    kind: str
    where: str = ""
    first_text: str = ""
    second_text: str = ""
    first_core: int | None = None
    second_core: int | None = None

    def __str__(self):
        def who(core):
            return "" if core is None else f"core {core} "
        a = f"{who(self.first_core)}#{self.first} @0x{self.first_addr:x} `{self.first_text}`"
        if self.second is None:
            return f"{self.kind} ({self.memory} {self.where}): {a}"
        b = (f"{who(self.second_core)}#{self.second} @0x{self.second_addr:x} "
             f"`{self.second_text}`")
        return f"{self.kind} race on {self.memory} {self.where}: {a} and {b}"


def _queue(ins):
    q = getattr(ins, "queue", None)
    if q is not None:
        return q
    if ins.op == "DMA":
        return "dma_out" if ins.cmd.store else "dma_in"
    return {"MATMUL": "tensor", "ACT": "vector"}.get(ins.op, "seq")


def accesses(config, ins):
    """Memory accesses of one instruction: a list of
    ``(memory, part_lo, part_hi, byte_lo, byte_hi, is_write)`` with half-open ranges
    (DRAM uses partition range ``[0, 1)``). Empty ranges are left out."""
    out = []
    c = ins.cmd
    if ins.op == "DMA":
        chip = "PSUM" if c.mem == "psum" else "SBUF"
        if c.rows > 0 and c.row_bytes > 0:
            out.append((chip, c.partition, c.partition + c.rows, c.offset,
                        c.offset + c.row_bytes, not c.store))
            if c.row_stride <= c.row_bytes or c.rows == 1:
                out.append(("DRAM", 0, 1, c.addr,
                            c.addr + (c.rows - 1) * c.row_stride + c.row_bytes, c.store))
            else:
                for r in range(c.rows):
                    a = c.addr + r * c.row_stride
                    out.append(("DRAM", 0, 1, a, a + c.row_bytes, c.store))
    elif ins.op == "MATMUL":
        eb = 1 if c.dtype == "int8" else 2
        if c.k > 0 and c.m > 0:
            out.append(("SBUF", c.p0, c.p0 + c.k, c.s_off * eb, (c.s_off + c.m) * eb, False))
        if c.k > 0 and c.n > 0:
            # a strided moving tile counts as the whole span it reads from
            out.append(("SBUF", c.p0, c.p0 + c.k, c.x_off * eb, c.x_end * eb, False))
        if c.m > 0 and c.n > 0:
            e0 = c.bank * config.psum_depth + c.psum_off
            out.append(("PSUM", 0, c.m, 4 * e0, 4 * (e0 + c.n), True))
    elif ins.op == "ACT":
        size = {"INT8": 1, "BF16": 2, "FP16": 2, "INT32": 4, "FP32": 4}[c.dst_type]
        if c.parts > 0 and c.n > 0:
            # each operand counts as the whole span it reads (strided ones included)
            es = c.src_bytes
            for lo, hi in c.spans():
                out.append(("PSUM" if c.src_psum else "SBUF", c.src_p0, c.src_p0 + c.parts,
                            es * lo, es * hi, False))
            out.append(("SBUF", c.dst_p0, c.dst_p0 + c.parts, c.dst_off,
                        c.dst_off + c.n * size, True))
        if c.parts > 0 and c.bias:
            out.append(("SBUF", c.dst_p0, c.dst_p0 + c.parts, c.bias_off, c.bias_off + 4, False))
    return out


def _executed(instructions):
    """Number of instructions the decoder reaches: up to and including the first END."""
    for i, ins in enumerate(instructions):
        if ins.op == "END":
            return i + 1
    return len(instructions)


def happens_before(instructions):
    """Vector clocks of the program's start events.

    Returns ``(q, rank, vstart, started)``: per executed instruction its queue index,
    its 1-based rank in its queue, ``vstart[i][Q]`` (number of queue ``Q``'s
    instructions whose end happens before ``start_i``, an ``[n, 5]`` int64 array) and
    whether it can start at all (``False`` for deadlocked instructions).
    """
    return _happens_before([instructions])[:4]


def _happens_before(programs):
    """:func:`happens_before` of a chip: ``programs[k]`` runs on core ``k``. Queues are
    numbered ``5*k + QUEUES.index(q)``; a SEM with ``peer`` signals semaphore
    ``(peer, signal)``, every other signal ``(k, signal)``; waits are on the core's own.
    A SEM or END counts only the signallers of its own core that come before it, and
    every signaller of another core. Returns ``(q, rank, vstart, started, core, local)``
    over the concatenation of the executed instructions of every core (``local``: the
    index within its program)."""
    nq = len(QUEUES)
    ins, q, core, local = [], [], [], []
    for k, prog in enumerate(programs):
        n_k = _executed(prog)
        for j, x in enumerate(prog[:n_k]):
            ins.append(x)
            q.append(nq * k + _QI[_queue(x)])
            core.append(k)
            local.append(j)
    n = len(ins)
    nqs = nq * len(programs)
    rank = [0] * n
    counts = [0] * nqs
    prev_same = [-1] * n
    last_of = [-1] * nqs
    for i in range(n):
        counts[q[i]] += 1
        rank[i] = counts[q[i]]
        prev_same[i] = last_of[q[i]]
        last_of[q[i]] = i
    # signallers of each semaphore (core, index), per queue, in program order
    sig = {}
    for i, x in enumerate(ins):
        if x.signal is not None:
            peer = getattr(x, "peer", None)
            key = (core[i] if peer is None else peer, x.signal)
            sig.setdefault(key, [[] for _ in range(nqs)])[q[i]].append(i)

    seq = _QI["seq"]
    preds = [[] for _ in range(2 * n)]      # event 2i = start_i, 2i+1 = end_i
    blocked = [False] * n
    last_seq = [-1] * len(programs)
    last_by_queue = [-1] * nqs
    for i, x in enumerate(ins):
        s = 2 * i
        k = core[i]
        in_seq = q[i] == nq * k + seq
        if prev_same[i] >= 0:
            preds[s].append(2 * prev_same[i])
            preds[s + 1].append(2 * prev_same[i] + 1)
        if last_seq[k] >= 0 and not in_seq:
            preds[s].append(2 * last_seq[k])
        if x.wait is not None:
            sem, v = x.wait
            groups = sig.get((k, sem), [[] for _ in range(nqs)])
            if in_seq:
                # the decoder itself waits (SEM, END) and dispatches nothing after it
                # meanwhile: only its own core's signallers before it count
                groups = [[j for j in g if core[j] != k or j < i] for g in groups]
            total = sum(len(g) for g in groups)
            if v > total:
                blocked[i] = True
            else:
                for g in groups:
                    need = v - (total - len(g))
                    if need > 0:
                        preds[s].append(2 * g[need - 1] + 1)
        preds[s + 1].append(s)
        if x.op == "END":
            preds[s + 1].extend(2 * j + 1 for j in last_by_queue[nq * k:nq * (k + 1)]
                                if j >= 0)
        if in_seq:
            last_seq[k] = i
        last_by_queue[q[i]] = i

    # Kahn's algorithm; blocked starts never fire, nor anything after them.
    indeg = [len(p) + (1 if e % 2 == 0 and blocked[e // 2] else 0)
             for e, p in enumerate(preds)]
    succs = [[] for _ in range(2 * n)]
    for e, p in enumerate(preds):
        for f in p:
            succs[f].append(e)
    zero = (0,) * nqs
    clock = [None] * (2 * n)
    stack = [e for e in range(2 * n) if indeg[e] == 0]
    while stack:
        e = stack.pop()
        p = preds[e]
        if not p:
            v = list(zero)
        else:
            v = list(clock[p[0]])
            for f in p[1:]:
                w = clock[f]
                for kk in range(nqs):
                    if w[kk] > v[kk]:
                        v[kk] = w[kk]
        if e % 2:
            i = e // 2
            v[q[i]] = rank[i]
        clock[e] = v
        for f in succs[e]:
            indeg[f] -= 1
            if indeg[f] == 0:
                stack.append(f)
    started = np.array([clock[2 * i] is not None for i in range(n)], dtype=bool)
    vstart = np.array([clock[2 * i] if clock[2 * i] is not None else zero
                       for i in range(n)], dtype=np.int64).reshape(n, nqs)
    return (np.array(q, dtype=np.int64), np.array(rank, dtype=np.int64), vstart, started,
            np.array(core, dtype=np.int64), np.array(local, dtype=np.int64))


def _describe(mem, plo, phi, lo, hi):
    if mem == "DRAM":
        return f"bytes [0x{lo:x}, 0x{hi:x})"
    parts = f"partition {plo}" if phi == plo + 1 else f"partitions [{plo}, {phi})"
    return f"{parts} bytes [{lo}, {hi})"


def _text(ins, sem_names):
    try:
        return ins.text(sem_names) if sem_names is not None else ins.text()
    except Exception:           # a stand-in or odd instruction: still report the race
        return f"{ins.op} {ins.cmd!r}"


def find_races(config, instructions, prog_addr=0, program_bytes=None):
    """Every race of a program, sorted by ``(first, second, memory)``.

    ``instructions`` is a list of :class:`sim.isa.asm.Instruction` or a
    :class:`sim.isa.asm.Program` (then its semaphore names are used in the texts).
    ``program_bytes`` is the size of the program's region in DRAM for the
    ``"writes program"`` check (default ``32 * len(instructions)``).
    At most one race is reported per pair of instructions and memory
    (``"write/write"`` if both write a common byte there, else ``"read/write"``).
    """
    return _find(config, [instructions], [prog_addr], [program_bytes], 0)


def find_chip_races(config, programs, prog_addrs, program_bytes=None):
    """Every race of a chip program: ``programs[k]`` (instructions or a
    :class:`~sim.isa.asm.Program`) runs on core ``k`` from ``prog_addrs[k]``, all
    started together. Races between instructions of different cores are found like
    races between engines: DRAM is shared, each core has its own SBUF and PSUM, and a
    peer store (:class:`hdl.chipmap.PeerAperture`) writes the target core's SBUF.
    Each :class:`Race` names its cores (``first_core``, ``second_core``); ``first`` and
    ``second`` are indices within those cores' programs. Memories are ``"DRAM"``,
    ``"SBUF@k"`` and ``"PSUM@k"``."""
    if program_bytes is None:
        program_bytes = [None] * len(programs)
    return _find(config, list(programs), list(prog_addrs), list(program_bytes),
                 len(programs))


def _chip_accesses(config, ins, core, cores):
    """:func:`accesses` on core ``core`` of a chip (``cores`` 0: standalone), each as
    ``(memory label, part_lo, part_hi, byte_lo, byte_hi, is_write)``; a peer store
    writes the target core's SBUF instead of DRAM."""
    import sim.model.dma as dma_model
    out = []
    peer = None
    if cores and ins.op == "DMA":
        peer = dma_model.peer_target(config, ins.cmd, cores)
    for (mem, plo, phi, lo, hi, w) in accesses(config, ins):
        if mem == "DRAM" and peer is not None:
            t, partition, offset = peer
            c = ins.cmd
            out.append((f"SBUF@{t}", partition, partition + c.rows, offset,
                        offset + c.row_bytes, True))
            continue
        out.append((mem if mem == "DRAM" or not cores else f"{mem}@{core}",
                    plo, phi, lo, hi, w))
    return out


def _mem_order(label):
    kind, _, core = label.partition("@")
    return (_MEMS.index(kind), int(core or 0))


def _find(config, programs, prog_addrs, program_bytes, cores):
    sem_names = []
    progs = []
    for p in programs:
        sem_names.append(getattr(p, "sem_names", None))
        progs.append(list(p.instructions if hasattr(p, "instructions") else p))
    program_bytes = [_INSTR_BYTES * len(p) if b is None else b
                     for p, b in zip(progs, program_bytes)]
    q, rank, vstart, started, core, local = _happens_before(progs)
    n = len(q)

    def addr(i):
        return prog_addrs[core[i]] + _INSTR_BYTES * int(local[i])

    def instr(i):
        return progs[core[i]][local[i]]

    def text(i):
        return _text(instr(i), sem_names[core[i]])

    def who(i):
        return int(core[i]) if cores else None

    races = []
    rows = {}
    regions = [(a, a + b) for a, b in zip(prog_addrs, program_bytes)]
    for i in range(n):
        if not started[i]:
            continue
        wrote_program = None
        for (mem, plo, phi, lo, hi, w) in _chip_accesses(config, instr(i), int(core[i]),
                                                         cores):
            if lo >= hi or plo >= phi:
                continue
            rows.setdefault(mem, []).append((i, plo, phi, lo, hi, w))
            if mem == "DRAM" and w and wrote_program is None:
                for p_lo, p_hi in regions:
                    if lo < p_hi and p_lo < hi:
                        wrote_program = (max(lo, p_lo), min(hi, p_hi))
                        break
        if wrote_program is not None:
            races.append(Race(int(local[i]), None, addr(i), None, "DRAM", "writes program",
                              _describe("DRAM", 0, 1, *wrote_program), text(i),
                              first_core=who(i)))

    found = []
    for mem in sorted(rows, key=_mem_order):
        a = np.array(rows[mem], dtype=np.int64)
        a = a[np.argsort(a[:, 3], kind="stable")]
        inst, plo, phi, lo, hi, w = (a[:, k] for k in range(6))
        w = w.astype(bool)
        m = len(a)
        end = np.searchsorted(lo, hi, side="left")
        cnt = np.maximum(end - np.arange(1, m + 1), 0)
        cum = np.cumsum(cnt)
        hits = []
        s = 0
        while s < m:
            base = cum[s - 1] if s else 0
            e = int(np.searchsorted(cum, base + _CHUNK, side="right"))
            e = max(e, s + 1)
            c = cnt[s:e]
            tot = int(c.sum())
            if tot:
                I = np.repeat(np.arange(s, e), c)
                starts = np.cumsum(c) - c
                J = I + 1 + (np.arange(tot) - np.repeat(starts, c))
                ia, ib = inst[I], inst[J]
                keep = ((q[ia] != q[ib]) & (w[I] | w[J])
                        & (plo[I] < phi[J]) & (plo[J] < phi[I]))
                I, J, ia, ib = I[keep], J[keep], ia[keep], ib[keep]
                bad = ~((vstart[ib, q[ia]] >= rank[ia]) | (vstart[ia, q[ib]] >= rank[ib]))
                if bad.any():
                    hits.append((I[bad], J[bad]))
            s = e
        if not hits:
            continue
        I = np.concatenate([h[0] for h in hits])
        J = np.concatenate([h[1] for h in hits])
        f = np.minimum(inst[I], inst[J])
        g = np.maximum(inst[I], inst[J])
        ww = w[I] & w[J]
        # one entry per pair: the first write/write hit if any, else the first hit
        sel = np.lexsort((~ww, g, f))
        f, g = f[sel], g[sel]
        first = np.ones(len(sel), dtype=bool)
        first[1:] = (f[1:] != f[:-1]) | (g[1:] != g[:-1])
        k = sel[first]
        x, y = I[k], J[k]
        cols = (f[first], g[first], ww[k], np.maximum(plo[x], plo[y]), np.minimum(phi[x], phi[y]),
                np.maximum(lo[x], lo[y]), np.minimum(hi[x], hi[y]))
        kind = mem.partition("@")[0]
        for a_, b_, both, p0, p1, b0, b1 in zip(*(col.tolist() for col in cols)):
            found.append((a_, b_, mem, both, _describe(kind, p0, p1, b0, b1)))
    texts = {}

    def cached(i):
        if i not in texts:
            texts[i] = text(i)
        return texts[i]

    for f, g, mem, ww, where in found:
        races.append(Race(int(local[f]), int(local[g]), addr(f), addr(g), mem,
                          "write/write" if ww else "read/write", where, cached(f), cached(g),
                          first_core=who(f), second_core=who(g)))
    races.sort(key=lambda r: (r.first_core or 0, r.first,
                              -1 if r.second is None else r.second, _mem_order(r.memory)))
    return races
