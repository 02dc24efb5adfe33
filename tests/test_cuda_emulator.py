"""The CPU stand-in for CuPy catches the mistakes it promises to (tests/fakecuda/README.md).

If these checks did nothing, the emulated GPU tests would pass broken kernels; each test here feeds it
one broken kernel or launch and expects the complaint.
"""

import numpy as np
import pytest

from convbench import ConvProblem
from convbench.accuracy import compare, make_inputs
from convbench.reference import reference_for

from .fakecuda import compiler_missing_reason, emulated_cupy

pytestmark = pytest.mark.skipif(compiler_missing_reason() is not None,
                                reason=compiler_missing_reason() or "")

SCALE = r"""
extern "C" __global__ void scale(const float* __restrict__ x, float* __restrict__ y, long long n,
                                 float a, int extra)
{
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n + extra) y[i] = a * x[i];
}
"""

REVERSE = r"""
extern "C" __global__ void reverse(const float* x, float* y, int n, int barrier)
{
    extern __shared__ float stage[];
    const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
    if (base + t < n) stage[t] = x[base + t];
    if (barrier) __syncthreads();
    const int from = blockDim.x - 1 - t;
    if (base + t < n) y[base + t] = stage[from];
}
"""


@pytest.fixture
def cupy():
    with emulated_cupy() as module:
        yield module


def launch_scale(cupy, n=1000, extra=0, dtype_n=np.int64, threads=128):
    kernel = cupy.RawKernel(SCALE, "scale")
    x = cupy.asarray(np.arange(n, dtype=np.float32))
    y = cupy.empty(n, dtype=cupy.float32)
    kernel(((n + extra + threads - 1) // threads,), (threads,),
           (x, y, dtype_n(n), np.float32(2.0), np.int32(extra)))
    return cupy.asnumpy(y)


def test_a_correct_kernel_runs(cupy):
    np.testing.assert_array_equal(launch_scale(cupy), 2 * np.arange(1000, dtype=np.float32))


def test_a_write_past_the_end_is_reported(cupy):
    with pytest.raises(RuntimeError, match="wrote outside the array passed as argument 1"):
        launch_scale(cupy, extra=3)


def test_a_scalar_of_the_wrong_width_is_refused(cupy):
    with pytest.raises(TypeError, match=r"argument 2 \(long long\) needs numpy.int64, got int32"):
        launch_scale(cupy, dtype_n=np.int32)


def test_argument_count_host_arrays_and_strided_views_are_refused(cupy):
    kernel = cupy.RawKernel(SCALE, "scale")
    x, y = cupy.zeros(8, dtype=cupy.float32), cupy.zeros(8, dtype=cupy.float32)
    with pytest.raises(TypeError, match="takes 5 arguments, got 4"):
        kernel((1,), (8,), (x, y, np.int64(8), np.float32(1)))
    with pytest.raises(TypeError, match="host"):
        kernel((1,), (8,), (np.zeros(8, np.float32), y, np.int64(8), np.float32(1), np.int32(0)))
    with pytest.raises(TypeError, match="non-contiguous"):
        kernel((1,), (4,), (cupy.zeros(16, dtype=cupy.float32)[::2], y, np.int64(4), np.float32(1), np.int32(0)))
    with pytest.raises(TypeError, match="float64"):
        kernel((1,), (8,), (cupy.zeros(8, dtype=cupy.float64), y, np.int64(8), np.float32(1),
                            np.int32(0)))


def test_launch_limits(cupy):
    kernel = cupy.RawKernel(SCALE, "scale")
    args = (cupy.zeros(8, dtype=cupy.float32), cupy.zeros(8, dtype=cupy.float32), np.int64(8), np.float32(1), np.int32(0))
    with pytest.raises(ValueError, match="threads per block"):
        kernel((1,), (64, 32), args)
    with pytest.raises(ValueError, match="grid size"):
        kernel((1, 70000), (8,), args)
    with pytest.raises(ValueError, match="opt-in"):
        kernel((1,), (8,), args, shared_mem=64 * 1024)


def test_unwritten_output_is_nan(cupy):
    kernel = cupy.RawKernel(SCALE, "scale")
    x, y = cupy.asarray(np.ones(256, np.float32)), cupy.empty(256, dtype=cupy.float32)
    kernel((1,), (128,), (x, y, np.int64(256), np.float32(1), np.int32(0)))  # covers half of y
    out = cupy.asnumpy(y)
    assert np.isfinite(out[:128]).all() and np.isnan(out[128:]).all()


def test_shared_memory_and_the_block_barrier(cupy):
    """Threads of a block really run together: with the barrier the block reverses its slice through
    shared memory; without it, some thread reads a slot not yet written (NaN-poisoned)."""
    kernel = cupy.RawKernel(REVERSE, "reverse")
    n, threads = 256, 64
    x = cupy.asarray(np.arange(n, dtype=np.float32))
    y = cupy.empty(n, dtype=cupy.float32)
    kernel((n // threads,), (threads,), (x, y, np.int32(n), np.int32(1)), shared_mem=4 * threads)
    expected = np.arange(n, dtype=np.float32).reshape(-1, threads)[:, ::-1].ravel()
    np.testing.assert_array_equal(cupy.asnumpy(y), expected)
    racy = [not np.array_equal(cupy.asnumpy(_reverse_without_barrier(cupy, kernel, n, threads)),
                               expected) for _ in range(20)]
    assert any(racy), "20 launches without the barrier all came out right: threads are not concurrent"


def _reverse_without_barrier(cupy, kernel, n, threads):
    x = cupy.asarray(np.arange(n, dtype=np.float32))
    y = cupy.empty(n, dtype=cupy.float32)
    kernel((n // threads,), (threads,), (x, y, np.int32(n), np.int32(0)), shared_mem=4 * threads)
    return y


def test_a_broken_index_in_the_direct_kernel_fails_the_reference_check(cupy, monkeypatch):
    """Mutation test: ignore the dilation in the GPU direct kernel and a dilated problem fails."""
    from kernels.gpu import direct
    broken = direct.SOURCE.replace("r * dh", "r")
    assert broken != direct.SOURCE
    monkeypatch.setattr(direct, "SOURCE", broken)
    problem = ConvProblem.parse("mb1ic2ih12oc2oh8kh3dh1")
    x, w = make_inputs(problem, seed=5)
    y = cupy.asnumpy(direct.direct.prepare(problem, w)(cupy.asarray(x)))
    assert not compare(y, reference_for(problem, x, w), 3e-6).passed
