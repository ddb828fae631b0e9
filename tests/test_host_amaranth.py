# amaranth: UnusedElaboratable=no
"""The register map (:mod:`hdl.regmap`) and the host interface (:class:`hdl.host.HostInterface`)
in Amaranth's simulator.

Expected values come from the register map's description (offsets, masks, reset
values), never from the design: reset values of every register, RW read-back with byte
strobes, W1C, WO pulses, the START acceptance rules, SOFT_RESET, the counters (checked
cycle by cycle against a model of when the core runs), SLVERR, the three AW/W orders and
B/R backpressure. The generated ``docs/registers.md`` must be up to date.
"""

import pathlib
import random
from operator import attrgetter

import pytest

from amaranth_helpers import simulate
from hdl.axi import AXI4LiteSignature, AXIResp
from hdl.config import CoreConfig, named_config
from hdl.host import HostInterface
from hdl.isa import CoreError
from hdl.regmap import (
    COUNTERS, ID_VALUE, Field, Register, RegisterMap, markdown, registers,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
OKAY, SLVERR = AXIResp.OKAY, AXIResp.SLVERR


# ---------------------------------------------------------------------------------------
# register map
# ---------------------------------------------------------------------------------------

def test_docs_up_to_date():
    path = ROOT / "docs" / "registers.md"
    assert path.read_text() == markdown(), \
        "docs/registers.md is stale: run `python -m hdl.regmap > docs/registers.md`"


def test_regmap_layout():
    rm = RegisterMap()
    offsets = [r.offset for r in rm]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert rm["ID"].reset == ID_VALUE == 0x4E434F52
    assert rm.at(0x014).name == "STATUS" and rm.at(0x00C) is None
    assert rm["CTRL"].encode(START=1, SOFT_RESET=1) == 0b11
    assert rm["STATUS"].decode(0b1010) == {"BUSY": 0, "DONE": 1, "ERROR": 0,
                                            "START_REJECTED": 1}
    assert rm.field("ERROR.CODE").width == CoreError.as_shape().width
    for i, (name, _) in enumerate(COUNTERS):
        assert rm[f"{name}_LO"].offset == 0x100 + 8 * i
        assert rm[f"{name}_HI"].offset == 0x104 + 8 * i


@pytest.mark.parametrize("config", ["default", "4x4-fp", "4x4-fp-ftz"])
def test_regmap_config(config):
    cfg = named_config(config)
    rm = RegisterMap(cfg)
    c = rm["CONFIG"].decode(rm["CONFIG"].reset)
    assert c["ROWS"] == cfg.rows and c["COLS"] == cfg.cols and c["N_SEMS"] == cfg.n_sems
    assert c["DTYPES"] == (0b001 if config == "default" else 0b111)
    assert c["FTZ"] == (1 if config.endswith("ftz") else 0)
    limit = rm["WIN_LIMIT_LO"].reset | rm["WIN_LIMIT_HI"].reset << 32
    assert limit == 1 << cfg.axi_addr_width
    wide = RegisterMap(CoreConfig(axi_addr_width=48))
    assert wide["WIN_LIMIT_HI"].reset == 1 << 16 and wide["WIN_LIMIT_LO"].reset == 0


def test_regmap_errors():
    f = Field("A", 0, 4, "RW")
    with pytest.raises(ValueError, match=r"^field B: reset 0x10 does not fit in 4 bits$"):
        Field("B", 0, 4, "RW", 16)
    with pytest.raises(ValueError,
                       match=r"^field C: bits \[32:30\] do not fit in a 32-bit register$"):
        Field("C", 30, 3, "RO")
    with pytest.raises(ValueError, match=r"^field D: only an RO field can be const, not a RW one$"):
        Field("D", 0, 1, "RW", const=True)
    with pytest.raises(ValueError, match=r"^register R: offset must be a multiple of 4 "
                                         r"below 0x1000, not 2$"):
        Register("R", 2, "RW", (f,))
    with pytest.raises(ValueError, match=r"^register R: field B \[3\] overlaps another field$"):
        Register("R", 0, "RW", (f, Field("B", 3, 1, "RW")))
    with pytest.raises(ValueError, match=r"^register R \(RO\) cannot hold the RW field A$"):
        Register("R", 0, "RO", (f,))
    with pytest.raises(KeyError, match="register STATUS has no field 'NOPE'"):
        RegisterMap()["STATUS"].field("NOPE")
    with pytest.raises(TypeError, match="config must be a CoreConfig, not 'x'"):
        HostInterface("x")
    assert registers() is registers(CoreConfig())


def test_axil_signature():
    sig = AXI4LiteSignature(addr_width=12)
    assert sig == AXI4LiteSignature(addr_width=12, data_bytes=4)
    assert sig != AXI4LiteSignature(addr_width=13)
    assert repr(sig) == "AXI4LiteSignature(addr_width=12, data_bytes=4)"
    assert set(sig.members) == {
        "awaddr", "awprot", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready",
        "bresp", "bvalid", "bready", "araddr", "arprot", "arvalid", "arready",
        "rdata", "rresp", "rvalid", "rready"}
    with pytest.raises(ValueError, match=r"^data_bytes must be 4 or 8, not 2$"):
        AXI4LiteSignature(addr_width=12, data_bytes=2)


# ---------------------------------------------------------------------------------------
# bus helpers
# ---------------------------------------------------------------------------------------

def fires(ctx, bus, *channels):
    """For each AXI channel name (``"aw"``, ``"w"``, ``"ar"``): whether VALID and READY
    are both high now, i.e. its handshake completes at the coming clock edge."""
    return [bool(ctx.get(getattr(bus, ch + "valid")) and ctx.get(getattr(bus, ch + "ready")))
            for ch in channels]


def lower(ctx, bus, *names):
    """Drive each named bus signal low: the idle state a transaction leaves behind."""
    for name in names:
        ctx.set(getattr(bus, name), 0)


async def write(ctx, dut, addr, data, strb=0xF, *, aw_delay=0, w_delay=0, b_delay=0):
    """One AXI4-Lite write; AW and W raised after their delays (cycles), BREADY held low
    for ``b_delay`` cycles of BVALID. Checks the response is not raised before both
    halves are in and stays stable; returns BRESP."""
    bus = dut.s_axil
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.wdata, data)
    ctx.set(bus.wstrb, strb)
    aw_done = w_done = False
    resp = b_seen = None
    for t in range(100):
        ctx.set(bus.awvalid, not aw_done and t >= aw_delay)
        ctx.set(bus.wvalid, not w_done and t >= w_delay)
        bvalid = ctx.get(bus.bvalid)
        if bvalid:
            assert aw_done and w_done, "BVALID before AW and W were both accepted"
            if b_seen is None:
                b_seen, resp = t, ctx.get(bus.bresp)
            assert ctx.get(bus.bresp) == resp, "BRESP changed while BVALID waited"
        bready = bool(bvalid and t - b_seen >= b_delay)
        ctx.set(bus.bready, bready)
        aw_fire, w_fire = fires(ctx, bus, "aw", "w")
        await ctx.tick()
        aw_done |= aw_fire
        w_done |= w_fire
        if bready:
            break
    else:
        raise AssertionError(f"write to {addr:#x} got no response")
    lower(ctx, bus, "awvalid", "wvalid", "bready")
    return resp


