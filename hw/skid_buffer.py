"""A registered stream stage (register slice with a skid register).

Put between two units, it cuts every combinational path through the
hand-off: ``o.valid`` and ``o.payload`` come from flip-flops, and ``i.ready``
is a flip-flop too, so neither side's logic reaches into the other. It moves
one beat per cycle with no bubble; a beat that arrives while the output is
stalled waits in the skid register.

::

              +--------- skid ---------+
    i ------> |                        v
              +------------------> [ out ] -----> o
    i.ready = skid register empty
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """Two-entry registered stream stage.

    Parameters
    ----------
    shape : shape-like
        The payload shape (a ``data.Layout`` or a width).

    Attributes
    ----------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
        Registered; ``i.ready`` is registered too.
    """

    def __init__(self, shape):
        self.shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        # The payload registers need no reset (the valid flags say what they
        # hold), so a reset or flush of the stage reaches only two bits.
        skid = Signal.like(self.i.payload, reset_less=True)
        out = Signal.like(self.o.payload, reset_less=True)
        skid_full = Signal()
        m.d.comb += [self.i.ready.eq(~skid_full), self.o.payload.eq(out)]
        output_free = ~self.o.valid | self.o.ready
        with m.If(output_free):
            # The output register takes the skid beat first, else the input.
            m.d.sync += [self.o.valid.eq(skid_full | self.i.valid),
                         out.eq(Mux(skid_full, skid, self.i.payload)),
                         skid_full.eq(0)]
        with m.Elif(self.i.valid & ~skid_full):
            m.d.sync += skid_full.eq(1)
        # An empty skid register follows the input every cycle: its wide
        # enable is then `i.ready`, one flip-flop, not the far side's valid
        # and ready through logic.
        with m.If(~skid_full):
            m.d.sync += skid.eq(self.i.payload)
        return m
