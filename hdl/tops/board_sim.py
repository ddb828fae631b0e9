"""The ULX3S board in simulation: :class:`~hdl.board.BoardCore` exactly as the board
top builds it (the same DRAM size, UART divisor and timeout, :data:`hdl.tops.ulx3s.ULX3S`),
with the simulation clock and registered reset of :mod:`hdl.tops.sim_clock` in place
of the PLL and the reset synchroniser. ``tb/board`` bridges its UART pins to a
pseudo-terminal, so host software (the runtime's ``board`` backend, LiteX's
``litex_server``/``RemoteClient``) talks to it as to the real board."""

from amaranth.hdl import Module
from amaranth.lib.wiring import In, Out

from ..board import BoardCore
from ..config import CoreConfig, check_config
from ..interfaces import ConfigComponent, StatusLights
from .sim_clock import clock_and_registered_reset, clock_ports

__all__ = ["BoardSim"]


class BoardSim(ConfigComponent):
    """:class:`~hdl.board.BoardCore` of the ULX3S top with a simulation clock.

    Members
    -------
    clk, rst : In(1)
    i_rx : In(1, init=1), o_tx : Out(1, init=1)
    o_lights : Out(StatusLights), o_host_error : Out(1), o_irq : Out(1)
    """

    def __init__(self, config: CoreConfig):
        check_config(config)
        super().__init__(config, {
            **clock_ports(True),
            "i_rx": In(1, init=1), "o_tx": Out(1, init=1),
            "o_lights": Out(StatusLights), "o_host_error": Out(1), "o_irq": Out(1),
        })

    def elaborate(self, platform):
        from .ulx3s import ULX3S
        m = Module()
        clock_and_registered_reset(m, self)
        board = m.submodules.board = BoardCore(self._config, **ULX3S.board_core_args(self._config))
        m.d.comb += [board.i_rx.eq(self.i_rx), self.o_tx.eq(board.o_tx), self.o_lights.eq(board.o_lights),
                     self.o_host_error.eq(board.o_host_error), self.o_irq.eq(board.o_irq)]
        return m
