"""A pin-light wrapper that lets any component be synthesised for an FPGA package."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SynthWrapper"]


class SynthWrapper(wiring.Component):
    """Feeds every input of ``inner`` from a shift register and folds every output.

    A top with hundreds of ports does not fit a package, and tying ports to constants
    would let synthesis delete the logic behind them. Here each input bit of ``inner``
    is a flip-flop of one long shift register loaded through ``sin``, so no input is a
    constant, and every output bit is XOR-folded into ``sout``, so every output bit
    (and the logic cone behind it) stays observable. Clock and reset come from the
    wrapper's own domain.

    Each output bit is registered first and the fold is a tree of 4-input XORs with a
    register after each level, so that the wrapper adds no logic to ``inner``'s own
    paths: a timing report then shows the block's paths, not a block output running
    on through a deep XOR tree (before, a combinational output of the DMA engine
    continued through four LUT levels of fold, and that was its reported critical
    path). The price is flip-flops: one per output bit, and about a third as many
    again for the tree; the synthesis figures include them.

    Parameters
    ----------
    inner : wiring.Component
        The component to wrap.
    out_width : int
        Width of the folded output.

    Members
    -------
    sin : In(1)
        Serial input of the input shift register.
    sout : Out(out_width)
        XOR fold of all of ``inner``'s outputs (registered, then folded through
        registered levels).
    """

    def __init__(self, inner, out_width=8):
        if not isinstance(inner, wiring.Component):
            raise TypeError(f"inner must be a wiring.Component, not {inner!r}")
        if not isinstance(out_width, int) or out_width < 1:
            raise ValueError(f"out_width must be a positive integer, not {out_width!r}")
        self._inner = inner
        self._out_width = out_width
        super().__init__({"sin": In(1), "sout": Out(out_width)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self._inner
        ins, outs = [], []
        for path, member, value in inner.signature.flatten(inner):
            (ins if member.flow == wiring.In else outs).append(value)
        all_in = Cat(*ins)
        shreg = Signal(len(all_in))
        m.d.sync += shreg.eq(Cat(self.sin, shreg[:-1]))
        m.d.comb += all_in.eq(shreg)

        all_out = Cat(*outs)
        w = self._out_width
        held = Signal(len(all_out))
        m.d.sync += held.eq(all_out)
        words = [held[i:i + w] for i in range(0, len(held), w)]
        level = 0
        while len(words) > 1:
            folded = []
            for i in range(0, len(words), 4):
                r = Signal(w, name=f"fold{level}_{i // 4}")
                acc = 0
                for word in words[i:i + 4]:
                    acc = acc ^ word
                m.d.sync += r.eq(acc)
                folded.append(r)
            words = folded
            level += 1
        m.d.sync += self.sout.eq(words[0])
        return m