async def read(ctx, dut, addr, *, r_delay=0, during_stall=None):
    """One AXI4-Lite read with RREADY held low for ``r_delay`` cycles of RVALID (calling
    ``during_stall(ctx)`` once then); checks RDATA/RRESP stay stable and ARREADY stays
    low meanwhile. Returns ``(data, resp)``."""
    bus = dut.s_axil
    ctx.set(bus.araddr, addr)
    ar_done = False
    got = r_seen = None
    for t in range(100):
        ctx.set(bus.arvalid, not ar_done)
        rvalid = ctx.get(bus.rvalid)
        if rvalid:
            assert ar_done
            assert not ctx.get(bus.arready), "ARREADY while a read response waits"
            if r_seen is None:
                r_seen, got = t, (ctx.get(bus.rdata), ctx.get(bus.rresp))
                if during_stall and r_delay:
                    await during_stall(ctx)
            assert (ctx.get(bus.rdata), ctx.get(bus.rresp)) == got, \
                "RDATA/RRESP changed while RVALID waited"
        rready = bool(rvalid and t - r_seen >= r_delay)
        ctx.set(bus.rready, rready)
        (ar_fire,) = fires(ctx, bus, "ar")
        await ctx.tick()
        ar_done |= ar_fire
        if rready:
            break
    else:
        raise AssertionError(f"read of {addr:#x} got no response")
    lower(ctx, bus, "arvalid", "rready")
    return got


