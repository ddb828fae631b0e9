# amaranth: UnusedElaboratable=no
"""The DMA golden model (``sim/model/dma.py``) against independent Python.

* :meth:`Dma.encode` unpacks, through the offsets and widths of
  :class:`hdl.formats.DmaDesc`, to the dataclass's fields.
* :func:`check` gives the documented code for each rule, exactly at and just past
  every limit, in the documented order (TARGET, then RANGE, then WINDOW).
* :func:`apply` matches a byte-by-byte loop over plain Python lists, for loads and
  stores, SBUF and PSUM (the PSUM byte image is built here from the entries), with
  overlapping DRAM rows; it writes nothing outside :func:`target_mask`.
"""

import random

import numpy as np
import pytest

from hdl.config import CoreConfig
from hdl.formats import DmaDesc, DmaError
from sim.model.dma import DMA_ERRORS, Dma, apply, check, onchip_bytes, target_mask
from sim.model.tensor import TensorModel

# SBUF: 4 partitions of 256 bytes; PSUM: 2 partitions of 2*16 entries = 128 bytes
CFG = CoreConfig(rows=4, cols=2, sbuf_bytes=256, psum_banks=2, psum_depth=16)
SBUF_BYTES = 256
PSUM_BYTES = 128
BASE, LIMIT = 0x1000, 0x3000


# ---------------------------------------------------------------------------------------
# encode
# ---------------------------------------------------------------------------------------

FIELD_WIDTHS = {"store": 1, "mem": 1, "addr": 48, "row_stride": 32, "rows": 9,
                "row_bytes": 21, "partition": 9, "offset": 21, "tag": 8}


def unpack(word):
    layout = DmaDesc.as_shape()
    out = {}
    for name, field in layout:
        out[name] = (word >> field.offset) & ((1 << field.width) - 1)
    return out


def expected_fields(d):
    return {"store": int(d.store), "mem": 1 if d.mem == "psum" else 0, "addr": d.addr,
            "row_stride": d.row_stride, "rows": d.rows, "row_bytes": d.row_bytes,
            "partition": d.partition, "offset": d.offset, "tag": d.tag}


def test_desc_layout_fields():
    """The layout has exactly the documented fields and widths, without overlaps."""
    layout = DmaDesc.as_shape()
    widths = {name: field.width for name, field in layout}
    assert widths == FIELD_WIDTHS
    used = 0
    for name, field in layout:
        bits = ((1 << field.width) - 1) << field.offset
        assert not used & bits, f"field {name} overlaps another"
        used |= bits
    assert used == (1 << layout.size) - 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_encode_round_trip(seed):
    rng = random.Random(seed)
    cases = []
    for _ in range(300):
        v = {n: rng.randrange(1 << w) for n, w in FIELD_WIDTHS.items()}
        cases.append(Dma(addr=v["addr"], rows=v["rows"], row_bytes=v["row_bytes"],
                         row_stride=v["row_stride"], partition=v["partition"],
                         offset=v["offset"], store=bool(v["store"]),
                         mem="psum" if v["mem"] else "sbuf", tag=v["tag"]))
    # every field alone at all ones, the rest zero: catches swapped or shifted fields
    for name, w in FIELD_WIDTHS.items():
        v = {n: 0 for n in FIELD_WIDTHS}
        v[name] = (1 << w) - 1
        cases.append(Dma(addr=v["addr"], rows=v["rows"], row_bytes=v["row_bytes"],
                         row_stride=v["row_stride"], partition=v["partition"],
                         offset=v["offset"], store=bool(v["store"]),
                         mem="psum" if v["mem"] else "sbuf", tag=v["tag"]))
    for d in cases:
        word = d.encode()
        assert isinstance(word, int) and 0 <= word < 1 << sum(FIELD_WIDTHS.values())
        assert unpack(word) == expected_fields(d), f"seed {seed}: {d}: {word:#x}"


def test_encode_mem_and_store_mapping():
    w = Dma(addr=0, rows=1, row_bytes=1).encode()
    assert unpack(w)["store"] == 0 and unpack(w)["mem"] == 0
    w = Dma(addr=0, rows=1, row_bytes=1, store=True, mem="psum").encode()
    assert unpack(w)["store"] == 1 and unpack(w)["mem"] == 1


def test_error_names_match_enum():
    assert DMA_ERRORS == tuple(e.name for e in sorted(DmaError, key=lambda e: e.value))
    assert [DmaError[n].value for n in DMA_ERRORS] == list(range(len(DMA_ERRORS)))


# ---------------------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------------------

