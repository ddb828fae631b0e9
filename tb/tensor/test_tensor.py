"""cocotb tests of the tensor subsystem (SBUF + PSUM + tensor engine) against
:mod:`sim.model.tensor`. Run through ``tests/test_rtl_tensor.py``."""

import json
import os

import cocotb
import numpy as np

from hdl.config import DTYPES
from sim.model.array import matmul_int8
from sim.model.tensor import Matmul
from tb.common import StreamSource
from tb.tensor.tb import TensorTB

WATCHDOG = dict(timeout_time=200, timeout_unit="ms")


@cocotb.test(**WATCHDOG)
async def test_random_sequences(dut):
    """Random command sequences (random p0, offsets, K, M, N, accumulate, dtype);
    after each sequence the whole PSUM must equal the model's, bit for bit."""
    tb = TensorTB(dut)
    await tb.reset()
    for seq in range(int(os.environ.get("NCORE_SEQUENCES", "3"))):
        tb.random_sbuf()
        await tb.load_sbuf(pause=0.2 if seq % 2 else 0.0)
        if seq == 0:
            got = await tb.read_sbuf(ready_pause=0.3)
            if not np.array_equal(got, tb.model.sbuf):
                bad = np.argwhere(got != tb.model.sbuf)
                tb.fail(f"SBUF read back differs in {len(bad)} bytes, first at {bad[0]}: "
                        f"got {got[tuple(bad[0])]}, wrote {tb.model.sbuf[tuple(bad[0])]}")
        cmds = [tb.random_cmd() for _ in range(int(os.environ.get("NCORE_SEQ_LEN", "12")))]
        await tb.run(cmds, pause=0.3 if seq % 2 else 0.0)
        assert await tb.error_code() == "NONE"
        await tb.check_psum(f"sequence {seq}: {cmds}")


@cocotb.test(**WATCHDOG)
async def test_large_k(dut):
    """K = 3 * rows as three accumulating matmuls into one PSUM region; INT8 also
    checked against an independent full-K product (order-free for integers)."""
    tb = TensorTB(dut)
    await tb.reset()
    cfg = tb.cfg
    R, M, N = cfg.rows, cfg.cols, min(cfg.psum_depth, 2 * cfg.cols + 1)
    for dtype in cfg.dtypes:
        tb.random_sbuf([dtype])
        await tb.load_sbuf()
        esize = 1 if dtype == "int8" else 2
        chunk = M + N                       # elements per K-chunk in each partition
        assert 3 * chunk * esize <= cfg.sbuf_bytes
        cmds = [Matmul(k=R, m=M, n=N, s_off=c * chunk, x_off=c * chunk + M, bank=1 % cfg.psum_banks,
                       psum_off=0, acc=c > 0, dtype=dtype) for c in range(3)]
        await tb.run(cmds)
        await tb.check_psum(f"{dtype} K={3 * R}")
        if dtype == "int8":
            S = np.concatenate([tb.model.tile(0, R, c.s_off, M, "int8") for c in cmds])
            X = np.concatenate([tb.model.tile(0, R, c.x_off, N, "int8") for c in cmds])
            want = matmul_int8(S, X).view(np.uint32)
            got = tb.model.psum[:M, cmds[0].bank, :N]
            assert np.array_equal(got, want), "model disagrees with a full-K INT8 product"


