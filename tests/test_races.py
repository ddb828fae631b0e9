"""Tests of the static race detector (sim/isa/races.py) and the random program generator
(sim/isa/progen.py)."""

import time

import numpy as np
import pytest

from hdl.config import CoreConfig
from sim.isa.asm import Instruction, Program
from sim.isa.progen import racy_variant, random_program
from sim.isa.races import Race, accesses, find_races

CFG = CoreConfig(rows=4, cols=4)
CONFIGS = [CoreConfig(rows=4, cols=4), CoreConfig(),
           CoreConfig(rows=4, cols=4, dtypes=("int8", "bf16", "fp16"))]


def pairs(races):
    return {(r.first, r.second) for r in races}


def load(p, addr=0, rows=4, row_bytes=16, partition=0, offset=0, row_stride=None, **kw):
    return p.dma(addr=addr, rows=rows, row_bytes=row_bytes,
                 row_stride=row_bytes if row_stride is None else row_stride,
                 partition=partition, offset=offset, **kw)


def store(p, addr=0x1000, rows=1, row_bytes=8, partition=0, offset=0, mem="sbuf",
          row_stride=None, **kw):
    return p.dma(addr=addr, rows=rows, row_bytes=row_bytes, store=True, mem=mem,
                 row_stride=row_bytes if row_stride is None else row_stride,
                 partition=partition, offset=offset, **kw)


def act_to_sbuf(p, dst_p0, dst_off, n=4, src_off=0, parts=1, **kw):
    """An INT32 ACT from PSUM partition 0.. entries src_off.. to SBUF."""
    return p.act(parts=parts, n=n, dst_type="INT32", src_psum=True, src_fp=False,
                 src_p0=0, src_off=src_off, dst_p0=dst_p0, dst_off=dst_off, **kw)


# ---------------------------------------------------------------------------------------
# Hand-written programs
# ---------------------------------------------------------------------------------------

def test_load_then_matmul_without_semaphore_races():
    p = Program(CFG)
    load(p)                                           # SBUF partitions 0..3 bytes 0..15
    p.matmul(k=4, m=4, n=4, s_off=0, x_off=8)
    p.end()
    races = find_races(CFG, p, prog_addr=0x1000)
    assert len(races) == 1
    r = races[0]
    assert isinstance(r, Race)
    assert (r.first, r.second, r.memory, r.kind) == (0, 1, "SBUF", "read/write")
    assert (r.first_addr, r.second_addr) == (0x1000, 0x1020)
    s = str(r)
    assert "#0" in s and "#1" in s and "0x1000" in s and "0x1020" in s
    assert "DMA load" in s and "MATMUL" in s and "SBUF" in s
    # a plain list of instructions works too (indices relative to prog_addr 0)
    assert pairs(find_races(CFG, p.instructions)) == {(0, 1)}


def test_load_then_matmul_with_semaphore_is_ordered():
    p = Program(CFG)
    load(p, signal="ld")
    p.matmul(k=4, m=4, n=4, s_off=0, x_off=8, wait=("ld", 1))
    p.end()
    assert find_races(CFG, p) == []


def test_wait_for_zero_orders_nothing():
    p = Program(CFG)
    load(p, signal="ld")
    p.matmul(k=4, m=4, n=4, wait=("ld", 0))
    p.end()
    assert pairs(find_races(CFG, p)) == {(0, 1)}


def test_disjoint_accesses_do_not_race():
    p = Program(CFG)
    load(p, rows=2, partition=2)                      # partitions 2, 3
    p.matmul(k=2, m=4, n=4, p0=0)                     # partitions 0, 1
    load(p, rows=4, offset=32)                        # bytes 32..47
    p.matmul(k=4, m=4, n=4, s_off=16, x_off=20)       # bytes 16..23
    p.end()
    assert find_races(CFG, p) == []


