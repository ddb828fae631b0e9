"""The RTL wrappers' test lists (sim.flow.runner.cocotb_tests / rtl_cases) without a
simulator: the names come from the testbench modules, subsets are checked."""

import pytest

from sim.flow.runner import case_ids, cocotb_tests, rtl_cases


def test_cocotb_tests_in_file_order():
    # test_load_sweep carries @cocotb.parametrize under @cocotb.test; the expected order
    # is read from the source text (every `async def test_*` there is a cocotb test)
    import pathlib
    import re
    src = (pathlib.Path(__file__).resolve().parent.parent / "tb" / "dma" / "test_dma.py").read_text()
    want = re.findall(r"^async def (test_\w+)\(", src, re.M)
    assert len(want) >= 7 and want[:3] == ["test_load_sweep", "test_store_sweep", "test_random_mixed"]
    assert cocotb_tests("tb.dma.test_dma") == want


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
