# amaranth: UnusedElaboratable=no
""":class:`hdl.tops.simdram.SimDram` in Amaranth's simulator, driven by a small AXI4 manager
written here (one testbench process drives all five channels, cycle by cycle).

Expected values come from a Python byte-array model of the memory (all zero at the
start), never from the design:

* INCR write bursts of 1..16 beats with random byte strobes and read bursts, with the
  manager pausing AR/AW/W at random and holding RREADY/BREADY low at random; reads and
  writes run at the same time on disjoint halves of the memory;
* the read latency of a lone burst (exact count, see :func:`first_beat_delay`), one beat
  per cycle within a burst, and at most one idle cycle between back-to-back bursts;
* ``outstanding`` reads queued (plus the one being served) behind a stalled R channel,
  then served in order with their IDs;
* DECERR (resp 3) at or beyond ``size``: zero read data, no write takes effect;
* ``stall_16ths`` = 6: random pauses, the same results as without them, and the AXI
  rule that a beat once offered (RVALID/BVALID high) stays offered with a stable
  payload until it is taken -- checked on every cycle for R and B.
"""

import random
from collections import deque

import pytest

from amaranth_helpers import simulate
from hdl.axi import AXIResp
from hdl.config import CoreConfig
from hdl.tops.simdram import SimDram

CFG = CoreConfig(rows=4, cols=4)
NB = CFG.axi_data_bytes                 # 8 bytes per beat
SIZE = 1024                             # 1 KiB: 128 words
WORDS = SIZE // NB
OKAY, DECERR = AXIResp.OKAY, AXIResp.DECERR
ID_MASK = (1 << CFG.axi_id_width) - 1


def first_beat_delay(latency):
    """Cycles from the AR handshake (the cycle in which ARVALID and ARREADY are both
    high, counted as 0) to the first cycle with RVALID high, for a burst requested when
    nothing else is queued and with no stalls.

    Counted from the code: the request is stamped ``due = now + latency`` in the
    handshake cycle (``now`` = N); the AR FIFO (SyncFIFOBuffered) shows it at its output
    two cycles later (N + 2); it is popped in the first cycle with ``now >= due`` and
    the FIFO output valid, i.e. at N + max(latency, 2); ``r_busy`` is set by that pop
    and RVALID rises one cycle later. So the first beat is offered max(latency, 2) + 1
    cycles after the handshake cycle (latency 20 -> 21), one more than the docstring's
    "``latency`` cycles after its request was accepted" if acceptance is the handshake
    cycle (equal to it if acceptance is taken as the clock edge ending that cycle and
    the beat is counted when it is taken at the end of its cycle).
    """
    return max(latency, 2) + 1


# ---------------------------------------------------------------------------------------
# memory model
# ---------------------------------------------------------------------------------------

class Model:
    """The memory as bytes; beats at or beyond ``size`` are DECERR (zero, no write)."""

    def __init__(self, size=SIZE):
        self.size = size
        self.mem = bytearray(size)

    def read(self, addr, beats):
        out = []
        for i in range(beats):
            a = addr + i * NB
            if a < self.size:
                w = a // NB * NB
                out.append((int.from_bytes(self.mem[w:w + NB], "little"), OKAY))
            else:
                out.append((0, DECERR))
        return out

    def write(self, addr, data, strb):
        """Apply a burst; returns the expected BRESP."""
        resp = OKAY
        for i, (d, s) in enumerate(zip(data, strb)):
            a = addr + i * NB
            if a >= self.size:
                resp = DECERR
                continue
            w = a // NB * NB
            for q in range(NB):
                if s >> q & 1:
                    self.mem[w + q] = d >> (8 * q) & 0xFF
        return resp


# ---------------------------------------------------------------------------------------
# the AXI4 manager
# ---------------------------------------------------------------------------------------

