"""Layers of any size as several hardware passes.

A layer larger than the build's maxima runs as passes, each a layer that
fits:

* **spatial stripes**: the output (after pooling) is cut into rectangles;
  each pass reads the input rows and columns its outputs need, halo
  included (kernel span, stride, dilation and the pooling window overlap).
  Padding at the image border is the hardware's where it fits
  ``max_padding`` (and, with a nonzero input zero point, where the build
  pads with the zero point); otherwise the host sends rows and columns of
  the input zero point, which is the same arithmetic;
* **output-channel groups**: at most ``max_out_channels`` output channels
  per pass; a grouped (depthwise) layer takes whole channel groups, so its
  input channels split too.

The reduction (``C/groups * R * S``) is never split: the top returns
requantized activations, not raw accumulators, so partial sums cannot be
added on the host. A layer with more input channels per group than
``max_in_channels``, or a kernel, stride or dilation above the build's, is
refused with the parameter to raise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..hw.config import AccelConfig
from ..hw.conv_accel import conv_accel_register_map
from .layer import ConvLayer, hardware_zero_points

__all__ = ["Pass", "TilingError", "assemble", "pass_input", "pass_layer", "plan_passes"]


class TilingError(ValueError):
    """A layer that no set of passes can run on the build (the message names the parameter)."""


@dataclass(frozen=True)
class Pass:
    """One hardware pass of a layer.

    Attributes
    ----------
    out_rows, out_cols : (start, stop)
        The layer outputs (after pooling) the pass produces.
    in_rows, in_cols : (start, stop)
        Input rows and columns it reads; outside ``0 .. H`` (``W``) they are
        sent as the input zero point.
    padding : (top, bottom, left, right)
        The hardware's padding for the pass.
    in_channels, out_channels : (start, stop)
        Channel ranges of the full layer.
    groups : int
        Channel groups of the pass.
    """

    out_rows: tuple[int, int]
    out_cols: tuple[int, int]
    in_rows: tuple[int, int]
    in_cols: tuple[int, int]
    padding: tuple[int, int, int, int]
    in_channels: tuple[int, int]
    out_channels: tuple[int, int]
    groups: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, image: dict) -> Pass:
        return cls(**{key: tuple(value) if isinstance(value, list) else value
                      for key, value in image.items()})


@dataclass(frozen=True)
class _Axis:
    """One spatial axis of a layer: input size, padding, kernel, stride, dilation, pooling."""

    size: int
    pad_before: int
    pad_after: int
    kernel: int
    stride: int
    dilation: int
    pool_kernel: int
    pool_stride: int

    @property
    def conv_length(self) -> int:
        return ((self.size + self.pad_before + self.pad_after - self.dilation * (self.kernel - 1)
                 - 1) // self.stride + 1)

    @property
    def out_length(self) -> int:
        return (self.conv_length - self.pool_kernel) // self.pool_stride + 1

    def span(self, first: int, stop: int, max_padding: int, hardware_padding: bool):
        """Inputs and padding for outputs ``first .. stop - 1``:
        ``(in_start, in_stop, pad_before, pad_after, conv_length)``."""
        conv_first = first * self.pool_stride
        conv_stop = (stop - 1) * self.pool_stride + self.pool_kernel
        start = conv_first * self.stride - self.pad_before
        end = (conv_stop - 1) * self.stride + self.dilation * (self.kernel - 1) + 1 \
            - self.pad_before
        before, after = max(0, -start), max(0, end - self.size)
        # Border padding the hardware generates; the rest is sent as zero-point rows,
        # and all of it when the pass would read no input row at all.
        reads_input = start < self.size and end > 0
        pad_before = pad_after = 0
        if hardware_padding and reads_input and before <= max_padding:
            start, pad_before = max(0, start), before
        if hardware_padding and reads_input and after <= max_padding:
            end, pad_after = min(self.size, end), after
        return start, end, pad_before, pad_after, conv_stop - conv_first


def _stripes(axis: _Axis, max_size: int, max_padding: int, hardware_padding: bool,
             what: str, parameter: str, layer_name: str):
    """Cut ``axis`` into the fewest passes whose input and convolution output fit ``max_size``."""

    def fits(first, stop):
        start, end, _, _, conv = axis.span(first, stop, max_padding, hardware_padding)
        return end - start <= max_size and conv <= max_size

    stripes, first = [], 0
    while first < axis.out_length:
        if not fits(first, first + 1):
            start, end, _, _, _ = axis.span(first, first + 1, max_padding, hardware_padding)
            raise TilingError(f"layer {layer_name!r}: one output {what} needs {end - start} "
                              f"input {what}s (kernel, dilation and pooling window), more than "
                              f"{parameter} {max_size}; raise {parameter}")
        stop = first + 1
        while stop < axis.out_length and fits(first, stop + 1):
            stop += 1
        stripes.append((first, stop) + axis.span(first, stop, max_padding, hardware_padding)[:4])
        first = stop
    return stripes


def _channel_chunks(layer: ConvLayer, config: AccelConfig):
    """``(in_channels, out_channels, groups)`` ranges of each output-channel pass."""
    c, m, groups = layer.in_shape[0], layer.out_channels, layer.groups
    c_per_group, m_per_group = c // groups, m // groups
    if c_per_group > config.max_in_channels:
        raise TilingError(
            f"layer {layer.name!r}: {c_per_group} input channels"
            + (" per group" if groups > 1 else "") + f" > max_in_channels "
            f"{config.max_in_channels}; a reduction cannot be split across passes (the "
            f"accelerator returns requantized outputs, not raw sums): raise max_in_channels "
            f"to at least {c_per_group}")
    if groups == 1:
        step = config.max_out_channels
        if step > config.array_cols:     # keep passes aligned to whole output tiles
            step -= step % config.array_cols
        return [((0, c), (m0, min(m, m0 + step)), 1) for m0 in range(0, m, step)]
    if m_per_group > config.max_out_channels:
        # One group at a time, its outputs in chunks: each pass is a dense layer.
        return [((g * c_per_group, (g + 1) * c_per_group),
                 (g * m_per_group + m0,
                  g * m_per_group + min(m_per_group, m0 + config.max_out_channels)), 1)
                for g in range(groups) for m0 in range(0, m_per_group, config.max_out_channels)]
    per_pass = min(config.max_in_channels // c_per_group, config.max_out_channels // m_per_group,
                   config.max_in_channels)      # the groups register's maximum
    return [((g0 * c_per_group, min(groups, g0 + per_pass) * c_per_group),
             (g0 * m_per_group, min(groups, g0 + per_pass) * m_per_group),
             min(groups, g0 + per_pass) - g0)
            for g0 in range(0, groups, per_pass)]


def plan_passes(layer: ConvLayer, config: AccelConfig) -> list[Pass]:
    """The passes that run ``layer`` on ``config`` (one when it fits as it is).

    Raises
    ------
    TilingError
        When no set of passes can: the message names the layer, the reason
        and the configuration parameter to raise.
    """
    cfg = config
    g = layer.geometry()
    name = layer.name
    for what, value, limit, parameter in (
            ("kernel", max(g["kernel_h"], g["kernel_w"]), cfg.max_kernel, "max_kernel"),
            ("stride", max(g["stride_h"], g["stride_w"]), cfg.max_stride, "max_stride"),
            ("dilation", max(g["dilation_h"], g["dilation_w"]), cfg.max_dilation,
             "max_dilation")):
        if value > limit:
            raise TilingError(f"layer {name!r}: {what} {value} > {parameter} {limit}; raise "
                              f"{parameter} (passes cannot split a kernel)")
    pool_kernel, pool_stride = 1, 1
    if layer.pool is not None:
        _, pool_kernel, pool_stride = layer.pool
        if pool_kernel > cfg.max_pool_kernel or pool_stride > cfg.max_pool_stride:
            raise TilingError(f"layer {name!r}: pooling {pool_kernel}/{pool_stride} is above "
                              f"max_pool_kernel {cfg.max_pool_kernel} / max_pool_stride "
                              f"{cfg.max_pool_stride}")
    regmap = conv_accel_register_map(cfg)
    zero_points = hardware_zero_points(regmap)
    if layer.output_zero_point and not zero_points:
        raise TilingError(f"layer {name!r}: output zero point {layer.output_zero_point} needs "
                          "the zero_points register, which this build does not have")
    # Without the register the hardware pads with 0: pad with the zero point on the host.
    hardware_padding = zero_points or layer.input_zero_point == 0
    try:
        layer.conv_size()
    except ValueError as error:
        raise TilingError(f"layer {name!r}: {error}") from None
    rows = _Axis(g["height"], g["pad_top"], g["pad_bottom"], g["kernel_h"], g["stride_h"],
                 g["dilation_h"], pool_kernel, pool_stride)
    cols = _Axis(g["width"], g["pad_left"], g["pad_right"], g["kernel_w"], g["stride_w"],
                 g["dilation_w"], pool_kernel, pool_stride)
    if rows.out_length < 1 or cols.out_length < 1:
        raise TilingError(f"layer {name!r}: pooling window {pool_kernel} larger than the "
                          f"{rows.conv_length}x{cols.conv_length} convolution output")
    row_stripes = _stripes(rows, cfg.max_height, cfg.max_padding, hardware_padding, "row",
                           "max_height", name)
    col_stripes = _stripes(cols, cfg.max_width, cfg.max_padding, hardware_padding, "column",
                           "max_width", name)
    passes = []
    for in_channels, out_channels, groups in _channel_chunks(layer, cfg):
        for r0, r1, y0, y1, pad_top, pad_bottom in row_stripes:
            for c0, c1, x0, x1, pad_left, pad_right in col_stripes:
                passes.append(Pass((r0, r1), (c0, c1), (y0, y1), (x0, x1),
                                   (pad_top, pad_bottom, pad_left, pad_right), in_channels,
                                   out_channels, groups))
    return passes


def pass_input(layer: ConvLayer, step: Pass, x: np.ndarray) -> np.ndarray:
    """The input of pass ``step``: its channels, rows and columns of ``x``, with rows and
    columns outside the image filled with the input zero point."""
    c0, c1 = step.in_channels
    (y0, y1), (x0, x1) = step.in_rows, step.in_cols
    _, h, w = x.shape
    out = np.full((c1 - c0, y1 - y0, x1 - x0), layer.input_zero_point, dtype=np.int64)
    sy0, sy1, sx0, sx1 = max(0, y0), min(h, y1), max(0, x0), min(w, x1)
    if sy0 < sy1 and sx0 < sx1:     # (a pass may read padding only)
        out[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = x[c0:c1, sy0:sy1, sx0:sx1]
    return out


def pass_layer(layer: ConvLayer, step: Pass, x: np.ndarray | None = None) -> ConvLayer:
    """The layer pass ``step`` runs (with its input when ``x``, the full input, is given)."""
    m0, m1 = step.out_channels
    c0, c1 = step.in_channels

    def channels(value):
        value = np.asarray(value)
        return value[m0:m1] if value.ndim else value

    # (M, C/groups, R, S): a pass of whole groups, or of one group's outputs as a dense
    # layer over that group's input channels, takes its output channels' rows as they are.
    w = np.asarray(layer.w)[m0:m1]
    shape = (c1 - c0, step.in_rows[1] - step.in_rows[0], step.in_cols[1] - step.in_cols[0])
    return dataclasses.replace(
        layer, x=None if x is None else pass_input(layer, step, x),
        input_shape=None if x is not None else shape, w=w,
        bias=None if layer.bias is None else channels(layer.bias),
        multiplier=channels(layer.multiplier), shift=channels(layer.shift),
        padding=step.padding, groups=step.groups,
        name=layer.name if _single(step, layer) else
        f"{layer.name} [rows {step.out_rows[0]}:{step.out_rows[1]}, cols "
        f"{step.out_cols[0]}:{step.out_cols[1]}, channels {m0}:{m1}]")


def _single(step: Pass, layer: ConvLayer) -> bool:
    po, qo = layer.out_size()
    return (step.out_rows == (0, po) and step.out_cols == (0, qo)
            and step.out_channels == (0, layer.out_channels))


def assemble(layer: ConvLayer, passes: list[Pass], outputs: list[np.ndarray]) -> np.ndarray:
    """The layer's output ``(M, P', Q')`` from its passes' outputs."""
    po, qo = layer.out_size()
    out = np.zeros((layer.out_channels, po, qo), dtype=np.int64)
    filled = np.zeros(out.shape, dtype=bool)
    for step, part in zip(passes, outputs, strict=True):
        index = (slice(*step.out_channels), slice(*step.out_rows), slice(*step.out_cols))
        out[index] = part
        filled[index] = True
    if not filled.all():
        raise ValueError(f"layer {layer.name!r}: the passes leave outputs uncovered")
    return out

