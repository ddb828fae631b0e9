"""The one codec of every format (``sim/isa/codec.py``) against Amaranth's own view of the
layouts (``Layout.const``, ``from_bits``), so the test fails if the codec drifts from
``hdl/formats.py`` / ``hdl/isa.py``.

* Every format (instruction, commands, DMA completion, stream payloads with nested
  arrays and enums) round-trips with seeded random fields, and the integer equals
  ``Layout.const(fields).as_value()``; random words decode and re-encode to themselves,
  including enum values no member has.
* Each refusal has its exact message.
* The golden-model dataclasses (``Matmul``, ``Act``, ``Dma``) decode what they encode.
"""

import random

import pytest
from amaranth.hdl import Shape, signed
from amaranth.lib import data, enum

from hdl.config import CoreConfig, DTYPES
from hdl.formats import (ACT_BYTES, DTYPE_BYTES, ActCmd, ActType, DmaDesc, Dtype, MatmulCmd,
                         column_layout, dma_done_layout, psum_data_layout, psum_read_layout,
                         psum_write_layout, result_layout, sbuf_data_layout, sbuf_read_layout,
                         sbuf_write_layout)
from hdl.isa import Instr, Opcode
from sim.isa import codec
from sim.model.vector import Act
from sim.model.dma import Dma
from sim.model.tensor import Matmul

CONFIGS = {"8x8": CoreConfig(), "4x4-fp": CoreConfig(rows=4, cols=4, dtypes=DTYPES)}


def formats(cfg):
    """Every format a software encoder or testbench packs, by name."""
    return {
        "Instr": Instr, "DmaDesc": DmaDesc, "MatmulCmd": MatmulCmd, "ActCmd": ActCmd,
        "dma_done": dma_done_layout(), "column": column_layout(cfg),
        "result": result_layout(cfg), "sbuf_write": sbuf_write_layout(cfg),
        "sbuf_read": sbuf_read_layout(cfg), "sbuf_data": sbuf_data_layout(cfg),
        "psum_write": psum_write_layout(cfg), "psum_read": psum_read_layout(cfg),
        "psum_data": psum_data_layout(cfg),
        # nesting the formats above do not have: a Struct class as a field, arrays of
        # structs with enums and signed elements
        "nested": data.StructLayout({
            "desc": DmaDesc, "small": signed(3), "t": Dtype,
            "pairs": data.ArrayLayout(data.StructLayout({"a": ActType, "v": signed(5)}), 3),
        }),
    }


FORMAT_IDS = [(c, f) for c in CONFIGS for f in formats(CONFIGS[c])]


def random_value(rng, shape, *, members_only):
    """Random fields for ``shape``: a dict/list for layouts, a member (or, unless
    ``members_only``, any raw value) for enums, an integer in range otherwise."""
    if isinstance(shape, type) and issubclass(shape, data.Struct):
        shape = shape.as_shape()
    if isinstance(shape, data.ArrayLayout):
        return [random_value(rng, shape.elem_shape, members_only=members_only)
                for _ in range(shape.length)]
    if isinstance(shape, data.StructLayout):
        return {name: random_value(rng, f.shape, members_only=members_only)
                for name, f in shape}
    sh = Shape.cast(shape)
    if isinstance(shape, enum.EnumType):
        if members_only or rng.random() < 0.5:
            return rng.choice(list(shape))
        return rng.randrange(1 << sh.width)
    lo, hi = ((-(1 << (sh.width - 1)), (1 << (sh.width - 1)) - 1) if sh.signed
              else (0, (1 << sh.width) - 1))
    return rng.choice([lo, hi, rng.randint(lo, hi)])


def layout_of(fmt):
    return fmt if isinstance(fmt, data.Layout) else fmt.as_shape()


def hardware_view(value):
    """An Amaranth constant view read back field by field (as :func:`codec.decode`)."""
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [hardware_view(value[i]) for i in range(layout.length)]
        return {name: hardware_view(value[name]) for name, _ in layout}
    return value


@pytest.mark.parametrize("cfg_name,fmt_name", FORMAT_IDS,
                         ids=[f"{c}-{f}" for c, f in FORMAT_IDS])
def test_round_trip_matches_amaranth(cfg_name, fmt_name):
    fmt = formats(CONFIGS[cfg_name])[fmt_name]
    layout = layout_of(fmt)
    for seed in range(40):
        rng = random.Random(seed)
        fields = random_value(rng, fmt, members_only=True)
        word = codec.encode(fmt, fields)
        msg = f"seed {seed}: {fields}"
        assert word == layout.const(fields).as_value().value, msg
        assert codec.decode(fmt, word) == fields, msg
        assert hardware_view(layout.from_bits(word)) == fields, msg


