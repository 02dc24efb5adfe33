"""CPU kernels: numba for loops, BLAS (through numpy) for matrix products, scipy.fft for transforms."""
