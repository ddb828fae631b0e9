# amaranth: UnusedElaboratable=no
"""SBUF in Amaranth's simulator against a Python model of its memory contents.

Concurrent read and write clients with random valid/ready stalls, byte strobes and
partition masks, same-cycle read/write forwarding, round-robin fairness, and the
constructor's parameter checks. Expected values come from :class:`Model`, which is
updated in the order the testbench observes handshakes (valid & ready at a clock edge).
"""

from collections import deque

import numpy as np
import pytest
from amaranth.hdl import Shape

from amaranth_helpers import (client_cycle, memory_parameter_tests, release_clients,
                               simulate)
from hdl.config import CoreConfig
from hdl.sbuf import SBUF

CFG = CoreConfig(rows=4, cols=4, sbuf_bytes=256, psum_banks=2, psum_depth=16)
ROWS = CFG.rows
WB = CFG.sbuf_word_bytes
WORDS = CFG.sbuf_words
WORD_BITS = 8 * WB
WORD_MASK = (1 << WORD_BITS) - 1
ALL_P = (1 << ROWS) - 1
ALL_B = (1 << WB) - 1


class Model:
    """The SBUF contents, ``mem[partition][word]`` (all zero after reset)."""

    def __init__(self):
        self.mem = [[0] * WORDS for _ in range(ROWS)]

    def write(self, addr, pmask, strb, data):
        bytemask = 0
        for b in range(WB):
            if strb >> b & 1:
                bytemask |= 0xFF << (8 * b)
        for p in range(ROWS):
            if pmask >> p & 1:
                old = self.mem[p][addr]
                self.mem[p][addr] = (old & ~bytemask & WORD_MASK) | (data[p] & bytemask)

    def read(self, addr):
        return tuple(self.mem[p][addr] for p in range(ROWS))


def unpack(bits):
    return tuple((bits >> (WORD_BITS * p)) & WORD_MASK for p in range(ROWS))


def fmt(words):
    return "[" + ", ".join(f"{w:#018x}" for w in words) + "]"


async def prefill(ctx, dut, model, rng, tag):
    """Give every word of every partition a random value (all partitions, all bytes)
    through write client 0, the other clients idle: a known background for the test
    that follows. Returns the write requests."""
    fill = [(a, ALL_P, ALL_B, tuple(int(v) for v in rng.integers(0, 1 << 62, ROWS)))
            for a in range(WORDS)]
    await drive(ctx, dut, model, [fill] + [[] for _ in dut.wr[1:]], [[] for _ in dut.rd],
                rng, tag, p_wvalid=1.0)
    return fill


def random_writes(rng, addrs, n, full=False):
    """``n`` random write requests ``(addr, pmask, strb, data)`` to ``addrs``."""
    out = []
    for _ in range(n):
        addr = int(rng.choice(addrs))
        pmask = ALL_P if full else int(rng.integers(0, ALL_P + 1))
        strb = ALL_B if full else int(rng.integers(0, ALL_B + 1))
        data = tuple(int(v) for v in rng.integers(0, 1 << 63, ROWS, dtype=np.uint64) * 2
                     + rng.integers(0, 2, ROWS, dtype=np.uint64))
        out.append((addr, pmask, strb, data))
    return out


