"""Golden model of a chip: the peer aperture, cross-core signals, the chip ISS and the
chip race checker (``hdl/chipmap.py``, ``sim/model/iss.py run_chip``,
``sim/isa/races.py find_chip_races``). Expected values are NumPy copies of the bytes
moved, computed here from the test's own data."""

import numpy as np
import pytest

from hdl.chipmap import ChipRegisterMap, PeerAperture, chip_registers, core_page
from hdl.config import NAMED_CONFIGS, CoreConfig
from sim.isa.asm import Program
from sim.isa.chipgen import chain_programs
from sim.isa.races import find_chip_races
from sim.model.dma import Dma, check
from sim.model.iss import run_chip

CFG = CoreConfig()
AP = PeerAperture(CFG)


def test_aperture_layout():
    assert AP.base == 1 << (CFG.axi_addr_width - 1)
    assert AP.stride >= CFG.sbuf_bytes and AP.stride & (AP.stride - 1) == 0
    for core, part, off in ((0, 0, 0), (7, CFG.rows - 1, CFG.sbuf_bytes - 1), (3, 2, 77)):
        assert AP.decode(AP.addr(core, part, off)) == (core, part, off, False)
    assert AP.decode(AP.addr(1) | 1 << (AP.core_shift + 3))[3]       # above the core field
    with pytest.raises(ValueError, match="offset"):
        AP.addr(0, 0, CFG.sbuf_bytes)
    with pytest.raises(ValueError, match="too small for a chip"):
        PeerAperture(CoreConfig(axi_addr_width=16))
    PeerAperture(NAMED_CONFIGS["min"])                                      # 12 bits suffice


def test_chip_registers():
    regs = ChipRegisterMap(CFG, 4)
    assert regs["CORES"].reset == 4
    assert regs["ID"].reset == 0x4E434850
    assert [r.offset for r in chip_registers(CFG, 4)] == sorted(
        r.offset for r in chip_registers(CFG, 4))
    assert core_page(0) == 0x1000 and core_page(7) == 0x8000
    with pytest.raises(ValueError, match="cores"):
        chip_registers(CFG, 9)


def _peer(core, rows, row_bytes, *, partition=0, offset=0, dst_part=0, dst_off=0, **kw):
    return Dma(addr=AP.addr(core, dst_part, dst_off), rows=rows, row_bytes=row_bytes,
               row_stride=AP.stride, partition=partition, offset=offset, store=True, **kw)


@pytest.mark.parametrize("desc, cores, code", [
    (_peer(1, 2, 8), 2, "NONE"),
    (_peer(1, 2, 8), 0, "NONE"),                         # standalone: the top half is DRAM
    (_peer(2, 2, 8), 2, "PEER"),                         # no such core
    (_peer(1, 2, 8, dst_part=CFG.rows - 1), 2, "PEER"),  # leaves the target's partitions
    (_peer(1, 1, 8, dst_off=CFG.sbuf_bytes - 4), 2, "PEER"),
    (Dma(addr=AP.addr(1), rows=2, row_bytes=8, row_stride=16, store=True), 2, "PEER"),
    (Dma(addr=AP.addr(1), rows=1, row_bytes=8, store=False), 2, "PEER"),   # loads: no
    (Dma(addr=AP.addr(1) | 1 << (AP.core_shift + 3), rows=1, row_bytes=8, store=True), 2,
     "PEER"),
    (Dma(addr=AP.base - 8, rows=1, row_bytes=16, store=True), 2, "WINDOW"),  # DRAM into it
    (_peer(1, 2, 8, partition=CFG.rows - 1), 2, "RANGE"),    # the source side first
])
def test_peer_checks(desc, cores, code):
    assert check(CFG, desc, 0, 1 << CFG.axi_addr_width, cores) == code


def _image(cfg, progs, data, src):
    dram = np.zeros(1 << 16, dtype=np.uint8)
    addrs = []
    a = 0
    for p in progs:
        code = np.frombuffer(p.encode(), dtype=np.uint8)
        dram[a:a + len(code)] = code
        addrs.append(a)
        a += (len(code) + 1023) // 1024 * 1024
    dram[src:src + len(data)] = data
    return dram, addrs


