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
