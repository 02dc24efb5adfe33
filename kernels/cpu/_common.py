"""Small helpers shared by the CPU kernels."""

import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial

import numpy as np
from numba import get_num_threads, njit, prange, set_num_threads

from ..common import blas_libraries


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
def load_channel(xc, dst, ph, pw, pairs):
    """One channel of :func:`load_streams`: ``dst[a, b, i, j] = xc_padded[i*sh + a, j*sw + b]``.

    ``xc`` is (H, W), ``dst`` is (sh, sw, rows, cols); only the input's own positions are written.
    ``pairs`` is scratch from :func:`pair_scratch` (empty unless ``sw`` is 2 and W even).

    Only the unit-stride copy is written here, inline; the strided ones are functions of their
    own. Inlined beside it, they made it slower: 1024 channels of 7 x 7 took 41-49 us, against 13
    us alone (CI machine, one thread; numba inlines the callee's body, views and all, into every
    caller's loop).
    """
    height, width = xc.shape
    sh, sw = dst.shape[0], dst.shape[1]
    if sh == 1 and sw == 1:
        # a row at a time as plain slices: ``xc[y, x0::sw]`` is a strided view even for sw == 1,
        # whose copy does not vectorize (512 channels of 14 x 14: 104 us, 17 us this way)
        plane = dst[0, 0]
        for y in range(height):
            whole = plane[y + ph, pw:pw + width]
            row_in = xc[y]
            for t in range(width):
                whole[t] = row_in[t]
    elif sw == 2 and pairs.shape[0] >= height * width and width % 2 == 0:
        _load_column_pairs(xc, dst, ph, pw, pairs)
    elif sw == 2 and width >= ROW_PAIRS_WIDTH:
        _load_row_pairs(xc, dst, ph, pw)
    else:
        _load_strided(xc, dst, ph, pw)


@njit(cache=True, fastmath=False)
def _load_strided(xc, dst, ph, pw):
    """:func:`load_channel` for any stride: each row's columns of one phase through a strided view."""
    height = xc.shape[0]
    sh, sw = dst.shape[0], dst.shape[1]
    # input row y lands in row i of row phase a, (y + ph) = i * sh + a: stepped from row to row
    a, i = ph % sh, ph // sh
    for y in range(height):
        for b in range(sw):
            x0 = (b - pw) % sw              # first input column that lands in plane b
            j0 = (x0 + pw) // sw
            src = xc[y, x0::sw]
            row = dst[a, b, i, j0:j0 + src.shape[0]]
            for t in range(src.shape[0]):
                row[t] = src[t]
        a += 1
        if a == sh:
            a, i = 0, i + 1


@njit(cache=True, fastmath=False)
def _load_column_pairs(xc, dst, ph, pw, pairs):
    """:func:`load_channel` for a column stride of 2 and an even width W: the whole channel is
    first split into its even and odd columns in one pass over it, then each row's two halves are
    copied into their planes.

    Both of a pair's values are loaded in the same iteration, which LLVM turns into full-width loads
    and shuffles; the per-row copy from a strided view that it replaces compiled to gathers. Split
    one row at a time the loop's short runs and remainders cost more than this second pass.
    ``load_streams_serial`` on the CI machine (AMD EPYC, one thread), old against new in one
    process: 64 channels of 112 x 112 took 280 -> 100 us, 128 of 56 x 56 200 -> 73, 256 of 28 x 28
    173 -> 73, 512 of 14 x 14 152 -> 80, and ResNet-50's stem input (3 of 224 x 224) 42 -> 18.
    ``convbench ab``: MobileNet v1's stride-2 depthwise layers 31-43 % faster end to end
    (``results/amd-epyc-2c/ab/20261124T083210Z.json``), ResNet-50 res3a_branch2a's direct 17 %.
    """
    height, width = xc.shape
    half = width // 2
    flat = xc.reshape(height * width)
    evens = pairs[:height * half]
    odds = pairs[height * half:2 * height * half]
    for t in range(height * half):
        even = flat[2 * t]
        odd = flat[2 * t + 1]
        evens[t] = even
        odds[t] = odd
    # input column 2t lands in plane pw % 2 at column t + pw // 2; column 2t + 1 in the other
    b_even, j_even = pw % 2, pw // 2
    b_odd, j_odd = (pw + 1) % 2, (pw + 1) // 2
    sh = dst.shape[0]
    a, i = ph % sh, ph // sh            # stepped as in load_channel
    for y in range(height):
        to_even = dst[a, b_even, i, j_even:j_even + half]
        to_odd = dst[a, b_odd, i, j_odd:j_odd + half]
        from_even = evens[y * half:(y + 1) * half]
        from_odd = odds[y * half:(y + 1) * half]
        for t in range(half):
            to_even[t] = from_even[t]
        for t in range(half):
            to_odd[t] = from_odd[t]
        a += 1
        if a == sh:
            a, i = 0, i + 1


