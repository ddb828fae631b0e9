"""The GTKWave translate filter (``sim/flow/wavefilter.py``): known words in, known text out.

Expected strings are literals written from the formats' definitions, not computed with
the filter's own code: float bit patterns whose values are known (``3F80`` is bf16 1.0),
instruction and command words built with the assembler's classes next to the text the
disassembler's canonical spelling gives for them, enum values looked up by member with
the expected name written out. Two property checks compare the float text with
independent oracles (NumPy's shortest ``float16``/``float32`` digits; for bf16, reading
the text back through the project's own rounding, ``sim.model.fp.to16_bits``). The last
test runs the filter as GTKWave does, one line at a time through pipes.
"""

import io
import os
import random
import select
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from amaranth.lib import data

from hdl.config import CoreConfig
from hdl.controller_parts import Fault, FetchedInstr, SemWait
from hdl.formats import DmaError, MatmulCmd
from hdl.isa import CoreError, Instr, Opcode
from sim.flow import wavefilter
from sim.flow.wavefilter import main, make_translator, translate
from sim.isa import codec
from sim.isa.asm import Instruction
from sim.model.dma import Dma
from sim.model.fp import to16_bits
from sim.model.tensor import Matmul
from sim.model.vector import Act

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------
# floats
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("word, text", [
    ("3F80", "1"), ("C000", "-2"), ("3FC0", "1.5"), ("C020", "-2.5"), ("4120", "10"),
    ("0000", "0"), ("8000", "-0"),
    ("7F80", "?orange?+inf"), ("FF80", "?orange?-inf"),
    ("7FC0", "?orange?nan"), ("FFC0", "?orange?-nan"), ("7F81", "?orange?nan(0x1)"),
    # exact value 0.10009765625, but 0.1 rounds to 3DCD in bf16 (and is shorter)
    ("3DCD", "0.1"),
    # 0.19921875: 0.2 rounds to 3E4D, 0.199 to 3E4C
    ("3E4C", "0.199"),
    # smallest subnormal 2**-133 = 9.18e-41; one digit identifies it
    ("0001", "9e-41"),
    # largest finite 3.3895e38: 3.39e38 is inside its rounding interval, 3.4e38 is not
    ("7F7F", "3.39e+38"),
])
def test_bf16(word, text):
    assert translate("bf16", word) == text


@pytest.mark.parametrize("word, text", [
    ("3C00", "1"), ("C100", "-2.5"), ("3555", "0.3333"),
    # 65504, the largest finite value: no fp16 value is nearer to 65500 (NumPy prints
    # np.float16(65504) as 65500.0 too)
    ("7BFF", "65500"),
    # 2**-24 = 5.96e-08, the smallest subnormal (NumPy: repr(np.float16(2**-24)) == '6e-08')
    ("0001", "6e-08"),
    # 2**-14 = 6.103515625e-05, the smallest normal
    ("0400", "6.104e-05"),
    ("7C00", "?orange?+inf"), ("7E00", "?orange?nan"), ("FE01", "?orange?-nan(0x201)"),
])
def test_fp16(word, text):
    assert translate("fp16", word) == text


@pytest.mark.parametrize("word, text", [
    ("3F800000", "1"), ("3DCCCCCD", "0.1"), ("40490FDB", "3.1415927"),
    ("3F7FFFFF", "0.99999994"), ("80000000", "-0"),
    ("00000001", "1e-45"),                  # 2**-149
    ("38D1B717", "0.0001"),                 # float32(1e-4): still positional
    ("3727C5AC", "1e-05"),                  # float32(1e-5): scientific below 1e-4
    ("4996B438", "1234567"),                # below 1e7: positional
    ("4B800000", "1.6777216e+07"),          # 2**24: scientific from 1e7
    ("7F7FFFFF", "3.4028235e+38"),
    ("7FC00000", "?orange?nan"), ("FF800000", "?orange?-inf"),
])
def test_fp32(word, text):
    assert translate("fp32", word) == text


def _patterns16():
    """Every 11th 16-bit pattern, plus each binade's edges (where the rounding interval
    is lopsided): fraction fields 0, 1 and all ones for every exponent, both formats."""
    edges = {s | e << f | m for f in (7, 10) for e in range(1 << (15 - f)) for s in (0, 0x8000)
             for m in (0, 1, (1 << f) - 1)}
    return sorted(set(range(0, 1 << 16, 11)) | edges)


