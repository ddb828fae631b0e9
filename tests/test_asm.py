"""The assembler and disassembler (``sim/isa/asm.py``) against the ISA (``hdl/isa.py``).

* Every opcode round-trips through encode/decode with random legal fields (the seed
  is in the failure message), and the word is also built here from hard-coded header
  positions and from :class:`hdl.isa.Instr`, so a field at the wrong place is caught.
* Every refusal gives its :class:`hdl.isa.CoreError` name, in the documented order
  (OPCODE, RESERVED, SEM_RANGE), exactly at and past each limit.
* :class:`Program` names semaphores in order of first use and refuses too many names,
  wait values past 16 bits and a 65536th signal.
* :func:`disassemble` lists addresses, mnemonics and illegal words without raising;
  :func:`decode_program` stops at the first END.
"""

import random

import pytest

from hdl.config import CoreConfig
from hdl.formats import ActCmd, DmaDesc, MatmulCmd
from hdl.isa import BODY_BITS, BODY_WIDTH, CoreError, Instr, Opcode
from sim.model.vector import Act
from sim.isa.asm import (IllegalInstruction, Instruction, Program, decode_program,
                     disassemble)
from sim.model.dma import Dma
from sim.model.tensor import Matmul

CFG = CoreConfig()
SMALL = CoreConfig(rows=4, cols=4, n_sems=5)
OPCODES = {"DMA": 1, "MATMUL": 2, "ACT": 3, "SEM": 4, "END": 5}


# ---------------------------------------------------------------------------------------
# random legal instructions
# ---------------------------------------------------------------------------------------

def _u(rng, bits):
    # favour the extremes of a field now and then
    return rng.choice([0, (1 << bits) - 1, rng.getrandbits(bits)])


def _s(rng, bits):
    return _u(rng, bits) - (1 << (bits - 1))


def random_cmd(rng, op):
    if op == "DMA":
        return Dma(addr=_u(rng, 48), rows=_u(rng, 9), row_bytes=_u(rng, 21),
                   row_stride=_u(rng, 32), partition=_u(rng, 9), offset=_u(rng, 21),
                   store=rng.random() < 0.5, mem=rng.choice(["sbuf", "psum"]),
                   tag=_u(rng, 8))
    if op == "MATMUL":
        return Matmul(k=_u(rng, 9), m=_u(rng, 9), n=_u(rng, 17), p0=_u(rng, 9),
                      s_off=_u(rng, 20), x_off=_u(rng, 20), bank=_u(rng, 4),
                      psum_off=_u(rng, 16), acc=rng.random() < 0.5,
                      dtype=rng.choice(["int8", "bf16", "fp16", "dtype3"]))
    if op == "ACT":
        return Act(parts=_u(rng, 9), n=_u(rng, 17),
                   dst_type=rng.choice(["INT8", "BF16", "FP16", "INT32", "FP32",
                                        "TYPE5", "TYPE6", "TYPE7"]),
                   src_psum=rng.random() < 0.5, src_fp=rng.random() < 0.5,
                   src_p0=_u(rng, 9), src_off=_u(rng, 20), dst_p0=_u(rng, 9),
                   dst_off=_u(rng, 21), bias=rng.random() < 0.5, bias_off=_u(rng, 21),
                   relu=rng.random() < 0.5, scale=_s(rng, 16), shift=_u(rng, 6),
                   zp=_s(rng, 8))
    return None


def random_instr(rng, config, op=None):
    op = op or rng.choice(list(OPCODES))
    wait = (rng.randrange(config.n_sems), _u(rng, 16)) if rng.random() < 0.6 else None
    signal = rng.randrange(config.n_sems) if op != "END" and rng.random() < 0.6 else None
    return Instruction(op, random_cmd(rng, op), wait=wait, signal=signal)


def expected_word(instr):
    """The word from hard-coded header positions: opcode 0..3, wait_en 4, wait_sem 5..9,
    wait_val 10..25, sig_en 26, sig_sem 27..31, body from bit 32."""
    w = OPCODES[instr.op]
    if instr.wait is not None:
        w |= 1 << 4 | instr.wait[0] << 5 | instr.wait[1] << 10
    if instr.signal is not None:
        w |= 1 << 26 | instr.signal << 27
    if instr.cmd is not None:
        w |= instr.cmd.encode() << 32
    return w


def unpack_layout(layout, bits):
    return {name: (bits >> f.offset) & ((1 << f.width) - 1) for name, f in layout.as_shape()}


