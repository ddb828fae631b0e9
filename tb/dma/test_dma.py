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
from hdl.tops.harness import DMA_READ_LATENCY
from tb.common import StreamSource
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


def _bursts_by_desc(log, descs, B, addr_kind, end_kind):
    """Per descriptor (disjoint DRAM rows): the cycle the engine issued its first burst
    (``addr_kind`` "ar"/"aw"; an AR reaches the DRAM ``DMA_READ_LATENCY`` cycles
    later) and the cycle of its last burst's end (``end_kind`` "rlast"/"b"; the bus
    answers one ID in order, so the j-th end belongs to the j-th burst)."""
    shift = DMA_READ_LATENCY if addr_kind == "ar" else 0
    starts = [(c - shift, a) for c, k, a in log if k == addr_kind]
    ends = [c for c, k, _ in log if k == end_kind]
    first, last = {}, {}
    for j, (c, a) in enumerate(starts):
        owner = [i for i, d in enumerate(descs)
                 for r in range(d.rows)
                 if (d.addr + r * d.row_stride) // B * B <= a < d.addr + r * d.row_stride
                 + d.row_bytes]
        assert len(owner) == 1, f"burst at {a:#x} belongs to {owner}"
        i = owner[0]
        first.setdefault(i, c)
        assert j < len(ends), f"burst {j} at {a:#x} never ended"
        last[i] = ends[j]
    return first, last


def _disjoint_descs(tb, n, store, rows, row_bytes, base=0x2000, gap=0x400):
    """``n`` descriptors with disjoint DRAM rows and disjoint on-chip tiles."""
    cfg = tb.cfg
    per = row_bytes + 8
    assert n * per <= cfg.sbuf_bytes, "the tiles must fit SBUF side by side"
    return [Dma(addr=base + i * gap + i, rows=rows, row_bytes=row_bytes,
                row_stride=row_bytes + 16, partition=0, offset=i * per + i % 3,
                store=store, tag=10 + i) for i in range(n)]


@cocotb.test(**WATCHDOG)
@cocotb.parametrize(store=[False, True])
async def test_descriptors_overlap(dut, store):
    """Queued descriptors overlap on the bus: descriptor ``k+1``'s first burst is
    issued before descriptor ``k``'s last burst has ended (its last R beat; its B
    response for a store), so the DRAM latency is not paid once per descriptor. The
    data are compared with the model; the cycles of four descriptors against one are
    logged."""
    tb = DmaTB(dut)
    await tb.reset()
    cfg = tb.cfg
    B = cfg.axi_data_bytes
    tb.random_dram()
    await tb.random_onchip()
    rows = min(4, cfg.rows)
    descs = _disjoint_descs(tb, 4, store, rows, 4 * B)
    log = tb.start_bus_log()
    done, cycles = await tb.run_and_model(descs)
    tb.stop_bus_log()
    assert done == [(d.tag, "NONE") for d in descs], done
    first, last = _bursts_by_desc(log, descs, B, "aw" if store else "ar",
                                  "b" if store else "rlast")
    for k in range(len(descs) - 1):
        if not first[k + 1] < last[k]:
            tb.fail(f"descriptor {k + 1}'s first burst (cycle {first[k + 1]}) waited for "
                    f"descriptor {k}'s last one to end (cycle {last[k]}): no overlap")
    _, one = await tb.run_and_model(_disjoint_descs(tb, 1, store, rows, 4 * B, base=0x8000))
    cocotb.log.info("%s: 4 descriptors in %d cycles, 1 in %d (%.2fx)",
                    "stores" if store else "loads", cycles, one, cycles / one)
    await tb.compare_all("overlapped descriptors", psum=False)


@cocotb.test(**WATCHDOG)
@cocotb.parametrize(kind=["slverr", "decerr"], store=[False, True])
async def test_error_with_next_in_flight(dut, kind, store):
    """An error response in the last beat of descriptor 0 while descriptors 1 and 2
    are already on the bus: descriptor 0 completes with the error, 1 and 2 with NONE,
    each with its own tag and in order; 1 and 2 move every byte exactly (compared
    with the model), 0 leaves old or new data inside its tile and nothing outside.
    Completions are refused for the first 150 cycles, then stalled at random, so a
    store's B responses of descriptor 1 are due while 0 waits to complete."""
    tb = DmaTB(dut)
    await tb.reset()
    cfg = tb.cfg
    B = cfg.axi_data_bytes
    tb.random_dram()
    await tb.random_onchip()
    rows = min(4, cfg.rows)
    descs = _disjoint_descs(tb, 3, store, rows, 4 * B + 3)
    d0 = descs[0]
    bad = d0.addr + (d0.rows - 1) * d0.row_stride + d0.row_bytes - 1   # last byte
    tb.err_regions = [(bad, bad + 1, kind)]
    log = tb.start_bus_log()
    done, _ = await tb.run_descs(descs, done_pause=0.5, done_hold=150)
    tb.stop_bus_log()
    tb.err_regions = []
    want = [(d0.tag, kind.upper())] + [(d.tag, "NONE") for d in descs[1:]]
    assert done == want, f"completions {done}, expected {want}"
    first, last = _bursts_by_desc(log, descs, B, "aw" if store else "ar",
                                  "b" if store else "rlast")
    if not first[1] < last[0]:
        tb.fail(f"descriptor 1 was not in flight when descriptor 0 met its error "
                f"(first burst at cycle {first[1]}, 0's last end at {last[0]})")
    # descriptor 0: old or new inside its tile, untouched outside
    old_dram, old_chip = tb.dram.copy(), onchip_bytes(tb.model, d0.mem).copy()
    apply(d0, tb.dram, tb.model)
    new_dram, new_chip = tb.dram.copy(), onchip_bytes(tb.model, d0.mem).copy()
    got_dram = np.frombuffer(tb.ram.read(0, DRAM_SIZE), dtype=np.uint8)
    got_chip = await tb.read_sbuf()
    t_dram, t_chip = target_mask(d0, DRAM_SIZE, got_chip.shape)
    for name, got, old, new, t in (("DRAM", got_dram, old_dram, new_dram, t_dram),
                                   ("SBUF", got_chip, old_chip, new_chip, t_chip)):
        garbage = t & (got != old) & (got != new)
        if garbage.any():
            tb.fail(f"{kind}: descriptor 0's {name} holds neither old nor new data at "
                    f"{np.argwhere(garbage)[0]}")
    # adopt what descriptor 0 did inside its tile, then 1 and 2 must be exact
    tb.dram[t_dram] = got_dram[t_dram]
    tb.model.sbuf[t_chip] = got_chip[t_chip]
    for d in descs[1:]:
        apply(d, tb.dram, tb.model)
    await tb.compare_all(f"{kind} in descriptor 0, 1 and 2 in flight", psum=False)