class Manager:
    """Drives ``dut.s_axi`` as an AXI4 manager, one :meth:`step` per clock cycle.

    Queued reads/writes go out in order; ARVALID/AWVALID/WVALID are raised with
    probability ``p_ar``/``p_aw``/``p_w`` in a cycle when nothing is pending on that
    channel and, once raised, held (with a stable payload) until the handshake.
    RREADY/BREADY are high with probability ``p_r``/``p_b`` in each cycle (or given by
    ``rready_fn``). Every R and B beat is checked against the expectation given when the
    burst was queued; every cycle checks that an offered R/B beat not taken is still
    offered, unchanged, in the next cycle. A log of handshake cycles is kept.
    """

    def __init__(self, ctx, dut, rng, tag, *, p_ar=1.0, p_aw=1.0, p_w=1.0, p_r=1.0,
                 p_b=1.0):
        self.ctx, self.bus, self.rng, self.tag = ctx, dut.s_axi, rng, tag
        self.p_ar, self.p_aw, self.p_w, self.p_r, self.p_b = p_ar, p_aw, p_w, p_r, p_b
        self.rready_fn = None
        self.cycle = 0
        self.ar_q, self.aw_q, self.w_q = deque(), deque(), deque()
        self.ar_cur = self.aw_cur = self.w_cur = None
        self.r_exp = deque()        # accepted reads: dicts with "beats" left to check
        self.b_exp = deque()        # writes whose AW was queued, in order
        self.reads, self.writes = [], []   # every burst record, in queue order
        self.r_log = []             # (cycle, id, data, resp, last) of every R handshake
        self.b_log = []             # (cycle, id, resp) of every B handshake
        self.rvalid_cycles = []     # cycles with RVALID high
        self.prev_r = self.prev_b = None
        b = self.bus
        self.samp = (b.arready, b.awready, b.wready, b.rvalid, b.rdata, b.rresp, b.rlast,
                     b.rid, b.bvalid, b.bresp, b.bid)
        for s, v in ((b.arvalid, 0), (b.awvalid, 0), (b.wvalid, 0), (b.rready, 0),
                     (b.bready, 0)):
            ctx.set(s, v)

    # -- queueing ------------------------------------------------------------------------

    def read(self, addr, beats, rid, expect):
        """Queue a read burst; ``expect`` is the list of (data, resp) per beat."""
        assert 1 <= beats <= 256 and len(expect) == beats
        rec = {"addr": addr, "beats": beats, "id": rid, "expect": list(expect),
               "got": [], "hs": None, "cycles": []}
        self.ar_q.append(rec)
        self.reads.append(rec)
        return rec

    def write(self, addr, data, strb, wid, bresp):
        assert 1 <= len(data) <= 256 and len(strb) == len(data)
        rec = {"addr": addr, "beats": len(data), "id": wid, "bresp": bresp,
               "hs": None, "w_cycles": [], "b_cycle": None}
        self.aw_q.append(rec)
        self.b_exp.append(rec)
        for i, (d, s) in enumerate(zip(data, strb)):
            self.w_q.append((rec, d, s, int(i == len(data) - 1)))
        self.writes.append(rec)
        return rec

    def idle(self):
        return not (self.ar_q or self.aw_q or self.w_q or self.ar_cur or self.aw_cur
                    or self.w_cur or self.r_exp or self.b_exp)

    # -- one cycle -----------------------------------------------------------------------

    def present_address(self, ch, p):
        """Drive channel ``ch`` (``"ar"`` or ``"aw"``): when it is idle and a burst is
        queued, take it with probability ``p`` (one ``rng.random()``, drawn only then)
        and present its address, length, ID, 8-byte size and INCR type; VALID stays
        high until the handshake clears ``<ch>_cur``."""
        ctx, b = self.ctx, self.bus
        cur, queue = getattr(self, ch + "_cur"), getattr(self, ch + "_q")
        if cur is None and queue and self.rng.random() < p:
            cur = queue.popleft()
            setattr(self, ch + "_cur", cur)
            for field, value in (("addr", cur["addr"]), ("len", cur["beats"] - 1),
                                 ("id", cur["id"]), ("size", 3), ("burst", 1)):
                ctx.set(getattr(b, ch + field), value)
        ctx.set(getattr(b, ch + "valid"), cur is not None)

    async def step(self):
        ctx, b, rng = self.ctx, self.bus, self.rng
        self.present_address("ar", self.p_ar)
        self.present_address("aw", self.p_aw)
        if self.w_cur is None and self.w_q and rng.random() < self.p_w:
            self.w_cur = w = self.w_q.popleft()
            ctx.set(b.wdata, w[1])
            ctx.set(b.wstrb, w[2])
            ctx.set(b.wlast, w[3])
        ctx.set(b.wvalid, self.w_cur is not None)
        rready = self.rready_fn(self) if self.rready_fn else rng.random() < self.p_r
        bready = rng.random() < self.p_b
        ctx.set(b.rready, rready)
        ctx.set(b.bready, bready)

        (_, _, arready, awready, wready, rvalid, rdata, rresp, rlast, rid, bvalid, bresp,
         bid) = await ctx.tick().sample(*self.samp)
        c, tag = self.cycle, self.tag

        # a beat offered and not taken is offered again, unchanged (AXI A3.2.1)
        if self.prev_r is not None:
            assert rvalid, f"{tag}: cycle {c}: RVALID fell before RREADY"
            assert (rdata, rresp, rlast, rid) == self.prev_r, (
                f"{tag}: cycle {c}: R payload changed while RVALID waited for RREADY: "
                f"(data, resp, last, id) was {tuple(map(hex, self.prev_r))}, now "
                f"{tuple(map(hex, (rdata, rresp, rlast, rid)))}")
        if self.prev_b is not None:
            assert bvalid, f"{tag}: cycle {c}: BVALID fell before BREADY"
            assert (bresp, bid) == self.prev_b, (
                f"{tag}: cycle {c}: B payload changed while BVALID waited for BREADY")
        self.prev_r = (rdata, rresp, rlast, rid) if rvalid and not rready else None
        self.prev_b = (bresp, bid) if bvalid and not bready else None

        if self.ar_cur is not None and arready:
            self.ar_cur["hs"] = c
            self.r_exp.append(self.ar_cur)
            self.ar_cur = None
        if self.aw_cur is not None and awready:
            self.aw_cur["hs"] = c
            self.aw_cur = None
        if self.w_cur is not None and wready:
            self.w_cur[0]["w_cycles"].append(c)
            self.w_cur = None
        if rvalid:
            self.rvalid_cycles.append(c)
            assert self.r_exp, f"{tag}: cycle {c}: RVALID with no read outstanding"
        if rvalid and rready:
            r = self.r_exp[0]
            k = len(r["got"])
            rtag = (f"{tag}: cycle {c}: read #{self.reads.index(r)} (addr {r['addr']:#x}, "
                    f"{r['beats']} beats, id {r['id']}) beat {k}")
            e_data, e_resp = r["expect"][k]
            r["got"].append((rdata, rresp))
            r["cycles"].append(c)
            self.r_log.append((c, rid, rdata, rresp, rlast))
            assert rid == r["id"], f"{rtag}: RID {rid}"
            assert rresp == e_resp, f"{rtag}: RRESP {rresp}, expected {e_resp}"
            assert rdata == e_data, f"{rtag}: RDATA {rdata:#018x}, expected {e_data:#018x}"
            assert rlast == (k == r["beats"] - 1), f"{rtag}: RLAST {rlast}"
            if rlast:
                self.r_exp.popleft()
        if bvalid:
            assert self.b_exp and self.b_exp[0]["hs"] is not None, (
                f"{tag}: cycle {c}: BVALID before the AW handshake of its burst")
            w = self.b_exp[0]
            assert len(w["w_cycles"]) == w["beats"], (
                f"{tag}: cycle {c}: BVALID for write #{self.writes.index(w)} after "
                f"{len(w['w_cycles'])} of its {w['beats']} beats")
        if bvalid and bready:
            w = self.b_exp.popleft()
            wtag = (f"{tag}: cycle {c}: write #{self.writes.index(w)} (addr {w['addr']:#x}, "
                    f"{w['beats']} beats, id {w['id']})")
            assert bid == w["id"], f"{wtag}: BID {bid}"
            assert bresp == w["bresp"], f"{wtag}: BRESP {bresp}, expected {w['bresp']}"
            w["b_cycle"] = c
            self.b_log.append((c, bid, bresp))
        self.cycle += 1
        return rvalid, bvalid

    async def fill(self, model, wid):
        """Write random data to the whole memory (16-beat bursts, every byte, ID
        ``wid``), recording it in ``model``, and wait for every response: a known
        background for the reads that follow."""
        for w in range(0, WORDS, 16):
            data, _ = random_data(self.rng, 16)
            self.write(w * NB, data, [0xFF] * 16, wid, model.write(w * NB, data, [0xFF] * 16))
        await self.drain()

    async def drain(self, max_cycles=20000):
        for _ in range(max_cycles):
            if self.idle():
                return
            await self.step()
        raise AssertionError(
            f"{self.tag}: watchdog after {max_cycles} cycles: {len(self.ar_q)} reads and "
            f"{len(self.aw_q)} writes not sent, {len(self.r_exp)} reads and "
            f"{len(self.b_exp)} writes unanswered")

    async def quiet(self, cycles=30):
        """Nothing left: no R or B beat may appear."""
        for t in range(cycles):
            rvalid, bvalid = await self.step()
            assert not rvalid and not bvalid, f"{self.tag}: spurious R/B {t} cycles later"


