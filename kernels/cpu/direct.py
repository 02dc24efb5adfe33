"""Direct (sliding-window) convolution on the CPU with numba.

Notes
-----
Work is split into independent tasks of (image, group, block of ``K_BLOCK`` output channels, block
of output rows) that numba's ``prange`` spreads over the cores. Each task keeps its outputs in a
small accumulator and walks the filter taps in (c, r, s) order, three at a time, adding in one pass
the products of three taps for four output channels::

    acc[k + j, i] += w[k + j, t0] * x0[i] + w[k + j, t1] * x1[i] + w[k + j, t2] * x2[i],  j = 0..3

where ``x0, x1, x2`` are the input runs taps ``t0, t1, t2`` see. Each input value loaded serves
four output channels and each accumulator load and store three taps: twelve multiply-adds per
seven loads and four stores (one channel per pass did three per four loads and a store). Taps are
grouped whichever channel or filter row they belong to, so a 1x1 layer (one tap per channel) gets
the same three-tap passes as a 3x3 one; the filters are padded with zero taps to a multiple of
three (adding ``0 * x`` leaves a finite sum unchanged). The sums are chained multiply-adds compiled
with ``fastmath={"contract"}``: each ``a + u * x`` may be rounded once, as an FMA instruction does,
and nothing is reordered, so integer-valued inputs still give exact results.

The input is first split into ``sh x sw`` interleaved planes (one plane, the padded input itself,
at unit stride), so that for every filter tap the outputs of a block of rows read one flat,
contiguous run of a plane (the few columns past the output width are computed and dropped): the
same fast loop whatever the stride. Where each tap's run starts is worked out once per problem
(:func:`tap_table`). Every index in the inner loop is a plain ``range`` variable, which numba can
vectorize (an index like ``start + i`` carries a negative-index check that stops it).

Measured on the AMD CI machine (Zen 5, one thread, ResNet-50 res2a_branch2b at batch 1): about 105
GFLOP/s, against 62 for one output channel and three taps of one filter row per pass. Four channels
per pass, not six: six ran at 69 GFLOP/s (not investigated further).

A small problem (under ``SERIAL_FLOPS``, a depthwise one under ``SERIAL_DEPTHWISE_BYTES``: see
:func:`kernels.cpu._common.numba_threads`) runs on the calling thread alone, since waking the
other costs more than it saves there (LeNet-5's c3: 13.5 us against 92 on the CI machine).

A problem with one input channel per group (depthwise) goes its own way, a channel at a time
(:func:`_depthwise`); the commonest of them, 3x3 with one pixel of padding, without copying
anything at stride 1 (:func:`_depthwise_same`) and with only a split into stride phases at
stride 2 (:func:`_depthwise_halving`).
"""

import numpy as np
from numba import get_num_threads, njit, prange

from ._common import (chunk_bounds, load_channel, numba_threads, one_thread, pair_scratch,
                      pair_scratch_bytes, stream_shape, streams_loader, streams_scratch_bytes)

K_BLOCK = 8          # output channels per task: two passes of K_UNROLL
K_UNROLL = 4         # output channels per pass (the loop of _add_taps)
TAPS = 3             # filter taps per pass
VECTOR = 32          # values per step of _add_taps's vectorized loop (16 lanes, two at once)
FLAT_TARGET = 512    # about how many accumulator elements a unit-stride pass covers
DEPTHWISE_TAPS = 9   # filter taps per pass of the depthwise path (_add_nine_taps)


@njit(cache=True, fastmath={"contract"})
def _add_taps(acc, w, k0, k_count, t, x0, x1, x2, length):
    """acc[kk, :length] += the products of taps t, t+1, t+2 of output channels k0..k0+k_count-1.

    ``w`` is (K, taps) with the taps of each output channel in (c, r, s) order, zero-padded to a
    multiple of three.
    """
    kk = 0
    while kk + K_UNROLL <= k_count:
        k = k0 + kk
        a0 = acc[kk]
        a1 = acc[kk + 1]
        a2 = acc[kk + 2]
        a3 = acc[kk + 3]
        u00, u01, u02 = w[k, t], w[k, t + 1], w[k, t + 2]
        u10, u11, u12 = w[k + 1, t], w[k + 1, t + 1], w[k + 1, t + 2]
        u20, u21, u22 = w[k + 2, t], w[k + 2, t + 1], w[k + 2, t + 2]
        u30, u31, u32 = w[k + 3, t], w[k + 3, t + 1], w[k + 3, t + 2]
        for i in range(length):
            v0 = x0[i]
            v1 = x1[i]
            v2 = x2[i]
            a0[i] = a0[i] + u00 * v0 + u01 * v1 + u02 * v2
            a1[i] = a1[i] + u10 * v0 + u11 * v1 + u12 * v2
            a2[i] = a2[i] + u20 * v0 + u21 * v1 + u22 * v2
            a3[i] = a3[i] + u30 * v0 + u31 * v1 + u32 * v2
        kk += K_UNROLL
    for kk in range(kk, k_count):   # the last one to three channels of a group
        _add_taps_one(acc[kk], w[k0 + kk, t], w[k0 + kk, t + 1], w[k0 + kk, t + 2],
                      x0, x1, x2, length)


