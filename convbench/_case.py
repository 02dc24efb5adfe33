"""One (problem, algorithm, backend) case, run in its own process by the sweep.

The sweep starts ``python -m convbench._case ...`` for every case so that a kernel that crashes or
hangs costs one row, not the sweep. In that process (pyperf's *manager*):

1. make seeded inputs, ``prepare`` (timed as ``prepare_s``), the first call (``first_call_s``, which
   includes any compilation or cache load), and check the output against the float64 reference --
   the check doubles as the warm-up, and a kernel that fails it is never timed;
2. write what it found to ``--result`` at once, so a crash while timing still leaves it;
3. choose the loop count from a few calls and let pyperf spawn its worker processes, each of which
   re-runs this module with ``--worker``, rebuilds inputs and prepared weights, and times
   ``run(x)`` through :func:`convbench.timing.host_time_func` (or CUDA events on the GPU).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyperf

from .accuracy import compare, make_inputs, typical_output_norm
from .machine import blas_summary, library_settings, pin_threads
from .problem import ConvProblem
from .reference import reference_for
from .registry import get_kernel
from .timing import MODES, loops_for, seconds_per_call, time_func_for, time_stages

# Environment that changes what a kernel does; pyperf gives workers a cleaned environment otherwise.
# What pyperf's workers keep of the environment besides its own few (PATH, HOME, PYTHONPATH): thread
# settings, and on a GPU box where CUDA and its caches are found and whether TF32 is forced on or off;
# besides these, every variable the manager has that changes what a library does
# (:func:`convbench.machine.library_settings`: ``OPENBLAS_CORETYPE`` and the like), so the workers
# time the same BLAS kernels the manager validated with and the ceilings were measured with.
INHERITED_ENVIRONMENT = (
    "NUMBA_NUM_THREADS", "NUMBA_CACHE_DIR", "NUMBA_THREADING_LAYER", "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT", "MKL_NUM_THREADS",
    "VIRTUAL_ENV", "CONVBENCH_EXTRA_KERNELS", "XDG_CACHE_HOME",
    "CUDA_VISIBLE_DEVICES", "CUDA_PATH", "CUDA_HOME", "LD_LIBRARY_PATH", "CUPY_CACHE_DIR",
    "CUPY_TF32", "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE")
WORKER_BLAS = "convbench_blas"   # pyperf metadata: the BLAS line of the worker that timed
_OWN_OPTIONS = ("problem", "algo", "backend", "seed", "memory_budget", "threads")


def benchmark_name(problem, algo, backend, threads=None):
    """The pyperf benchmark name: the problem's descriptor plus algorithm and backend (and the
    thread count when the run pins one, so one file can hold the same case at several)."""
    return f"{problem.descriptor} {algo}/{backend}" + (f" threads={threads}" if threads else "")


def threads_seen():
    """What this process was given: the cores it may use, the thread variables it was started
    with (which the BLAS read when numpy loads it), and the thread counts of numba and torch as
    they report them, if a kernel loaded them."""
    from .machine import blas_summary, cpu_count, thread_settings

    seen = {"cpus": cpu_count(), "variables": thread_settings(), "blas": blas_summary()}
    if "numba" in sys.modules:
        seen["numba"] = int(sys.modules["numba"].get_num_threads())
    if "torch" in sys.modules:
        seen["torch"] = int(sys.modules["torch"].get_num_threads())
    return seen


def _forward(cmd, args):
    """pyperf hook: pass this module's own options on to each worker."""
    for option in _OWN_OPTIONS:
        value = getattr(args, option)
        if value is not None:
            cmd.extend([f"--{option.replace('_', '-')}", str(value)])


def _write_json(path, data):
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def to_host(array):
    """A numpy array from a kernel's output (CuPy arrays are copied back)."""
    return array.get() if hasattr(array, "get") and not hasattr(array, "__array_interface__") \
        else array


def to_device(backend, x):
    """The input where the kernel wants it: unchanged on the CPU, a CuPy copy for the GPU."""
    if backend != "gpu":
        return x
    import cupy
    return cupy.asarray(x)


def _synchronize(backend):
    if backend == "gpu":
        import cupy
        cupy.cuda.Device().synchronize()


def _release_device_memory(backend):
    """Give the manager's GPU memory back to the device while the workers run: CuPy's pool keeps
    freed blocks otherwise, and a worker's free-memory check would count them as taken."""
    if backend == "gpu":
        import cupy
        cupy.get_default_memory_pool().free_all_blocks()


def cached_reference(problem, x, w, seed, fill, cache_dir=None):
    """The float64 reference, computed once per (problem, seed, fill) when ``cache_dir`` is given.

    A sweep checks every kernel of a problem against the same reference; at batch 32 on VGG-16 that
    is over a hundred GFLOP of float64 on the host each time. The sweep gives each case its cache
    directory and empties it when it moves to the next problem.
    """
    if cache_dir is None:
        return reference_for(problem, x, w)
    key = hashlib.sha256(f"{problem.descriptor}|{seed}|{fill}".encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"{key}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass  # a partial or corrupt file: compute again
    ref = reference_for(problem, x, w)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, ref)
    os.replace(tmp, path)
    return ref


