"""CPU kernels: numba for loops, BLAS (through numpy) for matrix products, scipy.fft for transforms.

The kernels alternate numba parallel regions with BLAS calls. numba's OpenMP threading layer keeps its
threads spinning after each region, and on a small machine they then take the cores from BLAS's own
threads: on a 2-core Xeon, im2col on ResNet-50 res2a_branch2b took 5.7 ms with spinning threads and
2.3 ms with passive ones. So unless the user has chosen otherwise, OpenMP threads wait passively; this
must be set before numba starts its thread pool, hence here. The name goes into
``CONVBENCH_DEFAULTS`` too, so the harness can start the peers (PyTorch has OpenMP threads of its
own) without a setting that was made for these kernels.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ["CONVBENCH_DEFAULTS"] = ",".join(
        filter(None, (os.environ.get("CONVBENCH_DEFAULTS"), "OMP_WAIT_POLICY")))
