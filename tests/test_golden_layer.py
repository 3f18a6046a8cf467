"""Checks of golden.conv_layer: the contract order conv -> +bias -> requant -> activation -> pool."""

import numpy as np
import pytest

from convaccel.golden import conv2d, conv_layer, pool2d, relu, requantize

# x[i][j] = 4i + j - 8 (values -8..7); two 1x1 output channels.
X = (4 * np.arange(4)[:, None] + np.arange(4) - 8)[None]
W = np.array([[[[3]]], [[[-5]]]])
BIAS = np.array([4, 0])
MULT = np.array([1, 3])
SHIFT = np.array([2, 1])


def test_hand_example_all_stages():
    # Channel 0: acc = 3x + 4, y = floor(acc/4 + 1/2).
    # Channel 1: acc = -5x,   y = floor(3*acc/2 + 1/2).
    res = conv_layer(
        X, W, BIAS, MULT, SHIFT, activation="relu", pool=("max", 2, 2), return_intermediates=True
    )
    acc0 = [[-20, -17, -14, -11], [-8, -5, -2, 1], [4, 7, 10, 13], [16, 19, 22, 25]]
    acc1 = [[40, 35, 30, 25], [20, 15, 10, 5], [0, -5, -10, -15], [-20, -25, -30, -35]]
    np.testing.assert_array_equal(res["acc"], [acc0, acc1])
    req0 = [[-5, -4, -3, -3], [-2, -1, 0, 0], [1, 2, 3, 3], [4, 5, 6, 6]]
    req1 = [[60, 53, 45, 38], [30, 23, 15, 8], [0, -7, -15, -22], [-30, -37, -45, -52]]
    np.testing.assert_array_equal(res["requant"], [req0, req1])
    act0 = [[0, 0, 0, 0], [0, 0, 0, 0], [1, 2, 3, 3], [4, 5, 6, 6]]
    act1 = [[60, 53, 45, 38], [30, 23, 15, 8], [0, 0, 0, 0], [0, 0, 0, 0]]
    np.testing.assert_array_equal(res["act"], [act0, act1])
    np.testing.assert_array_equal(res["out"], [[[0, 0], [5, 6]], [[60, 45], [0, 0]]])
    # Same result without intermediates, batched, and with a 2-tuple pool.
    out = conv_layer(X[None], W, BIAS, MULT, SHIFT, activation="relu", pool=("max", 2))
    np.testing.assert_array_equal(out, res["out"][None])
    assert out.dtype == np.int64


def test_hand_example_saturation_and_no_activation():
    # bits=6 clamps to [-32, 31]; without ReLU negatives survive into the pool.
    out = conv_layer(X, W, BIAS, MULT, SHIFT, pool=("max", 2, 2), bits=6)
    np.testing.assert_array_equal(out, [[[-1, 0], [5, 6]], [[31, 31], [0, -15]]])


def test_activation_comes_before_avg_pool():
    # Identity 1x1 conv on [-4, 4]: avg(relu) = avg(0, 4) = 2, relu(avg) would be 0.
    x = np.array([[[-4, 4]]])
    w = np.array([[[[1]]]])
    assert conv_layer(x, w, activation="relu", pool=("avg", (1, 2)))[0, 0, 0] == 2
    assert conv_layer(x, w, pool=("avg", (1, 2)))[0, 0, 0] == 0


def test_requant_comes_before_avg_pool():
    # acc [1, 3], shift 1: requant gives [1, 2] (0.5 -> 1, 1.5 -> 2), avg 1.5 -> 2.
    # Pooling first would give avg 2, then requant 2 >> 1 = 1.
    x = np.array([[[1, 3]]])
    w = np.array([[[[1]]]])
    assert conv_layer(x, w, multiplier=1, shift=1, pool=("avg", (1, 2)))[0, 0, 0] == 2


def test_bias_is_added_before_requant_at_full_width():
    # acc 100 * 10 + bias 24 = 1024 >> 3 = 128 -> saturates; bias after requant would give 125 + 24.
    x = np.array([[[100]]])
    w = np.array([[[[10]]]])
    assert conv_layer(x, w, [24], 1, 3, bits=16)[0, 0, 0] == 128
    assert conv_layer(x, w, [24], 1, 3)[0, 0, 0] == 127


