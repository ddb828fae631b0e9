"""The ULX3S board top between its pins (top ``ulx3s``, ECP5 target, the PLL stand-in of
``tb/models/EHXPLLL.v``): clock and reset from the pins, the UART at the board's bit
time, the LEDs.

* While the PWR button is held, and until the PLL locks, the design is in reset; a
  read of the ID register over ``uart_rx``/``uart_tx`` is answered after that.
* A frame with an unknown command lights LED 3 (host error); the PWR button clears it
  (the reset synchroniser resets the whole board logic).
* The DRAM window: a word written and read back through the pins.
"""

import struct

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, Timer, with_timeout

from hdl.board import HOST_DRAM_BASE
from hdl.regmap import ID_VALUE
from hdl.tops.ulx3s import LEDS, ULX3S
from hdl.uart import Cmd
from tb.board.test_board import drive_byte, sample_byte

PERIOD_NS = 10
BIT_NS = ULX3S.divisor * PERIOD_NS


async def send(dut, data):
    for byte in data:
        await drive_byte(dut.uart_rx, byte, BIT_NS)


async def receive(dut, n):
    out = bytearray()
    for _ in range(n):
        await FallingEdge(dut.uart_tx)
        byte, stop = await sample_byte(dut.uart_tx, BIT_NS)
        assert stop, "stop bit low on uart_tx"
        out.append(byte)
    return bytes(out)


async def read_words(dut, addr, n):
    reply = cocotb.start_soon(with_timeout(receive(dut, 4 * n), 200 * BIT_NS * (n + 2), "ns"))
    await send(dut, struct.pack(">BBI", Cmd.READ_INCR, n, addr // 4))
    return list(struct.unpack(f">{n}I", await reply))


def led(dut, name):
    return (int(dut.leds.value) >> LEDS.index(name)) & 1


@cocotb.test(timeout_time=600, timeout_unit="sec")
async def pins(dut):
    dut.uart_rx.value = 1
    dut.btn_reset.value = 1
    cocotb.start_soon(Clock(dut.clk25, PERIOD_NS, unit="ns").start())
    await ClockCycles(dut.clk25, 40)
    dut.btn_reset.value = 0
    await ClockCycles(dut.clk25, 40)      # the PLL model locks after 16 cycles
    assert await read_words(dut, 0, 1) == [ID_VALUE]
    assert led(dut, "host_error") == 0 and led(dut, "busy") == 0 and led(dut, "error") == 0

    await send(dut, struct.pack(">BBI", 0x55, 1, 0))        # an unknown command
    await Timer(4 * BIT_NS, unit="ns")
    assert led(dut, "host_error") == 1, "an unknown command did not light the host-error LED"

    word = 0x1EE7_C0DE
    await send(dut, struct.pack(">BBII", Cmd.WRITE_INCR, 1, (HOST_DRAM_BASE + 0x100) // 4, word))
    assert await read_words(dut, HOST_DRAM_BASE + 0x100, 1) == [word]

    dut.btn_reset.value = 1
    await ClockCycles(dut.clk25, 4)
    dut.btn_reset.value = 0
    await ClockCycles(dut.clk25, 10)
    assert led(dut, "host_error") == 0, "the PWR button did not reset the board logic"
    assert await read_words(dut, 0, 1) == [ID_VALUE]
