"""Example ONNX models, built from scratch: float graphs quantized with onnxruntime.

* :func:`digits_model` - the digits CNN of :mod:`convaccel.golden.digits`
  (conv 1->8 + ReLU + 2x2 max-pool, conv 8->16 + ReLU + 2x2 max-pool,
  fully connected 64->10), trained in NumPy by :mod:`convaccel.scripts.digits`
  and exported as a float ONNX graph;
* :func:`mobilenet_model` - a MobileNet-style stack at ``size x size`` with
  seeded weights: a 3x3/2 convolution, depthwise + pointwise pairs with
  ReLU6, one residual ``Add``, global average pooling and a fully connected
  layer.

:func:`quantize` runs onnxruntime's ``quantize_static`` on such a graph
(QDQ or QOperator format, per-channel or per-tensor weights, int8 or uint8
activations, calibrated on sample inputs). Nothing is downloaded: the
digits come with scikit-learn, the rest is seeded.

Needs the ``onnx`` extra (onnx, onnxruntime; the digits also scikit-learn).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["digits_data", "digits_model", "mobilenet_images", "mobilenet_model", "quantize"]


def _helpers():
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    return onnx, TensorProto, helper, numpy_helper


def _model(nodes, initializers, input_shape, output_shape, name):
    """A float ONNX model with a free batch size (opset 17)."""
    onnx, TensorProto, helper, numpy_helper = _helpers()
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", *output_shape])],
        [numpy_helper.from_array(np.asarray(value, dtype=np.float32), key)
         for key, value in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="convaccel")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def digits_data(seed: int = 2026):
    """``(train_x, train_y, test_x, test_y)``: the 8x8 digits as float pixels 0..16, split
    80/20 as :mod:`convaccel.scripts.digits` splits them."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None]
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(images))
    split = int(0.8 * len(images))
    train, test = order[:split], order[split:]
    return images[train], labels[train], images[test], labels[test]


def digits_model(*, epochs: int = 40, seed: int = 2026):
    """The digits CNN trained in NumPy, as a float ONNX model (input: pixels 0..16)."""
    from .digits import train_float

    _, _, helper, _ = _helpers()
    train_x, train_y, _, _ = digits_data(seed)
    params = train_float(train_x.astype(np.float64), train_y, seed=seed, epochs=epochs)
    nodes = []
    x = "input"
    for name in ("conv1", "conv2"):
        nodes += [helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}"],
                                   pads=[1, 1, 1, 1], name=name),
                  helper.make_node("Relu", [name], [f"{name}_relu"], name=f"{name}_relu"),
                  helper.make_node("MaxPool", [f"{name}_relu"], [f"{name}_pool"],
                                   kernel_shape=[2, 2], strides=[2, 2], name=f"{name}_pool")]
        x = f"{name}_pool"
    nodes += [helper.make_node("Flatten", [x], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1,
                               name="fc")]
    initializers = {"conv1_w": params["conv1_w"], "conv1_b": params["conv1_b"],
                    "conv2_w": params["conv2_w"], "conv2_b": params["conv2_b"],
                    "fc_w": params["fc_w"].reshape(10, -1), "fc_b": params["fc_b"]}
    return _model(nodes, initializers, (1, 8, 8), (10,), "digits_cnn")


