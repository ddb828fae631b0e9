# amaranth: UnusedElaboratable=no
"""Amaranth-simulator tests of the chip's own blocks (``hdl/chip.py``): the interconnect's
peer writes, its refusals behind the DMA check (DECERR, nothing written), DRAM bursts
with widened IDs, and the signal router's round-robin. The whole chip runs on Verilator
in ``tests/test_rtl_chip.py``."""

import pytest

from amaranth_helpers import simulate
from hdl.axi import AXIResp
from hdl.chip import AXILitePages, Chip, ChipInterconnect, SignalRouter, chip_id_width
from hdl.chipmap import PeerAperture
from hdl.config import CoreConfig, named_config

CFG = named_config("4x4")
AP = PeerAperture(CFG)


async def write_burst(ctx, dut, k, addr, words, strb=0xFF, awid=0, peer_ready=True,
                      dram=None):
    """Core ``k`` writes ``words`` at ``addr``; returns ``(bresp, bid, peer writes seen,
    DRAM beats seen)``. ``dram``: answer the DRAM side (AW, W ready; B after the last)."""
    s = dut.s[k]
    ctx.set(s.awaddr, addr)
    ctx.set(s.awlen, len(words) - 1)
    ctx.set(s.awid, awid)
    ctx.set(s.awvalid, 1)
    for pw in dut.o_peer_wr:
        ctx.set(pw.ready, int(peer_ready))
    o = dut.m_axi
    ctx.set(o.awready, 1)
    ctx.set(o.wready, 1)
    peer, beats = [], []
    i = 0
    aw_done = False
    b = None
    dram_aw = None
    for _ in range(200):
        ctx.set(s.wvalid, int(aw_done and i < len(words)))
        if aw_done and i < len(words):
            ctx.set(s.wdata, words[i])
            ctx.set(s.wstrb, strb)
            ctx.set(s.wlast, int(i == len(words) - 1))
        ctx.set(s.bready, 1)
        for t, pw in enumerate(dut.o_peer_wr):
            if ctx.get(pw.valid) and ctx.get(pw.ready):
                pl = ctx.get(pw.payload)
                peer.append((t, int(pl.addr), int(pl.pmask), int(pl.strb)))
        if ctx.get(o.awvalid) and ctx.get(o.awready):
            dram_aw = (ctx.get(o.awaddr), ctx.get(o.awid))
        if ctx.get(o.wvalid) and ctx.get(o.wready):
            beats.append(ctx.get(o.wdata))
            if ctx.get(o.wlast):
                ctx.set(o.bvalid, 1)
                ctx.set(o.bid, dram_aw[1] if dram_aw else 0)
                ctx.set(o.bresp, 0)
        if ctx.get(o.bvalid) and ctx.get(o.bready):
            pass
        aw_fire = ctx.get(s.awvalid) and ctx.get(s.awready)
        w_fire = ctx.get(s.wvalid) and ctx.get(s.wready)
        b_fire = ctx.get(s.bvalid) and ctx.get(s.bready)
        if b_fire:
            b = (ctx.get(s.bresp), ctx.get(s.bid))
        o_b_fire = ctx.get(o.bvalid) and ctx.get(o.bready)
        await ctx.tick()
        if o_b_fire:
            ctx.set(o.bvalid, 0)
        if aw_fire:
            aw_done = True
            ctx.set(s.awvalid, 0)
        if w_fire:
            i += 1
        if b is not None:
            break
    ctx.set(s.wvalid, 0)
    assert b is not None, "no write response"
    return b[0], b[1], peer, beats, dram_aw


@pytest.mark.parametrize("core,want", [(1, AXIResp.OKAY), (2, AXIResp.DECERR),
                                       (7, AXIResp.DECERR)])
