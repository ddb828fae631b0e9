"""GTKWave translate filter: shows ncore's raw bit vectors as numbers, instructions,
commands, enum names and struct fields.

GTKWave starts one such process per distinct command line (``argv = [program, KIND]``,
no shell, unknown working directory) and then, for every value it displays, writes the
value as it would show it (our save files use hex: uppercase, every digit of the full
width, no prefix) as one line to the process's stdin and blocks in ``fgets`` until the
answer line arrives. So the process answers every line with exactly one line and
flushes at once; and since GTKWave may crash when its filter dies, nothing here raises
once the loop runs: input it cannot read (or any failure while translating) is answered
with the input text itself, and an unknown KIND still runs the loop, echoing.

Usage: ``python -m sim.flow.wavefilter KIND`` (or ``ncore-wavefilter KIND``) with KIND

``bf16``, ``fp16``, ``fp32``
    The bits as a number (policy below).
``op16``
    A float array's operand lane as the save files bundle it: the column's ``dtype``
    (:class:`hdl.formats.Dtype`) above the 16-bit pattern; INT8 as the signed low
    byte, BF16/FP16 as numbers.
``insn:<config>``
    A 256-bit instruction (:class:`hdl.isa.Instr`) as the disassembler writes it
    (:meth:`sim.isa.asm.Instruction.text`); a word the decoder refuses is
    ``?red?ILLEGAL(<code>) <detail>``; the all-zero word (a stream's payload before
    anything was fetched) is ``0``. ``<config>`` is anything
    :func:`hdl.config.named_config` takes: a configuration name (``insn:default``) or a
    CoreConfig JSON file (the decoder needs ``n_sems``).
``dma``, ``matmul``, ``act``
    An engine command (:class:`hdl.formats.DmaDesc`, ``MatmulCmd``, ``ActCmd``) as the
    disassembler writes the instruction carrying it (``DMA load sbuf addr=0x40 ...``).
``enum:<module>.<Enum>``
    The member's name (``enum:hdl.isa.Opcode``); a value no member has is
    ``?red?<Enum>(<n>)``. For enums whose name ends in ``Error`` every member but
    ``NONE`` is red as well.
``fields:<module>.<Layout>``
    ``name=value`` pairs of a ``data.Struct`` (or a layout, or a ``*_layout`` function
    of no arguments returning one), from :func:`sim.isa.codec.decode`: nested fields as
    ``a.b=v``, array elements as ``a[0]=v``, enum fields by member name, integers in
    decimal, fields wider than 16 bits in hex (``0x...``).

``<module>`` must be ``hdl`` or below it: a save file is data, and must not be able to
make the viewer import arbitrary code.

Output conventions
------------------
* Any unknown digit (``x z w u -`` or ``X Z W U``) -> ``x``: a partly known word has no
  meaningful translation.
* Input that is not a hex number (after stripping blanks and one leading ``$``) and
  any failure while translating -> the input line unchanged. An empty input line ->
  an empty line (GTKWave then shows its own text). A value wider than the kind's word
  -> ``?red?<hex>``: the filter is on the wrong signal. A ``0x`` prefix is *not*
  stripped: ``0x`` is a legal GTKWave value (a zero nibble, then an unknown one).
* ``?red?`` marks errors (illegal instructions, error codes, undefined enum values),
  ``?orange?`` NaN and Inf; everything else has no colour.

Floating-point text
-------------------
The shortest decimal that reads back as the same bits in *that* format (round to
nearest, ties to even), and of those the one nearest to the exact value: ``1``,
``-2.5``, ``0.1`` (fp32 ``3DCCCCCD``; also bf16 ``3DCD``, whose exact value is
0.10009765625, because 0.1 rounds to it in bf16). That is what ``repr`` gives for
Python floats and NumPy for ``float16``/``float32``; bf16 has no such printer, so all
three formats use one exact algorithm here (:class:`fractions.Fraction`, no double
rounding). A decimal exponent below -4 or from 7 up is written in scientific
notation with a signed exponent of at least two digits (``1e-45``, ``6e-08``,
``1.6777216e+07``), anything else positionally (``0.0001``, ``-2.5``, ``1234567``). The
digits name the bits, not the exact value: fp16 ``7BFF`` (65504) is ``65500``, as NumPy
prints it, since no fp16 value is nearer to 65500. Zeros are
``0`` and ``-0``; subnormals are plain numbers; infinities ``+inf`` and ``-inf``; a
NaN is ``nan`` when it is the format's canonical quiet NaN (only the top fraction bit
set), else ``nan(0x<fraction field>)``, and ``-nan...`` with the sign bit set.
"""

