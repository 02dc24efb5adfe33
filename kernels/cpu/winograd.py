"""Winograd minimal filtering F(m x m, 3 x 3) on the CPU (Lavin & Gray, 2015), for m = 2 and m = 4.

Notes
-----
The output is cut into m x m tiles; each needs an (m+2) x (m+2) input tile ``d``. With the transform
matrices below, one output tile of one channel pair is ``A^T [ (G g G^T) * (B^T d B) ] A`` where ``*`` is
element-wise. Summed over input channels, the element-wise products become, for each of the
``(m+2)^2`` positions, one matrix product ``M = U (K x C) @ V (C x tiles)``:

* filter transform ``U = G g G^T`` once in ``prepare`` (float64, then rounded to float32);
* input transform ``V = B^T d B`` in a numba parallel loop over (image, channel), vectorized along
  all of a channel's tiles (see :func:`_input_transform` for the layout);
* ``(m+2)^2`` SGEMMs through BLAS, shared out among the cores, each run by a one-thread BLAS
  (:func:`kernels.cpu._common.batched_matmul`) once they come to 20 MFLOP;
* output transform ``Y = A^T M A`` in a numba parallel loop over (image, output channel);
  the last tile row and column are cut to the output size, so any H and W work.

F(2x2, 3x3) does 16 multiplies per 4 outputs where direct does 36; F(4x4, 3x3) 36 per 16 where direct
does 144 -- fewer operations, but its transforms hold larger constants (up to 8 and 1/24), so the
float32 rounding error grows: measured rel. L2 errors are in the registry next to the tolerances.

Transform matrices: see :mod:`kernels.winograd_transforms`.
Needs a 3x3 filter, stride 1 and no dilation; any padding and any H, W.
"""

import numpy as np
from numba import get_num_threads, njit, prange

from ..common import pipeline, winograd_filter_transform, winograd_tiles, winograd_unsupported
from ..winograd_transforms import TRANSFORMS
from ._common import load_channel, matmul_for

@njit(cache=True, fastmath=False, inline="always")
def _scaled(dst, coef, src, assign):
    """dst = coef * src when ``assign``, else dst += coef * src (one pass, no zero fill).

    The loop around it (first non-zero coefficient assigns, the rest accumulate, zero fill only
    when all are zero) is written out at each of its four sites on purpose: a shared helper that
    took the sources as one stacked view (and ran the input transform's channel rows inside the
    coefficient loop) gave bit-identical outputs but measured 9-38 % slower on all ten 3x3 cases
    of the default set (`convbench ab --threads 1`, AMD CI machine).
    """
    if assign:
        for j in range(dst.size):
            dst[j] = coef * src[j]
    else:
        for j in range(dst.size):
            dst[j] += coef * src[j]


@njit(cache=True, fastmath=False, inline="always")
def _chunk(chunk, chunks, jobs):
    """Jobs ``range(start, stop)`` of chunk ``chunk`` when ``jobs`` are cut into ``chunks`` runs."""
    return chunk * jobs // chunks, (chunk + 1) * jobs // chunks


