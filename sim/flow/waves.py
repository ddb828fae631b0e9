# amaranth: UnusedElaboratable=no
# (a top is elaborated here only to learn its signals' names, never simulated)
"""GTKWave save files that a person can read: opened on the activity, payloads split
into named fields and lanes, numbers and instructions decoded, one view per top.

How the names are found. Every trace in a save file names a signal as Verilator
writes it to the FST: the instance path, the Verilog name, and the range
(``neuron_core.core.controller.fetch.o__valid``). Rather than guess those names, the
writer elaborates the top exactly as :mod:`sim.flow.rtl` does and asks Amaranth's
RTLIL back end for the name it gives each ``Signal`` (its name map). The views are
written in terms of the Python objects (a component found by its submodule path, a
port member by its signature path), so a renamed port breaks ``tests/test_waves.py``
rather than silently dropping a trace. Amaranth also emits a wire per field of every
``data`` layout (``o_y__payload.data[3]``), which is how payloads are shown split.

How values are shown (:func:`_leaf`): 1-bit signals in binary; signed fields (INT8
operands, INT32 results) in signed decimal; small unsigned fields in decimal; wide
ones in hex; enums (:class:`hdl.isa.Opcode`, :class:`hdl.isa.CoreError`, the engines'
error codes and states) by name; instruction words as the disassembler's text; engine
commands (DMA descriptors, MATMUL, ACT) by field; float lanes (BF16/FP16 operands with
their ``dtype``, FP32 results) as numbers. The decoding is done by GTKWave's
*translate filter process*, :mod:`sim.flow.wavefilter` (console script
``ncore-wavefilter``), which reads the project's own format definitions.

When the run is over, :func:`write_gtkw` is given the test's end time and the time
reset was released (``NCORE_WAVE_MARKS``, written by
:func:`tb.common.start_clock_and_reset`): the window opens zoomed to the whole test,
with marker A at the end of reset and marker B at the end of the test.
"""

import functools
import math
import pathlib
import sys

from amaranth.hdl import Fragment, Shape, ShapeCastable, Signal, Value
from amaranth.lib import data, enum, wiring

from hdl.config import named_config

__all__ = ["Design", "write_gtkw", "views", "FILTER_CMD", "zoom_for", "Trace", "Group"]

#: GTKWave trace flags (analyzer.h): the ``@<hex>`` line before a trace sets them.
DEC, BIN, SIGNED, RJUSTIFY = 0x4, 0x8, 0x400, 0x20
HEX = 0x2 | RJUSTIFY      # right-justified: the value as a number, whatever its width
BLANK, PTRANSLATED, CLOSED = 0x200, 0x4000, 0x400000
GRP_BEGIN, GRP_END = 0x800000, 0x1000000

#: The window the save file asks for, and the wave area that leaves (measured on
#: GTKWave 3.3.118: width - signals pane - SST pane - 24 pixels of borders).
SIZE = (1800, 1000)
SIGNALS_WIDTH = 440
SST_WIDTH = 200
WAVE_WIDTH = SIZE[0] - SIGNALS_WIDTH - SST_WIDTH - 24

#: The filter process: the console script installed beside this Python (pyproject
#: ``[project.scripts]``). GTKWave runs it with exactly one argument, the kind.
FILTER_CMD = str(pathlib.Path(sys.executable).with_name("ncore-wavefilter"))


def zoom_for(span, width=WAVE_WIDTH, margin=0.96):
    """GTKWave's zoom value that shows ``span`` time units across ``width`` pixels:
    GTKWave draws ``2**-zoom / 200`` units per pixel (``calczoom``, zoom base 2)."""
    span = max(int(span), 1)
    return min(0.0, -math.log2(span * 200 / (width * margin)))


class Trace:
    """One row of the view: ``name`` as GTKWave knows it (with ``[hi:lo]``), the
    ``label`` shown, GTKWave ``flags``, the filter ``kind`` (or None), and for a bundle
    of bits ``bits`` (a list of ``(offset from the MSB, name)``)."""

    def __init__(self, name, label, flags, kind=None, bits=None):
        self.name, self.label, self.flags, self.kind, self.bits = name, label, flags, kind, bits

    def lines(self):
        flags = self.flags | (PTRANSLATED if self.kind else 0)
        # GTKWave shows a dotted label as a hierarchy (its last part only)
        label = self.label.replace(".", "/")
        out = [f"@{flags:x}"]
        if self.kind:
            out.append(f"^>1 {FILTER_CMD} {self.kind}")
        if self.bits:
            out.append(f"#{{{label}}} " + " ".join(f"({o}){n}" for o, n in self.bits))
        else:
            out.append(f"+{{{label}}} {self.name}")
        return out

    def names(self):
        """The dump's signal names this trace needs."""
        return sorted({n for _o, n in self.bits}) if self.bits else [self.name]


