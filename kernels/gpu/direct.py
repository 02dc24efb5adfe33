"""Direct convolution on the GPU: a CUDA kernel (CuPy RawKernel) tiled through shared memory.

Notes
-----
A thread block computes a TILE x TILE patch of output pixels of one image for ``K_TILE`` output
channels. For each input channel of the group it stages in shared memory the input patch those outputs
read (with zero padding filled in) and the ``K_TILE`` filters' taps for that channel; every thread then
accumulates its pixel for all ``K_TILE`` channels in registers, so each staged input value is reused
``K_TILE`` times and each filter tap by every thread of the block. The taps are staged tap-major
(``filt[tap][k]``) and read as ``float4``, so one input value and its 16 taps cost 5 shared-memory
loads instead of 17 (the PTX shows ``ld.shared.v4.f32``; the previous layout gave 17 scalar loads per
16 FMAs, which bounds the kernel by shared-memory issue, not arithmetic). Stride, padding, dilation and
groups are handled in the index arithmetic. When a large filter or stride would make the staged patch
exceed the shared memory, the tile shrinks.
"""

import cupy

from ._common import free_memory_reason, problem_bytes, raw_kernel

K_TILE = 16                 # a multiple of 4: the taps are read as float4
SHARED_FLOATS = 12 * 1024   # 48 KiB: the static shared-memory limit without opt-in

SOURCE = r"""
#define K_TILE %(k_tile)d
extern "C" __global__ void conv_direct(
    const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
    int C, int H, int W, int K, int R, int S, int P, int Q,
    int sh, int sw, int ph, int pw, int dh, int dw, int groups,
    int tile, int patch_h, int patch_w)
{
    extern __shared__ __align__(16) float smem[];
    float* filt = smem;                        // [tap][K_TILE]: 16-byte aligned rows
    float* patch = smem + K_TILE * R * S;
    const int Cg = C / groups, Kg = K / groups;
    const int k_blocks = (Kg + K_TILE - 1) / K_TILE;
    const int tiles_q = (Q + tile - 1) / tile;
    const int tp = blockIdx.x / tiles_q, tq = blockIdx.x %% tiles_q;
    const int g = blockIdx.y / k_blocks;
    const int k0 = g * Kg + (blockIdx.y %% k_blocks) * K_TILE;
    const int k_count = min(K_TILE, (g + 1) * Kg - k0);
    const int n = blockIdx.z;
    const int p = tp * tile + threadIdx.y, q = tq * tile + threadIdx.x;
    const int y0 = tp * tile * sh - ph, x0 = tq * tile * sw - pw;
    const int tid = threadIdx.y * blockDim.x + threadIdx.x;
    const int nthreads = blockDim.x * blockDim.y;
    const int taps = R * S;
    float acc[K_TILE];
    #pragma unroll
    for (int kk = 0; kk < K_TILE; ++kk) acc[kk] = 0.f;
    for (int c = 0; c < Cg; ++c) {
        const int ch = g * Cg + c;
        const float* plane = x + ((long long)n * C + ch) * H * W;
        __syncthreads();
        for (int i = tid; i < patch_h * patch_w; i += nthreads) {
            const int iy = y0 + i / patch_w, ix = x0 + i %% patch_w;
            patch[i] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? plane[iy * W + ix] : 0.f;
        }
        for (int i = tid; i < K_TILE * taps; i += nthreads) {   // coalesced reads, transposed
            const int kk = i / taps, tap = i %% taps;
            filt[tap * K_TILE + kk] = kk < k_count ? w[((long long)(k0 + kk) * Cg + c) * taps + tap] : 0.f;
        }
        __syncthreads();
        if (p < P && q < Q) {
            for (int r = 0; r < R; ++r) {
                const float* row = patch + (threadIdx.y * sh + r * dh) * patch_w + threadIdx.x * sw;
                for (int s = 0; s < S; ++s) {
                    const float v = row[s * dw];
                    const float4* taps4 = reinterpret_cast<const float4*>(filt + (r * S + s) * K_TILE);
                    #pragma unroll
                    for (int j = 0; j < K_TILE / 4; ++j) {
                        const float4 f = taps4[j];
                        acc[4 * j] += v * f.x;
                        acc[4 * j + 1] += v * f.y;
                        acc[4 * j + 2] += v * f.z;
                        acc[4 * j + 3] += v * f.w;
                    }
                }
            }
        }
    }
    if (p < P && q < Q) {
        for (int kk = 0; kk < k_count; ++kk)
            y[(((long long)n * K + k0 + kk) * P + p) * Q + q] = acc[kk];
    }
}
""" % {"k_tile": K_TILE}


def _tiling(problem):
    """Largest square output tile whose input patch and filters fit the shared memory."""
    (sh, sw), (dh, dw) = problem.stride, problem.dilation
    for tile in (16, 8, 4, 2, 1):
        patch_h = (tile - 1) * sh + (problem.r - 1) * dh + 1
        patch_w = (tile - 1) * sw + (problem.s - 1) * dw + 1
        if patch_h * patch_w + K_TILE * problem.r * problem.s <= SHARED_FLOATS:
            return tile, patch_h, patch_w
    return None


class DirectGPU:
    def supports(self, problem):
        if _tiling(problem) is None:
            return (f"a {problem.r}x{problem.s} filter with dilation {problem.dilation} does not fit "
                    f"the {SHARED_FLOATS * 4 // 1024} KiB of shared memory even with 1x1 tiles")
        return free_memory_reason(problem_bytes(problem))

    def workspace_bytes(self, problem):
        return 0

    def prepare(self, problem, w):
        weights = cupy.asarray(w, dtype=cupy.float32)
        tile, patch_h, patch_w = _tiling(problem)
        kernel = raw_kernel(SOURCE, "conv_direct")
        k_per_group = problem.k // problem.groups
        blocks_k = problem.groups * -(-k_per_group // K_TILE)
        grid = (-(-problem.p // tile) * -(-problem.q // tile), blocks_k, problem.n)
        shared = 4 * (patch_h * patch_w + K_TILE * problem.r * problem.s)
        args = tuple(cupy.int32(v) for v in (
            problem.c, problem.h, problem.w, problem.k, problem.r, problem.s, problem.p, problem.q,
            *problem.stride, *problem.padding, *problem.dilation, problem.groups, tile, patch_h,
            patch_w))

        def run(x):
            y = cupy.empty(problem.output_shape, dtype=cupy.float32)
            kernel(grid, (tile, tile), (x, weights, y, *args), shared_mem=shared)
            return y

        return run


direct = DirectGPU()