async def read_ok(ctx, dut, addr):
    data, resp = await read(ctx, dut, addr)
    assert resp == OKAY, f"read of {addr:#x} answered {resp}"
    return data


async def write_ok(ctx, dut, addr, data, strb=0xF):
    resp = await write(ctx, dut, addr, data, strb)
    assert resp == OKAY, f"write to {addr:#x} answered {resp}"


async def pulse(ctx, *signals, values=()):
    """Raise ``signals`` for one cycle, with ``values`` (pairs of signal and value) set."""
    for s in signals:
        ctx.set(s, 1)
    for s, v in values:
        ctx.set(s, v)
    await ctx.tick()
    for s in signals:
        ctx.set(s, 0)


def watch(dut, names, counts):
    """A background process counting the cycles each output in ``names`` is high."""
    async def proc(ctx):
        while True:
            for n in names:
                counts[n] += ctx.get(attrgetter(n)(dut))
            await ctx.tick()
    return proc


RM = RegisterMap()


def reg(name):
    return RM[name].offset


def bit(key):
    return RM.field(key).mask


# ---------------------------------------------------------------------------------------
# host interface
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("config", ["default", "4x4-fp"])
def test_reset_values(config):
    cfg = named_config(config)
    dut = HostInterface(cfg)
    rm = RegisterMap(cfg)

    async def tb(ctx):
        for r in rm:
            data, resp = await read(ctx, dut, r.offset)
            assert (data, resp) == (r.reset, OKAY), f"{r.name}: {data:#x}, {resp}"
        assert ctx.get(dut.ctrl.win_limit) == 1 << cfg.axi_addr_width
        assert ctx.get(dut.ctrl.win_base) == ctx.get(dut.ctrl.run.prog_addr) == 0
        assert ctx.get(dut.ctrl.run.watchdog) == ctx.get(dut.o_irq) == 0

    simulate(dut, tb)


def test_rw_strobes():
    """Random writes with random strobes to every RW register; the read-back and the
    outputs follow a model built from the field masks."""
    dut = HostInterface(CoreConfig())
    rng = random.Random(1)
    rw = [r for r in RM if r.access == "RW"]
    model = {r.name: r.reset for r in rw}

    def wide(lo, hi):
        return model[lo] | model[hi] << 32

    async def tb(ctx):
        for step in range(150):
            r = rng.choice(rw)
            data = rng.getrandbits(32)
            strb = rng.choice([0xF, 0x0, 0x1, 0x2, 0x4, 0x8, rng.randrange(16)])
            assert await write(ctx, dut, r.offset, data, strb) == OKAY
            bytemask = sum(0xFF << 8 * i for i in range(4) if strb >> i & 1)
            fmask = sum(f.mask for f in r.fields if f.access == "RW")
            m = bytemask & fmask
            model[r.name] = (model[r.name] & ~m) | (data & m)
            probe = rng.choice(rw)
            assert await read_ok(ctx, dut, probe.offset) == model[probe.name], \
                f"step {step}: {probe.name} after writing {data:#x}/{strb:#x} to {r.name}"
            assert ctx.get(dut.ctrl.run.prog_addr) == wide("PROG_ADDR_LO", "PROG_ADDR_HI")
            assert ctx.get(dut.ctrl.win_base) == wide("WIN_BASE_LO", "WIN_BASE_HI")
            assert ctx.get(dut.ctrl.win_limit) == wide("WIN_LIMIT_LO", "WIN_LIMIT_HI")
            assert ctx.get(dut.ctrl.run.watchdog) == model["WATCHDOG"]
        # all ones: only the fields' bits stick (PROG_ADDR_LO[4:0] read 0)
        for r in rw:
            await write_ok(ctx, dut, r.offset, 0xFFFFFFFF)
            assert await read_ok(ctx, dut, r.offset) == r.mask
        assert ctx.get(dut.ctrl.run.prog_addr) == (1 << 48) - 32
        assert ctx.get(dut.ctrl.win_limit) == (1 << 49) - 1

    simulate(dut, tb)


