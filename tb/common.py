"""Shared cocotb testbench helpers: configuration, seeds, clocking, stream packing.

:class:`TB` is the base of every testbench class (clock, reset, seeded generator,
``fail``); :class:`AxiPauses` the backpressure of cocotbext-axi channels;
:class:`StreamSource` / :class:`StreamSink` the per-cycle valid/ready drivers;
:func:`float_bits` / :func:`float_operands` the random float stimulus.

Stream ports appear in the Verilog as ``<name>__valid``, ``<name>__ready`` and
``<name>__payload`` (one flat vector per payload). :class:`Packer` turns NumPy values
into those vectors and back using the layouts in :mod:`hdl.formats`, so no bit offset
is written twice: scalar fields go through :mod:`sim.isa.codec` (the one codec of every
format); only the elements of array fields are placed here, from
:func:`hdl.formats.field_slices`.
"""

import os

import numpy as np
import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from hdl.config import CoreConfig
from hdl.tops import sim_clock
from hdl.formats import field_slices
from sim.isa import codec

__all__ = ["AxiRamErrors", "AxiPauses", "TB", "StreamSource", "StreamSink", "config_from_env",
           "seed_from_env", "Packer", "start_clock_and_reset", "float_bits", "float_operands",
           "CLOCK_PERIOD_NS", "RESET_CYCLES"]

CLOCK_PERIOD_NS = sim_clock.CLOCK_PERIOD_NS
#: cycles ``rst`` is held by :func:`start_clock_and_reset`
RESET_CYCLES = 4


def config_from_env():
    """The CoreConfig the runner built this simulation for."""
    text = os.environ.get("NCORE_CONFIG")
    if not text:
        raise RuntimeError("NCORE_CONFIG is not set: run this testbench through sim.flow.runner")
    return CoreConfig.from_json(text)


def seed_from_env():
    """The seed chosen by the runner; logged so any failure can be reproduced."""
    seed = int(os.environ.get("NCORE_SEED", "1"))
    cocotb.log.info("seed %d (rerun with SEED=%d)", seed, seed)
    return seed


class Packer:
    """Packs ``{field: value}`` / NumPy arrays into a flat payload integer and back.

    Parameters
    ----------
    layout : amaranth.lib.data.Layout
        The payload layout, e.g. ``column_layout(config)``.
    """

    def __init__(self, layout):
        self.layout = layout
        self.fields = field_slices(layout)
        self.width = layout.size

    def array_fields(self, name):
        """``(offsets, width, signed)`` of the elements of array field ``name``."""
        items = sorted(((int(k.rsplit(".", 1)[1]), v) for k, v in self.fields.items()
                        if k.rsplit(".", 1)[0] == name), key=lambda kv: kv[0])
        offsets = [v[0] for _, v in items]
        width, signed = items[0][1][1], items[0][1][2]
        return offsets, width, signed

    def pack(self, **values):
        """Pack scalars (range-checked by :func:`sim.isa.codec.encode`) and 1-D arrays (for
        array fields; each element taken modulo its width, so a signed value may fill
        an unsigned element) into one integer."""
        scalars = {name: value for name, value in values.items() if name in self.fields}
        word = codec.encode(self.layout, scalars)
        for name, value in values.items():
            if name not in self.fields:
                offsets, width, _ = self.array_fields(name)
                # dtype=object keeps Python ints exact: a list mixing values above
                # and below 2**63 would otherwise become float64 and lose low bits
                value = np.asarray(value, dtype=object).reshape(-1)
                if len(value) != len(offsets):
                    raise ValueError(f"{name} needs {len(offsets)} elements, got {len(value)}")
                mask = (1 << width) - 1
                for off, v in zip(offsets, value):
                    word |= (int(v) & mask) << off
        return word

    def unpack_array(self, word, name):
        """Elements of array field ``name`` from a payload integer, as int64."""
        offsets, width, signed = self.array_fields(name)
        mask = (1 << width) - 1
        out = np.empty(len(offsets), dtype=np.int64)
        for i, off in enumerate(offsets):
            v = (word >> off) & mask
            if signed and v >> (width - 1):
                v -= 1 << width
            out[i] = v
        return out

    def unpack(self, word, name):
        """Scalar field ``name`` of a payload integer (:func:`sim.isa.codec.decode`; an enum
        field as its raw value)."""
        return codec.decode(self.layout, word, enums="raw")[name]


