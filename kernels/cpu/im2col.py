"""im2col + GEMM on the CPU: numba lowers the input into a column matrix, BLAS does one SGEMM.

Notes
-----
For image ``n`` and group ``g`` the column matrix has one row per filter tap (c, r, s) and one column per
output pixel (p, q)::

    col[n, g, (c*R + r)*S + s, p*Q + q] = x_padded[n, g*C_g + c, p*sh + r*dh, q*sw + s*dw]

so ``out[n, g] = W[g] (K_g x C_g*R*S) @ col[n, g] (C_g*R*S x P*Q)`` lands directly in NCHW order; numpy's
``matmul`` hands each (image, group) product to the BLAS it was built with, in float32. With more
than one such product (a batch, or groups) of 20 MFLOP or more in all (for a 1x1 stride-1 layer,
four products or more per thread: :meth:`Im2colGemmCPU.pointwise_shared`), the products are shared
out among the cores, each run by a one-thread BLAS (:func:`kernels.cpu._common.batched_matmul`): on
AlexNet's conv2 (two groups) that took the call from 1.81 to 1.33 ms (``convbench ab``, CI machine,
``results/amd-epyc-2c/ab/20261124T051737Z.json``).

Each channel is first copied into zero-bordered planes split by stride phase
(``planes[a, b, i, j] = x_padded[c, i*sh + a, j*sw + b]``, ``load_channel``, as the direct kernel
does), one channel at a time into planes of the lowering thread's own. Every output row of every
tap is then one contiguous copy of ``Q`` values from one plane (:func:`_lower_rows`), with no
strided reads and no padding to work out. The two versions before this one split the whole input
into stride phases first and copied each row's inside part between zero-filled ends: this one
measured the same or unclear by ``convbench ab`` on 16 layers, 10 % faster on MobileNet v1's stem
(``ab/20261124T103734Z.json``, CI machine, AMD EPYC, two threads).

**Row shares.** A batch of at least one image per thread, and with fewer images a layer with few
output channels on a large image (:data:`SHARED_ROWS_MAX_K`, :data:`SHARED_ROWS_MIN_PIXELS`), is cut
into one run of output rows per thread instead (the rows of all images, one after another), and each
thread lowers its own rows and multiplies them by the whole filter matrix with a one-thread BLAS
(:func:`kernels.cpu._common.run_shares`), so each part of the column matrix is read by the core that
wrote it. On the CI machine (a 2-core VM) a core reading data the other core has just written is
slow in some periods and not in others. In a slow one, res2a_branch2b's product (two OpenBLAS
threads) took 0.53 ms alone, 0.68 ms after one thread had rewritten another buffer of the column
matrix's size, and 1.19 ms after it had rewritten the column matrix itself; with a one-thread BLAS
the product took the same time either way. Half an hour earlier the same sequences showed no such
cost (0.65 against 0.72 ms).
``convbench ab``, shares against none: res2a_branch2b 16 % faster, the 13x13 layer 17 %,
MobileNet v1's stem 22 %; GoogLeNet's inception_3a/5x5 and 3b/5x5 (784 pixels) 27 and 15 %
slower (handing work to the pool thread and back costs about 50 us), hence the bounds; the other 12
layers the same or unclear (``ab/20261124T105655Z.json``). With the bounds, against the code
before both changes (``20261124T110504Z.json``, 20 layers): res2a_branch2b 17.6 % faster,
MobileNet v1's stem 32.8 %, VGG-16 conv1_2 6.2 %; the 9x9 layer 8.2 % slower (+2.0 %, the same, in
the run before); the others the same or unclear.
At batch 8 (``20261124T112134Z.json``), seven layers with more than 64 output channels,
the shares against the old path: res3a_branch2b 5.2 % and inception_3b/5x5 19.9 % faster,
the others the same or unclear, none slower.
A batch of strided 1x1 layers goes by shares as well, each copying its rows from a strided view
of the input (before, one numpy copy of the whole batch, then the product on both threads):
``ab`` on ResNet-50's six strided 1x1 layers, outputs identical, at batch 8 four 10-22 % faster,
one the same and one unclear (``20261124T144605Z.json``), at batch 2 five 9-31 % faster and one
unclear (``20261124T144642Z.json``). At batch 1 such layers (128 or more output channels) stay
on the old path: shares measured no faster there in one process.

**Blocks.** Where a share's part of the column matrix would come to ``SHARE_BLOCK_MIN_BYTES``
(8 MiB) or more, it went to memory and back between the lowering and the product: 20 MB a share
on DeepBench's server_03 (32 channels of 79 x 341, a 5x10 filter at stride 2), whose product has
only 32 rows to hide it. Such a layer now splits its whole input into stride phases once
(``load_streams``), and each share lowers a block of its output rows (about ``COL_BLOCK_BYTES``,
2 MiB, one row at least, never two images) into a buffer of its own and multiplies it before the
next, so the block is read back from the cache. ``convbench ab`` against whole shares, outputs
identical: server_01-05 (32 output channels) 14-26 % faster, server_22 (64 -> 128 channels,
112 x 112, batch 2) 17 %, server_23 5 %, server_69 the same (``ab/20261124T203751Z.json``); VGG-16
conv1_2 32 % (``ab/20261124T203856Z.json``). Blocks of under ``BLOCK_MIN_PIXELS`` (256) columns,
where C*R*S is over 2048, were slower: server_35, 37, 71 and 73, 28-109 columns a block, 20-50 %
(``ab/20261124T203331Z.json``). Those keep whole shares.

A column matrix under ``SERIAL_COPY_BYTES`` (1 MiB) is lowered by one thread, as is the split of
an input under that size: on the CI machine waking the other thread costs more than such a copy
(LeNet-5's c1: 4 us in one thread, 46 us in two; ``ab``: 4.4-5.4x faster on LeNet-5's layers).

A 1x1 filter with stride 1 and no padding needs no lowering at all -- the input already is the
column matrix -- and with a larger stride its lowering is a strided numpy copy. The workspace is
the column matrix, ``N * C * R * S * P * Q`` floats, plus one channel's planes (and the scratch
``load_channel`` needs to split column pairs) per lowering thread or share.
"""