class Group:
    """A titled group of traces (and nested groups); ``closed`` groups open folded."""

    def __init__(self, title, items=(), closed=False):
        self.title, self.items, self.closed = title, list(items), closed

    def lines(self):
        begin = GRP_BEGIN | BLANK | (CLOSED if self.closed else 0)
        out = [f"@{begin:x}", f"-{self.title}"]
        for item in self.items:
            out += item.lines()
        return out + [f"@{GRP_END | BLANK:x}", f"-{self.title}"]

    def traces(self):
        for item in self.items:
            yield from (item.traces() if isinstance(item, Group) else [item])


# ---- the design's names ---------------------------------------------------------------

class Design:
    """A top elaborated for ``config``: its components by submodule path, and the
    Verilog name of each of its signals.

    ``obj(path)`` is the component at ``"core.controller.decode"``;
    ``name(value)`` the full dump name of a signal (or None if the design has no
    such wire: a port nobody reads is still kept, a signal optimised away is not)."""

    def __init__(self, top, config):
        from amaranth.back import rtlil
        from amaranth.hdl._ir import PortDirection   # as amaranth.back.rtlil.convert does

        from hdl.dsp import target_named
        from sim.flow.rtl import TOPS, target_of
        self.top, self.config = top, named_config(config)
        self.dut = TOPS[top](self.config)
        fragment = Fragment.get(self.dut, target_named(target_of(top)))
        ports = {}
        for path, member, value in self.dut.signature.flatten(self.dut):
            ports["__".join(map(str, path))] = (
                Value.cast(value), PortDirection.Output if member.flow == wiring.Out
                else PortDirection.Input)
        _text, name_map = rtlil.convert_fragment(fragment, ports, top, emit_src=False)
        self._names = name_map          # a SignalDict: Signal -> (module..., wire)
        self.objects = {}
        self._walk(fragment, ())

    def _walk(self, fragment, path):
        for origin in getattr(fragment, "origins", None) or ():
            if isinstance(origin, wiring.Component) or hasattr(origin, "_elaboratable"):
                self.objects.setdefault(".".join(path), origin)
        for sub, name, _loc in fragment.subfragments:
            self._walk(sub, path + (str(name),))

    def obj(self, path):
        if path not in self.objects:
            raise KeyError(f"{self.top} has no component at {path!r}")
        return self.objects[path]

    def by_name(self, full_name):
        """The signal whose dump name is ``full_name``, or None."""
        if not hasattr(self, "_by_name"):
            self._by_name = {".".join(p): s for s, p in self._names.items()}
        return self._by_name.get(full_name)

    def name(self, value):
        sig = Value.cast(value)
        path = self._names.get(sig) if isinstance(sig, Signal) else None
        return ".".join(path) if path else None


@functools.lru_cache(maxsize=8)
def _design(top, config_key, config_json):
    from hdl.config import CoreConfig
    return Design(top, CoreConfig.from_json(config_json))


def design(top, config):
    cfg = named_config(config)
    return _design(top, cfg.key, cfg.to_json())


# ---- traces from values ---------------------------------------------------------------

def _word_kinds(config_path):
    """Layouts shown as one decoded word (the filter's kind), not split into fields."""
    from hdl.isa import Instr
    from sim.flow.wavefilter import command_kinds
    kinds = {cls.LAYOUT: kind for kind, (_op, cls) in command_kinds().items()}
    return {Instr: f"insn:{config_path}", **kinds}


def _vec(name, width):
    return name if width == 1 else f"{name}[{width - 1}:0]"


def _enum_kind(shape):
    """The filter kind of a project enum (``enum:hdl.isa.CoreError``), else None."""
    if (isinstance(shape, type) and issubclass(shape, enum.Enum)
            and shape.__module__.startswith("hdl.")):
        return f"enum:{shape.__module__}.{shape.__qualname__}"
    return None


