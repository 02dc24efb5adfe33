"""The one table of every (algorithm, backend) convbench knows, and the kernel contract.

A kernel implementation is an object (reached lazily through a ``"module:attribute"`` string) with

``supports(p) -> str | None``
    ``None`` when it can run problem ``p``, else the reason it cannot.
``workspace_bytes(p) -> int``
    Extra memory beyond input, weights and output (column matrix, transformed tiles, spectra).
``prepare(p, w) -> run``
    Once per problem: weight transforms, plans, buffers. ``run(x)`` is the timed hot path, taking a
    float32 NCHW array and returning a float32 NCHW array.

Kernels only read the problem's attributes; they import nothing from ``convbench``. Adding an algorithm
is one module under ``kernels/`` and one row below; the sweep and the tests pick it up from here.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .memory import default_budget, format_bytes
from .reach import imported_module
from .requirements import installed


class UnsupportedProblem(NotImplementedError):
    """A kernel cannot run this problem; ``reason`` says why (a SKIPPED row in a sweep)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class KernelSpec:
    algo: str
    backend: str
    target: str                  # "module:attribute", imported on first use
    tolerance: float             # relative L2 error allowed on uniform [-1, 1] inputs
    exact_on_integers: bool      # must match the reference bit for bit on the integer fill
    requires: tuple = ()         # importable modules, plus "gpu" for a visible CUDA device
    peer: bool = False           # a vendor/library baseline rather than one of our kernels
    summary: str = ""
    tolerance_depth: int = 4608  # the deepest sum (C/groups * R * S) ``tolerance`` was measured on


# A sum of n float32 products with random signs, added one after another, is off by about
# u * sqrt(n) of its size (u = 2**-24): each addition rounds at the size of the partial sum so far,
# about sqrt(i) terms' worth. Past the deepest sum its tolerance was measured on, a kernel's
# tolerance grows the same way. Measured on the AMD CI machine (validated as a run does, uniform
# fill, batch 1, 32 output channels, the largest of three seeds): direct's error went 4.2e-7,
# 1.2e-6, 2.3e-6, 3.3e-6 at 64, 512, 2048 and 4096 channels of 3x3 (576 to 36 864 terms),
# F(4x4,3x3)'s 1.8e-6, 4.1e-6, 8.3e-6, 1.5e-5; im2col's, whose BLAS adds blocks of the sum, stayed
# at 3-4e-7. 4608 terms is ResNet-50's and VGG-16's deepest 3x3 layer (512 channels), the deepest
# of the sets most rows below were measured on: with a fixed tolerance, direct failed 6 of 3000
# random problems of 29 000-36 000 terms (11x11 filters on about 250 channels) by up to 1.1x.


