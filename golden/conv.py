"""Golden 2-D convolution and the argument normalisers shared by the golden models.

Everything here is exact integer arithmetic in int64 (docs/arithmetic.md,
"Convolution" and "Integers").  The functions check that int64 cannot
overflow for the values they are given, so a result is either exact or a
``ValueError``; never a silent wrap.  Arrays larger than
:data:`MAX_ELEMENTS` are refused with a ``ValueError`` before they are
allocated.
"""

import numpy as np

__all__ = ["MAX_ELEMENTS", "as_int_array", "as_int", "as_pair", "as_padding4", "check_elements",
           "output_size", "conv2d"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Largest array (elements) a golden model allocates: 2**27 int64 values, 1 GiB.
MAX_ELEMENTS = 2**27


def check_elements(count, what):
    """Raise ``ValueError`` if an array of ``count`` elements exceeds :data:`MAX_ELEMENTS`.

    Parameters
    ----------
    count : int
        Elements the array would have.
    what : str
        What the array is, for the message.
    """
    if count > MAX_ELEMENTS:
        raise ValueError(f"{what} would have {count} elements, above the golden models' limit "
                         f"of {MAX_ELEMENTS} (1 GiB of int64)")


def as_int(value, name):
    """Return ``value`` as a Python ``int``, rejecting anything not integral.

    Parameters
    ----------
    value : int or numpy integer
        The value to check.  ``bool`` and floats (even ``2.0``) are rejected.
    name : str
        Parameter name quoted in the error message.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``value`` is not an integer.
    """
    # bool is an int subclass, but True as a stride is almost certainly a bug.
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def as_int_array(a, name):
    """Convert ``a`` to an int64 array, rejecting non-integer dtypes.

    Parameters
    ----------
    a : array_like
        Integer data (any signed or unsigned integer dtype, or nested lists of
        Python ints).
    name : str
        Parameter name quoted in the error message.

    Returns
    -------
    numpy.ndarray
        A new or existing int64 array with the same values.

    Raises
    ------
    ValueError
        If the dtype is not an integer dtype (floats and bools are rejected,
        even when integer-valued) or a value does not fit in int64.
    """
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must have an integer dtype, got dtype {arr.dtype} "
            "(convert exact integer data with .astype(np.int64) first)"
        )
    # uint64 values above INT64_MAX would wrap on conversion.
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > INT64_MAX:
        raise ValueError(f"{name} has values above the int64 range (max {int(arr.max())})")
    return arr.astype(np.int64, copy=False)


def _max_abs(arr):
    """Largest absolute value of an int64 array as a Python int (0 if empty)."""
    if arr.size == 0:
        return 0
    # Python ints: abs(INT64_MIN) does not fit in int64.
    return max(abs(int(arr.min())), abs(int(arr.max())))


