"""Checks of golden requantization, rounding, saturation and activations.

The reference is the contract written with Python integers and fractions:
``clamp(floor(acc * M0 / 2^sh + 1/2))`` for ``sh > 0`` and ``clamp(acc * M0)``
for ``sh == 0``.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convaccel.golden import clamp_activation, relu, requantize, round_shift, saturate

SETTINGS = settings(max_examples=200, deadline=None, database=None)
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


def ref_requant(acc, mult, sh, bits=8):
    v = acc * mult
    if sh > 0:
        v = math.floor(Fraction(v, 2**sh) + Fraction(1, 2))
    return min(max(v, -(2 ** (bits - 1))), 2 ** (bits - 1) - 1)


# ---------------------------------------------------------------- hand examples


@pytest.mark.parametrize(
    "acc, mult, sh, expected",
    [
        (5, 1, 1, 3),  # 2.5 -> 3
        (-5, 1, 1, -2),  # -2.5 -> -2 (half towards +infinity)
        (3, 1, 1, 2),  # 1.5 -> 2
        (-3, 1, 1, -1),  # -1.5 -> -1
        (-1, 1, 1, 0),  # -0.5 -> 0
        (7, 1, 2, 2),  # 1.75 -> 2
        (-6, 1, 2, -1),  # -1.5 -> -1
        (-7, 1, 2, -2),  # -1.75 -> -2
        (-5, 1, 2, -1),  # -1.25 -> -1
        (10, 3, 2, 8),  # 30/4 = 7.5 -> 8
        (100, 1, 0, 100),  # shift 0: no rounding term
        (-100, 1, 0, -100),
        (127, 1, 0, 127),
        (128, 1, 0, 127),  # saturate high
        (-128, 1, 0, -128),
        (-129, 1, 0, -128),  # saturate low
        (1000, 5, 3, 127),  # 625 -> 127
        (-1000, 5, 3, -128),
        (255, 1, 1, 127),  # 127.5 -> 128 -> saturates to 127
        (-257, 1, 1, -128),  # -128.5 -> -128, no saturation needed
        (-259, 1, 1, -128),  # -129.5 -> -129 -> -128
        (-(2**31), 1, 24, -128),  # most negative int32 accumulator, exact
        (-(2**31), 1, 23, -128),  # -256 saturates
        (-(2**31), 2**31 - 1, 62, -1),  # -(2^62 - 2^31)/2^62 -> -1 + tiny -> -1
        (2**31 - 1, 2**31 - 1, 62, 1),  # (2^31-1)^2 / 2^62 = 0.99999 -> 1
        (0, 12345, 7, 0),
    ],
)
def test_hand_examples(acc, mult, sh, expected):
    assert requantize(acc, mult, sh) == expected
    assert requantize(np.array([acc]), np.array([mult]), np.array([sh]))[0] == expected


def test_int64_extremes():
    # (-2^63 + 2^61) >> 62 = floor(-1.5) = -2.
    assert requantize(np.int64(I64_MIN), 1, 62) == -2
    assert requantize(np.int64(I64_MIN), 1, 0, bits=64) == I64_MIN
    assert requantize(np.int64(I64_MAX), 1, 0, bits=64) == I64_MAX
    assert requantize(np.int64(I64_MAX - 1), 1, 1, bits=64) == 2**62 - 1
    assert requantize(np.int64(I64_MAX), 1, 0) == 127


def test_bits_parameter():
    acc = np.array([-1000, -9, -8, 7, 8, 1000])
    np.testing.assert_array_equal(requantize(acc, 1, 0, bits=4), [-8, -8, -8, 7, 7, 7])
    np.testing.assert_array_equal(requantize(acc, 1, 0, bits=16), acc)
    np.testing.assert_array_equal(requantize(acc, 1, 0, bits=1), [-1, -1, -1, 0, 0, 0])


# ---------------------------------------------------------------- against the formula


def test_large_random_set_against_fraction_formula():
    rng = np.random.default_rng(3)
    n = 4000
    acc = rng.integers(-(2**31), 2**31, size=n)
    acc[:8] = [-(2**31), 2**31 - 1, 0, -1, 1, -(2**31) + 1, 2**30, -(2**30)]
    mult = rng.integers(0, 2**31, size=n)
    mult[::7] = rng.integers(0, 4, size=len(mult[::7]))  # tiny multipliers too
    mult[1::11] = 2**31 - 1
    sh = rng.integers(0, 63, size=n)
    sh[::5] = rng.integers(0, 40, size=len(sh[::5]))  # shifts that leave values in range
    # Per-channel parameters on 1-D acc: every element gets its own pair.
    got = requantize(acc, mult, sh)
    expected = [ref_requant(int(a), int(m), int(s)) for a, m, s in zip(acc, mult, sh)]
    np.testing.assert_array_equal(got, expected)
    assert 0 < np.count_nonzero(np.abs(got) < 127)  # not everything saturated
    assert np.count_nonzero(got == 127) and np.count_nonzero(got == -128)


def test_half_way_points_against_fraction_formula():
    # acc*m = k*2^sh + 2^(sh-1) exactly: every case sits on a .5 tie.
    rng = np.random.default_rng(4)
    sh = rng.integers(1, 20, size=2000)
    k = rng.integers(-200, 200, size=2000)
    acc = k * (1 << sh) + (1 << (sh - 1))
    got = requantize(acc, 1, sh, bits=16)
    np.testing.assert_array_equal(got, k + 1)
    np.testing.assert_array_equal(got, [ref_requant(int(a), 1, int(s), 16) for a, s in zip(acc, sh)])


@SETTINGS
@given(
    st.integers(I64_MIN, I64_MAX),
    st.integers(0, 2**40) | st.integers(0, I64_MAX),
    st.integers(0, 63),
    st.integers(1, 64),
)
def test_hypothesis_any_int64_either_exact_or_rejected(acc, mult, sh, bits):
    # The overflow check must be exact: reject iff the int64 intermediate wraps
    # (M0 is unsigned; negative multipliers are refused, tested above).
    v = acc * mult
    rnd = 2 ** (sh - 1) if sh else 0
    if v < I64_MIN or v + rnd > I64_MAX:
        with pytest.raises(ValueError, match="overflow int64"):
            requantize(np.array([acc]), np.array([mult]), np.array([sh]), bits=bits)
    else:
        got = requantize(np.array([acc]), np.array([mult]), np.array([sh]), bits=bits)
        assert got[0] == ref_requant(acc, mult, sh, bits)


# ---------------------------------------------------------------- per-channel broadcasting


def test_per_channel_on_mpq_and_nmpq():
    rng = np.random.default_rng(5)
    acc = rng.integers(-(2**20), 2**20, size=(2, 3, 4, 5))
    mult = np.array([1, 1000, 77])
    sh = np.array([0, 12, 9])

    def expected(a4):
        return np.array(
            [
                [[[ref_requant(int(v), int(mult[m]), int(sh[m])) for v in row] for row in a4[n, m]] for m in range(3)]
                for n in range(a4.shape[0])
            ]
        )

    np.testing.assert_array_equal(requantize(acc, mult, sh), expected(acc))
    np.testing.assert_array_equal(requantize(acc[1], mult, sh), expected(acc[1:])[0])
    # Scalar multiplier with per-channel shift, and the other way round.
    np.testing.assert_array_equal(requantize(acc, 1000, sh)[:, 0], requantize(acc[:, 0], 1000, 0))
    np.testing.assert_array_equal(requantize(acc, mult, 12)[:, 1], requantize(acc[:, 1], 1000, 12))
    # A square (M, P, Q) acc with M == P == Q: the channel is axis 0, not the last axis.
    sq = np.full((3, 3, 3), 100)
    out = requantize(sq, [1, 2, 3], 0, bits=16)
    np.testing.assert_array_equal(out[:, 0, 0], [100, 200, 300])
    np.testing.assert_array_equal(out[0], 100)


def test_per_channel_overflow_check_is_per_channel():
    # Channel 0 has huge accumulators with a small multiplier, channel 1 the
    # reverse; neither product overflows although max|acc| * max|m| would.
    acc = np.array([[[2**40]], [[3]]])
    out = requantize(acc, [1, 2**40], [40, 40])
    np.testing.assert_array_equal(out.ravel(), [1, 3])
    with pytest.raises(ValueError, match="overflow"):
        requantize(acc, [2**40, 2**40], 40)


# ---------------------------------------------------------------- helpers


def test_round_shift_and_saturate():
    np.testing.assert_array_equal(round_shift([5, -5, 6, -6, 7, -7], 2), [1, -1, 2, -1, 2, -2])
    np.testing.assert_array_equal(round_shift([5, -5], 0), [5, -5])
    np.testing.assert_array_equal(round_shift([4, 4, 4], [0, 1, 3]), [4, 2, 1])
    with pytest.raises(ValueError, match="overflow"):
        round_shift(np.int64(I64_MAX), 1)
    np.testing.assert_array_equal(saturate([-300, -128, 0, 127, 300]), [-128, -128, 0, 127, 127])
    np.testing.assert_array_equal(saturate([-300, 300], bits=9), [-256, 255])


def test_relu_and_clamp():
    x = np.array([-128, -1, 0, 1, 5, 6, 7, 127], dtype=np.int8)
    got = relu(x)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 5, 6, 7, 127])
    np.testing.assert_array_equal(clamp_activation(x, 0, 6), [0, 0, 0, 1, 5, 6, 6, 6])
    np.testing.assert_array_equal(clamp_activation(x, -1, 1), [-1, -1, 0, 1, 1, 1, 1, 1])


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((10, 1, -1), {}, r"shift must be in \[0, 63\], got -1"),
        ((10, 1, 64), {}, r"shift must be in \[0, 63\], got 64"),
        ((np.zeros((2, 1, 1), dtype=np.int64), 1, [0, 70]), {}, r"shift must be in \[0, 63\], got 70"),
        ((10, 2.5, 1), {}, r"multiplier must have an integer dtype, got dtype float64"),
        ((10, np.array([2.0]), 1), {}, r"multiplier must have an integer dtype"),
        ((10, 1, 1.0), {}, r"shift must have an integer dtype"),
        ((10.0, 1, 1), {}, r"acc must have an integer dtype"),
        ((np.zeros((3, 2, 2), dtype=np.int64), [1, 2], 0), {}, r"per-channel multiplier must have length M=3, got length 2"),
        ((np.zeros((1, 3, 2, 2), dtype=np.int64), 1, [1, 2]), {}, r"per-channel shift must have length M=3, got length 2"),
        ((np.zeros((3, 2), dtype=np.int64), [1, 2, 3], 0), {}, r"per-channel multiplier needs acc of shape .* got acc shape \(3, 2\)"),
        ((np.zeros(3, dtype=np.int64), [[1, 2, 3]], 0), {}, r"multiplier must be a scalar or a 1-D"),
        ((2**40, 2**30, 0), {}, r"acc \* multiplier \+ rounding could overflow int64"),
        ((np.int64(I64_MIN), 2, 0), {}, r"could overflow int64"),
        ((10, -1, 0), {}, r"multiplier M0 is unsigned, got -1"),
        ((np.zeros((2, 1, 1), dtype=np.int64), [3, -2], 0), {}, r"M0 is unsigned, got -2"),
        ((10, 1, 0), dict(bits=0), r"bits must be in \[1, 64\], got 0"),
        ((10, 1, 0), dict(bits=65), r"bits must be in \[1, 64\], got 65"),
    ],
)
def test_requantize_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        requantize(*args, **kwargs)


def test_activation_errors():
    with pytest.raises(ValueError, match=r"low <= high, got low=6, high=0"):
        clamp_activation([1], 6, 0)
    with pytest.raises(ValueError, match=r"low must be an integer, got 0.5"):
        clamp_activation([1], 0.5, 6)
    with pytest.raises(ValueError, match=r"x must have an integer dtype"):
        relu(np.array([0.5]))