@pytest.mark.parametrize("cfg_name,fmt_name", FORMAT_IDS,
                         ids=[f"{c}-{f}" for c, f in FORMAT_IDS])
def test_every_word_round_trips(cfg_name, fmt_name):
    """Any word, including enum fields holding values no member has, decodes to fields
    that encode back to the same word; raw-valued enum fields encode as Amaranth's
    layout places them."""
    fmt = formats(CONFIGS[cfg_name])[fmt_name]
    size = layout_of(fmt).size
    for seed in range(40):
        rng = random.Random(1000 + seed)
        word = rng.choice([0, (1 << size) - 1, rng.getrandbits(size)])
        for enums in ("member", "name", "raw"):
            fields = codec.decode(fmt, word, enums=enums)
            assert codec.encode(fmt, fields) == word, f"seed {seed} enums={enums}"
        fields = random_value(rng, fmt, members_only=False)
        word = codec.encode(fmt, fields)
        assert codec.decode(fmt, word) == codec.decode(fmt, codec.encode(fmt, fields))
        assert word < 1 << size


def test_enum_decoding():
    w = codec.encode(MatmulCmd, dtype="BF16", k=3)
    assert codec.decode(MatmulCmd, w)["dtype"] is Dtype.BF16
    assert codec.decode(MatmulCmd, w, enums="name")["dtype"] == "BF16"
    assert codec.decode(MatmulCmd, w, enums="raw")["dtype"] == 1
    w = codec.encode(MatmulCmd, dtype=3)           # no member: the raw value
    assert codec.decode(MatmulCmd, w)["dtype"] == 3
    assert w == 3 << MatmulCmd.as_shape()["dtype"].offset
    w = codec.encode(Instr, opcode=Opcode.END, sig_en=True, sig_sem=31)
    assert w == Instr.const({"opcode": Opcode.END, "sig_en": 1, "sig_sem": 31}).as_value().value


def test_signed_fields():
    w = codec.encode(ActCmd, scale=-1, zp=-128)
    assert w == ActCmd.const({"scale": -1, "zp": -128}).as_value().value
    f = codec.decode(ActCmd, w)
    assert (f["scale"], f["zp"]) == (-1, -128)


def test_replace():
    w = codec.encode(Instr, opcode=Opcode.SEM, sig_en=1, sig_sem=2, body=0)
    r = codec.replace(Instr, w, opcode=0, body=5)
    assert codec.decode(Instr, r) == {**codec.decode(Instr, w), "opcode": 0, "body": 5}
    assert codec.replace(Instr, w) == w


def test_field_names():
    assert codec.field_names(MatmulCmd) == ("dtype", "acc", "p0", "k", "m", "n", "s_off",
                                            "x_off", "bank", "psum_off", "x_skip")


MATMUL_FIELDS = "dtype, acc, p0, k, m, n, s_off, x_off, bank, psum_off, x_skip"