@pytest.mark.parametrize("config", [CFG, SMALL, CoreConfig(rows=1, cols=1, n_sems=32)],
                         ids=["8x8", "4x4-5sems", "1x1-32sems"])
def test_round_trip_random(config):
    for seed in range(300):
        rng = random.Random(seed)
        for op in OPCODES:
            instr = random_instr(rng, config, op)
            msg = f"seed {seed}: {instr}"
            word = instr.encode()
            assert 0 <= word < 1 << 256, msg
            assert Instruction.decode(word, config) == instr, msg
            assert word == expected_word(instr), msg
            # the same word through hdl.isa.Instr, built here
            fields = {"opcode": Opcode[op], "body": (word >> 32)}
            if instr.wait:
                fields.update(wait_en=1, wait_sem=instr.wait[0], wait_val=instr.wait[1])
            if instr.signal is not None:
                fields.update(sig_en=1, sig_sem=instr.signal)
            assert Instr.const(fields).as_value().value == word, msg
            # little-endian bytes: opcode in the low nibble of byte 0
            raw = word.to_bytes(32, "little")
            assert raw[0] & 0xF == OPCODES[op], msg
            assert (raw[0] >> 4) & 1 == (instr.wait is not None), msg
            assert (raw[3] >> 2) & 1 == (instr.signal is not None), msg
            assert word >> (32 + BODY_WIDTH[Opcode[op]]) == 0, msg


def test_raw_enum_values_round_trip():
    """Enum fields with values no member has (refused by the engine, not the decoder)
    encode to exactly those bits and decode back."""
    m = Instruction("MATMUL", Matmul(k=1, m=1, n=1, dtype="dtype3"))
    w = m.encode()
    assert (w >> 32) & 3 == 3
    assert unpack_layout(MatmulCmd, w >> 32)["k"] == 1
    assert Instruction.decode(w, CFG) == m
    for raw in (5, 6, 7):
        a = Instruction("ACT", Act(parts=2, n=3, dst_type=f"TYPE{raw}"))
        w = a.encode()
        fields = unpack_layout(ActCmd, w >> 32)
        assert fields["dst_type"] == raw and fields["parts"] == 2 and fields["n"] == 3
        assert Instruction.decode(w, CFG) == a
    for bad in ("dtype4", "dtype0", "DTYPE3", 3):
        with pytest.raises(ValueError, match="dtype"):
            Instruction("MATMUL", Matmul(k=1, m=1, n=1, dtype=bad))
    with pytest.raises(ValueError, match="dst_type"):
        Instruction("ACT", Act(parts=1, n=1, dst_type="TYPE8"))


def test_body_is_the_engine_layout():
    d = Dma(addr=0x123456789A, rows=7, row_bytes=100, row_stride=300, partition=3,
            offset=17, store=True, mem="psum", tag=0xA5)
    w = Instruction("DMA", d, wait=(2, 9), signal=3).encode()
    f = unpack_layout(DmaDesc, w >> 32)
    assert f == {"store": 1, "mem": 1, "addr": 0x123456789A, "row_stride": 300, "rows": 7,
                 "row_bytes": 100, "partition": 3, "offset": 17, "tag": 0xA5}
    assert w & 0xFFFFFFFF == 1 | 1 << 4 | 2 << 5 | 9 << 10 | 1 << 26 | 3 << 27
    a = Act(parts=5, n=9, dst_type="INT8", src_fp=False, scale=-2, shift=7, zp=-128)
    f = unpack_layout(ActCmd, Instruction("ACT", a).encode() >> 32)
    assert f["scale"] == (1 << 16) - 2 and f["zp"] == 0x80 and f["shift"] == 7
    assert Instruction.decode(Instruction("ACT", a).encode(), CFG).cmd == a


def test_fields_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="k=512"):
        Instruction("MATMUL", Matmul(k=512, m=1, n=1))
    with pytest.raises(ValueError, match="scale"):
        Instruction("ACT", Act(parts=1, n=1, scale=1 << 15))
    with pytest.raises(ValueError, match="addr"):
        Instruction("DMA", Dma(addr=-1, rows=1, row_bytes=1))
    with pytest.raises(ValueError, match="mem"):
        Instruction("DMA", Dma(addr=0, rows=1, row_bytes=1, mem="dram"))
    with pytest.raises(ValueError, match="Matmul"):
        Instruction("MATMUL", Act(parts=1, n=1))
    with pytest.raises(ValueError, match="no command"):
        Instruction("SEM", Act(parts=1, n=1))
    with pytest.raises(ValueError, match="wait value"):
        Instruction("SEM", wait=(0, 1 << 16))
    with pytest.raises(ValueError):
        Instruction("SEM", signal=32)
    with pytest.raises(ValueError):
        Instruction("NOP")


