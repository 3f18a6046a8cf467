"""The window generator's set-up: the frame's shape, checked, and its geometry.

At ``start`` the shape is sampled and its fields checked against the
generate-time maxima. A good shape then takes a few cycles of set-up
arithmetic, with no divider and no DSP block:

* ``SPAN``: the ring of ``L = (R - 1) * Dh + 1`` input rows and the dilated
  kernel width (shift-and-add), and the "last value" registers the
  counters compare with;
* ``SETUP``: the remainders to count down;
* ``COUNT``: ``ceil(C / lanes)``, ``P`` and ``Q`` by repeated subtraction,
  and the ring slot of row ``-pad_top`` (``(-pad_top) mod L``) by stepping
  back; a kernel larger than the padded input ends the set-up here;
* ``PREPARE``: the values derived from those counts.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .config import AccelConfig, checked_config
from .helpers import above, bad_range, count_step, times_small

__all__ = ["WindowGeometry", "layer_shape_layout", "shape_out_of_range", "tap_coordinate",
           "window_geometry_layout"]


def layer_shape_layout(config: AccelConfig) -> data.StructLayout:
    """Run-time shape of one convolution (sampled at ``start``)."""
    size = lambda limit: range(limit + 1)  # noqa: E731 - a shape for 0..limit
    return data.StructLayout({
        "height": size(config.max_height), "width": size(config.max_width),
        "channels": size(config.max_in_channels),
        "kernel_h": size(config.max_kernel), "kernel_w": size(config.max_kernel),
        "stride_h": size(config.max_stride), "stride_w": size(config.max_stride),
        "dilation_h": size(config.max_dilation), "dilation_w": size(config.max_dilation),
        "pad_top": size(config.max_padding), "pad_bottom": size(config.max_padding),
        "pad_left": size(config.max_padding), "pad_right": size(config.max_padding),
    })


def tap_coordinate(config: AccelConfig):
    """Signed shape of a tap's row or column: padding puts taps above and left of
    the image, and the walk over a block runs past its right edge."""
    span = max(config.max_height, config.max_width) + 2 * config.max_padding \
        + config.max_kernel * config.max_dilation + config.max_stride * (config.array_block + 1)
    return signed(ceil_log2(span + 1) + 1)


def window_geometry_layout(config: AccelConfig) -> data.StructLayout:
    """What the set-up works out for one frame (fields of :class:`WindowGeometry`)."""
    lanes = config.array_rows
    group_max = -(-config.max_in_channels // lanes)
    ring_max = (config.max_kernel - 1) * config.max_dilation + 1
    out_size = range(max(config.max_height, config.max_width) + 2 * config.max_padding + 1)
    return data.StructLayout({
        "ring": range(ring_max + 1),                      # L, input rows held
        "ring_last": range(max(2, ring_max)),             # L - 1 (the ring's last slot)
        "kernel_h_last": range(config.max_kernel + 1),    # R - 1
        "kernel_w_last": range(config.max_kernel + 1),    # S - 1
        "height_last": range(config.max_height + 1),      # H - 1
        "width_last": range(config.max_width + 1),        # W - 1
        "groups": range(group_max + 1),                   # ceil(C / lanes)
        "groups_last": range(max(2, group_max)),          # ceil(C / lanes) - 1
        "last_lanes": range(lanes + 1),                   # lanes in use in the last group
        "unused_lanes": lanes,                            # bit per lane beyond C in it
        "out_height": out_size,                           # P
        "out_width": out_size,                            # Q
        "out_height_last": out_size,                      # P - 1
        "top_slot": range(max(2, ring_max)),              # ring slot of row -pad_top
    })


def shape_out_of_range(shape, config: AccelConfig):
    """A zero or a value above its maximum in any field of ``shape`` (padding may be 0)."""
    bad = (bad_range(shape.height, config.max_height)
           | bad_range(shape.width, config.max_width)
           | bad_range(shape.channels, config.max_in_channels))
    for side in ("kernel_h", "kernel_w"):
        bad = bad | bad_range(getattr(shape, side), config.max_kernel)
    for side in ("stride_h", "stride_w"):
        bad = bad | bad_range(getattr(shape, side), config.max_stride)
    for side in ("dilation_h", "dilation_w"):
        bad = bad | bad_range(getattr(shape, side), config.max_dilation)
    for side in ("pad_top", "pad_bottom", "pad_left", "pad_right"):
        bad = bad | above(getattr(shape, side), config.max_padding)
    return bad


class WindowGeometry(wiring.Component):
    """Samples and checks a frame's shape, then works out its geometry (see the module).

    Parameters
    ----------
    config : AccelConfig
        ``array_rows`` (lanes) and the maxima.

    Attributes
    ----------
    shape : In(layer_shape_layout(config))
        Sampled at ``start``.
    start : In(1)
        Take a new frame: ``frame_shape`` is ``shape`` from the next cycle on,
        ``valid`` drops and the set-up begins. Honoured only when the unit is
        idle.
    cancel : In(1)
        Abandon a set-up in progress (ignored when idle).
    out_of_range : Out(1)
        One cycle, the one after ``start``: the sampled shape has a field that
        is 0 or above its maximum, and the set-up ends there (the check works
        on ``frame_shape``, a register, not on the ``shape`` input).
    frame_shape : Out(layer_shape_layout(config))
        The shape sampled at the last ``start``.
    geometry : Out(window_geometry_layout(config))
        ``groups``, ``out_height`` and ``out_width`` count up while the set-up
        runs; ``ring`` and the ``*_last`` of the shape are valid from the
        second cycle after ``start``; everything once ``valid`` is set.
    too_large : Out(1)
        One cycle: the kernel is larger than the padded input; the set-up ends
        with no geometry (``valid`` stays clear).
    counted : Out(1)
        One cycle: ``ring``, ``ring_last``, ``groups``, ``out_height``,
        ``out_width`` and ``top_slot`` are final; the rest of ``geometry`` and ``valid`` follow
        in the next cycle, when the unit is idle again.
    valid : Out(1)
        All of ``geometry`` holds for ``frame_shape``, until the next ``start``.
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        super().__init__({
            "shape": In(layer_shape_layout(config)),
            "start": In(1),
            "cancel": In(1),
            "out_of_range": Out(1),
            "frame_shape": Out(layer_shape_layout(config)),
            "geometry": Out(window_geometry_layout(config)),
            "too_large": Out(1),
            "counted": Out(1),
            "valid": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        lanes = cfg.array_rows
        shape, geo = self.frame_shape, self.geometry
        coord = tap_coordinate(cfg)
        span_w = Signal(range((cfg.max_kernel - 1) * cfg.max_dilation + 2))
        # Remainders counted down by repeated subtraction (no dividers).
        rest_c = Signal(range(cfg.max_in_channels + 1))
        rest_h = Signal(coord)
        rest_w = Signal(coord)
        pad_steps = Signal(range(cfg.max_padding + 1))
        counts_idle = Signal()     # no count stepped last cycle (see _count)

        with m.FSM(name="setup"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [shape.eq(self.shape), self.valid.eq(0)]
                    m.next = "SPAN"

            with m.State("SPAN"):
                m.d.comb += self.out_of_range.eq(shape_out_of_range(shape, cfg))
                # Dilated kernel extents by shift-and-add (no DSP block).
                m.d.sync += [
                    geo.ring.eq(times_small(shape.kernel_h - 1, shape.dilation_h) + 1),
                    span_w.eq(times_small(shape.kernel_w - 1, shape.dilation_w) + 1),
                    geo.kernel_h_last.eq(shape.kernel_h - 1),
                    geo.kernel_w_last.eq(shape.kernel_w - 1),
                    geo.height_last.eq(shape.height - 1), geo.width_last.eq(shape.width - 1),
                ]
                m.next = "SETUP"
                with m.If(self.out_of_range):
                    m.next = "IDLE"
                self._leave_on_cancel(m)

            with m.State("SETUP"):
                m.d.sync += [
                    rest_c.eq(shape.channels), geo.groups.eq(1),
                    rest_h.eq(shape.height + shape.pad_top + shape.pad_bottom - geo.ring),
                    rest_w.eq(shape.width + shape.pad_left + shape.pad_right - span_w),
                    geo.out_height.eq(1), geo.out_width.eq(1),
                    pad_steps.eq(shape.pad_top), geo.top_slot.eq(0),
                    geo.ring_last.eq(geo.ring - 1), counts_idle.eq(0),
                ]
                m.next = "COUNT"
                self._leave_on_cancel(m)

            with m.State("COUNT"):
                with m.If((rest_h < 0) | (rest_w < 0)):
                    m.d.comb += self.too_large.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    self._count(m, rest_c, rest_h, rest_w, pad_steps, counts_idle)
                self._leave_on_cancel(m)

            with m.State("PREPARE"):
                # A state of its own: the counting tests drive only the state
                # register, not these enables.
                m.d.comb += self.counted.eq(1)
                m.d.sync += [
                    geo.last_lanes.eq(rest_c),
                    geo.unused_lanes.eq(Cat(rest_c <= lane for lane in range(lanes))),
                    geo.groups_last.eq(geo.groups - 1),
                    geo.out_height_last.eq(geo.out_height - 1),
                    self.valid.eq(1),
                ]
                m.next = "IDLE"
        return m

    def _count(self, m, rest_c, rest_h, rest_w, pad_steps, counts_idle):
        """One ``COUNT`` cycle: every count still running takes a step.

        When none took one last cycle (``counts_idle``, a register: the
        compares drive only their counts' enables), none will: PREPARE.
        """
        shape, geo, lanes = self.frame_shape, self.geometry, self.config.array_rows
        counting = (count_step(m, above(rest_c, lanes), rest_c, lanes, geo.groups)
                    | count_step(m, rest_h >= shape.stride_h, rest_h, shape.stride_h,
                                 geo.out_height)
                    | count_step(m, rest_w >= shape.stride_w, rest_w, shape.stride_w,
                                 geo.out_width)
                    | (pad_steps != 0))
        with m.If(pad_steps != 0):
            # The slot of row -pad_top is (-pad_top) mod L: step back pad_top times.
            m.d.sync += [pad_steps.eq(pad_steps - 1),
                         geo.top_slot.eq(Mux(geo.top_slot == 0, geo.ring_last, geo.top_slot - 1))]
        m.d.sync += counts_idle.eq(~counting)
        with m.If(counts_idle):
            m.next = "PREPARE"

    def _leave_on_cancel(self, m):
        """Call last in a state, so ``cancel`` wins over the state's own ``m.next``."""
        with m.If(self.cancel):
            m.next = "IDLE"