def S(**kw):
    """A legal SBUF load in the window unless overridden."""
    base = dict(addr=BASE, rows=1, row_bytes=8, row_stride=16)
    base.update(kw)
    return Dma(**base)


def P(**kw):
    """A legal PSUM store in the window unless overridden."""
    base = dict(addr=BASE, rows=1, row_bytes=8, row_stride=16, store=True, mem="psum")
    base.update(kw)
    return Dma(**base)


CHECK_TABLE = [
    # --- legal, at every limit
    ("sbuf load", S(), "NONE"),
    ("sbuf store", S(store=True), "NONE"),
    ("psum store", P(), "NONE"),
    ("sbuf all partitions", S(rows=4, partition=0), "NONE"),
    ("sbuf last partition", S(rows=1, partition=3), "NONE"),
    ("sbuf partition+rows == rows", S(rows=2, partition=2), "NONE"),
    ("psum partition+rows == cols", P(rows=2, partition=0), "NONE"),
    ("psum last partition", P(rows=1, partition=1), "NONE"),
    ("sbuf offset+row_bytes == sbuf_bytes", S(offset=SBUF_BYTES - 8), "NONE"),
    ("sbuf whole partition", S(offset=0, row_bytes=SBUF_BYTES), "NONE"),
    ("psum offset+row_bytes == 4*entries", P(offset=PSUM_BYTES - 8), "NONE"),
    ("psum whole partition", P(offset=0, row_bytes=PSUM_BYTES), "NONE"),
    ("addr == base", S(addr=BASE), "NONE"),
    ("end == limit, one row", S(addr=LIMIT - 8), "NONE"),
    ("end == limit, strided", S(addr=LIMIT - 3 * 100 - 8, rows=4, row_stride=100), "NONE"),
    ("end == limit, stride 0", S(addr=LIMIT - 8, rows=4, row_stride=0), "NONE"),
    ("end == limit, overlapping rows", S(addr=LIMIT - 3 * 3 - 8, rows=4, row_stride=3),
     "NONE"),
    ("psum store end == limit", P(addr=LIMIT - 16 - 8, rows=2), "NONE"),
    # --- TARGET
    ("psum load", P(store=False), "TARGET"),
    # --- RANGE
    ("rows 0", S(rows=0), "RANGE"),
    ("row_bytes 0", S(row_bytes=0), "RANGE"),
    ("psum rows 0", P(rows=0), "RANGE"),
    ("psum row_bytes 0", P(row_bytes=0), "RANGE"),
    ("sbuf partition+rows == rows+1", S(rows=2, partition=3), "RANGE"),
    ("sbuf rows > rows", S(rows=5), "RANGE"),
    ("sbuf partition past end", S(rows=1, partition=4), "RANGE"),
    ("psum partition+rows == cols+1", P(rows=2, partition=1), "RANGE"),
    ("psum rows 3 (fine for SBUF)", P(rows=3), "RANGE"),
    ("psum partition 2", P(rows=1, partition=2), "RANGE"),
    ("sbuf offset+row_bytes == sbuf_bytes+1", S(offset=SBUF_BYTES - 7), "RANGE"),
    ("sbuf row_bytes > sbuf_bytes", S(row_bytes=SBUF_BYTES + 1), "RANGE"),
    ("sbuf offset past end", S(offset=SBUF_BYTES, row_bytes=1), "RANGE"),
    ("psum offset+row_bytes == 4*entries+1", P(offset=PSUM_BYTES - 7), "RANGE"),
    ("psum row 129 bytes (fine for SBUF)", P(row_bytes=PSUM_BYTES + 1), "RANGE"),
    ("sbuf 129 bytes is fine", S(row_bytes=PSUM_BYTES + 1), "NONE"),
    ("sbuf store partition+rows", S(store=True, rows=3, partition=2), "RANGE"),
    # --- WINDOW
    ("addr == base-1", S(addr=BASE - 1), "WINDOW"),
    ("addr 0", S(addr=0), "WINDOW"),
    ("end == limit+1, one row", S(addr=LIMIT - 7), "WINDOW"),
    ("end == limit+1, strided", S(addr=LIMIT - 3 * 100 - 7, rows=4, row_stride=100),
     "WINDOW"),
    ("last row past limit, first rows inside", S(addr=LIMIT - 64, rows=4, row_stride=32),
     "WINDOW"),
    ("addr past limit", S(addr=LIMIT + 5), "WINDOW"),
    ("psum store past limit", P(addr=LIMIT - 16 - 7, rows=2), "WINDOW"),
    ("store below base", S(store=True, addr=BASE - 100, rows=2, row_stride=200), "WINDOW"),
    # --- order: several failures, the first rule wins
    ("psum load, rows 0", P(store=False, rows=0), "TARGET"),
    ("psum load, out of window", P(store=False, addr=0), "TARGET"),
    ("psum load, all bad", P(store=False, rows=9, row_bytes=0, offset=999, addr=0),
     "TARGET"),
    ("rows 0 and out of window", S(rows=0, addr=0), "RANGE"),
    ("row_bytes 0 and out of window", S(row_bytes=0, addr=LIMIT), "RANGE"),
    ("partitions and window", S(rows=4, partition=1, addr=LIMIT - 2), "RANGE"),
    ("offset and window", S(offset=SBUF_BYTES, addr=BASE - 1), "RANGE"),
    ("psum store, range and window", P(rows=3, addr=0), "RANGE"),
]


