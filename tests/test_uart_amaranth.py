# amaranth: UnusedElaboratable=no
"""The UART host bridge (:mod:`hdl.uart`) in Amaranth's simulator.

Expected values come from models written here from the protocol facts, never from the
design: a serial line model (bits at a given bit time, LSB first, sampled mid-bit), a
UARTBone frame encoder and an AXI4-Lite memory with random ready/valid delays. The last
test runs LiteX's own host code (``CommUART``, PyPI ``litex``) against the bridge
through a pseudo-terminal, as it would talk to a board.
"""

import os
import random
import select
import threading
import time

import pytest

from amaranth.hdl import Module
from litex.tools.remote.comm_uart import CommUART

from amaranth_helpers import raises_exactly, simulate, wait_for
from hdl.axi import AXIResp
from hdl.uart import (
    Cmd, UARTBone, UARTBridge, UARTRx, UARTTx, baud_divisor,
)

SEEDS = [1, 2, 3]


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------

def line_levels(data, bit_cycles, *, idle=3, tail=3, stop=1):
    """The serial line, one level per clock cycle, for bytes ``data`` at a bit time of
    ``bit_cycles`` (may be fractional: a baud-rate mismatch), after ``idle`` and
    before ``tail`` idle cycles; ``stop`` is the stop bit's level (0 makes a framing
    error)."""
    bits = []
    for byte in data:
        bits += [0] + [(byte >> i) & 1 for i in range(8)] + [stop]
    n = round(len(bits) * bit_cycles)
    return ([1] * idle + [bits[min(int(c / bit_cycles), len(bits) - 1)] for c in range(n)]
            + [1] * tail)


def decode_line(levels, divisor):
    """Bytes on a sampled line: a falling edge starts a frame, bits are read mid-bit."""
    out, c = [], 1
    while c < len(levels):
        if levels[c - 1] == 1 and levels[c] == 0:
            mid = c + divisor // 2
            if mid + 9 * divisor >= len(levels):
                break
            bits = [levels[mid + k * divisor] for k in range(10)]
            assert bits[0] == 0 and bits[9] == 1, f"bad frame at cycle {c}: {bits}"
            out.append(sum(b << i for i, b in enumerate(bits[1:9])))
            c = mid + 9 * divisor
        c += 1
    return out


def frame(cmd, addr_word, words=(), length=None):
    """A UARTBone frame: command, length, word address (MSB first), data words (MSB first)."""
    n = len(words) if length is None else length
    b = bytes([int(cmd), n & 0xFF]) + addr_word.to_bytes(4, "big")
    for w in words:
        b += w.to_bytes(4, "big")
    return b


class Memory:
    """An AXI4-Lite memory (byte address -> 32-bit word) behind a manager port, with
    random ready and valid delays; addresses in ``errors`` answer SLVERR (a write is
    not stored, a read returns ``ERROR_DATA``). Records every transaction."""
    ERROR_DATA = 0xBAD0BAD0

    def __init__(self, bus, rng, errors=()):
        self.bus, self.rng, self.errors = bus, rng, set(errors)
        self.mem, self.log = {}, []

    async def run(self, ctx):
        bus, rng = self.bus, self.rng
        aw = w = b = r = None
        b_shown = r_shown = False
        while True:
            ctx.set(bus.awready, aw is None and rng.random() < 0.6)
            ctx.set(bus.wready, w is None and rng.random() < 0.6)
            ctx.set(bus.arready, r is None and rng.random() < 0.6)
            b_shown = b is not None and (b_shown or rng.random() < 0.6)
            r_shown = r is not None and (r_shown or rng.random() < 0.6)
            ctx.set(bus.bvalid, b_shown)
            ctx.set(bus.bresp, b or 0)
            ctx.set(bus.rvalid, r_shown)
            ctx.set(bus.rdata, r[0] if r else 0)
            ctx.set(bus.rresp, r[1] if r else 0)
            (_, _, awv, awr, awaddr, wv, wr, wdata, wstrb, bv, br, arv, arr, araddr, rv,
             rr) = await ctx.tick().sample(
                bus.awvalid, bus.awready, bus.awaddr, bus.wvalid, bus.wready, bus.wdata,
                bus.wstrb, bus.bvalid, bus.bready, bus.arvalid, bus.arready, bus.araddr,
                bus.rvalid, bus.rready)
            if bv and br:
                b, b_shown = None, False
            if rv and rr:
                r, r_shown = None, False
            if awv and awr:
                aw = awaddr
            if wv and wr:
                w = (wdata, wstrb)
            if aw is not None and w is not None and b is None:
                self.log.append(("W", aw, w[0], w[1]))
                if aw in self.errors:
                    b = AXIResp.SLVERR
                else:
                    self.mem[aw] = w[0]
                    b = AXIResp.OKAY
                aw = w = None
            if arv and arr:
                self.log.append(("R", araddr))
                if araddr in self.errors:
                    r = (self.ERROR_DATA, AXIResp.SLVERR)
                else:
                    r = (self.mem.get(araddr, 0), AXIResp.OKAY)


