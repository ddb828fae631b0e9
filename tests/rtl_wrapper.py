"""The pytest side of a Verilator testbench run: one parametrised test per
(configuration, cocotb test) pair, so the test_rtl_*.py wrappers state only what
differs between them (top, testbench module, cases)."""

import pytest

from sim.flow.runner import case_ids, run_rtl_test


def rtl_test(top, module, cases):
    """A pytest test (marked ``rtl``) that runs each ``(config, testcase)`` of
    ``cases`` (from :func:`sim.flow.runner.rtl_cases`) on top ``top`` with the cocotb
    module ``module``; ids are :func:`sim.flow.runner.case_ids`. Assign it to a
    ``test_*`` name: pytest names the test after that attribute."""
    @pytest.mark.rtl
    @pytest.mark.parametrize("config,testcase", cases, ids=case_ids(cases))
    def test(config, testcase):
        run_rtl_test(top, module, testcase, config)
    return test
