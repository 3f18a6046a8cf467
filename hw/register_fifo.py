"""A small FIFO of flip-flops whose output ``ready`` drives only its pointers.

A :class:`~convaccel.hw.skid_buffer.SkidBuffer` registers the payload at its
output, so the consumer's ``ready`` enables every payload flip-flop of the
stage. When that ``ready`` is itself the end of a decision (the engine's
``act.ready`` is an AND of a dozen step facts), the decision then drives the
enable pins of a hundred flip-flops: a slow, high-fanout net. Here the
entries are written only from the input side, and ``o.ready`` moves a read
pointer and a fill count (a few flip-flops); the output payload is the entry
the read pointer selects, one multiplexer level after flip-flops.
::

    i --> [ entry 0 ] --+
    i --> [ entry 1 ] --+--> mux(read pointer) --> o
    i.ready = not full (a register), o.valid = not empty (a register)
"""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterFIFO"]


class RegisterFIFO(wiring.Component):
    """Stream FIFO of ``depth`` registers; ``o.ready`` reaches no payload bit.

    Moves one beat per cycle with no bubble: a beat can enter and another
    leave in the same cycle. When it is full the input waits a cycle even if
    a beat leaves (its ``ready`` is the registered "not full").

    Parameters
    ----------
    shape : shape-like
        The payload shape (a ``data.Layout`` or a width).
    depth : int
        Entries (at least 2: one to read while the next is written).

    Attributes
    ----------
    i : In(stream.Signature(shape))
        ``i.ready`` is a flip-flop.
    o : Out(stream.Signature(shape))
        ``o.valid`` is a flip-flop; ``o.payload`` is a multiplexer of
        flip-flops selected by a flip-flop.
    """

    def __init__(self, shape, depth: int = 2):
        if not isinstance(depth, int) or depth < 2:
            raise ValueError(f"RegisterFIFO depth must be an integer >= 2, got {depth!r}")
        self.shape, self.depth = shape, depth
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.depth
        # The entries need no reset: the fill count says which ones hold beats.
        entries = Array(Signal.like(self.i.payload, reset_less=True, name=f"entry{k}")
                        for k in range(depth))
        write_at = Signal(range(depth))
        read_at = Signal(range(depth))
        level = Signal(range(depth + 1))
        full = Signal()
        m.d.comb += [self.i.ready.eq(~full), self.o.payload.eq(entries[read_at])]

        push = self.i.valid & ~full
        pop = self.o.valid & self.o.ready
        with m.If(push):
            m.d.sync += [entries[write_at].eq(self.i.payload),
                         write_at.eq(_next_place(write_at, depth))]
        with m.If(pop):
            m.d.sync += read_at.eq(_next_place(read_at, depth))
        # `full` and `o.valid` are registers kept beside the count, so both
        # ports see flip-flops.
        with m.If(push & ~pop):
            m.d.sync += [level.eq(level + 1), full.eq(level == depth - 1), self.o.valid.eq(1)]
        with m.Elif(pop & ~push):
            m.d.sync += [level.eq(level - 1), full.eq(0), self.o.valid.eq(level != 1)]
        return m


def _next_place(pointer, depth):
    """The pointer after ``pointer`` in a ring of ``depth`` places."""
    if depth & (depth - 1) == 0:
        return pointer + 1          # wraps by itself at a power of two
    return Mux(pointer == depth - 1, 0, pointer + 1)
