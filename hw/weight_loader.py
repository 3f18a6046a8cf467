"""Loads weight tiles from the weight stream into the array's shadow registers.

A tile is ``array_rows`` beats of ``array_cols`` weights. The loader takes
the beats of one tile while a tile is wanted and the shadow registers are
free, then holds ``full`` until the tile is consumed (the engine issues the
first vector of its step, which swaps the tile in). After a consume the
next tile waits ``GUARD`` cycles, until the swap has entered the array
(the load beats then follow it down the skewed columns, see
:mod:`convaccel.hw.systolic_array`). The load ports are registered: a beat
accepted at cycle ``t`` reaches the array at ``t + 1``.

Only ``first_tile`` (the problem's launch) and a consume with ``more`` make
a tile wanted, and the last tile's consume has no ``more``: between problems
nothing is wanted, so no beat is taken (the engine resets the loader on
cancel). No "problem running" term gates the stream's ``ready``: it was a
far-placed, high-fan-out flip-flop in front of the issue decision.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig, checked_config
from .systolic_array import SystolicArray

__all__ = ["WeightLoader"]


class WeightLoader(wiring.Component):
    """Weight-tile loader of the systolic engine (see the module).

    Parameters
    ----------
    config : AccelConfig
        ``array_rows``, ``array_cols`` and ``weight_width``.

    Attributes
    ----------
    weights : In(stream.Signature(ArrayLayout(signed(weight_width), cols)))
        Weight tile rows, ``rows`` beats per tile.
    first_tile : In(1)
        The problem's first tile is wanted from the next cycle.
    consume : In(1)
        The tile in the shadow registers is used from now (only while ``full``).
    more : In(1)
        With ``consume``: another tile follows the consumed one.
    full : Out(1)
        A whole tile waits in the shadow registers.
    full_unless_consumed : Out(1)
        ``full`` of the next cycle if no ``consume`` comes this cycle (with
        one, it is 0).
    wload_valid, wload_row, wload_data : Out
        The array's shadow-register load port (registered).
    """

    #: Cycles the loader waits after a consume. The swap reaches the array
    #: one cycle after the consume, a beat one cycle after it is taken, so
    #: the first beat arrives GUARD + 1 cycles after the swap: one cycle more
    #: than the array's LOAD_GUARD asks, kept as margin.
    GUARD = SystolicArray.LOAD_GUARD

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        rows, cols = config.array_rows, config.array_cols
        row = data.ArrayLayout(signed(config.weight_width), cols)
        super().__init__({
            "weights": In(stream.Signature(row)),
            "first_tile": In(1),
            "consume": In(1),
            "more": In(1),
            "full": Out(1),
            "full_unless_consumed": Out(1),
            "wload_valid": Out(1),
            "wload_row": Out(range(rows)),
            "wload_data": Out(row),
        })

    def elaborate(self, platform):
        m = Module()
        rows = self.config.array_rows
        wanted = Signal()                   # a tile is needed and not yet loaded
        guard = Signal(range(self.GUARD + 1))   # cycles until the swap has entered
        row = Signal(range(rows))
        enable = wanted & ~self.full & (guard == 0)
        loaded = self.weights.valid & enable
        m.d.comb += [
            self.weights.ready.eq(enable),
            self.full_unless_consumed.eq(self.full | (loaded & (row == rows - 1))),
        ]
        data_out = Signal.like(self.wload_data, reset_less=True)   # valid says when it counts
        m.d.comb += self.wload_data.eq(data_out)
        m.d.sync += [
            self.wload_valid.eq(loaded),
            self.wload_row.eq(row),
            data_out.eq(self.weights.payload),
        ]
        # A consume needs a full tile and a load an empty one: never together.
        m.d.sync += self.full.eq(~self.consume & self.full_unless_consumed)
        with m.If(self.consume):
            m.d.sync += [guard.eq(self.GUARD), wanted.eq(self.more)]
        with m.Elif(guard != 0):
            m.d.sync += guard.eq(guard - 1)
        with m.If(loaded):
            with m.If(row == rows - 1):
                m.d.sync += [row.eq(0), wanted.eq(0)]
            with m.Else():
                m.d.sync += row.eq(row + 1)
        with m.If(self.first_tile):
            m.d.sync += wanted.eq(1)
        return m