# An odd width at a column stride of 2 is split a row at a time (:func:`_load_row_pairs`) from
# this width on; narrower rows go through the strided view. ``load_streams_serial`` on the CI
# machine (AMD EPYC, one thread), strided view against row pairs in one process: 32 channels of
# 79 x 341 (DeepBench's server_03) 250 -> 95 us, 128 of 40 x 175 290 -> 173, 16 of 33 x 129
# 22.6 -> 16.1, 33 x 65 30.8 -> 29.2, but 33 x 41 27 -> 31.
ROW_PAIRS_WIDTH = 64


@njit(cache=True, fastmath=False)
def _load_row_pairs(xc, dst, ph, pw):
    """:func:`load_channel` for a column stride of 2 and an odd width: each row's column pairs
    straight into their two planes, then its last column. The pairs of a channel run across its
    rows when the width is odd, so :func:`_load_column_pairs`'s one pass over the channel does not
    apply; a wide row is a long enough run on its own."""
    height, width = xc.shape
    half = width // 2
    b_even, j_even = pw % 2, pw // 2
    b_odd, j_odd = (pw + 1) % 2, (pw + 1) // 2
    sh = dst.shape[0]
    a, i = ph % sh, ph // sh            # stepped as in load_channel
    for y in range(height):
        src = xc[y]
        to_even = dst[a, b_even, i, j_even:j_even + half + width % 2]
        to_odd = dst[a, b_odd, i, j_odd:j_odd + half]
        for t in range(half):
            even = src[2 * t]
            odd = src[2 * t + 1]
            to_even[t] = even
            to_odd[t] = odd
        if width % 2:
            to_even[half] = src[width - 1]
        a += 1
        if a == sh:
            a, i = 0, i + 1


@njit(cache=True, fastmath=False, inline="always")
def pair_scratch(x, sw):
    """The ``pairs`` scratch :func:`load_channel` needs for one channel of the NCHW input ``x`` at
    column stride ``sw``: H * W floats where it splits column pairs, else none."""
    height, width = x.shape[2], x.shape[3]
    return np.empty(height * width if sw == 2 and width % 2 == 0 else 0, dtype=np.float32)


def pair_scratch_bytes(problem, sw, threads):
    """Bytes of ``threads`` :func:`pair_scratch` buffers for ``problem``'s input (a workspace)."""
    return 4 * problem.h * problem.w * threads if sw == 2 and problem.w % 2 == 0 else 0


def streams_scratch_bytes(problem, buffer_bytes):
    """The :func:`pair_scratch` buffers of the ``load_streams`` (or, for a buffer under
    :data:`SERIAL_COPY_BYTES`, ``load_streams_serial``) call that fills a buffer of
    ``buffer_bytes`` from ``problem``'s input: one per thread that takes channels."""
    threads = (1 if buffer_bytes < SERIAL_COPY_BYTES
               else min(get_num_threads(), problem.n * problem.c))
    return pair_scratch_bytes(problem, problem.stride[1], threads)


@njit(cache=True, fastmath=False, inline="always")
def chunk_bounds(chunk, chunks, jobs):
    """Jobs ``range(start, stop)`` of chunk ``chunk`` when ``jobs`` are cut into ``chunks`` runs
    (a kernel's ``prange`` over one run per thread, each making its scratch once)."""
    return chunk * jobs // chunks, (chunk + 1) * jobs // chunks


