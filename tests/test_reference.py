import numpy as np
import pytest

from convbench import conv2d_reference


def loop_reference(x, w, stride, padding, dilation, groups):
    """Nested loops, written straight from the definition (slow; tiny inputs only)."""
    n, c, h, width = x.shape
    k, cg, r, s = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    p = (h + 2 * ph - (r - 1) * dh - 1) // sh + 1
    q = (width + 2 * pw - (s - 1) * dw - 1) // sw + 1
    out = np.zeros((n, k, p, q))
    kg = k // groups
    for b in range(n):
        for oc in range(k):
            g = oc // kg
            for i in range(p):
                for j in range(q):
                    total = 0.0
                    for ci in range(cg):
                        for a in range(r):
                            for e in range(s):
                                y, xx = i * sh + a * dh - ph, j * sw + e * dw - pw
                                if 0 <= y < h and 0 <= xx < width:
                                    total += x[b, g * cg + ci, y, xx] * w[oc, ci, a, e]
                    out[b, oc, i, j] = total
    return out


def test_hand_computed_case():
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)   # 1..9
    w = np.array([[[[1, 0], [0, -1]]]], dtype=np.float32)        # x[i,j] - x[i+1,j+1]
    y = conv2d_reference(x, w)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [[[[1 - 5, 2 - 6], [4 - 8, 5 - 9]]]])


def test_hand_computed_padding_and_stride():
    x = np.ones((1, 1, 3, 3), dtype=np.float32)
    w = np.ones((1, 1, 3, 3), dtype=np.float32)
    y = conv2d_reference(x, w, stride=(2, 2), padding=(1, 1))
    # corners of the padded 5x5 see a 2x2 block of ones
    np.testing.assert_array_equal(y, [[[[4, 4], [4, 4]]]])
    y = conv2d_reference(x, w, padding=(1, 1))
    np.testing.assert_array_equal(y[0, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


@pytest.mark.parametrize("shape, stride, padding, dilation, groups", [
    ((2, 4, 7, 6, 6, 3, 2), (1, 1), (0, 1), (1, 1), 2),
    ((1, 3, 9, 8, 2, 3, 3), (2, 3), (2, 1), (2, 1), 1),
    ((1, 6, 5, 5, 6, 1, 1), (1, 1), (0, 0), (1, 1), 6),
])
def test_matches_loop_definition(rng, shape, stride, padding, dilation, groups):
    n, c, h, w_, k, r, s = shape
    x = rng.standard_normal((n, c, h, w_))
    w = rng.standard_normal((k, c // groups, r, s))
    np.testing.assert_allclose(conv2d_reference(x, w, stride, padding, dilation, groups),
                               loop_reference(x, w, stride, padding, dilation, groups), rtol=1e-12,
                               atol=1e-12)