def _significant_digits(text):
    mantissa = text.lstrip("-").split("e")[0].replace(".", "")
    return len(mantissa.strip("0"))


@pytest.mark.parametrize("kind, dtype, bits", [("fp16", np.float16, 16), ("fp32", np.float32, 32)])
def test_floats_match_numpy_shortest_digits(kind, dtype, bits):
    """The filter's value equals NumPy's shortest round-trip digits (Dragon4, unique
    mode), for a sample of patterns; NumPy only differs in when it goes scientific."""
    rng = random.Random(3)
    words = _patterns16() if bits == 16 else (
        [rng.getrandbits(32) for _ in range(3000)] + list(range(1, 200))
        + [e << 23 | m for e in range(255) for m in (0, 1, 0x7FFFFF)])
    utype = np.uint16 if bits == 16 else np.uint32
    for w in words:
        x = np.array([w], utype).view(dtype)[0]
        if not np.isfinite(x):
            continue
        text = translate(kind, f"{w:0{bits // 4}X}")
        ref = np.format_float_scientific(x, unique=True, trim="-")
        assert Fraction(text) == Fraction(ref), (hex(w), text, ref)


def test_bf16_reads_back():
    """Every sampled bf16 text, read as a float32 and rounded to bf16 by the project's
    own cast, gives the same bits; and it never needs more than the 4 significant
    digits that tell any two bf16 values apart."""
    for w in _patterns16():
        text = translate("bf16", f"{w:04X}")
        if text.startswith("?"):
            assert (w >> 7) & 0xFF == 0xFF             # only Inf and NaN are coloured
            continue
        assert int(to16_bits(np.float32(text), "bf16")) == w, (hex(w), text)
        assert _significant_digits(text) <= 4, (hex(w), text)


# ---------------------------------------------------------------------------------------
# input conventions
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("line, text", [
    ("3f80", "1"), ("  3F80\t", "1"), ("$3F80", "1"), ("00003F80", "1"),
    ("xxxx", "x"), ("XXXX", "x"), ("3F8z", "x"), ("3FU0", "x"), ("----", "x"), ("w", "x"),
    # not a prefix: 0x is a zero nibble then an unknown one
    ("0x3F80", "x"),
    ("", ""), ("   ", ""),
    ("hello", "hello"), ("3F80 3F80", "3F80 3F80"), ("a\nb", "a b"),
    ("13F80", "?red?13F80"),                # wider than bf16: the filter is misplaced
])
def test_input_forms(line, text):
    assert translate("bf16", line) == text


def test_translator_never_raises():
    t = make_translator("insn:default")
    for junk in (None, 3, "Z" * 64, "F" * 64, "F" * 65, "\x00", "$", "$$1"):
        assert isinstance(t(junk), str)


# ---------------------------------------------------------------------------------------
# instructions and commands
# ---------------------------------------------------------------------------------------

def _hex(word, bits=256):
    return f"{word:0{bits // 4}X}"


def test_insn():
    t = make_translator("insn:default")
    word = Instruction("MATMUL", Matmul(k=8, m=8, n=16), wait=(1, 2), signal=3).encode()
    assert t(_hex(word)) == ("MATMUL k=8 m=8 n=16 p0=0 s_off=0 x_off=0 bank=0 psum_off=0 "
                             "acc=0 dtype=int8 wait(s1>=2) signal(s3)")
    word = Instruction("DMA", Dma(addr=0x40, rows=8, row_bytes=16, row_stride=16)).encode()
    assert t(_hex(word)) == ("DMA load sbuf addr=0x40 rows=8 row_bytes=16 row_stride=16 "
                             "partition=0 offset=0 tag=0")
    word = Instruction("SEM", wait=(0, 1), signal=2).encode()
    assert t(_hex(word)) == "SEM wait(s0>=1) signal(s2)"
    assert t(_hex(Instruction("END").encode())) == "END"
    assert t(_hex(Instruction("END").encode()).lower()) == "END"


