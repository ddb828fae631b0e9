# amaranth: UnusedElaboratable=no
"""Helpers the Amaranth-simulator tests share: running testbenches on a clocked
simulation, streaming operand pairs through a fixed-latency unit, and checking the
exact text of a constructor's error (so a message that drifts fails a test)."""

import contextlib

import pytest
from amaranth.sim import Simulator


def simulate(dut, tb, *background):
    """Run testbench ``tb`` on ``dut`` with a 100 MHz clock until it returns; the
    ``background`` testbenches (bus responders, monitors) run beside it and do not
    keep the simulation alive."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    for bg in background:
        sim.add_testbench(bg, background=True)
    sim.run()


def run_pipeline(dut, pairs, output, fixed=None):
    """Feed ``(i_a, i_b)`` pairs into a fixed-latency unit (``dut.LATENCY``), one per
    cycle (plus any ``fixed`` inputs held constant); return ``output`` for every cycle
    ``o_valid`` is high, in order."""
    out = []

    async def tb(ctx):
        for name, value in (fixed or {}).items():
            ctx.set(getattr(dut, name), value)
        n = len(pairs)
        for t in range(n + dut.LATENCY + 1):
            if t < n:
                ctx.set(dut.i_a, int(pairs[t][0]))
                ctx.set(dut.i_b, int(pairs[t][1]))
            ctx.set(dut.i_valid, t < n)
            _, _, r, v = await ctx.tick().sample(getattr(dut, output), dut.o_valid)
            if v:
                out.append(r)

    simulate(dut, tb)
    return out


@contextlib.contextmanager
def raises_exactly(exc_type, message):
    """Like ``pytest.raises(exc_type)``, and the exception's text must be ``message``
    word for word."""
    with pytest.raises(exc_type) as info:
        yield info
    assert str(info.value) == message


#: ``(kwargs, message)``: the client-count and response-FIFO checks every multi-client
#: memory (SBUF, PSUM) makes in its constructor, with the exact message of each
MEMORY_PARAMETER_ERRORS = [
    ({"n_read": 0}, "n_read must be an integer from 1 to 8, not 0"),
    ({"n_read": 9}, "n_read must be an integer from 1 to 8, not 9"),
    ({"n_read": True}, "n_read must be an integer from 1 to 8, not True"),
    ({"n_read": False}, "n_read must be an integer from 1 to 8, not False"),
    ({"n_read": "2"}, "n_read must be an integer from 1 to 8, not '2'"),
    ({"n_write": 0}, "n_write must be an integer from 1 to 8, not 0"),
    ({"n_write": 9}, "n_write must be an integer from 1 to 8, not 9"),
    ({"n_write": 2.0}, "n_write must be an integer from 1 to 8, not 2.0"),
    ({"resp_depth": 1}, "resp_depth must be an integer from 3 to 64, not 1"),
    ({"resp_depth": 65}, "resp_depth must be an integer from 3 to 64, not 65"),
]


def memory_parameter_tests(cls, config):
    """The constructor checks of a multi-client memory ``cls`` (SBUF, PSUM) built on
    ``config``, as two pytest tests: every case of :data:`MEMORY_PARAMETER_ERRORS`
    and a config that is not a ``CoreConfig``. Assign them to
    ``test_parameter_errors, test_config_type_error`` (pytest names a test after the
    attribute)."""
    @pytest.mark.parametrize("kwargs,message", MEMORY_PARAMETER_ERRORS)
    def test_parameter_errors(kwargs, message):
        with raises_exactly(ValueError, message):
            cls(config, **kwargs)

    def test_config_type_error():
        with raises_exactly(TypeError, "config must be a CoreConfig, not 'x'"):
            cls("x")

    return test_parameter_errors, test_config_type_error


async def client_cycle(ctx, writers, rclients, rready, extra=()):
    """End one cycle of a multi-client memory test (SBUF, PSUM): set each read
    client's response ``ready`` from ``rready``, tick, and return what was sampled at
    the edge: ``(wready, qready, ovalid, opayload, extras)``, one entry per write
    client, read client, read client, read client and ``extra`` signal. ``writers``
    are write-request streams, ``rclients`` ``(request, response)`` stream pairs."""
    for (_, o), r in zip(rclients, rready):
        ctx.set(o.ready, r)
    sigs = ([w.ready for w in writers] + [q.ready for q, _ in rclients]
            + [o.valid for _, o in rclients] + [o.payload.as_value() for _, o in rclients]
            + list(extra))
    vals = (await ctx.tick().sample(*sigs))[2:]
    nw, nr = len(writers), len(rclients)
    return (vals[:nw], vals[nw:nw + nr], vals[nw + nr:nw + 2 * nr],
            vals[nw + 2 * nr:nw + 3 * nr], vals[nw + 3 * nr:])


def release_clients(ctx, writers, rclients):
    """Drop every request ``valid`` and response ``ready`` of a multi-client memory's
    clients: the idle state a driver leaves behind when it is done."""
    for w in writers:
        ctx.set(w.valid, 0)
    for q, o in rclients:
        ctx.set(q.valid, 0)
        ctx.set(o.ready, 0)


async def wait_for(ctx, signal, *also, limit=20_000):
    """Tick until ``signal`` is high at a clock edge; return the values of ``also``
    sampled at that edge. An ``AssertionError`` after ``limit`` cycles: the watchdog
    of a testbench waiting on a handshake that never comes."""
    for _ in range(limit):
        _, _, value, *rest = await ctx.tick().sample(signal, *also)
        if value:
            return rest
    raise AssertionError(f"watchdog: {signal.name} still low after {limit} cycles")
