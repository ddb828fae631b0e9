"""Helpers the floating-point and DSP unit testbenches share (tb/fp): opening the
bench, streaming a vector set through one simulation, and the bit-exact comparison
with its failure message, so every unit is checked the same way."""

import os
import time

import numpy as np

from tb.common import TB, stream_pipeline


def open_bench(dut, env, default, **tb_kwargs):
    """The :class:`~tb.common.TB` of ``dut``, its seed and generator, and how many
    random vectors to run: ``int(os.environ[env])``, ``default`` when unset (the CI
    runs a million; a short run sets e.g. ``NCORE_FP_VECTORS=1000``)."""
    tb = TB(dut, **tb_kwargs)
    return tb, tb.seed, tb.rng, int(os.environ.get(env, str(default)))


async def stream_all(dut, inputs, output, *, latency, seed):
    """Stream ``inputs`` (``{port: NumPy array}``, one set per cycle) through the
    pipeline and return ``(results as uint64 array, wall seconds)``; fails unless there
    is exactly one result per input (a lost or extra valid is a bug of its own)."""
    n = len(next(iter(inputs.values())))
    t0 = time.perf_counter()
    got = await stream_pipeline(dut, {k: v.tolist() for k, v in inputs.items()}, output,
                                latency=latency)
    wall = time.perf_counter() - t0
    got = np.array(got, dtype=np.uint64)
    assert got.size == n, f"{got.size} results for {n} pairs (seed {seed})"
    return got, wall


def assert_exact(res, exp, *, what, first, seed, digits=None, mask=None):
    """Fail unless ``res == exp`` everywhere (where ``mask`` is true, if given). The
    message counts the mismatches (``what`` is a format string with ``{n}``) and shows
    the first: ``first(i)`` describes its operands, got/expected in hex (``digits``
    wide when given) and the seed that reproduces it."""
    diff = res != exp
    bad = np.nonzero(diff if mask is None else mask & diff)[0]
    if bad.size:
        i = bad[0]
        spec = f"#0{digits + 2}x" if digits else "#x"
        raise AssertionError(
            f"{what.format(n=bad.size)}; first {first(i)}: got {int(res[i]):{spec}}, "
            f"expected {int(exp[i]):{spec}} (seed {seed})")