def test_w1c_and_irq():
    dut = HostInterface(CoreConfig())

    async def tb(ctx):
        await pulse(ctx, dut.status.run.done)
        await ctx.tick()
        assert await read_ok(ctx, dut, reg("IRQ_STATUS")) == bit("IRQ_STATUS.DONE")
        assert ctx.get(dut.o_irq) == 0                      # not enabled
        await write_ok(ctx, dut, reg("IRQ_ENABLE"), bit("IRQ_ENABLE.ERROR"))
        assert ctx.get(dut.o_irq) == 0
        await write_ok(ctx, dut, reg("IRQ_ENABLE"), bit("IRQ_ENABLE.DONE"))
        assert ctx.get(dut.o_irq) == 1
        # writing 0, or 1 without its byte strobe, clears nothing
        await write_ok(ctx, dut, reg("IRQ_STATUS"), 0)
        await write_ok(ctx, dut, reg("IRQ_STATUS"), 0xFFFFFFFF, strb=0b1110)
        assert await read_ok(ctx, dut, reg("IRQ_STATUS")) == bit("IRQ_STATUS.DONE")
        assert ctx.get(dut.o_irq) == 1
        await write_ok(ctx, dut, reg("IRQ_STATUS"), bit("IRQ_STATUS.DONE"))
        assert await read_ok(ctx, dut, reg("IRQ_STATUS")) == 0
        assert ctx.get(dut.o_irq) == 0
        # fault sets ERROR, independently of DONE
        await pulse(ctx, dut.status.run.fault)
        await ctx.tick()
        assert await read_ok(ctx, dut, reg("IRQ_STATUS")) == bit("IRQ_STATUS.ERROR")
        assert ctx.get(dut.o_irq) == 0
        await write_ok(ctx, dut, reg("IRQ_ENABLE"), 0b11)
        assert ctx.get(dut.o_irq) == 1
        await pulse(ctx, dut.status.run.done)
        await write_ok(ctx, dut, reg("IRQ_STATUS"), bit("IRQ_STATUS.ERROR"))
        assert await read_ok(ctx, dut, reg("IRQ_STATUS")) == bit("IRQ_STATUS.DONE")
        assert ctx.get(dut.o_irq) == 1
        # SOFT_RESET leaves IRQ_STATUS alone
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.SOFT_RESET"))
        await ctx.tick()
        assert await read_ok(ctx, dut, reg("IRQ_STATUS")) == bit("IRQ_STATUS.DONE")
        await write_ok(ctx, dut, reg("IRQ_STATUS"), 0xFFFFFFFF)
        assert ctx.get(dut.o_irq) == 0

    simulate(dut, tb)


def test_wo_pulses():
    dut = HostInterface(CoreConfig())
    counts = {"ctrl.run.start": 0, "o_soft_reset": 0}

    async def tb(ctx):
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.START"))
        await ctx.tick().repeat(3)
        assert counts == {"ctrl.run.start": 1, "o_soft_reset": 0}
        assert await read_ok(ctx, dut, reg("CTRL")) == 0      # write-only: reads 0
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.SOFT_RESET"))
        await ctx.tick().repeat(3)
        assert counts == {"ctrl.run.start": 1, "o_soft_reset": 1}
        # a strobe-less byte does nothing; START together with SOFT_RESET is only a reset
        await write_ok(ctx, dut, reg("CTRL"), 0b11, strb=0b1110)
        await write_ok(ctx, dut, reg("CTRL"), 0b11)
        await ctx.tick().repeat(3)
        assert counts == {"ctrl.run.start": 1, "o_soft_reset": 2}
        st = RM["STATUS"].decode(await read_ok(ctx, dut, reg("STATUS")))
        assert st["START_REJECTED"] == 0 and st["BUSY"] == 0

    simulate(dut, tb, watch(dut, counts, counts))


def test_start_rejected_busy():
    dut = HostInterface(CoreConfig())
    counts = {"ctrl.run.start": 0}

    async def tb(ctx):
        ctx.set(dut.status.run.busy, 1)
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.START"))
        await ctx.tick().repeat(3)
        assert counts["ctrl.run.start"] == 0
        st = RM["STATUS"].decode(await read_ok(ctx, dut, reg("STATUS")))
        assert st == {"BUSY": 1, "DONE": 0, "ERROR": 0, "START_REJECTED": 1}
        ctx.set(dut.status.run.busy, 0)
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.START"))
        await ctx.tick()
        assert counts["ctrl.run.start"] == 1
        st = RM["STATUS"].decode(await read_ok(ctx, dut, reg("STATUS")))
        # running (BUSY) from the accepted START even though status.run.busy stays low
        assert st == {"BUSY": 1, "DONE": 0, "ERROR": 0, "START_REJECTED": 0}
        # a second START while running is rejected too
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.START"))
        await ctx.tick().repeat(2)
        assert counts["ctrl.run.start"] == 1
        st = RM["STATUS"].decode(await read_ok(ctx, dut, reg("STATUS")))
        assert st == {"BUSY": 1, "DONE": 0, "ERROR": 0, "START_REJECTED": 1}
        await pulse(ctx, dut.status.run.done)
        st = RM["STATUS"].decode(await read_ok(ctx, dut, reg("STATUS")))
        assert st == {"BUSY": 0, "DONE": 1, "ERROR": 0, "START_REJECTED": 1}
        # the next accepted START clears DONE and START_REJECTED
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.START"))
        st = RM["STATUS"].decode(await read_ok(ctx, dut, reg("STATUS")))
        assert st == {"BUSY": 1, "DONE": 0, "ERROR": 0, "START_REJECTED": 0}
        assert counts["ctrl.run.start"] == 2

    simulate(dut, tb, watch(dut, counts, counts))