async def drive(ctx, dut, model, writes, reads, rng, tag, *, p_wvalid=0.7, p_rvalid=0.7,
                p_rready=0.7, max_cycles=20000, log=None):
    """Run write clients (``writes[c]``: list of requests) and read clients
    (``reads[c]``: list of addresses) concurrently until every request is accepted and
    every response consumed, checking each response against ``model`` as it was when
    the read was accepted (after a write accepted in the same cycle).

    Stream rules: a request, once valid, keeps its payload until its handshake.
    ``log`` (a list), if given, receives ``(cycle, kind, client)`` per handshake.
    Returns the number of cycles taken.
    """
    nw, nr = len(writes), len(reads)
    writers = [dut.write_client(c) for c in range(nw)]
    rclients = [dut.read_client(c) for c in range(nr)]
    wi = [0] * nw
    ri = [0] * nr
    wvalid = [False] * nw
    rvalid = [False] * nr
    expected = [deque() for _ in range(nr)]
    n_resp = [0] * nr
    for cycle in range(max_cycles):
        if (all(wi[c] == len(writes[c]) for c in range(nw))
                and all(n_resp[c] == len(reads[c]) for c in range(nr))):
            release_clients(ctx, writers, rclients)
            return cycle
        for c, w in enumerate(writers):
            if not wvalid[c] and wi[c] < len(writes[c]) and rng.random() < p_wvalid:
                addr, pmask, strb, data = writes[c][wi[c]]
                ctx.set(w.payload, {"addr": addr, "pmask": pmask, "strb": strb,
                                    "data": list(data)})
                wvalid[c] = True
            ctx.set(w.valid, wvalid[c])
        for c, (q, _) in enumerate(rclients):
            if not rvalid[c] and ri[c] < len(reads[c]) and rng.random() < p_rvalid:
                ctx.set(q.payload.addr, reads[c][ri[c]])
                rvalid[c] = True
            ctx.set(q.valid, rvalid[c])
        rready = [bool(rng.random() < p_rready) for _ in range(nr)]
        wready, qready, ovalid, opayload, _ = await client_cycle(ctx, writers, rclients,
                                                                rready)
        # one write port: at most one write per cycle, and it lands before a read
        # accepted in the same cycle looks at the memory
        took = [c for c in range(nw) if wvalid[c] and wready[c]]
        assert len(took) <= 1, f"{tag}: two writes granted in cycle {cycle}: {took}"
        for c in took:
            model.write(*writes[c][wi[c]])
            wi[c] += 1
            wvalid[c] = False
            if log is not None:
                log.append((cycle, "w", c))
        granted = [c for c in range(nr) if rvalid[c] and qready[c]]
        assert len(granted) <= 1, f"{tag}: two reads granted in cycle {cycle}: {granted}"
        for c in granted:
            addr = reads[c][ri[c]]
            expected[c].append((ri[c], addr, model.read(addr)))
            ri[c] += 1
            rvalid[c] = False
            if log is not None:
                log.append((cycle, "r", c))
        for c in range(nr):
            if ovalid[c] and rready[c]:
                assert expected[c], f"{tag}: client {c}: response without request, cycle {cycle}"
                i, addr, exp = expected[c].popleft()
                got = unpack(opayload[c])
                assert got == exp, (f"{tag}: client {c} read #{i} addr {addr} (cycle {cycle}): "
                                    f"got {fmt(got)}, expected {fmt(exp)}")
                n_resp[c] += 1
    raise AssertionError(f"{tag}: watchdog after {max_cycles} cycles: writes {wi}, "
                         f"reads {ri}, responses {n_resp}")


async def check_quiet(ctx, dut, n_read, tag, cycles=12):
    """No client sees a response it did not ask for."""
    for c in range(n_read):
        ctx.set(dut.read_client(c)[1].ready, 1)
    for t in range(cycles):
        vals = await ctx.tick().sample(*(dut.read_client(c)[1].valid for c in range(n_read)))
        assert not any(vals[2:]), f"{tag}: spurious response {vals[2:]} {t} cycles after the end"


async def check_contents(ctx, dut, model, tag, addrs=None):
    """Read every word in ``addrs`` back on client 0 and compare with the model."""
    addrs = list(range(WORDS)) if addrs is None else list(addrs)
    rng = np.random.default_rng(0)
    await drive(ctx, dut, model, [[] for _ in range(dut._n_write)],
                [addrs] + [[] for _ in range(dut._n_read - 1)], rng, tag + " readback",
                p_rvalid=1.0, p_rready=1.0)


