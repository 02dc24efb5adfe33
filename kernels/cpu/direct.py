"""Direct (sliding-window) convolution on the CPU with numba.

Notes
-----
The work is split into independent tasks of (image, group, block of up to ``K_BLOCK`` output channels,
output row); numba's ``prange`` spreads them over the cores. Within a task, each input row segment
that a filter tap touches is loaded once and multiplied into ``K_BLOCK`` accumulator rows kept in a
small local array, so the innermost loop runs along the output width over contiguous memory (when the
stride along W is 1) and vectorizes. Padding is handled by copying the input into a zero-bordered
buffer made in ``prepare``. Stride, padding, dilation and groups are all supported.
"""

import numpy as np
from numba import njit, prange

from ._common import PaddedInput

K_BLOCK = 8  # output channels sharing one pass over an input row; 8 rows of 56 floats stay in L1


@njit(parallel=True, cache=True, fastmath=False)
def _direct_nchw(xp, w, out, sh, sw, dh, dw, groups):
    n_images, _, _, _ = xp.shape
    k_total, c_per_group, r_size, s_size = w.shape
    _, _, p_size, q_size = out.shape
    k_per_group = k_total // groups
    blocks_per_group = (k_per_group + K_BLOCK - 1) // K_BLOCK
    n_tasks = n_images * groups * blocks_per_group * p_size
    for task in prange(n_tasks):
        p = task % p_size
        rest = task // p_size
        block = rest % blocks_per_group
        rest //= blocks_per_group
        g = rest % groups
        n = rest // groups
        k0 = g * k_per_group + block * K_BLOCK
        k_count = min(K_BLOCK, (g + 1) * k_per_group - k0)
        acc = np.zeros((K_BLOCK, q_size), dtype=np.float32)
        for c in range(c_per_group):
            channel = g * c_per_group + c
            for r in range(r_size):
                row = xp[n, channel, p * sh + r * dh]
                for s in range(s_size):
                    start = s * dw
                    for kk in range(k_count):
                        weight = w[k0 + kk, c, r, s]
                        if sw == 1:
                            for q in range(q_size):
                                acc[kk, q] += weight * row[start + q]
                        else:
                            for q in range(q_size):
                                acc[kk, q] += weight * row[start + q * sw]
        for kk in range(k_count):
            for q in range(q_size):
                out[n, k0 + kk, p, q] = acc[kk, q]


class DirectCPU:
    """Sliding-window convolution; supports every problem."""

    def supports(self, problem):
        return None

    def workspace_bytes(self, problem):
        return PaddedInput.nbytes(problem)

    def prepare(self, problem, w):
        weights = np.ascontiguousarray(w, dtype=np.float32)
        pad = PaddedInput(problem)
        (sh, sw), (dh, dw), groups = problem.stride, problem.dilation, problem.groups
        out_shape = problem.output_shape

        def run(x):
            out = np.empty(out_shape, dtype=np.float32)
            _direct_nchw(pad(x), weights, out, sh, sw, dh, dw, groups)
            return out

        return run


direct = DirectCPU()
