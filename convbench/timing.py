"""Timed functions in pyperf's ``bench_time_func`` shape, and the timing modes.

A timed function takes ``loops``, runs the kernel that many times on inputs made beforehand, and
returns the elapsed seconds; pyperf divides by ``loops`` and does all the statistics. The function owns
its clock: a host clock for CPU kernels, CUDA events for GPU kernels (a bare host clock would time only
the launch).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    processes: int   # pyperf worker processes, each a fresh interpreter
    values: int      # timed values per process
    warmups: int     # untimed values per process before those
    min_time: float  # seconds one value should last at least; sets the loop count


# quick: one worker, a few values -- smoke runs and tests.
# default: 6 workers x 3 values. Timings vary more between worker processes than within one (on the
#   2-core development machine, FFT's per-worker medians on one layer spread over 5.9-7.6 ms while
#   values inside a worker agreed within 2 %), so the worker is the unit compare tests on, and six
#   per side is the fewest with which a two-sided Mann-Whitney test can reach p < 0.01. The default
#   set still takes under ten minutes there.
# rigorous: pyperf's own scale (it defaults to 20 processes x 3 values).
MODES = {
    "quick": Mode(processes=1, values=3, warmups=1, min_time=0.02),
    "default": Mode(processes=6, values=3, warmups=1, min_time=0.05),
    "rigorous": Mode(processes=20, values=3, warmups=2, min_time=0.1),
}


def loops_for(seconds_per_call: float, min_time: float) -> int:
    """Smallest loop count that makes one timed value last at least ``min_time``."""
    if not seconds_per_call > 0:
        return 1
    return max(1, math.ceil(min_time / seconds_per_call))


def host_time_func(run, x, clock=time.perf_counter):
    """Time ``run(x)`` with a host clock; for kernels that finish before they return (CPU)."""

    def time_func(loops):
        start = clock()
        for _ in range(loops):
            run(x)
        return clock() - start

    return time_func


def cuda_time_func(run, x, cupy_module=None):
    """Time ``run(x)`` between two CUDA events on the current stream; seconds of GPU time.

    The device is synchronised before the start event so that earlier work is not counted, and the
    end event is waited on so that all launched work is.
    """
    if cupy_module is None:
        import cupy as cupy_module

    def time_func(loops):
        cupy_module.cuda.Device().synchronize()
        start, end = cupy_module.cuda.Event(), cupy_module.cuda.Event()
        start.record()
        for _ in range(loops):
            run(x)
        end.record()
        end.synchronize()
        return cupy_module.cuda.get_elapsed_time(start, end) / 1e3

    return time_func


def time_func_for(backend, run, x):
    return cuda_time_func(run, x) if backend == "gpu" else host_time_func(run, x)


def seconds_per_call(backend, run, x, calls=3):
    """Rough cost of one call after warm-up, to choose ``loops``: the fastest of a few calls."""
    time_func = time_func_for(backend, run, x)
    return min(time_func(1) for _ in range(calls))


def time_stages(backend, stages, x, min_time, repeats=5):
    """{name: seconds per call} for a kernel's named stages, each timed alone, in order.

    The breakdown of where a kernel's time goes (transforms against multiply, as NNPACK's benchmark
    reports). Each stage is timed ``repeats`` times over enough loops to last ``min_time`` and the
    median kept. The stages run after the kernel has been called once, so every stage finds the
    buffers the ones before it fill. Their sum is close to the whole kernel's time but is measured
    in the case's own process, not in pyperf's workers.
    """
    found = {}
    for name, stage in stages:
        time_func = time_func_for(backend, stage, x)
        per_call = min(time_func(1) for _ in range(3))
        loops = loops_for(per_call, min_time)
        found[name] = statistics.median(time_func(loops) / loops for _ in range(repeats))
    return found