@pytest.mark.parametrize("line, text", [
    # dtype (2 bits: INT8 0, BF16 1, FP16 2) above the 16-bit lane, as the save files
    # bundle a float array's operand lanes
    ("00081", "-127"),      # INT8 0x81 in the low byte
    ("0127F", "127"),       # INT8 ignores the high byte
    ("13F80", "1"),         # BF16 1.0
    ("1C000", "-2"),        # BF16 -2.0
    ("23C00", "1"),         # FP16 1.0
    ("27BFF", "65500"),     # FP16 max (shortest round-trip digits)
    ("2FC00", "?orange?-inf"),
    ("33C00", "?red?dtype3 3C00"),
])
def test_op16(line, text):
    assert make_translator("op16")(line) == text


def test_insn_illegal():
    t = make_translator("insn:default")
    end = Instruction("END").encode()
    assert t(_hex(codec.replace(Instr, end, opcode=9))).startswith("?red?ILLEGAL(OPCODE)")
    # the all-zero word is an empty payload (before the first fetch), shown plainly
    assert t("0" * 64) == "0"
    assert t(_hex(codec.replace(Instr, 0, opcode=0) | 1 << 200)).startswith(
        "?red?ILLEGAL(OPCODE) opcode 0 is not defined")
    assert t(_hex(Instruction("SEM").encode() | 1 << 40)).startswith("?red?ILLEGAL(RESERVED)")


def test_insn_config_json_file(tmp_path):
    """The decoder's SEM_RANGE check uses the configuration's semaphore count."""
    path = tmp_path / "core.json"
    path.write_text(CoreConfig(n_sems=2).to_json())
    word = _hex(Instruction("SEM", signal=3).encode())
    assert translate(f"insn:{path}", word) == \
        "?red?ILLEGAL(SEM_RANGE) sig_sem=3 but the core has 2 semaphores"
    assert translate("insn:default", word) == "SEM signal(s3)"


def test_commands():
    dma = Dma(addr=0x1000, rows=4, row_bytes=64, row_stride=128, partition=2, store=True,
              mem="psum", tag=7)
    assert translate("dma", _hex(dma.encode(), 152)) == (
        "DMA store psum addr=0x1000 rows=4 row_bytes=64 row_stride=128 partition=2 "
        "offset=0 tag=7")
    mm = Matmul(k=4, m=2, n=8, p0=1, bank=1, acc=True, dtype="bf16")
    assert translate("matmul", f"{mm.encode():X}") == (
        "MATMUL k=4 m=2 n=8 p0=1 s_off=0 x_off=0 bank=1 psum_off=0 acc=1 dtype=bf16")
    # a dtype no member has: still a legal word, which the engine refuses
    raw = codec.encode(MatmulCmd, k=1, m=1, n=1, dtype=3)
    assert translate("matmul", f"{raw:X}").endswith("acc=0 dtype=dtype3")
    act = Act(parts=8, n=64, dst_type="INT8", src_fp=False, scale=3, shift=2, zp=-1)
    assert translate("act", f"{act.encode():X}") == (
        "ACT parts=8 n=64 src=psum:int32 src_p0=0 src_off=0 dst=INT8 dst_p0=0 dst_off=0 "
        "relu=0 bias=0 scale=3 shift=2 zp=-1")


def test_command_falls_back_to_fields(monkeypatch):
    """If the disassembler's text fails, the command is still shown, field by field."""
    def broken(self, sem_names=None):
        raise RuntimeError("broken")
    monkeypatch.setattr(Instruction, "text", broken)
    t = make_translator("dma")
    word = Dma(addr=0x40, rows=8, row_bytes=16, tag=5).encode()
    assert t(f"{word:X}") == ("store=0 mem=0 addr=0x40 row_stride=0x0 rows=8 row_bytes=0x10 "
                              "partition=0 offset=0x0 tag=5")


# ---------------------------------------------------------------------------------------
# enums and struct fields
# ---------------------------------------------------------------------------------------

def test_enum():
    assert translate("enum:hdl.isa.Opcode", f"{Opcode.MATMUL.value:X}") == "MATMUL"
    assert translate("enum:hdl.isa.Opcode", "0") == "?red?Opcode(0)"
    assert translate("enum:hdl.isa.Opcode", "F") == "?red?Opcode(15)"
    # error enums: NONE plain, every other member red
    assert translate("enum:hdl.formats.DmaError", f"{DmaError.NONE.value:X}") == "NONE"
    assert translate("enum:hdl.formats.DmaError", f"{DmaError.SLVERR.value:X}") == "?red?SLVERR"
    assert translate("enum:hdl.isa.CoreError", f"{CoreError.WATCHDOG.value:X}") == "?red?WATCHDOG"
    assert translate("enum:hdl.isa.CoreError", "F") == "?red?CoreError(15)"
    assert translate("enum:hdl.isa.CoreError", "x") == "x"


