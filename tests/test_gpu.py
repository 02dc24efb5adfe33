"""GPU kernels against the float64 reference: the CPU kernels' tests, on the device.

Each test runs twice:

``cuda``
    on a real GPU through CuPy (marker ``gpu``; skipped, with the reason, where CuPy or a CUDA device
    is missing);
``emulated``
    through the CPU stand-in for CuPy in ``tests/fakecuda``, which compiles the CUDA C with the host
    compiler and checks arguments, launch limits, unwritten outputs and writes out of bounds. It runs
    wherever g++ is installed, so CI checks the kernels' arithmetic without a GPU.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from convbench import ConvProblem, UnsupportedProblem
from convbench.accuracy import compare, make_inputs
from convbench.reference import reference_for
from convbench.registry import Kernel, all_kernels

from .fakecuda import compiler_missing_reason, emulated_cupy
from .test_kernels import EDGE_CASES, check_stages, random_problems

GPU_SPECS = {kernel.name: kernel.spec for kernel in all_kernels() if kernel.spec.backend == "gpu"}
OURS = [name for name, spec in GPU_SPECS.items() if not spec.peer]
DEVICES = [pytest.param("cuda", marks=pytest.mark.gpu), "emulated"]


@pytest.fixture(scope="module", params=DEVICES)
def device(request):
    """The cupy module and fresh Kernel objects bound to it."""
    if request.param == "cuda":
        yield SimpleNamespace(name="cuda", kernels={name: Kernel(spec) for name, spec in GPU_SPECS.items()},
                              cupy=None)
        return
    reason = compiler_missing_reason()
    if reason:
        pytest.skip(reason)
    with emulated_cupy() as cupy:
        kernels = {name: Kernel(GPU_SPECS[name]) for name in OURS}  # no cuDNN to emulate
        yield SimpleNamespace(name="emulated", kernels=kernels, cupy=cupy)


def kernel_on(device, name):
    kernel = device.kernels.get(name)
    if kernel is None:
        pytest.skip(f"{name} is not emulated")
    if kernel.unavailable_reason:
        pytest.skip(f"{name}: {kernel.unavailable_reason}")
    return kernel


def skip_unless_supported(kernel, problem):
    reason = kernel.supports(problem)
    if reason:
        pytest.skip(f"{kernel.name}: {reason}")


def supported_case(device, name, *descriptors):
    """(kernel, problem) for a test on one problem: the first of ``descriptors`` the kernel runs,
    skipped where it runs none of them."""
    kernel = kernel_on(device, name)
    for descriptor in descriptors:
        problem = ConvProblem.parse(descriptor)
        if kernel.supports(problem) is None:
            break
    skip_unless_supported(kernel, problem)
    return kernel, problem


def cupy_of(device):
    if device.cupy is not None:
        return device.cupy
    import cupy
    return cupy


def run_on_device(device, kernel, problem, fill="uniform", seed=11):
    cupy = cupy_of(device)
    x, w = make_inputs(problem, seed=seed, fill=fill)
    y = kernel.prepare(problem, w)(cupy.asarray(x))
    assert type(y).__module__.split(".")[0] == "cupy", f"{kernel.name} returned {type(y)}"
    return cupy.asnumpy(y), reference_for(problem, x, w)


@pytest.mark.parametrize("name", list(GPU_SPECS))
@pytest.mark.parametrize("descriptor", EDGE_CASES)
def test_gpu_edge_cases(device, name, descriptor):
    kernel = kernel_on(device, name)
    problem = ConvProblem.parse(descriptor)
    reason = kernel.supports(problem)
    if reason:
        with pytest.raises(UnsupportedProblem):
            kernel.prepare(problem, make_inputs(problem)[1])
        return
    y, ref = run_on_device(device, kernel, problem)
    result = compare(y, ref, kernel.tolerance_for(problem))
    assert result.passed, f"{kernel.name} on {problem}: {result.reason}"


@pytest.mark.parametrize("name", list(GPU_SPECS))
def test_gpu_random_problems_and_integer_fill(device, name):
    kernel, _ = supported_case(device, name, "mb1ic4ih8oc4oh8kh3ph1", "mb1ic4ih8oc4oh8kh5ph2")
    checked = 0
    for problem in random_problems(30, seed=99) + random_problems(8, seed=99, filters=(5,)):
        if kernel.supports(problem) is None:
            checked += 1
            y, ref = run_on_device(device, kernel, problem)
            tolerance = kernel.tolerance_for(problem)
            assert compare(y, ref, tolerance).passed, f"{kernel.name} on {problem}"
            y, ref = run_on_device(device, kernel, problem, fill="integer")
            exact = kernel.spec.exact_on_integers
            result = compare(y, ref, kernel.tolerance_for(problem), exact=exact)
            assert result.passed, f"{kernel.name} on {problem} (integer fill): {result.reason}"
    assert checked > 0, f"{kernel.name} accepted none of the random problems"


@pytest.mark.parametrize("name", list(GPU_SPECS))
def test_gpu_tiles_and_blocks_at_their_edges(device, name):
    """Sizes just past a tile or block boundary: the direct kernel's 16x16 output tile and 16-channel
    blocks, Winograd's 2- and 4-pixel tiles, several thread blocks in the grid-stride kernels."""
    kernel = kernel_on(device, name)
    for descriptor in ("mb2ic3ih17iw18oc17oh17ow18kh3ph1", "mb1ic33ih9oc35oh9kh3ph1",
                       "g3mb1ic6ih33iw5oc51oh33ow5kh3ph1", "mb3ic5ih31oc7oh29kh3"):
        problem = ConvProblem.parse(descriptor)
        if kernel.supports(problem) is None:
            y, ref = run_on_device(device, kernel, problem, seed=3)
            result = compare(y, ref, kernel.tolerance_for(problem))
            assert result.passed, f"{kernel.name} on {problem}: {result.reason}"


