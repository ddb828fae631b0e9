"""The RTL wrappers' test lists (sim.flow.runner.cocotb_tests / rtl_cases) without a
simulator: the names come from the testbench modules, subsets are checked."""

import pytest

from sim.flow.runner import case_ids, cocotb_tests, rtl_cases


def test_cocotb_tests_in_file_order():
    # test_load_sweep carries @cocotb.parametrize under @cocotb.test
    assert cocotb_tests("tb.dma.test_dma") == [
        "test_load_sweep", "test_store_sweep", "test_random_mixed", "test_refused_descriptors",
        "test_bus_errors", "test_reset_mid_transfer", "test_bandwidth"]


def test_helpers_are_not_tests():
    # check_adder is an undecorated coroutine beside the two tests
    assert cocotb_tests("tb.fp.test_fp32_adder") == ["test_fp32_adder", "test_fp32_adder_ftz"]


def test_rtl_cases_only_and_exclude():
    cases = rtl_cases("tb.fp.test_fp32_adder", ["a", "b"])
    assert case_ids(cases) == ["test_fp32_adder-a", "test_fp32_adder-b",
                               "test_fp32_adder_ftz-a", "test_fp32_adder_ftz-b"]
    assert rtl_cases("tb.fp.test_fp32_adder", ["a"], only=["test_fp32_adder_ftz"]) == [
        ("a", "test_fp32_adder_ftz")]
    assert rtl_cases("tb.fp.test_fp32_adder", ["a"], exclude=["test_fp32_adder_ftz"]) == [
        ("a", "test_fp32_adder")]


def test_rtl_cases_unknown_name():
    with pytest.raises(ValueError, match=r"has no cocotb tests \['test_fp32_adder_typo'\]"):
        rtl_cases("tb.fp.test_fp32_adder", ["a"], only=["test_fp32_adder_typo"])
