"""Compile a CUDA C kernel with the host C++ compiler and launch it block by block (see README.md)."""

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import weakref
from pathlib import Path

import numpy

SHIM = Path(__file__).resolve().parent.parent / "cuda_shim.h"
GUARD = 256                      # guard bytes on each side of every array allocated here
GUARD_BYTE = 0xA5
MAX_THREADS = 1024
MAX_BLOCK = (1024, 1024, 64)
MAX_GRID = (2 ** 31 - 1, 65535, 65535)
MAX_STATIC_SHARED = 48 * 1024

_SIGNATURE = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)')
_DYNAMIC_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([A-Za-z_][\w ]*?)\s+"
                             r"(\w+)\s*\[\s*\]\s*;")
_SCALARS = {"int": numpy.int32, "unsigned": numpy.uint32, "unsigned int": numpy.uint32,
            "long long": numpy.int64, "long long int": numpy.int64,
            "unsigned long long": numpy.uint64, "float": numpy.float32, "double": numpy.float64}
_POINTEES = {"float": numpy.float32, "double": numpy.float64, "int": numpy.int32,
             "long long": numpy.int64, "unsigned char": numpy.uint8}
_CTYPES = {numpy.int32: ctypes.c_int32, numpy.uint32: ctypes.c_uint32, numpy.int64: ctypes.c_int64,
           numpy.uint64: ctypes.c_uint64, numpy.float32: ctypes.c_float,
           numpy.float64: ctypes.c_double}

_guarded = weakref.WeakValueDictionary()   # id(buffer) -> buffer, for arrays allocated by the fake


def allocate(shape, dtype, fill=None):
    """A C-contiguous array with guard bytes on both sides; ``fill`` None poisons it (NaN bytes)."""
    dtype = numpy.dtype(dtype)
    shape = (shape,) if numpy.isscalar(shape) else tuple(int(v) for v in shape)
    nbytes = int(numpy.prod(shape, dtype=numpy.int64)) * dtype.itemsize
    buffer = numpy.full(nbytes + 2 * GUARD, GUARD_BYTE, dtype=numpy.uint8)
    body = buffer[GUARD:GUARD + nbytes]
    body[:] = 0xFF                           # as float32 or float64: NaN
    _guarded[id(buffer)] = buffer
    array = body.view(dtype).reshape(shape)
    if fill is not None:
        array[...] = fill
    return array


def _owner(array):
    while array.base is not None and isinstance(array.base, numpy.ndarray):
        array = array.base
    return array


def _check_guards(name, index, array):
    buffer = _owner(array)
    if _guarded.get(id(buffer)) is not buffer:
        return
    if (buffer[:GUARD] != GUARD_BYTE).any() or (buffer[-GUARD:] != GUARD_BYTE).any():
        raise RuntimeError(f"kernel {name} wrote outside the array passed as argument {index}")


def _parameters(params_text):
    """[(kind, type)] with kind 'pointer' or 'scalar', qualifiers removed."""
    out = []
    for param in filter(None, (p.strip() for p in params_text.split(","))):
        words = param.replace("*", " * ").split()
        words = [w for w in words[:-1] if w not in ("const", "__restrict__", "volatile")]
        pointer = "*" in words
        base = " ".join(w for w in words if w != "*")
        out.append(("pointer" if pointer else "scalar", base))
    return out