def test_fault_error_and_soft_reset():
    dut = HostInterface(CoreConfig())
    counts = {"ctrl.run.start": 0, "o_soft_reset": 0}
    fault_at_reset = [False]

    async def inject(ctx):
        """Raises fault and done in the cycle o_soft_reset is high, when asked to."""
        while True:
            if fault_at_reset[0] and ctx.get(dut.o_soft_reset):
                ctx.set(dut.status.run.error_code, 3)
                await pulse(ctx, dut.status.run.fault, dut.status.run.done)
                fault_at_reset[0] = False
            else:
                await ctx.tick()

    async def status(ctx):
        return RM["STATUS"].decode(await read_ok(ctx, dut, reg("STATUS")))

    async def tb(ctx):
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.START"))
        await ctx.tick().repeat(5)
        await pulse(ctx, dut.status.run.fault, values=[(dut.status.run.error_code, CoreError.DMA.value),
                                              (dut.status.run.error_detail, 0xA5),
                                              (dut.status.run.fault_addr, 0xBEEF_1234_5660)])
        # a second fault does not overwrite the first one's capture
        await pulse(ctx, dut.status.run.fault, values=[(dut.status.run.error_code, CoreError.WATCHDOG.value),
                                              (dut.status.run.error_detail, 0x11),
                                              (dut.status.run.fault_addr, 0x40)])
        assert await status(ctx) == {"BUSY": 0, "DONE": 0, "ERROR": 1, "START_REJECTED": 0}
        err = RM["ERROR"].decode(await read_ok(ctx, dut, reg("ERROR")))
        assert err == {"CODE": CoreError.DMA.value, "DETAIL": 0xA5}
        assert await read_ok(ctx, dut, reg("FAULT_ADDR_LO")) == 0x1234_5660
        assert await read_ok(ctx, dut, reg("FAULT_ADDR_HI")) == 0xBEEF
        # START while ERROR: rejected and flagged, no pulse
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.START"))
        await ctx.tick().repeat(2)
        assert counts["ctrl.run.start"] == 1
        assert await status(ctx) == {"BUSY": 0, "DONE": 0, "ERROR": 1, "START_REJECTED": 1}
        # a done pulse does not clear ERROR; only SOFT_RESET does
        await pulse(ctx, dut.status.run.done)
        assert (await status(ctx))["ERROR"] == 1
        # done and fault pulses in the cycle o_soft_reset is high are ignored (the core
        # is being reset then)
        await write_ok(ctx, dut, reg("IRQ_STATUS"), 0xFFFFFFFF)
        fault_at_reset[0] = True
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.SOFT_RESET"))
        await ctx.tick().repeat(2)
        assert not fault_at_reset[0], "the fault was not injected"
        assert await read_ok(ctx, dut, reg("IRQ_STATUS")) == 0
        assert await status(ctx) == {"BUSY": 0, "DONE": 0, "ERROR": 0, "START_REJECTED": 0}
        for name in ("ERROR", "FAULT_ADDR_LO", "FAULT_ADDR_HI"):
            assert await read_ok(ctx, dut, reg(name)) == 0, name
        assert counts["o_soft_reset"] == 1
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.START"))
        await ctx.tick()
        assert counts["ctrl.run.start"] == 2

    simulate(dut, tb, watch(dut, counts, counts), inject)


