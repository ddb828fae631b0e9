# amaranth: UnusedElaboratable=no
"""The controller's parts (``hdl/controller_parts.py``), the AXI join (``hdl/core.py``)
and the round-robin arbiter (``hdl/arbiter.py``) in Amaranth's simulator.

Each test drives one part alone with random or directed stimulus and checks it against
a small model written here (semaphore counters, an instruction memory, a FIFO of
expected entries, a priority list), never against values read back from the design.
"""

import random

import pytest
from amaranth.sim import Simulator

from hdl.arbiter import RoundRobin
from hdl.config import CoreConfig
from hdl.controller_parts import (Decoder, FaultCapture, Fetcher, FetchedInstr, IssueQueue,
                                  Semaphores, Watchdog, inflight_layout)
from hdl.core import AXIJoin
from hdl.fifo import SyncStreamFIFO
from hdl.formats import DmaDesc, MatmulCmd
from hdl.interfaces import FETCH_ID
from hdl.isa import BODY_WIDTH, INSTR_BYTES, CoreError, Instr, Opcode


#: where a fetched instruction's error bit sits above the 256 instruction bits
ERR_OFFSET = FetchedInstr.as_shape()["err"].offset


async def start_at(ctx, dut, addr):
    """One start pulse of a part with ``i_start``/``i_prog_addr`` (fetcher, decoder)."""
    ctx.set(dut.i_prog_addr, addr)
    ctx.set(dut.i_start, 1)
    await ctx.tick()
    ctx.set(dut.i_start, 0)


def simulate(dut, tb):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def bits(layout, **fields):
    """The integer encoding of a struct constant (fields not given are zero)."""
    return layout.const(fields).as_value().value


# ---------------------------------------------------------------------------------------
# Semaphores
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_semaphores_count_every_signal(seed):
    """Random signals (several per cycle, often to one semaphore), random waits and
    clears: values and wait verdicts match a list of counters kept here."""
    n_sems, n_sig, n_wait = 4, 5, 3
    dut = Semaphores(n_sems, n_signals=n_sig, n_waits=n_wait)
    rng = random.Random(seed)

    async def tb(ctx):
        model = [0] * n_sems
        multi = 0
        for cyc in range(400):
            clear = rng.random() < 0.02
            sigs = [(rng.random() < 0.6, rng.randrange(2) if rng.random() < 0.7
                     else rng.randrange(n_sems)) for _ in range(n_sig)]
            waits = [(rng.random() < 0.8, rng.randrange(n_sems), rng.randrange(12))
                     for _ in range(n_wait)]
            ctx.set(dut.i_clear, clear)
            for j, (en, sem) in enumerate(sigs):
                ctx.set(dut.i_signal[j], {"en": en, "sem": sem})
            for k, (en, sem, val) in enumerate(waits):
                ctx.set(dut.i_wait[k], {"en": en, "sem": sem, "val": val})
            for k, (en, sem, val) in enumerate(waits):
                want = (not en) or model[sem] >= val
                assert ctx.get(dut.o_wait_ok[k]) == want, f"cycle {cyc} wait {k}"
            for i in range(n_sems):
                assert ctx.get(dut.o_value[i]) == model[i], f"cycle {cyc} sem {i}"
            await ctx.tick()
            if clear:
                model = [0] * n_sems
            else:
                for i in range(n_sems):
                    c = sum(1 for en, sem in sigs if en and sem == i)
                    multi += c > 1
                    model[i] = (model[i] + c) & 0xFFFF
        assert multi > 50            # the stimulus did signal one semaphore twice at once

    simulate(dut, tb)


def test_semaphores_two_signals_same_cycle_add_two():
    dut = Semaphores(2, n_signals=2, n_waits=1)

    async def tb(ctx):
        ctx.set(dut.i_signal[0], {"en": 1, "sem": 1})
        ctx.set(dut.i_signal[1], {"en": 1, "sem": 1})
        ctx.set(dut.i_wait[0], {"en": 1, "sem": 1, "val": 2})
        assert ctx.get(dut.o_wait_ok[0]) == 0
        await ctx.tick()
        ctx.set(dut.i_signal[0], {"en": 0, "sem": 0})
        ctx.set(dut.i_signal[1], {"en": 0, "sem": 0})
        assert ctx.get(dut.o_value[1]) == 2
        assert ctx.get(dut.o_wait_ok[0]) == 1
        ctx.set(dut.i_clear, 1)
        await ctx.tick()
        assert ctx.get(dut.o_value[1]) == 0
        assert ctx.get(dut.o_wait_ok[0]) == 0

    simulate(dut, tb)


