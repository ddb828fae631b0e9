"""README commands that no other test runs, in ``make regress`` only (each takes
minutes): ``make lint`` on the largest configuration it covers, and ``make demo`` on
the Verilator core."""

import subprocess
import sys

import pytest

from tiers import regress


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
def test_make_lint_16x16():
    """``python -m sim.flow.cli lint --config 16x16`` (what ``make lint`` runs for
    16x16): every top lint-clean at 16x16."""
    res = subprocess.run([sys.executable, "-m", "sim.flow.cli", "lint", "--config", "16x16"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert res.stdout.count("lint ok") >= 20, res.stdout


@regress
@pytest.mark.rtl
@pytest.mark.timeout(3600)
def test_make_demo():
    """``make demo``: the digits MLP on the Verilator core, BF16 and INT8, checked by the
    demo itself against onnxruntime and the ISS (exit status 0)."""
    res = subprocess.run([sys.executable, "-m", "sim.compiler.demo"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