# ---------------------------------------------------------------------------------------
# Random concurrent traffic
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_phases_random_stalls(seed):
    """Phase 1: two writers with stalls fill disjoint address sets. Phase 2: three
    readers with request and response stalls read random addresses. Phase 3: reads
    and writes run concurrently on disjoint address sets. Then a full read-back."""
    rng = np.random.default_rng(seed)
    dut = SBUF(CFG, n_read=3, n_write=2)
    model = Model()
    tag = f"seed {seed}"
    perm = [int(a) for a in rng.permutation(WORDS)]
    w_addrs = [perm[0:8], perm[8:16]]           # phase 1 and 3 writes, one set per writer
    r3_addrs = perm[16:32]                      # phase 3 reads (disjoint from writes)

    async def tb(ctx):
        # phase 1: writes only (full words first so every byte is defined, then partial)
        writes = [[(a, ALL_P, ALL_B, random_writes(rng, [a], 1, full=True)[0][3])
                   for a in w_addrs[c]] + random_writes(rng, w_addrs[c], 20)
                  for c in range(2)]
        await drive(ctx, dut, model, writes, [[], [], []], rng, tag + " phase 1",
                    p_wvalid=0.6)
        # phase 2: reads only, anywhere
        reads = [[int(a) for a in rng.integers(0, WORDS, 30)] for _ in range(3)]
        await drive(ctx, dut, model, [[], []], reads, rng, tag + " phase 2",
                    p_rvalid=0.8, p_rready=0.5)
        # phase 3: writes to w_addrs, reads of r3_addrs, concurrently
        writes = [random_writes(rng, w_addrs[c], 25) for c in range(2)]
        reads = [[int(rng.choice(r3_addrs)) for _ in range(25)] for _ in range(3)]
        await drive(ctx, dut, model, writes, reads, rng, tag + " phase 3",
                    p_wvalid=0.7, p_rvalid=0.7, p_rready=0.6)
        await check_quiet(ctx, dut, 3, tag)
        await check_contents(ctx, dut, model, tag)

    simulate(dut, tb)


@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize("p_valid,p_ready", [(0.5, 0.5), (0.9, 0.3), (1.0, 1.0)])
def test_racing_reads_and_writes(seed, p_valid, p_ready):
    """Both writers and all three readers hit the same eight addresses at once; every
    response must equal the model after all writes accepted up to and including the
    read's own acceptance cycle."""
    rng = np.random.default_rng(seed)
    dut = SBUF(CFG, n_read=3, n_write=2)
    model = Model()
    tag = f"seed {seed} p_valid {p_valid} p_ready {p_ready}"
    addrs = [int(a) for a in rng.choice(WORDS, 8, replace=False)]

    async def tb(ctx):
        writes = [random_writes(rng, addrs, 60) for _ in range(2)]
        reads = [[int(rng.choice(addrs)) for _ in range(60)] for _ in range(3)]
        await drive(ctx, dut, model, writes, reads, rng, tag, p_wvalid=p_valid,
                    p_rvalid=p_valid, p_rready=p_ready)
        await check_quiet(ctx, dut, 3, tag)
        await check_contents(ctx, dut, model, tag, addrs)

    simulate(dut, tb)


