"""The host side of a board: LiteX's UARTBone protocol over a serial port (pyserial),
and the core's run sequence on top of it (the runtime's ``board`` backend).

:class:`UARTBoneClient` speaks the frames :class:`hdl.uart.UARTBone` decodes
(``docs/board.md``): ``cmd`` (:class:`hdl.uart.Cmd`), ``length`` in words (0 means
256), a 4-byte word address, most significant byte first, then for a write the data
words, most significant byte first; a read is answered with its words. Writes are
not answered. It is the same protocol LiteX's ``CommUART`` speaks, so
``litex_server --uart`` works against the board too.

:class:`BoardLink` puts the host's address map (:data:`hdl.board.HOST_REG_BASE`,
:data:`hdl.board.HOST_DRAM_BASE`) and the register sequence of
:mod:`sim.compiler.driver` on a client. It counts the bytes each way, which is what
the board's throughput figures are computed from (``docs/board.md``).

A port that answers nothing (no board, wrong baud rate, a bridge stuck in a frame)
raises :class:`BoardTimeout` after ``timeout`` seconds; the link then waits out the
bridge's own frame timeout and drops any stray input, so the next frame starts clean.
"""

import struct
import time

import numpy as np

from hdl.board import BOARD_BAUD, BRIDGE_TIMEOUT_S, HOST_DRAM_BASE, HOST_REG_BASE
from hdl.regmap import RegisterMap
from hdl.uart import Cmd
from sim.compiler.driver import busy, decode_result, result_reads, start_writes

__all__ = ["UARTBoneClient", "BoardLink", "BoardTimeout", "MAX_WORDS", "FRAME_HEADER_BYTES",
           "BITS_PER_BYTE", "board_seconds"]

#: Words in one frame (the length byte; 0 stands for 256).
MAX_WORDS = 256
#: A frame's command, length and address bytes.
FRAME_HEADER_BYTES = 6
#: 8N1: a start bit, 8 data bits, a stop bit.
BITS_PER_BYTE = 10


def board_seconds(bytes_moved, polls, cycles, spec):
    """How long a host exchange takes on the board ``spec``
    (:class:`hdl.tops.ulx3s.BoardSpec`) when the host keeps the line busy: the line
    time of every byte both ways, less the STATUS polls made while the core ran
    (``polls``, each a read frame and its word), plus the run's ``cycles`` at the
    core clock. What the simulated board measures (bytes, polls, cycles) does not
    depend on how fast the simulation or the host is; this turns it into board time.
    USB latency (an FTDI chip's 1-16 ms latency timer on each read) is not included."""
    poll_bytes = polls * (FRAME_HEADER_BYTES + 4)
    return ((bytes_moved - poll_bytes) * BITS_PER_BYTE / spec.baud
            + (cycles or 0) / spec.f_clk)


class BoardTimeout(TimeoutError):
    """The board did not answer in time."""


