"""The pooling unit's set-up: the frame's shape, checked, and its geometry.

At ``start`` the shape is sampled and checked at once: a field that is 0 or
above its maximum, or a window larger than the image, is refused and no
set-up begins. A good shape is then counted out in ``COUNT``, with no
divider: the channel groups ``ceil(C / lanes)`` and the output size
``P = (H - K) // U + 1``, ``Q = (W - K) // U + 1`` by repeated subtraction,
one cycle per step of the longest count and one more with nothing left;
``counted`` follows in a state of its own, a cycle later.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .helpers import above, bad_range, count_step

__all__ = ["PoolGeometry", "PoolMode", "pool_geometry_layout", "pool_shape_invalid",
           "pool_shape_layout"]


class PoolMode(enum.Enum, shape=1):
    """Pooling function."""

    MAX = 0
    AVG = 1


def pool_shape_layout(config: AccelConfig) -> data.StructLayout:
    """Run-time shape of one pooling layer (sampled at ``start``)."""
    size = lambda limit: range(limit + 1)  # noqa: E731 - a shape for 0..limit
    return data.StructLayout({
        "height": size(config.max_height), "width": size(config.max_width),
        "channels": size(config.max_out_channels),
        "kernel": size(config.max_pool_kernel), "stride": size(config.max_pool_stride),
        "mode": PoolMode, "in_block": size(config.array_block),
    })


def pool_geometry_layout(config: AccelConfig) -> data.StructLayout:
    """What the set-up works out for one frame (fields of :class:`PoolGeometry`)."""
    group_max = -(-config.max_out_channels // config.array_cols)
    return data.StructLayout({
        "groups": range(group_max + 1),                        # ceil(C / lanes)
        "groups_last": range(max(2, group_max)),               # ceil(C / lanes) - 1
        "last_lanes": range(config.array_cols + 1),            # lanes in use in the last group
        "height_last": range(max(2, config.max_height)),       # H - 1
        "width_last": range(max(2, config.max_width)),         # W - 1
        "out_height": range(config.max_height + 1),            # P
        "out_width": range(config.max_width + 1),              # Q
    })


def pool_shape_invalid(shape, config: AccelConfig):
    """A field of ``shape`` that is 0 or above its maximum, or a window larger than the image."""
    return (bad_range(shape.height, config.max_height)
            | bad_range(shape.width, config.max_width)
            | bad_range(shape.channels, config.max_out_channels)
            | bad_range(shape.kernel, config.max_pool_kernel)
            | bad_range(shape.stride, config.max_pool_stride)
            | bad_range(shape.in_block, config.array_block)
            | (shape.kernel > shape.height)
            | (shape.kernel > shape.width))


class PoolGeometry(wiring.Component):
    """Samples and checks a pooling frame's shape, then counts out its geometry (see the module).

    Parameters
    ----------
    config : AccelConfig
        ``array_cols`` (lanes) and the maxima.

    Attributes
    ----------
    shape : In(pool_shape_layout(config))
        Sampled at ``start``.
    start : In(1)
        Take a new frame: ``frame_shape`` is ``shape`` from the next cycle on
        and, if ``invalid`` is clear, the set-up begins. Honoured only when
        the unit is idle.
    cancel : In(1)
        Abandon a set-up in progress (ignored when idle).
    invalid : Out(1)
        ``shape`` (the input, combinationally) cannot be pooled: a field is 0
        or above its maximum, or the window is larger than the image. A
        ``start`` then begins no set-up and leaves ``geometry`` as it was.
    frame_shape : Out(pool_shape_layout(config))
        The shape sampled at the last ``start``.
    geometry : Out(pool_geometry_layout(config))
        ``groups``, ``out_height`` and ``out_width`` are 1 from the cycle after
        a good ``start`` and count up while the set-up runs; the rest is
        written when ``counted`` is set. All of it holds from the cycle after
        ``counted`` until the next good ``start``.
    counted : Out(1)
        One cycle: ``groups``, ``out_height`` and ``out_width`` are final; the
        unit is idle again from the next cycle.
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        super().__init__({
            "shape": In(pool_shape_layout(config)),
            "start": In(1),
            "cancel": In(1),
            "invalid": Out(1),
            "frame_shape": Out(pool_shape_layout(config)),
            "geometry": Out(pool_geometry_layout(config)),
            "counted": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, lanes = self.config, self.config.array_cols
        shape, geo = self.frame_shape, self.geometry
        # Remainders counted down by repeated subtraction (no dividers); the
        # spatial ones start at H - K and W - K and may go below 0.
        rest_c = Signal(range(cfg.max_out_channels + 1))
        rest_h = Signal(signed(ceil_log2(cfg.max_height + 1) + 2))
        rest_w = Signal(signed(ceil_log2(cfg.max_width + 1) + 2))
        # No count took a step last cycle (so none will): a register, so
        # the counts' compares drive only their own registers' enables.
        counts_idle = Signal()

        m.d.comb += self.invalid.eq(pool_shape_invalid(self.shape, cfg))
        with m.FSM(name="setup"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += shape.eq(self.shape)
                    with m.If(~self.invalid):
                        m.d.sync += [
                            rest_c.eq(self.shape.channels), geo.groups.eq(1),
                            rest_h.eq(self.shape.height - self.shape.kernel),
                            rest_w.eq(self.shape.width - self.shape.kernel),
                            geo.out_height.eq(1), geo.out_width.eq(1), counts_idle.eq(0),
                        ]
                        m.next = "COUNT"

            with m.State("COUNT"):
                counting = (count_step(m, above(rest_c, lanes), rest_c, lanes, geo.groups)
                            | count_step(m, rest_h >= shape.stride, rest_h, shape.stride,
                                         geo.out_height)
                            | count_step(m, rest_w >= shape.stride, rest_w, shape.stride,
                                         geo.out_width))
                m.d.sync += counts_idle.eq(~counting)
                with m.If(counts_idle):
                    m.d.sync += [
                        geo.last_lanes.eq(rest_c), geo.groups_last.eq(geo.groups - 1),
                        geo.height_last.eq(shape.height - 1), geo.width_last.eq(shape.width - 1),
                    ]
                    m.next = "COUNTED"
                with m.If(self.cancel):
                    m.next = "IDLE"

            with m.State("COUNTED"):
                # A state of its own, so that `counted` is a flip-flop: the
                # three compares above do not run on into the unit's control.
                m.d.comb += self.counted.eq(1)
                m.next = "IDLE"
        return m
