"""Checks of golden.conv2d against two independent references and hand-worked examples.

References written here, not taken from the implementation:

* the seven-loop textbook convolution on Python ints, with explicit padding
  checks and groups;
* ``scipy.signal.correlate(mode="valid", method="direct")`` on exact
  integer-valued float64 data, over an explicitly zero-padded input, with a
  dilated kernel built by inserting zeros and strided sampling afterwards.
"""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

from convaccel.golden import as_padding4, as_pair, conv2d, output_size

SETTINGS = settings(max_examples=150, deadline=None, database=None)


# ---------------------------------------------------------------- references


def naive_conv(x, w, bias, stride, pad, dilation, groups):
    """Seven nested loops over (n, m, p, q, c, r, s); x is (N, C, H, W), pad is (t, b, l, r)."""
    n_, c_, h, wd = x.shape
    m_, cg, r_, s_ = w.shape
    (uh, uw), (dh, dw), (pt, pb, pl, pr) = stride, dilation, pad
    mg = m_ // groups
    # Output size by counting window positions that fit, not by the formula.
    p_ = len(range(0, h + pt + pb - (dh * (r_ - 1) + 1) + 1, uh))
    q_ = len(range(0, wd + pl + pr - (dw * (s_ - 1) + 1) + 1, uw))
    xl, wl = x.tolist(), w.tolist()
    out = np.zeros((n_, m_, p_, q_), dtype=object)
    for n in range(n_):
        for m in range(m_):
            g = m // mg
            for p in range(p_):
                for q in range(q_):
                    acc = 0 if bias is None else int(bias[m])
                    for c in range(cg):
                        for r in range(r_):
                            for s in range(s_):
                                i = uh * p + dh * r - pt
                                j = uw * q + dw * s - pl
                                if 0 <= i < h and 0 <= j < wd:
                                    acc += xl[n][g * cg + c][i][j] * wl[m][c][r][s]
                    out[n, m, p, q] = acc
    return out


def scipy_conv(x, w, bias, stride, pad, dilation, groups):
    """Same maths through scipy.signal.correlate on float64 (exact for these small ints)."""
    (uh, uw), (dh, dw), (pt, pb, pl, pr) = stride, dilation, pad
    m_, cg, r_, s_ = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    wdil = np.zeros((m_, cg, dh * (r_ - 1) + 1, dw * (s_ - 1) + 1))
    wdil[:, :, ::dh, ::dw] = w
    planes = []
    for n in range(x.shape[0]):
        row = []
        for m in range(m_):
            g = m // (m_ // groups)
            full = scipy.signal.correlate(
                xp[n, g * cg : (g + 1) * cg], wdil[m], mode="valid", method="direct"
            )
            plane = full[0, ::uh, ::uw]
            row.append(plane + (0 if bias is None else bias[m]))
        planes.append(row)
    out = np.array(planes)
    assert np.all(out == np.round(out)) and np.abs(out).max(initial=0) < 2**52
    return out.astype(np.int64)


# ---------------------------------------------------------------- random cases


