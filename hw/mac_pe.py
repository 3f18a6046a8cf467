"""Signed multiply-accumulate processing element: the cell of the systolic array.

The array is *weight-stationary*: each PE keeps one weight and, every cycle,
adds ``activation * weight`` to the partial sum flowing down its column while
the activation moves on to the right-hand neighbour::

              wload_in   psum_in
                  |         |
                  v         v
    act_in  --> [ shadow / active weight ] --> act_out
    swap_in -->                            --> swap_out
                  |         |
                  v         v
              wload_out  psum_out = psum_in + product

The multiply and the add are pipelined: the activation is registered next
to the multiplier, ``product = activation * weight`` is registered, copied
into a fabric register beside the adder, and the partial sum arriving
:data:`MacPE.PRODUCT_DELAY` (three) cycles *after* the activation is added
to it. The copy is there because a DSP block may sit far from the fabric
that adds its product (a whole route from the block's output register,
then a carry chain, was the top's critical path). The activation,
active-weight and product registers form a
:class:`~.registered_multiplier.RegisteredMultiplier` (on ECP5 the DSP
block's own input and output registers); only the domain's reset clears
them (a ``flush`` of the engine does not reach into a DSP block), which the
array never needs: every tile starts with a swap, and a product of a stale
activation only meets partial sums nobody collects. Every output
is a register, so neighbours only ever see registered values and no wire
crosses more than one cell.

Weights are double-buffered. A load travels down the column as a
``(data, row, valid)`` beat; the PE whose ``row`` parameter matches copies the
data into its *shadow* register and every PE passes the beat on. The load
chain is never stalled, so the next tile's weights arrive while the current
tile computes. The new tile is announced by ``swap_in = 1`` one cycle *ahead*
of its first activation: the PE copies the shadow weight into the active one
at that edge, so every activation is multiplied by the active register
directly (no multiplexer in front of the multiplier). The activation that
arrives together with the swap flag still belongs to the old tile. Because
the flag travels beside the activations, each PE swaps exactly one cycle
before the first activation of the new tile reaches it: there is no
broadcast swap signal and no bubble between tiles.

The column's "clear" is its top: the first PE of a column receives the
starting partial sum (zero, the bias, or the sum of earlier reduction tiles)
on ``psum_in``, so a PE never needs to clear an internal accumulator.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .registered_multiplier import RegisteredMultiplier

__all__ = ["MacPE", "weight_load_layout"]


def weight_load_layout(config: AccelConfig) -> data.StructLayout:
    """Layout of one weight-load beat travelling down an array column."""
    return data.StructLayout({
        "data": signed(config.weight_width),
        # Width 1 even for a one-row array keeps the port shape uniform.
        "row": max(1, ceil_log2(config.array_rows)),
        "valid": 1,
    })


class MacPE(wiring.Component):
    """Weight-stationary signed MAC cell with double-buffered weight.

    Parameters
    ----------
    config : AccelConfig
        Supplies ``act_width``, ``weight_width`` and ``acc_width``.
    row : int
        Row of this PE in its column; it captures weight-load beats whose
        ``row`` field equals this value.

    Attributes
    ----------
    act_in, act_out : Signal(signed(act_width))
        Activation in from the left, registered copy out to the right.
    swap_in, swap_out : Signal(1)
        "The next activation starts a new weight tile" flag, one cycle ahead
        of that activation.
    psum_in, psum_out : Signal(signed(acc_width))
        Partial sum in from above, ``PRODUCT_DELAY`` cycles after the
        activation it meets; ``psum_in + product`` registered out.
    wload_in, wload_out : View(weight_load_layout(config))
        Weight-load chain; ``wload_out`` is ``wload_in`` delayed by one cycle.
    en : Signal(1), init 1
        Compute enable. While low, the activation, swap flag, product,
        partial sum and active weight hold their values (a stall); the
        weight-load chain keeps running.
    """

    #: Cycles from ``act_in`` to the product the add uses: the activation,
    #: product and product-copy registers.
    PRODUCT_DELAY = 3

    def __init__(self, config: AccelConfig, *, row: int = 0):
        checked_config(config)
        if not isinstance(row, int) or not 0 <= row < config.array_rows:
            raise ValueError(
                f"MacPE row must be an integer in 0..{config.array_rows - 1} "
                f"(array_rows={config.array_rows}), got {row!r}")
        self.config = config
        self.row = row
        act, acc = signed(config.act_width), signed(config.acc_width)
        load = weight_load_layout(config)
        super().__init__({
            "act_in": In(act), "act_out": Out(act),
            "swap_in": In(1), "swap_out": Out(1),
            "psum_in": In(acc), "psum_out": Out(acc),
            "wload_in": In(load), "wload_out": Out(load),
            "en": In(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        # The data registers need no reset (nor an engine flush, which would
        # otherwise fan out to every bit of the array): whether they hold
        # anything of use is decided by the valid and swap flags beside them.
        shadow = Signal(signed(self.config.weight_width), reset_less=True)
        act = Signal.like(self.act_out, reset_less=True)
        psum = Signal.like(self.psum_out, reset_less=True)
        load = Signal.like(self.wload_out, reset_less=True)
        load_valid = Signal()
        m.d.comb += [self.act_out.eq(act), self.psum_out.eq(psum),
                     self.wload_out.eq(load), self.wload_out.valid.eq(load_valid)]
        # The activation's local copy, the active weight and the product are
        # the three registers of a RegisteredMultiplier (a DSP block's own
        # registers on ECP5): the neighbour's register may be placed far
        # away, and no fabric path touches the multiplier.
        m.submodules.multiplier = multiplier = RegisteredMultiplier(
            self.config.act_width, self.config.weight_width)
        swap_local = Signal()
        m.d.comb += [
            multiplier.a.eq(self.act_in), multiplier.a_en.eq(self.en),
            multiplier.b.eq(shadow), multiplier.b_en.eq(self.en & swap_local),
            multiplier.p_en.eq(self.en),
        ]
        product = Signal.like(multiplier.p, reset_less=True)   # the copy beside the adder
        with m.If(self.en):
            m.d.sync += [
                act.eq(self.act_in),
                self.swap_out.eq(self.swap_in),
                swap_local.eq(self.swap_in),
                product.eq(multiplier.p),
                psum.eq(self.psum_in + product),
            ]

        m.d.sync += [load.eq(self.wload_in), load_valid.eq(self.wload_in.valid)]
        with m.If(self.wload_in.valid & (self.wload_in.row == self.row)):
            m.d.sync += shadow.eq(self.wload_in.data)
        return m
