"""Host-side driver of :class:`~convaccel.hw.conv_core.ConvCore`.

:class:`ConvLayer` describes one quantized layer the way ``golden.conv_layer``
takes it (integer input, weights ``(M, C/groups, R, S)``, bias, per-channel
multiplier and shift, stride/padding/dilation/groups, activation, pooling) and
turns it into what the hardware needs: the ``layer`` port fields, the
per-channel parameter writes, the pixel and weight streams, and the output
beats the golden model predicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..golden import as_padding4, as_pair, conv_layer, output_size
from ..hw.config import AccelConfig
from ..hw.group_tiles import group_tile_ranges
from .engine_streams import weight_beats
from .window_streams import ConvShape, pixel_beats, raster_beats

__all__ = ["ConvLayer", "raster_array", "raster_beats"]


def raster_array(beats: list, channels: int, height: int, width: int, lanes: int) -> np.ndarray:
    """Output beats (``data`` lists or dicts with ``data``) back to ``(M, P, Q)``: inverse of
    :func:`raster_beats`."""
    groups = -(-channels // lanes)
    if len(beats) != height * width * groups:
        raise ValueError(f"expected {height * width * groups} beats for ({channels}, {height}, "
                         f"{width}), got {len(beats)}")
    data = np.array([beat["data"] if isinstance(beat, dict) else beat for beat in beats],
                    dtype=np.int64)
    full = data.reshape(height, width, groups * lanes).transpose(2, 0, 1)
    return full[:channels]


@dataclass
class ConvLayer:
    """One quantized convolution layer (golden-model conventions)."""

    x: np.ndarray                       # (C, H, W) int
    w: np.ndarray                       # (M, C/groups, R, S) int
    bias: np.ndarray | None = None      # (M,)
    multiplier: np.ndarray | int = 1    # scalar or (M,)
    shift: np.ndarray | int = 0         # scalar or (M,)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    activation: str = "none"            # "none", "relu" or "clamp" (ReLU6: clamp_high = six)
    clamp_high: int | None = None
    pool: tuple | None = None           # (mode, kernel, stride)
    name: str = field(default="layer")

    @property
    def shape(self) -> ConvShape:
        c, h, w = self.x.shape
        return ConvShape(c, h, w, kernel=tuple(self.w.shape[2:]), stride=as_pair(self.stride, "stride"),
                         dilation=as_pair(self.dilation, "dilation"),
                         padding=as_padding4(self.padding))

    @property
    def out_channels(self) -> int:
        return self.w.shape[0]

    def _per_channel(self, value) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, dtype=np.int64), (self.out_channels,))

    def golden(self, bits: int = 8, weight_bits: int | None = None) -> np.ndarray:
        """The layer's output by ``golden.conv_layer`` at ``bits``-wide activations: (M, P', Q').

        ``weight_bits`` (default ``bits``) is the weights' width.
        """
        return conv_layer(self.x, self.w, self.bias, self._per_channel(self.multiplier),
                          self._per_channel(self.shift), stride=self.stride,
                          padding=self.padding, dilation=self.dilation, groups=self.groups,
                          activation=self.activation, pool=self.pool, bits=bits,
                          clamp_high=self.clamp_high, weight_bits=weight_bits)

    def layer_fields(self) -> dict:
        """Values for the ``layer`` port of ConvCore."""
        from ..hw.pool_unit import PoolMode
        from ..hw.requant_activation import Activation

        mode, kernel, stride = self.pool if self.pool else ("max", 1, 1)
        return {
            "conv": self.shape.port_fields(),
            "out_channels": self.out_channels,
            "groups": self.groups,
            "activation": {"none": Activation.NONE, "relu": Activation.RELU,
                           "clamp": Activation.CLAMP}[self.activation],
            "clamp_high": self.clamp_high or 0,
            "pool_enable": int(self.pool is not None),
            "pool_kernel": kernel, "pool_stride": stride,
            "pool_mode": PoolMode.AVG if mode == "avg" else PoolMode.MAX,
        }

    def register_fields(self) -> dict[str, dict]:
        """The ``conv_accel`` layer registers of this layer: register -> field values."""
        fields = self.layer_fields()
        conv = fields["conv"]
        return {
            "shape": {"height": conv["height"], "width": conv["width"]},
            "channels": {"in_channels": conv["channels"], "out_channels": fields["out_channels"]},
            "kernel": {name: conv[name] for name in ("kernel_h", "kernel_w", "stride_h",
                                                     "stride_w", "dilation_h", "dilation_w")},
            "padding": {side: conv[f"pad_{side}"] for side in ("top", "bottom", "left", "right")},
            "groups": {"groups": fields["groups"]},
            "mode": {"activation": fields["activation"].value,
                     "pool_enable": fields["pool_enable"], "pool_mode": fields["pool_mode"].value,
                     "pool_kernel": fields["pool_kernel"], "pool_stride": fields["pool_stride"],
                     "clamp_high": fields["clamp_high"]},
        }

    def param_register_writes(self) -> list[tuple[str, dict]]:
        """``(register, fields)`` writes that store every output channel's parameters."""
        writes = []
        for channel, params in self.param_writes():
            writes += [("param_channel", {"channel": channel}),
                       ("param_bias", {"bias": params["bias"] & 0xFFFF_FFFF}),
                       ("param_multiplier", {"multiplier": params["multiplier"]}),
                       ("param_shift", {"shift": params["shift"]}),
                       ("param_write", {"write": 1})]
        return writes

    def param_writes(self) -> list[tuple[int, dict]]:
        """``(channel, {"bias", "multiplier", "shift"})`` for every output channel."""
        bias = self._per_channel(0 if self.bias is None else self.bias)
        multiplier = self._per_channel(self.multiplier)
        shift = self._per_channel(self.shift)
        return [(m, {"bias": int(bias[m]), "multiplier": int(multiplier[m]),
                     "shift": int(shift[m])}) for m in range(self.out_channels)]

    def pixel_beats(self, config: AccelConfig) -> list[dict]:
        return pixel_beats(config, self.x)

    def misfits(self, config: AccelConfig) -> list[str]:
        """What of this layer the build cannot run, one phrase per problem (empty: it fits).

        Checks every run-time maximum of ``config`` (channels, image size,
        kernel, stride, dilation, padding, groups, pooling, the convolution
        output size), the operand and parameter widths, and the layer's own
        consistency (groups, a kernel within the padded input).
        """
        cfg = config
        problems = []

        def at_most(what, value, limit, name):
            if value > limit:
                problems.append(f"{what} {value} > {name} {limit}")

        c, h, w = self.x.shape
        m, _, r, s = self.w.shape
        shape = self.shape
        at_most("input channels", c, cfg.max_in_channels, "max_in_channels")
        at_most("output channels", m, cfg.max_out_channels, "max_out_channels")
        at_most("height", h, cfg.max_height, "max_height")
        at_most("width", w, cfg.max_width, "max_width")
        at_most("kernel", max(r, s), cfg.max_kernel, "max_kernel")
        at_most("stride", max(shape.stride), cfg.max_stride, "max_stride")
        at_most("dilation", max(shape.dilation), cfg.max_dilation, "max_dilation")
        at_most("padding", max(shape.padding), cfg.max_padding, "max_padding")
        at_most("groups", self.groups, cfg.max_in_channels, "max_in_channels")
        if self.pool is not None:
            mode, kernel, stride = self.pool
            if not all(isinstance(v, (int, np.integer)) for v in (kernel, stride)):
                problems.append(f"pooling {kernel}/{stride}: the pooling unit takes a square "
                                "window and one stride (integers)")
            else:
                at_most("pooling window", kernel, cfg.max_pool_kernel, "max_pool_kernel")
                at_most("pooling stride", stride, cfg.max_pool_stride, "max_pool_stride")
        for what, values, low, high in (
                ("activation", self.x, cfg.act_min, cfg.act_max),
                ("weight", self.w, cfg.weight_min, cfg.weight_max),
                ("bias", self._per_channel(0 if self.bias is None else self.bias),
                 cfg.bias_min, cfg.bias_max),
                ("multiplier", self._per_channel(self.multiplier), 0, cfg.max_multiplier),
                ("shift", self._per_channel(self.shift), 0, cfg.max_shift)):
            values = np.asarray(values)
            if values.size and (values.min() < low or values.max() > high):
                problems.append(f"{what} values {int(values.min())}..{int(values.max())} "
                                f"outside {low}..{high}")
        if self.activation == "clamp" and not 0 <= (self.clamp_high or 0) <= cfg.act_max:
            problems.append(f"clamp_high {self.clamp_high} outside 0..{cfg.act_max}")
        groups = self.groups
        if groups < 1 or c % groups or m % groups or self.w.shape[1] * groups != c:
            problems.append(f"groups {groups} do not split {c} input and {m} output channels "
                            f"with weights of shape {self.w.shape}")
        if problems:
            return problems
        try:
            p, q = self.conv_size()
        except ValueError as error:     # kernel larger than the padded input
            return [str(error)]
        at_most("convolution output height", p, cfg.max_height, "max_height")
        at_most("convolution output width", q, cfg.max_width, "max_width")
        if self.pool is not None and self.pool[1] > min(p, q):
            problems.append(f"pooling window {self.pool[1]} larger than the {p}x{q} "
                            "convolution output")
        return problems

    def check_fits(self, config: AccelConfig) -> None:
        """Raise ``ValueError`` naming everything of this layer the build cannot run.

        Call it before a simulation starts: the hardware refuses such a
        layer (``error.exceeds_max`` and friends), and a host that waits for
        its output would wait for nothing.
        """
        problems = self.misfits(config)
        if problems:
            raise ValueError(f"layer {self.name!r} does not fit the build "
                             f"({config.array_rows}x{config.array_cols} array): "
                             + "; ".join(problems))

    def effective_weights(self, config: AccelConfig) -> np.ndarray:
        """Weights as the engine's ``K x M`` matrix in the window generator's ``k`` order.

        ``k = ((r * S + s) * ceil(C / rows) + g) * rows + lane`` for channel
        ``g * rows + lane``; zero for padded lanes and between groups.
        """
        rows = config.array_rows
        m_count, c_per_group, r_count, s_count = self.w.shape
        c = self.x.shape[0]
        groups_in = -(-c // rows)
        full = np.zeros((m_count, groups_in * rows, r_count, s_count), dtype=np.int64)
        outputs_per_group = m_count // self.groups
        for m in range(m_count):
            first = (m // outputs_per_group) * c_per_group
            full[m, first:first + c_per_group] = self.w[m]
        # (M, C', R, S) -> (R, S, C', M) -> (K, M)
        return full.transpose(2, 3, 1, 0).reshape(-1, m_count)

    def conv_size(self) -> tuple[int, int]:
        """Convolution output size ``(P, Q)`` (before pooling), by the floor rule."""
        shape = self.shape
        pt, pb, pl, pr = shape.padding
        return (output_size(shape.height, shape.kernel[0], shape.stride[0], shape.dilation[0],
                            (pt, pb), "height"),
                output_size(shape.width, shape.kernel[1], shape.stride[1], shape.dilation[1],
                            (pl, pr), "width"))

    def tile_ranges(self, config: AccelConfig) -> list[tuple[int, int]]:
        """Output tiles each input chunk feeds (what the hardware's group map computes)."""
        return group_tile_ranges(self.x.shape[0], self.out_channels, self.groups,
                                 config.array_rows, config.array_cols)

    def weight_beats(self, config: AccelConfig) -> list[list[int]]:
        """The weight stream: tiles the engine visits, block by block (all-zero tiles left out)."""
        p, q = self.conv_size()
        return weight_beats(config, self.effective_weights(config), p * q, row_length=q,
                            tile_ranges=self.tile_ranges(config))

    def expected_beats(self, config: AccelConfig) -> list[dict]:
        return raster_beats(config.array_cols, self.golden(config.act_width, config.weight_width))