def test_queue():
    assert Instruction("DMA", Dma(addr=0, rows=1, row_bytes=1)).queue == "dma_in"
    assert Instruction("DMA", Dma(addr=0, rows=1, row_bytes=1, store=True)).queue == "dma_out"
    assert Instruction("DMA", Dma(addr=0, rows=1, row_bytes=1, store=True,
                                  mem="psum")).queue == "dma_out"
    assert Instruction("MATMUL", Matmul(k=1, m=1, n=1)).queue == "tensor"
    assert Instruction("ACT", Act(parts=1, n=1)).queue == "vector"
    assert Instruction("SEM").queue == "seq"
    assert Instruction("END").queue == "seq"


# ---------------------------------------------------------------------------------------
# illegal words
# ---------------------------------------------------------------------------------------

def code_of(word, config=CFG):
    with pytest.raises(IllegalInstruction) as e:
        Instruction.decode(word, config)
    assert e.value.code in CoreError.__members__
    return e.value.code


def test_illegal_opcode():
    for op in [0] + list(range(6, 16)):
        assert code_of(op) == "OPCODE"
        # OPCODE comes before RESERVED and SEM_RANGE
        assert code_of(op | 1 << 255 | 31 << 27) == "OPCODE"
        assert code_of(op | 1 << 4 | 31 << 5) == "OPCODE"
    assert code_of(0) == "OPCODE"                  # zeroed memory stops the core