import functools
import importlib
import re
import sys
from fractions import Fraction

__all__ = ["main", "translate", "make_translator", "command_kinds", "KINDS"]

#: The kinds without a parameter, and the prefixes of those with one.
KINDS = ("bf16", "fp16", "fp32", "op16", "dma", "matmul", "act", "insn:", "enum:", "fields:")

RED, ORANGE = "?red?", "?orange?"
_VALUE = re.compile(r"[0-9A-Fa-fxzwuXZWU-]+")
_UNKNOWN = set("xzwuXZWU-")
_DOTTED = re.compile(r"[A-Za-z]\w*(\.[A-Za-z]\w*)+")      # no _private or __dunder__


# ---------------------------------------------------------------------------------------
# Floats
# ---------------------------------------------------------------------------------------

def _float_formats():
    """name -> (exponent bits, fraction bits, bias): the 16-bit formats as the golden
    model defines them, FP32 as NumPy does (the project has no named constant for it)."""
    import numpy as np
    from sim.model.fp import FORMATS16
    f32 = np.finfo(np.float32)
    return {**FORMATS16, "fp32": (f32.nexp, f32.nmant, f32.maxexp - 1)}


def _float_decoder(ebits, fbits, bias):
    emax, fmask = (1 << ebits) - 1, (1 << fbits) - 1

    def value(mag):                     # exact value of a sign-less bit pattern
        e, f = mag >> fbits, mag & fmask
        if e:
            f |= 1 << fbits
        return f * Fraction(2) ** (max(e, 1) - bias - fbits)

    def decode(bits):
        sign = "-" if bits >> (ebits + fbits) else ""
        mag = bits & ((1 << (ebits + fbits)) - 1)
        e, f = mag >> fbits, mag & fmask
        if e == emax:
            if f == 0:
                return f"{ORANGE}{sign or '+'}inf"
            return f"{ORANGE}{sign}nan" + ("" if f == 1 << (fbits - 1) else f"(0x{f:x})")
        if mag == 0:
            return f"{sign}0"
        # Decimals in (low, high) read back as `mag`; the ends too if `mag` is even
        # (ties to even). For the largest finite value, value() of the Inf pattern is
        # 2**(emax-bias), one step further, so `high` is the overflow threshold.
        v = value(mag)
        low, high = (value(mag - 1) + v) / 2, (v + value(mag + 1)) / 2
        even = mag % 2 == 0
        return sign + _shortest(v, lambda d: low < d < high or (even and d in (low, high)))

    return decode


def _shortest(v, reads_back):
    """Text of the decimal with the fewest significant digits for which
    ``reads_back(d)``, the nearest to ``v`` among those (``v`` a positive Fraction)."""
    x = len(str(v.numerator)) - len(str(v.denominator))     # decimal exponent, +-1
    while Fraction(10) ** x > v:
        x -= 1
    while Fraction(10) ** (x + 1) <= v:
        x += 1
    p = 1
    while True:
        scale = Fraction(10) ** (x - p + 1)
        n = v // scale
        # both p-digit neighbours, nearer first (a tie to the even one, as repr does):
        # at a binade edge the interval is lopsided, so the nearer one may be outside
        # while the farther one is inside
        for c in sorted((n, n + 1), key=lambda c: (abs(c * scale - v), c % 2)):
            if reads_back(c * scale):
                return _decimal_text(int(c), x - p + 1)
        p += 1


def _decimal_text(c, q):
    """Text of ``c * 10**q`` (``c`` a positive integer)."""
    while c % 10 == 0:
        c, q = c // 10, q + 1
    digits = str(c)
    x = q + len(digits) - 1                   # exponent of the leading digit
    if x < -4 or x >= 7:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{mantissa}e{x:+03d}"
    if q >= 0:
        return digits + "0" * q
    if x >= 0:
        return digits[:x + 1] + "." + digits[x + 1:]
    return "0." + "0" * (-x - 1) + digits


# ---------------------------------------------------------------------------------------
# Instructions, commands, enums, structs
# ---------------------------------------------------------------------------------------

def _insn_decoder(spec):
    from hdl.config import named_config
    from hdl.isa import INSTR_BITS
    from sim.isa.asm import IllegalInstruction, Instruction
    try:
        config = named_config(spec)
    except Exception as e:               # a missing file, bad JSON, a bad field, ...
        raise ValueError(f"insn:{spec}: cannot load the configuration: {e}") from None

    def decode(word):
        if word == 0:       # an empty payload (before the first fetch): not an error
            return "0"
        try:
            return Instruction.decode(word, config).text()
        except IllegalInstruction as e:
            return f"{RED}ILLEGAL({e.code}) {e.detail}".rstrip()

    return INSTR_BITS, decode


