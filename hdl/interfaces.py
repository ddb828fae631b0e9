"""Interfaces between ncore's blocks, declared once.

Every boundary that more than one block uses is a :class:`wiring.Signature` here, and
every width that crosses a boundary (an address, a counter, the MAC increment) is a
constant here. The blocks declare their ports with these signatures and are joined with
:func:`wiring.connect`; the register map (:mod:`hdl.regmap`), the controller and the DMA
engines read the widths from this module, so changing one changes all of them.

Signatures are written from the point of view of the block that *drives* the
interface (the initiator): a memory client is ``Out(sbuf_read_client(config))`` on the
engine that reads and ``In(...)`` on the memory.

=========================  ==========================================================
signature                  between
=========================  ==========================================================
:func:`axi_signature`      the controller's fetch port, the DMA engines, the core's
                           ``m_axi``, :class:`~hdl.tops.simdram.SimDram`
:class:`ReadClient`        an engine and SBUF or PSUM (request out, response in)
:func:`sbuf_write_client`  an engine's SBUF write stream (``psum_write_client``:
                           the tensor engine's PSUM writes)
:class:`EngineStatus`      the tensor or vector engine and the controller
:class:`RunControl`        the host interface and the controller (start, address)
:class:`RunStatus`         the controller and the host interface (state, fault)
:class:`CoreControl`       the host interface and the core (``RunControl``, window)
:class:`CoreStatus`        the core and the host interface (``RunStatus``, activity)
=========================  ==========================================================
"""

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .axi import AXI4Signature
from .config import CoreConfig, check_config, check_int_range
from .formats import (psum_data_layout, psum_read_layout, psum_write_layout, sbuf_data_layout,
                      sbuf_read_layout, sbuf_write_layout)
from .isa import CORE_BITS, MAX_CORES, SEM_BITS, CoreError

__all__ = [
    "PROG_ADDR_BITS", "PROG_ALIGN_BITS", "WINDOW_BITS", "FAULT_ADDR_BITS", "COUNTER_WIDTH",
    "MACS_WIDTH", "RETIRED_WIDTH", "WATCHDOG_WIDTH", "ERROR_DETAIL_WIDTH", "FETCH_ID",
    "axi_signature", "ReadClient", "sbuf_read_client", "psum_read_client",
    "sbuf_write_client", "psum_write_client", "EngineStatus", "RunControl", "RunStatus",
    "StatusLights", "CoreControl", "CoreStatus", "ConfigComponent", "ClientMemory",
    "RemoteSignal", "CORES_BITS", "ChipLink",
]

#: Bits of an instruction address (a DRAM byte address); programs are 32-byte aligned.
PROG_ADDR_BITS = 48
#: Low address bits of a program start that must be zero (one 32-byte instruction).
PROG_ALIGN_BITS = 5
#: Bits of the DMA window bounds: one more than an address, so the limit can be 2**48.
WINDOW_BITS = 49
#: Bits of the faulting instruction's address.
FAULT_ADDR_BITS = PROG_ADDR_BITS
#: Width of every performance counter (the host reads each as a LO/HI register pair).
COUNTER_WIDTH = 48
#: Width of the per-cycle MAC increment (``k*m*n`` of the matmuls finished in a cycle).
MACS_WIDTH = 40
#: Width of the per-cycle count of retired instructions (at most one per engine and
#: one from the decoder finish in a cycle).
RETIRED_WIDTH = 3
#: Width of the watchdog limit (cycles without progress; 0 = off).
WATCHDOG_WIDTH = 32
#: Width of the fault detail (the engine's own error code, or an instruction field).
ERROR_DETAIL_WIDTH = 8

#: AXI ID of instruction fetches; the DMA engines use ID 0, so the shared read channel
#: routes each response back by its ``RID``.
FETCH_ID = 1


#: Bits of a chip's core count as the cores see it (0 = a standalone core, up to
#: :data:`~hdl.isa.MAX_CORES`).
CORES_BITS = CORE_BITS + 1
assert MAX_CORES < 1 << CORES_BITS

#: A cross-core signal leaving a core: semaphore ``sem`` of core ``core`` counts up.
RemoteSignal = data.StructLayout({"core": CORE_BITS, "sem": SEM_BITS})


