"""The controller: fetches a program over AXI, decodes it and feeds one queue per engine.

See ``docs/isa.md`` for the instruction set and the synchronisation model, and
:class:`Controller` for the pipeline.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from .axi import AXI4Signature
from .config import CoreConfig, check_int_range
from .formats import ActCmd, ActError, DmaDesc, DmaError, MatmulCmd, TensorError, dma_done_layout
from .interfaces import EngineStatus, RunControl, RunStatus
from .isa import (BODY_BITS, BODY_WIDTH, INSTR_BITS, INSTR_BYTES, SEM_BITS, SEM_VALUE_BITS, CoreError,
                  Instr, Opcode)

__all__ = ["Controller", "FETCH_ID", "MACS_WIDTH", "axi_signature"]

#: AXI ID of instruction fetches (the DMA engines use ID 0), so the shared read
#: channel routes each response back by its ``RID``.
FETCH_ID = 1

#: Width of the per-cycle MAC increment handed to the performance counters.
MACS_WIDTH = 40


def axi_signature(config: CoreConfig):
    return AXI4Signature(addr_width=config.axi_addr_width, data_bytes=config.axi_data_bytes,
                         id_width=config.axi_id_width)


def _queue_layout(cmd_shape, macs=False):
    fields = {
        "wait_en": 1, "wait_sem": SEM_BITS, "wait_val": SEM_VALUE_BITS,
        "sig_en": 1, "sig_sem": SEM_BITS, "addr": 48, "cmd": cmd_shape,
    }
    if macs:
        fields["macs"] = MACS_WIDTH
    return data.StructLayout(fields)


def _inflight_layout(macs=False):
    fields = {"sig_en": 1, "sig_sem": SEM_BITS, "addr": 48}
    if macs:
        fields["macs"] = MACS_WIDTH
    return data.StructLayout(fields)


class Controller(wiring.Component):
    """Runs a program: fetch, decode, per-engine queues, semaphores, faults.

    **Fetch.** From ``i_prog_addr`` (32-byte aligned; the low five bits are ignored)
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
    ``o_done``.

    **Issue.** Each queue's head waits for its semaphore (``sem >= wait_val``), then
    goes to its engine; the controller remembers ``(signal, address)`` of every issued
    command in an in-flight FIFO per engine, and signals when the engine reports the
    command finished (DMA completion, ``o_done`` of the tensor/vector engine).
    Semaphores (``config.n_sems`` 16-bit counters) are zeroed by ``i_start``; several
    signals to one semaphore in one cycle all count.

    **Faults.** An illegal instruction, a DMA completion with an error, a refused
    matmul or ACT, a fetch error, or ``i_watchdog`` cycles (when not 0) without any
    progress (no fetch beat, decode, issue or completion, and no engine busy) stop the
    program: ``o_fault``
    pulses with ``o_error_code``/``o_error_detail``/``o_fault_addr``, nothing more is
    decoded or issued, queued instructions are dropped, and commands already in the
    engines run to completion. ``o_busy`` falls once everything has drained. A refused
    matmul is traced to its instruction because the controller leaves one idle cycle
    after each tensor command (the engine decides in the cycle after it accepts).
    The watchdog's fault address is the first instruction, in the order decoder
    (SEM/END), DMA-in, DMA-out, tensor, vector, whose own semaphore wait does not
    hold; failing that, the decoder's.

    Members
    -------
    i_start : In(1)        start a program (ignored while ``o_busy``)
    i_prog_addr : In(48)
    i_watchdog : In(32)    cycles without progress before a WATCHDOG fault; 0 = off
    i_engine_busy : In(1)  some engine is working (progress for the watchdog; part of
                           ``o_busy`` after a fault, while issued commands finish)
    o_busy, o_done, o_fault : Out(1)
    o_error_code : Out(CoreError), o_error_detail : Out(8), o_fault_addr : Out(48)
    o_retired : Out(3)     instructions finished this cycle
    o_macs : Out(40)       MACs of the matmuls finished this cycle (k*m*n each)
    m_axi : Out(AXI4Signature)   fetch port (AR and R only; AW, W, B idle)
    o_dma_in, o_dma_out : Out(stream.Signature(DmaDesc))
    i_dma_in_done, i_dma_out_done : In(stream.Signature(dma_done_layout()))
    o_tensor : Out(stream.Signature(MatmulCmd)); i_tensor_done, i_tensor_error : In(1);
    i_tensor_error_code : In(TensorError); o_tensor_error_clear : Out(1)
    o_vector : Out(stream.Signature(ActCmd)); i_vector_done, i_vector_error : In(1);
    i_vector_error_code : In(ActError); o_vector_error_clear : Out(1)
    """

    def __init__(self, config: CoreConfig, *, fetch_depth=16, fetch_burst=4, inflight_depth=8):
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, not {config!r}")
        if config.axi_data_bytes > INSTR_BYTES:
            raise ValueError(f"the controller fetches whole {INSTR_BYTES}-byte instructions: "
                             f"axi_data_bytes must be at most {INSTR_BYTES}, "
                             f"not {config.axi_data_bytes}")
        check_int_range("fetch_depth", fetch_depth, 1, 64)
        if fetch_burst not in (1, 2, 4, 8) or fetch_burst > fetch_depth:
            raise ValueError(f"fetch_burst must be 1, 2, 4 or 8 and at most fetch_depth "
                             f"({fetch_depth}), not {fetch_burst!r}")
        check_int_range("inflight_depth", inflight_depth, 2, 64)
        if config.axi_id_width < 1:
            raise ValueError("axi_id_width must be at least 1 (fetches use ID 1)")
        self._config = config
        self._fetch_depth = fetch_depth
        self._fetch_burst = fetch_burst
        self._inflight_depth = inflight_depth
        super().__init__({
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
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        F = self._fetch_depth
        dbytes = cfg.axi_data_bytes
        dw = 8 * dbytes
        beats = INSTR_BYTES // dbytes

        running = Signal()
        m.d.comb += [
            self.tensor.error_clear.eq(self.ctrl.start & ~self.status.busy),
            self.vector.error_clear.eq(self.ctrl.start & ~self.status.busy),
        ]
        start = Signal()
        m.d.comb += start.eq(self.ctrl.start & ~self.status.busy)

        # ---- fault capture ------------------------------------------------------------
        fault = Signal()
        fault_code = Signal(CoreError)
        fault_detail = Signal(8)
        fault_addr = Signal(48)
        m.d.sync += self.status.fault.eq(0)
        with m.If(start):
            m.d.sync += [self.status.error_code.eq(CoreError.NONE), self.status.error_detail.eq(0),
                         self.status.fault_addr.eq(0)]
        with m.Elif(fault & running):
            m.d.sync += [
                self.status.fault.eq(1), self.status.error_code.eq(fault_code),
                self.status.error_detail.eq(fault_detail), self.status.fault_addr.eq(fault_addr),
            ]

        # ---- fetch ---------------------------------------------------------------------
        # One AR per run of up to `fb` instructions, up to the next (32 * fb)-byte
        # boundary (so a burst never crosses 4 KiB); room for every requested
        # instruction is reserved in the instruction FIFO before the request.
        ax = self.m_axi
        fb = self._fetch_burst
        lfb = exact_log2(fb)
        pc = Signal(48)
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
        with m.Elif(running & ~fault & (reserved + n_req <= F)):
            m.d.comb += ar_raise.eq(1)
            m.d.sync += [
                ax.arvalid.eq(1), ax.araddr.eq(pc), ax.arlen.eq(n_req * beats - 1),
                pc.eq(pc + n_req * INSTR_BYTES),
            ]
        with m.If(start):
            m.d.sync += pc.eq(Cat(Const(0, 5), self.ctrl.prog_addr[5:]))

        ifq = m.submodules.ifq = SyncFIFOBuffered(width=INSTR_BITS + 1, depth=F)
        rbuf = Signal(INSTR_BITS)
        rerr = Signal()
        rbeat = Signal(range(beats))
        r_fire = ax.rvalid & ax.rready
        new_buf = Cat(rbuf[dw:], ax.rdata) if dw < INSTR_BITS else ax.rdata
        new_err = rerr | ax.rresp[1]
        instr_done = r_fire & (rbeat == beats - 1)
        with m.If(r_fire):
            with m.If(rbeat == beats - 1):
                m.d.sync += [rbuf.eq(0), rerr.eq(0), rbeat.eq(0)]
            with m.Else():
                m.d.sync += [rbuf.eq(new_buf), rerr.eq(new_err), rbeat.eq(rbeat + 1)]
        m.d.comb += [
            ifq.w_en.eq(instr_done),            # room is reserved before the request
            ifq.w_data.eq(Cat(new_buf, new_err)),
        ]
        burst_done = r_fire & ax.rlast
        m.d.sync += outstanding.eq(outstanding + ar_raise - burst_done)

        # ---- semaphores ----------------------------------------------------------------
        n_sems = cfg.n_sems
        sems = Array(Signal(SEM_VALUE_BITS, name=f"sem{i}") for i in range(n_sems))

        def wait_ok(en, sem, val):
            ok = Signal()
            m.d.comb += ok.eq(~en | (sems[sem] >= val))
            return ok

        sig_events = []     # (enable, semaphore index)

        # ---- queues and issue --------------------------------------------------------------
        queues = {}
        inflight = {}
        specs = {
            "dma_in": (DmaDesc, self.o_dma_in, False),
            "dma_out": (DmaDesc, self.o_dma_out, False),
            "tensor": (MatmulCmd, self.o_tensor, True),
            "vector": (ActCmd, self.o_vector, False),
        }
        q_ok = {}
        q_entry = {}
        fires = []
        tensor_gap = Signal()
        last_tensor_addr = Signal(48)
        last_vector_addr = Signal(48)
        extra_ok = {
            "dma_in": Const(1), "dma_out": Const(1),
            "tensor": ~tensor_gap & ~self.tensor.error,
            "vector": ~self.vector.error,
        }
        for name, (shape, port, macs) in specs.items():
            ql = _queue_layout(shape, macs)
            il = _inflight_layout(macs)
            q = queues[name] = SyncFIFOBuffered(width=ql.size, depth=cfg.queue_depth)
            f = inflight[name] = SyncFIFOBuffered(width=il.size, depth=self._inflight_depth)
            m.submodules[f"{name}_queue"] = q
            m.submodules[f"{name}_inflight"] = f
            e = data.View(ql, q.r_data)
            q_entry[name] = e
            ok = q_ok[name] = wait_ok(e.wait_en, e.wait_sem, e.wait_val)
            can = Signal(name=f"{name}_can")
            m.d.comb += can.eq(running & ~fault & q.r_rdy & ok & f.w_rdy & extra_ok[name])
            fire = Signal(name=f"{name}_fire")
            m.d.comb += [
                port.valid.eq(can),
                port.payload.eq(e.cmd),
                fire.eq(can & port.ready),
                # not running (after END or a fault): drop what is queued
                q.r_en.eq(fire | (~running & q.r_rdy)),
                f.w_en.eq(fire),
            ]
            fires.append(fire)
            iv = data.View(il, f.w_data)
            m.d.comb += [iv.sig_en.eq(e.sig_en), iv.sig_sem.eq(e.sig_sem), iv.addr.eq(e.addr)]
            if macs:
                m.d.comb += iv.macs.eq(e.macs)
        m.d.sync += tensor_gap.eq(self.o_tensor.valid & self.o_tensor.ready)
        with m.If(self.o_tensor.valid & self.o_tensor.ready):
            m.d.sync += last_tensor_addr.eq(q_entry["tensor"].addr)
        with m.If(self.o_vector.valid & self.o_vector.ready):
            m.d.sync += last_vector_addr.eq(q_entry["vector"].addr)

        # ---- completions -----------------------------------------------------------------
        done_events = []
        faults = []         # (condition, code, detail, addr), highest priority first
        for name, port in (("dma_in", self.i_dma_in_done), ("dma_out", self.i_dma_out_done)):
            f = inflight[name]
            iv = data.View(_inflight_layout(), f.r_data)
            ev = port.valid & f.r_rdy
            # after a fault (not running) the records are dropped: a refused command
            # never completes, and nothing is signalled any more
            m.d.comb += [port.ready.eq(1), f.r_en.eq(ev | (~running & f.r_rdy))]
            sig_events.append((ev & iv.sig_en & (port.payload.error == DmaError.NONE),
                               iv.sig_sem))
            done_events.append(ev)
            faults.append((ev & (port.payload.error != DmaError.NONE), CoreError.DMA,
                           port.payload.error, iv.addr))
        for name, done in (("tensor", self.tensor.done), ("vector", self.vector.done)):
            f = inflight[name]
            iv = data.View(_inflight_layout(name == "tensor"), f.r_data)
            ev = done & f.r_rdy
            m.d.comb += f.r_en.eq(ev | (~running & f.r_rdy))
            sig_events.append((ev & iv.sig_en, iv.sig_sem))
            done_events.append(ev)
            if name == "tensor":
                m.d.comb += self.status.macs.eq(Mux(ev, iv.macs, 0))
        faults.append((self.tensor.error, CoreError.TENSOR, self.tensor.error_code,
                       last_tensor_addr))
        faults.append((self.vector.error, CoreError.VECTOR, self.vector.error_code,
                       last_vector_addr))

        # ---- decode --------------------------------------------------------------------
        instr = data.View(Instr, ifq.r_data[:INSTR_BITS])
        body = ifq.r_data[INSTR_BITS - BODY_BITS:INSTR_BITS]
        fetch_err = ifq.r_data[INSTR_BITS]
        have = ifq.r_rdy
        dec_pc = Signal(48)
        pop = Signal()
        m.d.comb += ifq.r_en.eq(pop | (~running & have))
        with m.If(start):
            m.d.sync += dec_pc.eq(Cat(Const(0, 5), self.ctrl.prog_addr[5:]))
        with m.Elif(pop):
            m.d.sync += dec_pc.eq(dec_pc + INSTR_BYTES)
        m.d.sync += reserved.eq(reserved + Mux(ar_raise, n_req, 0) - ifq.r_en)

        op = instr.opcode
        legal_op = Signal()
        rsv = Signal()
        for o in Opcode:
            with m.If(op == o):
                m.d.comb += legal_op.eq(1)
                w = BODY_WIDTH[o]
                if w < BODY_BITS:
                    m.d.comb += rsv.eq(body[w:].any())
        hdr_rsv = ((~instr.wait_en & ((instr.wait_sem != 0) | (instr.wait_val != 0)))
                   | (~instr.sig_en & (instr.sig_sem != 0)))
        sem_bad = ((instr.wait_en & (instr.wait_sem >= n_sems))
                   | (instr.sig_en & (instr.sig_sem >= n_sems)))
        dec_code = Signal(CoreError)
        with m.If(fetch_err):
            m.d.comb += dec_code.eq(CoreError.FETCH)
        with m.Elif(~legal_op):
            m.d.comb += dec_code.eq(CoreError.OPCODE)
        with m.Elif(rsv | hdr_rsv):
            m.d.comb += dec_code.eq(CoreError.RESERVED)
        with m.Elif(sem_bad):
            m.d.comb += dec_code.eq(CoreError.SEM_RANGE)
        dec_wait_ok = wait_ok(instr.wait_en, instr.wait_sem, instr.wait_val)

        dma = data.View(DmaDesc, body[:BODY_WIDTH[Opcode.DMA]])
        mm = data.View(MatmulCmd, body[:BODY_WIDTH[Opcode.MATMUL]])
        quiet = Signal()
        # FIFO levels, not r_rdy: a buffered FIFO's r_rdy rises a cycle after its level
        m.d.comb += quiet.eq(Cat(*(q.level == 0 for q in queues.values()),
                                 *(f.level == 0 for f in inflight.values())).all()
                             & ~self.i_engine_busy)
        # MACs of a matmul: k*m in one product, times n when it is queued
        km = Signal(18)
        m.d.comb += km.eq(mm.k * mm.m)
        target = {
            "dma_in": (op == Opcode.DMA) & ~dma.store,
            "dma_out": (op == Opcode.DMA) & dma.store,
            "tensor": op == Opcode.MATMUL,
            "vector": op == Opcode.ACT,
        }
        dec_sig = Signal()
        for name, q in queues.items():
            ql = _queue_layout(specs[name][0], specs[name][2])
            qv = data.View(ql, q.w_data)
            m.d.comb += [
                qv.wait_en.eq(instr.wait_en), qv.wait_sem.eq(instr.wait_sem),
                qv.wait_val.eq(instr.wait_val), qv.sig_en.eq(instr.sig_en),
                qv.sig_sem.eq(instr.sig_sem), qv.addr.eq(dec_pc),
                qv.cmd.eq(body[:data.Layout.cast(specs[name][0]).size]),
            ]
            if specs[name][2]:
                m.d.comb += qv.macs.eq(km * mm.n)
        dec_fault = Signal()
        done = Signal()
        with m.If(running & have):
            with m.If(dec_code != CoreError.NONE):
                m.d.comb += dec_fault.eq(1)
            with m.Elif(op == Opcode.SEM):
                with m.If(dec_wait_ok):
                    m.d.comb += [pop.eq(1), dec_sig.eq(instr.sig_en)]
            with m.Elif(op == Opcode.END):
                with m.If(dec_wait_ok & quiet):
                    m.d.comb += [pop.eq(1), done.eq(1)]
            with m.Else():
                for name, q in queues.items():
                    with m.If(target[name] & q.w_rdy):
                        m.d.comb += [pop.eq(1), q.w_en.eq(1)]
        sig_events.append((dec_sig, instr.sig_sem))
        faults.insert(0, (dec_fault, dec_code, Const(0, 8), dec_pc))

        # ---- semaphore update ----------------------------------------------------------------
        for i in range(n_sems):
            inc = sum((en & (idx == i)) for en, idx in sig_events)
            with m.If(start):
                m.d.sync += sems[i].eq(0)
            with m.Else():
                m.d.sync += sems[i].eq(sems[i] + inc)

        # ---- watchdog ------------------------------------------------------------------------
        progress = Signal()
        m.d.comb += progress.eq(pop | r_fire | Cat(*fires).any() | Cat(*done_events).any()
                                | self.i_engine_busy)
        idle_cycles = Signal(32)
        with m.If(~running | progress):
            m.d.sync += idle_cycles.eq(0)
        with m.Elif(idle_cycles != 0xFFFF_FFFF):
            m.d.sync += idle_cycles.eq(idle_cycles + 1)
        wd_fire = Signal()
        m.d.comb += wd_fire.eq((self.ctrl.watchdog != 0) & (idle_cycles >= self.ctrl.watchdog))
        wd_addr = Signal(48)
        dec_blocked = have & ((op == Opcode.SEM) | (op == Opcode.END)) & ~dec_wait_ok
        with m.If(dec_blocked):
            m.d.comb += wd_addr.eq(dec_pc)
        for name in ("dma_in", "dma_out", "tensor", "vector"):
            with m.Elif(queues[name].r_rdy & ~q_ok[name]):
                m.d.comb += wd_addr.eq(q_entry[name].addr)
        with m.Else():
            m.d.comb += wd_addr.eq(dec_pc)
        faults.append((wd_fire, CoreError.WATCHDOG, Const(0, 8), wd_addr))

        # ---- fault selection -----------------------------------------------------------------
        for i, (cond, code, detail, addr) in enumerate(faults):
            with (m.If if i == 0 else m.Elif)(cond):
                m.d.comb += [fault.eq(1), fault_code.eq(code), fault_detail.eq(detail),
                             fault_addr.eq(addr)]

        # ---- run state -----------------------------------------------------------------------
        m.d.sync += self.status.done.eq(0)
        with m.If(start):
            m.d.sync += running.eq(1)
        with m.Elif(running & fault):
            m.d.sync += running.eq(0)
        with m.Elif(done):
            m.d.sync += [running.eq(0), self.status.done.eq(1)]
        m.d.comb += [
            self.status.busy.eq(running | (outstanding != 0) | ax.arvalid | (ifq.level != 0)
                           | ~quiet),
            self.status.retired.eq((pop & ((op == Opcode.SEM) | (op == Opcode.END)))
                              + sum(done_events)),
        ]
        return m
