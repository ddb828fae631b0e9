"""The generated encoding tables of ``docs/isa.md`` (``sim/flow/isadoc.py``).

* The part of ``docs/isa.md`` between the markers is exactly what the generator prints.
* Every field of every layout appears with its bits in the 256-bit instruction, its
  width and a meaning; every opcode and every error code appears with its value.
* The docstring parser finds the members the way they are written in ``hdl/formats.py``
  (shared entries, several entries on one line, continued descriptions).
"""

import pathlib
import re

import pytest

from hdl.formats import ActCmd, ActError, DmaDesc, DmaError, MatmulCmd, TensorError
from hdl.isa import BODY_BITS, BODY_WIDTH, HEADER_BITS, INSTR_BITS, CoreError, Instr, Opcode
from sim.flow.isadoc import (BEGIN, COMMANDS, END, ENUMS, LAYOUTS, enum_comments, fields,
                        generated_part, markdown, members, splice)

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "isa.md"


def test_docs_up_to_date():
    text = DOC.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert generated_part(text) == markdown(), \
        "docs/isa.md is stale: run `python -m sim.flow.isadoc --update`"


def test_splice_keeps_the_hand_written_part():
    text = DOC.read_text()
    assert splice(text) == text
    with pytest.raises(ValueError, match="markers"):
        generated_part("no markers here")


def _rows(md):
    """``{heading: [cells of each table row]}`` of a Markdown text."""
    out, heading = {}, None
    for line in md.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            out.setdefault(heading, []).append(cells)
    return out


def _section(tables, layout):
    names = [h for h in tables if f"`{_qualified(layout)}`" in h]
    assert len(names) == 1, (layout, list(tables))
    return tables[names[0]]


def _qualified(layout):
    return f"{layout.__module__}.{layout.__name__}"


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: l.__name__)
def test_every_field_appears(layout):
    tables = _rows(markdown())
    rows = {r[0]: r for r in _section(tables, layout)[1:]}
    base = 0 if layout is Instr else HEADER_BITS
    shape = layout.as_shape()
    for name, field in shape:
        row = rows.pop(f"`{name}`")
        lo, w = base + field.offset, field.width
        assert row[1] == (f"[{lo}]" if w == 1 else f"[{lo + w - 1}:{lo}]"), (name, row)
        assert row[2] == str(w)
        assert row[3], f"{layout.__name__}.{name} has no meaning"
    if layout is Instr:
        assert not rows
    else:
        # what is left is the reserved rest of the body, up to the last bit
        (row,) = rows.values()
        w = BODY_BITS - shape.size
        assert row[:3] == ["(reserved)", f"[{INSTR_BITS - 1}:{HEADER_BITS + shape.size}]",
                           str(w)]


def test_fields_cover_the_instruction():
    """Header and each command tile their bits without gaps or overlaps."""
    header = fields(Instr)
    assert header[0][1] == 0 and sum(r[2] for r in header) == INSTR_BITS
    for op, layout in COMMANDS.items():
        assert BODY_WIDTH[op] == layout.as_shape().size
        rows = fields(layout, HEADER_BITS)
        pos = HEADER_BITS
        for name, lsb, width, _ in rows:
            assert lsb == pos, (layout.__name__, name)
            pos += width
        assert pos == HEADER_BITS + BODY_WIDTH[op]
    assert set(COMMANDS) | {Opcode.END} == set(Opcode)
    assert BODY_WIDTH[Opcode.END] == 0


def test_every_code_appears():
    tables = _rows(markdown())
    ops = {r[1]: r for r in tables["Opcodes (`hdl.isa.Opcode`)"][1:]}
    assert {op.name: str(op.value) for op in Opcode} == \
        {name.strip("`"): r[0] for name, r in ops.items()}
    assert "Any other opcode value (0, 6..15) is illegal" in markdown()
    for cls, heading in ((CoreError, "Core errors (`hdl.isa.CoreError`, register `ERROR.CODE`)"),
                         (DmaError, "`DmaError` (`hdl.formats`)"),
                         (TensorError, "`TensorError` (`hdl.formats`)"),
                         (ActError, "`ActError` (`hdl.formats`)")):
        rows = tables[heading][1:]
        assert [(r[0], r[1]) for r in rows] == [(str(e.value), f"`{e.name}`") for e in cls]
        assert all(r[2] for r in rows), heading
    for cls in ENUMS:
        assert f"`{cls.__name__}` (" in markdown()
        for member in cls:
            assert f"| {member.value} | `{member.name}` |" in markdown()


def test_members_parser():
    m = members(MatmulCmd)
    assert m["k"] == m["m"] == (("k", "m"), "Contraction length (`1..rows`) and stationary "
                                            "width (`1..cols`).")
    a = members(ActCmd)
    assert a["src_psum"] == (("src_psum",), "operands are in PSUM (1) or SBUF (0)")
    assert a["src_off"][1].endswith("SBUF: byte offset / element size)")
    assert a["zp1"] == a["zp2"] == (("zp1", "zp2"), "subtracted from integer operands "
                                                    "(their zero points)")
    assert a["scale"] == a["shift"] == a["zp"] == (("scale", "shift", "zp"), "(requantisation)")
    assert a["dst_type"] == (("dst_type",), "")
    d = members(DmaDesc)
    assert d["row_stride"][1].startswith("Bytes from one DRAM row to the next (smaller")
    assert members(Instr)["opcode"] == (("opcode",), "")


def test_enum_comments():
    c = enum_comments(CoreError)
    assert c["NONE"] == ""
    assert c["RESERVED"] == ("a body bit above the command, or a header field of an unused "
                             "wait/signal, is not zero")
    assert enum_comments(Opcode)["DMA"].startswith("body is a `DmaDesc`;")
