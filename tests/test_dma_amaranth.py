# amaranth: UnusedElaboratable=no
"""The DMA's building blocks in Amaranth's simulator: :class:`hdl.dma.Realigner` and
:class:`hdl.axi.AXIReadLatency`.

Realigner: rows of bytes at every input/output alignment go through with random
valid/ready stalls on both streams, back to back in one simulation. The expected
output words are computed here from the row's bytes alone (output word ``j`` holds
row bytes ``j*B + q - out_off``), never from the design. A no-stall run checks the
throughput (one word per cycle, at most two extra cycles per row), and error words
check that ``err`` is sticky within a row and cleared for the next one.

AXIReadLatency: AR requests with random stalls on both sides come out unchanged, in
order, and never earlier than ``latency`` cycles after their acceptance; every other
channel passes straight through.
"""

import random

import pytest

from amaranth_helpers import simulate
from hdl.axi import AXI4Signature, AXIReadLatency
from hdl.dma import Realigner


# ---------------------------------------------------------------------------------------
# Realigner: reference
# ---------------------------------------------------------------------------------------

def ceil_div(a, b):
    return -(-a // b)


def make_row(rng, B, in_off, out_off, length, err_words=()):
    """A row and its input words: the row's bytes at ``in_off`` in a stream of B-byte
    words (other bytes random); ``err_words`` are the indices of input words with err."""
    row = [rng.randrange(256) for _ in range(length)]
    n_in = ceil_div(in_off + length, B)
    stream_bytes = [rng.randrange(256) for _ in range(n_in * B)]
    stream_bytes[in_off:in_off + length] = row
    words = []
    for w in range(n_in):
        v = 0
        for q in range(B):
            v |= stream_bytes[w * B + q] << (8 * q)
        words.append((v, int(w in err_words)))
    return {"in_off": in_off, "out_off": out_off, "length": length, "row": row,
            "words": words}


def expected_outputs(B, r):
    """The output words of row ``r`` as ``(bytes_by_lane or None, strb, err, last)``.

    Output word ``j``, lane ``q`` carries row byte ``j*B + q - out_off``. Its ``err`` is
    set if any input word whose bytes fall in the word's window (stream positions
    ``[j*B + in_off - out_off, (j+1)*B + in_off - out_off)``), or any earlier one, had err.
    """
    in_off, out_off, length, row = r["in_off"], r["out_off"], r["length"], r["row"]
    n_in = len(r["words"])
    n_out = ceil_div(out_off + length, B)
    errs = [e for _, e in r["words"]]
    out = []
    for j in range(n_out):
        lanes = [None] * B
        strb = 0
        for q in range(B):
            pos = j * B + q - out_off
            if 0 <= pos < length:
                lanes[q] = row[pos]
                strb |= 1 << q
        hi_pos = (j + 1) * B + in_off - out_off - 1          # last stream byte of the window
        hi_word = min(hi_pos // B, n_in - 1)
        err = int(any(errs[:hi_word + 1]))
        out.append((lanes, strb, err, int(j == n_out - 1)))
    return out


def check_word(B, tag, j, got, exp):
    data, strb, err, last = got
    lanes, e_strb, e_err, e_last = exp
    assert strb == e_strb, f"{tag}: word {j}: strb {strb:#x}, expected {e_strb:#x}"
    for q in range(B):
        if lanes[q] is not None:
            b = (data >> (8 * q)) & 0xFF
            assert b == lanes[q], (f"{tag}: word {j} lane {q}: byte {b:#04x}, expected "
                                   f"{lanes[q]:#04x} (data {data:#x})")
    assert last == e_last, f"{tag}: word {j}: last {last}, expected {e_last}"
    assert err == e_err, f"{tag}: word {j}: err {err}, expected {e_err}"


async def run_rows(ctx, dut, B, rows, rng, tag, *, p_row=1.0, p_in=1.0, p_out=1.0,
                   max_cycles=50000):
    """Drive ``rows`` through the realigner (random stalls with the given valid/ready
    probabilities), check every output word, and return the handshake log:
    ``(row_accept_cycles, out_cycles_per_row, in_count_at_row_end)``."""
    words = [w for r in rows for w in r["words"]]
    exp = [expected_outputs(B, r) for r in rows]
    n_in_cum = []
    acc = 0
    for r in rows:
        acc += len(r["words"])
        n_in_cum.append(acc)
    row_i = in_i = 0
    out_row, out_j = 0, 0
    row_valid = in_valid = False
    row_accept = []
    out_cycles = [[] for _ in rows]
    o = dut.o.payload
    sigs = (dut.i_row.ready, dut.i.ready, dut.o.valid, o.data, o.strb, o.err, o.last)
    for cycle in range(max_cycles):
        if out_row == len(rows):
            break
        if not row_valid and row_i < len(rows) and rng.random() < p_row:
            r = rows[row_i]
            ctx.set(dut.i_row.payload, {"in_off": r["in_off"], "out_off": r["out_off"],
                                        "length": r["length"]})
            row_valid = True
        ctx.set(dut.i_row.valid, row_valid)
        if not in_valid and in_i < len(words) and rng.random() < p_in:
            ctx.set(dut.i.payload, {"data": words[in_i][0], "err": words[in_i][1]})
            in_valid = True
        ctx.set(dut.i.valid, in_valid)
        o_ready = rng.random() < p_out
        ctx.set(dut.o.ready, o_ready)
        _, _, row_ready, in_ready, o_valid, data, strb, err, last = \
            await ctx.tick().sample(*sigs)
        if row_valid and row_ready:
            row_accept.append(cycle)
            row_i += 1
            row_valid = False
        if in_valid and in_ready:
            in_i += 1
            in_valid = False
        if o_valid and o_ready:
            r = rows[out_row]
            rtag = (f"{tag} row #{out_row} (in_off {r['in_off']} out_off {r['out_off']} "
                    f"length {r['length']})")
            assert out_row < len(row_accept), f"{rtag}: output before the row was accepted"
            check_word(B, rtag, out_j, (data, strb, err, last), exp[out_row][out_j])
            out_cycles[out_row].append(cycle)
            out_j += 1
            if out_j == len(exp[out_row]):
                assert in_i == n_in_cum[out_row], (
                    f"{rtag}: {in_i} input words taken by the row's last output word, "
                    f"expected {n_in_cum[out_row]}")
                out_row += 1
                out_j = 0
    else:
        raise AssertionError(f"{tag}: watchdog after {max_cycles} cycles: rows accepted "
                             f"{row_i}, input words {in_i}, rows out {out_row}")
    # nothing more comes out, nothing more is taken
    ctx.set(dut.i_row.valid, 0)
    ctx.set(dut.i.valid, 0)
    ctx.set(dut.o.ready, 1)
    for t in range(6):
        _, _, o_valid, in_ready = await ctx.tick().sample(dut.o.valid, dut.i.ready)
        assert not o_valid, f"{tag}: spurious output word {t} cycles after the last row"
    assert row_i == len(rows) and in_i == len(words), tag
    return row_accept, out_cycles


def exhaustive_rows(rng, B):
    return [make_row(rng, B, a, b, n)
            for a in range(B) for b in range(B) for n in range(1, 3 * B + 2)]


def sampled_rows(rng, B, count):
    rows = []
    for _ in range(count):
        n = rng.choice([rng.randint(1, 3 * B + 1), rng.randint(1, 6 * B)])
        rows.append(make_row(rng, B, rng.randrange(B), rng.randrange(B), n))
    return rows


def rows_for(B, seed):
    rng = random.Random(seed)
    rows = exhaustive_rows(rng, B) if B == 4 else sampled_rows(rng, B, 150)
    rng.shuffle(rows)
    return rows


# ---------------------------------------------------------------------------------------
# Realigner: tests
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("B,seed,p_row,p_in,p_out", [
    (4, 1, 0.6, 0.6, 0.6),
    (4, 2, 0.9, 0.4, 0.9),
    (4, 3, 0.9, 0.9, 0.4),
    (8, 4, 0.6, 0.6, 0.6),
    (8, 5, 1.0, 0.5, 0.8),
])
def test_realigner_random_stalls(B, seed, p_row, p_in, p_out):
    """Every (in_off, out_off, length) for B=4 (lengths 1..3B+1), 150 random rows for
    B=8, back to back in one simulation with random stalls on i_row, i and o."""
    rows = rows_for(B, seed)
    rng = random.Random(seed * 1000 + 7)
    dut = Realigner(B)
    tag = f"B {B} seed {seed} p {p_row}/{p_in}/{p_out}"

    async def tb(ctx):
        await run_rows(ctx, dut, B, rows, rng, tag, p_row=p_row, p_in=p_in, p_out=p_out)

    simulate(dut, tb)


@pytest.mark.parametrize("B,seed", [(4, 11), (8, 12)])
def test_realigner_throughput(B, seed):
    """No stalls: a row of n output words is done (last word out) at most n + 2 cycles
    after its i_row handshake, counting that cycle; within a row one word comes out per
    cycle; and the next row is taken at most one cycle after the previous one ends."""
    rows = rows_for(B, seed)
    rng = random.Random(seed)
    dut = Realigner(B)
    tag = f"B {B} seed {seed} no stalls"
    log = {}

    async def tb(ctx):
        log["accept"], log["out"] = await run_rows(ctx, dut, B, rows, rng, tag)

    simulate(dut, tb)
    accept, out = log["accept"], log["out"]
    for k, r in enumerate(rows):
        n = ceil_div(r["out_off"] + r["length"], B)
        rtag = (f"{tag} row #{k} (in_off {r['in_off']} out_off {r['out_off']} "
                f"length {r['length']})")
        cyc = out[k]
        assert len(cyc) == n, rtag
        assert cyc == list(range(cyc[0], cyc[0] + n)), f"{rtag}: bubbles in {cyc}"
        took = cyc[-1] - accept[k] + 1
        assert took <= n + 2, f"{rtag}: {took} cycles for {n} words"
        if k + 1 < len(rows):
            assert accept[k + 1] <= cyc[-1] + 1, (
                f"{rtag}: next row taken at {accept[k + 1]}, row ended at {cyc[-1]}")
    total = accept[-1] - accept[0] + len(out[-1]) + 2
    words = sum(len(c) for c in out)
    assert total <= words + 2 * len(rows), f"{tag}: {total} cycles for {words} words"


@pytest.mark.parametrize("B,seed", [(4, 21), (8, 22)])
def test_realigner_err_sticky(B, seed):
    """An input word with err sets err on the first output word that uses it and on
    every later word of the row; the next row (without errors) starts with err = 0."""
    rng = random.Random(seed)
    rows = []
    for _ in range(60):
        a, b = rng.randrange(B), rng.randrange(B)
        n = rng.randint(1, 4 * B)
        n_in = ceil_div(a + n, B)
        bad = {rng.randrange(n_in)}
        if rng.random() < 0.3:
            bad.add(rng.randrange(n_in))
        rows.append(make_row(rng, B, a, b, n, bad))
        rows.append(make_row(rng, B, rng.randrange(B), rng.randrange(B),
                             rng.randint(1, 3 * B)))
    # directed: error on the last input word only, and on the first only
    for a in range(B):
        for b in range(B):
            n = 2 * B + 1
            n_in = ceil_div(a + n, B)
            rows.append(make_row(rng, B, a, b, n, {n_in - 1}))
            rows.append(make_row(rng, B, a, b, n, {0}))
            rows.append(make_row(rng, B, a, b, n))
    # the reference itself: a clean row has no err; an error on input 0 marks every word
    assert not any(e for _, _, e, _ in expected_outputs(B, rows[-1]))
    assert all(e for _, _, e, _ in expected_outputs(B, rows[-2]))
    dut = Realigner(B)
    tag = f"B {B} seed {seed} err"
    stall = random.Random(seed + 1)

    async def tb(ctx):
        await run_rows(ctx, dut, B, rows, stall, tag + " stalls", p_row=0.7, p_in=0.7,
                       p_out=0.7)

    simulate(dut, tb)


def test_realigner_reference_spot_checks():
    """The reference against hand-worked cases (B=4)."""
    B = 4
    r = {"in_off": 3, "out_off": 1, "length": 5, "row": [10, 11, 12, 13, 14],
         "words": [(0, 0), (0, 1)]}
    # out word 0: lanes 1..3 = row[0..2]; word 1: lanes 0..1 = row[3..4]
    exp = expected_outputs(B, r)
    assert [e[0] for e in exp] == [[None, 10, 11, 12], [13, 14, None, None]]
    assert [e[1] for e in exp] == [0b1110, 0b0011]
    assert [e[3] for e in exp] == [0, 1]
    # input word 1 holds row[1..4]: output word 0 already uses it
    assert [e[2] for e in exp] == [1, 1]
    r = {"in_off": 0, "out_off": 2, "length": 7, "row": list(range(7)),
         "words": [(0, 0), (0, 1)]}
    exp = expected_outputs(B, r)
    assert len(exp) == 3 and [e[1] for e in exp] == [0b1100, 0b1111, 0b0001]
    assert [e[2] for e in exp] == [0, 1, 1]


# ---------------------------------------------------------------------------------------
# AXIReadLatency
# ---------------------------------------------------------------------------------------

SIG = AXI4Signature(addr_width=32, data_bytes=8, id_width=4)
AR_FIELDS = {"arid": 4, "araddr": 32, "arlen": 8, "arsize": 3, "arburst": 2, "arlock": 1,
             "arcache": 4, "arprot": 3}


@pytest.mark.parametrize("latency", [1, 5, 20])
@pytest.mark.parametrize("seed,p_valid,p_ready", [(1, 0.5, 0.5), (2, 1.0, 1.0),
                                                  (3, 0.9, 0.3), (4, 0.15, 1.0)])
def test_read_latency_ar(latency, seed, p_valid, p_ready):
    """AR requests come out unchanged, in order, each at least ``latency`` cycles after
    its acceptance; with the memory side always ready, at most one cycle later than
    that (the FIFO's own read latency)."""
    rng = random.Random(seed * 100 + latency)
    dut = AXIReadLatency(SIG, latency=latency, depth=8)
    tag = f"latency {latency} seed {seed} p {p_valid}/{p_ready}"
    reqs = [{n: rng.randrange(1 << w) for n, w in AR_FIELDS.items()} for _ in range(60)]
    i, o = dut.i_axi, dut.o_axi

    async def tb(ctx):
        sent = got = 0
        valid = False
        accepted = []
        samp = [i.arready, o.arvalid] + [getattr(o, n) for n in AR_FIELDS]
        for cycle in range(5000):
            if got == len(reqs):
                break
            if not valid and sent < len(reqs) and rng.random() < p_valid:
                for n, v in reqs[sent].items():
                    ctx.set(getattr(i, n), v)
                valid = True
            ctx.set(i.arvalid, valid)
            ready = rng.random() < p_ready
            ctx.set(o.arready, ready)
            vals = (await ctx.tick().sample(*samp))[2:]
            arready, arvalid, fields = vals[0], vals[1], vals[2:]
            if valid and arready:
                accepted.append(cycle)
                sent += 1
                valid = False
            if arvalid and ready:
                assert got < len(accepted), f"{tag}: request out before any was accepted"
                out = dict(zip(AR_FIELDS, fields))
                assert out == reqs[got], f"{tag}: request #{got}: got {out}, sent {reqs[got]}"
                held = cycle - accepted[got]
                assert held >= latency, (f"{tag}: request #{got} out {held} cycles after "
                                         f"acceptance (cycle {accepted[got]})")
                if p_ready == 1.0:
                    assert held <= latency + 1, f"{tag}: request #{got} held {held} cycles"
                got += 1
        else:
            raise AssertionError(f"{tag}: watchdog: sent {sent}, out {got}")
        ctx.set(i.arvalid, 0)
        ctx.set(o.arready, 1)
        for t in range(latency + 5):
            _, _, arvalid = await ctx.tick().sample(o.arvalid)
            assert not arvalid, f"{tag}: spurious request {t} cycles after the last one"

    simulate(dut, tb)


def test_read_latency_full_fifo_keeps_requests():
    """Memory side never ready: the shim takes at most ``depth`` requests, then holds
    arready low; released, it delivers them all in order."""
    dut = AXIReadLatency(SIG, latency=3, depth=8)
    i, o = dut.i_axi, dut.o_axi

    async def tb(ctx):
        ctx.set(o.arready, 0)
        ctx.set(i.arvalid, 1)
        taken = []
        for k in range(20):
            ctx.set(i.araddr, 0x1000 + len(taken))
            _, _, rdy = await ctx.tick().sample(i.arready)
            if rdy:
                taken.append(0x1000 + len(taken))
        assert 1 <= len(taken) <= 8, f"took {len(taken)} requests with depth 8"
        ctx.set(i.arvalid, 0)
        ctx.set(o.arready, 1)
        out = []
        for _ in range(30):
            _, _, v, a = await ctx.tick().sample(o.arvalid, o.araddr)
            if v:
                out.append(a)
        assert out == taken

    simulate(dut, tb)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_read_latency_passthrough(seed):
    """R, AW, W and B pass straight through, in both directions, with no clock edge."""
    rng = random.Random(seed)
    dut = AXIReadLatency(SIG, latency=5, depth=8)
    i, o = dut.i_axi, dut.o_axi
    from amaranth.lib.wiring import Out
    # manager -> memory (Out members of the signature) and memory -> manager (In)
    down = [n for n, m in SIG.members.items() if not n.startswith("ar") and m.flow == Out]
    up = [n for n, m in SIG.members.items() if not n.startswith("ar") and m.flow != Out]
    assert set(down) >= {"awaddr", "awvalid", "wdata", "wstrb", "wlast", "wvalid",
                         "rready", "bready"}
    assert set(up) >= {"rdata", "rresp", "rlast", "rvalid", "rid", "awready", "wready",
                       "bvalid", "bresp", "bid"}
    widths = {n: len(getattr(i, n)) for n in down + up}

    async def tb(ctx):
        for step in range(30):
            vals = {n: rng.randrange(1 << widths[n]) for n in down + up}
            for n in down:
                ctx.set(getattr(i, n), vals[n])
            for n in up:
                ctx.set(getattr(o, n), vals[n])
            # combinational: visible before any clock edge
            for n in down:
                assert ctx.get(getattr(o, n)) == vals[n], f"seed {seed} step {step}: {n}"
            for n in up:
                assert ctx.get(getattr(i, n)) == vals[n], f"seed {seed} step {step}: {n}"
            # and no AR request appears from them
            assert ctx.get(o.arvalid) == 0, f"seed {seed} step {step}: arvalid"
            if step % 3 == 0:
                await ctx.tick()

    simulate(dut, tb)


def test_read_latency_rejects_zero():
    with pytest.raises(ValueError, match="latency"):
        AXIReadLatency(SIG, latency=0)


@pytest.mark.parametrize("latency", [2, 3, 7, 20])
def test_read_latency_exact(latency):
    """One request at a time, the memory side always ready: each AR comes out exactly
    ``latency`` cycles after the cycle it was accepted in (the docstring's promise for
    ``latency`` >= 2, the FIFO's own latency), not a cycle later."""
    dut = AXIReadLatency(SIG, latency=latency, depth=8)
    i, o = dut.i_axi, dut.o_axi

    async def tb(ctx):
        ctx.set(o.arready, 1)
        for k in range(4):
            ctx.set(i.araddr, 0x1000 + 64 * k)
            ctx.set(i.arvalid, 1)
            cycle, accepted = 0, None
            for cycle in range(latency + 10):
                _, _, arready, arvalid, araddr = await ctx.tick().sample(
                    i.arready, o.arvalid, o.araddr)
                if accepted is None and arready:
                    accepted = cycle
                    ctx.set(i.arvalid, 0)
                if arvalid:
                    assert araddr == 0x1000 + 64 * k
                    break
            else:
                raise AssertionError(f"request {k} never came out")
            assert accepted is not None
            assert cycle - accepted == latency, (
                f"request {k}: out {cycle - accepted} cycles after acceptance, "
                f"latency {latency}")
            for _ in range(k):          # a different idle gap before the next one
                await ctx.tick()

    simulate(dut, tb)
