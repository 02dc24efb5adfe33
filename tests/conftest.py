import numpy as np
import pytest

from convbench.registry import all_kernels


def cpu_kernels():
    return [kernel for kernel in all_kernels() if kernel.spec.backend == "cpu" and not kernel.spec.peer]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
