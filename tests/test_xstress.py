"""X and reset stress (``make regress`` only; issue 21).

Each block's random testbench runs on its X-stress model (``sim.flow.runner.build``
with ``xrand``): every register starts from a random value instead of its power-up
value until the reset writes it, and every X Verilator meets is a random value
(``--x-assign unique --x-initial unique``, ``+verilator+rand+reset+2``), under
several ``+verilator+seed`` values. A register that the design reads before its
reset, or a ``reset_less`` one whose start matters, makes the result depend on the
seed. The whole core also runs its reset stress (SOFT_RESET and the reset pin at random
points of random programs, ``tb/core/test_core.py::test_reset_stress``) on that
model. ``make test`` runs the same testbenches on the normal models, and the reset
stress with 4 resets.

Figures (seeds run, failures found): ``docs/verification.md``.
"""

import os

import pytest

from sim.flow.runner import run_cocotb
from tiers import regress

#: (top, testbench module, test, configuration, extra environment)
CASES = [
    ("systolic_array", "tb.systolic.test_systolic", "test_random_backpressure", "4x4-fp", {}),
    ("tensor_subsystem", "tb.tensor.test_tensor", "test_random_sequences", "4x4-fp", {}),
    ("vector_subsystem", "tb.vector.test_vector", "test_random_commands", "4x4-fp", {}),
    ("dma_subsystem", "tb.dma.test_dma", "test_random_mixed", "4x4", {}),
    ("host_interface", "tb.host.test_host", "test_read_write", "default", {}),
    ("neuron_core", "tb.core.test_core", "test_random_programs", "default",
     {"NCORE_COUNT": "4"}),
    ("neuron_core", "tb.core.test_core", "test_reset_stress", "default",
     {"NCORE_RESETS": "8"}),
]
#: X seeds per case (``NCORE_XSEEDS`` overrides the count)
SEEDS = range(1, 1 + int(os.environ.get("NCORE_XSEEDS", "3")))


@regress
@pytest.mark.rtl
@pytest.mark.parametrize("xseed", SEEDS)
@pytest.mark.parametrize("top,module,test,config,env", CASES,
                         ids=[f"{c[2]}-{c[3]}" for c in CASES])
def test_xstress(top, module, test, config, env, xseed):
    run_cocotb(top, module, test, config, extra_env=env, xrand_seed=xseed,
               rerun=f".venv/bin/python -m pytest 'tests/test_xstress.py' -k '{test} and "
                     f"{config} and {xseed}'")
