"""convbench: a benchmark suite for 2-D convolution algorithms.

Importing convbench never imports CuPy, torch or pandas; kernels load on first use.
"""

from .api import conv2d
from .problem import ConvProblem
from .reference import conv2d_reference
from .registry import REGISTRY, Kernel, KernelSpec, UnsupportedProblem, get_kernel

__all__ = ["ConvProblem", "conv2d", "conv2d_reference", "get_kernel", "Kernel", "KernelSpec",
           "REGISTRY", "UnsupportedProblem"]
__version__ = "0.1.0"