def random_data(rng, beats):
    data = [rng.getrandbits(8 * NB) for _ in range(beats)]
    strb = []
    for _ in range(beats):
        x = rng.random()
        strb.append(0xFF if x < 0.25 else 0 if x < 0.3 else rng.randrange(256))
    return data, strb


def read_all(mgr, model, rng, rid=0):
    """Read the whole memory back in bursts of 1..16 beats."""
    w = 0
    while w < WORDS:
        n = min(rng.randint(1, 16), WORDS - w)
        mgr.read(w * NB, n, rid, model.read(w * NB, n))
        w += n


async def random_traffic(mgr, model, rng, rounds):
    """With ``rng`` (not the manager's, so that the traffic does not depend on timing):
    rounds of write bursts to one half of the memory while reading the other half
    (written in earlier rounds), then a read-back of everything. Bursts in the top half
    may run past ``size`` (those beats are DECERR)."""
    half = WORDS // 2

    def burst(lo):
        n = rng.randint(1, 16)
        if lo and rng.random() < 0.3:       # top half: end at or past size
            return rng.randint(WORDS - n + 1, WORDS + 2) * NB, n
        return rng.randint(lo, lo + half - n) * NB, n

    for rnd in range(rounds):
        w_lo = (rnd % 2) * half
        for _ in range(rng.randint(3, 6)):
            addr, n = burst(w_lo)
            data, strb = random_data(rng, n)
            mgr.write(addr, data, strb, rng.randrange(ID_MASK + 1),
                      model.write(addr, data, strb))
        for _ in range(rng.randint(3, 6)):
            addr, n = burst(half - w_lo)
            mgr.read(addr, n, rng.randrange(ID_MASK + 1), model.read(addr, n))
        await mgr.drain()
    read_all(mgr, model, rng)
    await mgr.drain()
    await mgr.quiet()


