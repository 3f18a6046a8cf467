"""Host-side stream orders of :class:`~convaccel.hw.window_generator.WindowGenerator`.

``pixel_beats`` turns a ``(C, H, W)`` feature map into the generator's input
beats, ``window_beats`` the golden windows (``golden.extract_windows``) into
the output beats it must produce, in the orders the module docstring gives.
With an input zero point ``zx`` the windows are those of ``x - zx`` (zero
padded) plus ``zx``: padding reads as ``zx``, as ``golden.conv_layer`` does
it (docs/arithmetic.md, "Zero points").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..golden import as_padding4, as_pair, extract_windows
from ..hw.config import AccelConfig
from ..host.streams import beat_dicts, raster_lanes

__all__ = ["ConvShape", "pixel_beats", "raster_beats", "window_beats"]


@dataclass(frozen=True)
class ConvShape:
    """One convolution's run-time shape (the ``shape`` port's fields)."""

    channels: int
    height: int
    width: int
    kernel: tuple = (3, 3)
    stride: tuple = (1, 1)
    dilation: tuple = (1, 1)
    padding: tuple = (0, 0, 0, 0)   # top, bottom, left, right

    def port_fields(self) -> dict:
        kh, kw = as_pair(self.kernel, "kernel")
        uh, uw = as_pair(self.stride, "stride")
        dh, dw = as_pair(self.dilation, "dilation")
        pt, pb, pl, pr = as_padding4(self.padding)
        return {"height": self.height, "width": self.width, "channels": self.channels,
                "kernel_h": kh, "kernel_w": kw, "stride_h": uh, "stride_w": uw,
                "dilation_h": dh, "dilation_w": dw,
                "pad_top": pt, "pad_bottom": pb, "pad_left": pl, "pad_right": pr}

    def windows(self, x: np.ndarray) -> np.ndarray:
        return extract_windows(x, self.kernel, self.stride, self.padding, self.dilation)


def _groups(config: AccelConfig, channels: int) -> int:
    return -(-channels // config.array_rows)


def raster_beats(lanes: int, y: np.ndarray) -> list[dict]:
    """``y (C, H, W)`` as beats: row, column, channel group of ``lanes`` (zero padded);
    ``last`` on the final one. The order of the pixel input and of the layer output."""
    return beat_dicts(raster_lanes(np.asarray(y, dtype=np.int64), lanes))


def pixel_beats(config: AccelConfig, x: np.ndarray) -> list[dict]:
    """``x (C, H, W)`` as input beats: y, x, channel group; ``last`` on the final one."""
    return raster_beats(config.array_rows, x)


def window_beats(config: AccelConfig, shape: ConvShape, x: np.ndarray,
                 zero_point: int = 0) -> list[dict]:
    """The golden windows of ``x`` in the generator's output order, padding read as
    ``zero_point``; lanes beyond ``C`` are 0."""
    lanes, block = config.array_rows, config.array_block
    x = np.asarray(x, dtype=np.int64)
    win = shape.windows(x - zero_point) + zero_point       # (P, Q, R, S, C)
    p_count, q_count, r_count, s_count, c = win.shape
    groups = _groups(config, c)
    padded = np.zeros(win.shape[:4] + (groups * lanes,), dtype=np.int64)
    padded[..., :c] = win
    beats = []
    for p in range(p_count):
        for start in range(0, q_count, block):
            stop = min(q_count, start + block)
            for r in range(r_count):
                for s in range(s_count):
                    for g in range(groups):
                        for q in range(start, stop):
                            beats.append({"data": padded[p, q, r, s, g * lanes:(g + 1) * lanes]
                                          .tolist(), "last": 0})
    beats[-1]["last"] = 1
    return beats