@pytest.mark.parametrize("name,d,code", CHECK_TABLE, ids=[c[0] for c in CHECK_TABLE])
def test_check_table(name, d, code):
    assert check(CFG, d, BASE, LIMIT) == code, f"{name}: {d}"


SMALL = CoreConfig(rows=4, cols=2, sbuf_bytes=256, psum_banks=2, psum_depth=16,
                   axi_addr_width=16)
TOP = 1 << 16


@pytest.mark.parametrize("d,code", [
    (S(addr=TOP - 8), "NONE"),                                 # end == 2**aw
    (S(addr=TOP - 7), "WINDOW"),                               # end == 2**aw + 1
    (S(addr=TOP - 3 * 64 - 8, rows=4, row_stride=64), "NONE"),
    (S(addr=TOP - 3 * 64 - 7, rows=4, row_stride=64), "WINDOW"),
    (P(addr=TOP - 8), "NONE"),
    (P(addr=TOP - 1), "WINDOW"),
    (S(addr=TOP), "WINDOW"),
])
def test_check_address_width(d, code):
    """Past the bus's address space is WINDOW even inside a larger window."""
    assert check(SMALL, d, 0, 1 << 20) == code, str(d)
    # the same descriptor in a window that ends exactly at 2**aw gives the same answer
    assert check(SMALL, d, 0, TOP) == code, str(d)


def test_check_empty_window():
    assert check(CFG, S(), BASE, BASE) == "WINDOW"
    assert check(CFG, S(addr=BASE), BASE, BASE + 8) == "NONE"
    assert check(CFG, S(addr=BASE), BASE, BASE + 7) == "WINDOW"


@pytest.mark.parametrize("seed", [5, 6])
def test_check_random_against_rules(seed):
    """Random descriptors (mostly near the limits) against the rules written out
    separately, in order."""
    rng = random.Random(seed)

    def near(lim):
        return max(0, lim + rng.randint(-3, 3))

    for _ in range(3000):
        store = rng.random() < 0.6
        mem = rng.choice(["sbuf", "psum"])
        parts = 2 if mem == "psum" else 4
        nb = PSUM_BYTES if mem == "psum" else SBUF_BYTES
        rows = rng.choice([0, 1, rng.randint(1, 5), near(parts)])
        partition = rng.choice([0, rng.randint(0, 5), near(parts - max(rows, 1))])
        row_bytes = rng.choice([0, 1, rng.randint(1, nb), near(nb)])
        offset = rng.choice([0, rng.randint(0, nb), near(nb - row_bytes)])
        stride = rng.choice([0, rng.randint(0, 40), row_bytes])
        span = max(rows - 1, 0) * stride + row_bytes
        addr = rng.choice([near(BASE), near(LIMIT - span), rng.randint(0, 2 * LIMIT)])
        d = Dma(addr=addr, rows=rows, row_bytes=row_bytes, row_stride=stride,
                partition=partition, offset=offset, store=store, mem=mem)
        if mem == "psum" and not store:
            exp = "TARGET"
        elif (rows < 1 or row_bytes < 1 or not partition + rows <= parts
              or not offset + row_bytes <= nb):
            exp = "RANGE"
        elif not (BASE <= addr and addr + span <= LIMIT and addr + span <= 1 << 32):
            exp = "WINDOW"
        else:
            exp = "NONE"
        assert check(CFG, d, BASE, LIMIT) == exp, f"seed {seed}: {d}"


# ---------------------------------------------------------------------------------------
# apply
# ---------------------------------------------------------------------------------------

DRAM = 1024


