"""Golden sliding-window extraction (the window generator's reference).

``extract_windows`` returns, for every output position, the ``R x S`` patch
of every channel that the convolution (docs/arithmetic.md, "Convolution")
multiplies by the kernel: padding reads as 0, stride and dilation per axis, floor rule for
the output size. ``conv2d`` equals the windows contracted with the kernel,
which the tests check.
"""

import numpy as np

from .conv import as_int_array, as_padding4, as_pair, check_elements, output_size

__all__ = ["extract_windows"]


def extract_windows(x, kernel, stride=1, padding=0, dilation=1):
    """Every convolution window of ``x``.

    Parameters
    ----------
    x : array_like of int, shape (C, H, W)
        One feature map.
    kernel : int or (int, int)
        Kernel size ``(R, S)``.
    stride, dilation : int or (int, int), optional
        Per axis, >= 1.
    padding : int, (int, int) or (int, int, int, int), optional
        Zero padding as in `conv2d`.

    Returns
    -------
    numpy.ndarray of int64, shape (P, Q, R, S, C)
        ``out[p, q, r, s, c] = x[c, Uh*p + Dh*r - pt, Uw*q + Dw*s - pl]`` or 0
        where that falls in the padding.

    Raises
    ------
    ValueError
        On a bad shape or argument (same messages as `conv2d`), or if the
        padded input or the windows would exceed ``MAX_ELEMENTS``.
    """
    x = as_int_array(x, "x")
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"x must be a non-empty (C, H, W) array, got shape {x.shape}")
    r, s = as_pair(kernel, "kernel")
    uh, uw = as_pair(stride, "stride")
    dh, dw = as_pair(dilation, "dilation")
    pt, pb, pl, pr = as_padding4(padding)
    c, h, w = x.shape
    p = output_size(h, r, uh, dh, (pt, pb), "height")
    q = output_size(w, s, uw, dw, (pl, pr), "width")
    check_elements(c * (h + pt + pb) * (w + pl + pr), "extract_windows: the padded input")
    check_elements(p * q * r * s * c, "extract_windows: the windows")
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr)))
    out = np.empty((p, q, r, s, c), dtype=np.int64)
    for i in range(r):
        rows = slice(i * dh, i * dh + uh * (p - 1) + 1, uh)
        for j in range(s):
            cols = slice(j * dw, j * dw + uw * (q - 1) + 1, uw)
            out[:, :, i, j, :] = xp[:, rows, cols].transpose(1, 2, 0)
    return out