def expected(frames, mem, *, addr_width=32, errors=()):
    """What the host should read back, and the memory afterwards, from the frames."""
    mem = dict(mem)
    reads = []
    for cmd, addr_word, words, length in frames:
        n = length if length else 256
        for k in range(n):
            a = addr_word + (k if cmd in (Cmd.WRITE_INCR, Cmd.READ_INCR) else 0)
            in_range = a < 1 << (addr_width - 2)
            byte_addr = 4 * a
            if cmd in (Cmd.WRITE_INCR, Cmd.WRITE_FIXED):
                if in_range and byte_addr not in errors:
                    mem[byte_addr] = words[k]
            elif not in_range:
                reads.append(0)
            elif byte_addr in errors:
                reads.append(Memory.ERROR_DATA)
            else:
                reads.append(mem.get(byte_addr, 0))
    return reads, mem


def run_bone(frames_bytes, *, rng, timeout=1000, addr_width=32, errors=(), gaps=(),
             max_cycles=200_000):
    """Send bytes into a :class:`UARTBone` (random gaps; a gap ``(index, cycles)`` in
    ``gaps`` holds byte ``index`` back that long), take its answer with random
    backpressure; returns ``(answer bytes, memory, events, transactions)``."""
    dut = UARTBone(addr_width=addr_width, timeout=timeout)
    memory = Memory(dut.m_axil, rng, errors)
    answer, events = [], {"bad_cmd": 0, "timeout": 0, "bus_error": 0, "range_error": 0}
    hold = dict(gaps)
    done = []

    async def send(ctx):
        for k, byte in enumerate(frames_bytes):
            for _ in range(hold.get(k, 0) + (rng.randrange(3) if rng.random() < 0.3 else 0)):
                ctx.set(dut.i.valid, 0)
                await ctx.tick()
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, byte)
            await wait_for(ctx, dut.i.ready)
        ctx.set(dut.i.valid, 0)
        # the answer is complete once nothing moves for a while
        quiet = 0
        for _ in range(max_cycles):
            n = len(answer)
            await ctx.tick()
            quiet = quiet + 1 if len(answer) == n else 0
            if quiet > 200:
                done.append(True)
                return
        raise AssertionError(f"watchdog: the bridge still answers after {max_cycles} cycles")

    async def take(ctx):
        while True:
            ready = rng.random() < 0.7
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload, ev = await ctx.tick().sample(dut.o.valid, dut.o.payload,
                                                               dut.o_events)
            if valid and ready:
                answer.append(payload)
            for name in events:
                events[name] += getattr(ev, name)

    simulate(dut, send, take, memory.run)
    assert done
    return bytes(answer), memory.mem, events, memory.log


def words_of(answer):
    assert len(answer) % 4 == 0, f"{len(answer)} bytes is not whole words"
    return [int.from_bytes(answer[i:i + 4], "big") for i in range(0, len(answer), 4)]


# ---------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------

def test_baud_divisor():
    assert baud_divisor(48e6, 3_000_000) == 16
    assert baud_divisor(50e6, 115_200) == 434
    assert baud_divisor(12e6, 3_000_000) == 4
    with raises_exactly(ValueError, "25000000.0 Hz cannot make 3000000 baud within 2%: "
                                    "divisor 8 is 4.2% off"):
        baud_divisor(25e6, 3_000_000)
    with raises_exactly(ValueError, "3000000 baud needs at least 4 clock cycles per bit; "
                                    "10000000.0 Hz gives 3.33"):
        baud_divisor(10e6, 3_000_000)
    with raises_exactly(ValueError, "clock and baud rate must be positive, not 0 and 9600"):
        baud_divisor(0, 9600)


