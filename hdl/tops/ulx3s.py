"""The ULX3S board top (Lattice ECP5 LFE5U-85F, 25 MHz oscillator, FTDI USB-UART).

Three layers, so that each can be checked where it can be:

* :data:`ULX3S`: the board's numbers (reference clock, core clock, DRAM window size,
  baud rate) and what follows from them (PLL dividers, UART divisor, bridge timeout),
  read by the board top, its Verilator model (:mod:`hdl.tops.board_sim`) and the
  host software (:mod:`sim.compiler.board`).
* :class:`ULX3STop`: a :class:`wiring.Component` whose ports are the board's pins: the
  ``EHXPLLL`` PLL, the reset synchroniser, :class:`~hdl.board.BoardCore` and the LEDs.
  ``make lint`` checks it (top ``ulx3s``, with ``tb/models/EHXPLLL.v``).
* :class:`ULX3SBoard`: requests the pins from ``amaranth-boards``' ULX3S platform
  (which works with Amaranth 0.5 as it is) and wires them to :class:`ULX3STop`;
  :class:`ULX3SPlatform` adds the ECP5 primitive choices (:mod:`hdl.dsp`).
  ``make bitstream`` builds it (:mod:`sim.flow.bitstream`).

LEDs (``docs/board.md``): 0 busy, 1 done, 2 error (the core's STATUS bits), 3 host
link error (sticky: a bad frame, timeout, bus or framing error), 4 interrupt, 7 a
heartbeat (the core clock runs and reset is released); 5 and 6 off.
"""

from typing import NamedTuple

from amaranth.hdl import (ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal,
                          Signal)
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from ..board import BOARD_BAUD, BRIDGE_TIMEOUT_S, BoardCore, _check_size, ecp5_pll_settings
from ..config import CoreConfig, check_config
from ..uart import baud_divisor

__all__ = ["BoardSpec", "ULX3S", "ULX3STop", "ULX3SBoard", "ULX3SPlatform", "LEDS"]

#: What each of the eight LEDs shows.
LEDS = ("busy", "done", "error", "host_error", "irq", None, None, "heartbeat")


class BoardSpec(NamedTuple):
    """A board's clocking, memory and host link."""
    name: str
    f_in: float          #: reference oscillator, Hz
    f_core: float        #: the core clock asked of the PLL, Hz
    dram_size: int       #: bytes of block RAM for the DRAM window
    baud: int            #: the host link

    @property
    def pll(self):
        return ecp5_pll_settings(self.f_in, self.f_core)

    @property
    def f_clk(self):
        """The core clock the PLL makes (Hz)."""
        return self.pll.f_out

    @property
    def divisor(self):
        return baud_divisor(self.f_clk, self.baud)

    def dram_bytes(self, config: CoreConfig):
        """The DRAM window on this board for ``config`` (no more than its AXI port
        addresses)."""
        return min(self.dram_size, 1 << config.axi_addr_width)

    def check(self, config: CoreConfig):
        """Raise ``ValueError`` unless the PLL, the UART divisor and the DRAM window
        are all legal for ``config`` (the board top calls it first)."""
        self.pll, self.divisor
        _check_size(self.dram_bytes(config), config)

    def board_core_args(self, config: CoreConfig):
        """The :class:`~hdl.board.BoardCore` parameters."""
        return dict(dram_size=self.dram_bytes(config), divisor=self.divisor,
                    timeout=round(BRIDGE_TIMEOUT_S * self.f_clk))


#: The ULX3S: 45 MHz core clock (exactly 25 * 9 / 5, and 3 Mbaud exactly at divisor
#: 15; the core routes at 55.8 MHz alone, docs/core.md), 128 KiB of DRAM window in
#: 64 DP16KD beside the core's 72 (of 208; 256 KiB would leave 8 and worsen the
#: congestion at the block RAMs that already limits the core's routing).
ULX3S = BoardSpec("ulx3s", f_in=25e6, f_core=45e6, dram_size=1 << 17, baud=BOARD_BAUD)


