"""One encoder and decoder for every binary format of ``hdl/formats.py`` and ``hdl/isa.py``.

The formats are Amaranth ``data`` layouts (:class:`hdl.isa.Instr`,
:class:`hdl.formats.DmaDesc`, :class:`hdl.formats.MatmulCmd`,
:class:`hdl.formats.ActCmd`, :func:`hdl.formats.dma_done_layout`, ...). The software side
(assembler, ISS, golden models, testbenches) turns them into integers and back only
through this module, which reads every offset, width, signedness and enum from the
layout itself, so no bit position is written twice and the software cannot drift from
the hardware (``tests/test_codec.py`` compares :func:`encode` with
``Layout.const(...).as_value()`` for every format).

Why not ``Layout.const`` alone: it silently truncates a value that does not fit its
field, and it refuses an enum field holding a value no member has (a MATMUL whose
``dtype`` is 3 is a legal instruction that the engine refuses, and the assembler must be
able to write it). :func:`encode` refuses the first and accepts the second.

Values
------
* plain fields (``unsigned(n)``/``signed(n)``): an integer (Python or NumPy) or a bool,
  in ``0 .. 2**n - 1`` or ``-2**(n-1) .. 2**(n-1) - 1``; decoded as a Python int
  (sign-extended for signed fields);
* enum fields: a member of that enum, a member's name, or a raw integer that fits the
  enum's shape; decoded as the member, or the raw integer when no member has the value
  (``enums="name"`` gives member names instead, ``enums="raw"`` integers only);
* nested layouts: a mapping for a struct (decoded as a dict), a sequence for an array
  (decoded as a list), or the raw bits as one integer.

Missing fields encode as zero, as with ``Layout.const``. Every refusal is a
``ValueError`` that starts with the layout's name and names the field.
"""

from __future__ import annotations

import dataclasses
import enum as py_enum
import numbers
from collections.abc import Mapping

import numpy as np
from amaranth.hdl import Shape
from amaranth.lib import data

__all__ = ["encode", "decode", "replace", "field_names", "EnumText", "Choices", "Command"]


def _layout(layout):
    """``data.Layout`` of a layout or a ``data.Struct``/``data.Union`` class."""
    if isinstance(layout, data.Layout):
        return layout
    return data.Layout.cast(layout)


def _nested(shape):
    """A field's shape as a ``data.Layout`` if it is one (or a ``data.Struct`` class),
    else ``None`` (a plain or enum shape)."""
    if isinstance(shape, data.Layout):
        return shape
    if isinstance(shape, type) and issubclass(shape, data.View):
        return data.Layout.cast(shape)
    return None


def _name(layout):
    """How error messages name a layout: the ``data.Struct`` class's name (``MatmulCmd``),
    else the layout's class (``StructLayout``, ``ArrayLayout``)."""
    if isinstance(layout, type):
        return layout.__name__
    return type(layout).__name__


def _items(layout):
    """``[(name, shape, offset)]`` of a struct's fields or an array's elements."""
    if isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        size = _width(elem)
        return [(i, elem, i * size) for i in range(layout.length)]
    if isinstance(layout, data.StructLayout):
        return [(name, field.shape, field.offset) for name, field in layout]
    raise TypeError(f"cannot encode fields of {layout!r}: only struct and array layouts")


def _width(shape):
    if isinstance(shape, data.Layout):
        return shape.size
    return Shape.cast(shape).width


def _is_enum(shape):
    return isinstance(shape, py_enum.EnumMeta)


def field_names(layout) -> tuple:
    """The field names of a struct layout (or ``data.Struct`` class), in bit order."""
    return tuple(name for name, _, _ in _items(_layout(layout)))


def _is_int(value):
    return isinstance(value, numbers.Integral)


def _scalar_bits(shape, value, where):
    """The raw bits of one plain or enum field, with range and type checks."""
    width = _width(shape)
    if _is_enum(shape):
        if isinstance(value, py_enum.Enum):
            if not isinstance(value, shape):
                raise ValueError(f"{where} must be a {shape.__name__}, not {value!r}")
            return int(value.value) & ((1 << width) - 1)
        if isinstance(value, str):
            try:
                return int(shape[value].value) & ((1 << width) - 1)
            except KeyError:
                names = ", ".join(m.name for m in shape)
                raise ValueError(f"{where}={value!r} is not a {shape.__name__} member "
                                 f"({names})") from None
        if not _is_int(value) or isinstance(value, bool):
            raise ValueError(f"{where} must be a {shape.__name__} member, its name or an "
                             f"integer, not {value!r}")
    signed = Shape.cast(shape).signed
    if not (_is_int(value) or isinstance(value, np.bool_)):
        raise ValueError(f"{where} must be an integer, not {value!r}")
    value = int(value)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    if not lo <= value <= hi:
        raise ValueError(f"{where}={value} does not fit its {width}-bit field ({lo}..{hi})")
    return value & ((1 << width) - 1)


