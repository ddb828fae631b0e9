"""The on-chip memory subsystem: SBUF and PSUM behind their clients' arbiters.

One block holds both memories so that :class:`~hdl.core.Core` and every engine test
top (:mod:`hdl.tops.harness`) build the same thing: the core gives each engine its
clients, a test top gives the engine under test the first clients and the testbench
the rest. Both memories arbitrate their clients round-robin (``docs/memory.md``), so
a client's index decides only its place in the rotation.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import CoreConfig, check_config
from .interfaces import ConfigComponent, psum_read_client, psum_write_client, sbuf_read_client, sbuf_write_client
from .psum import PSUM
from .sbuf import SBUF

__all__ = ["MemorySubsystem"]


class MemorySubsystem(ConfigComponent):
    """SBUF and PSUM with a given number of read and write clients each.

    Parameters
    ----------
    config : CoreConfig
    sbuf_read, sbuf_write, psum_read, psum_write : int
        Number of clients of each kind, 1 to 8 (checked by :class:`~hdl.sbuf.SBUF` and
        :class:`~hdl.psum.PSUM`).

    Members
    -------
    sbuf_rd : In(sbuf_read_client(config)).array(sbuf_read)
    sbuf_wr : In(sbuf_write_client(config)).array(sbuf_write)
    psum_rd : In(psum_read_client(config)).array(psum_read)
    psum_wr : In(psum_write_client(config)).array(psum_write)
    o_busy : Out(1)
        PSUM has an accepted operation that has not finished (SBUF never needs to be
        waited for: a write is visible to every read granted after it).
    """

    def __init__(self, config: CoreConfig, *, sbuf_read, sbuf_write, psum_read, psum_write):
        check_config(config)
        # Built here so that bad client counts fail at construction, with the
        # memories' own messages.
        self._sbuf = SBUF(config, n_read=sbuf_read, n_write=sbuf_write)
        self._psum = PSUM(config, n_read=psum_read, n_write=psum_write)
        super().__init__(config, {
            "sbuf_rd": In(sbuf_read_client(config)).array(sbuf_read),
            "sbuf_wr": In(sbuf_write_client(config)).array(sbuf_write),
            "psum_rd": In(psum_read_client(config)).array(psum_read),
            "psum_wr": In(psum_write_client(config)).array(psum_write),
            "o_busy": Out(1),
        })

    @property
    def sbuf(self):
        """The :class:`~hdl.sbuf.SBUF` (its ``banks`` hold the initial contents)."""
        return self._sbuf

    @property
    def psum(self):
        """The :class:`~hdl.psum.PSUM`."""
        return self._psum

    def elaborate(self, platform):
        m = Module()
        sbuf = m.submodules.sbuf = self._sbuf
        psum = m.submodules.psum = self._psum
        for mine, theirs in ((self.sbuf_rd, sbuf.rd), (self.sbuf_wr, sbuf.wr),
                             (self.psum_rd, psum.rd), (self.psum_wr, psum.wr)):
            for outer, inner in zip(mine, theirs):
                wiring.connect(m, wiring.flipped(outer), inner)
        m.d.comb += self.o_busy.eq(psum.o_busy)
        return m
