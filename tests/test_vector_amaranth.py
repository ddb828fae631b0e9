# amaranth: UnusedElaboratable=no
"""The vector engine's command checker (:class:`hdl.vector.ActChecker`) in Amaranth's
simulator, against the golden model ``sim.model.vector.check`` on random commands whose fields
sit near the limits (so every refusal and the legal case all occur)."""

import random

import pytest
from amaranth.sim import Simulator

from hdl.config import named_config
from hdl.formats import ActError
from hdl.vector import ActChecker
from sim.model.vector import ACT_BYTES, Act, check


def random_act(rng, cfg):
    def near(limit):
        return max(0, rng.choice([0, 1, limit - 1, limit, limit + 1, rng.randrange(limit + 2)]))
    src_psum = rng.random() < 0.5
    parts_max = cfg.cols if src_psum else cfg.rows
    elems = cfg.psum_entries if src_psum else cfg.sbuf_bytes // 4
    dst_type = rng.choice(list(ACT_BYTES))
    size = ACT_BYTES[dst_type]
    n = near(elems) if rng.random() < 0.3 else rng.randrange(1, 64)
    return Act(
        parts=near(parts_max), n=n, dst_type=dst_type, src_psum=src_psum,
        src_fp=rng.random() < 0.5, src_p0=rng.choice([0, near(parts_max)]),
        src_off=rng.choice([0, near(elems - n) if elems > n else 0, rng.randrange(64)]),
        dst_p0=rng.choice([0, near(cfg.rows)]),
        dst_off=rng.choice([0, near(cfg.sbuf_bytes - n * size) if cfg.sbuf_bytes > n * size
                            else 0, rng.randrange(256)]),
        bias=rng.random() < 0.5,
        bias_off=rng.choice([0, 2, cfg.sbuf_bytes - 4, cfg.sbuf_bytes - 2, cfg.sbuf_bytes]),
        relu=rng.random() < 0.5)


@pytest.mark.parametrize("config", ["default", "4x4-fp"])
def test_act_checker_matches_golden(config):
    cfg = named_config(config)
    dut = ActChecker(cfg)
    rng = random.Random(config)
    acts = [random_act(rng, cfg) for _ in range(600)]
    seen = set()

    async def tb(ctx):
        ctx.set(dut.i_cmd.as_value(), acts[0].encode())
        for k, a in enumerate(acts):
            await ctx.tick()
            # the next command is already on i_cmd: o_code still judges a (registered)
            if k + 1 < len(acts):
                ctx.set(dut.i_cmd.as_value(), acts[k + 1].encode())
            want = check(cfg, a)
            got = ctx.get(dut.o_code)
            seen.add(want)
            assert got == ActError[want], f"{a}: {got} != {want}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    # every verdict occurred (OVERLAP needs SBUF sources, TYPES float outputs on an
    # INT8-only build)
    assert seen == {"NONE", "TYPES", "PARTS", "SRC_RANGE", "DST_RANGE", "BIAS_RANGE",
                    "OVERLAP"}, seen
