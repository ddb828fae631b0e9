"""The partial-sum buffer (PSUM): banked 32-bit entries with accumulating writes."""

from amaranth.hdl import C, Cat, Module, Mux, ResetSignal, Signal
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

from .arbiter import RoundRobin
from .config import CoreConfig, psum_add_latency
from .formats import psum_data_layout
from .fp import FP32Adder
from .interfaces import ClientMemory, psum_read_client, psum_write_client

__all__ = ["PSUM"]


class PSUM(ClientMemory):
    """``cols`` partitions x ``psum_banks`` banks x ``psum_depth`` 32-bit entries.

    Every partition holds ``psum_banks * psum_depth`` entries (address
    ``bank * psum_depth + entry``). Two kinds of port serve them, both transparent to
    the write port (a read in the cycle a write lands sees the new value):

    * port A, one per partition, serves the write pipeline's read-modify-write; it
      reads :attr:`banks` ``[p]``, the partition's one memory of all its entries;
    * port B serves the clients' reads, and is split by bank: every (partition, bank)
      has its own copy of that bank's ``psum_depth`` entries (:attr:`read_banks`
      ``[p][k]``), a 1R1W memory that the write pipeline writes together with port A's
      memory when the write's bank is ``k``. So every bank has its own read port.

    So there are ``1 + psum_banks`` pipelines, each starting one operation per cycle:
    one write, granted round-robin among the ``n_write`` writers, and one read *per
    bank*, granted round-robin among the readers asking for that bank
    (:class:`~hdl.arbiter.RoundRobin`, one per pipeline). In one cycle the tensor
    engine's write to one bank, the vector engine's read of a second and DMA-out's read
    of a third are all accepted; readers that want the same bank take turns (the round
    robin serves a reader that keeps asking within ``n_read`` grants of its bank, so
    none starves). A read never takes a cycle from the writers, except while it waits
    on a hazard (below). The reason for the split: with one read port the readers
    shared one read per cycle, so a vector-engine drain and a DMA-out store of another
    bank slowed each other down.

    Block RAM cost: the split rounds every bank up to whole block RAMs. An ECP5 DP16KD
    holds 512 x 36 bits, so port A's memory of a partition takes
    ``ceil(psum_banks * psum_depth / 512)`` of them and the port-B copies
    ``psum_banks * ceil(psum_depth / 512)``. The default configuration (``cols=8``,
    ``psum_banks=4``, ``psum_depth=256``) has 8 x 2 DP16KD for port A and 8 x 4 for
    port B (each 256-entry bank fills half a DP16KD): 48, where one port-B copy per
    partition took 8 x 2 (32 in all). From ``psum_depth = 512`` on the split costs no
    block RAM. Port A stays one memory per partition: the write pipeline makes one
    access per cycle, so splitting it would buy nothing and cost the same rounding.
    (Port B was an explicit copy rather than a second read port of one ``Memory`` even
    before the split: Yosys duplicates such a memory into copies on an FPGA anyway, and
    doing it itself made Yosys 0.70's ``abc9`` crash on the flattened core.)

    Write pipeline:

    * cycle 0: the write is accepted (arbitration and the hazard check);
    * cycle 1: the entry is read on port A in every partition (the accepted write is
      registered first, so arbitration and the banks' address fan-out are apart);
    * cycle 2: the old value is known. An accumulating write adds its data to it:
      INT32 wrap-around (the old value registered first, the add in cycle 3), or FP32
      with :class:`~hdl.fp.FP32Adder` (round to nearest even, the policy of
      ``docs/numerics.md``) when ``fp`` is set; an overwrite takes its data;
    * cycle ``2 + A``: the write lands in the partitions whose ``mask`` bit is set, in
      port A's memory and in the port-B copy of its bank. ``A`` is :attr:`add_latency`
      (:func:`hdl.config.psum_add_latency`): 7 with float types elaborated, 2 without.
      INT32 results are delayed to the same stage, so writes land in acceptance order.

    Read pipeline of bank ``k``: cycle 0 the read is accepted, cycle 1 the entry is
    read on bank ``k``'s port B, cycle 2 the value enters the client's response FIFO;
    it is valid on ``rd[c].resp`` in cycle 4 at the earliest (the FIFO's latency), whatever
    ``A``. A reader has at most one request at a time, so at most one bank answers it
    in a cycle and its responses stay in request order.

    **Ordering and hazards.** A read sees exactly the writes accepted in earlier
    cycles; a write accepted in the same cycle as a read counts as *after* it (the
    read returns the value from before that write, whatever the entry). An operation
    that reads the entry (a read, or an accumulating write) is held back while a write
    to the same bank and entry is among those accepted in the ``A`` cycles before (it
    would land after the operation's port access; the write one stage further on lands
    in that very cycle and the ports are transparent to it), so no update is lost.
    While a granted read (of any bank) waits on such a hazard no write is accepted, so
    the wait ends within ``A`` cycles whatever the writers do. Back-to-back
    accumulations into one region therefore run at full rate when they are at least
    ``A + 1`` entries long, and stall otherwise (there is no forwarding into stage 1).

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
        #: port A: one memory per partition, every bank (``bank * psum_depth + entry``)
        self.banks = [MemoryData(shape=32, depth=config.psum_entries, init=[])
                      for _ in range(config.cols)]
        #: port B: ``read_banks[p][k]`` is partition ``p``'s copy of bank ``k``
        self.read_banks = [[MemoryData(shape=32, depth=config.psum_depth, init=[])
                            for _ in range(config.psum_banks)] for _ in range(config.cols)]

    @property
    def add_latency(self):
        """Cycles of the accumulate step (``A`` above)."""
        return psum_add_latency(self._config.has_float)

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        cols, nbanks = cfg.cols, cfg.psum_banks
        nw, nr = self._n_write, self._n_read
        A = self.add_latency
        ebits = ceil_log2(cfg.psum_depth)     # 0 when a bank holds one entry

        def address(payload):
            """``bank * psum_depth + entry`` (psum_depth is a power of two)."""
            return Cat(payload.entry[:ebits], payload.bank)
        abits = len(address(self.wr[0].payload))

        def wants(bank, k):
            """A read of ``bank`` goes to bank ``k``'s read pipeline. The last one also
            takes the bank numbers beyond it, which no client sends (the engines check
            the range): a request never waits for a pipeline that does not exist. With
            one bank every read goes to it."""
            if nbanks == 1:
                return C(1, 1)      # (not `bank >= 0`: a comparison that is always true)
            return bank == k if k < nbanks - 1 else bank >= k

        # Every partition: port A (memory `bank{p}`, all banks) reads for the write
        # pipeline; port B is one copy per bank (`bank{p}_b{k}`), written with port A's
        # memory when the write's bank is k. All read ports are transparent to their
        # write port.
        mems = []
        for p, data in enumerate(self.banks):
            mem = m.submodules[f"bank{p}"] = Memory(data=data)
            wp = mem.write_port()
            rpa = mem.read_port(transparent_for=(wp,))
            rpbs = []
            for k, bdata in enumerate(self.read_banks[p]):
                copy = m.submodules[f"bank{p}_b{k}"] = Memory(data=bdata)
                wpb = copy.write_port()
                rpbs.append(copy.read_port(transparent_for=(wpb,)))
                m.d.comb += [
                    wpb.addr.eq(wp.addr[:ebits]),
                    wpb.data.eq(wp.data),
                    wpb.en.eq(wp.en & (wp.addr[ebits:] == k)),
                ]
            mems.append((wp, rpa, rpbs))

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

        # ---- read client arbitration: one round robin per bank (port B) -----------------
        # A reader asks only when its response FIFO is sure to have room for one more.
        room = [req.valid & (credits[c] < depth) for c, (req, _) in enumerate(readers)]
        # per bank: (arbiter, granted reader's address, read accepted this cycle,
        # a granted read waits on a hazard)
        rd_banks = []
        for k in range(nbanks):
            arb = m.submodules[f"read_arbiter{k}"] = RoundRobin(nr)
            m.d.comb += arb.i_req.eq(Cat(
                room[c] & wants(req.payload.bank, k) for c, (req, _) in enumerate(readers)))
            addr = Signal(abits, name=f"rd{k}_addr")
            for c, (req, _) in enumerate(readers):
                with m.If(arb.o_grant[c]):
                    m.d.comb += addr.eq(address(req.payload))
            hazard = Signal(name=f"rd{k}_hazard")
            take = Signal(name=f"rd{k}_take")
            m.d.comb += [
                hazard.eq(in_flight(addr)),
                take.eq(arb.o_grant.any() & ~hazard),
                arb.i_advance.eq(take),
            ]
            rd_banks.append((arb, addr, take, arb.o_grant.any() & hazard))
        for c, (req, _) in enumerate(readers):
            m.d.comb += req.ready.eq(Cat(arb.o_grant[c] & take
                                         for arb, _, take, _ in rd_banks).any())
        rd_waits = Signal()     # a granted read, of any bank, waits on a hazard
        m.d.comb += rd_waits.eq(Cat(w for _, _, _, w in rd_banks).any())

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
        # ends within A cycles whatever the writers do. Nothing else about the reads
        # holds a write back.
        wr_hazard = Signal()
        wr_take = Signal()
        m.d.comb += [
            wr_hazard.eq((op_acc & in_flight(op_addr)) | rd_waits),
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
        # the INT32 path registers the old value before adding (stage 2), so the block
        # RAM's output does not run through the add in the same cycle
        s2_data = Signal(psum_data_layout(cfg), reset_less=True)
        s2_int = Signal()
        m.d.sync += [s2_data.eq(s1_data), s2_int.eq(s1_acc & ~stages[1]["accfp"])]
        second = stages[1]
        last = stages[-1]
        for p, (wp, rpa, _) in enumerate(mems):
            old = rpa.data
            old_q = Signal(32, name=f"w2_old{p}", reset_less=True)
            m.d.sync += old_q.eq(old)
            value = Signal(32, name=f"w2_value{p}")
            m.d.comb += value.eq(s2_data[p])
            with m.If(s2_int):
                m.d.comb += value.eq(old_q + s2_data[p])
            prev = value
            for s in range(A - 1):
                stage = Signal(32, name=f"w{s + 3}_value{p}", reset_less=True)
                m.d.sync += stage.eq(prev)
                prev = stage
            out = prev
            if cfg.has_float:
                out = Signal(32, name=f"result{p}")
                m.d.comb += out.eq(prev)
                adder = m.submodules[f"fp_add{p}"] = FP32Adder(subnormals=cfg.subnormals)
                assert adder.LATENCY == A
                m.d.comb += [
                    adder.i_a.eq(old),
                    adder.i_b.eq(s1_data[p]),
                    adder.i_valid.eq(second["valid"] & second["accfp"]),
                ]
                with m.If(last["accfp"]):
                    m.d.comb += out.eq(adder.o_sum)
            # ---- write stage 1 + A: write back (port A's memory and, through the
            # bank match above, the port-B copy of the write's bank) ------------------------
            # no write while the reset is asserted (as SBUF: the pipeline's registers
            # are undefined until the reset's first clock edge)
            m.d.comb += [
                wp.addr.eq(last["addr"]),
                wp.data.eq(out),
                wp.en.eq(last["valid"] & last["mask"][p] & ~ResetSignal()),
            ]

        # ---- read pipelines, one per bank: stage 0 reads the bank's port B, stage 1
        # fills the reader's response FIFO ------------------------------------------------
        r1_readers = []     # per bank: one-hot reader whose value the bank's port B holds
        bank_busy = []
        for k, (arb, addr, take, _) in enumerate(rd_banks):
            r0_entry = Signal(ebits, name=f"rd{k}_r0_entry", reset_less=True)
            r0_reader = Signal(nr, name=f"rd{k}_r0_reader")     # one-hot read client
            r1_reader = Signal(nr, name=f"rd{k}_r1_reader")
            m.d.sync += [
                r0_entry.eq(addr[:ebits]),
                r0_reader.eq(Mux(take, arb.o_grant, 0)),
                r1_reader.eq(r0_reader),
            ]
            for _, _, rpbs in mems:
                m.d.comb += [rpbs[k].addr.eq(r0_entry), rpbs[k].en.eq(r0_reader.any())]
            r1_readers.append(r1_reader)
            bank_busy += [r0_reader.any(), r1_reader.any()]
        for c, (req, resp) in enumerate(readers):
            fifo = m.submodules[f"resp_fifo{c}"] = SyncFIFOBuffered(width=32 * cols, depth=depth)
            # at most one bank answers a reader in a cycle (one request at a time, one
            # pipeline per request), so its value is an AND-OR of the banks' outputs
            hits = [r1[c] for r1 in r1_readers]
            value = 0
            for k, hit in enumerate(hits):
                value |= Cat(rpbs[k].data for _, _, rpbs in mems) & hit.replicate(32 * cols)
            m.d.comb += [
                fifo.w_en.eq(Cat(hits).any()),
                fifo.w_data.eq(value),
                resp.valid.eq(fifo.r_rdy),
                resp.payload.eq(fifo.r_data),
                fifo.r_en.eq(resp.ready),
            ]
            m.d.sync += credits[c].eq(
                credits[c] + (req.valid & req.ready) - (resp.valid & resp.ready))

        m.d.comb += self.o_busy.eq(
            Cat(st["valid"] for st in stages).any() | Cat(bank_busy).any())
        return m
