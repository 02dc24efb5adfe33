"""Winograd minimal filtering F(m x m, r x r) on the CPU (Lavin & Gray, 2015): F(2x2, 3x3),
F(4x4, 3x3), F(2x2, 5x5) and F(4x4, 5x5).

Notes
-----
The output is cut into m x m tiles; each needs an alpha x alpha input tile ``d``, alpha = m + r - 1.
With the transform matrices below, one output tile of one channel pair is
``A^T [ (G g G^T) * (B^T d B) ] A`` where ``*`` is element-wise. Summed over input channels, the
element-wise products become, for each of the ``alpha^2`` positions, one matrix product
``M = U (K x C) @ V (C x tiles)``:

* filter transform ``U = G g G^T`` once in ``prepare`` (float64, then rounded to float32);
* input transform ``V = B^T d B``;
* ``alpha^2`` SGEMMs through BLAS, each run by a one-thread BLAS once a call's products come to
  20 MFLOP (:mod:`kernels.cpu._common`);
* output transform ``Y = A^T M A``; the last tile row and column are cut to the output size, so any
  H and W work.

``prepare`` lays the problem out one of four ways (:meth:`WinogradCPU.layout`):

* **channel-major** (``V`` is C x tiles): the transforms are numba parallel loops over (image,
  channel), vectorized along all of a channel's tiles (:func:`_input_transform`), and the GEMMs
  are shared out among the cores by position. For images of 16 tiles per input channel or more,
  and layers with fewer than 16 channels per group (depthwise among them).
* **channel-major bands**: the same, but by bands of tile rows, each thread taking a run of bands
  through all three stages in a V and M of its own (:func:`_input_band`, :func:`_output_band`),
  where an image's V and M would otherwise stream through memory between the stages (at least
  two bands of :data:`CHANNEL_BAND_BYTES`): VGG-16's first four layers, MobileNet v1's largest
  depthwise ones.
* **tile-major** (``V`` is tiles x C, ``M = V @ U^T``): the transforms run along the channels,
  which suits small images with many channels. Each is one generated loop over a tile row's
  tiles and channels (:mod:`kernels.cpu._winograd_rows`, written by
  ``tools/gen_winograd_rows.py``; :func:`_input_rows`, :func:`_output_rows`) that keeps a tile's
  values of one channel in local variables, the coefficients written out, and that LLVM
  vectorizes along the channels. They replaced passes through memory, one per coefficient, with
  the same arithmetic in the same order: ``convbench ab`` on the default set (CI machine, two
  threads, outputs identical) called 10 of its 17 Winograd cases faster, by 7-23 % (res2a_branch2b
  at F(4x4) 0.49 -> 0.37 ms, AlexNet conv1 at F(4x4,5x5) 0.79 -> 0.61), and none slower
  (``results/amd-epyc-2c/ab/20261125T032847Z.json``). Either each
  thread takes a run of tile rows through all three stages (**tile rows**: one hand-over between
  threads per call, where waking sleeping threads costs 40-60 us on the CI machine), or, when the
  transformed filters are too large for every thread to read them all, the stages run one after
  another, each shared out (**tile-major stages**). A grouped problem takes tile rows, with one
  product per group, or else channel-major.

A small problem (see :func:`kernels.cpu._common.numba_threads`) runs its numba loops on one thread,
and a tile-major one takes tile rows as one share: LeNet-5's c3 by F(2x2,5x5) 0.11 -> 0.024 ms (``convbench ab``,
CI machine, ``results/amd-epyc-2c/ab/20261124T150732Z.json``).

F(2x2, 3x3) does 16 multiplies per 4 outputs where direct does 36; F(4x4, 3x3) 36 per 16 where direct
does 144 -- fewer operations, but its transforms hold larger constants (up to 8 and 1/24), so the
float32 rounding error grows: measured rel. L2 errors are in the registry next to the tolerances.
For 5x5 filters, F(2x2, 5x5) does 36 multiplies per 4 outputs (direct: 100) and F(4x4, 5x5) 64 per
16 (direct: 400), with F(4x4, 3x3)'s and F(6x6, 3x3)'s input transforms.

A strided layer runs as a stride-1 one over its stride phases (space to depth,
:func:`kernels.common.winograd_phase_problem`): the ``sh * sw`` phases of the padded input become
channels, split into zero-bordered planes by one copy per call, and each phase's taps,
ceil(R/sh) x ceil(S/sw), become a filter zero-padded to r x r. It is offered where that filter fits r x r
and the multiplies per output and input channel, ``alpha^2 / m^2 * sh * sw``, are fewer than
direct's R*S: 5x5 filters at stride 2 (F(4x4,3x3): 9 against 25), AlexNet's 11x11 at stride 4 (36
against 121), 7x7 at stride 2 by the 5x5 kernels. Zero taps cost what real ones do, so it pays
only where the filter is large for its stride.

Transform matrices: see :mod:`kernels.winograd_transforms`.
Needs an r x r filter at stride 1, or a strided one as above, and no dilation; any padding and any
H, W.
"""

import dataclasses
from functools import partial

import numpy as np
from numba import get_num_threads, njit, prange

from ..common import (pipeline, winograd_filter_transform, winograd_phase_problem,
                      winograd_phase_weights, winograd_tiles, winograd_unsupported)
from ..winograd_transforms import transforms
from ._winograd_rows import (CHUNK, IN_CHUNK, ROW, input_f2x2_3x3, input_f2x2_5x5,
                             input_f4x4_3x3, input_f4x4_5x5, output_f2x2_3x3, output_f2x2_5x5,
                             output_f4x4_3x3, output_f4x4_5x5)
from ._common import (chunk_bounds, load_channel, matmul_for, numba_threads, one_thread,
                      pair_scratch, pair_scratch_bytes, run_shares, share_count, stream_shape,
                      streams_loader, streams_scratch_bytes)

@njit(cache=True, inline="always")
def _halo(alpha, m):
    """Input rows (and columns) a tile reads past its own m, in units of m: ceil((r - 1) / m)."""
    return (alpha - 1) // m


