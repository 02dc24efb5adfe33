import numpy as np
import pytest

from convbench.registry import all_kernels


def cpu_kernels():
    """Every CPU kernel usable here, peers included (torch only where it is installed)."""
    return [kernel for kernel in all_kernels()
            if kernel.spec.backend == "cpu" and kernel.unavailable_reason is None]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def parallel_paths_on_small_problems(monkeypatch):
    """Every test problem is small, and below ``SERIAL_FLOPS`` (depthwise:
    ``SERIAL_DEPTHWISE_BYTES``) the CPU kernels run their numba loops on one thread (see
    kernels/cpu/_common.py): with the bounds at zero the tests go through the parallel loops,
    which is what a real layer runs. The tests of the one-thread rule itself put them back."""
    from kernels.cpu import _common
    monkeypatch.setattr(_common, "SERIAL_FLOPS", 0)
    monkeypatch.setattr(_common, "SERIAL_DEPTHWISE_BYTES", 0)