@pytest.mark.parametrize("call,message", [
    (lambda: codec.encode(MatmulCmd, k=512),
     "MatmulCmd.k=512 does not fit its 9-bit field (0..511)"),
    (lambda: codec.encode(MatmulCmd, k=-1),
     "MatmulCmd.k=-1 does not fit its 9-bit field (0..511)"),
    (lambda: codec.encode(ActCmd, scale=-32769),
     "ActCmd.scale=-32769 does not fit its 16-bit field (-32768..32767)"),
    (lambda: codec.encode(ActCmd, zp=128),
     "ActCmd.zp=128 does not fit its 8-bit field (-128..127)"),
    (lambda: codec.encode(MatmulCmd, kk=1),
     f"MatmulCmd has no field 'kk' (fields: {MATMUL_FIELDS})"),
    (lambda: codec.encode(MatmulCmd, k=1.5),
     "MatmulCmd.k must be an integer, not 1.5"),
    (lambda: codec.encode(MatmulCmd, k="3"),
     "MatmulCmd.k must be an integer, not '3'"),
    (lambda: codec.encode(MatmulCmd, dtype="BF17"),
     "MatmulCmd.dtype='BF17' is not a Dtype member (INT8, BF16, FP16)"),
    (lambda: codec.encode(MatmulCmd, dtype=4),
     "MatmulCmd.dtype=4 does not fit its 2-bit field (0..3)"),
    (lambda: codec.encode(MatmulCmd, dtype=ActType.INT8),
     "MatmulCmd.dtype must be a Dtype, not <ActType.INT8: 0>"),
    (lambda: codec.encode(MatmulCmd, dtype=True),
     "MatmulCmd.dtype must be a Dtype member, its name or an integer, not True"),
    (lambda: codec.encode(Instr, body=1 << 224),
     f"Instr.body={1 << 224} does not fit its 224-bit field (0..{(1 << 224) - 1})"),
    (lambda: codec.encode(column_layout(CoreConfig(rows=2, cols=2)), data=[1, 2, 3]),
     "StructLayout.data needs 2 elements, not 3"),
    (lambda: codec.encode(column_layout(CoreConfig(rows=2, cols=2)), data=[1, 200]),
     "StructLayout.data[1]=200 does not fit its 8-bit field (-128..127)"),
    (lambda: codec.encode(column_layout(CoreConfig(rows=2, cols=2)), data=1 << 16),
     "StructLayout.data=65536 does not fit its 16-bit field (0..65535)"),
    (lambda: codec.encode(column_layout(CoreConfig(rows=2, cols=2)), data="ab"),
     "StructLayout.data must be a sequence of 2 elements, not 'ab'"),
    (lambda: codec.encode(sbuf_data_layout(CoreConfig(rows=2, cols=2)), {"a": 1}),
     "ArrayLayout must be a sequence of 2 elements, not {'a': 1}"),
    (lambda: codec.decode(MatmulCmd, 1 << 110),
     f"MatmulCmd: word {1 << 110:#x} does not fit in 110 bits"),
    (lambda: codec.decode(MatmulCmd, -1), "MatmulCmd: word -0x1 does not fit in 110 bits"),
    (lambda: codec.decode(MatmulCmd, "0"), "MatmulCmd: a word is an integer, not '0'"),
    (lambda: codec.decode(MatmulCmd, 0, enums="text"),
     "enums must be 'member', 'name' or 'raw', not 'text'"),
    (lambda: codec.replace(Instr, 0, opcod=1),
     "Instr has no field 'opcod' (fields: opcode, wait_en, wait_sem, wait_val, sig_en, "
     "sig_sem, body)"),
    (lambda: codec.replace(Instr, 0, wait_sem=32),
     "Instr.wait_sem=32 does not fit its 5-bit field (0..31)"),
    (lambda: Matmul(k=1, m=1, n=1, dtype="dtype0").encode(),
     "MatmulCmd.dtype='dtype0' is not a valid dtype (int8, bf16, fp16, or dtype<n> for a "
     "value no member has)"),
    (lambda: Act(parts=1, n=1, dst_type="TYPE8").encode(),
     "ActCmd.dst_type='TYPE8' is not a valid dst_type (INT8, BF16, FP16, INT32, FP32, or "
     "TYPE<n> for a value no member has)"),
    (lambda: Dma(addr=0, rows=1, row_bytes=1, mem="dram").encode(),
     "DmaDesc.mem must be 'sbuf' or 'psum', not 'dram'"),
    (lambda: Dma(addr=1 << 48, rows=1, row_bytes=1).encode(),
     f"DmaDesc.addr={1 << 48} does not fit its 48-bit field (0..{(1 << 48) - 1})"),
])
def test_error_messages(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


@pytest.mark.parametrize("seed", range(20))
def test_dataclasses_round_trip(seed):
    """``Matmul``, ``Act`` and ``Dma`` decode what they encode, raw enum spellings
    included, and encode exactly as the layout's ``const`` does for members."""
    rng = random.Random(seed)
    mm = random_value(rng, MatmulCmd, members_only=False)
    m = Matmul.decode(codec.encode(MatmulCmd, mm))
    assert Matmul.decode(m.encode()) == m
    assert codec.decode(MatmulCmd, m.encode()) == codec.decode(MatmulCmd,
                                                               codec.encode(MatmulCmd, mm))
    act = random_value(rng, ActCmd, members_only=True)
    a = Act.decode(codec.encode(ActCmd, act))
    assert a.encode() == ActCmd.const(act).as_value().value
    assert a.dst_type == act["dst_type"].name
    d = Dma.decode(codec.encode(DmaDesc, random_value(rng, DmaDesc, members_only=True)))
    assert Dma.decode(d.encode()) == d


def test_byte_sizes():
    """One definition each, derived from the enums; values checked by hand here."""
    assert DTYPE_BYTES == {"int8": 1, "bf16": 2, "fp16": 2}
    assert ACT_BYTES == {"INT8": 1, "BF16": 2, "FP16": 2, "INT32": 4, "FP32": 4}
    import sim.model.vector
    import sim.model.tensor
    assert not hasattr(sim.model.vector, "ACT_BYTES") or sim.model.vector.ACT_BYTES is ACT_BYTES
    assert not hasattr(sim.model.tensor, "DTYPE_BYTES") or sim.model.tensor.DTYPE_BYTES is DTYPE_BYTES
