"""Fully connected layers on a batch: N inputs side by side in one pass.

A fully connected layer runs as a convolution whose kernel covers its
input exactly (``R = H``, ``S = W``, no padding, no pooling): one output
position. Run alone, each input streams the whole weight matrix through
the array for a block of one position, so the array is mostly filling and
draining. Placed side by side along the width, ``N`` inputs form one
``C x H x (N*W)`` image; with stride ``(1, W)`` every window is exactly one
input, the layer has ``N`` output positions, and each weight tile is loaded
once and used for all ``N`` (weight-stationary). The results are the same
integers as ``N`` separate runs (each window sees only its own input).

Limits: ``W <= max_stride`` (the window steps one input per position) and
``N * W <= max_width``; :func:`batch_limit` gives the largest ``N``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..hw.config import AccelConfig
from .layer import ConvLayer

__all__ = ["batch_limit", "batchable", "batched_layer", "split_batch"]


def batchable(layer: ConvLayer) -> bool:
    """Whether ``layer`` is fully connected: its kernel covers its unpadded input."""
    c, h, w = layer.in_shape
    g = layer.geometry()
    return (layer.pool is None and (g["kernel_h"], g["kernel_w"]) == (h, w)
            and not any(g[f"pad_{side}"] for side in ("top", "bottom", "left", "right")))


def batch_limit(layer: ConvLayer, config: AccelConfig) -> int:
    """Most inputs of ``layer`` one pass on ``config`` takes side by side (1: no batching)."""
    _, _, w = layer.in_shape
    if not batchable(layer) or w > config.max_stride:
        return 1
    return max(1, config.max_width // w)


def batched_layer(layer: ConvLayer, inputs) -> ConvLayer:
    """``layer`` on the inputs ``(N, C, H, W)`` side by side: output ``(M, 1, N)``.

    Raises
    ------
    ValueError
        If the layer is not fully connected or an input has the wrong shape.
    """
    if not batchable(layer):
        raise ValueError(f"layer {layer.name!r} is not fully connected (its kernel must cover "
                         "its unpadded input, no pooling): it cannot run as a batch")
    inputs = np.asarray(inputs, dtype=np.int64)
    shape = tuple(layer.in_shape)
    if inputs.ndim != 4 or tuple(inputs.shape[1:]) != shape:
        raise ValueError(f"layer {layer.name!r}: a batch must have shape (N, {', '.join(map(str, shape))}), "
                         f"got {tuple(inputs.shape)}")
    x = np.concatenate(list(inputs), axis=2)
    return dataclasses.replace(layer, x=x, input_shape=None, stride=(1, shape[2]),
                               dilation=(1, 1), name=f"{layer.name} (batch of {len(inputs)})")


def split_batch(output: np.ndarray) -> list[np.ndarray]:
    """The ``(M, 1, N)`` output of a batched layer as ``N`` outputs ``(M, 1, 1)``."""
    return [output[:, :, n:n + 1] for n in range(output.shape[2])]
