"""Checks of golden.pool2d: six-loop reference, exhaustive average rounding, hand examples."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convaccel.golden import pool2d

SETTINGS = settings(max_examples=150, deadline=None, database=None)
HALF = Fraction(1, 2)


def round_half_up(total, k):
    """floor(total / k + 1/2) in exact rational arithmetic."""
    return math.floor(Fraction(total, k) + HALF)


def naive_pool(x, kernel, stride, mode):
    """Six nested loops over (n, c, p, q, r, s); x is (N, C, H, W)."""
    (kh, kw), (uh, uw) = kernel, stride
    n_, c_, h, w = x.shape
    # Count window positions that fit instead of using the size formula.
    p_, q_ = len(range(0, h - kh + 1, uh)), len(range(0, w - kw + 1, uw))
    xl = x.tolist()
    out = np.zeros((n_, c_, p_, q_), dtype=np.int64)
    for n in range(n_):
        for c in range(c_):
            for p in range(p_):
                for q in range(q_):
                    vals = []
                    for r in range(kh):
                        for s in range(kw):
                            vals.append(xl[n][c][uh * p + r][uw * q + s])
                    out[n, c, p, q] = max(vals) if mode == "max" else round_half_up(sum(vals), kh * kw)
    return out


def random_case(rng):
    kernel = tuple(int(v) for v in rng.integers(1, 5, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 5, size=2))
    h = int(rng.integers(kernel[0], 14))
    w = int(rng.integers(kernel[1], 14))
    x = rng.integers(-128, 128, size=(int(rng.integers(1, 3)), int(rng.integers(1, 4)), h, w))
    return x, kernel, stride


def check_case(x, kernel, stride, mode, batched):
    # Exercise each spelling of kernel/stride: int when square, default stride.
    k_arg = kernel[0] if kernel[0] == kernel[1] else kernel
    s_arg = None if stride == kernel else (stride[0] if stride[0] == stride[1] else stride)
    got = pool2d(x if batched else x[0], k_arg, s_arg, mode=mode)
    expected = naive_pool(x, kernel, stride, mode)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, expected if batched else expected[0])


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("seed", range(3))
def test_random_cases_against_naive(seed, mode):
    rng = np.random.default_rng(2000 + seed)
    for i in range(60):
        x, kernel, stride = random_case(rng)
        if i % 4 == 0:
            stride = kernel  # the default-stride path
        check_case(x, kernel, stride, mode, batched=bool(i % 2))


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.sampled_from(["max", "avg"]))
def test_hypothesis_cases_against_naive(seed, mode):
    rng = np.random.default_rng(seed)
    x, kernel, stride = random_case(rng)
    check_case(x, kernel, stride, mode, batched=bool(rng.integers(2)))


@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (1, 2), (2, 1), (2, 3)])
def test_avg_every_int8_window_sum(kernel):
    # The rounded average depends only on the window sum, so covering every
    # sum an int8 window can have (K*-128 .. K*127) is exhaustive.
    kh, kw = kernel
    k = kh * kw
    sums = np.arange(-128 * k, 127 * k + 1)
    base, rem = np.divmod(sums, k)
    # Window for sum S: rem copies of base+1 and k-rem copies of base, shuffled.
    windows = base[:, None] + (np.arange(k)[None, :] < rem[:, None])
    rng = np.random.default_rng(k)
    windows = rng.permuted(windows, axis=1)
    assert windows.min() >= -128 and windows.max() <= 127
    np.testing.assert_array_equal(windows.sum(axis=1), sums)
    got = pool2d(windows.reshape(-1, kh, kw).astype(np.int8), kernel, mode="avg")
    expected = [round_half_up(int(v), k) for v in sums]
    np.testing.assert_array_equal(got.reshape(-1), expected)


def test_every_int8_value_1x1_is_identity():
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16)
    for mode in ("max", "avg"):
        np.testing.assert_array_equal(pool2d(x, 1, mode=mode), x)


def test_random_int8_windows_3x3_stride_2():
    rng = np.random.default_rng(99)
    x = rng.integers(-128, 128, size=(2, 8, 15, 15), dtype=np.int8)
    check_case(x.astype(np.int64), (3, 3), (2, 2), "avg", batched=True)
    np.testing.assert_array_equal(pool2d(x, 3, 2, mode="avg"), pool2d(x.astype(np.int64), 3, 2, mode="avg"))


# ---------------------------------------------------------------- hand examples


def test_hand_max_2x2_stride_2():
    x = np.array([[[1, 5, -2, -3], [4, 2, -8, -1], [0, 0, 7, 6], [-9, 3, 6, 7]]])
    np.testing.assert_array_equal(pool2d(x, 2), [[[5, -1], [3, 7]]])
    np.testing.assert_array_equal(pool2d(x, 2, 2, mode="max"), [[[5, -1], [3, 7]]])


@pytest.mark.parametrize(
    "window, expected",
    [
        ([1, 2], 2),  # 1.5 -> 2
        ([-1, -2], -1),  # -1.5 -> -1 (towards +infinity)
        ([2, 2, 1, 1], 2),  # 6/4 = 1.5 -> 2
        ([-2, -2, -1, -1], -1),  # -6/4 = -1.5 -> -1
        ([-2, -1, -1, -1], -1),  # -5/4 = -1.25 -> -1
        ([-2, -2, -2, -1], -2),  # -7/4 = -1.75 -> -2
        ([1, 1, 1, 2], 1),  # 5/4 = 1.25 -> 1
        ([1, 2, 2, 2], 2),  # 7/4 = 1.75 -> 2
        ([0, 0, 0, -2], 0),  # -0.5 -> 0
        ([-128, -128, -128, -128], -128),
        ([127, 127, 127, 126], 127),  # 126.75 -> 127
    ],
)
def test_hand_avg_rounding(window, expected):
    k = len(window)
    x = np.array(window).reshape(1, 1, 1, k)
    assert pool2d(x, (1, k), mode="avg")[0, 0, 0, 0] == expected
    assert pool2d(x.reshape(1, 1, k, 1), (k, 1), mode="avg")[0, 0, 0, 0] == expected


def test_hand_avg_3x3_stride_2_overlapping():
    # x[i][j] = 5i + j on 5x5; each 3x3 window average is its centre, exact.
    x = (5 * np.arange(5)[:, None] + np.arange(5))[None]
    np.testing.assert_array_equal(pool2d(x, 3, 2, mode="avg"), [[[6, 8], [16, 18]]])
    # 2x2 windows, stride 2 on 5x5: floor rule drops the last row/column;
    # averages are 5i+j+3 exactly (window sum 4*(5i+j) + 12).
    np.testing.assert_array_equal(pool2d(x, 2, mode="avg"), [[[3, 5], [13, 15]]])


def test_hand_avg_half_up_grid():
    # 2x2/2 windows with sums 2, -2, 6, -6 -> 0.5, -0.5, 1.5, -1.5 -> 1, 0, 2, -1.
    x = np.array([[[1, 1, -1, -1], [0, 0, 0, 0], [3, 3, -3, -3], [0, 0, 0, 0]]])
    np.testing.assert_array_equal(pool2d(x, 2, mode="avg"), [[[1, 0], [2, -1]]])


# ---------------------------------------------------------------- errors

X = np.zeros((1, 2, 4, 4), dtype=np.int64)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((X, 2), dict(mode="min"), r"pool mode must be one of \('max', 'avg'\), got 'min'"),
        ((X, 0), {}, r"kernel must be positive, got 0"),
        ((X, (2, -1)), {}, r"kernel must be positive, got \(2, -1\)"),
        ((X, 2, 0), {}, r"stride must be positive, got 0"),
        ((X, 2, (1, 1, 1)), {}, r"stride must be an int or a pair"),
        ((X, 5), {}, r"kernel height 5 .* larger than the padded input height 4"),
        ((X, (1, 5)), {}, r"kernel width 5 .* larger than .* width 4"),
        ((X.astype(np.float64), 2), {}, r"x must have an integer dtype, got dtype float64"),
        ((X[0, 0], 2), {}, r"x must be \(N, C, H, W\) or \(C, H, W\), got shape \(4, 4\)"),
        ((np.full((1, 1, 2, 2), 2**61), 2), dict(mode="avg"), r"avg pool2d could overflow int64"),
    ],
)
def test_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pool2d(*args, **kwargs)


def test_max_of_extremes_does_not_overflow():
    x = np.array([[[[-(2**63), 2**63 - 1]]]])
    assert pool2d(x, (1, 2))[0, 0, 0, 0] == 2**63 - 1
