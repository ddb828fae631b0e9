"""sim.flow.synth.synthesise checks its arguments before running any tool."""

import pytest

from sim.flow.synth import DEVICES, synthesise


@pytest.mark.parametrize("kwargs, message", [
    (dict(top="no_such_top"), "no synthesis wrapper"),
    (dict(device="lfe5u-12f"), "unknown device"),
    (dict(seed=-1), "seed must be a non-negative integer"),
    (dict(timing_weight=0), "timing_weight must be a positive integer"),
    (dict(crit_exp=2.5), "crit_exp must be a positive integer"),
    (dict(crit_exp=True), "crit_exp must be a positive integer"),
])
def test_bad_arguments_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthesise(**kwargs, log=lambda *_: None)


def test_speed_grades_share_die_and_package():
    base = DEVICES["lfe5u-85f"]
    for grade in ("7", "8"):
        args = DEVICES[f"lfe5u-85f-{grade}"]
        assert args[:-1] == base[:-1] and args[-1] == grade
