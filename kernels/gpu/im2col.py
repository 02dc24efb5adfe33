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
from ._common import blocks_for, free_memory_reason, problem_bytes, raw_kernel, THREADS

SOURCE = r"""
extern "C" __global__ void im2col(const float* __restrict__ x, float* __restrict__ col,
    long long total, int C, int H, int W, int R, int S, int P, int Q,
    int sh, int sw, int ph, int pw, int dh, int dw)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int q = i % Q;
        long long t = i / Q;
        const int p = t % P; t /= P;
        const int s = t % S; t /= S;
        const int r = t % R; t /= R;
        const int c = t % C;
        const long long n = t / C;
        const int iy = p * sh + r * dh - ph, ix = q * sw + s * dw - pw;
        col[i] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? x[((n * C + c) * H + iy) * W + ix] : 0.f;
    }
}
"""


def tf32_reason():
    if os.environ.get("CUPY_TF32", "0") not in ("", "0"):
        return "CUPY_TF32 is set: cuBLAS would use TF32, not float32"
    return None


class Im2colGemmGPU:
    def supports(self, problem):
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
        total = col.size
        kernel = raw_kernel(SOURCE, "im2col")
        args = (cupy.int64(total),) + tuple(cupy.int32(v) for v in (
            problem.c, problem.h, problem.w, problem.r, problem.s, problem.p, problem.q,
            *problem.stride, *problem.padding, *problem.dilation))

        def lower(x):
            kernel((blocks_for(total),), (THREADS,), (x, col, *args))

        def multiply(x):
            return cupy.matmul(weights, col).reshape(problem.output_shape)

        return pipeline(("lowering", lower), ("multiply", multiply))


im2col_gemm = Im2colGemmGPU()