@njit(parallel=True, cache=True, fastmath=False)
def _input_transform(x, bt, v, tiles_h, row_len, ph, pw, threads):
    """v[a*alpha + b, c, n*tiles_h*L + i*L + j] = (B^T d B)[a, b] for input tile (i, j).

    ``L = tiles_w + 1``: each tile row has one padding column in ``v``, computed from zeros or
    neighbours and never used, so one (image, channel) is a single contiguous run and every loop is
    long and contiguous. Per (image, channel) the input is first copied into a zero-bordered scratch
    split by row and column phase (``d[s, r, I, j] = x_padded[I*m + s, j*m + r]``, see
    :func:`kernels.cpu._common.load_channel`), which stays in cache. Row ``i*m + u`` of every tile
    row ``i`` is then one run of ``d[u % m, r]`` (from row ``u // m`` on), so B^T is applied down
    the columns in one loop over all tiles per (a, u, r) (``streams[a, r]``), and B across the
    tiles in one per output position (a, b). Each output is written by its first non-zero term
    and accumulated by the rest: no pass that only zeroes memory (the sums are the same, since 0 + x = x exactly). The
    jobs are cut into one run per thread (``threads``: numba's count, passed in so the function
    can be cached) so each thread makes its scratch once: its border stays zero because every
    channel writes the same interior positions.
    """
    n_images, channels = x.shape[0], x.shape[1]
    alpha = bt.shape[0]
    m = alpha - 2
    run = tiles_h * row_len
    jobs = n_images * channels
    chunks = min(jobs, threads)
    for chunk in prange(chunks):
        d = np.zeros((m, m, tiles_h + 1, row_len), dtype=np.float32)
        phases = d.reshape(m, m, (tiles_h + 1) * row_len)
        streams = np.empty((alpha, m, tiles_h + 1, row_len), dtype=np.float32)
        # one spare tile row: tile j = L - 1 of the last row reads one element past its row
        streams[:, :, tiles_h, :] = 0.0
        flat = streams.reshape(alpha, m, (tiles_h + 1) * row_len)
        start, stop = _chunk(chunk, chunks, jobs)
        for job in range(start, stop):
            c = job % channels
            n = job // channels
            load_channel(x[n, c], d, ph, pw)
            # input row i*m + u of every tile row i: phase u % m, rows from u // m on, one run
            for a in range(alpha):
                assign = True
                for u in range(alpha):
                    coef = bt[a, u]
                    if coef != 0.0:
                        top = (u // m) * row_len
                        for r in range(m):
                            _scaled(flat[a, r, :run], coef, phases[u % m, r, top:top + run],
                                    assign)
                        assign = False
                if assign:
                    flat[a, :, :run] = 0.0
            first = n * run
            for a in range(alpha):
                for b in range(alpha):
                    dst = v[a * alpha + b, c, first:first + run]
                    assign = True
                    for u in range(alpha):
                        coef = bt[b, u]
                        if coef != 0.0:
                            _scaled(dst, coef, flat[a, u % m, u // m:u // m + run], assign)
                            assign = False
                    if assign:
                        dst[:] = 0.0


@njit(cache=True, fastmath=False, inline="always")
def _interleave(row, streams, base, count, m):
    """row[j*m + xo] = streams[xo, base + j] for j < count: contiguous stores, with m written
    out for the two tile sizes so the loop vectorizes (a strided store per xo did not)."""
    if m == 2:
        s0, s1 = streams[0, base:base + count], streams[1, base:base + count]
        for j in range(count):
            row[2 * j] = s0[j]
            row[2 * j + 1] = s1[j]
    elif m == 4:
        s0, s1 = streams[0, base:base + count], streams[1, base:base + count]
        s2, s3 = streams[2, base:base + count], streams[3, base:base + count]
        for j in range(count):
            row[4 * j] = s0[j]
            row[4 * j + 1] = s1[j]
            row[4 * j + 2] = s2[j]
            row[4 * j + 3] = s3[j]
    else:
        for j in range(count):
            for xo in range(m):
                row[j * m + xo] = streams[xo, base + j]


@njit(parallel=True, cache=True, fastmath=False)
def _output_transform(mm, at, out, tiles_h, row_len):
    """out tile (i, j) = A^T M A, from the layout of :func:`_input_transform`, cut to the output."""
    n_images, k_total, p_size, q_size = out.shape
    m, alpha = at.shape
    run = tiles_h * row_len
    for job in prange(n_images * k_total):
        k = job % k_total
        n = job // k_total
        first = n * run
        half = np.empty((alpha, m, run), dtype=np.float32)   # M A
        tile = np.empty((m, m, run), dtype=np.float32)       # A^T M A
        for a in range(alpha):
            for xo in range(m):
                assign = True
                for b in range(alpha):
                    coef = at[xo, b]
                    if coef != 0.0:
                        _scaled(half[a, xo], coef, mm[a * alpha + b, k, first:first + run], assign)
                        assign = False
                if assign:
                    half[a, xo] = 0.0
        for yo in range(m):
            for xo in range(m):
                assign = True
                for a in range(alpha):
                    coef = at[yo, a]
                    if coef != 0.0:
                        _scaled(tile[yo, xo], coef, half[a, xo], assign)
                        assign = False
                if assign:
                    tile[yo, xo] = 0.0
        full = q_size // m          # tiles wholly inside the output row
        for i in range(tiles_h):
            for yo in range(m):
                p = i * m + yo
                if p >= p_size:
                    break
                _interleave(out[n, k, p], tile[yo], i * row_len, full, m)
                for xo in range(q_size - full * m):   # the last tile, cut
                    out[n, k, p, full * m + xo] = tile[yo, xo, i * row_len + full]


class WinogradCPU:
    """Winograd F(m x m, 3 x 3): transforms in numba, (m+2)^2 SGEMMs through BLAS."""

    def __init__(self, m):
        self.m = m
        self.alpha = m + 2
        spec = TRANSFORMS[m]
        self.bt = np.array(spec["BT"], dtype=np.float32)
        self.at = np.array(spec["AT"], dtype=np.float32)

    def supports(self, problem):
        return winograd_unsupported(self.m, problem)

    def _tiles(self, problem):
        return winograd_tiles(self.m, problem)

    def _columns(self, problem):
        """GEMM columns: every tile plus one padding column per tile row (see _input_transform)."""
        tiles_h, tiles_w = self._tiles(problem)
        return problem.n * tiles_h * (tiles_w + 1)

    def workspace_bytes(self, problem):
        tiles_h, tiles_w = self._tiles(problem)
        tiles = self._columns(problem)
        positions = self.alpha * self.alpha
        # per thread: one channel's input split m x m, and B^T d for it (see _input_transform)
        scratch = self.m * (tiles_w + 1) * (tiles_h + 1) * (self.m + self.alpha)
        transformed = positions * (problem.c * tiles + problem.k * tiles
                                   + problem.k * (problem.c // problem.groups))
        return 4 * (scratch * min(get_num_threads(), problem.n * problem.c) + transformed)

    def prepare(self, problem, w):
        m, alpha, groups = self.m, self.alpha, problem.groups
        k_per_group, c_per_group = problem.k // groups, problem.c // groups
        tiles_h, tiles_w = self._tiles(problem)
        tiles = self._columns(problem)
        row_len = tiles_w + 1
        weights = winograd_filter_transform(m, problem, w)  # (alpha^2, G, K_g, C_g)
        ph, pw = problem.padding
        v = np.empty((alpha * alpha, problem.c, tiles), dtype=np.float32)
        v_grouped = v.reshape(alpha * alpha, groups, c_per_group, tiles)
        mm = np.empty((alpha * alpha, problem.k, tiles), dtype=np.float32)
        mm_grouped = mm.reshape(alpha * alpha, groups, k_per_group, tiles)
        bt, at, out_shape = self.bt, self.at, problem.output_shape
        matmul = matmul_for(weights.shape, v_grouped.shape)

        def input_transform(x):
            _input_transform(x, bt, v, tiles_h, row_len, ph, pw, get_num_threads())

        def multiply(x):
            matmul(weights, v_grouped, out=mm_grouped)

        def output_transform(x):
            out = np.empty(out_shape, dtype=np.float32)
            _output_transform(mm, at, out, tiles_h, row_len)
            return out

        return pipeline(("input transform", input_transform), ("multiply", multiply),
                        ("output transform", output_transform))


winograd_f2x2_3x3 = WinogradCPU(2)
winograd_f4x4_3x3 = WinogradCPU(4)