def load_streams(x, buffer, ph, pw):
    """Copy x into a zero-bordered buffer split into (sh x sw) interleaved planes.

    ``buffer[n, c, a, b, i, j] = x_padded[n, c, i*sh + a, j*sw + b]``. A kernel that reads every
    sw-th column of every sh-th row (a strided convolution, the tiles of a Winograd transform) then
    reads one plane, where consecutive outputs are consecutive in memory: runs that vectorize. The
    buffer's border must be zero; only the input's own positions are written. The channels are cut
    into one run per numba thread, each with its own scratch.
    """
    _load_streams(x, buffer, ph, pw, get_num_threads())


@njit(parallel=True, cache=True, fastmath=False)
def _load_streams(x, buffer, ph, pw, threads):
    n_images, channels = x.shape[0], x.shape[1]
    jobs = n_images * channels
    chunks = min(jobs, threads)
    for chunk in prange(chunks):
        pairs = pair_scratch(x, buffer.shape[3])
        start, stop = chunk_bounds(chunk, chunks, jobs)
        for job in range(start, stop):
            n, c = job // channels, job % channels
            load_channel(x[n, c], buffer[n, c], ph, pw, pairs)


@njit(cache=True, fastmath=False)
def load_streams_serial(x, buffer, ph, pw):
    """:func:`load_streams` in the calling thread, for inputs too small to be worth waking the
    others (see :data:`SERIAL_COPY_BYTES`)."""
    n_images, channels = x.shape[0], x.shape[1]
    pairs = pair_scratch(x, buffer.shape[3])
    for job in range(n_images * channels):
        n, c = job // channels, job % channels
        load_channel(x[n, c], buffer[n, c], ph, pw, pairs)



def streams_loader(buffer):
    """The copy that fills ``buffer`` as :func:`load_streams` lays it out: by the calling thread
    alone (:func:`load_streams_serial`) for a buffer under :data:`SERIAL_COPY_BYTES`, else by
    numba's threads; :func:`streams_scratch_bytes` counts its scratch by the same rule."""
    return load_streams_serial if buffer.nbytes < SERIAL_COPY_BYTES else load_streams

# A copy that writes fewer bytes than this is done by one thread. On the CI machine (AMD EPYC,
# 2 cores) waking numba's sleeping OpenMP threads for a parallel loop costs about 40-60 us: one
# thread splits ResNet-50's 600 KB stem input into its stride phases in about 30 us (two: 80),
# and lowers LeNet-5's c1 (78 KB of column matrix) in 4 us (two: 46) and a 5x5 layer on 7x7
# (157 KB) in 26 us (two: 63). At 1.3-2.7 MB the two are within +-30 % of each other either way.
SERIAL_COPY_BYTES = 2 ** 20


# A stack of matrix products doing fewer flops than this runs as one ``np.matmul``. On the CI machine
# (AMD EPYC, 2 cores) handing work to an idle Python thread and collecting it costs 40-45 us (an
# empty task: 43 us, median of 2000), about what one core takes for 10 MFLOP of SGEMM, so sharing
# a stack of 20 MFLOP between two cores saves about what the hand-over costs.
PARALLEL_MATMUL_FLOPS = 20e6


# A problem of fewer flops (the direct count) than this runs its numba loops on the calling thread
# alone (:func:`numba_threads`, :func:`one_thread`): waking the other thread costs more than it
# saves. On the CI machine (AMD EPYC, 2 cores, medians in one process) the direct kernel took
# 13.5 us at one thread and 92 at two on LeNet-5's c3 (0.48 MFLOP), 99 against 130 on GoogLeNet's
# inception_4a/5x5 (7.5 MFLOP) and 159 against 172 on 64 channels of 14 x 14 at 3x3 (14.5 MFLOP);
# at 20 MFLOP the two were even and at 21.7 (a stride-2 stem) two threads won, 279 against 327.
SERIAL_FLOPS = 10e6

# A depthwise layer (one input channel per group) does few flops per value, so its time goes to
# the copies: it runs on one thread when its input and output take fewer bytes than this. With the
# flop rule instead, `convbench ab` of the direct kernel on MobileNet v1's depthwise layers (all
# under 10 MFLOP): dw1-dw3 (3.2-4 MB) 11-20 % slower, dw7-11 and dw13 (0.8 and 0.4 MB) 7 and 10 %
# faster, the others even (``results/amd-epyc-2c/ab/20261124T150353Z.json``).
SERIAL_DEPTHWISE_BYTES = 2 ** 20