@pytest.mark.parametrize("make,message", [
    (lambda: UARTRx(3), "divisor must be an integer of at least 4, not 3"),
    (lambda: UARTTx(4.0), "divisor must be an integer of at least 4, not 4.0"),
    (lambda: UARTTx(True), "divisor must be an integer of at least 4, not True"),
    (lambda: UARTBone(timeout=0), "timeout must be an integer of at least 1, not 0"),
    (lambda: UARTBone(addr_width=1, timeout=10),
     "addr_width must be an integer from 2 to 34, not 1"),
    (lambda: UARTBone(addr_width=35, timeout=10),
     "addr_width must be an integer from 2 to 34, not 35"),
])
def test_parameter_errors(make, message):
    with raises_exactly(ValueError, message):
        make()


# ---------------------------------------------------------------------------------------
# the serial line
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("divisor", [4, 5, 16])
@pytest.mark.parametrize("seed", SEEDS)
def test_tx_to_line_model(divisor, seed):
    """Bytes into UARTTx come out on the pin as the line model decodes them, back to
    back (ten bit times a byte when the stream keeps up)."""
    rng = random.Random(seed)
    data = bytes(rng.randrange(256) for _ in range(12))
    dut = UARTTx(divisor)
    levels, starts = [], []

    async def tb(ctx):
        for byte in data:
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, byte)
            for _ in range(20 * divisor):
                _, _, ready, tx = await ctx.tick().sample(dut.i.ready, dut.o_tx)
                levels.append(tx)
                if ready:
                    starts.append(len(levels))
                    break
            else:
                raise AssertionError("watchdog: the transmitter took no byte")
        ctx.set(dut.i.valid, 0)
        for _ in range(11 * divisor):
            _, _, tx = await ctx.tick().sample(dut.o_tx)
            levels.append(tx)

    simulate(dut, tb)
    assert decode_line(levels, divisor) == list(data), f"seed {seed}"
    gaps = {b - a for a, b in zip(starts, starts[1:])}
    assert gaps == {10 * divisor}, f"seed {seed}: bytes taken {gaps} cycles apart"


@pytest.mark.parametrize("divisor,skew", [(4, 1.0), (16, 1.0), (16, 0.985), (16, 1.015),
                                          (7, 1.0)])
@pytest.mark.parametrize("seed", SEEDS)
def test_rx_from_line_model(divisor, skew, seed):
    """The line model's bytes (a sender up to 1.5% off the receiver's bit time) come out
    of UARTRx in order, none lost, no error pulses."""
    rng = random.Random(seed)
    data = bytes(rng.randrange(256) for _ in range(16))
    got, errs = _rx_run(divisor, line_levels(data, divisor * skew))
    assert got == list(data), f"seed {seed}"
    assert errs == {"framing": 0, "overrun": 0}


def _rx_run(divisor, levels, ready=lambda: True):
    dut = UARTRx(divisor)
    got, errs = [], {"framing": 0, "overrun": 0}

    async def tb(ctx):
        for level in levels + [1] * (4 * divisor):
            ctx.set(dut.i_rx, level)
            r = ready()
            ctx.set(dut.o.ready, r)
            _, _, v, p, fe, ov = await ctx.tick().sample(dut.o.valid, dut.o.payload,
                                                         dut.o_framing_error, dut.o_overrun)
            if v and r:
                got.append(p)
            errs["framing"] += fe
            errs["overrun"] += ov

    simulate(dut, tb)
    return got, errs


