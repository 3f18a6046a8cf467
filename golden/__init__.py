"""Bit-exact NumPy golden models of convaccel (the arithmetic contract, docs/arithmetic.md).

Plain NumPy and int64 throughout; nothing here imports ``hw``, ``sim`` or
``scripts``.  Inputs must have integer dtypes; every function raises
``ValueError`` rather than wrap int64.
"""

from .conv import (MAX_ELEMENTS, as_int, as_int_array, as_pair, as_padding4, check_elements,
                   conv2d, output_size)
from .layer import ACTIVATIONS, conv_layer
from .pool import POOL_MODES, pool2d
from .quant import MAX_SHIFT, clamp_activation, relu, requantize, round_shift, saturate
from .windows import extract_windows

__all__ = [
    "ACTIVATIONS",
    "MAX_ELEMENTS",
    "MAX_SHIFT",
    "POOL_MODES",
    "as_int",
    "as_int_array",
    "as_pair",
    "as_padding4",
    "check_elements",
    "clamp_activation",
    "conv2d",
    "conv_layer",
    "extract_windows",
    "output_size",
    "pool2d",
    "relu",
    "requantize",
    "round_shift",
    "saturate",
]
