"""The float64 oracle every kernel is checked against.

It shares no code with ``kernels/``: plain numpy over a strided window view of the padded input, with the
sum done by ``numpy.einsum`` in float64. Slow and memory-hungry by design (it materialises one image's
windows at a time), but simple enough to trust.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def conv2d_reference(x, w, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """Forward 2-D convolution (cross-correlation, as in deep learning) in float64.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
    w : array_like, shape (K, C // groups, R, S)
    stride, padding, dilation : (int, int)
        Per (height, width); dilation 1 is dense.
    groups : int

    Returns
    -------
    numpy.ndarray, float64, shape (N, K, P, Q)
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, c, _, _ = x.shape
    k, c_per_group, r, s = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    span_h, span_w = (r - 1) * dh + 1, (s - 1) * dw + 1
    # windows[n, c, p, q, i, j] = padded[n, c, p*sh + i*dh, q*sw + j*dw]
    windows = sliding_window_view(padded, (span_h, span_w), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    p, q = windows.shape[2], windows.shape[3]
    k_per_group = k // groups
    weights = w.reshape(groups, k_per_group, c_per_group, r, s)
    out = np.empty((n, k, p, q), dtype=np.float64)
    for image in range(n):  # one image at a time bounds the memory of the window copy
        win = windows[image].reshape(groups, c_per_group, p, q, r, s)
        out[image] = np.einsum("gcpqrs,gkcrs->gkpq", win, weights, optimize=True).reshape(k, p, q)
    return out


def reference_for(problem, x, w):
    """:func:`conv2d_reference` with the geometry of a :class:`~convbench.ConvProblem`."""
    return conv2d_reference(x, w, problem.stride, problem.padding, problem.dilation, problem.groups)


def reference_bytes(problem):
    """Memory the reference needs: float64 copies of input (plain and padded), weights and output,
    and one image's materialised windows."""
    c_per_group = problem.c // problem.groups
    padded = problem.n * problem.c * (problem.h + 2 * problem.padding[0]) * (
        problem.w + 2 * problem.padding[1])
    windows = problem.c * problem.p * problem.q * problem.r * problem.s
    count = (problem.n * problem.c * problem.h * problem.w + padded + windows
             + problem.k * c_per_group * problem.r * problem.s + problem.n * problem.k * problem.p * problem.q)
    return 8 * count
