"""A top-level input port's registered stage, open only while a layer runs.

Like :class:`~convaccel.hw.skid_buffer.SkidBuffer` (``o.valid`` and
``o.payload`` from flip-flops, a skid register, one beat per cycle), with
one difference: ``i.ready`` is itself a single flip-flop, also when the
port takes beats only while it is open. The caller gives ``open_next``,
whether the port is open in the *next* cycle, and the stage registers
``ready = skid empty and open`` for that cycle, so the port's ``tready``
leaves the chip from a flip-flop and the port's ``tvalid`` meets only one
gate before the stage's registers.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["InputPortStage"]


class InputPortStage(wiring.Component):
    """Two-entry registered stream stage whose ``i.ready`` is one flip-flop.

    Parameters
    ----------
    shape : shape-like
        The payload shape.

    Attributes
    ----------
    i : In(stream.Signature(shape))
        ``i.ready`` is a register: the skid register is empty and the port
        is open in this cycle. It is 0 in the cycle after a reset.
    o : Out(stream.Signature(shape))
        Registered.
    open_next : In(1)
        The port takes beats in the next cycle (if the stage has room).
    """

    def __init__(self, shape):
        self.shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "open_next": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        skid = Signal.like(self.i.payload, reset_less=True)
        out = Signal.like(self.o.payload, reset_less=True)
        skid_full = Signal()
        skid_full_next = Signal()
        ready = Signal()
        # ready implies an empty skid register, so a taken beat always fits.
        take = self.i.valid & ready
        m.d.comb += [self.i.ready.eq(ready), self.o.payload.eq(out)]
        output_free = ~self.o.valid | self.o.ready
        with m.If(output_free):
            # The output register takes the skid beat first, else the input.
            m.d.sync += [self.o.valid.eq(skid_full | take),
                         out.eq(Mux(skid_full, skid, self.i.payload))]
            m.d.comb += skid_full_next.eq(0)
        with m.Elif(take):
            m.d.comb += skid_full_next.eq(1)
        with m.Else():
            m.d.comb += skid_full_next.eq(skid_full)
        # An empty skid register follows the port every cycle (its enable is
        # one flip-flop); it holds once a beat has landed in it.
        with m.If(~skid_full):
            m.d.sync += skid.eq(self.i.payload)
        m.d.sync += [skid_full.eq(skid_full_next),
                     ready.eq(~skid_full_next & self.open_next)]
        return m