from functools import partial

import numpy as np
from numba import get_num_threads, njit, prange

from ..common import pipeline
from ._common import (SERIAL_COPY_BYTES, chunk_bounds, load_channel, matmul_for,
                      pair_scratch_bytes, run_shares, share_count, stream_shape, streams_loader,
                      streams_scratch_bytes)

# Row shares (see the module's notes) for a problem of at least this many flops, and with fewer
# images than threads only with at most this many output channels and output pixels per image at
# least this many: the product
# then does little arithmetic per lowered value, and each share has long rows to amortize the
# hand-over.
SHARED_ROWS_MAX_K = 64
SHARED_ROWS_MIN_PIXELS = 2048
SHARED_ROWS_FLOPS = 20e6

# A share whose part of the column matrix would come to this many bytes or more lowers and
# multiplies its rows a block at a time instead, each block's columns (about COL_BLOCK_BYTES, one
# output row at least) in a buffer of the share's own that stays in the cache, from the whole input
# split into stride phases once per call (see ``_prepare_blocks``). Only where such a block holds
# BLOCK_MIN_PIXELS output pixels or more (C*R*S of at most 2048): the products of narrower blocks
# ran slower than one product of the whole share.
SHARE_BLOCK_MIN_BYTES = 8 * 2 ** 20
COL_BLOCK_BYTES = 2 * 2 ** 20
BLOCK_MIN_PIXELS = 256

# A 1x1 stride-1 layer's products (one per image and group) are shared out among the threads only
# with at least this many per thread; fewer run one after another, each on the BLAS's threads.
POINTWISE_SHARED_PER_THREAD = 4


@njit(cache=True, nogil=True, fastmath=False)
def _lower_rows(x, col, planes, pairs, first, stop, c0, c1, taps, p_size, q_size, ph, pw):
    """Columns of output rows ``first`` to ``stop`` (row ``n*P + p``) of the column matrix ``col``
    (N, C*R*S, P*Q), for channels ``c0`` to ``c1``: each is copied into the zero-bordered stride
    phases ``planes`` (``load_channel``, with its ``pairs`` scratch), and each output row of each
    tap is then one copy of ``Q`` values from one of them (``taps``: :func:`_tap_offsets`)."""
    n_taps = taps.shape[0]
    row = first
    while row < stop:
        n = row // p_size
        p0 = row % p_size
        p1 = min(p_size, p0 + stop - row)
        for c in range(c0, c1):
            load_channel(x[n, c], planes, ph, pw, pairs)
            for tap in range(n_taps):
                plane = planes[taps[tap, 0], taps[tap, 1]]
                top, left = taps[tap, 2], taps[tap, 3]
                to = col[n, c * n_taps + tap]
                for p in range(p0, p1):
                    dst = to[p * q_size:(p + 1) * q_size]
                    src = plane[p + top, left:left + q_size]
                    for t in range(q_size):
                        dst[t] = src[t]
        row += p1 - p0