def numba_threads(problem, scale=1, bytes_scale=1):
    """The numba threads a kernel's loops use on ``problem``: one under ``scale`` times
    :data:`SERIAL_FLOPS` (a kernel doing less arithmetic than the direct count passes a larger
    ``scale``; a depthwise layer: under ``bytes_scale`` times :data:`SERIAL_DEPTHWISE_BYTES` of
    input and output), else numba's count. Per-thread scratch, and so the workspace, follows it."""
    if problem.c == problem.groups:
        size = 4 * problem.n * (problem.c * problem.h * problem.w
                                + problem.k * problem.p * problem.q)
        return 1 if size < SERIAL_DEPTHWISE_BYTES * bytes_scale else get_num_threads()
    return 1 if problem.flops < SERIAL_FLOPS * scale else get_num_threads()


def one_thread(run):
    """``run`` (and each of its ``stages``) with numba's thread count set to one for the call,
    so its parallel loops run on the calling thread and wake no other; the attributes ``prepare``
    set (``impl``, ``stages``, ...) are kept, and ``impl`` says "one thread"."""
    def serial(function):
        def call(x):
            threads = get_num_threads()
            set_num_threads(1)
            try:
                return function(x)
            finally:
                set_num_threads(threads)
        return call

    wrapped = serial(run)
    wrapped.__dict__.update(run.__dict__)
    if getattr(run, "stages", None):
        wrapped.stages = tuple((name, serial(stage)) for name, stage in run.stages)
    impl = getattr(run, "impl", None)
    wrapped.impl = f"{impl}, one thread" if impl else "one thread"
    return wrapped


def usable_cores():
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class _NumpyBlas:
    """The thread count of the BLAS numpy calls, read and set through threadpoolctl (``controller``
    is ``None`` where threadpoolctl is missing, as a provisioned GPU box may lack it, or finds no
    BLAS), and the threads that take the shares of a stack."""

    def __init__(self):
        self.controller = None
        self.others = []
        self.pool = None
        self.scan()

    def scan(self):
        """Find the BLAS libraries loaded now (about 0.8 ms: for ``prepare``, not for a call).
        Every one of them is set to one thread during the shares: a numpy built against a system
        BLAS has no ``numpy.libs`` to tell its own by, and setting a library costs microseconds."""
        found = blas_libraries()
        if found:
            self.controller, self.others = found[0], found[1:]

    def threads(self):
        """The BLAS's thread count now (1 where unknown)."""
        return 1 if self.controller is None else self.controller.get_num_threads()

    @contextmanager
    def one_thread(self, restore):
        """Every BLAS loaded on one thread; numpy's given back ``restore``, the others their own.
        Nothing to set where no BLAS could be found (its thread count is then taken to be 1)."""
        if self.controller is None:
            yield
            return
        others = [(lib, lib.get_num_threads()) for lib in self.others]
        for lib in [self.controller] + self.others:
            lib.set_num_threads(1)
        try:
            yield
        finally:
            self.controller.set_num_threads(restore)
            for lib, count in others:
                lib.set_num_threads(count)

    def executor(self):
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=max(1, usable_cores() - 1),
                                           thread_name_prefix="convbench-matmul")
        return self.pool


_blas = None


def _numpy_blas():
    global _blas
    if _blas is None:
        _blas = _NumpyBlas()
    return _blas


