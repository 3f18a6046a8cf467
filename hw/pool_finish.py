"""The last step of pooling: a window's max, or its rounded average.

Input: the per-lane results of one window's fold (the maximum, or the sum of
its ``n = K*K`` taps), one window at a time. Output: the pooled beat, as a
valid pulse for the pooling unit's output FIFO. The average is
``floor((2 * sum + n) / (2 * n))`` (round half up, as ``golden.pool2d``):

* ``n`` a power of two (``K`` = 1, 2, 4, 8): ``(sum + n/2) >> log2(n)`` in
  every lane at once, one cycle;
* otherwise a multiply by a reciprocal (:func:`average_divider`), exact for
  every possible sum, done by **one** multiplier shared by the lanes, one
  lane per cycle: ``lanes + 3`` cycles per window. A window of ``n`` taps
  takes ``n`` cycles to fold, so with ``lanes <= n`` (8 lanes and ``K = 3``:
  9 taps) the divider keeps up; ``slow`` tells the pooling unit when it
  cannot, and ``busy`` while it is working.

Max windows pass through in one cycle.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .registered_multiplier import RegisteredMultiplier

__all__ = ["PoolFinish", "average_divider", "pool_sum_shape"]


def average_divider(config: AccelConfig):
    """Constants of the exact rounded division by ``K*K``.

    Returns ``(shift, offset, table)``: for a window sum ``s`` of ``n = K*K``
    activations, ``floor((2s + n) / 2n) == ((2s + n + 2n*offset) * M_n >> shift) - offset``
    with ``M_n = table[K]``; ``offset`` makes the dividend non-negative and
    ``shift`` is large enough for the multiply to be exact over the range.
    """
    offset = 1 << (config.act_width - 1)            # |s| <= n * offset
    largest = max(k * k for k in range(1, config.max_pool_kernel + 1))
    dividend_max = 2 * largest * (config.act_max + 1 + offset)
    shift = dividend_max.bit_length() + (2 * largest).bit_length() + 1
    table = {k: -(-(1 << shift) // (2 * k * k)) for k in range(1, config.max_pool_kernel + 1)}
    return shift, offset, table


def pool_sum_shape(config: AccelConfig):
    """Signed shape of a window's sum of up to ``max_pool_kernel**2`` activations."""
    return signed(config.act_width + ceil_log2(config.max_pool_kernel ** 2) + 1)


def _power_of_two(n: int) -> bool:
    return n & (n - 1) == 0


