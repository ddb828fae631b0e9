"""The partial-sum buffer (PSUM): banked 32-bit entries with accumulating writes."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .arbiter import RoundRobin
from .config import FP_ADD_LATENCY, CoreConfig, check_int_range
from .formats import psum_data_layout, psum_read_layout, psum_write_layout
from .fp import FP32Adder

__all__ = ["PSUM"]



class PSUM(wiring.Component):
    """``cols`` partitions x ``psum_banks`` banks x ``psum_depth`` 32-bit entries.

    Every partition is one 1R1W SRAM of ``psum_banks * psum_depth`` entries (address
    ``bank * psum_depth + entry``). All clients (``n_write`` writers, ``n_read``
    readers) share one pipeline that starts one operation per cycle, granted
    round-robin among the clients asking (:class:`~hdl.arbiter.RoundRobin`):

    * cycle 0: the operation is accepted (arbitration and the hazard check);
    * cycle 1: the entry is read in every partition (the accepted operation is
      registered first, so arbitration and the banks' address fan-out are apart);
    * cycle 2: the old value is known. An accumulating write adds its data to it:
      INT32 wrap-around, or FP32 with :class:`~hdl.fp.FP32Adder` (round to nearest
      even, the policy of ``docs/numerics.md``) when ``fp`` is set;
    * cycle ``2 + A``: the write lands in the partitions whose ``mask`` bit is set,
      or a read's old value goes to the client's response FIFO. ``A`` is
      :attr:`add_latency`: 7 with float types elaborated, 1 without.

    **Hazards.** An operation that reads (an accumulating write or a read) is held
    back while a write to the same bank and entry is still in the pipeline, so a
    read always sees every write accepted before it and no update is lost. Writes
    land in acceptance order. Back-to-back accumulations into one region therefore
    run at full rate when they are at least ``A + 1`` entries long, and stall
    otherwise (there is no forwarding into stage 1).

    **Reads.** Responses come back in request order on the client's ``o_rd`` stream
    through a FIFO of ``resp_depth`` entries; a request is granted only when the FIFO
    is sure to have room, so a stalled reader loses nothing and blocks no one else.

    Parameters
    ----------
    config : CoreConfig
        Uses ``cols``, ``psum_banks``, ``psum_depth`` and ``dtypes``.
    n_read, n_write : int
        Number of read and write clients, 1 to 8.
    resp_depth : int
        Response FIFO entries per read client, 3 to 64; ``add_latency + 5`` or more
        lets one reader run at one entry per cycle.

    Members
    -------
    i_wr{c} : In(stream.Signature(psum_write_layout(config)))
        Write client ``c``.
    i_rd{c} : In(stream.Signature(psum_read_layout(config)))
        Read requests of client ``c``.
    o_rd{c} : Out(stream.Signature(psum_data_layout(config)))
        Read responses of client ``c``: the entry in every partition.
    o_busy : Out(1)
        An accepted operation has not finished (a write not yet landed).
    """

    def __init__(self, config: CoreConfig, *, n_read=1, n_write=1, resp_depth=16):
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, not {config!r}")
        check_int_range("n_read", n_read, 1, 8)
        check_int_range("n_write", n_write, 1, 8)
        check_int_range("resp_depth", resp_depth, 3, 64)
        self._config = config
        self._n_read = n_read
        self._n_write = n_write
        self._resp_depth = resp_depth
        ports = {}
        for c in range(n_write):
            ports[f"i_wr{c}"] = In(stream.Signature(psum_write_layout(config)))
        for c in range(n_read):
            ports[f"i_rd{c}"] = In(stream.Signature(psum_read_layout(config)))
            ports[f"o_rd{c}"] = Out(stream.Signature(psum_data_layout(config)))
        ports["o_busy"] = Out(1)
        super().__init__(ports)
        self.banks = [MemoryData(shape=32, depth=config.psum_entries, init=[])
                      for _ in range(config.cols)]

    @property
    def config(self):
        return self._config

    @property
    def add_latency(self):
        """Cycles of the accumulate step (``A`` above)."""
        return FP_ADD_LATENCY if self._config.has_float else 1

    def write_client(self, c):
        return getattr(self, f"i_wr{c}")

    def read_client(self, c):
        """``(request, response)`` streams of read client ``c``."""
        return getattr(self, f"i_rd{c}"), getattr(self, f"o_rd{c}")

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
        abits = len(address(self.i_wr0.payload))

        mems = []
        for p, bank in enumerate(self.banks):
            mem = m.submodules[f"bank{p}"] = Memory(data=bank)
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=(wp,))
            mems.append((wp, rp))

        # ---- stage 0: arbitrate, check hazards, read -------------------------------
        arb = m.submodules.arbiter = RoundRobin(nw + nr)
        writers = [self.write_client(c) for c in range(nw)]
        readers = [self.read_client(c) for c in range(nr)]
        depth = self._resp_depth
        credits = [Signal(range(depth + 1), name=f"rd{c}_pending") for c in range(nr)]
        m.d.comb += arb.i_req.eq(Cat(
            *(w.valid for w in writers),
            *(req.valid & (credits[c] < depth) for c, (req, _) in enumerate(readers))))

        op_addr = Signal(abits)
        op_write = Signal()
        op_acc = Signal()
        op_fp = Signal()
        op_mask = Signal(cols)
        op_data = Signal(psum_data_layout(cfg))
        op_reader = Signal(nr)      # one-hot read client
        for c, w in enumerate(writers):
            with m.If(arb.o_grant[c]):
                m.d.comb += [
                    op_addr.eq(address(w.payload)),
                    op_write.eq(1),
                    op_acc.eq(w.payload.acc),
                    op_fp.eq(w.payload.fp & cfg.has_float),
                    op_mask.eq(w.payload.mask),
                    op_data.eq(w.payload.data),
                ]
        for c, (req, _) in enumerate(readers):
            with m.If(arb.o_grant[nw + c]):
                m.d.comb += [
                    op_addr.eq(address(req.payload)),
                    op_reader[c].eq(1),
                ]

        # Pipeline metadata, stage 0 .. 1 + A: stage 0 is the accepted operation,
        # registered, reading the banks; the last stage writes or responds.
        stages = []
        for s in range(0, A + 2):
            stages.append({
                "valid": Signal(name=f"s{s}_valid"),
                "write": Signal(name=f"s{s}_write"),
                "addr": Signal(abits, name=f"s{s}_addr", reset_less=True),
                "mask": Signal(cols, name=f"s{s}_mask", reset_less=True),
                "accfp": Signal(name=f"s{s}_accfp", reset_less=True),
                "reader": Signal(nr, name=f"s{s}_reader"),
            })

        # A reading operation accepted now reads the banks in the next cycle. It waits
        # while a write to its entry sits in stages 0..A-1: those land after that read.
        # The write then in the last stage lands in the read's cycle, and the read port
        # is transparent to it.
        needs_read = ~op_write | op_acc
        hazard = Signal()
        m.d.comb += hazard.eq(needs_read & Cat(
            st["valid"] & st["write"] & (st["addr"] == op_addr) for st in stages[:A]).any())
        take = Signal()
        m.d.comb += [
            take.eq(arb.o_grant.any() & ~hazard),
            arb.i_advance.eq(take),
        ]
        for c, w in enumerate(writers):
            m.d.comb += w.ready.eq(arb.o_grant[c] & ~hazard)
        for c, (req, _) in enumerate(readers):
            m.d.comb += req.ready.eq(arb.o_grant[nw + c] & ~hazard)
        first = stages[0]
        for _, rp in mems:
            m.d.comb += [rp.addr.eq(first["addr"]), rp.en.eq(first["valid"])]

        m.d.sync += [
            first["valid"].eq(take),
            first["write"].eq(take & op_write),
            first["addr"].eq(op_addr),
            first["mask"].eq(op_mask),
            first["accfp"].eq(op_acc & op_fp),
            first["reader"].eq(Mux(take, op_reader, 0)),
        ]
        for prev, st in zip(stages, stages[1:]):
            m.d.sync += [st[k].eq(prev[k]) for k in st]

        # ---- stage 1: combine with the old value ------------------------------------
        s0_data = Signal(psum_data_layout(cfg), reset_less=True)
        s0_acc = Signal()
        s0_over = Signal()      # a write that overwrites
        s1_data = Signal(psum_data_layout(cfg), reset_less=True)
        s1_acc = Signal()
        s1_over = Signal()
        m.d.sync += [
            s0_data.eq(op_data),
            s0_acc.eq(op_acc & op_write),
            s0_over.eq(op_write & ~op_acc),
            s1_data.eq(s0_data),
            s1_acc.eq(s0_acc),
            s1_over.eq(s0_over),
        ]
        second = stages[1]
        last = stages[-1]
        final = []
        for p, (wp, rp) in enumerate(mems):
            old = rp.data
            value = Signal(32, name=f"s1_value{p}")
            m.d.comb += value.eq(Mux(s1_over, s1_data[p], old))
            with m.If(s1_acc & ~second["accfp"]):
                m.d.comb += value.eq(old + s1_data[p])
            prev = value
            for s in range(A):
                stage = Signal(32, name=f"s{s + 2}_value{p}", reset_less=True)
                m.d.sync += stage.eq(prev)
                prev = stage
            out = Signal(32, name=f"result{p}")
            m.d.comb += out.eq(prev)
            if cfg.has_float:
                adder = m.submodules[f"fp_add{p}"] = FP32Adder()
                assert adder.LATENCY == A
                m.d.comb += [
                    adder.i_a.eq(old),
                    adder.i_b.eq(s1_data[p]),
                    adder.i_valid.eq(second["valid"] & second["accfp"]),
                ]
                with m.If(last["accfp"]):
                    m.d.comb += out.eq(adder.o_sum)
            final.append(out)
            # ---- stage 1 + A: write back ------------------------------------------------
            m.d.comb += [
                wp.addr.eq(last["addr"]),
                wp.data.eq(out),
                wp.en.eq(last["valid"] & last["write"] & last["mask"][p]),
            ]

        # ---- read responses -------------------------------------------------------------
        for c, (req, resp) in enumerate(readers):
            fifo = m.submodules[f"resp_fifo{c}"] = SyncFIFOBuffered(width=32 * cols, depth=depth)
            m.d.comb += [
                fifo.w_en.eq(last["reader"][c]),
                fifo.w_data.eq(Cat(final)),
                resp.valid.eq(fifo.r_rdy),
                resp.payload.eq(fifo.r_data),
                fifo.r_en.eq(resp.ready),
            ]
            m.d.sync += credits[c].eq(
                credits[c] + (arb.o_grant[nw + c] & take) - (resp.valid & resp.ready))

        m.d.comb += self.o_busy.eq(Cat(st["valid"] for st in stages).any())
        return m