async def start_clock_and_reset(dut, cycles=RESET_CYCLES):
    """Start a 100 MHz clock on ``dut.clk``, hold ``dut.rst`` for ``cycles`` and return
    on the first clock edge the design is out of reset.

    The clock is cocotb's C++ driver (``impl="gpi"``; the runner's default on Verilator
    too, made explicit: a Python coroutine would cost a wake-up per edge, 2.4x the
    INT8 core's run time), or none when the model generates its own
    (``NCORE_FREE_CLOCK``, set by the runner for ``sim.flow.runner.FREE_CLOCK_TOPS``;
    ``dut.clk`` is then that clock). Tops that register their reset
    (:mod:`hdl.tops.sim_clock`) leave it ``NCORE_RESET_DELAY`` cycles later, so the
    testbench waits those too: every test sees the same first cycle either way."""
    if os.environ.get("NCORE_FREE_CLOCK", "0") in ("", "0"):
        Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    for _ in range(1 + int(os.environ.get("NCORE_RESET_DELAY", "0"))):
        await RisingEdge(dut.clk)
    wave_mark("reset released")


def wave_mark(name):
    """Note the current time as a named marker of the run's waveform
    (``NCORE_WAVE_MARKS``, set by ``sim.flow.runner`` when it records waves; the save
    file puts the first such marker, the end of reset, at marker A)."""
    path = os.environ.get("NCORE_WAVE_MARKS")
    if path:
        from cocotb.simtime import get_sim_time
        with open(path, "a") as f:
            f.write(f"{int(get_sim_time('ps'))} {name}\n")


class TB:
    """Base of the testbench classes: the DUT, the configuration the runner built it
    for, the seed (``NCORE_SEED``) and a NumPy generator seeded with it, clock and
    reset, and :meth:`fail` (every failure names the seed).

    Subclasses list the inputs that must be low before reset in ``IDLE_INPUTS`` (stream
    valids and readies, clear strobes; or pass ``idle_inputs``, as the bare unit
    tests of tb/fp do) and extend :meth:`reset` for anything else.
    Cycle-stepping helpers (:meth:`tick`, ``read_only``, ``cycle``) are shared by the
    testbenches that drive streams cycle by cycle.
    """

    #: inputs set to 0 before reset, in this order
    IDLE_INPUTS = ()

    def __init__(self, dut, *, idle_inputs=None):
        self.dut = dut
        # reset from time 0, before a subclass builds its bus models (cocotbext-axi): a
        # model that sees the reset low at its start serves the bus at the first clock
        # edge, when the design's valids may still be the flip-flops' power-up values
        # (tests/test_xstress.py runs the designs without power-up values)
        dut.rst.value = 1
        if idle_inputs is not None:
            self.IDLE_INPUTS = tuple(idle_inputs)
        self.cfg = config_from_env()
        self.seed = seed_from_env()
        self.rng = np.random.default_rng(self.seed)
        self.pauses = AxiPauses(self.rng)
        self.edge = RisingEdge(dut.clk)
        self.read_only = ReadOnly()
        self.cycle = 0

    def fail(self, message):
        raise AssertionError(f"{message} (seed {self.seed})")

    async def reset(self):
        """Idle the inputs, start the clock, hold ``rst`` for :data:`RESET_CYCLES`."""
        for name in self.IDLE_INPUTS:
            getattr(self.dut, name).value = 0
        await start_clock_and_reset(self.dut)

    async def tick(self):
        """Wait for the next rising edge and count it in ``self.cycle``."""
        await self.edge
        self.cycle += 1

    # -- AXI backpressure (cocotbext-axi models) ---------------------------------------

    def axi_channels(self):
        """The cocotbext-axi channels :meth:`set_backpressure` pauses (none here)."""
        return ()

    @property
    def backpressure(self):
        """Pause probability of every channel of :meth:`axi_channels`."""
        return self.pauses.p

    @backpressure.setter
    def backpressure(self, p):
        self.pauses.p = p

    def set_backpressure(self, p):
        """Random pauses with probability ``p`` on every channel of
        :meth:`axi_channels` (0 = none); the generators are installed on the first
        call (see :class:`AxiPauses`)."""
        self.pauses.p = p
        self.pauses.install(self.axi_channels())


