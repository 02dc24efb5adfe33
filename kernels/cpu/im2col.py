"""im2col + GEMM on the CPU: numba lowers the input into a column matrix, BLAS does one SGEMM.

Notes
-----
For image ``n`` and group ``g`` the column matrix has one row per filter tap (c, r, s) and one column per
output pixel (p, q)::

    col[n, g, (c*R + r)*S + s, p*Q + q] = x_padded[n, g*C_g + c, p*sh + r*dh, q*sw + s*dw]

so ``out[n, g] = W[g] (K_g x C_g*R*S) @ col[n, g] (C_g*R*S x P*Q)`` lands directly in NCHW order; numpy's
``matmul`` hands each (image, group) product to the BLAS it was built with, in float32. With more
than one such product (a batch, or groups) of 20 MFLOP or more in all, the products are shared out
among the cores, each run by a one-thread BLAS (:func:`kernels.cpu._common.batched_matmul`): on
AlexNet's conv2 (two groups) that took the call from 1.81 to 1.33 ms (``convbench ab``, CI machine,
``results/amd-epyc-2c/ab/20261124T051737Z.json``).

With a stride larger than 1 the padded input is first split into its ``sh * sw`` stride phases
(``planes[n, c, a, b, i, j] = x_padded[n, c, i*sh + a, j*sw + b]``, as the direct kernel does).
Every row of the column matrix is then a run of contiguous copies of up to ``Q`` values with no
strided reads. The offsets and padded extents of every tap are worked out once, in
:func:`_tap_table`. On the CI machine (AMD EPYC, 2 cores, two threads) this took the lowering
alone, old against new in one process, from 0.63 to 0.19 ms on ResNet-50's stem (7x7, stride 2),
0.48 to 0.18 ms on AlexNet's conv1 (11x11, stride 4), 0.65 to 0.35 ms on AlexNet's conv2 (5x5) and
0.35 to 0.19 ms on ResNet-50's res2a_branch2b (3x3). The row-by-row version before it read strided
rows straight from the input and zero-filled the padding with slice assignments. ``convbench ab`` against it on the default set
(``results/amd-epyc-2c/ab/20261124T041912Z.json``): six layers faster by 9 to 17 % end to end, none
slower, outputs bit-identical; on VGG-16's first four layers, whose column matrices stream through
memory, within noise (``20261124T042047Z.json``).

With stride 1 each thread copies one channel at a time into a zero-bordered plane of its own
(``load_channel``), and every output row of every tap is then one copy of ``Q`` values from it
(:func:`_lower_channels`). Copied straight from the input, as before, each row had its padding
worked out and zero-filled in two more short loops. The lowering alone at one thread, old against
new in one process: 57 -> 44 us on GoogLeNet's inception_3a/5x5 (16 channels of 28 x 28), 320 ->
241 us on AlexNet's conv2, 180 -> 120 us on res2a_branch2b. ``convbench ab``, two threads,
outputs identical: 7 of GoogLeNet's 8 5x5 layers 12-25 % faster, one unclear
(``ab/20261124T095100Z.json``); on the default set res3a, res4a and conv5_1 8-12 % faster and
none slower (``20261124T094939Z.json``).

A column matrix under ``SERIAL_COPY_BYTES`` (1 MiB) is lowered by one thread, as is the split of
an input under that size: on the CI machine waking the other thread costs more than such a copy
(LeNet-5's c1: 4 us in one thread, 46 us in two; ``ab``: 4.4-5.4x faster on LeNet-5's layers).

A 1x1 filter with stride 1 and no padding needs no lowering at all -- the input already is the
column matrix -- and with a larger stride its lowering is one strided numpy copy. The workspace is
the column matrix, ``N * C * R * S * P * Q`` floats, plus the split input where one is made, or at
stride 1 one zero-bordered channel per lowering thread.
"""

import numpy as np
from numba import get_num_threads, njit, prange

from ..common import pipeline
from ._common import (SERIAL_COPY_BYTES, chunk_bounds, load_channel, load_streams,
                      load_streams_serial, matmul_for, stream_shape, streams_scratch_bytes)


