"""A CPU stand-in for the part of CuPy that convbench uses (see ../README.md). Not CuPy."""

import numpy as _np

from . import cuda, fft, lib, random  # noqa: F401  (cupy.cuda, .fft, .lib, .random)
from ._emulator import RawKernel, allocate as _allocate  # noqa: F401

__version__ = "0+cpu-emulator"
EMULATED = True

float32, float64, complex64, complex128 = _np.float32, _np.float64, _np.complex64, _np.complex128
int32, int64, uint32, uint8 = _np.int32, _np.int64, _np.uint32, _np.uint8


class ndarray(_np.ndarray):
    """A "device" array: a numpy array whose type lives in the module ``cupy``."""


ndarray.__module__ = "cupy"


def _device(array):
    return array.view(ndarray) if type(array) is not ndarray else array


def _to_device(value, dtype=None):
    host = _np.asarray(value, dtype=dtype)
    out = _allocate(host.shape, host.dtype)
    out[...] = host
    return _device(out)


def asarray(a, dtype=None):
    if isinstance(a, ndarray) and (dtype is None or a.dtype == _np.dtype(dtype)):
        return a
    return _to_device(a, dtype)


def asnumpy(a):
    return _np.array(a, copy=True).view(_np.ndarray)


def empty(shape, dtype=float64):
    return _device(_allocate(shape, dtype))


def zeros(shape, dtype=float64):
    return _device(_allocate(shape, dtype, fill=0))


def ones(shape, dtype=float64):
    return _device(_allocate(shape, dtype, fill=1))


def empty_like(a):
    return empty(a.shape, a.dtype)


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray) and a.flags.c_contiguous and (dtype is None or a.dtype == dtype):
        return a
    return _to_device(a, dtype)


def copyto(dst, src):
    _np.copyto(dst, src)


def _check_on_device(name, args):
    """CuPy refuses numpy arrays in its operations (no implicit transfers); so does this."""
    for arg in args:
        if isinstance(arg, _np.ndarray) and not isinstance(arg, ndarray):
            raise TypeError(f"cupy.{name} got a numpy.ndarray: move it with cupy.asarray first")


def _wrap(function):
    def wrapped(*args, **kwargs):
        _check_on_device(function.__name__, args)
        return _device(_np.asarray(function(*args, **kwargs)))
    wrapped.__name__ = function.__name__
    return wrapped


matmul = _wrap(_np.matmul)
conj = _wrap(_np.conj)
broadcast_to = _wrap(_np.broadcast_to)


class _MemoryPool:
    """The default pool: host memory is freed by numpy, so there is nothing to give back."""

    def free_all_blocks(self):
        pass


_POOL = _MemoryPool()


def get_default_memory_pool():
    return _POOL
