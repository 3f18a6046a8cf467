"""Zero points in golden.conv_layer (docs/arithmetic.md, "Zero points").

The reference is the contract written out with Python integers: pad the
input with the input zero point ``zx``, sum ``(x - zx) * w`` over each
window, add the bias, ``floor((acc * M0 + 2^(sh-1)) / 2^sh) + zo``,
saturate, then ReLU ``max(y, zo)`` or clamp ``min(max(y, zo), clamp_high)``.
"""

import numpy as np
import pytest

from convaccel.golden import conv_layer, pool2d, requantize


def naive_layer(x, w, bias, mult, shift, stride, pad, dilation, groups, zx, zo, activation,
                high, bits=8):
    """One quantized layer by loops over Python ints; padding holds the value ``zx``."""
    c, h, wd = x.shape
    m, cg, r, s = w.shape
    pt, pb, pl, pr = pad
    padded = [[[zx] * (wd + pl + pr) for _ in range(h + pt + pb)] for _ in range(c)]
    for ch in range(c):
        for iy in range(h):
            for ix in range(wd):
                padded[ch][iy + pt][ix + pl] = int(x[ch, iy, ix])
    p = (h + pt + pb - dilation[0] * (r - 1) - 1) // stride[0] + 1
    q = (wd + pl + pr - dilation[1] * (s - 1) - 1) // stride[1] + 1
    low, top = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    out = np.zeros((m, p, q), dtype=np.int64)
    for oc in range(m):
        first = (oc // (m // groups)) * cg
        for oy in range(p):
            for ox in range(q):
                acc = int(bias[oc])
                for ci in range(cg):
                    for ky in range(r):
                        for kx in range(s):
                            v = padded[first + ci][oy * stride[0] + ky * dilation[0]][
                                ox * stride[1] + kx * dilation[1]]
                            acc += (v - zx) * int(w[oc, ci, ky, kx])
                sh = int(shift[oc])
                y = (acc * int(mult[oc]) + (1 << (sh - 1) if sh else 0)) // (1 << sh) + zo
                y = min(max(y, low), top)
                if activation == "relu":
                    y = max(y, zo)
                elif activation == "clamp":
                    y = min(max(y, zo), high)
                out[oc, oy, ox] = y
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_layers_against_naive_loops(seed):
    rng = np.random.default_rng(4100 + seed)
    for _ in range(6):
        groups = int(rng.choice([1, 2]))
        c, m = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        r, s = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        stride, dilation = tuple(rng.integers(1, 3, 2)), tuple(rng.integers(1, 3, 2))
        pad = tuple(int(v) for v in rng.integers(0, 3, 4))
        h, wd = int(rng.integers(r * 2, 9)), int(rng.integers(s * 2, 9))
        x = rng.integers(-128, 128, (c, h, wd))
        w = rng.integers(-128, 128, (m, c // groups, r, s))
        bias = rng.integers(-20000, 20000, m)
        mult = rng.integers(1, 1 << 16, m)
        shift = rng.integers(10, 24, m)
        zx, zo = (int(v) for v in rng.integers(-128, 128, 2))
        activation = str(rng.choice(["none", "relu", "clamp"]))
        high = int(rng.integers(-128, 128)) if activation == "clamp" else None
        got = conv_layer(x, w, bias, mult, shift, stride=stride, padding=pad,
                         dilation=dilation, groups=groups, activation=activation,
                         clamp_high=high, input_zero_point=zx, output_zero_point=zo)
        want = naive_layer(x, w, bias, mult, shift, stride, pad, dilation, groups, zx, zo,
                           activation, high)
        np.testing.assert_array_equal(got, want)


def test_zero_points_zero_reproduce_the_symmetric_layer():
    rng = np.random.default_rng(4200)
    x, w = rng.integers(-128, 128, (3, 7, 7)), rng.integers(-128, 128, (4, 3, 3, 3))
    args = (x, w, rng.integers(-999, 999, 4), rng.integers(1, 1 << 15, 4), 14)
    kwargs = dict(padding=1, activation="relu", pool=("max", 2, 2))
    np.testing.assert_array_equal(conv_layer(*args, **kwargs),
                                  conv_layer(*args, **kwargs, input_zero_point=0,
                                             output_zero_point=0))


def test_hand_example_padding_takes_the_input_zero_point():
    # 1x1 input 10, zx = 4, 3x3 kernel of ones, padding 1: only the centre counts,
    # (10 - 4) * 1 = 6; padded taps read 4 and contribute 4 - 4 = 0.
    x = np.array([[[10]]])
    w = np.ones((1, 1, 3, 3), dtype=np.int64)
    assert conv_layer(x, w, padding=1, input_zero_point=4)[0, 0, 0] == 6
    # The output zero point is added after the shift and before saturation:
    # acc 6 * 3 = 18 >> 2 = 4.5 -> 5, + zo 120 = 125; zo 125 saturates at 127.
    assert conv_layer(x, w, None, 3, 2, padding=1, input_zero_point=4,
                      output_zero_point=120)[0, 0, 0] == 125
    assert conv_layer(x, w, None, 3, 2, padding=1, input_zero_point=4,
                      output_zero_point=125)[0, 0, 0] == 127


def test_hand_example_activations_clamp_at_the_output_zero_point():
    x = np.array([[[-50, 0, 50]]])
    w = np.ones((1, 1, 1, 1), dtype=np.int64)
    # y = x + zo with zo = -100: [-150 -> -128, -100, -50].
    np.testing.assert_array_equal(conv_layer(x, w, output_zero_point=-100)[0, 0],
                                  [-128, -100, -50])
    np.testing.assert_array_equal(
        conv_layer(x, w, output_zero_point=-100, activation="relu")[0, 0], [-100, -100, -50])
    np.testing.assert_array_equal(
        conv_layer(x, w, output_zero_point=-100, activation="clamp", clamp_high=-70)[0, 0],
        [-100, -100, -70])
    # Pooling comes after the activation, unchanged.
    out = conv_layer(x, w, output_zero_point=-100, activation="relu", pool=("avg", (1, 3), 1))
    assert out[0, 0, 0] == pool2d(np.array([[[-100, -100, -50]]]), (1, 3), 1, mode="avg")[0, 0, 0]


def test_requantize_adds_the_zero_point_before_saturation():
    np.testing.assert_array_equal(requantize([5, -5, 300], 1, 1, zero_point=10), [13, 8, 127])
    np.testing.assert_array_equal(requantize([2 ** 62], 1, 0, bits=64, zero_point=5),
                                  [2 ** 62 + 5])
    assert requantize([2 ** 63 - 1], 1, 0, bits=64, zero_point=5)[0] == 2 ** 63 - 1
    with pytest.raises(ValueError, match=r"zero_point must be in -128\.\.127 .* got 200"):
        requantize([1], 1, 0, zero_point=200)