# Tolerances: relative L2 error allowed on uniform [-1, 1] inputs. Each is a ceiling set a few times
# above the largest error measured with `python -m convbench run --check-only` over the `default` and
# `resnet50` sets (batch 1, seed 0) on this project's development machine (2-core Intel Xeon, AVX-512,
# numpy 2.4 with OpenBLAS 0.3.31); the measured maximum and median are in the comment of each row.
# F(4x4,3x3) is six times less accurate than F(2x2,3x3): its transforms carry constants up to 8 and
# 1/24 (Lavin & Gray 2015 discuss the growth of error with tile size).
REGISTRY = (
    # measured max 8.1e-7, median 3.5e-7 (33 layers) -> 3e-6; with multiply-adds fused (FMA),
    # measured again on the AMD CI machine: max 1.3e-6, median 4.1e-7
    KernelSpec("direct", "cpu", "kernels.cpu.direct:direct", 3e-6, True, ("numba",),
               summary="sliding window, numba, 8 output channels x 32 positions summed in registers"),
    # measured max 3.7e-7, median 3.0e-7 (33 layers) -> 2e-6
    KernelSpec("im2col", "cpu", "kernels.cpu.im2col:im2col_gemm", 2e-6, True, ("numba",),
               summary="numba im2col lowering, then one SGEMM per (image, group) through BLAS"),
    # measured max 3.7e-7, median 2.1e-7 (23 stride-1 layers) -> 2e-6
    KernelSpec("fft", "cpu", "kernels.cpu.fft:fft", 2e-6, False, ("numba",),
               summary="scipy.fft real transforms, batched complex matmul over channels; stride 1"),
    # measured max 4.2e-7, median 2.2e-7 (77 stride-1 layers, batch 1, --check-only) -> 2e-6
    KernelSpec("fft_tiled", "cpu", "kernels.cpu.fft:fft_tiled", 2e-6, False, ("numba",),
               summary="overlap-save FFT of T x T tiles (scipy.fft), complex matmul per frequency"),
    # measured max 5.0e-7, median 3.5e-7 (9 3x3 layers) -> 2e-6. Over stride phases (the Winograds
    # on DeepBench's strided 5x5 and 5x10 layers and the stems, `find`, AMD CI machine, up to
    # 1024 phase channels summed) each Winograd's largest error stayed under its tolerance by 3.8x
    # or more: F(2x2,3x3) 5.2e-7, F(4x4,3x3) 2.4e-6, F(2x2,5x5) 1.3e-6, F(4x4,5x5) 6.6e-6
    KernelSpec("winograd", "cpu", "kernels.cpu.winograd:winograd_f2x2_3x3", 2e-6, False, ("numba",),
               summary="Winograd F(2x2,3x3): numba transforms, 16 SGEMMs through BLAS; "
                       "strided: over stride phases"),
    # measured max 3.0e-6, median 2.3e-6 (9 3x3 layers) -> 1e-5
    KernelSpec("winograd4", "cpu", "kernels.cpu.winograd:winograd_f4x4_3x3", 1e-5, False,
               ("numba",),
               summary="Winograd F(4x4,3x3): numba transforms, 36 SGEMMs through BLAS; "
                       "strided: over stride phases"),
    # 5x5 layers of googlenet, alexnet, lenet5, deepbench and smoke (22, --check-only, batch as in
    # the sets, AMD CI machine): measured max 5.1e-6, median 1.5e-6 -> 2e-5. The error grows with
    # the channels summed: the largest are on DeepBench's layers of 832 channels of 7 x 7 and 512
    # of 14 x 14
    KernelSpec("winograd_5x5", "cpu", "kernels.cpu.winograd:winograd_f2x2_5x5", 2e-5, False,
               ("numba",),
               summary="Winograd F(2x2,5x5): numba transforms, 36 SGEMMs through BLAS; "
                       "strided: over stride phases",
               tolerance_depth=832 * 25),
    # the same 22: measured max 1.05e-5, median 2.7e-6 -> 5e-5 (constants up to 21/4 and 1/90)
    KernelSpec("winograd4_5x5", "cpu", "kernels.cpu.winograd:winograd_f4x4_5x5", 5e-5, False,
               ("numba",),
               summary="Winograd F(4x4,5x5): numba transforms, 64 SGEMMs through BLAS; "
                       "strided: over stride phases",
               tolerance_depth=832 * 25),
    # Peers: what a user would call instead. Tolerances are set like ours (see above); oneDNN and
    # cuDNN may pick Winograd or FFT themselves.
    KernelSpec("torch", "cpu", "kernels.peers.torch_conv:torch_cpu", 1e-5, False, ("torch",),
               peer=True, summary="PyTorch conv2d (oneDNN)"),
    KernelSpec("scipy", "cpu", "kernels.peers.scipy_signal:scipy_signal", 1e-5, False, ("scipy",),
               peer=True, summary="scipy.signal.correlate, its own choice of direct or FFT"),
    # GPU (CuPy). Tolerances are the CPU kernels' until measured on a GPU: the same algorithms in
    # float32, with FP32 (not TF32) cuBLAS.
    KernelSpec("direct", "gpu", "kernels.gpu.direct:direct", 3e-6, True, ("cupy", "gpu"),
               summary="CUDA kernel, input patch and filters staged in shared memory"),
    KernelSpec("im2col", "gpu", "kernels.gpu.im2col:im2col_gemm", 2e-6, True, ("cupy", "gpu"),
               summary="CUDA im2col, then strided-batched cuBLAS SGEMM"),
    KernelSpec("fft", "gpu", "kernels.gpu.fft:fft", 2e-6, False, ("cupy", "gpu"),
               summary="cuFFT real transforms, batched complex matmul over channels; stride 1"),
    KernelSpec("fft_tiled", "gpu", "kernels.gpu.fft:fft_tiled", 2e-6, False, ("cupy", "gpu"),
               summary="overlap-save FFT of T x T tiles (cuFFT), batched complex matmul"),
    KernelSpec("winograd", "gpu", "kernels.gpu.winograd:winograd_f2x2_3x3", 2e-6, False,
               ("cupy", "gpu"),
               summary="Winograd F(2x2,3x3): CUDA transforms, batched SGEMM; "
                       "strided: over stride phases"),
    KernelSpec("winograd4", "gpu", "kernels.gpu.winograd:winograd_f4x4_3x3", 1e-5, False,
               ("cupy", "gpu"),
               summary="Winograd F(4x4,3x3): CUDA transforms, batched SGEMM; "
                       "strided: over stride phases"),
    KernelSpec("winograd_5x5", "gpu", "kernels.gpu.winograd:winograd_f2x2_5x5", 2e-5, False,
               ("cupy", "gpu"),
               summary="Winograd F(2x2,5x5): CUDA transforms, batched SGEMM; "
                       "strided: over stride phases",
               tolerance_depth=832 * 25),
    KernelSpec("winograd4_5x5", "gpu", "kernels.gpu.winograd:winograd_f4x4_5x5", 5e-5, False,
               ("cupy", "gpu"),
               summary="Winograd F(4x4,5x5): CUDA transforms, batched SGEMM; "
                       "strided: over stride phases",
               tolerance_depth=832 * 25),
    KernelSpec("torch", "gpu", "kernels.peers.torch_conv:torch_gpu", 1e-5, False,
               ("torch", "cupy", "gpu"), peer=True,
               summary="PyTorch conv2d (cuDNN, benchmark mode, TF32 off)"),
)


