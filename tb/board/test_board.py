"""The simulated ULX3S board (top ``board_sim``) with its UART pins on a pseudo-terminal.

The test ``serve`` opens a pseudo-terminal, writes the name of its far end to the file
``NCORE_BOARD_PTY`` and then, until the file ``NCORE_BOARD_STOP`` appears, is the
board's serial line: bytes the host writes to the terminal are driven onto ``i_rx``
as 8N1 frames at the board's bit time (:data:`hdl.tops.ulx3s.ULX3S`: 15 cycles, 3 Mbaud
at 45 MHz), and frames the board sends on ``o_tx`` are decoded (sampled mid-bit,
stop bit checked) and written to the terminal. Host software opens that terminal
exactly as it opens a board's ``/dev/ttyUSB0``.

Simulated time runs on while the host thinks: the core keeps running, and a frame
written in one piece reaches the board in one piece (the bridge's inter-byte
timeout, 4.5 million cycles, is never near). The watchdog is ``NCORE_BOARD_MAX_CYCLES``
(cycles of simulated time), and the line statistics are written to ``NCORE_BOARD_STATS``
(JSON) at the end: bytes each way, cycles the line was busy each way, the cycles from
the end of each read request to the first byte of its answer, framing errors seen on
``o_tx``, and the LEDs.
"""

import json
import os
import pathlib
import pty
import tty

import cocotb
from cocotb.triggers import FallingEdge, Timer
from cocotb.utils import get_sim_time

from hdl.tops.sim_clock import CLOCK_PERIOD_NS
from hdl.tops.ulx3s import ULX3S
from tb.common import TB

WATCHDOG = dict(timeout_time=6000, timeout_unit="sec")


def _cycles():
    return int(get_sim_time("ns")) // CLOCK_PERIOD_NS


async def drive_byte(pin, byte, bit_ns):
    """One 8N1 frame onto ``pin``: start bit, 8 data bits LSB first, stop bit."""
    for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
        pin.value = bit
        await Timer(bit_ns, unit="ns")


async def sample_byte(pin, bit_ns):
    """After a falling edge on ``pin`` (a start bit): the byte, sampled mid-bit, and
    whether its stop bit was high."""
    await Timer(bit_ns * 3 // 2, unit="ns")
    byte = 0
    for i in range(8):
        byte |= int(pin.value) << i
        await Timer(bit_ns, unit="ns")
    return byte, bool(int(pin.value))


class PtyUART:
    """One end of the board's serial line on a pseudo-terminal."""

    def __init__(self, dut, divisor):
        self.dut = dut
        self.bit_ns = divisor * CLOCK_PERIOD_NS
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.name = os.ttyname(self.slave)
        self.stats = {"bytes_to_board": 0, "bytes_from_board": 0, "cycles_to_board": 0,
                      "cycles_from_board": 0, "framing_errors_from_board": 0,
                      "turnaround_cycles": []}
        self._last_rx_end = None      # cycle the last byte to the board ended

    async def send_byte(self, byte):
        await drive_byte(self.dut.i_rx, byte, self.bit_ns)
        self.stats["bytes_to_board"] += 1
        self.stats["cycles_to_board"] += 10 * self.bit_ns // CLOCK_PERIOD_NS
        self._last_rx_end = _cycles()

    async def receive(self):
        """Decode every frame the board sends, forever."""
        tx = self.dut.o_tx
        while True:
            await FallingEdge(tx)
            start = _cycles()
            if self._last_rx_end is not None:
                # a reply's first byte: how long the board took after the request
                self.stats["turnaround_cycles"].append(start - self._last_rx_end)
                self._last_rx_end = None
            byte, stop = await sample_byte(tx, self.bit_ns)
            if not stop:
                self.stats["framing_errors_from_board"] += 1
            os.write(self.master, bytes([byte]))
            self.stats["bytes_from_board"] += 1
            self.stats["cycles_from_board"] += 10 * self.bit_ns // CLOCK_PERIOD_NS

    def poll(self):
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return b""


@cocotb.test(**WATCHDOG)
async def serve(dut):
    tb = TB(dut)
    dut.i_rx.value = 1
    await tb.reset()
    uart = PtyUART(dut, ULX3S.divisor)
    stop = pathlib.Path(os.environ["NCORE_BOARD_STOP"])
    max_cycles = int(os.environ.get("NCORE_BOARD_MAX_CYCLES", "500000000"))
    cocotb.start_soon(uart.receive())
    ready = pathlib.Path(os.environ["NCORE_BOARD_PTY"])
    ready.with_suffix(".tmp").write_text(uart.name)
    ready.with_suffix(".tmp").replace(ready)       # the name appears whole
    idle_ns = 10 * uart.bit_ns         # poll the terminal once per byte time when idle
    while not stop.exists():
        data = uart.poll()
        if not data:
            await Timer(idle_ns, unit="ns")
        for b in data:
            await uart.send_byte(b)
        if _cycles() > max_cycles:
            tb.fail(f"watchdog: the board simulation ran {max_cycles} cycles")
    await Timer(20 * uart.bit_ns, unit="ns")      # let a last reply finish
    stats = dict(uart.stats)
    stats["cycles"] = _cycles()
    stats["leds"] = {"busy": int(dut.o_lights.value) & 1,
                     "done": (int(dut.o_lights.value) >> 1) & 1,
                     "error": (int(dut.o_lights.value) >> 2) & 1,
                     "host_error": int(dut.o_host_error.value), "irq": int(dut.o_irq.value)}
    pathlib.Path(os.environ["NCORE_BOARD_STATS"]).write_text(json.dumps(stats))
    os.close(uart.master)
    os.close(uart.slave)
