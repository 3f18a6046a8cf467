"""The layer description of the cocotb benches: :class:`ConvLayer` now lives in the host runtime.

:class:`convaccel.host.layer.ConvLayer` turns a golden-model layer into the
``layer`` port fields, the register and parameter writes, the pixel and
weight streams and the output beats the golden model predicts; the benches
keep importing it from here. :func:`raster_array` reads output beats (the
benches' ``{"data", "last"}`` dicts or lane lists) back into ``(M, P, Q)``.
"""

from __future__ import annotations

import numpy as np

from ..host.layer import ConvLayer
from ..host.streams import unraster
from .window_streams import raster_beats

__all__ = ["ConvLayer", "raster_array", "raster_beats"]


def raster_array(beats: list, channels: int, height: int, width: int, lanes: int) -> np.ndarray:
    """Output beats (``data`` lists or dicts with ``data``) back to ``(M, P, Q)``: inverse of
    :func:`raster_beats`."""
    data = np.array([beat["data"] if isinstance(beat, dict) else beat for beat in beats],
                    dtype=np.int64).reshape(len(beats), lanes)
    return unraster(data, channels, height, width)
