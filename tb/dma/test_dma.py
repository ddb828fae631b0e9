"""cocotb tests of the DMA engine (hdl/dma.py) with cocotbext-axi's AxiRam as DRAM.
Run through ``tests/test_rtl_dma.py``."""

import dataclasses
import json
import os
from types import SimpleNamespace

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from sim.model.dma import Dma, apply, check, onchip_bytes, target_mask
from tb.dma.tb import DRAM_SIZE, DmaTB

WATCHDOG = dict(timeout_time=400, timeout_unit="ms")


def sweep(tb, store, mem="sbuf"):
    """Directed descriptors: lengths 1..4 bus words + 1 and large ones, every DRAM and
    on-chip alignment, starts just below 4 KiB boundaries, strides smaller and larger
    than a row, rows 1..partitions."""
    cfg = tb.cfg
    B = cfg.axi_data_bytes
    parts = cfg.cols if mem == "psum" else cfg.rows
    nbytes = 4 * cfg.psum_entries if mem == "psum" else cfg.sbuf_bytes
    lengths = list(range(1, 4 * B + 2)) + [97, 300, min(1000, nbytes), nbytes]
    descs = []
    for i, L in enumerate(lengths):
        a_off = i % B                       # DRAM alignment
        c_off = (i * 3 + L) % B             # on-chip alignment, decorrelated
        rows = 1 + i % parts
        stride = [L, L + 5 + i % 11, max(1, L // 2), 0][i % 4]
        span = (rows - 1) * stride + L
        # start a little below a 4 KiB boundary so bursts must split there
        page = 1 + i % ((DRAM_SIZE - span - 8192) // 4096)
        addr = page * 4096 - B * (1 + i % 3) + a_off
        if store and stride < L and rows > 1:
            stride = L                      # overlapping stores are covered elsewhere
        offset = min(c_off + B * (i % 5), nbytes - L)
        partition = (i * 5) % (parts - rows + 1)
        descs.append(Dma(addr=addr, rows=rows, row_bytes=L, row_stride=stride,
                         partition=partition, offset=offset, store=store, mem=mem,
                         tag=i & 0xFF))
    # every pair of (DRAM, on-chip) alignments, with short and medium rows
    for a_off in range(B):
        for c_off in range(B):
            i = len(descs)
            L = [3, 2 * B + 1, 5 * B - 3, 61][(a_off + c_off) % 4]
            rows = 1 + (a_off * B + c_off) % parts
            descs.append(Dma(addr=0x8000 + 40 * i + a_off - (0x8000 + 40 * i) % B, rows=rows,
                             row_bytes=L, row_stride=L + B, partition=0,
                             offset=B * (i % 7) + c_off, store=store, mem=mem, tag=i & 0xFF))
    return descs


async def run_sweep(tb, descs, what, batch=8):
    for i in range(0, len(descs), batch):
        await tb.run_and_model(descs[i:i + batch], done_pause=0.2)
        await tb.compare_all(f"{what}, descriptors {i}..{i + batch - 1}",
                             psum=False)


@cocotb.test(**WATCHDOG)
@cocotb.parametrize(backpressure=[0.0, 0.5])
async def test_load_sweep(dut, backpressure):
    """DRAM -> SBUF over the directed sweep; DRAM and SBUF compared byte for byte."""
    tb = DmaTB(dut)
    await tb.reset()
    tb.set_backpressure(backpressure)
    tb.random_dram()
    await tb.random_onchip()
    await run_sweep(tb, sweep(tb, store=False), f"load, backpressure {backpressure}")


@cocotb.test(**WATCHDOG)
@cocotb.parametrize(backpressure=[0.0, 0.5])
async def test_store_sweep(dut, backpressure):
    """SBUF -> DRAM and PSUM -> DRAM over the directed sweep."""
    tb = DmaTB(dut)
    await tb.reset()
    tb.set_backpressure(backpressure)
    tb.random_dram()
    await tb.random_onchip()
    await run_sweep(tb, sweep(tb, store=True), f"SBUF store, backpressure {backpressure}")
    await run_sweep(tb, sweep(tb, store=True, mem="psum"),
                    f"PSUM store, backpressure {backpressure}")


@cocotb.test(**WATCHDOG)
async def test_random_mixed(dut):
    """Random loads and stores (SBUF and PSUM, overlapping strides included) with random
    backpressure on every channel and random completion stalls."""
    tb = DmaTB(dut)
    await tb.reset()
    tb.set_window(0x100, DRAM_SIZE - 0x100)
    tb.random_dram()
    await tb.random_onchip()
    for batch in range(int(os.environ.get("NCORE_DMA_BATCHES", "4"))):
        tb.set_backpressure([0.0, 0.3, 0.7][batch % 3])
        descs = [tb.random_desc(mem="psum" if tb.rng.random() < 0.2 else "sbuf",
                                max_len=600, tag=int(tb.rng.integers(256)))
                 for _ in range(10)]
        descs = [d if d.mem == "sbuf" else dataclasses.replace(d, store=True) for d in descs]
        await tb.run_and_model(descs, done_pause=0.3)
        await tb.compare_all(f"random batch {batch}")


@cocotb.test(**WATCHDOG)
async def test_refused_descriptors(dut):
    """Out-of-range tiles, a PSUM load and DRAM outside the window complete with their
    code and move nothing; the next legal descriptor runs."""
    tb = DmaTB(dut)
    await tb.reset()
    cfg = tb.cfg
    base, limit = 0x1000, DRAM_SIZE - 0x1000
    tb.set_window(base, limit)
    tb.random_dram()
    await tb.random_onchip()
    R, S = cfg.rows, cfg.sbuf_bytes
    bad = [
        ("RANGE", Dma(addr=base, rows=0, row_bytes=8)),
        ("RANGE", Dma(addr=base, rows=1, row_bytes=0)),
        ("RANGE", Dma(addr=base, rows=R, row_bytes=8, partition=1)),
        ("RANGE", Dma(addr=base, rows=1, row_bytes=8, offset=S - 7)),
        ("RANGE", Dma(addr=base, rows=1, row_bytes=S + 1, store=True)),
        ("RANGE", Dma(addr=base, rows=cfg.cols + 1, row_bytes=4, store=True, mem="psum")),
        ("TARGET", Dma(addr=base, rows=1, row_bytes=8, mem="psum")),
        ("WINDOW", Dma(addr=base - 1, rows=1, row_bytes=8)),
        ("WINDOW", Dma(addr=limit - 8, rows=1, row_bytes=9, store=True)),
        ("WINDOW", Dma(addr=limit - 100, rows=2, row_bytes=8, row_stride=100)),
        ("WINDOW", Dma(addr=(1 << 40), rows=1, row_bytes=8, store=True)),
    ]
    for i, (want, d) in enumerate(bad):
        d = dataclasses.replace(d, tag=100 + i)
        assert check(cfg, d, base, limit) == want, f"table wrong: {d}"
        ok = tb.random_desc(tag=i)
        done, _ = await tb.run_and_model([d, ok])
        assert done[0] == (100 + i, want), f"{d}: completion {done[0]}"
    await tb.compare_all("after refused descriptors")


@cocotb.test(**WATCHDOG)
async def test_window_edges(dut):
    """Tiles touching the DRAM window's edges: one starting exactly at ``WIN_BASE`` and
    one ending exactly at ``WIN_LIMIT`` (the window is ``[base, limit)``) run, loads and
    stores, single and multi-row; the same tiles one byte further out are refused with
    WINDOW. Codes from the golden ``check``, data compared with the model."""
    tb = DmaTB(dut)
    await tb.reset()
    cfg = tb.cfg
    base, limit = 0x1000 + 3, DRAM_SIZE - 0x1000 - 5
    tb.set_window(base, limit)
    tb.random_dram()
    await tb.random_onchip()
    rows = min(3, cfg.rows)
    cases = []
    for store in (False, True):
        for r, L, stride in ((1, 8, 8), (1, 37, 37), (rows, 21, 100)):
            span = (r - 1) * stride + L
            cases += [
                ("NONE", Dma(addr=limit - span, rows=r, row_bytes=L, row_stride=stride,
                             offset=2, store=store)),
                ("WINDOW", Dma(addr=limit - span + 1, rows=r, row_bytes=L,
                               row_stride=stride, offset=2, store=store)),
                ("NONE", Dma(addr=base, rows=r, row_bytes=L, row_stride=stride, offset=5,
                             store=store)),
                ("WINDOW", Dma(addr=base - 1, rows=r, row_bytes=L, row_stride=stride,
                               offset=5, store=store)),
            ]
    for i, (want, d) in enumerate(cases):
        d = dataclasses.replace(d, tag=i)
        assert check(cfg, d, base, limit) == want, f"table wrong: {d}"
        done, _ = await tb.run_and_model([d])
        assert done == [(i, want)], f"{d}: completion {done}, expected {want}"
        await tb.compare_all(f"after {d}", psum=False)


@cocotb.test(**WATCHDOG)
async def test_load_error_stops_writes(dut):
    """A load meeting an error response: from the failing beat on, nothing of the
    descriptor is written (``DMAEngine``: "the rest of the descriptor is read but not
    written"), so every tile byte at or after the first byte the failing beat carries
    (in descriptor order: row by row) keeps its OLD value, in the failing row and in
    every later row; bytes before it hold old or new data; nothing outside the tile
    changes. The error lands in the first, a middle and the last row."""
    tb = DmaTB(dut)
    await tb.reset()
    cfg = tb.cfg
    B = cfg.axi_data_bytes
    rows = min(4, cfg.rows)
    tb.random_dram()
    await tb.random_onchip()
    for trial, (err_row, err_at) in enumerate(((0, 0), (1, 100), (0, 150),
                                               (rows - 1, 250))):
        d = Dma(addr=0x2000 + 0x800 * trial + trial, rows=rows, row_bytes=300,
                row_stride=512, partition=0, offset=5 + trial, store=False, tag=trial)
        bad = d.addr + err_row * d.row_stride + err_at
        tb.err_regions = [(bad, bad + 1, "slverr")]
        old_chip = tb.model.sbuf.copy()
        done, _ = await tb.run_descs([d])
        tb.err_regions = []
        assert done == [(trial, "SLVERR")], f"{d}: completion {done}"
        got = await tb.read_sbuf()
        # descriptor-order index of every tile byte, and of the first one in a bad beat
        first_bad = None
        order = np.full(got.shape, -1)
        for r in range(d.rows):
            a = d.addr + r * d.row_stride
            p = d.partition + r
            for j in range(d.row_bytes):
                k = r * d.row_bytes + j
                order[p, d.offset + j] = k
                word = (a + j) // B * B
                if first_bad is None and word <= bad < word + B:
                    first_bad = k
        assert first_bad is not None
        new_chip = old_chip.copy()
        apply(d, tb.dram, SimpleNamespace(sbuf=new_chip))
        tile = order >= 0
        after = order >= first_bad
        for what, wrong in (
                ("changed outside the tile", ~tile & (got != old_chip)),
                ("written at or after the failing beat", after & (got != old_chip)),
                ("neither old nor new before the failing beat",
                 tile & ~after & (got != old_chip) & (got != new_chip))):
            if wrong.any():
                p, b = np.argwhere(wrong)[0]
                tb.fail(f"{d}, error at {bad:#x} (row {err_row}): SBUF {what}: "
                        f"partition {p} byte {b} (descriptor byte {order[p, b]}, first "
                        f"failing byte {first_bad}): {got[p, b]:#x}, old "
                        f"{old_chip[p, b]:#x}, new {new_chip[p, b]:#x}")
        tb.model.sbuf[...] = got
    # a clean descriptor still works
    await tb.run_and_model([tb.random_desc(tag=99)])
    await tb.compare_all("after the failed loads", psum=False)


@cocotb.test(**WATCHDOG)
@cocotb.parametrize(kind=["slverr", "decerr"], store=[False, True])
async def test_bus_errors(dut, kind, store):
    """An error response inside a tile: the code is reported, no byte outside the tile
    changes, bytes inside hold old or new data, and the engine runs the next one."""
    tb = DmaTB(dut)
    await tb.reset()
    cfg = tb.cfg
    tb.random_dram()
    await tb.random_onchip()
    for trial in range(3):
        d = Dma(addr=0x2000 + 8 * trial + trial, rows=min(4, cfg.rows), row_bytes=300,
                row_stride=512, partition=0, offset=5 + trial, store=store, tag=trial)
        bad_lo = d.addr + d.row_stride + 100 + 37 * trial     # inside row 1
        tb.err_regions = [(bad_lo, bad_lo + 16, kind)]
        done, _ = await tb.run_descs([d])
        assert done == [(trial, kind.upper())], f"{d}: completion {done}"
        tb.err_regions = []
        # old-or-new inside the target, untouched outside
        old_dram, old_chip = tb.dram.copy(), onchip_bytes(tb.model, d.mem).copy()
        apply(d, tb.dram, tb.model)
        new_dram, new_chip = tb.dram.copy(), onchip_bytes(tb.model, d.mem).copy()
        got_dram = np.frombuffer(tb.ram.read(0, DRAM_SIZE), dtype=np.uint8)
        got_chip = await tb.read_sbuf()
        t_dram, t_chip = target_mask(d, DRAM_SIZE, got_chip.shape)
        for name, got, old, new, t in (("DRAM", got_dram, old_dram, new_dram, t_dram),
                                       ("SBUF", got_chip, old_chip, new_chip, t_chip)):
            outside = ~t & (got != old)
            if outside.any():
                tb.fail(f"{kind} {d}: {name} changed outside the tile at "
                        f"{np.argwhere(outside)[0]}")
            garbage = t & (got != old) & (got != new)
            if garbage.any():
                tb.fail(f"{kind} {d}: {name} holds neither old nor new data at "
                        f"{np.argwhere(garbage)[0]}")
        # adopt what the hardware did, then a clean descriptor must work
        tb.dram[...] = got_dram
        tb.model.sbuf[...] = got_chip
        ok = tb.random_desc(store=not store, tag=50 + trial)
        await tb.run_and_model([ok])
        await tb.compare_all(f"after {kind}", psum=False)


@cocotb.test(**WATCHDOG)
@cocotb.parametrize(first=["slverr", "decerr"], store=[False, True])
async def test_two_bus_errors(dut, first, store):
    """A descriptor that meets two different error responses (SLVERR in row 1 then
    DECERR in row 2, and the reverse): the completion reports the first one
    (``docs/dma.md``), for loads (RRESP) and stores (BRESP)."""
    tb = DmaTB(dut)
    await tb.reset()
    cfg = tb.cfg
    # three partitions (rows 0..2 of the descriptor): every configuration the DMA
    # testbench runs has them; a smaller one must fail here, not pass silently
    assert cfg.rows >= 3, f"test_two_bus_errors needs rows >= 3, not {cfg.rows}"
    tb.random_dram()
    await tb.random_onchip()
    second = "decerr" if first == "slverr" else "slverr"
    d = Dma(addr=0x3000, rows=3, row_bytes=300, row_stride=512, partition=0, offset=3,
            store=store, tag=7)
    lo1, lo2 = d.addr + d.row_stride + 40, d.addr + 2 * d.row_stride + 200
    tb.err_regions = [(lo1, lo1 + 8, first), (lo2, lo2 + 8, second)]
    done, _ = await tb.run_descs([d])
    assert done == [(7, first.upper())], f"{first} then {second}, {d}: completion {done}"
    tb.err_regions = []


@cocotb.test(**WATCHDOG)
async def test_reset_mid_transfer(dut):
    """Reset during long loads and stores: afterwards the engine is idle and works."""
    tb = DmaTB(dut)
    await tb.reset()
    cfg = tb.cfg
    tb.random_dram()
    await tb.random_onchip()
    for store in (False, True):
        long = Dma(addr=0x1000, rows=cfg.rows, row_bytes=cfg.sbuf_bytes,
                   row_stride=cfg.sbuf_bytes, store=store)
        dut.i_desc__payload.value = long.encode()
        dut.i_desc__valid.value = 1
        await tb.tick()
        dut.i_desc__valid.value = 0
        await ClockCycles(dut.clk, 150 + int(tb.rng.integers(100)))
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await ClockCycles(dut.clk, 5)
        await tb.read_only
        assert not dut.o_busy.value, "engine busy after reset"
        assert not dut.o_done__valid.value, "completion after reset"
        await tb.tick()
        # the interrupted tile is partly done: adopt the hardware state, then go on
        tb.dram[...] = np.frombuffer(tb.ram.read(0, DRAM_SIZE), dtype=np.uint8)
        tb.model.sbuf[...] = await tb.read_sbuf()
        descs = [tb.random_desc(tag=i) for i in range(4)]
        await tb.run_and_model(descs)
        await tb.compare_all(f"after reset during a {'store' if store else 'load'}",
                             psum=False)


@cocotb.test(**WATCHDOG)
async def test_bandwidth(dut):
    """Long DRAM -> SBUF and SBUF -> DRAM transfers: bytes per cycle against the bus
    width, with no backpressure (DRAM latency from the subsystem's shim, 20 cycles) and
    with 50% random pauses on every AXI channel. Figures to ``$NCORE_BENCH_OUT``."""
    tb = DmaTB(dut)
    await tb.reset()
    cfg = tb.cfg
    B = cfg.axi_data_bytes
    tb.random_dram()
    await tb.random_onchip()
    figures = []
    for bp in (0.0, 0.5):
        tb.set_backpressure(bp)
        for store in (False, True):
            d = Dma(addr=0x1000, rows=cfg.rows, row_bytes=cfg.sbuf_bytes,
                    row_stride=cfg.sbuf_bytes, store=store)
            _, cycles = await tb.run_and_model([d])
            total = d.rows * d.row_bytes
            eff = total / cycles / B
            figures.append({"name": f"dma-{'store' if store else 'load'}-bp{bp}",
                            "bytes": total, "cycles": cycles, "bytes_per_cycle": total / cycles,
                            "bus_bytes": B, "efficiency": eff, "backpressure": bp})
            cocotb.log.info("%s, backpressure %.1f: %d bytes in %d cycles = %.2f B/cycle "
                            "(%.1f%% of the bus)", "store" if store else "load", bp, total,
                            cycles, total / cycles, 100 * eff)
            if bp == 0.0:
                assert eff >= 0.9, f"{'store' if store else 'load'} reached only {eff:.1%}"
    await tb.compare_all("bandwidth transfers", psum=False)
    out = os.environ.get("NCORE_BENCH_OUT")
    if out:
        with open(out, "w") as f:
            json.dump(figures, f, indent=1)