def as_pair(value, name):
    """Normalise an ``int`` or ``(h, w)`` pair to a tuple of two positive ints.

    Parameters
    ----------
    value : int or sequence of two ints
        Stride, dilation or kernel size, PyTorch style.
    name : str
        Parameter name quoted in the error message.

    Returns
    -------
    tuple of int
        ``(h, w)``, both >= 1.

    Raises
    ------
    ValueError
        If ``value`` is not an int or a pair of ints, or a component is < 1.
    """
    if isinstance(value, (tuple, list, np.ndarray)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {value!r}")
        pair = tuple(as_int(v, name) for v in value)
    else:
        pair = (as_int(value, name),) * 2
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return pair


def as_padding4(padding):
    """Normalise ``padding`` to ``(top, bottom, left, right)``.

    Parameters
    ----------
    padding : int or sequence of ints
        ``p`` pads all sides by ``p``; ``(ph, pw)`` pads top and bottom by
        ``ph`` and left and right by ``pw`` (PyTorch ``Conv2d``);
        ``(top, bottom, left, right)`` gives each side explicitly.

    Returns
    -------
    tuple of int
        ``(top, bottom, left, right)``, all >= 0.

    Raises
    ------
    ValueError
        On a tuple of another length, non-integer or negative values.
    """
    if isinstance(padding, (tuple, list, np.ndarray)):
        vals = tuple(as_int(v, "padding") for v in padding)
        if len(vals) == 2:
            vals = (vals[0], vals[0], vals[1], vals[1])
        elif len(vals) != 4:
            raise ValueError(
                "padding must be an int, (ph, pw) or (top, bottom, left, right), "
                f"got {len(vals)} values {padding!r}"
            )
    else:
        vals = (as_int(padding, "padding"),) * 4
    if min(vals) < 0:
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return vals


def output_size(size, kernel, stride=1, dilation=1, padding=(0, 0), axis="height"):
    """Output length along one axis: the floor rule (docs/arithmetic.md, "Output size").

    ``floor((size + pad_before + pad_after - dilation*(kernel-1) - 1) / stride) + 1``

    Parameters
    ----------
    size : int
        Input length (H or W).
    kernel : int
        Kernel length (R or S), undilated.
    stride, dilation : int, optional
        Step between outputs and between kernel taps.
    padding : tuple of int, optional
        ``(pad_before, pad_after)``.
    axis : str, optional
        Axis name used in the error message.

    Returns
    -------
    int
        Output length, >= 1.

    Raises
    ------
    ValueError
        If the dilated kernel is larger than the padded input.
    """
    span = dilation * (kernel - 1) + 1
    padded = size + padding[0] + padding[1]
    if span > padded:
        raise ValueError(
            f"kernel {axis} {kernel} (dilation {dilation}, span {span}) is larger than "
            f"the padded input {axis} {padded} ({size} + padding {padding[0]} + {padding[1]})"
        )
    return (padded - span) // stride + 1


def _check_rank(x, name):
    """Add a batch axis to a (C, H, W) array; return (array4d, was_batched)."""
    if x.ndim == 4:
        return x, True
    if x.ndim == 3:
        return x[np.newaxis], False
    raise ValueError(f"{name} must be (N, C, H, W) or (C, H, W), got shape {x.shape}")


def conv2d(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Integer 2-D cross-correlation, the golden convolution (PyTorch conventions).

    ``O[n, m, p, q] = bias[m] + sum_{c, r, s} I[n, g*C/G + c, Uh*p + Dh*r - pt,
    Uw*q + Dw*s - pl] * w[m, c, r, s]`` with ``g = m // (M/G)`` and ``I`` zero
    outside the input.  No kernel flip, no requantization.

    Parameters
    ----------
    x : array_like of int
        Input, shape (N, C, H, W) or (C, H, W).
    w : array_like of int
        Weights, shape (M, C/groups, R, S).
    bias : array_like of int, optional
        Length-M bias added to the accumulator.
    stride, dilation : int or (int, int), optional
        Per-axis step (Uh, Uw) and kernel dilation (Dh, Dw); >= 1.
    padding : int, (int, int) or (int, int, int, int), optional
        Zero padding, see `as_padding4`.
    groups : int, optional
        Number of groups G; must divide C and M.

    Returns
    -------
    numpy.ndarray of int64
        Accumulators, shape (N, M, P, Q), or (M, P, Q) for an unbatched input.

    Raises
    ------
    ValueError
        On a bad shape, argument or dtype, if int64 could overflow, or if
        the padded input or the output would exceed :data:`MAX_ELEMENTS`.
    """
    x4, batched = _check_rank(as_int_array(x, "x"), "x")
    w = as_int_array(w, "w")
    if w.ndim != 4:
        raise ValueError(f"w must be (M, C/groups, R, S), got shape {w.shape}")
    uh, uw = as_pair(stride, "stride")
    dh, dw = as_pair(dilation, "dilation")
    pt, pb, pl, pr = as_padding4(padding)
    groups = as_int(groups, "groups")
    n, c, h, wd = x4.shape
    m, cg, r, s = w.shape
    if 0 in (c, h, wd):
        raise ValueError(f"x must have non-empty C, H, W, got shape {x4.shape[1:]}")
    if 0 in (m, cg, r, s):
        raise ValueError(f"w must have non-empty dimensions, got shape {w.shape}")
    if groups < 1:
        raise ValueError(f"groups must be positive, got {groups}")
    if c % groups or m % groups:
        raise ValueError(f"groups={groups} must divide both C={c} and M={m}")
    if cg * groups != c:
        raise ValueError(
            f"channel mismatch: x has C={c} channels, w expects "
            f"C/groups*groups = {cg}*{groups} = {cg * groups}"
        )
    p = output_size(h, r, uh, dh, (pt, pb), "height")
    q = output_size(wd, s, uw, dw, (pl, pr), "width")
    if bias is not None:
        bias = as_int_array(bias, "bias")
        if bias.shape != (m,):
            raise ValueError(f"bias must have shape (M,) = ({m},), got {bias.shape}")

    # Worst case |acc| bounds every partial sum too, so one check covers all.
    bound = _max_abs(x4) * _max_abs(w) * cg * r * s
    bound += 0 if bias is None else _max_abs(bias)
    if bound > INT64_MAX:
        raise ValueError(f"conv2d could overflow int64 (worst-case |acc| = {bound})")

    check_elements(n * c * (h + pt + pb) * (wd + pl + pr), "conv2d: the padded input")
    check_elements(n * m * p * q, "conv2d: the output")
    xp = np.pad(x4, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    # Split channels into groups: xg (N, G, C/G, Hp, Wp), wg (G, M/G, C/G, R, S).
    xg = xp.reshape(n, groups, cg, h + pt + pb, wd + pl + pr)
    wg = w.reshape(groups, m // groups, cg, r, s)
    acc = np.zeros((n, groups, m // groups, p, q), dtype=np.int64)
    # One strided slice per kernel tap: every output pixel at once.
    for i in range(r):
        rows = slice(i * dh, i * dh + uh * (p - 1) + 1, uh)
        for j in range(s):
            cols = slice(j * dw, j * dw + uw * (q - 1) + 1, uw)
            acc += np.einsum("ngcpq,gmc->ngmpq", xg[:, :, :, rows, cols], wg[:, :, :, i, j])
    acc = acc.reshape(n, m, p, q)
    if bias is not None:
        acc += bias[:, np.newaxis, np.newaxis]
    return acc if batched else acc[0]