@pytest.mark.parametrize("op", list(OPCODES))
def test_reserved_body_bits(op):
    base = Instruction(op, random_cmd(random.Random(1), op)).encode()
    width = BODY_WIDTH[Opcode[op]]
    for bit in sorted({width, width + 1, (width + BODY_BITS) // 2, BODY_BITS - 1}):
        if bit < BODY_BITS:
            assert code_of(base | 1 << (32 + bit)) == "RESERVED", (op, bit)
    if width and op != "SEM":
        # the top bit of the command itself is fine (SEM: see test_sem_remote_body)
        assert Instruction.decode(base | 1 << (32 + width - 1), CFG).op == op


def test_sem_remote_body():
    """A SEM's body says where its signal goes (hdl.isa.SemCmd): core bits without the
    remote bit, or a remote SEM without a signal, are RESERVED; a remote signal to a core
    the chip lacks (or from a core not on a chip) is PEER; the rest round-trips."""
    local = Instruction("SEM", None, signal=1).encode()
    assert code_of(local | 1 << (32 + 1)) == "RESERVED"           # core=1, remote=0
    remote = Instruction("SEM", None, signal=1, peer=3).encode()
    assert code_of(remote) == "PEER"                                # standalone core
    assert Instruction.decode(remote, CFG, 4) == Instruction("SEM", None, signal=1, peer=3)
    with pytest.raises(IllegalInstruction) as e:
        Instruction.decode(remote, CFG, 3)
    assert e.value.code == "PEER"
    no_signal = Instruction("SEM", None).encode() | 1 << 32         # remote=1, sig_en=0
    assert code_of(no_signal) == "RESERVED"
    for bad in (dict(op="MATMUL"), dict(op="SEM")):
        with pytest.raises(ValueError):
            Instruction(bad["op"], random_cmd(random.Random(3), bad["op"]), peer=1)
    with pytest.raises(ValueError):
        Instruction("SEM", None, signal=0, peer=8)


@pytest.mark.parametrize("op", list(OPCODES))
def test_reserved_header_fields(op):
    base = Instruction(op, random_cmd(random.Random(2), op)).encode()
    assert code_of(base | 1 << 5) == "RESERVED"        # wait_sem without wait_en
    assert code_of(base | 16 << 5) == "RESERVED"
    assert code_of(base | 1 << 10) == "RESERVED"       # wait_val without wait_en
    assert code_of(base | 1 << 25) == "RESERVED"
    assert code_of(base | 1 << 27) == "RESERVED"       # sig_sem without sig_en
    assert code_of(base | 16 << 27) == "RESERVED"
    # wait_en with sem 0 value 0 is legal (a wait that always holds)
    assert Instruction.decode(base | 1 << 4, CFG).wait == (0, 0)
    assert Instruction.decode(base | 1 << 26, CFG).signal == 0
    # RESERVED is reported before SEM_RANGE
    assert code_of(base | 1 << 4 | 31 << 5 | 1 << 27) == "RESERVED"
    assert code_of(base | 1 << 26 | 31 << 27 | 1 << 255) == "RESERVED"


@pytest.mark.parametrize("n_sems", [1, 5, 16, 31])
def test_sem_range(n_sems):
    cfg = CoreConfig(rows=4, cols=4, n_sems=n_sems)
    last = n_sems - 1
    assert Instruction.decode(Instruction("SEM", wait=(last, 7)).encode(), cfg).wait == (last, 7)
    assert Instruction.decode(Instruction("SEM", signal=last).encode(), cfg).signal == last
    for sem in (n_sems, 31):
        assert code_of(Instruction("SEM", wait=(sem, 0)).encode(), cfg) == "SEM_RANGE"
        assert code_of(Instruction("END", wait=(sem, 1)).encode(), cfg) == "SEM_RANGE"
        assert code_of(Instruction("SEM", signal=sem).encode(), cfg) == "SEM_RANGE"
        mm = Instruction("MATMUL", Matmul(k=1, m=1, n=1), wait=(0, 1), signal=sem)
        assert code_of(mm.encode(), cfg) == "SEM_RANGE"


def test_sem_range_never_with_32_sems():
    cfg = CoreConfig(rows=4, cols=4, n_sems=32)
    word = Instruction("SEM", wait=(31, 1), signal=31).encode()
    assert Instruction.decode(word, cfg).signal == 31


def test_decode_rejects_non_words():
    with pytest.raises(ValueError):
        Instruction.decode(1 << 256, CFG)
    with pytest.raises(ValueError):
        Instruction.decode(-1, CFG)


# ---------------------------------------------------------------------------------------
# programs
# ---------------------------------------------------------------------------------------

def test_semaphore_allocation():
    p = Program(CFG)
    assert p.dma(addr=0, rows=1, row_bytes=8, signal="load") == 0
    assert p.matmul(k=1, m=1, n=1, wait=("load", p.signals("load")), signal="mm") == 1
    assert p.act(Act(parts=1, n=1), wait=("mm", 1), signal="out") == 2
    assert p.sem(wait=("other", 0)) == 3
    assert p.end(wait=("out", 1)) == 4
    assert p.sem_names == {"load": 0, "mm": 1, "out": 2, "other": 3}
    assert [i.wait for i in p.instructions] == [None, (0, 1), (1, 1), (3, 0), (2, 1)]
    assert [i.signal for i in p.instructions] == [0, 1, 2, None, None]
    assert p.signals("load") == 1 and p.signals("other") == 0 and p.signals("nope") == 0
    assert p.dma(addr=0, rows=1, row_bytes=8, signal="load") == 5
    assert p.signals("load") == 2
    assert len(p.encode()) == 32 * 6
    assert decode_program(p.encode(), CFG) == p.instructions[:5]


def test_too_many_semaphores():
    p = Program(SMALL)                      # 5 semaphores
    for i in range(5):
        p.sem(signal=f"s{i}")
    with pytest.raises(ValueError, match=r"too many semaphores.*n_sems=5"):
        p.sem(signal="one_more")
    with pytest.raises(ValueError, match="too many semaphores"):
        p.sem(wait=("s0", 1), signal="one_more")
    # the refused calls left nothing behind, and known names still work
    assert len(p.instructions) == 5 and list(p.sem_names) == [f"s{i}" for i in range(5)]
    p.sem(wait=("s4", 1), signal="s0")
    assert p.signals("s0") == 2


def test_program_argument_errors():
    p = Program(CFG)
    with pytest.raises(ValueError, match="0..65535"):
        p.sem(wait=("a", 65536))
    with pytest.raises(ValueError, match="0..65535"):
        p.sem(wait=("a", -1))
    with pytest.raises(ValueError):
        p.sem(wait="a")
    with pytest.raises(TypeError):
        p.matmul(Matmul(k=1, m=1, n=1), k=2)
    with pytest.raises(ValueError, match="k=600"):
        p.matmul(k=600, m=1, n=1, signal="x")
    assert p.sem_names == {} and p.instructions == []
    p.sem(wait=("a", 65535))


def test_semaphore_wrap_refused():
    p = Program(CFG)
    for _ in range(65535):
        p.sem(signal="a")
    with pytest.raises(ValueError, match="65535"):
        p.sem(signal="a")
    assert p.signals("a") == 65535


# ---------------------------------------------------------------------------------------
# listings
# ---------------------------------------------------------------------------------------

def test_disassemble():
    p = Program(CFG)
    p.dma(addr=0x40, rows=8, row_bytes=16, row_stride=16, signal="wload")
    p.matmul(k=8, m=8, n=64, x_off=8, wait=("wload", 1), signal="mm")
    p.act(parts=8, n=64, dst_type="INT8", src_fp=False, wait=("mm", 1), signal="act")
    p.dma(addr=0x400, rows=8, row_bytes=64, row_stride=64, store=True, wait=("act", 1))
    p.sem(wait=("act", 1), signal="wload")
    p.end()
    bad = [0, 7, Instruction("SEM").encode() | 1 << 40, Instruction("SEM", signal=20).encode()]
    data = p.encode() + b"".join(w.to_bytes(32, "little") for w in bad) + b"\x01\x02"
    text = disassemble(data, CFG, base_addr=0x1000, sem_names=p.sem_names)
    lines = text.splitlines()
    assert len(lines) == 11
    for i, line in enumerate(lines[:10]):
        assert line.startswith(f"{0x1000 + 32 * i:08x}:")
        word = int.from_bytes(data[32 * i:32 * i + 32], "little")
        assert f"{word:064x}" in line
    for line, mnemonic in zip(lines, ["DMA load", "MATMUL", "ACT", "DMA store", "SEM", "END"]):
        assert mnemonic in line
    assert "k=8 m=8 n=64" in lines[1]
    assert "wait(wload>=1) signal(mm)" in lines[1]
    assert "addr=0x400" in lines[3] and "wait(act>=1)" in lines[3]
    assert "scale=1 shift=0 zp=0" in lines[2]
    assert "ILLEGAL(OPCODE)" in lines[6] and "ILLEGAL(OPCODE)" in lines[7]
    assert "ILLEGAL(RESERVED)" in lines[8] and "ILLEGAL(SEM_RANGE)" in lines[9]
    assert "2 trailing bytes" in lines[10]
    # without names, semaphores are shown by index
    assert "wait(s0>=1) signal(s1)" in disassemble(data[32:64], CFG)
    assert p.listing(0x1000) == "\n".join(lines[:6])


def test_text_of_every_opcode():
    assert Instruction("END").text() == "END"
    assert Instruction("SEM", wait=(3, 2), signal=1).text({"a": 3}) == "SEM wait(a>=2) signal(s1)"
    t = Instruction("DMA", Dma(addr=0x10, rows=2, row_bytes=4, store=True, mem="psum")).text()
    assert t.startswith("DMA store psum addr=0x10 rows=2 row_bytes=4")
    t = Instruction("ACT", Act(parts=2, n=3, bias=True, bias_off=8)).text()
    assert t.startswith("ACT parts=2 n=3 src=psum:fp32") and "bias_off=8" in t
    assert "scale" not in t


def test_decode_program():
    p = Program(CFG)
    p.sem(signal="a")
    p.end(wait=("a", 1))
    data = p.encode() + bytes(64)           # zeros after END are never decoded
    assert [i.op for i in decode_program(data, CFG)] == ["SEM", "END"]
    with pytest.raises(IllegalInstruction) as e:
        decode_program(p.encode()[:32] + bytes(32) + p.encode()[32:], CFG)
    assert e.value.code == "OPCODE" and e.value.addr == 32
    with pytest.raises(IllegalInstruction) as e:
        decode_program(p.encode()[:32] * 3 + b"\x04", CFG)
    assert e.value.code == "FETCH" and e.value.addr == 96


def test_numpy_integer_fields():
    import numpy as np
    d = Dma(addr=np.int64(0x100), rows=np.int32(3), row_bytes=np.uint16(5), store=np.bool_(True))
    i = Instruction("DMA", d, wait=(np.int64(1), np.uint16(2)), signal=np.int8(3))
    assert i.wait == (1, 2) and type(i.wait[0]) is int and type(i.signal) is int
    assert Instruction.decode(i.encode(), CFG) == i
    assert i.encode() == Instruction("DMA", Dma(addr=0x100, rows=3, row_bytes=5, store=True),
                                     wait=(1, 2), signal=3).encode()