# ---------------------------------------------------------------------------------------
# Watchdog
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("limit", [0, 1, 5, 17])
def test_watchdog_fires_after_limit_idle_cycles(limit):
    dut = Watchdog()
    rng = random.Random(limit)

    async def tb(ctx):
        ctx.set(dut.i_limit, limit)
        idle = 0                    # cycles without progress since the last progress
        verdicts = [False, False]   # idle >= limit, two cycles back: inputs and verdict
        fired = 0                   # are registered
        for cyc in range(600):
            running = cyc % 200 > 3
            # long quiet stretches so the limit is reached, with progress in between
            progress = rng.random() < (0.02 if (cyc // 50) % 2 else 0.5)
            ctx.set(dut.i_running, running)
            ctx.set(dut.i_progress, progress)
            verdicts.append(limit != 0 and idle >= limit)
            want = verdicts.pop(0)
            assert ctx.get(dut.o_fire) == want, f"cycle {cyc}: idle {idle}"
            fired += want
            await ctx.tick()
            idle = 0 if (not running or progress) else idle + 1
        if limit:
            assert fired > 10

    simulate(dut, tb)


# ---------------------------------------------------------------------------------------
# Fault capture
# ---------------------------------------------------------------------------------------

def test_fault_capture_priority_and_hold():
    n = 4
    dut = FaultCapture(n)
    rng = random.Random(7)

    async def tb(ctx):
        held = (0, 0, 0)
        pulse = False
        for cyc in range(300):
            srcs = [dict(valid=rng.random() < 0.15, code=rng.randrange(1, 9),
                         detail=rng.randrange(256), addr=rng.randrange(1 << 48))
                    for _ in range(n)]
            clear = rng.random() < 0.05
            enable = rng.random() < 0.7
            for k, s in enumerate(srcs):
                ctx.set(dut.i_src[k], {**s, "code": CoreError(s["code"])})
            ctx.set(dut.i_clear, clear)
            ctx.set(dut.i_enable, enable)
            first = next((s for s in srcs if s["valid"]), None)
            assert ctx.get(dut.o_any) == (first is not None)
            if first is not None:
                got = ctx.get(dut.o_first)
                assert (got.code.value, got.detail, got.addr) == (
                    first["code"], first["detail"], first["addr"]), f"cycle {cyc}"
            assert ctx.get(dut.o_fault) == pulse
            assert (ctx.get(dut.o_error_code).value, ctx.get(dut.o_error_detail),
                    ctx.get(dut.o_fault_addr)) == held, f"cycle {cyc}"
            await ctx.tick()
            pulse = False
            if clear:
                held = (0, 0, 0)
            elif first is not None and enable:
                held = (first["code"], first["detail"], first["addr"])
                pulse = True

    simulate(dut, tb)


# ---------------------------------------------------------------------------------------
# Issue queue
# ---------------------------------------------------------------------------------------

def run_issue_queue(seed, depth=4, inflight_depth=3, n=60, cycles=3000):
    """Entries with random waits on one model semaphore (counted up at random); the
    engine takes commands and reports completions at random."""
    dut = IssueQueue(DmaDesc, depth=depth, inflight_depth=inflight_depth)
    rng = random.Random(seed)
    entries = [dict(wait=dict(en=rng.random() < 0.5, sem=0, val=rng.randrange(1, 8)),
                    signal=dict(en=rng.random() < 0.5, sem=rng.randrange(32)),
                    addr=rng.randrange(1 << 48) & ~31,
                    cmd=dict(addr=rng.randrange(1 << 48), rows=rng.randrange(512),
                             tag=rng.randrange(256)))
               for _ in range(n)]
    issued, records = [], []

    async def tb(ctx):
        sem = 0
        i = 0
        outstanding = 0             # issued, record not yet popped
        for _ in range(cycles):
            if rng.random() < 0.05:
                sem += 1
            w = ctx.get(dut.o_wait)
            ok = (not w.en) or sem >= w.val
            ctx.set(dut.i_wait_ok, ok)
            enable = rng.random() < 0.9
            ctx.set(dut.i_enable, enable)
            ctx.set(dut.i_flush, 0)
            ctx.set(dut.i.valid, i < n)
            if i < n:
                ctx.set(dut.i.payload, entries[i])
            ready = rng.random() < 0.6
            ctx.set(dut.o.ready, ready)
            done = rng.random() < 0.3
            ctx.set(dut.o_inflight.ready, done)
            ov = ctx.get(dut.o.valid)
            if ov:
                assert ok and enable, "issued while its wait or enable does not hold"
                assert outstanding < inflight_depth
            fire = ov and ready
            if fire:
                issued.append(ctx.get(dut.o.payload))
            if ctx.get(dut.o_inflight.valid) and done:
                records.append(ctx.get(dut.o_inflight.payload))
                outstanding -= 1
            took = i < n and ctx.get(dut.i.ready)
            await ctx.tick()
            outstanding += fire
            i += took
            if len(records) == n:
                return
        raise AssertionError(f"{len(issued)} issued, {len(records)} finished of {n}")

    simulate(dut, tb)
    return entries, issued, records


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_issue_queue_order_wait_and_records(seed):
    entries, issued, records = run_issue_queue(seed)
    assert len(issued) == len(entries)
    for e, c, r in zip(entries, issued, records):
        assert (c.addr, c.rows, c.tag) == (e["cmd"]["addr"], e["cmd"]["rows"], e["cmd"]["tag"])
        assert (r.signal.en, r.signal.sem, r.addr) == (
            e["signal"]["en"], e["signal"]["sem"], e["addr"])


def test_issue_queue_full_backpressure_and_flush():
    """With the engine never ready the queue takes exactly ``depth`` entries, then holds
    ``i.ready`` low; a flush empties it (o_idle) without issuing anything."""
    depth = 4
    dut = IssueQueue(MatmulCmd, depth=depth, inflight_depth=2, macs=True)

    async def tb(ctx):
        ctx.set(dut.i_wait_ok, 1)
        ctx.set(dut.i_enable, 1)
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        accepted = 0
        for v in range(10):
            ctx.set(dut.i.payload, {"addr": 32 * v, "macs": v})
            if ctx.get(dut.i.ready):
                accepted += 1
            await ctx.tick()
        assert accepted == depth
        assert ctx.get(dut.o.valid)
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.i_flush, 1)
        for _ in range(depth + 2):
            await ctx.tick()
        assert ctx.get(dut.o_idle)
        assert not ctx.get(dut.o_inflight.valid)

    simulate(dut, tb)


def test_issue_queue_blocked_by_wait():
    dut = IssueQueue(DmaDesc, depth=2, inflight_depth=2)

    async def tb(ctx):
        ctx.set(dut.i_enable, 1)
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, {"wait": {"en": 1, "sem": 3, "val": 2}, "addr": 0x40})
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(5):
            await ctx.tick()
            assert not ctx.get(dut.o.valid)
        assert ctx.get(dut.o_blocked) and ctx.get(dut.o_head_addr) == 0x40
        ctx.set(dut.i_wait_ok, 1)
        assert not ctx.get(dut.o_blocked)
        assert not ctx.get(dut.o.valid)     # the verdict is registered: a cycle later
        await ctx.tick()
        assert ctx.get(dut.o.valid)
        await ctx.tick()
        assert not ctx.get(dut.o_blocked)
        await ctx.tick()        # the record is on o_inflight after the FIFO's latency
        assert ctx.get(dut.o_inflight.valid) and ctx.get(dut.o_inflight.payload.addr) == 0x40

    simulate(dut, tb)