class AxiPauses:
    """Random pause generators for cocotbext-axi channels that all read one pause
    probability ``p`` every cycle and draw from ``rng`` (one ``rng.random()`` per
    channel per cycle while ``p`` is non-zero, none while it is zero).

    The generators are installed once (:meth:`install`) and ``p`` changes under them:
    swapping generators while a channel sleeps can leave cocotbext-axi's sink waiting
    for a wake-up that never comes (seen as AWREADY stuck low). When the generators
    are installed matters for the random sequence (the first value is drawn at
    installation), so each testbench keeps its own moment: at construction (host) or
    at the first ``set_backpressure`` (core, DMA).
    """

    def __init__(self, rng):
        self.rng = rng
        self.p = 0.0
        self.installed = False

    def install(self, channels):
        """Give each of ``channels`` a pause generator (only the first time)."""
        channels = list(channels)
        if self.installed or not channels:
            return
        for ch in channels:
            ch.set_pause_generator(self._pauses())
        self.installed = True

    def _pauses(self):
        while True:
            p = self.p
            yield bool(p and self.rng.random() < p)

    @staticmethod
    def axi_ram_channels(ram):
        """The five channels of a cocotbext-axi ``AxiRam`` (AR, R, AW, W, B)."""
        rd, wr = ram.read_if, ram.write_if
        return (rd.ar_channel, rd.r_channel, wr.aw_channel, wr.w_channel, wr.b_channel)


class StreamSource:
    """Sends ``items`` on the stream port ``name`` (``<name>__valid/ready/payload``),
    one per handshake, optionally pausing at random before presenting each one.

    Called by a per-cycle loop in three phases: :meth:`drive` just after a clock edge
    (present the next item unless paused: one ``rng.random()`` per cycle while idle
    and ``pause`` is set), :meth:`sample` in ``ReadOnly`` (did ``valid & ready`` hold
    before the edge?) and :meth:`advance` after the edge. A presented item stays
    stable until it is taken (stream rules); ``valid`` is written only when it changes.
    """

    def __init__(self, dut, name, items=(), *, pause=0.0, rng=None):
        if pause and rng is None:
            raise ValueError("a pausing StreamSource needs a random generator")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.items = list(items)
        self.pause, self.rng = pause, rng
        self.sent = 0           # items taken
        self.on = False         # an item is presented
        self.fired = False      # ... and was taken at the last edge
        self._driven = None

    @property
    def done(self):
        return self.sent >= len(self.items)

    def drive(self):
        if not self.on and self.sent < len(self.items) \
                and (not self.pause or self.rng.random() >= self.pause):
            self.payload.value = self.items[self.sent]
            self.on = True
        self._set_valid(self.on)

    def sample(self):
        self.fired = self.on and bool(self.ready.value)
        return self.fired

    def advance(self):
        if self.fired:
            self.sent += 1
            self.on = False
            self.fired = False

    def stop(self):
        """Drop ``valid`` (the loop is over)."""
        self.on = False
        self.valid.value = 0
        self._driven = False

    def _set_valid(self, value):
        if self._driven is not value:
            self.valid.value = int(value)
            self._driven = value


