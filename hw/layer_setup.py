"""The products a layer's set-up needs, worked out once per layer without DSP blocks.

From the layer's kernel and the sizes the window generator and the group map
find at ``start``:

* ``taps = R * S``;
* ``n_vectors = P * Q``, the engine's output positions;
* ``k_terms = R * S * ceil(C / rows) * rows``, the engine's reduction length;
* ``terms = (C/G) * R * S``, the real products per output (for the MAC counter).

Each is a :class:`~convaccel.hw.serial_multiplier.SerialMultiplier` started as
soon as its operands are known; ``ready`` rises when all four are done (a few
cycles after the window generator's geometry, itself most of the set-up).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .config import AccelConfig, checked_config
from .helpers import times_constant
from .serial_multiplier import SerialMultiplier

__all__ = ["LayerSetup"]


class LayerSetup(wiring.Component):
    """Per-layer set-up products (see the module docstring).

    Parameters
    ----------
    config : AccelConfig

    Attributes
    ----------
    start : In(1)
        A layer begins; the products of the previous one are forgotten.
    kernel_h, kernel_w : In(unsigned)
        Stable from the cycle after ``start``.
    geometry_valid : In(1)
        ``out_height``, ``out_width`` and ``channel_groups`` are valid.
    out_height, out_width, channel_groups : In(unsigned)
    groups_valid : In(1)
        ``in_per_group`` is valid.
    in_per_group : In(unsigned)
    n_vectors, k_terms, terms : Out(unsigned)
    ready : Out(1)
        All products of this layer are valid.
    """

    def __init__(self, config: AccelConfig):
        checked_config(config)
        self.config = config
        cfg = config
        span = max(cfg.max_height, cfg.max_width) + 2 * cfg.max_padding
        self.group_max = -(-cfg.max_in_channels // cfg.array_rows)
        super().__init__({
            "start": In(1),
            "kernel_h": In(range(cfg.max_kernel + 1)),
            "kernel_w": In(range(cfg.max_kernel + 1)),
            "geometry_valid": In(1),
            "out_height": In(range(span + 1)),
            "out_width": In(range(span + 1)),
            "channel_groups": In(range(self.group_max + 1)),
            "groups_valid": In(1),
            "in_per_group": In(range(cfg.max_in_channels + 1)),
            "n_vectors": Out(range(span * span + 1)),
            "k_terms": Out(range(self.group_max * cfg.array_rows * cfg.max_kernel ** 2 + 1)),
            "terms": Out(range(cfg.max_in_channels * cfg.max_kernel ** 2 + 1)),
            "ready": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        taps_max = cfg.max_kernel ** 2

        def product(name, a, b, product_max, when):
            """A multiplier started once per layer, in the first cycle ``when`` holds."""
            unit = SerialMultiplier(len(a), len(b), product_max)
            m.submodules[name] = unit
            armed = Signal(name=f"{name}_armed")
            with m.If(self.start):
                m.d.sync += armed.eq(1)
            with m.Elif(armed & when):
                m.d.sync += armed.eq(0)
            m.d.comb += [unit.a.eq(a), unit.b.eq(b), unit.start.eq(armed & when & ~self.start)]
            return unit.product, ~armed & unit.ready

        taps, taps_ready = product("taps", self.kernel_h, self.kernel_w, taps_max, 1)
        positions, positions_ready = product("positions", self.out_height, self.out_width,
                                             (1 << len(self.n_vectors)) - 1,
                                             self.geometry_valid)
        tap_groups, tap_groups_ready = product("tap_groups", taps, self.channel_groups,
                                               taps_max * self.group_max,
                                               taps_ready & self.geometry_valid)
        terms, terms_ready = product("terms", taps, self.in_per_group,
                                     (1 << len(self.terms)) - 1,
                                     taps_ready & self.groups_valid)
        m.d.comb += [
            self.n_vectors.eq(positions),
            self.k_terms.eq(times_constant(tap_groups, cfg.array_rows)),
            self.terms.eq(terms),
            self.ready.eq(positions_ready & tap_groups_ready & terms_ready),
        ]
        return m
