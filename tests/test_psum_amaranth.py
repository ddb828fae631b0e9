# amaranth: UnusedElaboratable=no
"""PSUM in Amaranth's simulator against a Python model of its contents.

Concurrent writers (overwrite, INT32 and FP32 accumulate) and readers with random
valid/ready stalls, accumulate hazards, reads against writes in flight and the
same-cycle rule, the write and read pipelines at full rate together, the per-bank read
pipelines (readers of different banks in the same cycle, readers of one bank in turn),
partition masks, a stalled reader, o_busy and the constructor's parameter checks.
Expected values come from :class:`Model`, updated in the order the hardware accepts
operations (at most one write per cycle and one read per bank, observed as valid &
ready at each clock edge; reads accepted in the same cycle as a write come first);
FP32 sums come from :func:`sim.model.fp.fp32_add_bits`.
"""

from collections import deque

import numpy as np
import pytest
from amaranth.hdl import Shape

from amaranth_helpers import (client_cycle, memory_parameter_tests, release_clients,
                               simulate)
from hdl.config import FP_ADD_LATENCY, CoreConfig
from hdl.psum import PSUM
from sim.model.fp import fp32_add_bits

ICFG = CoreConfig(rows=4, cols=4, sbuf_bytes=256, psum_banks=2, psum_depth=16)
FCFG = CoreConfig(rows=2, cols=2, dtypes=("int8", "bf16", "fp16"), sbuf_bytes=64,
                  psum_banks=2, psum_depth=8)
#: the float configuration with flush-to-zero adders (CoreConfig.subnormals=False)
FCFG_FTZ = CoreConfig(rows=2, cols=2, dtypes=("int8", "bf16", "fp16"), sbuf_bytes=64,
                      psum_banks=2, psum_depth=8, subnormals=False)
CFGS = {"int": ICFG, "fp": FCFG}
#: four banks, so that two readers and a writer can each have a bank of their own
ICFG4 = CoreConfig(rows=4, cols=4, sbuf_bytes=256, psum_banks=4, psum_depth=16)
FCFG4 = CoreConfig(rows=2, cols=2, dtypes=("int8", "bf16", "fp16"), sbuf_bytes=64,
                   psum_banks=4, psum_depth=8)
CFGS4 = {"int": ICFG4, "fp": FCFG4}
#: one bank (every reader shares its read pipeline) and three (not a power of two)
ICFG1 = CoreConfig(rows=4, cols=4, sbuf_bytes=256, psum_banks=1, psum_depth=16)
ICFG3 = CoreConfig(rows=2, cols=3, sbuf_bytes=64, psum_banks=3, psum_depth=8)
M32 = 0xFFFF_FFFF

SPECIALS = [0x0000_0000, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001,
            0xFFC0_1234, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x0080_0000, 0x8080_0000, 0x0000_0001,
            0x807F_FFFF, 0x3F80_0000, 0xBF80_0000]


def latency(cfg):
    """The accumulate step's depth ``A`` as documented: 7 with floats, else 2."""
    return FP_ADD_LATENCY if cfg.has_float else 2


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
                old[p] = int(fp32_add_bits(np.uint32(old[p]), np.uint32(data[p]),
                                           subnormals=self.cfg.subnormals))
            else:
                old[p] = (old[p] + data[p]) & M32
        self.mem[(bank, entry)] = old


def unpack(cfg, bits):
    return tuple((bits >> (32 * p)) & M32 for p in range(cfg.cols))