def validate(kernel, problem, seed, memory_budget, reference_cache=None):
    """Prepare, run once and compare; the dictionary of findings (status PASSED or FAILED)."""
    found = {"status": "PASSED", "reason": ""}
    backend = kernel.spec.backend
    x, w = make_inputs(problem, seed=seed, fill="uniform")
    x_dev = to_device(backend, x)
    start = time.perf_counter()
    run = kernel.prepare(problem, w, memory_budget)
    _synchronize(backend)
    found["prepare_s"] = time.perf_counter() - start
    found["impl"] = run.impl
    # measured here, under the case's own thread count (a kernel's per-thread scratch depends on it)
    found["workspace_bytes"] = kernel.workspace_bytes(problem)
    start = time.perf_counter()
    y = run(x_dev)
    _synchronize(backend)
    found["first_call_s"] = time.perf_counter() - start
    y = to_host(y)
    check = compare(y, cached_reference(problem, x, w, seed, "uniform", reference_cache),
                    kernel.tolerance_for(problem), scale=typical_output_norm(problem, x, w))
    found.update(rel_l2=check.rel_l2, max_err=check.max_err)
    if not check.passed:
        found.update(status="FAILED", reason=check.reason)
        return found, None, None
    if kernel.spec.exact_on_integers:
        xi, wi = make_inputs(problem, seed=seed, fill="integer")
        yi = to_host(kernel.prepare(problem, wi, memory_budget)(to_device(backend, xi)))
        exact = compare(yi, cached_reference(problem, xi, wi, seed, "integer", reference_cache),
                        kernel.tolerance_for(problem), exact=True)
        if not exact.passed:
            found.update(status="FAILED", reason=f"integer fill: {exact.reason}")
            return found, None, None
    return found, run, x_dev


def _manager_never_times(loops):
    raise RuntimeError("pyperf's manager process does not time; its workers do")


def main(argv=None):
    runner = pyperf.Runner(program_args=("-m", "convbench._case"), add_cmdline_args=_forward)
    parser = runner.argparser
    parser.add_argument("--problem", required=True, help="descriptor")
    parser.add_argument("--algo", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-budget", type=int, default=None)
    parser.add_argument("--mode", choices=sorted(MODES), default="default")
    parser.add_argument("--result", help="JSON file for the validation findings (manager only)")
    parser.add_argument("--check-only", action="store_true", help="validate, do not time")
    parser.add_argument("--reference-cache", help="directory for float64 references shared by the "
                        "kernels of one problem (manager only)")
    parser.add_argument("--threads", type=int, help="pin to this many cores (the sweep sets the "
                        "thread variables to match)")
    args = runner.parse_args(argv)
    if not args.worker and not args.result:
        runner.argparser.error("--result FILE is required: the validation findings are written "
                               "there (the harness passes it; see convbench.runner)")
    if args.threads:
        pin_threads(args.threads)
        # pyperf would otherwise move its workers to the machine's isolated CPUs, if it has any
        runner.args.affinity = ",".join(map(str, sorted(os.sched_getaffinity(0))))

    problem = ConvProblem.parse(args.problem)
    kernel = get_kernel(args.algo, args.backend)
    name = benchmark_name(problem, args.algo, args.backend, args.threads)

    if args.worker:
        # what this worker's BLAS chose, beside its values: the manager checks it against its own
        runner.metadata[WORKER_BLAS] = blas_summary()
        x, w = make_inputs(problem, seed=args.seed, fill="uniform")
        x = to_device(args.backend, x)
        run = kernel.prepare(problem, w, args.memory_budget)
        run(x)  # checked once; the timed loop calls the unchecked function
        runner.bench_time_func(name, time_func_for(args.backend, run.unchecked, x))
        return 0

    found, run, x = validate(kernel, problem, args.seed, args.memory_budget, args.reference_cache)
    found["threads_seen"] = threads_seen()
    _write_json(args.result, found)
    if run is None or args.check_only:
        return 0
    mode = MODES[args.mode]
    per_call = seconds_per_call(args.backend, run.unchecked, x)
    if run.stages:
        found["stages_s"] = time_stages(args.backend, run.stages, x, mode.min_time)
        _write_json(args.result, found)
    del run, x  # workers make their own; free the manager's memory while they run
    _release_device_memory(args.backend)
    # Calibrated here from validated calls, so pyperf spawns no calibration processes.
    runner.args.loops = loops_for(per_call, mode.min_time)
    runner.args.processes, runner.args.values = mode.processes, mode.values
    runner.args.warmups, runner.args.min_time = mode.warmups, mode.min_time
    # and every variable that changes what the libraries do, as this process had them
    runner.args.inherit_environ = sorted(set(INHERITED_ENVIRONMENT) | set(library_settings()))
    bench = runner.bench_time_func(name, _manager_never_times)
    found["threads_seen"]["workers_blas"] = sorted(
        {str(run.get_metadata().get(WORKER_BLAS)) for run in bench.get_runs() if run.values})
    found.update(loops=runner.args.loops, values=len(bench.get_values()),
                 samples_s=list(bench.get_values()),
                 process_medians_s=[statistics.median(run.values) for run in bench.get_runs()
                                    if run.values],
                 median_s=bench.median(), mad_s=bench.median_abs_dev(),
                 stdev_s=bench.stdev() if len(bench.get_values()) > 1 else 0.0)
    _write_json(args.result, found)
    return 0


if __name__ == "__main__":
    sys.exit(main())