class CoreModel:
    """Drives the core's inputs with random values every cycle and keeps the counters
    as the register map defines them: the core runs from the cycle ``ctrl.run.start`` is high
    through the cycle of its done pulse."""

    INPUTS = {"BUSY_DMA_IN": "status.busy_dma_in", "BUSY_DMA_OUT": "status.busy_dma_out",
              "BUSY_TENSOR": "status.busy_tensor", "BUSY_VECTOR": "status.busy_vector",
              "TENSOR_ACTIVE": "status.active", "TENSOR_MACS": "status.run.macs",
              "INSTRUCTIONS": "status.run.retired"}

    def __init__(self, dut, seed):
        self.dut = dut
        self.rng = random.Random(seed)
        self.running = False
        self.finish = False             # raise done in the next cycle
        self.seen = False               # the array was active in this run
        self.counts = {name: 0 for name, _ in COUNTERS}
        self.history = {name: {0} for name, _ in COUNTERS}

    async def process(self, ctx):
        dut, rng = self.dut, self.rng
        while True:
            vals = {name: rng.getrandbits(len(attrgetter(port)(dut)))
                    for name, port in self.INPUTS.items()}
            vals["TENSOR_MACS"] |= 1         # strictly increasing, so values are unique
            for name, port in self.INPUTS.items():
                ctx.set(attrgetter(port)(dut), vals[name])
            if ctx.get(dut.ctrl.run.start):
                self.running = True
                self.seen = False
                self.counts = {name: 0 for name, _ in COUNTERS}
                self.history = {name: {0} for name, _ in COUNTERS}
            done = self.running and self.finish
            ctx.set(dut.status.run.done, done)
            ctx.set(dut.status.run.busy, self.running)
            if self.running:
                vals["CYCLES"] = 1
                active = vals["TENSOR_ACTIVE"]
                # ARRAY_LEAD: cycles before the first active one; ARRAY_TAIL: cycles
                # since the last active one (0 in an active cycle)
                self.seen = self.seen or active
                vals["ARRAY_LEAD"] = int(not self.seen)
                vals["ARRAY_TAIL"] = 1
                for name in self.counts:
                    if name == "ARRAY_TAIL" and active:
                        self.counts[name] = 0
                    else:
                        self.counts[name] = (self.counts[name] + vals[name]) % (1 << 48)
                    self.history[name].add(self.counts[name])
            await ctx.tick()
            if done:
                self.running = self.finish = False


def test_counters():
    dut = HostInterface(CoreConfig())
    core = CoreModel(dut, seed=7)

    async def read_counter(ctx, name):
        lo = await read_ok(ctx, dut, reg(f"{name}_LO"))
        hi = await read_ok(ctx, dut, reg(f"{name}_HI"))
        return lo | hi << 32

    async def check_all(ctx, when):
        for name, _ in COUNTERS:
            assert await read_counter(ctx, name) == core.counts[name], f"{when}: {name}"

    async def tb(ctx):
        await ctx.tick().repeat(20)
        for name, _ in COUNTERS:                          # idle: nothing counts
            assert await read_counter(ctx, name) == 0, name
        for run in range(2):
            await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.START"))
            await ctx.tick().repeat(30 + 17 * run)
            # while running: LO then HI is one value the counter really had, and HI
            # keeps the snapshot however long it waits
            for name in ("TENSOR_MACS", "CYCLES", "INSTRUCTIONS"):
                lo = await read_ok(ctx, dut, reg(f"{name}_LO"))
                await ctx.tick().repeat(10)
                hi = await read_ok(ctx, dut, reg(f"{name}_HI"))
                assert lo | hi << 32 in core.history[name], name
                assert await read_ok(ctx, dut, reg(f"{name}_HI")) == hi
            assert (await read_counter(ctx, "TENSOR_MACS")) >> 32, "HI half never used"
            core.finish = True
            await ctx.tick().repeat(3)
            assert not core.running
            final = dict(core.counts)
            await ctx.tick().repeat(10)
            assert core.counts == final
            await check_all(ctx, f"run {run} done")
        # SOFT_RESET clears them
        await write_ok(ctx, dut, reg("CTRL"), bit("CTRL.SOFT_RESET"))
        for name, _ in COUNTERS:
            assert await read_counter(ctx, name) == 0, name

    simulate(dut, tb, core.process)


