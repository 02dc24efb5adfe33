"""Backend-free pieces shared by the CPU and GPU kernels: sizes, limits and the Winograd filter
transform. Imports neither numba nor CuPy."""

import dataclasses
import os
from pathlib import Path

import numpy as np
import scipy.fft

from .winograd_transforms import transforms


def blas_libraries():
    """threadpoolctl's controllers of the BLAS libraries loaded in this process, numpy's first (a
    wheel's sits in ``numpy.libs``; scipy's wheel loads another beside it); empty where threadpoolctl
    is not installed (a provisioned GPU box may lack it). The environment is left as it was:
    threadpoolctl sets ``KMP_DUPLICATE_LIB_OK`` on import."""
    had_kmp = "KMP_DUPLICATE_LIB_OK" in os.environ
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return []
    finally:
        if not had_kmp:
            os.environ.pop("KMP_DUPLICATE_LIB_OK", None)
    found = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    found.sort(key=lambda lib: "numpy" not in Path(lib.filepath).parent.name)
    return found


def fft_shape(problem):
    """Transform size: the padded input rounded up to sizes the FFT libraries do fast."""
    padded_h = problem.h + 2 * problem.padding[0]
    padded_w = problem.w + 2 * problem.padding[1]
    return (scipy.fft.next_fast_len(padded_h, real=True), scipy.fft.next_fast_len(padded_w, real=True))


def fft_unsupported(problem):
    if problem.stride != (1, 1):
        sh, sw = problem.stride
        return (f"FFT computes every output position, so it needs stride 1; "
                f"this problem has stride {sh}x{sw}")
    return None


