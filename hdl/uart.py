"""A UART host bridge: 8N1 serial receiver and transmitter, and LiteX's UARTBone
protocol onto an AXI4-Lite manager port.

The point is that a host reaches ncore's registers and memory over the USB-UART every
FPGA board has, with tools users already have: LiteX's ``CommUART`` (and through it
``litex_server --uart`` and ``RemoteClient``) speak UARTBone, and this bridge answers
them unchanged. The protocol facts (taken from LiteX's host-side ``comm_uart.py`` and
its gateware ``Stream2Wishbone``, 2024.12) are in :class:`Cmd` and
:class:`UARTBone`; ``docs/uart.md`` has the frame format, the error policy and the
figures.

Blocks:

* :class:`UARTRx`, :class:`UARTTx`: one start bit, 8 data bits LSB first, one stop bit,
  no parity, at ``clk / divisor`` baud (:func:`baud_divisor` picks the divisor and
  refuses a baud rate the clock cannot make within 2%).
* :class:`UARTBone`: a byte stream in, a byte stream out, an AXI4-Lite manager.
* :class:`UARTBridge`: the three together, with the two pins.
"""

import enum

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4LiteSignature, AXIResp

__all__ = ["Cmd", "BridgeEvents", "baud_divisor", "UARTRx", "UARTTx", "UARTBone",
           "UARTBridge", "MAX_BAUD_ERROR", "WORD_BYTES", "ADDR_BYTES"]

#: the largest relative error of the bit time a divisor may have: a receiver samples
#: mid-bit, so the 10 bits of a frame tolerate well under half a bit of drift (5%)
#: summed over both ends
MAX_BAUD_ERROR = 0.02

#: bytes in a UARTBone data word and in its (word) address, most significant first
WORD_BYTES = 4
ADDR_BYTES = 4


class Cmd(enum.IntEnum):
    """UARTBone frame commands (the first byte of a frame)."""
    WRITE_INCR = 0x01
    READ_INCR = 0x02
    WRITE_FIXED = 0x03
    READ_FIXED = 0x04


#: one-cycle pulses, one per event, for the board top to count or latch
BridgeEvents = data.StructLayout({
    "bad_cmd": 1,       # a frame whose command is none of Cmd (its address was consumed)
    "timeout": 1,       # a frame abandoned because its next byte did not come in time
    "bus_error": 1,     # an AXI response other than OKAY (the data word still counts)
    "range_error": 1,   # a word address beyond the AXI port (no transaction issued)
})


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (
            hi is not None and value > hi):
        rng = f"from {lo} to {hi}" if hi is not None else f"of at least {lo}"
        raise ValueError(f"{name} must be an integer {rng}, not {value!r}")


def baud_divisor(clk_hz, baud):
    """Clock cycles per bit for ``baud`` at ``clk_hz``, rounded to the nearest; a
    ``ValueError`` if that bit time is off by more than :data:`MAX_BAUD_ERROR` or
    shorter than 4 cycles (the receiver needs a mid-bit sample and an edge search)."""
    if clk_hz <= 0 or baud <= 0:
        raise ValueError(f"clock and baud rate must be positive, not {clk_hz!r} and {baud!r}")
    divisor = round(clk_hz / baud)
    if divisor < 4:
        raise ValueError(f"{baud} baud needs at least 4 clock cycles per bit; "
                         f"{clk_hz} Hz gives {clk_hz / baud:.2f}")
    error = abs(clk_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"{clk_hz} Hz cannot make {baud} baud within "
                         f"{MAX_BAUD_ERROR:.0%}: divisor {divisor} is {error:.1%} off")
    return divisor


