"""Verilator runs of the vector-engine testbenches (tb/vector): every cocotb test of
``tb.vector.test_vector`` on each configuration."""

from rtl_wrapper import rtl_test
from sim.flow.runner import rtl_cases

MODULE = "tb.vector.test_vector"
CASES = (rtl_cases(MODULE, ["4x4-fp", "8x4"])
         # flush-to-zero bias adders: only the tests that add floats
         + rtl_cases(MODULE, ["4x4-fp-ftz"], only=["test_random_commands",
                                                   "test_casts_and_relu"]))

test_vector = rtl_test("vector_subsystem", MODULE, CASES)