class ULX3STop(wiring.Component):
    """The board's logic between its pins: PLL, reset, :class:`~hdl.board.BoardCore`,
    LEDs.

    The PLL (``EHXPLLL``, CLKOP fed back) makes the ``sync`` clock from ``clk25``; the
    domain is held in reset (asynchronously asserted, released through two flip-flops
    of the new clock) while the PLL is not locked or the PWR button is pressed.

    Members
    -------
    clk25 : In(1)           the 25 MHz oscillator
    btn_reset : In(1)       high while the reset button is pressed
    uart_rx : In(1, init=1), uart_tx : Out(1, init=1)
    leds : Out(8)           see :data:`LEDS`
    """

    def __init__(self, config: CoreConfig, spec: BoardSpec = ULX3S):
        check_config(config)
        spec.check(config)
        self._config = config
        self.spec = spec
        super().__init__({
            "clk25": In(1), "btn_reset": In(1),
            "uart_rx": In(1, init=1), "uart_tx": Out(1, init=1),
            "leds": Out(8),
        })

    def elaborate(self, platform):
        spec, pll = self.spec, self.spec.pll
        m = Module()
        m.domains.sync = ClockDomain("sync")
        locked = Signal()
        clk = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{spec.f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{pll.f_out / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=pll.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll.clkop_div,
            p_CLKOP_CPHASE=pll.clkop_cphase, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=pll.clkfb_div,
            i_RST=0, i_STDBY=0, i_CLKI=self.clk25, o_CLKOP=clk, i_CLKFB=clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
        m.d.comb += ClockSignal("sync").eq(clk)
        # the reset synchroniser: two flip-flops set at once (asynchronously) by the
        # cause and cleared one after the other by the new clock, so ``sync`` leaves
        # reset on a clock edge whenever the cause goes away
        m.domains.por = ClockDomain("por", async_reset=True, local=True)
        m.d.comb += [ClockSignal("por").eq(clk), ResetSignal("por").eq(~locked | self.btn_reset)]
        stages = Signal(2, init=0b11)
        m.d.por += stages.eq(stages << 1)
        m.d.comb += ResetSignal("sync").eq(stages[1])

        board = m.submodules.board = BoardCore(self._config, **spec.board_core_args(self._config))
        beat = Signal(range(1 << 26))
        m.d.sync += beat.eq(beat + 1)
        shown = {"busy": board.o_lights.busy, "done": board.o_lights.done,
                 "error": board.o_lights.error, "host_error": board.o_host_error,
                 "irq": board.o_irq, "heartbeat": beat[-1]}
        m.d.comb += [board.i_rx.eq(self.uart_rx), self.uart_tx.eq(board.o_tx)]
        m.d.comb += [self.leds[i].eq(shown[name]) for i, name in enumerate(LEDS) if name]
        return m


def ULX3SPlatform(*args, **kwargs):
    """``amaranth-boards``' ULX3S 85F platform, telling the gateware to use the ECP5's
    DSP and block-RAM primitives (:data:`hdl.dsp.ECP5`)."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    from ..dsp import ECP5

    class _Platform(ULX3S_85F_Platform):
        dsp = ECP5.dsp
        bram = ECP5.bram
    return _Platform(*args, **kwargs)


class ULX3SBoard(Elaboratable):
    """:class:`ULX3STop` on the ULX3S platform's pins (``clk25``, ``button_pwr``,
    ``uart``, ``led`` 0-7)."""

    def __init__(self, config: CoreConfig, spec: BoardSpec = ULX3S):
        self.top = ULX3STop(config, spec)

    def elaborate(self, platform):
        m = Module()
        top = m.submodules.top = self.top

        def buffer(name, direction, port):
            buf = m.submodules[f"{name}_buf"] = io.Buffer(direction, port)
            return buf

        uart = platform.request("uart", 0, dir="-")
        m.d.comb += [
            top.clk25.eq(buffer("clk25", "i", platform.request("clk25", 0, dir="-")).i),
            # PinsN: the buffer inverts, so this is high while the button is pressed
            top.btn_reset.eq(buffer("button_pwr", "i",
                                    platform.request("button_pwr", 0, dir="-")).i),
            top.uart_rx.eq(buffer("uart_rx", "i", uart.rx).i),
            buffer("uart_tx", "o", uart.tx).o.eq(top.uart_tx),
        ]
        for i in range(8):
            led = platform.request("led", i, dir="-")
            m.d.comb += buffer(f"led{i}", "o", led).o.eq(top.leds[i])
        return m
