"""A shift-and-add multiplier for the once-per-layer set-up products.

A layer needs a few products of its own sizes (``R*S``, ``P*Q``,
``R*S*groups*rows``, ``(C/G)*R*S``) once, at ``start``. A DSP block each
would be wasted, and a combinational multiply would sit in the clock's
critical path; this unit takes one bit of ``b`` per cycle instead
(``len(b)`` cycles at most, fewer when ``b`` is small).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SerialMultiplier"]


class SerialMultiplier(wiring.Component):
    """``product = a * b`` for unsigned operands, one bit of ``b`` per cycle.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths.
    product_max : int
        Largest product the caller will ask for (sets the product's width).

    Attributes
    ----------
    start : In(1)
        Sample ``a`` and ``b`` and begin; ``ready`` drops.
    a, b : In(unsigned)
    product : Out(unsigned)
        Valid while ``ready``.
    ready : Out(1)
        The product is complete (until the next ``start``).
    """

    def __init__(self, a_width: int, b_width: int, product_max: int):
        for name, value in (("a_width", a_width), ("b_width", b_width),
                            ("product_max", product_max)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SerialMultiplier {name} must be a positive integer, "
                                 f"got {value!r}")
        super().__init__({
            "start": In(1),
            "a": In(a_width),
            "b": In(b_width),
            "product": Out(range(product_max + 1)),
            "ready": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        addend = Signal.like(self.product)      # a << bits consumed so far
        bits_left = Signal.like(self.b)         # b, shifted out one bit per cycle
        with m.If(self.start):
            m.d.sync += [self.product.eq(0), addend.eq(self.a), bits_left.eq(self.b),
                         self.ready.eq(0)]
        with m.Elif(bits_left != 0):
            with m.If(bits_left[0]):
                m.d.sync += self.product.eq(self.product + addend)
            m.d.sync += [addend.eq(addend << 1), bits_left.eq(bits_left >> 1)]
        with m.Else():
            m.d.sync += self.ready.eq(1)
        return m