def _package_sources(module_name, seen=None):
    """Source files of ``module_name`` and of what it imports from its own top-level package."""
    seen = set() if seen is None else seen
    spec = importlib.util.find_spec(module_name)
    if not spec or not spec.origin or spec.origin in seen or not spec.origin.endswith(".py"):
        return seen
    seen.add(spec.origin)
    parent = module_name.rpartition(".")[0]
    if parent:
        _package_sources(parent, seen)  # a package's __init__ runs first (and may set things up)
    top = module_name.split(".")[0]
    package = module_name if spec.submodule_search_locations else module_name.rpartition(".")[0]
    tree = ast.parse(Path(spec.origin).read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom):
            target = imported_module(package, node.level, node.module)
            names = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name.split(".")[0] == top:
                try:
                    _package_sources(name, seen)
                except (ImportError, ValueError):
                    pass  # "from .module import function": the name is not a module
    return seen


def _gpu_missing_reason():
    """None when CuPy sees a CUDA device, else why not. Imports CuPy only when asked."""
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # noqa: BLE001 - any failure means "no usable GPU", with its message
        return f"no usable CUDA device ({type(error).__name__}: {error})"
    return None if count > 0 else "no CUDA device visible"


class Kernel:
    """One registry row, its implementation loaded on first use, behind the checked contract."""

    def __init__(self, spec: KernelSpec):
        self.spec = spec

    def __repr__(self):
        return f"<Kernel {self.name}>"

    @property
    def name(self) -> str:
        return f"{self.spec.algo}/{self.spec.backend}"

    @cached_property
    def unavailable_reason(self):
        """None when every requirement is met here, else what is missing."""
        for requirement in self.spec.requires:
            if requirement == "gpu":
                reason = _gpu_missing_reason()
                if reason:
                    return reason
            elif not installed(requirement):
                return f"{requirement} is not installed"
        return None

    @cached_property
    def impl(self):
        reason = self.unavailable_reason
        if reason:
            raise UnsupportedProblem(reason)
        module_name, _, attribute = self.spec.target.partition(":")
        return getattr(importlib.import_module(module_name), attribute)

    def source_files(self):
        """Files whose text defines this kernel (for the source hash in results): its module and,
        recursively, the modules of the same top-level package that it imports."""
        return sorted(_package_sources(self.spec.target.partition(":")[0]))

    def workspace_bytes(self, problem) -> int:
        return int(self.impl.workspace_bytes(problem))

    def tolerance_for(self, problem) -> float:
        """The relative L2 error allowed on ``problem``: the registry's tolerance, grown as the
        square root of the sum's depth (C/groups * R * S) past the deepest it was measured on."""
        depth = problem.terms_per_output
        return self.spec.tolerance * max(1.0, (depth / self.spec.tolerance_depth) ** 0.5)

    def memory_needed(self, problem) -> int:
        """Input, weights, output and workspace, in bytes."""
        return problem.bytes_float32() + self.workspace_bytes(problem)

    def supports(self, problem, memory_budget=None, workspace_limit=None):
        """None when this kernel can run ``problem`` here within the memory budget, else why not.

        ``memory_budget`` defaults to half the memory available now. ``workspace_limit`` (bytes,
        none by default) refuses a kernel whose workspace is larger, as cuDNN's find does when it
        is given a workspace size: the peers report none (their libraries keep their own).
        """
        if self.unavailable_reason:
            return self.unavailable_reason
        reason = self.impl.supports(problem)
        if reason:
            return reason
        budget = default_budget() if memory_budget is None else memory_budget
        workspace = self.workspace_bytes(problem)
        need = self.memory_needed(problem)
        if need > budget:
            return (f"needs {format_bytes(need)} (workspace {format_bytes(workspace)}), over the "
                    f"memory budget of {format_bytes(budget)}")
        if workspace_limit is not None and workspace > workspace_limit:
            return (f"workspace {format_bytes(workspace)}, over the workspace limit of "
                    f"{format_bytes(workspace_limit)}")
        return None

    def prepare(self, problem, w, memory_budget=None):
        """Check ``w`` and the problem, then return the kernel's ``run(x)`` for this problem.

        Raises
        ------
        UnsupportedProblem
            When :meth:`supports` gives a reason.
        ValueError
            When ``w`` is not a float32 array of the problem's weight shape.
        """
        reason = self.supports(problem, memory_budget)
        if reason:
            raise UnsupportedProblem(f"{self.name}: {reason}")
        check_array("w", w, problem.weight_shape)
        inner = self.impl.prepare(problem, w)
        expected = problem.input_shape
        device = self.spec.backend == "gpu"

        def run(x):
            check_array("x", x, expected, device=device)
            return inner(x)

        run.unchecked = inner  # the timing harness calls this after one checked call
        run.stages = getattr(inner, "stages", ())  # named stages, for the per-stage breakdown
        run.impl = getattr(inner, "impl", None)    # the implementation prepare chose, if several
        return run