# ---------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------

def instr(op, body=0, wait=None, sig=None):
    w = wait or (0, 0, 0)
    s = sig or (0, 0)
    op = op.value if isinstance(op, Opcode) else op
    return (op | (int(bool(wait)) << 4) | (w[1] << 5) | (w[2] << 10)
            | (int(bool(sig)) << 26) | (s[1] << 27) | (body << 32))


def test_instr_helper_matches_layout():
    """The hand encoding above is the Instr layout (so the decoder tests mean what they say)."""
    v = instr(Opcode.SEM, wait=(1, 3, 7), sig=(1, 5))
    assert v == bits(Instr, opcode=Opcode.SEM, wait_en=1, wait_sem=3, wait_val=7,
                     sig_en=1, sig_sem=5)


DECODE_FAULTS = [
    # (instruction, fetch error, expected code)
    (instr(0), 0, CoreError.OPCODE),
    (instr(6), 0, CoreError.OPCODE),
    (instr(15), 0, CoreError.OPCODE),
    (instr(0), 1, CoreError.FETCH),                                  # FETCH first
    (instr(Opcode.SEM, body=1), 0, CoreError.RESERVED),
    (instr(Opcode.DMA, body=1 << BODY_WIDTH[Opcode.DMA]), 0, CoreError.RESERVED),
    (instr(Opcode.END) | (3 << 5), 0, CoreError.RESERVED),           # wait_sem, no wait_en
    (instr(Opcode.END) | (1 << 10), 0, CoreError.RESERVED),          # wait_val, no wait_en
    (instr(Opcode.END) | (1 << 27), 0, CoreError.RESERVED),          # sig_sem, no sig_en
    (instr(Opcode.SEM, wait=(1, 4, 0)), 0, CoreError.SEM_RANGE),     # n_sems = 4
    (instr(Opcode.SEM, sig=(1, 31)), 0, CoreError.SEM_RANGE),
    (instr(Opcode.SEM, body=1 << 4, sig=(1, 31)), 0, CoreError.RESERVED),  # RESERVED first
    # SemCmd: core bits without the remote bit, a remote SEM that does not signal, a
    # remote signal from a core not on a chip (i_cores = 0 here)
    (instr(Opcode.SEM, body=1 << 1, sig=(1, 3)), 0, CoreError.RESERVED),
    (instr(Opcode.SEM, body=1), 0, CoreError.RESERVED),
    (instr(Opcode.SEM, body=1 | 2 << 1, sig=(1, 3)), 0, CoreError.PEER),
    (instr(Opcode.SEM, body=1 | 2 << 1, sig=(1, 31)), 0, CoreError.SEM_RANGE),  # before PEER
    (instr(Opcode.SEM, sig=(1, 3)), 0, CoreError.NONE),
    # the legal edge next to each refusal: the last semaphore waited for, and the
    # first index past it signalled
    (instr(Opcode.SEM, wait=(1, 3, 0)), 0, CoreError.NONE),
    (instr(Opcode.SEM, sig=(1, 4)), 0, CoreError.SEM_RANGE),
]


