"""The taps of one output row's windows, one slice per step, in the engine's order.

An output row ``p`` is emitted in blocks of up to ``array_block`` positions
``q``; for each block (see :mod:`.window_generator` for the whole order)::

    for r < R: for s < S: for g < ceil(C / lanes): for q in block:
        tap (y, x) = (y0 + Dh*r, Uw*q + Dw*s - pl),  y0 = Uh*p - pt

The walk keeps the tap's row and column, the ring slot that holds row ``y``
and the channel group by increments only (no multiplier); ``pad`` tells a
tap outside the image.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig, checked_config
from .helpers import counter
from .window_geometry import layer_shape_layout, tap_coordinate, window_geometry_layout

__all__ = ["WindowWalk", "tap_layout"]


def tap_layout(config: AccelConfig) -> data.StructLayout:
    """One slice's tap: image row and column, the row's ring slot, the channel group."""
    group_max = -(-config.max_in_channels // config.array_rows)
    ring_max = (config.max_kernel - 1) * config.max_dilation + 1
    return data.StructLayout({
        "y": tap_coordinate(config), "x": tap_coordinate(config),
        "slot": range(max(2, ring_max)), "group": range(max(2, group_max)),
    })


class WindowWalk(wiring.Component):
    """Walks the slices of one output row, block by block (see the module).

    Parameters
    ----------
    config : AccelConfig
        ``array_block`` and the maxima.

    Attributes
    ----------
    shape : In(layer_shape_layout(config))
        The frame's shape (strides, dilations, left padding, image size).
    geometry : In(window_geometry_layout(config))
        The frame's geometry (``R - 1``, ``S - 1``, groups, ``L``, ``Q``).
    row_top, row_top_slot : In
        ``y0``, the top tap row of the output row, and its ring slot.
    begin : In(1)
        Start the row: from the next cycle ``tap`` is its first slice.
    step : In(1)
        The slice in ``tap`` is taken: move to the next one (after the row's
        last slice the walk holds until the next ``begin``).
    tap : Out(tap_layout(config))
        The current slice.
    pad : Out(1)
        The current slice's tap lies outside the image.
    last_group : Out(1)
        The current slice is of the last channel group.
    row_last : Out(1)
        The current slice is the row's last.
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        ring_max = (config.max_kernel - 1) * config.max_dilation + 1
        super().__init__({
            "shape": In(layer_shape_layout(config)),
            "geometry": In(window_geometry_layout(config)),
            "row_top": In(tap_coordinate(config)),
            "row_top_slot": In(range(max(2, ring_max))),
            "begin": In(1),
            "step": In(1),
            "tap": Out(tap_layout(config)),
            "pad": Out(1),
            "last_group": Out(1),
            "row_last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        block = cfg.array_block
        shape, geo, tap = self.shape, self.geometry, self.tap
        coord = tap_coordinate(cfg)
        r = counter(cfg.max_kernel)
        s = counter(cfg.max_kernel)
        n = counter(block)                 # position within the block
        x0 = Signal(coord)                 # left tap column of the block's first position
        next_x0 = Signal(coord)            # ... of the next block's
        x_s = Signal(coord)                # tap column of the block's first position
        block_size = Signal(range(block + 1))
        block_last = counter(block)        # block_size - 1
        positions_left = Signal.like(geo.out_width)   # of the row, this block included

        def start_block(x_first, positions):
            size = Mux(positions < block, positions, block)
            m.d.sync += [
                r.eq(0), s.eq(0), tap.group.eq(0), n.eq(0),
                tap.y.eq(self.row_top), tap.slot.eq(self.row_top_slot),
                x_s.eq(x_first), tap.x.eq(x_first), x0.eq(x_first),
                block_size.eq(size), block_last.eq(size - 1),
            ]

        block_end = ((r == geo.kernel_h_last) & (s == geo.kernel_w_last)
                     & (tap.group == geo.groups_last) & (n == block_last))
        m.d.comb += [
            self.pad.eq((tap.y < 0) | (tap.y >= shape.height)
                        | (tap.x < 0) | (tap.x >= shape.width)),
            self.last_group.eq(tap.group == geo.groups_last),
            self.row_last.eq(block_end & (positions_left == block_size)),
        ]

        with m.If(self.begin):
            m.d.sync += positions_left.eq(geo.out_width)
            start_block(0 - shape.pad_left, geo.out_width)
        with m.Elif(self.step):
            first_pass = (r == 0) & (s == 0) & (tap.group == 0)
            with m.If(first_pass & (n == block_last)):
                m.d.sync += next_x0.eq(tap.x + shape.stride_w)
            with m.If(n != block_last):
                m.d.sync += [n.eq(n + 1), tap.x.eq(tap.x + shape.stride_w)]
            with m.Elif(tap.group != geo.groups_last):
                m.d.sync += [n.eq(0), tap.group.eq(tap.group + 1), tap.x.eq(x_s)]
            with m.Elif(s != geo.kernel_w_last):
                m.d.sync += [n.eq(0), tap.group.eq(0), s.eq(s + 1),
                             x_s.eq(x_s + shape.dilation_w), tap.x.eq(x_s + shape.dilation_w)]
            with m.Elif(r != geo.kernel_h_last):
                next_slot = tap.slot + shape.dilation_h
                m.d.sync += [n.eq(0), tap.group.eq(0), s.eq(0), r.eq(r + 1),
                             x_s.eq(x0), tap.x.eq(x0), tap.y.eq(tap.y + shape.dilation_h),
                             tap.slot.eq(Mux(next_slot >= geo.ring, next_slot - geo.ring,
                                             next_slot))]
            with m.Elif(positions_left != block_size):
                # The row's next block. next_x0 is captured during the
                # (r, s, g) = 0 pass; when that pass is this one, it is not
                # written yet.
                m.d.sync += positions_left.eq(positions_left - block_size)
                start_block(Mux(first_pass, tap.x + shape.stride_w, next_x0),
                            positions_left - block_size)
        return m
