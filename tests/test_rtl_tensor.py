"""Verilator runs of the tensor-subsystem testbenches (tb/tensor): every cocotb test of
``tb.tensor.test_tensor`` on each configuration."""

from rtl_wrapper import rtl_test
from sim.flow.runner import rtl_cases

MODULE = "tb.tensor.test_tensor"
CASES = (rtl_cases(MODULE, ["4x4", "8x8", "8x4"])
         # the float build: everything but the INT8 throughput measurement
         + rtl_cases(MODULE, ["4x4-fp"], exclude=["test_throughput"])
         # flush-to-zero units: the array and PSUM's accumulating adders
         + rtl_cases(MODULE, ["4x4-fp-ftz"], only=["test_random_sequences",
                                                   "test_accumulate_hazards"]))

test_tensor = rtl_test("tensor_subsystem", MODULE, CASES)