def check_bursts_contiguous(mgr):
    """Without stalls: once a burst's first beat is offered, RVALID stays high until its
    last beat is taken (one beat per cycle when RREADY is high)."""
    rv = set(mgr.rvalid_cycles)
    for k, r in enumerate(mgr.reads):
        first, last = r["cycles"][0], r["cycles"][-1]
        gaps = [c for c in range(first, last + 1) if c not in rv]
        assert not gaps, f"{mgr.tag}: read #{k}: RVALID low in cycles {gaps} mid-burst"


# ---------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed,p_valid,p_r,p_b", [
    (1, 1.0, 1.0, 1.0),
    (2, 0.6, 0.5, 0.5),
    (3, 0.9, 0.25, 0.8),
])
def test_random_bursts(seed, p_valid, p_r, p_b):
    """Random write bursts (1..16 beats, random strobes) and read bursts against the
    byte-array model, with the manager pausing and holding RREADY/BREADY low at random."""
    rng = random.Random(seed)
    mrng = random.Random(seed + 1000)
    dut = SimDram(CFG, size=SIZE, latency=6, outstanding=4)
    tag = f"seed {seed} p {p_valid}/{p_r}/{p_b}"
    model = Model()
    log = {}

    async def tb(ctx):
        mgr = Manager(ctx, dut, mrng, tag, p_ar=p_valid, p_aw=p_valid, p_w=p_valid,
                      p_r=p_r, p_b=p_b)
        # the memory starts at zero
        read_all(mgr, model, rng)
        await mgr.drain()
        await random_traffic(mgr, model, rng, rounds=16)
        log["mgr"] = mgr

    simulate(dut, tb)
    mgr = log["mgr"]
    check_bursts_contiguous(mgr)
    assert any(r == DECERR for _, _, _, r, _ in mgr.r_log), "no read ran past size"
    assert any(w["bresp"] == DECERR for w in mgr.writes), "no write ran past size"
    for k, w in enumerate(mgr.writes):
        assert w["b_cycle"] > w["w_cycles"][-1], f"{tag}: write #{k}: B before the last beat"