class Views:
    """Builds the traces of one design's signals; ``missing`` collects the labels of
    view entries the design has no signal for."""

    def __init__(self, dsg, config_path):
        self.d = dsg
        self.words = _word_kinds(config_path)
        self.missing = []

    def _leaf(self, name, shape, label, kind=None):
        if isinstance(shape, ShapeCastable) and not isinstance(shape, data.Layout):
            kind = kind or _enum_kind(shape)
        sh = Shape.cast(shape)
        if kind == "hex16":             # raw bits (a float PE's operand: any dtype)
            return Trace(_vec(name, sh.width), label, HEX)
        if kind:
            return Trace(_vec(name, sh.width), label, HEX, kind)
        if sh.width == 1:
            return Trace(name, label, BIN)
        if sh.signed:
            return Trace(_vec(name, sh.width), label, DEC | SIGNED | RJUSTIFY)
        if sh.width <= 16:
            return Trace(_vec(name, sh.width), label, DEC | RJUSTIFY)
        return Trace(_vec(name, sh.width), label, HEX)

    def shape_traces(self, name, shape, label, lanes=None):
        """Traces of a value named ``name`` of ``shape``: a decoded word, or one trace
        per leaf field (the wires Amaranth emits per field: ``name.f``, ``name[i]``).
        ``lanes``: a filter kind for the leaves of a ``data`` array (float lanes)."""
        if shape in self.words:
            return [self._leaf(name, shape, label, self.words[shape])]
        if isinstance(shape, data.StructLayout) or isinstance(shape, type) and issubclass(
                shape, data.Struct):
            layout = data.Layout.cast(shape)
            if layout in self.words:
                return [self._leaf(name, shape, label, self.words[layout])]
            out = []
            for field_name, field in layout:
                out += self.shape_traces(f"{name}.{field_name}", field.shape,
                                         f"{label}.{field_name}", lanes)
            return out
        if isinstance(shape, data.ArrayLayout):
            elem = shape.elem_shape
            out = []
            for i in range(shape.length):
                out += self.shape_traces(f"{name}[{i}]", elem, f"{label}[{i}]", lanes)
            return out
        return [self._leaf(name, shape, label, lanes)]

    def value(self, value, label, shape=None, lanes=None):
        """Traces of a signal (a View or a Value) or of every port of an interface,
        or [] (noted in ``missing``)."""
        if not isinstance(value, (Value, data.View)) and hasattr(value, "signature"):
            out = []
            for path, member, sub in value.signature.flatten(value):
                out += self.value(sub, ".".join([label, *map(str, path)]), member.shape, lanes)
            return out
        name = self.d.name(value)
        if name is None:
            self.missing.append(label)
            return []
        if shape is None:
            shape = value.shape() if isinstance(value, data.View) else Value.cast(value).shape()
        return self.shape_traces(name, shape, label, lanes)

    def member(self, obj_path, member_path, label=None, lanes=None):
        """Traces of port ``member_path`` ("o.payload", "o.payload.cmd") of the
        component at ``obj_path``; a path into a ``data`` layout names the wire
        Amaranth emits for that field."""
        label = label or member_path
        value = self.d.obj(obj_path)
        parts = member_path.split(".")
        while parts and not (isinstance(value, (Value, data.View)) and self.d.name(value)):
            part = parts.pop(0)
            value = value[int(part)] if part.isdigit() else getattr(value, part)
        if not parts:
            return self.value(value, label, lanes=lanes)
        name = self.d.name(value)
        shape = value.shape()
        for part in parts:
            layout = data.Layout.cast(shape)
            if isinstance(layout, data.ArrayLayout):
                name, shape = f"{name}[{int(part)}]", layout.elem_shape
            else:
                name, shape = f"{name}.{part}", layout[part].shape
        return self.shape_traces(name, shape, label, lanes)

    def stream(self, obj_path, member, label=None, lanes=None, payload=True):
        """valid, ready and the payload of a stream port."""
        label = label or member
        out = (self.member(obj_path, f"{member}.valid", f"{label}.valid")
               + self.member(obj_path, f"{member}.ready", f"{label}.ready"))
        if payload:
            out += self.member(obj_path, f"{member}.payload", f"{label}", lanes)
        return out

    def ports(self, obj_path="", lanes=None):
        """Every port of a component: one group per interface (AXI ports one group per
        channel: AW, W, B, AR, R), the single-signal ports together in "signals".
        ``lanes``: ``{port label: filter kind}`` for ports shown as numbers."""
        obj = self.d.obj(obj_path)
        groups = {}
        lanes = lanes or {}
        for path, member, value in obj.signature.flatten(obj):
            path = tuple(map(str, path))
            if path in (("clk",), ("rst",)):
                continue                # the clock group has them
            outer = obj.signature.members[path[0]]
            key = path[0] if len(path) > 1 else "signals"
            if _is_axi(outer):
                key = f"{path[0]} {_axi_channel(path[-1])}"
            label = ".".join(path)
            groups.setdefault(key, []).extend(
                self.value(value, label, shape=member.shape, lanes=lanes.get(label)))
        return [Group(k, v) for k, v in groups.items() if v]


