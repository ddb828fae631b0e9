"""The state buffer (SBUF): one SRAM bank per array row, shared by the engines."""

from amaranth.hdl import Cat, Module, ResetSignal, Signal
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory, MemoryData

from .arbiter import RoundRobin
from .config import CoreConfig
from .formats import sbuf_data_layout
from .interfaces import ClientMemory, sbuf_read_client, sbuf_write_client

__all__ = ["SBUF"]



class SBUF(ClientMemory):
    """``rows`` partitions of ``sbuf_bytes`` bytes, each its own 1R1W SRAM bank.

    A word is ``sbuf_word_bytes`` bytes; every partition reads or writes one word per
    cycle. All clients see the whole buffer as ``[partition, word]``.

    **Writes.** ``n_write`` write clients share the write port; a request writes the
    word ``addr`` of every partition whose ``pmask`` bit is set, the bytes whose
    ``strb`` bit is set, one cycle after it is accepted (``ready`` is the grant;
    the request is registered before it reaches the banks).

    **Reads.** ``n_read`` read clients share the read port. A request reads the word
    ``addr`` of every partition; its response arrives on the client's ``rd[c].resp``
    stream, in request order, four or more cycles later (the grant and the address
    are registered before the banks, so the arbiter and the banks' address fan-out
    sit in different cycles). Each client has a response
    FIFO of ``resp_depth`` entries, and a request is granted only when its FIFO is
    sure to have room (credit counting), so a client that stalls its responses
    throttles only itself and nothing is dropped. A read accepted in the same cycle
    as a write, or later, returns the written data.

    **Arbitration.** Each port is granted round-robin among the clients asking for
    it (:class:`~hdl.arbiter.RoundRobin`): a client that keeps asking is served at
    least once every ``n_read`` (``n_write``) cycles, whatever the others do.

    Parameters
    ----------
    config : CoreConfig
        Uses ``rows``, ``sbuf_bytes``, ``sbuf_word_bytes``.
    n_read, n_write : int
        Number of read and write clients, 1 to 8.
    resp_depth : int
        Response FIFO entries per read client, 3 to 64 (the FIFO's output register
        makes a two-entry FIFO refuse a write it would have room for). Six keep one
        client at a word per cycle (a credit comes back five cycles after its grant).

    Members
    -------
    wr : In(sbuf_write_client(config)).array(n_write)
        Write clients (:mod:`hdl.interfaces`); ``wr[c]`` is client ``c``.
    rd : In(sbuf_read_client(config)).array(n_read)
        Read clients: ``rd[c].req`` takes requests, ``rd[c].resp`` returns the data.
    """

    def __init__(self, config: CoreConfig, *, n_read=1, n_write=1, resp_depth=6):
        super().__init__(config, sbuf_read_client, sbuf_write_client, n_read=n_read,
                         n_write=n_write, resp_depth=resp_depth)
        self.banks = [MemoryData(shape=8 * config.sbuf_word_bytes, depth=config.sbuf_words,
                                 init=[]) for _ in range(config.rows)]

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        wb = cfg.sbuf_word_bytes

        mems = []
        for p, bank in enumerate(self.banks):
            mem = m.submodules[f"bank{p}"] = Memory(data=bank)
            wp = mem.write_port(granularity=8)
            rp = mem.read_port(transparent_for=(wp,))
            mems.append((wp, rp))

        # ---- write port ----------------------------------------------------------
        warb = m.submodules.write_arbiter = RoundRobin(self._n_write)
        writers = [self.write_client(c) for c in range(self._n_write)]
        m.d.comb += warb.i_req.eq(Cat(w.valid for w in writers))
        m.d.comb += warb.i_advance.eq(warb.o_grant.any())
        w_addr = Signal.like(writers[0].payload.addr)
        w_pmask = Signal(cfg.rows)
        w_strb = Signal(wb)
        w_data = Signal(sbuf_data_layout(cfg))
        for c, w in enumerate(writers):
            m.d.comb += w.ready.eq(warb.o_grant[c])
            with m.If(warb.o_grant[c]):
                m.d.comb += [
                    w_addr.eq(w.payload.addr),
                    w_pmask.eq(w.payload.pmask),
                    w_strb.eq(w.payload.strb),
                    w_data.eq(w.payload.data),
                ]
        # The granted write is registered, then written: the arbiter's multiplexer and
        # the banks' address fan-out are in different cycles.
        w_addr_q = Signal.like(w_addr, name="w_addr_q")
        w_en_q = Signal(cfg.rows * wb, name="w_en_q")
        w_data_q = Signal(sbuf_data_layout(cfg), name="w_data_q")
        m.d.sync += [
            w_addr_q.eq(w_addr),
            w_data_q.eq(w_data),
            w_en_q.eq(Cat((w_strb & w_pmask[p].replicate(wb)) for p in range(cfg.rows))),
        ]
        # No write while the reset is asserted: until the reset reaches the registers
        # above (the first clock edge, on a chip whose flip-flops power up undefined)
        # w_en_q may hold anything, and SBUF's power-up contents must survive that
        # (tests/test_xstress.py found it).
        in_reset = ResetSignal()
        for p, (wp, _) in enumerate(mems):
            m.d.comb += [
                wp.addr.eq(w_addr_q),
                wp.data.eq(w_data_q[p]),
                wp.en.eq(w_en_q[p * wb:(p + 1) * wb] & ~in_reset.replicate(wb)),
            ]

        # ---- read port -----------------------------------------------------------
        depth = self._resp_depth
        rarb = m.submodules.read_arbiter = RoundRobin(self._n_read)
        r_addr = Signal.like(self.rd[0].req.payload.addr)
        resp_sel = Signal(self._n_read)     # one-hot: whose data the banks show now
        word_bits = 8 * wb
        for c in range(self._n_read):
            req, resp = self.read_client(c)
            fifo = m.submodules[f"resp_fifo{c}"] = SyncFIFOBuffered(
                width=word_bits * cfg.rows, depth=depth)
            credits = Signal(range(depth + 1), name=f"rd{c}_pending")
            m.d.comb += [
                rarb.i_req[c].eq(req.valid & (credits < depth)),
                req.ready.eq(rarb.o_grant[c]),
            ]
            with m.If(rarb.o_grant[c]):
                m.d.comb += r_addr.eq(req.payload.addr)
            m.d.comb += [
                fifo.w_en.eq(resp_sel[c]),
                fifo.w_data.eq(Cat(rp.data for _, rp in mems)),
                resp.valid.eq(fifo.r_rdy),
                resp.payload.eq(fifo.r_data),
                fifo.r_en.eq(resp.ready),
            ]
            m.d.sync += credits.eq(credits + rarb.o_grant[c] - (resp.valid & resp.ready))
        m.d.comb += rarb.i_advance.eq(rarb.o_grant.any())
        # Registered like the write: grant (cycle 0), bank read (1), data to the FIFO (2).
        r_addr_q = Signal.like(r_addr, name="r_addr_q")
        r_sel_q = Signal(self._n_read, name="r_sel_q")
        m.d.sync += [r_addr_q.eq(r_addr), r_sel_q.eq(rarb.o_grant), resp_sel.eq(r_sel_q)]
        for _, rp in mems:
            m.d.comb += [rp.addr.eq(r_addr_q), rp.en.eq(r_sel_q.any())]
        return m
