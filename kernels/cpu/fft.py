"""FFT convolution on the CPU with scipy.fft: of the whole image (``fft``) or tile by tile
(``fft_tiled``).

Notes
-----
By the convolution theorem, cross-correlation with a filter is a product in the frequency domain with
the conjugate of the filter's spectrum. The input is placed in a zero-bordered buffer of size
``Fh x Fw`` (the padded input rounded up by :func:`scipy.fft.next_fast_len`); because ``Fh`` and ``Fw``
cover the whole padded input, the circular correlation equals the linear one at every output position
kept. Filters (dilated by inserting zeros when ``dilation > 1``) are transformed once in ``prepare``.
For every frequency the channel sum is a small complex matrix product, ``Y[f] (K_g x N) =
W[f] (K_g x C_g) @ X[f] (C_g x N)``, done for all frequencies and groups by one batched ``matmul``
whose frequencies are shared out among the cores (:func:`kernels.cpu._common.batched_matmul`): at
batch 1 each is a matrix-vector product, which the BLAS runs on one core.

Every output position is computed, so strided problems are not supported. The filter spectra take
``K * C_g * Fh * (Fw/2 + 1)`` complex64 values: FFT pays off for large filters, not for 3x3 layers with
many channels.

``fft_tiled`` (overlap-save, :func:`kernels.common.fft_tiled_prepare`) transforms T x T tiles of
the input instead (T of 8 to 64, chosen by an operation-count model in
:func:`kernels.common.fft_tile_plan`), so the filter spectra hold ``T * (T/2 + 1)`` frequencies and
every frequency's product is a matrix product over the tiles; the cost is the overlap, ``R - 1``
rows and columns of every tile transformed and thrown away.
"""

from functools import partial

import numpy as np
import scipy.fft

from ..common import (fft_prepare, fft_tiled_prepare, fft_tiled_workspace_bytes, fft_unsupported,
                      fft_workspace_bytes)
from ._common import batched_matmul, usable_cores

_WORKERS = usable_cores()


class FFTCPU:
    """FFT convolution (scipy.fft, batched complex matmul over channels); stride 1 only."""

    def supports(self, problem):
        return fft_unsupported(problem)

    def workspace_bytes(self, problem):
        return fft_workspace_bytes(problem)

    def prepare(self, problem, w):
        return fft_prepare(problem, w, np, partial(scipy.fft.rfft2, workers=_WORKERS),
                           partial(scipy.fft.irfft2, workers=_WORKERS), matmul=batched_matmul)


fft = FFTCPU()


class FFTTiledCPU(FFTCPU):
    """Tiled (overlap-save) FFT convolution: scipy.fft over T x T tiles, batched complex matmul."""

    def workspace_bytes(self, problem):
        return fft_tiled_workspace_bytes(problem)

    def prepare(self, problem, w):
        return fft_tiled_prepare(problem, w, np, partial(scipy.fft.rfft2, workers=_WORKERS),
                                 partial(scipy.fft.irfft2, workers=_WORKERS),
                                 np.lib.stride_tricks.as_strided, matmul=batched_matmul)


fft_tiled = FFTTiledCPU()
