"""Golden model of one accelerator layer: conv -> +bias -> requant -> activation -> pool."""

import numpy as np

from .conv import as_int, as_int_array, conv2d
from .pool import pool2d
from .quant import requantize, signed_value

__all__ = ["ACTIVATIONS", "conv_layer"]

ACTIVATIONS = ("none", "relu", "clamp")


def _parse_pool(pool):
    """Return ``(mode, kernel, stride)`` from ``None`` or a 2- or 3-tuple."""
    if pool is None:
        return None
    if not isinstance(pool, (tuple, list)) or len(pool) not in (2, 3):
        raise ValueError(
            f'pool must be None or (mode, kernel[, stride]) such as ("max", 2, 2), got {pool!r}'
        )
    mode, kernel, *rest = pool
    return mode, kernel, rest[0] if rest else None


def _in_signed_range(values, bits, what, bits_name):
    """``values`` as int64, checked to be ``bits``-wide signed integers."""
    bits = as_int(bits, bits_name)
    if not 1 <= bits <= 64:
        raise ValueError(f"{bits_name} must be in [1, 64], got {bits}")
    array = as_int_array(values, what.split()[0])
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if array.size and (int(array.min()) < low or int(array.max()) > high):
        bad = int(array.min()) if int(array.min()) < low else int(array.max())
        raise ValueError(f"{what} must be {bits}-bit signed values in [{low}, {high}], got {bad}")
    return array


def conv_layer(
    x,
    w,
    bias=None,
    multiplier=1,
    shift=0,
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups=1,
    activation="none",
    pool=None,
    bits=8,
    clamp_high=None,
    return_intermediates=False,
    weight_bits=None,
    input_zero_point=0,
    output_zero_point=0,
):
    """Run one quantized convolution layer in the contract order.

    conv (+ bias, full width) -> `requantize` -> activation -> `pool2d`, with
    zero points (docs/arithmetic.md, "Zero points"): the sum runs over
    ``x - input_zero_point`` (padding reads as the input zero point, so it
    contributes 0) and ``output_zero_point`` is added after the rounding
    shift, before saturation.  The defaults (0, 0) are the symmetric case.

    Parameters
    ----------
    x, w, bias, stride, padding, dilation, groups
        As for `conv2d`; ``x`` must hold ``bits``-wide and ``w``
        ``weight_bits``-wide signed values (the contract's operand widths).
    multiplier, shift : int or array_like of int, optional
        Requantization scale, scalar or per output channel; see `requantize`.
        The defaults (1, 0) only saturate.
    activation : {"none", "relu", "clamp"}, optional
        Activation applied to the requantized values ``y``: "relu" is
        ``max(y, output_zero_point)``, "clamp" is ``min(max(y,
        output_zero_point), clamp_high)``: ReLU6 when ``clamp_high`` is six
        at the output scale (zero point included).
    pool : None or tuple, optional
        ``(mode, kernel)`` or ``(mode, kernel, stride)`` with mode "max" or
        "avg"; see `pool2d`.  ``None`` skips pooling.
    bits : int, optional
        Activation width: the range of ``x`` and of the saturated output.
    clamp_high : int, optional
        Upper bound of the "clamp" activation, a ``bits``-wide signed value
        (absolute: it already includes the output zero point).
    return_intermediates : bool, optional
        If true, return a dict of every stage instead of the output only.
    weight_bits : int, optional
        Signed width of the weights; defaults to ``bits``.
    input_zero_point, output_zero_point : int, optional
        Zero points of the input and output activations, ``bits``-wide
        signed values.

    Returns
    -------
    numpy.ndarray of int64 or dict
        The layer output, (N, M, P', Q') or (M, P', Q'); or a dict with keys
        ``"acc"`` (accumulators including bias), ``"requant"``, ``"act"`` and
        ``"out"``.

    Raises
    ------
    ValueError
        On any invalid argument (checked before computing).
    """
    x = _in_signed_range(x, bits, "x (activations)", "bits")
    w = _in_signed_range(w, bits if weight_bits is None else weight_bits, "w (weights)",
                         "weight_bits")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    zx = signed_value(input_zero_point, bits, "input_zero_point")
    zo = signed_value(output_zero_point, bits, "output_zero_point")
    if activation == "clamp":
        high = signed_value(as_int(clamp_high, "clamp_high"), bits, "clamp_high")
    elif clamp_high is not None:
        raise ValueError(f"clamp_high is only used with activation='clamp', got "
                         f"activation={activation!r}")
    pool_args = _parse_pool(pool)
    # Zero padding of x - zx is padding x with zx: padded taps contribute 0.
    acc = conv2d(x - zx, w, bias, stride=stride, padding=padding, dilation=dilation,
                 groups=groups)
    req = requantize(acc, multiplier, shift, bits=bits, zero_point=zo)
    if activation == "relu":
        act = np.maximum(req, zo)
    elif activation == "clamp":
        act = np.minimum(np.maximum(req, zo), high)
    else:
        act = req
    out = act if pool_args is None else pool2d(act, pool_args[1], pool_args[2], mode=pool_args[0])
    if return_intermediates:
        return {"acc": acc, "requant": req, "act": act, "out": out}
    return out
