"""One quantized layer as the accelerator runs it, and what the hardware needs for it.

:class:`ConvLayer` describes a layer with the golden model's conventions
(integer input ``(C, H, W)``, weights ``(M, C/groups, R, S)``, bias,
per-channel multiplier and shift, stride/padding/dilation/groups, zero
points, activation, pooling) and turns it into what the ``conv_accel`` top
takes: its register fields, the per-channel parameter writes (with the input
zero point folded into the bias, docs/arithmetic.md "Zero points") and the
pixel and weight streams, and checks it against a build's maxima.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..hw.config import AccelConfig
from ..hw.group_tiles import group_tile_ranges
from ..hw.register_map import RegisterMap
from .streams import beat_dicts, raster_lanes, weight_lanes

__all__ = ["ConvLayer", "hardware_zero_points", "signed_field_range"]


def _pair(value) -> tuple[int, int]:
    return tuple(int(v) for v in value) if np.ndim(value) else (int(value), int(value))


def _padding4(value) -> tuple[int, int, int, int]:
    values = tuple(int(v) for v in np.atleast_1d(value))
    if len(values) == 1:
        return values * 4
    if len(values) == 2:
        return (values[0], values[0], values[1], values[1])
    return values


def _out_length(size, kernel, stride, dilation, before, after, axis) -> int:
    """The floor rule (docs/arithmetic.md, "Output size").

    Raises
    ------
    ValueError
        If the dilated kernel is larger than the padded input.
    """
    span, padded = dilation * (kernel - 1) + 1, size + before + after
    if span > padded:
        raise ValueError(f"kernel {axis} {kernel} (dilation {dilation}, span {span}) is larger "
                         f"than the padded input {axis} {padded} ({size} + padding {before} + "
                         f"{after})")
    return (padded - span) // stride + 1


def hardware_zero_points(regmap: RegisterMap) -> bool:
    """True when the register map has the per-layer ``zero_points`` register."""
    return any(register.name == "zero_points" for register in regmap.registers)


def signed_field_range(regmap: RegisterMap, config: AccelConfig) -> tuple[int, int]:
    """Values ``mode.clamp_high`` takes: signed ``act_width`` bits, or ``0..act_max`` for an
    unsigned ``act_width - 1``-bit field (register maps before zero points)."""
    width = regmap.field("mode", "clamp_high").width
    if width >= config.act_width:
        return config.act_min, config.act_max
    return 0, (1 << width) - 1


@dataclass
class ConvLayer:
    """One quantized convolution layer (golden-model conventions).

    ``x`` may be left out (``None``) with ``input_shape`` given instead: a
    layer of a network program, whose input arrives at run time
    (:meth:`with_input`).
    """

    x: np.ndarray | None                # (C, H, W) int
    w: np.ndarray                       # (M, C/groups, R, S) int
    bias: np.ndarray | None = None      # (M,)
    multiplier: np.ndarray | int = 1    # scalar or (M,)
    shift: np.ndarray | int = 0         # scalar or (M,)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)       # top, bottom, left, right
    dilation: tuple = (1, 1)
    groups: int = 1
    activation: str = "none"            # "none", "relu" or "clamp" (ReLU6: clamp_high = zo + six)
    clamp_high: int | None = None
    pool: tuple | None = None           # (mode, kernel, stride)
    name: str = field(default="layer")
    input_zero_point: int = 0
    output_zero_point: int = 0
    input_shape: tuple | None = None    # (C, H, W) when x is None

    # -- shapes -------------------------------------------------------------------

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the input."""
        if self.x is not None:
            return tuple(int(v) for v in self.x.shape)
        if self.input_shape is None:
            raise ValueError(f"layer {self.name!r} has neither an input nor an input_shape")
        return tuple(int(v) for v in self.input_shape)

    @property
    def out_channels(self) -> int:
        return int(self.w.shape[0])

    def with_input(self, x: np.ndarray) -> ConvLayer:
        """This layer with input ``x`` (checked against ``input_shape`` if one is set)."""
        x = np.asarray(x, dtype=np.int64)
        if self.input_shape is not None and tuple(x.shape) != tuple(self.input_shape):
            raise ValueError(f"layer {self.name!r} takes an input of shape "
                             f"{tuple(self.input_shape)}, got {tuple(x.shape)}")
        return dataclasses.replace(self, x=x, input_shape=None)

    def geometry(self) -> dict[str, int]:
        """The shape fields of the hardware (``conv_accel`` register field names)."""
        c, h, w = self.in_shape
        (kh, kw), (uh, uw) = self.w.shape[2:], _pair(self.stride)
        dh, dw = _pair(self.dilation)
        pt, pb, pl, pr = _padding4(self.padding)
        return {"height": h, "width": w, "channels": c, "kernel_h": int(kh), "kernel_w": int(kw),
                "stride_h": uh, "stride_w": uw, "dilation_h": dh, "dilation_w": dw,
                "pad_top": pt, "pad_bottom": pb, "pad_left": pl, "pad_right": pr}

    def conv_size(self) -> tuple[int, int]:
        """Convolution output size ``(P, Q)`` (before pooling), by the floor rule.

        Raises
        ------
        ValueError
            If the dilated kernel is larger than the padded input.
        """
        g = self.geometry()
        return (_out_length(g["height"], g["kernel_h"], g["stride_h"], g["dilation_h"],
                            g["pad_top"], g["pad_bottom"], "height"),
                _out_length(g["width"], g["kernel_w"], g["stride_w"], g["dilation_w"],
                            g["pad_left"], g["pad_right"], "width"))

    def out_size(self) -> tuple[int, int]:
        """Output size after pooling (floor rule, no pooling padding)."""
        p, q = self.conv_size()
        if self.pool is None:
            return p, q
        _, kernel, stride = self.pool
        return (p - kernel) // stride + 1, (q - kernel) // stride + 1

    def real_macs(self) -> int:
        """Multiply-accumulates the layer needs: ``P*Q*M*(C/groups)*R*S``."""
        p, q = self.conv_size()
        return p * q * int(np.prod(self.w.shape))

    # -- arithmetic -----------------------------------------------------------------

    def _per_channel(self, value) -> np.ndarray:
        return np.broadcast_to(np.asarray(value, dtype=np.int64), (self.out_channels,))

    def folded_bias(self) -> np.ndarray:
        """The bias the hardware is given: ``bias - zx * sum(w[m])`` per output channel.

        The hardware sums ``x * w`` with padding ``zx``; the fold makes that
        ``sum((x - zx) * w) + bias`` (docs/arithmetic.md, "Zero points").
        """
        bias = self._per_channel(0 if self.bias is None else self.bias)
        sums = np.asarray(self.w, dtype=np.int64).reshape(self.out_channels, -1).sum(axis=1)
        return bias - int(self.input_zero_point) * sums

    def golden(self, bits: int = 8, weight_bits: int | None = None) -> np.ndarray:
        """The layer's output by ``golden.conv_layer``: ``(M, P', Q')`` (a check)."""
        from ..golden import conv_layer

        if self.x is None:
            raise ValueError(f"layer {self.name!r} has no input: use with_input(x)")
        return conv_layer(self.x, self.w, self.bias, self._per_channel(self.multiplier),
                          self._per_channel(self.shift), stride=self.stride,
                          padding=self.padding, dilation=self.dilation, groups=self.groups,
                          activation=self.activation, pool=self.pool, bits=bits,
                          clamp_high=self.clamp_high, weight_bits=weight_bits,
                          input_zero_point=int(self.input_zero_point),
                          output_zero_point=int(self.output_zero_point))

    # -- what the hardware takes ------------------------------------------------------

    def layer_fields(self) -> dict:
        """Values for the ``layer`` port of the conv core."""
        from ..hw.pool_unit import PoolMode
        from ..hw.requant_activation import Activation

        mode, kernel, stride = self.pool if self.pool else ("max", 1, 1)
        return {
            "conv": self.geometry(),
            "out_channels": self.out_channels,
            "groups": self.groups,
            "activation": {"none": Activation.NONE, "relu": Activation.RELU,
                           "clamp": Activation.CLAMP}[self.activation],
            "clamp_high": self.clamp_high or 0,
            "input_zero_point": int(self.input_zero_point),
            "output_zero_point": int(self.output_zero_point),
            "pool_enable": int(self.pool is not None),
            "pool_kernel": kernel, "pool_stride": stride,
            "pool_mode": PoolMode.AVG if mode == "avg" else PoolMode.MAX,
        }

    def register_fields(self, regmap: RegisterMap | None = None) -> dict[str, dict]:
        """The ``conv_accel`` layer registers of this layer: register -> field values.

        With ``regmap`` (the build's map), signed fields are encoded in their
        width and the ``zero_points`` register is included when the map has
        one; without it, the layer registers every map version has.
        """
        fields = self.layer_fields()
        g = fields["conv"]
        clamp_high = fields["clamp_high"]
        registers = {
            "shape": {"height": g["height"], "width": g["width"]},
            "channels": {"in_channels": g["channels"], "out_channels": fields["out_channels"]},
            "kernel": {name: g[name] for name in ("kernel_h", "kernel_w", "stride_h",
                                                  "stride_w", "dilation_h", "dilation_w")},
            "padding": {side: g[f"pad_{side}"] for side in ("top", "bottom", "left", "right")},
            "groups": {"groups": fields["groups"]},
            "mode": {"activation": fields["activation"].value,
                     "pool_enable": fields["pool_enable"], "pool_mode": fields["pool_mode"].value,
                     "pool_kernel": fields["pool_kernel"], "pool_stride": fields["pool_stride"],
                     "clamp_high": clamp_high},
        }
        if regmap is not None:
            width = regmap.field("mode", "clamp_high").width
            registers["mode"]["clamp_high"] = clamp_high & ((1 << width) - 1)
            if hardware_zero_points(regmap):
                register = regmap.register("zero_points")
                registers["zero_points"] = {
                    name: int(value) & ((1 << register.field(name).width) - 1)
                    for name, value in (("input", self.input_zero_point),
                                        ("output", self.output_zero_point))}
        return registers

    def param_writes(self) -> list[tuple[int, dict]]:
        """``(channel, {"bias", "multiplier", "shift"})`` for every output channel.

        The bias is :meth:`folded_bias` (the input zero point folded in).
        """
        bias = self.folded_bias()
        multiplier = self._per_channel(self.multiplier)
        shift = self._per_channel(self.shift)
        return [(m, {"bias": int(bias[m]), "multiplier": int(multiplier[m]),
                     "shift": int(shift[m])}) for m in range(self.out_channels)]

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

    def effective_weights(self, config: AccelConfig) -> np.ndarray:
        """Weights as the engine's ``K x M`` matrix in the window generator's ``k`` order.

        ``k = ((r * S + s) * ceil(C / rows) + g) * rows + lane`` for channel
        ``g * rows + lane``; zero for padded lanes and between groups.
        """
        rows = config.array_rows
        m_count, c_per_group, r_count, s_count = self.w.shape
        c = self.in_shape[0]
        groups_in = -(-c // rows)
        full = np.zeros((m_count, groups_in * rows, r_count, s_count), dtype=np.int64)
        outputs_per_group = m_count // self.groups
        for m in range(m_count):
            first = (m // outputs_per_group) * c_per_group
            full[m, first:first + c_per_group] = self.w[m]
        # (M, C', R, S) -> (R, S, C', M) -> (K, M)
        return full.transpose(2, 3, 1, 0).reshape(-1, m_count)

    def tile_ranges(self, config: AccelConfig) -> list[tuple[int, int]]:
        """Output tiles each input chunk feeds (what the hardware's group map computes)."""
        return group_tile_ranges(self.in_shape[0], self.out_channels, self.groups,
                                 config.array_rows, config.array_cols)

    def pixel_lanes(self, config: AccelConfig) -> np.ndarray:
        """The pixel stream, ``(beats, array_rows)``."""
        if self.x is None:
            raise ValueError(f"layer {self.name!r} has no input: use with_input(x)")
        return raster_lanes(np.asarray(self.x, dtype=np.int64), config.array_rows)

    def weight_lanes(self, config: AccelConfig) -> np.ndarray:
        """The weight stream, ``(beats, array_cols)``: the tiles the engine visits, per block."""
        p, q = self.conv_size()
        return weight_lanes(config, self.effective_weights(config), p * q, row_length=q,
                            tile_ranges=self.tile_ranges(config))

    def expected_lanes(self, config: AccelConfig) -> np.ndarray:
        """The output stream the golden model predicts, ``(beats, array_cols)``."""
        return raster_lanes(self.golden(config.act_width, config.weight_width),
                            config.array_cols)

    # Beat lists, as the cocotb stream drivers take them.

    def pixel_beats(self, config: AccelConfig) -> list[dict]:
        return beat_dicts(self.pixel_lanes(config))

    def weight_beats(self, config: AccelConfig) -> list[list[int]]:
        return self.weight_lanes(config).tolist()

    def expected_beats(self, config: AccelConfig) -> list[dict]:
        return beat_dicts(self.expected_lanes(config))

    # -- fit ------------------------------------------------------------------------

    def misfits(self, config: AccelConfig) -> list[str]:
        """What of this layer the build cannot run, one phrase per problem (empty: it fits).

        Checks every run-time maximum of ``config`` (channels, image size,
        kernel, stride, dilation, padding, groups, pooling, the convolution
        output size), the operand and parameter widths (the folded bias
        included), the zero points, and the layer's own consistency (groups,
        a kernel within the padded input).
        """
        from ..hw.conv_accel import conv_accel_register_map

        cfg = config
        regmap = conv_accel_register_map(cfg)
        problems = []

        def at_most(what, value, limit, name):
            if value > limit:
                problems.append(f"{what} {value} > {name} {limit}")

        c, h, w = self.in_shape
        m, _, r, s = self.w.shape
        g = self.geometry()
        at_most("input channels", c, cfg.max_in_channels, "max_in_channels")
        at_most("output channels", m, cfg.max_out_channels, "max_out_channels")
        at_most("height", h, cfg.max_height, "max_height")
        at_most("width", w, cfg.max_width, "max_width")
        at_most("kernel", max(r, s), cfg.max_kernel, "max_kernel")
        at_most("stride", max(g["stride_h"], g["stride_w"]), cfg.max_stride, "max_stride")
        at_most("dilation", max(g["dilation_h"], g["dilation_w"]), cfg.max_dilation,
                "max_dilation")
        at_most("padding", max(g["pad_top"], g["pad_bottom"], g["pad_left"], g["pad_right"]),
                cfg.max_padding, "max_padding")
        at_most("groups", self.groups, cfg.max_in_channels, "max_in_channels")
        if self.pool is not None:
            mode, kernel, stride = self.pool
            if not all(isinstance(v, (int, np.integer)) for v in (kernel, stride)):
                problems.append(f"pooling {kernel}/{stride}: the pooling unit takes a square "
                                "window and one stride (integers)")
            else:
                at_most("pooling window", kernel, cfg.max_pool_kernel, "max_pool_kernel")
                at_most("pooling stride", stride, cfg.max_pool_stride, "max_pool_stride")
        ranges = [("weight", self.w, cfg.weight_min, cfg.weight_max),
                  ("bias", self._per_channel(0 if self.bias is None else self.bias),
                   cfg.bias_min, cfg.bias_max),
                  ("multiplier", self._per_channel(self.multiplier), 0, cfg.max_multiplier),
                  ("shift", self._per_channel(self.shift), 0, cfg.max_shift),
                  ("zero point", np.array([self.input_zero_point, self.output_zero_point]),
                   cfg.act_min, cfg.act_max)]
        if self.x is not None:
            ranges.insert(0, ("activation", self.x, cfg.act_min, cfg.act_max))
        for what, values, low, high in ranges:
            values = np.asarray(values)
            if values.size and (values.min() < low or values.max() > high):
                problems.append(f"{what} values {int(values.min())}..{int(values.max())} "
                                f"outside {low}..{high}")
        if not problems:
            folded = self.folded_bias()
            if folded.min() < cfg.bias_min or folded.max() > cfg.bias_max:
                problems.append(f"bias with the input zero point folded in "
                                f"({int(folded.min())}..{int(folded.max())}) outside "
                                f"{cfg.bias_min}..{cfg.bias_max} (bias_width {cfg.bias_width})")
        if self.activation == "clamp":
            low, high = signed_field_range(regmap, cfg)
            if not low <= (self.clamp_high or 0) <= high:
                problems.append(f"clamp_high {self.clamp_high} outside {low}..{high}")
        if not hardware_zero_points(regmap):
            # Without the register only an input zero point with no padding can run
            # (all of it folds into the bias); the network planner pads on the host.
            if self.output_zero_point:
                problems.append(f"output zero point {self.output_zero_point} needs the "
                                "zero_points register, which this build does not have")
            if self.input_zero_point and any(_padding4(self.padding)):
                problems.append(f"padding with input zero point {self.input_zero_point} needs "
                                "the zero_points register, which this build does not have")
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

        Call it before a layer starts: the hardware refuses such a layer
        (``error.exceeds_max`` and friends), and a host that waits for its
        output would wait for nothing.
        """
        problems = self.misfits(config)
        if problems:
            raise ValueError(f"layer {self.name!r} does not fit the build "
                             f"({config.array_rows}x{config.array_cols} array): "
                             + "; ".join(problems))