class UARTBoneClient:
    """UARTBone frames on a pyserial port (``port``: a device name or an open
    ``serial.Serial``-like object with ``write``, ``read``, ``reset_input_buffer``)."""

    def __init__(self, port, baud=BOARD_BAUD, *, timeout=2.0):
        if isinstance(port, str):
            import serial
            port = serial.Serial(port, baud, timeout=timeout)
        self.port = port
        self.timeout = timeout
        self.bytes_out = 0       # bytes written to the board
        self.bytes_in = 0        # bytes read from the board

    def close(self):
        self.port.close()

    def _frame(self, cmd, addr, n):
        if addr % 4:
            raise ValueError(f"UARTBone addresses words: {addr:#x} is not 4-byte aligned")
        if not 1 <= n <= MAX_WORDS:
            raise ValueError(f"a frame carries 1 to {MAX_WORDS} words, not {n}")
        frame = struct.pack(">BBI", int(cmd), n % MAX_WORDS, addr // 4)
        assert len(frame) == FRAME_HEADER_BYTES
        return frame

    def write(self, addr, words, *, incr=True):
        """Write 32-bit ``words`` from byte address ``addr`` (frames of up to 256)."""
        words = [int(w) & 0xFFFF_FFFF for w in words]
        for i in range(0, len(words), MAX_WORDS):
            chunk = words[i:i + MAX_WORDS]
            a = addr + 4 * i if incr else addr
            data = self._frame(Cmd.WRITE_INCR if incr else Cmd.WRITE_FIXED, a, len(chunk))
            data += struct.pack(f">{len(chunk)}I", *chunk)
            self.port.write(data)
            self.bytes_out += len(data)

    def read(self, addr, n, *, incr=True):
        """Read ``n`` 32-bit words from byte address ``addr``."""
        out = []
        for i in range(0, n, MAX_WORDS):
            k = min(MAX_WORDS, n - i)
            a = addr + 4 * i if incr else addr
            req = self._frame(Cmd.READ_INCR if incr else Cmd.READ_FIXED, a, k)
            self.port.write(req)
            self.bytes_out += len(req)
            data = self._read_exactly(4 * k)
            out += struct.unpack(f">{k}I", data)
        return out

    def _read_exactly(self, n):
        data = b""
        deadline = time.monotonic() + self.timeout
        while len(data) < n:
            got = self.port.read(n - len(data))
            data += got
            self.bytes_in += len(got)
            if len(data) < n and time.monotonic() > deadline:
                self.resync()
                raise BoardTimeout(f"the board answered {len(data)} of {n} bytes within "
                                   f"{self.timeout} s (is it powered, programmed, at the "
                                   f"right baud rate?)")
        return data

    def resync(self):
        """Wait out the bridge's frame timeout, then drop whatever came in."""
        time.sleep(1.5 * BRIDGE_TIMEOUT_S)
        self.port.reset_input_buffer()


class BoardLink:
    """The core's registers and DRAM window through a :class:`UARTBoneClient`."""

    def __init__(self, client: UARTBoneClient, config):
        self.client = client
        self.regs = RegisterMap(config)
        #: STATUS polls made while a run was busy (see :func:`board_seconds`)
        self.polls = 0

    # -- registers -------------------------------------------------------------------
    def read_reg(self, name):
        return self.client.read(HOST_REG_BASE + self.regs[name].offset, 1)[0]

    def write_reg(self, name, value):
        self.client.write(HOST_REG_BASE + self.regs[name].offset, [value])

    # -- DRAM --------------------------------------------------------------------------
    def write_dram(self, addr, data):
        """Bytes to the DRAM window (``addr`` and the length multiples of 4)."""
        raw = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
        if addr % 4 or raw.size % 4:
            raise ValueError("the board's DRAM is written in whole 32-bit words")
        self.client.write(HOST_DRAM_BASE + addr, raw.view("<u4").tolist())

    def read_dram(self, addr, nbytes):
        """``nbytes`` bytes from ``addr`` (the words that cover them are read)."""
        lo, hi = addr // 4, -(-(addr + nbytes) // 4)
        words = self.client.read(HOST_DRAM_BASE + 4 * lo, hi - lo)
        raw = np.array(words, dtype="<u4").view(np.uint8)
        return raw[addr - 4 * lo:addr - 4 * lo + nbytes].copy()

    # -- a run ---------------------------------------------------------------------------
    def run(self, prog_addr, win, watchdog, *, timeout_s=60.0, poll_s=0.0):
        """The host sequence (:mod:`sim.compiler.driver`): start, poll STATUS until
        BUSY clears, read the result registers. ``timeout_s``: give up (and raise
        :class:`BoardTimeout`) if the core is still busy after this long; the core's
        own ``watchdog`` normally stops a stuck program first."""
        for name, value in start_writes(self.regs, prog_addr, win, watchdog):
            self.write_reg(name, value)
        deadline = time.monotonic() + timeout_s
        polls = 0
        while busy(self.regs, self.read_reg("STATUS")):
            polls += 1
            if time.monotonic() > deadline:
                raise BoardTimeout(f"the core is still busy after {timeout_s} s "
                                   f"({polls} polls)")
            if poll_s:
                time.sleep(poll_s)
        values = {name: self.read_reg(name) for name in result_reads(self.regs)}
        out = decode_result(self.regs, values)
        out["polls"] = polls
        self.polls += polls
        return out

    @property
    def bytes_moved(self):
        return self.client.bytes_out + self.client.bytes_in

    def holds(self, config):
        """True if the board's core was built for ``config`` (its CONFIG register)."""
        return self.read_reg("CONFIG") == RegisterMap(config)["CONFIG"].reset
