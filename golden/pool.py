"""Golden max and average pooling (docs/arithmetic.md, "Pooling")."""

import numpy as np

from .conv import INT64_MAX, _check_rank, _max_abs, as_int_array, as_pair, output_size

__all__ = ["pool2d"]

POOL_MODES = ("max", "avg")


def pool2d(x, kernel, stride=None, mode="max"):
    """Per-channel 2-D max or average pooling without padding.

    The output size follows the floor rule (trailing rows/columns that do not
    fill a window are dropped).  Average pooling rounds half towards
    +infinity, like requantization: ``floor(sum / K + 1/2)`` with
    ``K = Kh*Kw``, computed exactly as ``floor((2*sum + K) / (2*K))``.

    Parameters
    ----------
    x : array_like of int
        Input, shape (N, C, H, W) or (C, H, W).
    kernel : int or (int, int)
        Window size (Kh, Kw), >= 1.
    stride : int or (int, int), optional
        Window step (Uh, Uw), >= 1; defaults to ``kernel``.
    mode : {"max", "avg"}, optional
        Pooling function.

    Returns
    -------
    numpy.ndarray of int64
        Shape (N, C, P, Q) or (C, P, Q), matching the input rank.

    Raises
    ------
    ValueError
        On a bad shape, argument, dtype or mode, a window larger than the
        input, or if the average sums could overflow int64.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"pool mode must be one of {POOL_MODES}, got {mode!r}")
    x4, batched = _check_rank(as_int_array(x, "x"), "x")
    kh, kw = as_pair(kernel, "kernel")
    uh, uw = as_pair(kernel if stride is None else stride, "stride")
    n, c, h, w = x4.shape
    if 0 in (c, h, w):
        raise ValueError(f"x must have non-empty C, H, W, got shape {x4.shape[1:]}")
    p = output_size(h, kh, uh, axis="height")
    q = output_size(w, kw, uw, axis="width")
    k = kh * kw
    if mode == "avg" and 2 * k * _max_abs(x4) + k > INT64_MAX:
        raise ValueError(f"avg pool2d could overflow int64 (max |x| = {_max_abs(x4)}, K = {k})")

    def window(i, j):
        # All windows' (i, j) element at once, shape (N, C, P, Q).
        return x4[:, :, i : i + uh * (p - 1) + 1 : uh, j : j + uw * (q - 1) + 1 : uw]

    out = window(0, 0).copy()
    for i in range(kh):
        for j in range(kw):
            if i or j:
                if mode == "max":
                    np.maximum(out, window(i, j), out=out)
                else:
                    out += window(i, j)
    if mode == "avg":
        # Floor division floors for negative sums too, so this is exact.
        out = (2 * out + k) // (2 * k)
    return out if batched else out[0]
