"""Train, quantize and export the digits CNN of :mod:`convaccel.golden.digits`.

``python -m convaccel.scripts.digits [--seed N] [--out FILE]`` (needs the
``train`` extra: scikit-learn, for its bundled 8x8 digits - no download):

1. split the 1797 images 80/20 with a seeded permutation;
2. train the float network (NumPy, Adam, cross-entropy, mini-batches);
3. quantize to the arithmetic contract:

   * input: ``x_q = round(x * 127 / 16)`` (pixel values 0..16 -> 0..127);
   * weights: symmetric int8 per output channel, ``s_w[m] = max|w[m]| / 127``;
   * bias: ``round(b / (s_x * s_w[m]))`` (int32, the accumulator's scale);
   * output scale ``s_y``: the largest float activation over the training
     set (after ReLU; the logits' largest magnitude for the last layer)
     divided by 127;
   * per-channel ``M0 / 2**sh ~= s_x * s_w[m] / s_y`` with the largest shift
     that keeps ``M0`` within ``mult_width`` bits;

4. report float and integer (golden) accuracy on the held-out split and
   write the parameters, the quantized held-out images and both accuracies.

The same seed gives the same file on the same NumPy build.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from ..golden.digits import DIGITS_FILE, LAYERS, predict
from ..hw.config import PRESETS

__all__ = ["train_float", "quantize", "main"]

INPUT_SCALE = 16 / 127          # float value of one input step


def _im2col(x, k=3, pad=1):
    """(N, C, H, W) -> (N, C*k*k, H*W) for a k x k, stride-1, same-size convolution."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, c, h, w = x.shape
    windows = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * k * k, h * w)


def _col2im(cols, shape, k=3, pad=1):
    n, c, h, w = shape
    cols = cols.reshape(n, c, k, k, h, w)
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    for r in range(k):
        for s in range(k):
            xp[:, :, r:r + h, s:s + w] += cols[:, :, r, s]
    return xp[:, :, pad:pad + h, pad:pad + w]


def _pool(x):
    """2x2/2 max-pool and the mask of the maxima (first one on ties)."""
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        n, c, h // 2, w // 2, 4)
    index = blocks.argmax(axis=-1)
    mask = np.zeros_like(blocks)
    np.put_along_axis(mask, index[..., None], 1.0, axis=-1)
    return blocks.max(axis=-1), mask


def _unpool(grad, mask):
    n, c, h2, w2, _ = mask.shape
    blocks = mask * grad[..., None]
    return blocks.reshape(n, c, h2, w2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        n, c, 2 * h2, 2 * w2)


def forward(params, x, keep=False):
    """Float forward pass; with ``keep`` also the intermediates for backward."""
    n = x.shape[0]
    cols1 = _im2col(x)
    z1 = np.einsum("mk,nkp->nmp", params["conv1_w"].reshape(8, -1), cols1) \
        + params["conv1_b"][None, :, None]
    a1 = np.maximum(z1, 0).reshape(n, 8, 8, 8)
    p1, mask1 = _pool(a1)
    cols2 = _im2col(p1)
    z2 = np.einsum("mk,nkp->nmp", params["conv2_w"].reshape(16, -1), cols2) \
        + params["conv2_b"][None, :, None]
    a2 = np.maximum(z2, 0).reshape(n, 16, 4, 4)
    p2, mask2 = _pool(a2)
    flat = p2.reshape(n, -1)
    logits = flat @ params["fc_w"].reshape(10, -1).T + params["fc_b"]
    if not keep:
        return logits, (a1, a2)
    return logits, dict(cols1=cols1, z1=z1, mask1=mask1, p1=p1, cols2=cols2, z2=z2,
                        mask2=mask2, flat=flat)


def _backward(params, cache, grad_logits):
    n = grad_logits.shape[0]
    grads = {"fc_w": (grad_logits.T @ cache["flat"]).reshape(params["fc_w"].shape),
             "fc_b": grad_logits.sum(0)}
    g_p2 = (grad_logits @ params["fc_w"].reshape(10, -1)).reshape(n, 16, 2, 2)
    g_z2 = (_unpool(g_p2, cache["mask2"]).reshape(n, 16, 16)) * (cache["z2"] > 0)
    grads["conv2_w"] = np.einsum("nmp,nkp->mk", g_z2, cache["cols2"]).reshape(
        params["conv2_w"].shape)
    grads["conv2_b"] = g_z2.sum((0, 2))
    g_cols2 = np.einsum("mk,nmp->nkp", params["conv2_w"].reshape(16, -1), g_z2)
    g_p1 = _col2im(g_cols2, cache["p1"].shape)
    g_z1 = _unpool(g_p1, cache["mask1"]).reshape(n, 8, 64) * (cache["z1"] > 0)
    grads["conv1_w"] = np.einsum("nmp,nkp->mk", g_z1, cache["cols1"]).reshape(
        params["conv1_w"].shape)
    grads["conv1_b"] = g_z1.sum((0, 2))
    return grads


