"""Layer mappings: the same layer rewritten so the array's rows and columns fill.

The engine puts input channels on the array's rows and output channels on
its columns. A first layer (``C`` = 1 or 3) fills 1 or 3 of 8 rows; a layer
with few output channels leaves columns idle. Two exact rewrites of the
layer, done by the host before it is lowered, fix that without new
hardware:

**Width taps into channels** (``fold_width``): the ``S`` horizontal kernel
taps become channels. The host builds ``x'[s*C + c, h, j] = x_pad[c, h,
j*Uw + s*Dw]`` for the ``Q`` output columns ``j`` (``x_pad``: the input
padded left and right with the input zero point) and runs an ``R x 1``
kernel ``w'[m, s*C + c, r, 0] = w[m, c, r, s]`` with stride ``(Uh, 1)``,
dilation ``(Dh, 1)`` and only the top/bottom padding. Every output is the
same sum of the same products, so the output (and any pooling after it) is
unchanged. A C=1 5x5 window then fills 5 rows per slice instead of 1.

**Output positions in columns** (``positions = P``): ``P`` neighbouring
output columns of ``M`` channels become ``P*M`` channels of one position.
Channel ``p*M + m`` holds the kernel shifted by ``p*Uw`` columns inside a
kernel widened to ``Se + (P-1)*Uw`` (``Se`` the dilated width), stride
``P*Uw`` across: the window of position ``j`` covers output columns
``j*P ... j*P + P-1``. The host pads the input on the right as far as the
last group of positions needs, and puts the output columns back in order
(dropping the ones past ``Q``). The zero weights of the widened kernel cost
array time, so the mapping is only chosen when the idle columns cost more.
Not with pooling (the pooling unit pools the reordered columns).

Both need ``groups = 1``. :func:`choose_mapping` picks, per layer and build,
the mapping with the fewest estimated cycles (the engine's step model:
``P x ceil(Q/B)`` blocks, each ``kt x mt`` steps of ``max(block, rows + 2)``
cycles) among those that fit the build; ``direct`` (no rewrite) wins ties.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..hw.config import AccelConfig
from .layer import ConvLayer

__all__ = ["MAPPING_CHOICES", "Mapping", "choose_mapping", "estimated_cycles", "mapped_layer",
           "check_mapping_choice", "pick_mapping", "restore_output"]

#: How a caller asks for a layer's mapping: ``auto`` (:func:`choose_mapping`)
#: or ``direct`` (the layer as written).
MAPPING_CHOICES = ("auto", "direct")


@dataclass(frozen=True)
class Mapping:
    """How a layer is rewritten before it runs (see the module).

    Attributes
    ----------
    positions : int
        Output columns side by side in the array's columns (1: none).
    fold_width : bool
        Horizontal kernel taps folded into channels.
    """

    positions: int = 1
    fold_width: bool = False

    def __str__(self) -> str:
        parts = []
        if self.positions > 1:
            parts.append(f"{self.positions} positions in columns")
        if self.fold_width:
            parts.append("width taps in rows")
        return " + ".join(parts) or "direct"

    @property
    def direct(self) -> bool:
        return self.positions == 1 and not self.fold_width


def _needs_input(layer: ConvLayer) -> np.ndarray:
    if layer.x is None:
        raise ValueError(f"layer {layer.name!r}: a mapping rewrites the input; give it one")
    return np.asarray(layer.x, dtype=np.int64)


def _pad_width(layer: ConvLayer, x: np.ndarray, left: int, right: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (left, right)),
                  constant_values=int(layer.input_zero_point))


def _tiled(value, times: int):
    """A per-channel parameter repeated for ``times`` groups of channels (scalars stay)."""
    if value is None or np.ndim(value) == 0:
        return value
    return np.tile(np.asarray(value), times)


def positions_layer(layer: ConvLayer, positions: int) -> ConvLayer:
    """``layer`` with ``positions`` output columns side by side in its channels."""
    x = _needs_input(layer)
    g = layer.geometry()
    q = layer.conv_size()[1]
    m, cg, r, s = layer.w.shape
    uw, dw = g["stride_w"], g["dilation_w"]
    span = (s - 1) * dw + 1
    width = span + (positions - 1) * uw
    groups_out = -(-q // positions)
    padded = g["pad_left"] + g["width"] + g["pad_right"]
    need = (groups_out - 1) * positions * uw + width
    x = _pad_width(layer, x, g["pad_left"], g["pad_right"] + max(0, need - padded))
    w = np.zeros((positions * m, cg, r, width), dtype=np.int64)
    for p in range(positions):
        w[p * m:(p + 1) * m, :, :, p * uw:p * uw + span:dw] = layer.w
    return dataclasses.replace(
        layer, x=x, w=w, input_shape=None, bias=_tiled(layer.bias, positions),
        multiplier=_tiled(layer.multiplier, positions), shift=_tiled(layer.shift, positions),
        stride=(g["stride_h"], positions * uw), dilation=(g["dilation_h"], 1),
        padding=(g["pad_top"], g["pad_bottom"], 0, 0))


def width_folded_layer(layer: ConvLayer) -> ConvLayer:
    """``layer`` with its horizontal kernel taps folded into channels."""
    x = _needs_input(layer)
    g = layer.geometry()
    q = layer.conv_size()[1]
    m, c, r, s = layer.w.shape
    uw, dw = g["stride_w"], g["dilation_w"]
    xp = _pad_width(layer, x, g["pad_left"], g["pad_right"])
    columns = [xp[:, :, k * dw:k * dw + (q - 1) * uw + 1:uw] for k in range(s)]
    folded = np.concatenate(columns, axis=0)                  # (S*C, H, Q)
    w = np.asarray(layer.w, dtype=np.int64).transpose(0, 3, 1, 2).reshape(m, s * c, r, 1)
    return dataclasses.replace(
        layer, x=folded, w=w, input_shape=None, stride=(g["stride_h"], 1),
        dilation=(g["dilation_h"], 1), padding=(g["pad_top"], g["pad_bottom"], 0, 0))


def mapped_layer(layer: ConvLayer, mapping: Mapping) -> ConvLayer:
    """The layer the hardware runs for ``layer`` under ``mapping``.

    Raises
    ------
    ValueError
        If the mapping does not apply (grouped layer, or positions with pooling).
    """
    if mapping.direct:
        return layer
    if layer.groups != 1:
        raise ValueError(f"layer {layer.name!r}: mapping {mapping} needs groups = 1, "
                         f"got {layer.groups}")
    if mapping.positions > 1 and layer.pool is not None:
        raise ValueError(f"layer {layer.name!r}: mapping {mapping} cannot run with pooling")
    hw = positions_layer(layer, mapping.positions) if mapping.positions > 1 else layer
    if mapping.fold_width:
        hw = width_folded_layer(hw)
    return dataclasses.replace(hw, name=f"{layer.name} [{mapping}]")


def restore_output(layer: ConvLayer, mapping: Mapping, output: np.ndarray) -> np.ndarray:
    """The output of ``layer`` from the output of its mapped layer."""
    if mapping.positions == 1:
        return output
    m, p = layer.out_channels, mapping.positions
    _, rows, groups_out = output.shape
    q = layer.conv_size()[1]
    columns = output.reshape(p, m, rows, groups_out).transpose(1, 2, 3, 0)
    return columns.reshape(m, rows, groups_out * p)[:, :, :q]


def estimated_cycles(layer: ConvLayer, config: AccelConfig) -> int:
    """Busy cycles of a ``groups = 1`` layer by the engine's step model (compute
    and weight loads only)."""
    rows, cols = config.array_rows, config.array_cols
    m, c, r, s = layer.w.shape
    height, width = layer.conv_size()
    tiles = r * s * -(-c // rows) * -(-m // cols)
    steps = sum(max(min(config.array_block, width - start), rows + 2)
                for start in range(0, width, config.array_block))
    return height * tiles * steps


def choose_mapping(layer: ConvLayer, config: AccelConfig) -> Mapping:
    """The mapping of ``layer`` with the fewest estimated cycles that fits ``config``
    (``direct`` for grouped layers and layers without an input)."""
    if layer.groups != 1 or layer.x is None:
        return Mapping()
    most = max(1, config.array_cols // layer.out_channels) if layer.pool is None else 1
    # Folding cannot help when the channels already fill the rows.
    folds = (False,) if layer.in_shape[0] % config.array_rows == 0 else (False, True)
    best, best_cycles = Mapping(), estimated_cycles(layer, config)
    for positions in range(1, most + 1):
        for fold in folds:
            mapping = Mapping(positions, fold)
            if mapping.direct:
                continue
            try:
                hw = mapped_layer(layer, mapping)
                hw.check_fits(config)
            except ValueError:
                continue
            cycles = estimated_cycles(hw, config)
            if cycles < best_cycles:
                best, best_cycles = mapping, cycles
    return best


def pick_mapping(layer: ConvLayer, config: AccelConfig, how: str = "auto") -> Mapping:
    """The mapping ``how`` (one of :data:`MAPPING_CHOICES`) gives ``layer`` on ``config``.

    Raises
    ------
    ValueError
        If ``how`` is not one of :data:`MAPPING_CHOICES`.
    """
    check_mapping_choice(how)
    return choose_mapping(layer, config) if how == "auto" else Mapping()


def check_mapping_choice(how: str) -> None:
    """Raise ``ValueError`` naming ``how`` unless it is one of :data:`MAPPING_CHOICES`."""
    if how not in MAPPING_CHOICES:
        raise ValueError(f"mapping must be one of {', '.join(map(repr, MAPPING_CHOICES))}, "
                         f"got {how!r}")