@pytest.mark.parametrize("latency", [1, 2, 3, 8, 20])
def test_read_latency_and_streaming(latency):
    """A lone burst's first beat comes exactly :func:`first_beat_delay` cycles after its
    AR handshake, and the burst streams one beat per cycle. Then bursts requested back
    to back (ARVALID always high, RREADY always high) come with at most one idle cycle
    between one burst's last beat and the next one's first, and never earlier than
    that delay after their own handshake."""
    rng = random.Random(100 + latency)
    dut = SimDram(CFG, size=SIZE, latency=latency, outstanding=8)
    tag = f"latency {latency}"
    model = Model()
    d = first_beat_delay(latency)
    log = {}

    async def tb(ctx):
        mgr = Manager(ctx, dut, rng, tag)
        await mgr.fill(model, 0)
        # lone bursts
        for k in range(6):
            for _ in range(rng.randrange(1, 5)):
                await mgr.step()
            n = rng.randint(1, 16)
            addr = rng.randrange(WORDS - n + 1) * NB
            r = mgr.read(addr, n, k, model.read(addr, n))
            await mgr.drain()
            assert r["cycles"][0] - r["hs"] == d, (
                f"{tag}: lone burst #{k}: first beat {r['cycles'][0] - r['hs']} cycles "
                f"after the AR handshake, expected {d}")
            assert r["cycles"] == list(range(r["cycles"][0], r["cycles"][0] + n)), (
                f"{tag}: lone burst #{k}: beats in cycles {r['cycles']}")
        # back to back: (8 queued + 1 served) bursts of >= 4 beats cover a latency of 20
        lone = len(mgr.reads)
        lo = 1 if latency <= 8 else 4
        for k in range(16):
            n = rng.randint(lo, 16)
            addr = rng.randrange(WORDS - n + 1) * NB
            mgr.read(addr, n, k & ID_MASK, model.read(addr, n))
        await mgr.drain()
        await mgr.quiet()
        log["mgr"], log["lone"] = mgr, lone

    simulate(dut, tb)
    mgr = log["mgr"]
    check_bursts_contiguous(mgr)
    b2b = mgr.reads[log["lone"]:]
    for k, r in enumerate(b2b):
        assert r["cycles"][0] - r["hs"] >= d, f"{tag}: burst #{k} too early"
        if k:
            prev = b2b[k - 1]
            idle = r["cycles"][0] - prev["cycles"][-1] - 1
            assert idle <= 1, (f"{tag}: {idle} idle cycles between back-to-back bursts "
                               f"#{k - 1} and #{k}")


