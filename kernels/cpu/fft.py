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

from ..common import (fft_prepare, fft_shape, fft_tile_plan, fft_tiled_prepare,
                      fft_tiled_workspace_bytes, fft_unsupported, fft_workspace_bytes)
from ._common import shared_matmul, usable_cores

_WORKERS = usable_cores()

# The whole-image FFT transforms an input or output of fewer bytes than this on one thread. On the
# CI machine (AMD EPYC, 2 cores) scipy.fft's second worker made such transforms slower: the 128
# channels of 30 x 30 of ResNet-50's res3a in 0.171 ms on one thread, 0.264-0.267 on two; 256 of
# 16 x 16 in 0.103 against 0.139-0.199. At 1.8 MB (128 of 58 x 60) two took 0.59-0.62 ms against
# 0.99.
SERIAL_FFT_BYTES = 2 ** 20

# The tiled FFT's bound, lower: its many small transforms over the tiles' two leading axes gain
# from the second worker sooner. Forward and inverse stage alone, one worker against two (medians,
# one process, CI machine): 96-384 KiB of tiles, on one thread 41-198 us where two took 118-221
# (GoogLeNet's small 3x3 and 5x5 layers); 600-800 KiB either way by run (inception_3a/3x3 456 us
# against 719, 3b/3x3 621 against 468); 1-3 MiB 20-35 % faster on two. `ab` with the 1 MiB bound
# called 3b/3x3 (800 and 1200 KiB) 20 % slower (``results/amd-epyc-2c/ab/20261124T145442Z.json``).
SERIAL_TILED_FFT_BYTES = 2 ** 19


def _workers(planes, shape, serial_bytes=None):
    """scipy.fft's ``workers`` for one transform of ``planes`` float32 planes of ``shape``: one
    below ``serial_bytes`` (default :data:`SERIAL_FFT_BYTES`)."""
    serial_bytes = SERIAL_FFT_BYTES if serial_bytes is None else serial_bytes
    return 1 if 4 * planes * shape[0] * shape[1] < serial_bytes else _WORKERS


class FFTCPU:
    """FFT convolution (scipy.fft, batched complex matmul over channels); stride 1 only."""

    def supports(self, problem):
        return fft_unsupported(problem)

    def workspace_bytes(self, problem):
        return fft_workspace_bytes(problem)

    def prepare(self, problem, w):
        shape = fft_shape(problem)
        return fft_prepare(problem, w, np,
                           partial(scipy.fft.rfft2, workers=_workers(problem.n * problem.c, shape)),
                           partial(scipy.fft.irfft2, workers=_workers(problem.n * problem.k, shape)),
                           matmul=shared_matmul())


fft = FFTCPU()


class FFTTiledCPU(FFTCPU):
    """Tiled (overlap-save) FFT convolution: scipy.fft over T x T tiles, batched complex matmul."""

    def workspace_bytes(self, problem):
        return fft_tiled_workspace_bytes(problem)

    def prepare(self, problem, w):
        size, _, tiles_h, tiles_w = fft_tile_plan(problem)
        tiles = problem.n * tiles_h * tiles_w
        return fft_tiled_prepare(
            problem, w, np,
            partial(scipy.fft.rfft2, workers=_workers(tiles * problem.c, (size, size),
                                                       SERIAL_TILED_FFT_BYTES)),
            partial(scipy.fft.irfft2, workers=_workers(tiles * problem.k, (size, size),
                                                        SERIAL_TILED_FFT_BYTES)),
            np.lib.stride_tricks.as_strided, tile=size, matmul=shared_matmul())


fft_tiled = FFTTiledCPU()