@cocotb.test(**WATCHDOG)
async def test_memory_order_within_engine(dut):
    """Queued together, a load after a store to the same DRAM bytes reads what the
    store wrote (its bursts wait for the store to complete), and a store after a
    load from the same SBUF bytes writes what the load brought; likewise a load
    from DRAM after a store from the same bytes' SBUF source. Compared with the model,
    which runs the descriptors one after the other."""
    tb = DmaTB(dut)
    await tb.reset()
    cfg = tb.cfg
    rows = min(4, cfg.rows)
    tb.random_dram()
    await tb.random_onchip()
    L = 61
    for trial in range(3):
        x = 0x3000 + 0x1000 * trial + trial
        # a long store (its W beats trail its AW bursts by up to dma_outstanding
        # bursts), then a load of the DRAM bytes its last burst writes
        big = 1024
        descs = [
            # SBUF tile A -> DRAM x, then DRAM x -> SBUF tile B (read after write)
            Dma(addr=x, rows=2, row_bytes=big, row_stride=big, partition=0,
                offset=1 + trial, store=True, tag=1),
            Dma(addr=x + 2 * big - L - 3, rows=1, row_bytes=L, row_stride=L,
                partition=2, offset=1100 + trial, store=False, tag=2),
            # DRAM y -> SBUF tile C, then tile C -> DRAM z (SBUF read after write)
            Dma(addr=x + 0x900, rows=rows, row_bytes=L, row_stride=L, partition=0,
                offset=1400 + trial, store=False, tag=3),
            Dma(addr=x + 0xA00, rows=rows, row_bytes=L, row_stride=L, partition=0,
                offset=1400 + trial, store=True, tag=4),
        ]
        done, _ = await tb.run_and_model(descs)
        assert done == [(d.tag, "NONE") for d in descs], done
        await tb.compare_all(f"store/load pairs, trial {trial}", psum=False)


@cocotb.test(**WATCHDOG)
@cocotb.parametrize(store=[False, True])
async def test_reset_with_descriptors_in_flight(dut, store):
    """Reset while the bursts of several descriptors are on the bus at once:
    afterwards the engine is idle, reports no completion, and runs new
    descriptors exactly."""
    tb = DmaTB(dut)
    await tb.reset()
    cfg = tb.cfg
    B = cfg.axi_data_bytes
    tb.random_dram()
    await tb.random_onchip()
    rows = min(4, cfg.rows)
    descs = _disjoint_descs(tb, 4, store, rows, 4 * B)
    for at in (2, 3):       # reset once the bursts of `at` descriptors have started
        log = tb.start_bus_log()
        src = StreamSource(dut, "i_desc", [d.encode() for d in descs])
        dut.o_done__ready.value = 1
        kind = "aw" if store else "ar"
        for t in range(3000):
            src.drive()
            await tb.read_only
            src.sample()
            starts = [a for _, k, a in log if k == kind]
            owners = {i for a in starts for i, d in enumerate(descs)
                      if d.addr // B * B <= a < d.addr + d.rows * d.row_stride}
            await tb.tick()
            src.advance()
            if len(owners) >= at:
                break
        else:
            tb.fail(f"the bursts of {at} descriptors never overlapped: {log[:40]}")
        src.stop()
        tb.stop_bus_log()
        await _reset_and_go_on(tb, f"after a reset with {at} descriptors in flight")


async def _reset_and_go_on(tb, what):
    """Reset the engine: afterwards it must be idle with no completion; adopt the
    partly moved tiles from the hardware, then four random descriptors must run
    exactly."""
    dut = tb.dut
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)
    await tb.read_only
    assert not dut.o_busy.value, f"{what}: engine busy after reset"
    assert not dut.o_done__valid.value, f"{what}: completion after reset"
    await tb.tick()
    tb.dram[...] = np.frombuffer(tb.ram.read(0, DRAM_SIZE), dtype=np.uint8)
    tb.model.sbuf[...] = await tb.read_sbuf()
    await tb.run_and_model([tb.random_desc(tag=i) for i in range(4)])
    await tb.compare_all(what, psum=False)


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
        await _reset_and_go_on(tb, f"after reset during a {'store' if store else 'load'}")


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
