"""The host interface: ncore's control and status registers on an AXI4-Lite port.

The register map is :mod:`hdl.regmap`; this module builds the decoder, the storage and
the reset values by looping over it, and adds the behaviour behind the RO registers
(sticky status flags, error capture, performance counters). The host's sequence is in
``docs/host.md``, the registers in ``docs/registers.md``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from .axi import AXI4LiteSignature, AXIResp
from .config import CoreConfig, check_config
from .interfaces import (ConfigComponent, COUNTER_WIDTH, PROG_ALIGN_BITS, CoreControl, CoreStatus,
                         StatusLights)
from .regmap import ADDR_WIDTH, COUNTERS, DATA_BYTES, RESTART_ON_ACTIVE, RegisterMap

__all__ = ["HostInterface"]


class HostInterface(ConfigComponent):
    """AXI4-Lite register file that starts, watches and resets the core.

    The AXI4-Lite subordinate accepts AW and W independently (in either order or
    together) and holds each until both are in; the write then takes effect and its
    response is raised one cycle later. A read's address is registered when AR is
    accepted and its data is selected in the next cycle, so the response comes two
    cycles after AR (the address decode and the read multiplexer over every register
    are in different cycles: in one they were the host's critical path on the ECP5).
    One write and one read are handled at a time (``awready``/``wready``/``arready``
    drop while one is pending); ``bvalid``/``bresp``
    and ``rvalid``/``rdata``/``rresp`` stay stable until ``bready``/``rready``. Address
    bits [1:0] are ignored. Unmapped offsets and writes to RO registers are answered
    SLVERR and change nothing; RW, W1C and WO registers honour the byte strobes.

    The core *runs* from an accepted START (the cycle ``ctrl.run.start`` is high) until
    ``status.run.done`` or ``status.run.fault`` (inclusive), or a SOFT_RESET.
    STATUS.BUSY is ``status.run.busy`` or running or a SOFT_RESET pending, so it is set
    from the cycle after the START write, even if the core raises busy a few cycles late.

    A SOFT_RESET write makes the reset *pending*: ``ctrl.quiesce`` tells the core to
    start no new AXI burst, and the reset (``o_soft_reset``, and the clearing of the
    status registers and counters below) happens after the first cycle from the one
    after the write on in which ``i_bus_busy`` is low, i.e. once every burst in flight
    has completed (``o_soft_reset`` two cycles after the write when the bus is idle).
    ``ctrl.quiesce`` stays high through the ``o_soft_reset`` cycle. A core reset
    mid-burst would leave R beats or a W burst owed to the subordinate and wedge the
    port. Done and fault are ignored while the reset
    is pending and in the cycle ``o_soft_reset`` is high (the core is being reset then);
    a START in that time is rejected (STATUS.BUSY).

    Members
    -------
    s_axil : In(AXI4LiteSignature(addr_width=12))
        The register port (see ``docs/registers.md``).
    ctrl : Out(CoreControl)
        ``run.start``: one-cycle pulse for each accepted START (never for a rejected
        one). ``run.prog_addr``: PROG_ADDR, the byte address of the first instruction
        (bits [4:0] are zero). ``run.watchdog``: WATCHDOG, cycles without progress
        before a WATCHDOG fault (0 is off). ``win_base``, ``win_limit``: the DMA window
        ``[base, limit)`` (WIN_BASE, WIN_LIMIT).
    status : In(CoreStatus)
        ``run.busy`` (live; read as STATUS.BUSY); ``run.done``, one-cycle pulse: the
        program ended; ``run.fault``, one-cycle pulse: the core stopped with an error,
        ``run.error_code`` (:class:`hdl.isa.CoreError`), ``run.error_detail`` (the
        refusing engine's own code) and ``run.fault_addr`` (the faulting instruction)
        are valid with it; ``run.macs``, ``run.retired``: multiply-accumulates done and
        instructions retired (in the controller's previous cycle: it registers them);
        ``busy_dma_in`` .. ``busy_vector``: engine busy
        levels, counted while running; ``active``: the systolic array accepts a moving
        column this cycle.
    o_soft_reset : Out(1)
        One-cycle pulse for each SOFT_RESET, once the bus is idle.
    i_bus_busy : In(1)
        The core's AXI port has a transaction in flight (:class:`hdl.axi.AXIInFlight`).
    o_irq : Out(1)
        ``|(IRQ_STATUS & IRQ_ENABLE)``, level.
    o_lights : Out(StatusLights)
        STATUS.BUSY, STATUS.DONE and STATUS.ERROR as they read (a board's LEDs).
    i_start, i_soft_reset : In(1)
        A CTRL.START / CTRL.SOFT_RESET write from elsewhere (the chip's START and
        SOFT_RESET registers), with the same effect and in the same cycle as a write
        here would have.
    """

    def __init__(self, config: CoreConfig):
        check_config(config)
        self._regmap = RegisterMap(config)
        super().__init__(config, {
            "s_axil": In(AXI4LiteSignature(addr_width=ADDR_WIDTH, data_bytes=DATA_BYTES)),
            "ctrl": Out(CoreControl()),
            "status": In(CoreStatus()),
            "o_soft_reset": Out(1),
            "i_bus_busy": In(1),
            "o_irq": Out(1),
            "o_lights": Out(StatusLights),
            "i_start": In(1),
            "i_soft_reset": In(1),
        })

    @property
    def regmap(self):
        """The :class:`hdl.regmap.RegisterMap` this interface decodes."""
        return self._regmap

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axil
        rm = self._regmap
        word = slice(2, ADDR_WIDTH)     # address bits that select a register

        # -- AXI4-Lite write channels: hold AW and W until both are in -------------------
        aw_full = Signal()
        aw_addr = Signal(ADDR_WIDTH)
        w_full = Signal()
        w_data = Signal(8 * DATA_BYTES)
        w_strb = Signal(DATA_BYTES)
        commit = Signal()               # the held write takes effect this cycle
        m.d.comb += [
            bus.awready.eq(~aw_full),
            bus.wready.eq(~w_full),
            commit.eq(aw_full & w_full & (~bus.bvalid | bus.bready)),
        ]
        with m.If(commit):
            m.d.sync += [aw_full.eq(0), w_full.eq(0)]
        with m.If(bus.awvalid & ~aw_full):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(bus.awaddr)]
        with m.If(bus.wvalid & ~w_full):
            m.d.sync += [w_full.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]

        # bit mask of the strobed bytes, and the written ones within it
        w_mask = Cat(b.replicate(8) for b in w_strb)
        w_ones = Signal(8 * DATA_BYTES)
        m.d.comb += w_ones.eq(w_data & w_mask)

        w_hit = {r.name: Signal(name=f"w_hit_{r.name.lower()}") for r in rm}
        w_ok = Signal()
        for r in rm:
            m.d.comb += w_hit[r.name].eq(commit & (aw_addr[word] == r.offset >> 2))
        m.d.comb += w_ok.eq(Cat(w_hit[r.name] for r in rm if r.writable).any())
        with m.If(commit):
            m.d.sync += [bus.bvalid.eq(1),
                         bus.bresp.eq(Mux(w_ok, AXIResp.OKAY, AXIResp.SLVERR))]
        with m.Elif(bus.bready):
            m.d.sync += bus.bvalid.eq(0)

        # -- AXI4-Lite read channels ------------------------------------------------------
        # stage 1 (AR accepted): the address decode, into one registered hit per
        # register; stage 2 (`r_sel`): the multiplexer, into rdata
        ar_take = Signal()
        r_sel = Signal()
        m.d.comb += [bus.arready.eq(~bus.rvalid & ~r_sel),
                     ar_take.eq(bus.arvalid & bus.arready)]
        m.d.sync += r_sel.eq(ar_take)
        r_hit = {r.name: Signal(name=f"r_hit_{r.name.lower()}") for r in rm}
        for r in rm:
            m.d.sync += r_hit[r.name].eq(ar_take & (bus.araddr[word] == r.offset >> 2))

        # -- storage and pulses, from the register map ------------------------------------
        state = {}                      # "REG.FIELD" -> register holding the field
        pulses = {}                     # "REG.FIELD" -> WO pulse (this cycle)

        def new(key):
            f = rm.field(key)
            s = state[key] = Signal(f.width, init=f.reset, name=key.lower().replace(".", "_"))
            return s

        for r in rm:
            for f in r.fields:
                key = f"{r.name}.{f.name}"
                bits = slice(f.lsb, f.lsb + f.width)
                if f.access in ("RW", "W1C"):
                    new(key)
                elif f.access == "WO":
                    pulses[key] = p = Signal(f.width, name=f"wr_{r.name.lower()}_{f.name.lower()}")
                    m.d.comb += p.eq(Mux(w_hit[r.name], w_ones[bits], 0))

        # -- behaviour behind the registers -----------------------------------------------
        sources = {}                    # "REG.FIELD" -> value of an RO field without storage
        sets = {}                       # "REG.FIELD" -> hardware set of a W1C field

        running = Signal()
        done = Signal()
        fault = Signal()
        busy = Signal()
        soft_wr = Signal()
        m.d.comb += soft_wr.eq(pulses["CTRL.SOFT_RESET"] | self.i_soft_reset)
        pending = Signal()              # a SOFT_RESET waits for the bus to drain
        soft = Signal()                 # the SOFT_RESET takes effect (o_soft_reset next)
        start = Signal()                # a START was written (without SOFT_RESET)
        accept = Signal()
        reject = Signal()
        st_done = new("STATUS.DONE")
        st_error = new("STATUS.ERROR")
        st_rejected = new("STATUS.START_REJECTED")
        m.d.comb += [
            # decided on registered state only: in the cycle of the write a burst may
            # still start, and the monitor sees it from the next cycle on
            soft.eq(pending & ~self.i_bus_busy),
            self.ctrl.quiesce.eq(pending | self.o_soft_reset),
            done.eq(self.status.run.done & ~self.o_soft_reset & ~pending),
            fault.eq(self.status.run.fault & ~self.o_soft_reset & ~pending),
            busy.eq(self.status.run.busy | running | pending),
            start.eq((pulses["CTRL.START"] | self.i_start) & ~soft_wr),
            accept.eq(start & ~busy & ~st_error & ~fault),
            reject.eq(start & ~accept),
        ]
        with m.If(soft):
            m.d.sync += pending.eq(0)
        with m.Elif(soft_wr):
            m.d.sync += pending.eq(1)
        sources["STATUS.BUSY"] = busy
        m.d.comb += [self.o_lights.busy.eq(busy), self.o_lights.done.eq(st_done),
                     self.o_lights.error.eq(st_error)]
        m.d.sync += [self.ctrl.run.start.eq(accept), self.o_soft_reset.eq(soft)]

        with m.If(soft | done | fault):
            m.d.sync += running.eq(0)
        with m.Elif(accept):
            m.d.sync += running.eq(1)

        with m.If(soft | accept):
            m.d.sync += st_done.eq(0)
        with m.Elif(done):
            m.d.sync += st_done.eq(1)

        with m.If(soft | accept):
            m.d.sync += st_rejected.eq(0)
        with m.Elif(reject):
            m.d.sync += st_rejected.eq(1)

        captured = [new("ERROR.CODE"), new("ERROR.DETAIL"),
                    Cat(new("FAULT_ADDR_LO.ADDR"), new("FAULT_ADDR_HI.ADDR"))]
        with m.If(soft):
            m.d.sync += st_error.eq(0)
            m.d.sync += [c.eq(0) for c in captured]
        with m.Elif(fault):
            m.d.sync += st_error.eq(1)
            with m.If(~st_error):
                m.d.sync += [c.eq(v) for c, v in zip(
                    captured, (self.status.run.error_code, self.status.run.error_detail, self.status.run.fault_addr))]

        sets["IRQ_STATUS.DONE"] = done
        sets["IRQ_STATUS.ERROR"] = fault

        seen_active = Signal()      # the array has accepted a moving column in this run
        increments = {
            "CYCLES": Const(1),
            "BUSY_DMA_IN": self.status.busy_dma_in,
            "BUSY_DMA_OUT": self.status.busy_dma_out,
            "BUSY_TENSOR": self.status.busy_tensor,
            "BUSY_VECTOR": self.status.busy_vector,
            "TENSOR_ACTIVE": self.status.active,
            "TENSOR_MACS": self.status.run.macs,
            "INSTRUCTIONS": self.status.run.retired,
            # before the first moving column of the run, that cycle excluded
            "ARRAY_LEAD": ~seen_active & ~self.status.active,
            "ARRAY_TAIL": Const(1),
        }
        assert set(increments) == {name for name, _ in COUNTERS}
        with m.If(soft | accept):
            m.d.sync += seen_active.eq(0)
        with m.Elif(running & self.status.active):
            m.d.sync += seen_active.eq(1)
        for name, _ in COUNTERS:
            count = Signal(COUNTER_WIDTH, name=f"count_{name.lower()}")
            snap = new(f"{name}_HI.COUNT")
            assert len(snap) == COUNTER_WIDTH - 32
            with m.If(soft | accept):
                m.d.sync += [count.eq(0), snap.eq(0)]
            with m.Else():
                with m.If(running):
                    m.d.sync += count.eq(count + increments[name])
                    if name in RESTART_ON_ACTIVE:
                        with m.If(self.status.active):
                            m.d.sync += count.eq(0)
                with m.If(r_hit[f"{name}_LO"]):
                    m.d.sync += snap.eq(count[32:])
            sources[f"{name}_LO.COUNT"] = count[:32]

        # -- writes to RW and W1C fields --------------------------------------------------
        for r in rm:
            for f in r.fields:
                key = f"{r.name}.{f.name}"
                bits = slice(f.lsb, f.lsb + f.width)
                if f.access == "RW":
                    s = state[key]
                    with m.If(w_hit[r.name]):
                        m.d.sync += s.eq((s & ~w_mask[bits]) | w_ones[bits])
                elif f.access == "W1C":
                    s = state[key]
                    clear = Mux(w_hit[r.name], w_ones[bits], 0)
                    m.d.sync += s.eq((s & ~clear) | sets.pop(key, 0))
        assert not sets, f"hardware sets for unknown W1C fields: {sorted(sets)}"

        # -- reads ------------------------------------------------------------------------
        def value(r):
            parts, pos = [], 0
            for f in sorted(r.fields, key=lambda f: f.lsb):
                key = f"{r.name}.{f.name}"
                if f.lsb > pos:
                    parts.append(Const(0, f.lsb - pos))
                if f.const or f.access == "WO":
                    v = Const(f.reset if f.const else 0, f.width)
                elif key in state:
                    v = state[key]
                else:
                    v = sources.pop(key)
                assert len(v) == f.width, f"{key}: {len(v)} bits, not {f.width}"
                parts.append(v)
                pos = f.lsb + f.width
            return Cat(*parts, Const(0, 8 * DATA_BYTES - pos))

        # one-hot AND-OR select (the hits are registered, at most one is set)
        r_data = Signal(8 * DATA_BYTES)
        r_ok = Signal()
        acc = 0
        for r in rm:
            acc = acc | Mux(r_hit[r.name], value(r), 0)
        m.d.comb += [r_data.eq(acc), r_ok.eq(Cat(*r_hit.values()).any())]
        assert not sources, f"values for unknown RO fields: {sorted(sources)}"
        with m.If(r_sel):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(r_data),
                         bus.rresp.eq(Mux(r_ok, AXIResp.OKAY, AXIResp.SLVERR))]
        with m.Elif(bus.rready):
            m.d.sync += bus.rvalid.eq(0)

        # -- outputs ----------------------------------------------------------------------
        m.d.comb += [
            self.ctrl.run.prog_addr.eq(Cat(Const(0, PROG_ALIGN_BITS), state["PROG_ADDR_LO.ADDR"],
                                    state["PROG_ADDR_HI.ADDR"])),
            self.ctrl.win_base.eq(Cat(state["WIN_BASE_LO.ADDR"], state["WIN_BASE_HI.ADDR"])),
            self.ctrl.win_limit.eq(Cat(state["WIN_LIMIT_LO.ADDR"], state["WIN_LIMIT_HI.ADDR"])),
            self.ctrl.run.watchdog.eq(state["WATCHDOG.CYCLES"]),
            self.o_irq.eq(Cat(state[f"IRQ_STATUS.{f.name}"] & state[f"IRQ_ENABLE.{f.name}"]
                              for f in rm["IRQ_STATUS"].fields).any()),
        ]
        return m