@pytest.mark.parametrize("word,err,code", DECODE_FAULTS,
                         ids=[f"{j}-{c.name}" for j, (_, _, c) in enumerate(DECODE_FAULTS)])
def test_decoder_fault_codes(word, err, code):
    dut = Decoder(n_sems=4)

    async def tb(ctx):
        await start_at(ctx, dut, 0x1234)
        ctx.set(dut.i_running, 1)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload.as_value(), word | (err << ERR_OFFSET))
        ctx.set(dut.i_wait_ok, 1)
        assert not ctx.get(dut.o_fault).valid   # checked on the way into the register
        await ctx.tick()
        f = ctx.get(dut.o_fault)
        assert f.valid == (code != CoreError.NONE)
        if code != CoreError.NONE:
            assert f.code == code
            assert f.addr == 0x1220 and f.detail == 0
            assert not ctx.get(dut.i.ready)         # stays at the head
            for name in ("dma_in", "dma_out", "tensor", "vector"):
                assert not ctx.get(getattr(dut, f"o_{name}").valid)

    simulate(dut, tb)


def run_decoder(words, *, wait_ok=lambda c: True, quiet=lambda c: True,
                ready=lambda c: True, cycles=60):
    """Feeds ``words`` (one per cycle when taken) and records what comes out."""
    dut = Decoder(n_sems=8)
    log = {"dma_in": [], "dma_out": [], "tensor": [], "vector": [], "signal": [],
           "done": [], "pc": []}

    async def tb(ctx):
        await start_at(ctx, dut, 0x1000)
        ctx.set(dut.i_running, 1)
        i = 0
        for c in range(cycles):
            ctx.set(dut.i.valid, i < len(words))
            if i < len(words):
                ctx.set(dut.i.payload.as_value(), words[i])
            ctx.set(dut.i_wait_ok, wait_ok(c))
            ctx.set(dut.i_quiet, quiet(c))
            for name in ("dma_in", "dma_out", "tensor", "vector"):
                port = getattr(dut, f"o_{name}")
                ctx.set(port.ready, ready(c))
                if ctx.get(port.valid) and ready(c):
                    log[name].append((c, ctx.get(port.payload)))
            sig = ctx.get(dut.o_signal)
            if sig.en:
                log["signal"].append((c, sig.sem))
            if ctx.get(dut.o_done):
                log["done"].append(c)
            took = i < len(words) and ctx.get(dut.i.ready)
            if ctx.get(dut.o_pop):
                log["pc"].append(ctx.get(dut.o_pc))
            await ctx.tick()
            i += took

    simulate(dut, tb)
    return log