def _op16_decoder():
    """A float array's operand lane with its column's type above it: ``dtype`` bits
    (:class:`hdl.formats.Dtype`) then the 16-bit pattern (the save file's bundle). INT8
    is the signed low byte, BF16/FP16 the number; an undefined dtype is red."""
    from amaranth.hdl import Shape

    from hdl.formats import Dtype
    formats = _float_formats()
    floats = {name: _float_decoder(*formats[name]) for name in ("bf16", "fp16")}
    lane = 1 + formats["bf16"][0] + formats["bf16"][1]

    def decode(word):
        dt, bits = word >> lane, word & ((1 << lane) - 1)
        try:
            name = Dtype(dt).name.lower()
        except ValueError:
            return f"{RED}dtype{dt} {bits:04X}"
        if name == "int8":
            low = bits & 0xFF
            return str(low - 256 if low & 0x80 else low)
        return floats[name](bits)

    return Shape.cast(Dtype).width + lane, decode


def command_kinds():
    """``{kind: (opcode name, golden-model command class)}`` for the engine commands:
    the kind is the opcode in lower case (``dma``, ``matmul``, ``act``), the classes are
    the assembler's (:data:`sim.isa.asm.CMD_TYPES`); ``sim/flow/waves.py`` picks the kind
    of a payload by the class's ``LAYOUT``."""
    from sim.isa.asm import CMD_TYPES
    return {op.lower(): (op, cls) for op, cls in CMD_TYPES.items()}


def _command_decoder(kind):
    from sim.isa.asm import Instruction
    op, cmd_type = command_kinds()[kind]
    width, fields = _fields_decoder(cmd_type.LAYOUT, kind)

    def decode(word):
        try:
            return Instruction(op, cmd_type.decode(word)).text()
        except Exception:
            return fields(word)

    return width, decode