@pytest.mark.parametrize("seed", [21, 22])
def test_strobes_and_partition_masks(seed):
    """Only the bytes whose strb bit is set, in the partitions whose pmask bit is set,
    change; everything else (other words included) keeps its value."""
    rng = np.random.default_rng(seed)
    dut = SBUF(CFG, n_read=1, n_write=1)
    model = Model()
    tag = f"seed {seed}"

    async def tb(ctx):
        # a known background everywhere
        bg = await prefill(ctx, dut, model, rng, tag + " background")
        # directed: every single partition and every single byte, then random masks
        directed = []
        for p in range(ROWS):
            directed.append((p, 1 << p, ALL_B, (0x1111111111111111 * (p + 1),) * ROWS))
        for b in range(WB):
            directed.append((4 + b, ALL_P, 1 << b, (0xA5A5A5A5A5A5A5A5,) * ROWS))
        directed.append((12, 0, ALL_B, (WORD_MASK,) * ROWS))        # nothing written
        directed.append((13, ALL_P, 0, (WORD_MASK,) * ROWS))        # nothing written
        directed += random_writes(rng, list(range(14, 24)), 40)
        await drive(ctx, dut, model, [directed], [[]], rng, tag + " masked writes",
                    p_wvalid=0.8)
        # the model itself: spot-check it against hand-computed values
        assert model.mem[1][0] == bg[0][3][1] and model.mem[0][0] == 0x1111111111111111
        assert model.mem[0][4] == (bg[4][3][0] & ~0xFF) | 0xA5
        assert model.read(12) == bg[12][3] and model.read(13) == bg[13][3], tag
        await check_contents(ctx, dut, model, tag)

    simulate(dut, tb)


# ---------------------------------------------------------------------------------------
# Read/write ordering in the same cycle
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("offset", [-2, -1, 0, 1, 2])
@pytest.mark.parametrize("pmask,strb", [(ALL_P, ALL_B), (0b0101, 0b10010110)])
def test_read_vs_write_same_address(offset, pmask, strb):
    """A read of address A accepted ``offset`` cycles after a write to A (negative:
    before it) returns the new data when ``offset >= 0`` and the old data otherwise
    (the SBUF contract: a read accepted in the same cycle as a write, or later,
    returns the written data). Partial strobes check the byte-lane forwarding."""
    dut = SBUF(CFG, n_read=1, n_write=1)
    A = 9
    old = tuple(0x0102030405060708 * (p + 1) for p in range(ROWS))
    new = tuple(0xF0E0D0C0B0A09080 - p for p in range(ROWS))
    model = Model()
    model.write(A, ALL_P, ALL_B, old)
    before = model.read(A)
    model.write(A, pmask, strb, new)
    after = model.read(A)
    assert before != after
    expect = after if offset >= 0 else before
    tag = f"offset {offset} pmask {pmask:#x} strb {strb:#x}"

    async def tb(ctx):
        w = dut.write_client(0)
        q, o = dut.read_client(0)
        ctx.set(w.payload, {"addr": A, "pmask": ALL_P, "strb": ALL_B, "data": list(old)})
        ctx.set(w.valid, 1)
        _, _, ready = await ctx.tick().sample(w.ready)
        assert ready
        ctx.set(w.valid, 0)
        await ctx.tick()
        t_w, t_r = 2, 2 + offset
        ctx.set(o.ready, 1)
        ctx.set(q.payload.addr, A)
        ctx.set(w.payload, {"addr": A, "pmask": pmask, "strb": strb, "data": list(new)})
        got = []
        for t in range(12):
            ctx.set(w.valid, t == t_w)
            ctx.set(q.valid, t == t_r)
            _, _, wr, rr, ov, op = await ctx.tick().sample(
                w.ready, q.ready, o.valid, o.payload.as_value())
            assert wr == (t == t_w) and rr == (t == t_r), f"{tag}: not granted at once"
            if ov:
                got.append(unpack(op))
        assert got == [expect], f"{tag}: got {[fmt(g) for g in got]}, expected {fmt(expect)}"

    simulate(dut, tb)


