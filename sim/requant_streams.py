"""Expected values of :class:`~convaccel.hw.requant_activation.RequantActivation`.

The unit's arithmetic is the requantization and activation steps of
``golden.conv_layer`` (docs/arithmetic.md, "Requantization" and
"Activation"). :func:`golden_requant` runs exactly those steps for
arbitrary accumulators by asking ``golden.conv_layer`` for a layer whose
accumulators are the given values: one 1x1 input pixel of 0, one output
channel per value, weight 1 and the value as that channel's bias.
"""

from __future__ import annotations

import numpy as np

from ..golden import conv_layer

__all__ = ["golden_requant"]

#: ``Activation`` values (``hw.requant_activation``) -> ``golden.conv_layer`` names.
ACTIVATION_NAMES = {0: "none", 1: "relu", 2: "clamp"}


def golden_requant(acc, multiplier, shift, *, bits: int, activation=0, zero_point: int = 0,
                   clamp_high: int = 0) -> np.ndarray:
    """``golden.conv_layer``'s requantized and activated value of every accumulator.

    Parameters
    ----------
    acc : array_like of int
        Accumulators, bias included (1-D).
    multiplier, shift : array_like of int
        One per accumulator (or scalars).
    bits : int
        ``act_width``.
    activation : Activation or int
        0 none, 1 ReLU, 2 clamp.
    zero_point : int
        Output zero point.
    clamp_high : int
        Upper bound of the clamp (only used by it).

    Returns
    -------
    numpy.ndarray of int64, the shape of ``acc``.
    """
    acc = np.atleast_1d(np.asarray(acc, dtype=np.int64))
    count = len(acc)
    name = ACTIVATION_NAMES[int(getattr(activation, "value", activation))]
    out = conv_layer(np.zeros((1, 1, 1), dtype=np.int64), np.ones((count, 1, 1, 1), dtype=np.int64),
                     acc, np.broadcast_to(multiplier, (count,)), np.broadcast_to(shift, (count,)),
                     activation=name, bits=bits, weight_bits=2,
                     clamp_high=int(clamp_high) if name == "clamp" else None,
                     output_zero_point=int(zero_point))
    return out[:, 0, 0]
