# amaranth: UnusedElaboratable=no
"""The tensor engine's command checks in Amaranth's simulator, against the golden
model's ``TensorModel.check``: every limit at its legal edge (``psum_off + n ==
psum_depth``, the last SBUF byte, ``p0 + k == rows``, ``m == cols``, ``n ==
psum_depth``, the last bank) next to the first illegal value, for both operand widths.

A legal command is accepted without an error (it then waits for SBUF, which nobody
answers here); an illegal one raises ``status.error`` with the model's code. The Verilator
tensor testbench runs the same edges with data (``test_read_at_done``); this test
fails within seconds when a bound is off by one."""

import dataclasses
import random

import pytest
from amaranth.sim import Simulator

from amaranth_helpers import simulate
from hdl.config import CoreConfig
from hdl.formats import TensorError
from hdl.tensor_engine import TensorEngine
from sim.model.tensor import Matmul, TensorModel

CFG = CoreConfig(rows=2, cols=2, dtypes=("int8", "bf16"), sbuf_bytes=64, psum_banks=2,
                 psum_depth=4)


def edge_cases(cfg):
    """Legal commands at each limit and their first illegal neighbour."""
    out = []
    for dtype, es in (("int8", 1), ("bf16", 2)):
        elems = cfg.sbuf_bytes // es
        base = Matmul(k=1, m=1, n=1, dtype=dtype)
        for field, legal, illegal in (
                (dict(psum_off=cfg.psum_depth - 2, n=2), True, None),
                (dict(psum_off=cfg.psum_depth - 1, n=2), False, None),
                (dict(n=cfg.psum_depth), True, None),
                (dict(n=cfg.psum_depth + 1), False, None),
                (dict(bank=cfg.psum_banks - 1), True, None),
                (dict(bank=cfg.psum_banks), False, None),
                (dict(p0=cfg.rows - 1, k=1), True, None),
                (dict(p0=cfg.rows - 1, k=2), False, None),
                (dict(m=cfg.cols), True, None),
                (dict(m=cfg.cols + 1), False, None),
                (dict(s_off=elems - 2, m=2), True, None),          # last SBUF element
                (dict(s_off=elems - 1, m=2), False, None),
                (dict(x_off=elems - 3, n=3), True, None),
                (dict(x_off=elems - 2, n=3), False, None),
                # strided moving tiles: the last element at the edge, and one past it
                (dict(x_off=elems - 5, n=3, x_skip=1), True, None),
                (dict(x_off=elems - 4, n=3, x_skip=1), False, None),
                # the widest step: one SBUF word (then every word read is an element)
                (dict(n=2, x_skip=cfg.sbuf_word_bytes // es - 1), True, None),
                (dict(k=0), False, None), (dict(m=0), False, None), (dict(n=0), False, None)):
            out.append(dataclasses.replace(base, **field))
    # one element past a word: STEP (only 2-byte types reach it with 8-byte words: the
    # 3-bit field's widest INT8 step is one word)
    out.append(Matmul(k=1, m=1, n=2, x_skip=cfg.sbuf_word_bytes // 2, dtype="bf16"))
    out.append(Matmul(k=1, m=1, n=1, dtype="fp16"))                  # absent type
    return out


@pytest.mark.parametrize("cmd", edge_cases(CFG), ids=str)
def test_check_edges(cmd):
    want = TensorModel(CFG).check(cmd)
    dut = TensorEngine(CFG)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.i_cmd.payload.as_value(), cmd.encode())
        ctx.set(dut.i_cmd.valid, 1)
        for _ in range(6):
            _, _, ready = await ctx.tick().sample(dut.i_cmd.ready)
            if ready:
                break
        else:
            raise AssertionError(f"{cmd}: never accepted")
        ctx.set(dut.i_cmd.valid, 0)
        for _ in range(3):
            await ctx.tick()
        seen["error"] = ctx.get(dut.status.error)
        seen["code"] = TensorError(ctx.get(dut.status.error_code)).name

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert (seen["code"], bool(seen["error"])) == (want, want != "NONE"), \
        f"{cmd}: hardware {seen}, model {want}"


@pytest.mark.parametrize("seed", [1, 2])
def test_done_once_when_psum_accepts_last_column(seed):
    """Random commands (legal and refused, the model's ``check`` tells which) with
    random SBUF answers and PSUM's write port held off for random stretches:
    ``status.done`` pulses exactly once per legal command and never otherwise, each
    pulse in the very cycle PSUM accepts that command's last result column (its
    ``n``-th write, to ``psum_off + n - 1`` of its bank), and in command order."""
    rng = random.Random(seed)
    cfg = CFG
    model = TensorModel(cfg)
    dut = TensorEngine(cfg)
    cmds = []
    while len(cmds) < 30:
        dtype = rng.choice(["int8", "bf16"])
        elems = cfg.sbuf_bytes // (1 if dtype == "int8" else 2)
        c = Matmul(k=rng.randint(1, cfg.rows), m=rng.randint(1, cfg.cols),
                   n=rng.randint(1, cfg.psum_depth), p0=rng.randint(0, cfg.rows - 1),
                   s_off=rng.randrange(elems), x_off=rng.randrange(elems),
                   bank=rng.randrange(cfg.psum_banks),
                   psum_off=rng.randrange(cfg.psum_depth), acc=rng.random() < 0.5,
                   dtype=dtype)
        legal = model.check(c) == "NONE"
        if legal or rng.random() < 0.2:
            cmds.append((c, legal))
    # the PSUM writes each legal command must make, in order
    expected = [[(c.bank, c.psum_off + j) for j in range(c.n)] for c, ok in cmds if ok]
    assert len(expected) >= 15
    word_bits = 8 * cfg.sbuf_word_bytes
    log = {"writes": [], "dones": []}

    async def tb(ctx):
        queues = {"s": [], "x": []}
        clients = {"s": dut.s_rd, "x": dut.x_rd}
        sent = 0
        stall = 0
        for cycle in range(3000):
            # commands
            if sent < len(cmds):
                ctx.set(dut.i_cmd.payload.as_value(), cmds[sent][0].encode())
            ctx.set(dut.i_cmd.valid, sent < len(cmds))
            # SBUF read clients: accept requests at random, answer in order with
            # random data after random delays
            for key, cl in clients.items():
                ctx.set(cl.req.ready, rng.random() < 0.7)
                q = queues[key]
                give = bool(q) and q[0][0] <= cycle and rng.random() < 0.8
                ctx.set(cl.resp.valid, give)
                if give:
                    ctx.set(cl.resp.payload.as_value(), q[0][1])
            # PSUM write port: held off for random stretches
            if stall > 0:
                stall -= 1
                ready = False
            else:
                ready = rng.random() < 0.6
                if rng.random() < 0.1:
                    stall = rng.randint(1, 12)
            ctx.set(dut.psum_wr.ready, ready)
            sigs = [dut.i_cmd.ready, dut.psum_wr.valid, dut.psum_wr.payload.bank,
                    dut.psum_wr.payload.entry, dut.status.done]
            for cl in clients.values():
                sigs += [cl.req.valid, cl.req.ready, cl.resp.valid, cl.resp.ready]
            vals = (await ctx.tick().sample(*sigs))[2:]
            cmd_ready, wvalid, bank, entry, done = vals[:5]
            if sent < len(cmds) and cmd_ready:
                sent += 1
            if wvalid and ready:
                log["writes"].append((cycle, bank, entry))
            if done:
                log["dones"].append(cycle)
            for k, key in enumerate(clients):
                rqv, rqr, rsv, rsr = vals[5 + 4 * k:9 + 4 * k]
                if rsv and rsr:
                    queues[key].pop(0)
                if rqv and rqr:
                    queues[key].append((cycle + rng.randint(1, 4),
                                        rng.getrandbits(word_bits * cfg.rows)))
            if sent == len(cmds) and len(log["writes"]) == sum(map(len, expected)) \
                    and not ctx.get(dut.o_busy):
                break
        else:
            raise AssertionError(f"watchdog: {sent} commands sent, "
                                 f"{len(log['writes'])} PSUM writes, {len(log['dones'])} done")
        for _ in range(10):
            _, _, done = await ctx.tick().sample(dut.status.done)
            assert not done, "done after the last command finished"

    simulate(dut, tb)
    writes = log["writes"]
    flat = [w for ws in expected for w in ws]
    assert [(b, e) for _, b, e in writes] == flat, "PSUM writes differ from the commands'"
    # the cycle of each legal command's last write, from the writes alone
    last_cycles, pos = [], 0
    for ws in expected:
        pos += len(ws)
        last_cycles.append(writes[pos - 1][0])
    assert log["dones"] == last_cycles, (
        f"done pulses in cycles {log['dones']}, PSUM accepted the last columns in "
        f"cycles {last_cycles}")
