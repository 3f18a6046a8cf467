"""Float requantization scales as the hardware's ``(M0, sh)`` pairs.

A quantized layer scales its accumulator by ``s_x * s_w[m] / s_y``; the
hardware multiplies by an unsigned ``mult_width``-bit ``M0`` and shifts
right by ``sh`` (``0 .. 2**shift_width - 1``, docs/arithmetic.md
"Requantization"). :func:`multiplier_shift` picks, per channel, the largest
shift that keeps ``M0`` within ``mult_width`` bits, so the relative error of
``M0 / 2**sh`` is at most ``2**-mult_width`` for every scale in range.
"""

from __future__ import annotations

import math

import numpy as np

from ..hw.config import AccelConfig

__all__ = ["ScaleError", "multiplier_shift", "onnx_scale"]


class ScaleError(ValueError):
    """A scale the build's multiplier and shift cannot express."""


def onnx_scale(x_scale, w_scale, y_scale) -> np.ndarray:
    """``x_scale * w_scale / y_scale`` in float32, in onnxruntime's order of operations."""
    return (np.float32(x_scale) * np.asarray(w_scale, dtype=np.float32)) / np.float32(y_scale)


def multiplier_shift(scales, config: AccelConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """``(M0, sh, error)``: per-channel pairs for ``scales`` and the largest relative error.

    ``M0[m] / 2**sh[m]`` is the value closest to ``scales[m]`` with the
    largest ``sh <= 2**shift_width - 1`` for which ``M0 < 2**mult_width``.

    Raises
    ------
    ScaleError
        For a scale that is not positive and finite, below what the largest
        shift reaches (``M0`` would be 0), or at least ``2**mult_width``.
    """
    pairs, error = [], 0.0
    limit = 1 << config.mult_width
    for scale in np.atleast_1d(np.asarray(scales, dtype=np.float64)).tolist():
        if not math.isfinite(scale) or scale <= 0:
            raise ScaleError(f"requantization scale {scale!r} is not a positive number")
        # Largest shift with M0 < 2**mult_width (scale * 2**sh is exact in float64).
        shift = min(config.max_shift, max(0, config.mult_width - 1 - math.frexp(scale)[1] + 1))
        while shift > 0 and math.floor(scale * 2.0 ** shift + 0.5) >= limit:
            shift -= 1
        multiplier = math.floor(scale * 2.0 ** shift + 0.5)
        if multiplier >= limit:
            raise ScaleError(f"requantization scale {scale:.6g} is at least 2**mult_width "
                             f"({limit}); raise mult_width")
        if multiplier == 0:
            raise ScaleError(f"requantization scale {scale:.6g} is below 2**-{config.max_shift + 1}"
                             f", the smallest the shift reaches; raise shift_width")
        pairs.append((multiplier, shift))
        error = max(error, abs(multiplier / 2.0 ** shift - scale) / scale)
    return (np.array([p[0] for p in pairs], dtype=np.int64),
            np.array([p[1] for p in pairs], dtype=np.int64), error)