def check_array(label, array, shape, device=False):
    """Raise ValueError unless ``array`` is a C-contiguous float32 array of ``shape``.

    On the CPU it must be a numpy.ndarray; for a GPU kernel (``device``) a cupy.ndarray.
    """
    if device:
        if type(array).__module__.split(".")[0] != "cupy":
            raise ValueError(f"{label} must be a cupy.ndarray for a GPU kernel, got "
                             f"{type(array).__module__}.{type(array).__name__}; "
                             f"use cupy.asarray({label})")
    elif not isinstance(array, np.ndarray):
        raise ValueError(f"{label} must be a numpy.ndarray, got {type(array).__name__}")
    if array.dtype != np.float32:
        raise ValueError(f"{label} has dtype {array.dtype}; convbench kernels take float32")
    if array.shape != tuple(shape):
        raise ValueError(f"{label} has shape {array.shape}; this problem expects {tuple(shape)}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{label} is not C-contiguous (NCHW/KCRS row-major expected); "
                         f"pass numpy.ascontiguousarray({label})")


def _extra_specs():
    """Kernel specs named by CONVBENCH_EXTRA_KERNELS ("module:attribute", comma-separated).

    This is how tests register deliberately broken kernels (one that crashes its process, one that
    hangs) without putting them in the table users see; the variable reaches the sweep's child
    processes and pyperf's workers.
    """
    specs = []
    for target in filter(None, os.environ.get("CONVBENCH_EXTRA_KERNELS", "").split(",")):
        module_name, _, attribute = target.strip().partition(":")
        specs.extend(getattr(importlib.import_module(module_name), attribute))
    return tuple(specs)


_KERNELS = {(spec.algo, spec.backend): Kernel(spec) for spec in REGISTRY + _extra_specs()}


def algorithms():
    return sorted({algo for algo, _ in _KERNELS})


def backends():
    return sorted({backend for _, backend in _KERNELS})


def usable_backends():
    """Backends with at least one kernel that can run here (no CuPy: no "gpu")."""
    return sorted({backend for (_, backend), kernel in _KERNELS.items()
                   if kernel.unavailable_reason is None})


def all_kernels():
    return list(_KERNELS.values())


def get_kernel(algo: str, backend: str = "cpu") -> Kernel:
    """The registered kernel for (algo, backend); ValueError listing the valid names otherwise.

    ``algo`` may also be a kernel's full name as rows and tables print it, ``"fft/gpu"``.
    """
    if "/" in algo:
        algo, backend = algo.split("/", 1)
    try:
        return _KERNELS[(algo, backend)]
    except KeyError:
        known = ", ".join(f"{a}/{b}" for a, b in _KERNELS)
        raise ValueError(f"no kernel {algo!r} for backend {backend!r}; registered: {known}") from None


def select(algos=None, backends_=None):
    """Kernels whose algorithm and backend are in the given lists (None means all).

    Raises ValueError naming any unknown algorithm or backend and listing the valid ones.
    """
    for label, wanted, known in (("algorithm", algos, algorithms()),
                                 ("backend", backends_, backends())):
        unknown = [name for name in (wanted or ()) if name not in known]
        if unknown:
            raise ValueError(f"unknown {label} {', '.join(map(repr, unknown))}; "
                             f"valid: {', '.join(known)}")
    return [kernel for (algo, backend), kernel in _KERNELS.items()
            if (not algos or algo in algos) and (not backends_ or backend in backends_)]
