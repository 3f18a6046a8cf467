"""Golden requantization, saturation and activations (docs/arithmetic.md, "Requantization").

Rounding rule, written down once: ``(v + 2^(sh-1)) >> sh`` with an arithmetic
(flooring) shift, i.e. round half towards +infinity; ``sh == 0`` adds no
rounding term.  Saturation clamps to the signed ``bits``-wide range.
"""

import numpy as np

from .conv import INT64_MAX, INT64_MIN, as_int, as_int_array

__all__ = ["MAX_SHIFT", "round_shift", "saturate", "requantize", "relu", "clamp_activation",
           "signed_value"]

#: Largest accepted right shift: the rounding term 2^(63-1) still fits int64,
#: and it covers every shift a 6-bit hardware shift field can hold.
MAX_SHIFT = 63


def signed_value(value, bits, name):
    """``value`` as a Python int, checked to be a ``bits``-wide signed integer.

    Parameters
    ----------
    value : int
        A zero point or an activation bound.
    bits : int
        Signed width, 1 to 64.
    name : str
        Parameter name quoted in the error message.

    Raises
    ------
    ValueError
        If ``value`` is not an integer or lies outside ``[-2^(bits-1), 2^(bits-1) - 1]``.
    """
    value, bits = as_int(value, name), as_int(bits, "bits")
    if not 1 <= bits <= 64:
        raise ValueError(f"bits must be in [1, 64], got {bits}")
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low}..{high} for {bits}-bit activations, "
                         f"got {value}")
    return value


def _check_shift(shift):
    """Return ``shift`` as int64 (scalar or array), checked to lie in [0, MAX_SHIFT]."""
    sh = as_int_array(shift, "shift")
    if sh.size and (sh.min() < 0 or sh.max() > MAX_SHIFT):
        bad = sh[(sh < 0) | (sh > MAX_SHIFT)].ravel()[0]
        raise ValueError(f"shift must be in [0, {MAX_SHIFT}], got {int(bad)}")
    return sh


def _rounding_term(sh):
    """``2^(sh-1)`` where ``sh > 0``, else 0 (no rounding for a zero shift)."""
    return np.where(sh > 0, np.left_shift(np.int64(1), np.maximum(sh - 1, 0)), 0).astype(np.int64)


def round_shift(x, shift):
    """Right-shift with round half towards +infinity: ``(x + 2^(shift-1)) >> shift``.

    Parameters
    ----------
    x : array_like of int
        Values to scale down.
    shift : int or array_like of int
        Shift amounts in [0, 63], broadcast against ``x``.  ``0`` returns
        ``x`` unchanged.

    Returns
    -------
    numpy.ndarray of int64

    Raises
    ------
    ValueError
        On a non-integer input, a shift out of range, or if adding the
        rounding term would overflow int64.
    """
    x = as_int_array(x, "x")
    sh = _check_shift(shift)
    rnd = _rounding_term(sh)
    # INT64_MAX - rnd cannot overflow, so this comparison is exact.
    if np.any(x > INT64_MAX - rnd):
        raise ValueError("round_shift: x + 2^(shift-1) would overflow int64")
    return (x + rnd) >> sh


