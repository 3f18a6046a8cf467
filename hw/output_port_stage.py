"""A top-level output port's registered stage that can stop offering new beats.

Like :class:`~convaccel.hw.skid_buffer.SkidBuffer` (``o.valid`` and
``o.payload`` from flip-flops, ``i.ready`` from the skid register, one beat
per cycle), plus ``hold``: while it is set the stage takes no new beat and
its output register is not refilled, so a beat already offered is still
offered until it is taken (a stream never withdraws a beat) and, once
taken, nothing follows it. The core holds the output stage while it ends a
failed or cancelled layer: once no beat is left waiting, the stage can be
reset without the port ever seeing a beat disappear.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["OutputPortStage"]


class OutputPortStage(wiring.Component):
    """Two-entry registered stream stage with a ``hold`` input.

    Parameters
    ----------
    shape : shape-like
        The payload shape.

    Attributes
    ----------
    i : In(stream.Signature(shape))
        ``i.ready``: the skid register is empty and ``hold`` is clear.
    o : Out(stream.Signature(shape))
        Registered.
    hold : In(1)
        Take no beat and do not refill ``o`` (a beat on ``o`` stays until taken).
    empty : Out(1)
        No beat in the stage (both registers empty).
    """

    def __init__(self, shape):
        self.shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "hold": In(1),
            "empty": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        skid = Signal.like(self.i.payload, reset_less=True)
        out = Signal.like(self.o.payload, reset_less=True)
        skid_full = Signal()
        m.d.comb += [self.i.ready.eq(~skid_full & ~self.hold), self.o.payload.eq(out),
                     self.empty.eq(~skid_full & ~self.o.valid)]
        take = self.i.valid & self.i.ready
        output_free = ~self.o.valid | self.o.ready
        with m.If(output_free & self.hold):
            m.d.sync += self.o.valid.eq(0)
        with m.Elif(output_free):
            # The output register takes the skid beat first, else the input.
            m.d.sync += [self.o.valid.eq(skid_full | take),
                         out.eq(Mux(skid_full, skid, self.i.payload)),
                         skid_full.eq(0)]
        with m.Elif(take):
            m.d.sync += [skid.eq(self.i.payload), skid_full.eq(1)]
        return m
