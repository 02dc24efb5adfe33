"""FFT convolution on the CPU with scipy.fft.

Notes
-----
By the convolution theorem, cross-correlation with a filter is a product in the frequency domain with
the conjugate of the filter's spectrum. The input is placed in a zero-bordered buffer of size
``Fh x Fw`` (the padded input rounded up by :func:`scipy.fft.next_fast_len`); because ``Fh`` and ``Fw``
cover the whole padded input, the circular correlation equals the linear one at every output position
kept. Filters (dilated by inserting zeros when ``dilation > 1``) are transformed once in ``prepare``.
For every frequency the channel sum is a small complex matrix product, ``Y[f] (K_g x N) =
W[f] (K_g x C_g) @ X[f] (C_g x N)``, done for all frequencies and groups by one batched ``matmul``.

Every output position is computed, so strided problems are not supported. The filter spectra take
``K * C_g * Fh * (Fw/2 + 1)`` complex64 values: FFT pays off for large filters, not for 3x3 layers with
many channels.
"""

import os

import numpy as np
import scipy.fft

_WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _fft_shape(problem):
    padded_h = problem.h + 2 * problem.padding[0]
    padded_w = problem.w + 2 * problem.padding[1]
    return (scipy.fft.next_fast_len(padded_h, real=True), scipy.fft.next_fast_len(padded_w, real=True))


class FFTCPU:
    """FFT convolution (scipy.fft, batched complex matmul over channels); stride 1 only."""

    def supports(self, problem):
        if problem.stride != (1, 1):
            sh, sw = problem.stride
            return (f"FFT computes every output position, so it needs stride 1; "
                    f"this problem has stride {sh}x{sw}")
        return None

    def workspace_bytes(self, problem):
        fh, fw = _fft_shape(problem)
        freqs = fh * (fw // 2 + 1)
        n, c, k, groups = problem.n, problem.c, problem.k, problem.groups
        real_buffers = 4 * (n * c * fh * fw + n * k * fh * fw)        # padded input, full output
        spectra = 8 * freqs * (2 * n * c + 2 * n * k + k * (c // groups))  # X and Y (two layouts), W
        return real_buffers + spectra

    def prepare(self, problem, w):
        fh, fw = _fft_shape(problem)
        groups, n = problem.groups, problem.n
        k_per_group, c_per_group = problem.k // groups, problem.c // groups
        (dh, dw), (ph, pw) = problem.dilation, problem.padding
        dilated = np.zeros((problem.k, c_per_group, fh, fw), dtype=np.float32)
        dilated[:, :, :(problem.r - 1) * dh + 1:dh, :(problem.s - 1) * dw + 1:dw] = w
        spectrum = np.conj(scipy.fft.rfft2(dilated, axes=(2, 3), workers=_WORKERS))
        freqs = spectrum.shape[2] * spectrum.shape[3]
        # (G, F, K_g, C_g): one K_g x C_g matrix per group and frequency
        weights = np.ascontiguousarray(
            spectrum.reshape(groups, k_per_group, c_per_group, freqs).transpose(0, 3, 1, 2))
        del dilated, spectrum
        padded = np.zeros((n, problem.c, fh, fw), dtype=np.float32)
        h, width, p, q = problem.h, problem.w, problem.p, problem.q
        fw_half = fw // 2 + 1

        def run(x):
            padded[:, :, ph:ph + h, pw:pw + width] = x
            spec = scipy.fft.rfft2(padded, axes=(2, 3), workers=_WORKERS)
            # (N, G, C_g, F) -> (G, F, C_g, N)
            spec_t = np.ascontiguousarray(
                spec.reshape(n, groups, c_per_group, freqs).transpose(1, 3, 2, 0))
            product = np.matmul(weights, spec_t)                  # (G, F, K_g, N)
            out_spec = np.ascontiguousarray(product.transpose(3, 0, 2, 1)).reshape(
                n, problem.k, fh, fw_half)
            full = scipy.fft.irfft2(out_spec, s=(fh, fw), axes=(2, 3), workers=_WORKERS)
            return np.ascontiguousarray(full[:, :, :p, :q])

        return run


fft = FFTCPU()