@pytest.mark.parametrize("outstanding,latency", [(1, 4), (3, 10), (8, 20)])
def test_outstanding_reads(outstanding, latency):
    """With RREADY held low, ARVALID held high: ``outstanding`` requests queue plus the
    one being served (its first beat offered and held) -- outstanding + 1 handshakes,
    then ARREADY stays low. Released, all the bursts come in order with their IDs and
    data."""
    rng = random.Random(outstanding)
    dut = SimDram(CFG, size=SIZE, latency=latency, outstanding=outstanding)
    tag = f"outstanding {outstanding} latency {latency}"
    model = Model()

    async def tb(ctx):
        mgr = Manager(ctx, dut, rng, tag)
        await mgr.fill(model, 1)
        total = outstanding + 5
        for k in range(total):
            n = rng.randint(1, 16)
            addr = rng.randrange(WORDS - n + 1) * NB
            mgr.read(addr, n, (k + 3) & ID_MASK, model.read(addr, n))
        mgr.rready_fn = lambda m: False
        for _ in range(latency + 4 * outstanding + 40):
            await mgr.step()
        accepted = sum(r["hs"] is not None for r in mgr.reads)
        assert accepted == outstanding + 1, (
            f"{tag}: {accepted} AR handshakes with R stalled, expected {outstanding} "
            f"queued + 1 served")
        assert mgr.rvalid_cycles and mgr.rvalid_cycles[-1] == mgr.cycle - 1, \
            f"{tag}: first burst not offered"
        mgr.rready_fn = None
        await mgr.drain()
        await mgr.quiet()
        order = [(r["id"], r["cycles"][0]) for r in mgr.reads]
        assert [c for _, c in order] == sorted(c for _, c in order), f"{tag}: out of order"
        ids = [rid for _, rid, _, _, last in mgr.r_log if last]
        assert ids[-total:] == [r["id"] for r in mgr.reads], f"{tag}: RIDs {ids}"

    simulate(dut, tb)


def test_decerr():
    """At or beyond ``size``: reads get DECERR on every beat with zero data, writes get
    DECERR and change nothing; the memory below ``size`` is intact afterwards. A burst
    straddling ``size`` is judged per beat: the beats below ``size`` read/write the
    memory (RRESP OKAY), those at or beyond it are DECERR; the write's one BRESP is
    DECERR."""
    rng = random.Random(7)
    dut = SimDram(CFG, size=SIZE, latency=5, outstanding=4)
    tag = "decerr"
    model = Model()

    async def tb(ctx):
        mgr = Manager(ctx, dut, rng, tag, p_r=0.7, p_b=0.7)
        await mgr.fill(model, 2)
        before = bytes(model.mem)
        outside = [(SIZE, 1), (SIZE, 16), (SIZE + 8 * 5, 16), (SIZE + 0x400, 3),
                   (0x10000, 8), (0x80000000, 2), (0xFFFFF000, 16), (0xFFFFFFF8, 1)]
        for k, (addr, n) in enumerate(outside):
            data, _ = random_data(rng, n)
            resp = model.write(addr, data, [0xFF] * n)
            assert resp == DECERR
            mgr.write(addr, data, [0xFF] * n, k, DECERR)
            mgr.read(addr, n, 15 - k, [(0, DECERR)] * n)
        await mgr.drain()
        assert bytes(model.mem) == before
        # everything below size unchanged, read in one 128-beat burst, then a 256-beat
        # burst from 0 (arlen 255): 128 OKAY beats then 128 DECERR beats
        mgr.read(0, WORDS, 9, model.read(0, WORDS))
        mgr.read(0, 256, 10, model.read(0, 256))
        await mgr.drain()
        # straddling: per beat
        exp = model.read(SIZE - 16, 4)
        assert [r for _, r in exp] == [OKAY, OKAY, DECERR, DECERR]
        assert exp[2][0] == exp[3][0] == 0
        mgr.read(SIZE - 16, 4, 4, exp)
        await mgr.drain()
        data, strb = random_data(rng, 4)
        mgr.write(SIZE - 16, data, strb, 5, model.write(SIZE - 16, data, strb))
        await mgr.drain()
        read_all(mgr, model, rng)
        await mgr.drain()
        await mgr.quiet()

    simulate(dut, tb)