class StreamSink:
    """Takes words from the stream port ``name``, its ``ready`` low at random with
    probability ``pause`` (one ``rng.random()`` per cycle) or while :meth:`drive` is
    told to ``hold``; same three-phase protocol as :class:`StreamSource`."""

    def __init__(self, dut, name, *, pause=0.0, rng=None):
        if pause and rng is None:
            raise ValueError("a pausing StreamSink needs a random generator")
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.pause, self.rng = pause, rng
        self.take = False
        self._driven = None

    def drive(self, hold=False):
        self.take = not hold and (not self.pause or self.rng.random() >= self.pause)
        if self._driven is not self.take:
            self.ready.value = int(self.take)
            self._driven = self.take

    def sample(self):
        """The payload taken at the coming edge (unsigned int), or None."""
        if self.take and self.valid.value:
            return self.payload.value.to_unsigned()
        return None

    def stop(self):
        self.take = False
        self.ready.value = 0
        self._driven = False


async def _drive_pipeline(dut, inputs, cycles, sample, *, after_inputs=None):
    """The driver shared by :func:`stream_pipeline` and :func:`sample_pipeline`: for
    ``cycles`` cycles, apply the ``t``-th set of ``inputs`` (``{port: list of ints}``) in
    cycle ``t`` while there is one (writing only the ports whose value changes), call
    ``after_inputs()`` in the first cycle without one, and call ``sample()`` in the
    read-only phase of every cycle."""
    n = len(next(iter(inputs.values())))
    handles = [(getattr(dut, name), values) for name, values in inputs.items()]
    last = [None] * len(handles)
    read_only, edge = ReadOnly(), RisingEdge(dut.clk)
    for t in range(cycles):
        if t < n:
            for i, (h, values) in enumerate(handles):
                v = values[t]
                if v != last[i]:
                    h.value = v
                    last[i] = v
        elif t == n and after_inputs is not None:
            after_inputs()
        await read_only
        sample()
        await edge


async def stream_pipeline(dut, inputs, output, *, latency, i_valid="i_valid",
                          o_valid="o_valid"):
    """Drive one set of ``inputs`` (``{port: list of ints}``) per cycle into a fixed-latency
    pipeline and collect ``output`` whenever ``o_valid`` is high; return the results.

    Signals are written only when their value changes; the loop stops ``latency + 2``
    cycles after the last input, so a pipeline that loses its valid bit is caught by
    the caller's length check rather than hanging.
    """
    n = len(next(iter(inputs.values())))
    out = []
    vin, vout, res = getattr(dut, i_valid), getattr(dut, o_valid), getattr(dut, output)

    def sample():
        if vout.value:
            out.append(res.value.to_unsigned())

    def stop():
        vin.value = 0

    vin.value = 1
    await _drive_pipeline(dut, inputs, n + latency + 2, sample, after_inputs=stop)
    return out


async def sample_pipeline(dut, inputs, outputs, *, extra):
    """Drive one set of ``inputs`` (``{port: list of ints}``) per cycle and sample every
    port in ``outputs`` in every cycle (no valid handshake), for ``extra`` cycles after
    the last input. Returns ``{port: NumPy int64 array}``: the sample taken in the cycle
    the ``t``-th input was applied is at index ``t``, so a result with latency ``L`` for
    input ``t`` is at index ``t + L``. Ports whose names start with ``o_`` are read as
    unsigned bit patterns."""
    n = len(next(iter(inputs.values())))
    outs = [(name, getattr(dut, name), []) for name in outputs]

    def sample():
        for _, h, got in outs:
            v = h.value
            got.append(v.to_unsigned() if hasattr(v, "to_unsigned") else int(v))

    await _drive_pipeline(dut, inputs, n + extra, sample)
    return {name: np.array(got, dtype=np.int64) for name, _, got in outs}


#: ``(exponent bits, fraction bits)`` of the float formats
FLOAT_FIELDS = {"fp32": (8, 23), "bf16": (8, 7), "fp16": (5, 10)}


