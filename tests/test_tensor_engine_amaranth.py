# amaranth: UnusedElaboratable=no
"""The tensor engine's command checks in Amaranth's simulator, against the golden
model's ``TensorModel.check``: every limit at its legal edge (``psum_off + n ==
psum_depth``, the last SBUF byte, ``p0 + k == rows``, ``m == cols``, ``n ==
psum_depth``, the last bank) next to the first illegal value, for both operand widths.

A legal command is accepted without an error (it then waits for SBUF, which nobody
answers here); an illegal one raises ``status.error`` with the model's code. The Verilator
tensor testbench runs the same edges with data (``test_read_at_done``); this test
fails within seconds when a bound is off by one."""

import dataclasses

import pytest
from amaranth.sim import Simulator

from hdl.config import CoreConfig
from hdl.formats import TensorError
from hdl.tensor_engine import TensorEngine
from sim.model.tensor import Matmul, TensorModel

CFG = CoreConfig(rows=2, cols=2, dtypes=("int8", "bf16"), sbuf_bytes=64, psum_banks=2,
                 psum_depth=4)


def edge_cases(cfg):
    """Legal commands at each limit and their first illegal neighbour."""
    out = []
    for dtype, es in (("int8", 1), ("bf16", 2)):
        elems = cfg.sbuf_bytes // es
        base = Matmul(k=1, m=1, n=1, dtype=dtype)
        for field, legal, illegal in (
                (dict(psum_off=cfg.psum_depth - 2, n=2), True, None),
                (dict(psum_off=cfg.psum_depth - 1, n=2), False, None),
                (dict(n=cfg.psum_depth), True, None),
                (dict(n=cfg.psum_depth + 1), False, None),
                (dict(bank=cfg.psum_banks - 1), True, None),
                (dict(bank=cfg.psum_banks), False, None),
                (dict(p0=cfg.rows - 1, k=1), True, None),
                (dict(p0=cfg.rows - 1, k=2), False, None),
                (dict(m=cfg.cols), True, None),
                (dict(m=cfg.cols + 1), False, None),
                (dict(s_off=elems - 2, m=2), True, None),          # last SBUF element
                (dict(s_off=elems - 1, m=2), False, None),
                (dict(x_off=elems - 3, n=3), True, None),
                (dict(x_off=elems - 2, n=3), False, None),
                (dict(k=0), False, None), (dict(m=0), False, None), (dict(n=0), False, None)):
            out.append(dataclasses.replace(base, **field))
    out.append(Matmul(k=1, m=1, n=1, dtype="fp16"))                  # absent type
    return out


@pytest.mark.parametrize("cmd", edge_cases(CFG), ids=str)
def test_check_edges(cmd):
    want = TensorModel(CFG).check(cmd)
    dut = TensorEngine(CFG)
    seen = {}

    async def tb(ctx):
        ctx.set(dut.i_cmd.payload.as_value(), cmd.encode())
        ctx.set(dut.i_cmd.valid, 1)
        for _ in range(6):
            _, _, ready = await ctx.tick().sample(dut.i_cmd.ready)
            if ready:
                break
        else:
            raise AssertionError(f"{cmd}: never accepted")
        ctx.set(dut.i_cmd.valid, 0)
        for _ in range(3):
            await ctx.tick()
        seen["error"] = ctx.get(dut.status.error)
        seen["code"] = TensorError(ctx.get(dut.status.error_code)).name

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert (seen["code"], bool(seen["error"])) == (want, want != "NONE"), \
        f"{cmd}: hardware {seen}, model {want}"
