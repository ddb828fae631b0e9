"""Testbench class for the `vector_subsystem` top (:class:`hdl.tops.harness.VectorHarness`: SBUF + PSUM + vector engine)."""

import numpy as np

from hdl.formats import ActError
from sim.model.vector import apply, check
from tb.tensor.tb import TensorTB

__all__ = ["VectorTB"]


class VectorTB(TensorTB):
    """Backdoors to SBUF and PSUM, the command stream, and :mod:`sim.model.vector` as the model."""

    IDLE_INPUTS = ("i_psum_wr__valid",) + TensorTB.IDLE_INPUTS

    async def act(self, cmds, pause=0.0, max_cycles=None):
        """Send ACT commands, wait until the engine is idle, apply them to the model.
        Returns the cycles from the first command accepted to idle."""
        dut = self.dut
        limit = max_cycles or 500 + sum(4 * c.n + 40 for c in cmds)
        first = await self.drive("i_cmd", [c.encode() for c in cmds], pause=pause,
                                 max_cycles=limit)
        start = self.cycle
        await self.tick()
        for _ in range(limit):
            await self.read_only
            if not dut.o_busy.value:
                break
            await self.tick()
        else:
            self.fail(f"watchdog: vector engine busy {limit} cycles after {cmds}")
        end = self.cycle
        await self.tick()
        first_code = "NONE"
        for c in cmds:
            code = apply(self.cfg, c, self.model)
            if first_code == "NONE":
                first_code = code
        return (first if first is not None else start), end, first_code

    async def act_code(self):
        await self.read_only
        code = ActError(self.dut.status__error_code.value.to_unsigned()).name
        await self.tick()
        return code

    async def check_sbuf(self, what):
        got = await self.read_sbuf(ready_pause=0.2)
        if not np.array_equal(got, self.model.sbuf):
            bad = np.argwhere(got != self.model.sbuf)
            p, b = bad[0]
            self.fail(f"{what}: SBUF differs in {len(bad)} bytes; first partition {p} "
                      f"byte {b}: got {got[p, b]:#04x}, expected {self.model.sbuf[p, b]:#04x}")

    def random_act(self, src_psum=None, src_fp=None, dst_type=None, n_max=64, op=None,
                   src_type=None):
        """A random legal ACT: every operation (COPY, ADD, MAX), operand type (ACC from
        PSUM or SBUF, INT8/BF16/FP16 from SBUF), stride, placement, bias, ReLU, clip
        and requantisation parameter. Fixed by the arguments where given."""
        from hdl.formats import ACT_BYTES, SRC_BYTES
        from sim.model.vector import Act
        cfg, rng = self.cfg, self.rng
        for _ in range(1000):
            fp = (bool(rng.integers(2)) if cfg.has_float else False) if src_fp is None else src_fp
            st = src_type or str(rng.choice(["ACC", "ACC"] + (["BF16", "FP16"] if fp
                                                              else ["INT8"])))
            sp = (bool(rng.integers(2)) if src_psum is None else src_psum) and st == "ACC"
            dt = dst_type or (str(rng.choice(["FP32", "BF16", "FP16"])) if fp
                              else str(rng.choice(["INT32", "INT8"])))
            the_op = op or str(rng.choice(["COPY", "COPY", "ADD", "MAX"]))
            size = ACT_BYTES[dt]
            es = SRC_BYTES[st]
            src_parts = cfg.cols if sp else cfg.rows
            parts = int(rng.integers(1, src_parts + 1))
            src_p0 = int(rng.integers(0, src_parts - parts + 1))
            dst_p0 = int(rng.integers(0, cfg.rows - parts + 1))
            src_elems = cfg.psum_entries if sp else cfg.sbuf_bytes // es
            skip, skip2 = (int(v) for v in rng.choice([0, 0, 0, 1, 2, 7], 2))
            n = int(rng.integers(1, min(n_max, src_elems // (max(skip, skip2) + 1),
                                        cfg.sbuf_bytes // size) + 1))
            span, span2 = (n - 1) * (skip + 1) + 1, (n - 1) * (skip2 + 1) + 1
            a = Act(parts=parts, n=n, dst_type=dt, src_psum=sp, src_fp=fp, src_p0=src_p0,
                    src_off=int(rng.integers(0, src_elems - span + 1)), dst_p0=dst_p0,
                    dst_off=size * int(rng.integers(0, (cfg.sbuf_bytes - n * size) // size + 1)),
                    bias=bool(rng.integers(2)) and not (fp and the_op == "ADD"),
                    bias_off=4 * int(rng.integers(0, cfg.sbuf_bytes // 4)),
                    relu=bool(rng.integers(2)), scale=int(rng.integers(-32768, 32768)),
                    shift=int(rng.integers(0, 48)), zp=int(rng.integers(-128, 128)),
                    op=the_op, src_type=st, src_skip=skip, src2_skip=skip2,
                    src2_off=int(rng.integers(0, src_elems - span2 + 1)),
                    scale2=int(rng.integers(-32768, 32768)),
                    zp1=int(rng.integers(-128, 128)) if rng.integers(2) else 0,
                    zp2=int(rng.integers(-128, 128)) if rng.integers(2) else 0,
                    clip=bool(rng.integers(4) == 0), hi=int(rng.integers(0, 1 << 16)))
            if check(cfg, a) == "NONE":
                return a
        raise RuntimeError("no legal random command found")