def random_case(rng):
    """Draw a random convolution problem and its spellings for conv2d and the references."""
    kind = rng.choice(["dense", "grouped", "depthwise", "depthwise2"])
    if kind == "dense":
        g, cg, mg = 1, int(rng.integers(1, 5)), int(rng.integers(1, 5))
    elif kind == "grouped":
        g, cg, mg = int(rng.integers(2, 4)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
    else:  # groups == C, M = C or 2*C
        g, cg, mg = int(rng.integers(1, 5)), 1, 1 if kind == "depthwise" else 2
    c, m = g * cg, g * mg
    r, s = (int(v) for v in rng.integers(1, 5, size=2))
    stride = tuple(int(v) for v in rng.integers(1, 5, size=2))
    dil = tuple(int(v) for v in rng.integers(1, 4, size=2))
    pad = tuple(int(v) for v in rng.integers(0, 4, size=4))
    form = rng.integers(3)
    if form == 0:
        pad, pad_arg = (pad[0],) * 4, pad[0]
    elif form == 1:
        pad, pad_arg = (pad[0], pad[0], pad[2], pad[2]), (pad[0], pad[2])
    else:
        pad_arg = pad
    # Keep the padded input at least one (dilated) kernel span.
    h = max(int(rng.integers(1, 14)), dil[0] * (r - 1) + 1 - pad[0] - pad[1], 1)
    wd = max(int(rng.integers(1, 14)), dil[1] * (s - 1) + 1 - pad[2] - pad[3], 1)
    batched = bool(rng.integers(2))
    n = int(rng.integers(1, 3))
    x = rng.integers(-128, 128, size=(n, c, h, wd))
    w = rng.integers(-128, 128, size=(m, cg, r, s))
    bias = rng.integers(-(2**31), 2**31, size=m) if rng.integers(2) else None
    args = dict(
        stride=stride if stride[0] != stride[1] or rng.integers(2) else stride[0],
        padding=pad_arg,
        dilation=dil if dil[0] != dil[1] or rng.integers(2) else dil[0],
        groups=g,
    )
    return x, w, bias, args, (stride, pad, dil, g), batched


def check_case(x, w, bias, args, ref_args, batched, use_scipy=True):
    stride, pad, dil, g = ref_args
    got = conv2d(x if batched else x[0], w, bias, **args)
    assert got.dtype == np.int64
    expected = naive_conv(x, w, bias, stride, pad, dil, g)
    if not batched:
        expected = expected[0]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected.astype(np.int64))
    if use_scipy:
        sp = scipy_conv(x, w, bias, stride, pad, dil, g)
        np.testing.assert_array_equal(got, sp if batched else sp[0])


@pytest.mark.parametrize("seed", range(6))
def test_random_cases_against_naive_and_scipy(seed):
    rng = np.random.default_rng(1000 + seed)
    for _ in range(60):
        check_case(*random_case(rng))


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_hypothesis_cases_against_naive(seed):
    check_case(*random_case(np.random.default_rng(seed)), use_scipy=False)


