"""Winograd F(2x2,3x3), F(4x4,3x3), F(2x2,5x5) and F(4x4,5x5) on the GPU: CUDA transform kernels
and one batched GEMM.

Notes
-----
As on the CPU (:mod:`kernels.cpu.winograd`): ``U = G g G^T`` once in ``prepare``; a CUDA kernel with
one thread per (image, channel, tile) reads its alpha x alpha input tile (zeros outside the input),
computes ``B^T d B`` and writes the ``alpha^2`` values to ``V[position, channel, tile]``
(alpha = m + r - 1); the ``alpha^2`` products ``U[position] @ V[position]`` are one
strided-batched cuBLAS SGEMM (CuPy's matmul, FP32); a second kernel computes ``A^T M A`` per
(image, output channel, tile) and writes the tile, cut to the output size. A strided layer runs
over its stride phases as on the CPU (:func:`kernels.common.winograd_phase_problem`), but with
nothing copied: the input transform reads each phase's tiles from the strided input.

The transform matrices are compiled into the kernels as constants, and every loop over a tile is
unrolled (``#pragma unroll``): with constant indices the tiles stay in registers and the zero
coefficients drop out. Without it, ``nvcc -arch=sm_90 -Xptxas=-v`` put F(4x4,5x5)'s 8 x 8 input
tile on a 256-byte stack frame; with it no kernel has a stack frame (registers, input and output
transform, nvcc 13.0 for sm_90 on the CI machine, with the input transform taking strides:
F(2x2,3x3) 40 and 43, F(4x4,3x3) 56 and 48, F(2x2,5x5) 56 and 64, F(4x4,5x5) 128 and 64).
"""

import cupy

from ..common import (pipeline, winograd_filter_transform, winograd_phase_problem,
                      winograd_phase_weights, winograd_tiles, winograd_unsupported)
from ..winograd_transforms import transforms
from ._common import blocks_for, free_memory_reason, problem_bytes, raw_kernel, THREADS
from .im2col import tf32_reason


def _matrix(name, values):
    rows = ", ".join("{" + ", ".join(f"{float(v)!r}f" for v in row) + "}" for row in values)
    return f"__constant__ float {name}[{len(values)}][{len(values[0])}] = {{{rows}}};"


def _source(m, r):
    alpha = m + r - 1
    spec = transforms(m, r)
    return f"""
#define M {m}
#define ALPHA {alpha}
{_matrix("BT", spec["BT"])}
{_matrix("AT", spec["AT"])}

// C counts the channels of v: sh * sw per input channel, one per stride phase (one at stride 1).
// Channel c reads stride phase (a0, b0) of input channel c / (sh * sw): padded input row
// y * sh + a0 and column x * sw + b0 stand at (y, x) of its plane.
extern "C" __global__ void input_transform(const float* __restrict__ x, float* __restrict__ v,
    int N, int C, int H, int W, int ph, int pw, int tiles_h, int tiles_w, int sh, int sw)
{{
    const long long tiles = (long long)N * tiles_h * tiles_w;
    const long long total = tiles * C;
    const int phases = sh * sw;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {{
        const long long tile = i % tiles;
        const int c = i / tiles;
        const int a0 = (c % phases) / sw, b0 = c % sw;
        const int tw = tile % tiles_w, th = (tile / tiles_w) % tiles_h;
        const long long n = tile / ((long long)tiles_w * tiles_h);
        const float* plane = x + (n * (C / phases) + c / phases) * H * W;
        float d[ALPHA][ALPHA], t[ALPHA][ALPHA];
        #pragma unroll
        for (int a = 0; a < ALPHA; ++a)
            #pragma unroll
            for (int b = 0; b < ALPHA; ++b) {{
                const int iy = (th * M + a) * sh + a0 - ph, ix = (tw * M + b) * sw + b0 - pw;
                d[a][b] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? plane[iy * W + ix] : 0.f;
            }}
        #pragma unroll
        for (int a = 0; a < ALPHA; ++a)
            #pragma unroll
            for (int b = 0; b < ALPHA; ++b) {{
                float sum = 0.f;
                #pragma unroll
                for (int u = 0; u < ALPHA; ++u) sum += BT[a][u] * d[u][b];
                t[a][b] = sum;
            }}
        #pragma unroll
        for (int a = 0; a < ALPHA; ++a)
            #pragma unroll
            for (int b = 0; b < ALPHA; ++b) {{
                float sum = 0.f;
                #pragma unroll
                for (int u = 0; u < ALPHA; ++u) sum += t[a][u] * BT[b][u];
                v[((long long)(a * ALPHA + b) * C + c) * tiles + tile] = sum;
            }}
    }}
}}

extern "C" __global__ void output_transform(const float* __restrict__ mm, float* __restrict__ y,
    int N, int K, int P, int Q, int tiles_h, int tiles_w)
{{
    const long long tiles = (long long)N * tiles_h * tiles_w;
    const long long total = tiles * K;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {{
        const long long tile = i % tiles;
        const int k = i / tiles;
        const int tw = tile % tiles_w, th = (tile / tiles_w) % tiles_h;
        const long long n = tile / ((long long)tiles_w * tiles_h);
        float m[ALPHA][ALPHA], t[M][ALPHA];
        #pragma unroll
        for (int a = 0; a < ALPHA; ++a)
            #pragma unroll
            for (int b = 0; b < ALPHA; ++b)
                m[a][b] = mm[((long long)(a * ALPHA + b) * K + k) * tiles + tile];
        #pragma unroll
        for (int o = 0; o < M; ++o)
            #pragma unroll
            for (int b = 0; b < ALPHA; ++b) {{
                float sum = 0.f;
                #pragma unroll
                for (int a = 0; a < ALPHA; ++a) sum += AT[o][a] * m[a][b];
                t[o][b] = sum;
            }}
        #pragma unroll
        for (int o = 0; o < M; ++o) {{
            const int p = th * M + o;
            if (p >= P) break;
            #pragma unroll
            for (int e = 0; e < M; ++e) {{
                const int q = tw * M + e;
                if (q >= Q) break;
                float sum = 0.f;
                #pragma unroll
                for (int b = 0; b < ALPHA; ++b) sum += t[o][b] * AT[e][b];
                y[((n * K + k) * P + p) * Q + q] = sum;
            }}
        }}
    }}
}}
"""