def test_write_write_and_reads_do_not_conflict():
    p = Program(CFG)
    load(p, rows=1, partition=2, offset=0, row_bytes=16)
    act_to_sbuf(p, dst_p0=2, dst_off=8)               # writes partition 2 bytes 8..23
    p.matmul(k=4, m=4, n=4, s_off=64, x_off=64)       # only reads SBUF, writes PSUM 0..3
    store(p, mem="psum", rows=1, offset=1024, row_bytes=4)  # reads bank 1: no conflict
    p.end()
    races = find_races(CFG, p)
    assert [(r.first, r.second, r.memory, r.kind) for r in races] == [
        (0, 1, "SBUF", "write/write"),
        (1, 2, "PSUM", "read/write"),       # the ACT reads PSUM entries 0..3 the matmul writes
    ]
    assert "partition 2 bytes [8, 16)" in races[0].where


def test_dram_rows_with_strides():
    # the store writes 0x1000+32r .. +8, the load reads 0x1008+32r .. +8: interleaved
    p = Program(CFG)
    store(p, addr=0x1000, rows=4, row_bytes=8, row_stride=32, offset=100)
    load(p, addr=0x1008, rows=4, row_bytes=8, row_stride=32, offset=0)
    p.end()
    assert find_races(CFG, p) == []
    # one row more of the load reaches the store's last row? no: shift it onto the store
    p = Program(CFG)
    store(p, addr=0x1000, rows=4, row_bytes=8, row_stride=32, offset=100)
    load(p, addr=0x1064, rows=2, row_bytes=8, row_stride=100, offset=0)
    p.end()
    races = find_races(CFG, p)
    assert [(r.first, r.second, r.memory, r.kind) for r in races] == [(0, 1, "DRAM", "read/write")]
    assert "0x1064" in races[0].where


def test_transitive_through_same_queue_start_order():
    # A -sem-> B, and C is on B's queue after B: C starts after B starts, so after A ends
    p = Program(CFG)
    load(p, signal="a")                                        # A
    p.matmul(k=4, m=4, n=4, wait=("a", 1))                     # B
    p.matmul(k=4, m=4, n=8, x_off=8, bank=1)                   # C: reads bytes 8..15
    p.end()
    assert find_races(CFG, p) == []
    # C before B on the queue is not ordered after A
    p = Program(CFG)
    load(p, signal="a")                                        # A
    p.matmul(k=4, m=4, n=8, x_off=8, bank=1)                   # C
    p.matmul(k=4, m=4, n=4, wait=("a", 1))                     # B
    p.end()
    assert pairs(find_races(CFG, p)) == {(0, 1)}


def test_transitive_chain_across_queues_and_end_order():
    p = Program(CFG)
    load(p, signal="a")                                        # 0 A: SBUF p0..3 bytes 0..15
    p.matmul(k=4, m=4, n=4, wait=("a", 1), signal="b")        # 1 B: PSUM bank 0 entries 0..3
    p.act(parts=4, n=4, dst_type="INT32", src_psum=False, src_fp=False, src_off=0,
          dst_off=64, wait=("b", 1))                           # 2 D: reads A's bytes (A->B->D)
    store(p, rows=4, offset=64, row_bytes=16, wait=("b", 1))  # 3 E: reads D's bytes, unordered
    p.end()
    races = find_races(CFG, p)
    assert [(r.first, r.second, r.memory) for r in races] == [(2, 3, "SBUF")]

    # ends of one queue are ordered: a wait for the later one covers the earlier one
    p = Program(CFG)
    p.matmul(k=4, m=4, n=4, bank=0)                           # 0 writes bank 0
    p.matmul(k=4, m=4, n=4, bank=1, signal="t")               # 1
    store(p, mem="psum", rows=4, offset=0, row_bytes=16, wait=("t", 1))   # 2 reads bank 0
    p.end()
    assert find_races(CFG, p) == []


