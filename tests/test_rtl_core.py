"""Verilator runs of the whole-core testbench (tb/core: NeuronCore with an AxiRam DRAM),
compared with the instruction-set simulator. ``NCORE_COUNT`` sets the number of random
programs (default 8)."""

import os

import pytest

from sim.runner import run_cocotb

#: tests compared with the ISS on every configuration
ISS_TESTS = ["test_smoke", "test_each_instruction", "test_random_programs"]
#: register and fault tests (configuration independent beyond CONFIG and n_sems)
HOST_TESTS = ["test_csr", "test_faults"]
CASES = ([(c, t) for t in ISS_TESTS for c in ("default", "4x4-fp")]
         + [("default", t) for t in HOST_TESTS]
         + [("4x4-fp-ftz", t) for t in ("test_csr", "test_random_programs")])


@pytest.mark.rtl
@pytest.mark.parametrize("config,testcase", CASES, ids=[f"{t}-{c}" for c, t in CASES])
def test_core(config, testcase):
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    env = {k: os.environ[k] for k in ("NCORE_COUNT", "NCORE_DUMP") if k in os.environ}
    run_cocotb("neuron_core", "tb.core.test_core", testcase, config, extra_env=env,
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")


#: tiled GEMMs (sim/gemm.py) on the RTL, checked against the ISS bit for bit (and
#: NumPy for INT8): shapes that exercise every schedule, partial tiles and primes
GEMM_CASES = {
    "default": [("int8", 24, 20, 19, "resident"), ("int8", 9, 300, 13, "stream"),
                ("int8", 17, 5, 11, "psum")],
    "4x4-fp": [("bf16", 13, 7, 9, "resident"), ("fp16", 6, 11, 5, "stream"),
               ("int8", 5, 3, 7, "psum")],
}


@pytest.mark.rtl
@pytest.mark.parametrize("config", list(GEMM_CASES))
def test_gemm_on_core(config):
    import json
    cases = [{"name": f"{d}-{M}x{N}x{K}-{s}", "M": M, "N": N, "K": K, "dtype": d,
              "schedule": s} for d, M, N, K, s in GEMM_CASES[config]]
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    run_cocotb("neuron_core", "tb.core.test_bench", "bench_gemm", config,
               extra_env={"NCORE_BENCH": json.dumps(cases)},
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
