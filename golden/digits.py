"""The quantized digits CNN: its committed parameters and its bit-exact integer model.

A LeNet-style network for the 8x8 handwritten digits scikit-learn ships::

    conv1  1 -> 8,  3x3, padding 1, ReLU, 2x2 max-pool     8x8 -> 8x4x4
    conv2  8 -> 16, 3x3, padding 1, ReLU, 2x2 max-pool     -> 16x2x2
    fc     16x2x2 -> 10 (a 2x2 convolution over the whole map) -> 10 logits

Every layer is one ``golden.conv_layer`` call with int8 activations and
weights, int32 bias and per-channel multiplier/shift: exactly what one
``conv_accel`` layer computes. ``scripts/digits.py`` trains the float model,
quantizes it and writes ``golden/data/digits_cnn.npz`` (parameters, the
quantized held-out images and labels, the float and integer accuracies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layer import conv_layer

__all__ = ["DIGITS_FILE", "LAYERS", "digits_layers", "load_digits_cnn", "predict"]

#: The committed network (regenerate with ``python -m convaccel.scripts.digits``).
DIGITS_FILE = Path(__file__).parent / "data" / "digits_cnn.npz"

#: Layer name -> conv_layer keyword arguments besides the parameters.
LAYERS = {
    "conv1": dict(padding=1, activation="relu", pool=("max", 2, 2)),
    "conv2": dict(padding=1, activation="relu", pool=("max", 2, 2)),
    "fc": dict(),
}


def load_digits_cnn(path: Path | str = DIGITS_FILE) -> dict:
    """The committed network as a dict of arrays (``conv1_w``, ..., ``test_x``, ``test_y``)."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def digits_layers(net: dict, image: np.ndarray, bits: int = 8) -> list[np.ndarray]:
    """Every layer's integer output for one quantized image ``(1, 8, 8)``."""
    outputs, x = [], np.asarray(image, dtype=np.int64)
    for name, kwargs in LAYERS.items():
        x = conv_layer(x, net[f"{name}_w"], net[f"{name}_b"], net[f"{name}_m"],
                       net[f"{name}_sh"], bits=bits, **kwargs)
        outputs.append(x)
    return outputs


def predict(net: dict, images: np.ndarray) -> np.ndarray:
    """Predicted class of each image: argmax of the int8 logits (lowest index on ties)."""
    return np.array([int(np.argmax(digits_layers(net, image)[-1][:, 0, 0]))
                     for image in images])
