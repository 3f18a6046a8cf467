"""The taps of one pooling output row, one per step.

An output row ``p`` is emitted in raster order, each window's ``K*K`` taps
in turn::

    for q < Q: for g < ceil(C / lanes): for r < K: for s < K:
        tap (row, column) = (U*p + r, U*q + s)

The walk keeps the window's left column, the ring slot of row ``U*p + r``
and the channel group by increments only (no multiplier); the tap's column
is the window's left column plus ``s``.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig, checked_config
from .helpers import counter
from .pool_geometry import pool_geometry_layout, pool_shape_layout

__all__ = ["PoolWalk", "pool_tap_layout"]


def pool_tap_layout(config: AccelConfig) -> data.StructLayout:
    """One tap: its column, the ring slot of its row, the channel group."""
    return data.StructLayout({
        "x": range(config.max_width + config.max_pool_stride + config.max_pool_kernel),
        "slot": range(max(2, config.max_pool_kernel)),
        "group": range(max(2, -(-config.max_out_channels // config.array_cols))),
    })


class PoolWalk(wiring.Component):
    """Walks the taps of one pooling output row, window by window (see the module).

    Parameters
    ----------
    config : AccelConfig
        ``array_cols`` (lanes) and the maxima.

    Attributes
    ----------
    shape : In(pool_shape_layout(config))
        The frame's shape (``K``, ``U``).
    geometry : In(pool_geometry_layout(config))
        The frame's geometry (the channel groups, ``Q``).
    row_top_slot : In(unsigned)
        The ring slot of the output row's top input row.
    begin : In(1)
        Start the row: from the next cycle ``tap`` is its first.
    step : In(1)
        The tap in ``tap`` is taken: move to the next one (after the row's
        last tap the walk holds a tap of the row's last window until the next
        ``begin``).
    tap : Out(pool_tap_layout(config))
        The current tap.
    first : Out(1)
        The current tap is its window's first (``r = s = 0``).
    window_end : Out(1)
        The current tap is its window's last.
    row_last : Out(1)
        The current tap is the row's last.
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        super().__init__({
            "shape": In(pool_shape_layout(config)),
            "geometry": In(pool_geometry_layout(config)),
            "row_top_slot": In(range(max(2, config.max_pool_kernel))),
            "begin": In(1),
            "step": In(1),
            "tap": Out(pool_tap_layout(config)),
            "first": Out(1),
            "window_end": Out(1),
            "row_last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, shape, geo, tap = self.config, self.shape, self.geometry, self.tap
        kmax = cfg.max_pool_kernel
        r, s = counter(kmax), counter(kmax)
        q = Signal.like(geo.out_width)
        x0 = Signal(range(cfg.max_width + cfg.max_pool_stride + 1))   # window's left column
        # The loop ends are registers: the shape and geometry hold from the
        # frame's set-up on, long before a row begins, and the step decision
        # (and the pooling unit's row end) then compares with flip-flops,
        # not through a subtractor's carry chain.
        kernel_last = Signal.like(shape.kernel)
        width_last = Signal.like(geo.out_width)
        m.d.sync += [kernel_last.eq(shape.kernel - 1), width_last.eq(geo.out_width - 1)]

        m.d.comb += [
            tap.x.eq(x0 + s),
            self.first.eq((r == 0) & (s == 0)),
            self.window_end.eq((r == kernel_last) & (s == kernel_last)),
            self.row_last.eq(self.window_end & (tap.group == geo.groups_last)
                             & (q == width_last)),
        ]
        with m.If(self.begin):
            m.d.sync += [q.eq(0), x0.eq(0), tap.group.eq(0), r.eq(0), s.eq(0),
                         tap.slot.eq(self.row_top_slot)]
        with m.Elif(self.step):
            with m.If(s != kernel_last):
                m.d.sync += s.eq(s + 1)
            with m.Elif(r != kernel_last):
                m.d.sync += [s.eq(0), r.eq(r + 1),
                             tap.slot.eq(Mux(tap.slot == kernel_last, 0, tap.slot + 1))]
            with m.Else():
                # The window is complete: the next one starts at its top row.
                m.d.sync += [s.eq(0), r.eq(0), tap.slot.eq(self.row_top_slot)]
                with m.If(tap.group != geo.groups_last):
                    m.d.sync += tap.group.eq(tap.group + 1)
                with m.Elif(q != width_last):
                    m.d.sync += [tap.group.eq(0), q.eq(q + 1), x0.eq(x0 + shape.stride)]
        return m
