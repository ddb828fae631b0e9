"""Stream FIFOs with typed payloads: :class:`StreamFIFO` (block RAM, registered output,
for wide data paths), :class:`SyncStreamFIFO` (``SyncFIFOBuffered`` behind stream ports,
for the small queues of control logic) and :class:`StreamSlice` (a two-entry register
slice that cuts every combinational path through a stream at full throughput)."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

__all__ = ["StreamFIFO", "SyncStreamFIFO", "StreamSlice", "DP16KD_ENTRIES"]

#: Entries of one ECP5 ``DP16KD`` in its 36-bit pseudo-dual-port mode (512 x 36).
DP16KD_ENTRIES = 512


class StreamFIFO(wiring.Component):
    """First-in first-out queue between two streams, built for timing on FPGAs.

    Entries live in a simple dual-port memory with a synchronous read port, so it
    maps to block RAM (the memory carries ``ram_style``), and the read data passes
    through one more register before ``o.payload``: nothing combinational sits between
    the RAM and the consumer, and only a few RAM blocks see the read address (a wide
    distributed-RAM FIFO spreads its address over dozens of cells and was the critical
    path of the 8x8 array).

    Elaborated for the ECP5 target (:data:`hdl.dsp.ECP5`, whose ``bram`` is
    ``"DP16KD"``) with ``ram_style="block"`` and ``2 * depth <= 512``, the memory is
    built from ``DP16KD`` primitives in their 512 x 36 pseudo-dual-port mode and the
    output register is the RAM's own (``REGMODE_B = "OUTREG"``, enabled by ``OCEB``):
    Yosys's ECP5 memory library never uses that register, and from a fabric register
    the RAM's 5.8 ns clock-to-output (speed 6) plus one route limited the 8x8 INT8
    array to about 120 MHz. The cycle behaviour is the same; ``tb/models/DP16KD.v``
    models the subset used, so the ECP5 netlist runs on Verilator
    (``tests/test_rtl_systolic.py``). ``o.payload`` then has no reset (it is only
    meaningful while ``o.valid``).

    An entry written in cycle ``c`` is on ``o`` in cycle ``c + 3`` at the earliest.
    Capacity is ``depth + 2`` (the memory, the RAM's output latch and the output
    register); ``i.ready`` is low only while the memory holds ``depth`` entries. The
    memory itself has ``2 * depth`` entries, so that neither RAM enable waits for a
    pointer subtraction (see ``elaborate``).

    Parameters
    ----------
    shape : shape-like
        Payload shape (an ``int`` width or a layout).
    depth : int
        Memory entries, a power of two >= 2.
    ram_style : str
        Value of the ``ram_style`` attribute on the memory (``"block"``,
        ``"distributed"``, ``"logic"``), a hint to synthesis.

    Members
    -------
    i : In(stream.Signature(shape))
        Write side.
    o : Out(stream.Signature(shape))
        Read side; ``valid`` comes from a register.
    level : Out(range(depth + 3))
        Entries held, including the two output stages.
    """

    def __init__(self, shape, depth, *, ram_style="block"):
        if not isinstance(depth, int) or depth < 2 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two >= 2, not {depth!r}")
        if ram_style not in ("block", "distributed", "logic"):
            raise ValueError(f"ram_style must be 'block', 'distributed' or 'logic', "
                             f"not {ram_style!r}")
        self._shape = shape
        self._depth = depth
        self._ram_style = ram_style
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "level": Out(range(depth + 3)),
        })

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        # The memory has twice the entries the FIFO admits, and the pointers count
        # modulo its size. Then (1) the write port needs no full check: an entry
        # offered while the FIFO is full lands in a free slot (the live entries are the
        # `depth` slots from `consume` on, and `produce` is past them) and is written
        # again once admitted, so the RAM's write enable (on ECP5 a byte enable on its
        # address pins) is `i.valid` itself; (2) the read side tests emptiness with
        # `produce != consume`, an equality rather than a subtraction and compare; and
        # (3) a read and a write can never meet at one address (the read needs
        # `produce != consume`), which Yosys proves, so it maps the RAM without
        # collision logic. The pointer difference, a subtraction, now drives only
        # `i.ready` and the write pointer: with it in front of the write enable it was
        # the critical path of the 8x8 float array. (A block RAM of 512 entries holds
        # 2 * depth <= 512 at no extra cost.)
        size = 2 * depth
        abits = exact_log2(size)

        primitive = (self._ram_style == "block" and size <= DP16KD_ENTRIES
                     and getattr(platform, "bram", None) == "DP16KD")

        produce = Signal(abits)
        consume = Signal(abits)
        stored = Signal(abits)
        m.d.comb += stored.eq(produce - consume)          # 0 .. depth

        # Write side.
        m.d.comb += self.i.ready.eq(stored != depth)
        w_fire = self.i.valid & self.i.ready
        with m.If(w_fire):
            m.d.sync += produce.eq(produce + 1)

        # Read side: RAM output latch (stage A) -> output register (stage B).
        a_valid = Signal()
        b_take = Signal()
        m.d.comb += b_take.eq(a_valid & (~self.o.valid | self.o.ready))
        r_issue = Signal()
        m.d.comb += r_issue.eq((produce != consume) & (~a_valid | b_take))
        with m.If(r_issue):
            m.d.sync += consume.eq(consume + 1)
        m.d.sync += a_valid.eq(r_issue | (a_valid & ~b_take))

        with m.If(b_take):
            m.d.sync += self.o.valid.eq(1)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        # The RAM: written at `produce` whenever `i.valid`, read at `consume` into stage
        # A when `r_issue`, stage A copied into the output register (stage B) on `b_take`.
        if primitive:
            self._dp16kd(m, produce, r_issue, consume, b_take)
        else:
            mem = m.submodules.storage = Memory(
                shape=self._shape, depth=size, init=[], attrs={"ram_style": self._ram_style})
            wr = mem.write_port()
            rd = mem.read_port(domain="sync")
            m.d.comb += [
                wr.addr.eq(produce), wr.data.eq(self.i.payload), wr.en.eq(self.i.valid),
                rd.addr.eq(consume), rd.en.eq(r_issue),
            ]
            with m.If(b_take):
                m.d.sync += self.o.payload.eq(rd.data)

        m.d.comb += self.level.eq(stored + a_valid + self.o.valid)
        return m

    def _dp16kd(self, m, w_addr, r_en, r_addr, out_en):
        """The memory and output register as ``DP16KD`` primitives (ECP5), 36 bits each.

        The port facts used (Lattice TN1264, ECP5 memory usage guide; the same wiring
        as Yosys's own 512 x 36 mapping): with ``DATA_WIDTH_A = DATA_WIDTH_B = 36``
        port A writes and port B reads; the word is ``{DIB, DIA}`` / ``{DOB, DOA}``;
        the address is ``AD[13:5]``, and on the write port ``ADA[3:0]`` are the four
        9-bit byte enables (``WEA`` high); ``CEB`` enables the read into the output
        latch, ``OCEB`` the output register behind it (``REGMODE_B = "OUTREG"``)."""
        data = self.i.payload.as_value()
        width = len(data)
        out = self.o.payload.as_value()
        blocks = (width + 35) // 36
        pad = Signal(36 * blocks - width, name="dp16kd_pad")     # the last block's unused bits
        padded_out = Cat(out, pad)
        # Every block shares the addresses: AD[13:5] the word, ADA[3:0] the byte enables.
        ada = Cat(self.i.valid.replicate(4), Const(0, 1), w_addr)
        adb = Cat(Const(0, 5), r_addr)
        for n in range(blocks):
            lo = 36 * n
            di = data[lo:lo + 36]
            di = di if len(di) == 36 else Cat(di, Const(0, 36 - len(di)))
            do = padded_out[lo:lo + 36]
            ports = {
                "p_DATA_WIDTH_A": 36, "p_DATA_WIDTH_B": 36,
                "p_REGMODE_A": "NOREG", "p_REGMODE_B": "OUTREG",
                "p_RESETMODE": "SYNC", "p_ASYNC_RESET_RELEASE": "SYNC",
                "p_CSDECODE_A": "0b000", "p_CSDECODE_B": "0b000",
                "p_WRITEMODE_A": "NORMAL", "p_WRITEMODE_B": "NORMAL", "p_GSR": "DISABLED",
                "i_CLKA": ClockSignal(), "i_CEA": 1, "i_OCEA": 0, "i_WEA": 1, "i_RSTA": 0,
                "i_CLKB": ClockSignal(), "i_CEB": r_en, "i_OCEB": out_en, "i_WEB": 0,
                "i_RSTB": 0,
            }
            for j in range(3):
                ports[f"i_CSA{j}"] = 0
                ports[f"i_CSB{j}"] = 0
            for j in range(14):
                ports[f"i_ADA{j}"] = ada[j] if j < len(ada) else 0
                ports[f"i_ADB{j}"] = adb[j] if j < len(adb) else 0
            for j in range(18):
                ports[f"i_DIA{j}"] = di[j]
                ports[f"i_DIB{j}"] = di[18 + j]
                ports[f"o_DOA{j}"] = do[j]
                ports[f"o_DOB{j}"] = do[18 + j]
            m.submodules[f"ram{n}"] = Instance("DP16KD", **ports)


class SyncStreamFIFO(wiring.Component):
    """Amaranth's ``SyncFIFOBuffered`` with stream ports of a given payload shape.

    The point is the type: a queue of commands or records carries a ``data`` layout
    end to end, so nobody packs or slices the FIFO's raw bits by hand. Timing and
    capacity are those of ``SyncFIFOBuffered(width=shape.width, depth=depth)``:
    ``depth`` entries (the memory holds ``depth - 1``, the output register one), an
    entry written in cycle ``c`` is on ``o`` in cycle ``c + 2`` at the earliest when
    the FIFO is empty, and ``i.ready`` and ``o.valid`` come from registers (neither
    depends on the other side's ``valid``/``ready``). ``o.ready`` while ``o.valid`` is
    low is ignored, so a consumer that drains the FIFO may hold ``ready`` high.

    Parameters
    ----------
    shape : shape-like
        Payload shape (an ``int`` width or a layout).
    depth : int
        Entries, at least 1.

    Members
    -------
    i : In(stream.Signature(shape))
        Write side.
    o : Out(stream.Signature(shape))
        Read side.
    level : Out(range(depth + 1))
        Entries held, including the output register (``SyncFIFOBuffered.level``).
    """

    def __init__(self, shape, depth):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive integer, not {depth!r}")
        Shape.cast(shape)       # raises for anything that is not shape-like
        self._shape = shape
        self._depth = depth
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        # SyncFIFOBuffered(depth=2) keeps one entry in a one-word memory, whose address
        # is a zero-width signal (Verilog `[-1:0]`). A 2-entry queue is therefore built
        # as a 3-entry one that admits an entry only while it holds fewer than two: the
        # same capacity and latencies, and `i.ready` still comes from registers.
        built = 3 if self._depth == 2 else self._depth
        fifo = m.submodules.fifo = SyncFIFOBuffered(width=Shape.cast(self._shape).width,
                                                    depth=built)
        ready = fifo.w_rdy if built == self._depth else fifo.w_rdy & (fifo.level < self._depth)
        m.d.comb += [
            fifo.w_data.eq(self.i.payload),
            fifo.w_en.eq(self.i.valid & ready),
            self.i.ready.eq(ready),
            self.o.payload.eq(fifo.r_data),
            self.o.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o.ready),
            self.level.eq(fifo.level),
        ]
        return m


class StreamSlice(wiring.Component):
    """A register slice (skid buffer): one stream in, the same stream out, with
    ``o.valid``, ``o.payload`` and ``i.ready`` all straight from flip-flops.

    Put between two blocks, it ends every combinational path through the stream in
    both directions (data and valid forward, ready backward) and still passes one
    entry per cycle: when ``o`` stalls, the entry arriving in that cycle goes into a
    second (skid) register, and ``i.ready`` falls only in the next cycle. An entry
    written in cycle ``c`` is on ``o`` in cycle ``c + 1``; capacity is 2; order is
    kept and nothing is dropped or duplicated.

    Parameters
    ----------
    shape : shape-like
        Payload shape.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    def __init__(self, shape):
        Shape.cast(shape)
        self._shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        skid = Signal.like(self.i.payload)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        i_fire = self.i.valid & self.i.ready
        with m.If(~self.o.valid | self.o.ready):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += self.o.valid.eq(i_fire)
                with m.If(i_fire):
                    m.d.sync += self.o.payload.eq(self.i.payload)
        with m.Elif(i_fire):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
