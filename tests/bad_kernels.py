"""Deliberately broken kernels, registered only in tests through CONVBENCH_EXTRA_KERNELS."""

import ctypes
import time

import numpy as np

from convbench.registry import KernelSpec


class _Bad:
    def __init__(self, behaviour):
        self.behaviour = behaviour

    def supports(self, problem):
        return None

    def workspace_bytes(self, problem):
        return 0

    def prepare(self, problem, w):
        shape = problem.output_shape

        def run(x):
            if self.behaviour == "crash":
                ctypes.string_at(0)  # reads address 0: SIGSEGV, as a bug in compiled code would
            if self.behaviour == "hang":
                time.sleep(3600)
            if self.behaviour == "raise":
                raise RuntimeError("kernel bug: index out of range")
            if self.behaviour == "nan":
                return np.full(shape, np.nan, dtype=np.float32)
            if self.behaviour == "wrong_shape":
                return np.zeros(shape[:-1] + (shape[-1] + 1,), dtype=np.float32)
            if self.behaviour == "slow":
                time.sleep(0.3)
            return np.zeros(shape, dtype=np.float32) if self.behaviour == "zeros" else None

        return run


crash, hang, raises, nan, wrong_shape = (_Bad(b) for b in ("crash", "hang", "raise", "nan", "wrong_shape"))

SPECS = [KernelSpec(name, "cpu", f"tests.bad_kernels:{attr}", 1e-5, False, summary="test only")
         for name, attr in (("crash", "crash"), ("hang", "hang"), ("raise", "raises"), ("nan", "nan"),
                            ("wrong_shape", "wrong_shape"))]

# A peer whose library is not installed: every case of it is SKIPPED as unavailable.
MISSING = [KernelSpec("missing_peer", "cpu", "tests.bad_kernels:nan", 1e-5, False,
                      ("convbench_no_such_library",), peer=True, summary="test only"),
           # one of ours whose library is not installed: a run of it alone is refused
           KernelSpec("missing_ours", "cpu", "tests.bad_kernels:nan", 1e-5, False,
                      ("convbench_no_such_library",), summary="test only")]
