"""im2col + GEMM on the GPU: a CUDA lowering kernel, then cuBLAS SGEMM through CuPy's matmul.

Notes
-----
The column matrix has the CPU kernel's layout, ``col[n, (c*R + r)*S + s, p*Q + q]``, so
``out[n, g] = W[g] @ col[n, g]`` is one strided-batched SGEMM over (image, group) that writes NCHW
directly. The weights are repeated once per image in ``prepare``: CuPy's matmul turns a broadcast
operand into cuBLAS's pointer-array batched GEMM, with three extra kernels per call to build the
pointer arrays, while equal batch shapes go to ``cublasGemmStridedBatchedEx``. The copies are counted
in the workspace. CuPy computes float32 matmul in full FP32 unless ``CUPY_TF32=1`` is set; ``prepare``
refuses to run with it set, so the comparison stays float32 against float32.
"""

import os

import cupy

from ..common import pipeline
from ._common import free_memory_reason, problem_bytes, raw_kernel, THREADS

SOURCE = r"""
extern "C" __global__ void im2col(const float* __restrict__ x, float* __restrict__ col,
    int C, int H, int W, int R, int S, int P, int Q,
    int sh, int sw, int ph, int pw, int dh, int dw)
{
    // One block per row of the column matrix, row = ((n*C + c)*R + r)*S + s, its threads striding
    // along the row's P*Q output pixels: the row's indices are split once per thread and each
    // element costs one division (pixel -> p, q), where splitting a flat element index would cost
    // six, in 64 bits. Writes are coalesced along the row, reads along an input row.
    const int row = blockIdx.x;
    const int s = row % S;
    const int r = (row / S) % R;
    const long long plane = row / (R * S);            // n*C + c
    const float* __restrict__ image = x + plane * H * W;
    const int pixels = P * Q;
    float* __restrict__ out = col + (long long)row * pixels;
    const int y0 = r * dh - ph, x0 = s * dw - pw;
    for (int i = threadIdx.x; i < pixels; i += blockDim.x) {
        const int p = i / Q, q = i - p * Q;
        const int iy = p * sh + y0, ix = q * sw + x0;
        out[i] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? image[iy * W + ix] : 0.f;
    }
}
"""


GRID_X_LIMIT = 2 ** 31 - 1   # blocks along a grid's x dimension


def tf32_reason():
    if os.environ.get("CUPY_TF32", "0") not in ("", "0"):
        return "CUPY_TF32 is set: cuBLAS would use TF32, not float32"
    return None


class Im2colGemmGPU:
    def supports(self, problem):
        rows = problem.n * problem.c * problem.r * problem.s
        if rows > GRID_X_LIMIT or problem.h * problem.w >= 2 ** 31:
            return (f"the column matrix has {rows} rows (one CUDA block each, at most "
                    f"{GRID_X_LIMIT}) or an image plane over 2^31 elements")
        return tf32_reason() or free_memory_reason(problem_bytes(problem)
                                                    + self.workspace_bytes(problem))

    def workspace_bytes(self, problem):
        columns = problem.n * problem.c * problem.r * problem.s * problem.p * problem.q
        weight_copies = (problem.n - 1) * problem.k * (problem.c // problem.groups) * problem.r * problem.s
        return 4 * (columns + weight_copies)

    def prepare(self, problem, w):
        groups = problem.groups
        rows = (problem.c // groups) * problem.r * problem.s
        pixels = problem.p * problem.q
        weights = cupy.asarray(w, dtype=cupy.float32).reshape(groups, problem.k // groups, rows)
        weights = cupy.ascontiguousarray(cupy.broadcast_to(weights, (problem.n,) + weights.shape))
        col = cupy.empty((problem.n, groups, rows, pixels), dtype=cupy.float32)
        kernel = raw_kernel(SOURCE, "im2col")
        args = tuple(cupy.int32(v) for v in (
            problem.c, problem.h, problem.w, problem.r, problem.s, problem.p, problem.q,
            *problem.stride, *problem.padding, *problem.dilation))
        blocks = (problem.n * groups * rows,)            # one per row of the column matrix
        threads = (min(THREADS, 32 * -(-pixels // 32)),)  # whole warps, no more than a row needs

        def lower(x):
            kernel(blocks, threads, (x, col, *args))

        def multiply(x):
            return cupy.matmul(weights, col).reshape(problem.output_shape)

        return pipeline(("lowering", lower), ("multiply", multiply))


im2col_gemm = Im2colGemmGPU()
