"""FFT convolution on the GPU with cuFFT (``cupy.fft``), as the CPU kernel does with scipy.fft.

Notes
-----
The same code as :mod:`kernels.cpu.fft` (:func:`kernels.common.fft_prepare`) with CuPy arrays: a
zero-bordered input of size ``next_fast_len``, filter spectra made once in ``prepare``, the channel
sum as one batched complex matmul over (group, frequency) through cuBLAS, an inverse real FFT. cuFFT
plans are created by the first (validating) call and cached by CuPy. Stride 1 only.

``fft_tiled``: the tiled (overlap-save) variant, :func:`kernels.common.fft_tiled_prepare`, as
cuDNN's FFT_TILING algorithm does it: T x T tiles, one batched cuFFT of all tiles, the products as
one batched complex matmul over (frequency, group).
"""

import cupy
import cupy.lib.stride_tricks

from ..common import (fft_prepare, fft_tiled_prepare, fft_tiled_workspace_bytes, fft_unsupported,
                      fft_workspace_bytes)
from ._common import free_memory_reason, problem_bytes


class FFTGPU:
    def supports(self, problem):
        return fft_unsupported(problem) or free_memory_reason(problem_bytes(problem)
                                                              + self.workspace_bytes(problem))

    def workspace_bytes(self, problem):
        return fft_workspace_bytes(problem)

    def prepare(self, problem, w):
        return fft_prepare(problem, w, cupy, cupy.fft.rfft2, cupy.fft.irfft2)


fft = FFTGPU()


class FFTTiledGPU(FFTGPU):
    def workspace_bytes(self, problem):
        return fft_tiled_workspace_bytes(problem)

    def prepare(self, problem, w):
        return fft_tiled_prepare(problem, w, cupy, cupy.fft.rfft2, cupy.fft.irfft2,
                                 cupy.lib.stride_tricks.as_strided)


fft_tiled = FFTTiledGPU()
