# amaranth: UnusedElaboratable=no
"""SOFT_RESET waits for the AXI port to drain (``docs/core.md``, "SOFT_RESET"): the
in-flight monitor against a counting model, the host interface's pending reset, and
``AXIJoin`` starting no new burst while quiesced. The whole-core reset stress
(``tb/core/test_core.py::test_reset_stress``) found the bug these parts fix: a reset
with a load in flight left R beats nobody took, and the next program hung."""

import random

import pytest

from amaranth_helpers import simulate
from hdl.axi import AXIInFlight
from hdl.config import CoreConfig
from hdl.core import AXIJoin
from hdl.host import HostInterface
from test_host_amaranth import RM, bit, read_ok, reg, write_ok

HANDSHAKES = ("arvalid", "arready", "rvalid", "rready", "rlast",
              "awvalid", "awready", "bvalid", "bready")


@pytest.mark.parametrize("seed", range(3))
def test_in_flight_counts(seed):
    """Random legal handshakes: reads count from AR acceptance to the last R beat,
    writes from AW acceptance to B; busy also while an AR or AW is shown."""
    rng = random.Random(seed)
    dut = AXIInFlight(5)

    async def tb(ctx):
        reads = writes = 0
        for _ in range(600):
            v = {n: rng.random() < 0.5 for n in HANDSHAKES}
            # a legal subordinate answers only bursts in flight
            v["rvalid"] &= reads > 0
            v["bvalid"] &= writes > 0
            v["arvalid"] &= reads < 4
            v["awvalid"] &= writes < 4
            for n, x in v.items():
                ctx.set(getattr(dut, f"i_{n}"), x)
            busy = v["arvalid"] or v["awvalid"] or reads or writes
            assert ctx.get(dut.o_busy) == bool(busy)
            assert (ctx.get(dut.o_reads), ctx.get(dut.o_writes)) == (reads, writes)
            reads += (v["arvalid"] and v["arready"]) - (v["rvalid"] and v["rready"] and v["rlast"])
            writes += (v["awvalid"] and v["awready"]) - (v["bvalid"] and v["bready"])
            await ctx.tick()

    simulate(dut, tb)


def test_in_flight_parameter_check():
    with pytest.raises(ValueError, match="max_bursts must be a positive integer, not 0"):
        AXIInFlight(0)


@pytest.mark.parametrize("busy_cycles", [0, 1, 7])
def test_host_soft_reset_waits_for_the_bus(busy_cycles):
    """The reset is pending (quiesce, STATUS.BUSY, START rejected) while the bus is
    busy, and fires two cycles after the bus goes idle (two after the write when it
    already is)."""
    dut = HostInterface(CoreConfig())
    seen = []

    async def monitor(ctx):
        while True:
            seen.append((ctx.get(dut.o_soft_reset), ctx.get(dut.ctrl.quiesce)))
            await ctx.tick()

    async def tb(ctx):
        ctx.set(dut.i_bus_busy, busy_cycles > 0)
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.SOFT_RESET"))
        if busy_cycles:
            st = RM["STATUS"].decode(await read_ok(ctx, dut, reg("STATUS")))
            assert st["BUSY"] == 1
            await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.START"))
            st = RM["STATUS"].decode(await read_ok(ctx, dut, reg("STATUS")))
            assert st["START_REJECTED"] == 1, "START accepted while a SOFT_RESET is pending"
            await ctx.tick().repeat(busy_cycles)
            assert not any(r for r, _ in seen), "reset while the bus was busy"
            assert seen[-1][1] == 1, "quiesce low while the reset is pending"
            ctx.set(dut.i_bus_busy, 0)
        start = len(seen)
        await ctx.tick().repeat(6)
        fired = [i for i, (r, _) in enumerate(seen) if r]
        assert len(fired) == 1, seen
        # quiesce stays high through the reset cycle
        assert seen[fired[0]][1] == 1
        if busy_cycles:
            assert fired[0] - start == 1, seen
        st = RM["STATUS"].decode(await read_ok(ctx, dut, reg("STATUS")))
        assert st == {**st, "BUSY": 0, "START_REJECTED": 0}, st

    simulate(dut, tb, monitor)


def test_join_quiesce_starts_no_burst():
    """While quiesced: a waiting AR request is not taken, a new AW is not shown; an AW
    already shown stays until accepted."""
    dut = AXIJoin(CoreConfig())

    async def tb(ctx):
        ctx.set(dut.m_axi.arready, 0)
        ctx.set(dut.m_axi.awready, 0)
        # an AW shown before the quiesce stays shown
        ctx.set(dut.i_dma_out.awvalid, 1)
        ctx.set(dut.i_dma_out.awaddr, 0x40)
        await ctx.tick()
        ctx.set(dut.i_quiesce, 1)
        for _ in range(3):
            assert ctx.get(dut.m_axi.awvalid) == 1
            await ctx.tick()
        ctx.set(dut.m_axi.awready, 1)
        assert ctx.get(dut.i_dma_out.awready) == 1
        await ctx.tick()
        ctx.set(dut.m_axi.awready, 0)
        # the next AW (DMA-out keeps valid) is not shown while quiesced
        for _ in range(3):
            assert ctx.get(dut.m_axi.awvalid) == 0
            assert ctx.get(dut.i_dma_out.awready) == 0
            await ctx.tick()
        # no AR request is taken while quiesced
        ctx.set(dut.i_dma_in.arvalid, 1)
        ctx.set(dut.i_fetch.arvalid, 1)
        ctx.set(dut.m_axi.arready, 1)
        for _ in range(3):
            assert ctx.get(dut.i_dma_in.arready) == 0 and ctx.get(dut.i_fetch.arready) == 0
            assert ctx.get(dut.m_axi.arvalid) == 0
            await ctx.tick()
        ctx.set(dut.i_quiesce, 0)
        await ctx.tick()
        assert ctx.get(dut.m_axi.awvalid) == 1
        await ctx.tick()
        assert ctx.get(dut.m_axi.arvalid) == 1

    simulate(dut, tb)