def test_slverr():
    dut = HostInterface(CoreConfig())
    unmapped = [0x00C, 0x02C, 0x04C, 0x0FC, 0x150, 0x800, 0xFFC]

    async def tb(ctx):
        for addr in unmapped:
            assert RM.at(addr) is None
            assert await read(ctx, dut, addr) == (0, SLVERR), hex(addr)
            assert await write(ctx, dut, addr, 0xFFFFFFFF) == SLVERR, hex(addr)
        for r in RM:
            if r.access == "RO":
                assert await write(ctx, dut, r.offset, 0xFFFFFFFF) == SLVERR, r.name
                assert await read(ctx, dut, r.offset) == (r.reset, OKAY), r.name
        # nothing changed anywhere, and the bus still works
        for r in RM:
            assert await read(ctx, dut, r.offset) == (r.reset, OKAY), r.name
        assert await write(ctx, dut, reg("WATCHDOG"), 5) == OKAY
        assert await read_ok(ctx, dut, reg("WATCHDOG")) == 5
        # address bits [1:0] are ignored
        assert await read(ctx, dut, reg("ID") + 3) == (ID_VALUE, OKAY)

    simulate(dut, tb)


@pytest.mark.parametrize("aw_delay,w_delay", [(0, 0), (0, 4), (4, 0), (1, 2)],
                         ids=["together", "aw-first", "w-first", "aw-then-w"])
def test_write_orders(aw_delay, w_delay):
    dut = HostInterface(CoreConfig())

    async def tb(ctx):
        for i, r in enumerate(("WATCHDOG", "WIN_BASE_LO", "PROG_ADDR_HI")):
            value = 0x1000 * (i + 1) + 0x35
            assert await write(ctx, dut, reg(r), value, aw_delay=aw_delay,
                               w_delay=w_delay) == OKAY
            assert await read_ok(ctx, dut, reg(r)) == value & RM[r].mask
        assert ctx.get(dut.ctrl.run.watchdog) == 0x1035

    simulate(dut, tb)


def test_write_held_until_both_halves():
    """AW alone (or W alone) is held, with its ready low, and changes nothing."""
    dut = HostInterface(CoreConfig())
    bus = dut.s_axil

    async def tb(ctx):
        ctx.set(bus.awaddr, reg("WATCHDOG"))
        await pulse(ctx, bus.awvalid)
        await ctx.tick().repeat(5)
        assert ctx.get(bus.awready) == 0 and ctx.get(bus.wready) == 1
        assert ctx.get(bus.bvalid) == 0 and ctx.get(dut.ctrl.run.watchdog) == 0
        ctx.set(bus.wdata, 77)
        ctx.set(bus.wstrb, 0xF)
        await pulse(ctx, bus.wvalid)
        await ctx.tick()
        assert ctx.get(bus.bvalid) == 1 and ctx.get(bus.bresp) == OKAY
        assert ctx.get(dut.ctrl.run.watchdog) == 77
        await pulse(ctx, bus.bready)
        assert ctx.get(bus.bvalid) == 0
        # W first this time
        ctx.set(bus.wdata, 99)
        await pulse(ctx, bus.wvalid)
        await ctx.tick().repeat(5)
        assert ctx.get(bus.wready) == 0 and ctx.get(bus.awready) == 1
        assert ctx.get(bus.bvalid) == 0 and ctx.get(dut.ctrl.run.watchdog) == 77
        await pulse(ctx, bus.awvalid)
        await ctx.tick()
        assert ctx.get(bus.bvalid) == 1 and ctx.get(dut.ctrl.run.watchdog) == 99

    simulate(dut, tb)


def test_backpressure():
    dut = HostInterface(CoreConfig())
    bus = dut.s_axil

    async def tb(ctx):
        # B: held and stable for 7 cycles; a second write meanwhile waits for it
        assert await write(ctx, dut, reg("WATCHDOG"), 1, b_delay=7) == OKAY
        assert await write(ctx, dut, 0x00C, 1, b_delay=3) == SLVERR
        ctx.set(bus.awaddr, reg("WATCHDOG"))
        ctx.set(bus.wdata, 2)
        ctx.set(bus.wstrb, 0xF)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        await ctx.tick()
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        await ctx.tick()
        assert ctx.get(bus.bvalid) == 1 and ctx.get(dut.ctrl.run.watchdog) == 2
        ctx.set(bus.awaddr, reg("WATCHDOG"))
        ctx.set(bus.wdata, 3)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        await ctx.tick()                # the second write is taken into the holding registers
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
        await ctx.tick().repeat(4)
        assert ctx.get(dut.ctrl.run.watchdog) == 2, "a write took effect while B was stalled"
        assert ctx.get(bus.awready) == 0 and ctx.get(bus.wready) == 0
        ctx.set(bus.bready, 1)
        await ctx.tick()                # first B taken, the second write commits
        assert ctx.get(bus.bvalid) == 1 and ctx.get(dut.ctrl.run.watchdog) == 3
        await ctx.tick()
        ctx.set(bus.bready, 0)
        assert ctx.get(bus.bvalid) == 0

        # R: data captured at AR acceptance, stable while RREADY is low even though the
        # register changes meanwhile
        async def finish(ctx):
            await pulse(ctx, dut.status.run.done)
        data, resp = await read(ctx, dut, reg("STATUS"), r_delay=6, during_stall=finish)
        assert (data, resp) == (0, OKAY)
        assert await read_ok(ctx, dut, reg("STATUS")) == bit("STATUS.DONE")
        assert await read(ctx, dut, 0x00C, r_delay=4) == (0, SLVERR)

    simulate(dut, tb)