def _is_axi(member):
    return member.is_port is False and {"arvalid", "rvalid"} <= set(member.signature.members)


def _axi_channel(name):
    for ch in ("aw", "ar", "w", "b", "r"):
        if name.startswith(ch):
            return ch.upper()
    return "misc"


# ---- per-top views -----------------------------------------------------------------

def _operand_bundles(v, obj_path, member, label):
    """Lanes of a float configuration's operand stream as ``dtype`` + 16 bits, decoded
    by the ``op16`` filter (INT8 in the low byte, BF16 or FP16 by the column's dtype)."""
    obj = v.d.obj(obj_path)
    payload = getattr(obj, member).payload
    name = v.d.name(payload)
    if name is None:
        v.missing.append(f"{label} lanes")
        return []
    layout = payload.shape()
    dt_w = Shape.cast(layout["dtype"].shape).width
    el_w = Shape.cast(layout["data"].shape.elem_shape).width
    out = []
    for i in range(layout["data"].shape.length):
        lane = f"{name}.data[{i}][{el_w - 1}:0]"
        dt = f"{name}.dtype[{dt_w - 1}:0]"
        bits = [(o, dt) for o in range(dt_w)] + [(o, lane) for o in range(el_w)]
        out.append(Trace(None, f"{label}.data[{i}]", HEX, "op16", bits=bits))
    return out


def _systolic_groups(v, path, cfg, *, rows=True):
    """The array's streams with lanes, its bookkeeping, and one group per row."""
    groups = []
    for member, label in (("i_w", "i_w"), ("i_x", "i_x")):
        items = v.stream(path, member, label, payload=not cfg.has_float)
        if cfg.has_float:
            items += _operand_bundles(v, path, member, label)
            items += v.member(path, f"{member}.payload.last", f"{label}.last")
            items += v.member(path, f"{member}.payload.dtype", f"{label}.dtype")
        kind = "dtype + 16-bit lanes" if cfg.has_float else "INT8 lanes"
        groups.append(Group(f"{label} ({kind})", items))
    items = v.stream(path, "o_y", "o_y", lanes="fp32" if cfg.has_float else None)
    groups.append(Group(f"o_y ({'FP32' if cfg.has_float else 'INT32'} lanes)", items))
    if cfg.has_float:
        groups.append(Group("o_y as INT32 (INT8 matmuls)",
                            v.member(path, "o_y.payload.data", "o_y.data"), closed=True))
    if rows:
        for k in range(cfg.rows):
            items = []
            for j in range(cfg.cols):
                pe = v.d.objects.get(f"{path}.pe_r{k}_c{j}" if path else f"pe_r{k}_c{j}")
                if pe is None:
                    continue
                for port, kind in (("o_x", "hex16" if cfg.has_float else None),
                                   ("o_psum", "fp32" if cfg.has_float else None)):
                    if hasattr(pe, port):
                        items += v.value(getattr(pe, port), f"pe_r{k}_c{j}.{port}",
                                         lanes=kind)
            groups.append(Group(f"row {k}", items, closed=k > 0))
    return groups


#: Engine classes, the name of their command stream, and a short name.
ENGINES = {"DMAEngine": "i_desc", "TensorEngine": "i_cmd", "VectorEngine": "i_cmd"}


