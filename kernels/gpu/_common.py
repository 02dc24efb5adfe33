"""Shared pieces of the CuPy kernels: compiling CUDA source once, launch sizes, memory checks."""

import functools

import cupy

THREADS = 256


@functools.lru_cache(maxsize=None)
def raw_kernel(source, name):
    """A compiled ``cupy.RawKernel`` (CuPy also caches the binary on disk across processes)."""
    return cupy.RawKernel(source, name, options=("-std=c++14",))


def blocks_for(total, threads=THREADS, limit=65535 * 16):
    return max(1, min(limit, (total + threads - 1) // threads))


def free_memory_reason(need_bytes, fraction=0.8):
    """None when ``need_bytes`` fits in ``fraction`` of the GPU's free memory now, else why not."""
    free, _ = cupy.cuda.runtime.memGetInfo()
    if need_bytes > fraction * free:
        return (f"needs {need_bytes / 2 ** 30:.2f} GiB on the GPU, over {fraction:.0%} of its "
                f"{free / 2 ** 30:.2f} GiB free")
    return None


def problem_bytes(problem):
    return problem.bytes_float32()
