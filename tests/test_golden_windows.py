"""Golden window extraction vs. naive indexing and vs. conv2d."""

import numpy as np
import pytest

from convaccel.golden import conv2d, extract_windows


def naive_windows(x, r, s, uh, uw, dh, dw, pt, pb, pl, pr):
    c, h, w = x.shape
    p = (h + pt + pb - dh * (r - 1) - 1) // uh + 1
    q = (w + pl + pr - dw * (s - 1) - 1) // uw + 1
    out = np.zeros((p, q, r, s, c), dtype=np.int64)
    for pi in range(p):
        for qi in range(q):
            for i in range(r):
                for j in range(s):
                    y, xx = uh * pi + dh * i - pt, uw * qi + dw * j - pl
                    if 0 <= y < h and 0 <= xx < w:
                        out[pi, qi, i, j, :] = x[:, y, xx]
    return out


def test_hand_example_with_padding():
    x = np.arange(1, 5).reshape(1, 2, 2)  # [[1, 2], [3, 4]]
    win = extract_windows(x, 2, padding=1)  # 3x3 positions of a 2x2 window
    assert win.shape == (3, 3, 2, 2, 1)
    assert win[0, 0, :, :, 0].tolist() == [[0, 0], [0, 1]]
    assert win[1, 1, :, :, 0].tolist() == [[1, 2], [3, 4]]
    assert win[2, 2, :, :, 0].tolist() == [[4, 0], [0, 0]]


@pytest.mark.parametrize("seed", range(150))
def test_random_against_naive_and_conv2d(seed):
    rng = np.random.default_rng(seed)
    c, h, w = rng.integers(1, 4), rng.integers(1, 9), rng.integers(1, 9)
    r, s = rng.integers(1, 4, 2)
    uh, uw = rng.integers(1, 5, 2)
    dh, dw = rng.integers(1, 4, 2)
    pt, pb, pl, pr = rng.integers(0, 3, 4)
    # Grow the image until the dilated kernel fits the padded input.
    h = max(h, dh * (r - 1) + 1 - pt - pb)
    w = max(w, dw * (s - 1) + 1 - pl - pr)
    x = rng.integers(-128, 128, (c, h, w))
    args = dict(kernel=(r, s), stride=(uh, uw), padding=(pt, pb, pl, pr), dilation=(dh, dw))
    win = extract_windows(x, **args)
    np.testing.assert_array_equal(win, naive_windows(x, r, s, uh, uw, dh, dw, pt, pb, pl, pr))
    k = rng.integers(-128, 128, (2, c, r, s))
    via_windows = np.einsum("pqrsc,mcrs->mpq", win, k)
    np.testing.assert_array_equal(via_windows, conv2d(x, k, stride=(uh, uw),
                                                      padding=(pt, pb, pl, pr), dilation=(dh, dw)))


def test_kernel_larger_than_padded_input_is_rejected():
    with pytest.raises(ValueError, match="height"):
        extract_windows(np.zeros((1, 2, 2), dtype=np.int64), 4, padding=0)


def test_huge_padding_is_a_value_error_not_a_memory_error():
    # 1 x 2000001 x 2000001 padded values would be 32 TB of int64.
    with pytest.raises(ValueError, match=r"padded input would have 4000004000001 elements"):
        extract_windows(np.zeros((1, 1, 1), dtype=np.int64), 1, padding=10**6)
    with pytest.raises(ValueError, match=r"conv2d: the padded input would have"):
        conv2d(np.zeros((1, 1, 1), dtype=np.int64), np.ones((1, 1, 1, 1), dtype=np.int64),
               padding=10**6)