@njit(cache=True, nogil=True, fastmath=False)
def _lower_block(planes, col, n, p0, p1, taps, q_size):
    """Columns of image ``n``'s output rows ``p0`` to ``p1`` into ``col`` (C*R*S, (p1-p0)*Q or
    more), from ``planes``: the whole input split into zero-bordered stride phases
    (``load_streams``). Each output row of each tap is one copy of ``Q`` values."""
    n_taps = taps.shape[0]
    for c in range(planes.shape[1]):
        for tap in range(n_taps):
            plane = planes[n, c, taps[tap, 0], taps[tap, 1]]
            top, left = taps[tap, 2], taps[tap, 3]
            to = col[c * n_taps + tap]
            for p in range(p0, p1):
                dst = to[(p - p0) * q_size:(p - p0 + 1) * q_size]
                src = plane[p + top, left:left + q_size]
                for t in range(q_size):
                    dst[t] = src[t]


@njit(parallel=True, cache=True, fastmath=False)
def _lower(x, col, planes, pairs, taps, p_size, q_size, ph, pw, threads):
    """:func:`_lower_rows` over every (image, channel), one run of them per thread (``threads``,
    at most as many as there are planes), each with its own ``planes[i]`` and ``pairs[i]``."""
    channels = x.shape[1]
    jobs = x.shape[0] * channels
    chunks = min(jobs, threads, planes.shape[0])
    for chunk in prange(chunks):
        start, stop = chunk_bounds(chunk, chunks, jobs)
        for job in range(start, stop):
            n, c = job // channels, job % channels
            _lower_rows(x, col, planes[chunk], pairs[chunk], n * p_size, (n + 1) * p_size, c,
                        c + 1, taps, p_size, q_size, ph, pw)


def _tap_offsets(problem):
    """Where each filter tap ``(r, s)`` reads in the padded input split into stride phases: one
    int64 row per tap, in ``r * S + s`` order, ``a, b, top, left``. Output row ``p`` of tap ``r``
    reads padded row ``p*sh + r*dh``; with ``r*dh = top*sh + a`` that is row ``p + top`` of row
    phase ``a``. Columns alike."""
    (sh, sw), (dh, dw) = problem.stride, problem.dilation
    table = np.empty((problem.r * problem.s, 4), dtype=np.int64)
    for r in range(problem.r):
        top, a = divmod(r * dh, sh)
        for s in range(problem.s):
            left, b = divmod(s * dw, sw)
            table[r * problem.s + s] = (a, b, top, left)
    return table


def _plane_shape(problem):
    """One channel, zero-bordered and split into its stride phases, as ``load_channel`` fills it."""
    return stream_shape(problem, *problem.stride)[2:]