@njit(cache=True, fastmath=False, inline="always")
def _lower_row(xph, col, taps, p_size, q_size, job):
    """Row ``job`` of the column matrix (one filter tap of one channel of one image) from the input
    split into its stride phases (``load_streams``): one contiguous copy per output row, zeros
    where it falls into the padding; ``taps`` is :func:`_tap_table`."""
    channels, n_taps = xph.shape[1], taps.shape[0]
    n = job // (channels * n_taps)
    channel = job // n_taps % channels
    tap = job % n_taps
    top, left = taps[tap, 2], taps[tap, 3]
    p_lo, p_hi, q_lo, q_hi = taps[tap, 4], taps[tap, 5], taps[tap, 6], taps[tap, 7]
    row = col[n, channel * n_taps + tap]
    plane = xph[n, channel, taps[tap, 0], taps[tap, 1]]
    for t in range(p_lo * q_size):
        row[t] = 0.0
    for t in range(p_hi * q_size, p_size * q_size):
        row[t] = 0.0
    for p in range(p_lo, p_hi):
        base = p * q_size
        for t in range(q_lo):
            row[base + t] = 0.0
        for t in range(q_hi, q_size):
            row[base + t] = 0.0
        # slices, then plain range indices: ``base + t`` on both sides would carry numba's
        # negative-index check, which keeps the copy from vectorizing
        dst = row[base + q_lo:base + q_hi]
        src = plane[top + p, left + q_lo:left + q_hi]
        for t in range(q_hi - q_lo):
            dst[t] = src[t]


@njit(parallel=True, cache=True, fastmath=False)
def _lower(xph, col, taps, p_size, q_size):
    for job in prange(col.shape[0] * col.shape[1]):
        _lower_row(xph, col, taps, p_size, q_size, job)


@njit(cache=True, fastmath=False)
def _lower_serial(xph, col, taps, p_size, q_size):
    for job in range(col.shape[0] * col.shape[1]):
        _lower_row(xph, col, taps, p_size, q_size, job)


@njit(cache=True, fastmath=False, inline="always")
def _lower_channels(x, col, plane, jobs, filter_shape, p_size, q_size, padding, dilation):
    """Rows of the column matrix for the (image, channel) jobs ``range(*jobs)`` at unit stride:
    each channel is copied into the zero-bordered ``plane`` (``load_channel``), and each output
    row of each filter tap is then one copy of Q values from it, with no padding to work out."""
    channels = x.shape[1]
    r_size, s_size = filter_shape
    (ph, pw), (dh, dw) = padding, dilation
    no_pairs = np.empty(0, dtype=np.float32)      # unit stride: no column pairs to split
    source = plane[0, 0]
    for job in range(jobs[0], jobs[1]):
        n = job // channels
        c = job % channels
        load_channel(x[n, c], plane, ph, pw, no_pairs)
        for r in range(r_size):
            for s in range(s_size):
                row = col[n, (c * r_size + r) * s_size + s]
                for p in range(p_size):
                    dst = row[p * q_size:(p + 1) * q_size]
                    src = source[p + r * dh, s * dw:s * dw + q_size]
                    for t in range(q_size):
                        dst[t] = src[t]


@njit(parallel=True, cache=True, fastmath=False)
def _lower_padded(x, col, plane_shape, filter_shape, p_size, q_size, padding, dilation, threads):
    """:func:`_lower_channels` over all channels, one run of them per thread, each with its plane."""
    jobs = x.shape[0] * x.shape[1]
    chunks = min(jobs, threads)
    for chunk in prange(chunks):
        plane = np.zeros(plane_shape, dtype=np.float32)
        _lower_channels(x, col, plane, chunk_bounds(chunk, chunks, jobs), filter_shape, p_size,
                        q_size, padding, dilation)


@njit(cache=True, fastmath=False)
def _lower_padded_serial(x, col, plane_shape, filter_shape, p_size, q_size, padding, dilation,
                         threads):
    """:func:`_lower_padded` in the calling thread (``threads`` unused)."""
    plane = np.zeros(plane_shape, dtype=np.float32)
    _lower_channels(x, col, plane, (0, x.shape[0] * x.shape[1]), filter_shape, p_size, q_size,
                    padding, dilation)


