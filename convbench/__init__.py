"""convbench: a benchmark suite for 2-D convolution algorithms.

Importing convbench never imports CuPy, torch or pandas; kernels load on first use.
"""

import os

# OpenBLAS keeps its worker threads spinning after each call for 2**THREAD_TIMEOUT cycles (2**28 by
# default, about a tenth of a second). Kernels that alternate BLAS with numba parallel loops (im2col,
# Winograd) then lose a core to that spinning: on a 2-core Xeon, Winograd F(2x2,3x3) on ResNet-50
# res2a_branch2b took 2.14 ms per call with the default and 1.70 ms with 2**14 (long enough to stay
# awake between the 16 GEMMs of one call, short enough to sleep during the transforms). OpenBLAS
# reads it when numpy loads it, hence here, before numpy; a value the user set wins.
# The names of variables set here rather than by the user are listed in CONVBENCH_DEFAULTS, so
# the peers can be started without them (convbench.machine.peer_environment).
if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = "14"
    os.environ["CONVBENCH_DEFAULTS"] = ",".join(
        filter(None, (os.environ.get("CONVBENCH_DEFAULTS"), "OPENBLAS_THREAD_TIMEOUT")))

from .api import conv2d
from .problem import ConvProblem
from .reference import conv2d_reference
from .registry import REGISTRY, Kernel, KernelSpec, UnsupportedProblem, get_kernel

__all__ = ["ConvProblem", "conv2d", "conv2d_reference", "get_kernel", "Kernel", "KernelSpec",
           "REGISTRY", "UnsupportedProblem"]
__version__ = "0.1.0"
