"""Small helpers shared by the CPU kernels."""

from numba import njit, prange


def stream_shape(problem, sh, sw, rows=None, cols=None):
    """Shape of a :func:`load_streams` buffer: (N, C, sh, sw, rows, cols).

    ``rows`` and ``cols`` default to what covers the padded input; a kernel may ask for more (zeros).
    """
    padded_h = problem.h + 2 * problem.padding[0]
    padded_w = problem.w + 2 * problem.padding[1]
    rows = -(-padded_h // sh) if rows is None else rows
    cols = -(-padded_w // sw) if cols is None else cols
    return (problem.n, problem.c, sh, sw, rows, cols)


@njit(cache=True, fastmath=False, inline="always")
def load_channel(xc, dst, ph, pw):
    """One channel of :func:`load_streams`: ``dst[a, b, i, j] = xc_padded[i*sh + a, j*sw + b]``.

    ``xc`` is (H, W), ``dst`` is (sh, sw, rows, cols); only the input's own positions are written.
    """
    height, width = xc.shape
    sh, sw = dst.shape[0], dst.shape[1]
    for y in range(height):
        a = (y + ph) % sh
        i = (y + ph) // sh
        for b in range(sw):
            x0 = (b - pw) % sw              # first input column that lands in plane b
            j0 = (x0 + pw) // sw
            src = xc[y, x0::sw]
            row = dst[a, b, i, j0:j0 + src.shape[0]]
            for t in range(src.shape[0]):
                row[t] = src[t]


@njit(parallel=True, cache=True, fastmath=False)
def load_streams(x, buffer, ph, pw):
    """Copy x into a zero-bordered buffer split into (sh x sw) interleaved planes.

    ``buffer[n, c, a, b, i, j] = x_padded[n, c, i*sh + a, j*sw + b]``. A kernel that reads every
    sw-th column of every sh-th row (a strided convolution, the tiles of a Winograd transform) then
    reads one plane, where consecutive outputs are consecutive in memory: runs that vectorize. The
    buffer's border must be zero; only the input's own positions are written.
    """
    n_images, channels = x.shape[0], x.shape[1]
    for job in prange(n_images * channels):
        n, c = job // channels, job % channels
        load_channel(x[n, c], buffer[n, c], ph, pw)


@njit(cache=True, fastmath=False)
def load_streams_serial(x, buffer, ph, pw):
    """:func:`load_streams` in the calling thread, for inputs too small to be worth waking the
    others (see :data:`SERIAL_COPY_BYTES`)."""
    n_images, channels = x.shape[0], x.shape[1]
    for job in range(n_images * channels):
        n, c = job // channels, job % channels
        load_channel(x[n, c], buffer[n, c], ph, pw)


# A copy that writes fewer bytes than this is done by one thread. On the CI machine (AMD EPYC,
# 2 cores) waking numba's sleeping OpenMP threads for a parallel loop costs about 40-60 us: one
# thread splits ResNet-50's 600 KB stem input into its stride phases in about 30 us (two: 80),
# and lowers LeNet-5's c1 (78 KB of column matrix) in 4 us (two: 46) and a 5x5 layer on 7x7
# (157 KB) in 26 us (two: 63). At 1.3-2.7 MB the two are within +-30 % of each other either way.
SERIAL_COPY_BYTES = 2 ** 20