def _encode(layout, values, where):
    """Bits of a struct (``values`` a mapping) or array (a sequence) layout."""
    items = _items(layout)
    if isinstance(layout, data.ArrayLayout):
        if isinstance(values, (str, bytes, Mapping)) or not hasattr(values, "__len__"):
            raise ValueError(f"{where} must be a sequence of {layout.length} elements, "
                             f"not {values!r}")
        if len(values) != layout.length:
            raise ValueError(f"{where} needs {layout.length} elements, not {len(values)}")
        pairs = [(item, v) for item, v in zip(items, values)]
    else:
        if not isinstance(values, Mapping):
            raise ValueError(f"{where} must be a mapping of field names, not {values!r}")
        known = {name: (name, shape, offset) for name, shape, offset in items}
        for name in values:
            if name not in known:
                raise ValueError(f"{where} has no field {name!r} (fields: "
                                 f"{', '.join(known)})")
        pairs = [(known[name], v) for name, v in values.items()]
    word = 0
    for (name, shape, offset), value in pairs:
        sub = f"{where}.{name}" if isinstance(layout, data.StructLayout) else f"{where}[{name}]"
        word |= _value_bits(shape, value, sub) << offset
    return word


def _value_bits(shape, value, where):
    shape = _nested(shape) or shape
    if isinstance(shape, data.Layout):
        if _is_int(value) and not isinstance(value, bool):
            width = shape.size
            if not 0 <= int(value) < 1 << width:
                raise ValueError(f"{where}={int(value)} does not fit its {width}-bit field "
                                 f"(0..{(1 << width) - 1})")
            return int(value)
        return _encode(shape, value, where)
    return _scalar_bits(shape, value, where)


def encode(layout, values=None, /, **fields) -> int:
    """The integer (bit 0 = bit 0 of the layout) holding ``values`` and/or ``fields``.

    ``layout`` is a ``data.Struct`` class (``MatmulCmd``) or a struct or array layout.
    Fields not given are zero. Raises ``ValueError`` for an unknown field, a value that
    does not fit its field, a name that is not a member of the field's enum, or a value
    of the wrong type.
    """
    if values is None:
        values = {}
    if fields:
        if not isinstance(values, Mapping):
            raise TypeError("give either a sequence (array layout) or fields, not both")
        values = {**values, **fields}
    return _encode(_layout(layout), values, _name(layout))


def _check_word(layout, word, where):
    if isinstance(word, bool) or not _is_int(word):
        raise ValueError(f"{where}: a word is an integer, not {word!r}")
    size = _layout(layout).size
    if not 0 <= int(word) < 1 << size:
        raise ValueError(f"{where}: word {int(word):#x} does not fit in {size} bits")
    return int(word)


def _decode_value(shape, bits, enums):
    shape = _nested(shape) or shape
    if isinstance(shape, data.Layout):
        return _decode(shape, bits, enums)
    width = _width(shape)
    bits &= (1 << width) - 1
    if Shape.cast(shape).signed and bits >> (width - 1):
        bits -= 1 << width
    if _is_enum(shape) and enums != "raw":
        try:
            member = shape(bits)
        except ValueError:
            return bits
        return member.name if enums == "name" else member
    return bits


def _decode(layout, word, enums):
    out = {} if isinstance(layout, data.StructLayout) else []
    for name, shape, offset in _items(layout):
        value = _decode_value(shape, word >> offset, enums)
        if isinstance(out, dict):
            out[name] = value
        else:
            out.append(value)
    return out


def decode(layout, word, *, enums="member"):
    """The fields of ``word``: a dict for a struct layout (nested layouts decoded
    recursively: dicts for structs, lists for arrays), a list for an array layout.

    Enum fields decode to the member (``enums="member"``), its name (``"name"``) or the
    raw integer (``"raw"``); a value no member has is always the raw integer. Raises
    ``ValueError`` if ``word`` is not an integer that fits the layout.
    """
    if enums not in ("member", "name", "raw"):
        raise ValueError(f"enums must be 'member', 'name' or 'raw', not {enums!r}")
    word = _check_word(layout, word, _name(layout))
    return _decode(_layout(layout), word, enums)


