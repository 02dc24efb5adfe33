"""What this machine can do at best: SGEMM rate and memory copy bandwidth.

Each row's GFLOP/s is also given as a fraction of the SGEMM ceiling, so a user on new hardware sees how
close an algorithm comes to the machine. Measured once per machine id and cached in
``results/<machine-id>/ceilings.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

SGEMM_SIZE = 2048          # square float32 matrices: large enough for BLAS to reach its peak
COPY_BYTES = 256 * 2 ** 20  # well past the last-level cache
REPEATS = 5


def _best_seconds(func, repeats=REPEATS):
    func()  # first call: page faults, thread pool start-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def measure_cpu():
    """Best SGEMM GFLOP/s through numpy's BLAS and best copy GB/s (read + write counted)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((SGEMM_SIZE, SGEMM_SIZE), dtype=np.float32)
    b = rng.standard_normal((SGEMM_SIZE, SGEMM_SIZE), dtype=np.float32)
    c = np.empty_like(a)
    gemm = _best_seconds(lambda: np.matmul(a, b, out=c))
    src = np.ones(COPY_BYTES // 4, dtype=np.float32)
    dst = np.empty_like(src)
    copy = _best_seconds(lambda: np.copyto(dst, src))
    return {"sgemm_gflops": 2 * SGEMM_SIZE ** 3 / gemm / 1e9,
            "copy_gbps": 2 * COPY_BYTES / copy / 1e9,
            "sgemm_size": SGEMM_SIZE, "copy_bytes": COPY_BYTES}


def measure_gpu(sgemm_size=4096, copy_bytes=4 * COPY_BYTES):
    """The same on GPU 0 through cuBLAS (TF32 off) and a device-to-device copy, timed by CUDA events.

    The copy is four times the CPU's: 1 GiB is still far past a GPU's L2 (50-60 MB on an H100/H200).
    """
    import cupy

    from .timing import cuda_time_func

    a = cupy.random.standard_normal((sgemm_size, sgemm_size), dtype=cupy.float32)
    b = cupy.random.standard_normal((sgemm_size, sgemm_size), dtype=cupy.float32)
    gemm = cuda_time_func(lambda _: cupy.matmul(a, b), None)
    gemm(2)
    gemm_s = min(gemm(10) / 10 for _ in range(REPEATS))
    src = cupy.ones(copy_bytes // 4, dtype=cupy.float32)
    dst = cupy.empty_like(src)
    copy = cuda_time_func(lambda _: cupy.copyto(dst, src), None)
    copy(2)
    copy_s = min(copy(10) / 10 for _ in range(REPEATS))
    return {"sgemm_gflops": 2 * sgemm_size ** 3 / gemm_s / 1e9,
            "copy_gbps": 2 * src.nbytes / copy_s / 1e9,
            "sgemm_size": sgemm_size, "copy_bytes": int(src.nbytes)}


def ceilings(cache_dir, backends=("cpu",), remeasure=False):
    """Ceilings per backend, read from ``cache_dir/ceilings.json`` or measured and stored there."""
    path = Path(cache_dir) / "ceilings.json"
    cached = {}
    if path.is_file() and not remeasure:
        try:
            cached = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            cached = {}
    changed = False
    for backend in backends:
        if backend not in cached:
            cached[backend] = measure_gpu() if backend == "gpu" else measure_cpu()
            cached[backend]["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cached, indent=1))
    return {backend: cached[backend] for backend in backends}