# ---------------------------------------------------------------------------------------
# Arbitration
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [5, 7])
def test_read_fairness_three_clients(seed):
    """Three readers always asking, responses always taken: each gets a third of the
    grants (within one), in strict rotation, and every response is right."""
    rng = np.random.default_rng(seed)
    dut = SBUF(CFG, n_read=3, n_write=2)
    model = Model()
    log = []
    cycles = 300
    tag = f"seed {seed}"

    async def tb(ctx):
        await prefill(ctx, dut, model, rng, tag)
        reads = [[int(a) for a in rng.integers(0, WORDS, 200)] for _ in range(3)]
        # stop counting after `cycles` cycles by watching the log
        await drive(ctx, dut, model, [[], []], reads, rng, tag,
                    p_rvalid=1.0, p_rready=1.0, log=log)

    simulate(dut, tb)
    start = log[0][0]
    window = [c for (t, k, c) in log if k == "r" and t < start + cycles]
    assert len(window) == cycles, f"{tag}: only {len(window)} grants in {cycles} cycles"
    counts = [window.count(c) for c in range(3)]
    for c in range(3):
        assert abs(counts[c] - cycles / 3) <= 1, f"{tag}: grants per client {counts}"
    assert sorted(window[:3]) == [0, 1, 2], f"{tag}: {window[:3]}"
    assert all(window[i] == window[i % 3] for i in range(len(window))), (
        f"{tag}: not a rotation: {window[:12]}...")


@pytest.mark.parametrize("seed", [6, 8])
def test_write_fairness_alternates(seed):
    """Two writers always asking alternate, one write per cycle."""
    rng = np.random.default_rng(seed)
    tag = f"seed {seed}"
    dut = SBUF(CFG, n_read=3, n_write=2)
    model = Model()
    log = []

    async def tb(ctx):
        writes = [random_writes(rng, list(range(0, 16)), 100),
                  random_writes(rng, list(range(16, 32)), 100)]
        await drive(ctx, dut, model, writes, [[], [], []], rng, tag, p_wvalid=1.0, log=log)
        await check_contents(ctx, dut, model, tag)

    simulate(dut, tb)
    times = [t for t, _, _ in log]
    who = [c for _, _, c in log]
    assert times == list(range(times[0], times[0] + 200)), f"{tag}: a cycle without a write"
    assert who == [who[0], 1 - who[0]] * 100, f"{tag}: not alternating: {who[:20]}..."


@pytest.mark.parametrize("seed", [31, 32])
@pytest.mark.parametrize("victim", [0, 1, 2])
def test_read_client_never_starves(seed, victim):
    """Two readers always asking; the third asks now and then. Its request is granted
    within ``n_read`` cycles of being raised (round-robin bound)."""
    rng = np.random.default_rng(seed)
    dut = SBUF(CFG, n_read=3, n_write=1)
    tag = f"seed {seed} victim {victim}"
    model = Model()
    waits = []

    async def tb(ctx):
        await prefill(ctx, dut, model, rng, tag)
        clients = [dut.read_client(c) for c in range(3)]
        for q, o in clients:
            ctx.set(o.ready, 1)
        for c, (q, _) in enumerate(clients):
            if c != victim:
                ctx.set(q.valid, 1)
                ctx.set(q.payload.addr, c)
        q, _ = clients[victim]
        raised = None
        expected = deque()
        n_got = 0
        for t in range(400):
            if raised is None and rng.random() < 0.3:
                raised = t
                addr = int(rng.integers(0, WORDS))
                ctx.set(q.payload.addr, addr)
            ctx.set(q.valid, raised is not None)
            vals = await ctx.tick().sample(*(c.ready for c, _ in clients),
                                           clients[victim][1].valid,
                                           clients[victim][1].payload.as_value())
            readies, ov, op = vals[2:5], vals[5], vals[6]
            assert sum(readies) == 1, f"{tag}: grants {readies} at cycle {t}"
            if raised is not None and readies[victim]:
                waits.append(t - raised)
                expected.append(model.read(addr))
                raised = None
            if ov:
                assert unpack(op) == expected.popleft(), f"{tag}: wrong data at cycle {t}"
                n_got += 1
        assert n_got >= len(waits) - 3, f"{tag}: {n_got} responses for {len(waits)} grants"

    simulate(dut, tb)
    assert len(waits) > 40, f"{tag}: only {len(waits)} requests"
    assert max(waits) <= 2, f"{tag}: waited {max(waits)} cycles (n_read = 3): {waits}"