@njit(cache=True, fastmath={"contract"})
def _add_taps_one(a, u0, u1, u2, x0, x1, x2, length):
    """a[:length] += u0 * x0 + u1 * x1 + u2 * x2, for one output channel.

    A function of its own: written as a second loop inside :func:`_add_taps`, it made that one's
    main loop slower (95-100 against 140-155 GFLOP/s, the function alone at one thread, AMD CI
    machine), although the main loop's instructions were the same.
    """
    for i in range(length):
        a[i] = a[i] + u0 * x0[i] + u1 * x1[i] + u2 * x2[i]


def tap_table(problem, plane_w):
    """Where each filter tap reads, for :func:`_direct`: rows (channel within the group, plane row
    a, plane column b, offset), taps in (c, r, s) order, padded with copies of tap 0 to a multiple
    of three.

    Tap (r, s) of output (p, q) reads padded row p*sh + r*dh and column q*sw + s*dw: plane
    ((r*dh) % sh, (s*dw) % sw) at row p + (r*dh)//sh, column q + (s*dw)//sw, that is at flat
    position p * plane_w + q + offset in the plane. Worked out here once per problem: with these
    integer divisions in the loop over taps, res2a_branch2b ran about 20 % slower.
    """
    (sh, sw), (dh, dw) = problem.stride, problem.dilation
    c, r, s = np.meshgrid(np.arange(problem.c // problem.groups), np.arange(problem.r),
                          np.arange(problem.s), indexing="ij")
    rows, cols = r.ravel() * dh, s.ravel() * dw
    table = np.stack([c.ravel(), rows % sh, cols % sw, rows // sh * plane_w + cols // sw], axis=1)
    padded = -(-len(table) // TAPS) * TAPS
    return np.concatenate([table, np.repeat(table[:1], padded - len(table), axis=0)])


@njit(cache=True, fastmath=False, inline="always")
def _run(flat, n, first_channel, tap, start, length):
    """The input run one row of :func:`tap_table` reads for outputs from flat position ``start``."""
    first = start + tap[3]
    return flat[n, first_channel + tap[0], tap[1], tap[2], first:first + length]


@njit(parallel=True, cache=True, fastmath=False)
def _direct(planes, w, taps, out, groups, rows_per_block):
    """Direct convolution from the input split into (sh x sw) planes (see ``load_streams``).

    ``w`` is (K, T): each output channel's C/g x R x S filter flattened, zero-padded to a multiple
    of three taps; ``taps`` is :func:`tap_table`. Within a plane, a block of output rows is one
    flat run of ``(rows - 1) * L + Q`` values (L the plane's width; the columns past Q in each row
    are computed and dropped), so each pass is long and contiguous.
    """
    n_images, channels, sh, sw, plane_h, plane_w = planes.shape
    k_total = w.shape[0]
    _, _, p_size, q_size = out.shape
    k_per_group = k_total // groups
    k_blocks = (k_per_group + K_BLOCK - 1) // K_BLOCK
    p_blocks = (p_size + rows_per_block - 1) // rows_per_block
    flat = planes.reshape(n_images, channels, sh, sw, plane_h * plane_w)
    max_offset = taps[:, 3].max()
    for task in prange(n_images * groups * k_blocks * p_blocks):
        pb = task % p_blocks
        rest = task // p_blocks
        kb = rest % k_blocks
        rest //= k_blocks
        g = rest % groups
        n = rest // groups
        p0 = pb * rows_per_block
        rows = min(rows_per_block, p_size - p0)
        length = (rows - 1) * plane_w + q_size
        k0 = g * k_per_group + kb * K_BLOCK
        k_count = min(K_BLOCK, (g + 1) * k_per_group - k0)
        first_channel = g * (channels // groups)
        start = p0 * plane_w
        # A run a few values short of a whole step of the vectorized loop is rounded up to it
        # (the extra values are computed and dropped), since the loop's remainder runs in
        # narrower steps: on the 14x14 layers (222 values -> 224) res4a_branch2b and conv5_1
        # were 8.5 and 9 % faster at one thread. Rounding every run up (by 23 values on the
        # 7x7 stem) measured 4-5 % slower there. The no-copy path has no spare rows: the min.
        # At two threads (ab, 10 process pairs, AMD CI VM) the 14x14 gain did not show (+3.1 and
        # -1.9 %, unclear) and AlexNet's 11x11 stride-4 stem measured +9.0 % [+3.0, +15.3];
        # rounding at stride 1 only measured unclear there (+3.9 % [-5.7, +14.4]). Not settled.
        rounded = -(-length // VECTOR) * VECTOR
        if rounded - length <= VECTOR // 4:
            length = min(rounded, plane_h * plane_w - start - max_offset)
        acc = np.zeros((K_BLOCK, rows_per_block * plane_w + VECTOR // 4), dtype=np.float32)
        for t in range(0, taps.shape[0], TAPS):
            x0 = _run(flat, n, first_channel, taps[t], start, length)
            x1 = _run(flat, n, first_channel, taps[t + 1], start, length)
            x2 = _run(flat, n, first_channel, taps[t + 2], start, length)
            _add_taps(acc, w, k0, k_count, t, x0, x1, x2, length)
        for kk in range(k_count):
            for pp in range(rows):
                for q in range(q_size):
                    out[n, k0 + kk, p0 + pp, q] = acc[kk, pp * plane_w + q]


@njit(cache=True, fastmath={"contract"}, inline="always")
def _add_nine_taps(acc, flat, taps, w, k, t, length, first):
    """acc[:length] (= if ``first``, else +=) the products of taps t..t+8 of output channel k, in
    one pass: for the depthwise path, whose one channel per run leaves no other output channels to
    share each input load with. Three taps a pass spent most of a small image's time outside the
    arithmetic: on the CI machine (AMD EPYC, one thread) the products of 1024 channels of 7 x 7
    took 126 us in passes of three taps, 31 us in one of nine; 512 of 14 x 14, 88 -> 29 us."""
    x0 = flat[taps[t, 1], taps[t, 2], taps[t, 3]:taps[t, 3] + length]
    x1 = flat[taps[t + 1, 1], taps[t + 1, 2], taps[t + 1, 3]:taps[t + 1, 3] + length]
    x2 = flat[taps[t + 2, 1], taps[t + 2, 2], taps[t + 2, 3]:taps[t + 2, 3] + length]
    x3 = flat[taps[t + 3, 1], taps[t + 3, 2], taps[t + 3, 3]:taps[t + 3, 3] + length]
    x4 = flat[taps[t + 4, 1], taps[t + 4, 2], taps[t + 4, 3]:taps[t + 4, 3] + length]
    x5 = flat[taps[t + 5, 1], taps[t + 5, 2], taps[t + 5, 3]:taps[t + 5, 3] + length]
    x6 = flat[taps[t + 6, 1], taps[t + 6, 2], taps[t + 6, 3]:taps[t + 6, 3] + length]
    x7 = flat[taps[t + 7, 1], taps[t + 7, 2], taps[t + 7, 3]:taps[t + 7, 3] + length]
    x8 = flat[taps[t + 8, 1], taps[t + 8, 2], taps[t + 8, 3]:taps[t + 8, 3] + length]
    u0, u1, u2 = w[k, t], w[k, t + 1], w[k, t + 2]
    u3, u4, u5 = w[k, t + 3], w[k, t + 4], w[k, t + 5]
    u6, u7, u8 = w[k, t + 6], w[k, t + 7], w[k, t + 8]
    if first:
        for i in range(length):
            acc[i] = (u0 * x0[i] + u1 * x1[i] + u2 * x2[i] + u3 * x3[i] + u4 * x4[i]
                      + u5 * x5[i] + u6 * x6[i] + u7 * x7[i] + u8 * x8[i])
    else:
        for i in range(length):
            acc[i] = (acc[i] + u0 * x0[i] + u1 * x1[i] + u2 * x2[i] + u3 * x3[i] + u4 * x4[i]
                      + u5 * x5[i] + u6 * x6[i] + u7 * x7[i] + u8 * x8[i])


@njit(parallel=True, cache=True, fastmath={"contract"})
def _depthwise(x, w, taps, out, plane_shape, ph, pw, threads):
    """Direct convolution of a problem with one input channel per group (depthwise, with any
    channel multiplier ``K / C``): one job per (image, input channel), cut into one run of jobs
    per thread (``threads``).

    Each job copies its channel into the thread's zero-bordered planes (``load_channel``: split by
    stride phase, as ``load_streams`` does for the whole input) and computes each of its output
    channels as one flat run over all output rows, nine taps a pass (:func:`_add_nine_taps`; a 3x3
    filter in one) and the rest three at a time (:func:`_add_taps_one`), then copies the rows
    out. The blocked kernel above does one task per (image, group, block of eight output
    channels, block of rows): for a group of one channel each task paid for an eight-channel
    accumulator, and the input went through a copy pass of its own first.
    """
    n_images, channels = x.shape[0], x.shape[1]
    sh, sw, plane_h, plane_w = plane_shape
    k_total, p_size, q_size = out.shape[1], out.shape[2], out.shape[3]
    multiplier = k_total // channels
    length = (p_size - 1) * plane_w + q_size
    jobs = n_images * channels
    chunks = min(jobs, threads)
    for chunk in prange(chunks):
        planes = np.zeros((sh, sw, plane_h, plane_w), dtype=np.float32)
        flat = planes.reshape(sh, sw, plane_h * plane_w)
        acc = np.empty(length, dtype=np.float32)
        pairs = pair_scratch(x, sw)
        start, stop = chunk_bounds(chunk, chunks, jobs)
        for job in range(start, stop):
            n = job // channels
            c = job % channels
            load_channel(x[n, c], planes, ph, pw, pairs)
            for j in range(multiplier):
                k = c * multiplier + j
                t = 0
                while t + DEPTHWISE_TAPS <= taps.shape[0]:
                    _add_nine_taps(acc, flat, taps, w, k, t, length, t == 0)
                    t += DEPTHWISE_TAPS
                if t == 0:
                    acc[:] = 0.0
                for t in range(t, taps.shape[0], TAPS):
                    x0 = flat[taps[t, 1], taps[t, 2], taps[t, 3]:taps[t, 3] + length]
                    x1 = flat[taps[t + 1, 1], taps[t + 1, 2], taps[t + 1, 3]:taps[t + 1, 3] + length]
                    x2 = flat[taps[t + 2, 1], taps[t + 2, 2], taps[t + 2, 3]:taps[t + 2, 3] + length]
                    _add_taps_one(acc, w[k, t], w[k, t + 1], w[k, t + 2], x0, x1, x2, length)
                for p in range(p_size):
                    row = out[n, k, p]
                    src = acc[p * plane_w:p * plane_w + q_size]
                    for q in range(q_size):
                        row[q] = src[q]


# A depthwise 3x3 layer at stride 1 with one pixel of padding (MobileNet's, where the output has
# the input's size) skips the copies: see :func:`_depthwise_same`. Images of up to this many pixels
# go as whole flat channels under four masks, larger ones by rows under two (see there).
SAME_FLAT_PIXELS = 256
# Such a layer, or one at stride 2 (:func:`_depthwise_halving`), runs on one thread under this many
# times ``SERIAL_DEPTHWISE_BYTES`` of input and output: without the copies, one thread takes such a
# layer most of the way to the machine's copy rate.
# In one process (CI machine, medians of 200 calls), one thread against two: 256 channels of
# 28 x 28 (1.6 MB) 54 against 73 us; 128 of 56 x 56 (3.2 MB) 102 against 100; at batch 2, 256 of
# 28 x 28 102 against 113, 128 of 56 x 56 170 against 145, 32 of 112 x 112 164 against 179.
COPY_FREE_SERIAL_SCALE = 4


def is_same_3x3_depthwise(problem):
    """One input channel per group, a 3x3 filter, stride 1, no dilation, one pixel of padding,
    and an image of at least 3 x 3: the problems :func:`_depthwise_same` computes."""
    return (problem.c == problem.groups and (problem.r, problem.s) == (3, 3)
            and problem.stride == (1, 1) and problem.dilation == (1, 1)
            and problem.padding == (1, 1) and problem.h >= 3 and problem.w >= 3)


def is_halving_3x3_depthwise(problem):
    """One input channel per group, a 3x3 filter, stride 2, no dilation, one pixel of padding, and
    an even height and width: the problems :func:`_depthwise_halving` computes (MobileNet's
    stride-2 depthwise layers), whose output is half the input's size each way."""
    return (problem.c == problem.groups and (problem.r, problem.s) == (3, 3)
            and problem.stride == (2, 2) and problem.dilation == (1, 1)
            and problem.padding == (1, 1) and problem.h % 2 == 0 and problem.w % 2 == 0)


@njit(cache=True, fastmath={"contract"}, inline="always")
def _corner(xc, w, k, p, q, r0, r1, s0, s1):
    """Output (p, q) of channel k from filter rows r0..r1-1 and columns s0..s1-1 alone (those
    that fall inside the image there)."""
    total = np.float32(0.0)
    for r in range(r0, r1):
        for s in range(s0, s1):
            total += w[k, 3 * r + s] * xc[p + r - 1, q + s - 1]
    return total


@njit(cache=True, fastmath={"contract"}, inline="always")
def _same_inner_rows(of, xf, w, k, lo, hi, width, keep_left, keep_right):
    """of[lo:hi] of a channel, flat positions inside rows 1 to H-2: all nine taps, the left
    column's three weighed by ``keep_left`` (0 at column 0, whose left neighbour in the flat
    channel is the previous row's last value) and the right column's by ``keep_right``."""
    length = hi - lo
    above, below = lo - width, lo + width
    a0 = xf[above - 1:above - 1 + length]
    a1 = xf[above:above + length]
    a2 = xf[above + 1:above + 1 + length]
    b0, b1, b2 = xf[lo - 1:hi - 1], xf[lo:hi], xf[lo + 1:hi + 1]
    c0 = xf[below - 1:below - 1 + length]
    c1 = xf[below:below + length]
    c2 = xf[below + 1:below + 1 + length]
    left, right, out = keep_left[lo:hi], keep_right[lo:hi], of[lo:hi]
    u0, u1, u2 = w[k, 0], w[k, 1], w[k, 2]
    u3, u4, u5 = w[k, 3], w[k, 4], w[k, 5]
    u6, u7, u8 = w[k, 6], w[k, 7], w[k, 8]
    for i in range(length):
        out[i] = ((u1 * a1[i] + u4 * b1[i] + u7 * c1[i])
                  + left[i] * (u0 * a0[i] + u3 * b0[i] + u6 * c0[i])
                  + right[i] * (u2 * a2[i] + u5 * b2[i] + u8 * c2[i]))


@njit(cache=True, fastmath={"contract"}, inline="always")
def _same_edge_row(of, xf, w, k, lo, hi, width, top):
    """of[lo:hi] of a channel, inner columns of its first row (``top``: filter rows 1 and 2 see
    the image) or its last (filter rows 0 and 1)."""
    length = hi - lo
    first = lo if top else lo - width
    t = 3 if top else 0
    a0 = xf[first - 1:first - 1 + length]
    a1 = xf[first:first + length]
    a2 = xf[first + 1:first + 1 + length]
    first += width
    b0 = xf[first - 1:first - 1 + length]
    b1 = xf[first:first + length]
    b2 = xf[first + 1:first + 1 + length]
    u0, u1, u2 = w[k, t], w[k, t + 1], w[k, t + 2]
    u3, u4, u5 = w[k, t + 3], w[k, t + 4], w[k, t + 5]
    out = of[lo:hi]
    for i in range(length):
        out[i] = u0 * a0[i] + u1 * a1[i] + u2 * a2[i] + u3 * b0[i] + u4 * b1[i] + u5 * b2[i]


@njit(cache=True, fastmath={"contract"}, inline="always")
def _same_by_rows(of, xc, w, k, keep_left, keep_right):
    """Output channel k (flat ``of``) from input channel ``xc`` (H x W) alone: the edge rows' and
    the inner rows' runs, then the six positions whose runs would reach past the channel."""
    height, width = xc.shape
    size = height * width
    xf = xc.reshape(size)
    _same_edge_row(of, xf, w, k, 1, width - 1, width, True)
    _same_inner_rows(of, xf, w, k, width + 1, size - width - 1, width, keep_left, keep_right)
    _same_edge_row(of, xf, w, k, size - width + 1, size - 1, width, False)
    of[0] = _corner(xc, w, k, 0, 0, 1, 3, 1, 3)
    of[width - 1] = _corner(xc, w, k, 0, width - 1, 1, 3, 0, 2)
    of[width] = _corner(xc, w, k, 1, 0, 0, 3, 1, 3)
    of[size - width - 1] = _corner(xc, w, k, height - 2, width - 1, 0, 3, 0, 2)
    of[size - width] = _corner(xc, w, k, height - 1, 0, 0, 2, 1, 3)
    of[size - 1] = _corner(xc, w, k, height - 1, width - 1, 0, 2, 0, 2)


@njit(cache=True, fastmath={"contract"}, inline="always")
def _same_whole(of, xall, base, w, k, width, size, top, bottom, left, right):
    """Output channel k (flat ``of``) in one run over the channel at ``xall[base:base + size]``,
    reading up to W + 1 values either side of it (the neighbouring channels' edges, weighed by 0):
    filter row 0 weighed by ``top`` (0 in the first row), row 2 by ``bottom`` (0 in the last),
    column 0 by ``left`` and column 2 by ``right``."""
    first = base - width - 1
    a0 = xall[first:first + size]
    a1 = xall[first + 1:first + 1 + size]
    a2 = xall[first + 2:first + 2 + size]
    first = base - 1
    b0 = xall[first:first + size]
    b1 = xall[first + 1:first + 1 + size]
    b2 = xall[first + 2:first + 2 + size]
    first = base + width - 1
    c0 = xall[first:first + size]
    c1 = xall[first + 1:first + 1 + size]
    c2 = xall[first + 2:first + 2 + size]
    u0, u1, u2 = w[k, 0], w[k, 1], w[k, 2]
    u3, u4, u5 = w[k, 3], w[k, 4], w[k, 5]
    u6, u7, u8 = w[k, 6], w[k, 7], w[k, 8]
    for i in range(size):
        m0 = left[i]
        m2 = right[i]
        above = top[i] * (m0 * u0 * a0[i] + u1 * a1[i] + m2 * u2 * a2[i])
        below = bottom[i] * (m0 * u6 * c0[i] + u7 * c1[i] + m2 * u8 * c2[i])
        of[i] = above + (m0 * u3 * b0[i] + u4 * b1[i] + m2 * u5 * b2[i]) + below


@njit(parallel=True, cache=True, fastmath={"contract"})
def _depthwise_same(x, w, out, masks, whole, threads):
    """Depthwise 3x3 convolution at stride 1 with one pixel of padding, straight from the input
    into the output: one job per (image, input channel), one run of jobs per thread.

    Where the flat channel is read at an offset of -W-1 .. W+1, every output position gets its
    nine taps from nine shifted runs; the taps that would fall in the padding read a neighbouring
    row's (or channel's) value instead, and a mask of zeros and ones drops them. With ``whole``,
    each output channel is one run of H * W under four masks (one per filter edge row and
    column); else (a large image, where the two row masks cost more than the edge rows' runs of
    their own) its inner rows are one run under two, its first and last rows runs of six taps,
    and the six positions where a run would reach past the channel one at a time. The first and
    last channel of the whole input, which have no neighbour to read at one end, always go by rows.

    The general depthwise path (:func:`_depthwise`) copies each channel into zero-bordered planes
    and its result out of a wider run; those two copies took two thirds of its time on MobileNet's
    14 x 14 layers (512 channels at one thread, CI machine: 25 us in, 20 out, 23 for the taps).
    ``convbench ab`` against it on MobileNet v1's five stride-1 depthwise layers, batch 1: 27-43 %
    faster (dw7-11, 512 of 14 x 14: 0.071 -> 0.040 ms; dw1, 32 of 112 x 112: 0.115 -> 0.081;
    ``results/amd-epyc-2c/ab/20261124T194759Z.json``). Whole channels under four masks against
    rows under two, in one process at one thread: 38 against 47 us on 512 channels of 14 x 14 and
    39 against 60 on 1024 of 7 x 7, but 66 against 61 on 256 of 28 x 28 and 133 against 103 on
    128 of 56 x 56, hence ``SAME_FLAT_PIXELS``. Multiplying a value by 0 drops it only if it is
    finite, as the zero taps of the blocked kernel already assume.
    """
    n_images, channels, height, width = x.shape
    multiplier = out.shape[1] // channels
    size = height * width
    jobs = n_images * channels
    xall = x.reshape(jobs * size)
    chunks = min(jobs, threads)
    for chunk in prange(chunks):
        # views made once per thread, not per channel (see _depthwise_halving)
        top, bottom, left, right = masks[0], masks[1], masks[2], masks[3]
        start, stop = chunk_bounds(chunk, chunks, jobs)
        for job in range(start, stop):
            n = job // channels
            c = job % channels
            for j in range(multiplier):
                k = c * multiplier + j
                of = out[n, k].reshape(size)
                if whole and 0 < job < jobs - 1:
                    _same_whole(of, xall, job * size, w, k, width, size, top, bottom, left, right)
                else:
                    _same_by_rows(of, x[n, c], w, k, left, right)


@njit(parallel=True, cache=True, fastmath={"contract"})
def _depthwise_halving(x, w, out, top, left, threads):
    """Depthwise 3x3 convolution at stride 2 with one pixel of padding, of an even-sized input:
    one job per (image, input channel), one run of jobs per thread.

    Each job splits its channel into its four phase planes of P x Q, the output's size, with no
    border: input rows 2p and 2p + 1 and columns 2q and 2q + 1 (``ee``, ``eo`` for even columns
    of even and odd rows, ``oe``, ``oo`` for odd columns). Output (p, q) reads input rows 2p - 1,
    2p, 2p + 1 and columns 2q - 1, 2q, 2q + 1, that is the planes at (p, q) and one row up (odd
    rows) or one column left (odd columns); on the flat planes, laid end to end, these are runs
    shifted by -Q - 1, -Q and -1, so each output channel is one run of P * Q under two masks:
    ``top`` (0 in the first row, whose filter row 0 falls in the padding) and ``left`` (0 in the
    first column, for filter column 0). A run shifted back starts in the plane before it (``ee``
    comes first and is never shifted), so every read stays in the buffer, and the values it
    takes there are masked.

    The views of the planes are made once per thread: numba counts references to every view it
    makes, and made once per channel they took more time than the arithmetic (512 channels of
    14 x 14 at one thread, CI machine: 49 us for the loop with nothing else in it, 4 us after).
    ``convbench ab`` against the general path (zero-bordered planes, a wider run copied out) on
    MobileNet v1's four stride-2 depthwise layers, batch 1: dw2 27 % faster (0.140 -> 0.102 ms),
    dw4, dw6 and dw12 44-49 % (dw12, 512 channels of 14 x 14: 0.092 -> 0.047); the stride-1
    layers' mask views made once per thread too: dw7-11 15 % faster, the others unchanged
    (``results/amd-epyc-2c/ab/20261124T195925Z.json``).
    """
    n_images, channels = x.shape[0], x.shape[1]
    multiplier = out.shape[1] // channels
    rows, cols = out.shape[2], out.shape[3]
    size = rows * cols
    jobs = n_images * channels
    chunks = min(jobs, threads)
    for chunk in prange(chunks):
        planes = np.empty((4, rows, cols), dtype=np.float32)
        flat = planes.reshape(4 * size)
        ee, oe, eo, oo = flat[:size], flat[size:2 * size], flat[2 * size:3 * size], flat[3 * size:]
        oe_left = flat[size - 1:2 * size - 1]
        eo_up = flat[2 * size - cols:3 * size - cols]
        oo_up = flat[3 * size - cols:4 * size - cols]
        oo_up_left = flat[3 * size - cols - 1:4 * size - cols - 1]
        oo_left = flat[3 * size - 1:4 * size - 1]
        start, stop = chunk_bounds(chunk, chunks, jobs)
        for job in range(start, stop):
            n = job // channels
            c = job % channels
            xc = x[n, c]
            for p in range(rows):
                for a in range(2):
                    row = xc[2 * p + a]
                    even = planes[2 * a, p]
                    odd = planes[2 * a + 1, p]
                    for t in range(cols):
                        even[t] = row[2 * t]
                        odd[t] = row[2 * t + 1]
            for j in range(multiplier):
                k = c * multiplier + j
                of = out[n, k].reshape(size)
                u0, u1, u2 = w[k, 0], w[k, 1], w[k, 2]
                u3, u4, u5 = w[k, 3], w[k, 4], w[k, 5]
                u6, u7, u8 = w[k, 6], w[k, 7], w[k, 8]
                for i in range(size):
                    m = left[i]
                    of[i] = (top[i] * (m * u0 * oo_up_left[i] + u1 * eo_up[i] + u2 * oo_up[i])
                             + (m * u3 * oe_left[i] + u4 * ee[i] + u5 * oe[i])
                             + (m * u6 * oo_left[i] + u7 * eo[i] + u8 * oo[i]))


class DirectCPU:
    """Sliding-window convolution; supports every problem."""

    def supports(self, problem):
        return None

    @staticmethod
    def _copies_input(problem):
        return problem.stride != (1, 1) or problem.padding != (0, 0)

    @staticmethod
    def _plane_shape(problem):
        """The input planes, with spare zero rows for a last run rounded up (see _direct)."""
        shape = stream_shape(problem, *problem.stride)
        return stream_shape(problem, *problem.stride, rows=shape[4] - (-(VECTOR // 4) // shape[5]))

    @staticmethod
    def _threads(problem):
        """numba threads on ``problem`` (:func:`numba_threads`): the copy-free depthwise paths
        stay on one thread up to ``COPY_FREE_SERIAL_SCALE`` times the depthwise bound."""
        copy_free = is_same_3x3_depthwise(problem) or is_halving_3x3_depthwise(problem)
        return numba_threads(problem, bytes_scale=COPY_FREE_SERIAL_SCALE if copy_free else 1)

    def workspace_bytes(self, problem):
        if is_same_3x3_depthwise(problem):   # its four masks, nothing per thread
            return 4 * 4 * problem.h * problem.w
        if is_halving_3x3_depthwise(problem):   # two masks, a channel's four planes per thread
            threads = min(self._threads(problem), problem.n * problem.c)
            return 4 * (2 * problem.p * problem.q + threads * problem.h * problem.w)
        if problem.c == problem.groups:   # depthwise: one channel's planes and run per thread
            _, _, sh, sw, plane_h, plane_w = stream_shape(problem, *problem.stride)
            per_thread = sh * sw * plane_h * plane_w + (problem.p - 1) * plane_w + problem.q
            threads = min(self._threads(problem), problem.n * problem.c)
            return 4 * per_thread * threads + pair_scratch_bytes(problem, sw, threads)
        if not self._copies_input(problem):
            return 0
        planes = 4 * int(np.prod(self._plane_shape(problem)))
        return planes + streams_scratch_bytes(problem, planes)

    def prepare(self, problem, w):
        run = self._prepare(problem, w)
        return one_thread(run) if self._threads(problem) == 1 else run

    def _prepare(self, problem, w):
        if is_same_3x3_depthwise(problem):
            return self._prepare_same(problem, w)
        if is_halving_3x3_depthwise(problem):
            return self._prepare_halving(problem, w)
        shape = stream_shape(problem, *problem.stride)
        taps = tap_table(problem, shape[-1])
        weights = np.zeros((problem.k, len(taps)), dtype=np.float32)
        weights[:, :problem.c // problem.groups * problem.r * problem.s] = w.reshape(problem.k, -1)
        groups, out_shape = problem.groups, problem.output_shape
        rows_per_block = max(1, min(problem.p, FLAT_TARGET // shape[-1]))
        (ph, pw) = problem.padding

        if problem.c == problem.groups:   # one input channel per group: depthwise
            plane_shape = shape[2:]

            def run(x):
                out = np.empty(out_shape, dtype=np.float32)
                _depthwise(x, weights, taps, out, plane_shape, ph, pw, get_num_threads())
                return out

            run.impl = "depthwise"
            return run

        if self._copies_input(problem):
            planes = np.zeros(self._plane_shape(problem), dtype=np.float32)
            load = streams_loader(planes)

            def run(x):
                load(x, planes, ph, pw)
                out = np.empty(out_shape, dtype=np.float32)
                _direct(planes, weights, taps, out, groups, rows_per_block)
                return out
        else:  # unit stride, no padding: the input already is its one plane
            def run(x):
                out = np.empty(out_shape, dtype=np.float32)
                _direct(x.reshape(shape), weights, taps, out, groups, rows_per_block)
                return out

        return run

    @staticmethod
    def _prepare_same(problem, w):
        weights = np.ascontiguousarray(w.reshape(problem.k, 9), dtype=np.float32)
        position = np.arange(problem.h * problem.w)
        row, col = position // problem.w, position % problem.w
        masks = np.stack([row != 0, row != problem.h - 1,
                          col != 0, col != problem.w - 1]).astype(np.float32)
        whole = problem.h * problem.w <= SAME_FLAT_PIXELS
        out_shape = problem.output_shape

        def run(x):
            out = np.empty(out_shape, dtype=np.float32)
            _depthwise_same(x, weights, out, masks, whole, get_num_threads())
            return out

        run.impl = "depthwise 3x3: " + ("whole channels" if whole else "by rows")
        return run

    @staticmethod
    def _prepare_halving(problem, w):
        weights = np.ascontiguousarray(w.reshape(problem.k, 9), dtype=np.float32)
        position = np.arange(problem.p * problem.q)
        top = (position // problem.q != 0).astype(np.float32)
        left = (position % problem.q != 0).astype(np.float32)
        out_shape = problem.output_shape

        def run(x):
            out = np.empty(out_shape, dtype=np.float32)
            _depthwise_halving(x, weights, out, top, left, get_num_threads())
            return out

        run.impl = "depthwise 3x3, stride 2: phase planes"
        return run


direct = DirectCPU()