def _forget_after_fork():
    """A forked child has none of its parent's pool threads: work handed to the inherited pool
    would wait for ever. The child makes its own on first use."""
    global _blas
    _blas = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _split(a, b, out, workers):
    """``workers`` triples of views ``(a_i, b_i, out_i)`` whose products make up ``out = a @ b``:
    the largest leading (stack) axis of ``out`` cut into near-equal runs, ``a`` and ``b`` cut along
    the same axis unless they broadcast over it. ``None`` when no axis divides well: fewer entries
    than workers, or a remainder that would leave one thread a third more than another."""
    lead = out.ndim - 2
    if lead < 1 or workers < 2:
        return None
    axis = max(range(lead), key=lambda i: out.shape[i])
    size = out.shape[axis]
    if size < workers or (size % workers and size < 3 * workers):
        return None
    bounds = [size * i // workers for i in range(workers + 1)]

    def cut(array, lo, hi):
        own = axis - (lead - (array.ndim - 2))   # leading axes line up from the right
        if own < 0 or array.shape[own] == 1:
            return array
        return array[(slice(None),) * own + (slice(lo, hi),)]

    return [(cut(a, lo, hi), cut(b, lo, hi), cut(out, lo, hi))
            for lo, hi in zip(bounds[:-1], bounds[1:])]


def _worth_sharing(a_shape, b_shape, is_complex):
    # every product unless both operands broadcast: enough to tell a stack too small to share
    products = max(math.prod(a_shape[:-2]), math.prod(b_shape[:-2]))
    flops = 2 * products * a_shape[-2] * a_shape[-1] * b_shape[-1] * (4 if is_complex else 1)
    return products > 1 and flops >= PARALLEL_MATMUL_FLOPS


def shared_matmul():
    """:func:`batched_matmul`, for a kernel's ``prepare``: the BLAS libraries loaded by then (scipy
    may have brought its own since the first call) are the ones it sets to one thread."""
    _numpy_blas().scan()
    return batched_matmul


def matmul_for(a_shape, b_shape, dtype=np.float32):
    """:func:`shared_matmul` for a stack of products of these shapes worth sharing out, else
    ``np.matmul`` itself: chosen once, in a kernel's ``prepare``, so that the small layers' calls
    (LeNet-5's im2col takes 6-10 us) do not pay for the test every time."""
    if _worth_sharing(a_shape, b_shape, np.dtype(dtype).kind == "c"):
        return shared_matmul()
    return np.matmul


def share_count(numba_threads):
    """How many threads a kernel's work can be shared among: the fewest of numba's threads, the
    BLAS's and the cores this process may use (1 where no BLAS could be found)."""
    return max(1, min(numba_threads, _numpy_blas().threads(), usable_cores()))


def run_shares(tasks):
    """Call every one of ``tasks`` (callables without arguments) at once: the first in this thread,
    the others on the pool's threads, every BLAS loaded at one thread meanwhile. Returns when all
    have finished; the first failure is raised, once the BLAS has its threads back.

    The BLAS's thread count is the process's, so two threads should not run shares at once: one
    could hand the BLAS back its threads while the other's shares still run (slower, not wrong).
    The harness runs one kernel per process.
    """
    if len(tasks) == 1:
        tasks[0]()
        return
    blas = _numpy_blas()
    with blas.one_thread(restore=blas.threads()):
        pool = blas.executor()
        futures = [pool.submit(task) for task in tasks[1:]]
        try:
            tasks[0]()
        finally:   # every share finished (or failed) before the BLAS gets its threads back
            for future in futures:
                future.exception()
        for future in futures:
            future.result()


def batched_matmul(a, b, out=None):
    """``np.matmul(a, b, out=out)`` for stacks of matrices, the stack shared out among the cores.

    OpenBLAS threads each product of a stack by itself: for the small products of the Winograd
    kernels (16 or 36 per call), of grouped or batched im2col and of the FFT kernels' frequencies
    that means waking its threads once per product, or, below its size threshold, using one core.
    Here each of the BLAS's threads instead takes a run of the stack, with the BLAS set to one
    thread while they run (:func:`run_shares`): one wake-up per call. Each product is then what a
    one-thread BLAS computes, bit for bit (a threaded OpenBLAS may round differently). A stack
    doing fewer than :data:`PARALLEL_MATMUL_FLOPS`, a single product, or a BLAS set to one thread
    runs as one ``np.matmul``. Returns ``out`` (allocated when not given).
    """
    if not _worth_sharing(a.shape, b.shape, "c" in (a.dtype.kind, b.dtype.kind)):
        return np.matmul(a, b, out=out)
    if out is None:
        shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
        out = np.empty(shape, dtype=np.result_type(a, b))
    parts = _split(a, b, out, min(_numpy_blas().threads(), usable_cores()))
    if parts is None:
        return np.matmul(a, b, out=out)
    run_shares([partial(np.matmul, a_i, b_i, out=out_i) for a_i, b_i, out_i in parts])
    return out
