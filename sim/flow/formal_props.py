"""The formal proofs of ncore's blocks: one formal top per block, one entry per proof in
:data:`PROOFS`.

Random tests sample a block's behaviour; these prove it for every input sequence (or,
for ``bmc`` proofs, for every sequence of the stated length). Each top instantiates
the smallest legal parameterisation of its block, leaves its inputs free, assumes
what the block's neighbours promise (a stream source holds ``valid`` and its payload
until ``ready``) and asserts what the block promises. ``docs/formal.md`` lists the
proofs with their modes, depths and solver times; ``tests/test_formal.py`` runs them
and ``python -m sim.flow.cli formal`` prints the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from amaranth.hdl import Assert, Assume, Fragment, Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from hdl.arbiter import RoundRobin
from hdl.axi import AXI4LiteSignature, AXI4Signature, AXIInFlight
from hdl.config import CoreConfig
from hdl.controller import Controller
from hdl.core import AXIJoin
from hdl.dma import DMAEngine, Realigner
from hdl.host import HostInterface
from hdl.interfaces import ReadClient
from hdl.tensor_engine import Fetcher, TensorEngine
from hdl.vector import VectorEngine
from hdl.fifo import StreamFIFO, SyncStreamFIFO
from sim.flow.formal import FormalTop, Monitor, internal_signal, run

__all__ = ["Proof", "PROOFS", "proof", "run_proof"]


@dataclass(frozen=True)
class Proof:
    """One proof: what it proves about which block, and how.

    ``regress`` marks a proof whose solver time (``docs/formal.md``) is too long for
    ``make test``; it runs in ``make regress`` only.
    """

    name: str
    block: str
    prop: str
    build: Callable[[], FormalTop]
    mode: str = "prove"
    depth: int = 8
    regress: bool = False


# ---- round-robin arbiter ------------------------------------------------------------

class ArbiterTop(FormalTop):
    """:class:`~hdl.arbiter.RoundRobin` of ``n`` requesters, every input free.

    Asserted: the grant is one-hot or zero, goes only to a requester, and goes to
    somebody whenever somebody asks; and fairness: while requester ``j`` keeps
    asking, at most ``n - 1`` used grants (``i_advance``) go to others before one goes
    to ``j``. For k-induction the fairness counter is tied to the arbiter's
    priority register ``last``: the others already served while ``j`` waited plus
    those that stand between ``last`` and ``j`` in the round are at most ``n - 1``.
    """

    def __init__(self, n):
        super().__init__()
        self.n = n

    def elaborate(self, platform):
        m = Module()
        n = self.n
        arb = RoundRobin(n)
        frag = m.submodules.arb = Fragment.get(arb, platform)
        self.free_inputs(arb)
        req, grant, adv = arb.i_req, arb.o_grant, arb.i_advance
        last = internal_signal(frag, "last")
        m.d.comb += [
            Assert((grant & (grant - 1)) == 0),         # one-hot or zero
            Assert((grant & ~req) == 0),                # only to a requester
            Assert((req == 0) | (grant != 0)),          # nobody waits for nothing
            Assert(last < n),
        ]
        used = adv & (grant != 0)
        for j in range(n):
            # used grants that went to others while j was asking and not served
            passed = Signal(range(n + 1), name=f"passed{j}")
            with m.If(~req[j] | (used & grant[j])):
                m.d.sync += passed.eq(0)
            with m.Elif(used):
                m.d.sync += passed.eq(passed + 1)
            m.d.comb += Assert(passed <= n - 1)
            for l in range(n):
                ahead = (j - l - 1) % n         # others still served before j
                with m.If(last == l):
                    m.d.comb += Assert(passed + ahead <= n - 1)
        return m


# ---- FIFOs ----------------------------------------------------------------------------

class FifoTop(FormalTop):
    """A stream FIFO (``kind`` ``"block"``: :class:`~hdl.fifo.StreamFIFO`;
    ``"sync"``: :class:`~hdl.fifo.SyncStreamFIFO`) between a free source that keeps
    the stream rules (assumed) and a free sink.

    Asserted: the stream rules on ``o``; ``level`` equals the entries accepted minus
    the entries delivered (nothing lost or duplicated, in number) and never exceeds
    the capacity; ``i.ready`` is low only when full (the block FIFO: when its memory
    holds ``depth`` entries, i.e. ``level >= depth``). With ``track``, also the data:
    a free index ``w`` marks the ``w``-th entry accepted, whose payload must be the
    ``w``-th delivered (in order, unchanged) - this one is bounded (``bmc``), since
    an inductive version needs an invariant over the memory's contents.
    """

    def __init__(self, kind, depth, *, width=2, track=False):
        super().__init__()
        self.kind, self.depth, self.width, self.track = kind, depth, width, track

    def elaborate(self, platform):
        m = Module()
        mon = Monitor(m)
        if self.kind == "block":
            fifo = StreamFIFO(self.width, self.depth, ram_style="logic")
            capacity, full_level = self.depth + 2, self.depth
        else:
            fifo = SyncStreamFIFO(self.width, self.depth)
            # its memory holds depth - 1 entries and refuses a write when that is full,
            # even while the output register is still empty
            capacity, full_level = self.depth, max(self.depth - 1, 1)
        frag = m.submodules.fifo = Fragment.get(fifo, platform)
        self.free_inputs(fifo)
        mon.stream(fifo.i, assume=True, name="i")
        mon.stream(fifo.o, name="o")
        fire_in = fifo.i.valid & fifo.i.ready
        fire_out = fifo.o.valid & fifo.o.ready
        held = Signal(range(capacity + 2), name="held")
        m.d.sync += held.eq(held + fire_in - fire_out)
        m.d.comb += [
            Assert(fifo.level == held),
            Assert(fifo.level <= capacity),
            Assert(fifo.i.ready | (fifo.level >= full_level)),
            Assert(~fifo.o.valid | (fifo.level != 0)),
        ]
        if self.kind == "block":
            # the pointer distance is the memory's share of the level
            produce = internal_signal(frag, "produce")
            consume = internal_signal(frag, "consume")
            m.d.comb += Assert(((produce - consume) % (2 * self.depth)) <= self.depth)
        elif self.depth > 2:
            # SyncFIFOBuffered: the inner memory's pointers agree with its level (with
            # one inner entry there are no pointers to speak of)
            inner = self.depth - 1
            produce = internal_signal(frag, "produce", path=("fifo",))
            consume = internal_signal(frag, "consume", path=("fifo",))
            level = internal_signal(frag, "inner_level", path=("fifo",))
            used = Mux(produce >= consume, produce - consume, produce + inner - consume)
            m.d.comb += [Assert(produce < inner), Assert(consume < inner)]
            with m.If(produce == consume):
                m.d.comb += Assert((level == 0) | (level == inner))
            with m.Else():
                m.d.comb += Assert(level == used)
        if self.track:
            self._track(m, fifo, fire_in, fire_out)
        return m

    def _track(self, m, fifo, fire_in, fire_out):
        w = self.free(Signal(4, name="watch"))
        n_in = Signal(5, name="n_in")
        n_out = Signal(5, name="n_out")
        value = Signal(self.width, name="watched_value")
        m.d.sync += [n_in.eq(n_in + fire_in), n_out.eq(n_out + fire_out)]
        # the watched index is chosen once: it may not change while counting
        w_past = Signal(4, reset_less=True)
        started = Signal(reset_less=True)
        m.d.sync += [w_past.eq(w), started.eq(1)]
        m.d.comb += Assume(~started | (w == w_past))
        with m.If(fire_in & (n_in == w)):
            m.d.sync += value.eq(fifo.i.payload)
        with m.If(fire_out & (n_out == w)):
            m.d.comb += Assert(fifo.o.payload == value)


def _fifo_proofs():
    out = []
    for kind, depth in (("block", 2), ("block", 4), ("sync", 1), ("sync", 2), ("sync", 3)):
        cls = "StreamFIFO" if kind == "block" else "SyncStreamFIFO"
        out.append(Proof(
            f"fifo-{kind}-d{depth}", f"{cls}(depth={depth})",
            "stream rules on o; level = accepted - delivered <= capacity; i.ready low "
            "only when full",
            lambda kind=kind, depth=depth: FifoTop(kind, depth), "prove", 8))
    for kind, depth in (("block", 2), ("sync", 3)):
        cls = "StreamFIFO" if kind == "block" else "SyncStreamFIFO"
        out.append(Proof(
            f"fifo-{kind}-d{depth}-data", f"{cls}(depth={depth})",
            "every entry delivered once, in order, unchanged (watched-entry argument)",
            lambda kind=kind, depth=depth: FifoTop(kind, depth, track=True), "bmc", 12))
    return out


# ---- stream and AXI rules of a whole block ---------------------------------------------

#: The smallest legal configuration: one PE, 4-byte words, one PSUM bank of two entries,
#: 12-bit DRAM addresses, bursts of at most two beats, one burst in flight per direction.
TINY = CoreConfig(rows=1, cols=1, sbuf_bytes=16, sbuf_word_bytes=4, psum_banks=1,
                  psum_depth=2, axi_data_bytes=4, axi_addr_width=12, axi_id_width=1,
                  dma_outstanding=1, dma_max_burst=2, n_sems=1, queue_depth=2)


def interface_rules(mon, component):
    """The handshake rules on every stream and AXI channel of ``component``: asserted
    where the component sends, assumed where it receives.

    It walks the signature: an ``amaranth.lib.stream`` member is one channel, an AXI4
    or AXI4-Lite member five (manager side ``Out``, subordinate side ``In``), and any
    other interface is entered with its direction composed (a :class:`ReadClient`'s
    request goes out, its response comes in; the memory behind it is assumed to
    answer only what it accepted, :func:`read_client_env`). Returns the channel
    names, so a proof states what it covered.
    """
    names = []

    def walk(sig, obj, flow, prefix):
        for name, member in sig.members.items():
            if not member.is_signature:
                continue
            sub = member.signature
            value = getattr(obj, name) if not isinstance(name, int) else obj[name]
            out = (member.flow == Out) == (flow == Out)     # does the component drive it?
            dims = member.dimensions
            items = [(f"{prefix}{name}", value)] if not dims else \
                [(f"{prefix}{name}{i}", value[i]) for i in range(dims[0])]
            for label, v in items:
                if isinstance(sub, stream.Signature):
                    mon.stream(v, assume=not out, name=label)
                    names.append(label)
                elif isinstance(sub, AXI4Signature):
                    if not out:
                        raise NotImplementedError(f"{label}: an AXI4 subordinate port")
                    mon.axi(v, name=label)
                    names.append(label)
                elif isinstance(sub, AXI4LiteSignature):
                    # the component is the subordinate when the port is In
                    for ch, fields in (("aw", ("awaddr", "awprot")),
                                       ("w", ("wdata", "wstrb")),
                                       ("ar", ("araddr", "arprot")),
                                       ("b", ("bresp",)), ("r", ("rdata", "rresp"))):
                        manager_ch = ch in ("aw", "w", "ar")
                        mon.handshake(getattr(v, f"{ch}valid"), getattr(v, f"{ch}ready"),
                                      [getattr(v, f) for f in fields],
                                      assume=manager_ch != out, name=f"{label}_{ch}")
                    names.append(label)
                else:
                    if isinstance(sub, ReadClient) and out:
                        read_client_env(mon.m, v, 7, label)
                    walk(sub, v, Out if out else In, f"{label}_")

    walk(component.signature, component, Out, "")
    return names


class RulesTop(FormalTop):
    """A block with every input free, the handshake rules of :func:`interface_rules`
    assumed on its inputs and asserted on its outputs.

    Parameters
    ----------
    make : callable
        ``() -> Component``, the block under test.
    """

    def __init__(self, make):
        super().__init__()
        self.make = make

    def elaborate(self, platform):
        m = Module()
        self.mon = Monitor(m)
        self.dut = self.make()
        self.frag = m.submodules.dut = Fragment.get(self.dut, platform)
        self.free_inputs(self.dut)
        self.channels = interface_rules(self.mon, self.dut)
        self.extra(m)
        return m

    def extra(self, m):
        """Further properties of a subclass."""


def read_client_env(m, client, depth, name):
    """Assume the memory behind a :class:`~hdl.interfaces.ReadClient` answers only
    requests it accepted (one response each); ``depth`` bounds the count kept."""
    open_ = Signal(range(depth + 1), name=f"{name}_open")
    fire_req = client.req.valid & client.req.ready
    fire_resp = client.resp.valid & client.resp.ready
    m.d.sync += open_.eq(open_ + fire_req - fire_resp)
    m.d.comb += [Assume(~client.resp.valid | (open_ != 0)),
                 Assume(~client.req.ready | (open_ != depth))]


class DMATop(RulesTop):
    """The DMA engine (:data:`TINY`): the rules on every channel, plus

    * *window*: every AW (and AR) burst lies inside the DRAM window
      ``[i_win_base, i_win_limit)`` widened to whole bus words (the byte strobes keep
      the bytes outside a descriptor's rows untouched), and below ``2**axi_addr_width``;
      the window is assumed constant (the host sets it before START);
    * *outstanding*: at most ``dma_outstanding`` read bursts without their last R beat
      and write bursts without their B response, given a subordinate that answers
      only bursts it was asked for, with RLAST on a burst's last beat (assumed);
      ``o_busy`` while a burst is open; SBUF and PSUM answer only the read requests
      they accepted (assumed, :func:`read_client_env`).
    """

    def extra(self, m):
        cfg = self.dut.config
        mon, axi = self.mon, self.dut.m_axi
        B = cfg.axi_data_bytes
        base, limit = self.dut.i_win_base, self.dut.i_win_limit
        m.d.comb += [Assume(~mon.past_ok | (base == mon.past(base, "past_base"))),
                     Assume(~mon.past_ok | (limit == mon.past(limit, "past_limit")))]
        lo = base & ~(B - 1)
        hi = (limit + B - 1) & ~(B - 1)
        for ch in ("aw", "ar"):
            start = getattr(axi, f"{ch}addr")
            end = start + (getattr(axi, f"{ch}len") + 1) * B
            with m.If(getattr(axi, f"{ch}valid")):
                m.d.comb += [Assert(start >= lo), Assert(end <= hi),
                             Assert(end <= 2 ** cfg.axi_addr_width)]
        # bursts in flight, counted on the bus; the subordinate answers only those
        n = cfg.dma_outstanding
        reads = Signal(range(n + 2), name="reads_open")
        writes = Signal(range(n + 2), name="writes_open")
        wlasts = Signal(range(n + 2), name="wlasts_owed")
        ar_fire = axi.arvalid & axi.arready
        r_end = axi.rvalid & axi.rready & axi.rlast
        aw_fire = axi.awvalid & axi.awready
        w_end = axi.wvalid & axi.wready & axi.wlast
        b_fire = axi.bvalid & axi.bready
        m.d.sync += [reads.eq(reads + ar_fire - r_end), writes.eq(writes + aw_fire - b_fire),
                     wlasts.eq(wlasts + w_end - b_fire)]
        # the open read burst's length (one burst in flight: TINY.dma_outstanding == 1),
        # so the subordinate's RLAST comes with the burst's last beat
        assert n == 1, "the R beat model below keeps one burst"
        r_len = Signal(8, name="r_len")
        r_beat = Signal(8, name="r_beat")
        with m.If(ar_fire):
            m.d.sync += [r_len.eq(axi.arlen), r_beat.eq(0)]
        with m.Elif(axi.rvalid & axi.rready):
            m.d.sync += r_beat.eq(r_beat + 1)
        m.d.comb += [
            Assume(~axi.rvalid | (axi.rlast == (r_beat == r_len))),
            Assume(~axi.rvalid | (reads != 0)),
            Assume(~axi.bvalid | ((writes != 0) & (wlasts != 0))),
            Assert(reads <= n), Assert(writes <= n),
            Assert(~((reads != 0) | (writes != 0)) | self.dut.o_busy),
        ]


class AXIJoinTop(FormalTop):
    """:class:`hdl.core.AXIJoin` between three managers and one subordinate, all free:
    the managers' AR/AW/W and the subordinate's R/B obey the handshake rules (assumed),
    and so must everything the join passes on (asserted): AR/AW/W on ``m_axi``, R/B to
    each manager, with ``i_quiesce`` toggling freely (a quiesce must not withdraw an
    AR or AW already on the port)."""

    def elaborate(self, platform):
        m = Module()
        mon = Monitor(m)
        dut = AXIJoin(TINY)
        m.submodules.dut = dut
        self.free_inputs(dut)
        for name in ("i_fetch", "i_dma_in", "i_dma_out"):
            mon.axi(getattr(dut, name), name=name, block_is_subordinate=True)
        mon.axi(dut.m_axi, name="m_axi")
        return m


class InFlightTop(FormalTop):
    """:class:`hdl.axi.AXIInFlight` on a port whose subordinate answers only bursts in
    flight (assumed) and whose manager keeps at most ``max_bursts`` of each kind open
    (assumed): the counters never wrap, and ``o_busy`` is low only when nothing is in
    flight (asserted)."""

    MAX = 2

    def elaborate(self, platform):
        m = Module()
        dut = AXIInFlight(self.MAX)
        m.submodules.dut = dut
        self.free_inputs(dut)
        reads = Signal(range(self.MAX + 1))
        writes = Signal(range(self.MAX + 1))
        ar = dut.i_arvalid & dut.i_arready
        r_end = dut.i_rvalid & dut.i_rready & dut.i_rlast
        aw = dut.i_awvalid & dut.i_awready
        b = dut.i_bvalid & dut.i_bready
        m.d.sync += [reads.eq(reads + ar - r_end), writes.eq(writes + aw - b)]
        m.d.comb += [
            Assume(~dut.i_rvalid | (reads != 0)), Assume(~dut.i_bvalid | (writes != 0)),
            Assume(~dut.i_arvalid | (reads != self.MAX)),
            Assume(~dut.i_awvalid | (writes != self.MAX)),
            Assert(dut.o_reads == reads), Assert(dut.o_writes == writes),
            Assert(dut.o_busy == (dut.i_arvalid | dut.i_awvalid | (reads != 0) | (writes != 0))),
        ]
        return m


PROOFS = [
    *[Proof(f"arbiter-rr{n}", f"RoundRobin(n={n})",
            "grant one-hot or zero, only to requesters, never idle while asked; a "
            "requester that keeps asking is served within n used grants",
            lambda n=n: ArbiterTop(n), "prove", 4) for n in (2, 3, 4)],
    *_fifo_proofs(),
    Proof("dma-rules", "DMAEngine(tiny)",
          "valid/payload held until ready on AR, AW, W, o_done, sbuf_wr, sbuf_rd.req, "
          "psum_rd.req; every burst inside the window; outstanding bursts <= "
          "dma_outstanding",
          lambda: DMATop(lambda: DMAEngine(TINY)), "bmc", 10),
    Proof("dma-rules-deep", "DMAEngine(tiny)", "as dma-rules, through a store's B "
          "response and the next descriptor",
          lambda: DMATop(lambda: DMAEngine(TINY)), "bmc", 16, regress=True),
    Proof("realigner-rules", "Realigner(4 bytes)", "valid/payload held until ready on o",
          lambda: RulesTop(lambda: Realigner(4)), "prove", 6),
    Proof("host-rules", "HostInterface(tiny)",
          "AXI4-Lite subordinate: B and R held (valid and payload) until ready",
          lambda: RulesTop(lambda: HostInterface(TINY)), "prove", 6),
    Proof("tensor-fetcher-rules", "tensor_engine.Fetcher(tiny)",
          "valid/payload held until ready on rd.req and o_col",
          lambda: RulesTop(lambda: Fetcher(TINY)), "prove", 6),
    Proof("tensor-rules", "TensorEngine(tiny)",
          "valid/payload held until ready on s_rd.req, x_rd.req, psum_wr",
          lambda: RulesTop(lambda: TensorEngine(TINY)), "bmc", 12),
    Proof("vector-rules", "VectorEngine(tiny)",
          "valid/payload held until ready on sbuf_rd.req, psum_rd.req, sbuf_wr",
          lambda: RulesTop(lambda: VectorEngine(TINY)), "bmc", 12),
    Proof("axijoin-rules", "AXIJoin(tiny)",
          "valid/payload held until ready on m_axi AR/AW/W and on R/B to each manager, "
          "whatever i_quiesce does",
          lambda: AXIJoinTop(), "prove", 6),
    Proof("inflight-counts", "AXIInFlight(2)",
          "read/write burst counts exact (no wrap) and busy iff something is in flight",
          lambda: InFlightTop(), "prove", 4),
    Proof("controller-rules", "Controller(tiny)",
          "valid/payload held until ready on AR, o_dma_in, o_dma_out, o_tensor, o_vector",
          lambda: RulesTop(lambda: Controller(TINY)), "bmc", 10),
]


def proof(name):
    """The :class:`Proof` named ``name``."""
    for p in PROOFS:
        if p.name == name:
            return p
    raise KeyError(f"no formal proof named {name!r}; there are {', '.join(p.name for p in PROOFS)}")


def run_proof(p, **kwargs):
    """Run one :class:`Proof`; returns the :class:`~sim.flow.formal.FormalResult`."""
    return run(p.build(), p.name, mode=p.mode, depth=p.depth, **kwargs)