def fmt(words):
    return "[" + ", ".join(f"{w:#010x}" for w in words) + "]"


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
                p_rready=0.7, max_cycles=20000, log=None, settle=True, stats=None):
    """Run write clients (``writes[c]``: list of requests) and read clients
    (``reads[c]``: list of ``(bank, entry)``) concurrently until every request is
    accepted and every response consumed. Each accepted operation updates ``model``
    (writes) or snapshots it (reads) in acceptance order, a read accepted in the same
    cycle as a write taking its snapshot first (the documented rule); each response
    must equal its snapshot. Also checks that at most one write, and one read per
    bank, are accepted per cycle and that ``o_busy`` is high exactly in cycles ``a+1 .. a+2+A``
    after each write acceptance ``a`` and ``a+1 .. a+2`` after each read acceptance.
    Stream rules: once valid, a request's payload stays until its handshake.

    The probabilities are a number or one per client. ``log`` (a list), if given,
    receives ``(cycle, kind, client, wait)`` per acceptance, ``wait`` being the cycles
    from raising valid to the handshake; ``stats`` (a dict), if given, counts in
    ``"same_entry"`` the cycles that accepted a write and a read of the same entry,
    and in ``"multi_read"`` the cycles that accepted reads of two or more banks.
    Returns the number of cycles taken.
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
    accepted = []       # (cycle, cycles o_busy stays high after it)

    def busy_ok(c):
        return any(a + 1 <= c <= a + n for a, n in accepted[-2 * (A + 2):])

    cycle = 0
    while True:
        done = (all(wi[c] == len(writes[c]) for c in range(nw))
                and all(n_resp[c] == len(reads[c]) for c in range(nr)))
        if done and (not settle or not accepted or cycle > max(a + n for a, n in accepted)):
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
        wready, qready, ovalid, opayload, (busy,) = await client_cycle(
            ctx, writers, rclients, rready, [dut.o_busy])
        assert busy == busy_ok(cycle), (
            f"{tag}: o_busy = {busy} in cycle {cycle}, acceptances {accepted[-3:]}")
        took_w = [c for c in range(nw) if wvalid[c] and wready[c]]
        took_r = [c for c in range(nr) if rvalid[c] and qready[c]]
        rbanks = [reads[c][ri[c]][0] for c in took_r]
        assert len(took_w) <= 1 and len(set(rbanks)) == len(rbanks), (
            f"{tag}: cycle {cycle}: writers {took_w} and readers {took_r} (banks "
            f"{rbanks}) all accepted")
        if stats is not None and len(took_r) > 1:
            stats["multi_read"] = stats.get("multi_read", 0) + 1
        for c in took_r:        # before the same cycle's write: it does not see it
            bank, entry = reads[c][ri[c]]
            expected[c].append((ri[c], (bank, entry), model.read(bank, entry)))
            ri[c] += 1
            rvalid[c] = False
            accepted.append((cycle, 2))
            if log is not None:
                log.append((cycle, "r", c, cycle - rraised[c]))
        for c in took_w:
            if stats is not None and took_r:
                same = writes[c][wi[c]][:2] in [reads[r][ri[r] - 1] for r in took_r]
                stats["same_entry"] = stats.get("same_entry", 0) + same
            model.write(*writes[c][wi[c]])
            wi[c] += 1
            wvalid[c] = False
            accepted.append((cycle, 2 + A))
            if log is not None:
                log.append((cycle, "w", c, cycle - wraised[c]))
        for c in range(nr):
            if ovalid[c] and rready[c]:
                assert expected[c], f"{tag}: reader {c}: response without request, cycle {cycle}"
                i, addr, exp = expected[c].popleft()
                got = unpack(cfg, opayload[c])
                assert got == exp, (f"{tag}: reader {c} read #{i} of {addr} (cycle {cycle}): "
                                    f"got {fmt(got)}, expected {fmt(exp)}")
                n_resp[c] += 1
        cycle += 1
    release_clients(ctx, writers, rclients)
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


@pytest.mark.parametrize("ftz", [False, True], ids=["ieee", "ftz"])
@pytest.mark.parametrize("seed", [101, 102, 103, 104, 105, 106])
@pytest.mark.parametrize("p_valid,p_ready", [(0.6, 0.6), (1.0, 1.0)])
def test_random_concurrent_fp(seed, p_valid, p_ready, ftz):
    """As above with the float configuration: FP32 accumulation (random finite,
    subnormal and special values; bit-exact, canonical NaN), INT32 accumulation and
    overwrites mixed on the same entries. ``ftz``: the flush-to-zero configuration,
    against the flushing model."""
    rng = np.random.default_rng(seed)
    cfg = FCFG_FTZ if ftz else FCFG
    dut = PSUM(cfg, n_read=2, n_write=2)
    model = Model(cfg)
    tag = f"fp seed {seed} p_valid {p_valid} p_ready {p_ready} ftz {ftz}"
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


# ---------------------------------------------------------------------------------------
# Reads against writes: hazards, the same-cycle rule, two pipelines in parallel
# ---------------------------------------------------------------------------------------

READ_LATENCY = 4        # request handshake in cycle t -> response valid in cycle t + 4


@pytest.mark.parametrize("op", ["overwrite", "acc"])
@pytest.mark.parametrize("kind,gap", [("int", g) for g in range(5)]
                         + [("fp", g) for g in range(FP_ADD_LATENCY + 4)])
def test_read_versus_write_in_flight(kind, gap, op):
    """A write to an entry is accepted in cycle 0; a read of that entry is raised in
    cycle ``gap``. With ``gap >= 1`` the read sees the write: it is held back until the
    write has reached stage ``A`` (accepted in cycle ``max(gap, A + 1)``), not given
    the stale value. With ``gap = 0`` (the documented same-cycle rule) the read is
    accepted at once and returns the value from before the write. The response is
    valid ``READ_LATENCY`` cycles after the request's handshake, and a second read
    afterwards sees the write."""
    cfg = CFGS[kind]
    A = latency(cfg)
    dut = PSUM(cfg, n_read=1, n_write=1)
    model = Model(cfg)
    rng = np.random.default_rng(0)          # only drives p = 1 streams: no randomness
    tag = f"{kind} {op} gap {gap}"

    async def tb(ctx):
        full = (1 << cfg.cols) - 1
        fp = int(kind == "fp")
        init = (0, 2, full, 0, 0, tuple(0x3F80_0000 + p for p in range(cfg.cols)))
        wr = (0, 2, full, int(op == "acc"), fp if op == "acc" else 0,
              tuple(0x4000_0000 + 3 * p for p in range(cfg.cols)))
        await drive(ctx, dut, model, [[init]], [[]], rng, tag, p_wvalid=1.0)
        w = dut.write_client(0)
        q, o = dut.read_client(0)
        ctx.set(o.ready, 1)
        ctx.set(q.payload, {"bank": 0, "entry": 2})
        b, e, mask, acc, fpb, data = wr
        ctx.set(w.payload, {"bank": b, "entry": e, "mask": mask, "acc": acc, "fp": fpb,
                            "data": list(data)})
        before = model.read(0, 2)
        model.write(*wr)
        after = model.read(0, 2)
        got, accepted = [], None
        for t in range(40):
            ctx.set(w.valid, t == 0)
            ctx.set(q.valid, t >= gap and accepted is None)
            _, _, wrdy, rrdy, ov, opl = await ctx.tick().sample(
                w.ready, q.ready, o.valid, o.payload.as_value())
            if t == 0:
                assert wrdy, tag
            if t >= gap and accepted is None and rrdy:
                accepted = t
            if ov:
                got.append((t, unpack(cfg, opl)))
        ctx.set(q.valid, 0)
        want_t = 0 if gap == 0 else max(gap, A + 1)
        assert accepted == want_t, f"{tag}: read accepted in cycle {accepted}, not {want_t}"
        exp = before if gap == 0 else after
        assert got == [(want_t + READ_LATENCY, exp)], (
            f"{tag}: got {[(t, fmt(g)) for t, g in got]}, expected {fmt(exp)} in cycle "
            f"{want_t + READ_LATENCY}")
        await check_contents(ctx, dut, model, tag, [(0, 2)])

    simulate(dut, tb)


@pytest.mark.parametrize("kind", ["int", "fp"])
def test_same_cycle_write_and_read_stream(kind):
    """A writer overwrites (then accumulates into) entries 0.. of a bank one per cycle
    while a reader reads the same entries in the same cycles: nobody stalls (the write
    accepted in a read's cycle counts as after it), and every read returns the value
    from before that cycle's write. Reads one cycle behind the writes then see them."""
    cfg = CFGS[kind]
    A = latency(cfg)
    dut = PSUM(cfg, n_read=1, n_write=1)
    model = Model(cfg)
    rng = np.random.default_rng(7)
    full = (1 << cfg.cols) - 1
    fp = int(kind == "fp")
    region = [(1, e) for e in range(cfg.psum_depth)]
    tag = kind

    def data():
        return tuple(int(np.array([np.float32(rng.normal())]).view(np.uint32)[0]) if fp
                     else int(rng.integers(0, 1 << 32)) for _ in range(cfg.cols))

    async def tb(ctx):
        init = [(b, e, full, 0, 0, data()) for b, e in region]
        await drive(ctx, dut, model, [init], [[]], rng, tag, p_wvalid=1.0)
        for acc in (0, 1):
            w = dut.write_client(0)
            q, o = dut.read_client(0)
            ctx.set(o.ready, 1)
            ops = [(b, e, full, acc, fp & acc, data()) for b, e in region]
            exp = []
            got = []
            for t in range(len(region) + max(READ_LATENCY, A + 2) + 2):
                if t < len(region):
                    b, e, mask, a, f, d = ops[t]
                    ctx.set(w.payload, {"bank": b, "entry": e, "mask": mask, "acc": a,
                                        "fp": f, "data": list(d)})
                    ctx.set(q.payload, {"bank": b, "entry": e})
                ctx.set(w.valid, t < len(region))
                ctx.set(q.valid, t < len(region))
                _, _, wrdy, rrdy, ov, opl = await ctx.tick().sample(
                    w.ready, q.ready, o.valid, o.payload.as_value())
                if t < len(region):
                    assert wrdy and rrdy, f"{tag} acc {acc}: stall in cycle {t}"
                    exp.append(model.read(*region[t]))      # the read first
                    model.write(*ops[t])
                if ov:
                    got.append(unpack(cfg, opl))
            ctx.set(w.valid, 0)
            ctx.set(q.valid, 0)
            assert got == exp, f"{tag} acc {acc}: reads {[fmt(g) for g in got]}"
            await check_contents(ctx, dut, model, tag, region)

    simulate(dut, tb)


@pytest.mark.parametrize("bank", [0, 1])
@pytest.mark.parametrize("kind", ["int", "fp"])
def test_read_hazard_holds_writes(kind, bank):
    """A writer overwrites one entry every cycle (no hazard for it). A read of that
    entry raised in the middle waits exactly ``A`` cycles, during which no write is
    accepted (so the wait ends whatever the writers do), and returns the value of the
    last write accepted before it; then the writes resume at once. In either bank:
    a read waiting in any bank's pipeline holds the writes."""
    cfg = CFGS[kind]
    A = latency(cfg)
    dut = PSUM(cfg, n_read=1, n_write=1)
    model = Model(cfg)
    full = (1 << cfg.cols) - 1
    tag = f"{kind} bank {bank}"

    async def tb(ctx):
        w = dut.write_client(0)
        q, o = dut.read_client(0)
        ctx.set(o.ready, 1)
        ctx.set(q.payload, {"bank": bank, "entry": 1})
        raise_at = 12
        wtimes, rtime, got, exp = [], None, [], None
        for t in range(40):
            d = (0x1000 + t,) * cfg.cols
            ctx.set(w.payload, {"bank": bank, "entry": 1, "mask": full, "acc": 0, "fp": 0,
                                "data": list(d)})
            ctx.set(w.valid, t < 30)
            ctx.set(q.valid, t >= raise_at and rtime is None)
            _, _, wrdy, rrdy, ov, opl = await ctx.tick().sample(
                w.ready, q.ready, o.valid, o.payload.as_value())
            if t >= raise_at and rtime is None and rrdy:
                rtime = t
                exp = model.read(bank, 1)
            if t < 30 and wrdy:
                model.write(bank, 1, full, 0, 0, d)
                wtimes.append(t)
            if ov:
                got.append(unpack(cfg, opl))
        assert rtime == raise_at + A, f"{tag}: read accepted in cycle {rtime}"
        assert wtimes == [t for t in range(30) if not raise_at <= t < raise_at + A], (
            f"{tag}: writes accepted in cycles {wtimes}")
        assert exp == ((0x1000 + raise_at - 1,) * cfg.cols), tag
        assert got == [exp], f"{tag}: got {[fmt(g) for g in got]}, expected {fmt(exp)}"

    simulate(dut, tb)


@pytest.mark.parametrize("seed", [1101, 1102])
@pytest.mark.parametrize("kind", ["int", "fp"])
@pytest.mark.parametrize("n_read", [1, 2])
def test_write_and_read_in_parallel_full_rate(kind, n_read, seed):
    """The core's use: one writer accumulates back to back into bank 0 (a region of
    ``A + 1`` entries or more, so it never waits on itself) while reader(s) drain bank 1
    with every response taken at once. N writes and N reads (shared by the readers)
    take N cycles, not 2N: one write and one read are accepted in every cycle."""
    cfg = CFGS[kind]
    A = latency(cfg)
    rng = np.random.default_rng(seed)
    dut = PSUM(cfg, n_read=n_read, n_write=1)
    model = Model(cfg)
    n = 64
    full = (1 << cfg.cols) - 1
    fp = int(kind == "fp")
    wregion = [(0, e) for e in range(cfg.psum_depth)]
    rregion = [(1, e) for e in range(cfg.psum_depth)]
    assert len(wregion) >= A + 1
    log = []
    tag = f"{kind} n_read {n_read} seed {seed}"

    async def tb(ctx):
        init = [(b, e, full, 0, 0, tuple(int(v) for v in rng.integers(0, 1 << 32, cfg.cols)))
                for b, e in wregion + rregion]
        await drive(ctx, dut, model, [init], [[] for _ in range(n_read)], rng, tag,
                    p_wvalid=1.0)
        writes = [(b, e, full, 1, fp, tuple(
            int(np.array([np.float32(rng.normal())]).view(np.uint32)[0]) if fp
            else int(rng.integers(0, 1 << 32)) for _ in range(cfg.cols)))
            for i in range(n) for b, e in [wregion[i % len(wregion)]]]
        reads = [[rregion[(i * n_read + c) % len(rregion)] for i in range(n // n_read)]
                 for c in range(n_read)]
        await drive(ctx, dut, model, [writes], reads, rng, tag, p_wvalid=1.0,
                    p_rvalid=1.0, p_rready=1.0, log=log)
        await check_contents(ctx, dut, model, tag, wregion)

    simulate(dut, tb)
    wt = [t for t, k, _, _ in log if k == "w"]
    rt = [t for t, k, _, _ in log if k == "r"]
    assert wt == list(range(n)), f"{tag}: writes accepted in cycles {wt}"
    assert rt == list(range(n)), f"{tag}: reads accepted in cycles {rt}"


@pytest.mark.parametrize("seed", [1201, 1202, 1203, 1204])
@pytest.mark.parametrize("kind", ["int", "fp"])
@pytest.mark.parametrize("n_read,n_write", [(2, 1), (2, 2), (3, 1)])
def test_random_mixed_traffic(kind, n_read, n_write, seed):
    """Writers and readers hammer three entries (so same-cycle write/read pairs of one
    entry, reads behind writes in flight and accumulate hazards all happen often) with
    random valid stalls and random backpressure on every read response. Every response
    is checked against :class:`Model` updated in acceptance order, reads first within a
    cycle (the documented rule)."""
    rng = np.random.default_rng(seed)
    cfg = CFGS[kind]
    dut = PSUM(cfg, n_read=n_read, n_write=n_write, resp_depth=int(rng.integers(3, 9)))
    model = Model(cfg)
    tag = f"{kind} {n_read}R{n_write}W seed {seed}"
    addrs = [(0, 1), (0, 2), (1, 1)]
    stats = {}

    async def tb(ctx):
        writes = [random_writes(rng, cfg, addrs, 60, p_acc=0.6, p_fp=0.8)
                  for _ in range(n_write)]
        reads = [[addrs[int(i)] for i in rng.integers(0, len(addrs), 60)]
                 for _ in range(n_read)]
        await drive(ctx, dut, model, writes, reads, rng, tag,
                    p_wvalid=[float(rng.uniform(0.5, 1.0)) for _ in range(n_write)],
                    p_rvalid=[float(rng.uniform(0.5, 1.0)) for _ in range(n_read)],
                    p_rready=[float(rng.uniform(0.2, 0.9)) for _ in range(n_read)],
                    stats=stats)
        await check_contents(ctx, dut, model, tag, addrs)

    simulate(dut, tb)
    assert stats.get("same_entry", 0) > 0, f"{tag}: no same-cycle write/read of one entry"


# ---------------------------------------------------------------------------------------
# One read pipeline per bank
# ---------------------------------------------------------------------------------------

def distinct_contents(cfg):
    """A different 32-bit value for every (bank, entry, partition), from a formula
    (an odd multiplier is a bijection mod 2**32): ``{(bank, entry): tuple}``."""
    return {(b, e): tuple(((b * cfg.psum_depth + e) * cfg.cols + p + 1) * 0x9E37_79B1 & M32
                          for p in range(cfg.cols))
            for b, e in all_addrs(cfg)}


async def fill(ctx, dut, model, contents, tag):
    """Overwrite every entry of ``contents`` (all partitions) through writer 0."""
    full = (1 << dut.config.cols) - 1
    writes = [(b, e, full, 0, 0, v) for (b, e), v in contents.items()]
    await drive(ctx, dut, model, [writes] + [[] for _ in range(dut._n_write - 1)],
                [[] for _ in range(dut._n_read)], np.random.default_rng(0), tag + " fill",
                p_wvalid=1.0)


@pytest.mark.parametrize("kind", ["int", "fp"])
def test_two_readers_different_banks_same_cycle(kind):
    """Reader 0 (the vector engine's place in the core) and reader 1 (DMA-out's) each
    stream reads of one bank, for every ordered pair of different banks: both are
    accepted in every cycle from the first (each bank has its own read pipeline), and
    each response is the value written there beforehand (:func:`distinct_contents`,
    not the model), ``READ_LATENCY`` cycles after its request's handshake."""
    cfg = CFGS4[kind]
    dut = PSUM(cfg, n_read=2, n_write=1)
    model = Model(cfg)
    contents = distinct_contents(cfg)
    n = cfg.psum_depth

    def entry(c, i):            # reader 0 upwards, reader 1 downwards
        return i if c == 0 else n - 1 - i

    async def tb(ctx):
        await fill(ctx, dut, model, contents, kind)
        clients = [dut.read_client(c) for c in range(2)]
        for _, o in clients:
            ctx.set(o.ready, 1)
        for banks in [(b0, b1) for b0 in range(cfg.psum_banks)
                      for b1 in range(cfg.psum_banks) if b0 != b1]:
            tag = f"{kind} banks {banks}"
            i = [0, 0]
            accepted = [[], []]
            got = [[], []]
            for t in range(n + READ_LATENCY + 2):
                for c, (q, _) in enumerate(clients):
                    if i[c] < n:
                        ctx.set(q.payload, {"bank": banks[c], "entry": entry(c, i[c])})
                    ctx.set(q.valid, i[c] < n)
                res = await ctx.tick().sample(*[s for q, o in clients for s in (
                    q.ready, o.valid, o.payload.as_value())])
                for c in range(2):
                    rdy, ov, opl = res[2 + 3 * c: 5 + 3 * c]
                    if i[c] < n and rdy:
                        accepted[c].append(t)
                        i[c] += 1
                    if ov:
                        got[c].append((t, unpack(cfg, opl)))
            for q, _ in clients:
                ctx.set(q.valid, 0)
            for c in range(2):
                assert accepted[c] == list(range(n)), (
                    f"{tag}: reader {c} accepted in cycles {accepted[c]}")
                exp = [(t + READ_LATENCY, contents[(banks[c], entry(c, t))])
                       for t in range(n)]
                assert got[c] == exp, (
                    f"{tag}: reader {c} got {[(t, fmt(v)) for t, v in got[c]][:4]}..., "
                    f"expected {[(t, fmt(v)) for t, v in exp][:4]}...")

    simulate(dut, tb)


@pytest.mark.parametrize("seed", [1501])
@pytest.mark.parametrize("n_read", [2, 3])
@pytest.mark.parametrize("cfg_name", ["4-banks", "1-bank"])
def test_readers_of_one_bank_take_turns(cfg_name, n_read, seed):
    """Readers that keep asking for entries of one bank (bank 2 of four; or the only
    bank when ``psum_banks`` is 1) share its read pipeline: one read per cycle, granted
    in strict rotation 0, 1, (2,) 0, 1, ..., and every read completes with the right
    value (checked against :class:`Model` by :func:`drive`)."""
    cfg = ICFG4 if cfg_name == "4-banks" else ICFG1
    bank = 2 if cfg_name == "4-banks" else 0
    rng = np.random.default_rng(seed)
    dut = PSUM(cfg, n_read=n_read, n_write=1)
    model = Model(cfg)
    n = 30
    log = []
    tag = f"{cfg_name} {n_read} readers seed {seed}"

    async def tb(ctx):
        await fill(ctx, dut, model, distinct_contents(cfg), tag)
        reads = [[(bank, int(e)) for e in rng.integers(0, cfg.psum_depth, n)]
                 for _ in range(n_read)]
        await drive(ctx, dut, model, [[]], reads, rng, tag, p_rvalid=1.0, p_rready=1.0,
                    log=log)

    simulate(dut, tb)
    times = [t for t, _, _, _ in log]
    who = [c for _, _, c, _ in log]
    assert times == list(range(n_read * n)), f"{tag}: reads accepted in cycles {times}"
    assert who == list(range(n_read)) * n, f"{tag}: grant order {who[:12]}..."


@pytest.mark.parametrize("seed", [1301, 1302])
@pytest.mark.parametrize("kind", ["int", "fp"])
@pytest.mark.parametrize("rbanks", [(1, 2), (3, 1), (2, 2)], ids=["1-2", "3-1", "2-2"])
def test_writes_full_rate_with_two_readers(kind, rbanks, seed):
    """Issue 23's case: the tensor engine's place (writer 0) accumulates back to back
    into bank 0 (a region of ``A + 1`` entries or more, so it never waits on itself)
    while reader 0 and reader 1 read the banks ``rbanks``, every response taken at
    once. No write cycle is lost: N writes take N cycles. Readers of two different
    banks also read every cycle (N reads each in the same N cycles); two readers of
    one bank share its pipeline (2N reads in 2N cycles), still without costing a
    write cycle. Every value is checked against :class:`Model`."""
    cfg = CFGS4[kind]
    A = latency(cfg)
    rng = np.random.default_rng(seed)
    dut = PSUM(cfg, n_read=2, n_write=1)
    model = Model(cfg)
    n = 48
    full = (1 << cfg.cols) - 1
    fp = int(kind == "fp")
    wregion = [(0, e) for e in range(cfg.psum_depth)]
    assert len(wregion) >= A + 1
    log = []
    tag = f"{kind} reader banks {rbanks} seed {seed}"

    async def tb(ctx):
        await fill(ctx, dut, model, distinct_contents(cfg), tag)
        writes = [(b, e, full, 1, fp, tuple(
            int(np.array([np.float32(rng.normal())]).view(np.uint32)[0]) if fp
            else int(rng.integers(0, 1 << 32)) for _ in range(cfg.cols)))
            for i in range(n) for b, e in [wregion[i % len(wregion)]]]
        reads = [[(rbanks[c], int(e)) for e in rng.integers(0, cfg.psum_depth, n)]
                 for c in range(2)]
        await drive(ctx, dut, model, [writes], reads, rng, tag, p_wvalid=1.0,
                    p_rvalid=1.0, p_rready=1.0, log=log)
        await check_contents(ctx, dut, model, tag, wregion)

    simulate(dut, tb)
    wt = [t for t, k, _, _ in log if k == "w"]
    rt = [[t for t, k, c, _ in log if (k, c) == ("r", r)] for r in range(2)]
    assert wt == list(range(n)), f"{tag}: writes accepted in cycles {wt}"
    if rbanks[0] != rbanks[1]:
        for r in range(2):
            assert rt[r] == list(range(n)), f"{tag}: reader {r} accepted in cycles {rt[r]}"
    else:
        assert sorted(rt[0] + rt[1]) == list(range(2 * n)), (
            f"{tag}: reads accepted in cycles {sorted(rt[0] + rt[1])}")


@pytest.mark.parametrize("op", ["overwrite", "acc"])
@pytest.mark.parametrize("kind,gap", [("int", g) for g in range(2, 5)]
                         + [("fp", g) for g in range(2, FP_ADD_LATENCY + 4)])
@pytest.mark.parametrize("swap", [False, True], ids=["r0-bank1", "r0-bank3"])
def test_read_hazard_per_bank_both_readers(kind, gap, op, swap):
    """Writes to entry 2 of bank 1 and of bank 3 are accepted in cycles 0 and 1. In
    cycle ``gap`` reader 0 and reader 1 ask for those two entries (``swap``: which
    reader asks for which) and reader 2 for entry 2 of bank 2, which nobody writes.
    Each read of a written entry is held until its write has reached stage ``A``
    (bank 1: accepted in cycle ``max(gap, A + 1)``, bank 3: ``max(gap, A + 2)``) and
    returns the value after that write, computed here from the initial value and the
    write's data; reader 2 is accepted at once (the hazard is per bank and entry)."""
    cfg = CFGS4[kind]
    A = latency(cfg)
    dut = PSUM(cfg, n_read=3, n_write=1)
    model = Model(cfg)
    full = (1 << cfg.cols) - 1
    fp = int(kind == "fp")
    acc = int(op == "acc")
    tag = f"{kind} {op} gap {gap} swap {swap}"
    init = {(b, 2): tuple(0x3F80_0000 + 0x10_0000 * b + p for p in range(cfg.cols))
            for b in (1, 2, 3)}
    data = {b: tuple(0x4000_0000 + 0x1000 * b + 3 * p for p in range(cfg.cols))
            for b in (1, 3)}

    def after(b):
        if not acc:
            return data[b]
        if fp:
            return tuple(int(fp32_add_bits(np.uint32(x), np.uint32(y)))
                         for x, y in zip(init[(b, 2)], data[b]))
        return tuple((x + y) & M32 for x, y in zip(init[(b, 2)], data[b]))

    targets = [(3, 2), (1, 2), (2, 2)] if swap else [(1, 2), (3, 2), (2, 2)]
    want_t = {(1, 2): max(gap, A + 1), (3, 2): max(gap, A + 2), (2, 2): gap}
    want_v = {(1, 2): after(1), (3, 2): after(3), (2, 2): init[(2, 2)]}

    async def tb(ctx):
        await fill(ctx, dut, model, init, tag)
        w = dut.write_client(0)
        clients = [dut.read_client(c) for c in range(3)]
        for c, (q, o) in enumerate(clients):
            ctx.set(o.ready, 1)
            ctx.set(q.payload, {"bank": targets[c][0], "entry": targets[c][1]})
        accepted = [None] * 3
        got = [[] for _ in range(3)]
        for t in range(40):
            if t < 2:
                b = 1 + 2 * t
                ctx.set(w.payload, {"bank": b, "entry": 2, "mask": full, "acc": acc,
                                    "fp": fp & acc, "data": list(data[b])})
            ctx.set(w.valid, t < 2)
            for c, (q, _) in enumerate(clients):
                ctx.set(q.valid, t >= gap and accepted[c] is None)
            res = await ctx.tick().sample(w.ready, *[s for q, o in clients for s in (
                q.ready, o.valid, o.payload.as_value())])
            if t < 2:
                assert res[2], f"{tag}: write {t} not accepted at once"
            for c in range(3):
                rdy, ov, opl = res[3 + 3 * c: 6 + 3 * c]
                if t >= gap and accepted[c] is None and rdy:
                    accepted[c] = t
                if ov:
                    got[c].append((t, unpack(cfg, opl)))
        for c, a in enumerate(targets):
            assert accepted[c] == want_t[a], (
                f"{tag}: reader {c} ({a}) accepted in cycle {accepted[c]}, not {want_t[a]}")
            assert got[c] == [(want_t[a] + READ_LATENCY, want_v[a])], (
                f"{tag}: reader {c} ({a}) got {[(t, fmt(v)) for t, v in got[c]]}, "
                f"expected {fmt(want_v[a])} in cycle {want_t[a] + READ_LATENCY}")

    simulate(dut, tb)


BANKED = {"int4": ICFG4, "fp4": FCFG4, "int3": ICFG3, "int1": ICFG1}


@pytest.mark.parametrize("seed", [1401, 1402, 1403, 1404, 1405])
@pytest.mark.parametrize("cfg_name,n_read,n_write", [
    ("int4", 2, 1), ("int4", 3, 2), ("fp4", 2, 1), ("fp4", 3, 1), ("int3", 3, 1),
    ("int1", 2, 1)])
def test_random_banked_traffic(cfg_name, n_read, n_write, seed):
    """Several readers and writers on two hot entries of every bank, random valid
    stalls and response backpressure: reads of different banks are accepted together
    (at most one per bank per cycle), reads of one bank in turn, and every response
    equals :class:`Model` updated in acceptance order (reads first within a cycle).
    The seed is in every failure message. With one bank all readers share it."""
    cfg = BANKED[cfg_name]
    rng = np.random.default_rng(seed)
    dut = PSUM(cfg, n_read=n_read, n_write=n_write, resp_depth=int(rng.integers(3, 9)))
    model = Model(cfg)
    tag = f"{cfg_name} {n_read}R{n_write}W seed {seed}"
    addrs = [(b, e) for b in range(cfg.psum_banks) for e in (1, 2)]
    stats = {}

    async def tb(ctx):
        writes = [random_writes(rng, cfg, addrs, 50, p_acc=0.6, p_fp=0.8)
                  for _ in range(n_write)]
        reads = [[addrs[int(i)] for i in rng.integers(0, len(addrs), 60)]
                 for _ in range(n_read)]
        await drive(ctx, dut, model, writes, reads, rng, tag,
                    p_wvalid=[float(rng.uniform(0.4, 1.0)) for _ in range(n_write)],
                    p_rvalid=[float(rng.uniform(0.6, 1.0)) for _ in range(n_read)],
                    p_rready=[float(rng.uniform(0.3, 1.0)) for _ in range(n_read)],
                    stats=stats)
        await check_contents(ctx, dut, model, tag, addrs)

    simulate(dut, tb)
    if cfg.psum_banks > 1:
        assert stats.get("multi_read", 0) > 0, f"{tag}: never two reads in one cycle"
    else:
        assert stats.get("multi_read", 0) == 0, tag


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
@pytest.mark.parametrize("layout", ["same-bank", "other-banks"])
def test_stalled_reader_blocks_nobody(kind, seed, layout):
    """Reader 0 keeps asking but does not take its responses for a long time: once its
    response FIFO is full it is no longer granted, while the writer (its own pipeline)
    and reader 1 keep going at one per cycle each. ``same-bank``: both readers read
    bank 0 (the writer bank 1), so they share bank 0's read pipeline until reader 0
    drops out and reader 1 has every cycle; ``other-banks``: reader 0 reads bank 0,
    reader 1 bank 1, each with its own read pipeline, so reader 1 has every cycle from
    the start. Afterwards reader 0 gets every response, with the value of its entry at
    the time its read was accepted."""
    cfg = CFGS[kind]
    rng = np.random.default_rng(seed)
    depth = 16
    dut = PSUM(cfg, n_read=2, n_write=1, resp_depth=depth)
    model = Model(cfg)
    tag = f"{kind} seed {seed} {layout}"
    d = cfg.psum_depth
    half = d // 2
    # reader 0, the writer and reader 1 use disjoint entries: no hazards at all
    if layout == "same-bank":
        r0_addrs = [(0, e) for e in range(half)]
        r1_addrs = [(0, e) for e in range(half, d)]
        w_addrs = [(1, e) for e in range(d)]
    else:
        r0_addrs = [(0, e) for e in range(half)]
        r1_addrs = [(1, e) for e in range(half, d)]
        w_addrs = [(0, e) for e in range(half, d)] + [(1, e) for e in range(half)]
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
            if layout == "same-bank":
                assert r0 + r1 <= 1, f"{tag}: two read grants of one bank in cycle {t}"
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
        # the writer has its own pipeline: a write every cycle. Readers of one bank
        # share its read pipeline, and once reader 0 drops out reader 1 has every cycle;
        # a reader of another bank has every cycle anyway
        assert nw == stall, f"{tag}: writer {nw} grants in {stall} cycles"
        if layout == "same-bank":
            assert n1 + n0 == stall, f"{tag}: idle read cycles ({n1} + {n0} of {stall})"
        else:
            assert n1 == stall, f"{tag}: reader 1 got {n1} grants in {stall} cycles"
        assert got1 >= n1 - 4, f"{tag}: reader 1 got {got1} of {n1}"
        ctx.set(q0.valid, 0)
        ctx.set(q1.valid, 0)
        ctx.set(w.valid, 0)
        for t in range(3 * depth + 12):
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
    ``2 + A`` after a write (it lands) or ``2`` after a read (its value enters the
    response FIFO), then returns to 0 and stays there."""
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
        end = 6 + A if op != "read" else 6
        exp = [int(5 <= t <= end) for t in range(A + 12)]
        assert trace == exp, f"{tag}: o_busy {trace}, expected {exp}"

    simulate(dut, tb)


@pytest.mark.parametrize("seed", [700])
@pytest.mark.parametrize("kind", ["int", "fp"])
def test_fairness_all_clients(kind, seed):
    """Two writers and two readers always asking (no hazards: the writers overwrite
    entries nobody reads), responses always taken: a write and a read every cycle, the
    writers in strict rotation in the write pipeline, the readers in the read one."""
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
    for kind_ in ("w", "r"):
        times = [t for t, k, _, _ in log if k == kind_]
        who = [c for _, k, c, _ in log if k == kind_]
        assert times == list(range(times[0], times[0] + 2 * n)), (
            f"{tag}: idle {kind_} cycles {times}")
        assert who == [0, 1] * n, f"{tag}: {kind_} grant order {who[:12]}..."
    assert log[0][0] == 0, tag


@pytest.mark.parametrize("seed", [801, 802])
@pytest.mark.parametrize("kind", ["int", "fp"])
def test_client_never_starves_under_hazards(kind, seed):
    """Writer 0 keeps accumulating into one entry (so it stalls on itself), writer 1 and
    reader 1 always ask and often hit entries with writes in flight. Reader 0 asks now
    and then for entries nobody writes: the read round robin serves reader 1 at most
    once before it, and reader 1 waits on a hazard at most ``A`` cycles (no write is
    accepted meanwhile), so reader 0 waits at most ``A + 1`` cycles. Reader 1 may lose
    its grant to reader 0 once while it waits (a write can then enter), so it waits at
    most ``2 * A + 1``. Every value is checked on the way."""
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
    assert max(waits) <= A + 1, f"{tag}: reader 0 waited {max(waits)}: {waits}"
    waits1 = [w for _, k, c, w in log if (k, c) == ("r", 1)]
    assert max(waits1) <= 2 * A + 1, f"{tag}: reader 1 waited {max(waits1)}: {waits1}"
    assert max(waits1) >= A, f"{tag}: reader 1 never waited a whole hazard: {waits1}"
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
@pytest.mark.parametrize("resp_depth", [3, 4, 5])
def test_single_reader_back_to_back(kind, resp_depth, seed):
    """One reader always asking, responses always taken: every response arrives, in
    order, right; with ``resp_depth >= 5`` at one read per cycle (the docstring's
    claim; the read latency does not depend on ``add_latency``), with less not."""
    cfg = CFGS[kind]
    A = latency(cfg)
    depth = resp_depth
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
    times = [t for t, _, _, _ in log]
    full_rate = times == list(range(times[0], times[0] + 40))
    assert full_rate == (depth >= 5), f"{tag}: acceptances {times}"


# ---------------------------------------------------------------------------------------
# Parameter checks
# ---------------------------------------------------------------------------------------

test_parameter_errors, test_config_type_error = memory_parameter_tests(PSUM, ICFG)


def test_ports_and_memory_shape():
    for cfg in (ICFG, FCFG):
        dut = PSUM(cfg, n_read=2, n_write=2)
        assert dut.config is cfg
        assert dut.add_latency == latency(cfg)
        assert len(dut.banks) == cfg.cols
        assert all(b.depth == cfg.psum_entries and Shape.cast(b.shape).width == 32
                   for b in dut.banks)
        # port B: one copy per partition and bank, psum_depth entries each
        assert [len(r) for r in dut.read_banks] == [cfg.psum_banks] * cfg.cols
        assert all(b.depth == cfg.psum_depth and Shape.cast(b.shape).width == 32
                   for r in dut.read_banks for b in r)
        for c in range(2):
            assert dut.write_client(c) is dut.wr[c]
            assert dut.read_client(c) == (dut.rd[c].req, dut.rd[c].resp)