def saturate(x, bits=8):
    """Clamp to the two's complement range ``[-2^(bits-1), 2^(bits-1) - 1]``.

    Parameters
    ----------
    x : array_like of int
        Values to clamp.
    bits : int, optional
        Target signed width, 1 to 64.

    Returns
    -------
    numpy.ndarray of int64

    Raises
    ------
    ValueError
        On a non-integer input or ``bits`` outside [1, 64].
    """
    x = as_int_array(x, "x")
    bits = as_int(bits, "bits")
    if not 1 <= bits <= 64:
        raise ValueError(f"bits must be in [1, 64], got {bits}")
    return np.clip(x, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype(np.int64)


def _channel_param(value, acc, name):
    """Reshape a scalar or per-channel 1-D parameter to broadcast against ``acc``.

    The channel axis is axis 0 of 1-D (M,) and 3-D (M, P, Q) data and axis 1
    of 4-D (N, M, P, Q) data.  Returns ``(param, channel_axis_or_None)``.
    """
    v = as_int_array(value, name)
    if v.ndim == 0:
        return v, None
    if v.ndim != 1:
        raise ValueError(f"{name} must be a scalar or a 1-D per-channel array, got shape {v.shape}")
    axis = {1: 0, 3: 0, 4: 1}.get(acc.ndim)
    if axis is None:
        raise ValueError(
            f"per-channel {name} needs acc of shape (M,), (M, P, Q) or (N, M, P, Q), "
            f"got acc shape {acc.shape}"
        )
    m = acc.shape[axis]
    if v.shape[0] != m:
        raise ValueError(f"per-channel {name} must have length M={m}, got length {v.shape[0]}")
    return v.reshape((m,) + (1,) * (acc.ndim - axis - 1)), axis


def requantize(acc, multiplier, shift, bits=8, zero_point=0):
    """Scale accumulators back to ``bits``-wide activations.

    ``y = saturate(((acc * multiplier + 2^(shift-1)) >> shift) + zero_point, bits)``,
    with the rounding term omitted when ``shift == 0``.

    Parameters
    ----------
    acc : array_like of int
        Accumulators: a scalar, (M,), (M, P, Q) or (N, M, P, Q).
    multiplier : int or array_like of int
        Unsigned integer multiplier M0 (>= 0), a scalar or one per output
        channel (length M). Any non-negative int64 value is accepted; the
        hardware restricts its width.
    shift : int or array_like of int
        Right shift in [0, 63], a scalar or one per output channel.
    bits : int, optional
        Output width; results saturate to ``[-2^(bits-1), 2^(bits-1) - 1]``.
    zero_point : int, optional
        Output zero point, a ``bits``-wide signed value added after the
        rounding shift and before saturation.

    Returns
    -------
    numpy.ndarray of int64
        Same shape as ``acc``.

    Raises
    ------
    ValueError
        On non-integer inputs, a negative multiplier, a bad per-channel
        length, a shift out of range, a zero point outside the ``bits``
        range, or if ``acc * multiplier + 2^(shift-1)`` could overflow int64.
    """
    acc = as_int_array(acc, "acc")
    zero_point = signed_value(zero_point, bits, "zero_point")
    mult, axis_m = _channel_param(multiplier, acc, "multiplier")
    if mult.size and mult.min() < 0:
        raise ValueError(f"multiplier M0 is unsigned, got {int(mult.min())}")
    sh, axis_s = _channel_param(shift, acc, "shift")
    sh = _check_shift(sh)
    if acc.size:
        # Exact overflow check per channel with Python ints: the product's
        # extremes sit at the channel's smallest or largest accumulator.
        axis = axis_m if axis_m is not None else axis_s
        others = tuple(a for a in range(acc.ndim) if a != axis)
        per_channel = np.broadcast_arrays(
            acc.min(axis=others, keepdims=True),
            acc.max(axis=others, keepdims=True),
            mult,
            _rounding_term(sh),
        )
        for lo, hi, m, rnd in zip(*(a.ravel().tolist() for a in per_channel)):
            if max(lo * m, hi * m) + rnd > INT64_MAX or min(lo * m, hi * m) < INT64_MIN:
                raise ValueError(
                    "requantize: acc * multiplier + rounding could overflow int64 "
                    f"(acc in [{lo}, {hi}], multiplier {m}, rounding term {rnd})"
                )
    rounded = round_shift(acc * mult, sh)
    if zero_point == 0:
        return saturate(rounded, bits)
    # saturate(rounded + zero_point) without forming a sum that could wrap int64.
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(rounded, max(low - zero_point, INT64_MIN),
                   min(high - zero_point, INT64_MAX)) + zero_point


def relu(x):
    """Rectified linear unit ``max(x, 0)``.

    Parameters
    ----------
    x : array_like of int

    Returns
    -------
    numpy.ndarray of int64
    """
    return np.maximum(as_int_array(x, "x"), 0)


def clamp_activation(x, low, high):
    """Clamp to ``[low, high]``; ReLU6 is ``clamp_activation(x, 0, six)`` with six scaled.

    Parameters
    ----------
    x : array_like of int
    low, high : int
        Inclusive bounds, ``low <= high``.

    Returns
    -------
    numpy.ndarray of int64

    Raises
    ------
    ValueError
        If the bounds are not integers or ``low > high``.
    """
    low, high = as_int(low, "low"), as_int(high, "high")
    if low > high:
        raise ValueError(f"clamp_activation needs low <= high, got low={low}, high={high}")
    return np.clip(as_int_array(x, "x"), low, high).astype(np.int64)