class PoolFinish(wiring.Component):
    """Max pass-through and rounded average of one window per ``valid`` pulse.

    Parameters
    ----------
    config : AccelConfig
        ``array_cols`` lanes, ``act_width`` and ``max_pool_kernel``.

    Attributes
    ----------
    kernel : In(unsigned)
        ``K`` of the layer (stable while windows arrive).
    average : In(1)
        Average (else max) pooling, same rule.
    valid, last : In(1)
        A window's fold results are on ``sums`` (``last``: the frame's final one).
    sums : In(ArrayLayout(pool_sum_shape(config), lanes))
        The fold's results: the max, or the sum plus ``round_bias``.
    round_bias : Out(unsigned)
        What an average's fold adds to its sum: ``K*K / 2`` for an average
        over a power of two (the rounding term, so the finish only shifts),
        else 0. A register, from ``kernel`` and ``average``.
    out_valid, out_last : Out(1)
    out_data : Out(ArrayLayout(signed(act_width), lanes))
    busy : Out(1)
        The shared divider holds a window.
    slow : Out(1)
        ``lanes > K*K`` with a shared division: windows must wait for ``busy``.
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        self.lanes = config.array_cols
        super().__init__({
            "kernel": In(range(config.max_pool_kernel + 1)),
            "average": In(1),
            "valid": In(1),
            "last": In(1),
            "sums": In(data.ArrayLayout(pool_sum_shape(config), self.lanes)),
            "round_bias": Out(range(config.max_pool_kernel ** 2 // 2 + 1)),
            "out_valid": Out(1),
            "out_last": Out(1),
            "out_data": Out(data.ArrayLayout(signed(config.act_width), self.lanes)),
            "busy": Out(1),
            "slow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lanes = self.config, self.lanes
        shift, offset, table = average_divider(cfg)

        # Per-kernel constants, registered (the kernel is stable for a layer).
        divide = Signal()                                # n is not a power of two
        fast_shift = Signal(range(2 * ceil_log2(cfg.max_pool_kernel) + 1))  # log2(n), max: 0
        n = Signal(range(cfg.max_pool_kernel ** 2 + 1))
        # Only kernels whose K*K is not a power of two use the divider: the
        # reciprocal is as wide as theirs (one DSP block for 8-bit data).
        divided = {k: value for k, value in table.items() if not _power_of_two(k * k)}
        reciprocal = Signal(range(max(divided.values(), default=0) + 1))
        with m.Switch(self.kernel):
            for k, value in table.items():
                with m.Case(k):
                    fast = self.average & _power_of_two(k * k)
                    m.d.sync += [n.eq(k * k), reciprocal.eq(divided.get(k, 0)),
                                 divide.eq(self.average & ~_power_of_two(k * k)),
                                 fast_shift.eq(Mux(fast, (k * k).bit_length() - 1, 0)),
                                 self.round_bias.eq(Mux(fast, (k * k) >> 1, 0)),
                                 self.slow.eq(self.average & ~_power_of_two(k * k)
                                              & (lanes > k * k))]

        # Max, and averages over a power of two: every lane in one cycle. The
        # sums arrive with round_bias (n / 2) in them, so the average is a
        # shift (by 0 for the max).
        with m.If(self.valid & ~divide):
            m.d.sync += self.out_last.eq(self.last)
            for lane in range(lanes):
                m.d.sync += self.out_data[lane].eq(self.sums[lane] >> fast_shift)
        m.d.sync += self.out_valid.eq(self.valid & ~divide)

        self._shared_divider(m, divide, n, reciprocal, shift, offset)
        return m

    def _shared_divider(self, m, divide, n, reciprocal, shift, offset):
        """Dividends banked per lane, then one multiply per cycle, lane after lane."""
        cfg, lanes = self.config, self.lanes
        dividend_shape = range(2 * (cfg.max_pool_kernel ** 2) * (cfg.act_max + 1 + offset) + 1)
        # Dividends and products are data (not reset): `reading` and the
        # valid flags beside them say what they hold.
        bank = Signal(data.ArrayLayout(dividend_shape, lanes), reset_less=True)
        bank_last = Signal()
        lane = Signal(range(lanes + 1))                  # next lane to read
        reading = Signal()
        m.d.comb += self.busy.eq(reading)
        with m.If(self.valid & divide):
            m.d.sync += [reading.eq(1), lane.eq(0), bank_last.eq(self.last)]
            for index in range(lanes):
                m.d.sync += bank[index].eq(2 * self.sums[index] + n + 2 * offset * n)
        with m.Elif(reading):
            with m.If(lane == lanes - 1):
                m.d.sync += reading.eq(0)
            m.d.sync += lane.eq(lane + 1)

        # Three stages: pick the lane (into the multiplier's operand
        # register), multiply (its product register: both inside the DSP
        # block, so no fabric path crosses the multiplier), scale and store.
        dividend_bits = len(Signal(dividend_shape))
        multiply = RegisteredMultiplier(dividend_bits + 1, len(reciprocal) + 1)
        m.submodules.multiply = multiply
        m.d.comb += [multiply.a.eq(bank[lane]), multiply.b.eq(reciprocal)]
        product = multiply.p
        picked_lane = Signal.like(lane)
        picked_valid, picked_last = Signal(), Signal()
        m.d.sync += [picked_lane.eq(lane), picked_valid.eq(reading), picked_last.eq(bank_last)]
        product_lane = Signal.like(lane)
        product_valid, product_last = Signal(), Signal()
        m.d.sync += [product_lane.eq(picked_lane),
                     product_valid.eq(picked_valid), product_last.eq(picked_last)]
        with m.If(product_valid):
            for index in range(lanes):
                with m.If(product_lane == index):
                    m.d.sync += self.out_data[index].eq((product >> shift) - offset)
            with m.If(product_lane == lanes - 1):
                m.d.sync += [self.out_valid.eq(1), self.out_last.eq(product_last)]