def test_semaphore_signalled_from_two_queues_is_counted_conservatively():
    def prog(v):
        p = Program(CFG)
        load(p, rows=1, partition=0, row_bytes=8, signal="s")     # 0 dma_in
        load(p, rows=1, partition=1, row_bytes=8, signal="s")     # 1 dma_in
        act_to_sbuf(p, dst_p0=2, dst_off=0, signal="s")          # 2 vector, bytes 0..15
        p.matmul(k=3, m=4, n=8, wait=("s", v), bank=1)            # 3 reads p0..2 bytes 0..7
        p.end()
        return p
    assert pairs(find_races(CFG, prog(1))) == {(0, 3), (1, 3), (2, 3)}
    # s >= 2: at most one signal came from the ACT, so the first load has finished
    assert pairs(find_races(CFG, prog(2))) == {(1, 3), (2, 3)}
    assert find_races(CFG, prog(3)) == []
    # s >= 4 never holds: a deadlock, not a race
    assert find_races(CFG, prog(4)) == []


def test_sem_barrier_orders_later_instructions_only():
    p = Program(CFG)
    load(p, rows=1, row_bytes=8, signal="a")                             # 0 A: p0 bytes 0..7
    p.matmul(k=1, m=1, n=8, s_off=0, x_off=16, bank=3)                   # 1 X: bytes 0, 16..23
    p.sem(wait=("a", 1))                                                 # 2
    p.matmul(k=1, m=1, n=4, s_off=0, x_off=0, bank=1)                    # 3 Y: after the SEM
    act_to_sbuf(p, dst_p0=0, dst_off=16, src_off=2 * CFG.psum_depth)    # 4 Z: writes 16..31
    p.end()
    assert pairs(find_races(CFG, p)) == {(0, 1), (1, 4)}


def test_sem_signal_orders_an_earlier_instruction():
    # the store is dispatched before the SEM but waits for the SEM's signal
    def prog(sem_wait):
        p = Program(CFG)
        load(p, rows=1, row_bytes=8, signal="a")
        store(p, wait=("g", 1))
        p.sem(wait=sem_wait, signal="g")
        p.end()
        return p
    assert find_races(CFG, prog(("a", 1))) == []
    assert pairs(find_races(CFG, prog(None))) == {(0, 1)}


def test_deadlocked_and_unreached_instructions_make_no_races():
    p = Program(CFG)
    load(p, wait=("y", 1), signal="x")                # waits for the matmul ...
    p.matmul(k=4, m=4, n=4, wait=("x", 1), signal="y")  # ... which waits for the load
    p.end()
    load(p, rows=1, partition=0)                      # after END: never executed
    p.matmul(k=4, m=4, n=4)
    assert find_races(CFG, p) == []


def test_store_into_the_program_is_reported():
    p = Program(CFG)
    load(p, signal="a")
    store(p, addr=0x100 + 40, row_bytes=8, wait=("a", 1))   # inside instruction 1
    store(p, addr=0x100 - 8, row_bytes=8)                   # just before the program
    p.end()
    races = find_races(CFG, p, prog_addr=0x100)
    assert len(races) == 1
    r = races[0]
    assert (r.first, r.second, r.first_addr, r.second_addr, r.memory, r.kind) == \
        (1, None, 0x120, None, "DRAM", "writes program")
    assert "writes program" in str(r) and "#1" in str(r) and "0x128" in r.where
    # the program's region can be declared larger than its instructions
    races = find_races(CFG, p, prog_addr=0x100 - 64, program_bytes=4096)
    assert {r.first for r in races if r.kind == "writes program"} == {1, 2}


def test_accesses_of_each_command():
    p = Program(CFG)
    p.matmul(k=2, m=3, n=5, p0=1, s_off=2, x_off=10, bank=2, psum_off=7, dtype="int8")
    i = p.instructions[0]
    assert accesses(CFG, i) == [
        ("SBUF", 1, 3, 2, 5, False), ("SBUF", 1, 3, 10, 15, False),
        ("PSUM", 0, 3, 4 * (2 * CFG.psum_depth + 7), 4 * (2 * CFG.psum_depth + 12), True)]


# ---------------------------------------------------------------------------------------
# A brute-force reference on small programs with arbitrary semaphore use
# ---------------------------------------------------------------------------------------