@pytest.mark.parametrize("seed", [41])
@pytest.mark.parametrize("resp_depth", [3, 4, 6, 8])
def test_single_reader_full_rate(resp_depth, seed):
    """One reader always asking with responses always taken gets every response,
    in order, with the right data; with ``resp_depth`` >= 6 it runs at one word per
    cycle (the docstring's claim)."""
    rng = np.random.default_rng(seed)
    dut = SBUF(CFG, n_read=1, n_write=1, resp_depth=resp_depth)
    model = Model()
    log = []
    tag = f"resp_depth {resp_depth} seed {seed}"

    async def tb(ctx):
        await prefill(ctx, dut, model, rng, tag)
        reads = [[int(a) for a in rng.integers(0, WORDS, 60)]]
        await drive(ctx, dut, model, [[]], reads, rng, tag, p_rvalid=1.0, p_rready=1.0,
                    max_cycles=1000, log=log)
        await check_quiet(ctx, dut, 1, tag)

    simulate(dut, tb)
    if resp_depth >= 6:
        times = [t for t, _, _ in log]
        assert times == list(range(times[0], times[0] + 60)), f"{tag}: gaps in {times}"


def test_smallest_resp_depth_back_to_back_reads():
    """``resp_depth=3``, the smallest depth the constructor accepts:
    two reads granted in consecutive cycles, responses always taken. Both responses
    must arrive, in order."""
    dut = SBUF(CFG, n_read=1, n_write=1, resp_depth=3)
    words = {a: tuple(0x1000 * (a + 1) + p for p in range(ROWS)) for a in range(2)}

    async def tb(ctx):
        w = dut.write_client(0)
        q, o = dut.read_client(0)
        for a, data in words.items():
            ctx.set(w.payload, {"addr": a, "pmask": ALL_P, "strb": ALL_B, "data": list(data)})
            ctx.set(w.valid, 1)
            await ctx.tick()
        ctx.set(w.valid, 0)
        ctx.set(o.ready, 1)
        granted, got = [], []
        pending = [0, 1]
        for t in range(12):
            ctx.set(q.valid, bool(pending))
            if pending:
                ctx.set(q.payload.addr, pending[0])
            _, _, rr, ov, op = await ctx.tick().sample(q.ready, o.valid, o.payload.as_value())
            if pending and rr:
                granted.append((t, pending.pop(0)))
            if ov:
                got.append(unpack(op))
        assert [a for _, a in granted] == [0, 1]
        assert got == [words[0], words[1]], (
            f"grants at {granted}; responses {[fmt(g) for g in got]}")

    simulate(dut, tb)