@njit(cache=True, fastmath=False, inline="always")
def _scaled(dst, coef, src, assign):
    """dst = coef * src when ``assign``, else dst += coef * src (one pass, no zero fill).

    The loop around it (first non-zero coefficient assigns, the rest accumulate, zero fill only
    when all are zero) is written out at each of its sites on purpose, four per layout: for the
    channel-major transforms, a shared helper that took the sources as one stacked view (and ran
    the input transform's channel rows inside the coefficient loop) gave bit-identical outputs
    but measured 9-38 % slower on all ten 3x3 cases of the default set (`convbench ab --threads
    1`, AMD CI machine). The tile-major transforms followed the same pattern until they became
    generated loops (see the module notes): one helper taking each site's sources as a 2-D view
    had made 8 of their 10 cases 10-97 % slower (``results/amd-epyc-2c/ab/20261124T080510Z.json``).
    """
    if assign:
        for j in range(dst.size):
            dst[j] = coef * src[j]
    else:
        for j in range(dst.size):
            dst[j] += coef * src[j]


@njit(parallel=True, cache=True, fastmath=False)
def _input_transform(x, bt, v, m, tiles_h, row_len, ph, pw, threads):
    """v[a*alpha + b, c, n*tiles_h*L + i*L + j] = (B^T d B)[a, b] for input tile (i, j).

    ``L = tiles_w + halo`` (:func:`_halo`): each tile row has ``halo`` padding columns in ``v``,
    computed from zeros or neighbours and never used, so one (image, channel) is a single
    contiguous run and every loop is long and contiguous. Per (image, channel) the input is first
    copied into a zero-bordered scratch
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
    halo = _halo(alpha, m)
    run = tiles_h * row_len
    jobs = n_images * channels
    chunks = min(jobs, threads)
    for chunk in prange(chunks):
        d = np.zeros((m, m, tiles_h + halo, row_len), dtype=np.float32)
        phases = d.reshape(m, m, (tiles_h + halo) * row_len)
        streams = np.empty((alpha, m, tiles_h + 1, row_len), dtype=np.float32)
        # one spare tile row: the last row's padding columns read up to ``halo`` elements past it
        streams[:, :, tiles_h, :] = 0.0
        flat = streams.reshape(alpha, m, (tiles_h + 1) * row_len)
        pairs = pair_scratch(x, m)     # F(2x2) splits columns in pairs
        start, stop = chunk_bounds(chunk, chunks, jobs)
        for job in range(start, stop):
            c = job % channels
            n = job // channels
            _channel_input(x[n, c], bt, v, c, n * run, m, run, row_len, ph, pw, d, phases, flat,
                           pairs)


@njit(cache=True, fastmath=False, inline="always")
def _channel_input(xc, bt, v, c, first, m, run, row_len, ph, pw, d, phases, flat, pairs):
    """One channel of :func:`_input_transform`: its input rows ``xc``, padded by ``ph`` rows above
    and ``pw`` columns each side, into ``v[:, c, first:first + run]``, through the scratch ``d``
    (split by phase; ``phases`` is it flattened per phase) and ``flat`` (B^T d), whose positions
    past ``run`` are not read.

    The scratch comes reshaped, and :func:`_channel_output`'s exactly sized, because small
    channels feel every view made per channel: with the reshapes here and the output scratch
    sliced to ``run``, the whole-image path ran MobileNet v1's depthwise layers at 14 x 14 and 7
    x 7 3.8-6.0 % slower than before it was split into these helpers (``convbench ab``, CI
    machine, ``results/amd-epyc-2c/ab/20261124T181232Z.json``); as it is, 0.9-4.3 %, none called
    slower (``...181646Z.json``)."""
    alpha = bt.shape[0]
    load_channel(xc, d, ph, pw, pairs)
    # input row i*m + u of every tile row i: phase u % m, rows from u // m on, one run
    for a in range(alpha):
        assign = True
        for u in range(alpha):
            coef = bt[a, u]
            if coef != 0.0:
                top = (u // m) * row_len
                for r in range(m):
                    _scaled(flat[a, r, :run], coef, phases[u % m, r, top:top + run], assign)
                assign = False
        if assign:
            flat[a, :, :run] = 0.0
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
    n_images, k_total = out.shape[0], out.shape[1]
    m, alpha = at.shape
    run = tiles_h * row_len
    for job in prange(n_images * k_total):
        k = job % k_total
        n = job // k_total
        half = np.empty((alpha, m, run), dtype=np.float32)   # M A
        tile = np.empty((m, m, run), dtype=np.float32)       # A^T M A
        _channel_output(mm, at, out, n, k, n * run, run, 0, tiles_h, row_len, half, tile)


@njit(cache=True, fastmath=False, inline="always")
def _channel_output(mm, at, out, n, k, first, run, i0, tiles_h, row_len, half, tile):
    """One output channel of :func:`_output_transform`: ``mm[:, k, first:first + run]``, tile
    rows ``i0`` to ``i0 + tiles_h`` of image ``n``, into ``out[n, k]``; ``half`` and ``tile`` are
    scratch of exactly ``run`` columns (see :func:`_channel_input`)."""
    p_size, q_size = out.shape[2], out.shape[3]
    m, alpha = at.shape
    for a in range(alpha):
        for xo in range(m):
            assign = True
            for b in range(alpha):
                coef = at[xo, b]
                if coef != 0.0:
                    _scaled(half[a, xo], coef, mm[a * alpha + b, k, first:first + run],
                            assign)
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
            p = (i0 + i) * m + yo
            if p >= p_size:
                break
            _interleave(out[n, k, p], tile[yo], i * row_len, full, m)
            for xo in range(q_size - full * m):   # the last tile, cut
                out[n, k, p, full * m + xo] = tile[yo, xo, i * row_len + full]


@njit(cache=True, nogil=True, fastmath=False)
def _input_band(x, bt, v, m, n, i0, rows, row_len, ph, pw, d, streams, pairs):
    """Channel-major input transform of tile rows ``i0`` to ``i0 + rows`` of image ``n``, every
    channel, into ``v[:, c, :rows*L]`` (the band's tiles as :func:`_input_transform` lays out an
    image's). Each channel's rows are read straight from ``x``: the band's first input row, with
    the zero rows above it that the padding adds to the top band only. ``d`` is zeroed first, as
    bands differ in which of its positions they fill."""
    height = x.shape[2]
    alpha = bt.shape[0]
    top = i0 * m - ph                            # the band's first padded row, in input rows
    first = max(0, top)
    stop = min(height, top + (rows - 1) * m + alpha)
    d[:] = 0.0
    streams[:, :, rows, :] = 0.0                 # the spare row after the band's last
    phases = d.reshape(m, m, d.shape[2] * row_len)
    flat = streams.reshape(alpha, m, streams.shape[2] * row_len)
    for c in range(x.shape[1]):
        _channel_input(x[n, c, first:stop], bt, v, c, 0, m, rows * row_len, row_len,
                       first - top, pw, d, phases, flat, pairs)


@njit(cache=True, nogil=True, fastmath=False)
def _output_band(mm, at, out, n, i0, rows, row_len, half, tile):
    """The output transform of a band :func:`_input_band` laid out, every output channel, into
    its rows of ``out[n]``."""
    for k in range(out.shape[1]):
        _channel_output(mm, at, out, n, k, 0, rows * row_len, i0, rows, row_len, half, tile)


@njit(cache=True, inline="always")
def _row_input(m, alpha, band, top, v, length, channels, run, col, scratch):
    """The generated input transform (:mod:`kernels.cpu._winograd_rows`) for this m and alpha."""
    if alpha == 4:
        input_f2x2_3x3(band, top, v, length, channels, run, col, scratch)
    elif alpha == 6 and m == 4:
        input_f4x4_3x3(band, top, v, length, channels, run, col, scratch)
    elif alpha == 6:
        input_f2x2_5x5(band, top, v, length, channels, run, col, scratch)
    else:
        input_f4x4_5x5(band, top, v, length, channels, run, col, scratch)


@njit(cache=True, inline="always")
def _row_output(m, alpha, mm, half, rows, first, run):
    """The generated output transform (:mod:`kernels.cpu._winograd_rows`) for this m and alpha."""
    if alpha == 4:
        output_f2x2_3x3(mm, half, rows, first, run)
    elif alpha == 6 and m == 4:
        output_f4x4_3x3(mm, half, rows, first, run)
    elif alpha == 6:
        output_f2x2_5x5(mm, half, rows, first, run)
    else:
        output_f4x4_5x5(mm, half, rows, first, run)


@njit(cache=True)
def _output_blocks(tiles_w, k_total):
    """How :func:`_output_rows` cuts a tile row's tiles x channels into blocks of at most ``ROW``
    (tiles a block, channels a block): the whole row where it fits, else as many whole tiles as
    fit, else one tile and part of its channels."""
    return max(1, min(tiles_w, ROW // k_total)), min(k_total, ROW)


def _output_scratch_size(m, tiles_w, k_total):
    """Elements of :func:`_output_rows`'s ``rows``: m*m runs ``ROW`` apart, the last as long as a
    block."""
    per, width = _output_blocks(tiles_w, k_total)
    return (m * m - 1) * ROW + per * width


@njit(cache=True, nogil=True, fastmath=False)
def _input_rows(x, v, m, tiles_h, tiles_w, ph, pw, first, stop, t0, band, scratch):
    """Tile-major input transform of tile rows ``first`` to ``stop`` (row ``n*tiles_h + i``):
    ``v[a*alpha + b, t, c] = (B^T d B)[a, b]`` for tile ``t = t0 + (row - first)*tiles_w + j``,
    every channel at once.

    The input rows a tile row reads are copied, channels last and zero-bordered, into ``band``
    (alpha, m, L, C), padded row ``Y`` into slot ``Y % alpha`` (so a tile row copies only the m
    rows the one before it did not read), its columns split by phase: padded column ``X`` is
    ``band[slot, X % m, X // m]`` (``L = tiles_w + halo``, :func:`_row_scratch`). Input value (u,
    w) of tile ``j`` is then ``band[slot(u), w % m, j + w // m, c]``: for each (u, w), the row's
    tiles and channels are one contiguous run, and so are their outputs in ``v`` for each
    position. One generated loop (:mod:`kernels.cpu._winograd_rows`) walks those runs together, a
    tile's alpha x alpha values of one channel in local variables, a run of ``IN_CHUNK`` at a time
    through ``scratch``.
    """
    n_images, channels, height, width = x.shape
    alpha = band.shape[0]
    length = band.shape[2]
    band_flat = band.reshape(band.size)
    v_flat = v.reshape(v.shape[0], v.shape[1] * channels)
    for row in range(first, stop):
        n = row // tiles_h
        i = row % tiles_h
        # the first row of a run or of an image copies all alpha input rows, the others m
        fresh = 0 if row == first or i == 0 else alpha - m
        for u in range(fresh, alpha):
            y = i * m + u - ph
            slot = (i * m + u) % alpha
            if 0 <= y < height:
                for xx in range(pw):                               # the left border
                    band[slot, xx % m, xx // m] = 0.0
                for xx in range(pw + width, m * length):           # the right border
                    band[slot, xx % m, xx // m] = 0.0
                # channels innermost: strided loads and contiguous stores took 46 us for
                # res3a's band rows where the other order (contiguous loads) took 81 (F(2x2), one
                # thread, CI machine)
                for xx in range(width):
                    dst = band[slot, (pw + xx) % m, (pw + xx) // m]
                    for c in range(channels):
                        dst[c] = x[n, c, y, xx]
            else:
                band[slot] = 0.0
        _row_input(m, alpha, band_flat, (i * m) % alpha, v_flat, length, channels,
                   tiles_w * channels, (t0 + (row - first) * tiles_w) * channels, scratch)


@njit(cache=True, nogil=True, fastmath=False)
def _output_rows(mm, out, m, alpha, tiles_h, tiles_w, first, stop, t0, half, rows):
    """Tile-major output transform of tile rows ``first`` to ``stop``: ``A^T M A`` with ``M`` read
    as ``mm[a*alpha + b, t, k]`` (tiles numbered as in :func:`_input_rows`), every output channel at
    once, into ``out`` cut to size.

    A generated loop (:mod:`kernels.cpu._winograd_rows`) takes a tile row's tiles x channels
    ``CHUNK`` at a time (M A in ``half``) and leaves output (yo, xo) in run ``yo*m + xo`` of
    ``rows``, ``ROW`` apart; then each output row ``i*m + yo`` of each channel is gathered from
    them (:func:`_scatter_row`). A tile row of more than ``ROW`` tiles x channels goes by blocks
    (:func:`_output_blocks`).
    """
    n_images, k_total, p_size, q_size = out.shape
    mm_flat = mm.reshape(mm.shape[0], mm.shape[1] * k_total)
    per, width = _output_blocks(tiles_w, k_total)
    for row in range(first, stop):
        n = row // tiles_h
        i = row % tiles_h
        base = (t0 + (row - first) * tiles_w) * k_total
        for j0 in range(0, tiles_w, per):
            j1 = min(tiles_w, j0 + per)
            for k0 in range(0, k_total, width):
                k1 = min(k_total, k0 + width)
                count = (j1 - j0) * (k1 - k0)
                for e0 in range(0, count, CHUNK):
                    _row_output(m, alpha, mm_flat, half, rows[e0:],
                                base + j0 * k_total + k0 + e0, min(CHUNK, count - e0))
                for yo in range(m):
                    p = i * m + yo
                    if p >= p_size:
                        break
                    _scatter_row(rows, out, n, p, yo, m, j0, j1, k0, k1)


@njit(cache=True, inline="always")
def _scatter_row(rows, out, n, p, yo, m, j0, j1, k0, k1):
    """``out[n, k, p, j*m + xo]`` for channels k0 to k1 and tiles j0 to j1 from what
    :func:`_output_rows` left in ``rows`` (tile j's channel k of run ``yo*m + xo`` at ``(j -
    j0)*(k1 - k0) + k - k0``), the last tile cut to the output: contiguous stores.

    Indices go in as unsigned numbers, which spares numba's check for negative ones, and a whole
    row's loop starts at 0: res2a_branch2b's output rows at F(4x4) took 32 us so, 55 with signed
    indices, 58-132 with the loop starting elsewhere or over tiles and xo (one thread, CI
    machine)."""
    q_size = out.shape[3]
    span = k1 - k0
    first = yo * m * ROW - k0
    q0 = j0 * m
    count = min(j1 * m, q_size) - q0
    for k in range(k0, k1):
        dst = out[n, k, p]
        at = first + k
        if q0 == 0:
            if m == 4:
                for q in range(count):
                    dst[q] = rows[np.uint64(at + (q & 3) * ROW + (q >> 2) * span)]
            else:
                for q in range(count):
                    dst[q] = rows[np.uint64(at + (q & 1) * ROW + (q >> 1) * span)]
        else:
            for q in range(count):
                dst[np.uint64(q0 + q)] = rows[np.uint64(at + (q % m) * ROW + (q // m) * span)]


def _row_scratch(m, alpha, tiles_w, channels, k_total):
    """The scratch :func:`_input_rows` and :func:`_output_rows` need: band (a tile row's input
    columns split by phase, ``tiles_w + halo`` of each, channels last), the input transform's
    alpha*alpha runs of ``IN_CHUNK``, and the output transform's alpha*m runs of ``CHUNK`` (M A)
    and m*m runs ``ROW`` apart (:func:`_output_scratch_size`)."""
    length = tiles_w + _halo(alpha, m)
    return (np.empty((alpha, m, length, channels), dtype=np.float32),
            np.empty(alpha * alpha * IN_CHUNK, dtype=np.float32),
            np.empty(alpha * m * CHUNK, dtype=np.float32),
            np.empty(_output_scratch_size(m, tiles_w, k_total), dtype=np.float32))


@njit(parallel=True, cache=True, fastmath=False)
def _input_transform_tiles(x, v, m, alpha, tiles_h, tiles_w, ph, pw, threads):
    """:func:`_input_rows` over all tile rows, in one run of rows per thread."""
    channels = x.shape[1]
    rows = x.shape[0] * tiles_h
    chunks = min(rows, threads)
    for chunk in prange(chunks):
        start, stop = chunk_bounds(chunk, chunks, rows)
        length = tiles_w + _halo(alpha, m)
        band = np.empty((alpha, m, length, channels), dtype=np.float32)
        scratch = np.empty(alpha * alpha * IN_CHUNK, dtype=np.float32)
        _input_rows(x, v, m, tiles_h, tiles_w, ph, pw, start, stop, start * tiles_w, band,
                    scratch)


@njit(parallel=True, cache=True, fastmath=False)
def _output_transform_tiles(mm, out, m, alpha, tiles_h, tiles_w, threads):
    """:func:`_output_rows` over all tile rows, in one run of rows per thread."""
    rows = out.shape[0] * tiles_h
    chunks = min(rows, threads)
    for chunk in prange(chunks):
        start, stop = chunk_bounds(chunk, chunks, rows)
        half = np.empty(alpha * m * CHUNK, dtype=np.float32)
        per, width = _output_blocks(tiles_w, out.shape[1])
        scratch = np.empty((m * m - 1) * ROW + per * width, dtype=np.float32)
        _output_rows(mm, out, m, alpha, tiles_h, tiles_w, start, stop, start * tiles_w, half,
                     scratch)


# The three layouts (see the module notes) and when each is used; measured on the CI machine (AMD
# EPYC, 2 cores, L3 32 MB) over ResNet-50's and VGG-16's 3x3 layers at batch 1 and 8.
CHANNEL_MAJOR = "channel-major"
TILE_ROWS = "tile rows"
TILE_STAGES = "tile-major stages"
CHANNEL_BANDS = "channel-major bands"

# Channel-major when an image has at least this many tiles per input channel, since its transforms'
# loops run along the tiles. The bound was 4 while the tile-rows input transform ran along the
# channels tile by tile; once it ran over a tile row's tiles and channels at once, tile rows
# against channel-major (`convbench ab`, two threads, ``results/amd-epyc-2c/ab/20261124T140815Z.json``,
# outputs identical): at 6.1-12.3 tiles per channel faster on res2a_branch2b (F(2x2), -15.4 %),
# VGG-16 conv3_1 (F(2x2), -9.9 %), conv2_2 (F(4x4), -5.1 %), GoogLeNet conv2/3x3 (F(2x2), -15.8 %)
# and inception_3a/3b 5x5 (F(2x2,5x5), -20.6 and -36.6 %), unclear on res2a and conv2_1 at F(4x4);
# at 24.5 (conv2_2, F(2x2)) +4.3 % (unclear), at 49 VGG-16 conv1_2 at F(4x4) +42 %. With the bound
# at 16, the same 14 cases (``...141103Z.json``): 5 faster (-8.8 to -33.8 %), none slower.
CHANNEL_MAJOR_TILES_PER_CHANNEL = 16

# Tile-major, each thread does whole tile rows end to end (one hand-over per call, where the stages
# need three) while the transformed filters take at most this much: every thread reads all of them.
# Both prepared side by side in one process, medians at two threads: res4a at F(4x4) (9.4 MB of
# filters) 0.32 ms by tile rows, 0.62 by stages; at F(2x2) with 16.8 MB (512 x 512 channels) tile
# rows were slower: res5a 0.99 against 0.82 ms, VGG-16 conv5_1 1.85 against 1.51, conv4_2 5.2
# against 4.8, as each thread's small products re-read filters that no longer stay in the cache.
TILE_ROWS_FILTER_BYTES = 12 * 2 ** 20

# Tile-major only with at least this many input channels per group. A grouped layer takes tile rows
# with one product per group: the transforms run along all the channels either way, but each
# group's products are as narrow as its channels. Ungrouped, a layer of 3 channels (LeNet-5's c1 at
# F(4x4,5x5)) took 0.17 ms by tile rows and 0.14 channel-major, in one process. `convbench ab`, tile rows against channel-major, two
# threads (``results/amd-epyc-2c/ab/20261124T132043Z.json``): AlexNet conv4 and conv5 (two groups
# of 192 channels, 13 x 13) 52 and 57 % faster at F(4x4,3x3), 23 and 37 % at F(2x2,3x3); conv2
# (two groups of 48, 27 x 27) 35 % at F(4x4,5x5), 28 % at F(2x2,5x5). Ungrouped layers, whose
# path only gained the loop over one group: same or unclear on eight cases (``...132201Z.json``).
# Depthwise layers (one channel per group) stay channel-major.
TILE_MIN_CHANNELS = 16

# Channel-major by bands of tile rows, each thread taking a run of (image, band) pairs through all
# three stages, where an image makes two bands or more (a batch of smaller images stays whole: a
# band costs a few Python calls, and a band of several images is not written): a band holds as
# many tile rows as keep its transformed tiles (V, C of them a tile, and M, K) within this, so
# that they stay in the cache between the stages instead of streaming through memory. VGG-16
# conv1_2 at F(4x4) (29 MB each of V and M per image), in one process (CI machine: 1 MiB of L2 per
# core, 32 MiB of L3): at one thread 15.8 ms whole, 10.5-10.9 in bands of 2.1-4.2 MB of V, 12.0
# in bands of 1.1 MB, 13.0-13.7 in bands of 8.4 MB; at two threads 8.79 whole, 9.5 in bands of
# one tile row (small products), 6.54 in 2 MiB of V, 6.56 in 4 MiB, 8.00 in 8 MiB.
# The bound first counted V alone (2 MiB, b8fdf9c), which left a 3-channel layer's M (21 times
# its V) streaming: VGG-16 conv1_1 at F(2x2) took 5.04 ms in such bands (96 tile rows) and 3.04
# whole, 1.47 with this bound (8 rows). `convbench ab` against V alone, two threads, outputs
# identical: conv1_1 62 % faster at F(2x2) and 41 % at F(4x4), DeepBench's train_17 and
# server_21 (3 channels, 224 x 224, batch 8 and 2) 30-55 %, the rest of VGG-16's conv1-conv2 the
# same or unclear, MobileNet's dw1, dw3 and dw5 the same (``results/amd-epyc-2c/ab/20261124T183525Z.json``,
# ``...183740Z.json``); train_18 (conv2_1's shape at batch 8) 7.4 % slower at F(2x2) in bands of
# 5 rows instead of 8 (``...183638Z.json``; in one process 29.6 ms at this bound, 27.4 at 6 MiB,
# 26.8 at 8). A bound of 6 MiB with the bands evened out, which let images of a band and a bit
# take two, was no better: conv2_2 6.4 % and MobileNet's dw1 and dw3 at F(2x2) 12-15 % slower,
# three bands shared by two threads (``...183936Z.json`` to ``...184151Z.json``).
CHANNEL_BAND_BYTES = 4 * 2 ** 20

# A batch of images that make under two bands each goes by bands too (of an image, or of part of
# one) where each image's V and M come to this much: the bands then keep the batch's tiles from
# streaming through memory, where a band of a small image costs more in calls than it saves.
# Forced bands against whole, in one process at two threads (CI machine): DeepBench's train_08
# (batch 16, 1 channel of 48 x 480; 6.3 MB an image at F(2x2)) 13.4 against 15.3 ms at F(2x2),
# 8.6 against 9.8 at F(4x4); train_09 (batch 16, 16 channels of 24 x 240, 4.5 MB) 2.80 against
# 5.56 and 2.84 against 4.75; MobileNet's dw5 at batch 8 (256 channels of 14 x 14) 2.34 against
# 4.16 and 3.87 against 7.66; 32 channels of 28 x 28 at batch 8 (860 KB) 0.58 against 0.96 and
# 0.72 against 0.75. Smaller images lost: 16 channels of 14 x 14 at batch 32 (172 KB) 0.74
# against 0.63 ms at F(2x2); LeNet-5's c3 at batch 64 (111 KB at F(2x2,5x5)) 1.52 against 1.09,
# 2.87 against 2.36 at F(4x4,5x5). `convbench ab`, outputs identical: train_08 14 % faster at
# both tile sizes, train_09 53 % at F(2x2) and 40 % at F(4x4) (``results/amd-epyc-2c/ab/
# 20261124T185228Z.json``); MobileNet's dw5 and dw7-11 at batch 8 30-50 %, dw3 (bands already)
# the same (``...185308Z.json``).
CHANNEL_BAND_MIN_IMAGE_BYTES = 512 * 2 ** 10

# The Winograds do a fraction of the direct count's arithmetic, so they run on one thread up to
# this many times ``SERIAL_FLOPS`` (:func:`kernels.cpu._common.numba_threads`), tile rows then in
# one share. One share against two, in one process at two threads (CI machine, medians): at 14.5-20
# MFLOP one share took 46-158 us where two took 95-180 (GoogLeNet's small 5x5 layers, 64 channels
# of 14 x 14 at 3x3); at 40-45 MFLOP one 120-148 against 124-174; at 70 even; from 120 MFLOP two
# were faster (231 against 275 us on inception_3b/5x5 at F(4x4,5x5)).
SERIAL_SCALE = 5


class WinogradCPU:
    """Winograd F(m x m, r x r): transforms in numba, (m+r-1)^2 SGEMMs through BLAS."""

    def __init__(self, m, r=3):
        self.m, self.r = m, r
        self.alpha = m + r - 1
        self.halo = _halo(self.alpha, m)   # the padding columns per tile row, channel-major
        spec = transforms(m, r)
        self.bt = np.array(spec["BT"], dtype=np.float32)
        self.at = np.array(spec["AT"], dtype=np.float32)

    def supports(self, problem):
        return winograd_unsupported(self.m, problem, self.r)

    def _phase_problem(self, problem):
        """:func:`~kernels.common.winograd_phase_problem`, its planes as large as
        :func:`~kernels.cpu._common.load_streams` makes them where that is more than the output
        plus ``r - 1`` (one row or column more where the padded input's last one falls past
        every window; ``prepare`` then cuts the output)."""
        inner = winograd_phase_problem(problem, self.r)
        _, _, _, _, rows, cols = stream_shape(problem, *problem.stride)
        return dataclasses.replace(inner, h=max(rows, inner.h), w=max(cols, inner.w))

    def _tiles(self, problem):
        return winograd_tiles(self.m, problem)

    @staticmethod
    def _threads(problem):
        """numba threads for ``problem``: one for a small one (:data:`SERIAL_SCALE`)."""
        return numba_threads(problem, SERIAL_SCALE)

    def layout(self, problem):
        """:data:`CHANNEL_MAJOR`, :data:`TILE_ROWS` or :data:`TILE_STAGES`: how ``prepare`` lays
        the problem out (channel-major with fewer than :data:`TILE_MIN_CHANNELS` channels
        per group; a grouped problem takes tile rows or channel-major)."""
        tiles_h, tiles_w = self._tiles(problem)
        grouped = problem.groups > 1
        if (tiles_h * tiles_w >= CHANNEL_MAJOR_TILES_PER_CHANNEL * problem.c
                or problem.c // problem.groups < TILE_MIN_CHANNELS):
            if self._band_rows(problem) * 2 <= tiles_h or self._batch_bands(problem):
                return CHANNEL_BANDS
            return CHANNEL_MAJOR
        filters = 4 * self.alpha ** 2 * (problem.c // problem.groups) * problem.k
        if filters <= TILE_ROWS_FILTER_BYTES or share_count(self._threads(problem)) == 1:
            return TILE_ROWS
        return CHANNEL_MAJOR if grouped else TILE_STAGES

    def _band_rows(self, problem):
        """Tile rows per band of :data:`CHANNEL_BANDS`: as many as keep a band's V and M within
        :data:`CHANNEL_BAND_BYTES`, one at least; no more than an image has."""
        tiles_h, tiles_w = self._tiles(problem)
        row_bytes = 4 * self.alpha ** 2 * (problem.c + problem.k) * (tiles_w + self.halo)
        return max(1, min(tiles_h, CHANNEL_BAND_BYTES // row_bytes))

    def _batch_bands(self, problem):
        """Whether a batch of images under two bands each goes by bands all the same (one or two
        an image): where the batch's V and M overflow a band and each image brings
        :data:`CHANNEL_BAND_MIN_IMAGE_BYTES` or more."""
        tiles_h, tiles_w = self._tiles(problem)
        image = 4 * self.alpha ** 2 * (problem.c + problem.k) * tiles_h * (tiles_w + self.halo)
        return (problem.n > 1 and image >= CHANNEL_BAND_MIN_IMAGE_BYTES
                and problem.n * image > CHANNEL_BAND_BYTES)

    def _columns(self, problem):
        """Channel-major GEMM columns: every tile plus ``halo`` padding columns per tile row (see
        _input_transform)."""
        tiles_h, tiles_w = self._tiles(problem)
        return problem.n * tiles_h * (tiles_w + self.halo)

    def workspace_bytes(self, problem):
        if problem.stride != (1, 1):   # the planes, their copy's scratch, an uncut output
            inner = self._phase_problem(problem)
            planes = 4 * inner.n * inner.c * inner.h * inner.w
            uncut = (4 * inner.n * inner.k * inner.p * inner.q
                     if inner.output_shape != problem.output_shape else 0)
            return (planes + streams_scratch_bytes(problem, planes) + uncut
                    + self.workspace_bytes(inner))
        tiles_h, tiles_w = self._tiles(problem)
        positions = self.alpha * self.alpha
        threads = self._threads(problem)
        filters = positions * problem.k * (problem.c // problem.groups)
        layout = self.layout(problem)
        if layout == CHANNEL_BANDS:   # per share: a band's V and M and the transforms' scratch
            rows, row_len = self._band_rows(problem), tiles_w + self.halo
            short = tiles_h % rows              # the last band's rows, where it is short
            scratch = (self.m * row_len * (self.m * (rows + self.halo) + self.alpha * (rows + 1))
                       + rows * row_len * positions * (problem.c + problem.k)
                       + (rows + short) * row_len * self.m * (self.alpha + self.m))
            shares = min(share_count(threads), problem.n * -(-tiles_h // rows))
            return (4 * (scratch * shares + filters)
                    + pair_scratch_bytes(problem, self.m, shares))
        if layout == CHANNEL_MAJOR:
            tiles = self._columns(problem)
            # per thread: one channel's input split m x m, and B^T d for it (see _input_transform)
            row_len = tiles_w + self.halo
            scratch = self.m * row_len * (self.m * (tiles_h + self.halo)
                                          + self.alpha * (tiles_h + 1))
            shares = min(threads, problem.n * problem.c)
            return (4 * (scratch * shares + filters + positions * (problem.c + problem.k) * tiles)
                    + pair_scratch_bytes(problem, self.m, shares))   # F(2x2): column pairs
        tiles = problem.n * tiles_h * tiles_w
        span = self.m * (tiles_w + self.halo)      # a band's columns, split by phase
        scratch = (self.alpha * span * problem.c + self.alpha ** 2 * IN_CHUNK
                   + self.alpha * self.m * CHUNK
                   + _output_scratch_size(self.m, tiles_w, problem.k))
        return 4 * (scratch * min(threads, problem.n * tiles_h) + filters
                    + positions * (problem.c + problem.k) * tiles)

    def prepare(self, problem, w):
        if problem.stride != (1, 1):
            return self._prepare_phases(problem, w)
        layout = self.layout(problem)
        if layout == CHANNEL_MAJOR:
            run = self._prepare_channel_major(problem, w)
        elif layout == CHANNEL_BANDS:
            run = self._prepare_channel_bands(problem, w)
        else:
            run = self._prepare_tile_major(problem, w, layout)
        if not getattr(run, "impl", None):
            run.impl = layout
        if layout in (CHANNEL_MAJOR, TILE_STAGES) and self._threads(problem) == 1:
            # the others run as shares: one, on the calling thread
            return one_thread(run)
        return run

    def _prepare_phases(self, problem, w):
        """A strided problem as the stride-1 :meth:`_phase_problem`: each call splits the input
        into its stride phases (zero-bordered planes made here once; only their inside is
        written) and runs the kernel prepared for that problem on them."""
        inner = self._phase_problem(problem)
        run_inner = self.prepare(inner, winograd_phase_weights(problem, w, self.r))
        sh, sw = problem.stride
        buffer = np.zeros(stream_shape(problem, sh, sw, inner.h, inner.w), dtype=np.float32)
        planes = buffer.reshape(inner.input_shape)
        load = streams_loader(buffer)
        ph, pw = problem.padding
        p, q = problem.p, problem.q

        def split(x):
            load(x, buffer, ph, pw)

        def cut(out):
            return out if out.shape == problem.output_shape else out[:, :, :p, :q].copy()

        def run(x):
            split(x)
            return cut(run_inner(planes))

        steps = run_inner.stages
        run.stages = (("split into stride phases", split),
                      *((name, lambda _, step=step: step(planes)) for name, step in steps[:-1]),
                      (steps[-1][0], lambda _, step=steps[-1][1]: cut(step(planes))))
        run.impl = f"{run_inner.impl}, over {sh}x{sw} stride phases"
        return run

    def _prepare_channel_major(self, problem, w):
        m, alpha, groups = self.m, self.alpha, problem.groups
        k_per_group, c_per_group = problem.k // groups, problem.c // groups
        tiles_h, tiles_w = self._tiles(problem)
        tiles = self._columns(problem)
        row_len = tiles_w + self.halo
        weights = winograd_filter_transform(m, problem, w, self.r)  # (alpha^2, G, K_g, C_g)
        ph, pw = problem.padding
        v = np.empty((alpha * alpha, problem.c, tiles), dtype=np.float32)
        v_grouped = v.reshape(alpha * alpha, groups, c_per_group, tiles)
        mm = np.empty((alpha * alpha, problem.k, tiles), dtype=np.float32)
        mm_grouped = mm.reshape(alpha * alpha, groups, k_per_group, tiles)
        bt, at, out_shape = self.bt, self.at, problem.output_shape
        matmul = matmul_for(weights.shape, v_grouped.shape)

        return _stages(
            lambda x: _input_transform(x, bt, v, m, tiles_h, row_len, ph, pw, get_num_threads()),
            lambda x: matmul(weights, v_grouped, out=mm_grouped),
            lambda out: _output_transform(mm, at, out, tiles_h, row_len), out_shape)

    def _prepare_channel_bands(self, problem, w):
        """Channel-major by bands of tile rows (:data:`CHANNEL_BANDS`): each share takes a run of
        (image, band) pairs and does all three stages per band in its own V and M."""
        m, alpha, groups = self.m, self.alpha, problem.groups
        k_per_group, c_per_group = problem.k // groups, problem.c // groups
        tiles_h, tiles_w = self._tiles(problem)
        rows, row_len = self._band_rows(problem), tiles_w + self.halo
        weights = winograd_filter_transform(m, problem, w, self.r)  # (alpha^2, G, K_g, C_g)
        ph, pw = problem.padding
        bt, at, out_shape = self.bt, self.at, problem.output_shape
        bands = [(n, i0, min(rows, tiles_h - i0))
                 for n in range(problem.n) for i0 in range(0, tiles_h, rows)]
        count = min(share_count(self._threads(problem)), len(bands))
        bounds = [len(bands) * i // count for i in range(count + 1)]
        columns = rows * row_len

        def scratch():
            return (np.empty((alpha * alpha, problem.c, columns), dtype=np.float32),
                    np.empty((alpha * alpha, problem.k, columns), dtype=np.float32),
                    np.empty((m, m, rows + self.halo, row_len), dtype=np.float32),
                    np.empty((alpha, m, rows + 1, row_len), dtype=np.float32),
                    np.empty(pair_scratch_bytes(problem, m, 1) // 4, dtype=np.float32),
                    {length: (np.empty((alpha, m, length * row_len), dtype=np.float32),
                              np.empty((m, m, length * row_len), dtype=np.float32))
                     for length in {rows, tiles_h % rows or rows}})   # M A, A^T M A, exact sizes

        numbered = list(enumerate(bands))
        shares = [(numbered[first:stop], scratch()) for first, stop in zip(bounds[:-1], bounds[1:])]

        def input_stage(x, band, buffers):
            v, _, d, streams, pairs, _ = buffers
            _input_band(x, bt, v, m, band[0], band[1], band[2], row_len, ph, pw, d, streams, pairs)

        def product(band, buffers):
            v, mm = buffers[0], buffers[1]
            used = band[2] * row_len
            np.matmul(weights, v.reshape(alpha * alpha, groups, c_per_group, columns)[..., :used],
                      out=mm.reshape(alpha * alpha, groups, k_per_group, columns)[..., :used])

        def output_stage(out, band, buffers):
            _output_band(buffers[1], at, out, band[0], band[1], band[2], row_len,
                         *buffers[5][band[2]])

        def whole(x, out, share):
            for _, band in share[0]:
                input_stage(x, band, share[1])
                product(band, share[1])
                output_stage(out, band, share[1])

        def run(x):
            out = np.empty(out_shape, dtype=np.float32)
            run_shares([partial(whole, x, out, share) for share in shares])
            return out

        # The per-stage breakdown runs each stage over every band by itself, so each band needs a
        # V and M of its own there (made on first use, outside the call's workspace): the stages
        # then stream them through memory as the call does not, and their sum exceeds it.
        own = {}

        def stage(step):
            def band_by_band(arg, share):
                for index, band in share[0]:
                    if index not in own:
                        own[index] = (np.empty_like(share[1][0]), np.empty_like(share[1][1]))
                    step(arg, band, own[index] + share[1][2:])

            return lambda arg: run_shares([partial(band_by_band, arg, share) for share in shares])

        run.stages = _stages(stage(input_stage),
                             stage(lambda _, band, buffers: product(band, buffers)),
                             stage(output_stage), out_shape).stages
        run.impl = (f"{CHANNEL_BANDS} of {rows} tile row{'s' if rows > 1 else ''} on "
                    f"{len(shares)} thread{'s' if len(shares) > 1 else ''}")
        return run

    def _prepare_tile_major(self, problem, w, layout):
        """``M[a*alpha + b] (tiles x K) = V (tiles x C) @ U^T (C x K)``: one tile per GEMM row,
        channels last; with groups, one such product per group on its slice of the channels (tile
        rows only)."""
        m, alpha = self.m, self.alpha
        tiles_h, tiles_w = self._tiles(problem)
        tiles = problem.n * tiles_h * tiles_w
        # (G, alpha^2, C_g, K_g): the filter transform's (alpha^2, G, K_g, C_g) turned for V @ U^T
        weights = np.ascontiguousarray(
            winograd_filter_transform(m, problem, w, self.r).transpose(1, 0, 3, 2))
        groups = problem.groups
        c_per_group, k_per_group = problem.c // groups, problem.k // groups
        ph, pw = problem.padding
        v = np.empty((alpha * alpha, tiles, problem.c), dtype=np.float32)
        mm = np.empty((alpha * alpha, tiles, problem.k), dtype=np.float32)
        out_shape = problem.output_shape

        if layout == TILE_STAGES:    # groups == 1
            weights = weights[0]
            matmul = matmul_for(v.shape, weights.shape)
            return _stages(
                lambda x: _input_transform_tiles(x, v, m, alpha, tiles_h, tiles_w, ph, pw,
                                                 get_num_threads()),
                lambda x: matmul(v, weights, out=mm),
                lambda out: _output_transform_tiles(mm, out, m, alpha, tiles_h, tiles_w,
                                                    get_num_threads()), out_shape)

        # TILE_ROWS: share i does tile rows bounds[i] to bounds[i+1], all three stages
        rows = problem.n * tiles_h
        count = min(share_count(self._threads(problem)), rows)
        bounds = [rows * i // count for i in range(count + 1)]
        shares = [(first, stop, first * tiles_w, stop * tiles_w,
                   _row_scratch(m, alpha, tiles_w, problem.c, problem.k))
                  for first, stop in zip(bounds[:-1], bounds[1:])]

        def inputs(x, share):
            first, stop, t0, _, (band, scratch, _, _) = share
            _input_rows(x, v, m, tiles_h, tiles_w, ph, pw, first, stop, t0, band, scratch)

        def product(share):
            t0, t1 = share[2], share[3]
            for g in range(groups):   # a group's channels: a strided slice that BLAS reads as is
                np.matmul(v[:, t0:t1, g * c_per_group:(g + 1) * c_per_group], weights[g],
                          out=mm[:, t0:t1, g * k_per_group:(g + 1) * k_per_group])

        def outputs(out, share):
            first, stop, t0, _, (_, _, half, rows_scratch) = share
            _output_rows(mm, out, m, alpha, tiles_h, tiles_w, first, stop, t0, half, rows_scratch)

        def whole(x, out, share):
            inputs(x, share)
            product(share)
            outputs(out, share)

        def run(x):
            out = np.empty(out_shape, dtype=np.float32)
            run_shares([partial(whole, x, out, share) for share in shares])
            return out

        # the per-stage breakdown times each stage over all shares; a call hands over once
        run.stages = _stages(
            lambda x: run_shares([partial(inputs, x, share) for share in shares]),
            lambda x: run_shares([partial(product, share) for share in shares]),
            lambda out: run_shares([partial(outputs, out, share) for share in shares]),
            out_shape).stages
        run.impl = f"{TILE_ROWS} on {len(shares)} thread{'s' if len(shares) > 1 else ''}"
        return run


def _stages(input_transform, multiply, output_transform, out_shape):
    """The kernel as its three named stages: ``input_transform(x)``, ``multiply(x)``, then
    ``output_transform(out)`` into a new output array, which is returned."""
    def output(x):
        out = np.empty(out_shape, dtype=np.float32)
        output_transform(out)
        return out

    return pipeline(("input transform", input_transform), ("multiply", multiply),
                    ("output transform", output))


winograd_f2x2_3x3 = WinogradCPU(2)
winograd_f4x4_3x3 = WinogradCPU(4)
winograd_f2x2_5x5 = WinogradCPU(2, 5)
winograd_f4x4_5x5 = WinogradCPU(4, 5)
