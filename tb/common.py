"""Shared cocotb testbench helpers: configuration, seeds, clocking, stream packing.

Stream ports appear in the Verilog as ``<name>__valid``, ``<name>__ready`` and
``<name>__payload`` (one flat vector per payload). :class:`Packer` turns NumPy values
into those vectors and back using the layouts in :mod:`hdl.formats`, so no bit offset
is written twice: scalar fields go through :mod:`sim.codec` (the one codec of every
format); only the elements of array fields are placed here, from
:func:`hdl.formats.field_slices`.
"""

import os

import numpy as np
import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from hdl.config import CoreConfig
from hdl.formats import field_slices
from sim import codec

__all__ = ["AxiRamErrors", "config_from_env", "seed_from_env", "Packer", "start_clock_and_reset",
           "CLOCK_PERIOD_NS"]

CLOCK_PERIOD_NS = 10


def config_from_env():
    """The CoreConfig the runner built this simulation for."""
    text = os.environ.get("NCORE_CONFIG")
    if not text:
        raise RuntimeError("NCORE_CONFIG is not set: run this testbench through sim.runner")
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
        """Pack scalars (range-checked by :func:`sim.codec.encode`) and 1-D arrays (for
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
        """Scalar field ``name`` of a payload integer (:func:`sim.codec.decode`; an enum
        field as its raw value)."""
        return codec.decode(self.layout, word, enums="raw")[name]


async def start_clock_and_reset(dut, cycles=4):
    """Start a 100 MHz clock on ``dut.clk`` and hold ``dut.rst`` for ``cycles``."""
    Clock(dut.clk, CLOCK_PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def _drive_pipeline(dut, inputs, cycles, sample, *, after_inputs=None):
    """The driver shared by :func:`stream_pipeline` and :func:`sample_pipeline`: for
    ``cycles`` cycles, apply the ``t``-th set of ``inputs`` (``{port: list of ints}``) in
    cycle ``t`` while there is one (writing only the ports whose value changes), call
    ``after_inputs()`` in the first cycle without one, and call ``sample()`` in the
    read-only phase of every cycle."""
    from cocotb.triggers import ReadOnly, RisingEdge
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


def float_operands(rng, shape, fmt, special_fraction=0.05):
    """Random BF16/FP16 bit patterns with a wide exponent spread (so sums cancel, round
    and overflow) and a sprinkling of specials (zeros, Inf, the largest value, the
    smallest subnormal). Returned as uint32 arrays of 16-bit patterns."""
    if fmt == "bf16":
        e = rng.integers(60, 195, shape)
        v = (rng.integers(0, 2, shape) << 15) | (e << 7) | rng.integers(0, 128, shape)
        specials = [0x0000, 0x8000, 0x7F80, 0xFF80, 0x0001, 0x7F7F, 0x7FC0]
    elif fmt == "fp16":
        e = rng.integers(0, 31, shape)
        v = (rng.integers(0, 2, shape) << 15) | (e << 10) | rng.integers(0, 1024, shape)
        specials = [0x0000, 0x8000, 0x7C00, 0xFC00, 0x0001, 0x7BFF, 0x7E00]
    else:
        raise ValueError(f"fmt must be 'bf16' or 'fp16', not {fmt!r}")
    mask = rng.random(shape) < special_fraction
    return np.where(mask, rng.choice(specials, shape), v).astype(np.uint32)


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