#: The run state a board shows on its LEDs: STATUS.BUSY, STATUS.DONE and STATUS.ERROR
#: (``docs/registers.md``) as levels, so a user sees the core work without a host.
StatusLights = data.StructLayout({"busy": 1, "done": 1, "error": 1})


class ConfigComponent(wiring.Component):
    """A component built for one :class:`~hdl.config.CoreConfig`: the base of every
    block whose ports or behaviour depend on the configuration.

    It checks ``config`` (a ``TypeError`` for anything else) and keeps it as the
    read-only :attr:`config`, which testbenches and parent blocks read back.
    """

    def __init__(self, config, signature=None):
        self._config = check_config(config)
        super().__init__(signature)

    @property
    def config(self):
        """The :class:`~hdl.config.CoreConfig` this component was built for."""
        return self._config


class ClientMemory(ConfigComponent):
    """The client side that SBUF and PSUM share: ``n_read`` read clients ``rd[c]``,
    ``n_write`` write clients ``wr[c]`` (1 to 8 each) and a response FIFO of
    ``resp_depth`` entries (3 to 64) per read client.

    Parameters
    ----------
    read_client, write_client : callable
        ``config -> Signature`` of one client (e.g. :func:`sbuf_read_client`).
    ports : dict
        The memory's own further ports.
    """

    def __init__(self, config, read_client, write_client, *, n_read, n_write, resp_depth,
                 ports=()):
        check_config(config)
        check_int_range("n_read", n_read, 1, 8)
        check_int_range("n_write", n_write, 1, 8)
        check_int_range("resp_depth", resp_depth, 3, 64)
        self._n_read = n_read
        self._n_write = n_write
        self._resp_depth = resp_depth
        super().__init__(config, {
            "wr": In(write_client(config)).array(n_write),
            "rd": In(read_client(config)).array(n_read),
            **dict(ports),
        })

    def write_client(self, c):
        """The stream of write client ``c``."""
        return self.wr[c]

    def read_client(self, c):
        """``(request, response)`` streams of read client ``c``."""
        return self.rd[c].req, self.rd[c].resp


def axi_signature(config: CoreConfig):
    """The core's AXI4 manager port (fetch and DMA), sized by ``config``."""
    return AXI4Signature(addr_width=config.axi_addr_width, data_bytes=config.axi_data_bytes,
                         id_width=config.axi_id_width)


class _StructuralSignature(wiring.Signature):
    """A signature subclass that compares equal to another of its class with the same
    members (the base class compares subclasses by identity), so two blocks built
    separately from the same configuration have equal, connectable ports."""

    def __eq__(self, other):
        return type(other) is type(self) and other.members == self.members

    def __hash__(self):
        return hash(type(self))


class ReadClient(_StructuralSignature):
    """A read client of SBUF or PSUM: requests out, responses back in request order.

    Members
    -------
    req : Out(stream.Signature(request))    addresses (and partition masks) to read
    resp : In(stream.Signature(response))   one response per request, in order
    """

    def __init__(self, request, response):
        super().__init__({
            "req": Out(stream.Signature(request)),
            "resp": In(stream.Signature(response)),
        })


def sbuf_read_client(config: CoreConfig):
    """An SBUF read client (:func:`~hdl.formats.sbuf_read_layout` requests)."""
    return ReadClient(sbuf_read_layout(config), sbuf_data_layout(config))


def psum_read_client(config: CoreConfig):
    """A PSUM read client (:func:`~hdl.formats.psum_read_layout` requests)."""
    return ReadClient(psum_read_layout(config), psum_data_layout(config))


def sbuf_write_client(config: CoreConfig):
    """An SBUF write client: a stream of strobed writes."""
    return stream.Signature(sbuf_write_layout(config))


def psum_write_client(config: CoreConfig):
    """A PSUM write client: a stream of overwriting or accumulating writes."""
    return stream.Signature(psum_write_layout(config))


class EngineStatus(_StructuralSignature):
    """What an engine that runs commands from a controller queue reports back.

    Members
    -------
    busy : Out(1)         a command is accepted and not finished
    done : Out(1)         pulses once per finished legal command (a refused one gives none)
    error : Out(1)        a command was refused; held until ``error_clear``
    error_code : Out(error_enum)   the first refusal's code
    error_clear : In(1)   clears ``error`` (the controller pulses it on START)
    """

    def __init__(self, error_enum):
        super().__init__({
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "error_code": Out(error_enum),
            "error_clear": In(1),
        })

    def __repr__(self):
        return f"EngineStatus({self.members['error_code'].shape.__name__})"


