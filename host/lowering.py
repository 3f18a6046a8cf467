"""Lowering: one layer to the register writes and stream bytes of the ``conv_accel`` top.

:func:`lower` turns a :class:`~convaccel.host.layer.ConvLayer` that fits a
build into a :class:`LoweredLayer`: every register write before ``start``
(layer registers, then each output channel's parameters), the weight stream
as bytes, and the sizes of the pixel and output streams. Nothing in it
depends on the input values, so a network program stores it once; the
pixel bytes are packed from each input at run time (:meth:`LoweredLayer.pixels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hw.config import AccelConfig
from ..hw.conv_accel import conv_accel_register_map
from .layer import ConvLayer
from .streams import beat_bytes, pack, raster_lanes, unpack, unraster

__all__ = ["LoweredLayer", "lower"]


@dataclass
class LoweredLayer:
    """One hardware layer, ready to send.

    Attributes
    ----------
    name : str
    writes : list of (register, offset, word)
        Register writes in order, before ``control.start``: the layer
        registers, then for each output channel ``param_channel``,
        ``param_bias`` (the input zero point folded in), ``param_multiplier``,
        ``param_shift``, ``param_write``.
    weights : bytes
        The whole weight stream (every block's repetition included).
    in_shape, out_shape : tuple
        ``(C, H, W)`` of the input, ``(M, P', Q')`` of the output.
    pixel_bytes, out_bytes : int
        Sizes of the pixel and output streams.
    real_macs : int
        ``P*Q*M*(C/groups)*R*S``: what the ``macs`` counter will show.
    """

    name: str
    writes: list[tuple[str, int, int]]
    weights: bytes
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    pixel_bytes: int
    out_bytes: int
    real_macs: int

    def pixels(self, config: AccelConfig, x: np.ndarray) -> bytes:
        """The pixel stream of input ``x (C, H, W)``."""
        x = np.asarray(x, dtype=np.int64)
        if tuple(x.shape) != tuple(self.in_shape):
            raise ValueError(f"layer {self.name!r} takes an input of shape {self.in_shape}, "
                             f"got {tuple(x.shape)}")
        return pack(config, "pixels", raster_lanes(x, config.array_rows))

    def decode(self, config: AccelConfig, data: bytes) -> np.ndarray:
        """The output stream's bytes as ``(M, P', Q')``."""
        if len(data) != self.out_bytes:
            raise ValueError(f"layer {self.name!r}: expected {self.out_bytes} output bytes, "
                             f"got {len(data)}")
        return unraster(unpack(config, "out", data), *self.out_shape)


def lower(layer: ConvLayer, config: AccelConfig) -> LoweredLayer:
    """Register writes and weight bytes of ``layer`` on the build ``config``.

    Raises
    ------
    ValueError
        Naming everything of the layer the build cannot run
        (:meth:`ConvLayer.check_fits`).
    """
    layer.check_fits(config)
    regmap = conv_accel_register_map(config)
    writes = []
    for register, fields in (list(layer.register_fields(regmap).items())
                             + layer.param_register_writes()):
        reg = regmap.register(register)
        writes.append((register, reg.offset, reg.pack(fields)))
    c, h, w = layer.in_shape
    m = layer.out_channels
    po, qo = layer.out_size()
    pixel_beats = h * w * -(-c // config.array_rows)
    out_beats = po * qo * -(-m // config.array_cols)
    return LoweredLayer(
        name=layer.name, writes=writes,
        weights=pack(config, "weights", layer.weight_lanes(config)),
        in_shape=(c, h, w), out_shape=(m, po, qo),
        pixel_bytes=pixel_beats * beat_bytes(config, "pixels"),
        out_bytes=out_beats * beat_bytes(config, "out"), real_macs=layer.real_macs())