def _hdl_object(kind, what):
    """The object ``<module>.<name>`` after ``enum:``/``fields:``; the module must be
    ``hdl`` or below it (never import whatever a save file names)."""
    path = kind.partition(":")[2]
    if not _DOTTED.fullmatch(path):
        raise ValueError(f"{kind!r}: expected {what} as <module>.<name> (public names "
                         f"only), e.g. hdl.isa.Opcode")
    module, name = path.rsplit(".", 1)
    if module != "hdl" and not module.startswith("hdl."):
        raise ValueError(f"{kind!r}: only modules under hdl. are allowed, not {module!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except Exception as e:              # no such module or name, or it fails to import
        raise ValueError(f"{kind!r}: {type(e).__name__}: {e}") from None


def _enum_decoder(kind):
    import enum
    from amaranth.hdl import Shape
    cls = _hdl_object(kind, "an enum")
    if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
        raise ValueError(f"{kind!r} names no enum")
    shape = Shape.cast(cls)
    is_error = cls.__name__.endswith("Error")

    def decode(value):
        if shape.signed and value >> (shape.width - 1):
            value -= 1 << shape.width
        try:
            member = cls(value)
        except ValueError:
            return f"{RED}{cls.__name__}({value})"
        return member.name if not is_error or member.name == "NONE" else RED + member.name

    return shape.width, decode


def _layout_of(obj):
    """``obj`` as a ``data.Layout`` (a layout or a ``data.Struct`` class), else ``None``."""
    from amaranth.lib import data
    if isinstance(obj, data.Layout):
        return obj
    if isinstance(obj, type) and issubclass(obj, data.View):
        return data.Layout.cast(obj)
    return None


def _flatten(layout, value, prefix=""):
    """``[(name, leaf shape, value)]`` of a decoded struct or array, depth first."""
    from amaranth.lib import data
    if isinstance(layout, data.ArrayLayout):
        items = [(f"{prefix}[{i}]", layout.elem_shape, v) for i, v in enumerate(value)]
    else:
        items = [(f"{prefix}.{n}" if prefix else n, f.shape, value[n]) for n, f in layout]
    out = []
    for name, shape, v in items:
        nested = _layout_of(shape) if isinstance(v, (dict, list)) else None
        out += _flatten(nested, v, name) if nested is not None else [(name, shape, v)]
    return out


def _hdl_layout(kind):
    """The layout ``fields:<module>.<name>`` names: a ``data.Struct`` class, a layout,
    or a function named ``*_layout`` that takes no arguments (``dma_done_layout``).
    Only such functions are called: a save file must not run arbitrary code."""
    obj = _hdl_object(kind, "a layout")
    if callable(obj) and getattr(obj, "__name__", "").endswith("_layout"):
        try:
            obj = obj()
        except TypeError:               # needs arguments (a configuration)
            raise ValueError(f"{kind!r}: only layout functions without arguments") from None
        except Exception as e:
            raise ValueError(f"{kind!r}: {type(e).__name__}: {e}") from None
    return _fields_decoder(obj, kind)


def _fields_decoder(layout, kind):
    from amaranth.hdl import Shape
    from amaranth.lib import data
    from sim.isa import codec
    lay = _layout_of(layout)
    if not isinstance(lay, (data.StructLayout, data.ArrayLayout)):
        # codec (and this listing) knows structs and arrays, not unions or flexible layouts
        raise ValueError(f"{kind!r} names no struct or array layout")

    def text(shape, v):
        if isinstance(v, str):
            return v
        return f"0x{v:x}" if Shape.cast(shape).width > 16 else str(v)

    def decode(word):
        values = codec.decode(lay, word, enums="name")
        return " ".join(f"{n}={text(s, v)}" for n, s, v in _flatten(lay, values))

    return lay.size, decode


def _decoder(kind):
    """``(width, decode)`` for KIND: ``decode`` turns a known integer below
    ``2**width`` into the answer text."""
    if not isinstance(kind, str):
        raise ValueError(f"KIND must be a string, not {kind!r}")
    if kind in ("bf16", "fp16", "fp32"):
        ebits, fbits, bias = _float_formats()[kind]
        return 1 + ebits + fbits, _float_decoder(ebits, fbits, bias)
    if kind in command_kinds():
        return _command_decoder(kind)
    if kind == "op16":
        return _op16_decoder()
    if kind.startswith("insn:") and kind != "insn:":
        return _insn_decoder(kind[len("insn:"):])
    if kind.startswith("enum:"):
        return _enum_decoder(kind)
    if kind.startswith("fields:"):
        return _hdl_layout(kind)
    raise ValueError(f"unknown KIND {kind!r}: use bf16, fp16, fp32, dma, matmul, act, "
                     f"op16, insn:<config name or JSON file>, enum:hdl.<module>.<Enum> or "
                     f"fields:hdl.<module>.<Struct>")


# ---------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------

def _one_line(text):
    return text.replace("\r", " ").replace("\n", " ")


def make_translator(kind):
    """A function ``text -> answer`` for KIND (parsed, and its modules imported, once).

    Raises ``ValueError`` naming the problem for an unknown or malformed KIND; the
    function returned never raises (see the module docstring for its conventions)."""
    width, decode = _decoder(kind)

    def translator(text):
        try:
            s = text.strip()
            s = s[1:].strip() if s.startswith("$") else s
            if not s:
                return ""
            if not _VALUE.fullmatch(s):
                return _one_line(text)
            if not _UNKNOWN.isdisjoint(s):
                return "x"
            value = int(s, 16)
            if value >> width:
                return f"{RED}{s}"
            return _one_line(decode(value))
        except Exception:
            return _one_line(str(text))

    return translator


@functools.lru_cache(maxsize=None)
def _cached(kind):
    return make_translator(kind)


def translate(kind, text) -> str:
    """The answer to one GTKWave line ``text`` (without its newline) for KIND.
    ``ValueError`` for an unknown KIND."""
    return _cached(kind)(text)


def main(argv=None):
    """Serve GTKWave: one answer line per stdin line, flushed at once, until EOF."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    try:
        if len(argv) != 1:
            raise ValueError(f"expected exactly one argument, KIND, not {argv!r}")
        translator = make_translator(argv[0])
    except Exception as e:              # keep answering, or GTKWave waits forever
        print(f"ncore-wavefilter: {e}; echoing the input", file=sys.stderr, flush=True)
        translator = _one_line
    # bytes in and out where possible: surrogateescape echoes any byte string exactly,
    # and no locale's encoding can make a write fail
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    stdout = getattr(sys.stdout, "buffer", None)
    try:
        while line := stdin.readline():
            if isinstance(line, bytes):
                line = line.decode("utf-8", "surrogateescape")
            answer = translator(line.rstrip("\r\n")) + "\n"
            if stdout is None:
                sys.stdout.write(answer)
                sys.stdout.flush()
            else:
                stdout.write(answer.encode("utf-8", "surrogateescape"))
                stdout.flush()
    except (BrokenPipeError, KeyboardInterrupt):    # GTKWave went away
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