def _channel_scratch(problem, count):
    """``count`` sets of what one lowering thread needs, made in ``prepare``: a channel's
    zero-bordered planes (the border stays zero, as every channel writes the same positions) and
    ``load_channel``'s scratch for column pairs."""
    planes = np.zeros((count,) + _plane_shape(problem), dtype=np.float32)
    pairs = np.empty((count, pair_scratch_bytes(problem, problem.stride[1], 1) // 4), np.float32)
    return planes, pairs


def _is_pointwise(problem):
    return (problem.r == 1 and problem.s == 1 and problem.stride == (1, 1)
            and problem.padding == (0, 0))


def _is_subsampling(problem):
    """A strided 1x1 layer: its column matrix is the input at every stride-th row and column,
    which numpy copies from a strided view in one pass (or one per row share). On ResNet-50
    res3a_branch2a (256 channels, 56x56, stride 2; AMD CI machine) that took 58 us against 124 us
    for the numba lowering of the time (before the stride phases) at two threads. With padding,
    the positions that sample the padding are written as zeros (:func:`_sampled`); through the
    general lowering, DeepBench's server_49 (2048 channels of 7 x 7, three pixels of padding, stride 2)
    took 0.95 ms against torch's 0.35 in ``find``, most of it copying each channel into its planes.
    ``ab``: server_49 44 % faster (0.694 -> 0.389 ms), server_58 (its batch of 2) 29 %, the
    unpadded strided 1x1 layers the same (``ab/20261124T204721Z.json``, ``...204745Z.json``)."""
    return problem.r == 1 and problem.s == 1 and problem.stride != (1, 1)


def _sampled(size, stride, pad, count):
    """``(lo, hi, first)``: the output positions ``lo`` to ``hi`` of a 1x1 filter (of ``count``)
    that sample the input (of ``size``) rather than its padding, and the input position ``lo``
    samples."""
    lo = min(count, -(-pad // stride))
    hi = max(lo, min(count, (size - 1 + pad) // stride + 1))
    return lo, hi, lo * stride - pad


def _subsample(problem, col_image):
    """``copy(x, n, p0, p1)``: image ``n``'s output rows ``p0`` to ``p1`` (all images with
    ``n=None``) of a strided 1x1 layer's column matrix ``col_image`` (N, C, P, Q), the positions
    that sample the padding set to zero."""
    (sh, sw), (ph, pw) = problem.stride, problem.padding
    row_lo, row_hi, row_first = _sampled(problem.h, sh, ph, problem.p)
    col_lo, col_hi, col_first = _sampled(problem.w, sw, pw, problem.q)
    columns = slice(col_first, col_first + (col_hi - col_lo - 1) * sw + 1, sw)

    def copy(x, n=None, p0=0, p1=problem.p):
        images = slice(None) if n is None else n
        a, b = max(p0, row_lo), min(p1, row_hi)
        if a >= b or col_lo >= col_hi:
            col_image[images, :, p0:p1] = 0.0
            return
        first = row_first + (a - row_lo) * sh
        rows = slice(first, first + (b - a - 1) * sh + 1, sh)
        np.copyto(col_image[images, :, a:b, col_lo:col_hi], x[images, :, rows, columns])
        if (ph, pw) != (0, 0):
            col_image[images, :, p0:a] = 0.0
            col_image[images, :, b:p1] = 0.0
            col_image[images, :, a:b, :col_lo] = 0.0
            col_image[images, :, a:b, col_hi:] = 0.0
    return copy


class Im2colGemmCPU:
    """im2col lowering (numba) followed by SGEMM through BLAS; supports every problem."""

    def supports(self, problem):
        return None

    def row_shares(self, problem):
        """How many threads lower and multiply their own output rows (see the module's notes); 1
        where the lowering and the product are each spread over the threads instead."""
        if problem.groups > 1:
            return 1
        threads = share_count(get_num_threads())
        if threads < 2 or problem.flops < SHARED_ROWS_FLOPS:
            return 1
        if problem.n >= threads:          # an image or more per share
            return threads
        if (problem.k > SHARED_ROWS_MAX_K
                or problem.p * problem.q < SHARED_ROWS_MIN_PIXELS):
            return 1
        return min(threads, problem.n * problem.p)

    def pointwise_shared(self, problem):
        """Whether a 1x1 stride-1 layer's products (one per image and group) may be shared out
        among the threads (:func:`kernels.cpu._common.matmul_for` decides the rest): only with
        :data:`POINTWISE_SHARED_PER_THREAD` of them or more per thread. ``ab`` on DeepBench's
        batch-2 1x1 layers, against sharing them: 10 of 11 faster by 3-27 % (server_57, 512
        channels of 7 x 7: 0.211 -> 0.153 ms), one the same; ResNet-50's 1x1 layers at batch 4
        the same or faster (``ab/20261124T212325Z.json``, ``...212429Z.json``). At batch 8 sharing
        measured 3-7 % faster in one process, and stays."""
        return (problem.n * problem.groups
                >= POINTWISE_SHARED_PER_THREAD * share_count(get_num_threads()))

    def block_rows(self, problem):
        """Output rows per block where row shares go a block at a time (a share's part of the
        column matrix would reach :data:`SHARE_BLOCK_MIN_BYTES`), else None."""
        shares = self.row_shares(problem)
        if shares == 1 or _is_subsampling(problem):
            return None
        column_bytes = 4 * problem.c * problem.r * problem.s
        row_bytes = column_bytes * problem.q
        if (row_bytes * -(-problem.n * problem.p // shares) < SHARE_BLOCK_MIN_BYTES
                or column_bytes * BLOCK_MIN_PIXELS > COL_BLOCK_BYTES):
            return None
        return max(1, min(problem.p, COL_BLOCK_BYTES // row_bytes))

    def _lowering_threads(self, problem):
        """Threads that each hold one channel's planes while lowering (see ``prepare``)."""
        shares = self.row_shares(problem)
        if shares > 1:
            return shares
        col = 4 * problem.n * problem.c * problem.r * problem.s * problem.p * problem.q
        return 1 if col < SERIAL_COPY_BYTES else min(get_num_threads(), problem.n * problem.c)

    def workspace_bytes(self, problem):
        if _is_pointwise(problem):
            return 0
        col = 4 * problem.n * problem.c * problem.r * problem.s * problem.p * problem.q
        if _is_subsampling(problem):
            return col
        block = self.block_rows(problem)
        if block:   # the input in stride phases, and a block of columns per share
            planes = 4 * int(np.prod(stream_shape(problem, *problem.stride)))
            blocks = 4 * problem.c * problem.r * problem.s * block * problem.q
            return (planes + streams_scratch_bytes(problem, planes)
                    + self.row_shares(problem) * blocks)
        threads = self._lowering_threads(problem)
        planes = 4 * int(np.prod(_plane_shape(problem))) * threads
        return col + planes + pair_scratch_bytes(problem, problem.stride[1], threads)

    def prepare(self, problem, w):
        groups = problem.groups
        k_per_group = problem.k // groups
        rows = (problem.c // groups) * problem.r * problem.s
        pixels = problem.p * problem.q
        weights = np.ascontiguousarray(w, dtype=np.float32).reshape(groups, k_per_group, rows)
        out_shape = (problem.n, groups, k_per_group, pixels)
        matmul = matmul_for(weights.shape, (problem.n, groups, rows, pixels))
        if _is_pointwise(problem):
            if not self.pointwise_shared(problem):
                matmul = np.matmul     # each product on the BLAS's own threads, one after another

            def run(x):
                out = np.empty(out_shape, dtype=np.float32)
                matmul(weights, x.reshape(problem.n, groups, rows, pixels), out=out)
                return out.reshape(problem.output_shape)
            run.impl = "1x1: GEMM on the input"
            return run

        if self.block_rows(problem):
            return self._prepare_blocks(problem, weights, out_shape)
        col = np.empty((problem.n, problem.c * problem.r * problem.s, pixels), dtype=np.float32)
        col_grouped = col.reshape(problem.n, groups, rows, pixels)
        if self.row_shares(problem) > 1:
            return self._prepare_row_shares(problem, weights, col, out_shape)
        if _is_subsampling(problem):
            lower = _subsample(problem, col.reshape(problem.n, problem.c, problem.p, problem.q))
            impl = "strided 1x1: subsampled"
        else:
            lower = self._lowering(problem, col)
            impl = "lowered"

        def multiply(x):
            out = np.empty(out_shape, dtype=np.float32)
            matmul(weights, col_grouped, out=out)
            return out.reshape(problem.output_shape)

        run = pipeline(("lowering", lower), ("multiply", multiply), impl=impl)
        run.column_matrix = col     # what the lowering fills: (N, C*R*S, P*Q)
        return run

    def _lowering(self, problem, col):
        """``lower(x)`` filling all of ``col``: by one thread under :data:`SERIAL_COPY_BYTES`,
        else one run of (image, channel) pairs per numba thread."""
        taps = _tap_offsets(problem)
        (ph, pw), p_size, q_size = problem.padding, problem.p, problem.q
        planes, pairs = _channel_scratch(problem, self._lowering_threads(problem))
        if col.nbytes >= SERIAL_COPY_BYTES:
            def lower(x):
                _lower(x, col, planes, pairs, taps, p_size, q_size, ph, pw, get_num_threads())
            return lower
        rows = problem.n * p_size

        def lower(x):
            _lower_rows(x, col, planes[0], pairs[0], 0, rows, 0, problem.c, taps, p_size, q_size,
                        ph, pw)
        return lower

    def _prepare_row_shares(self, problem, weights, col, out_shape):
        """Each share lowers its run of output rows and multiplies them by the whole filter
        matrix, with a one-thread BLAS (see the module's notes). A strided 1x1 layer's share
        copies its rows from a strided view of the input (numpy, which lets go of the GIL) and
        needs no planes."""
        (ph, pw), p_size, q_size = problem.padding, problem.p, problem.q
        groups, rows = problem.groups, problem.n * p_size
        col_grouped = col.reshape(problem.n, groups, -1, p_size * q_size)
        count = self.row_shares(problem)
        bounds = [rows * i // count for i in range(count + 1)]
        subsampling = _is_subsampling(problem)
        planes, pairs = (([None] * count,) * 2 if subsampling
                         else _channel_scratch(problem, count))
        shares = []
        for first, stop, own_planes, own_pairs in zip(bounds[:-1], bounds[1:], planes, pairs):
            # the share's columns of each image it touches: (image, first column, last + 1)
            pieces = [(n, max(first, n * p_size) % p_size * q_size,
                       (min(stop, (n + 1) * p_size) - n * p_size) * q_size)
                      for n in range(first // p_size, -(-stop // p_size))]
            shares.append((first, stop, pieces, own_planes, own_pairs))

        if subsampling:
            copy = _subsample(problem, col.reshape(problem.n, problem.c, p_size, q_size))

            def lower(x, share):
                for n, start, end in share[2]:
                    copy(x, n, start // q_size, end // q_size)
        else:
            taps = _tap_offsets(problem)

            def lower(x, share):
                first, stop, _, planes, pairs = share
                _lower_rows(x, col, planes, pairs, first, stop, 0, problem.c, taps, p_size,
                            q_size, ph, pw)

        def multiply(out, share):
            for n, start, end in share[2]:
                np.matmul(weights, col_grouped[n, :, :, start:end], out=out[n, :, :, start:end])

        def whole(x, out, share):
            lower(x, share)
            multiply(out, share)

        def run(x):
            out = np.empty(out_shape, dtype=np.float32)
            run_shares([partial(whole, x, out, share) for share in shares])
            return out.reshape(problem.output_shape)

        def multiply_all(x):
            out = np.empty(out_shape, dtype=np.float32)
            run_shares([partial(multiply, out, share) for share in shares])
            return out.reshape(problem.output_shape)

        # the per-stage breakdown times each stage over all shares; a call hands over once
        run.stages = pipeline(
            ("lowering", lambda x: run_shares([partial(lower, x, share) for share in shares])),
            ("multiply", multiply_all)).stages
        run.impl = (f"strided 1x1: subsampled by output rows on {count} threads" if subsampling
                    else f"lowered by output rows on {count} threads")
        run.column_matrix = col
        return run

    def _prepare_blocks(self, problem, weights, out_shape):
        """Row shares a block at a time: the whole input is split into its stride phases once
        (numba's threads), then each share lowers a block of its output rows (one image's,
        ``block_rows`` of them at most) into its own buffer and multiplies it by the filter
        matrix (a one-thread BLAS) before the next, so the columns are read back from the cache,
        not from memory. Stages: the split, then the blocks."""
        (ph, pw), p_size, q_size = problem.padding, problem.p, problem.q
        planes = np.zeros(stream_shape(problem, *problem.stride), dtype=np.float32)
        load = streams_loader(planes)
        taps = _tap_offsets(problem)
        block = self.block_rows(problem)
        count = self.row_shares(problem)
        rows = problem.n * p_size
        bounds = [rows * i // count for i in range(count + 1)]
        shares = []
        for first, stop in zip(bounds[:-1], bounds[1:]):
            blocks = []
            row = first
            while row < stop:   # blocks never cross into the next image
                n, p0 = divmod(row, p_size)
                p1 = min(p_size, p0 + block, p0 + stop - row)
                blocks.append((n, p0, p1))
                row += p1 - p0
            buffer = np.empty((weights.shape[2], block * q_size), dtype=np.float32)
            shares.append((blocks, buffer))
        flat_weights = weights[0]   # one group: row shares are never taken with more

        def share_blocks(out, share):
            blocks, buffer = share
            for n, p0, p1 in blocks:
                _lower_block(planes, buffer, n, p0, p1, taps, q_size)
                width = (p1 - p0) * q_size
                np.matmul(flat_weights, buffer[:, :width],
                          out=out[n, 0, :, p0 * q_size:p1 * q_size])

        def split(x):
            load(x, planes, ph, pw)

        def blocks(x):
            out = np.empty(out_shape, dtype=np.float32)
            run_shares([partial(share_blocks, out, share) for share in shares])
            return out.reshape(problem.output_shape)

        return pipeline(("split into stride phases", split), ("lowered and multiplied", blocks),
                        impl=f"lowered by blocks of {block} output row{'s' if block > 1 else ''}"
                             f" on {count} threads")


im2col_gemm = Im2colGemmCPU()