def psum_byte_image(model):
    """``[cols][4 * entries]`` bytes, built from the entries: entry ``bank * depth + e``
    of partition ``p`` little-endian at bytes ``4*(bank*depth + e)`` onward."""
    cfg = model.config
    out = []
    for p in range(cfg.cols):
        row = [0] * (4 * cfg.psum_entries)
        for bank in range(cfg.psum_banks):
            for e in range(cfg.psum_depth):
                v = int(model.psum[p, bank, e])
                idx = bank * cfg.psum_depth + e
                for k in range(4):
                    row[4 * idx + k] = (v >> (8 * k)) & 0xFF
        out.append(row)
    return out


def chip_lists(model, mem):
    if mem == "psum":
        return psum_byte_image(model)
    return [[int(b) for b in row] for row in model.sbuf]


def ref_apply(d, dram, chip):
    """Byte by byte on plain lists, rows in order (a later row overwrites an earlier
    one where DRAM rows overlap)."""
    for r in range(d.rows):
        for i in range(d.row_bytes):
            a = d.addr + r * d.row_stride + i
            p = d.partition + r
            if d.store:
                dram[a] = chip[p][d.offset + i]
            else:
                chip[p][d.offset + i] = dram[a]


def random_state(rng, seed):
    model = TensorModel(CFG)
    nrng = np.random.default_rng(seed)
    model.sbuf[...] = nrng.integers(0, 256, model.sbuf.shape, dtype=np.uint8)
    model.psum[...] = nrng.integers(0, 1 << 32, model.psum.shape, dtype=np.uint64)
    dram = nrng.integers(0, 256, DRAM, dtype=np.uint8)
    return model, dram


