"""The GPU kernels' CUDA C compiles with NVIDIA's compiler, for the GPUs this project is run on.

The emulated tests (test_gpu.py) compile the same source with g++, which accepts things nvcc would
not and the other way round; this closes that gap wherever ``nvcc`` is installed (skipped otherwise).
CuPy compiles with NVRTC, which is nvcc's front end. ptxas's resource report is printed with ``-s``.
"""

import shutil
import subprocess

import pytest

from .fakecuda import emulated_cupy

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
ARCHES = ("sm_80", "sm_90")   # A100; H100 and H200


def cuda_sources():
    with emulated_cupy():   # the modules import cupy; their source text does not depend on it
        from kernels.gpu import direct, im2col, winograd
        return {"direct": direct.SOURCE, "im2col": im2col.SOURCE,
                "winograd_f2": winograd._source(2, 3), "winograd_f4": winograd._source(4, 3),
                "winograd_f2_5x5": winograd._source(2, 5), "winograd_f4_5x5": winograd._source(4, 5)}


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("name", ["direct", "im2col", "winograd_f2", "winograd_f4",
                                  "winograd_f2_5x5", "winograd_f4_5x5"])
def test_cuda_source_compiles(tmp_path, name, arch):
    source = tmp_path / f"{name}.cu"
    source.write_text(cuda_sources()[name])
    done = subprocess.run([NVCC, "-std=c++14", f"-arch={arch}", "-cubin", "-Werror=all-warnings",
                           "-Xptxas=-v", "-o", str(tmp_path / f"{name}.cubin"), str(source)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    print(done.stderr)