def _byte_sets(config, ins):
    """{memory: (reads, writes)} as explicit sets of (partition, byte)."""
    out = {m: (set(), set()) for m in ("DRAM", "SBUF", "PSUM")}
    c = ins.cmd
    if ins.op == "DMA":
        chip = "PSUM" if c.mem == "psum" else "SBUF"
        for r in range(c.rows):
            a = c.addr + r * c.row_stride
            dram = {(0, a + b) for b in range(c.row_bytes)}
            onchip = {(c.partition + r, c.offset + b) for b in range(c.row_bytes)}
            out["DRAM"][1 if c.store else 0].update(dram)
            out[chip][0 if c.store else 1].update(onchip)
    elif ins.op == "MATMUL":
        eb = 1 if c.dtype == "int8" else 2
        for k in range(c.k):
            for e in range(c.m * eb):
                out["SBUF"][0].add((c.p0 + k, c.s_off * eb + e))
            # a strided moving tile (x_skip > 0) counts as its whole span, gaps too: the
            # checker's documented approximation (docs/isa.md, "Race checker")
            for e in range(((c.n - 1) * (c.x_skip + 1) + 1) * eb):
                out["SBUF"][0].add((c.p0 + k, c.x_off * eb + e))
        e0 = c.bank * config.psum_depth + c.psum_off
        for m in range(c.m):
            for b in range(4 * c.n):
                out["PSUM"][1].add((m, 4 * e0 + b))
                if c.acc:
                    out["PSUM"][0].add((m, 4 * e0 + b))
    elif ins.op == "ACT":
        size = {"INT8": 1, "BF16": 2, "FP16": 2, "INT32": 4, "FP32": 4}[c.dst_type]
        src = "PSUM" if c.src_psum else "SBUF"
        es = {"ACC": 4, "INT8": 1, "BF16": 2, "FP16": 2}[c.src_type]
        operands = [(c.src_off, c.src_skip)]
        if c.op != "COPY":
            operands.append((c.src2_off, c.src2_skip))
        for k in range(c.parts):
            for off, skip in operands:
                # a strided operand counts as its whole span, like a strided MATMUL
                for b in range(((c.n - 1) * (skip + 1) + 1) * es):
                    out[src][0].add((c.src_p0 + k, es * off + b))
            for b in range(c.n * size):
                out["SBUF"][1].add((c.dst_p0 + k, c.dst_off + b))
            if c.bias:
                for b in range(4):
                    out["SBUF"][0].add((c.dst_p0 + k, c.bias_off + b))
    return out


def reference_races(config, instructions):
    """{(first, second, memory, kind)} by explicit graph search and byte sets."""
    n = len(instructions)
    for i, x in enumerate(instructions):
        if x.op == "END":
            n = i + 1
            break
    ins = instructions[:n]
    qs = [x.queue for x in ins]
    preds = {}
    never = set()
    for j, x in enumerate(ins):
        sp = [("s", i) for i in range(j) if qs[i] == qs[j]]
        sp += [("s", i) for i in range(j) if ins[i].op == "SEM"]
        ep = [("e", i) for i in range(j) if qs[i] == qs[j]] + [("s", j)]
        if x.op == "END":
            ep += [("e", i) for i in range(j)]
        if x.wait is not None:
            s, v = x.wait
            # the decoder's own waits (SEM, END): only earlier signallers can count
            upto = j if qs[j] == "seq" else n
            sig = [i for i in range(upto) if ins[i].signal == s]
            if v > len(sig):
                never.add(("s", j))
                sig = []
            for q in set(qs[i] for i in sig):
                mine = [i for i in sig if qs[i] == q]
                need = v - (len(sig) - len(mine))
                if need > 0:
                    sp.append(("e", mine[need - 1]))
        preds[("s", j)] = sp
        preds[("e", j)] = ep
    # which events can happen: least fixpoint
    happen = set()
    changed = True
    while changed:
        changed = False
        for ev, p in preds.items():
            if ev not in happen and ev not in never and all(x in happen for x in p):
                happen.add(ev)
                changed = True
    anc = {}

    def ancestors(ev):
        if ev not in anc:
            out = set()
            for p in preds[ev]:
                out.add(p)
                out |= ancestors(p)
            anc[ev] = out
        return anc[ev]

    sets = [_byte_sets(config, x) for x in ins]
    out = set()
    for a in range(n):
        for b in range(a + 1, n):
            if qs[a] == qs[b] or ("s", a) not in happen or ("s", b) not in happen:
                continue
            if ("e", a) in ancestors(("s", b)) or ("e", b) in ancestors(("s", a)):
                continue
            for mem in ("DRAM", "SBUF", "PSUM"):
                ra, wa = sets[a][mem]
                rb, wb = sets[b][mem]
                if wa & wb:
                    out.add((a, b, mem, "write/write"))
                elif (wa & rb) or (ra & wb):
                    out.add((a, b, mem, "read/write"))
    return out