def random_legal(rng, store, mem):
    parts = CFG.cols if mem == "psum" else CFG.rows
    nb = PSUM_BYTES if mem == "psum" else SBUF_BYTES
    rows = rng.randint(1, parts)
    partition = rng.randint(0, parts - rows)
    row_bytes = rng.choice([rng.randint(1, 12), rng.randint(1, 70), nb])
    offset = rng.randint(0, nb - row_bytes)
    stride = rng.choice([0, rng.randint(0, max(row_bytes - 1, 0)), row_bytes,
                         row_bytes + rng.randint(1, 50)])
    if rows > 1:
        stride = min(stride, (DRAM - row_bytes) // (rows - 1))
    span = (rows - 1) * stride + row_bytes
    addr = rng.randint(0, DRAM - span)
    d = Dma(addr=addr, rows=rows, row_bytes=row_bytes, row_stride=stride,
            partition=partition, offset=offset, store=store, mem=mem,
            tag=rng.randrange(256))
    assert check(CFG, d, 0, DRAM) == "NONE", d
    return d


def ref_mask(d, chip_rows, chip_cols):
    dram = [False] * DRAM
    chip = [[False] * chip_cols for _ in range(chip_rows)]
    for r in range(d.rows):
        for i in range(d.row_bytes):
            if d.store:
                dram[d.addr + r * d.row_stride + i] = True
            else:
                chip[d.partition + r][d.offset + i] = True
    return dram, chip


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("store,mem", [(False, "sbuf"), (True, "sbuf"), (True, "psum")])
def test_apply_random(seed, store, mem):
    """Sequences of random legal descriptors against :func:`ref_apply`; SBUF, PSUM
    entries and DRAM all compared after each one, and nothing outside the target mask
    (:func:`target_mask`, itself compared with one built here) changes."""
    rng = random.Random(seed * 10 + int(store) * 3 + (mem == "psum"))
    model, dram = random_state(rng, seed)
    ref_dram = [int(b) for b in dram]
    ref_sbuf = chip_lists(model, "sbuf")
    ref_psum = chip_lists(model, "psum")
    for n in range(40):
        d = random_legal(rng, store, mem)
        tag = f"seed {seed} descriptor #{n} {d}"
        chip = onchip_bytes(model, mem)
        dram_before = dram.copy()
        chip_before = chip.copy()
        sbuf_before, psum_before = model.sbuf.copy(), model.psum.copy()
        mask_dram, mask_chip = target_mask(d, DRAM, chip.shape)
        e_dram, e_chip = ref_mask(d, *chip.shape)
        assert mask_dram.tolist() == e_dram and mask_chip.tolist() == e_chip, tag

        ref_apply(d, ref_dram, ref_psum if mem == "psum" else ref_sbuf)
        apply(d, dram, model)

        assert dram.tolist() == ref_dram, tag
        assert model.sbuf.tolist() == ref_sbuf, tag
        assert psum_byte_image(model) == ref_psum, tag
        chip = onchip_bytes(model, mem)
        assert not np.any((dram != dram_before) & ~mask_dram), f"{tag}: DRAM outside mask"
        assert not np.any((chip != chip_before) & ~mask_chip), f"{tag}: chip outside mask"
        if store:
            assert np.array_equal(model.sbuf, sbuf_before), f"{tag}: store changed SBUF"
            assert np.array_equal(model.psum, psum_before), f"{tag}: store changed PSUM"
        else:
            assert np.array_equal(dram, dram_before), f"{tag}: load changed DRAM"
            assert np.array_equal(model.psum, psum_before), f"{tag}: load changed PSUM"
            # the loaded tile reads back from DRAM row by row
            for r in range(d.rows):
                a = d.addr + r * d.row_stride
                got = model.sbuf[d.partition + r, d.offset:d.offset + d.row_bytes]
                assert np.array_equal(got, dram[a:a + d.row_bytes]), f"{tag}: row {r}"


@pytest.mark.parametrize("stride", [0, 1, 3, 7])
@pytest.mark.parametrize("mem", ["sbuf", "psum"])
def test_apply_overlapping_store_later_row_wins(stride, mem):
    """Stores with ``row_stride < row_bytes``: every DRAM byte holds the byte of the
    last row covering it (computed by a closed formula, not a loop over rows)."""
    rng = random.Random(stride)
    model, dram = random_state(rng, 100 + stride)
    rows = 2 if mem == "psum" else 4
    rb, addr, part, off = 8, 100, 0, 12
    d = Dma(addr=addr, rows=rows, row_bytes=rb, row_stride=stride, partition=part,
            offset=off, store=True, mem=mem)
    chip = chip_lists(model, mem)
    before = dram.copy()
    apply(d, dram, model)
    span = (rows - 1) * stride + rb
    for k in range(span):
        # rows r cover [r*stride, r*stride + rb): the last is min(rows-1, k // stride)
        r = rows - 1 if stride == 0 else min(rows - 1, k // stride)
        assert r * stride <= k < r * stride + rb
        exp = chip[part + r][off + k - r * stride]
        assert dram[addr + k] == exp, f"stride {stride} {mem}: byte {k} from row {r}"
    assert np.array_equal(dram[:addr], before[:addr])
    assert np.array_equal(dram[addr + span:], before[addr + span:])


def test_apply_overlapping_load_each_row_its_own():
    """Loads with overlapping DRAM rows: each partition gets its own window."""
    model = TensorModel(CFG)
    dram = np.arange(DRAM, dtype=np.uint32).astype(np.uint8)
    d = Dma(addr=10, rows=4, row_bytes=6, row_stride=2, partition=0, offset=3)
    apply(d, dram, model)
    for r in range(4):
        assert model.sbuf[r, 3:9].tolist() == [10 + 2 * r + i for i in range(6)]
        assert model.sbuf[r, :3].tolist() == [0, 0, 0]
        assert model.sbuf[r, 9:].tolist() == [0] * (SBUF_BYTES - 9)


def test_psum_byte_view():
    """``onchip_bytes(model, "psum")``: entry ``e`` of bank ``b``, partition ``p`` is
    little-endian at bytes ``4*(b*depth + e)`` onward of row ``p``; the view writes
    through to the entries."""
    model = TensorModel(CFG)
    model.psum[1, 1, 3] = 0x11223344
    model.psum[0, 0, 0] = 0xA0B0C0D0
    view = onchip_bytes(model, "psum")
    assert view.shape == (CFG.cols, PSUM_BYTES) and view.dtype == np.uint8
    i = 4 * (1 * CFG.psum_depth + 3)
    assert view[1, i:i + 4].tolist() == [0x44, 0x33, 0x22, 0x11]
    assert view[0, 0:4].tolist() == [0xD0, 0xC0, 0xB0, 0xA0]
    assert int(view.sum()) == sum([0x44, 0x33, 0x22, 0x11, 0xD0, 0xC0, 0xB0, 0xA0])
    view[0, 4 * CFG.psum_depth + 1] = 0x5A           # bank 1, entry 0, byte 1
    assert int(model.psum[0, 1, 0]) == 0x5A00
    assert onchip_bytes(model, "sbuf") is model.sbuf
    # a PSUM store picks the little-endian bytes of entries out of the middle of words
    dram = np.zeros(64, dtype=np.uint8)
    apply(Dma(addr=5, rows=1, row_bytes=3, partition=1, offset=i + 1, store=True,
              mem="psum"), dram, model)
    assert dram[4:9].tolist() == [0, 0x33, 0x22, 0x11, 0]