def test_rx_glitch_framing_error_overrun():
    """A low pulse shorter than half a bit is not a start bit; a frame whose stop bit is
    low is dropped with a framing-error pulse, and the next frame is received; a byte
    that completes while the last is untaken is dropped with an overrun pulse."""
    d = 8
    levels = [1] * 5 + [0] * (d // 2 - 2) + [1] * 3 * d          # glitch
    levels += line_levels(b"\x5a", d, stop=0, tail=0) + [0] * 3 * d + [1] * 2 * d  # + break
    levels += line_levels(b"\xa5\x3c", d)
    got, errs = _rx_run(d, levels)
    assert got == [0xA5, 0x3C]
    assert errs == {"framing": 1, "overrun": 0}
    # nobody takes the bytes: the first is held, the second and third overrun
    got, errs = _rx_run(d, line_levels(b"\x01\x02\x03", d), ready=lambda: False)
    assert errs == {"framing": 0, "overrun": 2}


@pytest.mark.parametrize("divisor", [4, 9])
def test_tx_rx_loopback(divisor):
    """UARTTx's pin into UARTRx: every byte arrives."""
    data = bytes(range(0, 256, 7))
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.i_rx.eq(tx.o_tx)
    got = []

    async def tb(ctx):
        ctx.set(rx.o.ready, 1)
        k = 0
        for _ in range(12 * divisor * (len(data) + 2)):
            ctx.set(tx.i.valid, k < len(data))
            ctx.set(tx.i.payload, data[k] if k < len(data) else 0)
            _, _, ready, v, p = await ctx.tick().sample(tx.i.ready, rx.o.valid, rx.o.payload)
            if ready and k < len(data):
                k += 1
            if v:
                got.append(p)

    simulate(m, tb)
    assert bytes(got) == data


# ---------------------------------------------------------------------------------------
# UARTBone frames
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_frames(seed):
    """Random writes and reads, incrementing and fixed, 1-9 words (and one frame of
    255 words): the memory afterwards and every word read back match the model; every
    transaction is at word address x 4 with all byte strobes."""
    rng = random.Random(seed)
    frames = []
    for _ in range(24):
        cmd = rng.choice(list(Cmd))
        n = rng.randrange(1, 10)
        addr = rng.randrange(64)
        words = [rng.getrandbits(32) for _ in range(n)] if cmd in (
            Cmd.WRITE_INCR, Cmd.WRITE_FIXED) else []
        frames.append((cmd, addr, words, n))
    frames.insert(rng.randrange(len(frames)), (Cmd.READ_INCR, 0, [], 255))
    data = b"".join(frame(c, a, w, n) for c, a, w, n in frames)
    answer, mem, events, log = run_bone(data, rng=rng)
    reads, mem_expected = expected(frames, {})
    assert words_of(answer) == reads, f"seed {seed}"
    assert mem == mem_expected, f"seed {seed}"
    assert events == {"bad_cmd": 0, "timeout": 0, "bus_error": 0, "range_error": 0}
    assert all(t[1] % 4 == 0 for t in log)
    assert all(t[3] == 0xF for t in log if t[0] == "W")


def test_length_zero_is_256_words():
    """A length byte of 0 means 256 words, as in LiteX's gateware."""
    rng = random.Random(5)
    words = [rng.getrandbits(32) for _ in range(256)]
    frames = [(Cmd.WRITE_INCR, 100, words, 0), (Cmd.READ_INCR, 100, [], 0)]
    data = b"".join(frame(c, a, w, n) for c, a, w, n in frames)
    answer, mem, _, _ = run_bone(data, rng=rng)
    assert words_of(answer) == words
    assert mem == {4 * (100 + k): w for k, w in enumerate(words)}


def test_bad_command_timeout_and_recovery():
    """An unknown command consumes its address and is dropped (one bad_cmd pulse); a
    frame whose bytes stop arriving is abandoned after ``timeout`` cycles (one timeout
    pulse, nothing written); the frames after each are carried out."""
    rng = random.Random(7)
    good = [(Cmd.WRITE_INCR, 3, [0x11223344, 0x55667788], 2), (Cmd.READ_INCR, 3, [], 2)]
    data = frame(0x07, 9) + frame(*good[0][:3]) + frame(*good[1][:2], length=2)
    cut = frame(Cmd.WRITE_INCR, 40, [0xCAFEF00D, 0x12345678])[:9]   # stops inside word 0
    data = cut + data
    answer, mem, events, log = run_bone(data, rng=rng, timeout=50, gaps=[(len(cut), 80)])
    assert words_of(answer) == [0x11223344, 0x55667788]
    assert mem == {12: 0x11223344, 16: 0x55667788}
    assert events == {"bad_cmd": 1, "timeout": 1, "bus_error": 0, "range_error": 0}
    # a gap shorter than the timeout is only a slow host
    answer, mem, events, _ = run_bone(cut + frame(Cmd.WRITE_INCR, 40, [0xCAFEF00D,
                                      0x12345678])[9:], rng=rng, timeout=50,
                                      gaps=[(len(cut), 45)])
    assert mem == {160: 0xCAFEF00D, 164: 0x12345678}
    assert events["timeout"] == 0


def test_range_and_bus_errors():
    """A word address beyond the port issues no transaction (a write is discarded, a
    read answers 0); an error response is reported and a read's data passed on."""
    rng = random.Random(9)
    aw = 12                                   # 4 KiB: word addresses below 1024
    errors = {4 * 7}
    frames = [(Cmd.WRITE_INCR, 1022, [1, 2, 3, 4], 4), (Cmd.READ_INCR, 1022, [], 4),
              (Cmd.WRITE_FIXED, 7, [5], 1), (Cmd.READ_FIXED, 7, [], 2),
              (Cmd.WRITE_INCR, 6, [8, 9], 2), (Cmd.READ_INCR, 6, [], 2)]
    data = b"".join(frame(c, a, w, n) for c, a, w, n in frames)
    answer, mem, events, log = run_bone(data, rng=rng, addr_width=aw, errors=errors)
    reads, mem_expected = expected(frames, {}, addr_width=aw, errors=errors)
    assert words_of(answer) == reads == [1, 2, 0, 0, Memory.ERROR_DATA,
                                         Memory.ERROR_DATA, 8, Memory.ERROR_DATA]
    assert mem == mem_expected
    assert events == {"bad_cmd": 0, "timeout": 0, "bus_error": 5, "range_error": 4}
    assert all(t[1] < 1 << aw for t in log)


# ---------------------------------------------------------------------------------------
# LiteX's host code against the bridge
# ---------------------------------------------------------------------------------------

def test_litex_commuart_through_pty():
    """LiteX's ``CommUART`` (its own framing, chunking and byte order) writes and reads
    through a pseudo-terminal into the serial pins of a simulated :class:`UARTBridge`;
    the memory and every word read back match the model."""
    divisor = 4
    rng = random.Random(11)
    dut = UARTBridge(divisor=divisor, timeout=100_000)
    memory = Memory(dut.m_axil, rng)
    master, slave = os.openpty()
    os.set_blocking(master, False)
    host_done, host_error, results = threading.Event(), [], {}
    words = [rng.getrandbits(32) for _ in range(11)]

    def host():
        try:
            comm = CommUART(os.ttyname(slave), baudrate=3_000_000)
            comm.write(0x100, words)                       # 8 + 3 words: two frames
            comm.write(0x200, [0xA, 0xB, 0xC], burst="fixed")
            results["incr"] = comm.read(0x100, len(words))
            results["one"] = comm.read(0x108)
            results["fixed"] = comm.read(0x200, 3, burst="fixed")
            comm.close()
        except Exception as e:                              # reported by the testbench
            host_error.append(e)
        finally:
            host_done.set()

    async def pins(ctx):
        line = []                       # line levels still to drive onto rx
        rx_levels, watchdog = [], 2_000_000
        thread = threading.Thread(target=host, daemon=True)
        thread.start()
        for cycle in range(watchdog):
            if not line and cycle % 64 == 0:
                r, _, _ = select.select([master], [], [], 0)
                if r:
                    line = line_levels(os.read(master, 256), divisor, idle=1)
            ctx.set(dut.i_rx, line.pop(0) if line else 1)
            _, _, tx = await ctx.tick().sample(dut.o_tx)
            rx_levels.append(tx)
            if len(rx_levels) > 12 * divisor and all(rx_levels[-12 * divisor:]):
                got = decode_line(rx_levels, divisor)
                if got:
                    os.write(master, bytes(got))
                rx_levels = [1]
            if host_done.is_set() and not line:
                break
            if cycle % 4096 == 0:
                time.sleep(0)
        else:
            raise AssertionError(f"watchdog: the host had no answer after {watchdog} cycles")
        thread.join(5)
        assert not host_error, host_error

    try:
        simulate(dut, pins, memory.run)
    finally:
        os.close(master)
        os.close(slave)
    assert memory.mem == {**{0x100 + 4 * k: w for k, w in enumerate(words)}, 0x200: 0xC}
    assert results == {"incr": words, "one": words[2], "fixed": [0xC] * 3}