def _engine_group(v, path, title):
    """An engine's command stream (decoded), state, busy, completion and status."""
    eng = v.d.obj(path)
    cmd = ENGINES[type(eng).__name__]
    items = v.stream(path, cmd, cmd)
    for label, value, shape in _engine_states(v, path):
        items += v.value(value, label, shape)
    items += v.member(path, "o_busy", "busy")
    if "status" in eng.signature.members:
        items += v.member(path, "status", "status")
    if "o_done" in eng.signature.members:
        items += v.stream(path, "o_done", "done")
    return Group(title, items)


def _core_groups(v, core):
    """The whole core: run state, fetch, decode, each engine's queue (level, semaphore
    wait, command), the engines, the semaphores, and the DRAM bus per channel."""
    c = f"{core}.core" if core else "core"
    ctl = f"{c}.controller"
    groups = []
    items = (v.member(ctl, "ctrl", "ctrl") + v.member(ctl, "status", "status"))
    groups.append(Group("controller: run", items))
    fetch = v.stream(f"{ctl}.fetch", "o", "fetch.o")
    fetch += v.member(f"{ctl}.fetch", "o_busy", "fetch.busy")
    fetch += v.value(v.d.obj(f"{ctl}.fetch.ifq").level, "fetch.buffered")
    groups.append(Group("controller: fetch", fetch))
    dec = v.member(f"{ctl}.decode", "o_pc", "decode.pc")
    dec += v.stream(f"{ctl}.decode", "i", "decode.i")
    dec += v.member(f"{ctl}.decode", "o_wait", "decode.wait")
    dec += v.member(f"{ctl}.decode", "i_wait_ok", "decode.wait_ok")
    dec += v.member(f"{ctl}.decode", "o_signal", "decode.signal")
    dec += v.member(f"{ctl}.decode", "o_blocked", "decode.blocked")
    dec += v.member(f"{ctl}.decode", "o_fault", "decode.fault")
    groups.append(Group("controller: decode", dec))
    for q in ("dma_in", "dma_out", "tensor", "vector"):
        qp = f"{ctl}.{q}_queue"
        items = v.value(v.d.obj(f"{qp}.queue").level, f"{q}.level")
        items += v.value(v.d.obj(f"{qp}.inflight").level, f"{q}.in_flight")
        items += v.member(qp, "o_wait", f"{q}.wait")
        items += v.member(qp, "i_wait_ok", f"{q}.wait_ok")
        items += v.member(qp, "o_blocked", f"{q}.blocked")
        items += v.member(qp, "o_head_addr", f"{q}.head_addr")
        items += v.stream(qp, "o", f"{q}.issue")
        groups.append(Group(f"queue: {q}", items))
    groups.append(Group("semaphores", v.member(f"{ctl}.sems", "o_value", "sem")))
    groups.append(Group("faults", v.member(f"{ctl}.faults", "o_first", "first")
                        + v.member(f"{ctl}.watchdog", "o_fire", "watchdog.fire")))
    for eng in ("dma_in", "dma_out", "tensor", "vector"):
        groups.append(_engine_group(v, f"{c}.{eng}", f"engine: {eng}"))
    for name in ("m_axi",):
        for g in v.ports(c):
            if g.title.startswith(name):
                g.title = f"DRAM {g.title}"
                groups.append(g)
    return groups


def _engine_states(v, path):
    """The engine's state register by name: ``dma_state`` (:class:`hdl.dma.DmaState`)
    or ``act_state`` (:class:`hdl.vector.ActState`); local signals, found by name."""
    from hdl.dma import DmaState
    from hdl.vector import ActState
    out = []
    for name, shape in (("dma_state", DmaState), ("act_state", ActState)):
        sig = v.d.by_name(f"{v.d.top}.{path}.{name}")
        if sig is not None:
            out.append(("state", sig, shape))
    return out


#: The FP units' operands and results as numbers (``fp_mul16`` takes BF16 or FP16 by
#: ``i_fmt``; its operands are shown as BF16 here and as FP16 in a second group).
FP_LANES = {
    "fp32_adder": {"i_a": "fp32", "i_b": "fp32", "o_sum": "fp32"},
    "fp_mul16": {"i_a": "bf16", "i_b": "bf16", "o_prod": "fp32"},
}


