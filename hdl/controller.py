"""The controller: fetches a program over AXI, decodes it and feeds one queue per engine.

See ``docs/isa.md`` for the instruction set and the synchronisation model, and
:class:`Controller` for the pipeline. The parts it is built from (fetcher, decoder,
issue queues, semaphores, watchdog, fault capture) are in ``hdl/controller_parts.py``,
each with its contract and its own fast test.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .config import CoreConfig, check_config, check_int_range
from .controller_parts import (QUEUES, Decoder, FaultCapture, Fetcher, IssueQueue, Semaphores,
                               Watchdog)
from .formats import ActCmd, ActError, DmaDesc, DmaError, MatmulCmd, TensorError, dma_done_layout
from .interfaces import (CORES_BITS, PROG_ADDR_BITS, ConfigComponent, EngineStatus, RemoteSignal,
                         RunControl, RunStatus, axi_signature)
from .isa import SEM_BITS, CoreError

__all__ = ["Controller"]


class Controller(ConfigComponent):
    """Runs a program: fetch, decode, per-engine queues, semaphores, faults.

    **Fetch.** From ``ctrl.prog_addr`` (32-byte aligned; the low five bits are ignored)
    the fetcher reads up to ``fetch_burst`` instructions per AXI burst (up to the next
    ``32 * fetch_burst``-byte boundary, so never across 4 KiB; ``ARID`` =
    :data:`FETCH_ID`, ``ARPROT`` = instruction access), with up to ``fetch_depth``
    instructions requested or buffered ahead of the decoder. A fetch answered with SLVERR/DECERR faults (FETCH) only when the
    decoder reaches that instruction.

    **Decode.** In program order, one instruction per cycle: illegal ones fault
    (OPCODE, RESERVED, SEM_RANGE; :class:`~hdl.isa.CoreError`); DMA goes to the DMA-in
    queue (loads) or the DMA-out queue (stores), MATMUL to the tensor queue, ACT to
    the vector queue (``config.queue_depth`` entries each; a full queue stalls the
    decoder). SEM waits in the decoder, then signals. END waits, then waits until
    every queue is empty and every issued command has finished, then pulses
    ``status.done``.

    **Issue.** Each queue's head waits for its semaphore (``sem >= wait_val``), then
    goes to its engine; the controller remembers ``(signal, address)`` of every issued
    command in an in-flight FIFO per engine, and signals when the engine reports the
    command finished (DMA completion, ``done`` of the tensor/vector engine's ``EngineStatus``).
    Semaphores (``config.n_sems`` 16-bit counters) are zeroed by ``ctrl.start``; several
    signals to one semaphore in one cycle all count.

    **Faults.** An illegal instruction, a DMA completion with an error, a refused
    matmul or ACT, a fetch error, or ``ctrl.watchdog`` cycles (when not 0) without any
    progress (no fetch beat, decode, issue or completion, and no engine busy) stop the
    program: ``status.fault``
    pulses with ``status.error_code``/``error_detail``/``fault_addr``, nothing more is
    decoded or issued from the cycle after the fault (a command that leaves in the
    fault's own cycle comes before the faulting instruction in program order), queued
    instructions are dropped, and commands already in the engines run to completion. ``status.busy`` falls once everything has drained. A refused
    matmul is traced to its instruction because the controller leaves one idle cycle
    after each tensor command (the engine decides in the cycle after it accepts).
    The watchdog's fault address is the first instruction, in the order decoder
    (SEM/END), DMA-in, DMA-out, tensor, vector, whose own semaphore wait does not
    hold; failing that, the decoder's. The watchdog raises its fault ``ctrl.watchdog
    + 2`` cycles after the last progress (its inputs and verdict are registered).

    **Command streams.** ``o_dma_in``, ``o_dma_out``, ``o_tensor`` and ``o_vector``
    lower ``valid`` without a handshake when a fault stops the program or an engine
    error becomes pending (nothing is issued after the fault's cycle). Their consumers
    (:class:`~hdl.dma.DMAEngine` ``i_desc``, the tensor and vector engines' ``i_cmd``)
    drive ``ready`` from their own state and act only on ``valid & ready``, so a
    withdrawn command leaves no trace; any new consumer must do the same.

    **Parts** (``hdl/controller_parts.py``): :class:`~hdl.controller_parts.Fetcher`,
    :class:`~hdl.controller_parts.Decoder`, one
    :class:`~hdl.controller_parts.IssueQueue` per engine,
    :class:`~hdl.controller_parts.Semaphores`,
    :class:`~hdl.controller_parts.Watchdog` and
    :class:`~hdl.controller_parts.FaultCapture`; ``elaborate`` connects them and holds
    the run state. The ports are declared in one block in ``__init__``.

    Members
    -------
    ctrl : In(RunControl)  ``start`` a program (ignored while busy) at ``prog_addr``;
                           ``watchdog``: cycles without progress before a WATCHDOG
                           fault, 0 = off
    status : Out(RunStatus)   ``busy``, ``done``, ``fault``, ``error_code``,
                           ``error_detail``, ``fault_addr``; ``retired``: instructions
                           finished in the previous cycle; ``macs``: MACs of the
                           matmuls finished in the previous cycle (k*m*n each). Both
                           are registered: they feed only the host's 48-bit counters,
                           and combinationally the engines' completions ran on through
                           the sum into the counters' adders (the whole core's
                           critical path on the ECP5)
    i_engine_busy : In(1)  some engine is working (progress for the watchdog; part of
                           ``status.busy`` after a fault, while issued commands finish)
    m_axi : Out(AXI4Signature)   fetch port (AR and R only; AW, W, B idle)
    o_dma_in, o_dma_out : Out(stream.Signature(DmaDesc))
    i_dma_in_done, i_dma_out_done : In(stream.Signature(dma_done_layout()))
    o_tensor : Out(stream.Signature(MatmulCmd)); tensor : In(EngineStatus(TensorError))
    o_vector : Out(stream.Signature(ActCmd)); vector : In(EngineStatus(ActError))
        The engines' completions and refusals; the controller pulses ``error_clear`` on
        an accepted start.
    i_cores : In(CORES_BITS)   (``chip=True`` only) the chip's core count
    o_remote : Out(stream.Signature(RemoteSignal))   (``chip=True``) cross-core signals
    i_remote : In(stream.Signature(SEM_BITS))
        (``chip=True``) Signals from other cores: always ready, each counts its
        semaphore up (also while not running; ``ctrl.start`` clears the semaphores, so
        cores that signal each other are started together, by the chip's START
        register). Without ``chip`` the ports do not exist and every remote SEM faults
        with PEER.
    """

    def __init__(self, config: CoreConfig, *, fetch_depth=16, fetch_burst=4, inflight_depth=8,
                 chip=False):
        check_config(config)
        check_int_range("fetch_depth", fetch_depth, 1, 64)
        if fetch_burst not in (1, 2, 4, 8) or fetch_burst > fetch_depth:
            raise ValueError(f"fetch_burst must be 1, 2, 4 or 8 and at most fetch_depth "
                             f"({fetch_depth}), not {fetch_burst!r}")
        check_int_range("inflight_depth", inflight_depth, 2, 64)
        # The fetcher checks the bus against the instruction size and the fetch ID, so
        # the controller is refused at construction for the same reasons.
        self._fetch = Fetcher(config, depth=fetch_depth, burst=fetch_burst)
        self._inflight_depth = inflight_depth
        self._chip = bool(chip)
        super().__init__(config, {
            "i_engine_busy": In(1),
            "ctrl": In(RunControl()),
            "status": Out(RunStatus()),
            "tensor": In(EngineStatus(TensorError)),
            "vector": In(EngineStatus(ActError)),
            "m_axi": Out(axi_signature(config)),
            "o_dma_in": Out(stream.Signature(DmaDesc)),
            "i_dma_in_done": In(stream.Signature(dma_done_layout())),
            "o_dma_out": Out(stream.Signature(DmaDesc)),
            "i_dma_out_done": In(stream.Signature(dma_done_layout())),
            "o_tensor": Out(stream.Signature(MatmulCmd)),
            "o_vector": Out(stream.Signature(ActCmd)),
            **({"i_cores": In(CORES_BITS),
                "o_remote": Out(stream.Signature(RemoteSignal)),
                "i_remote": In(stream.Signature(SEM_BITS))} if chip else {}),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()

        running = Signal()
        start = Signal()
        # A start while busy is ignored. The guard reads busy of the previous cycle:
        # busy is an OR over every part of the controller and the engines, and start
        # clears most of the controller's registers (it was on the critical path).
        # Nothing becomes busy without a start, so busy one cycle old, or a start in
        # the previous cycle, is as good.
        was_busy = Signal()
        m.d.sync += was_busy.eq(self.status.busy | start)
        m.d.comb += start.eq(self.ctrl.start & ~was_busy)
        m.d.comb += [
            self.tensor.error_clear.eq(start),
            self.vector.error_clear.eq(start),
        ]

        fetch = m.submodules.fetch = self._fetch
        dec = m.submodules.decode = Decoder(cfg.n_sems, chip=self._chip)
        queues = {name: IssueQueue(cmd, depth=cfg.queue_depth,
                                   inflight_depth=self._inflight_depth, macs=macs)
                  for name, (cmd, macs) in QUEUES.items()}
        for name, q in queues.items():
            m.submodules[f"{name}_queue"] = q
        # waits: decoder, then the queue heads; signals: the completions, then SEM
        sems = m.submodules.sems = Semaphores(cfg.n_sems, n_signals=6 if self._chip else 5,
                                              n_waits=5)
        wdog = m.submodules.watchdog = Watchdog()
        # fault sources, highest priority first: decoder, DMA-in and DMA-out
        # completions, tensor error, vector error, watchdog
        faults = m.submodules.faults = FaultCapture(6)
        fault = faults.o_any

        m.d.comb += [
            fetch.i_start.eq(start), fetch.i_prog_addr.eq(self.ctrl.prog_addr),
            fetch.i_enable.eq(running & ~fault),
            dec.i_start.eq(start), dec.i_prog_addr.eq(self.ctrl.prog_addr),
            dec.i_running.eq(running),
            sems.i_clear.eq(start),
            sems.i_wait[0].eq(dec.o_wait), dec.i_wait_ok.eq(sems.o_wait_ok[0]),
        ]
        wiring.connect(m, fetch.m_axi, wiring.flipped(self.m_axi))
        wiring.connect(m, fetch.o, dec.i)

        # ---- queues and issue -------------------------------------------------------------
        # The tensor queue leaves an idle cycle after each matmul, so that a refusal (the
        # engine decides in the cycle after it accepts) is traced to its instruction.
        tensor_gap = Signal()
        m.d.sync += tensor_gap.eq(self.o_tensor.valid & self.o_tensor.ready)
        extra_ok = {
            "dma_in": Const(1), "dma_out": Const(1),
            "tensor": ~tensor_gap & ~self.tensor.error,
            "vector": ~self.vector.error,
        }
        for k, (name, q) in enumerate(queues.items()):
            wiring.connect(m, getattr(dec, f"o_{name}"), q.i)
            wiring.connect(m, q.o, wiring.flipped(getattr(self, f"o_{name}")))
            m.d.comb += [
                sems.i_wait[1 + k].eq(q.o_wait), q.i_wait_ok.eq(sems.o_wait_ok[1 + k]),
                # not `~fault`: the fault sources are deep (the decoder's checks, the
                # completions), and `running` falls in the cycle after a fault anyway.
                # A command may leave in the cycle a fault is seen: it comes before the
                # fault in program order (a faulting instruction is never queued).
                q.i_enable.eq(running & extra_ok[name]),
                # not running (after END or a fault): drop what is queued
                q.i_flush.eq(~running),
            ]
        last_addr = {}
        for name in ("tensor", "vector"):
            port = getattr(self, f"o_{name}")
            last_addr[name] = Signal(PROG_ADDR_BITS, name=f"last_{name}_addr")
            with m.If(port.valid & port.ready):
                m.d.sync += last_addr[name].eq(queues[name].o_head_addr)

        # ---- completions ------------------------------------------------------------------
        # After a fault (not running) the in-flight records are dropped: a refused
        # command never completes, and nothing is signalled any more.
        done_events = []
        src = faults.i_src
        for k, name in enumerate(("dma_in", "dma_out")):
            port = getattr(self, f"i_{name}_done")
            rec = queues[name].o_inflight
            ev = port.valid & rec.valid
            ok = port.payload.error == DmaError.NONE
            m.d.comb += [
                port.ready.eq(1),
                rec.ready.eq(port.valid | ~running),
                sems.i_signal[k].en.eq(ev & rec.payload.signal.en & ok),
                sems.i_signal[k].sem.eq(rec.payload.signal.sem),
                src[1 + k].valid.eq(ev & ~ok), src[1 + k].code.eq(CoreError.DMA),
                src[1 + k].detail.eq(port.payload.error), src[1 + k].addr.eq(rec.payload.addr),
            ]
            done_events.append(ev)
        for k, name in enumerate(("tensor", "vector")):
            done = getattr(self, name).done
            rec = queues[name].o_inflight
            ev = done & rec.valid
            m.d.comb += [
                rec.ready.eq(done | ~running),
                sems.i_signal[2 + k].en.eq(ev & rec.payload.signal.en),
                sems.i_signal[2 + k].sem.eq(rec.payload.signal.sem),
            ]
            done_events.append(ev)
            if name == "tensor":
                m.d.sync += self.status.macs.eq(Mux(ev, rec.payload.macs, 0))
        m.d.comb += sems.i_signal[4].eq(dec.o_signal)
        if self._chip:
            # signals from other cores (an index not below n_sems would count nothing:
            # the sender's decoder checks indices against its own n_sems, the same)
            m.d.comb += [
                self.i_remote.ready.eq(1),
                sems.i_signal[5].en.eq(self.i_remote.valid),
                sems.i_signal[5].sem.eq(self.i_remote.payload),
                dec.i_cores.eq(self.i_cores),
            ]
            wiring.connect(m, dec.o_remote, wiring.flipped(self.o_remote))
        for k, (name, code) in enumerate((("tensor", CoreError.TENSOR),
                                          ("vector", CoreError.VECTOR))):
            m.d.comb += [
                src[3 + k].valid.eq(getattr(self, name).error), src[3 + k].code.eq(code),
                src[3 + k].detail.eq(getattr(self, name).error_code),
                src[3 + k].addr.eq(last_addr[name]),
            ]

        # ---- decoder's view of the queues ------------------------------------------------
        quiet = Signal()
        m.d.comb += [
            quiet.eq(Cat(*(q.o_idle for q in queues.values())).all() & ~self.i_engine_busy),
            dec.i_quiet.eq(quiet),
        ]

        # ---- watchdog ----------------------------------------------------------------------
        progress = Signal()
        m.d.comb += [
            progress.eq(dec.o_pop | fetch.o_beat
                        | Cat(*(q.o.valid & q.o.ready for q in queues.values())).any()
                        | Cat(*done_events).any() | self.i_engine_busy),
            wdog.i_running.eq(running), wdog.i_progress.eq(progress),
            wdog.i_limit.eq(self.ctrl.watchdog),
        ]
        # the fault address: the first instruction whose own wait does not hold, in the
        # order decoder (SEM/END), DMA-in, DMA-out, tensor, vector; failing that the
        # decoder's. Two register stages, like the watchdog's verdict: the blocked
        # flags (each a semaphore select and compare), then the choice. Nothing moves
        # in the cycles before the watchdog fires, so the address is that of the
        # fault's own cycle.
        blocked = Signal(1 + len(queues))
        m.d.sync += blocked.eq(Cat(dec.o_blocked, *(q.o_blocked for q in queues.values())))
        wd_addr = Signal(PROG_ADDR_BITS)
        with m.If(blocked[0]):
            m.d.sync += wd_addr.eq(dec.o_pc)
        for k, q in enumerate(queues.values()):
            with m.Elif(blocked[1 + k]):
                m.d.sync += wd_addr.eq(q.o_head_addr)
        with m.Else():
            m.d.sync += wd_addr.eq(dec.o_pc)
        m.d.comb += [
            src[0].eq(dec.o_fault),
            src[5].valid.eq(wdog.o_fire), src[5].code.eq(CoreError.WATCHDOG),
            src[5].detail.eq(0), src[5].addr.eq(wd_addr),
        ]

        # ---- fault capture and run state ------------------------------------------------
        m.d.comb += [faults.i_clear.eq(start), faults.i_enable.eq(running)]
        m.d.comb += [
            self.status.fault.eq(faults.o_fault), self.status.error_code.eq(faults.o_error_code),
            self.status.error_detail.eq(faults.o_error_detail),
            self.status.fault_addr.eq(faults.o_fault_addr),
        ]
        m.d.sync += self.status.done.eq(0)
        with m.If(start):
            m.d.sync += running.eq(1)
        with m.Elif(running & fault):
            m.d.sync += running.eq(0)
        with m.Elif(dec.o_done):
            m.d.sync += [running.eq(0), self.status.done.eq(1)]
        m.d.comb += [
            self.status.busy.eq(running | fetch.o_busy | ~quiet),
        ]
        m.d.sync += self.status.retired.eq(dec.o_retired + sum(done_events))
        return m