def scrambled(config, seed):
    """A small random program with random (often wrong or deadlocking) semaphore use."""
    rng = np.random.default_rng(seed)
    prog, _, _ = random_program(config, rng, n=int(rng.integers(4, 14)), dram_size=1 << 13,
                                max_rows=3)
    cmds = [x for x in prog.instructions if x.op not in ("SEM", "END")]
    nsem = 3

    def sync():
        wait = None if rng.random() < 0.4 else (int(rng.integers(nsem)), int(rng.integers(0, 4)))
        sig = None if rng.random() < 0.1 else int(rng.integers(nsem))
        return wait, sig

    out = []
    for x in cmds:
        if rng.random() < 0.2:
            out.append(Instruction("SEM", None, *sync()))
        out.append(Instruction(x.op, x.cmd, *sync()))
    out.append(Instruction("END", None, sync()[0], None))
    if rng.random() < 0.3:
        out.append(cmds[0])
    return out


@pytest.mark.parametrize("config", [CFG, CoreConfig(rows=4, cols=4, dtypes=("int8", "bf16"))],
                         ids=lambda c: c.name)
def test_matches_brute_force_reference(config):
    for seed in range(120):
        ins = scrambled(config, seed)
        got = {(r.first, r.second, r.memory, r.kind) for r in find_races(config, ins)
               if r.kind != "writes program"}
        want = reference_races(config, ins)
        assert got == want, f"seed {seed}: extra {got - want}, missing {want - got}"


# ---------------------------------------------------------------------------------------
# Random race-free programs
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_random_programs_are_race_free(config):
    for seed in range(40):
        prog, dram, prog_addr = random_program(config, seed)
        try:
            assert prog.instructions[-1].op == "END"
            assert prog_addr % 32 == 0
            code = prog.encode()
            assert bytes(dram[prog_addr:prog_addr + len(code)]) == code
            races = find_races(config, prog, prog_addr)
            assert races == [], "\n".join(map(str, races))
            bad = racy_variant(prog, rng=seed)
            assert len(bad.instructions) <= len(prog.instructions)
            assert find_races(config, bad), "racy variant has no race"
        except AssertionError:
            print(f"failing seed: {seed} ({config.name})")
            raise


def test_random_program_uses_every_kind_of_command():
    seen = set()
    for seed in range(10):
        prog, _, _ = random_program(CONFIGS[2], seed)
        for x in prog.instructions:
            c = x.cmd
            if x.op == "DMA":
                seen.add(("store-" + c.mem) if c.store else "load")
                if c.store is False and c.row_stride < c.row_bytes and c.rows > 1:
                    seen.add("overlapping rows")
            elif x.op == "MATMUL":
                seen.add(c.dtype)
                seen.add("acc" if c.acc else "overwrite")
            elif x.op == "ACT":
                seen.add(c.dst_type)
                seen.add("psum-src" if c.src_psum else "sbuf-src")
                seen.add("act-" + c.op)
                seen.add("src-" + c.src_type)
            else:
                seen.add(x.op)
            if x.wait is not None:
                seen.add("wait")
    assert seen >= {"load", "store-sbuf", "store-psum", "overlapping rows", "int8", "bf16",
                    "fp16", "acc", "overwrite", "INT8", "INT32", "FP32", "BF16", "FP16",
                    "psum-src", "sbuf-src", "SEM", "END", "wait", "act-COPY", "act-ADD",
                    "act-MAX", "src-ACC", "src-INT8", "src-BF16", "src-FP16"}, seen


