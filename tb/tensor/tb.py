"""Testbench class for the `tensor_subsystem` top (:class:`hdl.tops.harness.TensorHarness`: SBUF + PSUM + engine)."""

import numpy as np
from hdl.formats import (TensorError, psum_data_layout, psum_read_layout, psum_write_layout,
                         sbuf_data_layout, sbuf_read_layout, sbuf_write_layout)
from sim.isa import codec
from sim.model.tensor import Matmul, TensorModel
from tb.common import TB, Packer, StreamSink, StreamSource, float_operands

__all__ = ["TensorTB"]


class TensorTB(TB):
    """Clock, reset and a seeded generator (:class:`tb.common.TB`), the stream drivers
    of SBUF, PSUM and the command port, and a :class:`sim.model.tensor.TensorModel`.

    Every loop is per cycle: inputs change just after a clock edge, handshakes are
    sampled in ``ReadOnly``, and every loop has a cycle bound that fails with a
    watchdog message naming the seed.
    """

    IDLE_INPUTS = ("i_cmd__valid", "i_sbuf_wr__valid", "i_sbuf_rd__valid",
                   "i_psum_rd__valid", "o_sbuf_rd__ready", "o_psum_rd__ready",
                   "status__error_clear", "i_perf_clear")

    def __init__(self, dut):
        super().__init__(dut)
        self.model = TensorModel(self.cfg)
        self.wr = Packer(sbuf_write_layout(self.cfg))
        self.rd = Packer(sbuf_read_layout(self.cfg))
        self.prd = Packer(psum_read_layout(self.cfg))
        self.pw = Packer(psum_write_layout(self.cfg))

    # -- SBUF ----------------------------------------------------------------------

    def random_sbuf(self, dtypes=None):
        """Fill the model's SBUF with random bytes; 16-bit types get a wide exponent
        spread and some specials (``tb.common.float_operands``) half the time."""
        cfg = self.cfg
        sb = self.rng.integers(0, 256, (cfg.rows, cfg.sbuf_bytes), dtype=np.uint8)
        floats = [d for d in (dtypes or cfg.dtypes) if d != "int8"]
        if floats and self.rng.random() < 0.5:
            fmt = floats[int(self.rng.integers(len(floats)))]
            half = float_operands(self.rng, (cfg.rows, cfg.sbuf_bytes // 2), fmt)
            sb = np.stack([half & 0xFF, half >> 8], axis=-1).reshape(cfg.rows, -1)
            sb = sb.astype(np.uint8)
        self.model.sbuf[...] = sb

    async def load_sbuf(self, pause=0.0):
        """Write the model's SBUF into the hardware through the external write client."""
        cfg = self.cfg
        wb = cfg.sbuf_word_bytes
        words = self.model.sbuf.reshape(cfg.rows, cfg.sbuf_words, wb)
        items = []
        for a in range(cfg.sbuf_words):
            data = [int.from_bytes(words[p, a].tobytes(), "little") for p in range(cfg.rows)]
            items.append(self.wr.pack(addr=a, pmask=(1 << cfg.rows) - 1,
                                      strb=(1 << wb) - 1, data=data))
        await self.drive("i_sbuf_wr", items, pause=pause)

    async def read_sbuf(self, ready_pause=0.0):
        """The whole SBUF through the external read client, as ``[rows, sbuf_bytes]``."""
        cfg = self.cfg
        reqs = [self.rd.pack(addr=a) for a in range(cfg.sbuf_words)]
        words = await self.request("i_sbuf_rd", "o_sbuf_rd", reqs, ready_pause)
        layout = sbuf_data_layout(cfg)
        out = np.zeros((cfg.rows, cfg.sbuf_bytes), dtype=np.uint8)
        for a, w in enumerate(words):
            for p, word in enumerate(codec.decode(layout, w)):
                out[p, a * cfg.sbuf_word_bytes:(a + 1) * cfg.sbuf_word_bytes] = \
                    np.frombuffer(word.to_bytes(cfg.sbuf_word_bytes, "little"), np.uint8)
        return out

    # -- PSUM ----------------------------------------------------------------------

    async def random_onchip(self):
        """Random SBUF and PSUM contents, written through the backdoors (needs an
        ``i_psum_wr`` port on the DUT)."""
        self.model.sbuf[...] = self.rng.integers(0, 256, self.model.sbuf.shape, dtype=np.uint8)
        await self.load_sbuf()
        cfg = self.cfg
        self.model.psum[...] = self.rng.integers(0, 1 << 32, self.model.psum.shape,
                                                 dtype=np.uint64).astype(np.uint32)
        items = []
        for b in range(cfg.psum_banks):
            for e in range(cfg.psum_depth):
                items.append(self.pw.pack(bank=b, entry=e, mask=(1 << cfg.cols) - 1, acc=0,
                                          fp=0, data=self.model.psum[:, b, e]))
        await self.drive("i_psum_wr", items)
        await self.wait_psum_quiet()

    async def wait_psum_quiet(self):
        for _ in range(16):             # PSUM's write pipeline drains in <= 9 cycles
            await self.tick()


    async def read_psum(self, ready_pause=0.0):
        """The whole PSUM through the external read client, ``[cols, banks, depth]``."""
        cfg = self.cfg
        reqs = [self.prd.pack(bank=b, entry=e)
                for b in range(cfg.psum_banks) for e in range(cfg.psum_depth)]
        words = await self.request("i_psum_rd", "o_psum_rd", reqs, ready_pause)
        out = np.zeros((cfg.cols, cfg.psum_banks * cfg.psum_depth), dtype=np.uint32)
        layout = psum_data_layout(cfg)
        for i, w in enumerate(words):
            out[:, i] = codec.decode(layout, w)
        return out.reshape(cfg.cols, cfg.psum_banks, cfg.psum_depth)

    async def check_psum(self, what=""):
        got = await self.read_psum(ready_pause=0.3)
        want = self.model.psum
        if not np.array_equal(got, want):
            bad = np.argwhere(got != want)
            j, b, e = bad[0]
            self.fail(f"{what}: PSUM differs in {len(bad)} entries; first at partition {j} "
                      f"bank {b} entry {e}: got {int(got[j, b, e]):#010x}, expected "
                      f"{int(want[j, b, e]):#010x}")

    # -- commands ------------------------------------------------------------------

    async def run(self, cmds, pause=0.0, max_cycles=None):
        """Send ``cmds`` (``Matmul``) to the engine, wait until idle, apply them to the
        model. Returns ``(first_accept_cycle, idle_cycle)``."""
        start = self.cycle
        first = await self.drive("i_cmd", [c.encode() for c in cmds], pause=pause)
        if max_cycles is None:
            cfg = self.cfg
            max_cycles = 1000 + 8 * sum(c.n + c.m for c in cmds) + 4 * cfg.array_latency
        await self.wait_idle(max_cycles, f"{len(cmds)} commands")
        self.model.run(cmds)
        return (first if first is not None else start), self.cycle

    async def wait_idle(self, max_cycles, what):
        dut = self.dut
        await self.tick()           # the last command reaches the checker
        for _ in range(max_cycles):
            await self.read_only
            if dut.o_idle.value:
                await self.tick()
                return
            await self.tick()
        self.fail(f"watchdog: engine not idle {max_cycles} cycles after {what}")

    async def error_code(self):
        await self.read_only
        code = TensorError(self.dut.status__error_code.value.to_unsigned()).name
        flag = int(self.dut.status__error.value)
        await self.tick()
        if flag != (code != "NONE"):
            self.fail(f"status__error={flag} but status__error_code={code}")
        return code

    async def clear_error(self):
        self.dut.status__error_clear.value = 1
        await self.tick()
        self.dut.status__error_clear.value = 0

    def random_cmd(self, dtype=None, n_max=None, acc=None):
        """A random legal command (random p0, K, M, N, offsets, bank, acc, dtype; a
        strided moving tile, up to one SBUF word per step, one time in three)."""
        cfg, rng = self.cfg, self.rng
        dtype = dtype or cfg.dtypes[int(rng.integers(len(cfg.dtypes)))]
        eb = 1 if dtype == "int8" else 2
        elems = cfg.sbuf_bytes // eb
        p0 = int(rng.integers(cfg.rows))
        k = int(rng.integers(1, cfg.rows - p0 + 1))
        m = int(rng.integers(1, cfg.cols + 1))
        most_step = cfg.sbuf_word_bytes // eb
        skip = int(rng.integers(1, most_step)) if most_step > 1 and rng.random() < 1 / 3 else 0
        n_top = min(cfg.psum_depth, n_max or 3 * cfg.cols, (elems - 1) // (skip + 1) + 1)
        n = int(rng.integers(1, n_top + 1))
        span = (n - 1) * (skip + 1) + 1
        return Matmul(
            k=k, m=m, n=n, p0=p0, x_skip=skip,
            s_off=int(rng.integers(0, elems - m + 1)),
            x_off=int(rng.integers(0, elems - span + 1)),
            bank=int(rng.integers(cfg.psum_banks)),
            psum_off=int(rng.integers(0, cfg.psum_depth - n + 1)),
            acc=bool(rng.integers(2)) if acc is None else acc,
            dtype=dtype)

    # -- stream helpers ------------------------------------------------------------

    async def drive(self, port, items, pause=0.0, max_cycles=None):
        """Send ``items`` on stream port ``port`` (a name such as ``"i_cmd"``), pausing
        at random (:class:`tb.common.StreamSource`); return the cycle of the first
        handshake."""
        src = StreamSource(self.dut, port, items, pause=pause, rng=self.rng)
        max_cycles = max_cycles or 200 + 20 * len(items)
        first = None
        t = 0
        while not src.done:
            if t >= max_cycles:
                self.fail(f"watchdog: {src.sent} of {len(items)} items sent in {t} cycles")
            src.drive()
            await self.read_only
            src.sample()
            await self.tick()
            t += 1
            if src.fired and first is None:
                first = self.cycle - 1
            src.advance()
        src.stop()
        return first

    async def request(self, req, resp, items, ready_pause=0.0):
        """Send read requests on stream port ``req`` (a name such as ``"i_psum_rd"``)
        and collect as many responses from ``resp``
        (its ``ready`` paused at random); return the response payloads in order."""
        src = StreamSource(self.dut, req, items)
        sink = StreamSink(self.dut, resp, pause=ready_pause, rng=self.rng)
        out = []
        t = 0
        max_cycles = 200 + int(20 * len(items) / max(0.05, 1 - ready_pause))
        while len(out) < len(items):
            if t >= max_cycles:
                self.fail(f"watchdog: {len(out)} of {len(items)} read responses in {t} cycles")
            src.drive()
            sink.drive()
            await self.read_only
            src.sample()
            word = sink.sample()
            if word is not None:
                out.append(word)
            await self.tick()
            t += 1
            src.advance()
        src.stop()
        sink.stop()
        return out
