"""The parts of the controller (:class:`hdl.controller.Controller`), each with its own
contract and its own fast test (``tests/test_controller_amaranth.py``).

::

    m_axi AR/R -> Fetcher -> Decoder -+-> IssueQueue dma_in  -> o_dma_in   (+ in-flight records)
                                      +-> IssueQueue dma_out -> o_dma_out
                                      +-> IssueQueue tensor  -> o_tensor
                                      +-> IssueQueue vector  -> o_vector
    Semaphores: wait tests for the decoder and every queue head; signals from the decoder
    (SEM) and from every completion.  Watchdog: cycles without progress.  FaultCapture:
    the first of several fault sources, registered onto the controller's error outputs.

The controller itself only glues them: run state, the tensor gap, the watchdog's fault
address and the busy/retired/MAC outputs.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .config import CoreConfig, check_config, check_int_range
from .fifo import SyncStreamFIFO
from .formats import ActCmd, DmaDesc, MatmulCmd
from .interfaces import (CORES_BITS, FETCH_ID, MACS_WIDTH, PROG_ADDR_BITS, ConfigComponent,
                         RemoteSignal, axi_signature)
from .isa import (BODY_BITS, BODY_WIDTH, INSTR_BYTES, SEM_BITS, SEM_VALUE_BITS, CoreError, SemCmd,
                  Instr, Opcode)

__all__ = [
    "SemWait", "SemSignal", "Fault", "FetchedInstr", "queue_layout", "inflight_layout",
    "Fetcher", "Decoder", "IssueQueue", "Semaphores", "Watchdog", "FaultCapture",
]

#: Width of instruction addresses.
ADDR_BITS = PROG_ADDR_BITS


# ---- formats ---------------------------------------------------------------------------

class SemWait(data.Struct):
    """A semaphore wait: holds if ``~en`` or semaphore ``sem`` >= ``val`` (unsigned)."""
    en: 1
    sem: SEM_BITS
    val: SEM_VALUE_BITS


class SemSignal(data.Struct):
    """A semaphore signal: when ``en``, semaphore ``sem`` counts one up."""
    en: 1
    sem: SEM_BITS


class Fault(data.Struct):
    """A fault source: when ``valid``, stop with ``code``, ``detail``, ``addr``."""
    valid: 1
    code: CoreError
    detail: 8
    addr: ADDR_BITS


class FetchedInstr(data.Struct):
    """An instruction as fetched: ``err`` if the bus answered SLVERR/DECERR to any of
    its beats (then ``instr`` is whatever the beats carried)."""
    instr: Instr
    err: 1


#: The engine command each queue carries, and whether its entries carry a MAC count.
QUEUES = {
    "dma_in": (DmaDesc, False),
    "dma_out": (DmaDesc, False),
    "tensor": (MatmulCmd, True),
    "vector": (ActCmd, False),
}


def queue_layout(cmd_shape, macs=False):
    """An engine queue entry: the instruction's wait and signal, its address, its
    command and (tensor queue) its MAC count."""
    fields = {"wait": SemWait, "signal": SemSignal, "addr": ADDR_BITS, "cmd": cmd_shape}
    if macs:
        fields["macs"] = MACS_WIDTH
    return data.StructLayout(fields)


def inflight_layout(macs=False):
    """An in-flight record: what to do when an issued command finishes."""
    fields = {"signal": SemSignal, "addr": ADDR_BITS}
    if macs:
        fields["macs"] = MACS_WIDTH
    return data.StructLayout(fields)


# ---- fetch -----------------------------------------------------------------------------

class Fetcher(ConfigComponent):
    """Fetches instructions over AXI AR/R into an instruction FIFO.

    Contract:

    * ``i_start`` sets the fetch address to ``i_prog_addr`` with its low five bits
      cleared. While ``i_enable`` and no AR is pending, it raises one AR for the
      instructions up to the next ``32 * burst``-byte boundary (``n`` instructions,
      1 <= n <= ``burst``; so never across 4 KiB), but only if the FIFO can take all
      of them: at most ``depth`` instructions are requested or buffered. The AR holds
      until ``arready``; ``ARID`` = :data:`FETCH_ID`, ``ARPROT`` = instruction access,
      full-width INCR beats, ``32 / axi_data_bytes`` beats per instruction.
    * ``RREADY`` is always 1 (room was reserved). The beats of each instruction are
      assembled little-endian; the instruction goes into the FIFO in the cycle of its
      last beat with ``err`` set if any of its beats had SLVERR/DECERR.
    * ``o`` is the FIFO's read side (``SyncStreamFIFO``, ``depth`` entries), in fetch
      order. The consumer may hold ``o.ready`` high to drain it (after a fault).
    * ``o_beat`` is 1 in each cycle an R beat is taken; ``o_busy`` while an AR is
      pending, a burst has not had its last beat, or the FIFO holds anything.
    * AW, W and B are idle (``BREADY`` = 1).

    Members
    -------
    i_start : In(1)
    i_prog_addr : In(48)
    i_enable : In(1)      may raise new requests (the program runs and has not faulted)
    m_axi : Out(AXI4Signature)
    o : Out(stream.Signature(FetchedInstr))
    o_beat, o_busy : Out(1)
    """

    def __init__(self, config: CoreConfig, *, depth=16, burst=4):
        check_config(config)
        if config.axi_data_bytes > INSTR_BYTES:
            raise ValueError(f"the fetcher assembles whole {INSTR_BYTES}-byte instructions: "
                             f"axi_data_bytes must be at most {INSTR_BYTES}, "
                             f"not {config.axi_data_bytes}")
        check_int_range("depth", depth, 1, 64)
        if burst not in (1, 2, 4, 8) or burst > depth:
            raise ValueError(f"burst must be 1, 2, 4 or 8 and at most depth ({depth}), "
                             f"not {burst!r}")
        if config.axi_id_width < 1:
            raise ValueError("axi_id_width must be at least 1 (fetches use ID 1)")
        self._depth = depth
        self._burst = burst
        super().__init__(config, {
            "i_start": In(1),
            "i_prog_addr": In(ADDR_BITS),
            "i_enable": In(1),
            "m_axi": Out(axi_signature(config)),
            "o": Out(stream.Signature(FetchedInstr)),
            "o_beat": Out(1),
            "o_busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        F = self._depth
        fb = self._burst
        lfb = exact_log2(fb)
        dbytes = self._config.axi_data_bytes
        dw = 8 * dbytes
        ibits = Instr.as_shape().size
        beats = INSTR_BYTES // dbytes
        ax = self.m_axi

        pc = Signal(ADDR_BITS)
        reserved = Signal(range(F + 1))     # instructions requested or buffered
        outstanding = Signal(range(F + 1))  # bursts without their last beat
        n_req = Signal(range(fb + 1))       # instructions in the next request
        if lfb:
            m.d.comb += n_req.eq(fb - pc[5:5 + lfb])
        else:
            m.d.comb += n_req.eq(1)
        m.d.comb += [
            ax.arid.eq(FETCH_ID), ax.arsize.eq(exact_log2(dbytes)),
            ax.arburst.eq(1), ax.arprot.eq(0b100),
            ax.rready.eq(1),
            ax.awvalid.eq(0), ax.wvalid.eq(0), ax.bready.eq(1),
        ]
        ar_raise = Signal()
        with m.If(ax.arvalid):
            with m.If(ax.arready):
                m.d.sync += ax.arvalid.eq(0)
        with m.Elif(self.i_enable & (reserved + n_req <= F)):
            m.d.comb += ar_raise.eq(1)
            m.d.sync += [
                ax.arvalid.eq(1), ax.araddr.eq(pc), ax.arlen.eq(n_req * beats - 1),
                pc.eq(pc + n_req * INSTR_BYTES),
            ]
        with m.If(self.i_start):
            m.d.sync += pc.eq(Cat(Const(0, 5), self.i_prog_addr[5:]))

        ifq = m.submodules.ifq = SyncStreamFIFO(FetchedInstr, F)
        rbuf = Signal(ibits)
        rerr = Signal()
        rbeat = Signal(range(beats))
        r_fire = ax.rvalid & ax.rready
        new_buf = Cat(rbuf[dw:], ax.rdata) if dw < ibits else ax.rdata
        new_err = rerr | ax.rresp[1]
        with m.If(r_fire):
            with m.If(rbeat == beats - 1):
                m.d.sync += [rbuf.eq(0), rerr.eq(0), rbeat.eq(0)]
            with m.Else():
                m.d.sync += [rbuf.eq(new_buf), rerr.eq(new_err), rbeat.eq(rbeat + 1)]
        m.d.comb += [
            # room is reserved before the request, so ifq.i.ready is always high here
            ifq.i.valid.eq(r_fire & (rbeat == beats - 1)),
            ifq.i.payload.instr.eq(new_buf),
            ifq.i.payload.err.eq(new_err),
        ]
        wiring.connect(m, ifq.o, wiring.flipped(self.o))
        popped = self.o.valid & self.o.ready
        m.d.sync += [
            outstanding.eq(outstanding + ar_raise - (r_fire & ax.rlast)),
            reserved.eq(reserved + Mux(ar_raise, n_req, 0) - popped),
        ]
        m.d.comb += [
            self.o_beat.eq(r_fire),
            self.o_busy.eq((outstanding != 0) | ax.arvalid | (ifq.level != 0)),
        ]
        return m


# ---- decode ----------------------------------------------------------------------------

class Decoder(wiring.Component):
    """Checks and routes instructions, one per cycle, in program order.

    The instruction at the head of ``i`` is taken into a decode register (the
    *head* below) when the register is empty or its instruction leaves, with its
    checks' verdict and the product ``k * m`` already computed; routing, waits and
    pops work on the register. So the checks and the routing are in different cycles
    (in one they were the controller's critical path on the ECP5, from the instruction
    FIFO into the queues' write pointers), an instruction reaches its queue one cycle
    later, and still one instruction per cycle is routed.

    Contract, for the head while ``i_running``:

    * A bad instruction is reported on ``o_fault`` (``detail`` 0, ``addr`` its address)
      and stays at the head: fetch error (FETCH) before illegal opcode (OPCODE) before
      nonzero reserved body or header bits (RESERVED) before a semaphore index not
      below ``n_sems`` (SEM_RANGE).
    * DMA (load / store), MATMUL and ACT are offered on ``o_dma_in`` / ``o_dma_out`` /
      ``o_tensor`` / ``o_vector`` as a queue entry (wait, signal, address, command;
      MATMUL also ``k * m * n``) and popped when taken. ``valid`` does not depend on
      ``ready``.
    * SEM is popped once its wait (``o_wait``, answered by ``i_wait_ok``) has held for
      a cycle (the verdict is registered, as in :class:`IssueQueue`), and then signals
      on ``o_signal`` in that cycle. END is popped once its wait has held for a cycle
      and ``i_quiet``; ``o_done`` is 1 in that cycle. END never signals.
    * ``o_pc`` is the address of the head (``i_start`` sets it to ``i_prog_addr`` with
      the low five bits cleared; each pop adds 32). ``o_pop`` is 1 when an instruction
      is popped, ``o_retired`` when it is a SEM or END (finished in the decoder).
      ``o_blocked``: the head is a SEM or END whose wait does not hold.
    * While not ``i_running`` nothing is offered or popped as above, the decode
      register is emptied, and ``i.ready`` is high so the instruction FIFO drains.

    The queue streams lower ``valid`` without a handshake when ``i_running`` falls (a
    fault); their consumers are the controller's :class:`IssueQueue` FIFOs, which act
    only on ``valid & ready``, so a withdrawn entry is simply never written.

    Members
    -------
    i_start : In(1); i_prog_addr : In(48); i_running : In(1)
    i : In(stream.Signature(FetchedInstr))
    o_dma_in, o_dma_out, o_tensor, o_vector : Out(stream.Signature(queue_layout(...)))
    o_wait : Out(SemWait); i_wait_ok : In(1); o_signal : Out(SemSignal)
    i_cores : In(CORES_BITS); o_remote : Out(stream.Signature(RemoteSignal))
        Only with ``chip=True`` (a core of a chip): a remote SEM
        (:class:`~hdl.isa.SemCmd`) signals on ``o_remote`` instead of ``o_signal`` and
        is popped only when the signal is taken; one to a core not below ``i_cores``
        faults (PEER, after SEM_RANGE). Without ``chip`` every remote SEM faults with
        PEER (a standalone core has no other cores), and the ports do not exist.
    i_quiet : In(1)     every queue and in-flight FIFO is empty and no engine is busy
    o_fault : Out(Fault)
    o_pc : Out(48); o_pop, o_retired, o_done, o_blocked : Out(1)
    """

    def __init__(self, n_sems, *, chip=False):
        check_int_range("n_sems", n_sems, 1, 1 << SEM_BITS)
        self._n_sems = n_sems
        self._chip = bool(chip)
        ports = {
            "i_start": In(1),
            "i_prog_addr": In(ADDR_BITS),
            "i_running": In(1),
            "i": In(stream.Signature(FetchedInstr)),
        }
        for name, (cmd, macs) in QUEUES.items():
            ports[f"o_{name}"] = Out(stream.Signature(queue_layout(cmd, macs)))
        ports.update({
            "o_wait": Out(SemWait),
            "i_wait_ok": In(1),
            "o_signal": Out(SemSignal),
            **({"i_cores": In(CORES_BITS), "o_remote": Out(stream.Signature(RemoteSignal))}
               if chip else {}),
            "i_quiet": In(1),
            "o_fault": Out(Fault),
            "o_pc": Out(ADDR_BITS),
            "o_pop": Out(1),
            "o_retired": Out(1),
            "o_done": Out(1),
            "o_blocked": Out(1),
        })
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        n_sems = self._n_sems
        running = self.i_running
        pc = self.o_pc
        pop = self.o_pop

        # ---- stage 1: the checks of the instruction entering the decode register -------
        nxt = self.i.payload.instr
        legal_op = Signal()
        rsv = Signal()
        for o in Opcode:
            with m.If(nxt.opcode == o):
                m.d.comb += legal_op.eq(1)
                w = BODY_WIDTH[o]
                if w < BODY_BITS:
                    m.d.comb += rsv.eq(nxt.body[w:].any())
        hdr_rsv = ((~nxt.wait_en & ((nxt.wait_sem != 0) | (nxt.wait_val != 0)))
                   | (~nxt.sig_en & (nxt.sig_sem != 0)))
        sem_bad = ((nxt.wait_en & (nxt.wait_sem >= n_sems))
                   | (nxt.sig_en & (nxt.sig_sem >= n_sems)))
        nxt_sem = data.View(SemCmd, nxt.body[:BODY_WIDTH[Opcode.SEM]])
        is_sem = nxt.opcode == Opcode.SEM
        # a remote SEM must signal; a local one names no core
        sem_rsv = is_sem & Mux(nxt_sem.remote, ~nxt.sig_en, nxt_sem.core != 0)
        if self._chip:
            peer_bad = is_sem & nxt_sem.remote & (nxt_sem.core >= self.i_cores)
        else:
            peer_bad = is_sem & nxt_sem.remote
        nxt_code = Signal(CoreError)
        with m.If(self.i.payload.err):
            m.d.comb += nxt_code.eq(CoreError.FETCH)
        with m.Elif(~legal_op):
            m.d.comb += nxt_code.eq(CoreError.OPCODE)
        with m.Elif(rsv | hdr_rsv | sem_rsv):
            m.d.comb += nxt_code.eq(CoreError.RESERVED)
        with m.Elif(sem_bad):
            m.d.comb += nxt_code.eq(CoreError.SEM_RANGE)
        with m.Elif(peer_bad):
            m.d.comb += nxt_code.eq(CoreError.PEER)
        nxt_mm = data.View(MatmulCmd, nxt.body[:BODY_WIDTH[Opcode.MATMUL]])

        # ---- the decode register ---------------------------------------------------------
        instr = Signal(Instr)
        have = Signal()
        code = Signal(CoreError)
        km = Signal(18)         # MACs of a matmul: k*m in one product, times n below
        take = Signal()
        m.d.comb += [
            self.i.ready.eq(~running | ~have | pop),
            take.eq(running & self.i.valid & self.i.ready),
        ]
        with m.If(~running):
            m.d.sync += have.eq(0)
        with m.Elif(take):
            m.d.sync += [have.eq(1), instr.eq(nxt), code.eq(nxt_code),
                         km.eq(nxt_mm.k * nxt_mm.m)]
        with m.Elif(pop):
            m.d.sync += have.eq(0)

        # ---- stage 2: route the head ------------------------------------------------------
        body = instr.body
        op = instr.opcode
        with m.If(self.i_start):
            m.d.sync += pc.eq(Cat(Const(0, 5), self.i_prog_addr[5:]))
        with m.Elif(pop):
            m.d.sync += pc.eq(pc + INSTR_BYTES)
        m.d.comb += [
            self.o_wait.en.eq(instr.wait_en), self.o_wait.sem.eq(instr.wait_sem),
            self.o_wait.val.eq(instr.wait_val),
        ]

        # the command of each opcode is the low bits of the body (docs/isa.md)
        dma = data.View(DmaDesc, body[:BODY_WIDTH[Opcode.DMA]])
        mm = data.View(MatmulCmd, body[:BODY_WIDTH[Opcode.MATMUL]])
        act = data.View(ActCmd, body[:BODY_WIDTH[Opcode.ACT]])
        target = {
            "dma_in": ((op == Opcode.DMA) & ~dma.store, dma),
            "dma_out": ((op == Opcode.DMA) & dma.store, dma),
            "tensor": (op == Opcode.MATMUL, mm),
            "vector": (op == Opcode.ACT, act),
        }
        legal = code == CoreError.NONE
        for name, (sel, cmd) in target.items():
            port = getattr(self, f"o_{name}")
            e = port.payload
            m.d.comb += [
                e.wait.eq(self.o_wait), e.signal.en.eq(instr.sig_en),
                e.signal.sem.eq(instr.sig_sem), e.addr.eq(pc), e.cmd.eq(cmd),
                port.valid.eq(running & have & legal & sel),
            ]
            if QUEUES[name][1]:
                m.d.comb += e.macs.eq(km * mm.n)

        sig = Signal()
        sem_cmd = data.View(SemCmd, body[:BODY_WIDTH[Opcode.SEM]])
        remote = sem_cmd.remote
        if self._chip:
            m.d.comb += [self.o_remote.payload.core.eq(sem_cmd.core),
                         self.o_remote.payload.sem.eq(instr.sig_sem)]
        # i_wait_ok of this head in the previous cycle: the verdict (`held`) and that the
        # head did not change (`kept`), in two registers as in IssueQueue
        held = Signal()
        kept = Signal()
        m.d.sync += [held.eq(have & self.i_wait_ok), kept.eq(have & ~pop)]
        wait_ok = held & kept
        with m.If(running & have):
            with m.If(~legal):
                m.d.comb += self.o_fault.valid.eq(1)
            if self._chip:
                with m.Elif((op == Opcode.SEM) & remote):
                    # a cross-core signal leaves once its wait has held; popped when taken
                    m.d.comb += self.o_remote.valid.eq(wait_ok)
                    with m.If(wait_ok & self.o_remote.ready):
                        m.d.comb += pop.eq(1)
            with m.Elif(op == Opcode.SEM):
                with m.If(wait_ok):
                    m.d.comb += [pop.eq(1), sig.eq(instr.sig_en)]
            with m.Elif(op == Opcode.END):
                with m.If(wait_ok & self.i_quiet):
                    m.d.comb += [pop.eq(1), self.o_done.eq(1)]
            with m.Else():
                for name in target:
                    port = getattr(self, f"o_{name}")
                    with m.If(port.valid & port.ready):
                        m.d.comb += pop.eq(1)
        in_decoder = (op == Opcode.SEM) | (op == Opcode.END)
        m.d.comb += [
            self.o_signal.en.eq(sig), self.o_signal.sem.eq(instr.sig_sem),
            self.o_fault.code.eq(code), self.o_fault.detail.eq(0), self.o_fault.addr.eq(pc),
            self.o_retired.eq(pop & in_decoder),
            self.o_blocked.eq(have & in_decoder & ~self.i_wait_ok),
        ]
        return m


# ---- issue -----------------------------------------------------------------------------

class IssueQueue(wiring.Component):
    """One engine's queue: wait at the head, issue, remember what was issued.

    Contract:

    * ``i`` feeds a FIFO of ``depth`` entries (:func:`queue_layout`), in order.
    * The head's wait is on ``o_wait`` (answered by ``i_wait_ok``). The head's command
      is offered on ``o`` (``valid``) when its wait held in the previous cycle (and it
      was the head then), the in-flight FIFO has room and ``i_enable``; taking it
      (``valid & ready``) pops the head and pushes the
      entry's signal and address (and MAC count) onto the in-flight FIFO
      (``inflight_depth`` entries, :func:`inflight_layout`). So at most
      ``inflight_depth`` commands are issued and not yet finished.
    * ``o_inflight`` is the oldest issued command's record. The owner pops it
      (``ready``) when the engine reports that command finished.
    * While ``i_flush`` the queue drops its head, one entry per cycle, without
      issuing it (the controller flushes while not running, when ``i_enable`` is low
      too). The owner drains ``o_inflight`` the same way, by holding its ``ready``.
    * ``o_blocked``: there is a head and its wait does not hold; ``o_head_addr`` is the
      head's address. ``o_idle``: both FIFOs are empty (levels, which see an entry in
      the cycle it is written, unlike a buffered FIFO's ``valid``).

    The wait's verdict is registered (``ok``) so that the semaphore select and compare
    end at a flip-flop instead of running on into the engines' command inputs, the
    watchdog and the fault capture (the controller's critical path on the ECP5 before
    this register; ``docs/controller.md``). Semaphores only count up while a program
    runs, so a verdict one cycle old never lets a command out early; the cost is one
    cycle after the wait first holds and one cycle between two commands of a queue
    (a new head's verdict is registered before it can be offered).

    ``o.valid`` falls without a handshake when ``i_enable`` falls (the program stops,
    or an engine error pending) or when ``i_flush`` drops the head. The engines that take
    these streams (:class:`~hdl.dma.DMAEngine` ``i_desc``, the tensor engine's and
    the vector engine's ``i_cmd``) drive ``ready`` from their own state alone and act
    only on ``valid & ready``, so a withdrawn command leaves no trace in them.

    Members
    -------
    i : In(stream.Signature(queue_layout(cmd, macs)))
    o : Out(stream.Signature(cmd))
    o_wait : Out(SemWait); i_wait_ok : In(1)
    i_enable, i_flush : In(1)
    o_inflight : Out(stream.Signature(inflight_layout(macs)))
    o_blocked, o_idle : Out(1); o_head_addr : Out(48)
    """

    def __init__(self, cmd_shape, *, depth, inflight_depth, macs=False):
        check_int_range("depth", depth, 1, 64)
        check_int_range("inflight_depth", inflight_depth, 1, 64)
        self._cmd_shape = cmd_shape
        self._depth = depth
        self._inflight_depth = inflight_depth
        self._macs = macs
        super().__init__({
            "i": In(stream.Signature(queue_layout(cmd_shape, macs))),
            "o": Out(stream.Signature(cmd_shape)),
            "o_wait": Out(SemWait),
            "i_wait_ok": In(1),
            "i_enable": In(1),
            "i_flush": In(1),
            "o_inflight": Out(stream.Signature(inflight_layout(macs))),
            "o_blocked": Out(1),
            "o_idle": Out(1),
            "o_head_addr": Out(ADDR_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        q = m.submodules.queue = SyncStreamFIFO(queue_layout(self._cmd_shape, self._macs),
                                                self._depth)
        f = m.submodules.inflight = SyncStreamFIFO(inflight_layout(self._macs),
                                                   self._inflight_depth)
        wiring.connect(m, wiring.flipped(self.i), q.i)
        wiring.connect(m, f.o, wiring.flipped(self.o_inflight))
        head = q.o.payload
        fire = self.o.valid & self.o.ready
        # the head's wait held in the previous cycle (`ok`), and that head was not
        # popped then (`kept`); two registers, so that the engine's ready (in the pop)
        # does not join the semaphore compare in front of one flip-flop
        ok = Signal()
        kept = Signal()
        m.d.sync += [ok.eq(q.o.valid & self.i_wait_ok), kept.eq(~q.o.ready)]
        m.d.comb += [
            self.o_wait.eq(head.wait),
            self.o.valid.eq(self.i_enable & q.o.valid & ok & kept & f.i.ready),
            self.o.payload.eq(head.cmd),
            q.o.ready.eq(fire | self.i_flush),
            f.i.valid.eq(fire),
            f.i.payload.signal.eq(head.signal),
            f.i.payload.addr.eq(head.addr),
            self.o_blocked.eq(q.o.valid & ~self.i_wait_ok),
            self.o_idle.eq((q.level == 0) & (f.level == 0)),
            self.o_head_addr.eq(head.addr),
        ]
        if self._macs:
            m.d.comb += f.i.payload.macs.eq(head.macs)
        return m


# ---- semaphores ------------------------------------------------------------------------

class Semaphores(wiring.Component):
    """``n_sems`` counters of ``SEM_VALUE_BITS`` bits with wait tests and signals.

    Contract:

    * ``o_wait_ok[k]`` = ``~i_wait[k].en | (sem[i_wait[k].sem] >= i_wait[k].val)``,
      combinationally from the counters' current values (a signal counts from the
      next cycle on).
    * Each cycle every counter adds the number of enabled ``i_signal`` entries that name
      it (several in one cycle all count), modulo 2**16.
    * ``i_clear`` zeroes every counter (signals in that cycle are lost).
    * A wait or signal index not below ``n_sems`` is the decoder's fault (SEM_RANGE)
      and never reaches here from a legal instruction.

    Members
    -------
    i_clear : In(1)
    i_signal : In(data.ArrayLayout(SemSignal, n_signals))
    i_wait : In(data.ArrayLayout(SemWait, n_waits))
    o_wait_ok : Out(n_waits)
    o_value : Out(data.ArrayLayout(SEM_VALUE_BITS, n_sems))   the counters
    """

    def __init__(self, n_sems, *, n_signals, n_waits):
        check_int_range("n_sems", n_sems, 1, 1 << SEM_BITS)
        check_int_range("n_signals", n_signals, 1, 16)
        check_int_range("n_waits", n_waits, 1, 16)
        self._n_sems = n_sems
        self._n_signals = n_signals
        self._n_waits = n_waits
        super().__init__({
            "i_clear": In(1),
            "i_signal": In(data.ArrayLayout(SemSignal, n_signals)),
            "i_wait": In(data.ArrayLayout(SemWait, n_waits)),
            "o_wait_ok": Out(n_waits),
            "o_value": Out(data.ArrayLayout(SEM_VALUE_BITS, n_sems)),
        })

    def elaborate(self, platform):
        m = Module()
        sems = Array(Signal(SEM_VALUE_BITS, name=f"sem{i}") for i in range(self._n_sems))
        for k in range(self._n_waits):
            w = self.i_wait[k]
            m.d.comb += self.o_wait_ok[k].eq(~w.en | (sems[w.sem] >= w.val))
        signals = [self.i_signal[j] for j in range(self._n_signals)]
        for i in range(self._n_sems):
            inc = sum(s.en & (s.sem == i) for s in signals)
            with m.If(self.i_clear):
                m.d.sync += sems[i].eq(0)
            with m.Else():
                m.d.sync += sems[i].eq(sems[i] + inc)
            m.d.comb += self.o_value[i].eq(sems[i])
        return m


# ---- watchdog --------------------------------------------------------------------------

class Watchdog(wiring.Component):
    """Counts cycles without progress.

    Contract: ``i_running`` and ``i_progress`` are registered first (``run``,
    ``prog``: their values of the previous cycle). The count is 0 in the cycle after
    one with ``~run | prog``, and otherwise counts up by one per cycle, saturating at
    2**32 - 1. ``o_fire`` is registered too: it is ``(i_limit != 0) & (count >=
    i_limit)`` of the previous cycle. So it first rises ``i_limit + 2`` cycles after
    the last cycle with progress (or the start) and falls two cycles after progress
    or the end of the run.

    Why the registers: the progress flag is an OR over the decoder, every queue and
    every completion, and the count's compare drives the controller's fault capture;
    each would otherwise be a long path into the other (on the ECP5 the controller's
    critical path ran from the decoder into this counter). Two cycles on a limit
    that is thousands of cycles long change nothing a program can see.

    Members
    -------
    i_running, i_progress : In(1)
    i_limit : In(32)        0 = off
    o_fire : Out(1)
    """

    i_running: In(1)
    i_progress: In(1)
    i_limit: In(32)
    o_fire: Out(1)

    def elaborate(self, platform):
        m = Module()
        idle_cycles = Signal(32)
        run = Signal()
        prog = Signal()
        m.d.sync += [run.eq(self.i_running), prog.eq(self.i_progress)]
        with m.If(~run | prog):
            m.d.sync += idle_cycles.eq(0)
        with m.Elif(idle_cycles != 0xFFFF_FFFF):
            m.d.sync += idle_cycles.eq(idle_cycles + 1)
        m.d.sync += self.o_fire.eq((self.i_limit != 0) & (idle_cycles >= self.i_limit))
        return m


# ---- faults ----------------------------------------------------------------------------

class FaultCapture(wiring.Component):
    """Picks the first of ``n`` fault sources and registers it.

    Contract:

    * ``o_any`` (combinational) is 1 when any ``i_src[k].valid``; ``o_first`` is the
      valid source of lowest index (all zero when none).
    * In the cycle after one with ``o_any & i_enable`` (and not ``i_clear``),
      ``o_fault`` is 1 for one cycle and ``o_error_code``/``o_error_detail``/
      ``o_fault_addr`` hold that source's fields; they keep them until the next
      capture or ``i_clear``, which zeroes them (``i_clear`` wins over a capture).

    Members
    -------
    i_src : In(data.ArrayLayout(Fault, n))   highest priority first
    i_enable, i_clear : In(1)
    o_any : Out(1); o_first : Out(Fault)
    o_fault : Out(1); o_error_code : Out(CoreError); o_error_detail : Out(8)
    o_fault_addr : Out(48)
    """

    def __init__(self, n):
        check_int_range("n", n, 1, 16)
        self._n = n
        super().__init__({
            "i_src": In(data.ArrayLayout(Fault, n)),
            "i_enable": In(1),
            "i_clear": In(1),
            "o_any": Out(1),
            "o_first": Out(Fault),
            "o_fault": Out(1),
            "o_error_code": Out(CoreError),
            "o_error_detail": Out(8),
            "o_fault_addr": Out(ADDR_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        first = self.o_first
        for k in range(self._n):
            src = self.i_src[k]
            with (m.If if k == 0 else m.Elif)(src.valid):
                m.d.comb += first.eq(src)
        m.d.comb += self.o_any.eq(first.valid)
        m.d.sync += self.o_fault.eq(0)
        with m.If(self.i_clear):
            m.d.sync += [self.o_error_code.eq(CoreError.NONE), self.o_error_detail.eq(0),
                         self.o_fault_addr.eq(0)]
        with m.Elif(first.valid & self.i_enable):
            m.d.sync += [
                self.o_fault.eq(1), self.o_error_code.eq(first.code),
                self.o_error_detail.eq(first.detail), self.o_fault_addr.eq(first.addr),
            ]
        return m
