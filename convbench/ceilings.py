"""What this machine can do at best: SGEMM rate and memory copy bandwidth.

Each row's GFLOP/s is also given as a fraction of the SGEMM ceiling, so a user on new hardware sees how
close an algorithm comes to the machine. The CPU's are measured at the start of every timed run (about
two seconds) and again at its end: on a shared machine they move by up to 2x within an hour, so a
cached figure would misstate the fraction, and the two measurements show whether the machine's speed
changed during the run. The GPU's (a 1 GiB copy, a 4096^3 SGEMM) are measured once per machine id and
cached in ``results/<machine-id>/ceilings.json``; the CPU's are not written there, so a run leaves
that (committed) file as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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


# Backends whose ceilings are measured for every run rather than read from the cache.
MEASURED_EVERY_RUN = ("cpu",)
# Start and end measurements further apart than this make the run's summary warn.
DRIFT_WARNING = 0.15


def measure(backend):
    found = measure_gpu() if backend == "gpu" else measure_cpu()
    found["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return found


def pinned_key(backend, threads):
    """The ceilings' key for a backend run at a pinned thread count: ``cpu@1t``."""
    return f"{backend}@{threads}t"


def measure_pinned(threads, timeout=300):
    """The CPU's ceilings with ``threads`` threads on as many cores, measured in a child process
    (numba's and the BLAS's thread counts are fixed when they load), for the rows of a run that
    pins its cases to that count."""
    from .machine import thread_environment

    done = subprocess.run([sys.executable, "-m", "convbench.ceilings", "--threads", str(threads)],
                          capture_output=True, text=True, timeout=timeout,
                          env=thread_environment(threads))
    if done.returncode != 0:
        raise RuntimeError(f"measuring the CPU ceilings at {threads} threads failed: "
                           f"{done.stderr.strip()[-300:]}")
    found = json.loads(done.stdout)
    found.update(threads=threads, measured=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return found


def ceilings(cache_dir, backends=("cpu",), remeasure=False):
    """Ceilings per backend: measured now for :data:`MEASURED_EVERY_RUN`, else read from
    ``cache_dir/ceilings.json`` (measured and stored there when missing or ``remeasure``)."""
    found = {backend: measure(backend) for backend in backends if backend in MEASURED_EVERY_RUN}
    path = Path(cache_dir) / "ceilings.json"
    cached = {}
    if path.is_file() and not remeasure:
        try:
            cached = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            cached = {}
    changed = False
    for backend in backends:
        if backend not in cached and backend not in found:
            cached[backend] = measure(backend)
            changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(cached, indent=1))
    return {backend: found.get(backend) or cached[backend] for backend in backends}


def drift(start, end):
    """``{backend: relative change of the SGEMM rate}`` between a run's two measurements."""
    return {backend: end[backend]["sgemm_gflops"] / start[backend]["sgemm_gflops"] - 1
            for backend in end if backend in start}


def drift_note(start, end):
    """One line per backend measured at both ends of a run; a warning when the rate moved."""
    lines = []
    for backend, change in drift(start, end).items():
        line = (f"{backend} SGEMM ceiling: {start[backend]['sgemm_gflops']:.0f} GFLOP/s at the start, "
                f"{end[backend]['sgemm_gflops']:.0f} at the end ({100 * change:+.0f} %)")
        if abs(change) > DRIFT_WARNING:
            line += ("; the machine's speed changed during the run, so its times are not "
                     "comparable across it (convbench ab compares code on a drifting machine)")
        lines.append(line)
    return "\n".join(lines)


def main(argv=None):
    """``python -m convbench.ceilings --threads N``: the CPU's ceilings on N cores, as JSON."""
    parser = argparse.ArgumentParser(prog="python -m convbench.ceilings")
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)
    from .machine import THREAD_VARIABLES, pin_threads, thread_environment

    wanted = thread_environment(args.threads)
    if any(os.environ.get(name) != wanted[name] for name in THREAD_VARIABLES):
        # numpy (imported above) has already started the BLAS's thread pool, one thread per core,
        # and pinning moves only this thread, not the pool's: start again with the variables set
        os.execve(sys.executable, [sys.executable, "-m", "convbench.ceilings",
                                   "--threads", str(args.threads)], wanted)
    pin_threads(args.threads)
    found = measure_cpu()
    found["cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    found["variables"] = {name: os.environ[name] for name in THREAD_VARIABLES}
    json.dump(found, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
