"""Network steps the accelerator does not run: NumPy on the host.

Every host step has ONNX semantics on float tensors: quantized inputs are
dequantized (``(q - zero_point) * scale`` in float32), the float operator
runs, and a quantized output is quantized again (``round(x / scale) +
zero_point``, ties to even, saturated) - exactly what an onnxruntime QDQ
graph means around an operator. Quantized tensors travel as int64 arrays of
int8-domain values (a uint8 tensor is stored minus 128, zero point too; see
docs/arithmetic.md, "Zero points"); every tensor keeps its ONNX shape with
a batch of one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FLOAT_OPS", "QuantParams", "dequantize", "quantize", "run_host_op"]


@dataclass(frozen=True)
class QuantParams:
    """Quantization of a tensor: real value = ``scale * (q - zero_point)``.

    ``zero_point`` is in the int8 domain (uint8 zero point minus 128);
    ``dtype`` is the ONNX storage type (``"int8"`` or ``"uint8"``).
    """

    scale: float
    zero_point: int
    dtype: str = "int8"

    @property
    def offset(self) -> int:
        """What the int8 domain subtracts from stored values: 128 for uint8."""
        return 128 if self.dtype == "uint8" else 0

    def to_dict(self) -> dict:
        return {"scale": float(self.scale), "zero_point": int(self.zero_point),
                "dtype": self.dtype}


def quantize(x: np.ndarray, params: QuantParams) -> np.ndarray:
    """Float32 values to int8-domain integers: onnxruntime's QuantizeLinear (ties to even,
    saturated), minus 128 for uint8."""
    stored = (np.rint(np.asarray(x, dtype=np.float32) / np.float32(params.scale))
              + (params.zero_point + params.offset))
    info = np.iinfo(params.dtype)
    return np.clip(stored, info.min, info.max).astype(np.int64) - params.offset


def dequantize(q: np.ndarray, params: QuantParams) -> np.ndarray:
    """int8-domain integers to float32 (onnxruntime's DequantizeLinear)."""
    return ((np.asarray(q, dtype=np.int64) - params.zero_point).astype(np.float32)
            * np.float32(params.scale))


def _pool_windows(x, kernel, strides, pads, dilations, ceil_mode, pad_value, beyond_value):
    """``(N, C, P, Q, Kh*Kw)`` windows of ``x (N, C, H, W)``, pads in ONNX order
    ``(top, left, bottom, right)`` reading ``pad_value``; positions past the padded input
    (``ceil_mode``) read ``beyond_value``."""
    n, c, h, w = x.shape
    (kh, kw), (uh, uw), (dh, dw) = kernel, strides, dilations
    top, left, bottom, right = pads
    spans = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    sizes = []
    for size, before, after, span, stride in ((h, top, bottom, spans[0], uh),
                                              (w, left, right, spans[1], uw)):
        extent = size + before + after - span
        sizes.append((-(-extent // stride) if ceil_mode else extent // stride) + 1)
    p, q = sizes
    full_h = max((p - 1) * uh + spans[0], h + top + bottom)
    full_w = max((q - 1) * uw + spans[1], w + left + right)
    padded = np.full((n, c, full_h, full_w), beyond_value, dtype=np.float64)
    padded[:, :, :h + top + bottom, :w + left + right] = pad_value
    padded[:, :, top:top + h, left:left + w] = x
    taps = [padded[:, :, i * dh:i * dh + (p - 1) * uh + 1:uh, j * dw:j * dw + (q - 1) * uw + 1:uw]
            for i in range(kh) for j in range(kw)]
    return np.stack(taps, axis=-1)


def _max_pool(x, *, kernel, strides, pads, dilations=(1, 1), ceil_mode=0):
    windows = _pool_windows(x, kernel, strides, pads, dilations, ceil_mode, -np.inf, -np.inf)
    return windows.max(axis=-1).astype(np.float32)


def _average_pool(x, *, kernel, strides, pads, count_include_pad=0, ceil_mode=0):
    sums = _pool_windows(x, kernel, strides, pads, (1, 1), ceil_mode, 0.0, 0.0).sum(axis=-1)
    counted = _pool_windows(np.ones((1, 1) + x.shape[2:]), kernel, strides, pads, (1, 1),
                            ceil_mode, float(bool(count_include_pad)), 0.0).sum(axis=-1)
    return (sums / counted).astype(np.float32)


def _global_average_pool(x):
    return x.mean(axis=(2, 3), keepdims=True, dtype=np.float64).astype(np.float32)


def _softmax(x, *, axis=-1, legacy=False):
    if legacy:      # opset < 13: softmax over the flattened axes from `axis` on
        flat = x.reshape(int(np.prod(x.shape[:axis])), -1)
        return _softmax(flat, axis=1).reshape(x.shape)
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted.astype(np.float64))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def _reshape(x, *, shape):
    return x.reshape(shape)


def _clip(x, *, low=None, high=None):
    return np.clip(x, -np.inf if low is None else low, np.inf if high is None else high)


#: ONNX operator -> float implementation (attributes as keyword arguments).
FLOAT_OPS = {
    "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global_average_pool,
    "Softmax": _softmax,
    "Reshape": _reshape,
    "Flatten": _reshape,
    "Relu": lambda x: np.maximum(x, 0),
    "Clip": _clip,
    "Add": lambda a, b: (a + b).astype(np.float32),
    "Mul": lambda a, b: (a * b).astype(np.float32),
    "Sigmoid": lambda x: (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32),
    "Identity": lambda x: x,
    # The quantization around them does the work.
    "QuantizeLinear": lambda x: x,
    "DequantizeLinear": lambda x: x,
}


def run_host_op(op: str, inputs: list[np.ndarray], in_params: list[QuantParams | None],
                out_params: QuantParams | None, attrs: dict) -> np.ndarray:
    """One host step: dequantize the quantized inputs, run ``op``, quantize if asked."""
    values = [dequantize(x, params) if params is not None else np.asarray(x, dtype=np.float32)
              for x, params in zip(inputs, in_params, strict=True)]
    y = FLOAT_OPS[op](*values, **attrs)
    return y.astype(np.float32) if out_params is None else quantize(y, out_params)