class RunControl(_StructuralSignature):
    """What starts a program (driven by the host interface, taken by the controller).

    Members
    -------
    start : Out(1)                  pulse: run the program (ignored while busy)
    prog_addr : Out(PROG_ADDR_BITS) address of the first instruction
    watchdog : Out(WATCHDOG_WIDTH)  cycles without progress before a fault; 0 = off
    """

    def __init__(self):
        super().__init__({
            "start": Out(1),
            "prog_addr": Out(PROG_ADDR_BITS),
            "watchdog": Out(WATCHDOG_WIDTH),
        })


class RunStatus(_StructuralSignature):
    """How a program runs (driven by the controller).

    Members
    -------
    busy, done, fault : Out(1)      running; done pulse; fault pulse
    error_code : Out(CoreError), error_detail : Out(ERROR_DETAIL_WIDTH),
    fault_addr : Out(FAULT_ADDR_BITS)   the last fault (cleared by START)
    retired : Out(RETIRED_WIDTH)    instructions finished in the previous cycle (registered)
    macs : Out(MACS_WIDTH)          MACs of the matmuls finished in the previous cycle
    """

    def __init__(self):
        super().__init__({
            "busy": Out(1),
            "done": Out(1),
            "fault": Out(1),
            "error_code": Out(CoreError),
            "error_detail": Out(ERROR_DETAIL_WIDTH),
            "fault_addr": Out(FAULT_ADDR_BITS),
            "retired": Out(RETIRED_WIDTH),
            "macs": Out(MACS_WIDTH),
        })


class CoreControl(_StructuralSignature):
    """What the host sets before and at START (driven by the host interface).

    Members
    -------
    run : Out(RunControl)           for the controller
    win_base, win_limit : Out(WINDOW_BITS)   the DRAM window both DMA engines may touch
    quiesce : Out(1)                a SOFT_RESET is pending: start no new AXI burst (the
                                    bursts in flight complete, then the core is reset)
    """

    def __init__(self):
        super().__init__({
            "run": Out(RunControl()),
            "win_base": Out(WINDOW_BITS),
            "win_limit": Out(WINDOW_BITS),
            "quiesce": Out(1),
        })


class ChipLink(_StructuralSignature):
    """What joins a core to the rest of a chip (driven by the core; the chip's
    :class:`~hdl.chip.ChipFabric` is ``In(ChipLink(config))``).

    Members
    -------
    i_cores : In(CORES_BITS)      the chip's core count (0 would switch the peer
                                  aperture off and refuse every cross-core SEM)
    o_signal : Out(stream.Signature(RemoteSignal))   cross-core signals this core sends
    i_signal : In(stream.Signature(SEM_BITS))        signals other cores send to it
                                  (always ready: each counts one of its semaphores up)
    i_peer_wr : In(sbuf_write_client(config))        other cores' peer stores into its
                                  SBUF (an SBUF write client of its own)
    i_start, i_soft_reset : In(1) the chip's START and SOFT_RESET for this core (as the
                                  core's own CTRL.START and CTRL.SOFT_RESET writes)
    """

    def __init__(self, config: CoreConfig):
        super().__init__({
            "i_cores": In(CORES_BITS),
            "o_signal": Out(stream.Signature(RemoteSignal)),
            "i_signal": In(stream.Signature(SEM_BITS)),
            "i_peer_wr": In(sbuf_write_client(config)),
            "i_start": In(1),
            "i_soft_reset": In(1),
        })


class CoreStatus(_StructuralSignature):
    """What the core reports to the host interface (driven by the core).

    Members
    -------
    run : Out(RunStatus)            from the controller
    busy_dma_in, busy_dma_out, busy_tensor, busy_vector : Out(1)   engine activity
    active : Out(1)                 a moving column enters the array this cycle
    """

    def __init__(self):
        super().__init__({
            "run": Out(RunStatus()),
            "busy_dma_in": Out(1),
            "busy_dma_out": Out(1),
            "busy_tensor": Out(1),
            "busy_vector": Out(1),
            "active": Out(1),
        })