def test_fields():
    word = codec.encode(SemWait, en=1, sem=3, val=7)
    assert translate("fields:hdl.controller_parts.SemWait", f"{word:X}") == "en=1 sem=3 val=7"
    # an enum field by name, a field wider than 16 bits (48-bit address) in hex
    word = codec.encode(Fault, valid=1, code="DMA", detail=4, addr=0x1234)
    assert translate("fields:hdl.controller_parts.Fault", f"{word:X}") == \
        "valid=1 code=DMA detail=4 addr=0x1234"
    # a layout function without arguments
    assert translate("fields:hdl.formats.dma_done_layout", "405") == "tag=5 error=SLVERR"
    # nested struct: dotted names
    instr = Instruction("SEM", wait=(1, 2), signal=3).encode()
    word = codec.encode(FetchedInstr, instr=instr, err=1)
    assert translate("fields:hdl.controller_parts.FetchedInstr", f"{word:X}") == (
        "instr.opcode=SEM instr.wait_en=1 instr.wait_sem=1 instr.wait_val=2 instr.sig_en=1 "
        "instr.sig_sem=3 instr.body=0x0 err=1")


def test_fields_of_an_array():
    """Array elements as ``[i]`` (no layout under ``hdl`` reachable by name is an array
    today, so through the internal builder)."""
    width, decode = wavefilter._fields_decoder(data.ArrayLayout(SemWait, 2), "test")
    word = codec.encode(data.ArrayLayout(SemWait, 2), [{"en": 1, "sem": 2, "val": 9}, {}])
    assert width == 44
    assert decode(word) == "[0].en=1 [0].sem=2 [0].val=9 [1].en=0 [1].sem=0 [1].val=0"


@pytest.mark.parametrize("kind, match", [
    ("int8", "unknown KIND"), ("insn:", "unknown KIND"), ("", "unknown KIND"),
    ("insn:no-such-config", "cannot load"),
    ("enum:os.path", "only modules under hdl"), ("fields:os.path", "only modules under hdl"),
    ("enum:hdlx.isa.Opcode", "only modules under hdl"),
    ("enum:hdl.isa.__builtins__", "public names"), ("enum:Opcode", "<module>.<name>"),
    ("enum:hdl.no_such_module.X", "ModuleNotFoundError"),
    ("enum:hdl.isa.NoSuchEnum", "AttributeError"),
    ("enum:hdl.isa.Instr", "names no enum"),
    ("fields:hdl.isa.Opcode", "names no struct"),
    ("fields:hdl.formats.column_layout", "without arguments"),     # needs a config
])
def test_bad_kinds(kind, match):
    with pytest.raises(ValueError, match=match):
        make_translator(kind)


# ---------------------------------------------------------------------------------------
# the process
# ---------------------------------------------------------------------------------------

def test_main_unknown_kind_echoes(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("3F80\nzz\n"))
    assert main(["nope"]) == 0
    out, err = capsys.readouterr()
    assert out == "3F80\nzz\n"
    assert "unknown KIND 'nope'" in err


def test_process_answers_each_line_at_once():
    """As GTKWave does: write one line, wait for its answer, then the next. A filter
    that did not flush after every line would time out here (so the child runs
    without PYTHONUNBUFFERED, which would hide a missing flush)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    lines = [("3F80", "1"), ("C000", "-2"), ("xxxx", "x"), ("7FC0", "?orange?nan"),
             ("junk", "junk"), ("", ""), ("3dcd", "0.1")]
    with subprocess.Popen([sys.executable, "-m", "sim.flow.wavefilter", "bf16"], cwd=ROOT,
                          env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, bufsize=0) as proc:
        try:
            for line, text in lines:
                proc.stdin.write(line.encode() + b"\n")
                ready, _, _ = select.select([proc.stdout], [], [], 20)
                assert ready, f"no answer to {line!r} within 20 s"
                assert proc.stdout.readline() == text.encode() + b"\n"
            proc.stdin.close()
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