def test_decoder_routes_commands():
    rng = random.Random(5)
    load = rng.getrandbits(BODY_WIDTH[Opcode.DMA]) & ~(1 << DmaDesc.as_shape()["store"].offset)
    store = load | (1 << DmaDesc.as_shape()["store"].offset)
    k, mm, n = 5, 7, 300
    mat = bits(MatmulCmd, k=k, m=mm, n=n, bank=1)
    act = rng.getrandbits(BODY_WIDTH[Opcode.ACT])
    words = [instr(Opcode.DMA, load, wait=(1, 2, 9), sig=(1, 3)), instr(Opcode.DMA, store),
             instr(Opcode.MATMUL, mat), instr(Opcode.ACT, act), instr(Opcode.SEM, sig=(1, 6)),
             instr(Opcode.END)]
    log = run_decoder(words)
    (_, e), = log["dma_in"]
    assert e.cmd.as_bits() == load
    assert (e.wait.en, e.wait.sem, e.wait.val, e.signal.en, e.signal.sem, e.addr) == (
        1, 2, 9, 1, 3, 0x1000)
    (_, e), = log["dma_out"]
    assert e.cmd.store == 1 and e.addr == 0x1020
    (_, e), = log["tensor"]
    assert (e.cmd.k, e.cmd.m, e.cmd.n, e.macs, e.addr) == (k, mm, n, k * mm * n, 0x1040)
    (_, e), = log["vector"]
    assert e.cmd.as_bits() == act and e.addr == 0x1060
    assert [s for _, s in log["signal"]] == [6]
    assert len(log["done"]) == 1
    assert log["pc"] == [0x1000 + INSTR_BYTES * j for j in range(len(words))]


def test_decoder_sem_and_end_wait():
    """SEM pops only once its wait has held for a cycle (the verdict is registered); END
    only once its wait has held for a cycle and quiet."""
    words = [instr(Opcode.SEM, wait=(1, 1, 1), sig=(1, 2)), instr(Opcode.END)]
    log = run_decoder(words, wait_ok=lambda c: c >= 10, quiet=lambda c: c >= 20)
    assert log["signal"] == [(11, 2)]
    assert log["done"] == [20]
    # END's wait verdict, too, is that of the previous cycle
    log = run_decoder(words, wait_ok=lambda c: c >= 10 and c != 25, quiet=lambda c: c >= 20)
    assert log["signal"] == [(11, 2)] and log["done"] == [20]
    log = run_decoder([instr(Opcode.END, wait=(1, 1, 1))], wait_ok=lambda c: c in (7, 9, 10),
                      quiet=lambda c: c != 8)
    assert log["done"] == [10]


def test_decoder_full_queue_stalls():
    words = [instr(Opcode.ACT), instr(Opcode.ACT)]
    log = run_decoder(words, ready=lambda c: c in (3, 9))
    assert [c for c, _ in log["vector"]] == [3, 9]


# ---------------------------------------------------------------------------------------
# Fetcher
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dbytes,burst,depth,start", [
    (8, 4, 16, 0x1000), (8, 4, 16, 0x1060), (32, 2, 4, 0x0fe0), (16, 1, 3, 0x2020),
    (8, 8, 8, 0x0f40)])
