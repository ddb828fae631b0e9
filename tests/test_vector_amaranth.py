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
from sim.model.vector import ACT_BYTES, SRC_BYTES, Act, check

OPS = ("COPY", "ADD", "MAX", "OP3")


def _run_cases(dut, cases, pipelined=False):
    """Each ``(Act, expected code)`` on the checker: its verdict ``ActChecker.LATENCY``
    cycles after the command. ``pipelined``: a new command every cycle (each verdict
    read as later commands go in); else each command held until its verdict."""
    lat = ActChecker.LATENCY

    async def tb(ctx):
        if pipelined:
            for k in range(len(cases) + lat - 1):
                if k < len(cases):
                    ctx.set(dut.i_cmd.as_value(), cases[k][0].encode())
                await ctx.tick()
                if k + 1 >= lat:
                    a, want = cases[k + 1 - lat]
                    got = ctx.get(dut.o_code)
                    assert got == ActError[want], f"{a}: {got} != {want}"
            return
        for a, want in cases:
            ctx.set(dut.i_cmd.as_value(), a.encode())
            await ctx.tick().repeat(lat)
            got = ctx.get(dut.o_code)
            assert got == ActError[want], f"{a}: {got} != {want}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()


def random_act(rng, cfg):
    def near(limit):
        return max(0, rng.choice([0, 1, limit - 1, limit, limit + 1, rng.randrange(limit + 2)]))
    src_psum = rng.random() < 0.5
    # mostly consistent operand types (so that the later checks are reached), sometimes not
    src_fp = rng.random() < 0.5
    src_type = rng.choice(("ACC",) + (("BF16", "FP16") if src_fp else ("INT8",)))
    if rng.random() < 0.1:
        src_type = rng.choice(list(SRC_BYTES))
    if src_type != "ACC" and rng.random() < 0.9:
        src_psum = False
    parts_max = cfg.cols if src_psum else cfg.rows
    elems = cfg.psum_entries if src_psum else cfg.sbuf_bytes // SRC_BYTES[src_type]
    dst_type = rng.choice(list(ACT_BYTES))
    size = ACT_BYTES[dst_type]
    n = near(elems) if rng.random() < 0.3 else rng.randrange(1, 64)
    skip, skip2 = rng.choice([0, 0, 1, 7]), rng.choice([0, 1, 3])
    span = (n - 1) * (skip + 1) + 1
    return Act(
        parts=near(parts_max), n=n, dst_type=dst_type, src_psum=src_psum,
        src_fp=src_fp, src_type=src_type, op=rng.choice(OPS), src_skip=skip,
        src2_skip=skip2, src_p0=rng.choice([0, near(parts_max)]),
        src_off=rng.choice([0, near(elems - span) if elems > span else 0, rng.randrange(64)]),
        src2_off=rng.choice([0, near(elems - n) if elems > n else 0, rng.randrange(256)]),
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
    acts = [random_act(rng, cfg) for _ in range(1500)]
    cases = [(a, check(cfg, a)) for a in acts]
    seen = {want for _, want in cases}
    _run_cases(dut, cases, pipelined=True)
    # every verdict occurred (OVERLAP needs SBUF sources, TYPES float outputs on an
    # INT8-only build)
    assert seen == {"NONE", "TYPES", "PARTS", "SRC_RANGE", "DST_RANGE", "BIAS_RANGE",
                    "OVERLAP", "OP"}, seen


@pytest.mark.parametrize("config", ["default", "4x4-fp"])
def test_act_checker_directed_overlaps(config):
    """SBUF-to-SBUF copies at the same byte offset (``dst_off == 4 * src_off``) on the
    same, overlapping-but-different and disjoint partition ranges, and shifted by one
    element: only the true in-place copy (same partitions, same offset) and disjoint
    ones run; an overlap onto other partitions is OVERLAP. Checked against the golden
    ``check``, with the expected verdicts also spelt out."""
    cfg = named_config(config)
    dut = ActChecker(cfg)
    cases = []
    for dst_type, src_fp in (("INT32", False), ("FP32", True)):
        if src_fp and not cfg.has_float:
            continue
        for src_p0, dst_p0, parts in ((0, 0, 2), (0, 1, 2), (1, 0, 2), (0, 2, 2),
                                      (1, 1, 3), (0, 1, 1)):
            for src_off, dst_off in ((4, 16), (4, 20), (4, 12), (8, 0)):
                a = Act(parts=parts, n=3, dst_type=dst_type, src_psum=False,
                        src_fp=src_fp, src_p0=src_p0, src_off=src_off, dst_p0=dst_p0,
                        dst_off=dst_off)
                parts_meet = src_p0 < dst_p0 + parts and dst_p0 < src_p0 + parts
                bytes_meet = 4 * src_off < dst_off + 12 and dst_off < 4 * (src_off + 3)
                same = src_p0 == dst_p0 and dst_off == 4 * src_off
                want = "OVERLAP" if parts_meet and bytes_meet and not same else "NONE"
                assert check(cfg, a) == want, a
                cases.append((a, want))
    assert {w for _, w in cases} == {"NONE", "OVERLAP"}

    _run_cases(dut, cases)


@pytest.mark.parametrize("config", ["4x4-fp"])
def test_act_checker_directed_narrow_in_place(config):
    """Operands narrower than the result, strided operands and second operands against
    the destination: in place only where no write can run ahead of a read (the result
    no wider than the operand's step in bytes); the golden ``check`` and the gateware
    agree, with the verdicts spelt out here."""
    cfg = named_config(config)
    dut = ActChecker(cfg)
    base = dict(parts=2, n=8, src_psum=False, src_p0=0, dst_p0=0)
    cases = [
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT8", src_off=16, dst_off=16), "NONE"),
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT32", src_off=16, dst_off=16), "OVERLAP"),
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT32", src_off=16, dst_off=16,
             src_skip=3), "NONE"),
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT32", src_off=16, dst_off=16,
             src_skip=2), "OVERLAP"),
        (Act(**base, src_fp=True, src_type="BF16", dst_type="BF16", src_off=8, dst_off=16), "NONE"),
        (Act(**base, src_fp=True, src_type="BF16", dst_type="FP32", src_off=8, dst_off=16), "OVERLAP"),
        (Act(**base, src_fp=True, src_type="BF16", dst_type="FP32", src_off=8, dst_off=16,
             src_skip=1), "NONE"),
        # the second operand in place, and shifted by one element
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT8", op="MAX", src_off=100,
             src2_off=16, dst_off=16), "NONE"),
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT8", op="MAX", src_off=100,
             src2_off=17, dst_off=16), "OVERLAP"),
        # ... and after the first operand's check: a COPY ignores src2_off
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT8", op="COPY", src_off=100,
             src2_off=17, dst_off=16), "NONE"),
        # a float ADD cannot also add a bias; op 3 does not exist
        (Act(**base, src_fp=True, src_type="BF16", dst_type="BF16", op="ADD", src_off=100,
             src2_off=200, dst_off=16, bias=True), "OP"),
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT8", op="ADD", src_off=100,
             src2_off=200, dst_off=16, bias=True), "NONE"),
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT8", op="OP3", src_off=100,
             src2_off=200, dst_off=16), "OP"),
        # operand types that do not fit: an activation in PSUM, INT8 read as float
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT8", src_off=100, dst_off=300)
         .__class__(**{**base, "src_psum": True}, src_fp=False, src_type="INT8",
                    dst_type="INT8"), "TYPES"),
        (Act(**base, src_fp=True, src_type="INT8", dst_type="BF16", src_off=100, dst_off=300),
         "TYPES"),
        # a strided operand's span past the end of SBUF
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT8", src_skip=7,
             src_off=cfg.sbuf_bytes - 57, dst_off=0), "NONE"),
        (Act(**base, src_fp=False, src_type="INT8", dst_type="INT8", src_skip=7,
             src_off=cfg.sbuf_bytes - 56, dst_off=0), "SRC_RANGE"),
    ]
    for a, want in cases:
        assert check(cfg, a) == want, a

    _run_cases(dut, cases)