def train_float(x, y, *, seed: int, epochs: int = 40, batch: int = 32, lr: float = 3e-3):
    """Train the float network on ``x (N, 1, 8, 8)`` in input units; return the parameters."""
    rng = np.random.default_rng(seed)

    def he(*shape):
        fan_in = int(np.prod(shape[1:]))
        return rng.normal(0, math.sqrt(2 / fan_in), shape)

    params = {"conv1_w": he(8, 1, 3, 3), "conv1_b": np.zeros(8),
              "conv2_w": he(16, 8, 3, 3), "conv2_b": np.zeros(16),
              "fc_w": he(10, 16, 2, 2) * 0.5, "fc_b": np.zeros(10)}
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            index = order[start:start + batch]
            logits, cache = forward(params, x[index], keep=True)
            shifted = logits - logits.max(1, keepdims=True)
            prob = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
            prob[np.arange(len(index)), y[index]] -= 1
            grads = _backward(params, cache, prob / len(index))
            step += 1
            for key, grad in grads.items():
                m1, m2 = moments[key]
                m1[:] = 0.9 * m1 + 0.1 * grad
                m2[:] = 0.999 * m2 + 0.001 * grad * grad
                params[key] -= lr * (m1 / (1 - 0.9 ** step)) / (
                    np.sqrt(m2 / (1 - 0.999 ** step)) + 1e-8)
    return params


def _multiplier(real: float, mult_width: int, max_shift: int) -> tuple[int, int]:
    """``(M0, sh)`` with ``M0 / 2**sh`` closest to ``real`` and ``M0 < 2**mult_width``."""
    shift = max_shift
    while shift > 0 and round(real * 2 ** shift) >= 1 << mult_width:
        shift -= 1
    return int(round(real * 2 ** shift)), shift


def quantize(params, x_train, config=PRESETS["default"]) -> dict:
    """Integer parameters by the contract (module docstring), calibrated on ``x_train``."""
    logits, (a1, a2) = forward(params, x_train)
    peaks = {"conv1": a1.max(), "conv2": a2.max(), "fc": np.abs(logits).max()}
    net, s_x = {}, INPUT_SCALE
    for name in LAYERS:
        w, b = params[f"{name}_w"], params[f"{name}_b"]
        s_w = np.abs(w).reshape(len(w), -1).max(1) / 127
        s_y = peaks[name] / 127
        net[f"{name}_w"] = np.round(w / s_w[:, None, None, None]).astype(np.int64)
        net[f"{name}_b"] = np.round(b / (s_x * s_w)).astype(np.int64)
        pairs = [_multiplier(s_x * sw / s_y, config.mult_width, config.max_shift) for sw in s_w]
        net[f"{name}_m"] = np.array([p[0] for p in pairs], dtype=np.int64)
        net[f"{name}_sh"] = np.array([p[1] for p in pairs], dtype=np.int64)
        s_x = s_y
    return net


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", default=str(DIGITS_FILE))
    args = parser.parse_args(argv)
    from sklearn.datasets import load_digits   # the train extra

    digits = load_digits()
    images, labels = digits.images.astype(np.float64), digits.target.astype(np.int64)
    order = np.random.default_rng(args.seed).permutation(len(images))
    split = int(0.8 * len(images))
    train, test = order[:split], order[split:]
    x = (images * (1 / 16) * 127).round() * INPUT_SCALE     # what the integer input means
    params = train_float(x[train, None], labels[train], seed=args.seed)
    float_accuracy = float((forward(params, x[test, None])[0].argmax(1) == labels[test]).mean())
    net = quantize(params, x[train, None])
    test_x = np.round(images[test] * 127 / 16).astype(np.int64)[:, None]
    integer_accuracy = float((predict(net, test_x) == labels[test]).mean())
    print(f"held-out images: {len(test)}; float accuracy {100 * float_accuracy:.2f} %, "
          f"integer (golden) accuracy {100 * integer_accuracy:.2f} %")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **net, test_x=test_x.astype(np.int8),
                        test_y=labels[test].astype(np.int8), seed=args.seed,
                        float_accuracy=float_accuracy, integer_accuracy=integer_accuracy)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