def test_random_program_options():
    prog, dram, prog_addr = random_program(CFG, 5, n=30, dram_size=1 << 14,
                                           mix={"load": 1, "matmul": 1}, max_rows=2)
    ops = {x.op for x in prog.instructions}
    assert ops <= {"DMA", "MATMUL", "SEM", "END"}
    assert all(x.cmd.rows <= 2 for x in prog.instructions if x.op == "DMA")
    assert len(dram) == 1 << 14
    assert find_races(CFG, prog, prog_addr) == []
    with pytest.raises(ValueError):
        random_program(CFG, 0, n=400, dram_size=1 << 12)


def test_large_program_is_fast():
    config = CoreConfig()
    prog, dram, prog_addr = random_program(config, 1, n=4500, dram_size=1 << 21)
    assert len(prog.instructions) >= 4500
    t = time.perf_counter()
    races = find_races(config, prog, prog_addr)
    elapsed = time.perf_counter() - t
    print(f"{len(prog.instructions)} instructions: {elapsed:.2f} s")
    assert races == []
    assert elapsed < 10


# ---------------------------------------------------------------------------------------
# The ISS runs them to completion, with the same result in any order
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_random_programs_run_on_the_iss(config):
    import sim.model.iss as iss
    for seed in range(8):
        prog, dram, prog_addr = random_program(config, 100 + seed)
        first = None
        for order in ("engines", "decoder", seed):
            res = iss.run(config, dram, prog_addr, _order=order)
            assert res.done and res.error == "NONE", \
                f"seed {100 + seed} order {order}: {res.error} {res.detail} {res.blocked}"
            state = (res.dram.tobytes(), res.sbuf.tobytes(), res.psum.tobytes())
            if first is None:
                first = state
            assert state == first, f"seed {100 + seed}: order {order} changes the result"


#: the mix of make test's whole-core random programs (tb/core/test_core.py)
MIX = {"load": 3, "matmul": 3, "act": 2, "store": 2, "reload": 0.5, "accumulate": 1.5}


@pytest.mark.parametrize("config", [CoreConfig(rows=8, cols=8),
                                    CoreConfig(rows=4, cols=4, dtypes=("int8", "bf16", "fp16"))],
                         ids=lambda c: c.name)
def test_shared_semaphore_programs(config):
    """``random_program(shared=True)``: tensor and vector instructions all signal
    ``q_tv``, orderings on them are SEM barriers for every signal so far; the programs
    are race-free, run to END on the ISS, and contain back-to-back accumulations and
    checkpoint stores. Dropping one barrier (racy_variant) is a race."""
    from sim.isa.progen import SHARED_SEM
    from sim.model.iss import run
    accumulations = barriers = 0
    for seed in range(30):
        prog, dram, prog_addr = random_program(config, seed, n=30, dram_size=1 << 14,
                                               shared=True, checkpoints=0.3, mix=MIX)
        tv = prog.sem_names[SHARED_SEM]
        ins = prog.instructions
        assert {x.op for x in ins if x.signal == tv} <= {"MATMUL", "ACT"}
        assert all(x.wait[0] != tv for x in ins if x.wait and x.op in ("MATMUL", "ACT", "DMA"))
        barriers += sum(1 for x in ins if x.op == "SEM" and x.wait and x.wait[0] == tv)
        accumulations += sum(1 for a, b in zip(ins, ins[1:]) if a.op == b.op == "MATMUL"
                             and b.cmd.acc and (a.cmd.bank, a.cmd.psum_off) == (b.cmd.bank, b.cmd.psum_off))
        assert find_races(config, prog, prog_addr) == [], f"seed {seed}"
        res = run(config, dram, prog_addr)
        assert res.error == "NONE" and res.done, f"seed {seed}: {res.error}"
    assert barriers > 30 and accumulations > 10, (barriers, accumulations)
