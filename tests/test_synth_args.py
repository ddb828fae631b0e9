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
    (dict(placer="sa"), "placer must be 'heap' or 'static'"),
    (dict(density=0), "density must be a number in"),
    (dict(density=1.5), "density must be a number in"),
    (dict(density="0.7"), "density must be a number in"),
    (dict(routers=()), "routers must be a non-empty sequence"),
    (dict(routers=("router3",)), "routers must be a non-empty sequence"),
])
def test_bad_arguments_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthesise(**kwargs, log=lambda *_: None)


def test_speed_grades_share_die_and_package():
    base = DEVICES["lfe5u-85f"]
    for grade in ("7", "8"):
        args = DEVICES[f"lfe5u-85f-{grade}"]
        assert args[:-1] == base[:-1] and args[-1] == grade


def _seg(kind, delay, frm, to, net=None, fport="Q", tport="A"):
    seg = {"type": kind, "delay": delay, "from": {"cell": frm, "port": fport},
           "to": {"cell": to, "port": tport}}
    if net is not None:
        seg["net"] = net
    return seg


def test_critical_path_summary():
    """The summary of a nextpnr critical path: ends, logic vs routing, LUT levels (a
    carry chain entered once counts once) and the signals on the way, with the
    suffixes Yosys adds to mapped cells cut off. The report is written here by hand in
    nextpnr's format, so the expected figures are independent of the code."""
    from sim.flow.synth import critical_paths, describe_path
    lut = "inner.cnt_TRELLIS_FF_Q_3_DI_LUT4_Z"
    cc = "inner.sum_TRELLIS_FF_Q_DI_CCU2C_S0$CCU2_COMB0"
    path = [
        _seg("clk-to-q", 0.5, "inner.cnt_TRELLIS_FF_Q_3", "inner.cnt_TRELLIS_FF_Q_3",
             fport="Q", tport="Q"),
        _seg("routing", 1.25, "inner.cnt_TRELLIS_FF_Q_3", lut, net="inner.cnt[3]"),
        _seg("logic", 0.25, lut, lut, fport="A", tport="F"),
        _seg("routing", 2.0, lut, cc, net="inner.go_LUT4_Z_C[0]", tport="B0"),
        _seg("logic", 0.5, cc, cc, fport="B0", tport="FCO"),
        _seg("routing", 0.0, cc, cc, net="inner.sum_CCU2C_COUT", fport="FCO", tport="FCI"),
        _seg("logic", 0.125, cc, cc, fport="FCI", tport="F"),
        _seg("routing", 1.0, cc, "inner.sum_TRELLIS_FF_Q", net="inner.sum[0]", fport="F",
             tport="DI"),
        _seg("setup", 0.375, "inner.sum_TRELLIS_FF_Q", "inner.sum_TRELLIS_FF_Q", fport="DI",
             tport="DI"),
    ]
    io = [_seg("clk-to-q", 0.5, "sout_TRELLIS_FF_Q", "sout_TRELLIS_FF_Q"),
          _seg("routing", 7.0, "sout_TRELLIS_FF_Q", "sout[1]$tr_io", net="sout[1]")]
    report = {"critical_paths": [
        {"from": "posedge clk", "to": "<async>", "path": io},
        {"from": "posedge clk", "to": "posedge clk", "path": path},
    ]}
    first, second = critical_paths(report)
    assert first["clocks"] == "posedge clk -> posedge clk"      # register paths first
    assert first["from"] == "inner.cnt" and first["to"] == "inner.sum.DI"
    assert first["logic_ns"] == 0.5 + 0.25 + 0.5 + 0.125 + 0.375
    assert first["routing_ns"] == 1.25 + 2.0 + 1.0
    assert first["delay_ns"] == 6.0
    assert first["levels"] == 2                 # the LUT and the carry chain
    assert first["through"] == ["inner.cnt", "inner.go", "inner.sum"]
    assert describe_path(first) == ("6.00 ns (1.75 logic, 4.25 routing = 71%), 2 levels: "
                                    "inner.cnt -> inner.go -> inner.sum -> [inner.sum.DI]")
    assert second["from"] == "sout" and second["levels"] == 0


@pytest.mark.parametrize("n_out", [5, 8, 40, 300])
def test_synth_wrapper_folds_every_output(n_out):
    """The synthesis wrapper feeds the inner component from its shift register and
    XOR-folds every output bit into ``sout`` through registered levels: ``sout`` is,
    at one fixed latency, the fold of the inner outputs (computed here from the
    inner input, independently of the wrapper) for random input streams."""
    import random
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out
    from hdl.tops.synth_wrapper import SynthWrapper
    from tests.amaranth_helpers import simulate

    class Inner(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(9), "y": Out(n_out)})

        def elaborate(self, platform):
            m = Module()
            # each output bit a different function of the input
            m.d.comb += self.y.eq(self.a * 0x9E3779B1 ^ (self.a << 3))
            return m

    inner = Inner()
    dut = SynthWrapper(inner, out_width=8)
    rng = random.Random(n_out)

    def fold(a):
        y = ((a * 0x9E3779B1) ^ (a << 3)) & ((1 << n_out) - 1)
        f = 0
        while y:
            f ^= y & 0xFF
            y >>= 8
        return f

    seen_a, seen_out = [], []

    async def tb(ctx):
        for _ in range(200):
            ctx.set(dut.sin, rng.getrandbits(1))
            seen_a.append(ctx.get(inner.a))
            seen_out.append(ctx.get(dut.sout))
            await ctx.tick()

    simulate(dut, tb)
    lat = [L for L in range(1, 8)
           if all(seen_out[t] == fold(seen_a[t - L]) for t in range(20, 200))]
    assert lat, "sout is not the fold of the inner outputs at any latency up to 7"