class WinogradGPU:
    def __init__(self, m, r=3):
        self.m, self.r = m, r
        self.alpha = m + r - 1

    def supports(self, problem):
        return (winograd_unsupported(self.m, problem, self.r) or tf32_reason()
                or free_memory_reason(problem_bytes(problem) + self.workspace_bytes(problem)))

    def _tiles(self, problem):
        return winograd_tiles(self.m, problem)

    def workspace_bytes(self, problem):
        tiles_h, tiles_w = self._tiles(problem)
        tiles = problem.n * tiles_h * tiles_w
        inner = winograd_phase_problem(problem, self.r)     # more channels where strided
        return 4 * self.alpha ** 2 * (inner.c * tiles + problem.k * tiles
                                      + problem.k * (inner.c // problem.groups))

    def prepare(self, problem, w):
        """A strided problem runs as :func:`~kernels.common.winograd_phase_problem`, whose input
        the input transform reads straight from the strided input, phase by phase."""
        alpha, groups = self.alpha, problem.groups
        inner = winograd_phase_problem(problem, self.r)
        c_per_group = inner.c // groups
        tiles_h, tiles_w = self._tiles(problem)
        tiles = problem.n * tiles_h * tiles_w
        weights = cupy.asarray(winograd_filter_transform(
            self.m, inner, winograd_phase_weights(problem, w, self.r), self.r))
        v = cupy.empty((alpha * alpha, groups, c_per_group, tiles), dtype=cupy.float32)
        source = _source(self.m, self.r)
        forward, backward = raw_kernel(source, "input_transform"), raw_kernel(source, "output_transform")
        ints = lambda *values: tuple(cupy.int32(value) for value in values)  # noqa: E731
        in_args = ints(problem.n, inner.c, problem.h, problem.w, *problem.padding, tiles_h, tiles_w,
                       *problem.stride)
        out_args = ints(problem.n, problem.k, problem.p, problem.q, tiles_h, tiles_w)
        in_blocks, out_blocks = blocks_for(inner.c * tiles), blocks_for(problem.k * tiles)

        state = {}

        def input_transform(x):
            forward((in_blocks,), (THREADS,), (x, v, *in_args))

        def multiply(x):
            state["mm"] = cupy.matmul(weights, v)        # (alpha^2, G, K_g, tiles)

        def output_transform(x):
            y = cupy.empty(problem.output_shape, dtype=cupy.float32)
            backward((out_blocks,), (THREADS,), (state["mm"], y, *out_args))
            return y

        sh, sw = problem.stride
        return pipeline(("input transform", input_transform), ("multiply", multiply),
                        ("output transform", output_transform),
                        impl=f"over {sh}x{sw} stride phases" if (sh, sw) != (1, 1) else None)


winograd_f2x2_3x3 = WinogradGPU(2)
winograd_f4x4_3x3 = WinogradGPU(4)
winograd_f2x2_5x5 = WinogradGPU(2, 5)
winograd_f4x4_5x5 = WinogradGPU(4, 5)