@pytest.mark.parametrize("seed", [51, 52])
def test_stalled_reader_blocks_only_itself(seed):
    """Reader 0 never takes its responses for a long time: its credits run out, but
    reader 1 and the writer keep going; afterwards reader 0 gets every response."""
    rng = np.random.default_rng(seed)
    dut = SBUF(CFG, n_read=2, n_write=1)
    model = Model()
    tag = f"seed {seed}"

    async def tb(ctx):
        await prefill(ctx, dut, model, rng, tag)
        # reader 0 reads 0..15, the writer and reader 1 work on 16..31
        q0, o0 = dut.read_client(0)
        q1, o1 = dut.read_client(1)
        w = dut.write_client(0)
        ctx.set(o0.ready, 0)
        ctx.set(o1.ready, 1)
        ctx.set(q0.valid, 1)
        ctx.set(q1.valid, 1)
        ctx.set(w.valid, 1)
        exp0, exp1 = deque(), deque()
        a0 = int(rng.integers(0, 16))
        a1 = int(rng.integers(16, 32))
        wr = random_writes(rng, list(range(16, 32)), 1)[0]
        n0 = n1 = nw = got1 = 0
        for t in range(200):
            ctx.set(q0.payload.addr, a0)
            ctx.set(q1.payload.addr, a1)
            ctx.set(w.payload, {"addr": wr[0], "pmask": wr[1], "strb": wr[2],
                                "data": list(wr[3])})
            _, _, r0, r1, wrdy, v0, v1, p1 = await ctx.tick().sample(
                q0.ready, q1.ready, w.ready, o0.valid, o1.valid, o1.payload.as_value())
            if wrdy:
                model.write(*wr)
                nw += 1
                wr = random_writes(rng, list(range(16, 32)), 1)[0]
            if r0:
                exp0.append(model.read(a0))
                n0 += 1
                a0 = int(rng.integers(0, 16))
            if r1:
                exp1.append(model.read(a1))
                n1 += 1
                a1 = int(rng.integers(16, 32))
            if v1:
                assert unpack(p1) == exp1.popleft(), f"{tag}: reader 1 wrong at cycle {t}"
                got1 += 1
        assert n0 == 6, f"{tag}: stalled reader got {n0} grants, resp_depth is 6"
        assert nw == 200, f"{tag}: writer blocked ({nw} of 200 cycles)"
        assert n1 >= 190 and got1 >= n1 - 4, f"{tag}: reader 1 blocked ({n1}, {got1})"
        ctx.set(q0.valid, 0)
        ctx.set(q1.valid, 0)
        ctx.set(w.valid, 0)
        for t in range(20):
            ctx.set(o0.ready, t % 2)
            _, _, v0, p0, v1, p1 = await ctx.tick().sample(
                o0.valid, o0.payload.as_value(), o1.valid, o1.payload.as_value())
            if v0 and t % 2:
                assert unpack(p0) == exp0.popleft(), f"{tag}: reader 0 wrong"
            if v1:
                assert unpack(p1) == exp1.popleft(), f"{tag}: reader 1 wrong"
        assert not exp0 and not exp1, f"{tag}: lost responses {len(exp0)}, {len(exp1)}"

    simulate(dut, tb)


# ---------------------------------------------------------------------------------------
# Parameter checks
# ---------------------------------------------------------------------------------------

test_parameter_errors, test_config_type_error = memory_parameter_tests(SBUF, CFG)


def test_ports_and_memory_shape():
    dut = SBUF(CFG, n_read=3, n_write=2)
    assert dut.config is CFG
    assert len(dut.banks) == ROWS
    assert all(b.depth == WORDS and Shape.cast(b.shape).width == WORD_BITS for b in dut.banks)
    for c in range(2):
        assert dut.write_client(c) is dut.wr[c]
    for c in range(3):
        assert dut.read_client(c) == (dut.rd[c].req, dut.rd[c].resp)
    assert len(dut.wr) == 2 and len(dut.rd) == 3


def test_no_write_in_reset():
    """A write whose registered enable meets the reset is dropped: until the reset
    reaches SBUF's write pipeline (the first clock edge, when flip-flops power up
    undefined) its enable may hold anything, and memory must not change. The same
    write without the reset lands (so the test can see a write)."""
    from amaranth.hdl import ClockDomain, Module
    dut = SBUF(CFG, n_read=1, n_write=1)
    m = Module()
    m.submodules.sbuf = dut
    cd = m.domains.sync = ClockDomain("sync")
    w = dut.write_client(0)
    word = 0x0123456789ABCDEF

    async def write(ctx, addr, reset):
        ctx.set(w.payload, {"addr": addr, "pmask": ALL_P, "strb": ALL_B,
                            "data": [word] * ROWS})
        ctx.set(w.valid, 1)
        await ctx.tick()                # granted: the write is registered
        ctx.set(w.valid, 0)
        ctx.set(cd.rst, reset)          # the cycle the banks would write
        await ctx.tick()
        ctx.set(cd.rst, 0)
        await ctx.tick().repeat(2)

    async def tb(ctx):
        await write(ctx, 3, reset=True)
        await write(ctx, 5, reset=False)
        for p, bank in enumerate(dut.banks):
            assert ctx.get(bank[3]) == 0, f"partition {p}: written during reset"
            assert ctx.get(bank[5]) == word, f"partition {p}: the write without reset"

    simulate(m, tb)