SPECIAL = {
    # name: (x shape, w shape, stride, pad (t,b,l,r), dilation, groups)
    "1x1 kernel": ((2, 3, 5, 4), (4, 3, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "1x1 kernel strided padded": ((1, 3, 5, 4), (2, 3, 1, 1), (2, 3), (1, 0, 2, 1), (1, 1), 1),
    "depthwise G=C=M": ((1, 4, 6, 6), (4, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4),
    "depthwise M=2C": ((2, 3, 6, 5), (6, 1, 3, 2), (2, 1), (1, 2, 0, 1), (1, 2), 3),
    "H = 1": ((1, 2, 1, 7), (3, 2, 1, 3), (1, 2), (0, 0, 1, 1), (1, 1), 1),
    "W = 1": ((1, 2, 7, 1), (3, 2, 3, 1), (2, 1), (1, 1, 0, 0), (1, 1), 1),
    "H = W = 1 with padding": ((1, 1, 1, 1), (2, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "kernel 3 stride 2": ((1, 2, 8, 9), (2, 2, 3, 3), (2, 2), (0, 0, 0, 0), (1, 1), 1),
    "kernel 2 stride 3": ((1, 2, 9, 8), (2, 2, 2, 2), (3, 3), (0, 1, 1, 0), (1, 1), 1),
    "kernel 4 stride 3 dilation 2": ((1, 1, 12, 11), (1, 1, 4, 3), (3, 2), (2, 1, 0, 3), (2, 3), 1),
    "fully connected (R=H, S=W)": ((2, 3, 4, 5), (6, 3, 4, 5), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "non-square everything": ((1, 4, 5, 9), (6, 2, 2, 4), (2, 3), (3, 0, 1, 2), (2, 1), 2),
    "same padding odd remainder": ((1, 2, 6, 6), (2, 2, 2, 2), (1, 1), (0, 1, 0, 1), (1, 1), 1),
}


@pytest.mark.parametrize("name", SPECIAL)
def test_special_shapes(name):
    xs, ws, stride, pad, dil, g = SPECIAL[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    x, w = rng.integers(-128, 128, size=xs), rng.integers(-128, 128, size=ws)
    bias = rng.integers(-1000, 1000, size=ws[0])
    args = dict(stride=stride, padding=pad, dilation=dil, groups=g)
    for batched in (True, False):
        check_case(x, w, bias, args, (stride, pad, dil, g), batched)


def test_wide_values_are_exact():
    # Beyond float64's 53-bit mantissa: only exact integer arithmetic passes.
    rng = np.random.default_rng(7)
    x = rng.integers(-(2**26), 2**26, size=(1, 3, 5, 5))
    w = rng.integers(-(2**26), 2**26, size=(2, 3, 3, 3))
    got = conv2d(x, w, padding=1)
    np.testing.assert_array_equal(got, naive_conv(x, w, None, (1, 1), (1,) * 4, (1, 1), 1).astype(np.int64))
    assert np.abs(got).max() > 2**53


def test_input_dtypes():
    x = np.arange(12, dtype=np.uint8).reshape(1, 3, 4)
    w = np.ones((1, 1, 2, 2), dtype=np.int16)
    expected = [[[10, 14, 18], [26, 30, 34]]]  # 2x2 window sums of 0..11
    for xx in (x, x.astype(np.int8), x.tolist()):
        np.testing.assert_array_equal(conv2d(xx, w), expected)


# ---------------------------------------------------------------- hand examples

X3 = np.array([[[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
K2 = np.array([[[[1, 2], [3, 4]]]])


def test_hand_3x3_input_2x2_kernel():
    # out[p][q] = x[p][q] + 2 x[p][q+1] + 3 x[p+1][q] + 4 x[p+1][q+1]
    np.testing.assert_array_equal(conv2d(X3, K2), [[[37, 47], [67, 77]]])
    np.testing.assert_array_equal(conv2d(X3[None], K2, bias=[-7]), [[[[30, 40], [60, 70]]]])


def test_hand_padding_1():
    expected = [
        [4, 11, 18, 9],
        [18, 37, 47, 21],
        [36, 67, 77, 33],
        [14, 23, 26, 9],
    ]
    np.testing.assert_array_equal(conv2d(X3, K2, padding=1), [expected])


def test_hand_asymmetric_padding():
    # Row [1, 2, 3] padded (left 2, right 1) -> [0, 0, 1, 2, 3, 0]; kernel [1, 10].
    x = np.array([[[1, 2, 3]]])
    w = np.array([[[[1, 10]]]])
    np.testing.assert_array_equal(conv2d(x, w, padding=(0, 0, 2, 1)), [[[0, 10, 21, 32, 3]]])


def test_hand_stride_2_floor_rule():
    # x[i][j] = 6i + j, 5x6; 3x3 box filter, stride 2: window sum = 54a + 9b + 63.
    x = (6 * np.arange(5)[:, None] + np.arange(6))[None]
    w = np.ones((1, 1, 3, 3), dtype=np.int64)
    out = conv2d(x, w, stride=2)
    np.testing.assert_array_equal(out, [[[63, 81], [171, 189]]])
    # floor((6 - 3) / 2) + 1 = 2 columns: the last column is never read.
    x2 = x.copy()
    x2[..., 5] = 99
    np.testing.assert_array_equal(conv2d(x2, w, stride=2), out)


def test_hand_dilation_2():
    # x[i][j] = 5i + j; taps at offsets 0 and 2: out = 10 (5p + q) + 82.
    x = (5 * np.arange(5)[:, None] + np.arange(5))[None]
    expected = [[82, 92, 102], [132, 142, 152], [182, 192, 202]]
    np.testing.assert_array_equal(conv2d(x, K2, dilation=2), [expected])


def test_hand_depthwise_with_bias():
    x = np.array([[[1, 2]], [[3, 4]]])
    w = np.array([[[[2]]], [[[-3]]]])
    np.testing.assert_array_equal(conv2d(x, w, bias=[1, 10], groups=2), [[[3, 5]], [[1, -2]]])


def test_hand_groups_see_only_their_channels():
    # Two groups of two channels; each output sums only its own group's inputs.
    x = np.array([[[1]], [[10]], [[100]], [[1000]]])
    w = np.ones((2, 2, 1, 1), dtype=np.int64)
    np.testing.assert_array_equal(conv2d(x, w, groups=2), [[[11]], [[1100]]])


# ---------------------------------------------------------------- normalisers


def test_normalisers():
    assert as_pair(3, "stride") == (3, 3)
    assert as_pair((1, 2), "stride") == (1, 2)
    assert as_padding4(2) == (2, 2, 2, 2)
    assert as_padding4((1, 2)) == (1, 1, 2, 2)
    assert as_padding4([1, 2, 3, 4]) == (1, 2, 3, 4)
    assert output_size(7, 3, 2, 1, (1, 1)) == 4  # floor((7 + 2 - 3) / 2) + 1
    assert output_size(6, 3, 2) == 2  # floor rule
    assert output_size(5, 2, 1, 2, (0, 0)) == 3  # dilated span 3


# ---------------------------------------------------------------- errors

X = np.zeros((1, 4, 5, 5), dtype=np.int64)
W = np.zeros((2, 4, 3, 3), dtype=np.int64)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(w=np.zeros((2, 3, 3, 3), dtype=np.int64)), r"channel mismatch.*C=4.*3\*1 = 3"),
        (dict(w=np.zeros((2, 2, 3, 3), dtype=np.int64), groups=3), r"groups=3 must divide.*C=4"),
        (dict(w=np.zeros((3, 2, 3, 3), dtype=np.int64), groups=2), r"groups=2 must divide.*M=3"),
        (dict(groups=0), r"groups must be positive, got 0"),
        (dict(stride=0), r"stride must be positive, got 0"),
        (dict(stride=(1, -2)), r"stride must be positive, got \(1, -2\)"),
        (dict(stride=(1, 2, 3)), r"stride must be an int or a pair"),
        (dict(stride=1.5), r"stride must be an integer, got 1.5"),
        (dict(dilation=0), r"dilation must be positive, got 0"),
        (dict(padding=-1), r"padding must be non-negative, got -1"),
        (dict(padding=(0, 1, -1, 0)), r"padding must be non-negative"),
        (dict(padding=(1, 1, 1)), r"padding must be .*got 3 values \(1, 1, 1\)"),
        (dict(w=np.zeros((2, 4, 6, 3), dtype=np.int64)), r"kernel height 6 .* larger than the padded input height 5"),
        (dict(dilation=(1, 3)), r"kernel width 3 \(dilation 3, span 7\) is larger .* width 5"),
        (dict(x=np.zeros((4, 5), dtype=np.int64)), r"x must be \(N, C, H, W\) or \(C, H, W\), got shape \(4, 5\)"),
        (dict(w=np.zeros((2, 4, 3), dtype=np.int64)), r"w must be \(M, C/groups, R, S\), got shape"),
        (dict(x=X.astype(np.float64)), r"x must have an integer dtype, got dtype float64"),
        (dict(w=W.astype(np.float32)), r"w must have an integer dtype, got dtype float32"),
        (dict(x=X.astype(bool)), r"x must have an integer dtype, got dtype bool"),
        (dict(bias=np.zeros(3, dtype=np.int64)), r"bias must have shape \(M,\) = \(2,\), got \(3,\)"),
        (dict(bias=np.zeros(2)), r"bias must have an integer dtype"),
        (dict(x=np.zeros((1, 0, 5, 5), dtype=np.int64)), r"x must have non-empty C, H, W"),
        (dict(x=np.full((1, 4, 5, 5), 2**40), w=np.full((2, 4, 3, 3), 2**20)), r"overflow int64"),
    ],
)
def test_errors(kwargs, match):
    args = dict(x=X, w=W)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        conv2d(**args)
