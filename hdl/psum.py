"""The partial-sum buffer (PSUM): banked 32-bit entries with accumulating writes."""

from amaranth.hdl import Cat, Module, Mux, ResetSignal, Signal
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

from .arbiter import RoundRobin
from .config import CoreConfig, FP_ADD_LATENCY
from .formats import psum_data_layout
from .fp import FP32Adder
from .interfaces import ClientMemory, psum_read_client, psum_write_client

__all__ = ["PSUM"]


class PSUM(ClientMemory):
    """``cols`` partitions x ``psum_banks`` banks x ``psum_depth`` 32-bit entries.

    Every partition holds ``psum_banks * psum_depth`` entries (address
    ``bank * psum_depth + entry``) behind one write port and two read ports, both
    transparent to the write port: port A serves the write pipeline's
    read-modify-write, port B the clients' reads. So there are two pipelines, each
    starting one operation per cycle: one write, granted round-robin among the
    ``n_write`` writers, and one read, granted round-robin among the ``n_read``
    readers, can be accepted in the same cycle (:class:`~hdl.arbiter.RoundRobin`,
    one per pipeline). The two read ports are built as two copies of the partition,
    each 1R1W, both written by the write pipeline (what Yosys makes of a 2-read-port
    memory on an FPGA anyway): twice the block RAMs of one read port.

    Write pipeline:

    * cycle 0: the write is accepted (arbitration and the hazard check);
    * cycle 1: the entry is read on port A in every partition (the accepted write is
      registered first, so arbitration and the banks' address fan-out are apart);
    * cycle 2: the old value is known. An accumulating write adds its data to it:
      INT32 wrap-around, or FP32 with :class:`~hdl.fp.FP32Adder` (round to nearest
      even, the policy of ``docs/numerics.md``) when ``fp`` is set; an overwrite
      takes its data;
    * cycle ``2 + A``: the write lands in the partitions whose ``mask`` bit is set.
      ``A`` is :attr:`add_latency`: 7 with float types elaborated, 1 without. INT32
      results are delayed to the same stage, so writes land in acceptance order.

    Read pipeline: cycle 0 the read is accepted, cycle 1 the entry is read on port B,
    cycle 2 the value enters the client's response FIFO; it is valid on ``o_rd`` in
    cycle 4 at the earliest (the FIFO's latency), whatever ``A``.

    **Ordering and hazards.** A read sees exactly the writes accepted in earlier
    cycles; a write accepted in the same cycle as a read counts as *after* it (the
    read returns the value from before that write, whatever the entry). An operation
    that reads the entry (a read, or an accumulating write) is held back while a write
    to the same bank and entry is among those accepted in the ``A`` cycles before (it
    would land after the operation's port access; the write one stage further on lands
    in that very cycle and the ports are transparent to it), so no update is lost.
    While a granted read waits on such a hazard no write is accepted, so the wait ends
    within ``A`` cycles whatever the writers do. Back-to-back accumulations into one
    region therefore run at full rate when they are at least ``A + 1`` entries long,
    and stall otherwise (there is no forwarding into stage 1).

    **Reads.** Responses come back in request order on the client's ``rd[c].resp`` stream
    through a FIFO of ``resp_depth`` entries; a request is granted only when the FIFO
    is sure to have room, so a stalled reader loses nothing and blocks no one else
    (neither the other readers nor the writers).

    Parameters
    ----------
    config : CoreConfig
        Uses ``cols``, ``psum_banks``, ``psum_depth`` and ``dtypes``.
    n_read, n_write : int
        Number of read and write clients, 1 to 8.
    resp_depth : int
        Response FIFO entries per read client, 3 to 64; 5 or more lets one reader run
        at one entry per cycle.

    Members
    -------
    wr : In(psum_write_client(config)).array(n_write)
        Write clients (:mod:`hdl.interfaces`); ``wr[c]`` is client ``c``.
    rd : In(psum_read_client(config)).array(n_read)
        Read clients: ``rd[c].req`` takes requests, ``rd[c].resp`` returns the entry
        in every partition.
    o_busy : Out(1)
        An accepted operation has not finished: a write not yet landed, or a read
        whose value has not yet entered its response FIFO.
    """

    def __init__(self, config: CoreConfig, *, n_read=1, n_write=1, resp_depth=16):
        super().__init__(config, psum_read_client, psum_write_client, n_read=n_read,
                         n_write=n_write, resp_depth=resp_depth,
                         ports={"o_busy": Out(1)})
        self.banks = [MemoryData(shape=32, depth=config.psum_entries, init=[])
                      for _ in range(config.cols)]

    @property
    def add_latency(self):
        """Cycles of the accumulate step (``A`` above)."""
        return FP_ADD_LATENCY if self._config.has_float else 1

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        cols = cfg.cols
        nw, nr = self._n_write, self._n_read
        A = self.add_latency
        ebits = ceil_log2(cfg.psum_depth)     # 0 when a bank holds one entry

        def address(payload):
            """``bank * psum_depth + entry`` (psum_depth is a power of two)."""
            return Cat(payload.entry[:ebits], payload.bank)
        abits = len(address(self.wr[0].payload))

        # Every partition: port A reads for the write pipeline, port B for the clients'
        # reads; both are transparent to the write port. Port B reads a second copy of
        # the partition (`bank{p}_b`) that takes every write of the first in the same
        # cycle: the same behaviour as one memory with two read ports, and what Yosys
        # makes of such a memory on an FPGA anyway. Built by Yosys itself, the duplicate
        # made Yosys 0.70's abc9 step crash on the flattened core (`synth_ecp5`:
        # "Assert `GetSize(conn.first) == GetSize(conn.second)' failed" in
        # ABC_OPS_REINTEGRATE); the explicit copy maps to the same block RAMs.
        mems = []
        for p, bank in enumerate(self.banks):
            mem = m.submodules[f"bank{p}"] = Memory(data=bank)
            wp = mem.write_port()
            rpa = mem.read_port(transparent_for=(wp,))
            copy = m.submodules[f"bank{p}_b"] = Memory(
                shape=32, depth=cfg.psum_entries, init=[])
            wpb = copy.write_port()
            rpb = copy.read_port(transparent_for=(wpb,))
            m.d.comb += [wpb.addr.eq(wp.addr), wpb.data.eq(wp.data), wpb.en.eq(wp.en)]
            mems.append((wp, rpa, rpb))

        writers = [self.write_client(c) for c in range(nw)]
        readers = [self.read_client(c) for c in range(nr)]
        depth = self._resp_depth
        credits = [Signal(range(depth + 1), name=f"rd{c}_pending") for c in range(nr)]

        # ---- write pipeline metadata, stage 0 .. 1 + A ----------------------------------
        # Stage 0 is the accepted write, registered, reading port A; the last stage writes.
        stages = []
        for s in range(0, A + 2):
            stages.append({
                "valid": Signal(name=f"w{s}_valid"),
                "addr": Signal(abits, name=f"w{s}_addr", reset_less=True),
                "mask": Signal(cols, name=f"w{s}_mask", reset_less=True),
                "accfp": Signal(name=f"w{s}_accfp", reset_less=True),
            })

        def in_flight(addr):
            """A write to ``addr`` sits in stages 0..A-1: an access to port A or B in
            the next cycle would not see it (the write in stage A lands in that cycle,
            and the ports are transparent to it)."""
            return Cat(st["valid"] & (st["addr"] == addr) for st in stages[:A]).any()

        # ---- read client arbitration (port B) -------------------------------------------
        rarb = m.submodules.read_arbiter = RoundRobin(nr)
        m.d.comb += rarb.i_req.eq(Cat(
            req.valid & (credits[c] < depth) for c, (req, _) in enumerate(readers)))
        rd_addr = Signal(abits)
        for c, (req, _) in enumerate(readers):
            with m.If(rarb.o_grant[c]):
                m.d.comb += rd_addr.eq(address(req.payload))
        rd_hazard = Signal()
        rd_take = Signal()
        m.d.comb += [
            rd_hazard.eq(in_flight(rd_addr)),
            rd_take.eq(rarb.o_grant.any() & ~rd_hazard),
            rarb.i_advance.eq(rd_take),
        ]
        for c, (req, _) in enumerate(readers):
            m.d.comb += req.ready.eq(rarb.o_grant[c] & ~rd_hazard)

        # ---- write client arbitration (port A + the write port) -------------------------
        warb = m.submodules.write_arbiter = RoundRobin(nw)
        m.d.comb += warb.i_req.eq(Cat(w.valid for w in writers))
        op_addr = Signal(abits)
        op_acc = Signal()
        op_fp = Signal()
        op_mask = Signal(cols)
        op_data = Signal(psum_data_layout(cfg))
        for c, w in enumerate(writers):
            with m.If(warb.o_grant[c]):
                m.d.comb += [
                    op_addr.eq(address(w.payload)),
                    op_acc.eq(w.payload.acc),
                    op_fp.eq(w.payload.fp & cfg.has_float),
                    op_mask.eq(w.payload.mask),
                    op_data.eq(w.payload.data),
                ]
        # An accumulating write waits for an earlier write to its entry, like a read;
        # and no write is accepted while a granted read waits on a hazard, so that wait
        # ends within A cycles whatever the writers do.
        wr_hazard = Signal()
        wr_take = Signal()
        m.d.comb += [
            wr_hazard.eq((op_acc & in_flight(op_addr)) | (rarb.o_grant.any() & rd_hazard)),
            wr_take.eq(warb.o_grant.any() & ~wr_hazard),
            warb.i_advance.eq(wr_take),
        ]
        for c, w in enumerate(writers):
            m.d.comb += w.ready.eq(warb.o_grant[c] & ~wr_hazard)

        first = stages[0]
        for _, rpa, _ in mems:
            m.d.comb += [rpa.addr.eq(first["addr"]), rpa.en.eq(first["valid"])]
        m.d.sync += [
            first["valid"].eq(wr_take),
            first["addr"].eq(op_addr),
            first["mask"].eq(op_mask),
            first["accfp"].eq(op_acc & op_fp),
        ]
        for prev, st in zip(stages, stages[1:]):
            m.d.sync += [st[k].eq(prev[k]) for k in st]

        # ---- write stage 1: combine with the old value ----------------------------------
        s0_data = Signal(psum_data_layout(cfg), reset_less=True)
        s0_acc = Signal()
        s1_data = Signal(psum_data_layout(cfg), reset_less=True)
        s1_acc = Signal()
        m.d.sync += [
            s0_data.eq(op_data),
            s0_acc.eq(op_acc),
            s1_data.eq(s0_data),
            s1_acc.eq(s0_acc),
        ]
        second = stages[1]
        last = stages[-1]
        for p, (wp, rpa, _) in enumerate(mems):
            old = rpa.data
            value = Signal(32, name=f"w1_value{p}")
            m.d.comb += value.eq(s1_data[p])
            with m.If(s1_acc & ~second["accfp"]):
                m.d.comb += value.eq(old + s1_data[p])
            prev = value
            for s in range(A):
                stage = Signal(32, name=f"w{s + 2}_value{p}", reset_less=True)
                m.d.sync += stage.eq(prev)
                prev = stage
            out = Signal(32, name=f"result{p}")
            m.d.comb += out.eq(prev)
            if cfg.has_float:
                adder = m.submodules[f"fp_add{p}"] = FP32Adder(subnormals=cfg.subnormals)
                assert adder.LATENCY == A
                m.d.comb += [
                    adder.i_a.eq(old),
                    adder.i_b.eq(s1_data[p]),
                    adder.i_valid.eq(second["valid"] & second["accfp"]),
                ]
                with m.If(last["accfp"]):
                    m.d.comb += out.eq(adder.o_sum)
            # ---- write stage 1 + A: write back -------------------------------------------
            # no write while the reset is asserted (as SBUF: the pipeline's registers
            # are undefined until the reset's first clock edge)
            m.d.comb += [
                wp.addr.eq(last["addr"]),
                wp.data.eq(out),
                wp.en.eq(last["valid"] & last["mask"][p] & ~ResetSignal()),
            ]

        # ---- read pipeline: stage 0 reads port B, stage 1 fills the response FIFO -------
        r0_valid = Signal()
        r0_addr = Signal(abits, reset_less=True)
        r0_reader = Signal(nr)      # one-hot read client
        r1_reader = Signal(nr)
        m.d.sync += [
            r0_valid.eq(rd_take),
            r0_addr.eq(rd_addr),
            r0_reader.eq(Mux(rd_take, rarb.o_grant, 0)),
            r1_reader.eq(r0_reader),
        ]
        for _, _, rpb in mems:
            m.d.comb += [rpb.addr.eq(r0_addr), rpb.en.eq(r0_valid)]
        for c, (req, resp) in enumerate(readers):
            fifo = m.submodules[f"resp_fifo{c}"] = SyncFIFOBuffered(width=32 * cols, depth=depth)
            m.d.comb += [
                fifo.w_en.eq(r1_reader[c]),
                fifo.w_data.eq(Cat(rpb.data for _, _, rpb in mems)),
                resp.valid.eq(fifo.r_rdy),
                resp.payload.eq(fifo.r_data),
                fifo.r_en.eq(resp.ready),
            ]
            m.d.sync += credits[c].eq(
                credits[c] + (rarb.o_grant[c] & rd_take) - (resp.valid & resp.ready))

        m.d.comb += self.o_busy.eq(
            Cat(st["valid"] for st in stages).any() | r0_valid | r1_reader.any())
        return m