def _cache_dir():
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(tempfile.gettempdir(),
                                                            f"cache-{os.getuid()}")
    path = Path(root) / "convbench-cuda-emulator"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _compiler():
    for name in (os.environ.get("CXX"), "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise RuntimeError("the CUDA emulator needs a C++ compiler (g++ or clang++) on PATH")


def _launcher(name, params, sync):
    args = ", ".join(f"*({base}{'*' if kind == 'pointer' else ''}*)argv[{i}]"
                     for i, (kind, base) in enumerate(params))
    return f"""
extern "C" int cuemu_launch_{name}(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                   unsigned bz, unsigned long shared, void** argv)
{{
    std::vector<unsigned char> smem(shared ? shared : 1);
    cuemu_shared = smem.data();
    gridDim = dim3{{gx, gy, gz}};
    blockDim = dim3{{bx, by, bz}};
    for (unsigned z = 0; z < gz; ++z) for (unsigned y = 0; y < gy; ++y) for (unsigned x = 0; x < gx; ++x) {{
        blockIdx = dim3{{x, y, z}};
        std::memset(smem.data(), 0xFF, smem.size());
        if (!{int(sync)}) {{
            for (unsigned tz = 0; tz < bz; ++tz) for (unsigned ty = 0; ty < by; ++ty)
                for (unsigned tx = 0; tx < bx; ++tx) {{
                    threadIdx = dim3{{tx, ty, tz}};
                    {name}({args});
                }}
            continue;
        }}
        std::barrier<> bar(bx * by * bz);
        cuemu_barrier = &bar;
        std::vector<std::thread> threads;
        for (unsigned tz = 0; tz < bz; ++tz) for (unsigned ty = 0; ty < by; ++ty)
            for (unsigned tx = 0; tx < bx; ++tx)
                threads.emplace_back([&, tx, ty, tz] {{
                    threadIdx = dim3{{tx, ty, tz}};
                    {name}({args});
                    bar.arrive_and_drop();   // an exited thread no longer holds the block's barrier
                }});
        for (auto& thread : threads) thread.join();
    }}
    return 0;
}}
"""


def _build(source, names):
    """Compile ``source`` (with launchers for ``names``) once; the shared library's path."""
    body = _DYNAMIC_SHARED.sub(lambda m: f"{m.group(1)}* {m.group(2)} = "
                                         f"reinterpret_cast<{m.group(1)}*>(cuemu_shared);", source)
    signatures = {m.group(1): _parameters(m.group(2)) for m in _SIGNATURE.finditer(source)}
    sync = "__syncthreads" in source
    text = (f'#include "{SHIM}"\n#line 1 "kernel.cu"\n{body}\n'
            + "".join(_launcher(name, signatures[name], sync) for name in names))
    key = hashlib.sha256((text + SHIM.read_text()).encode()).hexdigest()[:20]
    library = _cache_dir() / f"{key}.so"
    if not library.exists():
        with tempfile.TemporaryDirectory() as work:
            cpp = Path(work) / "kernel.cpp"
            cpp.write_text(text)
            out = Path(work) / "kernel.so"
            result = subprocess.run([_compiler(), "-std=c++20", "-O2", "-shared", "-fPIC", "-pthread",
                                     "-Wno-unknown-pragmas", "-o", str(out), str(cpp)],
                                    capture_output=True, text=True)
            if result.returncode:
                raise RuntimeError(f"CUDA source did not compile for the emulator:\n{result.stderr}")
            os.replace(out, library)
    return library, signatures


class RawKernel:
    """``cupy.RawKernel`` on the host: same constructor and call, with the checks in README.md."""

    def __init__(self, code, name, options=(), **_):
        self.code, self.name, self.options = code, name, options
        self._function = None

    def _load(self):
        if self._function is None:
            names = [m.group(1) for m in _SIGNATURE.finditer(self.code)]
            if self.name not in names:
                raise RuntimeError(f'no extern "C" __global__ function {self.name!r} in the source')
            library, signatures = _build(self.code, [self.name])
            self._params = signatures[self.name]
            self._function = getattr(ctypes.CDLL(str(library)), f"cuemu_launch_{self.name}")
            self._function.restype = ctypes.c_int
        return self._function

    def __call__(self, grid, block, args, shared_mem=0, **_):
        function = self._load()
        grid, block = _dims("grid", grid, MAX_GRID), _dims("block", block, MAX_BLOCK)
        if block[0] * block[1] * block[2] > MAX_THREADS:
            raise ValueError(f"{self.name}: {block} is over {MAX_THREADS} threads per block")
        if shared_mem > MAX_STATIC_SHARED:
            raise ValueError(f"{self.name}: {shared_mem} bytes of dynamic shared memory need "
                             f"an opt-in above {MAX_STATIC_SHARED}")
        if len(args) != len(self._params):
            raise TypeError(f"{self.name} takes {len(self._params)} arguments, got {len(args)}")
        holders = []
        for index, (value, (kind, base)) in enumerate(zip(args, self._params)):
            holders.append(_argument(self.name, index, value, kind, base))
        argv = (ctypes.c_void_p * len(holders))(*[ctypes.addressof(h) for h in holders])
        function(*[ctypes.c_uint(v) for v in grid + block], ctypes.c_ulong(shared_mem), argv)
        for index, value in enumerate(args):
            if isinstance(value, numpy.ndarray):
                _check_guards(self.name, index, value)


def _dims(label, value, limits):
    value = (value,) if isinstance(value, int) else tuple(value)
    if not 1 <= len(value) <= 3 or not all(isinstance(v, (int, numpy.integer)) for v in value):
        raise TypeError(f"{label} must be 1 to 3 integers, got {value!r}")
    value = tuple(int(v) for v in value) + (1,) * (3 - len(value))
    for v, limit in zip(value, limits):
        if not 1 <= v <= limit:
            raise ValueError(f"{label} size {value} is outside 1..{limits}")
    return value


def _argument(name, index, value, kind, base):
    where = f"{name} argument {index} ({base}{'*' if kind == 'pointer' else ''})"
    if kind == "pointer":
        if not isinstance(value, numpy.ndarray):
            raise TypeError(f"{where} needs an array, got {type(value).__name__}")
        if type(value).__module__.split(".")[0] != "cupy":
            raise TypeError(f"{where} got a host (numpy) array")
        if not value.flags.c_contiguous:
            raise TypeError(f"{where} got a non-contiguous array: the kernel would read it as dense")
        if base in _POINTEES and value.dtype != _POINTEES[base]:
            raise TypeError(f"{where} got an array of {value.dtype}")
        return ctypes.c_void_p(value.ctypes.data)
    wanted = _SCALARS.get(base)
    if wanted is None:
        raise TypeError(f"{where}: the emulator does not know this parameter type")
    if type(value) is not wanted:
        raise TypeError(f"{where} needs numpy.{wanted.__name__}, got {type(value).__name__} "
                        f"(CUDA would read its bytes as the wrong type)")
    return _CTYPES[wanted](value)
