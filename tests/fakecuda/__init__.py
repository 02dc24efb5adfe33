"""Load the CPU stand-in for CuPy (``cupy/`` here) in place of the real one, for a while."""

import contextlib
import importlib.util
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def compiler_missing_reason():
    if not (shutil.which("g++") or shutil.which("clang++")):
        return "the CUDA emulator needs g++ or clang++"
    return None


def _owned(name, prefixes):
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@contextlib.contextmanager
def emulated_cupy(reload=("kernels.gpu", "kernels.peers.torch_conv")):
    """Within the block ``import cupy`` gives the stand-in, and the modules named in ``reload`` are
    imported afresh against it; afterwards whatever was loaded before (real CuPy too) is back."""
    prefixes = ("cupy",) + tuple(reload)
    saved = {name: module for name, module in sys.modules.items() if _owned(name, prefixes)}
    for name in saved:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location("cupy", HERE / "cupy" / "__init__.py",
                                                  submodule_search_locations=[str(HERE / "cupy")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["cupy"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        for name in [name for name in sys.modules if _owned(name, prefixes)]:
            del sys.modules[name]
        sys.modules.update(saved)