def test_fetcher(dbytes, burst, depth, start):
    """A memory model answers bursts with random R stalls (and one SLVERR beat); the
    consumer takes instructions at random. Bursts stop at 32*burst-byte boundaries and
    follow each other, at most ``depth`` instructions are ever requested ahead, and the
    instructions come out in order with ``err`` on the one with the bad beat only."""
    run_fetcher(dbytes, burst, depth, start)


@pytest.mark.parametrize("bad_beat", [0, 1, 2])
def test_fetcher_error_on_early_beat(bad_beat):
    """An SLVERR on an early beat of a four-beat instruction (8-byte bus), its later
    beats clean: ``err`` still marks that instruction (and only it) when it comes out."""
    run_fetcher(8, 4, 16, 0x1000, bad_beat=bad_beat)


def run_fetcher(dbytes, burst, depth, start, bad_beat=None):
    """The body of :func:`test_fetcher`; ``bad_beat``: the beat of instruction 13 that
    answers SLVERR (default its last)."""
    cfg = CoreConfig(axi_data_bytes=dbytes, sbuf_word_bytes=dbytes)
    dut = Fetcher(cfg, depth=depth, burst=burst)
    rng = random.Random(dbytes * 100 + burst + start)
    n = 40
    words = [rng.getrandbits(256) for _ in range(n + 2 * depth)]
    bad = 13                # instruction whose last beat answers SLVERR
    beats = INSTR_BYTES // dbytes
    bad_beat = beats - 1 if bad_beat is None else bad_beat
    got = []

    async def tb(ctx):
        ctx.set(dut.i_prog_addr, start + 7)            # low five bits are ignored
        ctx.set(dut.i_start, 1)
        await ctx.tick()
        ctx.set(dut.i_start, 0)
        ctx.set(dut.i_enable, 1)
        bursts = []                 # [address, beats sent, beats] of accepted ARs
        requested = 0               # instructions requested so far
        ahead = 0                   # instructions requested and not yet taken
        for _ in range(4000):
            ctx.set(dut.m_axi.arready, rng.random() < 0.5)
            if ctx.get(dut.m_axi.arvalid) and ctx.get(dut.m_axi.arready):
                addr, ln = ctx.get(dut.m_axi.araddr), ctx.get(dut.m_axi.arlen) + 1
                assert ctx.get(dut.m_axi.arid) == FETCH_ID
                assert ctx.get(dut.m_axi.arprot) == 0b100 and ctx.get(dut.m_axi.arburst) == 1
                assert 1 << ctx.get(dut.m_axi.arsize) == dbytes
                assert ln % beats == 0 and 1 <= ln // beats <= burst
                assert addr // (32 * burst) == (addr + ln * dbytes - 1) // (32 * burst), \
                    "a burst crosses a 32*burst boundary"
                assert addr == start + INSTR_BYTES * requested, "bursts out of sequence"
                # a burst ends at a boundary unless the FIFO could not take more
                bursts.append([addr, 0, ln])
                requested += ln // beats
                ahead += ln // beats
                assert ahead <= depth, "more requested than the FIFO holds"
            rvalid = bool(bursts) and rng.random() < 0.7
            ctx.set(dut.m_axi.rvalid, rvalid)
            if rvalid:
                addr, k, ln = bursts[0]
                a = addr + k * dbytes
                i = (a - start) // INSTR_BYTES
                ctx.set(dut.m_axi.rdata,
                        (words[i] >> (8 * (a % INSTR_BYTES))) & ((1 << (8 * dbytes)) - 1))
                ctx.set(dut.m_axi.rresp, 2 if (i == bad and k % beats == bad_beat) else 0)
                ctx.set(dut.m_axi.rlast, k == ln - 1)
                ctx.set(dut.m_axi.rid, FETCH_ID)
                assert ctx.get(dut.m_axi.rready) and ctx.get(dut.o_beat)
            take = rng.random() < 0.4
            ctx.set(dut.o.ready, take)
            if ctx.get(dut.o.valid) and take:
                p = ctx.get(dut.o.payload)
                got.append((p.instr.as_bits(), p.err))
                ahead -= 1
            await ctx.tick()
            if rvalid:
                bursts[0][1] += 1
                if bursts[0][1] == bursts[0][2]:
                    bursts.pop(0)
            if len(got) >= n:
                break
        assert ctx.get(dut.o_busy)      # it keeps fetching ahead

    simulate(dut, tb)
    assert got[:n] == [(words[i], int(i == bad)) for i in range(n)]


