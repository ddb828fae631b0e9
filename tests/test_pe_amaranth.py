"""The PE alone in Amaranth's simulator: weight buffers, token addressing, pipeline."""

import numpy as np
from amaranth.sim import Simulator

from hdl.config import PE_LATENCY
from hdl.pe import PE


def tok(col, buf, data, first=False):
    return {"valid": 1, "col": col, "buf": buf, "data": data, "first": first}


NO_TOK = {"valid": 0, "col": 0, "buf": 0, "data": 0, "first": 0}


def run(pe, program):
    """program: list of per-cycle dicts of inputs; returns per-cycle output samples."""
    samples = []

    async def tb(ctx):
        for step in program:
            ctx.set(pe.i_wtok, step.get("wtok", NO_TOK))
            ctx.set(pe.i_x, step.get("x", 0))
            ctx.set(pe.i_sel, step.get("sel", 0))
            ctx.set(pe.i_psum, step.get("psum", 0))
            _, _, psum, x, sel, wt = await ctx.tick().sample(
                pe.o_psum, pe.o_x, pe.o_sel, pe.o_wtok)
            samples.append({"psum": psum, "x": x, "sel": sel, "wtok_valid": wt.valid})

    sim = Simulator(pe)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    return samples


def test_pipeline_and_double_buffer():
    """An operand seen in cycle c meets the partial sum seen in cycle c + L - 1 and
    their sum is on ``o_psum`` in cycle c + L (L = PE_LATENCY), for either buffer."""
    pe = PE(col=2, cols=4)
    rng = np.random.default_rng(11)
    n = 12
    xs = rng.integers(-128, 128, n)
    sels = rng.integers(0, 2, n)
    psums = rng.integers(-2**31, 2**31, n)
    prog = [{"wtok": tok(2, 0, -7)}, {"wtok": tok(2, 1, 100)}] + [{} for _ in range(n + PE_LATENCY + 1)]
    for t in range(n):
        prog[2 + t].update(x=int(xs[t]), sel=int(sels[t]))
        prog[2 + t + PE_LATENCY - 1]["psum"] = int(psums[t])
    out = run(pe, prog)
    w = {0: -7, 1: 100}
    for t in range(n):
        exp = int(psums[t]) + w[int(sels[t])] * int(xs[t])
        exp = ((exp + 2**31) % 2**32) - 2**31
        got = out[2 + t + PE_LATENCY]["psum"]
        assert got == exp, f"t={t}: {got} != {exp}"
        assert out[2 + t + 1]["x"] == xs[t]


def test_token_addressing_and_first_clears():
    """Tokens for other columns pass by; a 'first' token clears the other buffer entries."""
    pe = PE(col=1, cols=4)
    prog = [
        {"wtok": tok(1, 0, 5)},              # ours: w0 = 5
        {"wtok": tok(3, 0, 9)},              # not ours
        {"x": 2, "sel": 0},                  # 5 * 2 = 10
        {"wtok": tok(0, 0, 1, first=True)},  # first token of a new tile, col 0: w0 = 0
        {"x": 2, "sel": 0},                  # 0 * 2
        {"wtok": tok(1, 1, -3, first=False)},
        {"x": 4, "sel": 1},                  # -3 * 4
    ] + [{} for _ in range(PE_LATENCY + 1)]
    out = run(pe, prog)
    L = PE_LATENCY
    assert out[2 + L]["psum"] == 10
    assert out[4 + L]["psum"] == 0
    assert out[6 + L]["psum"] == -12
    # pass-through to the right takes one cycle
    assert out[3]["x"] == 2 and out[7]["sel"] == 1 and out[1]["wtok_valid"] == 1
