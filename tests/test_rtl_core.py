"""Verilator runs of the whole-core testbench (tb/core: NeuronCore with an AxiRam DRAM),
compared with the instruction-set simulator. ``NCORE_COUNT`` sets the number of random
programs (8 in ``make test``, 32 in ``make regress``), ``NCORE_RESETS`` the resets at
random points of ``test_reset_stress`` (4 and 16)."""

import os

import pytest

from sim.flow.runner import case_ids, rtl_cases, run_rtl_test
from tiers import regress_cases, scaled

MODULE = "tb.core.test_core"
#: register and fault tests: configuration independent beyond CONFIG and n_sems, so
#: run on the default configuration only; the rest compare with the ISS everywhere
HOST_TESTS = ["test_csr", "test_faults"]
CASES = (rtl_cases(MODULE, ["default", "4x4-fp"], exclude=HOST_TESTS)
         + rtl_cases(MODULE, ["default"], only=HOST_TESTS)
         + rtl_cases(MODULE, ["4x4-fp-ftz"], only=["test_csr", "test_random_programs"]))


#: make regress only: the flush-to-zero core (a whole-core model of its own); make test
#: runs flush-to-zero on the array, tensor and vector engines and floats on this core.
REGRESS_ONLY = ("4x4-fp-ftz",)


@pytest.mark.rtl
@pytest.mark.parametrize("config,testcase",
                         regress_cases(CASES, lambda c, t: c in REGRESS_ONLY),
                         ids=case_ids(CASES))
def test_core(config, testcase):
    env = {"NCORE_COUNT": str(scaled(8, 32)), "NCORE_RESETS": str(scaled(4, 16))}
    env.update({k: os.environ[k] for k in ("NCORE_COUNT", "NCORE_RESETS", "NCORE_DUMP")
                if k in os.environ})
    run_rtl_test("neuron_core", MODULE, testcase, config, extra_env=env)


#: tiled GEMMs (sim/compiler/gemm.py) on the RTL, checked against the ISS bit for bit (and
#: NumPy for INT8): shapes that exercise every schedule, partial tiles and primes; a
#: schedule of None is the compiler's cost-based choice (plan_gemm)
GEMM_CASES = {
    "default": [("int8", 24, 20, 19, "resident"), ("int8", 9, 300, 13, "stream"),
                ("int8", 17, 5, 11, "psum"), ("int8", 100, 37, 71, None)],
    "4x4-fp": [("bf16", 13, 7, 9, "resident"), ("fp16", 6, 11, 5, "stream"),
               ("int8", 5, 3, 7, "psum")],
}


@pytest.mark.rtl
@pytest.mark.parametrize("config", list(GEMM_CASES))
def test_gemm_on_core(config):
    import json
    cases = [{"name": f"{d}-{M}x{N}x{K}-{s}", "M": M, "N": N, "K": K, "dtype": d,
              "schedule": s} for d, M, N, K, s in GEMM_CASES[config]]
    run_rtl_test("neuron_core", "tb.core.test_bench", "bench_gemm", config,
                 extra_env={"NCORE_BENCH": json.dumps(cases)})


@pytest.mark.rtl
def test_store_share_on_core():
    """``bench_store_share`` (``make bench``'s DMA-out-under-load figures) on the small
    float core: stores interleaved with INT8 and BF16 matmuls reading SBUF, checked
    against the ISS byte for byte."""
    run_rtl_test("neuron_core", "tb.core.test_bench", "bench_store_share", "4x4-fp")