def mobilenet_images(count: int, size: int = 96, seed: int = 7) -> np.ndarray:
    """Seeded smooth test images ``(count, 3, size, size)``: a few random waves plus noise."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 1, size, dtype=np.float64)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    images = np.zeros((count, 3, size, size))
    for image in images:
        for channel in image:
            for _ in range(4):
                fy, fx, phase = rng.uniform(0.5, 6, 2).tolist() + [rng.uniform(0, 2 * math.pi)]
                channel += rng.normal(0, 0.7) * np.sin(2 * math.pi * (fy * yy + fx * xx)
                                                       + phase)
        image += rng.normal(0, 0.1, image.shape)
    return images.astype(np.float32)


#: The MobileNet-style stack: (name, kind, in channels, out channels, stride, ReLU6).
MOBILENET_LAYERS = (
    ("conv0", "full", 3, 16, 2, True),
    ("dw1", "dw", 16, 16, 1, True), ("pw1", "pw", 16, 32, 1, True),
    ("dw2", "dw", 32, 32, 2, True), ("pw2", "pw", 32, 64, 1, True),
    ("dw3", "dw", 64, 64, 2, True), ("pw3", "pw", 64, 64, 1, True),
    # An inverted residual block: pw3's output comes back through an Add.
    ("dw4", "dw", 64, 64, 1, True), ("pw4", "pw", 64, 64, 1, False),
    ("dw5", "dw", 64, 64, 2, True), ("pw5", "pw", 64, 64, 1, True),
)


def mobilenet_model(*, size: int = 96, classes: int = 10, seed: int = 11):
    """A MobileNet-style float ONNX model at ``size x size`` with seeded weights."""
    _, _, helper, _ = _helpers()
    rng = np.random.default_rng(seed)
    nodes, initializers = [], {}
    x = "input"
    for name, kind, c, m, stride, relu6 in MOBILENET_LAYERS:
        kernel = 1 if kind == "pw" else 3
        group = c if kind == "dw" else 1
        fan_in = (c // group) * kernel * kernel
        initializers[f"{name}_w"] = rng.normal(0, math.sqrt(2 / fan_in),
                                               (m, c // group, kernel, kernel))
        initializers[f"{name}_b"] = rng.normal(0, 0.1, m)
        pad = kernel // 2
        nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [name],
                                      strides=[stride, stride], pads=[pad] * 4, group=group,
                                      name=name))
        x = name
        if relu6:
            nodes.append(helper.make_node("Clip", [x, "zero", "six"], [f"{name}_relu6"],
                                          name=f"{name}_relu6"))
            x = f"{name}_relu6"
        if name == "pw4":
            nodes.append(helper.make_node("Add", ["pw3_relu6", x], ["residual"],
                                          name="residual"))
            x = "residual"
    initializers["zero"], initializers["six"] = np.float32(0), np.float32(6)
    initializers["fc_w"] = rng.normal(0, math.sqrt(1 / 64), (classes, 64))
    initializers["fc_b"] = rng.normal(0, 0.1, classes)
    nodes += [helper.make_node("GlobalAveragePool", [x], ["pooled"], name="pool"),
              helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1,
                               name="fc")]
    return _model(nodes, initializers, (3, size, size), (classes,), f"mobilenet_{size}")


def quantize(model, path, calibration: np.ndarray, *, fmt: str = "qdq", per_channel: bool = True,
             activations: str = "int8", symmetric: bool = False,
             reduce_range: bool = False) -> Path:
    """Quantize a float model with onnxruntime's ``quantize_static``; write it to ``path``.

    Parameters
    ----------
    calibration : ndarray
        Sample inputs (batch first) for the activation ranges.
    fmt : {"qdq", "qoperator"}
    activations : {"int8", "uint8"}
    symmetric : bool
        Symmetric activations (zero point 0; onnxruntime then keeps Relu / Clip).
    reduce_range : bool
        7-bit weights: onnxruntime's advice for its integer kernels on x86 CPUs
        without VNNI, whose 16-bit intermediate sums saturate otherwise (it
        matters for QOperator models, which run those kernels on every
        onnxruntime optimization level).
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": calibration[i:i + 1]}
                                 for i in range(len(calibration))])

        def get_next(self):
            return next(self.batches, None)

    path = Path(path)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "float.onnx"
        onnx.save(model, source)
        quantize_static(
            str(source), str(path), Reader(),
            quant_format={"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}[fmt],
            per_channel=per_channel,
            activation_type={"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[activations],
            weight_type=QuantType.QInt8, reduce_range=reduce_range,
            extra_options={"ActivationSymmetric": symmetric})
    return path