def views(top, config, config_path="default"):
    """The groups of the save file for ``top``, and the list of view entries that the
    design does not have (``tests/test_waves.py`` requires it to be empty)."""
    dsg = design(top, config)
    v = Views(dsg, config_path)
    cfg = dsg.config
    groups = [Group("clock", [Trace(f"{top}.clk", "clk", BIN), Trace(f"{top}.rst", "rst", BIN)])]
    if top == "systolic_array":
        groups += _systolic_groups(v, "", cfg)
        groups += [g for g in v.ports("") if g.title not in ("i_w", "i_x", "o_y")]
    elif top in ("neuron_core", "neuron_core_sim"):
        core = "" if top == "neuron_core" else "core"
        groups += _core_groups(v, core)
        host = "host" if top == "neuron_core" else "core.host"
        groups += [Group(f"host {g.title}", g.items, closed=True)
                   for g in v.ports(host) if g.title.startswith("s_axil")]
        arr = f"{'core.' if core else ''}core.tensor.array"
        groups += [Group(f"array: {g.title}", g.items, closed=True)
                   for g in _systolic_groups(v, arr, cfg, rows=False)]
    else:
        unit = next((u for u in FP_LANES if top.startswith(u)), None)   # also *_ftz
        groups += v.ports("", lanes=FP_LANES.get(unit))
        # the engines and the array inside a subsystem top
        for path, obj in sorted(dsg.objects.items()):
            if type(obj).__name__ in ENGINES:
                groups.append(_engine_group(v, path, f"engine: {path}"))
            elif type(obj).__name__ == "SystolicArray":
                groups += [Group(f"{path}: {g.title}", g.items, closed=True)
                           for g in _systolic_groups(v, path, cfg, rows=False)]
    if top.startswith("fp_mul16"):
        groups.append(Group("operands as FP16", v.member("", "i_a", "i_a", "fp16")
                            + v.member("", "i_b", "i_b", "fp16")))
    return groups, v.missing


_CONFIG_SLOT = "@CONFIG@"


def view_lines(top, config):
    """The save-file lines of :func:`views` for (top, config), with ``@CONFIG@`` where
    the configuration file's path goes. Cached in ``build/waves/.views/`` by the
    digest of the gateware (:func:`sim.flow.rtl._design_digest`): elaborating the
    simulation core for its names takes half a minute."""
    import hashlib
    import json

    from sim.flow.rtl import BUILD, _design_digest, target_of
    cfg = named_config(config)
    h = hashlib.sha256(_design_digest(top, cfg, target_of(top)).encode())
    h.update(pathlib.Path(__file__).read_bytes())
    cache = BUILD / "waves" / ".views" / f"{top}-{cfg.key}-{h.hexdigest()[:16]}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    groups, _missing = views(top, cfg, _CONFIG_SLOT)
    lines = [line for g in groups for line in g.lines()]
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{id(lines)}")
    tmp.write_text(json.dumps(lines))
    tmp.replace(cache)
    return lines


def write_gtkw(top, config, fst_path, *, end_ps=None, marks=None):
    """Write ``<test>.gtkw`` (and ``config.json``, which the instruction filter reads)
    next to ``fst_path``; return the save file's path.

    ``end_ps``: the test's last time (ps): the window opens zoomed to 0..end_ps;
    ``marks``: ``{letter: (name, time_ps)}`` named markers (A: reset released,
    B: end of test). Paths in the file are absolute, so GTKWave (and the filter) can
    be started from any directory."""
    cfg = named_config(config)
    fst_path = pathlib.Path(fst_path).resolve()
    cfg_file = fst_path.with_name("config.json")
    cfg_file.write_text(cfg.to_json() + "\n")
    lines = [f"[*] ncore: {top} ({cfg.name}); written by sim/flow/waves.py",
             f'[dumpfile] "{fst_path}"',
             f"[size] {SIZE[0]} {SIZE[1]}", f"[signals_width] {SIGNALS_WIDTH}",
             f"[sst_width] {SST_WIDTH}", "[sst_expanded] 0", "[timestart] 0"]
    marks = marks or {}
    named = ["-1"] * 26
    for letter, (_name, t) in marks.items():
        named[ord(letter) - ord("A")] = str(int(t))
    zoom = zoom_for(end_ps) if end_ps else -20.0
    lines.append(f"*{zoom:.6f} -1 " + " ".join(named))
    for letter, (name, _t) in marks.items():
        lines.append(f"[markername] {letter}{name}")
    lines += [line.replace(_CONFIG_SLOT, str(cfg_file)) for line in view_lines(top, cfg)]
    path = fst_path.with_suffix(".gtkw")
    path.write_text("\n".join(lines) + "\n")
    return path
