"""The two tiers of the suite (README "Tests"): ``make test`` (what CI runs) and
``make regress`` (everything in ``make test`` and more).

* A test or case marked ``regress`` runs only in ``make regress`` (``make test`` runs
  ``pytest -m "not regress"``). Mark a case only when ``make test`` still covers its
  block, its configuration class (INT8-only, floats, flush-to-zero, non-square) and
  its feature some other way; say which in a comment.
* :func:`scaled` picks a sweep's size: ``make regress`` sets ``NCORE_TIER=regress``
  and the sweeps grow (more vectors, programs, seeds).
"""

import os

import pytest

__all__ = ["REGRESS", "regress", "scaled", "regress_cases"]

#: True in ``make regress`` (``NCORE_TIER=regress``).
REGRESS = os.environ.get("NCORE_TIER", "") == "regress"

#: The mark of a test or case that runs only in ``make regress``.
regress = pytest.mark.regress


def scaled(test_value, regress_value):
    """``regress_value`` in ``make regress``, else ``test_value``."""
    return regress_value if REGRESS else test_value


def regress_cases(cases, in_regress):
    """``cases`` (tuples of parameters) as ``pytest.param``\\ s, those for which
    ``in_regress(*case)`` is true marked :data:`regress`."""
    return [pytest.param(*c, marks=[regress] if in_regress(*c) else []) for c in cases]
