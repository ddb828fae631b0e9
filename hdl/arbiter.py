"""A round-robin arbiter shared by the on-chip memories."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RoundRobin"]


class RoundRobin(wiring.Component):
    """Combinational round-robin grant among ``n`` requesters.

    The grant goes to the first requester after the one granted last (in index order,
    wrapping round), so a requester that keeps asking is served within ``n`` grants
    whatever the others do: nobody starves. The priority moves only when the grant is
    used (``i_advance``), so a grant that is not taken (for example because the
    memory stalled) is offered again to the same requester.

    Parameters
    ----------
    n : int
        Number of requesters, at least 1.

    Members
    -------
    i_req : In(n)
        Request bits.
    o_grant : Out(n)
        One-hot grant (all zero when nobody asks).
    i_advance : In(1)
        The grant in ``o_grant`` was used this cycle: the granted requester becomes
        the lowest priority.
    """

    def __init__(self, n):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, not {n!r}")
        self._n = n
        super().__init__({"i_req": In(n), "o_grant": Out(n), "i_advance": In(1)})

    @property
    def n(self):
        return self._n

    def elaborate(self, platform):
        m = Module()
        n = self._n
        if n == 1:
            m.d.comb += self.o_grant.eq(self.i_req)
            return m
        last = Signal(range(n), init=n - 1)
        with m.Switch(last):
            for l in range(n):
                # the last value also takes the unused encodings (none are reachable)
                with (m.Case(l) if l < n - 1 else m.Default()):
                    order = [(l + 1 + i) % n for i in range(n)]
                    with m.If(self.i_req[order[0]]):
                        m.d.comb += self.o_grant[order[0]].eq(1)
                    for j in order[1:]:
                        with m.Elif(self.i_req[j]):
                            m.d.comb += self.o_grant[j].eq(1)
        with m.If(self.i_advance):
            for j in range(n):
                with m.If(self.o_grant[j]):
                    m.d.sync += last.eq(j)
        return m