def _tap_table(problem, height, width, ph, pw):
    """Where each filter tap ``(r, s)`` reads in an image of ``height x width`` that still lacks
    ``(ph, pw)`` of padding, split into the stride's phases: one int64 row per tap, in ``r * S + s``
    order, ``a, b, top, left, p_lo, p_hi, q_lo, q_hi``.

    Output row ``p`` of tap ``r`` reads image row ``p*sh + r*dh - ph``; writing ``r*dh - ph`` as
    ``top*sh + a`` with ``0 <= a < sh`` (Python's floor division), that is row ``p + top`` of row
    phase ``a``. Only the output rows in ``[p_lo, p_hi)`` land inside the image; the others are
    padding, zero. Columns alike: phase ``b``, offset ``left``, inside for ``[q_lo, q_hi)``.
    Worked out once per problem, it leaves each of the lowering's jobs a few loads and no floor
    division (LeNet-5's c5 has 400 jobs of one value each)."""
    (sh, sw), (dh, dw) = problem.stride, problem.dilation
    table = np.empty((problem.r * problem.s, 8), dtype=np.int64)

    def inside(offset, stride, size, out_size):
        phase, start = offset % stride, offset // stride
        held = -(-(size - phase) // stride)             # rows (or columns) of this phase
        lo = min(out_size, max(0, -start))
        return phase, start, lo, max(lo, min(out_size, held - start))

    for r in range(problem.r):
        a, top, p_lo, p_hi = inside(r * dh - ph, sh, height, problem.p)
        for s in range(problem.s):
            b, left, q_lo, q_hi = inside(s * dw - pw, sw, width, problem.q)
            table[r * problem.s + s] = (a, b, top, left, p_lo, p_hi, q_lo, q_hi)
    return table


def _plane_shape(problem):
    """One channel, zero-bordered, as ``load_channel`` fills it at unit stride."""
    return (1, 1, problem.h + 2 * problem.padding[0], problem.w + 2 * problem.padding[1])


def _is_pointwise(problem):
    return (problem.r == 1 and problem.s == 1 and problem.stride == (1, 1)
            and problem.padding == (0, 0))


def _is_subsampling(problem):
    """A strided 1x1 layer without padding: its column matrix is the input at every stride-th row
    and column, which numpy copies from a strided view in one pass. On ResNet-50 res3a_branch2a
    (256 channels, 56x56, stride 2; AMD CI machine) that took 58 us against 124 us for the numba
    lowering of the time (before the stride phases) at two threads."""
    return problem.r == 1 and problem.s == 1 and problem.padding == (0, 0)


class Im2colGemmCPU:
    """im2col lowering (numba, parallel) followed by SGEMM through BLAS; supports every problem."""

    def supports(self, problem):
        return None

    def workspace_bytes(self, problem):
        if _is_pointwise(problem):
            return 0
        col = 4 * problem.n * problem.c * problem.r * problem.s * problem.p * problem.q
        if _is_subsampling(problem):
            return col
        if problem.stride == (1, 1):     # and one zero-bordered channel per lowering thread
            threads = (1 if col < SERIAL_COPY_BYTES
                       else min(get_num_threads(), problem.n * problem.c))
            return col + 4 * int(np.prod(_plane_shape(problem))) * threads
        planes = 4 * int(np.prod(stream_shape(problem, *problem.stride)))
        return col + planes + streams_scratch_bytes(problem, planes)

    def prepare(self, problem, w):
        groups = problem.groups
        k_per_group = problem.k // groups
        rows = (problem.c // groups) * problem.r * problem.s
        pixels = problem.p * problem.q
        weights = np.ascontiguousarray(w, dtype=np.float32).reshape(groups, k_per_group, rows)
        out_shape = (problem.n, groups, k_per_group, pixels)
        matmul = matmul_for(weights.shape, (problem.n, groups, rows, pixels))
        if _is_pointwise(problem):
            def run(x):
                out = np.empty(out_shape, dtype=np.float32)
                matmul(weights, x.reshape(problem.n, groups, rows, pixels), out=out)
                return out.reshape(problem.output_shape)
            run.impl = "1x1: GEMM on the input"
            return run

        col = np.empty((problem.n, problem.c * problem.r * problem.s, pixels), dtype=np.float32)
        col_grouped = col.reshape(problem.n, groups, rows, pixels)
        lower_rows = _lower_serial if col.nbytes < SERIAL_COPY_BYTES else _lower

        if _is_subsampling(problem):
            (sh, sw) = problem.stride
            col_image = col.reshape(problem.n, problem.c, problem.p, problem.q)

            def lower(x):
                np.copyto(col_image, x[:, :, ::sh, ::sw])
            impl = "strided 1x1: subsampled"
        elif problem.stride == (1, 1):   # rows from each channel in a zero-bordered plane
            lower_padded = _lower_padded_serial if col.nbytes < SERIAL_COPY_BYTES else _lower_padded
            plane = _plane_shape(problem)
            filter_shape = (problem.r, problem.s)

            def lower(x):
                lower_padded(x, col, plane, filter_shape, problem.p, problem.q, problem.padding,
                             problem.dilation, get_num_threads())
            impl = "lowered"
        else:   # from the padded input split into its stride phases
            planes = np.zeros(stream_shape(problem, *problem.stride), dtype=np.float32)
            taps = _tap_table(problem, problem.h + 2 * problem.padding[0],
                              problem.w + 2 * problem.padding[1], 0, 0)
            load = load_streams_serial if planes.nbytes < SERIAL_COPY_BYTES else load_streams

            def lower(x):
                load(x, planes, *problem.padding)
                lower_rows(planes, col, taps, problem.p, problem.q)
            impl = "lowered from stride phases"

        def multiply(x):
            out = np.empty(out_shape, dtype=np.float32)
            matmul(weights, col_grouped, out=out)
            return out.reshape(problem.output_shape)

        run = pipeline(("lowering", lower), ("multiply", multiply), impl=impl)
        run.column_matrix = col     # what the lowering fills: (N, C*R*S, P*Q)
        return run


im2col_gemm = Im2colGemmCPU()