def test_fetcher_bursts_stop_at_boundaries():
    """From an address in the middle of a 128-byte block the first burst stops at the
    block's end, later ones are whole blocks."""
    cfg = CoreConfig()
    dut = Fetcher(cfg, depth=16, burst=4)

    async def tb(ctx):
        await start_at(ctx, dut, 0x1040)
        ctx.set(dut.i_enable, 1)
        ctx.set(dut.m_axi.arready, 1)
        seen = []
        for _ in range(20):
            if ctx.get(dut.m_axi.arvalid):
                seen.append((ctx.get(dut.m_axi.araddr), ctx.get(dut.m_axi.arlen) + 1))
            await ctx.tick()
        # 16 instructions of room: 2 + 4 + 4 + 4; the next block's 4 do not fit
        assert seen == [(0x1040, 8), (0x1080, 16), (0x1100, 16), (0x1180, 16)]

    simulate(dut, tb)


# ---------------------------------------------------------------------------------------
# SyncStreamFIFO
# ---------------------------------------------------------------------------------------

def test_sync_stream_fifo_typed_order_and_capacity():
    dut = SyncStreamFIFO(inflight_layout(True), 3)
    rng = random.Random(3)
    data = [rng.randrange(1 << 40) for _ in range(50)]
    got = []

    async def tb(ctx):
        i = 0
        for _ in range(1000):
            ctx.set(dut.i.valid, i < len(data))
            if i < len(data):
                ctx.set(dut.i.payload, {"macs": data[i], "addr": i})
            ready = rng.random() < 0.4
            ctx.set(dut.o.ready, ready)
            assert ctx.get(dut.level) <= 3
            if ctx.get(dut.o.valid) and ready:
                p = ctx.get(dut.o.payload)
                got.append((p.macs, p.addr))
            took = i < len(data) and ctx.get(dut.i.ready)
            await ctx.tick()
            i += took
        assert got == [(d, k) for k, d in enumerate(data)]

    simulate(dut, tb)
    with pytest.raises(ValueError, match="depth must be a positive integer, not 0"):
        SyncStreamFIFO(8, 0)


# ---------------------------------------------------------------------------------------
# AXIJoin and RoundRobin
# ---------------------------------------------------------------------------------------

