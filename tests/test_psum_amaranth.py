# amaranth: UnusedElaboratable=no
"""PSUM in Amaranth's simulator against a Python model of its contents.

Concurrent writers (overwrite, INT32 and FP32 accumulate) and readers with random
valid/ready stalls, accumulate hazards, partition masks, a stalled reader, o_busy and
the constructor's parameter checks. Expected values come from :class:`Model`, updated
in the order the hardware accepts operations (one per cycle, observed as valid & ready
at each clock edge); FP32 sums come from :func:`sim.fp.fp32_add_bits`.
"""

from collections import deque

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator

from hdl.config import FP_ADD_LATENCY, CoreConfig
from hdl.psum import PSUM
from sim.fp import fp32_add_bits

ICFG = CoreConfig(rows=4, cols=4, sbuf_bytes=256, psum_banks=2, psum_depth=16)
FCFG = CoreConfig(rows=2, cols=2, dtypes=("int8", "bf16", "fp16"), sbuf_bytes=64,
                  psum_banks=2, psum_depth=8)
CFGS = {"int": ICFG, "fp": FCFG}
M32 = 0xFFFF_FFFF

SPECIALS = [0x0000_0000, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001,
            0xFFC0_1234, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x0080_0000, 0x8080_0000, 0x0000_0001,
            0x807F_FFFF, 0x3F80_0000, 0xBF80_0000]


def latency(cfg):
    """The accumulate step's depth ``A`` as documented: 7 with floats, else 1."""
    return FP_ADD_LATENCY if cfg.has_float else 1