@pytest.mark.parametrize("seed", range(4))
def test_matches_composition_of_primitives(seed):
    rng = np.random.default_rng(3000 + seed)
    for _ in range(15):
        c, m, g = int(rng.integers(1, 4)), int(rng.integers(1, 4)), 1
        if rng.integers(2):
            g = c = m  # depthwise
        x = rng.integers(-128, 128, size=(int(rng.integers(1, 3)), c, 9, 10))
        w = rng.integers(-128, 128, size=(m, c // g, 3, 2))
        bias = rng.integers(-5000, 5000, size=m)
        mult = rng.integers(1, 2**15, size=m)
        sh = rng.integers(8, 24, size=m)
        conv_args = dict(stride=(1, 2), padding=(1, 0, 0, 1), dilation=(2, 1), groups=g)
        activation = ["none", "relu", "clamp"][int(rng.integers(3))]
        high = int(rng.integers(0, 128)) if activation == "clamp" else None
        pool = [None, ("max", 2, 2), ("avg", 2, 1), ("avg", (2, 3))][int(rng.integers(4))]
        got = conv_layer(x, w, bias, mult, sh, **conv_args, activation=activation, pool=pool,
                         clamp_high=high)
        # Contract order, step by step.
        step = conv2d(x, w, bias, **conv_args)
        step = requantize(step, mult, sh)
        if activation == "relu":
            step = relu(step)
        if activation == "clamp":     # by hand: ReLU, then the upper bound
            step = np.minimum(relu(step), high)
        if pool is not None:
            step = pool2d(step, pool[1], pool[2] if len(pool) == 3 else None, mode=pool[0])
        np.testing.assert_array_equal(got, step)
        assert step.min() >= -128 and step.max() <= 127


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(activation="sigmoid"),
         r"activation must be one of \('none', 'relu', 'clamp'\), got 'sigmoid'"),
        (dict(activation="clamp"), r"clamp_high must be an integer"),
        (dict(activation="clamp", clamp_high=128), r"clamp_high must be in -128\.\.127 .* got 128"),
        (dict(activation="clamp", clamp_high=-129), r"clamp_high must be in -128\.\.127 .* got -129"),
        (dict(input_zero_point=128), r"input_zero_point must be in -128\.\.127 .* got 128"),
        (dict(output_zero_point=-129), r"output_zero_point must be in -128\.\.127 .*got -129"),
        (dict(activation="relu", clamp_high=6), r"clamp_high is only used with activation='clamp'"),
        (dict(pool="max"), r"pool must be None or \(mode, kernel\[, stride\]\).*got 'max'"),
        (dict(pool=("max",)), r"pool must be None or"),
        (dict(pool=("min", 2)), r"pool mode must be one of .*got 'min'"),
        (dict(pool=("max", 5)), r"kernel height 5 .* larger than"),
        (dict(multiplier=[1, 2, 3]), r"per-channel multiplier must have length M=2, got length 3"),
        (dict(bias=[1]), r"bias must have shape \(M,\) = \(2,\)"),
        (dict(padding=(1, 2, 3)), r"padding must be"),
        (dict(padding=10**6), r"conv2d: the padded input would have \d+ elements, above"),
        (dict(bits=0), r"bits must be in \[1, 64\], got 0"),
        (dict(bits=3), r"x \(activations\) must be 3-bit signed values in \[-4, 3\], got -8"),
        (dict(weight_bits=3), r"w \(weights\) must be 3-bit signed values in \[-4, 3\], got -5"),
    ],
)
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv_layer(X, W, **kwargs)


@pytest.mark.parametrize("x, w, match", [
    (200, 1, r"x \(activations\) must be 8-bit signed values in \[-128, 127\], got 200"),
    (-129, 1, r"got -129"),
    (1, 1000, r"w \(weights\) must be 8-bit signed values in \[-128, 127\], got 1000"),
])
def test_operands_outside_the_contract_widths_are_refused(x, w, match):
    with pytest.raises(ValueError, match=match):
        conv_layer(np.array([[[x]]]), np.array([[[[w]]]]))
    # At a width that holds them they are fine: 16-bit activations, weights.
    assert conv_layer(np.array([[[x]]]), np.array([[[[w]]]]), bits=16).shape == (1, 1, 1)
