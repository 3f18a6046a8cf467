"""The taps of one output row's windows, one slice per step, in the engine's order.

An output row ``p`` is emitted in blocks of up to ``array_block`` positions
``q``; for each block (see :mod:`.window_generator` for the whole order)::

    for r < R: for s < S: for g < ceil(C / lanes): for q in block:
        tap (y, x) = (y0 + Dh*r, Uw*q + Dw*s - pl),  y0 = Uh*p - pt

The walk keeps the tap's row and column, the ring slot that holds row ``y``
and the channel group by increments only (no multiplier); ``pad`` tells a
tap outside the image.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
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
        block_last = counter(block)        # the block's size - 1
        x0 = Signal(coord)                 # left tap column of the block's first position
        next_x0 = Signal(coord)            # ... of the next block's
        x_s = Signal(coord)                # tap column of the block's first position
        rest = Signal.like(geo.out_width)  # positions of the row after this block
        # Each loop's "at its last value" is a register, set one step ahead,
        # and so is the branch the next step takes (`move`, decoded from
        # the flags' next values): the enables of the tap registers are
        # then `step` and one flip-flop, not a chain of flag tests.
        flags = data.StructLayout({"n_last": 1, "g_last": 1, "s_last": 1, "r_last": 1,
                                   "more_blocks": 1, "first_pass": 1})
        now, after = Signal(flags), Signal(flags)      # first_pass: (r, s, g) = (0, 0, 0)
        move = Signal(data.StructLayout({"n": 1, "g": 1, "s": 1, "r": 1, "block": 1,
                                         "capture": 1}), init={"n": 1})   # _moves(reset)
        m.d.comb += after.eq(now)
        m.d.sync += [now.eq(after), move.eq(_moves(after))]
        # A loop's value one below its last, so "the next value is the last"
        # is an equality test, not an adder's carry chain in front of `move`.
        # The frame's limits are settled cycles before the first step.
        penultimate = {"n": Signal.like(block_last), "g": Signal.like(geo.groups_last),
                       "s": Signal.like(geo.kernel_w_last), "r": Signal.like(geo.kernel_h_last)}
        m.d.sync += [penultimate["g"].eq(geo.groups_last - 1),
                     penultimate["s"].eq(geo.kernel_w_last - 1),
                     penultimate["r"].eq(geo.kernel_h_last - 1)]
        loops = {"n": (n, after.n_last, block_last == 0, penultimate["n"]),
                 "g": (tap.group, after.g_last, geo.groups_last == 0, penultimate["g"]),
                 "s": (s, after.s_last, geo.kernel_w_last == 0, penultimate["s"]),
                 "r": (r, after.r_last, geo.kernel_h_last == 0, penultimate["r"])}

        def restart(*names):
            for name in names:
                value, last, single, _ = loops[name]
                m.d.sync += value.eq(0)
                m.d.comb += last.eq(single)

        def advance(name):
            # Only called below the loop's last value.
            value, last, _, before_last = loops[name]
            m.d.sync += value.eq(value + 1)
            m.d.comb += last.eq(value == before_last)

        def start_block(x_first, positions):
            longer = positions > block      # more positions than one block
            restart("g", "s", "r")
            m.d.sync += [
                # Both choices' differences side by side, not after the compare.
                n.eq(0), block_last.eq(Mux(longer, block - 1, positions - 1)),
                penultimate["n"].eq(Mux(longer, block - 2, positions - 2)),
                rest.eq(Mux(longer, positions - block, 0)),
                tap.y.eq(self.row_top), tap.slot.eq(self.row_top_slot),
                x_s.eq(x_first), tap.x.eq(x_first), x0.eq(x_first),
            ]
            m.d.comb += [after.n_last.eq(positions == 1), after.first_pass.eq(1),
                         after.more_blocks.eq(longer)]

        block_end = now.r_last & now.s_last & now.g_last & now.n_last
        m.d.comb += [
            self.pad.eq((tap.y < 0) | (tap.y >= shape.height)
                        | (tap.x < 0) | (tap.x >= shape.width)),
            self.last_group.eq(now.g_last),
            self.row_last.eq(block_end & ~now.more_blocks),
        ]

        with m.If(self.begin):
            start_block(0 - shape.pad_left, geo.out_width)
        with m.Elif(self.step):
            with m.If(move.capture):
                m.d.sync += next_x0.eq(tap.x + shape.stride_w)
            with m.If(move.n):
                advance("n")
                m.d.sync += tap.x.eq(tap.x + shape.stride_w)
            with m.Elif(move.g):
                restart("n")
                advance("g")
                m.d.sync += tap.x.eq(x_s)
                m.d.comb += after.first_pass.eq(0)
            with m.Elif(move.s):
                restart("n", "g")
                advance("s")
                m.d.sync += [x_s.eq(x_s + shape.dilation_w), tap.x.eq(x_s + shape.dilation_w)]
                m.d.comb += after.first_pass.eq(0)
            with m.Elif(move.r):
                next_slot = tap.slot + shape.dilation_h
                restart("n", "g", "s")
                advance("r")
                m.d.sync += [x_s.eq(x0), tap.x.eq(x0), tap.y.eq(tap.y + shape.dilation_h),
                             tap.slot.eq(Mux(next_slot >= geo.ring, next_slot - geo.ring,
                                             next_slot))]
                m.d.comb += after.first_pass.eq(0)
            with m.Elif(move.block):
                # The row's next block. next_x0 is captured during the
                # (r, s, g) = 0 pass; when that pass is this one, it is not
                # written yet.
                start_block(Mux(now.first_pass, tap.x + shape.stride_w, next_x0), rest)
        return m


def _moves(flags):
    """The branch a step takes from these loop flags (one-hot), and whether it
    captures the next block's first column (a step of the first pass that
    ends a position loop)."""
    inner_done = flags.n_last
    return Cat(~flags.n_last,
               inner_done & ~flags.g_last,
               inner_done & flags.g_last & ~flags.s_last,
               inner_done & flags.g_last & flags.s_last & ~flags.r_last,
               inner_done & flags.g_last & flags.s_last & flags.r_last & flags.more_blocks,
               flags.first_pass & flags.n_last)