def test_random_traffic():
    """Seeded random mix of reads and writes (random delays and stalls) against a
    model of the RW registers; every response and value is checked."""
    dut = HostInterface(CoreConfig())
    rng = random.Random(3)
    model = {r.offset: r.reset for r in RM}
    rw = {r.offset for r in RM if r.access == "RW"}

    async def tb(ctx):
        for step in range(200):
            addr = rng.choice([r.offset for r in RM] + [0x00C, 0x200])
            r = RM.at(addr)
            if rng.random() < 0.5:
                data = rng.getrandbits(32)
                resp = await write(ctx, dut, addr, data, 0xF if addr in rw else 0,
                                   aw_delay=rng.randrange(3), w_delay=rng.randrange(3),
                                   b_delay=rng.randrange(3))
                assert resp == (OKAY if r and r.writable else SLVERR), f"step {step}"
                if addr in rw:
                    model[addr] = data & r.mask
            else:
                got = await read(ctx, dut, addr, r_delay=rng.randrange(3))
                want = (model[addr], OKAY) if r else (0, SLVERR)
                assert got == want, f"step {step}: {addr:#x}"

    simulate(dut, tb)


def test_w1c_set_wins_over_clear_in_the_same_cycle():
    """A hardware set of IRQ_STATUS.DONE in the very cycle a write of 1 clears it wins
    (an interrupt is never lost). The done pulse is swept over the cycles around the
    write: the write takes effect in the cycle before BVALID rises (B answers a write
    that is done), so a pulse before that cycle is cleared, one in it or later stays."""
    dut = HostInterface(CoreConfig())
    bus = dut.s_axil

    async def tb(ctx):
        outcomes = {}
        for d in range(6):
            await pulse(ctx, dut.status.run.done)
            await ctx.tick()
            assert await read_ok(ctx, dut, reg("IRQ_STATUS")) == bit("IRQ_STATUS.DONE")
            ctx.set(bus.awaddr, reg("IRQ_STATUS"))
            ctx.set(bus.wdata, bit("IRQ_STATUS.DONE"))
            ctx.set(bus.wstrb, 0xF)
            aw_done = w_done = b_done = False
            t_b = None
            for t in range(10):
                ctx.set(bus.awvalid, not aw_done)
                ctx.set(bus.wvalid, not w_done)
                ctx.set(dut.status.run.done, t == d)
                bvalid = bool(ctx.get(bus.bvalid)) and not b_done
                if bvalid:
                    t_b = t
                    assert ctx.get(bus.bresp) == OKAY
                ctx.set(bus.bready, bvalid)
                aw_fire, w_fire = fires(ctx, bus, "aw", "w")
                await ctx.tick()
                aw_done |= aw_fire
                w_done |= w_fire
                b_done |= bvalid
            lower(ctx, bus, "awvalid", "wvalid", "bready")
            ctx.set(dut.status.run.done, 0)
            assert t_b is not None, "the write got no response"
            status = await read_ok(ctx, dut, reg("IRQ_STATUS"))
            outcomes[d] = status
            want = bit("IRQ_STATUS.DONE") if d >= t_b - 1 else 0
            assert status == want, (
                f"done pulsed in cycle {d}, BVALID in cycle {t_b}: IRQ_STATUS {status:#x}, "
                f"expected {want:#x} (a set in the clearing cycle must win)")
            await write_ok(ctx, dut, reg("IRQ_STATUS"), 0xFFFFFFFF)
        # the sweep saw both sides of the clearing cycle
        assert 0 in outcomes.values() and bit("IRQ_STATUS.DONE") in outcomes.values()

    simulate(dut, tb)
