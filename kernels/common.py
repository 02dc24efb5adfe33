"""Backend-free pieces shared by the CPU and GPU kernels: sizes, limits and the Winograd filter
transform. Imports neither numba nor CuPy."""

import numpy as np
import scipy.fft

from .winograd_transforms import TRANSFORMS


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


def winograd_unsupported(m, problem):
    problems = []
    if (problem.r, problem.s) != (3, 3):
        problems.append(f"a {problem.r}x{problem.s} filter")
    if problem.stride != (1, 1):
        problems.append(f"stride {problem.stride[0]}x{problem.stride[1]}")
    if problem.dilation != (1, 1):
        problems.append(f"dilation {problem.dilation[0]}x{problem.dilation[1]}")
    if problems:
        return (f"Winograd F({m}x{m},3x3) needs a 3x3 filter, stride 1 and no dilation; "
                f"this problem has {', '.join(problems)}")
    return None


def winograd_tiles(m, problem):
    """Output tiles along H and W; the last row and column may be partial."""
    return -(-problem.p // m), -(-problem.q // m)


def winograd_filter_transform(m, problem, w):
    """U[a*alpha + b, g, k, c] = (G w[k, c] G^T)[a, b], computed in float64, returned as float32."""
    g_matrix = np.array(TRANSFORMS[m]["G"], dtype=np.float64)
    alpha, groups = m + 2, problem.groups
    u = np.einsum("ar,kcrs,bs->abkc", g_matrix, np.asarray(w, dtype=np.float64), g_matrix)
    return np.ascontiguousarray(u.reshape(alpha * alpha, groups, problem.k // groups,
                                          problem.c // groups).astype(np.float32))


def fft_prepare(problem, w, xp, rfft2, irfft2):
    """The FFT kernel's ``prepare`` for an array module ``xp`` (numpy or cupy) and its real FFTs.

    Filter spectra (conjugated, dilated filters) are made here once; ``run`` places the input in a
    zero-bordered buffer, transforms it, multiplies by the filter spectra as one batched complex matmul
    over (group, frequency) -- ``Y[f] (K_g x N) = W[f] (K_g x C_g) @ X[f] (C_g x N)`` -- and transforms
    back.
    """
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
        state["product"] = xp.matmul(weights, state["input"])   # (G, F, K_g, N)

    def inverse(x):
        out_spec = xp.ascontiguousarray(state["product"].transpose(3, 0, 2, 1)).reshape(
            n, problem.k, fh, fw_half)
        full = irfft2(out_spec, s=(fh, fw), axes=(2, 3))
        return xp.ascontiguousarray(full[:, :, :p, :q])

    return pipeline(("forward FFT", forward), ("multiply", multiply), ("inverse FFT", inverse))


def pipeline(*stages):
    """``run(x)`` made of named stages, called in order; the last one's result is the output.

    ``run.stages`` keeps the ``(name, stage)`` pairs so the harness can time each stage alone (the
    per-stage breakdown NNPACK's benchmark gives: transforms against multiply). Every stage takes the
    input and works on the buffers that ``prepare`` made, reading only what the stages before it left
    there, so once ``run`` has been called a stage can be repeated by itself.
    """
    calls = tuple(stage for _, stage in stages)

    def run(x):
        for stage in calls[:-1]:
            stage(x)
        return calls[-1](x)

    run.stages = tuple(stages)
    return run
