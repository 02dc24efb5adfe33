"""GPU kernels against the float64 reference: the CPU kernels' tests, on the device.

Skipped, with the reason, where CuPy or a CUDA device is missing.
"""

import numpy as np
import pytest

from convbench import ConvProblem, UnsupportedProblem
from convbench.accuracy import compare, make_inputs
from convbench.reference import reference_for
from convbench.registry import all_kernels

from .test_kernels import EDGE_CASES, random_problems

pytestmark = pytest.mark.gpu

GPU_KERNELS = [kernel for kernel in all_kernels() if kernel.spec.backend == "gpu"]
IDS = [kernel.name for kernel in GPU_KERNELS]


@pytest.fixture(autouse=True)
def needs_gpu(request):
    callspec = getattr(request.node, "callspec", None)
    kernel = callspec.params.get("kernel") if callspec else None
    reason = kernel.unavailable_reason if kernel else None
    if reason:
        pytest.skip(f"{kernel.name}: {reason}")


def run_on_device(kernel, problem, fill="uniform"):
    import cupy
    x, w = make_inputs(problem, seed=11, fill=fill)
    y = kernel.prepare(problem, w)(cupy.asarray(x))
    return cupy.asnumpy(y), reference_for(problem, x, w)


@pytest.mark.parametrize("kernel", GPU_KERNELS, ids=IDS)
@pytest.mark.parametrize("descriptor", EDGE_CASES)
def test_gpu_edge_cases(kernel, descriptor):
    problem = ConvProblem.parse(descriptor)
    reason = kernel.supports(problem)
    if reason:
        with pytest.raises(UnsupportedProblem):
            kernel.prepare(problem, make_inputs(problem)[1])
        return
    y, ref = run_on_device(kernel, problem)
    result = compare(y, ref, kernel.spec.tolerance)
    assert result.passed, f"{kernel.name} on {problem}: {result.reason}"


@pytest.mark.parametrize("kernel", GPU_KERNELS, ids=IDS)
def test_gpu_random_problems_and_integer_fill(kernel):
    for problem in random_problems(30, seed=99):
        if kernel.supports(problem) is None:
            y, ref = run_on_device(kernel, problem)
            assert compare(y, ref, kernel.spec.tolerance).passed, f"{kernel.name} on {problem}"
            y, ref = run_on_device(kernel, problem, fill="integer")
            exact = kernel.spec.exact_on_integers
            result = compare(y, ref, kernel.spec.tolerance, exact=exact)
            assert result.passed, f"{kernel.name} on {problem} (integer fill): {result.reason}"


@pytest.mark.parametrize("kernel", GPU_KERNELS, ids=IDS)
def test_gpu_run_refuses_host_arrays(kernel):
    problem = ConvProblem.parse("mb1ic4ih8oc4oh8kh3ph1")
    run = kernel.prepare(problem, make_inputs(problem)[1])
    with pytest.raises(ValueError, match="cupy.ndarray"):
        run(np.zeros(problem.input_shape, np.float32))


def test_gpu_kernels_are_registered_for_every_algorithm():
    assert {k.spec.algo for k in GPU_KERNELS} >= {"direct", "im2col", "fft", "winograd", "winograd4"}
    for kernel in GPU_KERNELS:
        assert "gpu" in kernel.spec.requires and "cupy" in kernel.spec.requires