def float_bits(rng, shape, fmt, exponents, *, dtype=np.int64, exponent_first=False):
    """Random bit patterns of float format ``fmt`` (``"fp32"``, ``"bf16"``, ``"fp16"``):
    a random sign, a biased exponent drawn from ``range(*exponents)`` and a random
    fraction, so the magnitudes span a chosen band (``(112, 140)`` for FP32 values
    near 1, ``(60, 195)`` for BF16 sums that cancel, round and overflow).

    ``dtype`` (the integer type the generator draws in) and ``exponent_first`` (draw
    the exponents before the signs) only select the random sequence: they keep the
    stimulus each seed made before the generators were shared.
    """
    eb, fb = FLOAT_FIELDS[fmt]
    draw = lambda lo, hi: rng.integers(lo, hi, shape, dtype=dtype)   # noqa: E731
    if exponent_first:
        e = draw(*exponents)
        sign = draw(0, 2)
    else:
        sign = draw(0, 2)
        e = draw(*exponents)
    return (sign << (eb + fb)) | (e << fb) | draw(0, 1 << fb)


#: BF16/FP16 specials mixed into :func:`float_operands`: +-0, +-Inf, the smallest
#: subnormal, the largest finite value, a quiet NaN
FLOAT_SPECIALS = {
    "bf16": [0x0000, 0x8000, 0x7F80, 0xFF80, 0x0001, 0x7F7F, 0x7FC0],
    "fp16": [0x0000, 0x8000, 0x7C00, 0xFC00, 0x0001, 0x7BFF, 0x7E00],
}


def float_operands(rng, shape, fmt, special_fraction=0.05):
    """Random BF16/FP16 bit patterns with a wide exponent spread (so sums cancel, round
    and overflow) and a sprinkling of specials (zeros, Inf, the largest value, the
    smallest subnormal). Returned as uint32 arrays of 16-bit patterns."""
    if fmt not in FLOAT_SPECIALS:
        raise ValueError(f"fmt must be 'bf16' or 'fp16', not {fmt!r}")
    v = float_bits(rng, shape, fmt, (60, 195) if fmt == "bf16" else (0, 31),
                   exponent_first=True)
    mask = rng.random(shape) < special_fraction
    return np.where(mask, rng.choice(FLOAT_SPECIALS[fmt], shape), v).astype(np.uint32)


class AxiRamErrors:
    """Error injection into a cocotbext-axi ``AxiRam``: an access overlapping one of
    ``regions`` (``(lo, hi, "slverr" | "decerr")``, first match wins) fails. AxiRam
    answers SLVERR when its access raises; the response of an access that raised for a
    ``decerr`` region is rewritten to DECERR. (AxiRam otherwise wraps addresses past
    its size.)"""

    def __init__(self, ram):
        import collections
        from cocotbext.axi.constants import AxiResp
        self.regions = []
        self._pending_r = collections.deque()
        self._pending_w = []
        rd, wr = ram.read_if, ram.write_if
        orig_read, orig_write = rd._read, wr._write
        orig_r_send, orig_b_send = rd.r_channel.send, wr.b_channel.send

        async def _read(address, length):
            kind = self.kind(address, length)
            if kind:
                self._pending_r.append(kind)
                raise IOError(f"injected {kind} at {address:#x}")
            return await orig_read(address, length)

        async def _write(address, data):
            kind = self.kind(address, len(data))
            if kind:
                self._pending_w.append(kind)
                raise IOError(f"injected {kind} at {address:#x}")
            return await orig_write(address, data)

        async def r_send(r):
            if int(r.rresp) == AxiResp.SLVERR and self._pending_r:
                if self._pending_r.popleft() == "decerr":
                    r.rresp = AxiResp.DECERR
            await orig_r_send(r)

        async def b_send(b):
            if int(b.bresp) == AxiResp.SLVERR and self._pending_w \
                    and self._pending_w[0] == "decerr":
                b.bresp = AxiResp.DECERR
            self._pending_w.clear()
            await orig_b_send(b)

        rd._read, wr._write = _read, _write
        rd.r_channel.send, wr.b_channel.send = r_send, b_send

    def kind(self, address, length):
        for lo, hi, kind in self.regions:
            if address < hi and address + length > lo:
                return kind
        return None