class UARTRx(wiring.Component):
    """8N1 receiver: the ``i_rx`` pin to a byte stream.

    The pin passes through a two-flip-flop synchroniser (it comes from another clock's
    world). A falling edge starts a frame; the start bit is checked again half a bit
    later (a glitch shorter than that is ignored), then each data bit and the stop bit
    are sampled one bit time apart, in the middle of the bit. A frame whose stop bit
    is low is a framing error (a break, or a baud mismatch): its byte is dropped,
    ``o_framing_error`` pulses, and the receiver waits for the line to go high before
    looking for the next start bit. The byte is held in ``o`` until taken; a byte that
    completes while the previous one is still held is dropped and ``o_overrun`` pulses
    (a UART has no flow control, so a consumer that cannot keep up loses bytes: the
    pulse makes the loss visible).

    Members
    -------
    i_rx : In(1)
    o : Out(stream.Signature(8))
    o_framing_error, o_overrun : Out(1)
    """

    def __init__(self, divisor):
        _check_int("divisor", divisor, 4)
        self._divisor = divisor
        super().__init__({"i_rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "o_framing_error": Out(1), "o_overrun": Out(1)})

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        # two flip-flops against metastability; the line idles high
        sync = Signal(2, init=0b11)
        m.d.sync += sync.eq(Cat(self.i_rx, sync[0]))
        rx = sync[1]
        timer = Signal(range(d))
        bit = Signal(range(9))
        shift = Signal(8)
        m.d.sync += self.o_framing_error.eq(0)
        m.d.sync += self.o_overrun.eq(0)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.next = "IDLE"                 # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), bit.eq(bit + 1),
                                 timer.eq(d - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.sync += self.o_overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.o_framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 transmitter: a byte stream to the ``o_tx`` pin (idle high, registered).

    A byte is taken when the transmitter is idle and sent as ten bit times (start,
    8 data bits LSB first, stop); the next byte is taken in the last cycle of the stop
    bit, so back-to-back bytes leave no gap.

    Members
    -------
    i : In(stream.Signature(8))
    o_tx : Out(1)
    """

    def __init__(self, divisor):
        _check_int("divisor", divisor, 4)
        self._divisor = divisor
        super().__init__({"i": In(stream.Signature(8)), "o_tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        frame = Signal(10, init=0x3FF)       # bits still to send, LSB next; 1s shift in
        left = Signal(range(11))             # bits still to send, the current one too
        last_cycle = (left == 0) | ((left == 1) & (timer == 0))
        m.d.comb += self.i.ready.eq(last_cycle)
        m.d.comb += self.o_tx.eq(frame[0])
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [frame.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                         left.eq(10), timer.eq(d - 1)]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), left.eq(left - 1),
                             timer.eq(d - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UARTBone(wiring.Component):
    """LiteX's UARTBone protocol: frames of bytes in, AXI4-Lite transactions out.

    A frame is ``cmd`` (:class:`Cmd`), ``length`` (words; 0 means 256, as in LiteX's
    gateware), a 4-byte *word* address (most significant byte first), then for a write
    ``length`` data words of 4 bytes each, most significant first. A read frame is
    answered with ``length`` data words in the same byte order; a write frame is not
    answered. ``*_INCR`` commands step the address by one word per data word,
    ``*_FIXED`` ones keep it (a FIFO port). The AXI byte address is the word address
    times 4.

    Every data word is one AXI4-Lite transaction with all byte strobes, issued once
    the word is complete, and the next is issued only after its response: the
    serial line, not the bus, sets the pace (at 3 Mbaud and 50 MHz a byte takes about
    170 cycles, a transaction a handful). Errors, all of which leave the bridge ready
    for the next frame and are reported as one-cycle pulses in ``o_events``
    (:data:`BridgeEvents`):

    * an unknown command: its address bytes are consumed, then the frame is dropped
      (LiteX's gateware does the same); any data bytes that follow are read as new
      frames, which is why LiteX's host flushes and a well-formed host never sends one.
    * a timeout: if a frame's next byte does not arrive within ``timeout`` cycles,
      the frame is abandoned and the next byte starts a new frame (LiteX times the
      whole frame, 100 ms; here the gap between bytes is timed, so a long burst at a
      low baud rate is not cut). A transaction already issued is always completed:
      AXI does not allow it to be dropped.
    * a word address beyond the port (``addr_width`` bits of byte address): no
      transaction; a write word is discarded, a read word is answered as 0.
    * a SLVERR/DECERR response: the write is reported, a read's data (the
      subordinate's) is sent as it is. UARTBone has no error channel; the board top
      lights an LED on any of these events (``docs/board.md``).

    Parameters
    ----------
    addr_width : int
        Byte address bits of ``m_axil`` (2-34).
    timeout : int
        Cycles allowed between two bytes of one frame.

    Members
    -------
    i : In(stream.Signature(8))     bytes from the host
    o : Out(stream.Signature(8))    bytes to the host
    m_axil : Out(AXI4LiteSignature(addr_width))
    o_events : Out(BridgeEvents)
    """

    def __init__(self, *, addr_width=32, timeout):
        _check_int("addr_width", addr_width, 2, 8 * ADDR_BYTES + 2)
        _check_int("timeout", timeout, 1)
        self._addr_width = addr_width
        self._timeout = timeout
        super().__init__({
            "i": In(stream.Signature(8)), "o": Out(stream.Signature(8)),
            "m_axil": Out(AXI4LiteSignature(addr_width=addr_width)),
            "o_events": Out(BridgeEvents),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.m_axil
        ev = self.o_events
        cmd = Signal(8)
        address = Signal(8 * ADDR_BYTES)     # the word address
        word = bus.wdata                     # the data word being received or sent
        nbyte = Signal(range(max(WORD_BYTES, ADDR_BYTES)))
        words_left = Signal(9)               # words of the frame after this one
        aw_done = Signal()
        w_done = Signal()
        timer = Signal(range(self._timeout + 1))

        incr = (cmd == Cmd.WRITE_INCR) | (cmd == Cmd.READ_INCR)
        is_write = (cmd == Cmd.WRITE_INCR) | (cmd == Cmd.WRITE_FIXED)
        is_read = (cmd == Cmd.READ_INCR) | (cmd == Cmd.READ_FIXED)
        # the byte address; a word address whose top bits do not fit is out of range
        word_bits = self._addr_width - 2
        in_range = (address[word_bits:] == 0) if word_bits < len(address) else Const(1)
        m.d.comb += [
            bus.awaddr.eq(Cat(Const(0, 2), address)),
            bus.araddr.eq(Cat(Const(0, 2), address)),
            bus.wstrb.eq(2 ** WORD_BYTES - 1),
            bus.awprot.eq(0), bus.arprot.eq(0),
            self.o.payload.eq(word[-8:]),
        ]
        m.d.sync += ev.eq(0)
        take = self.i.valid & self.i.ready

        def next_word():
            """After a word's transaction (or its discard): the next, or the frame's end."""
            with m.If(incr):
                m.d.sync += address.eq(address + 1)
            m.d.sync += [words_left.eq(words_left - 1), nbyte.eq(0)]
            with m.If(words_left == 0):
                m.next = "CMD"
            with m.Elif(is_write):
                m.next = "DATA"
            with m.Else():
                m.next = "READ"

        # the inter-byte timer runs in the states that wait for the host's next byte
        waiting = Signal()
        with m.If(~waiting | take):
            m.d.sync += timer.eq(self._timeout)
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        expired = waiting & (timer == 0) & ~self.i.valid

        def abandon_if_late():
            """After a receiving state's byte case: a frame whose next byte is late is
            dropped and the next byte starts a new one."""
            with m.Elif(expired):
                m.d.sync += ev.timeout.eq(1)
                m.next = "CMD"

        with m.FSM():
            with m.State("CMD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [cmd.eq(self.i.payload), nbyte.eq(0)]
                    m.next = "LENGTH"
            with m.State("LENGTH"):
                m.d.comb += [self.i.ready.eq(1), waiting.eq(1)]
                with m.If(self.i.valid):
                    m.d.sync += words_left.eq(_frame_words(self.i.payload) - 1)
                    m.next = "ADDRESS"
                abandon_if_late()
            with m.State("ADDRESS"):
                m.d.comb += [self.i.ready.eq(1), waiting.eq(1)]
                with m.If(self.i.valid):
                    m.d.sync += [address.eq(Cat(self.i.payload, address)), nbyte.eq(nbyte + 1)]
                    with m.If(nbyte == ADDR_BYTES - 1):
                        m.d.sync += nbyte.eq(0)
                        with m.If(is_write):
                            m.next = "DATA"
                        with m.Elif(is_read):
                            m.next = "READ"
                        with m.Else():
                            m.d.sync += ev.bad_cmd.eq(1)
                            m.next = "CMD"
                abandon_if_late()
            with m.State("DATA"):
                m.d.comb += [self.i.ready.eq(1), waiting.eq(1)]
                with m.If(self.i.valid):
                    m.d.sync += [word.eq(Cat(self.i.payload, word)), nbyte.eq(nbyte + 1)]
                    with m.If(nbyte == WORD_BYTES - 1):
                        m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                        m.next = "WRITE"
                abandon_if_late()
            with m.State("WRITE"):
                with m.If(~in_range):
                    m.d.sync += ev.range_error.eq(1)
                    next_word()
                with m.Else():
                    m.d.comb += [bus.awvalid.eq(~aw_done), bus.wvalid.eq(~w_done)]
                    with m.If(bus.awready):
                        m.d.sync += aw_done.eq(1)
                    with m.If(bus.wready):
                        m.d.sync += w_done.eq(1)
                    with m.If((aw_done | bus.awready) & (w_done | bus.wready)):
                        m.next = "WRITE_RESP"
            with m.State("WRITE_RESP"):
                m.d.comb += bus.bready.eq(1)
                with m.If(bus.bvalid):
                    m.d.sync += ev.bus_error.eq(bus.bresp != AXIResp.OKAY)
                    next_word()
            with m.State("READ"):
                with m.If(~in_range):
                    m.d.sync += [ev.range_error.eq(1), word.eq(0), nbyte.eq(0)]
                    m.next = "SEND"
                with m.Else():
                    m.d.comb += bus.arvalid.eq(1)
                    with m.If(bus.arready):
                        m.next = "READ_RESP"
            with m.State("READ_RESP"):
                m.d.comb += bus.rready.eq(1)
                with m.If(bus.rvalid):
                    m.d.sync += [word.eq(bus.rdata), nbyte.eq(0),
                                 ev.bus_error.eq(bus.rresp != AXIResp.OKAY)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.d.sync += [word.eq(word << 8), nbyte.eq(nbyte + 1)]
                    with m.If(nbyte == WORD_BYTES - 1):
                        next_word()
        return m


def _frame_words(length):
    """A frame's word count from its length byte: 0 means 256."""
    return Cat(length, length == 0)


class UARTBridge(wiring.Component):
    """:class:`UARTRx`, :class:`UARTBone` and :class:`UARTTx` together: the host's
    serial pins in, an AXI4-Lite manager out.

    Members
    -------
    i_rx : In(1, init=1)     the serial line in (idle high)
    o_tx : Out(1, init=1)    the serial line out
    m_axil : Out(AXI4LiteSignature(addr_width))
    o_events : Out(BridgeEvents)
    o_framing_error, o_overrun : Out(1)
    """

    def __init__(self, *, divisor, addr_width=32, timeout):
        self._rx = UARTRx(divisor)
        self._tx = UARTTx(divisor)
        self._bone = UARTBone(addr_width=addr_width, timeout=timeout)
        super().__init__({
            "i_rx": In(1, init=1), "o_tx": Out(1, init=1),
            "m_axil": Out(AXI4LiteSignature(addr_width=addr_width)),
            "o_events": Out(BridgeEvents),
            "o_framing_error": Out(1), "o_overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = self._rx
        m.submodules.tx = tx = self._tx
        m.submodules.bone = bone = self._bone
        wiring.connect(m, rx.o, bone.i)
        wiring.connect(m, bone.o, tx.i)
        wiring.connect(m, bone.m_axil, wiring.flipped(self.m_axil))
        m.d.comb += [
            rx.i_rx.eq(self.i_rx), self.o_tx.eq(tx.o_tx), self.o_events.eq(bone.o_events),
            self.o_framing_error.eq(rx.o_framing_error), self.o_overrun.eq(rx.o_overrun),
        ]
        return m