class Model:
    """PSUM contents: ``mem[(bank, entry)]`` is a list of ``cols`` uint32 (zero at reset)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.mem = {}

    def read(self, bank, entry):
        return tuple(self.mem.get((bank, entry), [0] * self.cfg.cols))

    def write(self, bank, entry, mask, acc, fp, data):
        old = list(self.read(bank, entry))
        for p in range(self.cfg.cols):
            if not mask >> p & 1:
                continue
            if not acc:
                old[p] = data[p]
            elif fp:
                assert self.cfg.has_float
                old[p] = int(fp32_add_bits(np.uint32(old[p]), np.uint32(data[p])))
            else:
                old[p] = (old[p] + data[p]) & M32
        self.mem[(bank, entry)] = old


def unpack(cfg, bits):
    return tuple((bits >> (32 * p)) & M32 for p in range(cfg.cols))


def fmt(words):
    return "[" + ", ".join(f"{w:#010x}" for w in words) + "]"


def simulate(dut, tb):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def random_float_bits(rng):
    """One FP32 bit pattern: mostly moderate finite values (so that sums are
    meaningful), some subnormals, specials and arbitrary patterns."""
    u = rng.random()
    if u < 0.70:
        v = np.float32(rng.normal() * 2.0 ** int(rng.integers(-6, 7)))
        return int(np.array([v], dtype=np.float32).view(np.uint32)[0])
    if u < 0.80:
        return int(rng.integers(0, 1 << 23)) | (int(rng.integers(0, 2)) << 31)
    if u < 0.88:
        return SPECIALS[int(rng.integers(0, len(SPECIALS)))]
    return int(rng.integers(0, 1 << 32))


def random_writes(rng, cfg, addrs, n, *, p_acc=0.6, p_fp=0.8, full_mask=False):
    """``n`` random write requests ``(bank, entry, mask, acc, fp, data)`` to ``addrs``."""
    out = []
    allmask = (1 << cfg.cols) - 1
    for _ in range(n):
        bank, entry = addrs[int(rng.integers(0, len(addrs)))]
        mask = allmask if full_mask or rng.random() < 0.6 else int(rng.integers(0, allmask + 1))
        acc = int(rng.random() < p_acc)
        fp = int(cfg.has_float and acc and rng.random() < p_fp)
        if cfg.has_float:
            data = tuple(random_float_bits(rng) if fp or rng.random() < 0.5
                         else int(rng.integers(0, 1 << 32)) for _ in range(cfg.cols))
        else:
            data = tuple(int(v) for v in rng.integers(0, 1 << 32, cfg.cols))
        out.append((bank, entry, mask, acc, fp, data))
    return out


def all_addrs(cfg):
    return [(b, e) for b in range(cfg.psum_banks) for e in range(cfg.psum_depth)]


async def drive(ctx, dut, model, writes, reads, rng, tag, *, p_wvalid=0.7, p_rvalid=0.7,
                p_rready=0.7, max_cycles=20000, log=None, settle=True):
    """Run write clients (``writes[c]``: list of requests) and read clients
    (``reads[c]``: list of ``(bank, entry)``) concurrently until every request is
    accepted and every response consumed. Each accepted operation updates ``model``
    (writes) or snapshots it (reads) in acceptance order; each response must equal
    its snapshot. Also checks that at most one operation is accepted per cycle and
    that ``o_busy`` is high exactly in cycles ``a+1 .. a+1+A`` after each acceptance
    ``a``. Stream rules: once valid, a request's payload stays until its handshake.

    The probabilities are a number or one per client. ``log`` (a list), if given,
    receives ``(cycle, kind, client, wait)`` per acceptance, ``wait`` being the cycles
    from raising valid to the handshake. Returns the number of cycles taken.
    """
    cfg = dut.config
    A = latency(cfg)
    nw, nr = len(writes), len(reads)
    writers = [dut.write_client(c) for c in range(nw)]
    rclients = [dut.read_client(c) for c in range(nr)]
    wi, ri = [0] * nw, [0] * nr
    wvalid, rvalid = [False] * nw, [False] * nr
    wraised, rraised = [0] * nw, [0] * nr
    p_wvalid = list(p_wvalid) if isinstance(p_wvalid, (list, tuple)) else [p_wvalid] * nw
    p_rvalid = list(p_rvalid) if isinstance(p_rvalid, (list, tuple)) else [p_rvalid] * nr
    p_rready = list(p_rready) if isinstance(p_rready, (list, tuple)) else [p_rready] * nr
    expected = [deque() for _ in range(nr)]
    n_resp = [0] * nr
    accepted = []
    sigs = ([w.ready for w in writers] + [q.ready for q, _ in rclients]
            + [o.valid for _, o in rclients] + [o.payload.as_value() for _, o in rclients]
            + [dut.o_busy])

    def busy_ok(c):
        return any(a + 1 <= c <= a + 2 + A for a in accepted[-(A + 2):])

    cycle = 0
    while True:
        done = (all(wi[c] == len(writes[c]) for c in range(nw))
                and all(n_resp[c] == len(reads[c]) for c in range(nr)))
        if done and (not settle or not accepted or cycle > accepted[-1] + A + 3):
            break
        if cycle >= max_cycles:
            raise AssertionError(f"{tag}: watchdog after {max_cycles} cycles: writes {wi}, "
                                 f"reads {ri}, responses {n_resp}")
        for c, w in enumerate(writers):
            if not wvalid[c] and wi[c] < len(writes[c]) and rng.random() < p_wvalid[c]:
                bank, entry, mask, acc, fp, data = writes[c][wi[c]]
                wraised[c] = cycle
                ctx.set(w.payload, {"bank": bank, "entry": entry, "mask": mask, "acc": acc,
                                    "fp": fp, "data": list(data)})
                wvalid[c] = True
            ctx.set(w.valid, wvalid[c])
        for c, (q, _) in enumerate(rclients):
            if not rvalid[c] and ri[c] < len(reads[c]) and rng.random() < p_rvalid[c]:
                bank, entry = reads[c][ri[c]]
                rraised[c] = cycle
                ctx.set(q.payload, {"bank": bank, "entry": entry})
                rvalid[c] = True
            ctx.set(q.valid, rvalid[c])
        rready = [bool(rng.random() < p_rready[c]) for c in range(nr)]
        for c, (_, o) in enumerate(rclients):
            ctx.set(o.ready, rready[c])
        vals = (await ctx.tick().sample(*sigs))[2:]
        wready = vals[:nw]
        qready = vals[nw:nw + nr]
        ovalid = vals[nw + nr:nw + 2 * nr]
        opayload = vals[nw + 2 * nr:nw + 3 * nr]
        assert vals[-1] == busy_ok(cycle), (
            f"{tag}: o_busy = {vals[-1]} in cycle {cycle}, acceptances {accepted[-3:]}")
        took_w = [c for c in range(nw) if wvalid[c] and wready[c]]
        took_r = [c for c in range(nr) if rvalid[c] and qready[c]]
        assert len(took_w) + len(took_r) <= 1, (
            f"{tag}: cycle {cycle}: writers {took_w} and readers {took_r} all accepted")
        for c in took_w:
            model.write(*writes[c][wi[c]])
            wi[c] += 1
            wvalid[c] = False
            accepted.append(cycle)
            if log is not None:
                log.append((cycle, "w", c, cycle - wraised[c]))
        for c in took_r:
            bank, entry = reads[c][ri[c]]
            expected[c].append((ri[c], (bank, entry), model.read(bank, entry)))
            ri[c] += 1
            rvalid[c] = False
            accepted.append(cycle)
            if log is not None:
                log.append((cycle, "r", c, cycle - rraised[c]))
        for c in range(nr):
            if ovalid[c] and rready[c]:
                assert expected[c], f"{tag}: reader {c}: response without request, cycle {cycle}"
                i, addr, exp = expected[c].popleft()
                got = unpack(cfg, opayload[c])
                assert got == exp, (f"{tag}: reader {c} read #{i} of {addr} (cycle {cycle}): "
                                    f"got {fmt(got)}, expected {fmt(exp)}")
                n_resp[c] += 1
        cycle += 1
    for w in writers:
        ctx.set(w.valid, 0)
    for q, o in rclients:
        ctx.set(q.valid, 0)
        ctx.set(o.ready, 0)
    return cycle


async def check_contents(ctx, dut, model, tag, addrs=None):
    """Read ``addrs`` back on reader 0 and compare with the model."""
    addrs = all_addrs(dut.config) if addrs is None else list(addrs)
    await drive(ctx, dut, model, [[] for _ in range(dut._n_write)],
                [addrs] + [[] for _ in range(dut._n_read - 1)],
                np.random.default_rng(0), tag + " read-back", p_rvalid=1.0, p_rready=1.0)


# ---------------------------------------------------------------------------------------
# Self-check of the model against hand-computed values
# ---------------------------------------------------------------------------------------

def test_model_arithmetic():
    m = Model(FCFG)
    m.write(0, 1, 0b11, 0, 0, (0x3F80_0000, 0xFFFF_FFFF))        # 1.0 | -1 (int)
    m.write(0, 1, 0b11, 1, 1, (0x4000_0000, 0x0000_0000))        # +2.0 | NaN + 0 = NaN
    m.write(0, 1, 0b10, 1, 0, (7, 5))                            # int add, partition 1 only
    assert m.read(0, 1) == (0x4040_0000, 0x7FC0_0005)
    m = Model(ICFG)
    m.write(1, 15, 0b0101, 1, 0, (0xFFFF_FFFF, 1, 0x8000_0000, 2))
    m.write(1, 15, 0b0111, 1, 0, (2, 3, 0x8000_0000, 4))
    assert m.read(1, 15) == (1, 3, 0, 0)


# ---------------------------------------------------------------------------------------
# Random concurrent traffic
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("p_valid,p_ready", [(0.6, 0.6), (0.9, 0.3), (1.0, 1.0)])
def test_random_concurrent_int(seed, p_valid, p_ready):
    """Two writers (overwrite / INT32 accumulate with wrap-around, random masks) and two
    readers race on six entries (across both banks) with random stalls."""
    rng = np.random.default_rng(seed)
    cfg = ICFG
    dut = PSUM(cfg, n_read=2, n_write=2)
    model = Model(cfg)
    tag = f"int seed {seed} p_valid {p_valid} p_ready {p_ready}"
    addrs = [all_addrs(cfg)[int(i)] for i in rng.choice(cfg.psum_entries, 6, replace=False)]

    async def tb(ctx):
        writes = [random_writes(rng, cfg, addrs, 60) for _ in range(2)]
        reads = [[addrs[int(i)] for i in rng.integers(0, len(addrs), 50)] for _ in range(2)]
        await drive(ctx, dut, model, writes, reads, rng, tag, p_wvalid=p_valid,
                    p_rvalid=p_valid, p_rready=p_ready)
        await check_contents(ctx, dut, model, tag, addrs)

    simulate(dut, tb)


@pytest.mark.parametrize("seed", [101, 102, 103, 104, 105, 106])
@pytest.mark.parametrize("p_valid,p_ready", [(0.6, 0.6), (1.0, 1.0)])
def test_random_concurrent_fp(seed, p_valid, p_ready):
    """As above with the float configuration: FP32 accumulation (random finite,
    subnormal and special values; bit-exact, canonical NaN), INT32 accumulation and
    overwrites mixed on the same entries."""
    rng = np.random.default_rng(seed)
    cfg = FCFG
    dut = PSUM(cfg, n_read=2, n_write=2)
    model = Model(cfg)
    tag = f"fp seed {seed} p_valid {p_valid} p_ready {p_ready}"
    addrs = [all_addrs(cfg)[int(i)] for i in rng.choice(cfg.psum_entries, 5, replace=False)]

    async def tb(ctx):
        writes = [random_writes(rng, cfg, addrs, 40, p_acc=0.75, p_fp=0.85)
                  for _ in range(2)]
        reads = [[addrs[int(i)] for i in rng.integers(0, len(addrs), 30)] for _ in range(2)]
        await drive(ctx, dut, model, writes, reads, rng, tag, p_wvalid=p_valid,
                    p_rvalid=p_valid, p_rready=p_ready)
        await check_contents(ctx, dut, model, tag, addrs)

    simulate(dut, tb)


# ---------------------------------------------------------------------------------------
# Accumulate hazards
# ---------------------------------------------------------------------------------------

def expected_schedule(region, n_ops, A):
    """Acceptance cycles (from the first) of back-to-back reading operations, op ``k``
    to ``region[k % len(region)]``: one per cycle, but an op waits until the previous
    write to its entry has reached the last stage (accepted ``A + 1`` cycles ago)."""
    times = []
    last = {}
    for k in range(n_ops):
        t = times[-1] + 1 if times else 0
        addr = region[k % len(region)]
        if addr in last:
            t = max(t, last[addr] + A + 1)
        times.append(t)
        last[addr] = t
    return times


@pytest.mark.parametrize("kind", ["int", "fp"])
@pytest.mark.parametrize("region", [
    [(0, 5)],
    [(0, 5), (0, 6)],
    [(1, 0), (1, 1), (1, 2)],
    [(0, 4), (0, 5), (0, 6), (0, 7)],
    [(0, 3), (1, 3)],                           # same entry, different banks
], ids=["N1", "N2", "N3", "N4", "N2-banks"])
@pytest.mark.parametrize("seed", [201, 202])
def test_accumulate_hazard(kind, region, seed):
    """One writer issues back-to-back accumulating writes, 8 passes over a region of N
    entries with no gaps: no update is lost, and the writer is held back exactly as
    long as the previous write to the same entry is in the pipeline."""
    cfg = CFGS[kind]
    A = latency(cfg)
    rng = np.random.default_rng(seed)
    dut = PSUM(cfg, n_read=1, n_write=1)
    model = Model(cfg)
    passes = 8
    tag = f"{kind} region {region} seed {seed}"
    log = []

    async def tb(ctx):
        start = [(b, e, (1 << cfg.cols) - 1, 0, 0, tuple(
            random_float_bits(rng) if kind == "fp" else int(rng.integers(0, 1 << 32))
            for _ in range(cfg.cols))) for b, e in region]
        await drive(ctx, dut, model, [start], [[]], rng, tag + " init", p_wvalid=1.0)
        ops = []
        for _ in range(passes):
            for b, e in region:
                if kind == "fp":
                    data = tuple(
                        int(np.array([np.float32(rng.normal() * 4)]).view(np.uint32)[0])
                        for _ in range(cfg.cols))
                else:
                    data = tuple(int(v) for v in rng.integers(0, 1 << 32, cfg.cols))
                ops.append((b, e, (1 << cfg.cols) - 1, 1, int(kind == "fp"), data))
        await drive(ctx, dut, model, [ops], [[]], rng, tag, p_wvalid=1.0, log=log)
        await check_contents(ctx, dut, model, tag, region)

    simulate(dut, tb)
    times = [t - log[0][0] for t, _, _, _ in log]
    assert times == expected_schedule(region, len(region) * passes, A), (
        f"{tag}: acceptance cycles {times}")


@pytest.mark.parametrize("seed", [301, 302])
@pytest.mark.parametrize("kind", ["int", "fp"])
def test_accumulate_full_rate_region(kind, seed):
    """A region of ``A + 1`` entries accumulates at one write per cycle (a write
    accepted at cycle t lands at the end of cycle t + 1 + A, and the read port is
    transparent to it)."""
    cfg = CFGS[kind]
    A = latency(cfg)
    region = [(0, e) for e in range(A + 1)]
    rng = np.random.default_rng(seed)
    dut = PSUM(cfg, n_read=1, n_write=1)
    model = Model(cfg)
    log = []
    tag = f"{kind} region of {A + 1} seed {seed}"

    async def tb(ctx):
        ops = [(b, e, (1 << cfg.cols) - 1, 1, int(kind == "fp"),
                tuple(int(np.array([np.float32(rng.normal())]).view(np.uint32)[0])
                      if kind == "fp" else int(rng.integers(0, 1 << 32))
                      for _ in range(cfg.cols)))
               for _ in range(6) for b, e in region]
        await drive(ctx, dut, model, [ops], [[]], rng, tag, p_wvalid=1.0, log=log)
        await check_contents(ctx, dut, model, tag, region)

    simulate(dut, tb)
    times = [t for t, _, _, _ in log]
    assert times == list(range(times[0], times[0] + len(times))), f"{tag}: stalls {times}"


@pytest.mark.parametrize("kind,gap", [("int", g) for g in range(4)]
                         + [("fp", g) for g in range(FP_ADD_LATENCY + 3)])
def test_read_after_accumulate(kind, gap):
    """A read of an entry raised ``gap`` cycles after the cycle an accumulation into it
    was accepted sees the sum: while the write is in flight the reader is held back,
    not given the stale value."""
    cfg = CFGS[kind]
    dut = PSUM(cfg, n_read=1, n_write=1)
    model = Model(cfg)
    rng = np.random.default_rng(0)          # only drives p = 1 streams: no randomness
    tag = f"{kind} gap {gap}"

    async def tb(ctx):
        full = (1 << cfg.cols) - 1
        fp = int(kind == "fp")
        ops = [(0, 2, full, 0, 0, tuple(0x3F80_0000 + p for p in range(cfg.cols))),
               (0, 2, full, 1, fp, tuple(0x4000_0000 + 3 * p for p in range(cfg.cols)))]
        await drive(ctx, dut, model, [ops[:1]], [[]], rng, tag, p_wvalid=1.0)
        w = dut.write_client(0)
        q, o = dut.read_client(0)
        ctx.set(o.ready, 1)
        ctx.set(q.payload, {"bank": 0, "entry": 2})
        b, e, mask, acc, fpb, data = ops[1]
        ctx.set(w.payload, {"bank": b, "entry": e, "mask": mask, "acc": acc, "fp": fpb,
                            "data": list(data)})
        model.write(*ops[1])
        exp = model.read(0, 2)
        got = []
        granted = False
        for t in range(40):
            ctx.set(w.valid, t == 0)
            ctx.set(q.valid, t >= 1 + gap and not granted)
            _, _, wr, rr, ov, op = await ctx.tick().sample(
                w.ready, q.ready, o.valid, o.payload.as_value())
            if t == 0:
                assert wr, tag
            granted = granted or (t >= 1 + gap and rr)
            if ov:
                got.append(unpack(cfg, op))
        assert got == [exp], f"{tag}: got {[fmt(g) for g in got]}, expected {fmt(exp)}"

    simulate(dut, tb)


# ---------------------------------------------------------------------------------------
# Masks, stalls, o_busy, fairness
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [501, 502])
@pytest.mark.parametrize("kind", ["int", "fp"])
def test_mask_selects_partitions(kind, seed):
    """Only partitions whose mask bit is set are written (overwrite and accumulate);
    every other partition keeps its value."""
    cfg = CFGS[kind]
    rng = np.random.default_rng(seed)
    dut = PSUM(cfg, n_read=1, n_write=1)
    model = Model(cfg)
    full = (1 << cfg.cols) - 1
    fp = int(kind == "fp")
    tag = f"{kind} masks seed {seed}"

    async def tb(ctx):
        bg = [(b, e, full, 0, 0, tuple(0x3F80_0000 + (b * 64 + e) * 16 + p
                                       for p in range(cfg.cols)))
              for b, e in all_addrs(cfg)]
        await drive(ctx, dut, model, [bg], [[]], rng, tag, p_wvalid=1.0)
        ops = []
        for i, mask in enumerate(range(full + 1)):
            ops.append((0, i % cfg.psum_depth, mask, 0, 0, (0xDEAD_0000 + i,) * cfg.cols))
            ops.append((1, i % cfg.psum_depth, mask, 1, fp, (0x3F00_0000 + i,) * cfg.cols))
        await drive(ctx, dut, model, [ops], [[]], rng, tag, p_wvalid=0.7)
        # hand check of one entry against the model
        assert model.read(0, 1)[0] == 0xDEAD_0001 and model.read(0, 1)[1] == bg[1][5][1], tag
        await check_contents(ctx, dut, model, tag)

    simulate(dut, tb)


@pytest.mark.parametrize("seed", [601, 602])
@pytest.mark.parametrize("kind", ["int", "fp"])
def test_stalled_reader_blocks_nobody(kind, seed):
    """Reader 0 keeps asking but does not take its responses for a long time: once its
    response FIFO is full it is no longer granted, while the writer and reader 1 keep
    going at full rate. Afterwards reader 0 gets every response, with the value of its
    entry at the time its read was accepted."""
    cfg = CFGS[kind]
    A = latency(cfg)
    rng = np.random.default_rng(seed)
    depth = 16
    dut = PSUM(cfg, n_read=2, n_write=1, resp_depth=depth)
    model = Model(cfg)
    tag = f"{kind} seed {seed}"
    addrs = all_addrs(cfg)
    third = len(addrs) // 3
    # reader 0, the writer and reader 1 use disjoint entries: no hazards at all
    r0_addrs, w_addrs, r1_addrs = addrs[:third], addrs[third:2 * third], addrs[2 * third:]
    stall = 200

    async def tb(ctx):
        q0, o0 = dut.read_client(0)
        q1, o1 = dut.read_client(1)
        w = dut.write_client(0)
        exp0, exp1 = deque(), deque()

        def pick(lst):
            return lst[int(rng.integers(0, len(lst)))]

        a0, a1 = pick(r0_addrs), pick(r1_addrs)
        wr = random_writes(rng, cfg, w_addrs, 1, p_acc=0.0)[0]
        n0 = n1 = nw = got1 = 0
        ctx.set(o0.ready, 0)
        ctx.set(o1.ready, 1)
        for t in range(stall):
            ctx.set(q0.valid, 1)
            ctx.set(q1.valid, 1)
            ctx.set(w.valid, 1)
            ctx.set(q0.payload, {"bank": a0[0], "entry": a0[1]})
            ctx.set(q1.payload, {"bank": a1[0], "entry": a1[1]})
            ctx.set(w.payload, {"bank": wr[0], "entry": wr[1], "mask": wr[2], "acc": wr[3],
                                "fp": wr[4], "data": list(wr[5])})
            _, _, r0, r1, wrdy, v1, p1 = await ctx.tick().sample(
                q0.ready, q1.ready, w.ready, o1.valid, o1.payload.as_value())
            assert r0 + r1 + wrdy <= 1, f"{tag}: two grants in cycle {t}"
            if wrdy:
                model.write(*wr)
                nw += 1
                wr = random_writes(rng, cfg, w_addrs, 1, p_acc=0.0)[0]
            if r0:
                exp0.append(model.read(*a0))
                n0 += 1
                a0 = pick(r0_addrs)
            if r1:
                exp1.append(model.read(*a1))
                n1 += 1
                a1 = pick(r1_addrs)
            if v1:
                assert unpack(cfg, p1) == exp1.popleft(), f"{tag}: reader 1 wrong, cycle {t}"
                got1 += 1
        assert n0 == depth, f"{tag}: stalled reader got {n0} grants with resp_depth {depth}"
        # after reader 0 drops out, the writer and reader 1 alternate every cycle
        assert nw >= (stall - 3 * depth) // 2 - 1 and n1 >= (stall - 3 * depth) // 2 - 1, (
            f"{tag}: writer {nw}, reader 1 {n1} grants in {stall} cycles")
        assert nw + n1 + n0 == stall, f"{tag}: idle cycles ({nw} + {n1} + {n0})"
        assert got1 >= n1 - A - 4, f"{tag}: reader 1 got {got1} of {n1}"
        ctx.set(q0.valid, 0)
        ctx.set(q1.valid, 0)
        ctx.set(w.valid, 0)
        for t in range(3 * depth + A + 8):
            ctx.set(o0.ready, t % 3 != 0)
            _, _, v0, p0, v1, p1 = await ctx.tick().sample(
                o0.valid, o0.payload.as_value(), o1.valid, o1.payload.as_value())
            if v0 and t % 3 != 0:
                assert exp0, f"{tag}: reader 0 extra response"
                assert unpack(cfg, p0) == exp0.popleft(), f"{tag}: reader 0 wrong"
            if v1:
                assert unpack(cfg, p1) == exp1.popleft(), f"{tag}: reader 1 wrong"
        assert not exp0 and not exp1, f"{tag}: lost responses {len(exp0)}, {len(exp1)}"

    simulate(dut, tb)


@pytest.mark.parametrize("kind", ["int", "fp"])
@pytest.mark.parametrize("op", ["write", "acc", "read"])
def test_busy_after_single_operation(kind, op):
    """o_busy rises the cycle after an operation is accepted, stays high through cycle
    ``2 + A`` (the write lands), then returns to 0 and stays there."""
    cfg = CFGS[kind]
    A = latency(cfg)
    dut = PSUM(cfg, n_read=1, n_write=1)
    tag = f"{kind} {op}"

    async def tb(ctx):
        w = dut.write_client(0)
        q, o = dut.read_client(0)
        ctx.set(o.ready, 1)
        ctx.set(w.payload, {"bank": 1, "entry": 3, "mask": 1, "acc": int(op == "acc"),
                            "fp": int(kind == "fp"), "data": [0x3F80_0000] * cfg.cols})
        ctx.set(q.payload, {"bank": 1, "entry": 3})
        trace = []
        for t in range(A + 12):
            ctx.set(w.valid, t == 4 and op != "read")
            ctx.set(q.valid, t == 4 and op == "read")
            _, _, busy, wr, rr = await ctx.tick().sample(dut.o_busy, w.ready, q.ready)
            if t == 4:
                assert (wr if op != "read" else rr), f"{tag}: not accepted at once"
            trace.append(busy)
        exp = [int(5 <= t <= 6 + A) for t in range(A + 12)]
        assert trace == exp, f"{tag}: o_busy {trace}, expected {exp}"

    simulate(dut, tb)


@pytest.mark.parametrize("seed", [700])
@pytest.mark.parametrize("kind", ["int", "fp"])
def test_fairness_all_clients(kind, seed):
    """Two writers and two readers always asking (no hazards: the writers overwrite
    entries nobody reads), responses always taken: one operation per cycle, in strict
    rotation, a quarter each."""
    cfg = CFGS[kind]
    rng = np.random.default_rng(seed)
    dut = PSUM(cfg, n_read=2, n_write=2)
    model = Model(cfg)
    addrs = all_addrs(cfg)
    log = []
    n = 40
    tag = f"{kind} seed {seed}"

    async def tb(ctx):
        writes = [random_writes(rng, cfg, addrs[:4], n, p_acc=0.0) for _ in range(2)]
        reads = [[addrs[4 + int(i)] for i in rng.integers(0, 4, n)] for _ in range(2)]
        await drive(ctx, dut, model, writes, reads, rng, tag, p_wvalid=1.0, p_rvalid=1.0,
                    p_rready=1.0, log=log)

    simulate(dut, tb)
    times = [t for t, _, _, _ in log]
    who = [(k, c) for _, k, c, _ in log]
    assert times == list(range(times[0], times[0] + 4 * n)), f"{tag}: idle cycles {times}"
    order = [("w", 0), ("w", 1), ("r", 0), ("r", 1)]
    assert who == order * n, f"{tag}: grant order {who[:12]}..."


@pytest.mark.parametrize("seed", [801, 802])
@pytest.mark.parametrize("kind", ["int", "fp"])
def test_client_never_starves_under_hazards(kind, seed):
    """Writer 0 keeps accumulating into one entry (so it stalls on itself), writer 1 and
    reader 1 always ask and often hit entries with writes in flight. Reader 0 asks now
    and then for entries nobody writes: the round robin serves each of the three others
    at most once before it, each held back at most ``A`` cycles by a hazard, so it
    waits at most ``3 * (A + 1)`` cycles. Every value is checked on the way."""
    rng = np.random.default_rng(seed)
    cfg = CFGS[kind]
    A = latency(cfg)
    dut = PSUM(cfg, n_read=2, n_write=2)
    model = Model(cfg)
    addrs = all_addrs(cfg)
    hot, cold = addrs[:4], addrs[8:]
    tag = f"{kind} seed {seed}"
    log = []

    async def tb(ctx):
        fp = int(kind == "fp")
        writes = [
            [(0, 0, (1 << cfg.cols) - 1, 1, fp, tuple(
                int(np.array([np.float32(rng.normal())]).view(np.uint32)[0]) if fp
                else int(rng.integers(0, 1 << 32)) for _ in range(cfg.cols)))
             for _ in range(60)],
            random_writes(rng, cfg, hot[1:], 60, p_acc=0.8),
        ]
        reads = [[cold[int(i)] for i in rng.integers(0, len(cold), 25)],
                 [hot[int(i)] for i in rng.integers(0, len(hot), 60)]]
        await drive(ctx, dut, model, writes, reads, rng, tag, p_wvalid=1.0,
                    p_rvalid=[0.3, 1.0], p_rready=1.0, log=log)
        await check_contents(ctx, dut, model, tag, hot)

    simulate(dut, tb)
    waits = [w for _, k, c, w in log if (k, c) == ("r", 0)]
    assert len(waits) == 25, tag
    assert max(waits) <= 3 * (A + 1), f"{tag}: reader 0 waited {max(waits)}: {waits}"
    assert any(w for _, k, c, w in log if (k, c) == ("w", 0)), f"{tag}: no hazard stalls"


@pytest.mark.parametrize("seed", [1000])
def test_hazard_holds_the_grant(seed):
    """A granted operation that waits on a hazard keeps the grant (RoundRobin: "a grant
    that is not taken is offered again to the same requester"): it is accepted as soon
    as the conflicting write reaches the last stage, and only then does the rotation
    move on. Float configuration, so the hazard lasts several cycles."""
    cfg = FCFG
    A = latency(cfg)
    rng = np.random.default_rng(seed)
    tag = f"grant seed {seed}"
    dut = PSUM(cfg, n_read=1, n_write=2)
    model = Model(cfg)
    log = []
    full = (1 << cfg.cols) - 1

    async def tb(ctx):
        one = (0x3F80_0000,) * cfg.cols
        w0 = [(0, 0, full, 1, 1, one), (0, 0, full, 1, 1, one)]
        w1 = [(1, e, full, 0, 0, tuple(int(v) for v in rng.integers(0, 1 << 32, cfg.cols)))
              for e in range(6)]
        await drive(ctx, dut, model, [w0, w1], [[]], rng, tag, p_wvalid=1.0, log=log)
        await check_contents(ctx, dut, model, tag, [(0, 0)] + [(1, e) for e in range(6)])

    simulate(dut, tb)
    got = [(t, c) for t, _, c, _ in log]
    exp = [(0, 0), (1, 1), (A + 1, 0)] + [(A + 2 + i, 1) for i in range(5)]
    assert got == exp, f"{tag}: acceptances (cycle, writer) {got}, expected {exp}"


def test_single_entry_banks_are_distinct():
    """``psum_depth=1`` (allowed by CoreConfig): every bank has one entry, at address
    ``bank * psum_depth + entry = bank``. Each bank must keep its own value."""
    cfg = CoreConfig(rows=1, cols=1, sbuf_bytes=64, psum_banks=4, psum_depth=1)
    rng = np.random.default_rng(0)          # only drives p = 1 streams: no randomness
    dut = PSUM(cfg, n_read=1, n_write=1)
    model = Model(cfg)
    addrs = all_addrs(cfg)
    assert addrs == [(0, 0), (1, 0), (2, 0), (3, 0)]

    async def tb(ctx):
        writes = [(b, 0, 1, 0, 0, (0x100 + b,)) for b in range(4)]
        writes += [(b, 0, 1, 1, 0, (0x10 * (b + 1),)) for b in range(4)]
        await drive(ctx, dut, model, [writes], [[]], rng, "psum_depth 1", p_wvalid=1.0)
        await check_contents(ctx, dut, model, "psum_depth 1")

    simulate(dut, tb)


# ---------------------------------------------------------------------------------------
# Response FIFO depth
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [901])
@pytest.mark.parametrize("kind", ["int", "fp"])
@pytest.mark.parametrize("resp_depth", [3, "A+5"])
def test_single_reader_back_to_back(kind, resp_depth, seed):
    """One reader always asking, responses always taken: every response arrives, in
    order, right; with ``resp_depth >= add_latency + 5`` at one read per cycle (the
    docstring's claim)."""
    cfg = CFGS[kind]
    A = latency(cfg)
    depth = A + 5 if resp_depth == "A+5" else resp_depth
    rng = np.random.default_rng(seed)
    dut = PSUM(cfg, n_read=1, n_write=1, resp_depth=depth)
    assert dut.add_latency == A
    model = Model(cfg)
    log = []
    tag = f"{kind} resp_depth {depth} seed {seed}"

    async def tb(ctx):
        init = [(b, e, (1 << cfg.cols) - 1, 0, 0, tuple(int(v) for v in rng.integers(
            0, 1 << 32, cfg.cols))) for b, e in all_addrs(cfg)]
        await drive(ctx, dut, model, [init], [[]], rng, tag, p_wvalid=1.0)
        reads = [[all_addrs(cfg)[int(i)] for i in rng.integers(0, cfg.psum_entries, 40)]]
        await drive(ctx, dut, model, [[]], reads, rng, tag, p_rvalid=1.0, p_rready=1.0,
                    max_cycles=2000, log=log)

    simulate(dut, tb)
    if depth >= A + 5:
        times = [t for t, _, _, _ in log]
        assert times == list(range(times[0], times[0] + 40)), f"{tag}: gaps in {times}"


# ---------------------------------------------------------------------------------------
# Parameter checks
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    ({"n_write": 9}, "n_write must be an integer from 1 to 8, not 9"),
    ({"n_write": 0}, "n_write must be an integer from 1 to 8, not 0"),
    ({"n_read": 0}, "n_read must be an integer from 1 to 8, not 0"),
    ({"n_read": False}, "n_read must be an integer from 1 to 8, not False"),
    ({"n_read": "2"}, "n_read must be an integer from 1 to 8, not '2'"),
    ({"resp_depth": 1}, "resp_depth must be an integer from 3 to 64, not 1"),
    ({"resp_depth": 65}, "resp_depth must be an integer from 3 to 64, not 65"),
])
def test_parameter_errors(kwargs, message):
    with pytest.raises(ValueError) as info:
        PSUM(ICFG, **kwargs)
    assert str(info.value) == message


def test_config_type_error():
    with pytest.raises(TypeError) as info:
        PSUM("x")
    assert str(info.value) == "config must be a CoreConfig, not 'x'"


def test_ports_and_memory_shape():
    for cfg in (ICFG, FCFG):
        dut = PSUM(cfg, n_read=2, n_write=2)
        assert dut.config is cfg
        assert dut.add_latency == latency(cfg)
        assert len(dut.banks) == cfg.cols
        assert all(b.depth == cfg.psum_entries and Shape.cast(b.shape).width == 32
                   for b in dut.banks)
        for c in range(2):
            assert dut.write_client(c) is getattr(dut, f"i_wr{c}")
            assert dut.read_client(c) == (getattr(dut, f"i_rd{c}"), getattr(dut, f"o_rd{c}"))