@pytest.mark.parametrize("seed", [11, 12])
def test_stalls_same_results(seed):
    """``stall_16ths`` = 6 with the manager also pausing and holding RREADY/BREADY low
    at random: the same R and B beats (id, data, resp, last) as without stalls, all
    matching the model; every cycle checks that RVALID/BVALID, once high, stay high
    with a stable payload until taken; and the pauses do happen: RVALID is low in 15..50 %
    of the cycles inside bursts (about 25 % here: 6/16, less the cycles in which a beat
    is held for RREADY), which never happens without stalls."""
    results = {}
    for stall in (0, 6):
        rng = random.Random(seed)               # the traffic: the same in both runs
        mrng = random.Random(seed + 1000)       # the manager's pauses
        dut = SimDram(CFG, size=SIZE, latency=8, outstanding=4, stall_16ths=stall)
        tag = f"seed {seed} stall {stall}"
        model = Model()
        log = {}

        async def tb(ctx, dut=dut, rng=rng, mrng=mrng, tag=tag, model=model, log=log):
            mgr = Manager(ctx, dut, mrng, tag, p_ar=0.8, p_aw=0.8, p_w=0.8, p_r=0.6,
                          p_b=0.6)
            await random_traffic(mgr, model, rng, rounds=16)
            log["mgr"] = mgr

        simulate(dut, tb)
        mgr = log["mgr"]
        results[stall] = ([x[1:] for x in mgr.r_log], [x[1:] for x in mgr.b_log])
        # pauses inside bursts: cycles between first and last beat with RVALID low
        rv = set(mgr.rvalid_cycles)
        inside = low = 0
        for r in mgr.reads:
            for c in range(r["cycles"][0], r["cycles"][-1] + 1):
                inside += 1
                low += c not in rv
        if stall == 0:
            assert low == 0, f"{tag}: {low} RVALID pauses inside bursts without stalls"
        else:
            assert 0.15 < low / inside < 0.5, f"{tag}: {low} of {inside} cycles paused"
    assert results[0] == results[6]


def test_rdata_stable_while_write_hits_offered_word():
    """A read beat offered and held (RREADY low) must keep its RDATA (AXI A3.2.1), even
    if a write to the same word completes meanwhile: the read and write channels have no
    ordering, so the read may return the old or the new value, but not change it while
    RVALID waits."""
    dut = SimDram(CFG, size=SIZE, latency=2, outstanding=2)
    tag = "rdata stable"
    old, new = 0x1111111111111111, 0x2222222222222222

    async def tb(ctx):
        mgr = Manager(ctx, dut, random.Random(0), tag)
        mgr.write(0x40, [old], [0xFF], 0, OKAY)
        await mgr.drain()
        mgr.rready_fn = lambda m: False
        r = mgr.read(0x40, 1, 1, [(old, OKAY)])
        while not mgr.rvalid_cycles:
            await mgr.step()
        mgr.write(0x40, [new], [0xFF], 2, OKAY)
        for _ in range(10):                 # the write completes; R still held
            await mgr.step()
        assert mgr.writes[-1]["b_cycle"] is not None
        mgr.rready_fn = None
        await mgr.drain()
        assert r["got"] == [(old, OKAY)]

    simulate(dut, tb)


def test_parameter_checks():
    for kw in ({"latency": 0}, {"outstanding": 0}, {"outstanding": 65}, {"stall_16ths": 16},
               {"size": 0}, {"size": 12}):
        with pytest.raises(ValueError):
            SimDram(CFG, **kw)