def fft_workspace_bytes(problem):
    """Padded input and full output (real), input and output spectra in two layouts, filter spectra."""
    fh, fw = fft_shape(problem)
    freqs = fh * (fw // 2 + 1)
    n, c, k, groups = problem.n, problem.c, problem.k, problem.groups
    return 4 * (n * c * fh * fw + n * k * fh * fw) + 8 * freqs * (
        2 * n * c + 2 * n * k + k * (c // groups))


def winograd_unsupported(m, problem, r=3):
    """``None`` where Winograd F(m x m, r x r) runs ``problem``, else why not: an r x r filter at
    stride 1, or a strided filter over its stride phases (:func:`winograd_phase_problem`) where
    each phase's filter, ceil(R/sh) x ceil(S/sw), fits r x r and the multiplies per output and
    input channel, ``alpha^2 / m^2 * sh * sw``, are fewer than direct's R*S; no dilation."""
    sh, sw = problem.stride
    alpha = m + r - 1
    rows, cols = -(-problem.r // sh), -(-problem.s // sw)
    multiplies = alpha ** 2 * sh * sw / m ** 2
    problems = []
    if (sh, sw) == (1, 1):
        if (problem.r, problem.s) != (r, r):
            problems.append(f"a {problem.r}x{problem.s} filter")
    elif rows > r or cols > r:
        problems.append(f"stride {sh}x{sw}, whose phases have {rows}x{cols} filters")
    elif multiplies >= problem.r * problem.s:
        problems.append(f"stride {sh}x{sw}: {multiplies:g} multiplies per output over its "
                        f"phases, where direct does {problem.r * problem.s}")
    if problem.dilation != (1, 1):
        problems.append(f"dilation {problem.dilation[0]}x{problem.dilation[1]}")
    if problems:
        return (f"Winograd F({m}x{m},{r}x{r}) needs a {r}x{r} filter at stride 1, or a strided "
                f"one whose stride phases' filters fit {r}x{r} for fewer multiplies than direct, "
                f"and no dilation; this problem has {', '.join(problems)}")
    return None


def winograd_phase_problem(problem, r):
    """The stride-1, unpadded problem a strided one is over its stride phases (space to depth).

    Plane (a, b) of the padded input holds its rows a, a + sh, ... and columns b, b + sw, ...;
    filter tap (i*sh + a, j*sw + b) reads that plane at an offset of (i, j). The ``sh * sw``
    planes of input channel c are channels ``c*sh*sw + a*sw + b`` here, each of the output's size
    plus r - 1, and the filter is each phase's taps zero-padded to r x r
    (:func:`winograd_phase_weights`). At stride 1, ``problem`` itself.
    """
    sh, sw = problem.stride
    if (sh, sw) == (1, 1):
        return problem
    return dataclasses.replace(problem, c=problem.c * sh * sw, h=problem.p + r - 1,
                               w=problem.q + r - 1, r=r, s=r, stride=(1, 1), padding=(0, 0))


def winograd_phase_weights(problem, w, r):
    """The filters of :func:`winograd_phase_problem` (host float32): input channel
    ``c*sh*sw + a*sw + b`` holds taps ``(i*sh + a, j*sw + b)`` of channel ``c`` at ``(i, j)``,
    zeros elsewhere."""
    sh, sw = problem.stride
    if (sh, sw) == (1, 1):
        return w
    w = np.asarray(w, dtype=np.float32)
    k, c_per_group = w.shape[:2]
    phased = np.zeros((k, c_per_group, sh, sw, r, r), dtype=np.float32)
    for a in range(sh):
        for b in range(sw):
            taps = w[:, :, a::sh, b::sw]
            phased[:, :, a, b, :taps.shape[2], :taps.shape[3]] = taps
    return phased.reshape(k, c_per_group * sh * sw, r, r)


def winograd_tiles(m, problem):
    """Output tiles along H and W; the last row and column may be partial."""
    return -(-problem.p // m), -(-problem.q // m)


def winograd_filter_transform(m, problem, w, r=3):
    """U[a*alpha + b, g, k, c] = (G w[k, c] G^T)[a, b], computed in float64, returned as float32."""
    g_matrix = np.array(transforms(m, r)["G"], dtype=np.float64)
    alpha, groups = m + r - 1, problem.groups
    u = np.einsum("ar,kcrs,bs->abkc", g_matrix, np.asarray(w, dtype=np.float64), g_matrix)
    return np.ascontiguousarray(u.reshape(alpha * alpha, groups, problem.k // groups,
                                          problem.c // groups).astype(np.float32))


def fft_prepare(problem, w, xp, rfft2, irfft2, matmul=None):
    """The FFT kernel's ``prepare`` for an array module ``xp`` (numpy or cupy) and its real FFTs.

    Filter spectra (conjugated, dilated filters) are made here once; ``run`` places the input in a
    zero-bordered buffer, transforms it, multiplies by the filter spectra as one batched complex matmul
    over (group, frequency) -- ``Y[f] (K_g x N) = W[f] (K_g x C_g) @ X[f] (C_g x N)`` -- and transforms
    back. ``matmul(a, b)`` does that product (default ``xp.matmul``).
    """
    matmul = xp.matmul if matmul is None else matmul
    fh, fw = fft_shape(problem)
    groups, n = problem.groups, problem.n
    k_per_group, c_per_group = problem.k // groups, problem.c // groups
    (dh, dw), (ph, pw) = problem.dilation, problem.padding
    dilated = xp.zeros((problem.k, c_per_group, fh, fw), dtype=xp.float32)
    dilated[:, :, :(problem.r - 1) * dh + 1:dh, :(problem.s - 1) * dw + 1:dw] = xp.asarray(w)
    spectrum = xp.conj(rfft2(dilated, axes=(2, 3)))
    freqs = spectrum.shape[2] * spectrum.shape[3]
    # (G, F, K_g, C_g): one K_g x C_g matrix per group and frequency
    weights = xp.ascontiguousarray(
        spectrum.reshape(groups, k_per_group, c_per_group, freqs).transpose(0, 3, 1, 2))
    del dilated, spectrum
    padded = xp.zeros((n, problem.c, fh, fw), dtype=xp.float32)
    h, width, p, q = problem.h, problem.w, problem.p, problem.q
    fw_half = fw // 2 + 1

    state = {}

    def forward(x):
        padded[:, :, ph:ph + h, pw:pw + width] = x
        spec = rfft2(padded, axes=(2, 3))
        # (N, G, C_g, F) -> (G, F, C_g, N)
        state["input"] = xp.ascontiguousarray(
            spec.reshape(n, groups, c_per_group, freqs).transpose(1, 3, 2, 0))

    def multiply(x):
        state["product"] = matmul(weights, state["input"])   # (G, F, K_g, N)

    def inverse(x):
        out_spec = xp.ascontiguousarray(state["product"].transpose(3, 0, 2, 1)).reshape(
            n, problem.k, fh, fw_half)
        full = irfft2(out_spec, s=(fh, fw), axes=(2, 3))
        return xp.ascontiguousarray(full[:, :, :p, :q])

    return pipeline(("forward FFT", forward), ("multiply", multiply), ("inverse FFT", inverse),
                    impl=f"{fh}x{fw} transforms")


def pipeline(*stages, impl=None):
    """``run(x)`` made of named stages, called in order; the last one's result is the output.

    ``run.stages`` keeps the ``(name, stage)`` pairs so the harness can time each stage alone (the
    per-stage breakdown NNPACK's benchmark gives: transforms against multiply). Every stage takes the
    input and works on the buffers that ``prepare`` made, reading only what the stages before it left
    there, so once ``run`` has been called a stage can be repeated by itself.

    ``run.impl`` names the implementation ``prepare`` chose, where a kernel has more than one
    (benchdnn's "impl" column: the tile size, the layout); results rows record it.
    """
    calls = tuple(stage for _, stage in stages)

    def run(x):
        for stage in calls[:-1]:
            stage(x)
        return calls[-1](x)

    run.stages = tuple(stages)
    run.impl = impl
    return run


# Tiled FFT (overlap-save). Transform sizes tried: powers of two, which cuFFT and pocketfft do best;
# NNPACK uses 8 and 16, cuDNN's FFT_TILING 32. Filters too large for these get larger ones.
FFT_TILE_SIZES = (8, 16, 32, 64)


def fft_tile_plan(problem, tile=None):
    """``(T, m, tiles_h, tiles_w)``: transform size T, output tile m = T - R' + 1 (R' the dilated
    filter's extent, the larger of height and width), and tiles along H and W.

    Without ``tile``, T is the candidate with the lowest modelled cost among the powers of two
    with m >= R' (so at least half of every transform is kept): :data:`FFT_TILE_SIZES`, and larger
    ones for filters that need them. The model counts the complex products (8 flops per
    multiply-add, charged double when a frequency's matrix has under 16 tile columns, where the
    product is bound by reading the filter spectra) and the transforms (about 2.5 T^2 log2(T^2)
    flops per tile and channel, charged four times: small FFTs reach a smaller fraction of the
    machine's peak than a matrix product).
    """
    extent = max((problem.r - 1) * problem.dilation[0] + 1, (problem.s - 1) * problem.dilation[1] + 1)
    largest = max(FFT_TILE_SIZES[-1], 1 << (2 * extent - 1).bit_length())
    sizes = FFT_TILE_SIZES + tuple(1 << b for b in range(7, largest.bit_length()))
    candidates = [tile] if tile else [t for t in sizes if t - extent + 1 >= extent]
    plans = []
    for size in candidates:
        m = size - extent + 1
        if m < 1:
            raise ValueError(f"tile size {size} is too small for a filter extent of {extent}")
        tiles_h, tiles_w = -(-problem.p // m), -(-problem.q // m)
        columns = problem.n * tiles_h * tiles_w
        freqs = size * (size // 2 + 1)
        multiply = 8.0 * freqs * columns * problem.k * (problem.c // problem.groups)
        multiply *= 2.0 if columns < 16 else 1.0
        transforms = 4 * 2.5 * size * size * np.log2(size * size) * columns * (problem.c + problem.k)
        plans.append((multiply + transforms, (size, m, tiles_h, tiles_w)))
    return min(plans)[1]


def fft_tiled_workspace_bytes(problem):
    """Padded input, input tiles, output tiles (real); input, product and filter spectra."""
    size, m, tiles_h, tiles_w = fft_tile_plan(problem)
    columns = problem.n * tiles_h * tiles_w
    freqs = size * (size // 2 + 1)
    extent_h, extent_w = tiles_h * m + size - m, tiles_w * m + size - m
    k, c, groups = problem.k, problem.c, problem.groups
    return (4 * (problem.n * c * extent_h * extent_w + columns * (c + k) * size * size)
            + 8 * freqs * (2 * columns * c + 2 * columns * k + k * (c // groups)))


def fft_tiled_prepare(problem, w, xp, rfft2, irfft2, as_strided, tile=None, matmul=None):
    """The tiled FFT kernel's ``prepare`` (overlap-save) for an array module ``xp`` and its FFTs.

    The output is cut into m x m tiles; output tile (i, j) needs the T x T input window at
    (i*m, j*m) of the zero-bordered input. Circular correlation of that window with the filter
    (zero-filled to T x T) is exact at the first m x m positions, the ones kept. So, with filter
    spectra made once here, ``run`` does: copy the input into the bordered buffer and the (over-
    lapping) windows into a tile array, one batched real FFT of all tiles, for every (frequency,
    group) a complex product ``Y (K_g x tiles) = W (K_g x C_g) @ X (C_g x tiles)`` as one batched
    matmul, one batched inverse FFT, and the m x m corners put in place.

    The tile array is laid out ``(T, T, C, tiles)`` and the FFTs run over its two leading axes, so
    their outputs are already frequency-major, as the matmul wants them: no transposes of spectra.

    Against the whole-image FFT the filter spectra shrink from ``Fh * Fw/2`` to ``T * T/2``
    frequencies per filter, and every frequency's product has the tiles as its columns: a matrix
    product rather than a matrix-vector product at batch 1. ``matmul`` as for :func:`fft_prepare`.
    """
    matmul = xp.matmul if matmul is None else matmul
    size, m, tiles_h, tiles_w = fft_tile_plan(problem, tile)
    groups, n = problem.groups, problem.n
    k_per_group, c_per_group = problem.k // groups, problem.c // groups
    (dh, dw), (ph, pw) = problem.dilation, problem.padding
    freqs = size * (size // 2 + 1)
    columns = n * tiles_h * tiles_w
    filters = xp.zeros((size, size, problem.k, c_per_group), dtype=xp.float32)
    filters[:(problem.r - 1) * dh + 1:dh, :(problem.s - 1) * dw + 1:dw] = \
        xp.asarray(w).transpose(2, 3, 0, 1)
    # (F, G, K_g, C_g): one K_g x C_g matrix per frequency and group
    weights = xp.ascontiguousarray(xp.conj(rfft2(filters, axes=(0, 1)))).reshape(
        freqs, groups, k_per_group, c_per_group)
    del filters
    extent_h, extent_w = tiles_h * m + size - m, tiles_w * m + size - m
    padded = xp.zeros((n, problem.c, extent_h, extent_w), dtype=xp.float32)
    item = padded.itemsize
    # windows[a, b, c, n, i, j] = padded[n, c, i*m + a, j*m + b]: a view; the copy is the tiling
    windows = as_strided(padded, shape=(size, size, problem.c, n, tiles_h, tiles_w),
                         strides=(extent_w * item, item, extent_h * extent_w * item,
                                  problem.c * extent_h * extent_w * item, m * extent_w * item,
                                  m * item))
    tiles = xp.empty((size, size, problem.c, n, tiles_h, tiles_w), dtype=xp.float32)
    h, width, p, q = problem.h, problem.w, problem.p, problem.q
    state = {}

    def forward(x):
        padded[:, :, ph:ph + h, pw:pw + width] = x
        tiles[...] = windows
        state["input"] = rfft2(tiles, axes=(0, 1)).reshape(freqs, groups, c_per_group, columns)

    def multiply(x):
        state["product"] = matmul(weights, state["input"])   # (F, G, K_g, N*th*tw)

    def inverse(x):
        out_spec = state["product"].reshape(size, size // 2 + 1, problem.k, n, tiles_h, tiles_w)
        tiles_out = irfft2(out_spec, s=(size, size), axes=(0, 1))   # (T, T, K, N, th, tw)
        # y[n, k, i*m + a, j*m + b] = tiles_out[a, b, k, n, i, j] for a, b < m
        full = tiles_out[:m, :m].transpose(3, 2, 4, 0, 5, 1).reshape(
            n, problem.k, tiles_h * m, tiles_w * m)
        return xp.ascontiguousarray(full[:, :, :p, :q])

    return pipeline(("forward FFT", forward), ("multiply", multiply), ("inverse FFT", inverse),
                    impl=f"{size}x{size} tiles, {tiles_h * tiles_w} per image")
