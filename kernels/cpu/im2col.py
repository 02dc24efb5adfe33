"""im2col + GEMM on the CPU: numba lowers the input into a column matrix, BLAS does one SGEMM.

Notes
-----
For image ``n`` and group ``g`` the column matrix has one row per filter tap (c, r, s) and one column per
output pixel (p, q)::

    col[n, g, (c*R + r)*S + s, p*Q + q] = x_padded[n, g*C_g + c, p*sh + r*dh, q*sw + s*dw]

so ``out[n, g] = W[g] (K_g x C_g*R*S) @ col[n, g] (C_g*R*S x P*Q)`` lands directly in NCHW order; numpy's
``matmul`` hands each (image, group) product to the BLAS it was built with, in float32. Padding is not
copied: for every row the lowering works out which output columns fall inside the input and zero-fills
the rest. A 1x1 filter with stride 1 and no padding needs no lowering at all -- the input already is the
column matrix -- and with a larger stride its lowering is one strided numpy copy. The workspace is the column matrix, ``N * C * R * S * P * Q`` floats.
"""

import numpy as np
from numba import njit, prange

from ..common import pipeline


@njit(parallel=True, cache=True, fastmath=False)
def _lower(x, col, r_size, s_size, sh, sw, ph, pw, dh, dw, p_size, q_size):
    n_images, channels, height, width = x.shape
    taps = r_size * s_size
    for job in prange(n_images * channels * taps):
        n = job // (channels * taps)
        rest = job % (channels * taps)
        channel = rest // taps
        tap = rest % taps
        r = tap // s_size
        s = tap % s_size
        row = col[n, channel * taps + tap]
        # output columns q whose input column q*sw + s*dw - pw lies in [0, width)
        offset = s * dw - pw
        q_lo = 0
        if offset < 0:
            q_lo = min(q_size, (-offset + sw - 1) // sw)
        q_hi = q_size
        if (q_size - 1) * sw + offset >= width:
            q_hi = max(q_lo, (width - 1 - offset) // sw + 1)
        # Slices first, then loops over plain range indices: an index such as ``base + q`` carries
        # numba's negative-index check, which keeps the copy from vectorizing (2x slower here).
        count = q_hi - q_lo
        for p in range(p_size):
            iy = p * sh + r * dh - ph
            dst = row[p * q_size:(p + 1) * q_size]
            if iy < 0 or iy >= height:
                dst[:] = 0.0
                continue
            dst[:q_lo] = 0.0
            dst[q_hi:] = 0.0
            inside = dst[q_lo:q_hi]
            if sw == 1:
                src = x[n, channel, iy, q_lo + offset:q_lo + offset + count]
                for t in range(count):
                    inside[t] = src[t]
            else:
                src = x[n, channel, iy, q_lo * sw + offset:(q_hi - 1) * sw + offset + 1:sw]
                for t in range(count):
                    inside[t] = src[t]


def _is_pointwise(problem):
    return (problem.r == 1 and problem.s == 1 and problem.stride == (1, 1)
            and problem.padding == (0, 0))


def _is_subsampling(problem):
    """A strided 1x1 layer without padding: its column matrix is the input at every stride-th row
    and column, which numpy copies from a strided view in one pass. On ResNet-50 res3a_branch2a
    (256 channels, 56x56, stride 2; AMD CI machine) that took 58 us against 124 us for
    :func:`_lower` at two threads, whose short strided rows do not vectorize."""
    return problem.r == 1 and problem.s == 1 and problem.padding == (0, 0)


class Im2colGemmCPU:
    """im2col lowering (numba, parallel) followed by SGEMM through BLAS; supports every problem."""

    def supports(self, problem):
        return None

    def workspace_bytes(self, problem):
        if _is_pointwise(problem):
            return 0
        return 4 * problem.n * problem.c * problem.r * problem.s * problem.p * problem.q

    def prepare(self, problem, w):
        groups = problem.groups
        k_per_group = problem.k // groups
        rows = (problem.c // groups) * problem.r * problem.s
        pixels = problem.p * problem.q
        weights = np.ascontiguousarray(w, dtype=np.float32).reshape(groups, k_per_group, rows)
        out_shape = (problem.n, groups, k_per_group, pixels)
        args = (problem.r, problem.s, *problem.stride, *problem.padding, *problem.dilation,
                problem.p, problem.q)
        if _is_pointwise(problem):
            def run(x):
                out = np.empty(out_shape, dtype=np.float32)
                np.matmul(weights, x.reshape(problem.n, groups, rows, pixels), out=out)
                return out.reshape(problem.output_shape)
            return run

        col = np.empty((problem.n, problem.c * problem.r * problem.s, pixels), dtype=np.float32)
        col_grouped = col.reshape(problem.n, groups, rows, pixels)

        if _is_subsampling(problem):
            (sh, sw) = problem.stride
            col_image = col.reshape(problem.n, problem.c, problem.p, problem.q)

            def lower(x):
                np.copyto(col_image, x[:, :, ::sh, ::sw])
        else:
            def lower(x):
                _lower(x, col, *args)

        def multiply(x):
            out = np.empty(out_shape, dtype=np.float32)
            np.matmul(weights, col_grouped, out=out)
            return out.reshape(problem.output_shape)

        return pipeline(("lowering", lower), ("multiply", multiply))


im2col_gemm = Im2colGemmCPU()