@pytest.mark.parametrize("cores,seed", [(2, 0), (2, 1), (3, 2), (4, 3), (8, 4)])
def test_chain(cores, seed):
    """Tiles stream through every core's SBUF (sim.isa.chipgen.chain_programs) and come
    out unchanged, whatever order the ISS moves the cores' agents in."""
    rng = np.random.default_rng(seed)
    tiles, rows, row_bytes = 5, int(rng.integers(1, CFG.rows + 1)), 8 * int(rng.integers(1, 5))
    src, dst = 0x8000, 0xC000
    progs = chain_programs(CFG, cores, tiles, rows, row_bytes, src=src, dst=dst)
    data = rng.integers(0, 256, tiles * rows * row_bytes, dtype=np.uint8)
    dram, addrs = _image(CFG, progs, data, src)
    for order in ("engines", "decoder", seed):
        res = run_chip(CFG, dram, addrs, _order=order)
        assert all(c.done for c in res.cores), (order, [c.error for c in res.cores])
        np.testing.assert_array_equal(res.dram[dst:dst + len(data)], data,
                                      err_msg=f"order {order}, seed {seed}")
    assert find_chip_races(CFG, progs, addrs) == []


def test_chain_with_checkpoints():
    """Core 0 also stores each tile to DRAM and reloads it (mixed DRAM and peer stores in
    one DMA-out queue): race-free, and the reloads equal the data."""
    rng = np.random.default_rng(9)
    tiles, rows, row_bytes = 4, 3, 16
    src, dst, ck = 0x8000, 0xC000, 0xA000
    progs = chain_programs(CFG, 2, tiles, rows, row_bytes, src=src, dst=dst, checkpoint=ck)
    data = rng.integers(0, 256, tiles * rows * row_bytes, dtype=np.uint8)
    dram, addrs = _image(CFG, progs, data, src)
    assert find_chip_races(CFG, progs, addrs) == []
    res = run_chip(CFG, dram, addrs, _order=9)
    n = data.size
    for base in (dst, ck, ck + n):
        np.testing.assert_array_equal(res.dram[base:base + n], data)


def test_missing_wait_is_a_cross_core_race():
    progs = chain_programs(CFG, 2, 4, 2, 8, src=0x4000, dst=0x8000, skip_free_wait=True)
    races = find_chip_races(CFG, progs, [0, 1024])
    assert races, "a producer that does not wait for the free buffer must race"
    r = races[0]
    assert r.memory == "SBUF@1" and {r.first_core, r.second_core} == {0, 1}
    assert "core 0" in str(r) and "core 1" in str(r)


def test_cross_core_deadlock_and_faults():
    p0, p1 = Program(CFG), Program(CFG)
    p0.sem(wait=("never", 1))
    p0.end()
    p1.signal_peer(0, 1)           # signals a semaphore core 0 does not wait on
    p1.end()
    dram, addrs = _image(CFG, (p0, p1), np.zeros(0, np.uint8), 0x4000)
    res = run_chip(CFG, dram, addrs)
    assert res.cores[0].error == "WATCHDOG" and res.cores[0].fault_addr == addrs[0]
    assert res.cores[1].done and res.cores[0].sems[1] == 1

    p2 = Program(CFG)
    p2.signal_peer(2, 0)           # a two-core chip has no core 2
    p2.end()
    dram, addrs = _image(CFG, (p2, Program(CFG)), np.zeros(0, np.uint8), 0x4000)
    addrs[1] = None                # core 1 not started
    res = run_chip(CFG, dram, addrs)
    assert res.cores[0].error == "PEER" and res.cores[0].fault_addr == addrs[0]
    assert not res.cores[1].done and res.cores[1].error == "NONE"


def test_refused_peer_store_writes_nothing():
    p0 = Program(CFG)
    p0.dma(addr=0x4000, rows=1, row_bytes=8)
    p0.dma(_peer(3, 1, 8), wait=None)     # core 3 of a two-core chip
    p0.end()
    p1 = Program(CFG)
    p1.end()
    dram, addrs = _image(CFG, (p0, p1), np.arange(8, dtype=np.uint8) + 1, 0x4000)
    res = run_chip(CFG, dram, addrs)
    assert res.cores[0].error == "DMA" and res.cores[0].detail == "PEER"
    assert not res.cores[1].sbuf.any()
    np.testing.assert_array_equal(res.dram, dram)


def test_docs_register_table():
    """docs/chip.md shows the register map hdl/chipmap.py defines."""
    import pathlib
    from hdl.chipmap import chip_markdown
    doc = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "chip.md").read_text()
    assert chip_markdown(CFG, 4) in doc, "docs/chip.md's register table is stale"