@cocotb.test(**WATCHDOG)
async def test_accumulate_hazards(dut):
    """Back-to-back accumulating matmuls with N = 1..4 into the same PSUM entries:
    the PSUM read-modify-write pipeline must not lose an update."""
    tb = TensorTB(dut)
    await tb.reset()
    cfg = tb.cfg
    tb.random_sbuf()
    await tb.load_sbuf()
    for dtype in cfg.dtypes:
        for n in (1, 2, 3, 4):
            if n > cfg.psum_depth:
                continue
            base = tb.random_cmd(dtype=dtype, n_max=n)
            cmds = [Matmul(k=base.k, m=base.m, n=n, p0=base.p0, s_off=base.s_off + 0,
                           x_off=min(base.x_off, (cfg.sbuf_bytes // (1 if dtype == "int8" else 2)) - n),
                           bank=base.bank, psum_off=min(base.psum_off, cfg.psum_depth - n),
                           acc=i > 0, dtype=dtype) for i in range(6)]
            await tb.run(cmds)
            await tb.check_psum(f"{dtype} accumulate N={n}")


@cocotb.test(**WATCHDOG)
async def test_read_at_done(dut):
    """Short accumulating matmuls back to back into the same PSUM entries, and a PSUM
    read issued the cycle after the last one's ``done``: ``done`` means PSUM has
    accepted the last result column (a reader waiting on it, as the vector engine does
    through a semaphore, must see every result). A ``done`` raised when the column only
    leaves the array, before PSUM's read-modify-write hazard lets it in, reads stale
    data here. Also the legal edge ``psum_off + n == psum_depth``."""
    from sim.isa import codec
    from hdl.formats import psum_data_layout
    tb = TensorTB(dut)
    await tb.reset()
    cfg, dut = tb.cfg, tb.dut
    tb.random_sbuf()
    await tb.load_sbuf()
    layout = psum_data_layout(cfg)
    for dtype in cfg.dtypes:
        for n, edge in ((1, False), (2, True), (3, False)):
            n = min(n, cfg.psum_depth)
            base = tb.random_cmd(dtype=dtype, n_max=n)
            off = cfg.psum_depth - n if edge else base.psum_off
            cmds = [Matmul(k=base.k, m=base.m, n=n, p0=base.p0, s_off=base.s_off,
                           x_off=base.x_off, bank=base.bank, psum_off=off, acc=i > 0,
                           dtype=dtype) for i in range(int(tb.rng.integers(2, 6)))]
            src = StreamSource(dut, "i_cmd", [c.encode() for c in cmds])
            dones, t = 0, 0
            while dones < len(cmds):
                if t > 2000 + 50 * len(cmds) * cfg.array_latency:
                    tb.fail(f"watchdog: {dones} of {len(cmds)} done pulses in {t} cycles")
                src.drive()
                await tb.read_only
                src.sample()
                dones += int(dut.status__done.value)
                await tb.tick()
                t += 1
                src.advance()
            src.stop()
            tb.model.run(cmds)
            reqs = [tb.prd.pack(bank=base.bank, entry=off + e) for e in range(n)]
            words = await tb.request("i_psum_rd", "o_psum_rd", reqs)
            for e, w in enumerate(words):
                got = codec.decode(layout, w)
                want = tb.model.psum[:, base.bank, off + e]
                if not np.array_equal(got, want):
                    tb.fail(f"{dtype} {len(cmds)} x {cmds[0]}: entry {off + e} read right "
                            f"after the last done is {[hex(int(x)) for x in got]}, "
                            f"expected {[hex(int(x)) for x in want]}")
            await tb.wait_idle(1000, "read at done")


@cocotb.test(**WATCHDOG)
async def test_illegal_commands(dut):
    """Every refusal reason is flagged with its code, the command is not executed, and
    PSUM and SBUF are left untouched; legal commands around them still run."""
    tb = TensorTB(dut)
    await tb.reset()
    cfg = tb.cfg
    tb.random_sbuf()
    await tb.load_sbuf()
    elems = cfg.sbuf_bytes
    absent = [d for d in DTYPES if d not in cfg.dtypes]
    illegal = [
        ("K_RANGE", Matmul(k=0, m=1, n=1)),
        ("K_RANGE", Matmul(k=cfg.rows, m=1, n=1, p0=1)),
        ("K_RANGE", Matmul(k=cfg.rows + 1, m=1, n=1)),
        ("M_RANGE", Matmul(k=1, m=0, n=1)),
        ("M_RANGE", Matmul(k=1, m=cfg.cols + 1, n=1)),
        ("N_RANGE", Matmul(k=1, m=1, n=0)),
        ("N_RANGE", Matmul(k=1, m=1, n=cfg.psum_depth + 1)),
        ("PSUM_RANGE", Matmul(k=1, m=1, n=1, bank=cfg.psum_banks)),
        ("PSUM_RANGE", Matmul(k=1, m=1, n=2 if cfg.psum_depth > 1 else 1,
                              psum_off=cfg.psum_depth - 1 if cfg.psum_depth > 1 else 1)),
        ("SBUF_RANGE", Matmul(k=1, m=1, n=1, s_off=elems)),
        ("SBUF_RANGE", Matmul(k=1, m=2 if cfg.cols > 1 else 1, n=1, s_off=elems - 1 if cfg.cols > 1 else elems)),
        ("SBUF_RANGE", Matmul(k=1, m=1, n=1, x_off=elems)),
        ("SBUF_RANGE", Matmul(k=1, m=1, n=1, x_off=(1 << 20) - 1)),
        # the last element of a strided moving tile one past the partition
        ("SBUF_RANGE", Matmul(k=1, m=1, n=3, x_off=elems - 4, x_skip=1)),
    ]
    wb = cfg.sbuf_word_bytes
    if wb < 8:                      # a step wider than a word (8 is the field's most)
        illegal.append(("STEP", Matmul(k=1, m=1, n=2, x_skip=wb)))
    if "bf16" in cfg.dtypes and wb // 2 < 8:
        illegal.append(("STEP", Matmul(k=1, m=1, n=2, x_skip=wb // 2, dtype="bf16")))
    if "bf16" in cfg.dtypes:
        illegal.append(("SBUF_RANGE", Matmul(k=1, m=1, n=1, x_off=elems // 2, dtype="bf16")))
    illegal += [("DTYPE", Matmul(k=1, m=1, n=1, dtype=d)) for d in absent]
    for want, cmd in illegal:
        assert tb.model.check(cmd) == want, f"test table wrong for {cmd}"
        legal = [tb.random_cmd(n_max=4) for _ in range(2)]
        await tb.run([legal[0], cmd, legal[1]])
        code = await tb.error_code()
        if code != want:
            tb.fail(f"{cmd}: error code {code}, expected {want}")
        await tb.clear_error()
        assert await tb.error_code() == "NONE", "status__error_clear did not clear the error"
    # the first refusal is the one reported
    await tb.run([illegal[0][1], illegal[-1][1]])
    assert await tb.error_code() == illegal[0][0]
    await tb.check_psum("after illegal commands")
    sbuf = await tb.read_sbuf(ready_pause=0.3)
    assert np.array_equal(sbuf, tb.model.sbuf), "SBUF changed"


async def stream_figures(tb, n, T, background_writes):
    """T full-size matmuls (new stationary tile each) of moving length n; returns
    (end-to-end cycles, steady-state cycles over which the moving columns entered)."""
    cfg, dut = tb.cfg, tb.dut
    R, C = cfg.rows, cfg.cols
    esize = 1 if cfg.dtypes[0] == "int8" else 2
    elems = cfg.sbuf_bytes // esize
    cmds = []
    for t in range(T):
        s_off = int(tb.rng.integers(0, elems // 2 - C))
        x_off = int(tb.rng.integers(0, elems // 2 - n + 1))
        cmds.append(Matmul(k=R, m=C, n=n, s_off=s_off, x_off=x_off,
                           bank=t % cfg.psum_banks, psum_off=0, acc=bool(t >= cfg.psum_banks),
                           dtype=cfg.dtypes[0]))
    dut.i_perf_clear.value = 1
    await tb.tick()
    dut.i_perf_clear.value = 0
    # Feed commands and watch o_active: the steady state runs from the first moving
    # column to the last.
    cmd = StreamSource(dut, "i_cmd", [c.encode() for c in cmds])
    wb = cfg.sbuf_word_bytes
    half = cfg.sbuf_words // 2
    first_cmd = first_x = last_x = None
    total = T * n
    bg = 0
    for t in range(200 + 8 * total):
        cmd.drive()
        if background_writes:
            # a DMA-like client writing the upper half of SBUF every cycle
            addr = half + bg % (cfg.sbuf_words - half)
            dut.i_sbuf_wr__payload.value = tb.wr.pack(
                addr=addr, pmask=(1 << cfg.rows) - 1, strb=(1 << wb) - 1,
                data=[0] * cfg.rows)
            dut.i_sbuf_wr__valid.value = 1
        await tb.read_only
        if cmd.sample():
            first_cmd = tb.cycle if first_cmd is None else first_cmd
        if background_writes and dut.i_sbuf_wr__ready.value:
            bg += 1
        active = dut.o_active.value.to_unsigned()
        if active and first_x is None:
            first_x = tb.cycle
        if active == total and last_x is None:
            last_x = tb.cycle
        idle = cmd.sent + cmd.fired == len(cmd.items) and dut.o_idle.value
        await tb.tick()
        cmd.advance()
        if idle:
            break
    else:
        tb.fail(f"watchdog: N={n} stream did not finish")
    cmd.stop()
    dut.i_sbuf_wr__valid.value = 0
    if background_writes:
        # the background writes zeroed words in the upper half: mirror them in the model
        written = sorted({half + j % (cfg.sbuf_words - half) for j in range(bg)})
        for a in written:
            tb.model.sbuf[:, a * wb:(a + 1) * wb] = 0
    end_to_end = tb.cycle - first_cmd
    steady = last_x - first_x + 1
    return cmds, end_to_end, steady, bg


@cocotb.test(**WATCHDOG)
async def test_throughput(dut):
    """A stream of full-size matmuls, the stationary tile changing every command, with
    a DMA-like client writing SBUF every cycle: the moving columns must enter at one
    per cycle in steady state for N >= max(16, 2*cols) (bandwidth argument in
    docs/memory.md). Results are checked against the model; figures go to
    ``$NCORE_BENCH_OUT`` when set (``make bench``)."""
    tb = TensorTB(dut)
    await tb.reset()
    cfg = tb.cfg
    T = int(os.environ.get("NCORE_BENCH_T", "8"))
    Ns = [int(v) for v in os.environ.get("NCORE_BENCH_N", "4,16,64").split(",")]
    figures = []
    R, C = cfg.rows, cfg.cols
    for n in Ns:
        n = min(n, cfg.psum_depth)
        tb.random_sbuf(cfg.dtypes[:1])
        await tb.load_sbuf()
        cmds, cycles, steady, bg = await stream_figures(tb, n, T, background_writes=True)
        tb.model.run(cmds)
        await tb.check_psum(f"throughput N={n}")
        util = T * n / steady
        if n >= max(16, 2 * C):
            assert steady == T * n, \
                f"N={n}: {T * n} moving columns took {steady} cycles (bubbles), seed {tb.seed}"
        ws = 2 * R + C + n - 2
        figures.append({
            "name": f"tensor-{R}x{C}-T{T}-N{n}",
            "rows": R, "cols": C, "T": T, "N": n, "dtype": cfg.dtypes[0],
            "cycles": cycles,
            "utilization": T * n / cycles,
            "steady_state_utilization": util,
            "scalesim_ws_cycles_per_tile": ws,
            "scalesim_ws_utilization": n / ws,
            "neuroncore_issue_utilization": n / max(n, 64),
            "sbuf_background_writes": bg,
        })
        cocotb.log.info("N=%d: %d cycles end to end, steady-state utilization %.1f%%, "
                        "SCALE-Sim WS %.1f%%, NeuronCore max(N,64) %.1f%%, %d SBUF writes",
                        n, cycles, 100 * util, 100 * n / ws, 100 * n / max(n, 64), bg)
    out = os.environ.get("NCORE_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(figures, f, indent=1)