def test_peer_burst(core, want):
    """A peer burst to core 1 of a two-core chip becomes SBUF writes of core 1 (word,
    partition, strobes); one to a core the chip lacks is dropped and answered DECERR."""
    dut = ChipInterconnect(CFG, 2)
    words = [0x1111, 0x2222, 0x3333]
    addr = AP.base | core << AP.core_shift | 2 << AP.offset_bits | 16

    async def tb(ctx):
        resp, bid, peer, beats, _ = await write_burst(ctx, dut, 0, addr, words, awid=1)
        assert (resp, bid) == (want, 1)
        assert beats == []                      # nothing reaches DRAM
        if want == AXIResp.OKAY:
            wb = CFG.sbuf_word_bytes
            assert peer == [(1, 16 // wb + i, 1 << 2, 0xFF) for i in range(3)]
        else:
            assert peer == []                   # nothing written anywhere
    simulate(dut, tb)


def test_peer_beat_past_sbuf_is_dropped():
    """Beats past the target's last SBUF word are not written; the burst ends DECERR."""
    dut = ChipInterconnect(CFG, 2)
    last = CFG.sbuf_bytes - CFG.sbuf_word_bytes
    addr = AP.addr(1, 0, last)

    async def tb(ctx):
        resp, _, peer, _, _ = await write_burst(ctx, dut, 1, addr, [1, 2])
        assert resp == AXIResp.DECERR
        assert [p[1] for p in peer] == [last // CFG.sbuf_word_bytes]
    simulate(dut, tb)


def test_dram_burst_widens_id():
    """A DRAM burst from core 1 leaves with the core index above its ID and its B comes
    back to core 1 with the core's own ID."""
    dut = ChipInterconnect(CFG, 2)

    async def tb(ctx):
        resp, bid, peer, beats, aw = await write_burst(ctx, dut, 1, 0x100, [5, 6], awid=3)
        assert (resp, bid) == (AXIResp.OKAY, 3)
        assert beats == [5, 6] and peer == []
        assert aw == (0x100, 3 | 1 << CFG.axi_id_width)
    simulate(dut, tb)
    assert chip_id_width(CFG, 4) == CFG.axi_id_width + 2


def test_signal_router_round_robin():
    """Two cores signalling the same core at once are served alternately; a signal
    reaches its target one cycle after the handshake."""
    dut = SignalRouter(3)

    async def tb(ctx):
        for k in (0, 2):
            ctx.set(dut.i_signal[k].valid, 1)
            ctx.set(dut.i_signal[k].payload.core, 1)
            ctx.set(dut.i_signal[k].payload.sem, 4 + k)
        got = []
        for _ in range(6):
            taken = [k for k in (0, 2) if ctx.get(dut.i_signal[k].ready)]
            assert len(taken) == 1
            await ctx.tick()
            assert ctx.get(dut.o_signal[1].valid) and not ctx.get(dut.o_signal[0].valid)
            got.append(ctx.get(dut.o_signal[1].payload))
        assert got in ([4, 6] * 3, [6, 4] * 3)
    simulate(dut, tb)


def test_elaboration_checks():
    with pytest.raises(ValueError, match="cores must be an integer from 1 to 8"):
        Chip(CFG, cores=9)
    with pytest.raises(ValueError, match="too small for a chip"):
        Chip(CoreConfig(axi_addr_width=16), cores=2)
    with pytest.raises(ValueError, match="do not fit"):
        AXILitePages(addr_width=13, page_bits=12, pages=3)


def test_write_responses_stay_in_order():
    """A core's DRAM write, then its peer write: the peer burst is not granted until the
    DRAM burst's response (held back 20 cycles here) has been delivered, so the core
    gets its B responses in the order of its bursts (AXI's rule for one ID)."""
    dut = ChipInterconnect(CFG, 2)
    peer_addr = AP.addr(1, 0, 0)

    async def tb(ctx):
        s, o = dut.s[0], dut.m_axi
        for pw in dut.o_peer_wr:
            ctx.set(pw.ready, 1)
        ctx.set(o.awready, 1)
        ctx.set(o.wready, 1)
        ctx.set(s.bready, 1)
        # the DRAM burst: AW and its one W beat
        ctx.set(s.awaddr, 0x40)
        ctx.set(s.awlen, 0)
        ctx.set(s.awvalid, 1)
        while not ctx.get(s.awready):
            await ctx.tick()
        await ctx.tick()
        ctx.set(s.awvalid, 0)
        ctx.set(s.wdata, 7)
        ctx.set(s.wstrb, 0xFF)
        ctx.set(s.wlast, 1)
        ctx.set(s.wvalid, 1)
        while not ctx.get(s.wready):
            await ctx.tick()
        await ctx.tick()
        ctx.set(s.wvalid, 0)
        # the peer burst follows at once; DRAM answers only 20 cycles later
        ctx.set(s.awaddr, peer_addr)
        ctx.set(s.awvalid, 1)
        order = []
        peer_granted_at = None
        for t in range(60):
            if t == 20:
                ctx.set(o.bvalid, 1)
                ctx.set(o.bid, 0)
                ctx.set(o.bresp, AXIResp.OKAY)
            if ctx.get(s.awvalid) and ctx.get(s.awready) and peer_granted_at is None:
                peer_granted_at = t
            if ctx.get(s.bvalid):
                order.append(("dram" if ctx.get(o.bvalid) and ctx.get(o.bready) else "peer", t))
            o_b = ctx.get(o.bvalid) and ctx.get(o.bready)
            aw_fire = ctx.get(s.awvalid) and ctx.get(s.awready)
            w_fire = ctx.get(s.wvalid) and ctx.get(s.wready)
            await ctx.tick()
            if o_b:
                ctx.set(o.bvalid, 0)
            if aw_fire:                     # the peer burst's one beat follows its AW
                ctx.set(s.awvalid, 0)
                ctx.set(s.wdata, 9)
                ctx.set(s.wvalid, 1)
            if w_fire:
                ctx.set(s.wvalid, 0)
        assert peer_granted_at is not None and peer_granted_at > 20, peer_granted_at
        assert [w for w, _ in order][:1] == ["dram"], order
    simulate(dut, tb)