def test_axi_join():
    cfg = CoreConfig()
    dut = AXIJoin(cfg)
    rng = random.Random(11)

    async def tb(ctx):
        f, d, w, o = dut.i_fetch, dut.i_dma_in, dut.i_dma_out, dut.m_axi
        pending = {"f": [], "d": []}        # addresses each manager still has to send
        pending["f"] = [0x1000 + 32 * k for k in range(20)]
        pending["d"] = [0x8000 + 64 * k for k in range(20)]
        order = []
        for cyc in range(200):
            for mgr, key in ((f, "f"), (d, "d")):
                ctx.set(mgr.arvalid, bool(pending[key]))
                if pending[key]:
                    ctx.set(mgr.araddr, pending[key][0])
                    ctx.set(mgr.arid, 1 if key == "f" else 0)
            ctx.set(o.arready, rng.random() < 0.6)
            if ctx.get(o.arvalid) and ctx.get(o.arready):
                order.append(ctx.get(o.araddr))
            tf = ctx.get(f.arvalid) and ctx.get(f.arready)
            td = ctx.get(d.arvalid) and ctx.get(d.arready)
            assert not (tf and td)
            # R routing by RID
            rid = rng.randrange(2)
            ctx.set(o.rvalid, 1)
            ctx.set(o.rid, rid)
            ctx.set(o.rdata, cyc)
            rr_f, rr_d = rng.random() < 0.5, rng.random() < 0.5
            ctx.set(f.rready, rr_f)
            ctx.set(d.rready, rr_d)
            assert ctx.get(f.rvalid) == (rid == FETCH_ID)
            assert ctx.get(d.rvalid) == (rid != FETCH_ID)
            assert ctx.get(o.rready) == (rr_f if rid == FETCH_ID else rr_d)
            # AW/W/B straight through
            v = rng.getrandbits(32)
            ctx.set(w.awaddr, v)
            ctx.set(w.awvalid, v & 1)
            ctx.set(o.awready, (v >> 1) & 1)
            ctx.set(o.bvalid, (v >> 2) & 1)
            assert ctx.get(o.awaddr) == v and ctx.get(o.awvalid) == v & 1
            assert ctx.get(w.awready) == (v >> 1) & 1 and ctx.get(w.bvalid) == (v >> 2) & 1
            assert not ctx.get(f.awready) and not ctx.get(d.wready) and not ctx.get(w.rvalid)
            await ctx.tick()
            if tf:
                pending["f"].pop(0)
            if td:
                pending["d"].pop(0)
        # every request once, in each manager's order, alternating while both asked
        fs = [a for a in order if a < 0x8000]
        ds = [a for a in order if a >= 0x8000]
        assert fs == [0x1000 + 32 * k for k in range(20)]
        assert ds == [0x8000 + 64 * k for k in range(20)]
        kinds = ["f" if a < 0x8000 else "d" for a in order]
        both = kinds[:38]
        assert all(both[j] != both[j + 1] for j in range(len(both) - 1)), kinds

    simulate(dut, tb)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_round_robin(n):
    dut = RoundRobin(n)
    rng = random.Random(n)

    async def tb(ctx):
        last = n - 1
        waiting = [0] * n               # grants given to others while j asked
        for cyc in range(500):
            req = rng.getrandbits(n) if cyc % 7 else (1 << n) - 1
            adv = rng.random() < 0.7
            ctx.set(dut.i_req, req)
            ctx.set(dut.i_advance, adv)
            want = 0
            for k in range(1, n + 1):
                j = (last + k) % n
                if req >> j & 1:
                    want = 1 << j
                    break
            assert ctx.get(dut.o_grant) == want, f"cycle {cyc}"
            await ctx.tick()
            if adv and want:
                g = want.bit_length() - 1
                for j in range(n):
                    waiting[j] = 0 if j == g or not (req >> j & 1) else waiting[j] + 1
                    assert waiting[j] < n
                last = g

    simulate(dut, tb)


def test_parameter_checks():
    with pytest.raises(ValueError, match="n_sems must be an integer from 1 to 32, not 33"):
        Semaphores(33, n_signals=1, n_waits=1)
    with pytest.raises(ValueError, match="burst must be 1, 2, 4 or 8 and at most depth"):
        Fetcher(CoreConfig(), depth=2, burst=4)
    with pytest.raises(TypeError, match="config must be a CoreConfig"):
        Fetcher({})
    with pytest.raises(ValueError, match="inflight_depth must be an integer from 1 to 64"):
        IssueQueue(DmaDesc, depth=4, inflight_depth=0)
    with pytest.raises(ValueError, match="n must be an integer from 1 to 16, not 0"):
        FaultCapture(0)


# ---------------------------------------------------------------------------------------
# Controller: the start guard
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("gap", [1, 2, 5])
def test_controller_ignores_start_while_busy(gap):
    """A second start ``gap`` cycles after the first (the program still fetching: no R
    beat ever comes) is ignored: every fetch request continues the first program's
    addresses and the controller stays busy. The guard reads busy a cycle late, so
    the cycle right after a start is the one to check."""
    from hdl.controller import Controller
    dut = Controller(CoreConfig())
    first, second = 0x4000, 0x9000

    async def tb(ctx):
        ctx.set(dut.m_axi.arready, 1)
        ars = []
        for cyc in range(40):
            ctx.set(dut.ctrl.start, cyc in (2, 2 + gap))
            ctx.set(dut.ctrl.prog_addr, first if cyc < 2 + gap else second)
            if ctx.get(dut.m_axi.arvalid):
                ars.append(ctx.get(dut.m_axi.araddr))
            await ctx.tick()
            if cyc > 3:
                assert ctx.get(dut.status.busy), f"cycle {cyc}"
        assert ars and ars[0] == first
        assert all(b > a for a, b in zip(ars, ars[1:])), [hex(a) for a in ars]
        assert all(a < second for a in ars), [hex(a) for a in ars]

    simulate(dut, tb)