@pytest.mark.parametrize("name", list(GPU_SPECS))
def test_gpu_repeated_calls_are_independent(device, name):
    kernel, problem = supported_case(device, name, "mb1ic4ih8oc4oh8kh3ph1", "mb1ic4ih8oc4oh8kh5ph2")
    cupy = cupy_of(device)
    x1, w = make_inputs(problem, seed=1)
    x2 = make_inputs(problem, seed=2)[0]
    run = kernel.prepare(problem, w)
    y1 = run(cupy.asarray(x1))
    first = cupy.asnumpy(y1)
    y2 = cupy.asnumpy(run(cupy.asarray(x2)))
    np.testing.assert_array_equal(cupy.asnumpy(y1), first)  # the second call left y1 alone
    tolerance = kernel.tolerance_for(problem)
    assert compare(y2, reference_for(problem, x2, w), tolerance).passed


@pytest.mark.parametrize("name", list(GPU_SPECS))
def test_gpu_stages_in_order_are_the_kernel(device, name):
    kernel, problem = supported_case(device, name, "mb2ic3ih9iw7oc4oh9ow7kh3ph1",
                                     "mb2ic3ih9iw7oc4oh9ow7kh5ph2")
    cupy = cupy_of(device)
    staged = check_stages(kernel, problem, cupy.asarray, cupy.asnumpy)
    assert staged == (kernel.spec.algo in ("im2col", "fft", "fft_tiled")
                      or kernel.spec.algo.startswith("winograd"))


@pytest.mark.parametrize("name", list(GPU_SPECS))
def test_gpu_run_refuses_host_arrays(device, name):
    kernel, problem = supported_case(device, name, "mb1ic4ih8oc4oh8kh3ph1", "mb1ic4ih8oc4oh8kh5ph2")
    run = kernel.prepare(problem, make_inputs(problem)[1])
    with pytest.raises(ValueError, match="cupy.ndarray"):
        run(np.zeros(problem.input_shape, np.float32))


def test_gpu_kernels_are_registered_for_every_algorithm():
    ours_on_cpu = {kernel.spec.algo for kernel in all_kernels()
                   if kernel.spec.backend == "cpu" and not kernel.spec.peer}
    assert ours_on_cpu >= {"direct", "im2col", "fft", "fft_tiled", "winograd", "winograd4"}
    assert {spec.algo for spec in GPU_SPECS.values()} >= ours_on_cpu   # each one on the GPU too
    for spec in GPU_SPECS.values():
        assert "gpu" in spec.requires and "cupy" in spec.requires


def test_gpu_im2col_skips_a_column_matrix_with_more_rows_than_a_grid_has_blocks(device,
                                                                                 monkeypatch):
    kernel, problem = supported_case(device, "im2col/gpu", "mb2ic4ih8oc4oh8kh3ph1")
    import kernels.gpu.im2col as module
    rows = problem.n * problem.c * problem.r * problem.s      # one block per row
    monkeypatch.setattr(module, "GRID_X_LIMIT", rows)
    assert kernel.supports(problem) is None
    monkeypatch.setattr(module, "GRID_X_LIMIT", rows - 1)
    assert f"has {rows} rows (one CUDA block each" in kernel.supports(problem)
