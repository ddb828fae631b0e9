"""cocotb tests of the host interface (hdl/host.py) driven by cocotbext-axi's
``AxiLiteMaster``. Offsets, masks and reset values come from :mod:`hdl.regmap`.
Run through ``tests/test_rtl_host.py``."""

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster
from cocotbext.axi.constants import AxiResp

from hdl.isa import CoreError
from hdl.regmap import COUNTERS, RegisterMap
from tb.common import TB

WATCHDOG = dict(timeout_time=20, timeout_unit="ms")

#: Inputs from the core, all idle (0) unless a test drives them.
INPUTS = tuple(f"status__run__{n}" for n in ("busy", "done", "fault", "error_code",
                                             "error_detail", "fault_addr", "macs", "retired"))
INPUTS += tuple(f"status__{n}" for n in ("busy_dma_in", "busy_dma_out", "busy_tensor",
                                         "busy_vector", "active"))


class HostTB(TB):
    """Clock, reset (:class:`tb.common.TB`), an AXI4-Lite master with optional random
    backpressure on all five channels (``tb.backpressure = p``), a monitor of the
    core-side pulses, and the register map."""

    IDLE_INPUTS = INPUTS

    def __init__(self, dut):
        super().__init__(dut)
        self.regs = RegisterMap(self.cfg)
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
        # installed at once (p = 0 until a test sets tb.backpressure)
        self.pauses.install(self.axi_channels())
        self.starts = 0                 # ctrl.run.start pulses seen
        self.soft_resets = 0
        self.running = False            # as the register map defines it
        self.run_cycles = 0             # cycles of the current/last run

    def axi_channels(self):
        w, r = self.axil.write_if, self.axil.read_if
        return (w.aw_channel, w.w_channel, w.b_channel, r.ar_channel, r.r_channel)

    async def reset(self):
        await super().reset()
        cocotb.start_soon(self._monitor())

    async def _monitor(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if dut.ctrl__run__start.value:
                self.starts += 1
                self.running = True
                self.run_cycles = 0
            if dut.o_soft_reset.value:
                self.soft_resets += 1
                self.running = False
            if self.running:
                self.run_cycles += 1
                if dut.status__run__done.value or dut.status__run__fault.value:
                    self.running = False

    # -- register access --------------------------------------------------------------

    def offset(self, name):
        return self.regs[name].offset

    async def read(self, addr):
        """``(value, resp)`` of a 32-bit read."""
        r = await self.axil.read(addr, 4)
        return int.from_bytes(r.data, "little"), r.resp

    async def read_reg(self, name):
        value, resp = await self.read(self.offset(name))
        assert resp == AxiResp.OKAY, f"read of {name} answered {resp!r}"
        return value

    async def write(self, addr, value, nbytes=4):
        """Write the low ``nbytes`` bytes of ``value`` at byte address ``addr``
        (byte strobes follow); return the response."""
        r = await self.axil.write(addr, value.to_bytes(nbytes, "little"))
        return r.resp

    async def write_reg(self, name, value):
        resp = await self.write(self.offset(name), value)
        assert resp == AxiResp.OKAY, f"write to {name} answered {resp!r}"

    async def status(self):
        return self.regs["STATUS"].decode(await self.read_reg("STATUS"))

    async def ctrl(self, **bits):
        await self.write_reg("CTRL", self.regs["CTRL"].encode(**bits))
        await ClockCycles(self.dut.clk, 2)

    async def pulse(self, name, **values):
        """Raise core input ``name`` for one cycle, with other inputs set to ``values``."""
        dut = self.dut
        await RisingEdge(dut.clk)
        for k, v in values.items():
            getattr(dut, k).value = v
        getattr(dut, name).value = 1
        await RisingEdge(dut.clk)
        getattr(dut, name).value = 0


@cocotb.test(**WATCHDOG)
async def test_reset_values(dut):
    """Every register reads its documented reset value, OKAY; the outputs match."""
    tb = HostTB(dut)
    await tb.reset()
    for r in tb.regs:
        value, resp = await tb.read(r.offset)
        assert resp == AxiResp.OKAY, f"{r.name}: {resp!r}"
        assert value == r.reset, f"{r.name}: {value:#x}, expected {r.reset:#x}"
    config = tb.regs["CONFIG"].decode(await tb.read_reg("CONFIG"))
    assert (config["ROWS"], config["COLS"], config["N_SEMS"]) == (
        tb.cfg.rows, tb.cfg.cols, tb.cfg.n_sems)
    assert int(dut.ctrl__win_limit.value) == 1 << tb.cfg.axi_addr_width
    assert int(dut.o_irq.value) == 0


@cocotb.test(**WATCHDOG)
@cocotb.parametrize(backpressure=[0.0, 0.5])
async def test_read_write(dut, backpressure):
    """Random writes of 1 to 4 bytes (so random byte strobes) to the RW registers, read
    back and checked against a model; the outputs follow."""
    tb = HostTB(dut)
    await tb.reset()
    tb.backpressure = backpressure
    rw = [r for r in tb.regs if r.access == "RW"]
    model = {r.name: r.reset for r in rw}
    for step in range(120):
        r = rw[tb.rng.integers(len(rw))]
        first = int(tb.rng.integers(4))
        nbytes = int(tb.rng.integers(1, 5 - first))
        value = int(tb.rng.integers(1 << 32))
        resp = await tb.write(r.offset + first, value & ((1 << 8 * nbytes) - 1), nbytes)
        assert resp == AxiResp.OKAY
        m = (((1 << 8 * nbytes) - 1) << 8 * first) & r.mask
        model[r.name] = (model[r.name] & ~m) | ((value << 8 * first) & m)
        probe = rw[tb.rng.integers(len(rw))]
        assert await tb.read_reg(probe.name) == model[probe.name], f"step {step}: {probe.name}"

    def wide(name):
        return model[f"{name}_LO"] | model[f"{name}_HI"] << 32

    assert int(dut.ctrl__run__prog_addr.value) == wide("PROG_ADDR")
    assert int(dut.ctrl__win_base.value) == wide("WIN_BASE")
    assert int(dut.ctrl__win_limit.value) == wide("WIN_LIMIT")
    assert int(dut.ctrl__run__watchdog.value) == model["WATCHDOG"]
    # concurrent reads and writes from several coroutines
    names = [r.name for r in rw]
    values = {n: int(tb.rng.integers(1 << 32)) & tb.regs[n].mask for n in names}
    for task in [cocotb.start_soon(tb.write_reg(n, values[n])) for n in names]:
        await task
    tasks = {n: cocotb.start_soon(tb.read_reg(n)) for n in names}
    for n, task in tasks.items():
        assert await task == values[n], n


@cocotb.test(**WATCHDOG)
async def test_w1c_and_irq(dut):
    """IRQ_STATUS bits are set by the done/fault pulses, cleared by writing 1; the irq
    pin is their AND with IRQ_ENABLE."""
    tb = HostTB(dut)
    await tb.reset()
    irq = tb.regs["IRQ_STATUS"]
    await tb.pulse("status__run__done")
    assert irq.decode(await tb.read_reg("IRQ_STATUS")) == {"DONE": 1, "ERROR": 0}
    assert int(dut.o_irq.value) == 0
    await tb.write_reg("IRQ_ENABLE", tb.regs["IRQ_ENABLE"].encode(DONE=1, ERROR=1))
    await ClockCycles(dut.clk, 1)
    assert int(dut.o_irq.value) == 1
    await tb.write_reg("IRQ_STATUS", 0)                  # writing 0 clears nothing
    assert irq.decode(await tb.read_reg("IRQ_STATUS"))["DONE"] == 1
    await tb.write_reg("IRQ_STATUS", irq.encode(DONE=1))
    assert await tb.read_reg("IRQ_STATUS") == 0
    await ClockCycles(dut.clk, 1)
    assert int(dut.o_irq.value) == 0
    await tb.write_reg("IRQ_ENABLE", tb.regs["IRQ_ENABLE"].encode(ERROR=1))
    await tb.pulse("status__run__done")
    await ClockCycles(dut.clk, 2)
    assert int(dut.o_irq.value) == 0, "DONE is not enabled"
    await tb.pulse("status__run__fault", status__run__error_code=CoreError.OPCODE.value)
    await ClockCycles(dut.clk, 2)
    assert int(dut.o_irq.value) == 1
    assert irq.decode(await tb.read_reg("IRQ_STATUS")) == {"DONE": 1, "ERROR": 1}
    await tb.write_reg("IRQ_STATUS", irq.encode(ERROR=1))
    await ClockCycles(dut.clk, 1)
    assert int(dut.o_irq.value) == 0
    assert irq.decode(await tb.read_reg("IRQ_STATUS")) == {"DONE": 1, "ERROR": 0}


@cocotb.test(**WATCHDOG)
async def test_slverr(dut):
    """Unmapped offsets (read and write) and writes to RO registers answer SLVERR and
    change nothing."""
    tb = HostTB(dut)
    await tb.reset()
    for addr in (0x00C, 0x02C, 0x04C, 0x0FC, 0x150, 0x800, 0xFFC):
        assert tb.regs.at(addr) is None
        value, resp = await tb.read(addr)
        assert (value, resp) == (0, AxiResp.SLVERR), f"read {addr:#x}: {value:#x} {resp!r}"
        resp = await tb.write(addr, 0xFFFFFFFF)
        assert resp == AxiResp.SLVERR, f"write {addr:#x}: {resp!r}"
    for r in tb.regs:
        if r.access == "RO":
            assert await tb.write(r.offset, 0xFFFFFFFF) == AxiResp.SLVERR, r.name
    for r in tb.regs:
        value, resp = await tb.read(r.offset)
        assert (value, resp) == (r.reset, AxiResp.OKAY), r.name
    assert await tb.write(tb.offset("WATCHDOG"), 1) == AxiResp.OKAY


@cocotb.test(**WATCHDOG)
async def test_start_rejected(dut):
    """START while BUSY or while ERROR is set: no ctrl.run.start pulse, START_REJECTED set;
    SOFT_RESET clears ERROR; a later START is accepted with exactly one pulse."""
    tb = HostTB(dut)
    await tb.reset()
    dut.status__run__busy.value = 1
    await tb.ctrl(START=1)
    assert tb.starts == 0
    assert await tb.status() == {"BUSY": 1, "DONE": 0, "ERROR": 0, "START_REJECTED": 1}
    dut.status__run__busy.value = 0
    await tb.ctrl(START=1)
    assert tb.starts == 1
    assert await tb.status() == {"BUSY": 1, "DONE": 0, "ERROR": 0, "START_REJECTED": 0}
    await tb.pulse("status__run__fault", status__run__error_code=CoreError.TENSOR.value,
                   status__run__error_detail=3,
                   status__run__fault_addr=0x1234_5678_9AE0)
    assert await tb.status() == {"BUSY": 0, "DONE": 0, "ERROR": 1, "START_REJECTED": 0}
    err = tb.regs["ERROR"].decode(await tb.read_reg("ERROR"))
    assert err == {"CODE": CoreError.TENSOR.value, "DETAIL": 3}
    addr = await tb.read_reg("FAULT_ADDR_LO") | await tb.read_reg("FAULT_ADDR_HI") << 32
    assert addr == 0x1234_5678_9AE0
    await tb.ctrl(START=1)
    assert tb.starts == 1
    assert await tb.status() == {"BUSY": 0, "DONE": 0, "ERROR": 1, "START_REJECTED": 1}
    await tb.ctrl(SOFT_RESET=1)
    assert tb.soft_resets == 1
    assert await tb.status() == {"BUSY": 0, "DONE": 0, "ERROR": 0, "START_REJECTED": 0}
    assert await tb.read_reg("ERROR") == 0
    await tb.ctrl(START=1)
    assert tb.starts == 2
    await tb.pulse("status__run__done")
    assert await tb.status() == {"BUSY": 0, "DONE": 1, "ERROR": 0, "START_REJECTED": 0}


@cocotb.test(**WATCHDOG)
async def test_counters(dut):
    """A run of known length with constant increments: every counter as expected, read
    as a consistent 64-bit LO/HI pair; nothing counts before START or after done."""
    tb = HostTB(dut)
    await tb.reset()
    macs, retired = 0xC000_0001, 5
    dut.status__busy_dma_in.value = 1
    dut.status__active.value = 1
    dut.status__run__macs.value = macs
    dut.status__run__retired.value = retired
    await ClockCycles(dut.clk, 10)

    async def counter(name):
        lo = await tb.read_reg(f"{name}_LO")
        return lo | await tb.read_reg(f"{name}_HI") << 32

    for name, _ in COUNTERS:
        assert await counter(name) == 0, f"{name} counted before START"
    await tb.ctrl(START=1)
    await ClockCycles(dut.clk, 50)
    dut.status__active.value = 0
    # while running: a LO/HI pair is consistent (MACS grows by ~2**31.6 per cycle)
    value = await counter("TENSOR_MACS")
    assert value % macs == 0 and value >> 32, f"TENSOR_MACS {value:#x}"
    active = await counter("TENSOR_ACTIVE")
    await tb.pulse("status__run__done")
    await ClockCycles(dut.clk, 20)
    n = tb.run_cycles
    assert not tb.running and n > 50
    expected = {"CYCLES": n, "BUSY_DMA_IN": n, "BUSY_DMA_OUT": 0, "BUSY_TENSOR": 0,
                "BUSY_VECTOR": 0, "TENSOR_ACTIVE": active, "TENSOR_MACS": n * macs,
                "INSTRUCTIONS": n * retired,
                # active from the first running cycle for `active` cycles, then idle
                "ARRAY_LEAD": 0, "ARRAY_TAIL": n - active}
    for name, _ in COUNTERS:
        assert await counter(name) == expected[name] % (1 << 48), name
    await tb.ctrl(SOFT_RESET=1)
    for name, _ in COUNTERS:
        assert await counter(name) == 0, f"{name} after SOFT_RESET"