def replace(layout, word, /, **fields) -> int:
    """``word`` with the given top-level fields replaced (checked as by :func:`encode`);
    every other bit kept as it is, whatever it holds. Testbenches use it to build
    words the assembler would not write (an undefined opcode, a stray reserved bit)."""
    where = _name(layout)
    word = _check_word(layout, word, where)
    lay = _layout(layout)
    known = {name: (shape, offset) for name, shape, offset in _items(lay)}
    for name, value in fields.items():
        if name not in known:
            raise ValueError(f"{where} has no field {name!r} (fields: {', '.join(known)})")
        shape, offset = known[name]
        mask = ((1 << _width(shape)) - 1) << offset
        word = (word & ~mask) | (_value_bits(shape, value, f"{where}.{name}") << offset)
    return word


class EnumText:
    """How a golden-model dataclass spells an enum field as text.

    A member is spelled by its name (lower-cased with ``lower=True``: ``Dtype.BF16`` is
    ``"bf16"``); a value no member has by ``raw_prefix`` and the number (``"dtype3"``),
    so that every value of the field has exactly one spelling and a command the engine
    refuses can still be written.

    Parameters
    ----------
    enum : an ``amaranth.lib.enum.Enum`` with a shape
    raw_prefix : str
    lower : bool
    """

    def __init__(self, enum_type, raw_prefix, *, lower=False):
        self.enum = enum_type
        self.raw_prefix = raw_prefix
        self.lower = lower
        self._width = Shape.cast(enum_type).width

    def _spell(self, member):
        return member.name.lower() if self.lower else member.name

    @property
    def names(self) -> tuple:
        """The spellings of the members, in value order."""
        return tuple(self._spell(m) for m in sorted(self.enum, key=lambda m: m.value))

    def text(self, value) -> str:
        """The spelling of a decoded field value (a member, or a raw integer)."""
        if isinstance(value, self.enum):
            return self._spell(value)
        try:
            return self._spell(self.enum(value))
        except ValueError:
            return f"{self.raw_prefix}{int(value)}"

    def value(self, text, where):
        """The member (or raw integer) spelled ``text``; ``ValueError`` naming ``where``
        (e.g. ``"MatmulCmd.dtype"``) if ``text`` is no spelling of this field."""
        for member in self.enum:
            if self._spell(member) == text:
                return member
        if isinstance(text, str) and text.startswith(self.raw_prefix):
            digits = text[len(self.raw_prefix):]
            if digits.isdigit():
                raw = int(digits)
                if raw < (1 << self._width) and raw not in {m.value for m in self.enum}:
                    return raw
        raise ValueError(f"{where}={text!r} is not a valid {where.rsplit('.', 1)[-1]} "
                         f"({', '.join(self.names)}, or {self.raw_prefix}<n> for a value "
                         f"no member has)")


class Choices:
    """How a golden-model dataclass spells a small unsigned field as one of a few
    words: ``Choices(("sbuf", "psum"))`` spells 0 as ``"sbuf"`` and 1 as ``"psum"``
    (the same interface as :class:`EnumText`)."""

    def __init__(self, words):
        self.words = tuple(words)

    def text(self, value) -> str:
        return self.words[int(value)]

    def value(self, text, where):
        if text not in self.words:
            raise ValueError(f"{where} must be " + " or ".join(map(repr, self.words))
                             + f", not {text!r}")
        return self.words.index(text)


class Command:
    """Encode/decode for a frozen dataclass of the golden model that is one hardware
    word: its fields are the layout's, by name.

    A subclass sets ``LAYOUT`` (the ``data.Struct``), ``TEXT`` (field -> an
    :class:`EnumText` or :class:`Choices` for the fields it spells as words) and
    ``FLAGS`` (the 1-bit fields it holds as ``bool``).
    """

    LAYOUT = None
    TEXT = {}
    FLAGS = ()

    def encode(self) -> int:
        """The word; ``ValueError`` naming the field if one does not fit."""
        fields = dataclasses.asdict(self)
        for key, spelling in self.TEXT.items():
            fields[key] = spelling.value(fields[key], f"{self.LAYOUT.__name__}.{key}")
        return encode(self.LAYOUT, fields)

    @classmethod
    def decode(cls, word: int):
        """The command ``word`` holds (no legality check)."""
        fields = decode(cls.LAYOUT, word)
        for key, spelling in cls.TEXT.items():
            fields[key] = spelling.text(fields[key])
        for key in cls.FLAGS:
            fields[key] = bool(fields[key])
        return cls(**fields)
